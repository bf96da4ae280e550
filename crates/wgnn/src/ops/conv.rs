//! Convolution 1-D, 2-D and 3-D (NCW / NCHW / NCDHW inputs, OIW / OIHW / OIDHW weights, zero
//! padding, per-dim stride and dilation, optional bias): `shaders/conv.wgsl`.
//! All three ranks run the same kernels as 3-D with leading spatial dims of size 1.
//!
//! Backward: dx is `ConvBackwardInput` (a gather over the taps, i.e. a transposed convolution;
//! a GEMM, or for at most `FEW_CHANNELS` input channels a direct gather per input position),
//! dw is `ConvBackwardWeight` (a reduction over batch and output positions, split over K with a
//! deterministic second pass when the weight is small), dbias is `ConvBackwardBias`.
//!
//! Where the device has subgroups of at least 8 (`Gpu::subgroup_broadcast`), the forward pass,
//! dx and dw run `shaders/conv_subgroup.wgsl`'s kernels instead (GEMMs without workgroup memory,
//! rows of A shared by subgroup broadcasts: 3-4x faster on lavapipe); conv.wgsl's remain the
//! fallback.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::{
    bytes_of, wgsl_file, workgroups_for, Dispatch, Gpu, KernelCall, Shader, WORKGROUP_INDEX,
};
use crate::graph::{BackwardCtx, EncodeCtx, Graph, NodeId, Op};
use crate::ops::activation::{Activation, ActivationBackward};
use crate::ops::gemm;
use crate::tensor::{Shape, Tensor};

pub static SHADER: Shader = Shader {
    name: "conv",
    file: wgsl_file!("ops/conv.wgsl", [&WORKGROUP_INDEX, &gemm::TILED]),
    subgroups: false,
};

/// conv.wgsl followed by the GEMMs that share rows of A through subgroup broadcasts, for devices
/// with `Gpu::subgroup_broadcast`.
pub static SUBGROUP_SHADER: Shader = Shader {
    name: "conv_subgroup",
    file: wgsl_file!("ops/conv_subgroup.wgsl", [&SHADER.file, &gemm::SUBGROUP]),
    subgroups: true,
};

/// Columns of the GEMM per workgroup of the subgroup kernels (4 per invocation, 64 invocations).
const BROADCAST_COLUMNS: usize = 256;
/// backward_input_broadcast_vec4 takes tiles of 64 rows only where that leaves at least this
/// many workgroups: on a CPU driver a lone workgroup runs on one thread while the others idle
/// (SqueezeNet's 48-channel input gradients at 15 x 15, one tile of 64 rows or two of 32, ran
/// slower in one on two idle cores).
const MIN_WIDE_TILE_WORKGROUPS: usize = 2;

/// Row groups of 8 per workgroup of the subgroup kernels (ROW_GROUPS in conv_subgroup.wgsl):
/// 4 (32 rows) unless M is at most 16 or 8, so that few rows are wasted.
fn broadcast_row_groups(m: usize) -> usize {
    match m {
        0..=8 => 1,
        9..=16 => 2,
        _ => 4,
    }
}

/// The workgroup tile of the subgroup GEMM kernels for a GEMM of m rows.
fn broadcast_tile(m: usize) -> Tile {
    Tile {
        rows: 8 * broadcast_row_groups(m),
        cols: BROADCAST_COLUMNS,
    }
}

/// The tile of a `_vec4` subgroup kernel: 64 rows (ROW_BLOCKS = 2) where M is above 32 and
/// `wide` allows it, else `broadcast_tile`.
fn vec4_tile(m: usize, wide: bool) -> Tile {
    if m > 32 && wide {
        Tile {
            rows: 64,
            cols: BROADCAST_COLUMNS,
        }
    } else {
        broadcast_tile(m)
    }
}

/// A dispatch of a subgroup GEMM kernel of conv_subgroup.wgsl, for `params` made with `tile`
/// (`broadcast_tile`, or 64 rows for the `_vec4` kernels: ROW_BLOCKS = 2) and `splits`
/// slices of K.
// The geometry, kernel choice, tiling and buffers are all independent inputs of one dispatch.
#[allow(clippy::too_many_arguments)]
fn broadcast_gemm(
    gpu: &Gpu,
    geo: &Geometry,
    entry: &'static str,
    tile: Tile,
    params: &Params,
    splits: usize,
    relu: bool,
    reads: &[&wgpu::Buffer],
    output: &wgpu::Buffer,
) -> Result<Dispatch> {
    let gemm = [params.gemm_m, params.gemm_n, params.gemm_k].map(|v| v as usize);
    let mut constants = vec![("ROW_GROUPS", (tile.rows / 8).min(4) as f64)];
    if tile.rows > 32 {
        constants.push(("ROW_BLOCKS", (tile.rows / 32) as f64));
    }
    if entry.starts_with("forward_broadcast") {
        constants.push(("RELU", relu as u32 as f64));
    }
    if entry.starts_with("backward_input_broadcast") {
        let unit_stride = geo.stride == [1; 3];
        constants.push(("UNIT_STRIDE", unit_stride as u32 as f64));
    }
    gpu.prepare(KernelCall {
        shader: &SUBGROUP_SHADER,
        entry,
        constants: &constants,
        params: bytes_of(params),
        reads,
        writes: &[output],
        workgroups: (tile.workgroups(gemm) * splits) as u32,
    })
}

/// Reduction rows per slice (BK in conv.wgsl).
const TILE_K: usize = 16;
const REDUCE_WORKGROUP: usize = 256;
/// backward_weight splits K until about this many workgroups run...
const TARGET_WORKGROUPS: usize = 32;
/// dx of a convolution with at most this many input channels (an image's gradient) is gathered
/// by backward_input_few_channels, one input position per invocation, instead of a GEMM that
/// would fill at most this many of its 32 tile rows.
pub const FEW_CHANNELS: usize = 4;
/// Weights (vec4s over the input channels, one per output channel and tap) that
/// backward_input_few_channels stages at once (STAGE in conv.wgsl).
const FEW_CHANNELS_STAGE: usize = 1024;
/// Invocations per workgroup of every conv kernel (WG in conv.wgsl).
const WORKGROUP: usize = 64;
/// ...as long as each slice of K keeps at least this many terms.
const MIN_SPLIT_LEN: usize = 256;

/// The GEMM tile of one workgroup, rows x columns (BM x BN in conv.wgsl, which needs
/// rows * columns = 64 * 64): square by default; for GEMMs of at most 32 or 16 rows, 32 x 128 or
/// 16 x 256, so that fewer rows of each tile are wasted. 16 x 256 needs 17 KiB of workgroup
/// memory, more than WebGPU guarantees: it is used only where the device allows it (lavapipe
/// does; it ran SqueezeNet's fire2 and fire3 input gradients, 16 rows, 1.3x faster than 32 x 128).
#[derive(Clone, Copy, Debug)]
struct Tile {
    rows: usize,
    cols: usize,
}

impl Tile {
    fn for_rows(m: usize, gpu: &Gpu) -> Self {
        let narrow = Tile {
            rows: 16,
            cols: 256,
        };
        if m <= 16 && narrow.workgroup_bytes() <= gpu.limits.max_compute_workgroup_storage_size {
            narrow
        } else if m <= 32 {
            Tile {
                rows: 32,
                cols: 128,
            }
        } else {
            Tile { rows: 64, cols: 64 }
        }
    }

    /// The A and B slices staged in workgroup memory (tile_a and tile_b in conv.wgsl).
    fn workgroup_bytes(&self) -> u32 {
        (4 * TILE_K * (self.rows + self.cols)) as u32
    }

    fn constants(&self) -> [(&'static str, f64); 2] {
        [("BM", self.rows as f64), ("BN", self.cols as f64)]
    }

    fn workgroups(&self, [m, n, _]: [usize; 3]) -> usize {
        m.div_ceil(self.rows) * n.div_ceil(self.cols)
    }
}

/// Stride, zero padding and dilation, one entry per spatial dim (outermost first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvParams {
    pub stride: Vec<usize>,
    pub padding: Vec<usize>,
    pub dilation: Vec<usize>,
}

impl ConvParams {
    /// Stride 1, padding 0, dilation 1 for `spatial_dims` dims (1, 2 or 3).
    pub fn new(spatial_dims: usize) -> Self {
        Self {
            stride: vec![1; spatial_dims],
            padding: vec![0; spatial_dims],
            dilation: vec![1; spatial_dims],
        }
    }

    pub fn spatial_dims(&self) -> usize {
        self.stride.len()
    }

    /// The same stride on every spatial dim.
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = vec![s; self.spatial_dims()];
        self
    }

    /// The same padding on every spatial dim (both sides).
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = vec![p; self.spatial_dims()];
        self
    }

    /// The same dilation on every spatial dim.
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = vec![d; self.spatial_dims()];
        self
    }

    pub fn strides(mut self, s: &[usize]) -> Self {
        self.stride = s.to_vec();
        self
    }

    pub fn paddings(mut self, p: &[usize]) -> Self {
        self.padding = p.to_vec();
        self
    }

    pub fn dilations(mut self, d: &[usize]) -> Self {
        self.dilation = d.to_vec();
        self
    }
}

/// Mirrors `Params` in conv.wgsl: shapes lifted to 3 spatial dims, hyper-parameters, and the
/// GEMM that the kernel at hand computes.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    c: u32,
    o: u32,
    has_bias: u32,
    in_d: u32,
    in_h: u32,
    in_w: u32,
    in_spatial: u32,
    out_d: u32,
    out_h: u32,
    out_w: u32,
    out_spatial: u32,
    k_d: u32,
    k_h: u32,
    k_w: u32,
    k_vol: u32,
    stride_d: u32,
    stride_h: u32,
    stride_w: u32,
    splits: u32,
    pad_d: u32,
    pad_h: u32,
    pad_w: u32,
    split_len: u32,
    dil_d: u32,
    dil_h: u32,
    dil_w: u32,
    tiles_n: u32,
    gemm_m: u32,
    gemm_n: u32,
    gemm_k: u32,
    o_chunk: u32,
}

/// A convolution's sizes with every rank lifted to three spatial dims.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    spatial_dims: usize,
    n: usize,
    c: usize,
    o: usize,
    input: [usize; 3],
    kernel: [usize; 3],
    output: [usize; 3],
    stride: [usize; 3],
    padding: [usize; 3],
    dilation: [usize; 3],
}

fn lift3(values: &[usize], fill: usize) -> [usize; 3] {
    let mut out = [fill; 3];
    out[3 - values.len()..].copy_from_slice(values);
    out
}

impl Geometry {
    /// Checks that x, w and the parameters fit together and computes the output size
    /// floor((in + 2 pad - dil (k - 1) - 1) / stride) + 1 per dim.
    fn new(op: &str, x: &Shape, w: &Shape, p: &ConvParams) -> Result<Self> {
        let rank = x.rank();
        if !(3..=5).contains(&rank) {
            return Err(Error::shape(
                op,
                format!("input {x} must be NCW, NCHW or NCDHW (rank 3 to 5)"),
            ));
        }
        let spatial_dims = rank - 2;
        if w.rank() != rank {
            return Err(Error::shape(
                op,
                format!("weight {w} must have the input's rank {rank} (O, C, kernel...)"),
            ));
        }
        for (what, values) in [
            ("stride", &p.stride),
            ("padding", &p.padding),
            ("dilation", &p.dilation),
        ] {
            if values.len() != spatial_dims {
                return Err(Error::shape(
                    op,
                    format!(
                        "{what} {values:?} has {} entries for {spatial_dims} spatial dims",
                        values.len()
                    ),
                ));
            }
        }
        if p.stride.contains(&0) || p.dilation.contains(&0) {
            return Err(Error::shape(
                op,
                format!(
                    "stride {:?} and dilation {:?} must be at least 1",
                    p.stride, p.dilation
                ),
            ));
        }
        if w.dims()[1] != x.dims()[1] {
            return Err(Error::shape(
                op,
                format!(
                    "input {x} has {} channels but weight {w} expects {}",
                    x.dims()[1],
                    w.dims()[1]
                ),
            ));
        }
        let input = lift3(&x.dims()[2..], 1);
        let kernel = lift3(&w.dims()[2..], 1);
        let stride = lift3(&p.stride, 1);
        let padding = lift3(&p.padding, 0);
        let dilation = lift3(&p.dilation, 1);
        let mut output = [0; 3];
        for d in 0..3 {
            let span = dilation[d] * (kernel[d] - 1) + 1;
            let padded = input[d] + 2 * padding[d];
            if padded < span {
                return Err(Error::shape(
                    op,
                    format!(
                        "kernel {w} (dilation {:?}) is larger than input {x} padded by {:?}: \
                         the output would be empty",
                        p.dilation, p.padding
                    ),
                ));
            }
            output[d] = (padded - span) / stride[d] + 1;
        }
        let geometry = Self {
            spatial_dims,
            n: x.dims()[0],
            c: x.dims()[1],
            o: w.dims()[0],
            input,
            kernel,
            output,
            stride,
            padding,
            dilation,
        };
        // Indices are 32-bit in the kernels, and backward_input divides coordinates by the
        // stride in f32, exact below 2^22.
        let too_large = [x.numel(), w.numel(), geometry.output_shape().numel()]
            .iter()
            .any(|&v| v > i32::MAX as usize)
            || (0..3).any(|d| input[d] + 2 * padding[d] >= 1 << 22);
        if too_large {
            return Err(Error::shape(
                op,
                format!(
                    "input {x} and weight {w} exceed the kernels' limits: 2^31 elements per \
                     tensor, 2^22 per padded spatial dim"
                ),
            ));
        }
        Ok(geometry)
    }

    fn taps(&self) -> usize {
        self.kernel.iter().product()
    }

    fn input_spatial(&self) -> usize {
        self.input.iter().product()
    }

    fn output_spatial(&self) -> usize {
        self.output.iter().product()
    }

    fn output_shape(&self) -> Shape {
        let mut dims = vec![self.n, self.o];
        dims.extend_from_slice(&self.output[3 - self.spatial_dims..]);
        Shape::new(&dims).expect("conv output dims are positive")
    }

    fn check_output(&self, op: &str, dy: &Shape) -> Result<()> {
        let expected = self.output_shape();
        if dy != &expected {
            return Err(Error::shape(
                op,
                format!("output gradient {dy} does not match the convolution's output {expected}"),
            ));
        }
        Ok(())
    }

    /// 2 * N * O * output positions * C * taps: one multiply and one add per tap.
    fn flops(&self) -> u64 {
        2 * (self.n * self.o * self.output_spatial()) as u64 * (self.c * self.taps()) as u64
    }

    /// The uniform parameters for a GEMM of m x n x k in tiles of `tile`, split into `splits`
    /// slices of K.
    fn params(&self, [m, n, k]: [usize; 3], tile: Tile, splits: usize, split_len: usize) -> Params {
        let u = |v: usize| v as u32;
        Params {
            n: u(self.n),
            c: u(self.c),
            o: u(self.o),
            has_bias: 0,
            in_d: u(self.input[0]),
            in_h: u(self.input[1]),
            in_w: u(self.input[2]),
            in_spatial: u(self.input_spatial()),
            out_d: u(self.output[0]),
            out_h: u(self.output[1]),
            out_w: u(self.output[2]),
            out_spatial: u(self.output_spatial()),
            k_d: u(self.kernel[0]),
            k_h: u(self.kernel[1]),
            k_w: u(self.kernel[2]),
            k_vol: u(self.taps()),
            stride_d: u(self.stride[0]),
            stride_h: u(self.stride[1]),
            stride_w: u(self.stride[2]),
            splits: u(splits),
            pad_d: u(self.padding[0]),
            pad_h: u(self.padding[1]),
            pad_w: u(self.padding[2]),
            split_len: u(split_len),
            dil_d: u(self.dilation[0]),
            dil_h: u(self.dilation[1]),
            dil_w: u(self.dilation[2]),
            tiles_n: u(n.div_ceil(tile.cols)),
            gemm_m: u(m),
            gemm_n: u(n),
            gemm_k: u(k),
            o_chunk: 0,
        }
    }
}

fn check_inputs(op: &str, inputs: &[&Shape], counts: &[usize]) -> Result<()> {
    if !counts.contains(&inputs.len()) {
        return Err(Error::shape(
            op,
            format!("takes {counts:?} inputs, {} given", inputs.len()),
        ));
    }
    Ok(())
}

/// y = conv(x, w) + bias; inputs (x, w) or (x, w, bias of shape [O]). With `relu`,
/// y = max(conv(x, w) + bias, 0): the ReLU that follows most convolutions, applied as the
/// kernel stores y instead of by another pass over it.
#[derive(Debug)]
pub struct ConvForward {
    pub params: ConvParams,
    pub relu: bool,
}

impl ConvForward {
    fn geometry(&self, inputs: &[&Shape]) -> Result<Geometry> {
        check_inputs(self.name(), inputs, &[2, 3])?;
        let geometry = Geometry::new(self.name(), inputs[0], inputs[1], &self.params)?;
        if let Some(bias) = inputs.get(2) {
            if bias.dims() != [geometry.o] {
                return Err(Error::shape(
                    self.name(),
                    format!("bias {bias} must have shape [{}]", geometry.o),
                ));
            }
        }
        Ok(geometry)
    }
}

impl Op for ConvForward {
    fn name(&self) -> &'static str {
        match self.params.spatial_dims() {
            1 => "conv1d",
            2 => "conv2d",
            _ => "conv3d",
        }
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        Ok(self.geometry(inputs)?.output_shape())
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let shapes: Vec<&Shape> = inputs.iter().map(|t| &t.shape).collect();
        let geo = self.geometry(&shapes)?;
        let gemm = [geo.o, geo.n * geo.output_spatial(), geo.c * geo.taps()];
        // Without a bias the weight is bound in its place and never read.
        let bias = inputs.get(2).map_or(&inputs[1].buffer, |b| &b.buffer);
        if ctx.gpu.subgroup_broadcast {
            // Weights read as vec4s where K is a multiple of 4 (see conv_subgroup.wgsl), with
            // tiles of 64 rows when there are more than 32.
            let (entry, tile) = if gemm[2] % 4 == 0 {
                ("forward_broadcast_vec4", vec4_tile(gemm[0], true))
            } else {
                ("forward_broadcast", broadcast_tile(gemm[0]))
            };
            let mut params = geo.params(gemm, tile, 1, gemm[2]);
            params.has_bias = (inputs.len() == 3) as u32;
            return Ok(vec![broadcast_gemm(
                ctx.gpu,
                &geo,
                entry,
                tile,
                &params,
                1,
                self.relu,
                &[&inputs[0].buffer, &inputs[1].buffer, bias],
                &output.buffer,
            )?]);
        }
        let tile = Tile::for_rows(gemm[0], ctx.gpu);
        let mut params = geo.params(gemm, tile, 1, gemm[2]);
        params.has_bias = (inputs.len() == 3) as u32;
        let [bm, bn] = tile.constants();
        Ok(vec![ctx.gpu.prepare(KernelCall {
            shader: &SHADER,
            entry: "forward",
            constants: &[bm, bn, ("RELU", self.relu as u32 as f64)],
            params: bytes_of(&params),
            reads: &[&inputs[0].buffer, &inputs[1].buffer, bias],
            writes: &[&output.buffer],
            workgroups: tile.workgroups(gemm) as u32,
        })?])
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        let (x, w) = (ctx.inputs[0], ctx.inputs[1]);
        // The ReLU's gradient masks by y > 0, which is conv + bias > 0.
        let grad = if self.relu {
            g.apply(
                ActivationBackward(Activation::Relu),
                &[ctx.output, ctx.grad],
            )?
        } else {
            ctx.grad
        };
        let mut grads = vec![None; ctx.inputs.len()];
        if ctx.needs_grad[0] {
            let op = ConvBackwardInput {
                params: self.params.clone(),
                input_shape: g.shape(x).clone(),
            };
            grads[0] = Some(g.apply(op, &[grad, w])?);
        }
        if ctx.needs_grad[1] {
            let op = ConvBackwardWeight {
                params: self.params.clone(),
                weight_shape: g.shape(w).clone(),
            };
            grads[1] = Some(g.apply(op, &[x, grad])?);
        }
        if ctx.inputs.len() == 3 && ctx.needs_grad[2] {
            grads[2] = Some(g.apply(ConvBackwardBias, &[grad])?);
        }
        Ok(grads)
    }

    fn flops(&self, inputs: &[&Shape], _: &Shape) -> u64 {
        self.geometry(inputs).map_or(0, |g| g.flops())
    }
}

/// dx from (dy, w): the transposed convolution. `input_shape` is x's shape, which dy alone does
/// not determine when the stride does not divide the input.
#[derive(Debug)]
pub struct ConvBackwardInput {
    pub params: ConvParams,
    pub input_shape: Shape,
}

impl ConvBackwardInput {
    fn geometry(&self, inputs: &[&Shape]) -> Result<Geometry> {
        check_inputs(self.name(), inputs, &[2])?;
        let geo = Geometry::new(self.name(), &self.input_shape, inputs[1], &self.params)?;
        geo.check_output(self.name(), inputs[0])?;
        Ok(geo)
    }
}

impl ConvBackwardInput {
    /// One invocation per input position (enumerated by stride phase, see conv.wgsl), all
    /// channels at once, weights staged in chunks of output channels; on subgroups, weights
    /// copied as vec4s over the channels and broadcast from lanes (see conv_subgroup.wgsl).
    fn encode_few_channels(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
        geo: &Geometry,
    ) -> Result<Vec<Dispatch>> {
        let gemm = [geo.c, geo.n * geo.input_spatial(), geo.o * geo.taps()];
        let mut params = geo.params(gemm, Tile::for_rows(gemm[0], ctx.gpu), 1, gemm[2]);
        params.o_chunk = (FEW_CHANNELS_STAGE / geo.taps()).min(geo.o) as u32;
        // The stride's phases, and per phase its blocks of positions (4 along W per invocation).
        let phases: usize = geo.stride.iter().product();
        let blocks: usize = (0..3)
            .map(|d| {
                let per_phase = geo.input[d].div_ceil(geo.stride[d]);
                if d == 2 {
                    per_phase.div_ceil(4)
                } else {
                    per_phase
                }
            })
            .product();
        // The broadcasting kernel gives each workgroup blocks of one phase, the phases of a
        // region in consecutive workgroups, and reads w copied as vec4s over the channels, [taps,
        // O] (see conv_subgroup.wgsl).
        if ctx.gpu.subgroup_broadcast {
            let weights = geo.o * geo.taps();
            let (w_channels, transpose) = relaid_weight(
                ctx,
                "transpose_few_channel_weight",
                &params,
                inputs[1],
                16 * weights as u64,
                weights,
            )?;
            let gather = ctx.gpu.dispatch(
                &SUBGROUP_SHADER,
                "backward_input_few_channels_broadcast",
                bytes_of(&params),
                &[&inputs[0].buffer, &w_channels],
                &[&output.buffer],
                workgroups_for(
                    geo.n * phases * blocks.div_ceil(WORKGROUP) * WORKGROUP,
                    WORKGROUP,
                ),
            )?;
            return Ok(vec![transpose, gather]);
        }
        Ok(vec![ctx.gpu.dispatch(
            &SHADER,
            "backward_input_few_channels",
            bytes_of(&params),
            &[&inputs[0].buffer, &inputs[1].buffer],
            &[&output.buffer],
            workgroups_for(geo.n * phases * blocks, WORKGROUP),
        )?])
    }
}

/// A copy of the weights `w` laid out anew by conv_subgroup.wgsl's `entry` (`invocations` of
/// it) into a scratch buffer of `bytes`, made on every run since training changes the weights:
/// the buffer and the dispatch that fills it.
fn relaid_weight(
    ctx: &mut EncodeCtx<'_>,
    entry: &'static str,
    params: &Params,
    w: &Tensor,
    bytes: u64,
    invocations: usize,
) -> Result<(Arc<wgpu::Buffer>, Dispatch)> {
    let copy = ctx.scratch(&format!("conv_backward_input weight ({entry})"), bytes)?;
    let dispatch = ctx.gpu.dispatch(
        &SUBGROUP_SHADER,
        entry,
        bytes_of(params),
        &[&w.buffer],
        &[&copy],
        workgroups_for(invocations, WORKGROUP),
    )?;
    Ok((copy, dispatch))
}

impl ConvBackwardInput {
    /// For O a multiple of 4 on subgroups: w copied transposed to scratch ([C * taps, O]), then
    /// backward_input_broadcast_vec4 reads it as vec4s (see conv_subgroup.wgsl), in tiles of 64
    /// rows when there are more than 32 and that leaves `MIN_WIDE_TILE_WORKGROUPS`.
    fn encode_transposed_weight(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
        geo: &Geometry,
    ) -> Result<Vec<Dispatch>> {
        let gemm = [geo.c, geo.n * geo.input_spatial(), geo.o * geo.taps()];
        let wide_tiles = gemm[0].div_ceil(64) * gemm[1].div_ceil(BROADCAST_COLUMNS);
        let tile = vec4_tile(gemm[0], wide_tiles >= MIN_WIDE_TILE_WORKGROUPS);
        let params = geo.params(gemm, tile, 1, gemm[2]);
        let weights = geo.o * geo.c * geo.taps();
        let (transposed, transpose) = relaid_weight(
            ctx,
            "transpose_weight",
            &params,
            inputs[1],
            4 * weights as u64,
            weights / 4,
        )?;
        let gemm_pass = broadcast_gemm(
            ctx.gpu,
            geo,
            "backward_input_broadcast_vec4",
            tile,
            &params,
            1,
            false,
            &[&inputs[0].buffer, &transposed],
            &output.buffer,
        )?;
        Ok(vec![transpose, gemm_pass])
    }
}

impl Op for ConvBackwardInput {
    fn name(&self) -> &'static str {
        "conv_backward_input"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        self.geometry(inputs)?;
        Ok(self.input_shape.clone())
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let shapes: Vec<&Shape> = inputs.iter().map(|t| &t.shape).collect();
        let geo = self.geometry(&shapes)?;
        if geo.c <= FEW_CHANNELS && geo.taps() <= FEW_CHANNELS_STAGE {
            return self.encode_few_channels(ctx, inputs, output, &geo);
        }
        let gemm = [geo.c, geo.n * geo.input_spatial(), geo.o * geo.taps()];
        if ctx.gpu.subgroup_broadcast && geo.o % 4 == 0 {
            return self.encode_transposed_weight(ctx, inputs, output, &geo);
        }
        if ctx.gpu.subgroup_broadcast {
            let tile = broadcast_tile(gemm[0]);
            let params = geo.params(gemm, tile, 1, gemm[2]);
            return Ok(vec![broadcast_gemm(
                ctx.gpu,
                &geo,
                "backward_input_broadcast",
                tile,
                &params,
                1,
                false,
                &[&inputs[0].buffer, &inputs[1].buffer],
                &output.buffer,
            )?]);
        }
        let tile = Tile::for_rows(gemm[0], ctx.gpu);
        let params = geo.params(gemm, tile, 1, gemm[2]);
        Ok(vec![ctx.gpu.prepare(KernelCall {
            shader: &SHADER,
            entry: "backward_input",
            constants: &tile.constants(),
            params: bytes_of(&params),
            reads: &[&inputs[0].buffer, &inputs[1].buffer],
            writes: &[&output.buffer],
            workgroups: tile.workgroups(gemm) as u32,
        })?])
    }

    fn flops(&self, inputs: &[&Shape], _: &Shape) -> u64 {
        self.geometry(inputs).map_or(0, |g| g.flops())
    }
}

/// dw from (x, dy). `weight_shape` gives the kernel size.
#[derive(Debug)]
pub struct ConvBackwardWeight {
    pub params: ConvParams,
    pub weight_shape: Shape,
}

impl ConvBackwardWeight {
    fn geometry(&self, inputs: &[&Shape]) -> Result<Geometry> {
        check_inputs(self.name(), inputs, &[2])?;
        let geo = Geometry::new(self.name(), inputs[0], &self.weight_shape, &self.params)?;
        geo.check_output(self.name(), inputs[1])?;
        Ok(geo)
    }
}

/// How backward_weight splits its reduction of length k: (slices, length of each, a multiple of
/// the tile's K). Depends only on the shapes, so results are the same on every run.
fn weight_splits(gemm: [usize; 3], tile: Tile) -> (usize, usize) {
    let k = gemm[2];
    let tiles = tile.workgroups(gemm);
    let wanted = TARGET_WORKGROUPS.div_ceil(tiles);
    let splits = wanted.min(k / MIN_SPLIT_LEN).max(1);
    let split_len = k.div_ceil(splits).next_multiple_of(TILE_K);
    (k.div_ceil(split_len), split_len)
}

impl Op for ConvBackwardWeight {
    fn name(&self) -> &'static str {
        "conv_backward_weight"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        self.geometry(inputs)?;
        Ok(self.weight_shape.clone())
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let shapes: Vec<&Shape> = inputs.iter().map(|t| &t.shape).collect();
        let geo = self.geometry(&shapes)?;
        let gemm = [geo.o, geo.c * geo.taps(), geo.n * geo.output_spatial()];
        let broadcast = ctx.gpu.subgroup_broadcast;
        // dy read as vec4s where 4 consecutive positions are aligned (see conv_subgroup.wgsl),
        // with tiles of 64 rows when there are more than 32.
        let dy_vec4 = geo.output_spatial() % 4 == 0;
        let tile = if broadcast {
            vec4_tile(gemm[0], dy_vec4)
        } else {
            Tile::for_rows(gemm[0], ctx.gpu)
        };
        let (splits, split_len) = weight_splits(gemm, tile);
        let params = geo.params(gemm, tile, splits, split_len);
        // With several slices, each writes its partial sums to scratch and a second pass adds
        // them in slice order.
        let partial = if splits > 1 {
            Some(ctx.scratch(
                "conv_backward_weight partial sums",
                (4 * splits * gemm[0] * gemm[1]) as u64,
            )?)
        } else {
            None
        };
        let target = partial.as_deref().unwrap_or(&output.buffer);
        let reads = [&*inputs[0].buffer, &*inputs[1].buffer];
        let gemm_pass = if broadcast {
            let entry = if dy_vec4 {
                "backward_weight_broadcast_vec4"
            } else {
                "backward_weight_broadcast"
            };
            broadcast_gemm(
                ctx.gpu, &geo, entry, tile, &params, splits, false, &reads, target,
            )?
        } else {
            ctx.gpu.prepare(KernelCall {
                shader: &SHADER,
                entry: "backward_weight",
                constants: &tile.constants(),
                params: bytes_of(&params),
                reads: &reads,
                writes: &[target],
                workgroups: (tile.workgroups(gemm) * splits) as u32,
            })?
        };
        let mut dispatches = vec![gemm_pass];
        if let Some(partial) = &partial {
            dispatches.push(ctx.gpu.dispatch(
                &SHADER,
                "weight_reduce",
                bytes_of(&params),
                &[partial],
                &[&output.buffer],
                workgroups_for(gemm[0] * gemm[1], REDUCE_WORKGROUP),
            )?);
        }
        Ok(dispatches)
    }

    fn flops(&self, inputs: &[&Shape], _: &Shape) -> u64 {
        self.geometry(inputs).map_or(0, |g| g.flops())
    }
}

/// dbias from dy [N, O, ...]: dy summed over the batch and every output position.
#[derive(Debug)]
pub struct ConvBackwardBias;

impl Op for ConvBackwardBias {
    fn name(&self) -> &'static str {
        "conv_backward_bias"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        check_inputs(self.name(), inputs, &[1])?;
        if inputs[0].rank() < 3 {
            return Err(Error::shape(
                self.name(),
                format!("output gradient {} must be [N, O, spatial...]", inputs[0]),
            ));
        }
        Shape::new(&[inputs[0].dims()[1]])
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let dims = inputs[0].shape.dims();
        let params = Params {
            n: dims[0] as u32,
            o: dims[1] as u32,
            out_spatial: dims[2..].iter().product::<usize>() as u32,
            ..Default::default()
        };
        Ok(vec![ctx.gpu.dispatch(
            &SHADER,
            "bias_grad",
            bytes_of(&params),
            &[&inputs[0].buffer],
            &[&output.buffer],
            dims[1] as u32,
        )?])
    }

    fn flops(&self, inputs: &[&Shape], _: &Shape) -> u64 {
        inputs[0].numel() as u64
    }
}

/// The output shape of `conv(x, w)` with these parameters, or the error `Graph::conv` would give.
pub fn conv_output_shape(x: &Shape, w: &Shape, p: &ConvParams) -> Result<Shape> {
    ConvForward {
        params: p.clone(),
        relu: false,
    }
    .output_shape(&[x, w])
}

impl Graph {
    /// Convolution of x [N, C, spatial...] with w [O, C, kernel...] (1, 2 or 3 spatial dims),
    /// plus bias [O] when given.
    pub fn conv(
        &mut self,
        x: NodeId,
        w: NodeId,
        bias: Option<NodeId>,
        p: &ConvParams,
    ) -> Result<NodeId> {
        self.conv_with(x, w, bias, p, false)
    }

    /// `relu(conv(x, w, bias))` as one node: the kernel applies the ReLU as it stores.
    pub fn conv_relu(
        &mut self,
        x: NodeId,
        w: NodeId,
        bias: Option<NodeId>,
        p: &ConvParams,
    ) -> Result<NodeId> {
        self.conv_with(x, w, bias, p, true)
    }

    fn conv_with(
        &mut self,
        x: NodeId,
        w: NodeId,
        bias: Option<NodeId>,
        p: &ConvParams,
        relu: bool,
    ) -> Result<NodeId> {
        let op = ConvForward {
            params: p.clone(),
            relu,
        };
        match bias {
            Some(b) => self.apply(op, &[x, w, b]),
            None => self.apply(op, &[x, w]),
        }
    }
}
