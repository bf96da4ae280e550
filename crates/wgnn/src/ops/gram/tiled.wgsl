// Gram forward and backward on tiles staged in workgroup memory: the kernels for every device.
// The shapes, the split forward pass and the bindings are in common.wgsl.
//
// Tiling (both kernels, on ops/gemm/tiled.wgsl's tiles of 64 x 64): 64 invocations as an 8 x 8
// grid (tx = lid % 8, ty = lid / 8) own a 64 x 64 output tile; each invocation accumulates an
// 8 x 8 block (rows 8ty..8ty+7, columns 8tx..8tx+7) in four mat4x4 values. The reduction runs
// in steps of 16: both operand tiles (64 x 16 each, stored step-major as vec4s of 4 consecutive
// rows or columns: 2 x 4 KiB of workgroup memory) are loaded cooperatively, 4 vec4s per
// invocation per operand, then each invocation does 64 multiply-adds per 4 vec4 reads of
// workgroup memory. On lavapipe every workgroup read is a gather over the SIMD lanes, which
// bounds these kernels: the 8 x 8 block (4 reads per 64 multiply-adds) ran the style-transfer
// step's Gram matrices, and gram/c256_hw4096, 1.2x faster than a 4 x 8 block (3 reads per 32).
// The tiles fit any device's 16 KiB of workgroup memory. Out-of-range rows and columns load as 0
// and are not written.
//
// forward: G is symmetric, so only tiles (ti, tj) with ti <= tj are computed (flat workgroup
// index = (split * N + b) * pairs + upper-triangular pair index; row_tiles = ceil(C / 64),
// tiles = pairs) and an off-diagonal tile is also written transposed; a diagonal tile computes
// both G[i][j] and G[j][i] from the same products, so G is exactly symmetric.
// backward: one workgroup per (b, 64-row tile of dF, 64-column tile of dF): tiles = row_tiles *
// col_tiles, col_tiles = ceil(HW / 64); the (dG + dG^T) tile is summed while loading.

#include "gpu/workgroup_index.wgsl"
#include "ops/gram/common.wgsl"
#include "ops/gemm/tiled.wgsl"

const TILE: u32 = 64u;
const QUADS: u32 = 16u; // TILE / 4
const STEP: u32 = 16u;
const WX: u32 = 8u;
const WG: u32 = 64u;

// F[b, row, k], 0 outside the matrix.
fn feature(base: u32, row: u32, k: u32) -> f32 {
    if row < p.c && k < p.hw {
        return f[base + row * p.hw + k];
    }
    return 0.0;
}

// Four rows row..row+3 of F at column k.
fn feature_rows(base: u32, row: u32, k: u32) -> vec4<f32> {
    return vec4<f32>(feature(base, row, k), feature(base, row + 1u, k),
                     feature(base, row + 2u, k), feature(base, row + 3u, k));
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let w = workgroup_index(wid, nwg);
    if w >= p.splits * p.batch * p.tiles {
        return;
    }
    // slice: split * N + b, the partial Gram matrix this workgroup writes into.
    let slice = w / p.tiles;
    let b = slice % p.batch;
    let k_begin = (slice / p.batch) * p.k_split;
    let k_end = min(k_begin + p.k_split, p.hw);
    // Upper-triangular pair index -> (ti, tj), ti <= tj, row by row.
    var t = w % p.tiles;
    var ti = 0u;
    loop {
        let in_row = p.row_tiles - ti;
        if t < in_row {
            break;
        }
        t -= in_row;
        ti++;
    }
    let tj = ti + t;
    let i0 = ti * TILE;
    let j0 = tj * TILE;
    let base = b * p.c * p.hw;
    let tx = lid % WX;
    let ty = lid / WX;

    var acc: Block;
    for (var k0 = k_begin; k0 < k_end; k0 += STEP) {
        // Slot e of a tile: step e % 16 of rows 4 * (e / 16)..+3 (consecutive invocations read
        // consecutive columns of F).
        for (var slot = 0u; slot < STEP * QUADS / WG; slot++) {
            let e = lid + slot * WG;
            let k = e % STEP;
            let quad = e / STEP;
            tile_a[k * QUADS + quad] = feature_rows(base, i0 + quad * 4u, k0 + k);
            tile_b[k * QUADS + quad] = feature_rows(base, j0 + quad * 4u, k0 + k);
        }
        workgroupBarrier();
        acc = multiply_slice(acc, ty, tx);
        workgroupBarrier();
    }

    // Constant indices into acc only: a dynamic index would force it out of registers.
    let out = slice * p.c * p.c;
    let mirror = ti != tj;
    let i = i0 + ty * 8u;
    let j = j0 + tx * 8u;
    store_gram_row(out, i, j, acc.top_left[0], acc.top_right[0], mirror);
    store_gram_row(out, i + 1u, j, acc.top_left[1], acc.top_right[1], mirror);
    store_gram_row(out, i + 2u, j, acc.top_left[2], acc.top_right[2], mirror);
    store_gram_row(out, i + 3u, j, acc.top_left[3], acc.top_right[3], mirror);
    store_gram_row(out, i + 4u, j, acc.bottom_left[0], acc.bottom_right[0], mirror);
    store_gram_row(out, i + 5u, j, acc.bottom_left[1], acc.bottom_right[1], mirror);
    store_gram_row(out, i + 6u, j, acc.bottom_left[2], acc.bottom_right[2], mirror);
    store_gram_row(out, i + 7u, j, acc.bottom_left[3], acc.bottom_right[3], mirror);
}

// G[b, i, j..j+7] = (lo, hi) * scale, and the transposed column when `mirror`.
fn store_gram_row(out: u32, i: u32, j: u32, lo: vec4<f32>, hi: vec4<f32>, mirror: bool) {
    if i >= p.c {
        return;
    }
    for (var c = 0u; c < 8u; c++) {
        if j + c < p.c {
            let v = select(hi[c % 4u], lo[c % 4u], c < 4u) * p.scale;
            g[out + i * p.c + j + c] = v;
            if mirror {
                g[out + (j + c) * p.c + i] = v;
            }
        }
    }
}

// (dG + dG^T)[b, i, j], 0 outside the matrix.
fn symmetric_grad(base: u32, i: u32, j: u32) -> f32 {
    if i < p.c && j < p.c {
        return dg[base + i * p.c + j] + dg[base + j * p.c + i];
    }
    return 0.0;
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let w = workgroup_index(wid, nwg);
    if w >= p.batch * p.tiles {
        return;
    }
    let b = w / p.tiles;
    let t = w % p.tiles;
    let i0 = (t / p.col_tiles) * TILE;
    let k0 = (t % p.col_tiles) * TILE;
    let f_base = b * p.c * p.hw;
    let g_base = b * p.c * p.c;
    let tx = lid % WX;
    let ty = lid / WX;

    var acc: Block;
    for (var j0 = 0u; j0 < p.c; j0 += STEP) {
        for (var slot = 0u; slot < STEP * QUADS / WG; slot++) {
            let e = lid + slot * WG;
            // lhs: (dG + dG^T) at column j0 + e % 16, rows i0 + 4 * (e / 16)..+3.
            let j = j0 + e % STEP;
            let i = i0 + (e / STEP) * 4u;
            tile_a[(e % STEP) * QUADS + e / STEP] = vec4<f32>(
                symmetric_grad(g_base, i, j), symmetric_grad(g_base, i + 1u, j),
                symmetric_grad(g_base, i + 2u, j), symmetric_grad(g_base, i + 3u, j));
            // rhs: F at row j0 + e / 16, columns k0 + 4 * (e % 16)..+3 (consecutive
            // invocations read consecutive columns).
            let row = j0 + e / QUADS;
            let k = k0 + (e % QUADS) * 4u;
            tile_b[e] = vec4<f32>(feature(f_base, row, k), feature(f_base, row, k + 1u),
                               feature(f_base, row, k + 2u), feature(f_base, row, k + 3u));
        }
        workgroupBarrier();
        acc = multiply_slice(acc, ty, tx);
        workgroupBarrier();
    }

    let i = i0 + ty * 8u;
    let k = k0 + tx * 8u;
    store_grad_row(f_base, i, k, acc.top_left[0], acc.top_right[0]);
    store_grad_row(f_base, i + 1u, k, acc.top_left[1], acc.top_right[1]);
    store_grad_row(f_base, i + 2u, k, acc.top_left[2], acc.top_right[2]);
    store_grad_row(f_base, i + 3u, k, acc.top_left[3], acc.top_right[3]);
    store_grad_row(f_base, i + 4u, k, acc.bottom_left[0], acc.bottom_right[0]);
    store_grad_row(f_base, i + 5u, k, acc.bottom_left[1], acc.bottom_right[1]);
    store_grad_row(f_base, i + 6u, k, acc.bottom_left[2], acc.bottom_right[2]);
    store_grad_row(f_base, i + 7u, k, acc.bottom_left[3], acc.bottom_right[3]);
}

// dF[b, i, k..k+7] = (lo, hi) * scale.
fn store_grad_row(base: u32, i: u32, k: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if i >= p.c {
        return;
    }
    for (var c = 0u; c < 8u; c++) {
        if k + c < p.hw {
            df[base + i * p.hw + k + c] = select(hi[c % 4u], lo[c % 4u], c < 4u) * p.scale;
        }
    }
}
