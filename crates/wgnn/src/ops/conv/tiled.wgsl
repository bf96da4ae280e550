// Convolution forward, backward_input, backward_input_few_channels and backward_weight on tiles
// staged in workgroup memory (ops/gemm/tiled.wgsl): the kernels for every device. The GEMMs, the
// layout and the bindings are in common.wgsl.
//
// Tiling: a workgroup of 64 invocations owns a BM x BN tile of `out` (64 x 64, or 32 x 128 or
// 16 x 256 when M is small, chosen by the host through override constants) and walks K in slices
// of BK = 16, staging the A slice (16 x BM) and the B slice (16 x BN) in workgroup memory,
// k-major, as vec4s (16 * (BM + BN) * 4 B = 8, 10 or 17 KiB; the host picks 16 x 256 only where
// the device allows more than WebGPU's 16 KiB). Each invocation accumulates an 8 x 8 block of
// `out` in registers (four mat4x4 values), reading 4 vec4s of workgroup memory per 64
// multiply-adds.
// Staging: each invocation fills BM / 16 reduction rows x 4 adjacent columns of the A slice and
// BN / 16 rows x 4 columns of the B slice. The gather arithmetic of its 4 columns (batch,
// position) is done once; that of a reduction row is carried from row to row by mixed-radix
// addition rather than divisions.

#include "gpu/workgroup_index.wgsl"
#include "ops/conv/common.wgsl"
#include "ops/gemm/tiled.wgsl"

// ---- the GEMM skeleton ----

// The workgroup's tile of `out` and slice of K.
struct Tile {
    m0: u32,
    n0: u32,
    split: u32,
}

fn tile_of(wid: vec3<u32>, nwg: vec3<u32>) -> Tile {
    let tiles = ((p.gemm_m + BM - 1u) / BM) * p.tiles_n;
    let g = workgroup_index(wid, nwg);
    return Tile(((g % tiles) / p.tiles_n) * BM, (g % p.tiles_n) * BN, g / tiles);
}

// What an invocation stages of each slice of width `width`: `rows` reduction rows from `row`,
// at the 4 columns from `col`.
struct Staging {
    row: u32,
    col: u32,
    rows: u32,
}

fn staging(lid: u32, width: u32) -> Staging {
    let rows = BK * width / (4u * WG);
    return Staging((lid / (width / 4u)) * rows, (lid % (width / 4u)) * 4u, rows);
}

fn put_a(s: Staging, r: u32, v: vec4<f32>) {
    tile_a[(s.row + r) * (BM / 4u) + s.col / 4u] = v;
}

fn put_b(s: Staging, r: u32, v: vec4<f32>) {
    tile_b[(s.row + r) * (BN / 4u) + s.col / 4u] = v;
}

// ---- forward ----

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let tile = tile_of(wid, nwg);
    if tile.split > 0u {
        return;
    }
    // A[m][k] = w[m * K + k].
    let sa = staging(lid, BM);
    let a_rows = tile.m0 + sa.col + LANES;
    let a_ok = a_rows < vec4(p.gemm_m);
    // B[k][col] = x[batch, c, position * stride - pad + tap * dilation] for
    // col = batch * out positions + out position, k = c * taps + tap.
    let sb = staging(lid, BN);
    let g = forward_columns(tile.n0 + sb.col + LANES);
    var b_tap = split_index(sb.row, kernel_radix());  // (c, kz, ky, kx) of row k0 + sb.row
    let slice_step = split_index(BK, kernel_radix());

    let tm = block_row(lid);
    let tn = block_col(lid);
    var acc: Block;
    for (var k0 = 0u; k0 < p.gemm_k; k0 += BK) {
        for (var r = 0u; r < sa.rows; r++) {
            let k = k0 + sa.row + r;
            put_a(sa, r, load_w4(a_rows * p.gemm_k + k, a_ok & vec4(k < p.gemm_k)));
        }
        var tap = b_tap;
        for (var r = 0u; r < sb.rows; r++) {
            let tz = i32(tap.z * p.dil_d);
            let ty = i32(tap.y * p.dil_h);
            let tx = i32(tap.x * p.dil_w);
            let offset = i32(tap.outer * p.in_spatial) + (tz * i32(p.in_h) + ty) * i32(p.in_w)
                + tx;
            let ok = inside_input4(g.z + tz, g.y + ty, g.x + tx)
                & vec4(k0 + sb.row + r < p.gemm_k);
            put_b(sb, r, load_x4(g.base + offset, ok));
            tap = add_digits(tap, NEXT, kernel_radix());
        }
        b_tap = add_digits(b_tap, slice_step, kernel_radix());

        workgroupBarrier();
        acc = multiply_slice(acc, tm, tn);
        workgroupBarrier();
    }

    let out = out_columns(tile.n0 + 8u * tn, p.out_spatial, p.o * p.out_spatial, p.out_spatial,
                          0u);
    let m = tile.m0 + 8u * tm;
    store_y(out, m, acc.top_left, acc.top_right);
    store_y(out, m + 4u, acc.bottom_left, acc.bottom_right);
}

// Stores rows m..m+3 (x 8 columns) of y, adding the bias.
fn store_y(out: OutColumns, m: u32, left: mat4x4<f32>, right: mat4x4<f32>) {
    for (var i = 0u; i < 4u; i++) {
        let row = m + i;
        if row >= p.gemm_m {
            return;
        }
        var b = 0.0;
        if p.has_bias != 0u {
            b = bias[row];
        }
        let l = out.left + row * out.row_stride;
        let r = out.right + row * out.row_stride;
        let lv = forward_output(left[i] + b);
        let rv = forward_output(right[i] + b);
        for (var j = 0u; j < 4u; j++) {
            if out.left_valid[j] {
                y[l[j]] = lv[j];
            }
            if out.right_valid[j] {
                y[r[j]] = rv[j];
            }
        }
    }
}

// ---- backward_input ----

@compute @workgroup_size(WG)
fn backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let tile = tile_of(wid, nwg);
    if tile.split > 0u {
        return;
    }
    // A[c][k] = w[o, c, tap] for k = o * taps + tap.
    let sa = staging(lid, BM);
    let a_rows = tile.m0 + sa.col + LANES;
    let a_ok = a_rows < vec4(p.gemm_m);
    var a_tap = split_index(sa.row, kernel_radix());  // (o, kz, ky, kx) of row k0 + sa.row
    // B[k][col] = dy[batch, o, (position + pad - tap * dilation) / stride] where that is a whole
    // output position, for col = batch * in positions + in position.
    let sb = staging(lid, BN);
    let g = backward_input_columns(tile.n0 + sb.col + LANES);
    var b_tap = split_index(sb.row, kernel_radix());
    let slice_step = split_index(BK, kernel_radix());
    let stride = vec3(i32(p.stride_d), i32(p.stride_h), i32(p.stride_w));

    let tm = block_row(lid);
    let tn = block_col(lid);
    var acc: Block;
    for (var k0 = 0u; k0 < p.gemm_k; k0 += BK) {
        var tap = a_tap;
        for (var r = 0u; r < sa.rows; r++) {
            let flat_tap = (tap.z * p.k_h + tap.y) * p.k_w + tap.x;
            let index = vec4(tap.outer * p.c * p.k_vol + flat_tap) + a_rows * p.k_vol;
            put_a(sa, r, load_w4(index, a_ok & vec4(k0 + sa.row + r < p.gemm_k)));
            tap = add_digits(tap, NEXT, kernel_radix());
        }
        a_tap = add_digits(a_tap, slice_step, kernel_radix());

        tap = b_tap;
        for (var r = 0u; r < sb.rows; r++) {
            let tz = g.z - i32(tap.z * p.dil_d);
            let ty = g.y - i32(tap.y * p.dil_h);
            let tx = g.x - i32(tap.x * p.dil_w);
            let oz = exact_quotient(tz, stride.x);
            let oy = exact_quotient(ty, stride.y);
            let ox = exact_quotient(tx, stride.z);
            let ok = oz * stride.x == tz & oy * stride.y == ty & ox * stride.z == tx
                & vec4<u32>(oz) < vec4(p.out_d) & vec4<u32>(oy) < vec4(p.out_h)
                & vec4<u32>(ox) < vec4(p.out_w) & vec4(k0 + sb.row + r < p.gemm_k);
            let index = g.base + i32(tap.outer * p.out_spatial)
                + (oz * i32(p.out_h) + oy) * i32(p.out_w) + ox;
            put_b(sb, r, load_dy4(index, ok));
            tap = add_digits(tap, NEXT, kernel_radix());
        }
        b_tap = add_digits(b_tap, slice_step, kernel_radix());

        workgroupBarrier();
        acc = multiply_slice(acc, tm, tn);
        workgroupBarrier();
    }

    let out = out_columns(tile.n0 + 8u * tn, p.in_spatial, p.c * p.in_spatial, p.in_spatial, 0u);
    let m = tile.m0 + 8u * tm;
    store_dx(out, m, acc.top_left, acc.top_right);
    store_dx(out, m + 4u, acc.bottom_left, acc.bottom_right);
}

fn store_dx(out: OutColumns, m: u32, left: mat4x4<f32>, right: mat4x4<f32>) {
    for (var i = 0u; i < 4u; i++) {
        let row = m + i;
        if row >= p.gemm_m {
            return;
        }
        let l = out.left + row * out.row_stride;
        let r = out.right + row * out.row_stride;
        for (var j = 0u; j < 4u; j++) {
            if out.left_valid[j] {
                dx[l[j]] = left[i][j];
            }
            if out.right_valid[j] {
                dx[r[j]] = right[i][j];
            }
        }
    }
}

// ---- backward_input_few_channels ----
//
// dx for at most 4 input channels (an image's gradient), where the GEMM of backward_input would
// fill at most 4 of its 32 tile rows. Each invocation computes all C channels (the lanes of a
// vec4) of 4 input positions:
//   dx[batch, :, i] = sum over taps t hitting i, and o, of w[o, :, t] * dy[batch, o, (i + pad -
//   t * dil) / stride],
// a tap hitting i when i + pad - t * dil is a whole multiple of the stride (per dim) landing
// inside the output. Positions are enumerated by stride phase, i = q * stride + phase per dim,
// q in [0, ceil(in / stride)) (positions past the input are skipped); an invocation owns 4
// consecutive q along W: flat index = (batch * phases + phase) * blocks + (qz, qy, qx / 4).
// The taps hitting i depend on its phase only, so all the invocations of a workgroup but those at
// a phase boundary skip the same taps and never gather the dy of a missing tap; for a hitting
// tap, the 4 positions read 4 consecutive output positions q + (phase + pad - t * dil) / stride
// and share each weight they read.
// The weights are staged in workgroup memory as vec4s over c, [o][tap], for `o_chunk` output
// channels at a time (o_chunk * taps <= STAGE: 16 KiB, WebGPU's minimum, so taps <= 1024: the
// host checks).
// Measured on lavapipe, SqueezeNet's conv1 at 256 x 256 (the GEMM: 440 ms): one position per
// invocation 82 ms; 4 sharing each staged weight 38 ms; their missing outputs zeroed at the load
// rather than by per-tap partial sums (fewer live registers) 24 ms.
// Each position is summed by one invocation in a fixed order: deterministic.

const STAGE: u32 = 1024u;
var<workgroup> w_stage: array<vec4<f32>, STAGE>;

@compute @workgroup_size(WG)
fn backward_input_few_channels(@builtin(workgroup_id) wid: vec3<u32>,
                               @builtin(num_workgroups) nwg: vec3<u32>,
                               @builtin(local_invocation_index) lid: u32) {
    let stride = vec3(p.stride_d, p.stride_h, p.stride_w);
    let q_radix = (in_radix() + stride - 1u) / stride;
    let block_radix = vec3(q_radix.xy, (q_radix.z + 3u) / 4u);
    let blocks = block_radix.x * block_radix.y * block_radix.z;
    let phases = stride.x * stride.y * stride.z;
    let flat = workgroup_index(wid, nwg) * WG + lid;
    var q = split_index(flat % blocks, block_radix);
    q.x *= 4u;
    let phase = split_index((flat / blocks) % phases, stride);
    let batch = flat / (blocks * phases);
    let iz = q.z * stride.x + phase.z;
    let iy = q.y * stride.y + phase.y;
    let ix = q.x * stride.z + phase.x + stride.z * LANES;  // the 4 positions
    let inside = vec4(batch < p.n & iz < p.in_d & iy < p.in_h) & ix < vec4(p.in_w);
    // A tap t hits when reach - t * dil is a multiple of the stride (per dim); the quotient is
    // then the offset from output position q.
    let reach = vec3(i32(phase.z + p.pad_d), i32(phase.y + p.pad_h), i32(phase.x + p.pad_w));
    let dy_base = batch * p.o * p.out_spatial;

    var acc: Quad;
    for (var o0 = 0u; o0 < p.o; o0 += p.o_chunk) {
        let chunk = min(p.o_chunk, p.o - o0);
        workgroupBarrier();
        for (var e = lid; e < chunk * p.k_vol; e += WG) {
            let first = ((o0 + e / p.k_vol) * p.c) * p.k_vol + e % p.k_vol;
            w_stage[e] = load_w4(vec4(first) + LANES * p.k_vol, LANES < vec4(p.c));
        }
        workgroupBarrier();
        if any(inside) {
            acc = gather_chunk(acc, q, reach, dy_base + o0 * p.out_spatial, chunk);
        }
    }
    let base = batch * p.c * p.in_spatial + (iz * p.in_h + iy) * p.in_w;
    store_dx_channels(base + ix.x, inside.x, acc.a);
    store_dx_channels(base + ix.y, inside.y, acc.b);
    store_dx_channels(base + ix.z, inside.z, acc.c);
    store_dx_channels(base + ix.w, inside.w, acc.d);
}

// acc + the contributions of the staged chunk of output channels: for each tap hitting the
// positions, sum over o < chunk of dy[dy_first + o * out positions + output position] *
// w_stage[o][tap], where the 4 output positions exist.
fn gather_chunk(acc: Quad, q: Digits, reach: vec3<i32>, dy_first: u32, chunk: u32) -> Quad {
    let stride = vec3(i32(p.stride_d), i32(p.stride_h), i32(p.stride_w));
    var sum = acc;
    for (var kz = 0u; kz < p.k_d; kz++) {
        let tz = reach.x - i32(kz * p.dil_d);
        let oz = i32(q.z) + tz / stride.x;
        if tz % stride.x != 0 || u32(oz) >= p.out_d {
            continue;
        }
        for (var ky = 0u; ky < p.k_h; ky++) {
            let ty = reach.y - i32(ky * p.dil_h);
            let oy = i32(q.y) + ty / stride.y;
            if ty % stride.y != 0 || u32(oy) >= p.out_h {
                continue;
            }
            for (var kx = 0u; kx < p.k_w; kx++) {
                let tx = reach.z - i32(kx * p.dil_w);
                let ox = i32(q.x) + tx / stride.z;
                let ok = vec4<u32>(vec4(ox) + vec4<i32>(LANES)) < vec4(p.out_w);
                if tx % stride.z != 0 || !any(ok) {
                    continue;
                }
                let tap = (kz * p.k_h + ky) * p.k_w + kx;
                // Where a position's output is missing, its loads read a neighbour (or past
                // the end of dy, which WGSL bounds) and are replaced by 0.
                var index = dy_first + (u32(oz) * p.out_h + u32(oy)) * p.out_w + u32(ox);
                for (var o = 0u; o < chunk; o++) {
                    let wv = w_stage[o * p.k_vol + tap];
                    sum.a = fma(vec4(select(0.0, dy[index], ok.x)), wv, sum.a);
                    sum.b = fma(vec4(select(0.0, dy[index + 1u], ok.y)), wv, sum.b);
                    sum.c = fma(vec4(select(0.0, dy[index + 2u], ok.z)), wv, sum.c);
                    sum.d = fma(vec4(select(0.0, dy[index + 3u], ok.w)), wv, sum.d);
                    index += p.out_spatial;
                }
            }
        }
    }
    return sum;
}

// ---- backward_weight ----

@compute @workgroup_size(WG)
fn backward_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let tile = tile_of(wid, nwg);
    if tile.split >= p.splits {
        return;
    }
    let k_begin = tile.split * p.split_len;
    let k_end = min(p.gemm_k, k_begin + p.split_len);
    // A[o][k] = dy[batch, o, position] for k = batch * out positions + out position.
    let sa = staging(lid, BM);
    let a_rows = tile.m0 + sa.col + LANES;
    let a_ok = a_rows < vec4(p.gemm_m);
    var a_pos = split_index(k_begin + sa.row, out_radix());  // (batch, oz, oy, ox)
    // B[k][col] = x[batch, c, position * stride - pad + tap * dilation] for col = c * taps + tap.
    let sb = staging(lid, BN);
    let cols = tile.n0 + sb.col + LANES;
    let at = split4(cols, kernel_radix());
    var g: Coords4;
    g.base = at.base * i32(p.in_spatial);
    g.z = select(vec4(OUTSIDE), at.z * i32(p.dil_d) - i32(p.pad_d), cols < vec4(p.gemm_n));
    g.y = at.y * i32(p.dil_h) - i32(p.pad_h);
    g.x = at.x * i32(p.dil_w) - i32(p.pad_w);
    var b_pos = split_index(k_begin + sb.row, out_radix());
    let slice_step = split_index(BK, out_radix());

    let tm = block_row(lid);
    let tn = block_col(lid);
    var acc: Block;
    for (var k0 = k_begin; k0 < k_end; k0 += BK) {
        var pos = a_pos;
        for (var r = 0u; r < sa.rows; r++) {
            let flat_pos = (pos.z * p.out_h + pos.y) * p.out_w + pos.x;
            let index = vec4(pos.outer * p.o * p.out_spatial + flat_pos) + a_rows * p.out_spatial;
            put_a(sa, r, load_dy_w4(index, a_ok & vec4(k0 + sa.row + r < k_end)));
            pos = add_digits(pos, NEXT, out_radix());
        }
        a_pos = add_digits(a_pos, slice_step, out_radix());

        pos = b_pos;
        for (var r = 0u; r < sb.rows; r++) {
            let iz = g.z + i32(pos.z * p.stride_d);
            let iy = g.y + i32(pos.y * p.stride_h);
            let ix = g.x + i32(pos.x * p.stride_w);
            let ok = inside_input4(iz, iy, ix) & vec4(k0 + sb.row + r < k_end);
            let index = i32(pos.outer * p.c * p.in_spatial) + g.base + input_offset4(iz, iy, ix);
            put_b(sb, r, load_x4(index, ok));
            pos = add_digits(pos, NEXT, out_radix());
        }
        b_pos = add_digits(b_pos, slice_step, out_radix());

        workgroupBarrier();
        acc = multiply_slice(acc, tm, tn);
        workgroupBarrier();
    }

    // dw, or slice `split` of the partial sums: [o][col] at (split * M + o) * N + col.
    let out = out_columns(tile.n0 + 8u * tn, p.gemm_n, 0u, p.gemm_n,
                          tile.split * p.gemm_m * p.gemm_n);
    let m = tile.m0 + 8u * tm;
    store_dw(out, m, acc.top_left, acc.top_right);
    store_dw(out, m + 4u, acc.bottom_left, acc.bottom_right);
}

fn store_dw(out: OutColumns, m: u32, left: mat4x4<f32>, right: mat4x4<f32>) {
    for (var i = 0u; i < 4u; i++) {
        let row = m + i;
        if row >= p.gemm_m {
            return;
        }
        let l = out.left + row * out.row_stride;
        let r = out.right + row * out.row_stride;
        for (var j = 0u; j < 4u; j++) {
            if out.left_valid[j] {
                dw[l[j]] = left[i][j];
            }
            if out.right_valid[j] {
                dw[r[j]] = right[i][j];
            }
        }
    }
}
