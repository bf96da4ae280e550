// Sums and means over one axis (or the whole tensor), and their backward (a broadcast).
//
// Layout: the input is viewed as [outer, len, inner] (row-major), reduced over `len`: the
// whole tensor is [1, numel, 1]; axis k of dims d is [d0..d(k-1), dk, d(k+1)..]. Outputs are
// [outer, inner] (for partial sums [outer, chunks, inner]). Every sum runs in a fixed order, so
// the same inputs give bit-identical results; no atomics.
//   sum_sequential: one invocation per output (o, i) adds the `len` values in order. For many
//                   outputs or short sums; neighbouring invocations read neighbouring `inner`.
//   sum_chunks:     one workgroup per (o, chunk, i) adds up to CHUNK = 256 * 8 consecutive
//                   values of the reduced axis: invocation t adds elements t, t + 256, ... of
//                   the chunk in order, then a fixed binary tree in workgroup memory combines
//                   the 256 partial sums. Partials go to a scratch buffer [outer, chunks, inner]
//                   that the next pass reduces again, until one chunk is left.
//   broadcast:      dx[o, l, i] = scale * dy[o, i], one invocation per element of dx.
// Results are multiplied by `scale` (1 for sums, 1 / len for means, applied on the last pass).

#include "gpu/workgroup_index.wgsl"

struct Params {
    outer: u32,
    len: u32,
    inner: u32,
    chunks: u32,   // sum_chunks: chunks along the reduced axis (outputs per (o, i))
    scale: f32,
    count: u32,    // invocations (sum_sequential, broadcast) or workgroups (sum_chunks) needed
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// sums: x at 1, y at 2
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
// broadcast: dy at 1, dx at 2
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

const WG: u32 = 256u;
const ITEMS: u32 = 8u;             // values each invocation adds per chunk
const CHUNK: u32 = WG * ITEMS;     // values of the reduced axis per workgroup

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn sum_sequential(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let j = workgroup_index(wid, nwg) * WG + lid;
    if j >= p.count {
        return;
    }
    let o = j / p.inner;
    let i = j % p.inner;
    var index = o * p.len * p.inner + i;
    var total = 0.0;
    for (var l = 0u; l < p.len; l++) {
        total += x[index];
        index += p.inner;
    }
    y[j] = total * p.scale;
}

@compute @workgroup_size(WG)
fn sum_chunks(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let w = workgroup_index(wid, nwg);
    if w >= p.count {
        return;
    }
    let i = w % p.inner;
    let c = (w / p.inner) % p.chunks;
    let o = w / (p.inner * p.chunks);
    let start = c * CHUNK;
    let end = min(start + CHUNK, p.len);
    var total = 0.0;
    for (var l = start + lid; l < end; l += WG) {
        total += x[(o * p.len + l) * p.inner + i];
    }
    partial[lid] = total;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half /= 2u) {
        if lid < half {
            partial[lid] += partial[lid + half];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        y[(o * p.chunks + c) * p.inner + i] = partial[0] * p.scale;
    }
}

@compute @workgroup_size(WG)
fn broadcast(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let j = workgroup_index(wid, nwg) * WG + lid;
    if j >= p.count {
        return;
    }
    let i = j % p.inner;
    let o = j / (p.len * p.inner);
    dx[j] = dy[o * p.inner + i] * p.scale;
}
