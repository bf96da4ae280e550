//! Max, average and global average pooling over NCW / NCHW / NCDHW: `pool.wgsl`; max pooling's
//! argmax indices and max-unpooling from them: [`indices`].
//!
//! Windows follow PyTorch (`MaxPoolNd`, `AvgPoolNd`, `ceil_mode`) and ONNX (`MaxPool`,
//! `AveragePool`): per spatial axis a kernel, a stride, a dilation (taps `dilation` apart) and
//! padding before and after the axis, possibly different amounts ([`Pads`]), or ONNX's automatic
//! modes ([`AutoPad`], resolved against each input's size). Output sizes:
//! - explicit padding: `(in + begin + end - span) / stride + 1` with `span = (kernel - 1) *
//!   dilation + 1`, rounded down, or up in ceil mode, where a last window that would start at or
//!   past `in + begin` (in the end padding) is dropped, as PyTorch and ONNX's reference do;
//! - `AutoPad::SameUpper` / `SameLower`: `ceil(in / stride)`; `AutoPad::Valid`: no padding, rounded
//!   down. ONNX's formulas for these modes do not involve `ceil_mode`, so it is ignored with them.
//!
//! Average pooling divides by the taps that lie in the padded input (`count_include_pad = true`,
//! PyTorch's default and this type's: padding counts, the part of a ceil-mode window past the end
//! padding does not) or by the taps on real elements (`count_include_pad = false`, ONNX's and
//! TensorFlow SAME's default).
//!
//! Padding may exceed half the kernel (PyTorch refuses that; ONNX does not). ONNX's reference
//! leaves a window without a real element undefined (the max of nothing raises, the average of
//! nothing is NaN), so such geometries are refused with an error naming the window, except for
//! average pooling with `count_include_pad = true`, where the window averages padding zeros and
//! gives 0 as ONNX's reference does. (Every window's first tap lies inside the padded input:
//! the output sizes above guarantee it, so the divisor counting padding is never 0.)
//!
//! Backward: max pooling recomputes each window's argmax and routes the gradient to the window's
//! first maximal element (a scatter in passes over classes of windows that share no element, no
//! atomics); average pooling gathers per input element.

pub mod indices;

pub use crate::ops::padding::{AutoPad, Pads};
pub use indices::{IndexBase, MaxPoolIndices, MaxUnpool, MaxUnpoolBackward};

use crate::error::{Error, Result};
use crate::gpu::{
    bytes_of, shader_struct, wgsl_file, workgroups_for, Dispatch, KernelCall, Shader,
    WORKGROUP_INDEX,
};
use crate::graph::{AxisWindow, BackwardCtx, EncodeCtx, Graph, NodeId, Op, SpatialMap};
use crate::tensor::{Shape, Tensor};

pub static SHADER: Shader = Shader {
    name: "pool",
    file: wgsl_file!("ops/pool/pool.wgsl", [&WORKGROUP_INDEX]),
    subgroups: false,
    structs: &[("Params", Params::LAYOUT)],
};
const WORKGROUP: usize = 256;
/// Consecutive W positions handled by one invocation of the average-pooling backward kernel (see
/// the shader).
const CHUNK: usize = 8;
/// Global average pooling sums rows of at most this many positions one invocation per row
/// (`global_avg_forward_short`), longer ones one workgroup per row.
const SHORT_ROW: usize = 256;

/// Window geometry per spatial dimension (1, 2 or 3 of them, outermost first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolParams {
    pub kernel: Vec<usize>,
    pub stride: Vec<usize>,
    /// Distance between the taps of a window (1: adjacent elements).
    pub dilation: Vec<usize>,
    /// Padding before and after each axis; unused when `auto_pad` is set.
    pub pads: Pads,
    /// ONNX's automatic padding, resolved against each input's size (overrides `pads`).
    pub auto_pad: Option<AutoPad>,
    /// Round the output size up instead of down; a last window that would start in the end
    /// padding is dropped (PyTorch).
    pub ceil_mode: bool,
    /// Average pooling: whether padding taps count in the divisor (see the module docs).
    pub count_include_pad: bool,
}

/// A [`PoolParams`] resolved against one input: the padding of each axis and the output size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolGeometry {
    pub input: Vec<usize>,
    pub output: Vec<usize>,
    pub pads: Pads,
}

/// Which windows a pooling accepts: only those with a real element, or any (average pooling
/// that counts padding; every window has a tap inside the padded input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowRule {
    RealElement,
    Any,
}

impl PoolParams {
    /// Stride = kernel, dilation 1, no padding, floor mode, padding counted by average pooling.
    pub fn new(kernel: &[usize]) -> Self {
        Self {
            kernel: kernel.to_vec(),
            stride: kernel.to_vec(),
            dilation: vec![1; kernel.len()],
            pads: Pads::none(kernel.len()),
            auto_pad: None,
            ceil_mode: false,
            count_include_pad: true,
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

    /// The same dilation along every dimension.
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = vec![d; self.kernel.len()];
        self
    }

    pub fn dilations(mut self, d: &[usize]) -> Self {
        self.dilation = d.to_vec();
        self
    }

    /// The same padding before and after every dimension.
    pub fn padding(mut self, p: usize) -> Self {
        self.pads = Pads::symmetric(&vec![p; self.kernel.len()]);
        self
    }

    /// Padding per dimension, the same before and after.
    pub fn paddings(mut self, p: &[usize]) -> Self {
        self.pads = Pads::symmetric(p);
        self
    }

    /// Padding before and after each dimension, possibly different.
    pub fn pads(mut self, pads: Pads) -> Self {
        self.pads = pads;
        self
    }

    /// ONNX's automatic padding (replaces explicit padding).
    pub fn auto_pad(mut self, mode: AutoPad) -> Self {
        self.auto_pad = Some(mode);
        self
    }

    pub fn ceil_mode(mut self, ceil: bool) -> Self {
        self.ceil_mode = ceil;
        self
    }

    pub fn count_include_pad(mut self, include: bool) -> Self {
        self.count_include_pad = include;
        self
    }

    /// Taps of a window along dimension `k` from first to last: `(kernel - 1) * dilation + 1`.
    fn span(&self, k: usize) -> usize {
        (self.kernel[k] - 1) * self.dilation[k] + 1
    }

    /// The output shape for input `shape`, or why the combination is invalid (windows must hold a
    /// real element, as max pooling needs).
    pub fn output_shape(&self, op: &str, shape: &Shape) -> Result<Shape> {
        let geometry = self.geometry(op, shape, WindowRule::RealElement)?;
        let mut out = shape.dims()[..2].to_vec();
        out.extend(geometry.output);
        Shape::new(&out)
    }

    /// The padding and output size for input `shape`, or why the combination is invalid.
    pub fn geometry(&self, op: &str, shape: &Shape, rule: WindowRule) -> Result<PoolGeometry> {
        let dims = self.kernel.len();
        if !(1..=3).contains(&dims) {
            return Err(Error::shape(
                op,
                format!("{dims} kernel dimensions given, 1, 2 or 3 are supported"),
            ));
        }
        if self.stride.len() != dims
            || self.dilation.len() != dims
            || self.pads.begin.len() != dims
            || self.pads.end.len() != dims
        {
            return Err(Error::shape(
                op,
                format!(
                    "kernel {:?}, stride {:?}, dilation {:?} and pads {:?} / {:?} must have the \
                     same length",
                    self.kernel, self.stride, self.dilation, self.pads.begin, self.pads.end
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
        if self.kernel.contains(&0) || self.stride.contains(&0) || self.dilation.contains(&0) {
            return Err(Error::shape(
                op,
                "kernel, stride and dilation must be at least 1",
            ));
        }
        let input = shape.dims()[2..].to_vec();
        let pads = match self.auto_pad {
            Some(mode) => Pads::auto(mode, &input, &self.kernel, &self.stride, &self.dilation)?,
            None => self.pads.clone(),
        };
        let mut output = Vec::with_capacity(dims);
        for (k, &size) in input.iter().enumerate() {
            let (stride, span) = (self.stride[k], self.span(k));
            let (begin, end) = (pads.begin[k], pads.end[k]);
            if size + begin + end < span {
                return Err(Error::shape(
                    op,
                    format!(
                        "the window spans {span} positions along spatial axis {k} (kernel {}, \
                         dilation {}), more than the padded input {size} + {begin} + {end}",
                        self.kernel[k], self.dilation[k]
                    ),
                ));
            }
            let reach = size + begin + end - span;
            let ceil = self.ceil_mode && self.auto_pad.is_none();
            let mut out = if ceil {
                reach.div_ceil(stride) + 1
            } else {
                reach / stride + 1
            };
            if ceil && (out - 1) * stride >= size + begin {
                out -= 1;
            }
            if rule == WindowRule::RealElement {
                self.check_windows(op, k, size, (begin, end), out)?;
            }
            output.push(out);
        }
        Ok(PoolGeometry {
            input,
            output,
            pads,
        })
    }

    /// Refuses a geometry with a window that has no tap on a real element along axis `k`.
    fn check_windows(
        &self,
        op: &str,
        k: usize,
        size: usize,
        pads: (usize, usize),
        out: usize,
    ) -> Result<()> {
        let (kernel, stride, dilation) = (self.kernel[k], self.stride[k], self.dilation[k]);
        let (begin, end) = pads;
        for o in 0..out {
            let start = (o * stride) as i64 - begin as i64;
            // The first tap at or after position 0.
            let first = if start >= 0 {
                0
            } else {
                (-start + dilation as i64 - 1) / dilation as i64
            };
            if first >= kernel as i64 || start + first * dilation as i64 >= size as i64 {
                return Err(Error::shape(
                    op,
                    format!(
                        "window {o} along spatial axis {k} (input {size}, kernel {kernel}, stride \
                         {stride}, dilation {dilation}, padding {begin} before and {end} after) \
                         lies wholly in the padding: the max (or average over real elements) of \
                         no element is undefined"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The rule average pooling applies to its windows.
    fn avg_rule(&self) -> WindowRule {
        if self.count_include_pad {
            WindowRule::Any
        } else {
            WindowRule::RealElement
        }
    }
}

shader_struct! {
    #[derive(Default)]
    struct Params {
        count: u32,
        chunks: u32,
        spatial: u32,
        scale: f32,
        count_pad: u32,
        whole_tensor: u32,
        unused0: u32,
        unused1: u32,
        in_size: [u32; 4],
        out_size: [u32; 4],
        kernel: [u32; 4],
        stride: [u32; 4],
        dilation: [u32; 4],
        pad_begin: [u32; 4],
        pad_end: [u32; 4],
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

/// Window parameters of `pool` resolved to `geometry` (count and chunks left for the caller).
fn geometry_params(pool: &PoolParams, geometry: &PoolGeometry) -> Params {
    Params {
        count_pad: pool.count_include_pad as u32,
        in_size: spatial_slots(&geometry.input, 1),
        out_size: spatial_slots(&geometry.output, 1),
        kernel: spatial_slots(&pool.kernel, 1),
        stride: spatial_slots(&pool.stride, 1),
        dilation: spatial_slots(&pool.dilation, 1),
        pad_begin: spatial_slots(&geometry.pads.begin, 0),
        pad_end: spatial_slots(&geometry.pads.end, 0),
        ..Default::default()
    }
}

/// Parameters of a windowed kernel whose invocations own CHUNK-wide pieces of the rows of
/// `walked` (the output for forward kernels, the input for backward ones).
fn window_params(pool: &PoolParams, geometry: &PoolGeometry, walked: &Shape) -> Params {
    let width = walked.dim(-1);
    let chunks = width.div_ceil(CHUNK);
    Params {
        count: (walked.numel() / width * chunks) as u32,
        chunks: chunks as u32,
        ..geometry_params(pool, geometry)
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

    fn rule(&self) -> WindowRule {
        match self.kind {
            Kind::Max => WindowRule::RealElement,
            Kind::Avg => self.params.avg_rule(),
        }
    }
}

/// Each spatial axis's window, with the padding resolved against `input`.
fn spatial_map(params: &PoolParams, input: &Shape, rule: WindowRule) -> Option<SpatialMap> {
    let geometry = params.geometry("pool", input, rule).ok()?;
    let windows = (0..params.kernel.len()).map(|d| AxisWindow {
        kernel: params.kernel[d],
        stride: params.stride[d],
        padding: geometry.pads.begin[d],
        dilation: params.dilation[d],
    });
    Some(SpatialMap::Window(windows.collect()))
}

/// The output shape of pooling `input` under `rule`.
fn pooled_shape(op: &str, params: &PoolParams, input: &Shape, rule: WindowRule) -> Result<Shape> {
    let geometry = params.geometry(op, input, rule)?;
    let mut out = input.dims()[..2].to_vec();
    out.extend(geometry.output);
    Shape::new(&out)
}

impl Op for Pool {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Max => "max_pool",
            Kind::Avg => "avg_pool",
        }
    }

    fn spatial_map(&self, inputs: &[&Shape]) -> Option<SpatialMap> {
        spatial_map(&self.params, inputs[0], self.rule())
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        pooled_shape(self.name(), &self.params, inputs[0], self.rule())
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let geometry = self
            .params
            .geometry(self.name(), &inputs[0].shape, self.rule())?;
        let params = Params {
            count: output.shape.numel() as u32,
            ..geometry_params(&self.params, &geometry)
        };
        Ok(vec![ctx.gpu.prepare(KernelCall {
            shader: &SHADER,
            entry: match self.kind {
                Kind::Max => "max_forward",
                Kind::Avg => "avg_forward",
            },
            constants: &kernel_constants(&params),
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
        let geometry = self.0.geometry(self.name(), x, WindowRule::RealElement)?;
        let mut params = window_params(&self.0, &geometry, dy);
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
        // ceil(span / stride); the last three slots are D, H, W as in the shader.
        let out = params.out_size;
        let step: Vec<u32> = (0..3)
            .map(|k| {
                let span = (params.kernel[k] - 1) * params.dilation[k] + 1;
                span.div_ceil(params.stride[k])
            })
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
                    dispatches.push(ctx.gpu.prepare(KernelCall {
                        shader: &SHADER,
                        entry: "max_scatter",
                        constants: &kernel_constants(&params),
                        params: bytes_of(&params),
                        reads: &[&inputs[0].buffer, &inputs[1].buffer],
                        writes: &[&output.buffer],
                        workgroups: workgroups_for(params.count as usize, WORKGROUP),
                    })?);
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
        let expected = pooled_shape(
            self.name(),
            &self.params,
            &self.input,
            self.params.avg_rule(),
        )?;
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
        let geometry = self
            .params
            .geometry(self.name(), &self.input, self.params.avg_rule())?;
        let params = window_params(&self.params, &geometry, &output.shape);
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

/// The window size as the pipeline constants KD, KH and KW (pool.wgsl unrolls the tap loops).
fn kernel_constants(params: &Params) -> [(&'static str, f64); 3] {
    [
        ("KD", params.kernel[0] as f64),
        ("KH", params.kernel[1] as f64),
        ("KW", params.kernel[2] as f64),
    ]
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
        let (entry, workgroups) = if params.spatial as usize <= SHORT_ROW {
            ("global_avg_forward_short", workgroups_for(rows, WORKGROUP))
        } else {
            ("global_avg_forward", rows as u32)
        };
        Ok(vec![ctx.gpu.dispatch(
            &SHADER,
            entry,
            bytes_of(&params),
            &[&inputs[0].buffer],
            &[&output.buffer],
            workgroups,
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

    /// Max pooling and its argmax (PyTorch's `return_indices`): (values, indices), the indices
    /// u32, flattened within each (n, c) plane of `x`.
    pub fn max_pool_with_indices(
        &mut self,
        x: NodeId,
        params: &PoolParams,
    ) -> Result<(NodeId, NodeId)> {
        let values = self.max_pool(x, params)?;
        let indices = self.max_pool_indices(x, params, IndexBase::Plane)?;
        Ok((values, indices))
    }

    /// [N, C, spatial...] -> [N, C].
    pub fn global_avg_pool(&mut self, x: NodeId) -> Result<NodeId> {
        self.apply(GlobalAvgPool, &[x])
    }
}
