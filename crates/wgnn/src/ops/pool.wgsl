// Pooling over NCW / NCHW / NCDHW tensors, row-major. Every kernel sees three spatial dims
// (D, H, W): 1-D and 2-D pooling pad the missing leading dims with size 1, kernel 1, stride 1,
// padding 0. Planes (N * C of them) are independent.
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
//   max_backward: dx[i] = sum of dy[o] over the windows o whose FIRST maximal element (first in
//                 row-major D, H, W order within the window) is i; a tie sends the whole
//                 gradient to the first maximal element, as PyTorch's CPU kernel does. A scatter
//                 without atomics: max_zero clears dx, then max_scatter runs once per class of
//                 windows that share no element (per dim, windows whose index differs by a
//                 multiple of ceil(kernel / stride): 4 classes for 3 x 3 windows at stride 2), one
//                 invocation per window: it finds the window's argmax and adds dy there. Each
//                 element gets at most one add per class, classes run in a fixed order:
//                 deterministic. (Earlier: a gather per input chunk that recomputed each window's
//                 max, then one that read a stored argmax; this is 1.7x faster than the latter
//                 on SqueezeNet's pooling, which has few windows per input element.)
//   avg_backward: dx[i] = sum over the windows o containing i of dy[o] / divisor(o).
//   global_avg_forward:  y[r] = mean of row r ([N*C rows, spatial columns]); one workgroup of
//                 64 per row: each invocation sums a strided slice sequentially, then a fixed
//                 tree over workgroup memory, so the result is deterministic.
//   global_avg_backward: dx[i] = dy[i / spatial] / spatial.
//
// The windowed kernels give each invocation a chunk of CHUNK consecutive positions along W of one
// row (plane, d, h) of the output (forward) or input (backward), 256 invocations per workgroup.
// Integer division is the expensive part of the index arithmetic (lavapipe has no vector
// division), so it is done once per chunk; along W the window ranges follow by multiplication.
// The backward kernels visit each window overlapping their chunk once (a max window's argmax is
// recomputed once per chunk, not once per element) and accumulate into per-chunk registers in a
// fixed window order, so dx is deterministic. Windows are small, so plain loops over global
// memory (no tiling) suffice: pooling is memory-bound. CHUNK = 8 measured best on lavapipe
// (4 gave more division work, 16 too few invocations for small maps).

#include "gpu/workgroup_index.wgsl"

struct Params {
    count: u32,          // invocations that do work: chunks, elements, or rows (global forward)
    chunks: u32,         // windowed kernels: chunks per row, ceil(W / CHUNK)
    spatial: u32,        // global pooling: spatial elements per row
    scale: f32,          // global pooling: 1 / spatial
    in_size: vec4<u32>,  // D, H, W of the input (.w unused)
    out_size: vec4<u32>, // D, H, W of the output
    kernel: vec4<u32>,
    stride: vec4<u32>,
    pad: vec4<u32>,
    phase: vec4<u32>,    // max_scatter: the class of windows, D, H, W (first window per dim)
}

@group(0) @binding(0) var<uniform> p: Params;
// forward and global pooling: x at 1, y at 2
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
// max_zero, max_scatter: x at 1, dy at 2, dx at 3
@group(0) @binding(2) var<storage, read> dy_after_x: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx_after_dy: array<f32>;
// avg_backward, global_avg_backward: dy at 1, dx at 2
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

const WG: u32 = 256u;
const ROW_WG: u32 = 64u;
const CHUNK: u32 = 8u;

// (a / b, a % b) with one division.
fn divmod(a: u32, b: u32) -> vec2<u32> {
    let q = a / b;
    return vec2<u32>(q, a - q * b);
}

// (plane, d, h, first w) of chunk t of a tensor whose spatial size is `size`.
fn chunk_origin(t: u32, size: vec4<u32>) -> vec4<u32> {
    let row_chunk = divmod(t, p.chunks);
    let rest_h = divmod(row_chunk.x, size.y);
    let plane_d = divmod(rest_h.x, size.x);
    return vec4<u32>(plane_d.x, plane_d.y, rest_h.y, row_chunk.y * CHUNK);
}

fn input_index(plane: u32, d: u32, h: u32, w: u32) -> u32 {
    return ((plane * p.in_size.x + d) * p.in_size.y + h) * p.in_size.z + w;
}

fn output_index(plane: u32, d: u32, h: u32, w: u32) -> u32 {
    return ((plane * p.out_size.x + d) * p.out_size.y + h) * p.out_size.z + w;
}

// The real (non-padding) input positions [lo, hi) of the window at output position o along
// dim k (0 D, 1 H, 2 W).
fn window_range(o: u32, k: u32) -> vec2<u32> {
    let start = i32(o * p.stride[k]) - i32(p.pad[k]);
    let end = min(start + i32(p.kernel[k]), i32(p.in_size[k]));
    return vec2<u32>(u32(max(start, 0)), u32(end));
}

// The average-pooling divisor's factor along dim k: the window clipped to the padded input.
fn window_extent(o: u32, k: u32) -> f32 {
    let start = i32(o * p.stride[k]) - i32(p.pad[k]);
    let end = min(start + i32(p.kernel[k]), i32(p.in_size[k] + p.pad[k]));
    return f32(end - start);
}

// Output positions [first, end) along dim k whose windows contain input position `at`:
// o * stride - pad <= at < o * stride - pad + kernel.
fn windows_containing(at: u32, k: u32) -> vec2<u32> {
    let s = p.stride[k];
    let end = min((at + p.pad[k]) / s + 1u, p.out_size[k]);
    let reach = i32(at + p.pad[k]) - i32(p.kernel[k]) + 1;
    let first = (u32(max(reach, 0)) + s - 1u) / s;
    return vec2<u32>(first, end);
}

// Flat input index of the first maximal element of window (od, oh, ow) of `plane`.
fn window_argmax(plane: u32, od: u32, oh: u32, ow: u32) -> u32 {
    let rd = window_range(od, 0u);
    let rh = window_range(oh, 1u);
    let rw = window_range(ow, 2u);
    var arg = input_index(plane, rd.x, rh.x, rw.x);
    var best = x[arg];
    for (var d = rd.x; d < rd.y; d++) {
        for (var h = rh.x; h < rh.y; h++) {
            let row = input_index(plane, d, h, 0u);
            for (var w = rw.x; w < rw.y; w++) {
                let v = x[row + w];
                if v > best {
                    best = v;
                    arg = row + w;
                }
            }
        }
    }
    return arg;
}

@compute @workgroup_size(WG)
fn max_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let t = workgroup_index(wid, nwg) * WG + lid;
    if t >= p.count {
        return;
    }
    let o = chunk_origin(t, p.out_size);
    let rd = window_range(o.y, 0u);
    let rh = window_range(o.z, 1u);
    let out_row = output_index(o.x, o.y, o.z, 0u);
    let ow_end = min(o.w + CHUNK, p.out_size.z);
    for (var ow = o.w; ow < ow_end; ow++) {
        let rw = window_range(ow, 2u);
        // Every window holds a real element (see the top), so its first one seeds the max.
        var best = x[input_index(o.x, rd.x, rh.x, rw.x)];
        for (var d = rd.x; d < rd.y; d++) {
            for (var h = rh.x; h < rh.y; h++) {
                let row = input_index(o.x, d, h, 0u);
                for (var w = rw.x; w < rw.y; w++) {
                    best = max(best, x[row + w]);
                }
            }
        }
        y[out_row + ow] = best;
    }
}

@compute @workgroup_size(WG)
fn avg_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let t = workgroup_index(wid, nwg) * WG + lid;
    if t >= p.count {
        return;
    }
    let o = chunk_origin(t, p.out_size);
    let rd = window_range(o.y, 0u);
    let rh = window_range(o.z, 1u);
    let row_extent = window_extent(o.y, 0u) * window_extent(o.z, 1u);
    let out_row = output_index(o.x, o.y, o.z, 0u);
    let ow_end = min(o.w + CHUNK, p.out_size.z);
    for (var ow = o.w; ow < ow_end; ow++) {
        let rw = window_range(ow, 2u);
        var total = 0.0;
        for (var d = rd.x; d < rd.y; d++) {
            for (var h = rh.x; h < rh.y; h++) {
                let row = input_index(o.x, d, h, 0u);
                for (var w = rw.x; w < rw.y; w++) {
                    total += x[row + w];
                }
            }
        }
        y[out_row + ow] = total / (row_extent * window_extent(ow, 2u));
    }
}

@compute @workgroup_size(WG)
fn max_zero(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i < p.count {
        dx_after_dy[i] = 0.0;
    }
}

// max_zero for a multiple of 4 elements, 4 per invocation (p.count counts vec4s): one loop over
// the SIMD lanes per store instead of 4 on lavapipe.
@group(0) @binding(3) var<storage, read_write> dx_vec4: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn max_zero4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i < p.count {
        dx_vec4[i] = vec4(0.0);
    }
}

// One invocation per window of the class p.phase (count = planes * windows of the class).
@compute @workgroup_size(WG)
fn max_scatter(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let t = workgroup_index(wid, nwg) * WG + lid;
    if t >= p.count {
        return;
    }
    let step = (p.kernel.xyz + p.stride.xyz - 1u) / p.stride.xyz;
    let sizes = (p.out_size.xyz - p.phase.xyz + step - 1u) / step;
    let w_rest = divmod(t, sizes.z);
    let h_rest = divmod(w_rest.x, sizes.y);
    let plane_d = divmod(h_rest.x, sizes.x);
    let od = p.phase.x + plane_d.y * step.x;
    let oh = p.phase.y + h_rest.y * step.y;
    let ow = p.phase.z + w_rest.y * step.z;
    let arg = window_argmax(plane_d.x, od, oh, ow);
    dx_after_dy[arg] += dy_after_x[output_index(plane_d.x, od, oh, ow)];
}

// Each invocation visits the windows overlapping its chunk once and spreads
// each window's dy / divisor over the window's elements in the chunk.
@compute @workgroup_size(WG)
fn avg_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let t = workgroup_index(wid, nwg) * WG + lid;
    if t >= p.count {
        return;
    }
    let a = chunk_origin(t, p.in_size);
    let wd = windows_containing(a.y, 0u);
    let wh = windows_containing(a.z, 1u);
    let width = min(CHUNK, p.in_size.z - a.w);
    let ww = vec2<u32>(windows_containing(a.w, 2u).x,
                       windows_containing(a.w + width - 1u, 2u).y);
    var total: array<f32, CHUNK>;
    for (var c = 0u; c < CHUNK; c++) {
        total[c] = 0.0;
    }
    for (var od = wd.x; od < wd.y; od++) {
        for (var oh = wh.x; oh < wh.y; oh++) {
            let row_extent = window_extent(od, 0u) * window_extent(oh, 1u);
            for (var ow = ww.x; ow < ww.y; ow++) {
                let g = dy[output_index(a.x, od, oh, ow)] / (row_extent * window_extent(ow, 2u));
                let rw = window_range(ow, 2u);
                for (var w = max(rw.x, a.w); w < min(rw.y, a.w + width); w++) {
                    total[w - a.w] += g;
                }
            }
        }
    }
    let chunk_start = input_index(a.x, a.y, a.z, a.w);
    for (var c = 0u; c < width; c++) {
        dx[chunk_start + c] = total[c];
    }
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
