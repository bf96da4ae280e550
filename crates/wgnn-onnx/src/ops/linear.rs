//! Gemm and MatMul on the engine's (batched) matrix product.

use wgnn::error::{Error, Result};

use super::node;
use crate::constant::{Constant, Data};
use crate::import::{Ctx, NodeView, Value};

/// Y = alpha * op(A) op(B) + beta * C, with A and B matrices and C broadcasting to Y.
pub fn gemm(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let a = ctx.tensor(n.required(0)?)?;
    let b = ctx.tensor(n.required(1)?)?;
    for (what, id) in [("A", a), ("B", b)] {
        if ctx.graph.shape(id).rank() != 2 {
            return Err(Error::Invalid(format!(
                "input {what} must be a matrix, not {}",
                ctx.graph.shape(id)
            )));
        }
    }
    let (alpha, beta) = (n.float("alpha", 1.0)?, n.float("beta", 1.0)?);
    let (trans_a, trans_b) = (n.int("transA", 0)? != 0, n.int("transB", 0)? != 0);
    let mut y = ctx.graph.matmul_t(a, b, trans_a, trans_b)?;
    if alpha != 1.0 {
        y = ctx.graph.scale(y, alpha)?;
    }
    if let Some(c_name) = n.input(2) {
        if beta == 0.0 {
            return node(y);
        }
        let c = match ctx.value(c_name)?.clone() {
            Value::Const(c) if beta != 1.0 => {
                let scaled = Constant {
                    dims: c.dims.clone(),
                    data: Data::F32(c.floats().iter().map(|v| beta * v).collect()),
                };
                ctx.constant_node(&format!("{c_name}*beta"), &scaled)?
            }
            _ => {
                let c = ctx.tensor(c_name)?;
                if beta == 1.0 {
                    c
                } else {
                    ctx.graph.scale(c, beta)?
                }
            }
        };
        y = ctx.graph.add(y, c)?;
    }
    node(y)
}

/// numpy's matmul: 1-D operands promoted (and the added dim dropped), batch dims (up to 4, so
/// rank 6) broadcast.
pub fn matmul(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let a = ctx.tensor(n.required(0)?)?;
    let b = ctx.tensor(n.required(1)?)?;
    node(ctx.graph.matmul(a, b)?)
}
