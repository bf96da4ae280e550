//! Batch normalisation as PyTorch's BatchNorm1d / 2d / 3d computes it, on x [N, C, ...] (rank 2
//! to 5) with statistics per channel over the batch and every spatial position (M = N * spatial
//! values per channel). `batch_norm.wgsl`.
//!
//! Training mode is two nodes, so that autodiff chains them and a trainer can keep the statistics:
//! - [`BatchStats`]: x -> [2, C], the per-channel mean (row 0) and biased variance (row 1).
//!   Backward: dx = (dmean + 2 * dvar * (x - mean)) / M.
//! - [`BatchNormApply`]: (x, stats, gamma, beta) -> y = (x - mean) / sqrt(var + eps) * gamma +
//!   beta. Backward: dx = dy * gamma * rstd (the statistics held fixed; their own path goes
//!   through `BatchStats`' backward), and from one pass of per-channel sums, sum(dy) and
//!   sum(dy * (x - mean)): dstats = (-gamma * rstd * sum(dy), -gamma / 2 * rstd^3 *
//!   sum(dy * (x - mean))), dgamma = rstd * sum(dy * (x - mean)), dbeta = sum(dy).
//!
//! Inference mode is `BatchNormApply` with the running statistics as two [C] inputs
//! ([`Statistics::Running`]); for export, [`fold_into_conv`] folds it into the convolution before.
//!
//! Dispatches of one layer per training step: forward 2 (statistics, apply); backward 7 (dx
//! through x, the sums, dstats, dgamma, dbeta, dx through the statistics, and the `add` of the
//! two dx); and 1 for the running statistics (`TrackRunningStats`). The two reductions take one
//! more dispatch each when a channel holds more than `CHUNK` values (the sums two more past
//! 2048 * `CHUNK` values: `reduce::encode_sum` adds their chunks).
//!
//! Running statistics: running = (1 - momentum) * running + momentum * batch, with the unbiased
//! variance var * M / (M - 1), in place at the end of the step. A training plan gets that update
//! from [`TrackRunningStats`], an `UpdateRule` that wraps the optimiser (the dispatch reads the
//! statistics node's buffer, which exists only once the plan is compiled):
//!
//! 1. `let bn = g.batch_norm(x, gamma, beta, BATCH_NORM_EPS)?;` and the running statistics as
//!    parameters, `let mean = g.param("bn1.running_mean", [c])?;` (likewise `running_var`),
//!    stored in the `ParamStore` (zeros and ones at first, as PyTorch starts them);
//! 2. `let mut rule = TrackRunningStats::new(Some(&mut optimizer));`
//!    `rule.track(&g, &bn, mean, var, BATCH_NORM_MOMENTUM)?;`
//! 3. compile with `updates` = the parameters' (parameter, gradient) pairs followed by
//!    `rule.updates()`, `keep` extended by `rule.keep()`, and `optimizer: Some(&mut rule)`.
//!
//! Each step then updates the parameters and the running statistics in its one submission.
//! [`running_stats_update`] prepares the same dispatch for tensors that already exist (eager use,
//! or `PlanSpec::after_update` with statistics held outside a plan).
//!
//! Files: this one holds the shapes, the uniform parameters and the forward ops; `backward.rs`
//! the ops of `BatchNormApply`'s backward rule; `running.rs` the running statistics' update;
//! `fold.rs` the folding into a convolution; `batch_norm.wgsl` every kernel.

mod backward;
mod fold;
mod running;

pub use backward::{BatchNormGradSums, BatchNormInputGrad, BatchNormParamGrad, GradPart};
pub use fold::{fold_into_conv, FrozenBatchNorm};
pub use running::{running_stats_update, TrackRunningStats};

use crate::error::{Error, Result};
use crate::gpu::{
    bytes_of, shader_struct, wgsl_file, workgroups_for, Dispatch, Shader, WORKGROUP_INDEX,
};
use crate::graph::{BackwardCtx, EncodeCtx, Graph, NodeId, Op, SpatialMap};
use crate::tensor::{Shape, Tensor};

pub static SHADER: Shader = Shader {
    name: "batch_norm",
    file: wgsl_file!("ops/batch_norm/batch_norm.wgsl", [&WORKGROUP_INDEX]),
    subgroups: false,
    structs: &[("Params", Params::LAYOUT)],
};

/// PyTorch's default eps, added to the variance inside the square root.
pub const BATCH_NORM_EPS: f32 = 1e-5;
/// PyTorch's default momentum of the running statistics.
pub const BATCH_NORM_MOMENTUM: f32 = 0.1;

const WORKGROUP: usize = 256;
/// Values of a channel that one workgroup of the chunked reductions visits (`CHUNK` in the
/// shader): channels of at most this many values take one pass.
pub const CHUNK: usize = 256 * 8;

shader_struct! {
    #[derive(Default)]
    struct Params {
        channels: u32,
        spatial: u32,
        count: u32,
        total: u32,
        chunks: u32,
        var_offset: u32,
        part: u32,
        eps: f32,
        inv_count: f32,
        momentum: f32,
        unbiased: f32,
    }
}

/// x [N, C, ...] seen as [N, C, S].
#[derive(Clone, Copy, Debug)]
struct Layout {
    batch: usize,
    channels: usize,
    spatial: usize,
}

impl Layout {
    fn of(op: &str, x: &Shape) -> Result<Self> {
        if !(2..=5).contains(&x.rank()) {
            return Err(Error::shape(
                op,
                format!(
                    "x must be [N, C] or [N, C, spatial...] with at most 3 spatial dims, not {x}"
                ),
            ));
        }
        let dims = x.dims();
        Ok(Self {
            batch: dims[0],
            channels: dims[1],
            spatial: dims[2..].iter().product(),
        })
    }

    /// M: the values of one channel.
    fn count(&self) -> usize {
        self.batch * self.spatial
    }

    fn numel(&self) -> usize {
        self.count() * self.channels
    }

    fn chunks(&self) -> usize {
        self.count().div_ceil(CHUNK)
    }

    fn params(&self) -> Params {
        Params {
            channels: self.channels as u32,
            spatial: self.spatial as u32,
            count: self.count() as u32,
            total: self.numel() as u32,
            chunks: self.chunks() as u32,
            inv_count: (1.0 / self.count() as f64) as f32,
            ..Default::default()
        }
    }

    /// A pointwise kernel's entry point and invocations: its vec4 version when S is a multiple
    /// of 4, so that each group of 4 elements lies in one channel.
    fn pointwise(&self, scalar: &'static str, vec4: &'static str) -> (&'static str, usize) {
        if self.spatial.is_multiple_of(4) {
            (vec4, self.numel() / 4)
        } else {
            (scalar, self.numel())
        }
    }
}

fn check_arity(op: &str, given: usize, expected: usize) -> Result<()> {
    if given != expected {
        return Err(Error::shape(
            op,
            format!(
                "takes {expected} input{}, not {given}",
                if expected == 1 { "" } else { "s" }
            ),
        ));
    }
    Ok(())
}

fn check_eps(op: &str, eps: f32) -> Result<()> {
    if !(eps >= 0.0 && eps.is_finite()) {
        return Err(Error::shape(
            op,
            format!("eps must be finite and >= 0, not {eps}"),
        ));
    }
    Ok(())
}

fn check_vector(op: &str, what: &str, shape: &Shape, channels: usize) -> Result<()> {
    if shape.dims() != [channels] {
        return Err(Error::shape(
            op,
            format!("{what} must be [{channels}] (one per channel), not {shape}"),
        ));
    }
    Ok(())
}

fn stats_shape(channels: usize) -> Shape {
    Shape::from([2, channels])
}

/// Where an op reads the mean and variance it normalises with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Statistics {
    /// One input [2, C] from `BatchStats`: mean in row 0, biased variance in row 1 (training).
    Batch,
    /// Two inputs [C], the running mean and the running variance (inference).
    Running,
}

impl Statistics {
    /// How many inputs hold the statistics.
    fn inputs(self) -> usize {
        match self {
            Statistics::Batch => 1,
            Statistics::Running => 2,
        }
    }

    fn check(self, op: &str, shapes: &[&Shape], channels: usize) -> Result<()> {
        match self {
            Statistics::Batch if shapes[0] != &stats_shape(channels) => Err(Error::shape(
                op,
                format!(
                    "the batch statistics must be [2, {channels}] (mean, variance), not {}",
                    shapes[0]
                ),
            )),
            Statistics::Batch => Ok(()),
            Statistics::Running => {
                check_vector(op, "the running mean", shapes[0], channels)?;
                check_vector(op, "the running variance", shapes[1], channels)
            }
        }
    }

    /// The buffers holding the mean and the variance, and the index of var[0] in the latter.
    fn buffers<'t>(
        self,
        inputs: &[&'t Tensor],
        channels: usize,
    ) -> (&'t wgpu::Buffer, &'t wgpu::Buffer, u32) {
        match self {
            Statistics::Batch => (&inputs[0].buffer, &inputs[0].buffer, channels as u32),
            Statistics::Running => (&inputs[0].buffer, &inputs[1].buffer, 0),
        }
    }
}

/// x [N, C, ...] -> [2, C]: the per-channel mean (row 0) and biased variance (row 1) over the
/// batch and every spatial position. Welford's update per invocation and Chan's merge along a
/// fixed tree: deterministic, and accurate when the mean is large against the spread.
#[derive(Clone, Debug)]
pub struct BatchStats;

/// The backward of `BatchStats`; inputs (x, stats, dstats [2, C]), output dx of x's shape.
#[derive(Clone, Debug)]
pub struct BatchStatsBackward;

impl Op for BatchStats {
    fn name(&self) -> &'static str {
        "batch_stats"
    }

    fn spatial_map(&self, _inputs: &[&Shape]) -> Option<SpatialMap> {
        Some(SpatialMap::Global)
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        check_arity(self.name(), inputs.len(), 1)?;
        let layout = Layout::of(self.name(), inputs[0])?;
        if layout.count() < 2 {
            return Err(Error::shape(
                self.name(),
                format!(
                    "batch statistics need more than one value per channel, {} has one",
                    inputs[0]
                ),
            ));
        }
        Ok(stats_shape(layout.channels))
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let layout = Layout::of(self.name(), &inputs[0].shape)?;
        let params = layout.params();
        let chunk_workgroups = (layout.channels * layout.chunks()) as u32;
        if layout.chunks() == 1 {
            return Ok(vec![ctx.gpu.dispatch(
                &SHADER,
                "stats_chunks",
                bytes_of(&params),
                &[&inputs[0].buffer],
                &[&output.buffer],
                chunk_workgroups,
            )?]);
        }
        let partials = ctx.scratch(
            "batch statistics of chunks",
            (3 * 4 * layout.channels * layout.chunks()) as u64,
        )?;
        Ok(vec![
            ctx.gpu.dispatch(
                &SHADER,
                "stats_chunks",
                bytes_of(&params),
                &[&inputs[0].buffer],
                &[&partials],
                chunk_workgroups,
            )?,
            ctx.gpu.dispatch(
                &SHADER,
                "stats_finish",
                bytes_of(&params),
                &[&partials],
                &[&output.buffer],
                layout.channels as u32,
            )?,
        ])
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        Ok(vec![Some(g.apply(
            BatchStatsBackward,
            &[ctx.inputs[0], ctx.output, ctx.grad],
        )?)])
    }

    fn flops(&self, inputs: &[&Shape], _: &Shape) -> u64 {
        // Welford's update: a subtraction, a division, two products and three sums per value.
        7 * inputs[0].numel() as u64
    }
}

impl Op for BatchStatsBackward {
    fn name(&self) -> &'static str {
        "batch_stats_backward"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        check_arity(self.name(), inputs.len(), 3)?;
        let layout = Layout::of(self.name(), inputs[0])?;
        let expected = stats_shape(layout.channels);
        if inputs[1] != &expected || inputs[2] != &expected {
            return Err(Error::shape(
                self.name(),
                format!(
                    "the statistics and their gradient must be {expected}, not {} and {}",
                    inputs[1], inputs[2]
                ),
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
        let layout = Layout::of(self.name(), &output.shape)?;
        let (entry, invocations) = layout.pointwise("stats_backward", "stats_backward4");
        let params = Params {
            total: invocations as u32,
            ..layout.params()
        };
        Ok(vec![ctx.gpu.dispatch(
            &SHADER,
            entry,
            bytes_of(&params),
            &[&inputs[0].buffer, &inputs[1].buffer, &inputs[2].buffer],
            &[&output.buffer],
            workgroups_for(invocations, WORKGROUP),
        )?])
    }

    fn flops(&self, _: &[&Shape], output: &Shape) -> u64 {
        4 * output.numel() as u64
    }
}

/// y = (x - mean) / sqrt(var + eps) * gamma + beta per channel. Inputs: x [N, C, ...], the
/// statistics (see [`Statistics`]: (stats [2, C]) or (running_mean [C], running_var [C])),
/// gamma [C], beta [C].
#[derive(Clone, Debug)]
pub struct BatchNormApply {
    pub eps: f32,
    pub statistics: Statistics,
}

/// Checks x [N, C, ...] (or dy), the statistics' shapes `stats` and the per-channel `vectors`
/// (name, shape); returns x's layout.
fn check_inputs(
    op: &str,
    x: &Shape,
    statistics: Statistics,
    stats: &[&Shape],
    vectors: &[(&str, &Shape)],
) -> Result<Layout> {
    let layout = Layout::of(op, x)?;
    statistics.check(op, stats, layout.channels)?;
    for (what, shape) in vectors {
        check_vector(op, what, shape, layout.channels)?;
    }
    Ok(layout)
}

impl Op for BatchNormApply {
    fn name(&self) -> &'static str {
        match self.statistics {
            Statistics::Batch => "batch_norm_apply",
            Statistics::Running => "batch_norm_inference",
        }
    }

    fn spatial_map(&self, _inputs: &[&Shape]) -> Option<SpatialMap> {
        Some(SpatialMap::Pointwise)
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        check_eps(self.name(), self.eps)?;
        let k = self.statistics.inputs();
        check_arity(self.name(), inputs.len(), 3 + k)?;
        check_inputs(
            self.name(),
            inputs[0],
            self.statistics,
            &inputs[1..1 + k],
            &[("gamma", inputs[1 + k]), ("beta", inputs[2 + k])],
        )?;
        Ok(inputs[0].clone())
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let layout = Layout::of(self.name(), &output.shape)?;
        let k = self.statistics.inputs();
        let (mean, var, var_offset) = self.statistics.buffers(&inputs[1..], layout.channels);
        let (entry, invocations) = layout.pointwise("apply", "apply4");
        let params = Params {
            total: invocations as u32,
            var_offset,
            eps: self.eps,
            ..layout.params()
        };
        Ok(vec![ctx.gpu.dispatch(
            &SHADER,
            entry,
            bytes_of(&params),
            &[
                &inputs[0].buffer,
                mean,
                var,
                &inputs[1 + k].buffer,
                &inputs[2 + k].buffer,
            ],
            &[&output.buffer],
            workgroups_for(invocations, WORKGROUP),
        )?])
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        let (eps, statistics) = (self.eps, self.statistics);
        let k = statistics.inputs();
        let (x, stats, gamma) = (ctx.inputs[0], &ctx.inputs[1..1 + k], ctx.inputs[1 + k]);
        let needs = ctx.needs_grad;
        let mut grads = vec![None; ctx.inputs.len()];
        if needs[0] {
            let mut inputs = vec![ctx.grad, gamma];
            inputs.extend(stats);
            grads[0] = Some(g.apply(BatchNormInputGrad { eps, statistics }, &inputs)?);
        }
        if !needs[1..].contains(&true) {
            return Ok(grads);
        }
        let mut inputs = vec![x, ctx.grad];
        inputs.extend(stats);
        let sums = g.apply(BatchNormGradSums { statistics }, &inputs)?;
        let mut inputs = vec![sums, gamma];
        inputs.extend(stats);
        let parts: &[(usize, GradPart)] = match statistics {
            Statistics::Batch => &[
                (1, GradPart::Stats),
                (2, GradPart::Gamma),
                (3, GradPart::Beta),
            ],
            Statistics::Running => &[
                (1, GradPart::Mean),
                (2, GradPart::Var),
                (3, GradPart::Gamma),
                (4, GradPart::Beta),
            ],
        };
        for &(input, part) in parts {
            if needs[input] {
                let op = BatchNormParamGrad {
                    eps,
                    part,
                    statistics,
                };
                grads[input] = Some(g.apply(op, &inputs)?);
            }
        }
        Ok(grads)
    }

    fn flops(&self, inputs: &[&Shape], _: &Shape) -> u64 {
        4 * inputs[0].numel() as u64
    }
}

/// The nodes of a training-mode batch normalisation.
#[derive(Clone, Copy, Debug)]
pub struct BatchNormNodes {
    /// y [N, C, ...].
    pub output: NodeId,
    /// The batch statistics [2, C] (mean, biased variance), for the running statistics.
    pub stats: NodeId,
}

impl Graph {
    /// Training-mode batch normalisation of x [N, C, ...] with the batch's statistics:
    /// y = (x - mean) / sqrt(var + eps) * gamma + beta, gamma and beta [C].
    pub fn batch_norm(
        &mut self,
        x: NodeId,
        gamma: NodeId,
        beta: NodeId,
        eps: f32,
    ) -> Result<BatchNormNodes> {
        let stats = self.apply(BatchStats, &[x])?;
        let op = BatchNormApply {
            eps,
            statistics: Statistics::Batch,
        };
        let output = self.apply(op, &[x, stats, gamma, beta])?;
        Ok(BatchNormNodes { output, stats })
    }

    /// Inference-mode batch normalisation with stored statistics: y = (x - running_mean) /
    /// sqrt(running_var + eps) * gamma + beta, every vector [C].
    pub fn batch_norm_inference(
        &mut self,
        x: NodeId,
        running_mean: NodeId,
        running_var: NodeId,
        gamma: NodeId,
        beta: NodeId,
        eps: f32,
    ) -> Result<NodeId> {
        let op = BatchNormApply {
            eps,
            statistics: Statistics::Running,
        };
        self.apply(op, &[x, running_mean, running_var, gamma, beta])
    }
}
