//! Activations (ReLU, LeakyReLU, Sigmoid, Tanh, ELU): `activation.wgsl`.
//! Backward: dx = dy * f'(x), one kernel for every kind.

use crate::error::{Error, Result};
use crate::gpu::{
    bytes_of, shader_struct, wgsl_file, workgroups_for, Dispatch, Shader, WORKGROUP_INDEX,
};
use crate::graph::{BackwardCtx, EncodeCtx, Graph, NodeId, Op, SpatialMap};
use crate::tensor::{Shape, Tensor};

pub static SHADER: Shader = Shader {
    name: "activation",
    file: wgsl_file!("ops/activation.wgsl", [&WORKGROUP_INDEX, &super::SIGMOID]),
    subgroups: false,
    structs: &[("Params", Params::LAYOUT)],
};
const WORKGROUP: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Relu,
    LeakyRelu(f32),
    Sigmoid,
    Tanh,
    Elu(f32),
}

impl Activation {
    fn kind(self) -> (u32, f32) {
        match self {
            Activation::Relu => (0, 0.0),
            Activation::LeakyRelu(a) => (1, a),
            Activation::Sigmoid => (2, 0.0),
            Activation::Tanh => (3, 0.0),
            Activation::Elu(a) => (4, a),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::LeakyRelu(_) => "leaky_relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Elu(_) => "elu",
        }
    }
}

shader_struct! {
    struct Params {
        n: u32,
        kind: u32,
        alpha: f32,
        _pad: u32,
    }
}

fn params(activation: Activation, n: usize) -> Params {
    let (kind, alpha) = activation.kind();
    Params {
        n: n as u32,
        kind,
        alpha,
        _pad: 0,
    }
}

/// The kernel for `n` elements and its invocations: the vec4 variant (`forward4`,
/// `backward4`) when n is a multiple of 4.
fn vectorized(entry: &'static str, n: usize) -> (&'static str, usize) {
    match (entry, n % 4) {
        ("forward", 0) => ("forward4", n / 4),
        ("backward", 0) => ("backward4", n / 4),
        _ => (entry, n),
    }
}

/// y = f(x).
#[derive(Debug)]
pub struct ActivationForward(pub Activation);

/// dx = dy * f'(x); inputs (x, dy).
#[derive(Debug)]
pub struct ActivationBackward(pub Activation);

impl Op for ActivationForward {
    fn name(&self) -> &'static str {
        self.0.name()
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
        let (entry, n) = vectorized("forward", output.shape.numel());
        Ok(vec![ctx.gpu.dispatch(
            &SHADER,
            entry,
            bytes_of(&params(self.0, n)),
            &[&inputs[0].buffer],
            &[&output.buffer],
            workgroups_for(n, WORKGROUP),
        )?])
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        Ok(vec![Some(g.apply(
            ActivationBackward(self.0),
            &[ctx.inputs[0], ctx.grad],
        )?)])
    }
}

impl Op for ActivationBackward {
    fn name(&self) -> &'static str {
        "activation_backward"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        if inputs[0] != inputs[1] {
            return Err(Error::shape(
                self.name(),
                "x and dy must have the same shape",
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
        let (entry, n) = vectorized("backward", output.shape.numel());
        Ok(vec![ctx.gpu.dispatch(
            &SHADER,
            entry,
            bytes_of(&params(self.0, n)),
            &[&inputs[0].buffer, &inputs[1].buffer],
            &[&output.buffer],
            workgroups_for(n, WORKGROUP),
        )?])
    }
}

impl Graph {
    pub fn activation(&mut self, x: NodeId, activation: Activation) -> Result<NodeId> {
        self.apply(ActivationForward(activation), &[x])
    }

    pub fn relu(&mut self, x: NodeId) -> Result<NodeId> {
        self.activation(x, Activation::Relu)
    }

    pub fn leaky_relu(&mut self, x: NodeId, alpha: f32) -> Result<NodeId> {
        self.activation(x, Activation::LeakyRelu(alpha))
    }

    pub fn sigmoid(&mut self, x: NodeId) -> Result<NodeId> {
        self.activation(x, Activation::Sigmoid)
    }

    pub fn tanh(&mut self, x: NodeId) -> Result<NodeId> {
        self.activation(x, Activation::Tanh)
    }

    pub fn elu(&mut self, x: NodeId, alpha: f32) -> Result<NodeId> {
        self.activation(x, Activation::Elu(alpha))
    }
}
