//! Resizing of NCW / NCHW / NCDHW tensors by nearest or linear interpolation (PyTorch's
//! `interpolate` modes `nearest`, `nearest-exact`, `linear` / `bilinear` / `trilinear` with
//! `align_corners` true or false; ONNX `Resize` in modes `nearest` and `linear`), to scale
//! factors or explicit sizes: `resize.wgsl`.
//!
//! Interpolation is separable, so the host computes, per spatial axis, which input indices each
//! output index reads and with which weights (in f64, from the coordinate mode), and the kernels
//! read these tables: the coordinate modes and roundings are the tables' business, one forward
//! and one backward kernel serve them all. The backward is a gather over the input (each input
//! index knows the range of outputs that read it), without atomics.
//!
//! Covered from ONNX `Resize`: `coordinate_transformation_mode` half_pixel, pytorch_half_pixel,
//! align_corners, asymmetric and tf_half_pixel_for_nn; `nearest_mode` round_prefer_floor,
//! round_prefer_ceil, floor and ceil; `scales` or `sizes` for the spatial axes. Not covered:
//! cubic mode, tf_crop_and_resize, antialiasing and `exclude_outside`. Linear interpolation
//! clamps source coordinates to the input (PyTorch's rule, and what ONNX's edge padding gives).
//! Coordinates are computed in f64, so a nearest index can differ from PyTorch's float32
//! arithmetic only where a source coordinate lies within float32 rounding of a rounding boundary.

use crate::error::{Error, Result};
use crate::gpu::{
    bytes_of, shader_struct, wgsl_file, workgroups_for, Dispatch, Shader, WORKGROUP_INDEX,
};
use crate::graph::{BackwardCtx, EncodeCtx, Graph, NodeId, Op};
use crate::tensor::{Shape, Tensor};

pub static SHADER: Shader = Shader {
    name: "resize",
    file: wgsl_file!("ops/resize.wgsl", [&WORKGROUP_INDEX]),
    subgroups: false,
    structs: &[("Params", Params::LAYOUT)],
};
const WORKGROUP: usize = 256;

shader_struct! {
    struct Params {
        count: u32,
        planes: u32,
        pad0: u32,
        pad1: u32,
        in_dims: [u32; 4],
        out_dims: [u32; 4],
        taps_offset: [u32; 4],
        ranges_offset: [u32; 4],
    }
}

/// How a nearest resize rounds a source coordinate to an index (ONNX `nearest_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NearestRounding {
    /// Halves go down (ONNX's default).
    RoundPreferFloor,
    /// Halves go up (PyTorch's `nearest-exact` with `HalfPixel`).
    RoundPreferCeil,
    /// PyTorch's `nearest` (with `Asymmetric`).
    Floor,
    Ceil,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeMode {
    Nearest(NearestRounding),
    /// Linear along each spatial axis (bilinear in 2-D, trilinear in 3-D).
    Linear,
}

/// Where output index x of an axis (input length `in`, output length `out`, scale s: the given
/// scale factor, or out / in for explicit sizes) reads the input (ONNX
/// `coordinate_transformation_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoordinateTransform {
    /// (x + 0.5) / s - 0.5: PyTorch's `align_corners=False`.
    HalfPixel,
    /// As `HalfPixel`, but 0 where out = 1.
    PytorchHalfPixel,
    /// x (in - 1) / (out - 1), 0 where out = 1: PyTorch's `align_corners=True`.
    AlignCorners,
    /// x / s: PyTorch's `nearest`.
    Asymmetric,
    /// (x + 0.5) / s.
    TfHalfPixelForNn,
}

/// The output's spatial size: each input length times a factor (rounded down, as PyTorch and
/// ONNX do), or given. With factors, the coordinate modes divide by the factor itself (PyTorch's
/// `scale_factor` without `recompute_scale_factor`, ONNX's `scales`); PyTorch's
/// `recompute_scale_factor=True` is `Sizes` of the rounded-down lengths.
#[derive(Clone, Debug, PartialEq)]
pub enum ResizeTarget {
    Scales(Vec<f64>),
    Sizes(Vec<usize>),
}

/// One resize: the spatial target (one entry per spatial axis: 1, 2 or 3), the interpolation and
/// the coordinate mode.
#[derive(Clone, Debug, PartialEq)]
pub struct ResizeParams {
    pub target: ResizeTarget,
    pub mode: ResizeMode,
    pub coordinates: CoordinateTransform,
}

impl ResizeParams {
    /// PyTorch's `interpolate(mode="nearest")`.
    pub fn nearest(target: ResizeTarget) -> Self {
        Self {
            target,
            mode: ResizeMode::Nearest(NearestRounding::Floor),
            coordinates: CoordinateTransform::Asymmetric,
        }
    }

    /// PyTorch's `interpolate(mode="nearest-exact")`.
    pub fn nearest_exact(target: ResizeTarget) -> Self {
        Self {
            target,
            mode: ResizeMode::Nearest(NearestRounding::RoundPreferCeil),
            coordinates: CoordinateTransform::HalfPixel,
        }
    }

    /// PyTorch's `interpolate(mode="linear" / "bilinear" / "trilinear", align_corners=...)`.
    pub fn linear(target: ResizeTarget, align_corners: bool) -> Self {
        Self {
            target,
            mode: ResizeMode::Linear,
            coordinates: if align_corners {
                CoordinateTransform::AlignCorners
            } else {
                CoordinateTransform::HalfPixel
            },
        }
    }
}

/// One spatial axis: lengths, and the scale that the coordinate modes divide by.
#[derive(Clone, Copy, Debug)]
struct Axis {
    input: usize,
    output: usize,
    scale: f64,
}

impl ResizeParams {
    /// The spatial axes of a resize of `shape`, or an error naming the rule broken.
    fn axes(&self, op: &str, shape: &Shape) -> Result<Vec<Axis>> {
        if !(3..=5).contains(&shape.rank()) {
            return Err(Error::shape(
                op,
                format!(
                    "the input must be [N, C, spatial...] with 1 to 3 spatial dims, not {shape}"
                ),
            ));
        }
        let spatial = &shape.dims()[2..];
        let given = match &self.target {
            ResizeTarget::Scales(s) => s.len(),
            ResizeTarget::Sizes(s) => s.len(),
        };
        if given != spatial.len() {
            return Err(Error::shape(
                op,
                format!(
                    "{given} scales or sizes given for the {} spatial dims of {shape}",
                    spatial.len()
                ),
            ));
        }
        spatial
            .iter()
            .enumerate()
            .map(|(k, &input)| {
                let (output, scale) = match &self.target {
                    ResizeTarget::Scales(s) => {
                        if !(s[k].is_finite() && s[k] > 0.0) {
                            return Err(Error::shape(
                                op,
                                format!(
                                    "scale {} of spatial dim {k} is not a positive number",
                                    s[k]
                                ),
                            ));
                        }
                        ((input as f64 * s[k]).floor() as usize, s[k])
                    }
                    ResizeTarget::Sizes(s) => (s[k], s[k] as f64 / input as f64),
                };
                if output == 0 {
                    return Err(Error::shape(
                        op,
                        format!("spatial dim {k} ({input}) would be resized to 0"),
                    ));
                }
                Ok(Axis {
                    input,
                    output,
                    scale,
                })
            })
            .collect()
    }

    /// The input coordinate that output index `x` of `axis` reads.
    fn source(&self, axis: &Axis, x: usize) -> f64 {
        let (x, s) = (x as f64, axis.scale);
        match self.coordinates {
            CoordinateTransform::HalfPixel => (x + 0.5) / s - 0.5,
            CoordinateTransform::PytorchHalfPixel if axis.output == 1 => 0.0,
            CoordinateTransform::PytorchHalfPixel => (x + 0.5) / s - 0.5,
            CoordinateTransform::AlignCorners if axis.output == 1 => 0.0,
            CoordinateTransform::AlignCorners => {
                x * (axis.input - 1) as f64 / (axis.output - 1) as f64
            }
            CoordinateTransform::Asymmetric => x / s,
            CoordinateTransform::TfHalfPixelForNn => (x + 0.5) / s,
        }
    }

    /// (i0, i1, w0, w1) for each output index of `axis`.
    fn taps(&self, axis: &Axis) -> Vec<(usize, usize, f32, f32)> {
        let last = (axis.input - 1) as f64;
        (0..axis.output)
            .map(|x| {
                let c = self.source(axis, x);
                match self.mode {
                    ResizeMode::Nearest(rounding) => {
                        let i = match rounding {
                            NearestRounding::Floor => c.floor(),
                            NearestRounding::Ceil => c.ceil(),
                            NearestRounding::RoundPreferFloor => (c - 0.5).ceil(),
                            NearestRounding::RoundPreferCeil => (c + 0.5).floor(),
                        };
                        let i = i.clamp(0.0, last) as usize;
                        (i, i, 1.0, 0.0)
                    }
                    ResizeMode::Linear => {
                        let c = c.clamp(0.0, last);
                        let i0 = c.floor() as usize;
                        let i1 = (i0 + 1).min(axis.input - 1);
                        let frac = c - i0 as f64;
                        (i0, i1, (1.0 - frac) as f32, frac as f32)
                    }
                }
            })
            .collect()
    }
}

/// The kernels' parameters and table for resizing `input` (3 axes: missing outer ones of length
/// 1, read as index 0 with weight 1).
fn plan(params: &ResizeParams, op: &str, input: &Shape) -> Result<(Params, Vec<u32>)> {
    let mut axes = params.axes(op, input)?;
    while axes.len() < 3 {
        axes.insert(
            0,
            Axis {
                input: 1,
                output: 1,
                scale: 1.0,
            },
        );
    }
    let mut table = Vec::new();
    let mut p = Params {
        count: 0,
        planes: (input.dims()[0] * input.dims()[1]) as u32,
        pad0: 0,
        pad1: 0,
        in_dims: [1; 4],
        out_dims: [1; 4],
        taps_offset: [0; 4],
        ranges_offset: [0; 4],
    };
    for (a, axis) in axes.iter().enumerate() {
        let taps = if axis.input == 1 && axis.output == 1 {
            vec![(0, 0, 1.0, 0.0)]
        } else {
            params.taps(axis)
        };
        // The outputs that read each input index: a range, as the taps only move forward.
        let mut ranges = vec![(usize::MAX, 0); axis.input];
        for (o, &(i0, i1, _, _)) in taps.iter().enumerate() {
            for i in [i0, i1] {
                ranges[i] = (ranges[i].0.min(o), o + 1);
            }
        }
        p.in_dims[a] = axis.input as u32;
        p.out_dims[a] = axis.output as u32;
        p.taps_offset[a] = table.len() as u32;
        for (i0, i1, w0, w1) in taps {
            table.extend([i0 as u32, i1 as u32, w0.to_bits(), w1.to_bits()]);
        }
        p.ranges_offset[a] = table.len() as u32;
        for (lo, hi) in ranges {
            table.extend(if lo == usize::MAX {
                [0, 0]
            } else {
                [lo as u32, hi as u32]
            });
        }
    }
    Ok((p, table))
}

/// The output shape of resizing `input`.
fn resized(params: &ResizeParams, op: &str, input: &Shape) -> Result<Shape> {
    let mut dims = input.dims()[..2.min(input.rank())].to_vec();
    dims.extend(params.axes(op, input)?.iter().map(|a| a.output));
    Shape::new(&dims)
}

/// One resize kernel from `from` into `to` with the table of a resize of `input`.
fn dispatch(
    ctx: &mut EncodeCtx<'_>,
    params: &ResizeParams,
    op: &'static str,
    entry: &'static str,
    input: &Shape,
    from: &Tensor,
    to: &Tensor,
) -> Result<Dispatch> {
    let (mut p, table) = plan(params, op, input)?;
    p.count = to.shape.numel() as u32;
    let table = std::sync::Arc::new(ctx.gpu.upload("resize_table", &table)?);
    ctx.scratch.push(table.clone());
    ctx.gpu.dispatch(
        &SHADER,
        entry,
        bytes_of(&p),
        &[&from.buffer, &table],
        &[&to.buffer],
        workgroups_for(to.shape.numel(), WORKGROUP),
    )
}

/// x resized along its spatial dims; see the module documentation.
#[derive(Clone, Debug, PartialEq)]
pub struct Resize(pub ResizeParams);

impl Op for Resize {
    fn name(&self) -> &'static str {
        "resize"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        resized(&self.0, self.name(), inputs[0])
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let input = &inputs[0].shape;
        Ok(vec![dispatch(
            ctx,
            &self.0,
            self.name(),
            "resize_forward",
            input,
            inputs[0],
            output,
        )?])
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        let input = g.shape(ctx.inputs[0]).clone();
        let op = ResizeBackward {
            params: self.0.clone(),
            input,
        };
        Ok(vec![Some(g.apply(op, &[ctx.grad])?)])
    }

    fn flops(&self, _: &[&Shape], output: &Shape) -> u64 {
        let taps = match self.0.mode {
            ResizeMode::Nearest(_) => 1,
            ResizeMode::Linear => 1 << (output.rank() - 2),
        };
        2 * taps * output.numel() as u64
    }
}

/// The gradient of a resize of a tensor of shape `input`, given dy.
#[derive(Debug)]
pub struct ResizeBackward {
    pub params: ResizeParams,
    pub input: Shape,
}

impl Op for ResizeBackward {
    fn name(&self) -> &'static str {
        "resize_backward"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        let expected = resized(&self.params, self.name(), &self.input)?;
        if inputs[0] != &expected {
            return Err(Error::shape(
                self.name(),
                format!("the gradient must have the resized shape {expected}"),
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
        Ok(vec![dispatch(
            ctx,
            &self.params,
            self.name(),
            "resize_backward",
            &self.input,
            inputs[0],
            output,
        )?])
    }
}

impl Graph {
    /// x [N, C, spatial...] resized along its 1 to 3 spatial dims.
    pub fn resize(&mut self, x: NodeId, params: &ResizeParams) -> Result<NodeId> {
        self.apply(Resize(params.clone()), &[x])
    }
}
