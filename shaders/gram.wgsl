// Gram matrices of feature maps. F[b] is the row-major C x HW matrix of batch item b (the
// input [N, C, spatial...] read as [N, C, HW]); scale = 1 / (C * HW).
//   forward:  G[b] = F F^T * scale, output [N, C, C]
//   backward: dF[b] = (dG + dG^T) F * scale, output [N, C, HW]
// Both are tiled matrix products written for this shape, not a transposed copy fed to a matmul.
//
// Tiling (both kernels): 128 invocations as an 8 x 16 grid (tx = lid % 8, ty = lid / 8) own a
// 64 x 64 output tile; each invocation accumulates a 4 x 8 block (rows 4ty..4ty+3, columns
// 8tx..8tx+7) in 8 vec4 registers. The reduction runs in steps of 16: both operand tiles (64 x 16
// each, stored step-major as vec4s of 4 consecutive rows or columns: 2 x 4 KiB of workgroup
// memory) are loaded cooperatively, 2 vec4s per invocation per operand, then each invocation
// does 32 multiply-adds per 3 vec4 reads of workgroup memory. These sizes were the fastest of
// those measured on lavapipe (4 x 4 and 8 x 8 blocks, 32 x 32 tiles, steps of 8 and 32 were
// slower or no better), and they fit any device's 16 KiB of workgroup memory. Out-of-range rows
// and columns load as 0 and are not written. Every output element is one invocation's
// sequential sum in a fixed order: deterministic.
//
// forward: G is symmetric, so only tiles (ti, tj) with ti <= tj are computed (flat workgroup
// index = (split * N + b) * pairs + upper-triangular pair index) and an off-diagonal tile is also
// written transposed; a diagonal tile computes both G[i][j] and G[j][i] from the same products,
// so G is exactly symmetric. When N * pairs is too few workgroups to fill the device (small C,
// large HW), the host splits the reduction over HW into `splits` ranges of k_split columns (a
// multiple of 16): split s writes its unscaled partial Gram to slice s of a scratch buffer, and
// reduce_splits then sums the slices in order and scales (fixed order: deterministic).
// backward: one workgroup per (b, 64-row tile of dF, 64-column tile of dF); the (dG + dG^T)
// tile is summed while loading.

struct Params {
    batch: u32,
    c: u32,
    hw: u32,
    row_tiles: u32,  // ceil(C / 64)
    tiles: u32,      // workgroups per batch item: forward row_tiles * (row_tiles + 1) / 2,
                     // backward row_tiles * col_tiles
    col_tiles: u32,  // backward: ceil(HW / 64)
    scale: f32,      // 1 / (C * HW), or 1 for the partial sums of a split forward pass
    splits: u32,     // forward: ranges of the reduction over HW (1: no split)
    k_split: u32,    // forward: columns of F per range
    count: u32,      // reduce_splits: elements of G
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// forward: f at 1, g (or the partial sums) at 2; reduce_splits: the partial sums at 1, g at 2
@group(0) @binding(1) var<storage, read> f: array<f32>;
@group(0) @binding(2) var<storage, read_write> g: array<f32>;
// backward: f at 1, dg at 2, df at 3
@group(0) @binding(2) var<storage, read> dg: array<f32>;
@group(0) @binding(3) var<storage, read_write> df: array<f32>;

const TILE: u32 = 64u;
const QUADS: u32 = 16u; // TILE / 4
const STEP: u32 = 16u;
const WX: u32 = 8u;
const WG: u32 = 128u;

// [k][quad]: element k * 16 + q holds rows (or columns) 4q..4q+3 of the tile at reduction step k.
var<workgroup> lhs: array<vec4<f32>, 256>;
var<workgroup> rhs: array<vec4<f32>, 256>;

// The 4 x 8 block product of one reduction step: rows a (4 of them), columns b0, b1 (8).
fn accumulate(acc: ptr<function, array<vec4<f32>, 8>>, a: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>) {
    (*acc)[0] += a.x * b0;
    (*acc)[1] += a.x * b1;
    (*acc)[2] += a.y * b0;
    (*acc)[3] += a.y * b1;
    (*acc)[4] += a.z * b0;
    (*acc)[5] += a.z * b1;
    (*acc)[6] += a.w * b0;
    (*acc)[7] += a.w * b1;
}

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

    var acc: array<vec4<f32>, 8>;
    for (var r = 0u; r < 8u; r++) {
        acc[r] = vec4<f32>(0.0);
    }
    for (var k0 = k_begin; k0 < k_end; k0 += STEP) {
        // Slot e of a tile: step e % 16 of rows 4 * (e / 16)..+3 (consecutive invocations read
        // consecutive columns of F).
        for (var slot = 0u; slot < STEP * QUADS / WG; slot++) {
            let e = lid + slot * WG;
            let k = e % STEP;
            let quad = e / STEP;
            lhs[k * QUADS + quad] = feature_rows(base, i0 + quad * 4u, k0 + k);
            rhs[k * QUADS + quad] = feature_rows(base, j0 + quad * 4u, k0 + k);
        }
        workgroupBarrier();
        for (var k = 0u; k < STEP; k++) {
            accumulate(&acc, lhs[k * QUADS + ty], rhs[k * QUADS + 2u * tx],
                       rhs[k * QUADS + 2u * tx + 1u]);
        }
        workgroupBarrier();
    }

    // Constant indices into acc only: a dynamic index would force it out of registers.
    let out = slice * p.c * p.c;
    let mirror = ti != tj;
    let j = j0 + tx * 8u;
    store_gram_row(out, i0 + ty * 4u, j, acc[0], acc[1], mirror);
    store_gram_row(out, i0 + ty * 4u + 1u, j, acc[2], acc[3], mirror);
    store_gram_row(out, i0 + ty * 4u + 2u, j, acc[4], acc[5], mirror);
    store_gram_row(out, i0 + ty * 4u + 3u, j, acc[6], acc[7], mirror);
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

const REDUCE_WG: u32 = 256u;

// G[e] = scale * (sum over splits s, in order, of partial[s][e]); one invocation per element.
@compute @workgroup_size(REDUCE_WG)
fn reduce_splits(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let e = workgroup_index(wid, nwg) * REDUCE_WG + lid;
    if e >= p.count {
        return;
    }
    var total = 0.0;
    for (var s = 0u; s < p.splits; s++) {
        total += f[s * p.count + e];
    }
    g[e] = total * p.scale;
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

    var acc: array<vec4<f32>, 8>;
    for (var r = 0u; r < 8u; r++) {
        acc[r] = vec4<f32>(0.0);
    }
    for (var j0 = 0u; j0 < p.c; j0 += STEP) {
        for (var slot = 0u; slot < STEP * QUADS / WG; slot++) {
            let e = lid + slot * WG;
            // lhs: (dG + dG^T) at column j0 + e % 16, rows i0 + 4 * (e / 16)..+3.
            let j = j0 + e % STEP;
            let i = i0 + (e / STEP) * 4u;
            lhs[(e % STEP) * QUADS + e / STEP] = vec4<f32>(
                symmetric_grad(g_base, i, j), symmetric_grad(g_base, i + 1u, j),
                symmetric_grad(g_base, i + 2u, j), symmetric_grad(g_base, i + 3u, j));
            // rhs: F at row j0 + e / 16, columns k0 + 4 * (e % 16)..+3 (consecutive
            // invocations read consecutive columns).
            let row = j0 + e / QUADS;
            let k = k0 + (e % QUADS) * 4u;
            rhs[e] = vec4<f32>(feature(f_base, row, k), feature(f_base, row, k + 1u),
                               feature(f_base, row, k + 2u), feature(f_base, row, k + 3u));
        }
        workgroupBarrier();
        for (var jj = 0u; jj < STEP; jj++) {
            accumulate(&acc, lhs[jj * QUADS + ty], rhs[jj * QUADS + 2u * tx],
                       rhs[jj * QUADS + 2u * tx + 1u]);
        }
        workgroupBarrier();
    }

    let k = k0 + tx * 8u;
    store_grad_row(f_base, i0 + ty * 4u, k, acc[0], acc[1]);
    store_grad_row(f_base, i0 + ty * 4u + 1u, k, acc[2], acc[3]);
    store_grad_row(f_base, i0 + ty * 4u + 2u, k, acc[4], acc[5]);
    store_grad_row(f_base, i0 + ty * 4u + 3u, k, acc[6], acc[7]);
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
