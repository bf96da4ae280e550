//! Parameter initialisation as `torch.nn.init` defines it, drawn from a seeded [`Rng`] so that
//! the same seed gives the same parameters bit for bit. Fans follow PyTorch's layouts: a linear
//! weight is [out, in], a convolution weight [O, I, k...]: fan_in = I * prod(k), fan_out =
//! O * prod(k).

use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::Shape;

/// Which fan Kaiming initialisation preserves the variance of: `FanIn` the forward pass's
/// activations, `FanOut` the backward pass's gradients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanMode {
    FanIn,
    FanOut,
}

/// The nonlinearity that follows a layer, for `torch.nn.init.calculate_gain`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Nonlinearity {
    /// Also convolutions and sigmoid: gain 1.
    Linear,
    Sigmoid,
    Tanh,
    Relu,
    /// Negative slope.
    LeakyRelu(f64),
    Selu,
}

impl Nonlinearity {
    /// `torch.nn.init.calculate_gain`.
    pub fn gain(self) -> f64 {
        match self {
            Nonlinearity::Linear | Nonlinearity::Sigmoid => 1.0,
            Nonlinearity::Tanh => 5.0 / 3.0,
            Nonlinearity::Relu => 2f64.sqrt(),
            Nonlinearity::LeakyRelu(slope) => (2.0 / (1.0 + slope * slope)).sqrt(),
            Nonlinearity::Selu => 0.75,
        }
    }
}

/// How to fill a new parameter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Biases.
    Zeros,
    Constant(f32),
    /// Uniform in [low, high).
    Uniform {
        low: f64,
        high: f64,
    },
    Normal {
        mean: f64,
        std: f64,
    },
    /// He et al.: normal with std = gain / sqrt(fan).
    KaimingNormal {
        mode: FanMode,
        nonlinearity: Nonlinearity,
    },
    /// He et al.: uniform in [-b, b), b = gain * sqrt(3 / fan).
    KaimingUniform {
        mode: FanMode,
        nonlinearity: Nonlinearity,
    },
    /// Glorot and Bengio: normal with std = gain * sqrt(2 / (fan_in + fan_out)).
    XavierNormal {
        gain: f64,
    },
    /// Glorot and Bengio: uniform in [-b, b), b = gain * sqrt(6 / (fan_in + fan_out)).
    XavierUniform {
        gain: f64,
    },
}

impl Init {
    /// Kaiming normal for a layer followed by ReLU, fan_in mode.
    pub const fn kaiming_normal() -> Self {
        Init::KaimingNormal {
            mode: FanMode::FanIn,
            nonlinearity: Nonlinearity::Relu,
        }
    }

    /// Kaiming uniform for a layer followed by ReLU, fan_in mode.
    pub const fn kaiming_uniform() -> Self {
        Init::KaimingUniform {
            mode: FanMode::FanIn,
            nonlinearity: Nonlinearity::Relu,
        }
    }

    /// Xavier normal with gain 1.
    pub const fn xavier_normal() -> Self {
        Init::XavierNormal { gain: 1.0 }
    }

    /// Xavier uniform with gain 1.
    pub const fn xavier_uniform() -> Self {
        Init::XavierUniform { gain: 1.0 }
    }

    /// The distribution for `shape`: its mean and standard deviation, and whether it is
    /// uniform (over mean +- std * sqrt(3)) rather than normal. Constants have std 0.
    fn distribution(&self, shape: &Shape) -> Result<(f64, f64, bool)> {
        let fan = |mode| -> Result<f64> {
            let (fan_in, fan_out) = fans(shape)?;
            Ok(match mode {
                FanMode::FanIn => fan_in,
                FanMode::FanOut => fan_out,
            } as f64)
        };
        let glorot = || -> Result<f64> {
            let (fan_in, fan_out) = fans(shape)?;
            Ok((2.0 / (fan_in + fan_out) as f64).sqrt())
        };
        Ok(match *self {
            Init::Zeros => (0.0, 0.0, false),
            Init::Constant(v) => (v as f64, 0.0, false),
            Init::Uniform { low, high } => {
                if low.is_nan() || high.is_nan() || low > high {
                    return Err(Error::Invalid(format!(
                        "init: uniform bounds [{low}, {high}) are empty"
                    )));
                }
                ((low + high) / 2.0, (high - low) / 12f64.sqrt(), true)
            }
            Init::Normal { mean, std } => (mean, std, false),
            Init::KaimingNormal { mode, nonlinearity } => {
                (0.0, nonlinearity.gain() / fan(mode)?.sqrt(), false)
            }
            Init::KaimingUniform { mode, nonlinearity } => {
                (0.0, nonlinearity.gain() / fan(mode)?.sqrt(), true)
            }
            Init::XavierNormal { gain } => (0.0, gain * glorot()?, false),
            Init::XavierUniform { gain } => (0.0, gain * glorot()?, true),
        })
    }

    /// The standard deviation of the values this gives for `shape`.
    pub fn std(&self, shape: &Shape) -> Result<f64> {
        Ok(self.distribution(shape)?.1)
    }

    /// `shape.numel()` values drawn from `rng`, row-major.
    pub fn values(&self, shape: &Shape, rng: &mut Rng) -> Result<Vec<f32>> {
        let (mean, std, uniform) = self.distribution(shape)?;
        if !(mean.is_finite() && std.is_finite() && std >= 0.0) {
            return Err(Error::Invalid(format!(
                "init: {self:?} gives mean {mean} and std {std} for shape {shape}"
            )));
        }
        let n = shape.numel();
        if std == 0.0 {
            return Ok(vec![mean as f32; n]);
        }
        Ok(if uniform {
            let bound = std * 3f64.sqrt();
            (0..n)
                .map(|_| rng.range(mean - bound, mean + bound) as f32)
                .collect()
        } else {
            (0..n).map(|_| (mean + std * rng.normal()) as f32).collect()
        })
    }
}

/// (fan_in, fan_out) of a weight in PyTorch's layout: [out, in] or [O, I, k...]. Needs at
/// least two dimensions, as in PyTorch.
pub fn fans(shape: &Shape) -> Result<(usize, usize)> {
    let dims = shape.dims();
    if dims.len() < 2 {
        return Err(Error::shape(
            "init",
            format!("fan in and fan out need a weight of rank >= 2, not {shape}"),
        ));
    }
    let receptive: usize = dims[2..].iter().product();
    Ok((dims[1] * receptive, dims[0] * receptive))
}
