// Batched matrix product for devices with subgroup operations: appended to matmul.wgsl (Params,
// bindings and the stride convention come from there) and compiled only where the device has
// subgroups of at least 8 invocations.
//
// The same C[b] = op(A[b]) op(B[b]) as matmul.wgsl, without workgroup memory, on
// subgroup_prelude.wgsl's blocks: each invocation owns 4 adjacent columns of C[b] and ROWS rows
// (8, 16 or 32, chosen by the host from M), so a workgroup of 64 owns a ROWS x 256 tile; it loads
// op(B)[k..k+4][its 4 columns] itself, and its lane loads op(A)'s rows for the subgroup. The
// host sets tiles_m = ceil(M / ROWS) and tiles_n = ceil(N / 256); workgroup index = batch *
// tiles_m * tiles_n + row tile * tiles_n + column tile.
// Contract: subgroups of at least 8 invocations and workgroups that are whole subgroups (64 is a
// multiple of every size from 8 to 64). Every invocation runs the loop in uniform control flow
// (no early exit) so that subgroups are full at each broadcast: rows and columns past the end
// load clamped indices and store nothing, as do workgroups past the end of the dispatch. Each
// output is one invocation's sum over k in order: deterministic.

const BCAST_COLS: u32 = 256u;  // 4 columns x 64 invocations
const COLUMN_LANES: vec4<u32> = vec4(0u, 1u, 2u, 3u);

fn load_a4(index: vec4<u32>, ok: vec4<bool>) -> vec4<f32> {
    let i = select(vec4(0u), index, ok);
    return select(vec4(0.0), vec4(a[i.x], a[i.y], a[i.z], a[i.w]), ok);
}

fn load_b4(index: vec4<u32>, ok: vec4<bool>) -> vec4<f32> {
    let i = select(vec4(0u), index, ok);
    return select(vec4(0.0), vec4(b[i.x], b[i.y], b[i.z], b[i.w]), ok);
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

@compute @workgroup_size(64)
fn matmul_broadcast(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32,
                    @builtin(subgroup_invocation_id) lane_id: u32) {
    let tiles = p.tiles_m * p.tiles_n;
    let total = p.batch * tiles;
    let w = workgroup_index(wid, nwg);
    let wc = min(w, total - 1u);
    let batch = wc / tiles;
    let m0 = ((wc % tiles) / p.tiles_n) * ROWS;
    let n = ((wc % tiles) % p.tiles_n) * BCAST_COLS + 4u * lid;
    // op(A)(m, k) = a[batch * a_batch + m * a_m + k * a_k]: this lane's rows, one per row group.
    let rows = min(vec4(m0 + lane_id % 8u) + vec4(0u, 8u, 16u, 24u), vec4(p.m - 1u));
    let a_rows = vec4(batch * p.a_batch) + rows * p.a_m;
    // op(B)(k, n) = b[batch * b_batch + k * b_k + n * b_n]: this invocation's 4 columns.
    let cols = min(vec4(n) + COLUMN_LANES, vec4(p.n - 1u));
    let b_cols = vec4(batch * p.b_batch) + cols * p.b_n;

    var acc: AccRows;
    for (var k0 = 0u; k0 < p.k; k0 += 4u) {
        let ks = vec4(k0) + COLUMN_LANES;
        let ok = ks < vec4(p.k);
        let a_ks = ks * p.a_k;
        var lanes: LaneRows;
        lanes.g0 = load_a4(vec4(a_rows.x) + a_ks, ok);
        if ROW_GROUPS > 1u {
            lanes.g1 = load_a4(vec4(a_rows.y) + a_ks, ok);
        }
        if ROW_GROUPS > 2u {
            lanes.g2 = load_a4(vec4(a_rows.z) + a_ks, ok);
            lanes.g3 = load_a4(vec4(a_rows.w) + a_ks, ok);
        }
        var op_b: mat4x4<f32>;
        for (var kk = 0u; kk < 4u; kk++) {
            op_b[kk] = load_b4(b_cols + (k0 + kk) * p.b_k, vec4(ok[kk]));
        }
        acc = multiply_rows(acc, lanes, op_b);
    }

    if w < total {
        let base = batch * p.m * p.n;
        store_rows8(base, m0, n, acc.g0);
        if ROW_GROUPS > 1u {
            store_rows8(base, m0 + 8u, n, acc.g1);
        }
        if ROW_GROUPS > 2u {
            store_rows8(base, m0 + 16u, n, acc.g2);
            store_rows8(base, m0 + 24u, n, acc.g3);
        }
    }
}
