//! Padding of a tensor of any rank: elements added before and after each axis (numpy's `pad`,
//! ONNX `Pad`, PyTorch's `F.pad`), filled with a constant or taken from the tensor by reflection,
//! by repeating the edge, or by wrapping around: `pad.wgsl`.
//!
//! The forward is a gather: each output element finds its source element, axis by axis. The
//! backward is a gather too: each input element sums the output gradient over the positions
//! that read it. Along one axis these form at most two arithmetic progressions (one for the
//! constant, edge and wrap modes, two interleaved for reflect), so the kernel walks their product
//! over the axes directly; every output position reads exactly one input element, so the work
//! in all is one read per gradient element, and no atomics or scratch buffers are needed.
//!
//! Pads are non-negative; cropping is a slice (`Graph::slice`).

use crate::error::{Error, Result};
use crate::gpu::{
    bytes_of, shader_struct, wgsl_file, workgroups_for, Dispatch, Shader, WORKGROUP_INDEX,
};
use crate::graph::{BackwardCtx, EncodeCtx, Graph, NodeId, Op};
use crate::ops::padding::Pads;
use crate::tensor::{Shape, Tensor};

pub static SHADER: Shader = Shader {
    name: "pad",
    file: wgsl_file!("ops/pad.wgsl", [&WORKGROUP_INDEX]),
    subgroups: false,
    structs: &[("Params", Params::LAYOUT)],
};
const WORKGROUP: usize = 256;
const SLOTS: usize = 8;

shader_struct! {
    #[derive(Default)]
    struct Params {
        count: u32,
        rank: u32,
        mode: u32,
        value: f32,
        in_dims: [u32; SLOTS],
        out_dims: [u32; SLOTS],
        begin: [u32; SLOTS],
    }
}

/// What fills the padding. Along an axis of length n, position u (counted from the input's
/// first element, so negative before it and n or more after it) reads:
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PadMode {
    /// The value (nothing from the input).
    Constant(f32),
    /// The mirror image without repeating the edge (numpy's `reflect`, PyTorch's `reflect`):
    /// d c b | a b c d | c b a. Pads longer than n - 1 continue the reflection (period
    /// 2 (n - 1), as numpy does); an axis of length 1 repeats its element.
    Reflect,
    /// The edge element (numpy's `edge`, PyTorch's `replicate`): a a | a b c d | d d.
    Edge,
    /// The other end of the axis (numpy's `wrap`, PyTorch's `circular`): c d | a b c d | a b,
    /// periodic for pads longer than n.
    Wrap,
}

impl PadMode {
    /// The mode's number in `pad.wgsl`.
    fn code(self) -> u32 {
        match self {
            PadMode::Constant(_) => 0,
            PadMode::Reflect => 1,
            PadMode::Edge => 2,
            PadMode::Wrap => 3,
        }
    }
}

fn slots(values: impl IntoIterator<Item = usize>) -> [u32; SLOTS] {
    let mut out = [0; SLOTS];
    for (k, v) in values.into_iter().enumerate() {
        out[k] = v as u32;
    }
    out
}

/// `pads` checked against `shape`: a begin and an end for every axis.
fn check_pads(op: &str, pads: &Pads, shape: &Shape) -> Result<()> {
    if pads.begin.len() != shape.rank() || pads.end.len() != shape.rank() {
        return Err(Error::shape(
            op,
            format!(
                "pads (begin {:?}, end {:?}) must give a begin and an end for each of the {} \
                 axes of {shape}",
                pads.begin,
                pads.end,
                shape.rank()
            ),
        ));
    }
    Ok(())
}

/// The padded shape, or an error where it would not fit the kernels' i32 coordinates.
fn padded_shape(op: &str, pads: &Pads, shape: &Shape) -> Result<Shape> {
    let mut dims = Vec::with_capacity(shape.rank());
    let mut count = 1u32;
    for (k, &d) in shape.dims().iter().enumerate() {
        let padded = d
            .checked_add(pads.begin[k])
            .and_then(|v| v.checked_add(pads.end[k]))
            .and_then(|v| u32::try_from(v).ok());
        match padded.and_then(|v| count.checked_mul(v).map(|c| (v, c))) {
            Some((v, c)) if c < 1 << 31 => {
                dims.push(v as usize);
                count = c;
            }
            _ => {
                return Err(Error::shape(
                    op,
                    format!(
                        "padding {shape} by {:?} before and {:?} after gives 2^31 elements or more",
                        pads.begin, pads.end
                    ),
                ))
            }
        }
    }
    Shape::new(&dims)
}

fn params(pads: &Pads, mode: PadMode, input: &Shape, output: &Shape, count: usize) -> Params {
    Params {
        count: count as u32,
        rank: input.rank() as u32,
        mode: mode.code(),
        value: match mode {
            PadMode::Constant(v) => v,
            _ => 0.0,
        },
        in_dims: slots(input.dims().iter().copied()),
        out_dims: slots(output.dims().iter().copied()),
        begin: slots(pads.begin.iter().copied()),
    }
}

/// x padded by `pads` (a begin and an end per axis of x) in `mode`.
#[derive(Clone, Debug, PartialEq)]
pub struct Pad {
    pub pads: Pads,
    pub mode: PadMode,
}

impl Op for Pad {
    fn name(&self) -> &'static str {
        "pad"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        check_pads(self.name(), &self.pads, inputs[0])?;
        padded_shape(self.name(), &self.pads, inputs[0])
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let count = output.shape.numel();
        let params = params(
            &self.pads,
            self.mode,
            &inputs[0].shape,
            &output.shape,
            count,
        );
        Ok(vec![ctx.gpu.dispatch(
            &SHADER,
            "pad",
            bytes_of(&params),
            &[&inputs[0].buffer],
            &[&output.buffer],
            workgroups_for(count, WORKGROUP),
        )?])
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        let input = g.shape(ctx.inputs[0]).clone();
        let dx = g.apply(
            PadBackward {
                pads: self.pads.clone(),
                mode: self.mode,
                input,
            },
            &[ctx.grad],
        )?;
        Ok(vec![Some(dx)])
    }

    fn flops(&self, _: &[&Shape], _: &Shape) -> u64 {
        0
    }
}

/// The gradient of `Pad`: each element of `input`'s shape sums dy over the padded positions
/// that read it (the constant mode's padding reads nothing, so its gradient is dropped).
#[derive(Clone, Debug, PartialEq)]
pub struct PadBackward {
    pub pads: Pads,
    pub mode: PadMode,
    /// The shape of the padded tensor.
    pub input: Shape,
}

impl Op for PadBackward {
    fn name(&self) -> &'static str {
        "pad_backward"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        check_pads(self.name(), &self.pads, &self.input)?;
        let padded = padded_shape(self.name(), &self.pads, &self.input)?;
        if inputs[0] != &padded {
            return Err(Error::shape(
                self.name(),
                format!(
                    "the gradient must have the padded shape {padded} of {}",
                    self.input
                ),
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
        let count = output.shape.numel();
        let params = params(
            &self.pads,
            self.mode,
            &output.shape,
            &inputs[0].shape,
            count,
        );
        Ok(vec![ctx.gpu.dispatch(
            &SHADER,
            "pad_backward",
            bytes_of(&params),
            &[&inputs[0].buffer],
            &[&output.buffer],
            workgroups_for(count, WORKGROUP),
        )?])
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        // Linear in dy: its adjoint is the padding itself, with zeros in the constant mode.
        let mode = match self.mode {
            PadMode::Constant(_) => PadMode::Constant(0.0),
            mode => mode,
        };
        let pad = Pad {
            pads: self.pads.clone(),
            mode,
        };
        Ok(vec![Some(g.apply(pad, &[ctx.grad])?)])
    }

    fn flops(&self, inputs: &[&Shape], _: &Shape) -> u64 {
        // One addition per element of dy.
        inputs[0].numel() as u64
    }
}

impl Graph {
    /// x padded by `pads.begin[k]` elements before and `pads.end[k]` after each axis k (every
    /// axis of x, batch and channels included), filled as `mode` says.
    pub fn pad(&mut self, x: NodeId, pads: &Pads, mode: PadMode) -> Result<NodeId> {
        self.apply(
            Pad {
                pads: pads.clone(),
                mode,
            },
            &[x],
        )
    }
}
