// Padding of a row-major tensor of rank <= 6 (dims in slots 0..rank of the uniform, outermost
// first) and its backward. Along an axis of length n padded by `begin` elements in front, output
// position o reads input position src(o - begin) by the mode:
//   0 constant: u itself where 0 <= u < n, else nothing (the output is `value`);
//   1 reflect:  u mirrored at both ends without repeating them, period 2 (n - 1) (0 where n = 1);
//   2 edge:     u clamped to [0, n - 1];
//   3 wrap:     u modulo n.
//   pad:          y[o] = x[src(o)] over the output's multi-indices, or `value` where an axis
//                 reads nothing (constant mode).
//   pad_backward: dx[j] = sum of dy[o] over the output positions o with src(o) = j: the adjoint,
//                 written as a gather over the input. Along one axis those positions are one
//                 arithmetic progression (constant, edge, wrap), or two interleaved ones of step
//                 2 (n - 1) (reflect: o - begin = j or -j modulo 2 (n - 1)); the kernel sums over
//                 their product over the axes. Each output position belongs to exactly one input
//                 element, so all invocations together read dy once.
// One invocation per element written, 256 per workgroup. Coordinates are i32: dims below 2^31.

#include "gpu/workgroup_index.wgsl"

struct Params {
    count: u32,                     // elements written
    rank: u32,
    mode: u32,
    value: f32,                     // constant mode's fill
    in_dims: array<vec4<u32>, 2>,   // the unpadded tensor (x, dx)
    out_dims: array<vec4<u32>, 2>,  // the padded tensor (y, dy)
    begin: array<vec4<u32>, 2>,     // elements added before each axis
}

@group(0) @binding(0) var<uniform> p: Params;
// pad: x at 1, y at 2; pad_backward: dy at 1, dx at 2.
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

const WG: u32 = 256u;
const MAX_RANK: u32 = 6u;
const CONSTANT: u32 = 0u;
const REFLECT: u32 = 1u;
const EDGE: u32 = 2u;
const WRAP: u32 = 3u;

fn slot(v: array<vec4<u32>, 2>, k: u32) -> u32 {
    return v[k / 4u][k % 4u];
}

// The input position that position u (relative to the input's first element) reads along an
// axis of length n, or -1 for the constant mode's padding.
fn source(u: i32, n: i32) -> i32 {
    switch p.mode {
        case REFLECT: {
            if n == 1 {
                return 0;
            }
            let period = 2 * (n - 1);
            let m = ((u % period) + period) % period;
            return select(m, period - m, m >= n);
        }
        case EDGE: {
            return clamp(u, 0, n - 1);
        }
        case WRAP: {
            return ((u % n) + n) % n;
        }
        default: {
            return select(-1, u, u >= 0 && u < n);
        }
    }
}

@compute @workgroup_size(WG)
fn pad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i >= p.count {
        return;
    }
    let in_dims = p.in_dims;
    let out_dims = p.out_dims;
    let begin = p.begin;
    var rem = i;
    var src = 0u;
    var stride = 1u;
    var inside = true;
    for (var k = i32(p.rank) - 1; k >= 0; k--) {
        let d = slot(out_dims, u32(k));
        let n = slot(in_dims, u32(k));
        let o = rem % d;
        rem = rem / d;
        let s = source(i32(o) - i32(slot(begin, u32(k))), i32(n));
        inside = inside && s >= 0;
        src += u32(max(s, 0)) * stride;
        stride *= n;
    }
    y[i] = select(p.value, x[src], inside);
}

// The output positions that read position j of an axis of length n padded to `len` with `begin`
// in front, in increasing order: first, first + gap_a, first + gap_a + gap_b, ... (`count` of
// them; one progression has gap_a = gap_b).
struct Preimage {
    first: u32,
    count: u32,
    gap_a: u32,
    gap_b: u32,
}

// The positions of a progression of step `step` from `first` that lie below `len`.
fn below(first: u32, step: u32, len: u32) -> u32 {
    return select(0u, (len - 1u - first) / step + 1u, first < len);
}

fn preimage(j: u32, n: u32, len: u32, begin: u32) -> Preimage {
    // Constant mode, and the inside of the edge mode: the one position that copies j.
    var r = Preimage(begin + j, 1u, 1u, 1u);
    switch p.mode {
        case REFLECT: {
            if n == 1u {
                r = Preimage(0u, len, 1u, 1u);
            } else {
                let period = 2u * (n - 1u);
                let s1 = (begin + j) % period;
                let s2 = (begin % period + period - j) % period;
                if s1 == s2 {
                    r = Preimage(s1, below(s1, period, len), period, period);
                } else {
                    let lo = min(s1, s2);
                    let hi = max(s1, s2);
                    let count = below(lo, period, len) + below(hi, period, len);
                    r = Preimage(lo, count, hi - lo, period - (hi - lo));
                }
            }
        }
        case EDGE: {
            if n == 1u {
                r = Preimage(0u, len, 1u, 1u);
            } else if j == 0u {
                r = Preimage(0u, begin + 1u, 1u, 1u);
            } else if j == n - 1u {
                r = Preimage(begin + j, len - begin - j, 1u, 1u);
            }
        }
        case WRAP: {
            let first = (begin + j) % n;
            r = Preimage(first, below(first, n, len), n, n);
        }
        default: {}
    }
    return r;
}

@compute @workgroup_size(WG)
fn pad_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let j = workgroup_index(wid, nwg) * WG + lid;
    if j >= p.count {
        return;
    }
    let in_dims = p.in_dims;
    let out_dims = p.out_dims;
    let begin = p.begin;
    var axes: array<Preimage, MAX_RANK>;
    var strides: array<u32, MAX_RANK>;
    var rem = j;
    var stride = 1u;
    var total = 1u;
    for (var k = i32(p.rank) - 1; k >= 0; k--) {
        let n = slot(in_dims, u32(k));
        let len = slot(out_dims, u32(k));
        axes[k] = preimage(rem % n, n, len, slot(begin, u32(k)));
        rem = rem / n;
        strides[k] = stride;
        stride *= len;
        total *= axes[k].count;
    }
    var sum = 0.0;
    for (var t = 0u; t < total; t++) {
        var digits = t;
        var at = 0u;
        for (var k = i32(p.rank) - 1; k >= 0; k--) {
            let a = axes[k];
            let c = digits % a.count;
            digits = digits / a.count;
            at += (a.first + (c / 2u) * (a.gap_a + a.gap_b) + (c % 2u) * a.gap_a) * strides[k];
        }
        sum += x[at];
    }
    y[j] = sum;
}
