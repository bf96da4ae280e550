//! Concatenation along any axis and its backward, slices of one axis: `concat.wgsl`. A
//! concatenation of K tensors is K copy dispatches into disjoint ranges of the output along the
//! axis. The kernels see a tensor as [outer, axis, inner] (outer: the product of the dims before
//! the axis, inner: after it), so one kernel serves every axis. `Graph::slice` (in `ops::view`)
//! uses the slice kernel for a step-1 slice of one axis.

use crate::error::{Error, Result};
use crate::gpu::{
    bytes_of, shader_struct, wgsl_file, workgroups_for, Dispatch, Shader, WORKGROUP_INDEX,
};
use crate::graph::{BackwardCtx, EncodeCtx, Graph, NodeId, Op, SpatialMap};
use crate::tensor::{Shape, Tensor};

pub static SHADER: Shader = Shader {
    name: "concat",
    file: wgsl_file!("ops/concat.wgsl", [&WORKGROUP_INDEX]),
    subgroups: false,
    structs: &[("Params", Params::LAYOUT)],
};
const WORKGROUP: usize = 256;

shader_struct! {
    struct Params {
        count: u32,
        narrow_channels: u32,
        wide_channels: u32,
        offset: u32,
        inner: u32,
        block4: u32,
        wide_block4: u32,
        start4: u32,
    }
}

/// A copy between `narrow` [outer, c, inner] and indices offset..offset + c along `axis` of
/// `wide` (equal to `narrow` in every other dim): the entry (`entry`, or its vec4 variant `entry4`
/// where an outer item's ranges are whole vec4s), its parameters and its invocations.
fn copy_call(
    entry: &'static str,
    entry4: &'static str,
    narrow: &Shape,
    wide: &Shape,
    axis: usize,
    offset: usize,
) -> (&'static str, Params, usize) {
    let inner: usize = narrow.dims()[axis + 1..].iter().product();
    let (block, wide_block, start) = (
        narrow.dims()[axis] * inner,
        wide.dims()[axis] * inner,
        offset * inner,
    );
    let mut params = Params {
        count: narrow.numel() as u32,
        narrow_channels: narrow.dims()[axis] as u32,
        wide_channels: wide.dims()[axis] as u32,
        offset: offset as u32,
        inner: inner as u32,
        block4: 0,
        wide_block4: 0,
        start4: 0,
    };
    if [block, wide_block, start].iter().all(|v| v % 4 == 0) {
        params.count = (narrow.numel() / 4) as u32;
        params.block4 = (block / 4) as u32;
        params.wide_block4 = (wide_block / 4) as u32;
        params.start4 = (start / 4) as u32;
        (entry4, params, narrow.numel() / 4)
    } else {
        (entry, params, narrow.numel())
    }
}

/// The dispatch that copies indices offset..offset + narrow's length along `axis` of `wide` into
/// `narrow` (a slice of one axis with step 1).
pub(crate) fn slice_axis(
    ctx: &mut EncodeCtx<'_>,
    wide: &Tensor,
    narrow: &Tensor,
    axis: usize,
    offset: usize,
) -> Result<Dispatch> {
    let (entry, params, invocations) = copy_call(
        "slice_channels",
        "slice_channels4",
        &narrow.shape,
        &wide.shape,
        axis,
        offset,
    );
    ctx.gpu.dispatch(
        &SHADER,
        entry,
        bytes_of(&params),
        &[&wide.buffer],
        &[&narrow.buffer],
        workgroups_for(invocations, WORKGROUP),
    )
}

/// An axis of `rank` dims given as in ONNX and numpy (negative counts from the end), or an
/// error naming the op and the valid range.
pub(crate) fn resolve_axis(op: &str, axis: isize, rank: usize) -> Result<usize> {
    let r = rank as isize;
    if axis < -r || axis >= r {
        return Err(Error::shape(
            op,
            format!(
                "axis {axis} is out of range for rank {rank} (valid: {} to {})",
                -r,
                r - 1
            ),
        ));
    }
    Ok(if axis < 0 { axis + r } else { axis } as usize)
}

/// Concatenates its inputs (one or more, of equal rank and equal in every dim but `axis`) along
/// `axis` (negative counts from the end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Concat {
    pub axis: isize,
}

impl Op for Concat {
    fn name(&self) -> &'static str {
        "concat"
    }

    fn spatial_map(&self, inputs: &[&Shape]) -> Option<SpatialMap> {
        // Along the batch or the channels positions map to themselves; along a spatial axis the
        // inputs sit side by side, which a receptive field does not describe.
        let axis = resolve_axis(self.name(), self.axis, inputs.first()?.rank()).ok()?;
        (axis < 2).then_some(SpatialMap::Pointwise)
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        let Some(first) = inputs.first() else {
            return Err(Error::shape(self.name(), "nothing to concatenate"));
        };
        let axis = resolve_axis(self.name(), self.axis, first.rank())?;
        let mut length = 0;
        for shape in inputs {
            let same_rank = shape.rank() == first.rank();
            if !same_rank
                || shape.dims()[..axis] != first.dims()[..axis]
                || shape.dims()[axis + 1..] != first.dims()[axis + 1..]
            {
                return Err(Error::shape(
                    self.name(),
                    format!("inputs must have equal ranks and agree in every dim but the concatenation axis {axis}"),
                ));
            }
            length += shape.dims()[axis];
        }
        let mut dims = first.dims().to_vec();
        dims[axis] = length;
        Shape::new(&dims)
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let axis = resolve_axis(self.name(), self.axis, output.shape.rank())?;
        let mut offset = 0;
        let mut dispatches = Vec::with_capacity(inputs.len());
        for input in inputs {
            let (entry, params, invocations) = copy_call(
                "concat_copy",
                "concat_copy4",
                &input.shape,
                &output.shape,
                axis,
                offset,
            );
            dispatches.push(ctx.gpu.dispatch(
                &SHADER,
                entry,
                bytes_of(&params),
                &[&input.buffer],
                &[&output.buffer],
                workgroups_for(invocations, WORKGROUP),
            )?);
            offset += input.shape.dims()[axis];
        }
        Ok(dispatches)
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        // Each input's gradient is its range of the output gradient along the axis.
        let axis = resolve_axis(self.name(), self.axis, g.shape(ctx.grad).rank())?;
        let mut start = 0;
        let mut grads = Vec::with_capacity(ctx.inputs.len());
        for (&input, &needed) in ctx.inputs.iter().zip(ctx.needs_grad) {
            let len = g.shape(input).dims()[axis];
            grads.push(if needed {
                Some(g.slice_range(ctx.grad, axis, start, len)?)
            } else {
                None
            });
            start += len;
        }
        Ok(grads)
    }

    fn flops(&self, _: &[&Shape], _: &Shape) -> u64 {
        0
    }
}

impl Graph {
    /// Concatenates tensors along `axis` (negative counts from the end): inputs of equal rank,
    /// equal in every other dim.
    pub fn concat(&mut self, xs: &[NodeId], axis: isize) -> Result<NodeId> {
        self.apply(Concat { axis }, xs)
    }

    /// Concatenates tensors [N, C_i, rest...] into [N, sum C_i, rest...].
    pub fn concat_channels(&mut self, xs: &[NodeId]) -> Result<NodeId> {
        if let Some(&first) = xs.first() {
            if self.shape(first).rank() < 2 {
                return Err(Error::shape(
                    "concat_channels",
                    format!(
                        "inputs need a channel dim (rank >= 2), not {}",
                        self.shape(first)
                    ),
                ));
            }
        }
        self.concat(xs, 1)
    }

    /// Channels start..start + len of x [N, C, rest...].
    pub fn slice_channels(&mut self, x: NodeId, start: usize, len: usize) -> Result<NodeId> {
        if self.shape(x).rank() < 2 {
            return Err(Error::shape(
                "slice_channels",
                format!(
                    "input needs a channel dim (rank >= 2), not {}",
                    self.shape(x)
                ),
            ));
        }
        self.slice_range(x, 1, start, len)
    }
}
