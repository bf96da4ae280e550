//! Dropout: in training, each element is zeroed with probability p and the kept ones are scaled
//! by 1 / (1 - p); in inference, the identity. `dropout.wgsl`.
//! The mask comes from a counter-based hash of (seed, stream, element index): the seed is a u32
//! input [1] written before each step (`Plan::write_input_u32`), so that a step is reproducible
//! for the same seed and the masks change when the seed does, without recompiling; the stream
//! is the dropout node's index, so that layers sharing a seed draw different masks.
//! Backward: dx = dy / (1 - p) on the same mask, which is the same op applied to dy (dropout is
//! linear in x for a fixed mask, and its own adjoint).

use crate::error::{Error, Result};
use crate::gpu::{
    bytes_of, shader_struct, wgsl_file, workgroups_for, Dispatch, Shader, WORKGROUP_INDEX,
};
use crate::graph::{BackwardCtx, EncodeCtx, Graph, NodeId, Op, SpatialMap};
use crate::tensor::{DType, Shape, Tensor};

pub static SHADER: Shader = Shader {
    name: "dropout",
    file: wgsl_file!("ops/dropout.wgsl", [&WORKGROUP_INDEX]),
    subgroups: false,
    structs: &[("Params", Params::LAYOUT)],
};
const WORKGROUP: usize = 256;

shader_struct! {
    struct Params {
        n: u32,
        threshold: u32,
        scale: f32,
        stream: u32,
    }
}

/// Training-mode dropout of probability `p` in [0, 1); inputs (x, seed), seed u32 [1]. An
/// element is dropped when its 32-bit hash is below `threshold(p)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    pub p: f32,
    /// Tells apart the masks of dropout nodes fed the same seed (`Graph::dropout` uses the
    /// node's index).
    pub stream: u32,
}

impl Dropout {
    /// Checks that p is in [0, 1).
    pub fn validate(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.p) {
            return Err(Error::Invalid(format!(
                "dropout: the probability p must be in [0, 1), not {}",
                self.p
            )));
        }
        Ok(())
    }

    /// floor(p * 2^32): hashes below it drop their element.
    pub fn threshold(&self) -> u32 {
        (self.p as f64 * 4294967296.0) as u32
    }

    /// 1 / (1 - p), the scale of kept elements.
    pub fn scale(&self) -> f32 {
        (1.0 / (1.0 - self.p as f64)) as f32
    }
}

impl Op for Dropout {
    fn name(&self) -> &'static str {
        "dropout"
    }

    fn spatial_map(&self, _inputs: &[&Shape]) -> Option<SpatialMap> {
        Some(SpatialMap::Pointwise)
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        self.validate()?;
        if inputs[1].numel() != 1 {
            return Err(Error::shape(
                self.name(),
                format!("the seed must be one u32 value, not {}", inputs[1]),
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
        if inputs[0].dtype != DType::F32 || inputs[1].dtype != DType::U32 {
            return Err(Error::Invalid(format!(
                "dropout: expects an f32 tensor and a u32 seed, not {:?} and {:?}",
                inputs[0].dtype, inputs[1].dtype
            )));
        }
        let n = output.shape.numel();
        let params = Params {
            n: n as u32,
            threshold: self.threshold(),
            scale: self.scale(),
            stream: self.stream,
        };
        Ok(vec![ctx.gpu.dispatch(
            &SHADER,
            "dropout",
            bytes_of(&params),
            &[&inputs[0].buffer, &inputs[1].buffer],
            &[&output.buffer],
            workgroups_for(n, WORKGROUP),
        )?])
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        Ok(vec![
            Some(g.apply(*self, &[ctx.grad, ctx.inputs[1]])?),
            None,
        ])
    }
}

impl Graph {
    /// Training-mode dropout of `x` with probability `p` in [0, 1), its mask drawn from the u32
    /// input `seed` of shape [1] (`Graph::input_u32`; write a new value each step).
    pub fn dropout(&mut self, x: NodeId, p: f32, seed: NodeId) -> Result<NodeId> {
        for (what, id, dtype) in [("x", x, DType::F32), ("seed", seed, DType::U32)] {
            if id.index() < self.nodes().len() && self.node(id).dtype != dtype {
                return Err(Error::Invalid(format!(
                    "dropout: {what} must be {dtype:?}, not {:?}",
                    self.node(id).dtype
                )));
            }
        }
        let stream = self.nodes().len() as u32;
        self.apply(Dropout { p, stream }, &[x, seed])
    }

    /// Inference-mode dropout: `x` itself, once `p` is checked to be in [0, 1).
    pub fn dropout_inference(&mut self, x: NodeId, p: f32) -> Result<NodeId> {
        Dropout { p, stream: 0 }.validate()?;
        Ok(x)
    }
}
