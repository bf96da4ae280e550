//! Gram kernels on subgroup broadcasts (`subgroup.wgsl`): rows of the left operand shared by the
//! lanes of a subgroup, without workgroup memory, for devices with `Gpu::subgroup_broadcast`.

use super::{params, split_forward, Params, COMMON};
use crate::error::Result;
use crate::gpu::{bytes_of, wgsl_file, Dispatch, KernelCall, Shader, WORKGROUP_INDEX};
use crate::graph::EncodeCtx;
use crate::ops::gemm::{self, subgroup_row_groups, SUBGROUP_COLUMNS};
use crate::tensor::{Shape, Tensor};

pub(crate) static SHADER: Shader = Shader {
    name: "gram_subgroup",
    file: wgsl_file!(
        "ops/gram/subgroup.wgsl",
        [&WORKGROUP_INDEX, &COMMON, &gemm::SUBGROUP]
    ),
    subgroups: true,
    structs: &[("Params", Params::LAYOUT)],
};

/// forward_broadcast's tile (GRAM_ROWS x GRAM_COLS in subgroup.wgsl).
const FORWARD_ROWS: usize = 32;
const FORWARD_COLS: usize = 64;
/// Invocations per workgroup of symmetric_sum (SUM_WG).
const SUM_WORKGROUP: u32 = 256;

/// `params` with forward_broadcast's tiles: row blocks of 32 (row_tiles) by column blocks of 64
/// (col_tiles), row block ti taking the column blocks from ti / 2.
fn forward_params(x: &Shape) -> Params {
    let p = params(x);
    let c = p.c as usize;
    let row_tiles = c.div_ceil(FORWARD_ROWS);
    let col_tiles = c.div_ceil(FORWARD_COLS);
    Params {
        row_tiles: row_tiles as u32,
        col_tiles: col_tiles as u32,
        tiles: (0..row_tiles).map(|ti| col_tiles - ti / 2).sum::<usize>() as u32,
        ..p
    }
}

/// `params` with backward_broadcast's tiles: blocks of 8 * `row_groups` rows by 256 columns.
fn backward_params(x: &Shape, row_groups: usize) -> Params {
    let p = params(x);
    let row_tiles = (p.c as usize).div_ceil(8 * row_groups);
    let col_tiles = (p.hw as usize).div_ceil(SUBGROUP_COLUMNS);
    Params {
        row_tiles: row_tiles as u32,
        col_tiles: col_tiles as u32,
        tiles: (row_tiles * col_tiles) as u32,
        ..p
    }
}

pub(super) fn forward(
    ctx: &mut EncodeCtx<'_>,
    inputs: &[&Tensor],
    output: &Tensor,
) -> Result<Vec<Dispatch>> {
    let params = forward_params(&inputs[0].shape);
    split_forward(ctx, &SHADER, "forward_broadcast", params, inputs, output)
}

/// S = dG + dG^T to scratch (symmetric_sum), then dF = S F * scale (backward_broadcast).
pub(super) fn backward(
    ctx: &mut EncodeCtx<'_>,
    inputs: &[&Tensor],
    output: &Tensor,
) -> Result<Vec<Dispatch>> {
    let row_groups = subgroup_row_groups(inputs[0].shape.dims()[1]);
    let params = backward_params(&inputs[0].shape, row_groups);
    let symmetric = ctx.scratch("gram_backward dG + dG^T", inputs[1].shape.bytes())?;
    let sum = ctx.gpu.dispatch(
        &SHADER,
        "symmetric_sum",
        bytes_of(&params),
        &[&inputs[1].buffer],
        &[&symmetric],
        params.count.div_ceil(SUM_WORKGROUP),
    )?;
    let product = ctx.gpu.prepare(KernelCall {
        shader: &SHADER,
        entry: "backward_broadcast",
        constants: &[("ROW_GROUPS", row_groups as f64)],
        params: bytes_of(&params),
        reads: &[&inputs[0].buffer, &symmetric],
        writes: &[&output.buffer],
        workgroups: params.batch * params.tiles,
    })?;
    Ok(vec![sum, product])
}
