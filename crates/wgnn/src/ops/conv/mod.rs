//! Convolution 1-D, 2-D and 3-D (NCW / NCHW / NCDHW inputs, OIW / OIHW / OIDHW weights, zero
//! padding before and after each dim of any size or ONNX's auto padding, per-dim stride and
//! dilation, channel groups, optional bias), as implicit GEMMs (`common.wgsl`). All three ranks
//! run the same kernels as 3-D with leading spatial dims of size 1. The transposed convolution
//! (`transpose`) runs the same kernels with the roles swapped.
//!
//! Backward: dx is `ConvBackwardInput` (a gather over the taps, i.e. a transposed convolution;
//! a GEMM, or for at most `FEW_CHANNELS` input channels a direct gather per input position),
//! dw is `ConvBackwardWeight` (a reduction over batch and output positions, split over K with a
//! deterministic second pass when the weight is small; for at most `FEW_CHANNELS` input
//! channels direct sums in `grouped`, whose GEMM would be at most 36 columns wide in tiles of
//! 128 to 256), dbias is `ConvBackwardBias`.
//!
//! The GEMM kernels come in two designs (`GemmVariant`), one file each: `tiled` (tiles staged in
//! workgroup memory, every device) and `subgroup` (rows of A shared by subgroup broadcasts, no
//! workgroup memory: 3-4x faster on lavapipe; devices with `Gpu::subgroup_broadcast`). They
//! take ungrouped convolutions; grouped ones (groups > 1, depthwise among them) take `grouped`'s
//! direct loops on every device, whose work is exactly the definition's where a group's GEMM
//! would fill a few rows of each tile. `Graph::conv` (and `Graph::conv_transpose`) splits a
//! grouped convolution of at least 8 channels per group into one ungrouped convolution per
//! group instead (`gemm_per_group`), whose GEMMs fill their tiles. This file holds what the designs share: shapes, the
//! uniform parameters, the split of the weight gradient, the backward rules, and one dispatcher
//! per kernel role that picks the design. `reduce.wgsl`'s passes (the split weight gradient's
//! sum, the bias gradient) serve all.

pub(crate) mod grouped;
pub(crate) mod subgroup;
pub(crate) mod tiled;
mod transpose;

pub use transpose::{
    conv_transpose_output_shape, ConvTranspose, ConvTransposeBackwardInput,
    ConvTransposeBackwardWeight, ConvTransposeParams,
};

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::{
    bytes_of, shader_struct, wgsl_file, workgroups_for, Dispatch, Shader, WgslFile, WORKGROUP_INDEX,
};
use crate::graph::{AxisWindow, BackwardCtx, EncodeCtx, Graph, NodeId, Op, SpatialMap};
use crate::ops::activation::{Activation, ActivationBackward};
use crate::ops::gemm::{self, GemmVariant};
use crate::ops::padding::{AutoPad, Pads};
use crate::tensor::{Shape, Tensor};

/// Params, bindings, index arithmetic, loads and stores that both designs' kernels use.
static COMMON: WgslFile = wgsl_file!("ops/conv/common.wgsl", [&gemm::BLOCK4]);

/// `weight_reduce` (the sum of a split weight gradient's slices) and `bias_grad`.
pub(crate) static REDUCE_SHADER: Shader = Shader {
    name: "conv_reduce",
    file: wgsl_file!("ops/conv/reduce.wgsl", [&WORKGROUP_INDEX, &COMMON]),
    subgroups: false,
    structs: &[("Params", Params::LAYOUT)],
};

/// Reduction rows per slice of the tiled kernels (BK): the weight gradient's slices of K are
/// multiples of it.
const TILE_K: usize = 16;
const REDUCE_WORKGROUP: usize = 256;
/// backward_weight splits K until about this many workgroups run...
const TARGET_WORKGROUPS: usize = 32;
/// ...as long as each slice of K keeps at least this many terms.
const MIN_SPLIT_LEN: usize = 256;
/// dx of a convolution with at most this many input channels (an image's gradient) is gathered
/// by backward_input_few_channels, one input position per invocation, instead of a GEMM that
/// would fill at most this many of its 32 tile rows.
pub const FEW_CHANNELS: usize = 4;
/// Weights (vec4s over the input channels, one per output channel and tap) that the tiled
/// backward_input_few_channels stages at once (STAGE in tiled.wgsl): kernels of more taps take
/// the GEMM.
const FEW_CHANNELS_STAGE: usize = 1024;
/// Invocations per workgroup of the GEMM and gather kernels (WG in common.wgsl).
const WORKGROUP: usize = 64;

/// The output tile of one workgroup of a GEMM kernel, rows x columns.
#[derive(Clone, Copy, Debug)]
struct Tile {
    rows: usize,
    cols: usize,
}

impl Tile {
    fn workgroups(&self, [m, n, _]: [usize; 3]) -> usize {
        m.div_ceil(self.rows) * n.div_ceil(self.cols)
    }
}

/// Stride, zero padding, dilation and channel groups of a convolution, per spatial dim
/// (outermost first) where they vary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvParams {
    pub stride: Vec<usize>,
    /// Zeros before and after each spatial dim, any amount (more than the kernel reaches too:
    /// those output positions see only padding). Ignored where `auto_pad` is set.
    pub padding: Pads,
    pub dilation: Vec<usize>,
    /// ONNX's auto_pad: the padding computed from the input size instead of `padding`.
    pub auto_pad: Option<AutoPad>,
    /// Channel groups: C and O are split into `groups` equal parts and output channel o reads
    /// only the input channels of its part, so the weight is [O, C / groups, kernel...].
    /// `groups` = C is a depthwise convolution.
    pub groups: usize,
}

impl ConvParams {
    /// Stride 1, padding 0, dilation 1, one group, for `spatial_dims` dims (1, 2 or 3).
    pub fn new(spatial_dims: usize) -> Self {
        Self {
            stride: vec![1; spatial_dims],
            padding: Pads::none(spatial_dims),
            dilation: vec![1; spatial_dims],
            auto_pad: None,
            groups: 1,
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
        self.padding = Pads::symmetric(&vec![p; self.spatial_dims()]);
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

    /// Padding per spatial dim, the same on both sides.
    pub fn paddings(mut self, p: &[usize]) -> Self {
        self.padding = Pads::symmetric(p);
        self
    }

    /// Padding before and after each spatial dim, which may differ (ONNX's pads).
    pub fn pads(mut self, pads: Pads) -> Self {
        self.padding = pads;
        self
    }

    /// Padding computed from the input size by ONNX's rule for `mode` (replaces `padding`).
    pub fn auto_pad(mut self, mode: AutoPad) -> Self {
        self.auto_pad = Some(mode);
        self
    }

    pub fn dilations(mut self, d: &[usize]) -> Self {
        self.dilation = d.to_vec();
        self
    }

    /// Channel groups (`groups` = C: depthwise).
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }

    /// The padding of an input of spatial size `input` under a kernel of spatial size `kernel`:
    /// `padding`, or `auto_pad`'s.
    pub fn resolved_padding(&self, input: &[usize], kernel: &[usize]) -> Result<Pads> {
        match self.auto_pad {
            Some(mode) => Pads::auto(mode, input, kernel, &self.stride, &self.dilation),
            None => Ok(self.padding.clone()),
        }
    }
}

shader_struct! {
    /// Mirrors `Params` in common.wgsl: shapes lifted to 3 spatial dims, hyper-parameters, and the
    /// GEMM that the kernel at hand computes.
    #[derive(Default)]
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
        groups: u32,
        c_group: u32,
        o_group: u32,
        k_group: u32,
    }
}

/// A convolution's sizes with every rank lifted to three spatial dims. A transposed
/// convolution is described by the convolution whose adjoint it is (`transpose::geometry`).
#[derive(Clone, Copy, Debug)]
struct Geometry {
    spatial_dims: usize,
    n: usize,
    c: usize,
    o: usize,
    groups: usize,
    input: [usize; 3],
    kernel: [usize; 3],
    output: [usize; 3],
    stride: [usize; 3],
    /// Zeros before each dim: the kernels' coordinates are shifted by it.
    pad_begin: [usize; 3],
    /// Zeros after each dim: only the output size depends on it.
    pad_end: [usize; 3],
    dilation: [usize; 3],
}

fn lift3(values: &[usize], fill: usize) -> [usize; 3] {
    let mut out = [fill; 3];
    out[3 - values.len()..].copy_from_slice(values);
    out
}

/// Checks that x and w are NCW, NCHW or NCDHW of the same rank; returns the spatial dims.
fn check_ranks(op: &str, x: &Shape, w: &Shape, weight_layout: &str) -> Result<usize> {
    let rank = x.rank();
    if !(3..=5).contains(&rank) {
        return Err(Error::shape(
            op,
            format!("input {x} must be NCW, NCHW or NCDHW (rank 3 to 5)"),
        ));
    }
    if w.rank() != rank {
        return Err(Error::shape(
            op,
            format!("weight {w} must have the input's rank {rank} ({weight_layout})"),
        ));
    }
    Ok(rank - 2)
}

/// Checks that every per-dim parameter has one entry per spatial dim and that stride,
/// dilation and groups are at least 1.
fn check_params(op: &str, spatial_dims: usize, p: &ConvParams) -> Result<()> {
    for (what, values) in [
        ("stride", &p.stride),
        ("padding (begin)", &p.padding.begin),
        ("padding (end)", &p.padding.end),
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
    if p.stride.contains(&0) || p.dilation.contains(&0) || p.groups == 0 {
        return Err(Error::shape(
            op,
            format!(
                "stride {:?}, dilation {:?} and groups {} must be at least 1",
                p.stride, p.dilation, p.groups
            ),
        ));
    }
    Ok(())
}

/// Checks that `groups` divides both channel counts.
fn check_groups(op: &str, groups: usize, c: usize, o: usize) -> Result<()> {
    if !c.is_multiple_of(groups) || !o.is_multiple_of(groups) {
        return Err(Error::shape(
            op,
            format!("{c} input and {o} output channels must both be divisible by groups {groups}"),
        ));
    }
    Ok(())
}

impl Geometry {
    /// Checks that x, w and the parameters fit together and computes the output size
    /// floor((in + pad_begin + pad_end - dil (k - 1) - 1) / stride) + 1 per dim.
    fn new(op: &str, x: &Shape, w: &Shape, p: &ConvParams) -> Result<Self> {
        let spatial_dims = check_ranks(op, x, w, "O, C / groups, kernel...")?;
        check_params(op, spatial_dims, p)?;
        let (c, o) = (x.dims()[1], w.dims()[0]);
        check_groups(op, p.groups, c, o)?;
        if w.dims()[1] * p.groups != c {
            return Err(Error::shape(
                op,
                format!(
                    "input {x} has {c} channels but weight {w} expects {} ({} per group, {} \
                     groups)",
                    w.dims()[1] * p.groups,
                    w.dims()[1],
                    p.groups
                ),
            ));
        }
        let pads = p.resolved_padding(&x.dims()[2..], &w.dims()[2..])?;
        let mut geometry = Self {
            spatial_dims,
            n: x.dims()[0],
            c,
            o,
            groups: p.groups,
            input: lift3(&x.dims()[2..], 1),
            kernel: lift3(&w.dims()[2..], 1),
            output: [0; 3],
            stride: lift3(&p.stride, 1),
            pad_begin: lift3(&pads.begin, 0),
            pad_end: lift3(&pads.end, 0),
            dilation: lift3(&p.dilation, 1),
        };
        for d in 0..3 {
            let span = geometry.span(d);
            let padded = geometry.padded(d);
            if padded < span {
                return Err(Error::shape(
                    op,
                    format!(
                        "kernel {w} (dilation {:?}) is larger than input {x} padded by {:?} \
                         before and {:?} after: the output would be empty",
                        p.dilation, pads.begin, pads.end
                    ),
                ));
            }
            geometry.output[d] = (padded - span) / geometry.stride[d] + 1;
        }
        geometry.check_limits(op)?;
        Ok(geometry)
    }

    /// Positions one output position's taps cover along dim d: dil (k - 1) + 1.
    fn span(&self, d: usize) -> usize {
        self.dilation[d] * (self.kernel[d] - 1) + 1
    }

    /// The input's size along dim d with its padding.
    fn padded(&self, d: usize) -> usize {
        self.input[d] + self.pad_begin[d] + self.pad_end[d]
    }

    /// Indices are 32-bit in the kernels, and the input gradients divide coordinates by the
    /// stride in f32, exact below 2^22.
    fn check_limits(&self, op: &str) -> Result<()> {
        let weights = self.o * self.c / self.groups * self.taps();
        let too_large = [
            self.n * self.c * self.input_spatial(),
            weights,
            self.n * self.o * self.output_spatial(),
        ]
        .iter()
        .any(|&v| v > i32::MAX as usize)
            || (0..3).any(|d| self.padded(d) >= 1 << 22);
        if too_large {
            return Err(Error::shape(
                op,
                format!(
                    "input {} and weight {} exceed the kernels' limits: 2^31 elements per \
                     tensor, 2^22 per padded spatial dim",
                    self.input_shape(),
                    self.weight_shape()
                ),
            ));
        }
        Ok(())
    }

    fn input_shape(&self) -> Shape {
        self.nc_shape(self.c, &self.input)
    }

    fn weight_shape(&self) -> Shape {
        let mut dims = vec![self.o, self.c / self.groups];
        dims.extend_from_slice(&self.kernel[3 - self.spatial_dims..]);
        Shape::new(&dims).expect("conv weight dims are positive")
    }

    fn nc_shape(&self, channels: usize, spatial: &[usize; 3]) -> Shape {
        let mut dims = vec![self.n, channels];
        dims.extend_from_slice(&spatial[3 - self.spatial_dims..]);
        Shape::new(&dims).expect("conv dims are positive")
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
        self.nc_shape(self.o, &self.output)
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

    /// 2 * N * O * output positions * C / groups * taps: one multiply and one add per tap.
    fn flops(&self) -> u64 {
        let per_output = self.c / self.groups * self.taps();
        2 * (self.n * self.o * self.output_spatial()) as u64 * per_output as u64
    }

    /// The forward GEMM: y = W * Xcol, [O, batch * output positions, C * taps].
    fn forward_gemm(&self) -> [usize; 3] {
        [self.o, self.n * self.output_spatial(), self.c * self.taps()]
    }

    /// The input-gradient GEMM: dx = W' * dYcol, [C, batch * input positions, O * taps].
    fn input_gemm(&self) -> [usize; 3] {
        [self.c, self.n * self.input_spatial(), self.o * self.taps()]
    }

    /// The weight-gradient GEMM: dw = dY * Xcol', [O, C * taps, batch * output positions].
    fn weight_gemm(&self) -> [usize; 3] {
        [self.o, self.c * self.taps(), self.n * self.output_spatial()]
    }

    /// The classes of input positions by stride phase (i % stride per dim), which the same taps
    /// hit: the few-channel input gradient enumerates positions by phase.
    fn phases(&self) -> usize {
        self.stride.iter().product()
    }

    /// Blocks of input positions of one phase and batch element in the few-channel input
    /// gradient: ceil(in / stride) per dim, 4 positions per block along W.
    fn position_blocks(&self) -> usize {
        (0..3)
            .map(|d| {
                let per_phase = self.input[d].div_ceil(self.stride[d]);
                if d == 2 {
                    per_phase.div_ceil(4)
                } else {
                    per_phase
                }
            })
            .product()
    }

    /// Shapes and hyper-parameters, without a GEMM.
    fn shape_params(&self) -> Params {
        let u = |v: usize| v as u32;
        Params {
            n: u(self.n),
            c: u(self.c),
            o: u(self.o),
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
            pad_d: u(self.pad_begin[0]),
            pad_h: u(self.pad_begin[1]),
            pad_w: u(self.pad_begin[2]),
            dil_d: u(self.dilation[0]),
            dil_h: u(self.dilation[1]),
            dil_w: u(self.dilation[2]),
            groups: u(self.groups),
            c_group: u(self.c / self.groups),
            o_group: u(self.o / self.groups),
            k_group: u(self.c / self.groups * self.taps()),
            ..Default::default()
        }
    }

    /// The uniform parameters for a GEMM of m x n x k in tiles of `tile`, split into `splits`
    /// slices of K.
    fn params(&self, [m, n, k]: [usize; 3], tile: Tile, splits: usize, split_len: usize) -> Params {
        Params {
            splits: splits as u32,
            split_len: split_len as u32,
            tiles_n: n.div_ceil(tile.cols) as u32,
            gemm_m: m as u32,
            gemm_n: n as u32,
            gemm_k: k as u32,
            ..self.shape_params()
        }
    }

    /// The uniform parameters of the forward GEMM in tiles of `tile`, with a bias or not.
    fn forward_params(&self, tile: Tile, has_bias: bool) -> Params {
        let gemm = self.forward_gemm();
        Params {
            has_bias: has_bias as u32,
            ..self.params(gemm, tile, 1, gemm[2])
        }
    }

    /// The uniform parameters of the few-channel input gradient: shapes, and in `o_chunk` the
    /// output channels whose weights the tiled kernel stages at once.
    fn few_channels_params(&self) -> Params {
        Params {
            o_chunk: (FEW_CHANNELS_STAGE / self.taps()).min(self.o) as u32,
            ..self.shape_params()
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

/// The buffers a forward kernel reads: x, w and the bias, or w again where there is none (bound
/// and never read).
fn forward_reads<'a>(inputs: &[&'a Tensor]) -> [&'a wgpu::Buffer; 3] {
    let bias = inputs.get(2).map_or(&inputs[1].buffer, |b| &b.buffer);
    [&inputs[0].buffer, &inputs[1].buffer, bias]
}

/// y = conv(x, w) + bias (inputs x, w, bias), fused with a ReLU where `relu` is set.
fn forward(
    ctx: &mut EncodeCtx<'_>,
    geo: &Geometry,
    relu: bool,
    inputs: &[&Tensor],
    output: &Tensor,
) -> Result<Vec<Dispatch>> {
    if geo.groups > 1 {
        return grouped::forward(ctx, geo, relu, inputs, output);
    }
    gemm::choose(
        ctx,
        "conv.forward",
        geo.forward_gemm(),
        |ctx, variant| match variant {
            GemmVariant::Tiled => tiled::forward(ctx, geo, relu, inputs, output),
            GemmVariant::Subgroup => subgroup::forward(ctx, geo, relu, inputs, output),
        },
    )
}

/// dx from (dy, w): the grouped kernel for groups > 1, else the few-channel gather where it
/// applies, else the GEMM.
fn input_gradient(
    ctx: &mut EncodeCtx<'_>,
    geo: &Geometry,
    inputs: &[&Tensor],
    output: &Tensor,
) -> Result<Vec<Dispatch>> {
    if geo.groups > 1 {
        grouped::backward_input(ctx, geo, inputs, output)
    } else if geo.c <= FEW_CHANNELS && geo.taps() <= FEW_CHANNELS_STAGE {
        backward_input_few_channels(ctx, geo, inputs, output)
    } else {
        backward_input(ctx, geo, inputs, output)
    }
}

/// dx from (dy, w) as a GEMM.
fn backward_input(
    ctx: &mut EncodeCtx<'_>,
    geo: &Geometry,
    inputs: &[&Tensor],
    output: &Tensor,
) -> Result<Vec<Dispatch>> {
    gemm::choose(
        ctx,
        "conv.backward_input",
        geo.input_gemm(),
        |ctx, variant| match variant {
            GemmVariant::Tiled => tiled::backward_input(ctx, geo, inputs, output),
            GemmVariant::Subgroup => subgroup::backward_input(ctx, geo, inputs, output),
        },
    )
}

/// dx from (dy, w) for at most `FEW_CHANNELS` input channels, gathered per input position.
fn backward_input_few_channels(
    ctx: &mut EncodeCtx<'_>,
    geo: &Geometry,
    inputs: &[&Tensor],
    output: &Tensor,
) -> Result<Vec<Dispatch>> {
    let role = "conv.backward_input_few_channels";
    gemm::choose(ctx, role, geo.input_gemm(), |ctx, variant| match variant {
        GemmVariant::Tiled => tiled::backward_input_few_channels(ctx, geo, inputs, output),
        GemmVariant::Subgroup => subgroup::backward_input_few_channels(ctx, geo, inputs, output),
    })
}

/// dw from (x, dy): for groups > 1 one reduction per weight; for at most `FEW_CHANNELS` input
/// channels direct sums in slices; else a GEMM split over K by `WeightSplit`.
fn backward_weight(
    ctx: &mut EncodeCtx<'_>,
    geo: &Geometry,
    inputs: &[&Tensor],
    output: &Tensor,
) -> Result<Vec<Dispatch>> {
    if geo.groups > 1 {
        return grouped::backward_weight(ctx, geo, inputs, output);
    }
    if geo.c <= FEW_CHANNELS {
        return grouped::few_channels_backward_weight(ctx, geo, inputs, output);
    }
    gemm::choose(
        ctx,
        "conv.backward_weight",
        geo.weight_gemm(),
        |ctx, variant| match variant {
            GemmVariant::Tiled => tiled::backward_weight(ctx, geo, inputs, output),
            GemmVariant::Subgroup => subgroup::backward_weight(ctx, geo, inputs, output),
        },
    )
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

/// The weight gradient's GEMM split into slices of K (`weight_splits`, from the shapes and the
/// design's tile): its uniform parameters and, with several slices, the scratch buffer of their
/// partial sums, which `finish` adds in slice order into dw.
struct WeightSplit {
    params: Params,
    splits: usize,
    partial: Option<Arc<wgpu::Buffer>>,
}

impl WeightSplit {
    fn new(ctx: &mut EncodeCtx<'_>, geo: &Geometry, tile: Tile) -> Result<Self> {
        let gemm = geo.weight_gemm();
        let (splits, split_len) = weight_splits(gemm, tile);
        let partial = if splits > 1 {
            Some(ctx.scratch(
                "conv_backward_weight partial sums",
                (4 * splits * gemm[0] * gemm[1]) as u64,
            )?)
        } else {
            None
        };
        Ok(Self {
            params: geo.params(gemm, tile, splits, split_len),
            splits,
            partial,
        })
    }

    /// Where the GEMM writes: dw, or the partial sums.
    fn target<'a>(&'a self, output: &'a Tensor) -> &'a wgpu::Buffer {
        self.partial.as_deref().unwrap_or(&output.buffer)
    }

    /// `gemm_pass`, followed by the sum of the slices where there are several.
    fn finish(
        self,
        ctx: &mut EncodeCtx<'_>,
        gemm_pass: Dispatch,
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let mut dispatches = vec![gemm_pass];
        if let Some(partial) = &self.partial {
            let (m, n) = (self.params.gemm_m as usize, self.params.gemm_n as usize);
            dispatches.push(ctx.gpu.dispatch(
                &REDUCE_SHADER,
                "weight_reduce",
                bytes_of(&self.params),
                &[partial],
                &[&output.buffer],
                workgroups_for(m * n, REDUCE_WORKGROUP),
            )?);
        }
        Ok(dispatches)
    }
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

    fn spatial_map(&self, inputs: &[&Shape]) -> Option<SpatialMap> {
        let geo = self.geometry(inputs).ok()?;
        let skipped = 3 - geo.spatial_dims;
        let windows = (skipped..3).map(|d| {
            Some(AxisWindow {
                kernel: geo.kernel[d],
                stride: geo.stride[d],
                padding: geo.pad_begin[d],
                dilation: geo.dilation[d],
            })
        });
        Some(SpatialMap::Window(windows.collect::<Option<_>>()?))
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
        forward(ctx, &geo, self.relu, inputs, output)
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
        input_gradient(ctx, &geo, inputs, output)
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
        backward_weight(ctx, &geo, inputs, output)
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
            &REDUCE_SHADER,
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
        let mut shapes = vec![self.shape(x), self.shape(w)];
        shapes.extend(bias.map(|b| self.shape(b)));
        let geo = op.geometry(&shapes)?;
        if gemm_per_group(&geo) {
            return self.conv_by_groups(x, w, bias, p, relu);
        }
        match bias {
            Some(b) => self.apply(op, &[x, w, b]),
            None => self.apply(op, &[x, w]),
        }
    }

    /// The grouped convolution as one ungrouped convolution per group, of channel slices of
    /// x, w (and the bias), concatenated: for groups large enough to fill the GEMMs' tiles.
    fn conv_by_groups(
        &mut self,
        x: NodeId,
        w: NodeId,
        bias: Option<NodeId>,
        p: &ConvParams,
        relu: bool,
    ) -> Result<NodeId> {
        let groups = p.groups;
        let c_group = self.shape(x).dims()[1] / groups;
        let ungrouped = p.clone().groups(1);
        let w_groups = self.split_rows(w, groups)?;
        let b_groups = bias.map(|b| self.split_rows(b, groups)).transpose()?;
        let mut outputs = Vec::with_capacity(groups);
        for (group, &w_group) in w_groups.iter().enumerate() {
            let x_group = self.slice_channels(x, group * c_group, c_group)?;
            let b_group = b_groups.as_ref().map(|b| b[group]);
            outputs.push(self.conv_with(x_group, w_group, b_group, &ungrouped, relu)?);
        }
        self.concat_channels(&outputs)
    }

    /// `t` split along its first dim into `parts` equal parts (as channel slices of a reshape).
    pub(crate) fn split_rows(&mut self, t: NodeId, parts: usize) -> Result<Vec<NodeId>> {
        let dims = self.shape(t).dims().to_vec();
        let rows = dims[0] / parts;
        let rest: usize = dims[1..].iter().product();
        let mut part_dims = dims.clone();
        part_dims[0] = rows;
        let matrix = self.reshape(t, Shape::new(&[1, dims[0], rest])?)?;
        (0..parts)
            .map(|part| {
                let slice = self.slice_channels(matrix, part * rows, rows)?;
                self.reshape(slice, Shape::new(&part_dims)?)
            })
            .collect()
    }
}

/// Whether `Graph::conv` runs a grouped convolution as one GEMM per group rather than on the
/// grouped kernels: where each group has at least `GEMM_GROUP_CHANNELS` input and output
/// channels (the GEMMs' smallest tiles have 8 rows) and there are at most `MAX_GEMM_GROUPS`
/// groups (each adds nodes). On lavapipe, 2 groups of 64 channels (3 x 3 at 28 x 28) took
/// 825 ms on the grouped kernel and 68 ms split (the slices and the concatenation included);
/// a dense convolution of the same work took 36 ms.
fn gemm_per_group(geo: &Geometry) -> bool {
    geo.groups > 1
        && geo.groups <= MAX_GEMM_GROUPS
        && geo.c / geo.groups >= GEMM_GROUP_CHANNELS
        && geo.o / geo.groups >= GEMM_GROUP_CHANNELS
}

const GEMM_GROUP_CHANNELS: usize = 8;
const MAX_GEMM_GROUPS: usize = 32;
