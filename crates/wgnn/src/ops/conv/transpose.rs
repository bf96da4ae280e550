//! Transposed convolution (PyTorch's ConvTranspose1d/2d/3d, ONNX's ConvTranspose): x [N, C_in,
//! in...] and w [C_in, O / groups, kernel...] give y [N, O, out...] with
//! out = (in - 1) stride + dil (k - 1) + 1 + output_padding - pad_begin - pad_end per dim.
//!
//! It is the adjoint of the convolution `conv` with the same stride, padding, dilation and
//! groups from y's shape to x's, whose weight is w read as [C_in (its O), O / groups (its
//! C / groups), kernel...]. So it runs that convolution's kernels with the roles swapped: the
//! forward is its input gradient (a gather over the taps), the input gradient is the
//! convolution itself, and the weight gradient is its weight gradient of (dy, x). Padding
//! crops the full output (begin and end apart); output_padding adds positions at the end,
//! which the stride leaves ambiguous, and needs to be smaller than the stride or the dilation.

use super::{
    backward_weight, check_groups, check_inputs, check_params, check_ranks, forward,
    gemm_per_group, input_gradient, lift3, ConvParams, Geometry,
};
use crate::error::{Error, Result};
use crate::gpu::Dispatch;
use crate::graph::{BackwardCtx, EncodeCtx, Graph, NodeId, Op};
use crate::ops::padding::{AutoPad, Pads};
use crate::tensor::{Shape, Tensor};

/// The transposed convolution's parameters: those of the convolution it transposes (stride,
/// padding, which crops the output, dilation, groups, auto padding by ONNX's ConvTranspose
/// rule) and the positions added at the end of each output dim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvTransposeParams {
    pub conv: ConvParams,
    pub output_padding: Vec<usize>,
}

impl ConvTransposeParams {
    /// No output padding.
    pub fn new(conv: ConvParams) -> Self {
        let dims = conv.spatial_dims();
        Self {
            conv,
            output_padding: vec![0; dims],
        }
    }

    /// The same output padding on every spatial dim.
    pub fn output_padding(mut self, p: usize) -> Self {
        self.output_padding = vec![p; self.conv.spatial_dims()];
        self
    }

    pub fn output_paddings(mut self, p: &[usize]) -> Self {
        self.output_padding = p.to_vec();
        self
    }

    /// The cropping of the full output: `padding`, or for auto padding ONNX's ConvTranspose
    /// rule (SAME: out = in * stride, the odd position cropped at the end for SAME_UPPER, at
    /// the start for SAME_LOWER).
    fn resolved_padding(&self, op: &str, input: &[usize], kernel: &[usize]) -> Result<Pads> {
        let p = &self.conv;
        let lower = match p.auto_pad {
            None => return Ok(p.padding.clone()),
            Some(AutoPad::Valid) => return Ok(Pads::none(input.len())),
            Some(AutoPad::SameLower) => true,
            Some(AutoPad::SameUpper) => false,
        };
        let mut pads = Pads::none(input.len());
        for d in 0..input.len() {
            let full = p.stride[d] * (input[d] - 1)
                + p.dilation[d] * (kernel[d] - 1)
                + 1
                + self.output_padding[d];
            let wanted = input[d] * p.stride[d];
            let Some(total) = full.checked_sub(wanted) else {
                return Err(Error::shape(
                    op,
                    format!(
                        "auto padding {:?} needs an output of {wanted} positions along spatial \
                         dim {d}, more than the {full} the kernel reaches",
                        p.auto_pad.expect("auto padding is set")
                    ),
                ));
            };
            let (small, large) = (total / 2, total - total / 2);
            (pads.begin[d], pads.end[d]) = if lower {
                (large, small)
            } else {
                (small, large)
            };
        }
        Ok(pads)
    }
}

/// The convolution that `conv_transpose(x, w)` transposes: its input is y's shape, its output
/// x's (`output` is set to x's size even where output_padding makes the convolution's own
/// formula one larger: positions past x's end hold nothing to gather).
fn geometry(op: &str, x: &Shape, w: &Shape, params: &ConvTransposeParams) -> Result<Geometry> {
    let spatial_dims = check_ranks(op, x, w, "C_in, O / groups, kernel...")?;
    let p = &params.conv;
    check_params(op, spatial_dims, p)?;
    if params.output_padding.len() != spatial_dims {
        return Err(Error::shape(
            op,
            format!(
                "output padding {:?} has {} entries for {spatial_dims} spatial dims",
                params.output_padding,
                params.output_padding.len()
            ),
        ));
    }
    for d in 0..spatial_dims {
        let extra = params.output_padding[d];
        if extra >= p.stride[d] && extra >= p.dilation[d] {
            return Err(Error::shape(
                op,
                format!(
                    "output padding {:?} must be smaller than the stride {:?} or the dilation \
                     {:?} in each dim",
                    params.output_padding, p.stride, p.dilation
                ),
            ));
        }
    }
    let (c_in, o) = (x.dims()[1], w.dims()[1] * p.groups);
    if w.dims()[0] != c_in {
        return Err(Error::shape(
            op,
            format!(
                "input {x} has {c_in} channels but weight {w} has {}",
                w.dims()[0]
            ),
        ));
    }
    check_groups(op, p.groups, c_in, o)?;
    let (input, kernel) = (&x.dims()[2..], &w.dims()[2..]);
    let pads = params.resolved_padding(op, input, kernel)?;
    let mut out = [1; 3];
    for d in 0..spatial_dims {
        let full = p.stride[d] * (input[d] - 1)
            + p.dilation[d] * (kernel[d] - 1)
            + 1
            + params.output_padding[d];
        let cropped = pads.begin[d] + pads.end[d];
        if cropped >= full {
            return Err(Error::shape(
                op,
                format!(
                    "padding {:?} before and {:?} after crops the whole output ({full} positions \
                     along spatial dim {d}): the output size would be {}",
                    pads.begin,
                    pads.end,
                    full as isize - cropped as isize
                ),
            ));
        }
        out[3 - spatial_dims + d] = full - cropped;
    }
    let geo = Geometry {
        spatial_dims,
        n: x.dims()[0],
        c: o,
        o: c_in,
        groups: p.groups,
        input: out,
        kernel: lift3(kernel, 1),
        output: lift3(input, 1),
        stride: lift3(&p.stride, 1),
        pad_begin: lift3(&pads.begin, 0),
        pad_end: lift3(&pads.end, 0),
        dilation: lift3(&p.dilation, 1),
    };
    geo.check_limits(op)?;
    Ok(geo)
}

/// y = conv_transpose(x, w) from (x, w).
#[derive(Debug)]
pub struct ConvTranspose {
    pub params: ConvTransposeParams,
}

impl ConvTranspose {
    fn geometry(&self, inputs: &[&Shape]) -> Result<Geometry> {
        check_inputs(self.name(), inputs, &[2])?;
        geometry(self.name(), inputs[0], inputs[1], &self.params)
    }
}

impl Op for ConvTranspose {
    fn name(&self) -> &'static str {
        match self.params.conv.spatial_dims() {
            1 => "conv_transpose1d",
            2 => "conv_transpose2d",
            _ => "conv_transpose3d",
        }
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        Ok(self.geometry(inputs)?.input_shape())
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let shapes: Vec<&Shape> = inputs.iter().map(|t| &t.shape).collect();
        let geo = self.geometry(&shapes)?;
        // The convolution's input gradient reads (its dy, w) = (x, w).
        input_gradient(ctx, &geo, inputs, output)
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        let (x, w) = (ctx.inputs[0], ctx.inputs[1]);
        let mut grads = vec![None; 2];
        if ctx.needs_grad[0] {
            let op = ConvTransposeBackwardInput {
                params: self.params.clone(),
                input_shape: g.shape(x).clone(),
            };
            grads[0] = Some(g.apply(op, &[ctx.grad, w])?);
        }
        if ctx.needs_grad[1] {
            let op = ConvTransposeBackwardWeight {
                params: self.params.clone(),
                weight_shape: g.shape(w).clone(),
            };
            grads[1] = Some(g.apply(op, &[x, ctx.grad])?);
        }
        Ok(grads)
    }

    fn flops(&self, inputs: &[&Shape], _: &Shape) -> u64 {
        self.geometry(inputs).map_or(0, |g| g.flops())
    }
}

/// Checks that dy has the transposed convolution's output shape.
fn check_output_gradient(op: &str, geo: &Geometry, dy: &Shape) -> Result<()> {
    let expected = geo.input_shape();
    if dy != &expected {
        return Err(Error::shape(
            op,
            format!("output gradient {dy} does not match the transposed convolution's output {expected}"),
        ));
    }
    Ok(())
}

/// dx from (dy, w): the convolution of dy by w. `input_shape` is x's shape, which dy alone does
/// not determine.
#[derive(Debug)]
pub struct ConvTransposeBackwardInput {
    pub params: ConvTransposeParams,
    pub input_shape: Shape,
}

impl ConvTransposeBackwardInput {
    fn geometry(&self, inputs: &[&Shape]) -> Result<Geometry> {
        check_inputs(self.name(), inputs, &[2])?;
        let geo = geometry(self.name(), &self.input_shape, inputs[1], &self.params)?;
        check_output_gradient(self.name(), &geo, inputs[0])?;
        Ok(geo)
    }
}

impl Op for ConvTransposeBackwardInput {
    fn name(&self) -> &'static str {
        "conv_transpose_backward_input"
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
        forward(ctx, &geo, false, inputs, output)
    }

    fn flops(&self, inputs: &[&Shape], _: &Shape) -> u64 {
        self.geometry(inputs).map_or(0, |g| g.flops())
    }
}

/// dw from (x, dy): the convolution's weight gradient with dy as its input and x as its output
/// gradient. `weight_shape` gives the kernel size.
#[derive(Debug)]
pub struct ConvTransposeBackwardWeight {
    pub params: ConvTransposeParams,
    pub weight_shape: Shape,
}

impl ConvTransposeBackwardWeight {
    fn geometry(&self, inputs: &[&Shape]) -> Result<Geometry> {
        check_inputs(self.name(), inputs, &[2])?;
        let geo = geometry(self.name(), inputs[0], &self.weight_shape, &self.params)?;
        check_output_gradient(self.name(), &geo, inputs[1])?;
        Ok(geo)
    }
}

impl Op for ConvTransposeBackwardWeight {
    fn name(&self) -> &'static str {
        "conv_transpose_backward_weight"
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
        backward_weight(ctx, &geo, &[inputs[1], inputs[0]], output)
    }

    fn flops(&self, inputs: &[&Shape], _: &Shape) -> u64 {
        self.geometry(inputs).map_or(0, |g| g.flops())
    }
}

/// The output shape of `conv_transpose(x, w)` with these parameters, or the error
/// `Graph::conv_transpose` would give.
pub fn conv_transpose_output_shape(x: &Shape, w: &Shape, p: &ConvTransposeParams) -> Result<Shape> {
    ConvTranspose { params: p.clone() }.output_shape(&[x, w])
}

impl Graph {
    /// Transposed convolution of x [N, C_in, spatial...] with w [C_in, O / groups, kernel...]
    /// (1, 2 or 3 spatial dims), plus bias [O] when given (added as a broadcast [O, 1...]).
    /// Groups of at least 8 channels run as one ungrouped transposed convolution per group.
    pub fn conv_transpose(
        &mut self,
        x: NodeId,
        w: NodeId,
        bias: Option<NodeId>,
        p: &ConvTransposeParams,
    ) -> Result<NodeId> {
        let op = ConvTranspose { params: p.clone() };
        let geo = op.geometry(&[self.shape(x), self.shape(w)])?;
        let y = if gemm_per_group(&geo) {
            // One ungrouped transposed convolution per group, as `Graph::conv` does.
            let groups = p.conv.groups;
            let c_group = self.shape(x).dims()[1] / groups;
            let mut ungrouped = p.clone();
            ungrouped.conv.groups = 1;
            let w_groups = self.split_rows(w, groups)?;
            let mut outputs = Vec::with_capacity(groups);
            for (group, &w_group) in w_groups.iter().enumerate() {
                let x_group = self.slice_channels(x, group * c_group, c_group)?;
                let op = ConvTranspose {
                    params: ungrouped.clone(),
                };
                outputs.push(self.apply(op, &[x_group, w_group])?);
            }
            self.concat_channels(&outputs)?
        } else {
            self.apply(op, &[x, w])?
        };
        let Some(bias) = bias else {
            return Ok(y);
        };
        let o = self.shape(y).dims()[1];
        if self.shape(bias).dims() != [o] {
            return Err(Error::shape(
                "conv_transpose",
                format!("bias {} must have shape [{o}]", self.shape(bias)),
            ));
        }
        let mut dims = vec![o];
        dims.resize(self.shape(y).rank() - 1, 1);
        let column = self.reshape(bias, Shape::new(&dims)?)?;
        self.add(y, column)
    }
}
