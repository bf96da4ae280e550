// Gram matrices of feature maps: what the tiled and subgroup kernels share (tiled.wgsl,
// subgroup.wgsl; reduce.wgsl adds the slices of a split forward pass).
// F[b] is the row-major C x HW matrix of batch item b (the input [N, C, spatial...] read as
// [N, C, HW]); scale = 1 / (C * HW).
//   forward:  G[b] = F F^T * scale, output [N, C, C]
//   backward: dF[b] = (dG + dG^T) F * scale, output [N, C, HW]
// Both are matrix products written for this shape, not a transposed copy fed to a matmul.
// When too few workgroups would fill the device (small C, large HW), the host splits the forward
// reduction over HW into `splits` ranges of k_split columns (a multiple of 16): split s writes
// its unscaled partial Gram to slice s of a scratch buffer, and reduce_splits then sums the
// slices in order and scales. Every output element is one invocation's sequential sum in a fixed
// order: deterministic.

struct Params {
    batch: u32,
    c: u32,
    hw: u32,
    row_tiles: u32,  // row blocks of the output tiles (tiled.wgsl, subgroup.wgsl)
    tiles: u32,      // workgroups per batch item
    col_tiles: u32,  // column blocks of the output tiles
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
