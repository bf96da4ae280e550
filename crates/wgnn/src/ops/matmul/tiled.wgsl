// Batched matrix product on tiles staged in workgroup memory: the kernel for every device. The
// layout and the bindings are in common.wgsl.
//
// Tiling: one workgroup computes a 128 x 128 tile of C[b]. Its 64 invocations form an 8 x 8
// grid and each accumulates a 16 x 16 block in registers, as a 4 x 4 grid of mat4x4 blocks
// updated by outer products. K advances 8 at a time: the workgroup stages an 8 x 128 slab of
// op(A) and one of op(B) in workgroup memory (2 x 4 KiB), k-major so that 4 consecutive rows
// of A (or columns of B) at one k are one vec4; each invocation stages 4 vec4 of each. Per k an
// invocation then reads 8 vec4 and does 256 multiply-adds. Elements outside the matrices are
// staged as 0, so partial tiles need no other special case; only in-range outputs are written.
//
// Why so large a block: on CPU implementations (lavapipe) every load from workgroup or storage
// memory inside a loop costs a loop over the SIMD lanes, while arithmetic is one vector
// instruction, so speed follows multiply-adds per loaded value. 16 x 16 blocks with 128-wide
// tiles measured ~3x faster than 4 x 4 blocks with 64-wide tiles there; on discrete GPUs 256
// accumulators per invocation are still within register budgets.

#include "gpu/workgroup_index.wgsl"
#include "ops/matmul/common.wgsl"

const TILE: u32 = 128u;                  // rows and columns of C per workgroup
const TK: u32 = 8u;                      // depth of one staged slab
const GRID: u32 = 8u;                    // invocations along each side of the tile
const WG: u32 = GRID * GRID;
const BLOCK: u32 = TILE / GRID;          // 16 rows and columns of C per invocation
const QUADS: u32 = BLOCK / 4u;           // vec4 per block side
const SLAB: u32 = TK * TILE / 4u;        // vec4 per staged slab

// [k][m / 4] of op(A) and [k][n / 4] of op(B) for one slab.
var<workgroup> a_slab: array<vec4<f32>, SLAB>;
var<workgroup> b_slab: array<vec4<f32>, SLAB>;

// op(A[batch])(m, k), or 0 outside the matrix.
fn load_a(base: u32, m: u32, k: u32) -> f32 {
    let inside = m < p.m && k < p.k;
    let index = select(0u, base + m * p.a_m + k * p.a_k, inside);
    return select(0.0, a[index], inside);
}

// op(B[batch])(k, n), or 0 outside the matrix.
fn load_b(base: u32, k: u32, n: u32) -> f32 {
    let inside = k < p.k && n < p.n;
    let index = select(0u, base + k * p.b_k + n * p.b_n, inside);
    return select(0.0, b[index], inside);
}

// The 4 x 4 block (column j = column_values * row_values[j]): element (r, j) = col[r] * row[j].
fn outer(column_values: vec4<f32>, row_values: vec4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(column_values * row_values.x, column_values * row_values.y,
                       column_values * row_values.z, column_values * row_values.w);
}

// Writes the in-range part of a 4 x 4 block whose top-left element is C[m, n].
fn store_block(block: mat4x4<f32>, base: u32, m: u32, n: u32) {
    for (var r = 0u; r < 4u; r++) {
        if m + r < p.m {
            for (var j = 0u; j < 4u; j++) {
                if n + j < p.n {
                    c[base + (m + r) * p.n + n + j] = block[j][r];
                }
            }
        }
    }
}

@compute @workgroup_size(WG)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let tiles = p.tiles_m * p.tiles_n;
    let flat = workgroup_index(wid, nwg);
    if flat >= p.batch * tiles {
        return;
    }
    let batch = flat / tiles;
    let m0 = (flat % tiles) / p.tiles_n * TILE;
    let n0 = (flat % tiles) % p.tiles_n * TILE;
    let offsets = batch_offsets(batch);
    let a_base = offsets.x;
    let b_base = offsets.y;
    // This invocation's block: rows m0 + BLOCK * row .., columns n0 + BLOCK * col ..
    let row = lid / GRID;
    let col = lid % GRID;

    // acc_ij holds rows 4i..4i+3 and columns 4j..4j+3 of the block.
    var acc00 = mat4x4<f32>(); var acc01 = mat4x4<f32>();
    var acc02 = mat4x4<f32>(); var acc03 = mat4x4<f32>();
    var acc10 = mat4x4<f32>(); var acc11 = mat4x4<f32>();
    var acc12 = mat4x4<f32>(); var acc13 = mat4x4<f32>();
    var acc20 = mat4x4<f32>(); var acc21 = mat4x4<f32>();
    var acc22 = mat4x4<f32>(); var acc23 = mat4x4<f32>();
    var acc30 = mat4x4<f32>(); var acc31 = mat4x4<f32>();
    var acc32 = mat4x4<f32>(); var acc33 = mat4x4<f32>();

    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        // Stage the slab: vec4 e holds k = k0 + e / (TILE / 4), rows (or columns) 4 (e % 32) ..
        for (var s = 0u; s < SLAB / WG; s++) {
            let e = lid + s * WG;
            let k = k0 + e / (TILE / 4u);
            let q = e % (TILE / 4u) * 4u;
            let m = m0 + q;
            a_slab[e] = vec4<f32>(load_a(a_base, m, k), load_a(a_base, m + 1u, k),
                                  load_a(a_base, m + 2u, k), load_a(a_base, m + 3u, k));
            let n = n0 + q;
            b_slab[e] = vec4<f32>(load_b(b_base, k, n), load_b(b_base, k, n + 1u),
                                  load_b(b_base, k, n + 2u), load_b(b_base, k, n + 3u));
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let a_at = kk * (TILE / 4u) + row * QUADS;
            let b_at = kk * (TILE / 4u) + col * QUADS;
            let a0 = a_slab[a_at];
            let a1 = a_slab[a_at + 1u];
            let a2 = a_slab[a_at + 2u];
            let a3 = a_slab[a_at + 3u];
            let b0 = b_slab[b_at];
            let b1 = b_slab[b_at + 1u];
            let b2 = b_slab[b_at + 2u];
            let b3 = b_slab[b_at + 3u];
            acc00 += outer(a0, b0); acc01 += outer(a0, b1); acc02 += outer(a0, b2); acc03 += outer(a0, b3);
            acc10 += outer(a1, b0); acc11 += outer(a1, b1); acc12 += outer(a1, b2); acc13 += outer(a1, b3);
            acc20 += outer(a2, b0); acc21 += outer(a2, b1); acc22 += outer(a2, b2); acc23 += outer(a2, b3);
            acc30 += outer(a3, b0); acc31 += outer(a3, b1); acc32 += outer(a3, b2); acc33 += outer(a3, b3);
        }
        workgroupBarrier();
    }

    let base = batch * p.m * p.n;
    let m = m0 + row * BLOCK;
    let n = n0 + col * BLOCK;
    store_block(acc00, base, m, n);
    store_block(acc01, base, m, n + 4u);
    store_block(acc02, base, m, n + 8u);
    store_block(acc03, base, m, n + 12u);
    store_block(acc10, base, m + 4u, n);
    store_block(acc11, base, m + 4u, n + 4u);
    store_block(acc12, base, m + 4u, n + 8u);
    store_block(acc13, base, m + 4u, n + 12u);
    store_block(acc20, base, m + 8u, n);
    store_block(acc21, base, m + 8u, n + 4u);
    store_block(acc22, base, m + 8u, n + 8u);
    store_block(acc23, base, m + 8u, n + 12u);
    store_block(acc30, base, m + 12u, n);
    store_block(acc31, base, m + 12u, n + 4u);
    store_block(acc32, base, m + 12u, n + 8u);
    store_block(acc33, base, m + 12u, n + 12u);
}
