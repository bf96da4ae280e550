// Batch normalisation of x [N, C, S] (row-major; S = the product of the spatial dims, 1 for
// [N, C]): statistics per channel c over the M = N * S values x[n, c, s].
//
// Statistics are read from two bindings, `mean_in` and `var_in`, with var[c] at
// var_in[var_offset + c]: the batch statistics [2, C] (mean row 0, biased variance row 1) are
// bound twice with var_offset = C; running statistics are two [C] buffers with var_offset = 0.
//
//   stats_chunks:   one workgroup per (channel, chunk of CHUNK consecutive values of the channel):
//                   invocation t runs Welford's update over values t, t + WG, ... of the chunk in
//                   order, then a fixed tree in workgroup memory merges the WG (count, mean, M2)
//                   triples (Chan's formula). With one chunk per channel it writes the statistics
//                   [2, C] (mean, M2 / count); otherwise the triples [C, chunks, 3] for
//                   stats_finish.
//   stats_finish:   one workgroup per channel merges its chunks' triples: invocation t merges
//                   chunks t, t + WG, ... in order, then the same fixed tree. Writes [2, C].
//   apply(4):       y = (x - mean) * gamma / sqrt(var + eps) + beta, one invocation per element
//                   (apply4: per 4 elements, when S is a multiple of 4 so that they share c).
//   input_grad(4):  dx = dy * gamma / sqrt(var + eps): the gradient through x itself, with the
//                   statistics held fixed.
//   sums_chunks:    one workgroup per (channel, chunk): sum(dy) and sum(dy * (x - mean)) over the
//                   chunk, each invocation in order, then a fixed tree. With one chunk it writes
//                   [2, C]; otherwise partial sums [2, C, chunks] that ops/reduce.wgsl adds.
//   param_grads:    one invocation per channel turns the sums into one gradient (`part`), with
//                   rstd = 1 / sqrt(var + eps):
//                   0 dbeta [C] = sum(dy);  1 dgamma [C] = sum(dy * (x - mean)) * rstd;
//                   2 dmean [C] = -gamma * rstd * sum(dy);
//                   3 dvar [C] = -gamma / 2 * rstd^3 * sum(dy * (x - mean));
//                   4 d[2, C]: dmean in row 0, dvar in row 1 (the batch statistics' gradient).
//   stats_backward(4): dx = (dmean + 2 * dvar * (x - mean)) / M from d[2, C].
//   update_running: one invocation per channel, in place:
//                   running_mean = (1 - momentum) * running_mean + momentum * mean,
//                   running_var = (1 - momentum) * running_var + momentum * var * M / (M - 1).
// Every sum runs in a fixed order, so the same inputs give bit-identical results; no atomics.
// Workgroups of WG = 256 invocations; workgroup memory 256 * 16 bytes = 4 KiB.

#include "gpu/workgroup_index.wgsl"

struct Params {
    channels: u32,     // C
    spatial: u32,      // S
    count: u32,        // M = N * S, values per channel
    total: u32,        // elements, or invocations (vec4 entries, per-channel entries)
    chunks: u32,       // chunks per channel of the chunked reductions
    var_offset: u32,   // var[c] = var_in[var_offset + c]
    part: u32,         // param_grads: which gradient (see above)
    eps: f32,
    inv_count: f32,    // 1 / M
    momentum: f32,     // update_running
    unbiased: f32,     // update_running: M / (M - 1)
}

@group(0) @binding(0) var<uniform> p: Params;
// stats_chunks: x at 1, out at 2.  stats_finish: partials at 1, out at 2.
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> partials: array<f32>;
// apply: x at 1, mean_in at 2, var_in at 3, gamma at 4, beta at 5, y at 6.
@group(0) @binding(2) var<storage, read> mean_in: array<f32>;
@group(0) @binding(3) var<storage, read> var_in: array<f32>;
@group(0) @binding(4) var<storage, read> gamma: array<f32>;
@group(0) @binding(5) var<storage, read> beta: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> y4: array<vec4<f32>>;
// input_grad: dy at 1, var at 2, gamma at 3, dx at 4.
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> grad_var_in: array<f32>;
@group(0) @binding(3) var<storage, read> grad_gamma: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(1) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> dx4: array<vec4<f32>>;
// sums_chunks: x at 1, dy at 2, mean at 3, out at 4.
@group(0) @binding(2) var<storage, read> sums_dy: array<f32>;
@group(0) @binding(3) var<storage, read> sums_mean: array<f32>;
@group(0) @binding(4) var<storage, read_write> sums_out: array<f32>;
// param_grads: sums at 1, var at 2, gamma at 3, out at 4 (grad_var_in, grad_gamma, dx).
@group(0) @binding(1) var<storage, read> sums: array<f32>;
// stats_backward: x at 1, stats at 2, dstats at 3, dx at 4.
@group(0) @binding(2) var<storage, read> stats: array<f32>;
@group(0) @binding(3) var<storage, read> dstats: array<f32>;
// update_running: stats at 1, running_mean at 2, running_var at 3 (both in place).
@group(0) @binding(1) var<storage, read> batch_stats: array<f32>;
@group(0) @binding(2) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> running_var: array<f32>;

const WG: u32 = 256u;
const ITEMS: u32 = 8u;           // values each invocation visits per chunk
const CHUNK: u32 = WG * ITEMS;   // values of a channel per workgroup (CHUNK in mod.rs)

// (count, mean, M2) triples, or (sum dy, sum dy * (x - mean), -) for the gradient sums.
var<workgroup> shared_partials: array<vec3<f32>, WG>;

// Chan's merge of two (count, mean, M2) triples; two empty triples merge to an empty one.
fn merge(a: vec3<f32>, b: vec3<f32>) -> vec3<f32> {
    let count = a.x + b.x;
    if count == 0.0 {
        return a;
    }
    let weight = b.x / count;
    let delta = b.y - a.y;
    return vec3<f32>(count, a.y + delta * weight, a.z + b.z + delta * delta * a.x * weight);
}

// Merges shared_partials into shared_partials[0] along a fixed tree; every invocation of the
// workgroup calls it.
fn merge_partials(lid: u32) {
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half /= 2u) {
        if lid < half {
            shared_partials[lid] = merge(shared_partials[lid], shared_partials[lid + half]);
        }
        workgroupBarrier();
    }
}

// Adds shared_partials into shared_partials[0] along a fixed tree.
fn add_partials(lid: u32) {
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half /= 2u) {
        if lid < half {
            shared_partials[lid] += shared_partials[lid + half];
        }
        workgroupBarrier();
    }
}

// The index in x of value m (0 <= m < M) of channel c.
fn value_index(c: u32, m: u32) -> u32 {
    return ((m / p.spatial) * p.channels + c) * p.spatial + m % p.spatial;
}

fn channel_of(i: u32) -> u32 {
    return (i / p.spatial) % p.channels;
}

fn write_stats(c: u32, triple: vec3<f32>) {
    out[c] = triple.y;
    out[p.channels + c] = triple.z / triple.x;
}

@compute @workgroup_size(WG)
fn stats_chunks(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let w = workgroup_index(wid, nwg);
    if w >= p.channels * p.chunks {
        return;
    }
    let c = w / p.chunks;
    let chunk = w % p.chunks;
    let end = min((chunk + 1u) * CHUNK, p.count);
    var triple = vec3<f32>(0.0);
    for (var m = chunk * CHUNK + lid; m < end; m += WG) {
        let v = x[value_index(c, m)];
        triple.x += 1.0;
        let delta = v - triple.y;
        triple.y += delta / triple.x;
        triple.z += delta * (v - triple.y);
    }
    shared_partials[lid] = triple;
    merge_partials(lid);
    if lid == 0u {
        if p.chunks == 1u {
            write_stats(c, shared_partials[0]);
        } else {
            let at = 3u * w;
            out[at] = shared_partials[0].x;
            out[at + 1u] = shared_partials[0].y;
            out[at + 2u] = shared_partials[0].z;
        }
    }
}

@compute @workgroup_size(WG)
fn stats_finish(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let c = workgroup_index(wid, nwg);
    if c >= p.channels {
        return;
    }
    var triple = vec3<f32>(0.0);
    for (var chunk = lid; chunk < p.chunks; chunk += WG) {
        let at = 3u * (c * p.chunks + chunk);
        triple = merge(triple, vec3<f32>(partials[at], partials[at + 1u], partials[at + 2u]));
    }
    shared_partials[lid] = triple;
    merge_partials(lid);
    if lid == 0u {
        write_stats(c, shared_partials[0]);
    }
}

fn rstd(c: u32) -> f32 {
    return inverseSqrt(var_in[p.var_offset + c] + p.eps);
}

@compute @workgroup_size(WG)
fn apply(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i >= p.total {
        return;
    }
    let c = channel_of(i);
    let scale = gamma[c] * rstd(c);
    y[i] = (x[i] - mean_in[c]) * scale + beta[c];
}

@compute @workgroup_size(WG)
fn apply4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i >= p.total {
        return;
    }
    let c = channel_of(4u * i);
    let scale = gamma[c] * rstd(c);
    y4[i] = (x4[i] - vec4<f32>(mean_in[c])) * scale + vec4<f32>(beta[c]);
}

fn grad_scale(c: u32) -> f32 {
    return grad_gamma[c] * inverseSqrt(grad_var_in[p.var_offset + c] + p.eps);
}

@compute @workgroup_size(WG)
fn input_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i >= p.total {
        return;
    }
    dx[i] = dy[i] * grad_scale(channel_of(i));
}

@compute @workgroup_size(WG)
fn input_grad4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i >= p.total {
        return;
    }
    dx4[i] = dy4[i] * grad_scale(channel_of(4u * i));
}

@compute @workgroup_size(WG)
fn sums_chunks(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let w = workgroup_index(wid, nwg);
    if w >= p.channels * p.chunks {
        return;
    }
    let c = w / p.chunks;
    let chunk = w % p.chunks;
    let end = min((chunk + 1u) * CHUNK, p.count);
    let mean = sums_mean[c];
    var total = vec3<f32>(0.0);
    for (var m = chunk * CHUNK + lid; m < end; m += WG) {
        let at = value_index(c, m);
        let g = sums_dy[at];
        total += vec3<f32>(g, g * (x[at] - mean), 0.0);
    }
    shared_partials[lid] = total;
    add_partials(lid);
    if lid == 0u {
        // [2, C] with one chunk; [2, C, chunks] otherwise (w = c * chunks + chunk).
        sums_out[w] = shared_partials[0].x;
        sums_out[p.channels * p.chunks + w] = shared_partials[0].y;
    }
}

@compute @workgroup_size(WG)
fn param_grads(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let c = workgroup_index(wid, nwg) * WG + lid;
    if c >= p.channels {
        return;
    }
    let r = inverseSqrt(grad_var_in[p.var_offset + c] + p.eps);
    let sum_dy = sums[c];
    let sum_dy_centred = sums[p.channels + c];
    let dmean = -grad_gamma[c] * r * sum_dy;
    let dvar = -0.5 * grad_gamma[c] * r * r * r * sum_dy_centred;
    switch p.part {
        case 0u: {
            dx[c] = sum_dy;
        }
        case 1u: {
            dx[c] = sum_dy_centred * r;
        }
        case 2u: {
            dx[c] = dmean;
        }
        case 3u: {
            dx[c] = dvar;
        }
        default: {
            dx[c] = dmean;
            dx[p.channels + c] = dvar;
        }
    }
}

@compute @workgroup_size(WG)
fn stats_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i >= p.total {
        return;
    }
    let c = channel_of(i);
    let centred = x[i] - stats[c];
    dx[i] = (dstats[c] + 2.0 * dstats[p.channels + c] * centred) * p.inv_count;
}

@compute @workgroup_size(WG)
fn stats_backward4(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i >= p.total {
        return;
    }
    let c = channel_of(4u * i);
    let centred = x4[i] - vec4<f32>(stats[c]);
    dx4[i] = (vec4<f32>(dstats[c]) + 2.0 * dstats[p.channels + c] * centred) * p.inv_count;
}

@compute @workgroup_size(WG)
fn update_running(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let c = workgroup_index(wid, nwg) * WG + lid;
    if c >= p.channels {
        return;
    }
    let keep = 1.0 - p.momentum;
    running_mean[c] = keep * running_mean[c] + p.momentum * batch_stats[c];
    running_var[c] = keep * running_var[c]
        + p.momentum * batch_stats[p.channels + c] * p.unbiased;
}
