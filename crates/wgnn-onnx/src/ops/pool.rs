//! MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool.
//!
//! Windows take kernel, strides, dilations, begin/end `pads` or `auto_pad`, and `ceil_mode`
//! (where a window that would start in the end padding is dropped, as in ONNX's reference).
//! Average pooling divides by the real elements of the window (`count_include_pad` = 0) or by
//! its taps in the padded input (1); the second under `ceil_mode` with a window that hangs over
//! the padded input's end is refused, where ONNX's reference and the engine count differently.
//! A window without a real element is refused by the engine, naming the window.

use wgnn::error::{Error, Result};
use wgnn::ops::pool::PoolParams;
use wgnn::tensor::Shape;

use super::conv::{padding, per_axis};
use super::node;
use crate::import::{Ctx, NodeView, Value};

enum Kind {
    Max,
    Average,
}

/// The window of a MaxPool or AveragePool node on input dims `xd`.
fn window(n: &NodeView<'_>, xd: &[usize], kind: &Kind) -> Result<PoolParams> {
    if !(3..=5).contains(&xd.len()) {
        return Err(Error::Invalid(format!(
            "input {xd:?} must be rank 3 to 5 (1 to 3 spatial axes)"
        )));
    }
    let spatial = xd.len() - 2;
    let kernel: Vec<usize> = match n.ints("kernel_shape")? {
        Some(k) if k.len() == spatial && k.iter().all(|&v| v >= 1) => {
            k.iter().map(|&v| v as usize).collect()
        }
        other => {
            return Err(Error::Invalid(format!(
                "attribute `kernel_shape` = {other:?} must hold {spatial} values of at least 1"
            )))
        }
    };
    let dilation = per_axis(n, "dilations", spatial, 1)?;
    let stride = per_axis(n, "strides", spatial, 1)?;
    let (pads, auto) = padding(n, spatial)?;
    let ceil_mode = n.int("ceil_mode", 0)? != 0;
    let include_pad = n.int("count_include_pad", 0)? != 0;
    let mut params = PoolParams::new(&kernel)
        .strides(&stride)
        .dilations(&dilation)
        .pads(pads.clone())
        .ceil_mode(ceil_mode)
        .count_include_pad(include_pad);
    if let Some(mode) = auto {
        params = params.auto_pad(mode);
    }
    if let (Kind::Average, None, true) = (kind, auto, include_pad && ceil_mode) {
        for k in 0..spatial {
            let span = (kernel[k] - 1) * dilation[k] + 1;
            let padded = xd[2 + k] + pads.total(k);
            if padded >= span && !(padded - span).is_multiple_of(stride[k]) {
                return Err(Error::Invalid(format!(
                    "ceil_mode with count_include_pad = 1 and a window past the padded input's end on spatial axis {k} is not supported (ONNX and the engine count that window's divisor differently)"
                )));
            }
        }
    }
    Ok(params)
}

pub fn max_pool(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let x = ctx.tensor(n.required(0)?)?;
    let xd = ctx.graph.shape(x).dims().to_vec();
    let params = window(n, &xd, &Kind::Max)?;
    node(ctx.graph.max_pool(x, &params)?)
}

pub fn average_pool(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let x = ctx.tensor(n.required(0)?)?;
    let xd = ctx.graph.shape(x).dims().to_vec();
    let params = window(n, &xd, &Kind::Average)?;
    node(ctx.graph.avg_pool(x, &params)?)
}

/// [N, C, spatial...] -> [N, C, 1, ...]: the engine's global average pool gives [N, C].
pub fn global_average_pool(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let x = ctx.tensor(n.required(0)?)?;
    let xd = ctx.graph.shape(x).dims().to_vec();
    if !(3..=5).contains(&xd.len()) {
        return Err(Error::Invalid(format!(
            "input {xd:?} must be rank 3 to 5 (1 to 3 spatial axes)"
        )));
    }
    let pooled = ctx.graph.global_avg_pool(x)?;
    let mut dims = vec![1; xd.len()];
    dims[..2].copy_from_slice(&xd[..2]);
    node(ctx.graph.reshape(pooled, Shape::new(&dims)?)?)
}

/// A max pool whose one window covers every spatial position.
pub fn global_max_pool(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let x = ctx.tensor(n.required(0)?)?;
    let xd = ctx.graph.shape(x).dims().to_vec();
    if !(3..=5).contains(&xd.len()) {
        return Err(Error::Invalid(format!(
            "input {xd:?} must be rank 3 to 5 (1 to 3 spatial axes)"
        )));
    }
    node(ctx.graph.max_pool(x, &PoolParams::new(&xd[2..]))?)
}
