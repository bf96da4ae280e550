//! Softmax and LogSoftmax. From opset 13 they run along one axis (default -1). Before (opsets 11
//! and 12) the input is coerced to a matrix, the dims before `axis` (default 1) making the rows
//! and the rest the columns, and normalised along the rows: a reshape around a softmax over the
//! last axis of that matrix.

use wgnn::error::Result;
use wgnn::tensor::Shape;

use super::{axis, node};
use crate::import::{Ctx, NodeView, Value};

fn softmax_like(ctx: &mut Ctx<'_>, n: &NodeView<'_>, log: bool) -> Result<Vec<Value>> {
    let x = ctx.tensor(n.required(0)?)?;
    let dims = ctx.graph.shape(x).dims().to_vec();
    let rank = dims.len();
    let apply = |ctx: &mut Ctx<'_>, x, a| {
        if log {
            ctx.graph.log_softmax(x, a)
        } else {
            ctx.graph.softmax(x, a)
        }
    };
    if ctx.opset >= 13 {
        let a = axis(n.int("axis", -1)?, rank)?;
        return node(apply(ctx, x, a)?);
    }
    let a = axis(n.int("axis", 1)?, rank)?;
    if a == rank - 1 {
        return node(apply(ctx, x, a)?);
    }
    let rows: usize = dims[..a].iter().product();
    let columns: usize = dims[a..].iter().product();
    let matrix = ctx.graph.reshape(x, Shape::new(&[rows, columns])?)?;
    let y = apply(ctx, matrix, 1)?;
    node(ctx.graph.reshape(y, Shape::new(&dims)?)?)
}

pub fn softmax(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    softmax_like(ctx, n, false)
}

pub fn log_softmax(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    softmax_like(ctx, n, true)
}
