//! ReduceMean and ReduceSum over any set of axes (one engine reduction per axis, last axis
//! first), or over everything.

use wgnn::error::{Error, Result};
use wgnn::tensor::Shape;

use super::{axis, node};
use crate::import::{Ctx, NodeView, Value};

#[derive(Clone, Copy)]
enum Kind {
    Mean,
    Sum,
}

fn reduce(ctx: &mut Ctx<'_>, n: &NodeView<'_>, kind: Kind) -> Result<Vec<Value>> {
    let x = ctx.tensor(n.required(0)?)?;
    let dims = ctx.graph.shape(x).dims().to_vec();
    let rank = dims.len();
    let keep = n.int("keepdims", 1)? != 0;
    let listed: Option<Vec<i64>> = match (n.ints("axes")?, n.input(1)) {
        (Some(a), _) => Some(a),
        (None, Some(name)) => Some(ctx.constant(name, "the axes")?.ints("the axes")?.to_vec()),
        (None, None) => None,
    };
    let listed = listed.filter(|a| !a.is_empty());
    if listed.is_none() && n.int("noop_with_empty_axes", 0)? != 0 {
        return node(ctx.graph.scale(x, 1.0)?);
    }
    let mut axes: Vec<usize> = match listed {
        Some(a) => a.iter().map(|&v| axis(v, rank)).collect::<Result<_>>()?,
        None => (0..rank).collect(),
    };
    axes.sort_unstable();
    axes.dedup();
    if axes.len() == rank {
        let total = match kind {
            Kind::Mean => ctx.graph.mean(x)?,
            Kind::Sum => ctx.graph.sum(x)?,
        };
        if !keep {
            return node(total);
        }
        return node(ctx.graph.reshape(total, Shape::new(&vec![1; rank])?)?);
    }
    let mut y = x;
    for &a in axes.iter().rev() {
        y = match kind {
            Kind::Mean => ctx.graph.mean_axis(y, a, keep)?,
            Kind::Sum => ctx.graph.sum_axis(y, a, keep)?,
        };
    }
    if y == x {
        return Err(Error::Invalid("no axis to reduce".to_string()));
    }
    node(y)
}

pub fn reduce_mean(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    reduce(ctx, n, Kind::Mean)
}

pub fn reduce_sum(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    reduce(ctx, n, Kind::Sum)
}
