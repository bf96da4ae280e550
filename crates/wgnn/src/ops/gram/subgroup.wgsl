// Gram forward and backward on subgroup broadcasts, compiled only where the device has subgroups
// of at least 8 invocations; ops/gemm/subgroup.wgsl's blocks (each invocation owns 4 adjacent
// output columns and ROWS rows; its lane loads rows of the left operand that `spread` shares with
// the subgroup). The same results as tiled.wgsl's kernels, 2-4x faster on lavapipe. The shapes,
// the split forward pass and the bindings are in common.wgsl.
//
// forward_broadcast: G[b] = F F^T * scale. A workgroup of 16 owns a 32 x 64 tile (rows i0..,
// columns j0..), walking HW (or the split's range of it) 4 columns of F at a time. G is
// symmetric: row block ti (32 rows) computes only the column blocks tj >= ti / 2, the tiles not
// wholly below the diagonal (flat index = (split * N + b) * tiles + index in that order;
// row_tiles = ceil(C / 32), col_tiles = ceil(C / 64), tiles = the sum over ti of col_tiles -
// ti / 2). An element whose mirror G[j][i] falls in a skipped tile writes it too; products
// commute, so both halves are exactly equal.
// backward_broadcast: dF[b] = S F * scale with S = dG + dG^T, summed beforehand by
// symmetric_sum. A workgroup of 64 owns ROWS rows x 256 columns of dF (row_tiles = ceil(C / ROWS),
// col_tiles = ceil(HW / 256), tiles = row_tiles * col_tiles).
// Contract: lanes 0..7 of every subgroup active (subgroups of at least 8; the workgroups are
// multiples of 8); loops in uniform control flow, workgroups past the end compute on clamped
// indices and store nothing; each output is one invocation's sum in a fixed order.

#include "gpu/workgroup_index.wgsl"
#include "ops/gram/common.wgsl"
#include "ops/gemm/subgroup.wgsl"

const GRAM_ROWS: u32 = 32u;         // forward tile rows (ROW_GROUPS = 4)
const GRAM_COLS: u32 = 64u;         // forward tile columns: 4 x 16 invocations

fn load_f4(index: vec4<u32>, ok: vec4<bool>) -> vec4<f32> {
    let i = select(vec4(0u), index, ok);
    return select(vec4(0.0), vec4(f[i.x], f[i.y], f[i.z], f[i.w]), ok);
}

// Whether G[j][i] (for G[i][j] computed here) lies in a tile that forward_broadcast skips.
fn mirror_skipped(i: u32, j: u32) -> bool {
    return (j / GRAM_ROWS) * GRAM_ROWS >= (i / GRAM_COLS) * GRAM_COLS + GRAM_COLS;
}

// G[i][j..j+3] = v * scale, and the mirrored elements that no tile computes.
fn store_gram4(out: u32, i: u32, j: u32, v: vec4<f32>) {
    if i < p.c {
        for (var c = 0u; c < 4u; c++) {
            let jj = j + c;
            if jj < p.c {
                let value = v[c] * p.scale;
                g[out + i * p.c + jj] = value;
                if mirror_skipped(i, jj) {
                    g[out + jj * p.c + i] = value;
                }
            }
        }
    }
}

fn store_gram8(out: u32, i: u32, j: u32, acc: Acc8) {
    for (var r = 0u; r < 4u; r++) {
        store_gram4(out, i + r, j, acc.top[r]);
        store_gram4(out, i + 4u + r, j, acc.bottom[r]);
    }
}

@compute @workgroup_size(16)
fn forward_broadcast(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32,
                     @builtin(subgroup_invocation_id) lane_id: u32) {
    let total = p.splits * p.batch * p.tiles;
    let w = workgroup_index(wid, nwg);
    let wc = min(w, total - 1u);
    let slice = wc / p.tiles;
    let b = slice % p.batch;
    let k_begin = (slice / p.batch) * p.k_split;
    let k_end = min(k_begin + p.k_split, p.hw);
    // Tile index -> (ti, tj): row block ti holds col_tiles - ti / 2 tiles.
    var t = wc % p.tiles;
    var ti = 0u;
    loop {
        let in_row = p.col_tiles - ti / 2u;
        if t < in_row {
            break;
        }
        t -= in_row;
        ti++;
    }
    let i0 = ti * GRAM_ROWS;
    let j = (ti / 2u + t) * GRAM_COLS + 4u * lid;
    let base = b * p.c * p.hw;
    let rows = lane_rows(i0, lane_id % 8u, p.c - 1u) * p.hw + base;
    let cols = min(vec4(j) + LANES, vec4(p.c - 1u)) * p.hw + base;

    var acc: AccRows;
    for (var k0 = k_begin; k0 < k_end; k0 += 4u) {
        let ks = vec4(k0) + LANES;
        let ok = ks < vec4(k_end);
        var a: LaneRows;
        a.g0 = load_f4(vec4(rows.x) + ks, ok);
        a.g1 = load_f4(vec4(rows.y) + ks, ok);
        a.g2 = load_f4(vec4(rows.z) + ks, ok);
        a.g3 = load_f4(vec4(rows.w) + ks, ok);
        var m: mat4x4<f32>;
        for (var kk = 0u; kk < 4u; kk++) {
            m[kk] = load_f4(cols + k0 + kk, vec4(ok[kk]));
        }
        acc = multiply_rows(acc, a, m);
    }

    if w < total {
        let out = slice * p.c * p.c;
        store_gram8(out, i0, j, acc.g0);
        store_gram8(out, i0 + 8u, j, acc.g1);
        store_gram8(out, i0 + 16u, j, acc.g2);
        store_gram8(out, i0 + 24u, j, acc.g3);
    }
}

const SUM_WG: u32 = 256u;

// S = dG + dG^T, elementwise over [N, C, C] (count elements): dG at binding 1 (`f`), S at
// binding 2 (`g`), for backward_broadcast, which then loads one value per element of its left
// operand instead of two.
@compute @workgroup_size(SUM_WG)
fn symmetric_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let e = workgroup_index(wid, nwg) * SUM_WG + lid;
    if e < p.count {
        let ij = e % (p.c * p.c);
        let transposed = e - ij + (ij % p.c) * p.c + ij / p.c;
        g[e] = f[e] + f[transposed];
    }
}

// S[b][row][j..j+3] (dg holds S = dG + dG^T), 0 where `ok` is false.
fn symmetric_grad4(base: u32, row: u32, js: vec4<u32>, ok: vec4<bool>) -> vec4<f32> {
    let i = select(vec4(0u), vec4(base + row * p.c) + js, ok);
    return select(vec4(0.0), vec4(dg[i.x], dg[i.y], dg[i.z], dg[i.w]), ok);
}

// dF[i][k..k+3] = v * scale where the row and columns exist.
fn store_grad4(base: u32, i: u32, k: u32, v: vec4<f32>) {
    if i < p.c {
        for (var c = 0u; c < 4u; c++) {
            if k + c < p.hw {
                df[base + i * p.hw + k + c] = v[c] * p.scale;
            }
        }
    }
}

fn store_grad8(base: u32, i: u32, k: u32, acc: Acc8) {
    for (var r = 0u; r < 4u; r++) {
        store_grad4(base, i + r, k, acc.top[r]);
        store_grad4(base, i + 4u + r, k, acc.bottom[r]);
    }
}

@compute @workgroup_size(64)
fn backward_broadcast(@builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32,
                      @builtin(subgroup_invocation_id) lane_id: u32) {
    let total = p.batch * p.tiles;
    let w = workgroup_index(wid, nwg);
    let wc = min(w, total - 1u);
    let b = wc / p.tiles;
    let t = wc % p.tiles;
    let i0 = (t / p.col_tiles) * ROWS;
    let k = (t % p.col_tiles) * BCAST_COLS + 4u * lid;
    let f_base = b * p.c * p.hw;
    let g_base = b * p.c * p.c;
    let rows = lane_rows(i0, lane_id % 8u, p.c - 1u);
    let cols = min(vec4(k) + LANES, vec4(p.hw - 1u)) + f_base;

    var acc: AccRows;
    for (var j0 = 0u; j0 < p.c; j0 += 4u) {
        let js = vec4(j0) + LANES;
        let ok = js < vec4(p.c);
        var a: LaneRows;
        a.g0 = symmetric_grad4(g_base, rows.x, js, ok);
        if ROW_GROUPS > 1u {
            a.g1 = symmetric_grad4(g_base, rows.y, js, ok);
        }
        if ROW_GROUPS > 2u {
            a.g2 = symmetric_grad4(g_base, rows.z, js, ok);
            a.g3 = symmetric_grad4(g_base, rows.w, js, ok);
        }
        var m: mat4x4<f32>;
        for (var kk = 0u; kk < 4u; kk++) {
            m[kk] = load_f4(cols + (j0 + kk) * p.hw, vec4(ok[kk]));
        }
        acc = multiply_rows(acc, a, m);
    }

    if w < total {
        store_grad8(f_base, i0, k, acc.g0);
        if ROW_GROUPS > 1u {
            store_grad8(f_base, i0 + 8u, k, acc.g1);
        }
        if ROW_GROUPS > 2u {
            store_grad8(f_base, i0 + 16u, k, acc.g2);
            store_grad8(f_base, i0 + 24u, k, acc.g3);
        }
    }
}
