// Losses, each a mean reduced to one value, and their gradients.
//
// Forward kernels write one term per element (or per triplet) to a scratch buffer that the
// reduce family's fixed-order sum then adds (src/ops/reduce.rs): deterministic, no atomics.
// Elementwise kernels take one invocation per element, 256 per workgroup.
//   mse_terms:            t[i] = (a[i] - b[i])^2
//   mse_backward:         g[i] = scale * (a[i] - b[i]) * dy[0], scale = +-2 / n
//   bce_terms:            t[i] = max(x, 0) - x * y + log(1 + exp(-|x|)), x logits, y targets
//   bce_backward:         which 0: g[i] = (sigmoid(x) - y) * dy[0] * scale; which 1:
//                         g[i] = -x * dy[0] * scale, scale = 1 / n
//   tv_terms:             x viewed [planes, h, w]; t[i] = inv_v * (x[i + w] - x[i])^2 (rows
//                         below the last) + inv_h * (x[i + 1] - x[i])^2 (columns left of the
//                         last), inv_v and inv_h one over the count of each kind of difference
//   tv_backward:          g[i] = dy[0] * (2 inv_v (dv above - dv below) + 2 inv_h (same across))
//   triplet_terms:        one invocation per triplet t = (a, p, n):
//                         t[t] = max(0, |e_a - e_p|^2 - |e_a - e_n|^2 + margin); an index out of
//                         range gives NaN, so that a broken index list cannot pass unnoticed
//   triplet_backward:     one workgroup of 64 per embedding row r; see the kernel.
//   ce_stats:             cross-entropy of logits [N, C, inner] (classes along axis 1, inner the
//                         product of the dimensions after it) against u32 labels [N, inner]; one
//                         invocation per position q = (n, j) writes four rows of [4, positions]:
//                         the term lse - x[label] computed as (m - x[label]) + log(s) (0 where
//                         ignored, NaN for a label >= C), the weight (1, or 0 where ignored), the
//                         maximum m over the classes and log(s), s = sum_c exp(x_c - m)
//   ce_mean:              loss = sums[0] / sums[1] (sum of terms over the count of weights), NaN
//                         when every label is ignored
//   ce_backward:          one invocation per logit: g = (exp((x - m) - log s) - [c == label])
//                         * dy[0] / count, 0 where ignored, NaN for a label >= C

#include "gpu/workgroup_index.wgsl"
#include "ops/sigmoid.wgsl"

struct Params {
    n: u32,         // elements (mse, bce, tv) or triplets
    rows: u32,      // triplet: embedding rows; tv: planes
    dim: u32,       // triplet: embedding width; tv: h
    width: u32,     // tv: w
    scale: f32,
    which: u32,     // bce_backward: 0 logits, 1 targets
    // cross-entropy: n positions, dim classes, width inner
    margin: f32,
    inv_v: f32,     // tv: 1 / (planes (h - 1) w)
    inv_h: f32,     // tv: 1 / (planes h (w - 1))
    ignore_index: u32,  // cross-entropy: the label that counts for nothing, if has_ignore
    has_ignore: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// mse, bce: a (or logits) at 1, b (or targets) at 2; terms: out at 3; backward: dy at 3,
// out at 4
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> pair_terms: array<f32>;
@group(0) @binding(3) var<storage, read> pair_dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> pair_grad: array<f32>;
// tv: x at 1; terms: out at 2; backward: dy at 2, out at 3
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> tv_out: array<f32>;
@group(0) @binding(2) var<storage, read> tv_dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> tv_grad: array<f32>;
// triplet: embeddings at 1, triplets at 2; terms: out at 3; backward: dy at 3, terms at 4,
// out at 5
@group(0) @binding(1) var<storage, read> emb: array<f32>;
@group(0) @binding(2) var<storage, read> triplets: array<u32>;
@group(0) @binding(3) var<storage, read_write> triplet_out: array<f32>;
@group(0) @binding(3) var<storage, read> triplet_dy: array<f32>;
@group(0) @binding(4) var<storage, read> triplet_hinge: array<f32>;
@group(0) @binding(5) var<storage, read_write> triplet_grad: array<f32>;
// cross-entropy: logits at 1 (a), labels at 2; ce_stats: stats out at 3; ce_mean: sums at 1,
// loss at 2; ce_backward: dy at 3, stats at 4, sums at 5 (the count at [1]), out at 6
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> ce_stats_out: array<f32>;
@group(0) @binding(1) var<storage, read> ce_sums: array<f32>;
@group(0) @binding(2) var<storage, read_write> ce_loss: array<f32>;
@group(0) @binding(3) var<storage, read> ce_dy: array<f32>;
@group(0) @binding(4) var<storage, read> ce_stats_in: array<f32>;
@group(0) @binding(5) var<storage, read> ce_count: array<f32>;
@group(0) @binding(6) var<storage, read_write> ce_grad: array<f32>;

const WG: u32 = 256u;

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return workgroup_index(wid, nwg) * WG + lid;
}

@compute @workgroup_size(WG)
fn mse_terms(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if i < p.n {
        let d = a[i] - b[i];
        pair_terms[i] = d * d;
    }
}

@compute @workgroup_size(WG)
fn mse_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if i < p.n {
        pair_grad[i] = p.scale * pair_dy[0] * (a[i] - b[i]);
    }
}

@compute @workgroup_size(WG)
fn bce_terms(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if i < p.n {
        let v = a[i];
        pair_terms[i] = max(v, 0.0) - v * b[i] + log(1.0 + exp(-abs(v)));
    }
}

@compute @workgroup_size(WG)
fn bce_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if i < p.n {
        let v = a[i];
        let d = select(-v, sigmoid(v) - b[i], p.which == 0u);
        pair_grad[i] = p.scale * pair_dy[0] * d;
    }
}

@compute @workgroup_size(WG)
fn tv_terms(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let col = i % p.width;
    let row = (i / p.width) % p.dim;
    let v = x[i];
    var t = 0.0;
    if row + 1u < p.dim {
        let d = x[i + p.width] - v;
        t += p.inv_v * d * d;
    }
    if col + 1u < p.width {
        let d = x[i + 1u] - v;
        t += p.inv_h * d * d;
    }
    tv_out[i] = t;
}

@compute @workgroup_size(WG)
fn tv_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let col = i % p.width;
    let row = (i / p.width) % p.dim;
    let v = x[i];
    // Each difference (next - this) contributes +2 d to `next` and -2 d to `this`.
    var vertical = 0.0;
    if row > 0u {
        vertical += v - x[i - p.width];
    }
    if row + 1u < p.dim {
        vertical -= x[i + p.width] - v;
    }
    var horizontal = 0.0;
    if col > 0u {
        horizontal += v - x[i - 1u];
    }
    if col + 1u < p.width {
        horizontal -= x[i + 1u] - v;
    }
    tv_grad[i] = 2.0 * tv_dy[0] * (p.inv_v * vertical + p.inv_h * horizontal);
}

fn squared_distance(r: u32, s: u32) -> f32 {
    var total = 0.0;
    for (var d = 0u; d < p.dim; d++) {
        let diff = emb[r * p.dim + d] - emb[s * p.dim + d];
        total += diff * diff;
    }
    return total;
}

@compute @workgroup_size(WG)
fn triplet_terms(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let t = element(wid, nwg, lid);
    if t >= p.n {
        return;
    }
    let anchor = triplets[3u * t];
    let positive = triplets[3u * t + 1u];
    let negative = triplets[3u * t + 2u];
    if max(anchor, max(positive, negative)) >= p.rows {
        let nan_bits = 0x7fc00000u;
        triplet_out[t] = bitcast<f32>(nan_bits);
        return;
    }
    let hinge = squared_distance(anchor, positive) - squared_distance(anchor, negative) + p.margin;
    triplet_out[t] = max(hinge, 0.0);
}

// triplet_backward: the gradient of row r of the embeddings, accumulated without atomics.
// Inputs: the hinge terms of triplet_terms (a term > 0 is active). The workgroup walks the
// triplets in chunks of 64, in order: each invocation tests one triplet (active and naming r),
// an inclusive prefix sum over the chunk lists the hits in triplet order, and then every
// invocation adds, for each hit in that order, the contributions to its components
// d = lid, lid + 64, ...:  r as anchor 2 (e_n - e_p), as positive -2 (e_a - e_p), as negative
// 2 (e_a - e_n), times dy / T. A row named in several roles of one triplet gets each role's term.
const TWG: u32 = 64u;
var<workgroup> hits: array<u32, TWG>;
var<workgroup> hit_list: array<u32, TWG>;

@compute @workgroup_size(TWG)
fn triplet_backward(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let r = workgroup_index(wid, nwg);
    if r >= p.rows {
        return;
    }
    let coefficient = triplet_dy[0] * p.scale;
    for (var d = lid; d < p.dim; d += TWG) {
        triplet_grad[r * p.dim + d] = 0.0;
    }
    for (var start = 0u; start < p.n; start += TWG) {
        let t = start + lid;
        var hit = 0u;
        if t < p.n && triplet_hinge[t] > 0.0 {
            let names_r = triplets[3u * t] == r || triplets[3u * t + 1u] == r
                || triplets[3u * t + 2u] == r;
            hit = select(0u, 1u, names_r);
        }
        hits[lid] = hit;
        workgroupBarrier();
        for (var offset = 1u; offset < TWG; offset *= 2u) {
            let below = select(0u, hits[select(0u, lid - offset, lid >= offset)], lid >= offset);
            workgroupBarrier();
            hits[lid] += below;
            workgroupBarrier();
        }
        if hit == 1u {
            hit_list[hits[lid] - 1u] = t;
        }
        workgroupBarrier();
        let count = hits[TWG - 1u];
        for (var h = 0u; h < count; h++) {
            let u = hit_list[h];
            let anchor = triplets[3u * u];
            let positive = triplets[3u * u + 1u];
            let negative = triplets[3u * u + 2u];
            for (var d = lid; d < p.dim; d += TWG) {
                let ea = emb[anchor * p.dim + d];
                let ep = emb[positive * p.dim + d];
                let en = emb[negative * p.dim + d];
                var g = 0.0;
                if anchor == r {
                    g += 2.0 * (en - ep);
                }
                if positive == r {
                    g -= 2.0 * (ea - ep);
                }
                if negative == r {
                    g += 2.0 * (ea - en);
                }
                triplet_grad[r * p.dim + d] += coefficient * g;
            }
        }
        workgroupBarrier();
    }
}

// A quiet NaN, for results that must not pass unnoticed (an out-of-range label); through a
// `let`, which is not a constant expression (one may not evaluate to NaN).
fn nan() -> f32 {
    let bits = 0x7fc00000u;
    return bitcast<f32>(bits);
}

fn ce_ignored(label: u32) -> bool {
    return p.has_ignore == 1u && label == p.ignore_index;
}

@compute @workgroup_size(WG)
fn ce_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let q = element(wid, nwg, lid);
    if q >= p.n {
        return;
    }
    let label = labels[q];
    if ce_ignored(label) {
        ce_stats_out[q] = 0.0;
        ce_stats_out[p.n + q] = 0.0;
        ce_stats_out[2u * p.n + q] = 0.0;
        ce_stats_out[3u * p.n + q] = 0.0;
        return;
    }
    let start = (q / p.width) * p.dim * p.width + q % p.width;
    let end = start + p.dim * p.width;
    var m = a[start];
    for (var at = start + p.width; at < end; at += p.width) {
        m = max(m, a[at]);
    }
    var s = 0.0;
    for (var at = start; at < end; at += p.width) {
        s += exp(a[at] - m);
    }
    let log_s = log(s);
    var term = nan();
    if label < p.dim {
        term = (m - a[start + label * p.width]) + log_s;
    }
    ce_stats_out[q] = term;
    ce_stats_out[p.n + q] = 1.0;
    ce_stats_out[2u * p.n + q] = m;
    ce_stats_out[3u * p.n + q] = log_s;
}

@compute @workgroup_size(1)
fn ce_mean() {
    ce_loss[0] = select(ce_sums[0] / ce_sums[1], nan(), ce_sums[1] == 0.0);
}

@compute @workgroup_size(WG)
fn ce_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let e = element(wid, nwg, lid);
    let total = p.n * p.dim;
    if e >= total {
        return;
    }
    let j = e % p.width;
    let c = (e / p.width) % p.dim;
    let q = (e / (p.dim * p.width)) * p.width + j;
    let label = labels[q];
    if ce_ignored(label) {
        ce_grad[e] = 0.0;
        return;
    }
    if label >= p.dim {
        ce_grad[e] = nan();
        return;
    }
    let prob = exp((a[e] - ce_stats_in[2u * p.n + q]) - ce_stats_in[3u * p.n + q]);
    let onehot = select(0.0, 1.0, c == label);
    ce_grad[e] = (prob - onehot) * (ce_dy[0] / ce_count[1]);
}
