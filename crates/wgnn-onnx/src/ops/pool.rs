//! MaxPool (and its `Indices`), MaxUnpool, AveragePool, GlobalAveragePool, GlobalMaxPool.
//!
//! Windows take kernel, strides, dilations, begin/end `pads` or `auto_pad`, and `ceil_mode`
//! (where a window that would start in the end padding is dropped, as in ONNX's reference).
//! Average pooling divides by the real elements of the window (`count_include_pad` = 0) or by
//! its taps in the padded input (1); the second under `ceil_mode` with a window that hangs over
//! the padded input's end is refused, where ONNX's reference and the engine count differently.
//! A window without a real element is refused by the engine, naming the window.
//!
//! MaxPool's `Indices` (each window's first maximum, flattened over the whole N x C x spatial
//! tensor, padding not counted) are u32 nodes in the engine; ONNX declares them INT64, with the
//! same values. MaxUnpool reads them as positions in its output flattened whole: of the default
//! size, or of `output_shape`, the shape of the tensor MaxPool read when the default is smaller
//! (where ONNX's reference evaluator instead scatters into the default size and pads its ends,
//! which fails for such indices).

use wgnn::error::{Error, Result};
use wgnn::ops::pool::{IndexBase, PoolParams};
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

/// The values, and where the node asks for them, the `Indices` of each window's maximum over
/// the whole tensor (u32 in the engine); `storage_order` = 1 (column-major indices) is refused.
pub fn max_pool(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let x = ctx.tensor(n.required(0)?)?;
    let xd = ctx.graph.shape(x).dims().to_vec();
    let params = window(n, &xd, &Kind::Max)?;
    let values = Value::Node(ctx.graph.max_pool(x, &params)?);
    if n.proto.output.get(1).is_none_or(|name| name.is_empty()) {
        return Ok(vec![values]);
    }
    match n.int("storage_order", 0)? {
        0 => {}
        order => {
            return Err(Error::Invalid(format!(
                "storage_order = {order} (indices counted column-major) is not supported; only 0 \
                 (row-major) is"
            )))
        }
    }
    let indices = ctx.graph.max_pool_indices(x, &params, IndexBase::Tensor)?;
    Ok(vec![values, Value::Node(indices)])
}

/// `X` written at its `I` (MaxPool's indices, over the whole output tensor) in a zero tensor of
/// `output_shape`, or of the size that `kernel_shape`, `strides` and `pads` restore.
pub fn max_unpool(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let x = ctx.tensor(n.required(0)?)?;
    let indices = ctx.indices(n.required(1)?, "the indices")?;
    let xd = ctx.graph.shape(x).dims().to_vec();
    if !(3..=5).contains(&xd.len()) {
        return Err(Error::Invalid(format!(
            "input {xd:?} must be rank 3 to 5 (1 to 3 spatial axes)"
        )));
    }
    let spatial = xd.len() - 2;
    let kernel = match n.ints("kernel_shape")? {
        Some(k) if k.len() == spatial && k.iter().all(|&v| v >= 1) => {
            k.iter().map(|&v| v as usize).collect::<Vec<_>>()
        }
        other => {
            return Err(Error::Invalid(format!(
                "attribute `kernel_shape` = {other:?} must hold {spatial} values of at least 1"
            )))
        }
    };
    let stride = per_axis(n, "strides", spatial, 1)?;
    let (pads, _) = padding(n, spatial)?;
    let output = match n.input(2) {
        Some(name) => {
            let shape = ctx
                .constant(name, "the output shape")?
                .ints("the output shape")?;
            let fits = shape.len() == xd.len()
                && shape[..2] == [xd[0] as i64, xd[1] as i64]
                && shape[2..].iter().all(|&d| d >= 1);
            if !fits {
                return Err(Error::Invalid(format!(
                    "the output shape (`{name}`) = {shape:?} must keep N and C of {xd:?} and \
                     give each spatial axis at least 1 position"
                )));
            }
            shape[2..].iter().map(|&d| d as usize).collect()
        }
        None => PoolParams::new(&kernel)
            .strides(&stride)
            .pads(pads)
            .unpool_size(&xd[2..])?,
    };
    node(
        ctx.graph
            .max_unpool_to(x, indices, &output, IndexBase::Tensor)?,
    )
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
