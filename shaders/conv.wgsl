// Convolution 1-D / 2-D / 3-D, forward and backward, as implicit GEMMs.
//
// Layout: row-major x [N, C, D, H, W], w [O, C, KD, KH, KW], y [N, O, OD, OH, OW]; 1-D and 2-D
// convolutions arrive with leading spatial dims of size 1 (kernel 1, stride 1, pad 0, dil 1).
// Zero padding; input coordinate iz = oz * stride - pad + kz * dilation (same for y and x).
//
// Each kernel computes a GEMM  out[M, N] = sum over k < K of A[m, k] * B[k, n]  whose operands
// are gathered on the fly (no im2col buffer):
//   forward          y  = W  * Xcol : M = O, N = batch * out positions, K = C * kernel taps
//   backward_input   dx = W' * dYcol: M = C, N = batch * in positions,  K = O * kernel taps
//                    (a gather over the taps whose output position lands on this input: the
//                    transposed convolution, no atomics)
//   backward_weight  dw = dY * Xcol': M = O, N = C * kernel taps,       K = batch * out positions
//                    split into `splits` slices of K when M * N is small; slice s writes its own
//                    partial sums and `weight_reduce` adds the slices in order (deterministic).
//
// Tiling: a workgroup owns a BM x BN tile of `out`; it walks K in slices of BK, staging an
// A slice (BK x BM) and a B slice (BK x BN) in workgroup memory, both k-major so that an
// invocation reads its TM rows and TN columns as vec4s. Each of the 256 invocations accumulates
// a TM x TN = 4 x 4 block in registers: 64 x 64 tiles give 16 multiply-adds per 2 vec4 reads of
// workgroup memory and use 2 * 16 * 64 * 4 B = 8 KiB of it (under WebGPU's 16 KiB).
// Every invocation loads LA = 4 elements of the A slice and LB = 4 of the B slice, all in one
// reduction row and 4 adjacent columns: the gather arithmetic of a column (batch, position) is
// done once per workgroup, and that of a reduction row once per slice, carried from slice to
// slice by mixed-radix addition rather than divisions.
// Each output is summed in one fixed order by one invocation: results are bit-identical between
// runs.
//
//   weight_reduce: dw[i] = sum over s of partial[s][i], one invocation per element.
//   bias_grad:     db[o] = sum of dy[n, o, pos] over n and pos; one workgroup of 256 per o, each
//                  invocation sums a strided subset, then a fixed tree in workgroup memory.

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
    unit_stride: u32,   // 1 when every stride is 1 (backward_input skips the divisibility test)
    pad_d: u32,
    pad_h: u32,
    pad_w: u32,
    splits: u32,        // backward_weight: slices of K; weight_reduce: slices to add
    dil_d: u32,
    dil_h: u32,
    dil_w: u32,
    split_len: u32,     // backward_weight: K per slice (a multiple of BK)
    gemm_m: u32,
    gemm_n: u32,
    gemm_k: u32,
    tiles_n: u32,       // column tiles: ceil(gemm_n / BN)
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
// weight_reduce: partial sums, dw
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> dw_sum: array<f32>;
// bias_grad: dy (as above), db
@group(0) @binding(2) var<storage, read_write> db: array<f32>;

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;
const TM: u32 = 4u;
const TN: u32 = 4u;
const WG: u32 = (BM / TM) * (BN / TN);
const LA: u32 = BM * BK / WG;   // A elements each invocation stages per slice (multiple of 4)
const LB: u32 = BN * BK / WG;   // B elements each invocation stages per slice (multiple of 4)
const A_PER_ROW: u32 = BM / LA; // invocations staging one reduction row of the A slice
const B_PER_ROW: u32 = BN / LB;
const ACC: u32 = TM * TN / 4u;

// A coordinate that fails every bounds test even after adding or subtracting a kernel offset:
// marks the columns past the end of the GEMM.
const OUTSIDE: i32 = -1073741824;

var<workgroup> tile_a: array<vec4<f32>, BK * BM / 4u>;  // [k][m]
var<workgroup> tile_b: array<vec4<f32>, BK * BN / 4u>;  // [k][n]

// An index split into (outer, z, y, x) digits of the mixed radix (unbounded, rz, ry, rx).
struct Digits {
    outer: u32,
    z: u32,
    y: u32,
    x: u32,
}

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

fn inside_input(z: i32, y: i32, x: i32) -> bool {
    return u32(z) < p.in_d && u32(y) < p.in_h && u32(x) < p.in_w;
}

fn input_offset(z: i32, y: i32, x: i32) -> i32 {
    return (z * i32(p.in_h) + y) * i32(p.in_w) + x;
}

// Stages this invocation's A values (reduction row `row`, columns col..col+LA) as vec4s.
fn stage_a(row: u32, col: u32, v: array<f32, LA>) {
    for (var i = 0u; i < LA / 4u; i++) {
        tile_a[row * (BM / 4u) + col / 4u + i] =
            vec4(v[4u * i], v[4u * i + 1u], v[4u * i + 2u], v[4u * i + 3u]);
    }
}

fn stage_b(row: u32, col: u32, v: array<f32, LB>) {
    for (var i = 0u; i < LB / 4u; i++) {
        tile_b[row * (BN / 4u) + col / 4u + i] =
            vec4(v[4u * i], v[4u * i + 1u], v[4u * i + 2u], v[4u * i + 3u]);
    }
}

// acc[i][j] += sum over the staged slice of A[tm * TM + i][k] * B[k][tn * TN + j].
fn multiply_slice(acc: ptr<function, array<vec4<f32>, ACC>>, tm: u32, tn: u32) {
    for (var k = 0u; k < BK; k++) {
        var a: array<vec4<f32>, TM / 4u>;
        var b: array<vec4<f32>, TN / 4u>;
        for (var i = 0u; i < TM / 4u; i++) {
            a[i] = tile_a[k * (BM / 4u) + tm * (TM / 4u) + i];
        }
        for (var j = 0u; j < TN / 4u; j++) {
            b[j] = tile_b[k * (BN / 4u) + tn * (TN / 4u) + j];
        }
        for (var i = 0u; i < TM; i++) {
            let ai = vec4(a[i / 4u][i % 4u]);
            for (var j = 0u; j < TN / 4u; j++) {
                (*acc)[i * (TN / 4u) + j] = fma(ai, b[j], (*acc)[i * (TN / 4u) + j]);
            }
        }
    }
}

fn acc_at(acc: ptr<function, array<vec4<f32>, ACC>>, i: u32, j: u32) -> f32 {
    return (*acc)[i * (TN / 4u) + j / 4u][j % 4u];
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let tiles_m = (p.gemm_m + BM - 1u) / BM;
    let g = workgroup_index(wid, nwg);
    if g >= tiles_m * p.tiles_n {
        return;
    }
    let m0 = (g / p.tiles_n) * BM;
    let n0 = (g % p.tiles_n) * BN;

    // A = w viewed as [O, K]: this invocation stages row a_k of each slice, channels a_m...
    let a_k = lid / A_PER_ROW;
    let a_m = (lid % A_PER_ROW) * LA;
    // B[k][col] = x[batch, c, pos + tap] for col = batch * out positions + out position.
    let b_k = lid / B_PER_ROW;
    let b_n = (lid % B_PER_ROW) * LB;
    var col_base: array<i32, LB>;  // batch offset into x
    var col_z: array<i32, LB>;     // input coordinate of tap 0
    var col_y: array<i32, LB>;
    var col_x: array<i32, LB>;
    for (var j = 0u; j < LB; j++) {
        let col = n0 + b_n + j;
        let pos = split_index(col, out_radix());
        col_base[j] = i32(pos.outer * p.c * p.in_spatial);
        col_z[j] = select(OUTSIDE, i32(pos.z * p.stride_d) - i32(p.pad_d), col < p.gemm_n);
        col_y[j] = i32(pos.y * p.stride_h) - i32(p.pad_h);
        col_x[j] = i32(pos.x * p.stride_w) - i32(p.pad_w);
    }
    var tap = split_index(b_k, kernel_radix());  // (c, kz, ky, kx) of row k0 + b_k
    let tap_step = split_index(BK, kernel_radix());

    let tm = lid / (BN / TN);
    let tn = lid % (BN / TN);
    var acc: array<vec4<f32>, ACC>;
    for (var k0 = 0u; k0 < p.gemm_k; k0 += BK) {
        var va: array<f32, LA>;
        let ka = k0 + a_k;
        for (var i = 0u; i < LA; i++) {
            let m = m0 + a_m + i;
            if m < p.gemm_m && ka < p.gemm_k {
                va[i] = w[m * p.gemm_k + ka];
            }
        }
        stage_a(a_k, a_m, va);

        var vb: array<f32, LB>;
        if k0 + b_k < p.gemm_k {
            let channel = i32(tap.outer * p.in_spatial);
            let tz = i32(tap.z * p.dil_d);
            let ty = i32(tap.y * p.dil_h);
            let tx = i32(tap.x * p.dil_w);
            for (var j = 0u; j < LB; j++) {
                let iz = col_z[j] + tz;
                let iy = col_y[j] + ty;
                let ix = col_x[j] + tx;
                if inside_input(iz, iy, ix) {
                    vb[j] = x[u32(col_base[j] + channel + input_offset(iz, iy, ix))];
                }
            }
        }
        stage_b(b_k, b_n, vb);
        tap = add_digits(tap, tap_step, kernel_radix());

        workgroupBarrier();
        multiply_slice(&acc, tm, tn);
        workgroupBarrier();
    }

    for (var j = 0u; j < TN; j++) {
        let col = n0 + tn * TN + j;
        if col >= p.gemm_n {
            continue;
        }
        let batch = col / p.out_spatial;
        let pos = col % p.out_spatial;
        for (var i = 0u; i < TM; i++) {
            let m = m0 + tm * TM + i;
            if m < p.gemm_m {
                var v = acc_at(&acc, i, j);
                if p.has_bias != 0u {
                    v += bias[m];
                }
                y[(batch * p.o + m) * p.out_spatial + pos] = v;
            }
        }
    }
}

@compute @workgroup_size(WG)
fn backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let tiles_m = (p.gemm_m + BM - 1u) / BM;
    let g = workgroup_index(wid, nwg);
    if g >= tiles_m * p.tiles_n {
        return;
    }
    let m0 = (g / p.tiles_n) * BM;
    let n0 = (g % p.tiles_n) * BN;

    // A[c][k] = w[o, c, tap] for k = o * taps + tap.
    let a_k = lid / A_PER_ROW;
    let a_m = (lid % A_PER_ROW) * LA;
    var a_tap = split_index(a_k, kernel_radix());
    // B[k][col] = dy[batch, o, (in position + pad - tap * dil) / stride] when that is a whole
    // output position, for col = batch * in positions + in position.
    let b_k = lid / B_PER_ROW;
    let b_n = (lid % B_PER_ROW) * LB;
    var col_base: array<i32, LB>;  // batch offset into dy
    var col_z: array<i32, LB>;     // in coordinate + pad
    var col_y: array<i32, LB>;
    var col_x: array<i32, LB>;
    for (var j = 0u; j < LB; j++) {
        let col = n0 + b_n + j;
        let pos = split_index(col, in_radix());
        col_base[j] = i32(pos.outer * p.o * p.out_spatial);
        col_z[j] = select(OUTSIDE, i32(pos.z + p.pad_d), col < p.gemm_n);
        col_y[j] = i32(pos.y + p.pad_h);
        col_x[j] = i32(pos.x + p.pad_w);
    }
    var b_tap = split_index(b_k, kernel_radix());
    let tap_step = split_index(BK, kernel_radix());
    let stride = vec3(i32(p.stride_d), i32(p.stride_h), i32(p.stride_w));
    let out_size = vec3(p.out_d, p.out_h, p.out_w);

    let tm = lid / (BN / TN);
    let tn = lid % (BN / TN);
    var acc: array<vec4<f32>, ACC>;
    for (var k0 = 0u; k0 < p.gemm_k; k0 += BK) {
        var va: array<f32, LA>;
        if k0 + a_k < p.gemm_k {
            let tap = (a_tap.z * p.k_h + a_tap.y) * p.k_w + a_tap.x;
            let base = a_tap.outer * p.c * p.k_vol + tap;
            for (var i = 0u; i < LA; i++) {
                let c = m0 + a_m + i;
                if c < p.gemm_m {
                    va[i] = w[base + c * p.k_vol];
                }
            }
        }
        stage_a(a_k, a_m, va);
        a_tap = add_digits(a_tap, tap_step, kernel_radix());

        var vb: array<f32, LB>;
        if k0 + b_k < p.gemm_k {
            let channel = i32(b_tap.outer * p.out_spatial);
            let tz = i32(b_tap.z * p.dil_d);
            let ty = i32(b_tap.y * p.dil_h);
            let tx = i32(b_tap.x * p.dil_w);
            for (var j = 0u; j < LB; j++) {
                var oz = col_z[j] - tz;
                var oy = col_y[j] - ty;
                var ox = col_x[j] - tx;
                var hit = true;
                if p.unit_stride == 0u {
                    hit = oz >= 0 && oy >= 0 && ox >= 0 && oz % stride.x == 0
                        && oy % stride.y == 0 && ox % stride.z == 0;
                    oz /= stride.x;
                    oy /= stride.y;
                    ox /= stride.z;
                }
                hit = hit && u32(oz) < out_size.x && u32(oy) < out_size.y
                    && u32(ox) < out_size.z;
                if hit {
                    let at = (oz * i32(p.out_h) + oy) * i32(p.out_w) + ox;
                    vb[j] = dy[u32(col_base[j] + channel + at)];
                }
            }
        }
        stage_b(b_k, b_n, vb);
        b_tap = add_digits(b_tap, tap_step, kernel_radix());

        workgroupBarrier();
        multiply_slice(&acc, tm, tn);
        workgroupBarrier();
    }

    for (var j = 0u; j < TN; j++) {
        let col = n0 + tn * TN + j;
        if col >= p.gemm_n {
            continue;
        }
        let batch = col / p.in_spatial;
        let pos = col % p.in_spatial;
        for (var i = 0u; i < TM; i++) {
            let c = m0 + tm * TM + i;
            if c < p.gemm_m {
                dx[(batch * p.c + c) * p.in_spatial + pos] = acc_at(&acc, i, j);
            }
        }
    }
}

@compute @workgroup_size(WG)
fn backward_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let tiles_m = (p.gemm_m + BM - 1u) / BM;
    let tiles = tiles_m * p.tiles_n;
    let g = workgroup_index(wid, nwg);
    if g >= tiles * p.splits {
        return;
    }
    let split = g / tiles;
    let m0 = ((g % tiles) / p.tiles_n) * BM;
    let n0 = (g % p.tiles_n) * BN;
    let k_begin = split * p.split_len;
    let k_end = min(p.gemm_k, k_begin + p.split_len);

    // A[o][k] = dy[batch, o, out position] for k = batch * out positions + out position.
    let a_k = lid / A_PER_ROW;
    let a_m = (lid % A_PER_ROW) * LA;
    var a_pos = split_index(k_begin + a_k, out_radix());
    // B[k][col] = x[batch, c, out position * stride - pad + tap * dil] for col = c * taps + tap.
    let b_k = lid / B_PER_ROW;
    let b_n = (lid % B_PER_ROW) * LB;
    var col_base: array<i32, LB>;  // channel offset into x
    var col_z: array<i32, LB>;     // tap * dil - pad
    var col_y: array<i32, LB>;
    var col_x: array<i32, LB>;
    for (var j = 0u; j < LB; j++) {
        let col = n0 + b_n + j;
        let tap = split_index(col, kernel_radix());
        col_base[j] = i32(tap.outer * p.in_spatial);
        col_z[j] = select(OUTSIDE, i32(tap.z * p.dil_d) - i32(p.pad_d), col < p.gemm_n);
        col_y[j] = i32(tap.y * p.dil_h) - i32(p.pad_h);
        col_x[j] = i32(tap.x * p.dil_w) - i32(p.pad_w);
    }
    var b_pos = split_index(k_begin + b_k, out_radix());
    let pos_step = split_index(BK, out_radix());

    let tm = lid / (BN / TN);
    let tn = lid % (BN / TN);
    var acc: array<vec4<f32>, ACC>;
    for (var k0 = k_begin; k0 < k_end; k0 += BK) {
        var va: array<f32, LA>;
        if k0 + a_k < k_end {
            let at = (a_pos.z * p.out_h + a_pos.y) * p.out_w + a_pos.x;
            let base = a_pos.outer * p.o * p.out_spatial + at;
            for (var i = 0u; i < LA; i++) {
                let o = m0 + a_m + i;
                if o < p.gemm_m {
                    va[i] = dy_w[base + o * p.out_spatial];
                }
            }
        }
        stage_a(a_k, a_m, va);
        a_pos = add_digits(a_pos, pos_step, out_radix());

        var vb: array<f32, LB>;
        if k0 + b_k < k_end {
            let batch = i32(b_pos.outer * p.c * p.in_spatial);
            let rz = i32(b_pos.z * p.stride_d);
            let ry = i32(b_pos.y * p.stride_h);
            let rx = i32(b_pos.x * p.stride_w);
            for (var j = 0u; j < LB; j++) {
                let iz = rz + col_z[j];
                let iy = ry + col_y[j];
                let ix = rx + col_x[j];
                if inside_input(iz, iy, ix) {
                    vb[j] = x[u32(batch + col_base[j] + input_offset(iz, iy, ix))];
                }
            }
        }
        stage_b(b_k, b_n, vb);
        b_pos = add_digits(b_pos, pos_step, out_radix());

        workgroupBarrier();
        multiply_slice(&acc, tm, tn);
        workgroupBarrier();
    }

    for (var i = 0u; i < TM; i++) {
        let o = m0 + tm * TM + i;
        if o >= p.gemm_m {
            continue;
        }
        for (var j = 0u; j < TN; j++) {
            let col = n0 + tn * TN + j;
            if col < p.gemm_n {
                dw[(split * p.gemm_m + o) * p.gemm_n + col] = acc_at(&acc, i, j);
            }
        }
    }
}

const REDUCE_WG: u32 = 256u;

@compute @workgroup_size(REDUCE_WG)
fn weight_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * REDUCE_WG + lid;
    let count = p.gemm_m * p.gemm_n;
    if i >= count {
        return;
    }
    var total = 0.0;
    for (var s = 0u; s < p.splits; s++) {
        total += partial[s * count + i];
    }
    dw_sum[i] = total;
}

var<workgroup> bias_partial: array<f32, REDUCE_WG>;

@compute @workgroup_size(REDUCE_WG)
fn bias_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let o = workgroup_index(wid, nwg);
    if o >= p.o {
        return;
    }
    var total = 0.0;
    for (var batch = 0u; batch < p.n; batch++) {
        let base = (batch * p.o + o) * p.out_spatial;
        for (var pos = lid; pos < p.out_spatial; pos += REDUCE_WG) {
            total += dy[base + pos];
        }
    }
    bias_partial[lid] = total;
    for (var half = REDUCE_WG / 2u; half > 0u; half /= 2u) {
        workgroupBarrier();
        if lid < half {
            bias_partial[lid] += bias_partial[lid + half];
        }
    }
    if lid == 0u {
        db[o] = bias_partial[0];
    }
}
