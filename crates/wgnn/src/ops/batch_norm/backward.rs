//! The ops of `BatchNormApply`'s backward rule: dx through x (the statistics held fixed), one
//! pass of per-channel sums, and each parameter's or statistic's gradient from those sums.

use super::{
    check_arity, check_eps, check_inputs, check_vector, stats_shape, Layout, Params, Statistics,
};
use super::{SHADER, WORKGROUP};
use crate::error::{Error, Result};
use crate::gpu::{bytes_of, workgroups_for, Dispatch};
use crate::graph::{EncodeCtx, Op};
use crate::ops::reduce::encode_sum;
use crate::tensor::{Shape, Tensor};

/// dx = dy * gamma / sqrt(var + eps), the gradient of `BatchNormApply` through x with the
/// statistics held fixed. Inputs (dy, gamma, statistics...).
#[derive(Clone, Debug)]
pub struct BatchNormInputGrad {
    pub eps: f32,
    pub statistics: Statistics,
}

/// Per-channel sums of the backward pass of `BatchNormApply`: [2, C] with sum(dy) in row 0 and
/// sum(dy * (x - mean)) in row 1. Inputs (x, dy, statistics...).
#[derive(Clone, Debug)]
pub struct BatchNormGradSums {
    pub statistics: Statistics,
}

/// Which gradient `BatchNormParamGrad` computes from the sums (the shader's `part`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradPart {
    /// dbeta [C] = sum(dy).
    Beta = 0,
    /// dgamma [C] = sum(dy * (x - mean)) * rstd.
    Gamma = 1,
    /// d running_mean [C] = -gamma * rstd * sum(dy).
    Mean = 2,
    /// d running_var [C] = -gamma / 2 * rstd^3 * sum(dy * (x - mean)).
    Var = 3,
    /// d stats [2, C]: the mean's and the variance's gradients as rows.
    Stats = 4,
}

/// One gradient of `BatchNormApply`'s parameters or statistics from `BatchNormGradSums`' [2, C].
/// Inputs (sums, gamma, statistics...).
#[derive(Clone, Debug)]
pub struct BatchNormParamGrad {
    pub eps: f32,
    pub part: GradPart,
    pub statistics: Statistics,
}

impl Op for BatchNormInputGrad {
    fn name(&self) -> &'static str {
        "batch_norm_input_grad"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        check_eps(self.name(), self.eps)?;
        check_arity(self.name(), inputs.len(), 2 + self.statistics.inputs())?;
        check_inputs(
            self.name(),
            inputs[0],
            self.statistics,
            &inputs[2..],
            &[("gamma", inputs[1])],
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
        let (_, var, var_offset) = self.statistics.buffers(&inputs[2..], layout.channels);
        let (entry, invocations) = layout.pointwise("input_grad", "input_grad4");
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
            &[&inputs[0].buffer, var, &inputs[1].buffer],
            &[&output.buffer],
            workgroups_for(invocations, WORKGROUP),
        )?])
    }

    fn flops(&self, _: &[&Shape], output: &Shape) -> u64 {
        output.numel() as u64
    }
}

impl Op for BatchNormGradSums {
    fn name(&self) -> &'static str {
        "batch_norm_grad_sums"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        check_arity(self.name(), inputs.len(), 2 + self.statistics.inputs())?;
        let layout = check_inputs(self.name(), inputs[0], self.statistics, &inputs[2..], &[])?;
        if inputs[1] != inputs[0] {
            return Err(Error::shape(
                self.name(),
                format!("dy must have x's shape {}, not {}", inputs[0], inputs[1]),
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
        let (mean, _, _) = self.statistics.buffers(&inputs[2..], layout.channels);
        let params = layout.params();
        let (chunks, channels) = (layout.chunks(), layout.channels);
        let reads = [&*inputs[0].buffer, &*inputs[1].buffer, mean];
        if chunks == 1 {
            return Ok(vec![ctx.gpu.dispatch(
                &SHADER,
                "sums_chunks",
                bytes_of(&params),
                &reads,
                &[&output.buffer],
                channels as u32,
            )?]);
        }
        let partials = ctx.scratch(
            "batch-norm gradient sums of chunks",
            (2 * 4 * channels * chunks) as u64,
        )?;
        let mut dispatches = vec![ctx.gpu.dispatch(
            &SHADER,
            "sums_chunks",
            bytes_of(&params),
            &reads,
            &[&partials],
            (channels * chunks) as u32,
        )?];
        // [2, C, chunks] -> [2, C], each sum in a fixed order.
        dispatches.extend(encode_sum(
            ctx,
            &partials,
            [2 * channels, chunks, 1],
            1.0,
            &output.buffer,
        )?);
        Ok(dispatches)
    }

    fn flops(&self, inputs: &[&Shape], _: &Shape) -> u64 {
        4 * inputs[0].numel() as u64
    }
}

impl Op for BatchNormParamGrad {
    fn name(&self) -> &'static str {
        "batch_norm_param_grad"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        check_eps(self.name(), self.eps)?;
        check_arity(self.name(), inputs.len(), 2 + self.statistics.inputs())?;
        let channels = inputs[1].dims()[0];
        check_vector(self.name(), "gamma", inputs[1], channels)?;
        if inputs[0] != &stats_shape(channels) {
            return Err(Error::shape(
                self.name(),
                format!("the sums must be [2, {channels}], not {}", inputs[0]),
            ));
        }
        self.statistics.check(self.name(), &inputs[2..], channels)?;
        match (self.part, self.statistics) {
            (GradPart::Stats, Statistics::Batch) => Ok(stats_shape(channels)),
            (GradPart::Mean | GradPart::Var, Statistics::Running)
            | (GradPart::Beta | GradPart::Gamma, _) => Ok(Shape::from([channels])),
            (part, statistics) => Err(Error::shape(
                self.name(),
                format!("{statistics:?} statistics have no {part:?} gradient"),
            )),
        }
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let channels = inputs[1].shape.numel();
        let (_, var, var_offset) = self.statistics.buffers(&inputs[2..], channels);
        let params = Params {
            channels: channels as u32,
            var_offset,
            part: self.part as u32,
            eps: self.eps,
            ..Default::default()
        };
        Ok(vec![ctx.gpu.dispatch(
            &SHADER,
            "param_grads",
            bytes_of(&params),
            &[&inputs[0].buffer, var, &inputs[1].buffer],
            &[&output.buffer],
            workgroups_for(channels, WORKGROUP),
        )?])
    }

    fn flops(&self, _: &[&Shape], output: &Shape) -> u64 {
        4 * output.numel() as u64
    }
}
