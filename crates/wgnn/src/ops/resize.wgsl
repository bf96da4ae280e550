// Resizing (nearest and linear interpolation) of row-major [N, C, D, H, W] tensors: 1, 2 or 3
// spatial axes, the missing outer ones of size 1 in and out. Interpolation is separable: along
// each axis, output index o reads input indices i0, i1 with weights w0, w1 (nearest: i0 = i1,
// w0 = 1, w1 = 0), so output element (nc, od, oh, ow) is
//   sum over the 2 x 2 x 2 taps of w_d * w_h * w_w * x[nc, i_d, i_h, i_w].
// The host computes these tables from the coordinate mode (ops/resize.rs) and binds them in
// `table` (u32; weights as f32 bits):
//   taps, per axis from taps_offset[a]: 4 words per output index: i0, i1, w0, w1;
//   ranges, per axis from ranges_offset[a]: 2 words per input index: the first output index
//     whose taps read it and one past the last (the outputs in between may not read it: their
//     weight for it is 0).
//   resize_forward:  one invocation per output element, the sum above, skipping taps of
//                    weight 0.
//   resize_backward: one invocation per input element: dx = sum over the outputs in its ranges
//                    of the weight with which each read it times dy: the adjoint as a gather, so
//                    no atomics and a deterministic order.
// 256 invocations per workgroup.

#include "gpu/workgroup_index.wgsl"

struct Params {
    count: u32,                 // elements written
    planes: u32,                // N * C
    pad0: u32,
    pad1: u32,
    in_dims: vec4<u32>,         // D, H, W of the input (and 1 unused)
    out_dims: vec4<u32>,        // D, H, W of the output
    taps_offset: vec4<u32>,     // where each axis's taps start in `table`
    ranges_offset: vec4<u32>,   // where each axis's ranges start in `table`
}

@group(0) @binding(0) var<uniform> p: Params;
// resize_forward: x at 1, y at 3; resize_backward: dy at 1, dx at 3.
@group(0) @binding(1) var<storage, read> values_in: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<u32>;
@group(0) @binding(3) var<storage, read_write> values_out: array<f32>;

const WG: u32 = 256u;

struct Taps {
    index: vec2<u32>,
    weight: vec2<f32>,
}

fn taps(axis: u32, o: u32) -> Taps {
    let at = p.taps_offset[axis] + 4u * o;
    return Taps(vec2(table[at], table[at + 1u]),
                vec2(bitcast<f32>(table[at + 2u]), bitcast<f32>(table[at + 3u])));
}

// The weight with which output index o reads input index i along `axis`.
fn weight(axis: u32, o: u32, i: u32) -> f32 {
    let t = taps(axis, o);
    return select(0.0, t.weight.x, t.index.x == i) + select(0.0, t.weight.y, t.index.y == i);
}

@compute @workgroup_size(WG)
fn resize_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i >= p.count {
        return;
    }
    let od = p.out_dims;
    let ow = i % od.z;
    let oh = (i / od.z) % od.y;
    let odd = (i / (od.z * od.y)) % od.x;
    let plane = i / (od.z * od.y * od.x);
    let td = taps(0u, odd);
    let th = taps(1u, oh);
    let tw = taps(2u, ow);
    let id = p.in_dims;
    var total = 0.0;
    for (var a = 0u; a < 2u; a++) {
        if td.weight[a] == 0.0 {
            continue;
        }
        for (var b = 0u; b < 2u; b++) {
            if th.weight[b] == 0.0 {
                continue;
            }
            let row = ((plane * id.x + td.index[a]) * id.y + th.index[b]) * id.z;
            let w = td.weight[a] * th.weight[b];
            for (var c = 0u; c < 2u; c++) {
                if tw.weight[c] != 0.0 {
                    total += w * tw.weight[c] * values_in[row + tw.index[c]];
                }
            }
        }
    }
    values_out[i] = total;
}

@compute @workgroup_size(WG)
fn resize_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let j = workgroup_index(wid, nwg) * WG + lid;
    if j >= p.count {
        return;
    }
    let id = p.in_dims;
    let iw = j % id.z;
    let ih = (j / id.z) % id.y;
    let idd = (j / (id.z * id.y)) % id.x;
    let plane = j / (id.z * id.y * id.x);
    let rd = p.ranges_offset.x + 2u * idd;
    let rh = p.ranges_offset.y + 2u * ih;
    let rw = p.ranges_offset.z + 2u * iw;
    let od = p.out_dims;
    var total = 0.0;
    for (var a = table[rd]; a < table[rd + 1u]; a++) {
        let wd = weight(0u, a, idd);
        if wd == 0.0 {
            continue;
        }
        for (var b = table[rh]; b < table[rh + 1u]; b++) {
            let wh = weight(1u, b, ih);
            if wh == 0.0 {
                continue;
            }
            let row = ((plane * od.x + a) * od.y + b) * od.z;
            for (var c = table[rw]; c < table[rw + 1u]; c++) {
                let ww = weight(2u, c, iw);
                if ww != 0.0 {
                    total += wd * wh * ww * values_in[row + c];
                }
            }
        }
    }
    values_out[j] = total;
}
