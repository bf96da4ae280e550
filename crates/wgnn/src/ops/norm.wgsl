// Row-wise L2 normalisation of a row-major [rows, cols] matrix.
//   forward:  y[r, :] = x[r, :] / norm_r,   norm_r = sqrt(sum_j x[r, j]^2 + eps)
//             eps (1e-12, set by the host) sits INSIDE the square root, so an all-zero row gives
//             zeros instead of NaN and the gradient stays finite.
//   backward: dx[r, :] = (dy - y * dot(y, dy)) / norm_r, computed from x and dy as
//             dy / norm_r - x * dot(x, dy) / norm_r^3 (exact for any eps).
// One workgroup of 64 invocations per row: each invocation sums a strided slice of the row
// sequentially, then a fixed tree over workgroup memory combines the 64 partial sums, so the
// result is deterministic; then the same invocations write the row.

#include "gpu/workgroup_index.wgsl"

struct Params {
    rows: u32,
    cols: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// forward: x at 1, y at 2
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
// backward: x at 1, dy at 2, dx at 3
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

const WG: u32 = 64u;

var<workgroup> partial: array<vec2<f32>, WG>;

// Tree-sums `partial` into partial[0]; every invocation of the workgroup must call it.
fn reduce_partials(lid: u32) {
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half /= 2u) {
        if lid < half {
            partial[lid] += partial[lid + half];
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let row = workgroup_index(wid, nwg);
    if row >= p.rows {
        return;
    }
    let base = row * p.cols;
    var squares = 0.0;
    for (var j = lid; j < p.cols; j += WG) {
        let v = x[base + j];
        squares += v * v;
    }
    partial[lid] = vec2<f32>(squares, 0.0);
    reduce_partials(lid);
    let inv_norm = 1.0 / sqrt(partial[0].x + p.eps);
    for (var j = lid; j < p.cols; j += WG) {
        y[base + j] = x[base + j] * inv_norm;
    }
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let row = workgroup_index(wid, nwg);
    if row >= p.rows {
        return;
    }
    let base = row * p.cols;
    var sums = vec2<f32>(0.0);
    for (var j = lid; j < p.cols; j += WG) {
        let v = x[base + j];
        sums += vec2<f32>(v * v, v * dy[base + j]);
    }
    partial[lid] = sums;
    reduce_partials(lid);
    let inv_norm = 1.0 / sqrt(partial[0].x + p.eps);
    let along = partial[0].y * inv_norm * inv_norm * inv_norm;
    for (var j = lid; j < p.cols; j += WG) {
        dx[base + j] = dy[base + j] * inv_norm - x[base + j] * along;
    }
}
