//! Conv and ConvTranspose, and the padding rules that convolution and pooling share: `pads`
//! (begin and end per axis) or `auto_pad`, handed to the engine as `wgnn::ops::padding` values.

use wgnn::error::{Error, Result};
use wgnn::graph::NodeId;
use wgnn::ops::conv::{ConvParams, ConvTransposeParams};
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

/// The padding of a convolution or pooling node: explicit `pads` (begin and end per spatial
/// axis, which may differ), or the `auto_pad` mode that the engine resolves against the input.
pub(super) fn padding(n: &NodeView<'_>, spatial: usize) -> Result<(Pads, Option<AutoPad>)> {
    let mode = n
        .string("auto_pad")?
        .unwrap_or_else(|| "NOTSET".to_string());
    let auto = match mode.as_str() {
        "NOTSET" => None,
        "VALID" => Some(AutoPad::Valid),
        "SAME_UPPER" => Some(AutoPad::SameUpper),
        "SAME_LOWER" => Some(AutoPad::SameLower),
        other => {
            return Err(Error::Invalid(format!(
                "auto_pad `{other}` is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER"
            )))
        }
    };
    let pads = match n.ints("pads")? {
        None => Pads::none(spatial),
        Some(_) if auto.is_some() => {
            return Err(Error::Invalid(format!(
                "attribute `pads` is given with auto_pad {mode}; ONNX allows only one of them"
            )))
        }
        Some(p) if p.len() == 2 * spatial && p.iter().all(|&x| x >= 0) => {
            Pads::from_onnx(&p.iter().map(|&x| x as usize).collect::<Vec<_>>())?
        }
        Some(p) => {
            return Err(Error::Invalid(format!(
                "attribute `pads` = {p:?} must hold {} non-negative values",
                2 * spatial
            )))
        }
    };
    Ok((pads, auto))
}

/// The inputs of Conv and ConvTranspose (x, w and the optional bias) and the dims of x and w,
/// both of rank 3 to 5.
struct Operands {
    x: NodeId,
    w: NodeId,
    bias: Option<NodeId>,
    xd: Vec<usize>,
    wd: Vec<usize>,
}

fn operands(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Operands> {
    let x = ctx.tensor(n.required(0)?)?;
    let w = ctx.tensor(n.required(1)?)?;
    let bias = n.input(2).map(|b| ctx.tensor(b)).transpose()?;
    let (xd, wd) = (
        ctx.graph.shape(x).dims().to_vec(),
        ctx.graph.shape(w).dims().to_vec(),
    );
    if !(3..=5).contains(&wd.len()) || xd.len() != wd.len() {
        return Err(Error::Invalid(format!(
            "input {xd:?} and weight {wd:?} must both be rank 3 to 5 (1 to 3 spatial axes)"
        )));
    }
    Ok(Operands { x, w, bias, xd, wd })
}

/// Conv: x [N, C, spatial...] with w [O, C / group, kernel...], 1 to 3 spatial axes, any group
/// that divides C and O (group = C: depthwise). A Relu
/// that is the output's only reader is fused into the convolution's kernel.
pub fn conv(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let Operands { x, w, bias, xd, wd } = operands(ctx, n)?;
    let spatial = wd.len() - 2;
    let group = n.int("group", 1)?;
    if group < 1 || xd[1] % group as usize != 0 || wd[0] % group as usize != 0 {
        return Err(Error::Invalid(format!(
            "attribute `group` = {group} must be at least 1 and divide both the input's {} channels and the weight's {} output channels",
            xd[1], wd[0]
        )));
    }
    let group = group as usize;
    if wd[1] * group != xd[1] {
        return Err(Error::Invalid(format!(
            "weight {wd:?} must have {} / {group} = {} input channels per group, not {}",
            xd[1],
            xd[1] / group,
            wd[1]
        )));
    }
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
    let (pads, auto) = padding(n, spatial)?;
    let mut params = ConvParams::new(spatial)
        .strides(&stride)
        .pads(pads)
        .dilations(&dilation)
        .groups(group);
    if let Some(mode) = auto {
        params = params.auto_pad(mode);
    }
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

/// The pads that give ConvTranspose an output of `output_shape` (ONNX's rule, which overrides
/// `pads`): per axis the full output less `output_shape` is cropped, half at each end, the odd
/// position at the end under SAME_UPPER and at the start otherwise (NOTSET, SAME_LOWER). An
/// output longer than the full one would need negative pads, which are refused.
fn pads_for_output_shape(shape: &[i64], full: &[usize], auto: Option<AutoPad>) -> Result<Pads> {
    if shape.len() != full.len() || shape.iter().any(|&v| v < 1) {
        return Err(Error::Invalid(format!(
            "attribute `output_shape` = {shape:?} must hold {} positive values (the spatial \
             axes only)",
            full.len()
        )));
    }
    let mut pads = Pads::none(full.len());
    for (k, (&wanted, &full)) in shape.iter().zip(full).enumerate() {
        let Some(total) = full.checked_sub(wanted as usize) else {
            return Err(Error::Invalid(format!(
                "attribute `output_shape` = {shape:?} is longer than the full output ({full} \
                 positions) along spatial axis {k}; negative padding is not supported"
            )));
        };
        let (small, large) = (total / 2, total - total / 2);
        (pads.begin[k], pads.end[k]) = match auto {
            Some(AutoPad::SameUpper) => (small, large),
            _ => (large, small),
        };
    }
    Ok(pads)
}

/// ConvTranspose: x [N, C, spatial...] with w [C, O / group, kernel...], 1 to 3 spatial axes,
/// with strides, dilations, begin/end `pads` or `auto_pad`, `output_padding` and `group`, or
/// `output_shape` (for which the pads are worked out, `auto_pad` choosing their split).
pub fn conv_transpose(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let Operands { x, w, bias, xd, wd } = operands(ctx, n)?;
    let spatial = wd.len() - 2;
    let kernel = wd[2..].to_vec();
    if let Some(k) = n.ints("kernel_shape")? {
        if k.iter().map(|&v| v as usize).ne(kernel.iter().copied()) {
            return Err(Error::Invalid(format!(
                "attribute `kernel_shape` = {k:?} differs from the weight's {kernel:?}"
            )));
        }
    }
    let group = n.int("group", 1)?;
    if group < 1 || xd[1] % group as usize != 0 || wd[0] != xd[1] {
        return Err(Error::Invalid(format!(
            "attribute `group` = {group} must be at least 1 and divide the input's {} channels, and the weight {wd:?} must have {} rows",
            xd[1], xd[1]
        )));
    }
    let stride = per_axis(n, "strides", spatial, 1)?;
    let dilation = per_axis(n, "dilations", spatial, 1)?;
    let output_padding = match n.ints("output_padding")? {
        None => vec![0; spatial],
        Some(v) if v.len() == spatial && v.iter().all(|&x| x >= 0) => {
            v.iter().map(|&x| x as usize).collect()
        }
        Some(v) => {
            return Err(Error::Invalid(format!(
                "attribute `output_padding` = {v:?} must hold {spatial} non-negative values"
            )))
        }
    };
    let (mut pads, mut auto) = padding(n, spatial)?;
    if let Some(shape) = n.ints("output_shape")? {
        let full: Vec<usize> = (0..spatial)
            .map(|k| {
                (xd[2 + k] - 1) * stride[k] + (kernel[k] - 1) * dilation[k] + 1 + output_padding[k]
            })
            .collect();
        pads = pads_for_output_shape(&shape, &full, auto)?;
        auto = None;
    }
    let mut conv = ConvParams::new(spatial)
        .strides(&stride)
        .pads(pads)
        .dilations(&dilation)
        .groups(group as usize);
    if let Some(mode) = auto {
        conv = conv.auto_pad(mode);
    }
    let params = ConvTransposeParams::new(conv).output_paddings(&output_padding);
    node(ctx.graph.conv_transpose(x, w, bias, &params)?)
}
