//! Convolution kernels on subgroup broadcasts (`subgroup.wgsl`): GEMMs without workgroup memory,
//! rows of A shared by the lanes of a subgroup, for devices with `Gpu::subgroup_broadcast`.

use std::sync::Arc;

use super::{forward_reads, Geometry, Params, Tile, WeightSplit, COMMON, WORKGROUP};
use crate::error::Result;
use crate::gpu::{
    bytes_of, wgsl_file, workgroups_for, Dispatch, Gpu, KernelCall, Shader, WORKGROUP_INDEX,
};
use crate::graph::EncodeCtx;
use crate::ops::gemm::{self, subgroup_row_groups, SUBGROUP_COLUMNS};
use crate::tensor::Tensor;

pub(crate) static SHADER: Shader = Shader {
    name: "conv_subgroup",
    file: wgsl_file!(
        "ops/conv/subgroup.wgsl",
        [&WORKGROUP_INDEX, &COMMON, &gemm::SUBGROUP]
    ),
    subgroups: true,
    structs: &[("Params", Params::LAYOUT)],
};

/// backward_input_broadcast_vec4 takes tiles of 64 rows only where that leaves at least this
/// many workgroups: on a CPU driver a lone workgroup runs on one thread while the others idle
/// (SqueezeNet's 48-channel input gradients at 15 x 15, one tile of 64 rows or two of 32, ran
/// slower in one on two idle cores).
const MIN_WIDE_TILE_WORKGROUPS: usize = 2;

/// The workgroup tile of the GEMM kernels for a GEMM of m rows: 8, 16 or 32 rows (ROW_GROUPS of
/// 8) by 256 columns.
fn broadcast_tile(m: usize) -> Tile {
    Tile {
        rows: 8 * subgroup_row_groups(m),
        cols: SUBGROUP_COLUMNS,
    }
}

/// The tile of a `_vec4` kernel: 64 rows (ROW_BLOCKS = 2) where M is above 32 and `wide`
/// allows it, else `broadcast_tile`.
fn vec4_tile(m: usize, wide: bool) -> Tile {
    if m > 32 && wide {
        Tile {
            rows: 64,
            cols: SUBGROUP_COLUMNS,
        }
    } else {
        broadcast_tile(m)
    }
}

/// A dispatch of the GEMM kernel `entry` for `params` made with `tile` and `splits` slices of
/// K; `constants` adds to the tile's ROW_GROUPS and ROW_BLOCKS.
// The kernel choice, tiling, constants and buffers are all independent inputs of one dispatch.
#[allow(clippy::too_many_arguments)]
fn broadcast_gemm(
    gpu: &Gpu,
    entry: &'static str,
    tile: Tile,
    params: &Params,
    splits: usize,
    constants: &[(&'static str, f64)],
    reads: &[&wgpu::Buffer],
    output: &wgpu::Buffer,
) -> Result<Dispatch> {
    let gemm = [params.gemm_m, params.gemm_n, params.gemm_k].map(|v| v as usize);
    let mut all_constants = vec![("ROW_GROUPS", (tile.rows / 8).min(4) as f64)];
    if tile.rows > 32 {
        all_constants.push(("ROW_BLOCKS", (tile.rows / 32) as f64));
    }
    all_constants.extend_from_slice(constants);
    gpu.prepare(KernelCall {
        shader: &SHADER,
        entry,
        constants: &all_constants,
        params: bytes_of(params),
        reads,
        writes: &[output],
        workgroups: (tile.workgroups(gemm) * splits) as u32,
    })
}

/// UNIT_STRIDE of the input-gradient kernels: stride 1 in every dim skips their divisions.
fn unit_stride(geo: &Geometry) -> (&'static str, f64) {
    ("UNIT_STRIDE", (geo.stride == [1; 3]) as u32 as f64)
}

/// A copy of the weights `w` laid out anew by `entry` (`invocations` of it) into a scratch
/// buffer of `bytes`, made on every run since training changes the weights: the buffer and the
/// dispatch that fills it.
fn relaid_weight(
    ctx: &mut EncodeCtx<'_>,
    entry: &'static str,
    params: &Params,
    w: &Tensor,
    bytes: u64,
    invocations: usize,
) -> Result<(Arc<wgpu::Buffer>, Dispatch)> {
    let copy = ctx.scratch(&format!("conv_backward_input weight ({entry})"), bytes)?;
    let dispatch = ctx.gpu.dispatch(
        &SHADER,
        entry,
        bytes_of(params),
        &[&w.buffer],
        &[&copy],
        workgroups_for(invocations, WORKGROUP),
    )?;
    Ok((copy, dispatch))
}

/// The weights read as vec4s where K is a multiple of 4 (forward_broadcast_vec4), with tiles of
/// 64 rows when there are more than 32.
pub(super) fn forward(
    ctx: &mut EncodeCtx<'_>,
    geo: &Geometry,
    relu: bool,
    inputs: &[&Tensor],
    output: &Tensor,
) -> Result<Vec<Dispatch>> {
    let gemm = geo.forward_gemm();
    let (entry, tile) = if gemm[2].is_multiple_of(4) {
        ("forward_broadcast_vec4", vec4_tile(gemm[0], true))
    } else {
        ("forward_broadcast", broadcast_tile(gemm[0]))
    };
    let params = geo.forward_params(tile, inputs.len() == 3);
    Ok(vec![broadcast_gemm(
        ctx.gpu,
        entry,
        tile,
        &params,
        1,
        &[("RELU", relu as u32 as f64)],
        &forward_reads(inputs),
        &output.buffer,
    )?])
}

/// For O a multiple of 4, w copied transposed to scratch ([C * taps, O]) and read as vec4s by
/// backward_input_broadcast_vec4, in tiles of 64 rows when there are more than 32 and that
/// leaves `MIN_WIDE_TILE_WORKGROUPS`; otherwise backward_input_broadcast on w as it is.
pub(super) fn backward_input(
    ctx: &mut EncodeCtx<'_>,
    geo: &Geometry,
    inputs: &[&Tensor],
    output: &Tensor,
) -> Result<Vec<Dispatch>> {
    let gemm = geo.input_gemm();
    if !geo.o.is_multiple_of(4) {
        let tile = broadcast_tile(gemm[0]);
        let params = geo.params(gemm, tile, 1, gemm[2]);
        return Ok(vec![broadcast_gemm(
            ctx.gpu,
            "backward_input_broadcast",
            tile,
            &params,
            1,
            &[unit_stride(geo)],
            &[&inputs[0].buffer, &inputs[1].buffer],
            &output.buffer,
        )?]);
    }
    let wide_tiles = gemm[0].div_ceil(64) * gemm[1].div_ceil(SUBGROUP_COLUMNS);
    let tile = vec4_tile(gemm[0], wide_tiles >= MIN_WIDE_TILE_WORKGROUPS);
    let params = geo.params(gemm, tile, 1, gemm[2]);
    let weights = geo.o * geo.c * geo.taps();
    let (transposed, transpose) = relaid_weight(
        ctx,
        "transpose_weight",
        &params,
        inputs[1],
        4 * weights as u64,
        weights / 4,
    )?;
    let gemm_pass = broadcast_gemm(
        ctx.gpu,
        "backward_input_broadcast_vec4",
        tile,
        &params,
        1,
        &[unit_stride(geo)],
        &[&inputs[0].buffer, &transposed],
        &output.buffer,
    )?;
    Ok(vec![transpose, gemm_pass])
}

/// w copied as vec4s over the channels, [taps, O], and broadcast from lanes; each workgroup
/// takes blocks of one stride phase, the phases of a region in consecutive workgroups (see
/// subgroup.wgsl).
pub(super) fn backward_input_few_channels(
    ctx: &mut EncodeCtx<'_>,
    geo: &Geometry,
    inputs: &[&Tensor],
    output: &Tensor,
) -> Result<Vec<Dispatch>> {
    let params = geo.few_channels_params();
    let weights = geo.o * geo.taps();
    let (w_channels, transpose) = relaid_weight(
        ctx,
        "transpose_few_channel_weight",
        &params,
        inputs[1],
        16 * weights as u64,
        weights,
    )?;
    let workgroups_per_phase = geo.position_blocks().div_ceil(WORKGROUP);
    let gather = ctx.gpu.dispatch(
        &SHADER,
        "backward_input_few_channels_broadcast",
        bytes_of(&params),
        &[&inputs[0].buffer, &w_channels],
        &[&output.buffer],
        (geo.n * geo.phases() * workgroups_per_phase) as u32,
    )?;
    Ok(vec![transpose, gather])
}

/// dy read as vec4s where 4 consecutive output positions are aligned
/// (backward_weight_broadcast_vec4), with tiles of 64 rows when there are more than 32.
pub(super) fn backward_weight(
    ctx: &mut EncodeCtx<'_>,
    geo: &Geometry,
    inputs: &[&Tensor],
    output: &Tensor,
) -> Result<Vec<Dispatch>> {
    let gemm = geo.weight_gemm();
    let dy_vec4 = geo.output_spatial().is_multiple_of(4);
    let tile = vec4_tile(gemm[0], dy_vec4);
    let split = WeightSplit::new(ctx, geo, tile)?;
    let entry = if dy_vec4 {
        "backward_weight_broadcast_vec4"
    } else {
        "backward_weight_broadcast"
    };
    let gemm_pass = broadcast_gemm(
        ctx.gpu,
        entry,
        tile,
        &split.params,
        split.splits,
        &[],
        &[&inputs[0].buffer, &inputs[1].buffer],
        split.target(output),
    )?;
    split.finish(ctx, gemm_pass, output)
}
