//! Grouped convolutions (groups > 1, depthwise among them) as direct loops (`grouped.wgsl`):
//! the design for every device, which every dispatcher in `mod.rs` takes for groups > 1.

use super::{forward_reads, Geometry, Params, COMMON, WORKGROUP};
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
