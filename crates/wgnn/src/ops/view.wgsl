// Copies of strided views of a row-major tensor (rank <= 6; dims in slots 0..rank of the uniform,
// outermost first).
//   gather_strided: y[i] = x[offset + sum_k idx_k(i) * strides[k]], where idx(i) is the multi-index
//                   of output element i in `dims`. A transpose is strides = the input's strides
//                   permuted; a slice is offset = the first element, strides[k] = step_k times
//                   the input's stride (negative for a reversed axis).
//   slice_backward: dx[j] = dy[the slice element at j] where input element j lies on the slice
//                   (coordinate c_k = starts[k] + t * steps[k] with 0 <= t < out_dims[k] on every
//                   axis), else 0: the adjoint of a slice written as a gather over the input, so
//                   every element is written once, without atomics or a separate fill.
// One invocation per element written, 256 per workgroup.

#include "gpu/workgroup_index.wgsl"

struct Params {
    count: u32,                     // elements written
    rank: u32,
    offset: u32,                    // gather_strided: input element of the multi-index 0
    pad: u32,
    dims: array<vec4<u32>, 2>,      // gather_strided: output dims; slice_backward: input dims
    strides: array<vec4<i32>, 2>,   // gather_strided: input elements per step of each output index
    starts: array<vec4<i32>, 2>,    // slice_backward: first input coordinate of the slice per axis
    steps: array<vec4<i32>, 2>,     // slice_backward: step per axis (negative: reversed)
    out_dims: array<vec4<u32>, 2>,  // slice_backward: the slice's dims
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

const WG: u32 = 256u;

fn slot_u(v: array<vec4<u32>, 2>, k: u32) -> u32 {
    return v[k / 4u][k % 4u];
}

fn slot_i(v: array<vec4<i32>, 2>, k: u32) -> i32 {
    return v[k / 4u][k % 4u];
}

@compute @workgroup_size(WG)
fn gather_strided(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i >= p.count {
        return;
    }
    let dims = p.dims;
    let strides = p.strides;
    var rem = i;
    var src = i32(p.offset);
    for (var k = i32(p.rank) - 1; k >= 0; k--) {
        let d = slot_u(dims, u32(k));
        src += i32(rem % d) * slot_i(strides, u32(k));
        rem = rem / d;
    }
    y[i] = x[u32(src)];
}

// Input element j (of `dims`) reads dy (bound as x) at the slice element it became, if any.
@compute @workgroup_size(WG)
fn slice_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let j = workgroup_index(wid, nwg) * WG + lid;
    if j >= p.count {
        return;
    }
    let dims = p.dims;
    let out_dims = p.out_dims;
    let starts = p.starts;
    let steps = p.steps;
    var rem = j;
    var src = 0u;
    var stride = 1u;
    var on_slice = true;
    for (var k = i32(p.rank) - 1; k >= 0; k--) {
        let d = slot_u(dims, u32(k));
        let c = i32(rem % d);
        rem = rem / d;
        let step = slot_i(steps, u32(k));
        let from_start = c - slot_i(starts, u32(k));
        let t = from_start / step;
        let len = slot_u(out_dims, u32(k));
        on_slice = on_slice && t * step == from_start && t >= 0 && u32(t) < len;
        src += u32(max(t, 0)) * stride;
        stride *= len;
    }
    var v = 0.0;
    if on_slice {
        v = x[src];
    }
    y[j] = v;
}
