//! Conv, and the padding rules that convolution and pooling share: `pads` or `auto_pad`,
//! resolved with `wgnn::ops::padding` and accepted when both sides of every axis are equal
//! (the engine's kernels pad symmetrically).

use wgnn::error::{Error, Result};
use wgnn::ops::conv::ConvParams;
use wgnn::ops::padding::{AutoPad, Pads};

use super::node;
use crate::import::{Ctx, NodeView, Value};

/// A per-axis attribute of `spatial` positive values, or `default` on each axis.
pub(super) fn per_axis(
    n: &NodeView<'_>,
    name: &str,
    spatial: usize,
    default: usize,
) -> Result<Vec<usize>> {
    match n.ints(name)? {
        None => Ok(vec![default; spatial]),
        Some(v) if v.len() == spatial && v.iter().all(|&x| x >= 1) => {
            Ok(v.iter().map(|&x| x as usize).collect())
        }
        Some(v) => Err(Error::Invalid(format!(
            "attribute `{name}` = {v:?} must hold {spatial} values of at least 1"
        ))),
    }
}

/// The padding per spatial axis (equal on both sides) from `pads` or `auto_pad`.
pub(super) fn symmetric_pads(
    n: &NodeView<'_>,
    input: &[usize],
    kernel: &[usize],
    stride: &[usize],
    dilation: &[usize],
) -> Result<Vec<usize>> {
    let spatial = input.len();
    let mode = n
        .string("auto_pad")?
        .unwrap_or_else(|| "NOTSET".to_string());
    let auto = |m| Pads::auto(m, input, kernel, stride, dilation);
    let pads = match mode.as_str() {
        "NOTSET" => match n.ints("pads")? {
            None => Pads::none(spatial),
            Some(p) if p.len() == 2 * spatial && p.iter().all(|&x| x >= 0) => {
                Pads::from_onnx(&p.iter().map(|&x| x as usize).collect::<Vec<_>>())?
            }
            Some(p) => {
                return Err(Error::Invalid(format!(
                    "attribute `pads` = {p:?} must hold {} non-negative values",
                    2 * spatial
                )))
            }
        },
        "VALID" => auto(AutoPad::Valid)?,
        "SAME_UPPER" => auto(AutoPad::SameUpper)?,
        "SAME_LOWER" => auto(AutoPad::SameLower)?,
        other => {
            return Err(Error::Invalid(format!(
                "auto_pad `{other}` is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER"
            )))
        }
    };
    if !pads.is_symmetric() {
        return Err(Error::Invalid(format!(
            "padding {:?} before and {:?} after (auto_pad {mode}) is asymmetric; only equal padding on both sides of each axis is supported",
            pads.begin, pads.end
        )));
    }
    Ok(pads.begin)
}

/// Conv: x [N, C, spatial...] with w [O, C, kernel...], 1 to 3 spatial axes, group 1. A Relu
/// that is the output's only reader is fused into the convolution's kernel.
pub fn conv(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let x = ctx.tensor(n.required(0)?)?;
    let w = ctx.tensor(n.required(1)?)?;
    let bias = n.input(2).map(|b| ctx.tensor(b)).transpose()?;
    let group = n.int("group", 1)?;
    if group != 1 {
        return Err(Error::Invalid(format!(
            "attribute `group` = {group} is not supported (grouped or depthwise convolution); only group = 1 is"
        )));
    }
    let (xd, wd) = (
        ctx.graph.shape(x).dims().to_vec(),
        ctx.graph.shape(w).dims().to_vec(),
    );
    if !(3..=5).contains(&wd.len()) || xd.len() != wd.len() {
        return Err(Error::Invalid(format!(
            "input {xd:?} and weight {wd:?} must both be rank 3 to 5 (1 to 3 spatial axes)"
        )));
    }
    let spatial = wd.len() - 2;
    let kernel = wd[2..].to_vec();
    if let Some(k) = n.ints("kernel_shape")? {
        if k.iter().map(|&v| v as usize).ne(kernel.iter().copied()) {
            return Err(Error::Invalid(format!(
                "attribute `kernel_shape` = {k:?} differs from the weight's {kernel:?}"
            )));
        }
    }
    let stride = per_axis(n, "strides", spatial, 1)?;
    let dilation = per_axis(n, "dilations", spatial, 1)?;
    let padding = symmetric_pads(n, &xd[2..], &kernel, &stride, &dilation)?;
    let params = ConvParams::new(spatial)
        .strides(&stride)
        .paddings(&padding)
        .dilations(&dilation);
    let fused_relu = n.proto.output.first().and_then(|out| {
        ctx.sole_consumer(out)
            .filter(|(_, c)| c.op_type == "Relu" && c.domain.is_empty() && c.attribute.is_empty())
            .map(|(index, c)| (index, c.output.first().cloned().unwrap_or_default()))
    });
    match fused_relu {
        Some((index, relu_output)) => {
            let y = ctx.graph.conv_relu(x, w, bias, &params)?;
            ctx.fused.insert(index);
            ctx.define(&relu_output, Value::Node(y));
            node(y)
        }
        None => node(ctx.graph.conv(x, w, bias, &params)?),
    }
}
