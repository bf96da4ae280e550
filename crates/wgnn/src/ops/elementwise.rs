//! Elementwise ops: fill, scale, add / sub / mul with numpy-style broadcasting (a per-channel
//! bias of shape [C, 1, 1] broadcasts over [N, C, H, W]), and `sum_to_shape`, the backward of a
//! broadcast. `elementwise.wgsl`.

use crate::error::{Error, Result};
use crate::gpu::{
    bytes_of, shader_struct, wgsl_file, workgroups_for, Dispatch, KernelCall, Shader,
    WORKGROUP_INDEX,
};
use crate::graph::{BackwardCtx, EncodeCtx, Graph, NodeId, Op, SpatialMap};
use crate::tensor::{Shape, Tensor};

pub static SHADER: Shader = Shader {
    name: "elementwise",
    file: wgsl_file!("ops/elementwise.wgsl", [&WORKGROUP_INDEX]),
    subgroups: false,
    structs: &[("Params", Params::LAYOUT)],
};
const WORKGROUP: usize = 256;
const SLOTS: usize = 8;

shader_struct! {
    #[derive(Default)]
    struct Params {
        n: u32,
        rank: u32,
        pad: u32,
        alpha: f32,
        dims: [u32; SLOTS],
        a_strides: [u32; SLOTS],
        b_strides: [u32; SLOTS],
        reduce_count: u32,
        inner: u32,
        lo: f32,
        hi: f32,
        affine_perm: [u32; 4],
        affine_scale: [f32; 4],
        affine_offset: [f32; 4],
    }
}

fn slots(values: impl IntoIterator<Item = usize>) -> [u32; SLOTS] {
    let mut out = [0u32; SLOTS];
    for (k, v) in values.into_iter().enumerate() {
        out[k] = v as u32;
    }
    out
}

/// `shape` padded on the left with 1s to `rank` dimensions.
fn aligned(shape: &Shape, rank: usize) -> Vec<usize> {
    let mut dims = vec![1; rank - shape.rank()];
    dims.extend_from_slice(shape.dims());
    dims
}

/// Row-major strides of `dims`, with 0 where the dimension is 1 but the output's is not.
fn broadcast_strides(dims: &[usize], out: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; dims.len()];
    let mut stride = 1;
    for k in (0..dims.len()).rev() {
        strides[k] = if dims[k] == 1 && out[k] != 1 {
            0
        } else {
            stride
        };
        stride *= dims[k];
    }
    strides
}

/// The numpy broadcast of two shapes, or an error naming both.
pub fn broadcast_shapes(op: &str, a: &Shape, b: &Shape) -> Result<Shape> {
    let rank = a.rank().max(b.rank());
    let (da, db) = (aligned(a, rank), aligned(b, rank));
    let mut dims = Vec::with_capacity(rank);
    for k in 0..rank {
        dims.push(match (da[k], db[k]) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(Error::shape(
                    op,
                    format!("shapes {a} and {b} do not broadcast"),
                ))
            }
        });
    }
    Shape::new(&dims)
}

/// A tensor of `shape` filled with `value` (no inputs).
#[derive(Debug)]
pub struct Fill {
    pub shape: Shape,
    pub value: f32,
}

impl Op for Fill {
    fn name(&self) -> &'static str {
        "fill"
    }

    fn output_shape(&self, _: &[&Shape]) -> Result<Shape> {
        Ok(self.shape.clone())
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        _: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let n = output.shape.numel();
        let params = Params {
            n: n as u32,
            alpha: self.value,
            ..Default::default()
        };
        Ok(vec![ctx.gpu.dispatch(
            &SHADER,
            "fill",
            bytes_of(&params),
            &[],
            &[&output.buffer],
            workgroups_for(n, WORKGROUP),
        )?])
    }

    fn backward(&self, _: &mut Graph, _: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        Ok(vec![])
    }
}

/// y = alpha * x.
#[derive(Debug)]
pub struct Scale(pub f32);

impl Op for Scale {
    fn name(&self) -> &'static str {
        "scale"
    }

    fn spatial_map(&self, _inputs: &[&Shape]) -> Option<SpatialMap> {
        Some(SpatialMap::Pointwise)
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        Ok(inputs[0].clone())
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let n = output.shape.numel();
        let params = Params {
            n: n as u32,
            alpha: self.0,
            ..Default::default()
        };
        Ok(vec![ctx.gpu.dispatch(
            &SHADER,
            "scale",
            bytes_of(&params),
            &[&inputs[0].buffer],
            &[&output.buffer],
            workgroups_for(n, WORKGROUP),
        )?])
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        Ok(vec![Some(g.scale(ctx.grad, self.0)?)])
    }
}

/// The same values in another shape with as many elements (row-major order kept), e.g. a
/// pooled grid [N, C, H, W] flattened to [N, C * H * W]. A copy (the scale kernel with
/// alpha = 1, exact), since every node owns its buffer.
#[derive(Debug)]
pub struct Reshape {
    pub shape: Shape,
}

impl Op for Reshape {
    fn name(&self) -> &'static str {
        "reshape"
    }

    fn spatial_map(&self, _inputs: &[&Shape]) -> Option<SpatialMap> {
        Some(SpatialMap::Global)
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        if inputs[0].numel() != self.shape.numel() {
            return Err(Error::shape(
                self.name(),
                format!(
                    "cannot reshape {} ({} elements) to {} ({} elements)",
                    inputs[0],
                    inputs[0].numel(),
                    self.shape,
                    self.shape.numel()
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
        Scale(1.0).encode(ctx, inputs, output)
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        let shape = g.shape(ctx.inputs[0]).clone();
        Ok(vec![Some(g.reshape(ctx.grad, shape)?)])
    }

    fn flops(&self, _: &[&Shape], _: &Shape) -> u64 {
        0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryKind {
    Add,
    Sub,
    Mul,
}

/// a (op) b with broadcasting.
#[derive(Debug)]
pub struct Binary(pub BinaryKind);

impl Op for Binary {
    fn name(&self) -> &'static str {
        match self.0 {
            BinaryKind::Add => "add",
            BinaryKind::Sub => "sub",
            BinaryKind::Mul => "mul",
        }
    }

    fn spatial_map(&self, _inputs: &[&Shape]) -> Option<SpatialMap> {
        Some(SpatialMap::Pointwise)
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        broadcast_shapes(self.name(), inputs[0], inputs[1])
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let rank = output.shape.rank();
        let out = output.shape.dims();
        let a_strides = broadcast_strides(&aligned(&inputs[0].shape, rank), out);
        let b_strides = broadcast_strides(&aligned(&inputs[1].shape, rank), out);
        let n = output.shape.numel();
        let mut params = Params {
            n: n as u32,
            rank: rank as u32,
            dims: slots(out.iter().copied()),
            a_strides: slots(a_strides),
            b_strides: slots(b_strides),
            ..Default::default()
        };
        let same_shape = inputs.iter().all(|t| t.shape == output.shape);
        let (entry, invocations) = match (same_shape, n.is_multiple_of(4)) {
            (true, true) => ("binary_same_shape4", n / 4),
            (true, false) => ("binary_same_shape", n),
            (false, _) => ("binary", n),
        };
        params.n = invocations as u32;
        Ok(vec![ctx.gpu.prepare(KernelCall {
            shader: &SHADER,
            entry,
            constants: &[("OP", self.0 as u32 as f64)],
            params: bytes_of(&params),
            reads: &[&inputs[0].buffer, &inputs[1].buffer],
            writes: &[&output.buffer],
            workgroups: workgroups_for(invocations, WORKGROUP),
        })?])
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        let (a, b, grad) = (ctx.inputs[0], ctx.inputs[1], ctx.grad);
        let (ga, gb) = match self.0 {
            BinaryKind::Add => (grad, grad),
            BinaryKind::Sub => (grad, g.scale(grad, -1.0)?),
            BinaryKind::Mul => {
                let ga = if ctx.needs_grad[0] {
                    g.mul(grad, b)?
                } else {
                    grad
                };
                let gb = if ctx.needs_grad[1] {
                    g.mul(grad, a)?
                } else {
                    grad
                };
                (ga, gb)
            }
        };
        let ga = if ctx.needs_grad[0] {
            Some(g.sum_to_shape(ga, a)?)
        } else {
            None
        };
        let gb = if ctx.needs_grad[1] {
            Some(g.sum_to_shape(gb, b)?)
        } else {
            None
        };
        Ok(vec![ga, gb])
    }
}

/// Sums a tensor down to `target`, a shape that broadcasts to the input's.
#[derive(Debug)]
pub struct SumToShape {
    pub target: Shape,
}

impl Op for SumToShape {
    fn name(&self) -> &'static str {
        "sum_to_shape"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        let broadcast = broadcast_shapes(self.name(), inputs[0], &self.target)?;
        if &broadcast != inputs[0] {
            return Err(Error::shape(
                self.name(),
                format!("{} does not broadcast to {}", self.target, inputs[0]),
            ));
        }
        Ok(self.target.clone())
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let input = inputs[0].shape.dims();
        let rank = input.len();
        let target = aligned(&self.target, rank);
        let kept = (0..rank).map(|k| usize::from(target[k] == input[k]));
        let n = output.shape.numel();
        let params = Params {
            n: n as u32,
            rank: rank as u32,
            dims: slots(input.iter().copied()),
            b_strides: slots(kept),
            reduce_count: (inputs[0].shape.numel() / n) as u32,
            ..Default::default()
        };
        Ok(vec![ctx.gpu.dispatch(
            &SHADER,
            "sum_to_shape",
            bytes_of(&params),
            &[&inputs[0].buffer],
            &[&output.buffer],
            workgroups_for(n, WORKGROUP),
        )?])
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        // The gradient of a sum over broadcast dimensions is the broadcast of the gradient.
        let zeros = g.fill(g.shape(ctx.inputs[0]).clone(), 0.0)?;
        Ok(vec![Some(g.add(zeros, ctx.grad)?)])
    }

    fn flops(&self, inputs: &[&Shape], _: &Shape) -> u64 {
        inputs[0].numel() as u64
    }
}

/// Per-channel affine map with a channel permutation on [N, C, ...] with C <= 4:
/// y[:, c] = scale[c] * x[:, perm[c]] + offset[c]. Model preprocessing (RGB [0, 1] to the
/// network's input) is one of these, so gradients flow back to the image.
#[derive(Clone, Debug)]
pub struct ChannelAffine {
    pub perm: Vec<usize>,
    pub scale: Vec<f32>,
    pub offset: Vec<f32>,
}

impl ChannelAffine {
    fn check(&self) -> Result<()> {
        let c = self.perm.len();
        let mut seen = self.perm.clone();
        seen.sort_unstable();
        if c == 0
            || c > 4
            || self.scale.len() != c
            || self.offset.len() != c
            || seen != (0..c).collect::<Vec<_>>()
        {
            return Err(Error::shape("channel_affine", format!("perm {:?} must be a permutation of at most 4 channels with a scale and offset each", self.perm)));
        }
        Ok(())
    }
}

impl Op for ChannelAffine {
    fn name(&self) -> &'static str {
        "channel_affine"
    }

    fn spatial_map(&self, _inputs: &[&Shape]) -> Option<SpatialMap> {
        Some(SpatialMap::Pointwise)
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        self.check()?;
        if inputs[0].rank() < 2 || inputs[0].dim(1) != self.perm.len() {
            return Err(Error::shape(
                self.name(),
                format!("expects [N, {}, ...], got {}", self.perm.len(), inputs[0]),
            ));
        }
        Ok(inputs[0].clone())
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let n = output.shape.numel();
        let channels = self.perm.len();
        let inner = n / (output.shape.dim(0) * channels);
        let mut params = Params {
            n: n as u32,
            rank: channels as u32,
            inner: inner as u32,
            ..Default::default()
        };
        for c in 0..channels {
            params.affine_perm[c] = self.perm[c] as u32;
            params.affine_scale[c] = self.scale[c];
            params.affine_offset[c] = self.offset[c];
        }
        Ok(vec![ctx.gpu.dispatch(
            &SHADER,
            "channel_affine",
            bytes_of(&params),
            &[&inputs[0].buffer],
            &[&output.buffer],
            workgroups_for(n, WORKGROUP),
        )?])
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        // dx[:, perm[c]] = scale[c] * dy[:, c]: the same op with the inverse permutation.
        let c = self.perm.len();
        let mut inverse = ChannelAffine {
            perm: vec![0; c],
            scale: vec![0.0; c],
            offset: vec![0.0; c],
        };
        for (out_channel, &source) in self.perm.iter().enumerate() {
            inverse.perm[source] = out_channel;
            inverse.scale[source] = self.scale[out_channel];
        }
        Ok(vec![Some(g.apply(inverse, &[ctx.grad])?)])
    }
}

/// A dispatch that clamps `tensor` into [lo, hi] in place (e.g. after an optimiser update of an
/// image); add it to `PlanSpec::after_update`.
pub fn clamp_in_place(
    gpu: &crate::gpu::Gpu,
    tensor: &Tensor,
    lo: f32,
    hi: f32,
) -> Result<Dispatch> {
    let n = tensor.shape.numel();
    let params = Params {
        n: n as u32,
        lo,
        hi,
        ..Default::default()
    };
    gpu.dispatch(
        &SHADER,
        "clamp_range",
        bytes_of(&params),
        &[],
        &[&tensor.buffer],
        workgroups_for(n, WORKGROUP),
    )
}

impl Graph {
    pub fn channel_affine(&mut self, x: NodeId, affine: ChannelAffine) -> Result<NodeId> {
        self.apply(affine, &[x])
    }

    pub fn fill(&mut self, shape: impl Into<Shape>, value: f32) -> Result<NodeId> {
        self.apply(
            Fill {
                shape: shape.into(),
                value,
            },
            &[],
        )
    }

    pub fn scale(&mut self, x: NodeId, alpha: f32) -> Result<NodeId> {
        self.apply(Scale(alpha), &[x])
    }

    /// `x`'s values in `shape` (same element count, row-major order kept).
    pub fn reshape(&mut self, x: NodeId, shape: impl Into<Shape>) -> Result<NodeId> {
        self.apply(
            Reshape {
                shape: shape.into(),
            },
            &[x],
        )
    }

    pub fn add(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.apply(Binary(BinaryKind::Add), &[a, b])
    }

    pub fn sub(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.apply(Binary(BinaryKind::Sub), &[a, b])
    }

    pub fn mul(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.apply(Binary(BinaryKind::Mul), &[a, b])
    }

    /// Sums `x` down to the shape of `like` (which must broadcast to x's shape).
    pub fn sum_to_shape(&mut self, x: NodeId, like: NodeId) -> Result<NodeId> {
        let target = self.shape(like).clone();
        if &target == self.shape(x) {
            return Ok(x);
        }
        self.apply(SumToShape { target }, &[x])
    }
}
