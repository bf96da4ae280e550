// Gram: the sum of a split forward pass's slices, for both the tiled and the subgroup kernels.

#include "gpu/workgroup_index.wgsl"
#include "ops/gram/common.wgsl"

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
