//! Sums and means, of a whole tensor (shape [1]) or over one axis, deterministic (fixed-order
//! sums and a fixed tree, no atomics). `reduce.wgsl`.
//! Backward: the upstream gradient broadcast back over the reduced elements (times 1 / len for
//! means).

use crate::error::{Error, Result};
use crate::gpu::{
    bytes_of, shader_struct, wgsl_file, workgroups_for, Dispatch, Shader, WORKGROUP_INDEX,
};
use crate::graph::{BackwardCtx, EncodeCtx, Graph, NodeId, Op, SpatialMap};
use crate::tensor::{Shape, Tensor};

pub static SHADER: Shader = Shader {
    name: "reduce",
    file: wgsl_file!("ops/reduce.wgsl", [&WORKGROUP_INDEX]),
    subgroups: false,
    structs: &[("Params", Params::LAYOUT)],
};
const WORKGROUP: usize = 256;
/// Values of the reduced axis that one workgroup of `sum_chunks` adds (`CHUNK` in the shader).
const CHUNK: usize = 256 * 8;
/// Sums at least this long, over fewer outputs than `TREE_MAX_OUTPUTS`, are split into chunks
/// added by whole workgroups; the rest take one invocation per output.
const TREE_MIN_LEN: usize = 512;
const TREE_MAX_OUTPUTS: usize = 4096;

shader_struct! {
    #[derive(Default)]
    struct Params {
        outer: u32,
        len: u32,
        inner: u32,
        chunks: u32,
        scale: f32,
        count: u32,
        _pad0: u32,
        _pad1: u32,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceKind {
    Sum,
    Mean,
}

/// The view [outer, len, inner] of `shape` reduced over `len`: over `axis`, or everything.
fn view(shape: &Shape, axis: Option<usize>) -> (usize, usize, usize) {
    match axis {
        None => (1, shape.numel(), 1),
        Some(axis) => {
            let dims = shape.dims();
            (
                dims[..axis].iter().product(),
                dims[axis],
                dims[axis + 1..].iter().product(),
            )
        }
    }
}

fn scale(kind: ReduceKind, len: usize) -> f32 {
    match kind {
        ReduceKind::Sum => 1.0,
        ReduceKind::Mean => (1.0 / len as f64) as f32,
    }
}

/// Prepares the dispatches that write `scale * sum over l of input[o, l, i]` to `output[o, i]`
/// for `input` viewed as [outer, len, inner]. Long sums are reduced in chunks over several
/// passes with partial sums in scratch buffers. Other op families reduce through this too.
pub fn encode_sum(
    ctx: &mut EncodeCtx<'_>,
    input: &wgpu::Buffer,
    [outer, len, inner]: [usize; 3],
    scale: f32,
    output: &wgpu::Buffer,
) -> Result<Vec<Dispatch>> {
    let outputs = outer * inner;
    if len < TREE_MIN_LEN || outputs >= TREE_MAX_OUTPUTS {
        let params = Params {
            outer: outer as u32,
            len: len as u32,
            inner: inner as u32,
            scale,
            count: outputs as u32,
            ..Default::default()
        };
        return Ok(vec![ctx.gpu.dispatch(
            &SHADER,
            "sum_sequential",
            bytes_of(&params),
            &[input],
            &[output],
            workgroups_for(outputs, WORKGROUP),
        )?]);
    }
    let mut dispatches = Vec::new();
    let mut source = None;
    let mut len = len;
    loop {
        let chunks = len.div_ceil(CHUNK);
        let last = chunks == 1;
        let target = if last {
            None
        } else {
            Some(ctx.scratch("partial sums", (outputs * chunks * 4) as u64)?)
        };
        let params = Params {
            outer: outer as u32,
            len: len as u32,
            inner: inner as u32,
            chunks: chunks as u32,
            scale: if last { scale } else { 1.0 },
            count: (outputs * chunks) as u32,
            ..Default::default()
        };
        let read: &wgpu::Buffer = source.as_deref().unwrap_or(input);
        let write: &wgpu::Buffer = target.as_deref().unwrap_or(output);
        dispatches.push(ctx.gpu.dispatch(
            &SHADER,
            "sum_chunks",
            bytes_of(&params),
            &[read],
            &[write],
            (outputs * chunks) as u32,
        )?);
        if last {
            return Ok(dispatches);
        }
        source = target;
        len = chunks;
    }
}

/// Sum or mean over `axis` (keeping it as size 1 when `keepdim`), or over everything (shape
/// [1]) when `axis` is None.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reduce {
    pub kind: ReduceKind,
    pub axis: Option<usize>,
    pub keepdim: bool,
}

/// The backward of `Reduce`: dx = scale * dy broadcast over the reduced elements; input dy,
/// output of shape `shape` (the reduced tensor's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReduceBackward {
    pub kind: ReduceKind,
    pub axis: Option<usize>,
    pub keepdim: bool,
    pub shape: Shape,
}

impl Reduce {
    fn reduced_shape(&self, name: &str, input: &Shape) -> Result<Shape> {
        let Some(axis) = self.axis else {
            return Ok(Shape::scalar());
        };
        if axis >= input.rank() {
            return Err(Error::shape(
                name,
                format!("axis {axis} is out of range for shape {input}"),
            ));
        }
        let mut dims = input.dims().to_vec();
        if self.keepdim {
            dims[axis] = 1;
        } else {
            dims.remove(axis);
        }
        if dims.is_empty() {
            return Ok(Shape::scalar());
        }
        Shape::new(&dims)
    }
}

impl Op for Reduce {
    fn name(&self) -> &'static str {
        match (self.kind, self.axis) {
            (ReduceKind::Sum, None) => "sum",
            (ReduceKind::Mean, None) => "mean",
            (ReduceKind::Sum, Some(_)) => "sum_axis",
            (ReduceKind::Mean, Some(_)) => "mean_axis",
        }
    }

    fn spatial_map(&self, _inputs: &[&Shape]) -> Option<SpatialMap> {
        Some(SpatialMap::Global)
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        self.reduced_shape(self.name(), inputs[0])
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let (outer, len, inner) = view(&inputs[0].shape, self.axis);
        encode_sum(
            ctx,
            &inputs[0].buffer,
            [outer, len, inner],
            scale(self.kind, len),
            &output.buffer,
        )
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        let backward = ReduceBackward {
            kind: self.kind,
            axis: self.axis,
            keepdim: self.keepdim,
            shape: g.shape(ctx.inputs[0]).clone(),
        };
        Ok(vec![Some(g.apply(backward, &[ctx.grad])?)])
    }

    fn flops(&self, inputs: &[&Shape], _: &Shape) -> u64 {
        inputs[0].numel() as u64
    }
}

impl ReduceBackward {
    fn forward(&self) -> Reduce {
        Reduce {
            kind: self.kind,
            axis: self.axis,
            keepdim: self.keepdim,
        }
    }
}

impl Op for ReduceBackward {
    fn name(&self) -> &'static str {
        "reduce_backward"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        let reduced = self.forward().reduced_shape(self.name(), &self.shape)?;
        if inputs[0] != &reduced {
            return Err(Error::shape(
                self.name(),
                format!(
                    "the gradient must have the reduced shape {reduced} of {}",
                    self.shape
                ),
            ));
        }
        Ok(self.shape.clone())
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let (outer, len, inner) = view(&self.shape, self.axis);
        let n = output.shape.numel();
        let params = Params {
            outer: outer as u32,
            len: len as u32,
            inner: inner as u32,
            scale: scale(self.kind, len),
            count: n as u32,
            ..Default::default()
        };
        Ok(vec![ctx.gpu.dispatch(
            &SHADER,
            "broadcast",
            bytes_of(&params),
            &[&inputs[0].buffer],
            &[&output.buffer],
            workgroups_for(n, WORKGROUP),
        )?])
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        // Linear in dy: its adjoint is the forward reduction itself.
        Ok(vec![Some(g.apply(self.forward(), &[ctx.grad])?)])
    }
}

impl Graph {
    /// The sum of every element, shape [1].
    pub fn sum(&mut self, x: NodeId) -> Result<NodeId> {
        self.reduce(x, ReduceKind::Sum, None, false)
    }

    /// The mean of every element, shape [1].
    pub fn mean(&mut self, x: NodeId) -> Result<NodeId> {
        self.reduce(x, ReduceKind::Mean, None, false)
    }

    /// Sum over `axis`, which is dropped from the shape unless `keepdim` (then it has size 1).
    pub fn sum_axis(&mut self, x: NodeId, axis: usize, keepdim: bool) -> Result<NodeId> {
        self.reduce(x, ReduceKind::Sum, Some(axis), keepdim)
    }

    /// Mean over `axis`, which is dropped from the shape unless `keepdim` (then it has size 1).
    pub fn mean_axis(&mut self, x: NodeId, axis: usize, keepdim: bool) -> Result<NodeId> {
        self.reduce(x, ReduceKind::Mean, Some(axis), keepdim)
    }

    fn reduce(
        &mut self,
        x: NodeId,
        kind: ReduceKind,
        axis: Option<usize>,
        keepdim: bool,
    ) -> Result<NodeId> {
        self.apply(
            Reduce {
                kind,
                axis,
                keepdim,
            },
            &[x],
        )
    }
}
