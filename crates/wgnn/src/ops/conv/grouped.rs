//! Grouped convolutions (groups > 1, depthwise among them) as direct loops (`grouped.wgsl`):
//! the design for every device, which every dispatcher in `mod.rs` takes for groups > 1. The
//! weight gradient of ungrouped convolutions of few input channels takes a direct loop here too.

use super::{forward_reads, Geometry, Params, WeightSplit, COMMON, WORKGROUP};
use crate::error::Result;
use crate::gpu::{
    bytes_of, wgsl_file, workgroups_for, Dispatch, KernelCall, Shader, WORKGROUP_INDEX,
};
use crate::graph::EncodeCtx;
use crate::tensor::Tensor;

pub(crate) static SHADER: Shader = Shader {
    name: "conv_grouped",
    file: wgsl_file!("ops/conv/grouped.wgsl", [&WORKGROUP_INDEX, &COMMON]),
    subgroups: false,
    structs: &[("Params", Params::LAYOUT)],
};

/// Invocations of the forward and input-gradient kernels: one per 4 positions along W of each
/// batch element, channel and (z, y) row of `spatial`.
fn blocks(n: usize, channels: usize, spatial: &[usize; 3]) -> usize {
    n * channels * spatial[0] * spatial[1] * spatial[2].div_ceil(4)
}

pub(super) fn forward(
    ctx: &mut EncodeCtx<'_>,
    geo: &Geometry,
    relu: bool,
    inputs: &[&Tensor],
    output: &Tensor,
) -> Result<Vec<Dispatch>> {
    let params = Params {
        has_bias: (inputs.len() == 3) as u32,
        ..geo.shape_params()
    };
    Ok(vec![ctx.gpu.prepare(KernelCall {
        shader: &SHADER,
        entry: "grouped_forward",
        constants: &[("RELU", relu as u32 as f64)],
        params: bytes_of(&params),
        reads: &forward_reads(inputs),
        writes: &[&output.buffer],
        workgroups: workgroups_for(blocks(geo.n, geo.o, &geo.output), WORKGROUP),
    })?])
}

pub(super) fn backward_input(
    ctx: &mut EncodeCtx<'_>,
    geo: &Geometry,
    inputs: &[&Tensor],
    output: &Tensor,
) -> Result<Vec<Dispatch>> {
    Ok(vec![ctx.gpu.dispatch(
        &SHADER,
        "grouped_backward_input",
        bytes_of(&geo.shape_params()),
        &[&inputs[0].buffer, &inputs[1].buffer],
        &[&output.buffer],
        workgroups_for(blocks(geo.n, geo.c, &geo.input), WORKGROUP),
    )?])
}

/// One workgroup per weight.
pub(super) fn backward_weight(
    ctx: &mut EncodeCtx<'_>,
    geo: &Geometry,
    inputs: &[&Tensor],
    output: &Tensor,
) -> Result<Vec<Dispatch>> {
    let weights = geo.o * geo.c / geo.groups * geo.taps();
    Ok(vec![ctx.gpu.dispatch(
        &SHADER,
        "grouped_backward_weight",
        bytes_of(&geo.shape_params()),
        &[&inputs[0].buffer, &inputs[1].buffer],
        &[&output.buffer],
        weights as u32,
    )?])
}

/// Output channels and taps of one invocation of few_channels_backward_weight (FEW_O and
/// FEW_TAPS in grouped.wgsl).
const FEW_O: usize = 8;
const FEW_TAPS: usize = 9;
/// few_channels_backward_weight splits its terms into slices until about this many invocations
/// run...
const FEW_CHANNELS_INVOCATIONS: usize = 2048;
/// ...as long as each slice keeps at least this many terms.
const MIN_SLICE_TERMS: usize = 64;

/// dw of an ungrouped convolution of at most `FEW_CHANNELS` input channels: direct sums in
/// slices of the batch and output positions (`few_channels_backward_weight`), then the slices'
/// sum in order.
pub(super) fn few_channels_backward_weight(
    ctx: &mut EncodeCtx<'_>,
    geo: &Geometry,
    inputs: &[&Tensor],
    output: &Tensor,
) -> Result<Vec<Dispatch>> {
    let blocks = geo.o.div_ceil(FEW_O) * geo.c * geo.taps().div_ceil(FEW_TAPS);
    let terms = geo.n * geo.output_spatial();
    let splits = (FEW_CHANNELS_INVOCATIONS / blocks)
        .min(terms / MIN_SLICE_TERMS)
        .max(1);
    let weights = geo.o * geo.c * geo.taps();
    let split = WeightSplit {
        params: Params {
            splits: splits as u32,
            gemm_m: geo.o as u32,
            gemm_n: (geo.c * geo.taps()) as u32,
            ..geo.shape_params()
        },
        splits,
        partial: if splits > 1 {
            Some(ctx.scratch(
                "conv_backward_weight partial sums",
                (4 * splits * weights) as u64,
            )?)
        } else {
            None
        },
    };
    let sums = ctx.gpu.dispatch(
        &SHADER,
        "few_channels_backward_weight",
        bytes_of(&split.params),
        &[&inputs[0].buffer, &inputs[1].buffer],
        &[split.target(output)],
        workgroups_for(blocks * splits, WORKGROUP),
    )?;
    split.finish(ctx, sums, output)
}
