//! Max, average and global average pooling over NCW / NCHW / NCDHW: `pool.wgsl`.
//! Window and divisor semantics follow PyTorch (`MaxPoolNd`, `AvgPoolNd` with
//! `count_include_pad=True`, `ceil_mode`); the shader's header states them exactly.
//! Backward: gathers per input element (no atomics); max pooling recomputes each window's max and
//! routes the gradient to the window's first maximal element.

use crate::error::{Error, Result};
use crate::gpu::{
    bytes_of, shader_struct, wgsl_file, workgroups_for, Dispatch, KernelCall, Shader,
    WORKGROUP_INDEX,
};
use crate::graph::{AxisWindow, BackwardCtx, EncodeCtx, Graph, NodeId, Op, SpatialMap};
use crate::tensor::{Shape, Tensor};

pub static SHADER: Shader = Shader {
    name: "pool",
    file: wgsl_file!("ops/pool.wgsl", [&WORKGROUP_INDEX]),
    subgroups: false,
    structs: &[("Params", Params::LAYOUT)],
};
const WORKGROUP: usize = 256;
/// Consecutive W positions handled by one invocation of the windowed kernels (see the shader).
const CHUNK: usize = 8;

/// Window geometry per spatial dimension (1, 2 or 3 of them, outermost first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolParams {
    pub kernel: Vec<usize>,
    pub stride: Vec<usize>,
    pub padding: Vec<usize>,
    /// Round the output size up instead of down; a last window that would start in the right
    /// padding is dropped (PyTorch).
    pub ceil_mode: bool,
}

impl PoolParams {
    /// Stride = kernel, no padding, floor mode.
    pub fn new(kernel: &[usize]) -> Self {
        Self {
            kernel: kernel.to_vec(),
            stride: kernel.to_vec(),
            padding: vec![0; kernel.len()],
            ceil_mode: false,
        }
    }

    /// The same stride along every dimension.
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = vec![s; self.kernel.len()];
        self
    }

    pub fn strides(mut self, s: &[usize]) -> Self {
        self.stride = s.to_vec();
        self
    }

    /// The same padding along every dimension.
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = vec![p; self.kernel.len()];
        self
    }

    pub fn paddings(mut self, p: &[usize]) -> Self {
        self.padding = p.to_vec();
        self
    }

    pub fn ceil_mode(mut self, ceil: bool) -> Self {
        self.ceil_mode = ceil;
        self
    }

    /// Output size along one dimension of input size `size`, PyTorch's rule.
    fn out_size(&self, k: usize, size: usize) -> usize {
        let (kernel, stride, pad) = (self.kernel[k], self.stride[k], self.padding[k]);
        let span = size + 2 * pad - kernel;
        let mut out = if self.ceil_mode {
            span.div_ceil(stride) + 1
        } else {
            span / stride + 1
        };
        if self.ceil_mode && (out - 1) * stride >= size + pad {
            out -= 1;
        }
        out
    }

    /// The output shape for input `shape`, or why the combination is invalid.
    pub fn output_shape(&self, op: &str, shape: &Shape) -> Result<Shape> {
        let dims = self.kernel.len();
        if !(1..=3).contains(&dims) {
            return Err(Error::shape(
                op,
                format!("{dims} kernel dimensions given, 1, 2 or 3 are supported"),
            ));
        }
        if self.stride.len() != dims || self.padding.len() != dims {
            return Err(Error::shape(
                op,
                format!(
                    "kernel {:?}, stride {:?} and padding {:?} must have the same length",
                    self.kernel, self.stride, self.padding
                ),
            ));
        }
        if shape.rank() != dims + 2 {
            return Err(Error::shape(
                op,
                format!(
                    "a {dims}-D pool needs a rank-{} input [N, C, spatial...], not {shape}",
                    dims + 2
                ),
            ));
        }
        let mut out = shape.dims()[..2].to_vec();
        for k in 0..dims {
            let size = shape.dims()[2 + k];
            let (kernel, stride, pad) = (self.kernel[k], self.stride[k], self.padding[k]);
            if kernel == 0 || stride == 0 {
                return Err(Error::shape(op, "kernel and stride must be at least 1"));
            }
            if 2 * pad > kernel {
                return Err(Error::shape(
                    op,
                    format!("padding {pad} exceeds half the kernel size {kernel}"),
                ));
            }
            if size + 2 * pad < kernel {
                return Err(Error::shape(
                    op,
                    format!(
                        "kernel {kernel} is larger than the padded input size {size} + 2 * {pad}"
                    ),
                ));
            }
            out.push(self.out_size(k, size));
        }
        Shape::new(&out)
    }
}

shader_struct! {
    #[derive(Default)]
    struct Params {
        count: u32,
        chunks: u32,
        spatial: u32,
        scale: f32,
        in_size: [u32; 4],
        out_size: [u32; 4],
        kernel: [u32; 4],
        stride: [u32; 4],
        pad: [u32; 4],
        phase: [u32; 4],
    }
}

/// `values` (one per spatial dim) right-aligned into the D, H, W slots, the rest `fill`.
fn spatial_slots(values: &[usize], fill: u32) -> [u32; 4] {
    let mut out = [fill, fill, fill, 0];
    let offset = 3 - values.len();
    for (k, &v) in values.iter().enumerate() {
        out[offset + k] = v as u32;
    }
    out
}

/// Parameters of a windowed kernel whose invocations own CHUNK-wide pieces of the rows of
/// `walked` (the output for forward kernels, the input for backward ones).
fn window_params(pool: &PoolParams, input: &Shape, output: &Shape, walked: &Shape) -> Params {
    let width = walked.dim(-1);
    let chunks = width.div_ceil(CHUNK);
    Params {
        count: (walked.numel() / width * chunks) as u32,
        chunks: chunks as u32,
        in_size: spatial_slots(&input.dims()[2..], 1),
        out_size: spatial_slots(&output.dims()[2..], 1),
        kernel: spatial_slots(&pool.kernel, 1),
        stride: spatial_slots(&pool.stride, 1),
        pad: spatial_slots(&pool.padding, 0),
        ..Default::default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Max,
    Avg,
}

/// Max or average pooling; inputs (x).
#[derive(Debug)]
pub struct Pool {
    pub params: PoolParams,
    kind: Kind,
}

impl Pool {
    pub fn max(params: PoolParams) -> Self {
        Self {
            params,
            kind: Kind::Max,
        }
    }

    pub fn avg(params: PoolParams) -> Self {
        Self {
            params,
            kind: Kind::Avg,
        }
    }
}

impl Op for Pool {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Max => "max_pool",
            Kind::Avg => "avg_pool",
        }
    }

    fn spatial_map(&self, _inputs: &[&Shape]) -> Option<SpatialMap> {
        let p = &self.params;
        let windows = (0..p.kernel.len()).map(|d| AxisWindow {
            kernel: p.kernel[d],
            stride: p.stride[d],
            padding: p.padding[d],
            dilation: 1,
        });
        Some(SpatialMap::Window(windows.collect()))
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        self.params.output_shape(self.name(), inputs[0])
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let params = window_params(&self.params, &inputs[0].shape, &output.shape, &output.shape);
        Ok(vec![ctx.gpu.prepare(KernelCall {
            shader: &SHADER,
            entry: match self.kind {
                Kind::Max => "max_forward",
                Kind::Avg => "avg_forward",
            },
            constants: &[],
            params: bytes_of(&params),
            reads: &[&inputs[0].buffer],
            writes: &[&output.buffer],
            workgroups: workgroups_for(params.count as usize, WORKGROUP),
        })?])
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        let x = ctx.inputs[0];
        let dx = match self.kind {
            Kind::Max => g.apply(MaxPoolBackward(self.params.clone()), &[x, ctx.grad])?,
            Kind::Avg => g.apply(
                AvgPoolBackward {
                    params: self.params.clone(),
                    input: g.shape(x).clone(),
                },
                &[ctx.grad],
            )?,
        };
        Ok(vec![Some(dx)])
    }

    fn flops(&self, _: &[&Shape], output: &Shape) -> u64 {
        (output.numel() * self.params.kernel.iter().product::<usize>()) as u64
    }
}

/// dx of max pooling; inputs (x, dy). dx is cleared, then each window adds its dy at its first
/// maximal element, in passes over classes of windows that share no element (no atomics).
#[derive(Debug)]
pub struct MaxPoolBackward(pub PoolParams);

impl Op for MaxPoolBackward {
    fn name(&self) -> &'static str {
        "max_pool_backward"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        let expected = self.0.output_shape(self.name(), inputs[0])?;
        if inputs[1] != &expected {
            return Err(Error::shape(
                self.name(),
                format!("dy must be {expected}, the pooled shape of x"),
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
        let (x, dy) = (&inputs[0].shape, &inputs[1].shape);
        let mut params = window_params(&self.0, x, dy, dy);
        let n = output.shape.numel();
        let (zero, zero_invocations) = if n.is_multiple_of(4) {
            ("max_zero4", n / 4)
        } else {
            ("max_zero", n)
        };
        params.count = zero_invocations as u32;
        let mut dispatches = vec![ctx.gpu.dispatch(
            &SHADER,
            zero,
            bytes_of(&params),
            &[&inputs[0].buffer, &inputs[1].buffer],
            &[&output.buffer],
            workgroups_for(zero_invocations, WORKGROUP),
        )?];
        // Classes of windows that share no element: per dim, indices congruent modulo
        // ceil(kernel / stride); the last three slots are D, H, W as in the shader.
        let out = params.out_size;
        let step: Vec<u32> = (0..3)
            .map(|k| params.kernel[k].div_ceil(params.stride[k]))
            .collect();
        let planes = (dy.dims()[0] * dy.dims()[1]) as u32;
        for pd in 0..step[0] {
            for ph in 0..step[1] {
                for pw in 0..step[2] {
                    let phase = [pd, ph, pw];
                    let windows: u32 = (0..3)
                        .map(|k| out[k].saturating_sub(phase[k]).div_ceil(step[k]))
                        .product();
                    if windows == 0 {
                        continue;
                    }
                    params.phase = [pd, ph, pw, 0];
                    params.count = planes * windows;
                    dispatches.push(ctx.gpu.dispatch(
                        &SHADER,
                        "max_scatter",
                        bytes_of(&params),
                        &[&inputs[0].buffer, &inputs[1].buffer],
                        &[&output.buffer],
                        workgroups_for(params.count as usize, WORKGROUP),
                    )?);
                }
            }
        }
        Ok(dispatches)
    }
}

/// dx of average pooling; inputs (dy). `input` is the shape of x.
#[derive(Debug)]
pub struct AvgPoolBackward {
    pub params: PoolParams,
    pub input: Shape,
}

impl Op for AvgPoolBackward {
    fn name(&self) -> &'static str {
        "avg_pool_backward"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        let expected = self.params.output_shape(self.name(), &self.input)?;
        if inputs[0] != &expected {
            return Err(Error::shape(
                self.name(),
                format!("dy must be {expected}, the pooled shape of {}", self.input),
            ));
        }
        Ok(self.input.clone())
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let params = window_params(&self.params, &output.shape, &inputs[0].shape, &output.shape);
        Ok(vec![ctx.gpu.dispatch(
            &SHADER,
            "avg_backward",
            bytes_of(&params),
            &[&inputs[0].buffer],
            &[&output.buffer],
            workgroups_for(params.count as usize, WORKGROUP),
        )?])
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        // Linear in dy: its derivative is average pooling again (the adjoint of the adjoint).
        Ok(vec![Some(g.avg_pool(ctx.grad, &self.params)?)])
    }
}

fn global_params(shape: &Shape, count: usize) -> Params {
    let rows = shape.dims()[0] * shape.dims()[1];
    let spatial = shape.numel() / rows;
    Params {
        count: count as u32,
        spatial: spatial as u32,
        scale: 1.0 / spatial as f32,
        ..Default::default()
    }
}

/// Mean over every spatial position: [N, C, spatial...] -> [N, C].
#[derive(Debug)]
pub struct GlobalAvgPool;

impl Op for GlobalAvgPool {
    fn name(&self) -> &'static str {
        "global_avg_pool"
    }

    fn spatial_map(&self, _inputs: &[&Shape]) -> Option<SpatialMap> {
        Some(SpatialMap::Global)
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        let shape = inputs[0];
        if !(3..=5).contains(&shape.rank()) {
            return Err(Error::shape(
                self.name(),
                format!("input must be [N, C, spatial...] of rank 3 to 5, not {shape}"),
            ));
        }
        Shape::new(&shape.dims()[..2])
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let rows = output.shape.numel();
        let params = global_params(&inputs[0].shape, rows);
        Ok(vec![ctx.gpu.dispatch(
            &SHADER,
            "global_avg_forward",
            bytes_of(&params),
            &[&inputs[0].buffer],
            &[&output.buffer],
            rows as u32,
        )?])
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        let input = g.shape(ctx.inputs[0]).clone();
        Ok(vec![Some(
            g.apply(GlobalAvgPoolBackward { input }, &[ctx.grad])?,
        )])
    }

    fn flops(&self, inputs: &[&Shape], _: &Shape) -> u64 {
        inputs[0].numel() as u64
    }
}

/// dx of global average pooling: dy spread evenly over each row; inputs (dy).
#[derive(Debug)]
pub struct GlobalAvgPoolBackward {
    pub input: Shape,
}

impl Op for GlobalAvgPoolBackward {
    fn name(&self) -> &'static str {
        "global_avg_pool_backward"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        let expected = GlobalAvgPool.output_shape(&[&self.input])?;
        if inputs[0] != &expected {
            return Err(Error::shape(
                self.name(),
                format!("dy must be {expected} for an input of shape {}", self.input),
            ));
        }
        Ok(self.input.clone())
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let n = output.shape.numel();
        let params = global_params(&output.shape, n);
        Ok(vec![ctx.gpu.dispatch(
            &SHADER,
            "global_avg_backward",
            bytes_of(&params),
            &[&inputs[0].buffer],
            &[&output.buffer],
            workgroups_for(n, WORKGROUP),
        )?])
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        // Linear in dy: its adjoint is global average pooling.
        Ok(vec![Some(g.global_avg_pool(ctx.grad)?)])
    }
}

impl Graph {
    pub fn max_pool(&mut self, x: NodeId, params: &PoolParams) -> Result<NodeId> {
        self.apply(Pool::max(params.clone()), &[x])
    }

    pub fn avg_pool(&mut self, x: NodeId, params: &PoolParams) -> Result<NodeId> {
        self.apply(Pool::avg(params.clone()), &[x])
    }

    /// [N, C, spatial...] -> [N, C].
    pub fn global_avg_pool(&mut self, x: NodeId) -> Result<NodeId> {
        self.apply(GlobalAvgPool, &[x])
    }
}
