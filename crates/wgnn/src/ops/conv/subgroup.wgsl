// Convolution forward, backward_input (with transpose_weight), backward_input_few_channels and
// backward_weight on subgroup broadcasts, compiled only where the device has subgroups of at
// least 8 invocations. The GEMMs, the layout and the bindings are in common.wgsl.
//
// The same GEMMs as tiled.wgsl's forward, backward_input and backward_weight (out[M, N] =
// A[M, K] * B[K, N], gathered on the fly), without workgroup memory, on ops/gemm/subgroup.wgsl's
// blocks: each invocation owns 4 adjacent columns of `out` and ROWS rows (8, 16 or 32, chosen by
// the host from M; 64 in two blocks in the `_vec4` kernels for M above 32), so a workgroup of 64
// owns a ROWS x 256 tile; it gathers B[k..k+4][its 4 columns] itself, and its lane loads A's rows
// for the subgroup. SqueezeNet's convolution GEMMs ran 3-4x faster than tiled.wgsl's on lavapipe.
// Contract: subgroups of at least 8 invocations (the host checks the adapter's minimum) and
// workgroups that are whole subgroups (64 is a multiple of every size from 8 to 64). Every
// invocation runs the loop in uniform control flow (no early exit) so that subgroups are full at
// each broadcast; workgroups and columns past the end of the GEMM compute on clamped indices and
// store nothing. Rows past M load clamped rows and are not stored. Each output is one
// invocation's sum in a fixed order: deterministic.

#include "gpu/workgroup_index.wgsl"
#include "ops/conv/common.wgsl"
#include "ops/gemm/subgroup.wgsl"

// The workgroup's tile: rows m0.., columns n0.. (n0 + 4 * lid for this invocation); `valid`
// is false for workgroups past the end (the dispatch may round up).
struct BcastTile {
    m0: u32,
    n: u32,
    valid: bool,
}

fn bcast_tile(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> BcastTile {
    let tile_rows = ROWS * ROW_BLOCKS;
    let tiles = ((p.gemm_m + tile_rows - 1u) / tile_rows) * p.tiles_n;
    let g = workgroup_index(wid, nwg);
    let t = min(g, tiles - 1u);
    return BcastTile((t / p.tiles_n) * tile_rows, (t % p.tiles_n) * BCAST_COLS + 4u * lid,
                     g < tiles);
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

// B[k][col] = x[batch, c, position * stride - pad + tap * dilation] for the invocation's 4
// columns, as in tiled.wgsl, and the digits (c, kz, ky, kx) of k.
struct ForwardGather {
    g: Coords4,
    tap: Digits,
}

fn forward_gather(tile: BcastTile) -> ForwardGather {
    return ForwardGather(forward_columns(tile.n + LANES), Digits(0u, 0u, 0u, 0u));
}

// B's rows k0..k0+3 (column kk is row k0 + kk).
fn forward_step(gather: ptr<function, ForwardGather>, k0: u32) -> mat4x4<f32> {
    let g = (*gather).g;
    var tap = (*gather).tap;
    var b: mat4x4<f32>;
    for (var kk = 0u; kk < 4u; kk++) {
        let tz = i32(tap.z * p.dil_d);
        let ty = i32(tap.y * p.dil_h);
        let tx = i32(tap.x * p.dil_w);
        let offset = i32(tap.outer * p.in_spatial) + (tz * i32(p.in_h) + ty) * i32(p.in_w) + tx;
        let ok = inside_input4(g.z + tz, g.y + ty, g.x + tx) & vec4(k0 + kk < p.gemm_k);
        b[kk] = load_x4(g.base + offset, ok);
        tap = add_digits(tap, NEXT, kernel_radix());
    }
    (*gather).tap = tap;
    return b;
}

// Rows m0.. of the tile.
fn store_forward_rows(tile: BcastTile, m0: u32, acc: AccRows) {
    if tile.valid {
        let out = out_columns(tile.n, p.out_spatial, p.o * p.out_spatial, p.out_spatial, 0u);
        let has_bias = p.has_bias != 0u;
        store_rows4(out, m0, acc.g0.top, has_bias);
        store_rows4(out, m0 + 4u, acc.g0.bottom, has_bias);
        if ROW_GROUPS > 1u {
            store_rows4(out, m0 + 8u, acc.g1.top, has_bias);
            store_rows4(out, m0 + 12u, acc.g1.bottom, has_bias);
        }
        if ROW_GROUPS > 2u {
            store_rows4(out, m0 + 16u, acc.g2.top, has_bias);
            store_rows4(out, m0 + 20u, acc.g2.bottom, has_bias);
            store_rows4(out, m0 + 24u, acc.g3.top, has_bias);
            store_rows4(out, m0 + 28u, acc.g3.bottom, has_bias);
        }
    }
}

@compute @workgroup_size(64)
fn forward_broadcast(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32,
                     @builtin(subgroup_invocation_id) lane_id: u32) {
    let tile = bcast_tile(wid, nwg, lid);
    // A[m][k] = w[m * K + k]: this lane's rows.
    let rows = lane_rows(tile.m0, lane_id % 8u, p.gemm_m - 1u) * p.gemm_k;
    var gather = forward_gather(tile);
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
        acc = multiply_rows(acc, a, forward_step(&gather, k0));
    }
    store_forward_rows(tile, tile.m0, acc);
}

// forward_broadcast_vec4, for K = C * taps a multiple of 4 (then a row's 4 k of a step are one
// aligned vec4 of w: one load where lavapipe loops over the lanes 4 times), with ROW_BLOCKS
// blocks of ROWS rows per tile (2: 64 rows, for M above 32, half the gathers of x per
// multiply-add; 1.27-1.35x on conv2d_forward).
@group(0) @binding(2) var<storage, read> w_v4: array<vec4<f32>>;

// A lane's vec4s of w_v4 at `offset` past the starts of its rows `rows` (one per row group; with
// ROW_BLOCKS = 2, ROW_GROUPS is 4, so the upper block loads all four too).
fn w_rows(rows: vec4<u32>, offset: u32) -> LaneRows {
    var a: LaneRows;
    a.g0 = w_v4[rows.x + offset];
    if ROW_GROUPS > 1u {
        a.g1 = w_v4[rows.y + offset];
    }
    if ROW_GROUPS > 2u {
        a.g2 = w_v4[rows.z + offset];
        a.g3 = w_v4[rows.w + offset];
    }
    return a;
}

@compute @workgroup_size(64)
fn forward_broadcast_vec4(@builtin(workgroup_id) wid: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32,
                          @builtin(subgroup_invocation_id) lane_id: u32) {
    let tile = bcast_tile(wid, nwg, lid);
    let rows = lane_rows(tile.m0, lane_id % 8u, p.gemm_m - 1u) * (p.gemm_k / 4u);
    let rows_high = lane_rows(tile.m0 + ROWS, lane_id % 8u, p.gemm_m - 1u) * (p.gemm_k / 4u);
    var gather = forward_gather(tile);
    var acc: AccRows;
    var acc_high: AccRows;
    for (var k0 = 0u; k0 < p.gemm_k; k0 += 4u) {
        let b = forward_step(&gather, k0);
        let first = k0 / 4u;
        acc = multiply_rows(acc, w_rows(rows, first), b);
        if ROW_BLOCKS > 1u {
            acc_high = multiply_rows(acc_high, w_rows(rows_high, first), b);
        }
    }
    store_forward_rows(tile, tile.m0, acc);
    if ROW_BLOCKS > 1u {
        store_forward_rows(tile, tile.m0 + ROWS, acc_high);
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

// Rows m0.. of the tile.
fn store_dx_tile(tile: BcastTile, m0: u32, acc: AccRows) {
    if tile.valid {
        let out = out_columns(tile.n, p.in_spatial, p.c * p.in_spatial, p.in_spatial, 0u);
        store_dx_rows4(out, m0, acc.g0.top);
        store_dx_rows4(out, m0 + 4u, acc.g0.bottom);
        if ROW_GROUPS > 1u {
            store_dx_rows4(out, m0 + 8u, acc.g1.top);
            store_dx_rows4(out, m0 + 12u, acc.g1.bottom);
        }
        if ROW_GROUPS > 2u {
            store_dx_rows4(out, m0 + 16u, acc.g2.top);
            store_dx_rows4(out, m0 + 20u, acc.g2.bottom);
            store_dx_rows4(out, m0 + 24u, acc.g3.top);
            store_dx_rows4(out, m0 + 28u, acc.g3.bottom);
        }
    }
}

// B's columns: this invocation's 4 input positions (plus padding), as (batch offset into dy,
// z, y, x); columns past N get z = OUTSIDE, which no tap brings inside.
fn backward_input_gather(tile: BcastTile) -> Coords4 {
    return backward_input_columns(tile.n + LANES);
}

@compute @workgroup_size(64)
fn backward_input_broadcast(@builtin(workgroup_id) wid: vec3<u32>,
                            @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32,
                            @builtin(subgroup_invocation_id) lane_id: u32) {
    let tile = bcast_tile(wid, nwg, lid);
    // A[c][k] = w[o, c, tap] for k = o * taps + tap: this lane's rows c.
    let rows = lane_rows(tile.m0, lane_id % 8u, p.gemm_m - 1u) * p.k_vol;
    // B[k][col] = dy[batch, o, (position + pad - tap * dilation) / stride] where that is a whole
    // output position, as in tiled.wgsl.
    let g = backward_input_gather(tile);
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

    store_dx_tile(tile, tile.m0, acc);
}

// ---- backward_input, transposed weights ----
//
// backward_input_broadcast reads A = W' across w's layout: its 4 k of a step are 4 scalar loads
// per row (and those of different o lie C * taps apart). For O a multiple of 4 the op first
// copies w [O, C * taps] transposed to wt [C * taps, O] (transpose_weight, each run: the weights
// change between steps) and backward_input_broadcast_vec4 orders K as k = tap * O + o: a row's 4
// k of a step are one aligned vec4 of wt, and they share one tap, so the step's dy positions
// and their bounds are those of the tap (computed once per tap, not per k), the 4 k reading
// output channels o0..o0+3 of them. Tiles of ROW_BLOCKS x ROWS rows as in forward_broadcast_vec4.

@group(0) @binding(1) var<storage, read> w_source: array<f32>;
@group(0) @binding(2) var<storage, read_write> w_transposed: array<vec4<f32>>;

// wt[ct][o..o+3] = w[o..o+3][ct] for ct = c * taps + tap: one vec4 of wt per invocation.
@compute @workgroup_size(64)
fn transpose_weight(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    let quads = p.o / 4u;
    let row = p.c * p.k_vol;
    if i < row * quads {
        let first = 4u * (i % quads) * row + i / quads;
        w_transposed[i] = vec4(w_source[first], w_source[first + row],
                               w_source[first + 2u * row], w_source[first + 3u * row]);
    }
}

@compute @workgroup_size(64)
fn backward_input_broadcast_vec4(@builtin(workgroup_id) wid: vec3<u32>,
                                 @builtin(num_workgroups) nwg: vec3<u32>,
                                 @builtin(local_invocation_index) lid: u32,
                                 @builtin(subgroup_invocation_id) lane_id: u32) {
    let tile = bcast_tile(wid, nwg, lid);
    // A[c][k] = wt[c * K + k] (w_v4 is wt here).
    let rows = lane_rows(tile.m0, lane_id % 8u, p.gemm_m - 1u) * (p.gemm_k / 4u);
    let rows_high = lane_rows(tile.m0 + ROWS, lane_id % 8u, p.gemm_m - 1u) * (p.gemm_k / 4u);
    let g = backward_input_gather(tile);
    let stride = vec3(i32(p.stride_d), i32(p.stride_h), i32(p.stride_w));
    var acc: AccRows;
    var acc_high: AccRows;
    var first = 0u;  // k / 4
    for (var kz = 0u; kz < p.k_d; kz++) {
        let tz = g.z - i32(kz * p.dil_d);
        var oz = tz;
        var z_ok = vec4(true);
        if !UNIT_STRIDE {
            oz = exact_quotient(tz, stride.x);
            z_ok = oz * stride.x == tz;
        }
        z_ok &= vec4<u32>(oz) < vec4(p.out_d);
        for (var ky = 0u; ky < p.k_h; ky++) {
            let ty = g.y - i32(ky * p.dil_h);
            var oy = ty;
            var y_ok = z_ok;
            if !UNIT_STRIDE {
                oy = exact_quotient(ty, stride.y);
                y_ok &= oy * stride.y == ty;
            }
            y_ok &= vec4<u32>(oy) < vec4(p.out_h);
            for (var kx = 0u; kx < p.k_w; kx++) {
                let tx = g.x - i32(kx * p.dil_w);
                var ox = tx;
                var ok = y_ok;
                if !UNIT_STRIDE {
                    ox = exact_quotient(tx, stride.z);
                    ok &= ox * stride.z == tx;
                }
                ok &= vec4<u32>(ox) < vec4(p.out_w);
                // dy[batch, 0, (oz, oy, ox)]; output channel o is o * out positions further.
                var index = g.base + (oz * i32(p.out_h) + oy) * i32(p.out_w) + ox;
                let channel = vec4(i32(p.out_spatial));
                for (var o0 = 0u; o0 < p.o; o0 += 4u) {
                    var b: mat4x4<f32>;
                    b[0] = load_dy4(index, ok);
                    b[1] = load_dy4(index + channel, ok);
                    b[2] = load_dy4(index + 2 * channel, ok);
                    b[3] = load_dy4(index + 3 * channel, ok);
                    index += 4 * channel;
                    acc = multiply_rows(acc, w_rows(rows, first), b);
                    if ROW_BLOCKS > 1u {
                        acc_high = multiply_rows(acc_high, w_rows(rows_high, first), b);
                    }
                    first += 1u;
                }
            }
        }
    }
    store_dx_tile(tile, tile.m0, acc);
    if ROW_BLOCKS > 1u {
        store_dx_tile(tile, tile.m0 + ROWS, acc_high);
    }
}

// ---- backward_input_few_channels ----
//
// tiled.wgsl's backward_input_few_channels (same positions per invocation, in another order), with
// the weights broadcast instead of staged: for each tap that hits some lane's positions (a
// subgroup-uniform test, so the subgroup stays converged; a workgroup's lanes share one stride
// phase), lane j loads w[o0 + j, :, tap] (one vec4 of w_channels) for 8 output channels at a
// time and `spread` hands each to every lane. Per 8 output channels an invocation loads 1 vec4 of
// weights and 32 values of dy, where the staged version read 8 vec4s of workgroup memory besides
// (and needed barriers).

// w as vec4s over the input channels, [taps, O] (copied by transpose_few_channel_weight, each
// run): a lane's weights for one output channel and tap are one load instead of 4 gathered from
// w (SqueezeNet's conv1 at 256 x 256: 12.7 -> 11.8 ms, the copy's 0.13 ms included).
@group(0) @binding(2) var<storage, read> w_channels: array<vec4<f32>>;

// w_channels[tap * O + o] = w[o, 0..C, tap] (channels past C zero): one vec4 per invocation.
@compute @workgroup_size(64)
fn transpose_few_channel_weight(@builtin(workgroup_id) wid: vec3<u32>,
                                @builtin(num_workgroups) nwg: vec3<u32>,
                                @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i >= p.o * p.k_vol {
        return;
    }
    let o = i % p.o;
    let ok = LANES < vec4(p.c);
    let at = select(vec4(0u), (o * p.c + LANES) * p.k_vol + i / p.o, ok);
    w_transposed[i] = select(vec4(0.0),
                             vec4(w_source[at.x], w_source[at.y], w_source[at.z], w_source[at.w]),
                             ok);
}

fn load_dy_masked(index: u32, ok: bool) -> f32 {
    return select(0.0, dy[select(0u, index, ok)], ok);
}

// acc + w * dy at the 4 positions (dy at index.. consecutive), where `ok`.
fn gather_o(acc: Quad, w: vec4<f32>, index: u32, ok: vec4<bool>) -> Quad {
    var r = acc;
    r.a = fma(vec4(load_dy_masked(index, ok.x)), w, r.a);
    r.b = fma(vec4(load_dy_masked(index + 1u, ok.y)), w, r.b);
    r.c = fma(vec4(load_dy_masked(index + 2u, ok.z)), w, r.c);
    r.d = fma(vec4(load_dy_masked(index + 3u, ok.w)), w, r.d);
    return r;
}

// acc + the contributions of output channels o0..o0+7 (those below O) at one tap.
fn gather_o8(acc: Quad, w: Rows8, o0: u32, index: u32, ok: vec4<bool>) -> Quad {
    let step = p.out_spatial;
    var r = acc;
    r = gather_o(r, w.r0, index, ok & vec4(o0 < p.o));
    r = gather_o(r, w.r1, index + step, ok & vec4(o0 + 1u < p.o));
    r = gather_o(r, w.r2, index + 2u * step, ok & vec4(o0 + 2u < p.o));
    r = gather_o(r, w.r3, index + 3u * step, ok & vec4(o0 + 3u < p.o));
    r = gather_o(r, w.r4, index + 4u * step, ok & vec4(o0 + 4u < p.o));
    r = gather_o(r, w.r5, index + 5u * step, ok & vec4(o0 + 5u < p.o));
    r = gather_o(r, w.r6, index + 6u * step, ok & vec4(o0 + 6u < p.o));
    r = gather_o(r, w.r7, index + 7u * step, ok & vec4(o0 + 7u < p.o));
    return r;
}

@compute @workgroup_size(64)
fn backward_input_few_channels_broadcast(@builtin(workgroup_id) wid: vec3<u32>,
                                         @builtin(num_workgroups) nwg: vec3<u32>,
                                         @builtin(local_invocation_index) lid: u32,
                                         @builtin(subgroup_invocation_id) lane_id: u32) {
    // Positions as in backward_input_few_channels, but the phase varies fastest between
    // workgroups: workgroup index = (batch * groups_per_phase + g) * phases + phase, workgroup g
    // of a phase owning its blocks 64 g.. 64 g + 63 (the last one partly empty). The
    // phases of a region then run together and share its dy in the cache, where phase-major
    // order read all of dy once per phase: 14.7 -> 12.9 ms on SqueezeNet's conv1 at 256 x 256
    // (lavapipe, 2 cores).
    let stride = vec3(p.stride_d, p.stride_h, p.stride_w);
    let q_radix = (in_radix() + stride - 1u) / stride;
    let block_radix = vec3(q_radix.xy, (q_radix.z + 3u) / 4u);
    let blocks = block_radix.x * block_radix.y * block_radix.z;
    let phases = stride.x * stride.y * stride.z;
    let group = workgroup_index(wid, nwg);
    let groups_per_phase = (blocks + WG - 1u) / WG;
    let block = (group / phases) % groups_per_phase * WG + lid;
    var q = split_index(min(block, blocks - 1u), block_radix);
    q.x *= 4u;
    let phase = split_index(group % phases, stride);
    let batch = group / (phases * groups_per_phase);
    let iz = q.z * stride.x + phase.z;
    let iy = q.y * stride.y + phase.y;
    let ix = q.x * stride.z + phase.x + stride.z * LANES;
    let inside = vec4(block < blocks & batch < p.n & iz < p.in_d & iy < p.in_h)
        & ix < vec4(p.in_w);
    let reach = vec3(i32(phase.z + p.pad_d), i32(phase.y + p.pad_h), i32(phase.x + p.pad_w));
    let dy_base = batch * p.o * p.out_spatial;
    let s = vec3<i32>(stride);
    let lane = lane_id % 8u;

    var acc: Quad;
    for (var kz = 0u; kz < p.k_d; kz++) {
        let tz = reach.x - i32(kz * p.dil_d);
        let oz = i32(q.z) + tz / s.x;
        let z_hit = tz % s.x == 0 && u32(oz) < p.out_d;
        for (var ky = 0u; ky < p.k_h; ky++) {
            let ty = reach.y - i32(ky * p.dil_h);
            let oy = i32(q.y) + ty / s.y;
            let y_hit = ty % s.y == 0 && u32(oy) < p.out_h;
            for (var kx = 0u; kx < p.k_w; kx++) {
                let tx = reach.z - i32(kx * p.dil_w);
                let ox = i32(q.x) + tx / s.z;
                let x_ok = vec4<u32>(vec4(ox) + vec4<i32>(LANES)) < vec4(p.out_w);
                let ok = inside & x_ok & vec4(z_hit && y_hit && tx % s.z == 0);
                if subgroupAny(any(ok)) {
                    let tap = (kz * p.k_h + ky) * p.k_w + kx;
                    let index = dy_base + (u32(oz) * p.out_h + u32(oy)) * p.out_w + u32(ox);
                    for (var o0 = 0u; o0 < p.o; o0 += 8u) {
                        let o = o0 + lane;
                        let wl = select(vec4(0.0), w_channels[tap * p.o + min(o, p.o - 1u)],
                                        o < p.o);
                        acc = gather_o8(acc, spread(wl), o0, index + o0 * p.out_spatial, ok);
                    }
                }
            }
        }
    }
    let base = batch * p.c * p.in_spatial + (iz * p.in_h + iy) * p.in_w;
    store_dx_channels(base + ix.x, inside.x, acc.a);
    store_dx_channels(base + ix.y, inside.y, acc.b);
    store_dx_channels(base + ix.z, inside.z, acc.c);
    store_dx_channels(base + ix.w, inside.w, acc.d);
}

// ---- backward_weight ----
//
// dw = dY * Xcol' as in tiled.wgsl's backward_weight (M = O, N = C * taps, K = batch * output
// positions, split into `splits` slices of `split_len` that weight_reduce adds when there are
// several), with rows of A = dy shared by broadcasts: workgroup index = split * tiles + tile.
// Each invocation carries the (batch, oz, oy, ox) digits of its k from one k to the next, so
// the A offsets of the 4 k of a step and its own 4 columns of B need no division.
// backward_weight_broadcast_vec4, for output positions a multiple of 4 (then so are K, the
// slices, and the offset of every step's 4 k, which are consecutive positions of one batch
// element): a lane loads its row's 4 k as one vec4 (one load where lavapipe loops over the
// lanes 4 times).

@group(0) @binding(2) var<storage, read> dy_w4: array<vec4<f32>>;

// Tiles of 64 rows (ROW_BLOCKS = 2) for M above 32 halve the gathers of x or dy per multiply-add:
// 8% faster on the benchmark's 256 x 1152 x 4096.

// The workgroup's tile of dw (rows m0.., this invocation's columns n..n+3) and slice of K;
// `valid` is false for workgroups past the end (the dispatch may round up).
struct WeightTile {
    m0: u32,
    n: u32,
    split: u32,
    k_begin: u32,
    k_end: u32,
    valid: bool,
}

fn weight_tile(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> WeightTile {
    let tile_rows = ROWS * ROW_BLOCKS;
    let tiles = ((p.gemm_m + tile_rows - 1u) / tile_rows) * p.tiles_n;
    let total = tiles * p.splits;
    let index = workgroup_index(wid, nwg);
    let clamped = min(index, total - 1u);
    let split = clamped / tiles;
    let t = clamped % tiles;
    let k_begin = split * p.split_len;
    return WeightTile((t / p.tiles_n) * tile_rows, (t % p.tiles_n) * BCAST_COLS + 4u * lid, split,
                      k_begin, min(p.gemm_k, k_begin + p.split_len), index < total);
}

// B[k][col] = x[batch, c, position * stride - pad + tap * dilation] for col = c * taps + tap:
// the invocation's 4 columns as in tiled.wgsl's backward_weight, and the digits of k.
struct WeightGather {
    g: Coords4,
    pos: Digits,  // (batch, oz, oy, ox) of k
}

fn weight_gather(t: WeightTile) -> WeightGather {
    let cols = t.n + LANES;
    let at = split4(cols, kernel_radix());
    var g: Coords4;
    g.base = at.base * i32(p.in_spatial);
    g.z = select(vec4(OUTSIDE), at.z * i32(p.dil_d) - i32(p.pad_d), cols < vec4(p.gemm_n));
    g.y = at.y * i32(p.dil_h) - i32(p.pad_h);
    g.x = at.x * i32(p.dil_w) - i32(p.pad_w);
    return WeightGather(g, split_index(t.k_begin, out_radix()));
}

// One step of 4 k from k0: B's rows (column kk of `b` is row k0 + kk) and the offsets of A's
// values, dy[batch, 0, position] (add o * out positions for row o).
struct WeightStep {
    b: mat4x4<f32>,
    a_offset: vec4<u32>,
}

fn weight_step(gather: ptr<function, WeightGather>, k0: u32, k_end: u32) -> WeightStep {
    let g = (*gather).g;
    var pos = (*gather).pos;
    var step: WeightStep;
    for (var kk = 0u; kk < 4u; kk++) {
        step.a_offset[kk] = pos.outer * p.o * p.out_spatial
            + (pos.z * p.out_h + pos.y) * p.out_w + pos.x;
        let iz = g.z + i32(pos.z * p.stride_d);
        let iy = g.y + i32(pos.y * p.stride_h);
        let ix = g.x + i32(pos.x * p.stride_w);
        let ok = inside_input4(iz, iy, ix) & vec4(k0 + kk < k_end);
        let index = i32(pos.outer * p.c * p.in_spatial) + g.base + input_offset4(iz, iy, ix);
        step.b[kk] = load_x4(index, ok);
        pos = add_digits(pos, NEXT, out_radix());
    }
    (*gather).pos = pos;
    return step;
}

fn store_dw_rows4(out: OutColumns, m: u32, v: mat4x4<f32>) {
    for (var i = 0u; i < 4u; i++) {
        let row = m + i;
        if row < p.gemm_m {
            let at = out.left + row * out.row_stride;
            for (var j = 0u; j < 4u; j++) {
                if out.left_valid[j] {
                    dw[at[j]] = v[i][j];
                }
            }
        }
    }
}

// dw, or slice `split` of the partial sums: [o][col] at (split * M + o) * N + col.
// Rows m0.. of the tile t.
fn store_weight_rows(t: WeightTile, m0: u32, acc: AccRows) {
    if t.valid {
        let out = out_columns(t.n, p.gemm_n, 0u, p.gemm_n, t.split * p.gemm_m * p.gemm_n);
        store_dw_rows4(out, m0, acc.g0.top);
        store_dw_rows4(out, m0 + 4u, acc.g0.bottom);
        if ROW_GROUPS > 1u {
            store_dw_rows4(out, m0 + 8u, acc.g1.top);
            store_dw_rows4(out, m0 + 12u, acc.g1.bottom);
        }
        if ROW_GROUPS > 2u {
            store_dw_rows4(out, m0 + 16u, acc.g2.top);
            store_dw_rows4(out, m0 + 20u, acc.g2.bottom);
            store_dw_rows4(out, m0 + 24u, acc.g3.top);
            store_dw_rows4(out, m0 + 28u, acc.g3.bottom);
        }
    }
}

@compute @workgroup_size(64)
fn backward_weight_broadcast(@builtin(workgroup_id) wid: vec3<u32>,
                             @builtin(num_workgroups) nwg: vec3<u32>,
                             @builtin(local_invocation_index) lid: u32,
                             @builtin(subgroup_invocation_id) lane_id: u32) {
    let t = weight_tile(wid, nwg, lid);
    // A[o][k] = dy[batch, o, position] for k = batch * out positions + position: this lane's
    // rows o.
    let rows = lane_rows(t.m0, lane_id % 8u, p.gemm_m - 1u) * p.out_spatial;
    var gather = weight_gather(t);
    var acc: AccRows;
    for (var k0 = t.k_begin; k0 < t.k_end; k0 += 4u) {
        let step = weight_step(&gather, k0, t.k_end);
        let k_ok = vec4(k0) + LANES < vec4(t.k_end);
        var a: LaneRows;
        a.g0 = load_dy_w4(vec4(rows.x) + step.a_offset, k_ok);
        if ROW_GROUPS > 1u {
            a.g1 = load_dy_w4(vec4(rows.y) + step.a_offset, k_ok);
        }
        if ROW_GROUPS > 2u {
            a.g2 = load_dy_w4(vec4(rows.z) + step.a_offset, k_ok);
            a.g3 = load_dy_w4(vec4(rows.w) + step.a_offset, k_ok);
        }
        acc = multiply_rows(acc, a, step.b);
    }
    store_weight_rows(t, t.m0, acc);
}

@compute @workgroup_size(64)
fn backward_weight_broadcast_vec4(@builtin(workgroup_id) wid: vec3<u32>,
                                  @builtin(num_workgroups) nwg: vec3<u32>,
                                  @builtin(local_invocation_index) lid: u32,
                                  @builtin(subgroup_invocation_id) lane_id: u32) {
    let t = weight_tile(wid, nwg, lid);
    let rows = lane_rows(t.m0, lane_id % 8u, p.gemm_m - 1u) * (p.out_spatial / 4u);
    let rows_high = lane_rows(t.m0 + ROWS, lane_id % 8u, p.gemm_m - 1u) * (p.out_spatial / 4u);
    var gather = weight_gather(t);
    var acc: AccRows;
    var acc_high: AccRows;
    for (var k0 = t.k_begin; k0 < t.k_end; k0 += 4u) {
        let step = weight_step(&gather, k0, t.k_end);
        let first = step.a_offset.x / 4u;
        var a: LaneRows;
        a.g0 = dy_w4[rows.x + first];
        if ROW_GROUPS > 1u {
            a.g1 = dy_w4[rows.y + first];
        }
        if ROW_GROUPS > 2u {
            a.g2 = dy_w4[rows.z + first];
            a.g3 = dy_w4[rows.w + first];
        }
        acc = multiply_rows(acc, a, step.b);
        if ROW_BLOCKS > 1u {
            var high: LaneRows;
            high.g0 = dy_w4[rows_high.x + first];
            high.g1 = dy_w4[rows_high.y + first];
            high.g2 = dy_w4[rows_high.z + first];
            high.g3 = dy_w4[rows_high.w + first];
            acc_high = multiply_rows(acc_high, high, step.b);
        }
    }
    store_weight_rows(t, t.m0, acc);
    if ROW_BLOCKS > 1u {
        store_weight_rows(t, t.m0 + ROWS, acc_high);
    }
}
