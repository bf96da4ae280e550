// Batched matrix product on subgroup broadcasts, compiled only where the device has subgroups of
// at least 8 invocations. The layout and the bindings are in common.wgsl.
//
// The same C[b] = op(A[b]) op(B[b]) as tiled.wgsl, without workgroup memory, on
// ops/gemm/subgroup.wgsl's blocks: each invocation owns 4 adjacent columns of C[b] and ROWS rows
// (8, 16 or 32, chosen by the host from M; 64 in matmul_broadcast_vec4 with ROW_BLOCKS = 2), so
// a workgroup of 64 owns a tile of that many rows x 256 columns; it loads op(B)[k..k+4][its 4
// columns] itself, and its lane loads op(A)'s rows for the subgroup. The host sets tiles_m =
// ceil(M / tile rows) and tiles_n = ceil(N / 256); workgroup index = batch * tiles_m * tiles_n +
// row tile * tiles_n + column tile.
// Contract: subgroups of at least 8 invocations and workgroups that are whole subgroups (64 is a
// multiple of every size from 8 to 64). Every invocation runs the loop in uniform control flow
// (no early exit) so that subgroups are full at each broadcast: rows and columns past the end
// load clamped indices and store nothing, as do workgroups past the end of the dispatch. Each
// output is one invocation's sum over k in order: deterministic.

#include "gpu/workgroup_index.wgsl"
#include "ops/matmul/common.wgsl"
#include "ops/gemm/subgroup.wgsl"

// matmul_broadcast_vec4 reads the operands as vec4s: one load where lavapipe would loop over the
// lanes 4 times. The host picks it when op(A) is stored [M, K] and K % 4 == 0 (a lane's 4 k of a
// row are one vec4), and when op(B)'s 4 values at hand are one vec4 too: B stored [K, N] with
// N % 4 == 0 (B_COLUMNS false: 4 columns at one k), or stored [N, K] with K % 4 == 0 (B_COLUMNS
// true: 4 k of one column). Every offset, batch strides included, is then a multiple of 4.
override B_COLUMNS: bool = false;
@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;

fn load_a4(index: vec4<u32>, ok: vec4<bool>) -> vec4<f32> {
    let i = select(vec4(0u), index, ok);
    return select(vec4(0.0), vec4(a[i.x], a[i.y], a[i.z], a[i.w]), ok);
}

fn load_b4(index: vec4<u32>, ok: vec4<bool>) -> vec4<f32> {
    let i = select(vec4(0u), index, ok);
    return select(vec4(0.0), vec4(b[i.x], b[i.y], b[i.z], b[i.w]), ok);
}

// The workgroup's tile of C[batch]: rows m0.., this invocation's columns n..n+3; `valid` is
// false for workgroups past the end (the dispatch may round up).
struct BcastTile {
    batch: u32,
    m0: u32,
    n: u32,
    valid: bool,
    // Element offsets of this lane's rows of op(A) (one per row group, clamped to M - 1) at
    // k = 0 (a_rows_high: those of the second block of rows), and of this invocation's columns
    // of op(B) (clamped to N - 1) at k = 0.
    a_rows: vec4<u32>,
    a_rows_high: vec4<u32>,
    b_cols: vec4<u32>,
}

fn bcast_tile(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, lane: u32) -> BcastTile {
    let tiles = p.tiles_m * p.tiles_n;
    let total = p.batch * tiles;
    let w = workgroup_index(wid, nwg);
    let wc = min(w, total - 1u);
    let batch = wc / tiles;
    let m0 = ((wc % tiles) / p.tiles_n) * ROWS * ROW_BLOCKS;
    let n = ((wc % tiles) % p.tiles_n) * BCAST_COLS + 4u * lid;
    let rows = lane_rows(m0, lane, p.m - 1u);
    let rows_high = lane_rows(m0 + ROWS, lane, p.m - 1u);
    let cols = min(vec4(n) + LANES, vec4(p.n - 1u));
    let offsets = batch_offsets(batch);
    let a_base = vec4(offsets.x);
    return BcastTile(batch, m0, n, w < total, a_base + rows * p.a_m, a_base + rows_high * p.a_m,
                     vec4(offsets.y) + cols * p.b_n);
}

// C[row][n..n+3] at base + row * N + n.., the row below M and the columns below N.
fn store_row4(base: u32, row: u32, n: u32, v: vec4<f32>) {
    if row < p.m {
        for (var j = 0u; j < 4u; j++) {
            if n + j < p.n {
                c[base + row * p.n + n + j] = v[j];
            }
        }
    }
}

fn store_rows8(base: u32, m: u32, n: u32, acc: Acc8) {
    for (var i = 0u; i < 4u; i++) {
        store_row4(base, m + i, n, acc.top[i]);
        store_row4(base, m + 4u + i, n, acc.bottom[i]);
    }
}

// Rows m0.. of the tile t.
fn store_tile_rows(t: BcastTile, m0: u32, acc: AccRows) {
    if t.valid {
        let base = t.batch * p.m * p.n;
        store_rows8(base, m0, t.n, acc.g0);
        if ROW_GROUPS > 1u {
            store_rows8(base, m0 + 8u, t.n, acc.g1);
        }
        if ROW_GROUPS > 2u {
            store_rows8(base, m0 + 16u, t.n, acc.g2);
            store_rows8(base, m0 + 24u, t.n, acc.g3);
        }
    }
}

@compute @workgroup_size(64)
fn matmul_broadcast(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32,
                    @builtin(subgroup_invocation_id) lane_id: u32) {
    let t = bcast_tile(wid, nwg, lid, lane_id % 8u);
    var acc: AccRows;
    for (var k0 = 0u; k0 < p.k; k0 += 4u) {
        let ks = vec4(k0) + LANES;
        let ok = ks < vec4(p.k);
        let a_ks = ks * p.a_k;
        var lanes: LaneRows;
        lanes.g0 = load_a4(vec4(t.a_rows.x) + a_ks, ok);
        if ROW_GROUPS > 1u {
            lanes.g1 = load_a4(vec4(t.a_rows.y) + a_ks, ok);
        }
        if ROW_GROUPS > 2u {
            lanes.g2 = load_a4(vec4(t.a_rows.z) + a_ks, ok);
            lanes.g3 = load_a4(vec4(t.a_rows.w) + a_ks, ok);
        }
        var op_b: mat4x4<f32>;
        for (var kk = 0u; kk < 4u; kk++) {
            op_b[kk] = load_b4(t.b_cols + (k0 + kk) * p.b_k, vec4(ok[kk]));
        }
        acc = multiply_rows(acc, lanes, op_b);
    }
    store_tile_rows(t, t.m0, acc);
}

@compute @workgroup_size(64)
fn matmul_broadcast_vec4(@builtin(workgroup_id) wid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32,
                         @builtin(subgroup_invocation_id) lane_id: u32) {
    let t = bcast_tile(wid, nwg, lid, lane_id % 8u);
    let a_rows = t.a_rows / 4u;
    let a_rows_high = t.a_rows_high / 4u;
    var acc: AccRows;
    var acc_high: AccRows;
    for (var k0 = 0u; k0 < p.k; k0 += 4u) {
        var lanes: LaneRows;
        lanes.g0 = a4[a_rows.x + k0 / 4u];
        if ROW_GROUPS > 1u {
            lanes.g1 = a4[a_rows.y + k0 / 4u];
        }
        if ROW_GROUPS > 2u {
            lanes.g2 = a4[a_rows.z + k0 / 4u];
            lanes.g3 = a4[a_rows.w + k0 / 4u];
        }
        var op_b: mat4x4<f32>;
        if B_COLUMNS {
            // Column j of B's 4 k, one vec4 each: op_b is their transpose.
            let at = (t.b_cols + k0) / 4u;
            op_b = transpose(mat4x4(b4[at.x], b4[at.y], b4[at.z], b4[at.w]));
        } else {
            let at = (t.b_cols.x + k0 * p.b_k) / 4u;
            let row = p.b_k / 4u;
            op_b = mat4x4(b4[at], b4[at + row], b4[at + 2u * row], b4[at + 3u * row]);
        }
        acc = multiply_rows(acc, lanes, op_b);
        if ROW_BLOCKS > 1u {
            var high: LaneRows;
            high.g0 = a4[a_rows_high.x + k0 / 4u];
            high.g1 = a4[a_rows_high.y + k0 / 4u];
            high.g2 = a4[a_rows_high.z + k0 / 4u];
            high.g3 = a4[a_rows_high.w + k0 / 4u];
            acc_high = multiply_rows(acc_high, high, op_b);
        }
    }
    store_tile_rows(t, t.m0, acc);
    if ROW_BLOCKS > 1u {
        store_tile_rows(t, t.m0 + ROWS, acc_high);
    }
}
