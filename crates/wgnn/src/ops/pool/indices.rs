//! Max pooling's argmax indices and max-unpooling from them (PyTorch's `return_indices` and
//! `MaxUnpoolNd`, ONNX's `MaxPool` second output and `MaxUnpool`).
//!
//! Indices are u32 tensors of the pooled shape. Each names the first maximal element of its
//! window (the element max pooling's backward routes the gradient to), flattened one of two ways
//! ([`IndexBase`]): within its (n, c) plane, row-major over the spatial axes (PyTorch), or over
//! the whole NC(D)HW tensor (ONNX's `Indices` with `storage_order = 0`; ONNX stores them as
//! int64, which an importer widens). The kernels produce either directly, so no conversion
//! pass is needed.
//!
//! Max-unpooling writes each value at its index in a zeroed output of a given spatial size
//! (`unpool.wgsl`); an index outside the output plane (or tensor) is skipped. When two values name
//! the same position, which one lands is unspecified, as in PyTorch on a GPU and in ONNX's
//! reference; indices from max pooling only repeat for overlapping windows that share their
//! maximum, and then the values are equal. Its backward gathers the output gradient at each
//! index (PyTorch's rule); indices get no gradient.

use super::{geometry_params, PoolParams, WindowRule, SHADER, WORKGROUP};
use crate::error::{Error, Result};
use crate::gpu::{
    bytes_of, shader_struct, wgsl_file, workgroups_for, Dispatch, Shader, WORKGROUP_INDEX,
};
use crate::graph::{BackwardCtx, EncodeCtx, Graph, NodeId, Op};
use crate::tensor::{DType, Shape, Tensor};

pub static UNPOOL_SHADER: Shader = Shader {
    name: "unpool",
    file: wgsl_file!("ops/pool/unpool.wgsl", [&WORKGROUP_INDEX]),
    subgroups: false,
    structs: &[("Params", UnpoolParams::LAYOUT)],
};

/// How an index flattens the position of an element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexBase {
    /// Within its (n, c) plane: `(d * H + h) * W + w` (PyTorch).
    Plane,
    /// Over the whole tensor: `((n * C + c) * D + d) * H ...` (ONNX).
    Tensor,
}

/// The argmax of each max-pooling window as u32 indices; inputs (x).
#[derive(Debug)]
pub struct MaxPoolIndices {
    pub params: PoolParams,
    pub base: IndexBase,
}

impl Op for MaxPoolIndices {
    fn name(&self) -> &'static str {
        "max_pool_indices"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        self.params.output_shape(self.name(), inputs[0])
    }

    fn output_dtype(&self) -> DType {
        DType::U32
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let geometry =
            self.params
                .geometry(self.name(), &inputs[0].shape, WindowRule::RealElement)?;
        let count = output.shape.numel();
        let params = super::Params {
            count: count as u32,
            whole_tensor: (self.base == IndexBase::Tensor) as u32,
            ..geometry_params(&self.params, &geometry)
        };
        Ok(vec![ctx.gpu.dispatch(
            &SHADER,
            "max_indices",
            bytes_of(&params),
            &[&inputs[0].buffer],
            &[&output.buffer],
            workgroups_for(count, WORKGROUP),
        )?])
    }

    fn backward(&self, _g: &mut Graph, _ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        // Indices are piecewise constant in x: no gradient.
        Ok(vec![None])
    }
}

shader_struct! {
    #[derive(Default)]
    struct UnpoolParams {
        count: u32,
        in_plane: u32,
        out_plane: u32,
        out_count: u32,
        whole_tensor: u32,
        unused0: u32,
        unused1: u32,
        unused2: u32,
    }
}

/// Checks that `values` ([N, C, spatial...]) and `indices` have the same shape.
fn check_pair(op: &str, values: &Shape, indices: &Shape, what: &str) -> Result<()> {
    if !(3..=5).contains(&values.rank()) {
        return Err(Error::shape(
            op,
            format!("{what} must be [N, C, spatial...] of rank 3 to 5, not {values}"),
        ));
    }
    if indices != values {
        return Err(Error::shape(
            op,
            format!("indices {indices} must have the shape of {what} {values}"),
        ));
    }
    Ok(())
}

fn check_dtypes(op: &str, values: &Tensor, indices: &Tensor) -> Result<()> {
    if values.dtype != DType::F32 || indices.dtype != DType::U32 {
        return Err(Error::Invalid(format!(
            "{op}: values must be f32 and indices u32 (got {:?} and {:?})",
            values.dtype, indices.dtype
        )));
    }
    Ok(())
}

fn unpool_params(base: IndexBase, pooled: &Shape, unpooled: &Shape) -> UnpoolParams {
    let planes = pooled.dims()[0] * pooled.dims()[1];
    UnpoolParams {
        count: pooled.numel() as u32,
        in_plane: (pooled.numel() / planes) as u32,
        out_plane: (unpooled.numel() / planes) as u32,
        out_count: unpooled.numel() as u32,
        whole_tensor: (base == IndexBase::Tensor) as u32,
        ..Default::default()
    }
}

/// Max-unpooling; inputs (values, indices) of the same shape [N, C, spatial...]; the output is
/// [N, C, `output`...], zero but where an index puts a value.
#[derive(Debug)]
pub struct MaxUnpool {
    /// The output's spatial size.
    pub output: Vec<usize>,
    pub base: IndexBase,
}

impl Op for MaxUnpool {
    fn name(&self) -> &'static str {
        "max_unpool"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        let (values, indices) = (inputs[0], inputs[1]);
        check_pair(self.name(), values, indices, "values")?;
        if self.output.len() != values.rank() - 2 || self.output.contains(&0) {
            return Err(Error::shape(
                self.name(),
                format!(
                    "output size {:?} must give each of the {} spatial axes of {values} at \
                     least 1 position",
                    self.output,
                    values.rank() - 2
                ),
            ));
        }
        let mut out = values.dims()[..2].to_vec();
        out.extend(&self.output);
        Shape::new(&out)
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let (values, indices) = (inputs[0], inputs[1]);
        check_dtypes(self.name(), values, indices)?;
        let mut params = unpool_params(self.base, &values.shape, &output.shape);
        let buffers = [&*values.buffer, &*indices.buffer];
        let scatter = ctx.gpu.dispatch(
            &UNPOOL_SHADER,
            "unpool_scatter",
            bytes_of(&params),
            &buffers,
            &[&output.buffer],
            workgroups_for(params.count as usize, WORKGROUP),
        )?;
        params.count = params.out_count;
        let zero = ctx.gpu.dispatch(
            &UNPOOL_SHADER,
            "unpool_zero",
            bytes_of(&params),
            &buffers,
            &[&output.buffer],
            workgroups_for(params.count as usize, WORKGROUP),
        )?;
        Ok(vec![zero, scatter])
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        let indices = ctx.inputs[1];
        let dv = g.apply(MaxUnpoolBackward { base: self.base }, &[ctx.grad, indices])?;
        Ok(vec![Some(dv), None])
    }
}

/// d values of max-unpooling: dy gathered at each index (0 for an index outside dy); inputs
/// (dy, indices).
#[derive(Debug)]
pub struct MaxUnpoolBackward {
    pub base: IndexBase,
}

impl Op for MaxUnpoolBackward {
    fn name(&self) -> &'static str {
        "max_unpool_backward"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        let (dy, indices) = (inputs[0], inputs[1]);
        check_pair(self.name(), indices, indices, "indices")?;
        if dy.rank() != indices.rank() || dy.dims()[..2] != indices.dims()[..2] {
            return Err(Error::shape(
                self.name(),
                format!("dy {dy} must have the rank, N and C of indices {indices}"),
            ));
        }
        Ok(indices.clone())
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let (dy, indices) = (inputs[0], inputs[1]);
        check_dtypes(self.name(), dy, indices)?;
        let params = unpool_params(self.base, &output.shape, &dy.shape);
        Ok(vec![ctx.gpu.dispatch(
            &UNPOOL_SHADER,
            "unpool_gather",
            bytes_of(&params),
            &[&dy.buffer, &indices.buffer],
            &[&output.buffer],
            workgroups_for(params.count as usize, WORKGROUP),
        )?])
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        // Linear in dy: its adjoint is max-unpooling to dy's size.
        let dy = g.shape(ctx.inputs[0]).dims()[2..].to_vec();
        let unpool = MaxUnpool {
            output: dy,
            base: self.base,
        };
        Ok(vec![
            Some(g.apply(unpool, &[ctx.grad, ctx.inputs[1]])?),
            None,
        ])
    }
}

impl PoolParams {
    /// The spatial size max-unpooling restores by default from a pooled size: `(pooled - 1) *
    /// stride + kernel - begin - end` per axis (PyTorch's and ONNX's rule; dilation does not
    /// enter, as in both).
    pub fn unpool_size(&self, pooled: &[usize]) -> Result<Vec<usize>> {
        let dims = self.kernel.len();
        if self.auto_pad.is_some() {
            return Err(Error::shape(
                "max_unpool",
                "automatic padding depends on the unpooled size: give the output size",
            ));
        }
        if pooled.len() != dims
            || self.stride.len() != dims
            || self.pads.begin.len() != dims
            || self.pads.end.len() != dims
        {
            return Err(Error::shape(
                "max_unpool",
                format!(
                    "pooled size {pooled:?}, kernel {:?}, stride {:?} and pads must have the \
                     same length",
                    self.kernel, self.stride
                ),
            ));
        }
        (0..dims)
            .map(|k| {
                let full = pooled[k].saturating_sub(1) * self.stride[k] + self.kernel[k];
                let pads = self.pads.total(k);
                if full <= pads {
                    return Err(Error::shape(
                        "max_unpool",
                        format!(
                            "padding {pads} leaves no position of the {full} that spatial axis \
                             {k} spans"
                        ),
                    ));
                }
                Ok(full - pads)
            })
            .collect()
    }
}

impl Graph {
    /// The argmax of each max-pooling window of `x` (u32), flattened as `base` says.
    pub fn max_pool_indices(
        &mut self,
        x: NodeId,
        params: &PoolParams,
        base: IndexBase,
    ) -> Result<NodeId> {
        self.apply(
            MaxPoolIndices {
                params: params.clone(),
                base,
            },
            &[x],
        )
    }

    /// Max-unpooling of `values` by plane-flattened `indices` (from `max_pool_with_indices` with
    /// `params`) to `output` spatial positions, or to `params.unpool_size` of the pooled size.
    pub fn max_unpool(
        &mut self,
        values: NodeId,
        indices: NodeId,
        params: &PoolParams,
        output: Option<&[usize]>,
    ) -> Result<NodeId> {
        let output = match output {
            Some(size) => size.to_vec(),
            None => params.unpool_size(&self.shape(values).dims()[2..])?,
        };
        self.max_unpool_to(values, indices, &output, IndexBase::Plane)
    }

    /// Max-unpooling of `values` by u32 `indices` flattened as `base` says (from
    /// `max_pool_indices`) to `output` spatial positions.
    pub fn max_unpool_to(
        &mut self,
        values: NodeId,
        indices: NodeId,
        output: &[usize],
        base: IndexBase,
    ) -> Result<NodeId> {
        if self.nodes()[indices.0].dtype != DType::U32 {
            return Err(Error::Invalid(
                "max_unpool: indices must be a u32 node (max_pool_indices gives one)".into(),
            ));
        }
        self.apply(
            MaxUnpool {
                output: output.to_vec(),
                base,
            },
            &[values, indices],
        )
    }
}
