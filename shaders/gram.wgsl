// Gram matrices of feature maps. F[b] is the row-major C x HW matrix of batch item b (the
// input [N, C, spatial...] read as [N, C, HW]); scale = 1 / (C * HW).
//   forward:  G[b] = F F^T * scale, output [N, C, C]
//   backward: dF[b] = (dG + dG^T) F * scale, output [N, C, HW]
// Both are tiled matrix products written for this shape, not a transposed copy fed to a matmul.
//
// Tiling (both kernels): 256 invocations as a 16 x 16 grid (tx = lid % 16, ty = lid / 16) own a
// 64 x 64 output tile; each invocation accumulates a 4 x 4 block (rows ty*4.., cols tx*4..) in
// registers. The reduction runs in steps of 16: both operand tiles (64 x 16 each, stored
// k-major as vec4s of 4 consecutive rows/cols: 2 x 4 KiB of workgroup memory) are loaded
// cooperatively, 4 elements per invocation, then each invocation does 16 x 16 multiply-adds per
// 2 vec4 reads of workgroup memory. Out-of-range rows and columns load as 0 and are not written.
// Every output element is one invocation's sequential sum in a fixed order: deterministic.
//
// forward: G is symmetric, so only tiles (ti, tj) with ti <= tj are computed (flat workgroup
// index = b * pairs + upper-triangular pair index) and an off-diagonal tile is also written
// transposed; a diagonal tile computes both G[i][j] and G[j][i] from the same products, so G is
// exactly symmetric.
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
    scale: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// forward: f at 1, g at 2
@group(0) @binding(1) var<storage, read> f: array<f32>;
@group(0) @binding(2) var<storage, read_write> g: array<f32>;
// backward: f at 1, dg at 2, df at 3
@group(0) @binding(2) var<storage, read> dg: array<f32>;
@group(0) @binding(3) var<storage, read_write> df: array<f32>;

const TILE: u32 = 64u;
const STEP: u32 = 16u;
const WG: u32 = 256u;

// [k][quad]: element k * 16 + q holds rows (or columns) 4q..4q+3 of the tile at reduction step k.
var<workgroup> lhs: array<vec4<f32>, 256>;
var<workgroup> rhs: array<vec4<f32>, 256>;

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
    if w >= p.batch * p.tiles {
        return;
    }
    let b = w / p.tiles;
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
    let tx = lid % 16u;
    let ty = lid / 16u;
    // Loading: invocation lid fetches column k0 + lid % 16 of rows 4 * (lid / 16)..+3.
    let load_k = lid % STEP;
    let load_quad = lid / STEP;

    var acc: array<vec4<f32>, 4>;
    for (var r = 0u; r < 4u; r++) {
        acc[r] = vec4<f32>(0.0);
    }
    for (var k0 = 0u; k0 < p.hw; k0 += STEP) {
        lhs[load_k * 16u + load_quad] = feature_rows(base, i0 + load_quad * 4u, k0 + load_k);
        rhs[load_k * 16u + load_quad] = feature_rows(base, j0 + load_quad * 4u, k0 + load_k);
        workgroupBarrier();
        for (var k = 0u; k < STEP; k++) {
            let a = lhs[k * 16u + ty];
            let bv = rhs[k * 16u + tx];
            acc[0] += a.x * bv;
            acc[1] += a.y * bv;
            acc[2] += a.z * bv;
            acc[3] += a.w * bv;
        }
        workgroupBarrier();
    }

    let out = b * p.c * p.c;
    for (var r = 0u; r < 4u; r++) {
        let i = i0 + ty * 4u + r;
        for (var c = 0u; c < 4u; c++) {
            let j = j0 + tx * 4u + c;
            if i < p.c && j < p.c {
                let v = acc[r][c] * p.scale;
                g[out + i * p.c + j] = v;
                if ti != tj {
                    g[out + j * p.c + i] = v;
                }
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
    let tx = lid % 16u;
    let ty = lid / 16u;
    // Loading: lhs gets (dG + dG^T)[i0 + 4 * (lid / 16)..+3, j0 + lid % 16];
    // rhs gets F[j0 + lid / 16, k0 + 4 * (lid % 16)..+3].
    let s_j = lid % STEP;
    let s_quad = lid / STEP;
    let f_j = lid / 16u;
    let f_quad = lid % 16u;

    var acc: array<vec4<f32>, 4>;
    for (var r = 0u; r < 4u; r++) {
        acc[r] = vec4<f32>(0.0);
    }
    for (var j0 = 0u; j0 < p.c; j0 += STEP) {
        let i = i0 + s_quad * 4u;
        let j = j0 + s_j;
        lhs[s_j * 16u + s_quad] = vec4<f32>(
            symmetric_grad(g_base, i, j), symmetric_grad(g_base, i + 1u, j),
            symmetric_grad(g_base, i + 2u, j), symmetric_grad(g_base, i + 3u, j));
        let k = k0 + f_quad * 4u;
        rhs[f_j * 16u + f_quad] = vec4<f32>(
            feature(f_base, j0 + f_j, k), feature(f_base, j0 + f_j, k + 1u),
            feature(f_base, j0 + f_j, k + 2u), feature(f_base, j0 + f_j, k + 3u));
        workgroupBarrier();
        for (var jj = 0u; jj < STEP; jj++) {
            let a = lhs[jj * 16u + ty];
            let bv = rhs[jj * 16u + tx];
            acc[0] += a.x * bv;
            acc[1] += a.y * bv;
            acc[2] += a.z * bv;
            acc[3] += a.w * bv;
        }
        workgroupBarrier();
    }

    for (var r = 0u; r < 4u; r++) {
        let i = i0 + ty * 4u + r;
        for (var c = 0u; c < 4u; c++) {
            let k = k0 + tx * 4u + c;
            if i < p.c && k < p.hw {
                df[f_base + i * p.hw + k] = acc[r][c] * p.scale;
            }
        }
    }
}
