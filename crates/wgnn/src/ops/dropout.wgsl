// Dropout in training mode: y[i] = x[i] / (1 - p) where element i is kept, 0 where it is dropped.
//
// The mask is not stored: each invocation hashes its element index with a key made from the
// step's seed (a u32 input, seed[0]) and the op's stream (one per dropout node, so that two
// layers fed the same seed draw different masks), and drops the element when the 32-bit hash is
// below threshold = p * 2^32. The same (seed, stream, index) always gives the same bit, so a step
// is reproducible and the backward (dx = dy / (1 - p) on the same mask) is this kernel again on
// dy. The hash is Chris Wellons' `lowbias32` (two multiply-xorshift rounds, full avalanche),
// applied twice:
//   key = lowbias32(lowbias32(stream) ^ seed),  h = lowbias32(lowbias32(index ^ key) + key).
// Layout: any, flat over n elements; one invocation per element, 256 per workgroup.

#include "gpu/workgroup_index.wgsl"

struct Params {
    n: u32,
    threshold: u32,
    scale: f32,     // 1 / (1 - p)
    stream: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> seed: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

const WG: u32 = 256u;

fn lowbias32(v: u32) -> u32 {
    var h = v;
    h ^= h >> 16u;
    h *= 0x7feb352du;
    h ^= h >> 15u;
    h *= 0x846ca68bu;
    h ^= h >> 16u;
    return h;
}

@compute @workgroup_size(WG)
fn dropout(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i >= p.n {
        return;
    }
    let key = lowbias32(lowbias32(p.stream) ^ seed[0]);
    let h = lowbias32(lowbias32(i ^ key) + key);
    y[i] = select(0.0, x[i] * p.scale, h >= p.threshold);
}
