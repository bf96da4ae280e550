// Convolution 1-D / 2-D / 3-D: what the tiled and subgroup kernels share (tiled.wgsl,
// subgroup.wgsl; reduce.wgsl adds the GEMM slices and the bias gradient).
//
// Layout: row-major x [N, C, D, H, W], w [O, C / groups, KD, KH, KW], y [N, O, OD, OH, OW]; 1-D
// and 2-D convolutions arrive with leading spatial dims of size 1 (kernel 1, stride 1, pad 0,
// dil 1). Zero padding; input coordinate iz = oz * stride - pad + kz * dilation (same for y and
// x), pad being the padding before the dim (the padding after only sets the output size, which
// the host computes). The GEMM kernels below take ungrouped convolutions (groups = 1);
// grouped.wgsl takes the rest.
//
// Each kernel computes a GEMM  out[M, N] = sum over k < K of A[m, k] * B[k, n]  whose operands
// are gathered on the fly (no im2col buffer):
//   forward          y  = W  * Xcol : M = O, N = batch * out positions, K = C * kernel taps
//   backward_input   dx = W' * dYcol: M = C, N = batch * in positions,  K = O * kernel taps
//                    (a gather over the taps whose output position lands on this input: the
//                    transposed convolution, no atomics); for C <= 4 (an image's gradient)
//                    backward_input_few_channels gathers it directly instead, see there
//   backward_weight  dw = dY * Xcol': M = O, N = C * kernel taps,       K = batch * out positions
//                    split into `splits` slices of K when M * N is small; slice s writes its own
//                    partial sums and `weight_reduce` adds the slices in order (deterministic).
// Each output is summed in one fixed order by one invocation: results are bit-identical between
// runs.

#include "ops/gemm/block4.wgsl"

struct Params {
    n: u32,
    c: u32,
    o: u32,
    has_bias: u32,
    in_d: u32,
    in_h: u32,
    in_w: u32,
    in_spatial: u32,
    out_d: u32,
    out_h: u32,
    out_w: u32,
    out_spatial: u32,
    k_d: u32,
    k_h: u32,
    k_w: u32,
    k_vol: u32,
    stride_d: u32,
    stride_h: u32,
    stride_w: u32,
    splits: u32,        // backward_weight: slices of K; weight_reduce: slices to add
    pad_d: u32,
    pad_h: u32,
    pad_w: u32,
    split_len: u32,     // backward_weight: K per slice (a multiple of 16)
    dil_d: u32,
    dil_h: u32,
    dil_w: u32,
    tiles_n: u32,       // column tiles: ceil(gemm_n / tile columns)
    gemm_m: u32,
    gemm_n: u32,
    gemm_k: u32,
    o_chunk: u32,       // backward_input_few_channels: output channels per staged chunk
    groups: u32,        // channel groups (grouped.wgsl; 1 for the GEMM kernels)
    c_group: u32,       // input channels per group: C / groups
    o_group: u32,       // output channels per group: O / groups
    k_group: u32,       // weights per output channel: c_group * k_vol
}

@group(0) @binding(0) var<uniform> p: Params;
// forward: x, w, bias (w again when there is none), y
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
// backward_input: dy, w (as above), dx
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
// backward_weight: x (as above), dy (named dy_w: dy sits at binding 1 elsewhere), dw or the
// partial sums [splits, O, C * taps]
@group(0) @binding(2) var<storage, read> dy_w: array<f32>;
@group(0) @binding(3) var<storage, read_write> dw: array<f32>;

// forward: y = max(conv + bias, 0) (a fused ReLU; activation.wgsl's max(v, 0), bit for bit).
override RELU: bool = false;

// The forward output as stored: with the fused ReLU where RELU is set.
fn forward_output(v: vec4<f32>) -> vec4<f32> {
    if RELU {
        return max(v, vec4(0.0));
    }
    return v;
}

// Invocations per workgroup of the GEMM and gather kernels.
const WG: u32 = 64u;

// A coordinate that fails every bounds test even after adding or subtracting a kernel offset:
// marks the columns past the end of the GEMM.
const OUTSIDE: i32 = -1073741824;

// ---- index arithmetic ----

// An index split into (outer, z, y, x) digits of the mixed radix (unbounded, rz, ry, rx).
struct Digits {
    outer: u32,
    z: u32,
    y: u32,
    x: u32,
}

const NEXT: Digits = Digits(0u, 0u, 0u, 1u);

fn split_index(k: u32, r: vec3<u32>) -> Digits {
    let yx = r.y * r.z;
    let zyx = r.x * yx;
    let rest = k % zyx;
    return Digits(k / zyx, rest / yx, (rest % yx) / r.z, rest % r.z);
}

// a + b digit by digit; each digit of both is below its radix, so every carry is 0 or 1.
fn add_digits(a: Digits, b: Digits, r: vec3<u32>) -> Digits {
    var x = a.x + b.x;
    var carry = select(0u, 1u, x >= r.z);
    x -= carry * r.z;
    var y = a.y + b.y + carry;
    carry = select(0u, 1u, y >= r.y);
    y -= carry * r.y;
    var z = a.z + b.z + carry;
    carry = select(0u, 1u, z >= r.x);
    z -= carry * r.x;
    return Digits(a.outer + b.outer + carry, z, y, x);
}

fn kernel_radix() -> vec3<u32> {
    return vec3(p.k_d, p.k_h, p.k_w);
}

fn out_radix() -> vec3<u32> {
    return vec3(p.out_d, p.out_h, p.out_w);
}

fn in_radix() -> vec3<u32> {
    return vec3(p.in_d, p.in_h, p.in_w);
}

// Four (z, y, x) coordinates, one per staged column, with a flat offset that goes with them.
struct Coords4 {
    base: vec4<i32>,
    z: vec4<i32>,
    y: vec4<i32>,
    x: vec4<i32>,
}

// Each of 4 flat indices into boxes of r = (d, h, w) as (box, z, y, x); the box goes in `base`.
fn split4(flat: vec4<u32>, r: vec3<u32>) -> Coords4 {
    let yx = r.y * r.z;
    let rest = flat % vec4(r.x * yx);
    let z = rest / vec4(yx);
    let y = (rest % vec4(yx)) / vec4(r.z);
    let x = rest % vec4(r.z);
    return Coords4(vec4<i32>(flat / vec4(r.x * yx)), vec4<i32>(z), vec4<i32>(y), vec4<i32>(x));
}

fn inside_input4(z: vec4<i32>, y: vec4<i32>, x: vec4<i32>) -> vec4<bool> {
    return vec4<u32>(z) < vec4(p.in_d) & vec4<u32>(y) < vec4(p.in_h)
        & vec4<u32>(x) < vec4(p.in_w);
}

fn input_offset4(z: vec4<i32>, y: vec4<i32>, x: vec4<i32>) -> vec4<i32> {
    return (z * i32(p.in_h) + y) * i32(p.in_w) + x;
}

// The forward GEMM's columns `cols` (batch * out positions + out position): the input position
// of tap 0 and the offset of x there; columns past N get z = OUTSIDE, which no tap brings inside.
fn forward_columns(cols: vec4<u32>) -> Coords4 {
    let at = split4(cols, out_radix());
    var g: Coords4;
    g.z = at.z * i32(p.stride_d) - i32(p.pad_d);
    g.y = at.y * i32(p.stride_h) - i32(p.pad_h);
    g.x = at.x * i32(p.stride_w) - i32(p.pad_w);
    g.base = at.base * i32(p.c * p.in_spatial) + input_offset4(g.z, g.y, g.x);
    g.z = select(vec4(OUTSIDE), g.z, cols < vec4(p.gemm_n));
    return g;
}

// The input-gradient GEMM's columns `cols` (batch * in positions + in position), as (batch
// offset into dy, z, y, x) shifted by the padding; columns past N get z = OUTSIDE.
fn backward_input_columns(cols: vec4<u32>) -> Coords4 {
    let at = split4(cols, in_radix());
    var g: Coords4;
    g.base = at.base * i32(p.o * p.out_spatial);
    g.z = select(vec4(OUTSIDE), at.z + i32(p.pad_d), cols < vec4(p.gemm_n));
    g.y = at.y + i32(p.pad_h);
    g.x = at.x + i32(p.pad_w);
    return g;
}

// z / s where z is a whole multiple of s; for other z the result q has q * s != z. Float
// division keeps this vectorised (integer division is not, on CPU drivers). Exact for
// |z| < 2^22, which the host guarantees for every coordinate that can be in range: z + 0.5 is
// then exact in f32, and (z + 0.5) / s lies at least 0.5 / s from an integer, far more than the
// rounding error of the division.
fn exact_quotient(z: vec4<i32>, s: i32) -> vec4<i32> {
    return vec4<i32>(floor((vec4<f32>(z) + 0.5) / f32(s)));
}

// ---- loads of 4 elements, 0 where `ok` is false (the index is then not used) ----

fn load_x4(index: vec4<i32>, ok: vec4<bool>) -> vec4<f32> {
    let i = vec4<u32>(select(vec4(0), index, ok));
    return select(vec4(0.0), vec4(x[i.x], x[i.y], x[i.z], x[i.w]), ok);
}

fn load_w4(index: vec4<u32>, ok: vec4<bool>) -> vec4<f32> {
    let i = select(vec4(0u), index, ok);
    return select(vec4(0.0), vec4(w[i.x], w[i.y], w[i.z], w[i.w]), ok);
}

fn load_dy4(index: vec4<i32>, ok: vec4<bool>) -> vec4<f32> {
    let i = vec4<u32>(select(vec4(0), index, ok));
    return select(vec4(0.0), vec4(dy[i.x], dy[i.y], dy[i.z], dy[i.w]), ok);
}

fn load_dy_w4(index: vec4<u32>, ok: vec4<bool>) -> vec4<f32> {
    let i = select(vec4(0u), index, ok);
    return select(vec4(0.0), vec4(dy_w[i.x], dy_w[i.y], dy_w[i.z], dy_w[i.w]), ok);
}

// Where an invocation's outputs go: out[m][n] is at column[n] + m * row_stride for its 8
// columns (two vec4s, `valid` false past the end of the GEMM), with
// column[n] = (n / spatial) * batch_stride + n % spatial + offset.
struct OutColumns {
    left: vec4<u32>,
    right: vec4<u32>,
    left_valid: vec4<bool>,
    right_valid: vec4<bool>,
    row_stride: u32,
}

fn out_columns(n: u32, spatial: u32, batch_stride: u32, row_stride: u32, offset: u32)
    -> OutColumns {
    let left = vec4(n) + LANES;
    let right = left + 4u;
    return OutColumns(
        (left / vec4(spatial)) * batch_stride + left % vec4(spatial) + offset,
        (right / vec4(spatial)) * batch_stride + right % vec4(spatial) + offset,
        left < vec4(p.gemm_n),
        right < vec4(p.gemm_n),
        row_stride,
    );
}

// ---- backward_input_few_channels (tiled.wgsl describes it) ----

// Four input positions' accumulators, named (a private array would live in memory on lavapipe).
struct Quad {
    a: vec4<f32>,
    b: vec4<f32>,
    c: vec4<f32>,
    d: vec4<f32>,
}

// dx[first + c * in positions] = v[c] for each of the C channels, where the position is inside.
fn store_dx_channels(first: u32, inside: bool, v: vec4<f32>) {
    if inside {
        for (var c = 0u; c < p.c; c++) {
            dx[first + c * p.in_spatial] = v[c];
        }
    }
}
