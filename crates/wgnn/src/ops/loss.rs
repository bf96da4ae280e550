//! Losses, each a mean reduced to shape [1]: mean squared error, binary cross-entropy on
//! logits, total variation of images, the triplet margin loss on embeddings, and cross-entropy
//! of class logits against integer labels. `loss.wgsl`. Forward kernels write one term per element (or triplet) to scratch and
//! the reduce family adds them in a fixed order; backward kernels scale by the upstream dy[0].

use crate::error::{Error, Result};
use crate::gpu::{
    bytes_of, shader_struct, wgsl_file, workgroups_for, Dispatch, KernelCall, Shader,
    WORKGROUP_INDEX,
};
use crate::graph::{BackwardCtx, EncodeCtx, Graph, NodeId, Op, SpatialMap};
use crate::ops::reduce;
use crate::tensor::{DType, Shape, Tensor};

pub static SHADER: Shader = Shader {
    name: "loss",
    file: wgsl_file!("ops/loss.wgsl", [&WORKGROUP_INDEX, &super::SIGMOID]),
    subgroups: false,
    structs: &[("Params", Params::LAYOUT)],
};
const WORKGROUP: usize = 256;

shader_struct! {
    #[derive(Default)]
    struct Params {
        n: u32,
        rows: u32,
        dim: u32,
        width: u32,
        scale: f32,
        which: u32,
        margin: f32,
        inv_v: f32,
        inv_h: f32,
        ignore_index: u32,
        has_ignore: u32,
        _pad2: u32,
    }
}

fn same_shapes(op: &str, a: &Shape, b: &Shape) -> Result<()> {
    if a != b {
        return Err(Error::shape(
            op,
            format!("both inputs must have the same shape, not {a} and {b}"),
        ));
    }
    Ok(())
}

/// `entry` writes `terms` values to a scratch buffer; their sum times `scale` goes to `output`.
fn encode_sum_of_terms(
    ctx: &mut EncodeCtx<'_>,
    entry: &'static str,
    params: &Params,
    reads: &[&wgpu::Buffer],
    terms: usize,
    scale: f32,
    output: &Tensor,
) -> Result<Vec<Dispatch>> {
    let scratch = ctx.scratch("loss terms", 4 * terms as u64)?;
    let mut dispatches = vec![ctx.gpu.prepare(KernelCall {
        shader: &SHADER,
        entry,
        constants: &[],
        params: bytes_of(params),
        reads,
        writes: &[&scratch],
        workgroups: workgroups_for(terms, WORKGROUP),
    })?];
    dispatches.extend(reduce::encode_sum(
        ctx,
        &scratch,
        [1, terms, 1],
        scale,
        &output.buffer,
    )?);
    Ok(dispatches)
}

/// An elementwise backward kernel: inputs (a, b, dy), output of a's shape.
fn encode_pair_backward(
    ctx: &mut EncodeCtx<'_>,
    entry: &'static str,
    params: &Params,
    inputs: &[&Tensor],
    output: &Tensor,
) -> Result<Vec<Dispatch>> {
    Ok(vec![ctx.gpu.prepare(KernelCall {
        shader: &SHADER,
        entry,
        constants: &[],
        params: bytes_of(params),
        reads: &[&inputs[0].buffer, &inputs[1].buffer, &inputs[2].buffer],
        writes: &[&output.buffer],
        workgroups: workgroups_for(output.shape.numel(), WORKGROUP),
    })?])
}

/// Checks (a, b, dy) for an elementwise loss backward and returns a's shape.
fn pair_backward_shape(op: &str, inputs: &[&Shape]) -> Result<Shape> {
    same_shapes(op, inputs[0], inputs[1])?;
    if inputs[2].numel() != 1 {
        return Err(Error::shape(
            op,
            "the upstream gradient must have one element",
        ));
    }
    Ok(inputs[0].clone())
}

/// mean((a - b)^2) over all elements; inputs (a, b) of the same shape.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mse;

/// The gradient of `Mse` for a (sign 1) or b (sign -1): sign * 2 (a - b) / n * dy; inputs
/// (a, b, dy).
#[derive(Clone, Copy, Debug)]
pub struct MseBackward {
    pub sign: f32,
}

impl Op for Mse {
    fn name(&self) -> &'static str {
        "mse"
    }

    fn spatial_map(&self, _inputs: &[&Shape]) -> Option<SpatialMap> {
        Some(SpatialMap::Global)
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        same_shapes(self.name(), inputs[0], inputs[1])?;
        Ok(Shape::scalar())
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let n = inputs[0].shape.numel();
        let params = Params {
            n: n as u32,
            ..Default::default()
        };
        let reads = [&*inputs[0].buffer, &*inputs[1].buffer];
        let scale = (1.0 / n as f64) as f32;
        encode_sum_of_terms(ctx, "mse_terms", &params, &reads, n, scale, output)
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        let operands = [ctx.inputs[0], ctx.inputs[1], ctx.grad];
        let mut grads = Vec::new();
        for (needed, sign) in ctx.needs_grad.iter().zip([1.0, -1.0]) {
            grads.push(if *needed {
                Some(g.apply(MseBackward { sign }, &operands)?)
            } else {
                None
            });
        }
        Ok(grads)
    }

    fn flops(&self, inputs: &[&Shape], _: &Shape) -> u64 {
        3 * inputs[0].numel() as u64
    }
}

impl Op for MseBackward {
    fn name(&self) -> &'static str {
        "mse_backward"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        pair_backward_shape(self.name(), inputs)
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let n = output.shape.numel();
        let params = Params {
            n: n as u32,
            scale: (self.sign as f64 * 2.0 / n as f64) as f32,
            ..Default::default()
        };
        encode_pair_backward(ctx, "mse_backward", &params, inputs, output)
    }
}

/// Binary cross-entropy on logits x with targets y, mean over all elements of the stable form
/// max(x, 0) - x y + log(1 + exp(-|x|)); inputs (logits, targets) of the same shape.
#[derive(Clone, Copy, Debug, Default)]
pub struct BceWithLogits;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BceInput {
    Logits,
    Targets,
}

/// The gradient of `BceWithLogits` for the logits ((sigmoid(x) - y) / n * dy) or the targets
/// (-x / n * dy); inputs (logits, targets, dy).
#[derive(Clone, Copy, Debug)]
pub struct BceWithLogitsBackward {
    pub wrt: BceInput,
}

impl Op for BceWithLogits {
    fn name(&self) -> &'static str {
        "bce_with_logits"
    }

    fn spatial_map(&self, _inputs: &[&Shape]) -> Option<SpatialMap> {
        Some(SpatialMap::Global)
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        same_shapes(self.name(), inputs[0], inputs[1])?;
        Ok(Shape::scalar())
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let n = inputs[0].shape.numel();
        let params = Params {
            n: n as u32,
            ..Default::default()
        };
        let reads = [&*inputs[0].buffer, &*inputs[1].buffer];
        let scale = (1.0 / n as f64) as f32;
        encode_sum_of_terms(ctx, "bce_terms", &params, &reads, n, scale, output)
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        let operands = [ctx.inputs[0], ctx.inputs[1], ctx.grad];
        let mut grads = Vec::new();
        for (needed, wrt) in ctx
            .needs_grad
            .iter()
            .zip([BceInput::Logits, BceInput::Targets])
        {
            grads.push(if *needed {
                Some(g.apply(BceWithLogitsBackward { wrt }, &operands)?)
            } else {
                None
            });
        }
        Ok(grads)
    }

    fn flops(&self, inputs: &[&Shape], _: &Shape) -> u64 {
        8 * inputs[0].numel() as u64
    }
}

impl Op for BceWithLogitsBackward {
    fn name(&self) -> &'static str {
        "bce_with_logits_backward"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        pair_backward_shape(self.name(), inputs)
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let n = output.shape.numel();
        let params = Params {
            n: n as u32,
            scale: (1.0 / n as f64) as f32,
            which: match self.wrt {
                BceInput::Logits => 0,
                BceInput::Targets => 1,
            },
            ..Default::default()
        };
        encode_pair_backward(ctx, "bce_backward", &params, inputs, output)
    }
}

/// Total variation of images [C, H, W] or [N, C, H, W]: the mean squared difference between
/// vertical neighbours plus the mean squared difference between horizontal neighbours (each
/// mean over its own count of differences). Needs H >= 2 and W >= 2.
#[derive(Clone, Copy, Debug, Default)]
pub struct TotalVariation;

/// The gradient of `TotalVariation`; inputs (x, dy).
#[derive(Clone, Copy, Debug, Default)]
pub struct TotalVariationBackward;

/// Checks an image batch and returns its params: planes, h, w and the two inverse counts.
fn total_variation_params(op: &str, x: &Shape) -> Result<Params> {
    if !(3..=4).contains(&x.rank()) {
        return Err(Error::shape(
            op,
            format!("expects [C, H, W] or [N, C, H, W], not {x}"),
        ));
    }
    let (h, w) = (x.dim(-2), x.dim(-1));
    if h < 2 || w < 2 {
        return Err(Error::shape(
            op,
            format!("needs at least 2 rows and 2 columns, not {x}"),
        ));
    }
    let planes = x.numel() / (h * w);
    Ok(Params {
        n: x.numel() as u32,
        rows: planes as u32,
        dim: h as u32,
        width: w as u32,
        inv_v: (1.0 / (planes * (h - 1) * w) as f64) as f32,
        inv_h: (1.0 / (planes * h * (w - 1)) as f64) as f32,
        ..Default::default()
    })
}

impl Op for TotalVariation {
    fn name(&self) -> &'static str {
        "total_variation"
    }

    fn spatial_map(&self, _inputs: &[&Shape]) -> Option<SpatialMap> {
        Some(SpatialMap::Global)
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        total_variation_params(self.name(), inputs[0])?;
        Ok(Shape::scalar())
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let params = total_variation_params(self.name(), &inputs[0].shape)?;
        let n = inputs[0].shape.numel();
        let reads = [&*inputs[0].buffer];
        encode_sum_of_terms(ctx, "tv_terms", &params, &reads, n, 1.0, output)
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        Ok(vec![Some(g.apply(
            TotalVariationBackward,
            &[ctx.inputs[0], ctx.grad],
        )?)])
    }

    fn flops(&self, inputs: &[&Shape], _: &Shape) -> u64 {
        7 * inputs[0].numel() as u64
    }
}

impl Op for TotalVariationBackward {
    fn name(&self) -> &'static str {
        "total_variation_backward"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        total_variation_params(self.name(), inputs[0])?;
        if inputs[1].numel() != 1 {
            return Err(Error::shape(
                self.name(),
                "the upstream gradient must have one element",
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
        let params = total_variation_params(self.name(), &inputs[0].shape)?;
        Ok(vec![ctx.gpu.dispatch(
            &SHADER,
            "tv_backward",
            bytes_of(&params),
            &[&inputs[0].buffer, &inputs[1].buffer],
            &[&output.buffer],
            workgroups_for(output.shape.numel(), WORKGROUP),
        )?])
    }
}

/// The triplet margin loss on embeddings [N, D] and u32 triplets [T, 3] of row indices
/// (anchor, positive, negative): the mean over triplets of
/// max(0, |e_a - e_p|^2 - |e_a - e_n|^2 + margin). A triplet naming a row >= N makes the loss
/// NaN.
#[derive(Clone, Copy, Debug)]
pub struct TripletLoss {
    pub margin: f32,
}

/// The gradient of `TripletLoss` for the embeddings; inputs (embeddings, triplets, dy).
/// Accumulated per row over the active triplets in triplet order (no atomics).
#[derive(Clone, Copy, Debug)]
pub struct TripletLossBackward {
    pub margin: f32,
}

/// Checks embeddings [N, D] and triplets [T, 3]; returns params with n = T, rows N, dim D.
fn triplet_params(op: &str, embeddings: &Shape, triplets: &Shape, margin: f32) -> Result<Params> {
    if embeddings.rank() != 2 {
        return Err(Error::shape(
            op,
            format!("embeddings must be [N, D], not {embeddings}"),
        ));
    }
    if triplets.rank() != 2 || triplets.dim(1) != 3 {
        return Err(Error::shape(
            op,
            format!("triplets must be [T, 3], not {triplets}"),
        ));
    }
    let count = triplets.dim(0);
    Ok(Params {
        n: count as u32,
        rows: embeddings.dim(0) as u32,
        dim: embeddings.dim(1) as u32,
        margin,
        scale: (1.0 / count as f64) as f32,
        ..Default::default()
    })
}

fn check_triplet_dtypes(op: &str, embeddings: &Tensor, triplets: &Tensor) -> Result<()> {
    if embeddings.dtype != DType::F32 || triplets.dtype != DType::U32 {
        return Err(Error::Invalid(format!(
            "{op}: expects f32 embeddings and u32 triplets, not {:?} and {:?}",
            embeddings.dtype, triplets.dtype
        )));
    }
    Ok(())
}

impl Op for TripletLoss {
    fn name(&self) -> &'static str {
        "triplet_loss"
    }

    fn spatial_map(&self, _inputs: &[&Shape]) -> Option<SpatialMap> {
        Some(SpatialMap::Global)
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        triplet_params(self.name(), inputs[0], inputs[1], self.margin)?;
        Ok(Shape::scalar())
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        check_triplet_dtypes(self.name(), inputs[0], inputs[1])?;
        let params = triplet_params(self.name(), &inputs[0].shape, &inputs[1].shape, self.margin)?;
        let count = params.n as usize;
        let reads = [&*inputs[0].buffer, &*inputs[1].buffer];
        encode_sum_of_terms(
            ctx,
            "triplet_terms",
            &params,
            &reads,
            count,
            params.scale,
            output,
        )
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        let grad = g.apply(
            TripletLossBackward {
                margin: self.margin,
            },
            &[ctx.inputs[0], ctx.inputs[1], ctx.grad],
        )?;
        Ok(vec![Some(grad), None])
    }

    fn flops(&self, inputs: &[&Shape], _: &Shape) -> u64 {
        6 * inputs[1].dim(0) as u64 * inputs[0].dim(1) as u64
    }
}

impl Op for TripletLossBackward {
    fn name(&self) -> &'static str {
        "triplet_loss_backward"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        triplet_params(self.name(), inputs[0], inputs[1], self.margin)?;
        if inputs[2].numel() != 1 {
            return Err(Error::shape(
                self.name(),
                "the upstream gradient must have one element",
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
        check_triplet_dtypes(self.name(), inputs[0], inputs[1])?;
        let params = triplet_params(self.name(), &inputs[0].shape, &inputs[1].shape, self.margin)?;
        let count = params.n as usize;
        let hinges = ctx.scratch("triplet hinges", 4 * count as u64)?;
        let (embeddings, triplets, dy) = (&inputs[0].buffer, &inputs[1].buffer, &inputs[2].buffer);
        Ok(vec![
            ctx.gpu.dispatch(
                &SHADER,
                "triplet_terms",
                bytes_of(&params),
                &[embeddings, triplets],
                &[&hinges],
                workgroups_for(count, WORKGROUP),
            )?,
            ctx.gpu.dispatch(
                &SHADER,
                "triplet_backward",
                bytes_of(&params),
                &[embeddings, triplets, dy, &hinges],
                &[&output.buffer],
                params.rows,
            )?,
        ])
    }
}

/// Cross-entropy of f32 logits [N, C] or [N, C, d1, ...] (classes along axis 1, as in
/// PyTorch's `cross_entropy`) against u32 class labels [N] or [N, d1, ...]: the mean over every
/// labelled position of log(sum_c exp(x_c)) - x_label, computed with the maximum subtracted.
/// Labels are a graph input like any other (`Graph::input_u32`, written with
/// `Plan::write_input_u32` before each step), so they change per step without recompiling.
/// A label equal to `ignore_index` counts for nothing (neither term nor count; the loss is NaN
/// when every label is ignored). A label >= C that is not ignored cannot be caught when the
/// graph is built: it makes the loss and the gradients of its position NaN.
#[derive(Clone, Copy, Debug, Default)]
pub struct CrossEntropy {
    pub ignore_index: Option<u32>,
}

/// The gradient of `CrossEntropy` for the logits, (softmax(x) - onehot(label)) * dy / count;
/// inputs (logits, labels, dy).
#[derive(Clone, Copy, Debug, Default)]
pub struct CrossEntropyBackward {
    pub ignore_index: Option<u32>,
}

/// Checks logits [N, C, ...] and labels [N, ...]; returns params with n the labelled positions,
/// dim C and width the product of the dimensions after C.
fn cross_entropy_params(
    op: &str,
    logits: &Shape,
    labels: &Shape,
    ignore_index: Option<u32>,
) -> Result<Params> {
    if logits.rank() < 2 {
        return Err(Error::shape(
            op,
            format!("logits must be [N, C] or [N, C, d1, ...], not {logits}"),
        ));
    }
    let mut expect = logits.dims().to_vec();
    let classes = expect.remove(1);
    if labels.dims() != expect.as_slice() {
        return Err(Error::shape(
            op,
            format!(
                "labels must have the shape of the logits {logits} without the class axis 1, \
                 {expect:?}, not {labels}"
            ),
        ));
    }
    let positions = labels.numel();
    Ok(Params {
        n: positions as u32,
        dim: classes as u32,
        width: (positions / logits.dim(0)) as u32,
        ignore_index: ignore_index.unwrap_or(0),
        has_ignore: ignore_index.is_some() as u32,
        ..Default::default()
    })
}

fn check_cross_entropy_dtypes(op: &str, logits: &Tensor, labels: &Tensor) -> Result<()> {
    if logits.dtype != DType::F32 || labels.dtype != DType::U32 {
        return Err(Error::Invalid(format!(
            "{op}: expects f32 logits and u32 labels, not {:?} and {:?}",
            logits.dtype, labels.dtype
        )));
    }
    Ok(())
}

/// The dispatch of `ce_stats`: per position its term, weight, maximum and log-sum, in a
/// scratch buffer [4, positions].
fn encode_cross_entropy_stats(
    ctx: &mut EncodeCtx<'_>,
    params: &Params,
    logits: &Tensor,
    labels: &Tensor,
) -> Result<(Dispatch, std::sync::Arc<wgpu::Buffer>)> {
    let positions = params.n as usize;
    let stats = ctx.scratch("cross-entropy stats", 4 * 4 * positions as u64)?;
    let dispatch = ctx.gpu.dispatch(
        &SHADER,
        "ce_stats",
        bytes_of(params),
        &[&logits.buffer, &labels.buffer],
        &[&stats],
        workgroups_for(positions, WORKGROUP),
    )?;
    Ok((dispatch, stats))
}

/// The sum of the terms and the count of labelled positions (rows 0 and 1 of the stats) into a
/// scratch buffer of two values.
fn encode_cross_entropy_sums(
    ctx: &mut EncodeCtx<'_>,
    stats: &wgpu::Buffer,
    positions: usize,
) -> Result<(Vec<Dispatch>, std::sync::Arc<wgpu::Buffer>)> {
    let sums = ctx.scratch("cross-entropy sums", 8)?;
    let dispatches = reduce::encode_sum(ctx, stats, [2, positions, 1], 1.0, &sums)?;
    Ok((dispatches, sums))
}

impl Op for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross_entropy"
    }

    fn spatial_map(&self, _inputs: &[&Shape]) -> Option<SpatialMap> {
        Some(SpatialMap::Global)
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        cross_entropy_params(self.name(), inputs[0], inputs[1], self.ignore_index)?;
        Ok(Shape::scalar())
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        check_cross_entropy_dtypes(self.name(), inputs[0], inputs[1])?;
        let params = cross_entropy_params(
            self.name(),
            &inputs[0].shape,
            &inputs[1].shape,
            self.ignore_index,
        )?;
        let (stats_dispatch, stats) =
            encode_cross_entropy_stats(ctx, &params, inputs[0], inputs[1])?;
        let (sum_dispatches, sums) = encode_cross_entropy_sums(ctx, &stats, params.n as usize)?;
        let mut dispatches = vec![stats_dispatch];
        dispatches.extend(sum_dispatches);
        dispatches.push(ctx.gpu.dispatch(
            &SHADER,
            "ce_mean",
            bytes_of(&params),
            &[&sums],
            &[&output.buffer],
            1,
        )?);
        Ok(dispatches)
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        let grad = g.apply(
            CrossEntropyBackward {
                ignore_index: self.ignore_index,
            },
            &[ctx.inputs[0], ctx.inputs[1], ctx.grad],
        )?;
        Ok(vec![Some(grad), None])
    }

    fn flops(&self, inputs: &[&Shape], _: &Shape) -> u64 {
        4 * inputs[0].numel() as u64
    }
}

impl Op for CrossEntropyBackward {
    fn name(&self) -> &'static str {
        "cross_entropy_backward"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        cross_entropy_params(self.name(), inputs[0], inputs[1], self.ignore_index)?;
        if inputs[2].numel() != 1 {
            return Err(Error::shape(
                self.name(),
                "the upstream gradient must have one element",
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
        check_cross_entropy_dtypes(self.name(), inputs[0], inputs[1])?;
        let params = cross_entropy_params(
            self.name(),
            &inputs[0].shape,
            &inputs[1].shape,
            self.ignore_index,
        )?;
        let (stats_dispatch, stats) =
            encode_cross_entropy_stats(ctx, &params, inputs[0], inputs[1])?;
        let (sum_dispatches, sums) = encode_cross_entropy_sums(ctx, &stats, params.n as usize)?;
        let mut dispatches = vec![stats_dispatch];
        dispatches.extend(sum_dispatches);
        dispatches.push(ctx.gpu.dispatch(
            &SHADER,
            "ce_backward",
            bytes_of(&params),
            &[
                &inputs[0].buffer,
                &inputs[1].buffer,
                &inputs[2].buffer,
                &stats,
                &sums,
            ],
            &[&output.buffer],
            workgroups_for(output.shape.numel(), WORKGROUP),
        )?);
        Ok(dispatches)
    }
}

impl Graph {
    /// mean((a - b)^2), shape [1].
    pub fn mse(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.apply(Mse, &[a, b])
    }

    /// Mean binary cross-entropy of `logits` against `targets` (same shape), shape [1].
    pub fn bce_with_logits(&mut self, logits: NodeId, targets: NodeId) -> Result<NodeId> {
        self.apply(BceWithLogits, &[logits, targets])
    }

    /// Total variation of images [C, H, W] or [N, C, H, W], shape [1].
    pub fn total_variation(&mut self, x: NodeId) -> Result<NodeId> {
        self.apply(TotalVariation, &[x])
    }

    /// Triplet margin loss of f32 `embeddings` [N, D] over u32 `triplets` [T, 3] (anchor,
    /// positive, negative row indices), shape [1].
    pub fn triplet_loss(
        &mut self,
        embeddings: NodeId,
        triplets: NodeId,
        margin: f32,
    ) -> Result<NodeId> {
        for (what, id, dtype) in [
            ("embeddings", embeddings, DType::F32),
            ("triplets", triplets, DType::U32),
        ] {
            if id.index() < self.nodes().len() && self.node(id).dtype != dtype {
                return Err(Error::Invalid(format!(
                    "triplet_loss: {what} must be {dtype:?}, not {:?}",
                    self.node(id).dtype
                )));
            }
        }
        self.apply(TripletLoss { margin }, &[embeddings, triplets])
    }

    /// Mean cross-entropy of f32 `logits` [N, C, ...] against u32 class `labels` [N, ...]
    /// (see [`CrossEntropy`]), shape [1].
    pub fn cross_entropy(&mut self, logits: NodeId, labels: NodeId) -> Result<NodeId> {
        self.cross_entropy_op(CrossEntropy { ignore_index: None }, logits, labels)
    }

    /// As `cross_entropy`, with positions labelled `ignore_index` left out of the mean.
    pub fn cross_entropy_ignoring(
        &mut self,
        logits: NodeId,
        labels: NodeId,
        ignore_index: u32,
    ) -> Result<NodeId> {
        let op = CrossEntropy {
            ignore_index: Some(ignore_index),
        };
        self.cross_entropy_op(op, logits, labels)
    }

    fn cross_entropy_op(
        &mut self,
        op: CrossEntropy,
        logits: NodeId,
        labels: NodeId,
    ) -> Result<NodeId> {
        for (what, id, dtype) in [
            ("logits", logits, DType::F32),
            ("labels", labels, DType::U32),
        ] {
            if id.index() < self.nodes().len() && self.node(id).dtype != dtype {
                return Err(Error::Invalid(format!(
                    "cross_entropy: {what} must be {dtype:?}, not {:?}",
                    self.node(id).dtype
                )));
            }
        }
        self.apply(op, &[logits, labels])
    }
}
