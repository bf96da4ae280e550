//! MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool.
//!
//! The engine pools as PyTorch does: a window that would start in the right padding under
//! `ceil_mode` is dropped, and average pooling divides by the window clipped to the padded
//! input. Those agree with ONNX when `count_include_pad` is 1 or there is no padding, and when
//! no window hangs over the padded input's end; other combinations are refused.

use wgnn::error::{Error, Result};
use wgnn::ops::pool::PoolParams;
use wgnn::tensor::Shape;

use super::conv::{per_axis, symmetric_pads};
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
    if dilation.iter().any(|&d| d != 1) {
        return Err(Error::Invalid(format!(
            "attribute `dilations` = {dilation:?} is not supported (dilated pooling); only 1s are"
        )));
    }
    let stride = per_axis(n, "strides", spatial, 1)?;
    let padding = symmetric_pads(n, &xd[2..], &kernel, &stride, &dilation)?;
    let ceil_mode = n.int("ceil_mode", 0)? != 0;
    for k in 0..spatial {
        if kernel[k] > xd[2 + k] + 2 * padding[k] {
            return Err(Error::Invalid(format!(
                "kernel {} on axis {k} is larger than the padded input {} + 2 * {}",
                kernel[k],
                xd[2 + k],
                padding[k]
            )));
        }
        if 2 * padding[k] > kernel[k] {
            return Err(Error::Invalid(format!(
                "padding {} on axis {k} exceeds half the kernel {}; not supported",
                padding[k], kernel[k]
            )));
        }
    }
    let params = PoolParams::new(&kernel)
        .strides(&stride)
        .paddings(&padding)
        .ceil_mode(ceil_mode);
    if let Kind::Average = kind {
        let include_pad = n.int("count_include_pad", 0)? != 0;
        let padded = padding.iter().any(|&p| p > 0);
        if padded && !include_pad {
            return Err(Error::Invalid(
                "count_include_pad = 0 with padding is not supported (the engine divides by the padded window); give count_include_pad = 1 or no padding"
                    .to_string(),
            ));
        }
        let overhang = (0..spatial).any(|k| {
            let span = xd[2 + k] + 2 * padding[k] - kernel[k];
            ceil_mode && !span.is_multiple_of(stride[k])
        });
        if overhang && (padded || include_pad) {
            return Err(Error::Invalid(
                "ceil_mode with a window past the input's end is supported for average pooling only without padding and with count_include_pad = 0".to_string(),
            ));
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
