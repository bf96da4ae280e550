//! BatchNormalization (inference form, with the stored statistics) and LpNormalization (L2
//! over the last axis of a matrix).

use wgnn::error::{Error, Result};

use super::node;
use crate::import::{Ctx, NodeView, Value};

pub fn batch_norm(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    if n.int("training_mode", 0)? != 0 {
        return Err(Error::Invalid(
            "training_mode = 1 is not supported; only inference with the stored mean and variance is"
                .to_string(),
        ));
    }
    let eps = n.float("epsilon", 1e-5)?;
    let mut ids = Vec::with_capacity(5);
    for i in 0..5 {
        ids.push(ctx.tensor(n.required(i)?)?);
    }
    // ONNX orders the inputs X, scale, B, mean, var.
    node(
        ctx.graph
            .batch_norm_inference(ids[0], ids[3], ids[4], ids[1], ids[2], eps)?,
    )
}

/// y = x / sqrt(sum x^2) along the last axis of [N, D] (the engine adds 1e-12 inside the root,
/// so an all-zero row stays zero).
pub fn lp_normalization(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let x = ctx.tensor(n.required(0)?)?;
    let rank = ctx.graph.shape(x).rank();
    let (p, axis) = (n.int("p", 2)?, n.int("axis", -1)?);
    if p != 2 {
        return Err(Error::Invalid(format!(
            "p = {p} is not supported; only the L2 norm (p = 2) is"
        )));
    }
    if rank != 2 || !(axis == 1 || axis == -1) {
        return Err(Error::Invalid(format!(
            "normalising axis {axis} of a rank-{rank} tensor is not supported; only the last axis of a matrix is"
        )));
    }
    node(ctx.graph.l2_normalize(x)?)
}
