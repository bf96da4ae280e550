//! Gram matrices of feature maps (style losses): G[n] = F F^T / (C * HW) with F the C x HW
//! matrix of x[n] (`common.wgsl`). Backward: dF = (dG + dG^T) F / (C * HW).
//!
//! The kernels come in two designs (`GemmVariant`), one file each: `tiled` (tiles staged in
//! workgroup memory, every device) and `subgroup` (rows of the left operand shared by subgroup
//! broadcasts: 3x faster on lavapipe; devices with `Gpu::subgroup_broadcast`). This file holds
//! what both share: shapes, the uniform parameters, the split of the forward reduction with its
//! sum (`reduce.wgsl`), and one dispatcher per pass that picks the design.

pub(crate) mod subgroup;
pub(crate) mod tiled;

use crate::error::{Error, Result};
use crate::gpu::{
    bytes_of, shader_struct, wgsl_file, workgroups_for, Dispatch, KernelCall, Shader, WgslFile,
    WORKGROUP_INDEX,
};
use crate::graph::{BackwardCtx, EncodeCtx, Graph, NodeId, Op, SpatialMap};
use crate::ops::gemm::{self, GemmVariant};
use crate::tensor::{Shape, Tensor};

/// Params and the bindings of both designs' kernels.
static COMMON: WgslFile = wgsl_file!("ops/gram/common.wgsl");

/// `reduce_splits`: the sum of a split forward pass's slices.
pub(crate) static REDUCE_SHADER: Shader = Shader {
    name: "gram_reduce",
    file: wgsl_file!("ops/gram/reduce.wgsl", [&WORKGROUP_INDEX, &COMMON]),
    subgroups: false,
    structs: &[("Params", Params::LAYOUT)],
};

/// Reduction step of both designs' forward kernels: split ranges of the forward pass are
/// multiples of it.
const STEP: usize = 16;
/// The forward pass splits its reduction over HW when it would launch fewer workgroups than
/// this (small C, e.g. the 64 channels of VGG's first block, give one 64 x 64 tile)...
const MIN_WORKGROUPS: usize = 64;
/// ...into ranges of at least this many columns of F.
const MIN_SPLIT_COLUMNS: usize = 1024;
const REDUCE_WORKGROUP: usize = 256;

shader_struct! {
    /// Mirrors `Params` in common.wgsl.
    struct Params {
        batch: u32,
        c: u32,
        hw: u32,
        row_tiles: u32,
        tiles: u32,
        col_tiles: u32,
        scale: f32,
        splits: u32,
        k_split: u32,
        count: u32,
        _pad: u32,
    }
}

/// (N, C, HW) of a feature tensor [N, C, spatial...] of rank 3 to 5.
fn features(op: &str, shape: &Shape) -> Result<(usize, usize, usize)> {
    if !(3..=5).contains(&shape.rank()) {
        return Err(Error::shape(
            op,
            format!("features must be [N, C, spatial...] of rank 3 to 5, not {shape}"),
        ));
    }
    let d = shape.dims();
    Ok((d[0], d[1], d[2..].iter().product()))
}

/// The uniform parameters of x's Gram matrix without the tiling (row_tiles, tiles and col_tiles,
/// which each design sets for its tiles) and without a split.
fn params(x: &Shape) -> Params {
    let d = x.dims();
    let (n, c, hw) = (d[0], d[1], d[2..].iter().product::<usize>());
    Params {
        batch: n as u32,
        c: c as u32,
        hw: hw as u32,
        row_tiles: 0,
        tiles: 0,
        col_tiles: 0,
        scale: 1.0 / (c * hw) as f32,
        splits: 1,
        k_split: hw as u32,
        count: (n * c * c) as u32,
        _pad: 0,
    }
}

/// (splits, columns per split) of the forward reduction over `hw` for `workgroups` tiles.
fn split_reduction(workgroups: usize, hw: usize) -> (usize, usize) {
    if workgroups >= MIN_WORKGROUPS {
        return (1, hw);
    }
    let wanted = MIN_WORKGROUPS
        .div_ceil(workgroups)
        .min(hw / MIN_SPLIT_COLUMNS)
        .max(1);
    let k_split = hw.div_ceil(wanted).next_multiple_of(STEP);
    (hw.div_ceil(k_split), k_split)
}

/// The forward kernel `entry` of `shader` for `params` (tiles over the whole reduction), split
/// over HW where it would launch too few workgroups (`split_reduction`): the slices write
/// unscaled partial sums to scratch and `reduce_splits` adds them in order and scales.
fn split_forward(
    ctx: &mut EncodeCtx<'_>,
    shader: &'static Shader,
    entry: &'static str,
    mut params: Params,
    inputs: &[&Tensor],
    output: &Tensor,
) -> Result<Vec<Dispatch>> {
    let tiles = (params.batch * params.tiles) as usize;
    let (splits, k_split) = split_reduction(tiles, params.hw as usize);
    if splits == 1 {
        return Ok(vec![ctx.gpu.dispatch(
            shader,
            entry,
            bytes_of(&params),
            &[&inputs[0].buffer],
            &[&output.buffer],
            tiles as u32,
        )?]);
    }
    let partial = ctx.scratch("gram partial sums", splits as u64 * output.shape.bytes())?;
    let scale = params.scale;
    params.splits = splits as u32;
    params.k_split = k_split as u32;
    params.scale = 1.0;
    let partial_sums = ctx.gpu.prepare(KernelCall {
        shader,
        entry,
        constants: &[],
        params: bytes_of(&params),
        reads: &[&inputs[0].buffer],
        writes: &[&partial],
        workgroups: (splits * tiles) as u32,
    })?;
    params.scale = scale;
    let reduce = ctx.gpu.dispatch(
        &REDUCE_SHADER,
        "reduce_splits",
        bytes_of(&params),
        &[&partial],
        &[&output.buffer],
        workgroups_for(params.count as usize, REDUCE_WORKGROUP),
    )?;
    Ok(vec![partial_sums, reduce])
}

/// G from x.
fn forward(ctx: &mut EncodeCtx<'_>, inputs: &[&Tensor], output: &Tensor) -> Result<Vec<Dispatch>> {
    gemm::choose(
        ctx,
        "gram.forward",
        gemm_dims(inputs[0]),
        |ctx, variant| match variant {
            GemmVariant::Tiled => tiled::forward(ctx, inputs, output),
            GemmVariant::Subgroup => subgroup::forward(ctx, inputs, output),
        },
    )
}

/// The GEMM of x [N, C, spatial...]'s Gram matrices, for the autotuner's shape class: C x C
/// over N x spatial terms.
fn gemm_dims(x: &Tensor) -> [usize; 3] {
    let c = x.shape.dims().get(1).copied().unwrap_or(1).max(1);
    [c, c, x.shape.numel() / c]
}

/// dF from (x, dG).
fn backward(ctx: &mut EncodeCtx<'_>, inputs: &[&Tensor], output: &Tensor) -> Result<Vec<Dispatch>> {
    gemm::choose(
        ctx,
        "gram.backward",
        gemm_dims(inputs[0]),
        |ctx, variant| match variant {
            GemmVariant::Tiled => tiled::backward(ctx, inputs, output),
            GemmVariant::Subgroup => subgroup::backward(ctx, inputs, output),
        },
    )
}

/// [N, C, spatial...] -> [N, C, C].
#[derive(Debug)]
pub struct Gram;

/// dF of `Gram`; inputs (x, dG).
#[derive(Debug)]
pub struct GramBackward;

impl Op for Gram {
    fn name(&self) -> &'static str {
        "gram"
    }

    fn spatial_map(&self, _inputs: &[&Shape]) -> Option<SpatialMap> {
        Some(SpatialMap::Global)
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        let (n, c, _) = features(self.name(), inputs[0])?;
        Shape::new(&[n, c, c])
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        forward(ctx, inputs, output)
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        Ok(vec![Some(
            g.apply(GramBackward, &[ctx.inputs[0], ctx.grad])?,
        )])
    }

    fn flops(&self, inputs: &[&Shape], _: &Shape) -> u64 {
        let (n, c, hw) = features(self.name(), inputs[0]).unwrap_or_default();
        (2 * n * c * c * hw) as u64
    }
}

impl Op for GramBackward {
    fn name(&self) -> &'static str {
        "gram_backward"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        let (n, c, _) = features(self.name(), inputs[0])?;
        if inputs[1].dims() != [n, c, c] {
            return Err(Error::shape(
                self.name(),
                format!("dG must be [{n}, {c}, {c}] for features {}", inputs[0]),
            ));
        }
        Ok(inputs[0].clone())
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        backward(ctx, inputs, output)
    }

    fn flops(&self, inputs: &[&Shape], _: &Shape) -> u64 {
        let (n, c, hw) = features(self.name(), inputs[0]).unwrap_or_default();
        (2 * n * c * c * hw) as u64
    }
}

impl Graph {
    /// Gram matrix of features [N, C, spatial...]: [N, C, C], normalised by C * HW.
    pub fn gram(&mut self, x: NodeId) -> Result<NodeId> {
        self.apply(Gram, &[x])
    }
}
