//! Gram kernels on tiles staged in workgroup memory (`tiled.wgsl`): the design for every device.

use super::{params, split_forward, Params, COMMON};
use crate::error::Result;
use crate::gpu::{bytes_of, wgsl_file, Dispatch, Shader, WORKGROUP_INDEX};
use crate::graph::EncodeCtx;
use crate::ops::gemm;
use crate::tensor::{Shape, Tensor};

pub(crate) static SHADER: Shader = Shader {
    name: "gram_tiled",
    file: wgsl_file!(
        "ops/gram/tiled.wgsl",
        [&WORKGROUP_INDEX, &COMMON, &gemm::TILED]
    ),
    subgroups: false,
    structs: &[("Params", Params::LAYOUT)],
};

/// Output tile edge of both kernels (TILE in tiled.wgsl).
const TILE: usize = 64;

/// `params` with tiles of 64 x 64: the forward pass's upper-triangular pairs of row blocks, the
/// backward pass's row by column blocks of dF.
fn tiled_params(x: &Shape, forward: bool) -> Params {
    let p = params(x);
    let (c, hw) = (p.c as usize, p.hw as usize);
    let row_tiles = c.div_ceil(TILE);
    let col_tiles = hw.div_ceil(TILE);
    Params {
        row_tiles: row_tiles as u32,
        tiles: if forward {
            row_tiles * (row_tiles + 1) / 2
        } else {
            row_tiles * col_tiles
        } as u32,
        col_tiles: col_tiles as u32,
        ..p
    }
}

pub(super) fn forward(
    ctx: &mut EncodeCtx<'_>,
    inputs: &[&Tensor],
    output: &Tensor,
) -> Result<Vec<Dispatch>> {
    let params = tiled_params(&inputs[0].shape, true);
    split_forward(ctx, &SHADER, "forward", params, inputs, output)
}

pub(super) fn backward(
    ctx: &mut EncodeCtx<'_>,
    inputs: &[&Tensor],
    output: &Tensor,
) -> Result<Vec<Dispatch>> {
    let params = tiled_params(&inputs[0].shape, false);
    Ok(vec![ctx.gpu.dispatch(
        &SHADER,
        "backward",
        bytes_of(&params),
        &[&inputs[0].buffer, &inputs[1].buffer],
        &[&output.buffer],
        params.batch * params.tiles,
    )?])
}
