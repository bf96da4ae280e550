// Softmax and log-softmax along one axis, and their backward.
//
// Layout: the tensor is viewed as [outer, len, inner] (row-major) and normalised along `len`;
// a "row" is the `len` values of one (o, i), `inner` apart, starting at o * len * inner + i.
// Forward, with m the row's maximum and s = sum_l exp(x_l - m) (subtracting m keeps every
// exponential in (0, 1], so large logits cannot overflow):
//   softmax:      y_l = exp(x_l - m) / s
//   log-softmax:  y_l = x_l - m - log(s)
// Backward from the forward output y and the upstream dy:
//   softmax:      dx_l = y_l (dy_l - sum_k dy_k y_k)
//   log-softmax:  dx_l = dy_l - exp(y_l) sum_k dy_k
// Two designs, the same arithmetic:
//   *_rows:       one invocation per row, 256 per workgroup, passes over the row in order;
//                 neighbouring invocations read neighbouring `inner` elements. Short rows, and
//                 every row on CPU adapters.
//   *_workgroup:  one workgroup of 256 per row (rows >= 256 long on GPUs): invocation t takes
//                 elements t, t + 256, ... of the row, and a fixed binary tree in workgroup
//                 memory (1 KiB) combines the 256 partial maxima and sums.

#include "gpu/workgroup_index.wgsl"

struct Params {
    outer: u32,
    len: u32,
    inner: u32,
    rows: u32,     // outer * inner
    log: u32,      // 1: log-softmax
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// forward: x at 1, y at 2
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
// backward: y at 1, dy at 2, dx at 3
@group(0) @binding(1) var<storage, read> out: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

const WG: u32 = 256u;

var<workgroup> partial: array<f32, WG>;

fn row_start(r: u32) -> u32 {
    return (r / p.inner) * p.len * p.inner + r % p.inner;
}

// What the backward sums over a row: dy y (softmax) or dy (log-softmax).
fn backward_term(at: u32) -> f32 {
    return select(dy[at] * out[at], dy[at], p.log == 1u);
}

fn backward_value(at: u32, total: f32) -> f32 {
    if p.log == 1u {
        return dy[at] - exp(out[at]) * total;
    }
    return out[at] * (dy[at] - total);
}

@compute @workgroup_size(WG)
fn forward_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let r = workgroup_index(wid, nwg) * WG + lid;
    if r >= p.rows {
        return;
    }
    let start = row_start(r);
    let end = start + p.len * p.inner;
    var m = x[start];
    for (var at = start + p.inner; at < end; at += p.inner) {
        m = max(m, x[at]);
    }
    var s = 0.0;
    for (var at = start; at < end; at += p.inner) {
        s += exp(x[at] - m);
    }
    if p.log == 1u {
        // (x - m) first: x - (m + log s) would round log s to the precision of m.
        let log_s = log(s);
        for (var at = start; at < end; at += p.inner) {
            y[at] = (x[at] - m) - log_s;
        }
    } else {
        let inv = 1.0 / s;
        for (var at = start; at < end; at += p.inner) {
            y[at] = exp(x[at] - m) * inv;
        }
    }
}

@compute @workgroup_size(WG)
fn backward_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let r = workgroup_index(wid, nwg) * WG + lid;
    if r >= p.rows {
        return;
    }
    let start = row_start(r);
    let end = start + p.len * p.inner;
    var total = 0.0;
    for (var at = start; at < end; at += p.inner) {
        total += backward_term(at);
    }
    for (var at = start; at < end; at += p.inner) {
        dx[at] = backward_value(at, total);
    }
}

// The maximum of the 256 values in `partial`, read by every invocation. Called by the whole
// workgroup (uniform control flow).
fn workgroup_max(lid: u32, value: f32) -> f32 {
    partial[lid] = value;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half /= 2u) {
        if lid < half {
            partial[lid] = max(partial[lid], partial[lid + half]);
        }
        workgroupBarrier();
    }
    let result = partial[0];
    workgroupBarrier();
    return result;
}

// The sum of the 256 values, in a fixed order; as `workgroup_max`.
fn workgroup_sum(lid: u32, value: f32) -> f32 {
    partial[lid] = value;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half /= 2u) {
        if lid < half {
            partial[lid] += partial[lid + half];
        }
        workgroupBarrier();
    }
    let result = partial[0];
    workgroupBarrier();
    return result;
}

@compute @workgroup_size(WG)
fn forward_workgroup(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let r = workgroup_index(wid, nwg);
    if r >= p.rows {
        return;
    }
    let start = row_start(r);
    let end = start + p.len * p.inner;
    let step = WG * p.inner;
    var m = x[start];
    for (var at = start + lid * p.inner; at < end; at += step) {
        m = max(m, x[at]);
    }
    m = workgroup_max(lid, m);
    var s = 0.0;
    for (var at = start + lid * p.inner; at < end; at += step) {
        s += exp(x[at] - m);
    }
    s = workgroup_sum(lid, s);
    if p.log == 1u {
        let log_s = log(s);
        for (var at = start + lid * p.inner; at < end; at += step) {
            y[at] = (x[at] - m) - log_s;
        }
    } else {
        let inv = 1.0 / s;
        for (var at = start + lid * p.inner; at < end; at += step) {
            y[at] = exp(x[at] - m) * inv;
        }
    }
}

@compute @workgroup_size(WG)
fn backward_workgroup(@builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let r = workgroup_index(wid, nwg);
    if r >= p.rows {
        return;
    }
    let start = row_start(r);
    let end = start + p.len * p.inner;
    let step = WG * p.inner;
    var total = 0.0;
    for (var at = start + lid * p.inner; at < end; at += step) {
        total += backward_term(at);
    }
    total = workgroup_sum(lid, total);
    for (var at = start + lid * p.inner; at < end; at += step) {
        dx[at] = backward_value(at, total);
    }
}
