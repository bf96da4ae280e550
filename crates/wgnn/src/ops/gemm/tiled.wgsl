// GEMM building blocks on tiles staged in workgroup memory, included by the tiled variants of
// conv and gram. A workgroup of 64 invocations owns a BM x BN tile of the output and walks K in
// slices of BK = 16: the kernel stages the A slice (BK x BM) in `tile_a` and the B slice (BK x BN)
// in `tile_b`, k-major, as vec4s of 4 consecutive rows (columns), between barriers; then each
// invocation adds the slice's products to its 8 x 8 block of the output (`multiply_slice`),
// reading 4 vec4s of workgroup memory per 64 multiply-adds.
// Workgroup memory: 16 * (BM + BN) * 4 bytes (8 KiB at 64 x 64).
// Include this file after every override of the shader: the workgroup arrays' sizes make naga
// declare anonymous overrides here, and naga 30 panics when specialising an entry point whose
// named overrides come after those.

#include "ops/gemm/block4.wgsl"

override BM: u32 = 64u;  // tile rows (GEMM M): 16, 32 or 64, with BM * BN = 64 * 64
override BN: u32 = 64u;  // tile columns (GEMM N)
const BK: u32 = 16u;     // reduction rows per slice

var<workgroup> tile_a: array<vec4<f32>, BK * BM / 4u>;  // [k][m]
var<workgroup> tile_b: array<vec4<f32>, BK * BN / 4u>;  // [k][n]

// An 8 x 8 block of accumulators: row i of a quarter is accumulator row i (4 columns).
struct Block {
    top_left: mat4x4<f32>,
    top_right: mat4x4<f32>,
    bottom_left: mat4x4<f32>,
    bottom_right: mat4x4<f32>,
}

// The invocation's block: rows 8 tm.. and columns 8 tn.. of the tile.
fn block_row(lid: u32) -> u32 {
    return lid / (BN / 8u);
}

fn block_col(lid: u32) -> u32 {
    return lid % (BN / 8u);
}

// acc[i][j] += sum over the staged slice of A[8 tm + i][k] * B[k][8 tn + j].
fn multiply_slice(acc: Block, tm: u32, tn: u32) -> Block {
    var r = acc;
    for (var k = 0u; k < BK; k++) {
        let a0 = tile_a[k * (BM / 4u) + 2u * tm];
        let a1 = tile_a[k * (BM / 4u) + 2u * tm + 1u];
        let b0 = tile_b[k * (BN / 4u) + 2u * tn];
        let b1 = tile_b[k * (BN / 4u) + 2u * tn + 1u];
        r.top_left = fma_outer(r.top_left, a0, b0);
        r.top_right = fma_outer(r.top_right, a0, b1);
        r.bottom_left = fma_outer(r.bottom_left, a1, b0);
        r.bottom_right = fma_outer(r.bottom_right, a1, b1);
    }
    return r;
}
