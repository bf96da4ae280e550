// Elementwise ops on row-major tensors of rank <= 6 (shapes padded on the left with 1s to 8
// slots in the uniform; slot k holds dimension k counted from the left).
//   fill:         y[i] = alpha
//   scale:        y[i] = alpha * a[i]
//   binary:       y[i] = a[ia] (op) b[ib], op 0 add, 1 sub, 2 mul; numpy-style broadcasting:
//                 ia/ib use stride 0 on the dimensions where the operand has size 1
//   binary_same_shape: y[i] = a[i] (op) b[i], the same without broadcasting (both operands of
//                 the output's shape, as in gradient sums): no index arithmetic, which costs
//                 binary a private array and a division per dimension (9x slower on lavapipe)
//   channel_affine: y[n, c, s] = scale[c] * a[n, perm[c], s] + offset[c] for C <= 4 channels (model
//                 preprocessing such as RGB [0,1] -> BGR 0..255 minus mean); `alpha` unused
//   clamp_range:  x[i] = clamp(x[i], lo, hi) in place (projects an image back into [0, 1])
//   sum_to_shape: y[j] = sum of a over every element that broadcasts to j (the backward of a
//                 broadcast); `kept[k]` is 1 where the output keeps dimension k. One invocation
//                 per output element summing sequentially, so the result is deterministic.
// One invocation per output element, 256 per workgroup.

#include "gpu/workgroup_index.wgsl"

struct Params {
    n: u32,        // output elements
    rank: u32,     // dimensions used (slots 0..rank)
    pad: u32,      // unused: the vec4 arrays below start at 16 bytes either way
    alpha: f32,
    dims: array<vec4<u32>, 2>,       // output dims (sum_to_shape: input dims)
    a_strides: array<vec4<u32>, 2>,  // binary: a's strides in the output's index space (0 = broadcast)
    b_strides: array<vec4<u32>, 2>,  // binary: b's strides; sum_to_shape: 1 where the output keeps the dim
    reduce_count: u32,               // sum_to_shape: input elements per output element
    inner: u32,                      // channel_affine: elements per channel (spatial size)
    lo: f32,                         // clamp bounds
    hi: f32,
    affine_perm: vec4<u32>,          // channel_affine: source channel of each output channel
    affine_scale: vec4<f32>,
    affine_offset: vec4<f32>,
}

@group(0) @binding(0) var<uniform> p: Params;

// binary's op as a pipeline constant (0 add, 1 sub, 2 mul): lavapipe cannot tell that a
// uniform is the same in every lane and would run every case of a switch on it.
override OP: u32 = 0u;

fn apply_op(va: f32, vb: f32) -> f32 {
    switch OP {
        case 0u: { return va + vb; }
        case 1u: { return va - vb; }
        default: { return va * vb; }
    }
}

fn apply_op4(va: vec4<f32>, vb: vec4<f32>) -> vec4<f32> {
    switch OP {
        case 0u: { return va + vb; }
        case 1u: { return va - vb; }
        default: { return va * vb; }
    }
}
// fill: y at 1
@group(0) @binding(1) var<storage, read_write> filled: array<f32>;
// scale, sum_to_shape: a at 1, y at 2
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
// clamp: x at 1 (in place)
@group(0) @binding(1) var<storage, read_write> clamped: array<f32>;
// binary: a at 1, b at 2, out at 3
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const WG: u32 = 256u;

fn slot(v: array<vec4<u32>, 2>, k: u32) -> u32 {
    return v[k / 4u][k % 4u];
}

@compute @workgroup_size(WG)
fn fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i < p.n {
        filled[i] = p.alpha;
    }
}

@compute @workgroup_size(WG)
fn scale(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i < p.n {
        y[i] = p.alpha * a[i];
    }
}

@compute @workgroup_size(WG)
fn binary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i >= p.n {
        return;
    }
    let dims = p.dims;
    let sa = p.a_strides;
    let sb = p.b_strides;
    var rem = i;
    var ia = 0u;
    var ib = 0u;
    for (var k = i32(p.rank) - 1; k >= 0; k--) {
        let d = slot(dims, u32(k));
        let c = rem % d;
        rem = rem / d;
        ia += c * slot(sa, u32(k));
        ib += c * slot(sb, u32(k));
    }
    out[i] = apply_op(a[ia], b[ib]);
}

@compute @workgroup_size(WG)
fn binary_same_shape(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i >= p.n {
        return;
    }
    out[i] = apply_op(a[i], b[i]);
}

// binary_same_shape for operands of a multiple of 4 elements, as vec4s: lavapipe turns each
// load or store into a loop over the SIMD lanes, and one loop moving 4 components costs far less
// than 4 loops (gradient sums ran 2x faster). p.n counts vec4s here.
@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out4: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn binary_same_shape4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i >= p.n {
        return;
    }
    out4[i] = apply_op4(a4[i], b4[i]);
}

@compute @workgroup_size(WG)
fn sum_to_shape(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let j = workgroup_index(wid, nwg) * WG + lid;
    if j >= p.n {
        return;
    }
    let dims = p.dims;
    let kept = p.b_strides;
    var total = 0.0;
    for (var t = 0u; t < p.reduce_count; t++) {
        var rem_j = j;
        var rem_t = t;
        var index = 0u;
        var stride = 1u;
        for (var k = i32(p.rank) - 1; k >= 0; k--) {
            let d = slot(dims, u32(k));
            var c: u32;
            if slot(kept, u32(k)) == 1u {
                c = rem_j % d;
                rem_j = rem_j / d;
            } else {
                c = rem_t % d;
                rem_t = rem_t / d;
            }
            index += c * stride;
            stride *= d;
        }
        total += a[index];
    }
    y[j] = total;
}

@compute @workgroup_size(WG)
fn channel_affine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i >= p.n {
        return;
    }
    let channels = p.rank;  // reused: number of channels
    let s = i % p.inner;
    let c = (i / p.inner) % channels;
    let n = i / (p.inner * channels);
    let source = (n * channels + p.affine_perm[c]) * p.inner + s;
    y[i] = p.affine_scale[c] * a[source] + p.affine_offset[c];
}

@compute @workgroup_size(WG)
fn clamp_range(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i < p.n {
        clamped[i] = clamp(clamped[i], p.lo, p.hi);
    }
}
