// Pooling over NCW / NCHW / NCDHW tensors, row-major. Every kernel sees three spatial dims
// (D, H, W): 1-D and 2-D pooling pad the missing leading dims with size 1, kernel 1, stride 1,
// dilation 1, padding 0. Planes (N * C of them) are independent.
//
// Windows (PyTorch / ONNX semantics): output position o along one dim has the taps
// start + t * dilation, t in [0, kernel), start = o * stride - pad_begin; taps outside [0, in)
// are padding. The host sizes the output and refuses geometries (see pool/mod.rs) so that every
// window has a real element, except for average pooling that counts padding, whose windows need
// only a tap inside the padded input [-pad_begin, in + pad_end).
//
//   max_forward:  y[o] = max of the real elements of window o (padding acts as -inf).
//   avg_forward:  y[o] = (sum of the real elements of window o) / divisor(o), divisor(o) the
//                 product over dims of the window's taps inside the padded input (count_pad = 1,
//                 PyTorch's count_include_pad=True: the part of a ceil-mode window that hangs
//                 past the end padding does not count) or of its taps on real elements
//                 (count_pad = 0). A window without a real element averages to 0.
//   max_indices:  the flat index of window o's first maximal element (first in row-major D, H,
//                 W order within the window) within its plane, or within the whole tensor when
//                 whole_tensor = 1; one invocation per output element.
//   max_backward: dx[i] = sum of dy[o] over the windows o whose FIRST maximal element is i; a tie
//                 sends the whole gradient to the first maximal element, as PyTorch's CPU kernel
//                 does. A scatter without atomics: max_zero clears dx, then max_scatter runs once
//                 per class of windows that share no element (per dim, windows whose index
//                 differs by a multiple of ceil(span / stride), span = (kernel - 1) * dilation +
//                 1: 4 classes for 3 x 3 windows at stride 2), one invocation per window: it finds
//                 the window's argmax and adds dy there. Each element gets at most one add per
//                 class, classes run in a fixed order: deterministic. This is 1.7x faster than a
//                 gather that reads a stored argmax on SqueezeNet's pooling, which has few
//                 windows per input element.
//   avg_backward: dx[i] = sum over the windows o with a tap on i of dy[o] / divisor(o).
//   global_avg_forward:  y[r] = mean of row r ([N*C rows, spatial columns]); one workgroup of
//                 64 per row: each invocation sums a strided slice sequentially, then a fixed
//                 tree over workgroup memory, so the result is deterministic.
//   global_avg_backward: dx[i] = dy[i / spatial] / spatial.
//
// The forward kernels (max_forward, avg_forward) run one invocation per output element; see
// them below. The backward kernels (avg_backward) give each invocation a chunk of CHUNK
// consecutive positions along W of one row (plane, d, h) of the input, 256 invocations per
// workgroup. Integer division is the expensive part of the index arithmetic (lavapipe has no
// vector division), so the row's decomposition is done once per chunk. The backward kernels visit
// each window overlapping their chunk once and accumulate into per-chunk registers in a fixed
// window order, so dx is deterministic. Windows are small, so plain loops over global memory (no
// tiling) suffice: pooling is memory-bound. CHUNK = 8 measured best on lavapipe (4 gave more
// division work, 16 too few invocations for small maps).

#include "gpu/workgroup_index.wgsl"

struct Params {
    count: u32,          // invocations that do work: chunks, elements, or rows (global forward)
    chunks: u32,         // avg_backward: chunks per row, ceil(W / CHUNK)
    spatial: u32,        // global pooling: spatial elements per row
    scale: f32,          // global pooling: 1 / spatial
    count_pad: u32,      // avg: 1 when padding taps count in the divisor
    whole_tensor: u32,   // max_indices: 1 to flatten over the whole tensor, 0 within the plane
    unused0: u32,
    unused1: u32,
    in_size: vec4<u32>,  // D, H, W of the input (.w unused)
    out_size: vec4<u32>, // D, H, W of the output
    kernel: vec4<u32>,
    stride: vec4<u32>,
    dilation: vec4<u32>,
    pad_begin: vec4<u32>,
    pad_end: vec4<u32>,
    phase: vec4<u32>,    // max_scatter: the class of windows, D, H, W (first window per dim)
}

@group(0) @binding(0) var<uniform> p: Params;
// forward and global pooling: x at 1, y at 2
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
// max_indices: x at 1, indices at 2
@group(0) @binding(2) var<storage, read_write> indices: array<u32>;
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

// The input position of the first tap of the window at output position o along dim k (0 D,
// 1 H, 2 W); negative in the begin padding.
fn window_start(o: u32, k: u32) -> i32 {
    return i32(o * p.stride[k]) - i32(p.pad_begin[k]);
}

// The taps [lo, hi) of window o along dim k that lie in [lo_at, hi_at) (lo_at <= the window's
// start is not needed: taps before lo_at are skipped); empty when none does.
fn taps_within(o: u32, k: u32, lo_at: i32, hi_at: i32) -> vec2<u32> {
    let start = window_start(o, k);
    let d = i32(p.dilation[k]);
    let lo = select(0, (lo_at - start + d - 1) / d, start < lo_at);
    let hi = select(0, min(i32(p.kernel[k]), (hi_at - start + d - 1) / d), hi_at > start);
    return vec2<u32>(u32(lo), u32(max(hi, lo)));
}

// The taps of window o along dim k on real elements.
fn real_taps(o: u32, k: u32) -> vec2<u32> {
    return taps_within(o, k, 0, i32(p.in_size[k]));
}

// The input position of tap t of window o along dim k (a real tap: non-negative).
fn tap_at(o: u32, k: u32, t: u32) -> u32 {
    return u32(window_start(o, k) + i32(t * p.dilation[k]));
}

// The average-pooling divisor's factor along dim k (see the top).
fn window_extent(o: u32, k: u32) -> f32 {
    var taps: vec2<u32>;
    if p.count_pad == 1u {
        taps = taps_within(o, k, -i32(p.pad_begin[k]), i32(p.in_size[k] + p.pad_end[k]));
    } else {
        taps = real_taps(o, k);
    }
    return f32(taps.y - taps.x);
}

// Output positions [first, end) along dim k whose windows span input position `at`:
// o * stride - pad_begin <= at < o * stride - pad_begin + span; a window spanning `at` has a tap
// on it when (at - start) is a multiple of the dilation.
fn windows_spanning(at: u32, k: u32) -> vec2<u32> {
    let s = p.stride[k];
    let span = (p.kernel[k] - 1u) * p.dilation[k] + 1u;
    let end = min((at + p.pad_begin[k]) / s + 1u, p.out_size[k]);
    let reach = i32(at + p.pad_begin[k]) - i32(span) + 1;
    let first = (u32(max(reach, 0)) + s - 1u) / s;
    return vec2<u32>(first, max(end, first));
}

// Flat input index of the first maximal element of window (od, oh, ow) of `plane`.
fn window_argmax(plane: u32, od: u32, oh: u32, ow: u32) -> u32 {
    let td = real_taps(od, 0u);
    let th = real_taps(oh, 1u);
    let tw = real_taps(ow, 2u);
    let w0 = tap_at(ow, 2u, tw.x);
    var arg = input_index(plane, tap_at(od, 0u, td.x), tap_at(oh, 1u, th.x), w0);
    var best = x[arg];
    for (var a = td.x; a < td.y; a++) {
        for (var b = th.x; b < th.y; b++) {
            let row = input_index(plane, tap_at(od, 0u, a), tap_at(oh, 1u, b), w0);
            for (var c = tw.x; c < tw.y; c++) {
                let i = row + (c - tw.x) * p.dilation.z;
                let v = x[i];
                if v > best {
                    best = v;
                    arg = i;
                }
            }
        }
    }
    return arg;
}

// (a / b, a % b) exactly, for any a and 0 < b < 2^24, in float arithmetic: the quotient of
// f32(a) * (1 / b) is within a relative 2^-22 of a / b, so the remainder it leaves is small;
// a second estimate from that remainder leaves one in [-b, 2b), which selects fix. Integer
// division has no vector instruction (lavapipe runs it lane by lane; GPUs emulate it too), these
// steps are vector multiplies and selects.
fn divmod_exact(a: u32, b: u32) -> vec2<u32> {
    let inv = 1.0 / f32(b);
    // Clamped below 2^32: an out-of-range float-to-integer conversion is undefined in SPIR-V.
    var q = u32(min(f32(a) * inv, 4294967040.0));
    q = bitcast<u32>(bitcast<i32>(q) + i32(floor(f32(bitcast<i32>(a - q * b)) * inv)));
    var r = bitcast<i32>(a - q * b);
    q = select(q, q - 1u, r < 0);
    r = select(r, r + i32(b), r < 0);
    q = select(q, q + 1u, r >= i32(b));
    return vec2<u32>(q, a - q * b);
}

// (plane, d, h, w) of output element t.
fn output_position(t: u32) -> vec4<u32> {
    let w_rest = divmod_exact(t, p.out_size.z);
    let h_rest = divmod_exact(w_rest.x, p.out_size.y);
    let plane_d = divmod_exact(h_rest.x, p.out_size.x);
    return vec4<u32>(plane_d.x, plane_d.y, h_rest.y, w_rest.y);
}

// The forward kernels run one invocation per output element, consecutive invocations on
// consecutive outputs (coalesced stores). They visit every tap of the window and mask the padding
// taps with a select, so every invocation runs the same code (no divergence) and clipping the
// window takes no division. The kernel size is a pipeline constant (KD, KH, KW, one pipeline per
// window size): the tap loops unroll, which on lavapipe removes the per-iteration bookkeeping of
// the SIMD lanes' loop masks that otherwise costs more than the loads.
override KD: u32 = 1u;
override KH: u32 = 1u;
override KW: u32 = 1u;

@compute @workgroup_size(WG)
fn max_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let t = workgroup_index(wid, nwg) * WG + lid;
    if t >= p.count {
        return;
    }
    let o = output_position(t);
    let start_d = window_start(o.y, 0u);
    let start_h = window_start(o.z, 1u);
    let start_w = window_start(o.w, 2u);
    // Every window holds a real element (see the top), so -inf never survives.
    var best = bitcast<f32>(0xff800000u);
    for (var a = 0u; a < KD; a++) {
        let d = u32(start_d + i32(a * p.dilation.x));
        for (var b = 0u; b < KH; b++) {
            let h = u32(start_h + i32(b * p.dilation.y));
            let row_real = d < p.in_size.x && h < p.in_size.y;
            let row = input_index(o.x, d, h, 0u);
            for (var c = 0u; c < KW; c++) {
                let w = u32(start_w + i32(c * p.dilation.z));
                let real = row_real && w < p.in_size.z;
                let v = x[select(0u, row + w, real)];
                best = select(best, max(best, v), real);
            }
        }
    }
    y[t] = best;
}

// The taps of window o along dim k (of `kernel` taps) that the average's divisor counts (see
// the top).
fn divisor_taps(o: u32, k: u32, kernel: u32) -> f32 {
    let start = window_start(o, k);
    let lo = select(0, -i32(p.pad_begin[k]), p.count_pad == 1u);
    let hi = i32(p.in_size[k] + select(0u, p.pad_end[k], p.count_pad == 1u));
    var n = 0u;
    for (var t = 0u; t < kernel; t++) {
        let at = start + i32(t * p.dilation[k]);
        n += select(0u, 1u, at >= lo && at < hi);
    }
    return f32(n);
}

@compute @workgroup_size(WG)
fn avg_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let t = workgroup_index(wid, nwg) * WG + lid;
    if t >= p.count {
        return;
    }
    let o = output_position(t);
    let start_d = window_start(o.y, 0u);
    let start_h = window_start(o.z, 1u);
    let start_w = window_start(o.w, 2u);
    var total = 0.0;
    for (var a = 0u; a < KD; a++) {
        let d = u32(start_d + i32(a * p.dilation.x));
        for (var b = 0u; b < KH; b++) {
            let h = u32(start_h + i32(b * p.dilation.y));
            let row_real = d < p.in_size.x && h < p.in_size.y;
            let row = input_index(o.x, d, h, 0u);
            for (var c = 0u; c < KW; c++) {
                let w = u32(start_w + i32(c * p.dilation.z));
                let real = row_real && w < p.in_size.z;
                total += select(0.0, x[select(0u, row + w, real)], real);
            }
        }
    }
    let divisor = divisor_taps(o.y, 0u, KD) * divisor_taps(o.z, 1u, KH) * divisor_taps(o.w, 2u, KW);
    y[t] = total / divisor;
}

@compute @workgroup_size(WG)
fn max_indices(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let t = workgroup_index(wid, nwg) * WG + lid;
    if t >= p.count {
        return;
    }
    let w_rest = divmod(t, p.out_size.z);
    let h_rest = divmod(w_rest.x, p.out_size.y);
    let plane_d = divmod(h_rest.x, p.out_size.x);
    let arg = window_argmax(plane_d.x, plane_d.y, h_rest.y, w_rest.y);
    let plane_start = input_index(plane_d.x, 0u, 0u, 0u);
    indices[t] = select(arg - plane_start, arg, p.whole_tensor == 1u);
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
    let span = (p.kernel.xyz - 1u) * p.dilation.xyz + 1u;
    let step = (span + p.stride.xyz - 1u) / p.stride.xyz;
    let sizes = (p.out_size.xyz - p.phase.xyz + step - 1u) / step;
    let w_rest = divmod(t, sizes.z);
    let h_rest = divmod(w_rest.x, sizes.y);
    let plane_d = divmod(h_rest.x, sizes.x);
    let od = p.phase.x + plane_d.y * step.x;
    let oh = p.phase.y + h_rest.y * step.y;
    let ow = p.phase.z + w_rest.y * step.z;
    let arg = window_argmax_unrolled(plane_d.x, od, oh, ow);
    dx_after_dy[arg] += dy_after_x[output_index(plane_d.x, od, oh, ow)];
}

// window_argmax over the KD x KH x KW taps with the padding masked as max_forward does: the tap
// loops unroll (3x faster on lavapipe than window_argmax's clipped loops). The same element
// wins: the first real one of the largest value, in (d, h, w) order.
fn window_argmax_unrolled(plane: u32, od: u32, oh: u32, ow: u32) -> u32 {
    let start_d = window_start(od, 0u);
    let start_h = window_start(oh, 1u);
    let start_w = window_start(ow, 2u);
    var best = 0.0;
    var arg = 0u;
    var found = false;
    for (var a = 0u; a < KD; a++) {
        let d = u32(start_d + i32(a * p.dilation.x));
        for (var b = 0u; b < KH; b++) {
            let h = u32(start_h + i32(b * p.dilation.y));
            let row_real = d < p.in_size.x && h < p.in_size.y;
            let row = input_index(plane, d, h, 0u);
            for (var c = 0u; c < KW; c++) {
                let w = u32(start_w + i32(c * p.dilation.z));
                let real = row_real && w < p.in_size.z;
                let i = select(0u, row + w, real);
                let v = x[i];
                let better = real && (!found || v > best);
                best = select(best, v, better);
                arg = select(arg, i, better);
                found = found || real;
            }
        }
    }
    return arg;
}

// Each invocation visits the windows with a tap in its chunk's (d, h) row and range of w once and
// spreads each window's dy / divisor over the window's taps in the chunk.
@compute @workgroup_size(WG)
fn avg_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let t = workgroup_index(wid, nwg) * WG + lid;
    if t >= p.count {
        return;
    }
    let a = chunk_origin(t, p.in_size);
    let wd = windows_spanning(a.y, 0u);
    let wh = windows_spanning(a.z, 1u);
    let width = min(CHUNK, p.in_size.z - a.w);
    let ww = vec2<u32>(windows_spanning(a.w, 2u).x, windows_spanning(a.w + width - 1u, 2u).y);
    var total: array<f32, CHUNK>;
    for (var c = 0u; c < CHUNK; c++) {
        total[c] = 0.0;
    }
    for (var od = wd.x; od < wd.y; od++) {
        if u32(i32(a.y) - window_start(od, 0u)) % p.dilation.x != 0u {
            continue;
        }
        for (var oh = wh.x; oh < wh.y; oh++) {
            if u32(i32(a.z) - window_start(oh, 1u)) % p.dilation.y != 0u {
                continue;
            }
            let row_extent = window_extent(od, 0u) * window_extent(oh, 1u);
            for (var ow = ww.x; ow < ww.y; ow++) {
                let g = dy[output_index(a.x, od, oh, ow)] / (row_extent * window_extent(ow, 2u));
                let taps = taps_within(ow, 2u, i32(a.w), i32(a.w + width));
                for (var c = taps.x; c < taps.y; c++) {
                    total[tap_at(ow, 2u, c) - a.w] += g;
                }
            }
        }
    }
    let chunk_start = input_index(a.x, a.y, a.z, a.w);
    for (var c = 0u; c < width; c++) {
        dx[chunk_start + c] = total[c];
    }
}

// Rows of at most SHORT_ROW positions: one invocation sums a row in order, where a workgroup
// per row would spend more on its barriers than on the sum (lavapipe: 256 x 42 rows of 50
// images, 38 ms by workgroups).
@compute @workgroup_size(WG)
fn global_avg_forward_short(@builtin(workgroup_id) wid: vec3<u32>,
                            @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32) {
    let row = workgroup_index(wid, nwg) * WG + lid;
    if row >= p.count {
        return;
    }
    let base = row * p.spatial;
    var total = 0.0;
    for (var s = 0u; s < p.spatial; s++) {
        total += x[base + s];
    }
    y[row] = total * p.scale;
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
