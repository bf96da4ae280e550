// Batched matrix product C[b] = op(A[b]) op(B[b]), op = identity or transpose: what the tiled and
// subgroup kernels share (tiled.wgsl, subgroup.wgsl).
//
// Layout: row-major. op(A[b]) is M x K, op(B[b]) is K x N and C is [batch, M, N], contiguous.
// Element (m, k) of op(A[b]) is a[b * a_batch + m * a_m + k * a_k]: the strides carry the
// transpose (A stored [M, K]: a_m = K, a_k = 1; stored [K, M]: a_m = 1, a_k = M) and
// a_batch = 0 shares one matrix over the batch. Likewise (k, n) of op(B[b]) with b_k, b_n.

struct Params {
    batch: u32,
    m: u32,
    n: u32,
    k: u32,
    a_batch: u32,
    a_m: u32,
    a_k: u32,
    b_batch: u32,
    b_k: u32,
    b_n: u32,
    tiles_m: u32,   // ceil(M / tile rows)
    tiles_n: u32,   // ceil(N / tile columns)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
