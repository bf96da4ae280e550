// Convolution forward and backward_input GEMMs for devices with subgroup operations: appended to
// conv.wgsl (Params, bindings and index helpers come from there) and compiled only where the
// device has subgroups of at least 8 invocations.
//
// The same GEMMs as conv.wgsl's forward and backward_input (out[M, N] = A[M, K] * B[K, N],
// gathered on the fly), without workgroup memory, on subgroup_prelude.wgsl's blocks: each
// invocation owns 4 adjacent columns of `out` and ROWS rows (8, 16 or 32, chosen by the host from
// M), so a workgroup of 64 owns a ROWS x 256 tile; it gathers B[k..k+4][its 4 columns] itself, and
// its lane loads A's rows for the subgroup. SqueezeNet's convolution GEMMs ran 3-4x faster than
// conv.wgsl's tiles on lavapipe.
// Contract: subgroups of at least 8 invocations (the host checks the adapter's minimum) and
// workgroups that are whole subgroups (64 is a multiple of every size from 8 to 64). Every
// invocation runs the loop in uniform control flow (no early exit) so that subgroups are full at
// each broadcast; workgroups and columns past the end of the GEMM compute on clamped indices and
// store nothing. Rows past M load clamped rows and are not stored. Each output is one
// invocation's sum in a fixed order: deterministic.

const BCAST_COLS: u32 = 256u;  // 4 columns x 64 invocations

// The workgroup's tile: rows m0.., columns n0.. (n0 + 4 * lid for this invocation); `valid`
// is false for workgroups past the end (the dispatch may round up).
struct BcastTile {
    m0: u32,
    n: u32,
    valid: bool,
}

fn bcast_tile(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> BcastTile {
    let tiles = ((p.gemm_m + ROWS - 1u) / ROWS) * p.tiles_n;
    let g = workgroup_index(wid, nwg);
    let t = min(g, tiles - 1u);
    return BcastTile((t / p.tiles_n) * ROWS, (t % p.tiles_n) * BCAST_COLS + 4u * lid, g < tiles);
}

// The rows this lane loads: m0 + 8 g + lane for each row group g, clamped to M - 1.
fn lane_rows(m0: u32, lane: u32) -> vec4<u32> {
    return min(vec4(m0 + lane) + vec4(0u, 8u, 16u, 24u), vec4(p.gemm_m - 1u));
}

// Stores the 4 columns of rows m..m+3 (column i of `v` is row m + i) at out[column + row *
// row_stride], where the row is below M and the column valid.
fn store_rows4(out: OutColumns, m: u32, v: mat4x4<f32>, add_bias: bool) {
    for (var i = 0u; i < 4u; i++) {
        let row = m + i;
        if row < p.gemm_m {
            var b = 0.0;
            if add_bias {
                b = bias[row];
            }
            let at = out.left + row * out.row_stride;
            let value = forward_output(v[i] + b);
            for (var j = 0u; j < 4u; j++) {
                if out.left_valid[j] {
                    y[at[j]] = value[j];
                }
            }
        }
    }
}

// ---- forward ----

@compute @workgroup_size(64)
fn forward_broadcast(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32,
                     @builtin(subgroup_invocation_id) lane_id: u32) {
    let tile = bcast_tile(wid, nwg, lid);
    // A[m][k] = w[m * K + k]: this lane's rows.
    let rows = lane_rows(tile.m0, lane_id % 8u) * p.gemm_k;
    // B[k][col] = x[batch, c, position * stride - pad + tap * dilation], as in conv.wgsl.
    let cols = tile.n + LANES;
    let at = split4(cols, out_radix());
    var g: Coords4;
    g.z = at.z * i32(p.stride_d) - i32(p.pad_d);
    g.y = at.y * i32(p.stride_h) - i32(p.pad_h);
    g.x = at.x * i32(p.stride_w) - i32(p.pad_w);
    g.base = at.base * i32(p.c * p.in_spatial) + input_offset4(g.z, g.y, g.x);
    g.z = select(vec4(OUTSIDE), g.z, cols < vec4(p.gemm_n));
    var tap = Digits(0u, 0u, 0u, 0u);  // (c, kz, ky, kx) of row k

    var acc: AccRows;
    for (var k0 = 0u; k0 < p.gemm_k; k0 += 4u) {
        let ks = vec4(k0) + LANES;
        let k_ok = ks < vec4(p.gemm_k);
        let kc = min(ks, vec4(p.gemm_k - 1u));
        var a: LaneRows;
        a.g0 = load_w4(vec4(rows.x) + kc, k_ok);
        if ROW_GROUPS > 1u {
            a.g1 = load_w4(vec4(rows.y) + kc, k_ok);
        }
        if ROW_GROUPS > 2u {
            a.g2 = load_w4(vec4(rows.z) + kc, k_ok);
            a.g3 = load_w4(vec4(rows.w) + kc, k_ok);
        }
        var b: mat4x4<f32>;
        for (var kk = 0u; kk < 4u; kk++) {
            let tz = i32(tap.z * p.dil_d);
            let ty = i32(tap.y * p.dil_h);
            let tx = i32(tap.x * p.dil_w);
            let offset = i32(tap.outer * p.in_spatial) + (tz * i32(p.in_h) + ty) * i32(p.in_w)
                + tx;
            let ok = inside_input4(g.z + tz, g.y + ty, g.x + tx) & vec4(k0 + kk < p.gemm_k);
            b[kk] = load_x4(g.base + offset, ok);
            tap = add_digits(tap, NEXT, kernel_radix());
        }
        acc = multiply_rows(acc, a, b);
    }

    if tile.valid {
        let out = out_columns(tile.n, p.out_spatial, p.o * p.out_spatial, p.out_spatial, 0u);
        let has_bias = p.has_bias != 0u;
        store_rows4(out, tile.m0, acc.g0.top, has_bias);
        store_rows4(out, tile.m0 + 4u, acc.g0.bottom, has_bias);
        if ROW_GROUPS > 1u {
            store_rows4(out, tile.m0 + 8u, acc.g1.top, has_bias);
            store_rows4(out, tile.m0 + 12u, acc.g1.bottom, has_bias);
        }
        if ROW_GROUPS > 2u {
            store_rows4(out, tile.m0 + 16u, acc.g2.top, has_bias);
            store_rows4(out, tile.m0 + 20u, acc.g2.bottom, has_bias);
            store_rows4(out, tile.m0 + 24u, acc.g3.top, has_bias);
            store_rows4(out, tile.m0 + 28u, acc.g3.bottom, has_bias);
        }
    }
}

// ---- backward_input ----

// Stride 1 in every dim: every tap's output position is whole, so the divisions are skipped
// (the host sets it; SqueezeNet's 3 x 3 input gradients ran 1.3x faster).
override UNIT_STRIDE: bool = false;

fn store_dx_rows4(out: OutColumns, m: u32, v: mat4x4<f32>) {
    for (var i = 0u; i < 4u; i++) {
        let row = m + i;
        if row < p.gemm_m {
            let at = out.left + row * out.row_stride;
            for (var j = 0u; j < 4u; j++) {
                if out.left_valid[j] {
                    dx[at[j]] = v[i][j];
                }
            }
        }
    }
}

@compute @workgroup_size(64)
fn backward_input_broadcast(@builtin(workgroup_id) wid: vec3<u32>,
                            @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32,
                            @builtin(subgroup_invocation_id) lane_id: u32) {
    let tile = bcast_tile(wid, nwg, lid);
    // A[c][k] = w[o, c, tap] for k = o * taps + tap: this lane's rows c.
    let rows = lane_rows(tile.m0, lane_id % 8u) * p.k_vol;
    // B[k][col] = dy[batch, o, (position + pad - tap * dilation) / stride] where that is a whole
    // output position, as in conv.wgsl.
    let cols = tile.n + LANES;
    let at = split4(cols, in_radix());
    var g: Coords4;
    g.base = at.base * i32(p.o * p.out_spatial);
    g.z = select(vec4(OUTSIDE), at.z + i32(p.pad_d), cols < vec4(p.gemm_n));
    g.y = at.y + i32(p.pad_h);
    g.x = at.x + i32(p.pad_w);
    let stride = vec3(i32(p.stride_d), i32(p.stride_h), i32(p.stride_w));
    var tap = Digits(0u, 0u, 0u, 0u);  // (o, kz, ky, kx) of row k

    var acc: AccRows;
    for (var k0 = 0u; k0 < p.gemm_k; k0 += 4u) {
        var a_offset: vec4<u32>;
        var b: mat4x4<f32>;
        for (var kk = 0u; kk < 4u; kk++) {
            a_offset[kk] = tap.outer * p.c * p.k_vol + (tap.z * p.k_h + tap.y) * p.k_w + tap.x;
            let tz = g.z - i32(tap.z * p.dil_d);
            let ty = g.y - i32(tap.y * p.dil_h);
            let tx = g.x - i32(tap.x * p.dil_w);
            var oz = tz;
            var oy = ty;
            var ox = tx;
            var whole = vec4(true);
            if !UNIT_STRIDE {
                oz = exact_quotient(tz, stride.x);
                oy = exact_quotient(ty, stride.y);
                ox = exact_quotient(tx, stride.z);
                whole = oz * stride.x == tz & oy * stride.y == ty & ox * stride.z == tx;
            }
            let ok = whole & vec4<u32>(oz) < vec4(p.out_d) & vec4<u32>(oy) < vec4(p.out_h)
                & vec4<u32>(ox) < vec4(p.out_w) & vec4(k0 + kk < p.gemm_k);
            let index = g.base + i32(tap.outer * p.out_spatial)
                + (oz * i32(p.out_h) + oy) * i32(p.out_w) + ox;
            b[kk] = load_dy4(index, ok);
            tap = add_digits(tap, NEXT, kernel_radix());
        }
        let k_ok = vec4(k0) + LANES < vec4(p.gemm_k);
        var a: LaneRows;
        a.g0 = load_w4(vec4(rows.x) + a_offset, k_ok);
        if ROW_GROUPS > 1u {
            a.g1 = load_w4(vec4(rows.y) + a_offset, k_ok);
        }
        if ROW_GROUPS > 2u {
            a.g2 = load_w4(vec4(rows.z) + a_offset, k_ok);
            a.g3 = load_w4(vec4(rows.w) + a_offset, k_ok);
        }
        acc = multiply_rows(acc, a, b);
    }

    if tile.valid {
        let out = out_columns(tile.n, p.in_spatial, p.c * p.in_spatial, p.in_spatial, 0u);
        store_dx_rows4(out, tile.m0, acc.g0.top);
        store_dx_rows4(out, tile.m0 + 4u, acc.g0.bottom);
        if ROW_GROUPS > 1u {
            store_dx_rows4(out, tile.m0 + 8u, acc.g1.top);
            store_dx_rows4(out, tile.m0 + 12u, acc.g1.bottom);
        }
        if ROW_GROUPS > 2u {
            store_dx_rows4(out, tile.m0 + 16u, acc.g2.top);
            store_dx_rows4(out, tile.m0 + 20u, acc.g2.bottom);
            store_dx_rows4(out, tile.m0 + 24u, acc.g3.top);
            store_dx_rows4(out, tile.m0 + 28u, acc.g3.bottom);
        }
    }
}
