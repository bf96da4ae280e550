// Max-unpooling (pool/indices.rs): values and u32 indices of the same shape [N, C, pooled...]
// (in_plane elements per (n, c) plane), an output [N, C, unpooled...] (out_plane per plane,
// out_count in all). An index names a position within its plane (whole_tensor = 0) or within the
// whole output (whole_tensor = 1); one outside the output is skipped. One invocation per element.
//
//   unpool_zero:    y[i] = 0 (count = out_count).
//   unpool_scatter: y[position(i)] = values[i] (count = values); values naming the same
//                   position race, and one of them lands.
//   unpool_gather:  dvalues[i] = dy[position(i)], 0 when the index is outside dy (the backward).

#include "gpu/workgroup_index.wgsl"

struct Params {
    count: u32,
    in_plane: u32,
    out_plane: u32,
    out_count: u32,
    whole_tensor: u32,
    unused0: u32,
    unused1: u32,
    unused2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// unpool_zero, unpool_scatter: values at 1, indices at 2, y at 3
@group(0) @binding(1) var<storage, read> values: array<f32>;
@group(0) @binding(2) var<storage, read> indices: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
// unpool_gather: dy at 1, indices at 2, dvalues at 3
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dvalues: array<f32>;

const WG: u32 = 256u;

// The output position of element i, or out_count when its index lies outside the output.
fn position(i: u32) -> u32 {
    let index = indices[i];
    if p.whole_tensor == 1u {
        return select(p.out_count, index, index < p.out_count);
    }
    return select(p.out_count, (i / p.in_plane) * p.out_plane + index, index < p.out_plane);
}

@compute @workgroup_size(WG)
fn unpool_zero(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i < p.count {
        y[i] = 0.0;
    }
}

@compute @workgroup_size(WG)
fn unpool_scatter(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i >= p.count {
        return;
    }
    let at = position(i);
    if at < p.out_count {
        y[at] = values[i];
    }
}

@compute @workgroup_size(WG)
fn unpool_gather(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i >= p.count {
        return;
    }
    let at = position(i);
    dvalues[i] = select(0.0, dy[min(at, p.out_count - 1u)], at < p.out_count);
}
