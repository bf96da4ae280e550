//! Folding an inference-mode batch normalisation into the convolution before it, for export.

use super::check_eps;
use crate::error::{Error, Result};
use crate::tensor::Shape;

/// A frozen batch normalisation's vectors, each [C], for `fold_into_conv`.
#[derive(Clone, Copy, Debug)]
pub struct FrozenBatchNorm<'a> {
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
    pub running_mean: &'a [f32],
    pub running_var: &'a [f32],
    pub eps: f32,
}

/// Folds an inference-mode batch normalisation into the convolution (or linear layer) before
/// it, for export: with s = gamma / sqrt(running_var + eps) per output channel,
/// w' = w * s and b' = (b - running_mean) * s + beta (b = 0 without a bias). `weight` is
/// [O, C, kernel...] (or [O, I]) row-major; returns (w', b' [O]), computed in f64.
pub fn fold_into_conv(
    weight: &[f32],
    weight_shape: &Shape,
    bias: Option<&[f32]>,
    bn: &FrozenBatchNorm<'_>,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let op = "fold_into_conv";
    if weight_shape.rank() < 2 || weight.len() != weight_shape.numel() {
        return Err(Error::shape(
            op,
            format!(
                "the weight must be [O, C, kernel...] or [O, I], not {weight_shape} with {} values",
                weight.len()
            ),
        ));
    }
    let outputs = weight_shape.dims()[0];
    let vectors = [
        ("bias", bias.unwrap_or(&[])),
        ("gamma", bn.gamma),
        ("beta", bn.beta),
        ("running_mean", bn.running_mean),
        ("running_var", bn.running_var),
    ];
    for (what, values) in vectors {
        if values.len() != outputs && !(what == "bias" && bias.is_none()) {
            return Err(Error::shape(
                op,
                format!(
                    "{what} has {} values but the weight {weight_shape} has {outputs} output channels",
                    values.len()
                ),
            ));
        }
    }
    check_eps(op, bn.eps)?;
    let scales: Vec<f64> = (0..outputs)
        .map(|o| {
            let var = bn.running_var[o] as f64 + bn.eps as f64;
            if var > 0.0 && var.is_finite() {
                Ok(bn.gamma[o] as f64 / var.sqrt())
            } else {
                Err(Error::Invalid(format!(
                    "{op}: running_var[{o}] + eps = {var} is not a positive number"
                )))
            }
        })
        .collect::<Result<_>>()?;
    let per_output = weight.len() / outputs;
    let folded_weight = weight
        .iter()
        .enumerate()
        .map(|(i, &w)| (w as f64 * scales[i / per_output]) as f32)
        .collect();
    let folded_bias = (0..outputs)
        .map(|o| {
            let b = bias.map_or(0.0, |b| b[o] as f64);
            ((b - bn.running_mean[o] as f64) * scales[o] + bn.beta[o] as f64) as f32
        })
        .collect();
    Ok((folded_weight, folded_bias))
}
