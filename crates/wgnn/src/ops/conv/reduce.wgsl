// Convolution: the passes that both the tiled and the subgroup kernels use.
//   weight_reduce: dw[i] = sum over s of partial[s][i], one invocation per element: adds the
//                  slices of K of a split backward_weight, in order.
//   bias_grad:     db[o] = sum of dy[n, o, pos] over n and pos; one workgroup of 256 per o, each
//                  invocation sums a strided subset, then a fixed tree in workgroup memory.

#include "gpu/workgroup_index.wgsl"
#include "ops/conv/common.wgsl"

// weight_reduce: partial sums, dw
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> dw_sum: array<f32>;
// bias_grad: dy (common.wgsl), db
@group(0) @binding(2) var<storage, read_write> db: array<f32>;

const REDUCE_WG: u32 = 256u;

@compute @workgroup_size(REDUCE_WG)
fn weight_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * REDUCE_WG + lid;
    let count = p.gemm_m * p.gemm_n;
    if i >= count {
        return;
    }
    var total = 0.0;
    for (var s = 0u; s < p.splits; s++) {
        total += partial[s * count + i];
    }
    dw_sum[i] = total;
}

var<workgroup> bias_partial: array<f32, REDUCE_WG>;

@compute @workgroup_size(REDUCE_WG)
fn bias_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let o = workgroup_index(wid, nwg);
    if o >= p.o {
        return;
    }
    var total = 0.0;
    for (var batch = 0u; batch < p.n; batch++) {
        let base = (batch * p.o + o) * p.out_spatial;
        for (var pos = lid; pos < p.out_spatial; pos += REDUCE_WG) {
            total += dy[base + pos];
        }
    }
    bias_partial[lid] = total;
    for (var half = REDUCE_WG / 2u; half > 0u; half /= 2u) {
        workgroupBarrier();
        if lid < half {
            bias_partial[lid] += bias_partial[lid + half];
        }
    }
    if lid == 0u {
        db[o] = bias_partial[0];
    }
}
