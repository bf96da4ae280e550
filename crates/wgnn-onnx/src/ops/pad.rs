//! Pad (opsets 11 to 21): `pads` as an input, `constant_value` optional (0), `axes` from opset
//! 18, modes constant, reflect, edge and wrap (opset 19 on), all known at import time.
//!
//! A negative pad removes elements from that end. The engine's padding adds only, so the input
//! is first cropped by the negative pads (a slice), then padded by the positive ones: the order
//! onnxruntime follows; for the constant mode either order gives the same tensor.

use wgnn::error::{Error, Result};
use wgnn::ops::pad::PadMode;
use wgnn::ops::padding::Pads;
use wgnn::ops::view::SliceAxis;

use super::{axis, node};
use crate::import::{Ctx, NodeView, Value};

/// The fill of the padding: `mode`, and for the constant mode the `constant_value` input.
fn mode(ctx: &Ctx<'_>, n: &NodeView<'_>) -> Result<PadMode> {
    let mode = n.string("mode")?.unwrap_or_else(|| "constant".to_string());
    Ok(match mode.as_str() {
        "constant" => PadMode::Constant(match n.input(2) {
            Some(name) => {
                let c = ctx.constant(name, "the constant value")?;
                match c.floats()[..] {
                    [v] => v,
                    _ => {
                        return Err(Error::Invalid(format!(
                            "the constant value (`{name}`) holds {} values; it must be one",
                            c.len()
                        )))
                    }
                }
            }
            None => 0.0,
        }),
        "reflect" => PadMode::Reflect,
        "edge" => PadMode::Edge,
        "wrap" if ctx.opset >= 19 => PadMode::Wrap,
        "wrap" => {
            return Err(Error::Invalid(format!(
                "mode = `wrap` is defined from opset 19 on; the model's opset is {}",
                ctx.opset
            )))
        }
        other => {
            let supported = "`constant`, `reflect`, `edge` and `wrap`";
            return Err(Error::Invalid(format!(
                "mode = `{other}` is not supported; only {supported} are"
            )));
        }
    })
}

pub fn pad(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let data = n.required(0)?;
    let dims = ctx.dims(data)?;
    let rank = dims.len();
    let mode = mode(ctx, n)?;
    let pads_name = n.required(1)?;
    let pads = ctx
        .constant(pads_name, "the pads")?
        .ints("the pads")?
        .to_vec();
    let axes: Vec<usize> = match n.input(3) {
        Some(_) if ctx.opset < 18 => {
            return Err(Error::Invalid(format!(
                "the axes input is defined from opset 18 on; the model's opset is {}",
                ctx.opset
            )))
        }
        Some(name) => {
            let listed = ctx.constant(name, "the axes")?.ints("the axes")?.to_vec();
            let mut axes = Vec::with_capacity(listed.len());
            for &a in &listed {
                let a = axis(a, rank)?;
                if axes.contains(&a) {
                    return Err(Error::Invalid(format!("axis {a} is listed twice")));
                }
                axes.push(a);
            }
            axes
        }
        None => (0..rank).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(Error::Invalid(format!(
            "the pads (`{pads_name}`) hold {} values; {} axes need {} (all begins, then all ends)",
            pads.len(),
            axes.len(),
            2 * axes.len()
        )));
    }
    // Per axis of the input: the (begin, end) of the crop, then of the padding.
    let mut crops = vec![(0usize, 0usize); rank];
    let mut added = Pads::none(rank);
    for (k, &a) in axes.iter().enumerate() {
        let (begin, end) = (pads[k], pads[axes.len() + k]);
        let removed = |p: i64| if p < 0 { p.unsigned_abs() as usize } else { 0 };
        crops[a] = (removed(begin), removed(end));
        added.begin[a] = begin.max(0) as usize;
        added.end[a] = end.max(0) as usize;
        if crops[a].0.saturating_add(crops[a].1) >= dims[a] {
            return Err(Error::Invalid(format!(
                "the pads {begin} and {end} of axis {a} remove all of its {} elements",
                dims[a]
            )));
        }
    }
    let mut x = ctx.tensor(data)?;
    let cropped: Vec<SliceAxis> = (0..rank)
        .filter(|&a| crops[a] != (0, 0))
        .map(|a| {
            let (start, end) = (crops[a].0 as i64, (dims[a] - crops[a].1) as i64);
            SliceAxis::new(a as isize, start, end, 1)
        })
        .collect();
    if !cropped.is_empty() {
        x = ctx.graph.slice(x, &cropped)?;
    }
    node(ctx.graph.pad(x, &added, mode)?)
}
