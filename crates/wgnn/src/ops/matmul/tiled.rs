//! The matrix product on tiles staged in workgroup memory (`tiled.wgsl`): the design for every
//! device.

use super::{Dims, MatMul, Params, COMMON};
use crate::error::Result;
use crate::gpu::{bytes_of, wgsl_file, Dispatch, Gpu, Shader, WORKGROUP_INDEX};
use crate::tensor::Tensor;

pub(crate) static SHADER: Shader = Shader {
    name: "matmul_tiled",
    file: wgsl_file!("ops/matmul/tiled.wgsl", [&WORKGROUP_INDEX, &COMMON]),
    subgroups: false,
    structs: &[("Params", Params::LAYOUT)],
};

/// Rows and columns of C per workgroup (`TILE` in tiled.wgsl).
const TILE: usize = 128;

pub(super) fn product(
    gpu: &Gpu,
    op: &MatMul,
    d: &Dims,
    inputs: &[&Tensor],
    output: &Tensor,
) -> Result<Dispatch> {
    let params = op.params(d, TILE, TILE);
    gpu.dispatch(
        &SHADER,
        "matmul",
        bytes_of(&params),
        &[&inputs[0].buffer, &inputs[1].buffer],
        &[&output.buffer],
        params.workgroups(),
    )
}
