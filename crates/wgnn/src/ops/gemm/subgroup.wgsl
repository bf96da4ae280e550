// GEMM building blocks on subgroup broadcasts, included by the subgroup variants of conv, matmul
// and gram (shaders with `Shader::subgroups`, which the runtime compiles only where subgroups
// have at least 8 invocations: `Gpu::subgroup_broadcast`).
//
// Blocks for kernels in which each invocation owns 4 adjacent columns of the output
// and ROWS = 8 * ROW_GROUPS rows, walking K 4 at a time: the invocation at lane j of its subgroup
// (j = subgroup_invocation_id % 8) loads row 8 g + j of A (for each row group g) at the 4 k, and
// `spread` broadcasts it to every lane, so 8 rows of A cost one load per lane.
// Why: lavapipe runs 8 invocations in the lanes of one SIMD register and turns every load from
// storage or workgroup memory into a loop over the lanes, while a broadcast from a constant lane
// is one extract and one splat. Tiles staged in workgroup memory (ops/gemm/tiled.wgsl) read 4
// vec4s of it per 64 multiply-adds per invocation; here an invocation does 16 * ROWS
// multiply-adds per 16 + 4 * ROW_GROUPS loads.
// Subgroups must be full at each broadcast: kernels run their loops in uniform control flow.

#include "ops/gemm/block4.wgsl"

override ROW_GROUPS: u32 = 4u;  // 1, 2 or 4
override ROWS: u32 = 8u * ROW_GROUPS;
// Blocks of ROWS rows per workgroup tile, 1 or 2 (64 rows with ROW_GROUPS = 4, for M above 32:
// each load of B serves twice the rows), in the kernels that take it (the `_vec4` ones); the
// others take 1.
override ROW_BLOCKS: u32 = 1u;

// Columns of a workgroup's tile in the kernels of 64 invocations: 4 each.
const BCAST_COLS: u32 = 256u;

// The rows this lane loads: m0 + 8 g + lane for each row group g, clamped to `last`.
fn lane_rows(m0: u32, lane: u32, last: u32) -> vec4<u32> {
    return min(vec4(m0 + lane) + vec4(0u, 8u, 16u, 24u), vec4(last));
}

// Eight rows' values at 4 consecutive k (each a vec4 over k), from lanes 0..7.
struct Rows8 {
    r0: vec4<f32>,
    r1: vec4<f32>,
    r2: vec4<f32>,
    r3: vec4<f32>,
    r4: vec4<f32>,
    r5: vec4<f32>,
    r6: vec4<f32>,
    r7: vec4<f32>,
}

fn spread(v: vec4<f32>) -> Rows8 {
    return Rows8(subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u),
                 subgroupBroadcast(v, 3u), subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u),
                 subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u));
}

// Accumulators of 8 rows x 4 columns: column i of `top` is row i, of `bottom` row 4 + i.
struct Acc8 {
    top: mat4x4<f32>,
    bottom: mat4x4<f32>,
}

// acc + sum over kk < 4 of A[row][k + kk] * B[k + kk][columns], the rows' values in `a`
// (component kk) and B's in column kk of `b`.
fn multiply8(acc: Acc8, a: Rows8, b: mat4x4<f32>) -> Acc8 {
    var r = acc;
    r.top = fma_outer(r.top, vec4(a.r0.x, a.r1.x, a.r2.x, a.r3.x), b[0]);
    r.bottom = fma_outer(r.bottom, vec4(a.r4.x, a.r5.x, a.r6.x, a.r7.x), b[0]);
    r.top = fma_outer(r.top, vec4(a.r0.y, a.r1.y, a.r2.y, a.r3.y), b[1]);
    r.bottom = fma_outer(r.bottom, vec4(a.r4.y, a.r5.y, a.r6.y, a.r7.y), b[1]);
    r.top = fma_outer(r.top, vec4(a.r0.z, a.r1.z, a.r2.z, a.r3.z), b[2]);
    r.bottom = fma_outer(r.bottom, vec4(a.r4.z, a.r5.z, a.r6.z, a.r7.z), b[2]);
    r.top = fma_outer(r.top, vec4(a.r0.w, a.r1.w, a.r2.w, a.r3.w), b[3]);
    r.bottom = fma_outer(r.bottom, vec4(a.r4.w, a.r5.w, a.r6.w, a.r7.w), b[3]);
    return r;
}

// The ROWS x 4 accumulators of an invocation, one Acc8 per row group.
struct AccRows {
    g0: Acc8,
    g1: Acc8,
    g2: Acc8,
    g3: Acc8,
}

// A's values of this lane's rows (one per row group) at 4 consecutive k.
struct LaneRows {
    g0: vec4<f32>,
    g1: vec4<f32>,
    g2: vec4<f32>,
    g3: vec4<f32>,
}

fn multiply_rows(acc: AccRows, a: LaneRows, b: mat4x4<f32>) -> AccRows {
    var r = acc;
    r.g0 = multiply8(r.g0, spread(a.g0), b);
    if ROW_GROUPS > 1u {
        r.g1 = multiply8(r.g1, spread(a.g1), b);
    }
    if ROW_GROUPS > 2u {
        r.g2 = multiply8(r.g2, spread(a.g2), b);
        r.g3 = multiply8(r.g3, spread(a.g3), b);
    }
    return r;
}
