// Concatenation along an axis and its backward, on row-major tensors seen as [outer, C, inner]
// (C: the axis, named channels below; outer, inner: the products of the dims before and after it).
//   concat_copy:    wide[n, offset + c, s] = narrow[n, c, s]: copies one input of a
//                   concatenation into its range of the output. A concatenation of K tensors is
//                   K dispatches; their ranges are disjoint and cover the output.
//   slice_channels: narrow[n, c, s] = wide[n, offset + c, s]: the backward of concatenation,
//                   and any slice of one axis with step 1.
// One invocation per element of the narrow tensor, 256 per workgroup; a pure copy.
//   concat_copy4, slice_channels4: the same for 4 elements per invocation where an outer item's
//                   narrow range, its offset and the wide item are whole vec4s: lavapipe turns
//                   each load or store into a loop over the SIMD lanes, and one loop moving 4
//                   components costs far less than 4 (and an outer item's narrow range is
//                   contiguous in the wide tensor: one division instead of three).

#include "gpu/workgroup_index.wgsl"

struct Params {
    count: u32,           // elements of the narrow tensor
    narrow_channels: u32,
    wide_channels: u32,
    offset: u32,          // first channel of the narrow tensor inside the wide one
    inner: u32,           // elements per channel
    block4: u32,          // the *4 kernels: vec4s of one batch item's narrow tensor
    wide_block4: u32,     //                 vec4s of one batch item's wide tensor
    start4: u32,          //                 vec4s before the narrow range in a wide item
}

@group(0) @binding(0) var<uniform> p: Params;
// concat_copy: narrow at 1, wide at 2
@group(0) @binding(1) var<storage, read> narrow_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> wide_out: array<f32>;
// slice_channels: wide at 1, narrow at 2
@group(0) @binding(1) var<storage, read> wide_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> narrow_out: array<f32>;

const WG: u32 = 256u;

// Index into the wide tensor of narrow element i.
fn wide_index(i: u32) -> u32 {
    let s = i % p.inner;
    let c = (i / p.inner) % p.narrow_channels;
    let n = i / (p.inner * p.narrow_channels);
    return (n * p.wide_channels + p.offset + c) * p.inner + s;
}

@compute @workgroup_size(WG)
fn concat_copy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i < p.count {
        wide_out[wide_index(i)] = narrow_in[i];
    }
}

@compute @workgroup_size(WG)
fn slice_channels(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i < p.count {
        narrow_out[i] = wide_in[wide_index(i)];
    }
}

@group(0) @binding(1) var<storage, read> narrow_in4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> wide_out4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> wide_in4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> narrow_out4: array<vec4<f32>>;

// Index into the wide tensor (in vec4s) of narrow vec4 i.
fn wide_index4(i: u32) -> u32 {
    let n = i / p.block4;
    return n * p.wide_block4 + p.start4 + (i - n * p.block4);
}

@compute @workgroup_size(WG)
fn concat_copy4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i < p.count {
        wide_out4[wide_index4(i)] = narrow_in4[i];
    }
}

@compute @workgroup_size(WG)
fn slice_channels4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i < p.count {
        narrow_out4[i] = wide_in4[wide_index4(i)];
    }
}
