// Batched matrix product C[b] = op(A[b]) op(B[b]), op = identity or transpose: what the tiled and
// subgroup kernels share (tiled.wgsl, subgroup.wgsl).
//
// Layout: row-major. op(A[b]) is M x K, op(B[b]) is K x N and C is [batch..., M, N], contiguous,
// with up to 4 batch dims. Element (m, k) of op(A[b]) is a[a_offset(b) + m * a_m + k * a_k]: the
// strides carry the transpose (A stored [M, K]: a_m = K, a_k = 1; stored [K, M]: a_m = 1,
// a_k = M), and a_offset(b) is the sum over C's batch dims of b's index times A's batch stride,
// 0 along a dim that A broadcasts (numpy's matmul rules; a matrix shared by the whole batch has
// every stride 0). Likewise (k, n) of op(B[b]) with b_k, b_n and B's batch strides.

struct Params {
    batch: u32,     // matrices in C: the product of the batch dims
    m: u32,
    n: u32,
    k: u32,
    a_m: u32,
    a_k: u32,
    b_k: u32,
    b_n: u32,
    tiles_m: u32,   // ceil(M / tile rows)
    tiles_n: u32,   // ceil(N / tile columns)
    pad0: u32,
    pad1: u32,
    batch_dims: vec4<u32>,       // C's batch dims, outermost first, padded with 1s in front
    a_batch_strides: vec4<u32>,  // elements of A per step along each batch dim (0: broadcast)
    b_batch_strides: vec4<u32>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

// (A's, B's) element offset of matrix `batch` of C (its flat index over the batch dims).
fn batch_offsets(batch: u32) -> vec2<u32> {
    var rest = batch;
    var offsets = vec2(0u);
    for (var d = 3; d >= 0; d--) {
        let index = rest % p.batch_dims[d];
        rest = rest / p.batch_dims[d];
        offsets += index * vec2(p.a_batch_strides[d], p.b_batch_strides[d]);
    }
    return offsets;
}
