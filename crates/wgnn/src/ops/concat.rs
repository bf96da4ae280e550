//! Concatenation along channels (dim 1) and its backward, channel slicing:
//! `concat.wgsl`. A concatenation of K tensors is K copy dispatches into disjoint
//! channel ranges of the output.

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

/// A copy between `narrow` [N, c, inner...] and channels offset..offset + c of `wide`: the
/// entry (`entry`, or its vec4 variant `entry4` where a batch item's ranges are whole vec4s),
/// its parameters and its invocations.
fn copy_call(
    entry: &'static str,
    entry4: &'static str,
    narrow: &Shape,
    wide: &Shape,
    offset: usize,
) -> (&'static str, Params, usize) {
    let inner: usize = narrow.dims()[2..].iter().product();
    let (block, wide_block, start) = (
        narrow.dims()[1] * inner,
        wide.dims()[1] * inner,
        offset * inner,
    );
    let mut params = Params {
        count: narrow.numel() as u32,
        narrow_channels: narrow.dims()[1] as u32,
        wide_channels: wide.dims()[1] as u32,
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

/// Concatenates its inputs (one or more, equal in every dim but 1) along dim 1.
#[derive(Debug)]
pub struct ConcatChannels;

impl Op for ConcatChannels {
    fn name(&self) -> &'static str {
        "concat_channels"
    }

    fn spatial_map(&self, _inputs: &[&Shape]) -> Option<SpatialMap> {
        Some(SpatialMap::Pointwise)
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        let Some(first) = inputs.first() else {
            return Err(Error::shape(self.name(), "nothing to concatenate"));
        };
        if first.rank() < 2 {
            return Err(Error::shape(
                self.name(),
                format!("inputs need a channel dim (rank >= 2), not {first}"),
            ));
        }
        let mut channels = 0;
        for shape in inputs {
            let same_rank = shape.rank() == first.rank();
            if !same_rank
                || shape.dims()[0] != first.dims()[0]
                || shape.dims()[2..] != first.dims()[2..]
            {
                return Err(Error::shape(
                    self.name(),
                    "inputs must agree in every dim but the channels (dim 1)",
                ));
            }
            channels += shape.dims()[1];
        }
        let mut dims = first.dims().to_vec();
        dims[1] = channels;
        Shape::new(&dims)
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let mut offset = 0;
        let mut dispatches = Vec::with_capacity(inputs.len());
        for input in inputs {
            let (entry, params, invocations) = copy_call(
                "concat_copy",
                "concat_copy4",
                &input.shape,
                &output.shape,
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
            offset += input.shape.dims()[1];
        }
        Ok(dispatches)
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        let mut start = 0;
        let mut grads = Vec::with_capacity(ctx.inputs.len());
        for (&input, &needed) in ctx.inputs.iter().zip(ctx.needs_grad) {
            let len = g.shape(input).dims()[1];
            grads.push(if needed {
                Some(g.apply(SliceChannels { start, len }, &[ctx.grad])?)
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

/// Channels start..start + len of [N, C, inner...].
#[derive(Debug)]
pub struct SliceChannels {
    pub start: usize,
    pub len: usize,
}

impl Op for SliceChannels {
    fn name(&self) -> &'static str {
        "slice_channels"
    }

    fn spatial_map(&self, _inputs: &[&Shape]) -> Option<SpatialMap> {
        Some(SpatialMap::Pointwise)
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        let shape = inputs[0];
        if shape.rank() < 2 {
            return Err(Error::shape(
                self.name(),
                format!("input needs a channel dim (rank >= 2), not {shape}"),
            ));
        }
        if self.len == 0 || self.start + self.len > shape.dims()[1] {
            return Err(Error::shape(
                self.name(),
                format!(
                    "channels {}..{} are not a non-empty range of {shape}",
                    self.start,
                    self.start + self.len
                ),
            ));
        }
        let mut dims = shape.dims().to_vec();
        dims[1] = self.len;
        Shape::new(&dims)
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let (entry, params, invocations) = copy_call(
            "slice_channels",
            "slice_channels4",
            &output.shape,
            &inputs[0].shape,
            self.start,
        );
        Ok(vec![ctx.gpu.dispatch(
            &SHADER,
            entry,
            bytes_of(&params),
            &[&inputs[0].buffer],
            &[&output.buffer],
            workgroups_for(invocations, WORKGROUP),
        )?])
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        // The adjoint of a slice: the gradient in its channels, zeros elsewhere.
        let dims = g.shape(ctx.inputs[0]).dims().to_vec();
        let mut parts = Vec::new();
        let zeros = |g: &mut Graph, channels: usize| -> Result<NodeId> {
            let mut shape = dims.clone();
            shape[1] = channels;
            g.fill(Shape::new(&shape)?, 0.0)
        };
        if self.start > 0 {
            parts.push(zeros(g, self.start)?);
        }
        parts.push(ctx.grad);
        let after = dims[1] - self.start - self.len;
        if after > 0 {
            parts.push(zeros(g, after)?);
        }
        Ok(vec![Some(g.concat_channels(&parts)?)])
    }

    fn flops(&self, _: &[&Shape], _: &Shape) -> u64 {
        0
    }
}

impl Graph {
    /// Concatenates tensors [N, C_i, rest...] into [N, sum C_i, rest...].
    pub fn concat_channels(&mut self, xs: &[NodeId]) -> Result<NodeId> {
        self.apply(ConcatChannels, xs)
    }

    /// Channels start..start + len of x.
    pub fn slice_channels(&mut self, x: NodeId, start: usize, len: usize) -> Result<NodeId> {
        self.apply(SliceChannels { start, len }, &[x])
    }
}
