//! Pointwise activations: ReLU, leaky ReLU, sigmoid, tanh, ELU, SiLU, GELU (exact, with erf, and
//! the tanh approximation), hard-swish, hard-sigmoid, clamp and erf: `activation.wgsl`, with the
//! f32 erf of `erf.wgsl` (WGSL has none).
//! Backward: dx = dy * f'(x), one kernel for every kind.

use crate::error::{Error, Result};
use crate::gpu::{
    bytes_of, shader_struct, wgsl_file, workgroups_for, Dispatch, KernelCall, Shader, WgslFile,
    WORKGROUP_INDEX,
};
use crate::graph::{BackwardCtx, EncodeCtx, Graph, NodeId, Op, SpatialMap};
use crate::tensor::{Shape, Tensor};

pub static SHADER: Shader = Shader {
    name: "activation",
    file: wgsl_file!(
        "ops/activation.wgsl",
        [&WORKGROUP_INDEX, &super::SIGMOID, &ERF]
    ),
    subgroups: false,
    structs: &[("Params", Params::LAYOUT)],
};
const WORKGROUP: usize = 256;

/// erf(z) and erfc(z) in f32 for the GELU and erf kinds.
static ERF: WgslFile = wgsl_file!("ops/erf.wgsl");

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Relu,
    LeakyRelu(f32),
    Sigmoid,
    Tanh,
    Elu(f32),
    /// x sigmoid(x) (also called swish).
    Silu,
    /// x Phi(x), Phi the standard normal CDF (0.5 (1 + erf(x / sqrt 2))): PyTorch's
    /// `gelu(approximate="none")`, ONNX's `Gelu`.
    Gelu,
    /// 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))): PyTorch's `gelu(approximate="tanh")`.
    GeluTanh,
    /// x relu6(x + 3) / 6 (PyTorch's `hardswish`, ONNX's `HardSwish`).
    HardSwish,
    /// clamp(alpha x + beta, 0, 1): PyTorch's `hardsigmoid` is alpha 1/6, beta 0.5; ONNX's
    /// `HardSigmoid` defaults to alpha 0.2, beta 0.5.
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    /// min(max(x, min), max); the gradient passes where min <= x <= max (PyTorch's `clamp`).
    /// Bounds may be infinite.
    Clamp {
        min: f32,
        max: f32,
    },
    /// The error function (ONNX's `Erf`).
    Erf,
}

impl Activation {
    /// The kernel's KIND and its two parameters (`alpha`, `beta`).
    fn kind(self) -> (u32, f32, f32) {
        match self {
            Activation::Relu => (0, 0.0, 0.0),
            Activation::LeakyRelu(a) => (1, a, 0.0),
            Activation::Sigmoid => (2, 0.0, 0.0),
            Activation::Tanh => (3, 0.0, 0.0),
            Activation::Elu(a) => (4, a, 0.0),
            Activation::Silu => (5, 0.0, 0.0),
            Activation::Gelu => (6, 0.0, 0.0),
            Activation::GeluTanh => (7, 0.0, 0.0),
            Activation::HardSwish => (8, 0.0, 0.0),
            Activation::HardSigmoid { alpha, beta } => (9, alpha, beta),
            Activation::Clamp { min, max } => (10, min, max),
            Activation::Erf => (11, 0.0, 0.0),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::LeakyRelu(_) => "leaky_relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Elu(_) => "elu",
            Activation::Silu => "silu",
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_tanh",
            Activation::HardSwish => "hard_swish",
            Activation::HardSigmoid { .. } => "hard_sigmoid",
            Activation::Clamp { .. } => "clamp",
            Activation::Erf => "erf",
        }
    }

    /// PyTorch's `hardsigmoid`: relu6(x + 3) / 6.
    pub fn hard_sigmoid() -> Self {
        Activation::HardSigmoid {
            alpha: 1.0 / 6.0,
            beta: 0.5,
        }
    }

    /// Checks the parameters: slopes and offsets finite, clamp bounds not NaN and in order.
    pub fn validate(self) -> Result<()> {
        let finite = |what: &str, v: f32| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(Error::Invalid(format!(
                    "{}: {what} must be finite, not {v}",
                    self.name()
                )))
            }
        };
        match self {
            Activation::LeakyRelu(a) | Activation::Elu(a) => finite("alpha", a),
            Activation::HardSigmoid { alpha, beta } => {
                finite("alpha", alpha)?;
                finite("beta", beta)
            }
            Activation::Clamp { min, max } => {
                if min.is_nan() || max.is_nan() || min > max {
                    return Err(Error::Invalid(format!(
                        "clamp: needs min <= max (neither NaN), not min {min} and max {max}"
                    )));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

shader_struct! {
    struct Params {
        n: u32,
        alpha: f32,
        beta: f32,
    }
}

/// The dispatch of `entry` for `activation` over n elements (or vec4s): the kind as the pipeline
/// constant KIND, its parameters in the uniform.
fn dispatch(
    ctx: &EncodeCtx<'_>,
    activation: Activation,
    entry: &'static str,
    n: usize,
    reads: &[&wgpu::Buffer],
    output: &Tensor,
) -> Result<Dispatch> {
    let (kind, alpha, beta) = activation.kind();
    let params = Params {
        n: n as u32,
        alpha,
        beta,
    };
    ctx.gpu.prepare(KernelCall {
        shader: &SHADER,
        entry,
        constants: &[("KIND", kind as f64)],
        params: bytes_of(&params),
        reads,
        writes: &[&output.buffer],
        workgroups: workgroups_for(n, WORKGROUP),
    })
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
        self.0.validate()?;
        Ok(inputs[0].clone())
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let (entry, n) = vectorized("forward", output.shape.numel());
        Ok(vec![dispatch(
            ctx,
            self.0,
            entry,
            n,
            &[&inputs[0].buffer],
            output,
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
        self.0.validate()?;
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
        Ok(vec![dispatch(
            ctx,
            self.0,
            entry,
            n,
            &[&inputs[0].buffer, &inputs[1].buffer],
            output,
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

    pub fn silu(&mut self, x: NodeId) -> Result<NodeId> {
        self.activation(x, Activation::Silu)
    }

    /// GELU with the exact normal CDF (erf).
    pub fn gelu(&mut self, x: NodeId) -> Result<NodeId> {
        self.activation(x, Activation::Gelu)
    }

    /// GELU's tanh approximation.
    pub fn gelu_tanh(&mut self, x: NodeId) -> Result<NodeId> {
        self.activation(x, Activation::GeluTanh)
    }

    pub fn hard_swish(&mut self, x: NodeId) -> Result<NodeId> {
        self.activation(x, Activation::HardSwish)
    }

    /// clamp(alpha x + beta, 0, 1); PyTorch's `hardsigmoid` is alpha 1/6, beta 0.5
    /// ([`Activation::hard_sigmoid`]).
    pub fn hard_sigmoid(&mut self, x: NodeId, alpha: f32, beta: f32) -> Result<NodeId> {
        self.activation(x, Activation::HardSigmoid { alpha, beta })
    }

    /// min(max(x, min), max), an error unless min <= max.
    pub fn clamp(&mut self, x: NodeId, min: f32, max: f32) -> Result<NodeId> {
        self.activation(x, Activation::Clamp { min, max })
    }

    pub fn erf(&mut self, x: NodeId) -> Result<NodeId> {
        self.activation(x, Activation::Erf)
    }
}
