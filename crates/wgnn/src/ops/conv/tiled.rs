//! Convolution kernels on tiles staged in workgroup memory (`tiled.wgsl`): the design for every
//! device.

use super::{forward_reads, Geometry, Params, Tile, WeightSplit, COMMON, TILE_K, WORKGROUP};
use crate::error::Result;
use crate::gpu::{
    bytes_of, wgsl_file, workgroups_for, Dispatch, Gpu, KernelCall, Shader, WORKGROUP_INDEX,
};
use crate::graph::EncodeCtx;
use crate::ops::gemm;
use crate::tensor::Tensor;

pub(crate) static SHADER: Shader = Shader {
    name: "conv_tiled",
    file: wgsl_file!(
        "ops/conv/tiled.wgsl",
        [&WORKGROUP_INDEX, &COMMON, &gemm::TILED]
    ),
    subgroups: false,
    structs: &[("Params", Params::LAYOUT)],
};

/// The GEMM tile of one workgroup (BM x BN in tiled.wgsl, which needs rows * columns = 64 * 64):
/// square by default; for GEMMs of at most 32 or 16 rows, 32 x 128 or 16 x 256, so that fewer
/// rows of each tile are wasted. 16 x 256 needs 17 KiB of workgroup memory, more than WebGPU
/// guarantees: it is used only where the device allows it (lavapipe does; it ran SqueezeNet's
/// fire2 and fire3 input gradients, 16 rows, 1.3x faster than 32 x 128).
fn tile_for_rows(m: usize, gpu: &Gpu) -> Tile {
    let narrow = Tile {
        rows: 16,
        cols: 256,
    };
    if m <= 16 && workgroup_bytes(narrow) <= gpu.limits.max_compute_workgroup_storage_size {
        narrow
    } else if m <= 32 {
        Tile {
            rows: 32,
            cols: 128,
        }
    } else {
        Tile { rows: 64, cols: 64 }
    }
}

/// The A and B slices staged in workgroup memory (tile_a and tile_b in ops/gemm/tiled.wgsl).
fn workgroup_bytes(tile: Tile) -> u32 {
    (4 * TILE_K * (tile.rows + tile.cols)) as u32
}

fn tile_constants(tile: Tile) -> [(&'static str, f64); 2] {
    [("BM", tile.rows as f64), ("BN", tile.cols as f64)]
}

pub(super) fn forward(
    ctx: &mut EncodeCtx<'_>,
    geo: &Geometry,
    relu: bool,
    inputs: &[&Tensor],
    output: &Tensor,
) -> Result<Vec<Dispatch>> {
    let gemm = geo.forward_gemm();
    let tile = tile_for_rows(gemm[0], ctx.gpu);
    let params = geo.forward_params(tile, inputs.len() == 3);
    let [bm, bn] = tile_constants(tile);
    Ok(vec![ctx.gpu.prepare(KernelCall {
        shader: &SHADER,
        entry: "forward",
        constants: &[bm, bn, ("RELU", relu as u32 as f64)],
        params: bytes_of(&params),
        reads: &forward_reads(inputs),
        writes: &[&output.buffer],
        workgroups: tile.workgroups(gemm) as u32,
    })?])
}

pub(super) fn backward_input(
    ctx: &mut EncodeCtx<'_>,
    geo: &Geometry,
    inputs: &[&Tensor],
    output: &Tensor,
) -> Result<Vec<Dispatch>> {
    let gemm = geo.input_gemm();
    let tile = tile_for_rows(gemm[0], ctx.gpu);
    let params = geo.params(gemm, tile, 1, gemm[2]);
    Ok(vec![ctx.gpu.prepare(KernelCall {
        shader: &SHADER,
        entry: "backward_input",
        constants: &tile_constants(tile),
        params: bytes_of(&params),
        reads: &[&inputs[0].buffer, &inputs[1].buffer],
        writes: &[&output.buffer],
        workgroups: tile.workgroups(gemm) as u32,
    })?])
}

/// One invocation per 4 input positions (enumerated by stride phase, see tiled.wgsl), all
/// channels at once, weights staged in workgroup memory in chunks of output channels.
pub(super) fn backward_input_few_channels(
    ctx: &mut EncodeCtx<'_>,
    geo: &Geometry,
    inputs: &[&Tensor],
    output: &Tensor,
) -> Result<Vec<Dispatch>> {
    let params = geo.few_channels_params();
    Ok(vec![ctx.gpu.dispatch(
        &SHADER,
        "backward_input_few_channels",
        bytes_of(&params),
        &[&inputs[0].buffer, &inputs[1].buffer],
        &[&output.buffer],
        workgroups_for(geo.n * geo.phases() * geo.position_blocks(), WORKGROUP),
    )?])
}

pub(super) fn backward_weight(
    ctx: &mut EncodeCtx<'_>,
    geo: &Geometry,
    inputs: &[&Tensor],
    output: &Tensor,
) -> Result<Vec<Dispatch>> {
    let gemm = geo.weight_gemm();
    let tile = tile_for_rows(gemm[0], ctx.gpu);
    let split = WeightSplit::new(ctx, geo, tile)?;
    let gemm_pass = ctx.gpu.prepare(KernelCall {
        shader: &SHADER,
        entry: "backward_weight",
        constants: &tile_constants(tile),
        params: bytes_of(&split.params),
        reads: &[&inputs[0].buffer, &inputs[1].buffer],
        writes: &[split.target(output)],
        workgroups: (tile.workgroups(gemm) * split.splits) as u32,
    })?;
    split.finish(ctx, gemm_pass, output)
}
