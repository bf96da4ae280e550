// Pooling over NCW / NCDHW / NCDHW tensors, row-major. Every kernel sees three spatial dims
// (D, H, W): 1-D and 2-D pooling pad the missing leading dims with size 1, kernel 1, stride 1,
// padding 0. `planes` = N * C; planes are independent.
//
// Windows (PyTorch semantics): output position o along one dim covers input positions
// [o * stride - pad, o * stride - pad + kernel); elements outside [0, in) are padding. The host
// sizes the output so that every window starts inside the input or the left padding (ceil mode
// drops a last window that would start in the right padding), and pad <= kernel / 2, so every
// window holds at least one real element.
//
//   max_forward:  y[o] = max of the real elements of window o (padding acts as -inf).
//   avg_forward:  y[o] = (sum of the real elements of window o) / divisor(o), where divisor(o) is
//                 the product over dims of min(start + kernel, in + pad) - start, start =
//                 o * stride - pad: the window clipped to the PADDED input. Padding elements
//                 count (PyTorch's count_include_pad=True), but the part of a ceil-mode window
//                 that hangs past the right padding does not.
//   max_backward: dx[i] = sum of dy[o] over the windows o containing i whose FIRST maximal
//                 element (first in row-major D, H, W order within the window) is i. A gather:
//                 each invocation owns one input element and recomputes the max of every
//                 window that contains it, so there are no atomics and no stored argmax; a tie
//                 sends the whole gradient to the first maximal element, as PyTorch does.
//   avg_backward: dx[i] = sum over the windows o containing i of dy[o] / divisor(o).
//   global_avg_forward:  y[r] = mean of row r ([N*C rows, spatial columns]); one workgroup of
//                 64 per row: each invocation sums a strided slice sequentially, then a fixed
//                 tree over workgroup memory, so the result is deterministic.
//   global_avg_backward: dx[i] = dy[i / spatial] / spatial.
// One invocation per output element (forward) or input element (backward), 256 per workgroup;
// windows are small, so plain loops over global memory (no tiling) suffice: pooling is
// memory-bound and each input element is read by about (kernel / stride)^dims invocations.

struct Params {
    count: u32,          // invocations that do work: elements, or rows for global_avg_forward
    planes: u32,         // N * C
    spatial: u32,        // global pooling: spatial elements per row
    scale: f32,          // global pooling: 1 / spatial
    in_size: vec4<u32>,  // D, H, W of the input (.w unused)
    out_size: vec4<u32>, // D, H, W of the output
    kernel: vec4<u32>,
    stride: vec4<u32>,
    pad: vec4<u32>,
}

@group(0) @binding(0) var<uniform> p: Params;
// forward and global pooling: x at 1, y at 2
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
// max_backward: x at 1, dy at 2, dx at 3
@group(0) @binding(2) var<storage, read> dy_after_x: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx_after_dy: array<f32>;
// avg_backward, global_avg_backward: dy at 1, dx at 2
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

const WG: u32 = 256u;
const ROW_WG: u32 = 64u;
const NONE: u32 = 0xffffffffu;

// (d, h, w, plane) of a flat index into a tensor of `size` per plane.
fn unflatten(i: u32, size: vec4<u32>) -> vec4<u32> {
    let w = i % size.z;
    let h = (i / size.z) % size.y;
    let d = (i / (size.z * size.y)) % size.x;
    let plane = i / (size.z * size.y * size.x);
    return vec4<u32>(d, h, w, plane);
}

// First input position (may be negative: padding) of the window at output position o.
fn window_start(o: vec4<u32>) -> vec3<i32> {
    return vec3<i32>(o.xyz * p.stride.xyz) - vec3<i32>(p.pad.xyz);
}

// The real (non-padding) input positions of the window starting at `start`: [lo, hi).
fn window_lo(start: vec3<i32>) -> vec3<u32> {
    return vec3<u32>(max(start, vec3<i32>(0)));
}

fn window_hi(start: vec3<i32>) -> vec3<u32> {
    return vec3<u32>(min(start + vec3<i32>(p.kernel.xyz), vec3<i32>(p.in_size.xyz)));
}

fn avg_divisor(start: vec3<i32>) -> f32 {
    let padded_end = vec3<i32>(p.in_size.xyz) + vec3<i32>(p.pad.xyz);
    let extent = min(start + vec3<i32>(p.kernel.xyz), padded_end) - start;
    return f32(extent.x * extent.y * extent.z);
}

fn input_index(plane: u32, d: u32, h: u32, w: u32) -> u32 {
    return ((plane * p.in_size.x + d) * p.in_size.y + h) * p.in_size.z + w;
}

// Flat input index of the first maximal element of the window at output position o.
fn window_argmax(o: vec4<u32>) -> u32 {
    let start = window_start(o);
    let lo = window_lo(start);
    let hi = window_hi(start);
    var best = 0.0;
    var arg = NONE;
    for (var d = lo.x; d < hi.x; d++) {
        for (var h = lo.y; h < hi.y; h++) {
            for (var w = lo.z; w < hi.z; w++) {
                let i = input_index(o.w, d, h, w);
                let v = x[i];
                if arg == NONE || v > best {
                    best = v;
                    arg = i;
                }
            }
        }
    }
    return arg;
}

@compute @workgroup_size(WG)
fn max_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i >= p.count {
        return;
    }
    let o = unflatten(i, p.out_size);
    let start = window_start(o);
    let lo = window_lo(start);
    let hi = window_hi(start);
    // Every window holds a real element (see the top), so its first one seeds the max.
    var best = x[input_index(o.w, lo.x, lo.y, lo.z)];
    for (var d = lo.x; d < hi.x; d++) {
        for (var h = lo.y; h < hi.y; h++) {
            let row = input_index(o.w, d, h, 0u);
            for (var w = lo.z; w < hi.z; w++) {
                best = max(best, x[row + w]);
            }
        }
    }
    y[i] = best;
}

@compute @workgroup_size(WG)
fn avg_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i >= p.count {
        return;
    }
    let o = unflatten(i, p.out_size);
    let start = window_start(o);
    let lo = window_lo(start);
    let hi = window_hi(start);
    var total = 0.0;
    for (var d = lo.x; d < hi.x; d++) {
        for (var h = lo.y; h < hi.y; h++) {
            let row = input_index(o.w, d, h, 0u);
            for (var w = lo.z; w < hi.z; w++) {
                total += x[row + w];
            }
        }
    }
    y[i] = total / avg_divisor(start);
}

// Output positions [first, last] along each dim whose windows contain input position `at`
// (empty when first > last).
fn windows_first(at: vec3<u32>) -> vec3<u32> {
    // o * stride - pad + kernel > at  <=>  o > (at + pad - kernel) / stride
    let reach = vec3<i32>(at + p.pad.xyz) - vec3<i32>(p.kernel.xyz) + vec3<i32>(1);
    let first = (max(reach, vec3<i32>(0)) + vec3<i32>(p.stride.xyz) - vec3<i32>(1))
        / vec3<i32>(p.stride.xyz);
    return vec3<u32>(first);
}

fn windows_end(at: vec3<u32>) -> vec3<u32> {
    // o * stride - pad <= at  <=>  o <= (at + pad) / stride; exclusive end, clipped to the output
    return min((at + p.pad.xyz) / p.stride.xyz + vec3<u32>(1u), p.out_size.xyz);
}

fn output_index(plane: u32, d: u32, h: u32, w: u32) -> u32 {
    return ((plane * p.out_size.x + d) * p.out_size.y + h) * p.out_size.z + w;
}

@compute @workgroup_size(WG)
fn max_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i >= p.count {
        return;
    }
    let at = unflatten(i, p.in_size);
    let first = windows_first(at.xyz);
    let end = windows_end(at.xyz);
    var total = 0.0;
    for (var d = first.x; d < end.x; d++) {
        for (var h = first.y; h < end.y; h++) {
            for (var w = first.z; w < end.z; w++) {
                if window_argmax(vec4<u32>(d, h, w, at.w)) == i {
                    total += dy_after_x[output_index(at.w, d, h, w)];
                }
            }
        }
    }
    dx_after_dy[i] = total;
}

@compute @workgroup_size(WG)
fn avg_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i >= p.count {
        return;
    }
    let at = unflatten(i, p.in_size);
    let first = windows_first(at.xyz);
    let end = windows_end(at.xyz);
    var total = 0.0;
    for (var d = first.x; d < end.x; d++) {
        for (var h = first.y; h < end.y; h++) {
            for (var w = first.z; w < end.z; w++) {
                let start = window_start(vec4<u32>(d, h, w, 0u));
                total += dy[output_index(at.w, d, h, w)] / avg_divisor(start);
            }
        }
    }
    dx[i] = total;
}

var<workgroup> partial: array<f32, ROW_WG>;

@compute @workgroup_size(ROW_WG)
fn global_avg_forward(@builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let row = workgroup_index(wid, nwg);
    if row >= p.count {
        return;
    }
    let base = row * p.spatial;
    var total = 0.0;
    for (var s = lid; s < p.spatial; s += ROW_WG) {
        total += x[base + s];
    }
    partial[lid] = total;
    workgroupBarrier();
    for (var half = ROW_WG / 2u; half > 0u; half /= 2u) {
        if lid < half {
            partial[lid] += partial[lid + half];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        y[row] = partial[0] * p.scale;
    }
}

@compute @workgroup_size(WG)
fn global_avg_backward(@builtin(workgroup_id) wid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i >= p.count {
        return;
    }
    dx[i] = dy[i / p.spatial] * p.scale;
}
