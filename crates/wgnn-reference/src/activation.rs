//! Activations in float64 (erf and erfc from `libm`).

use std::f64::consts::{FRAC_1_SQRT_2, PI};
use wgnn::ops::activation::Activation;

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// sqrt(2 / pi) (v + 0.044715 v^3), the argument u of tanh in GELU's tanh approximation. The
/// functions below use 1 + tanh(u) = 2 sigmoid(2u) and 1 - tanh(u)^2 = 4 sigmoid(2u)
/// sigmoid(-2u), which keep their relative accuracy where tanh(u) is near -1.
fn gelu_tanh_argument(v: f64) -> f64 {
    (2.0 / PI).sqrt() * (v + 0.044715 * v.powi(3))
}

/// The standard normal CDF, through erfc so that the left tail keeps its relative accuracy.
fn normal_cdf(v: f64) -> f64 {
    0.5 * libm::erfc(-v * FRAC_1_SQRT_2)
}

fn step(condition: bool) -> f64 {
    if condition {
        1.0
    } else {
        0.0
    }
}

pub fn forward(kind: Activation, x: &[f64]) -> Vec<f64> {
    x.iter()
        .map(|&v| match kind {
            Activation::Relu => v.max(0.0),
            Activation::LeakyRelu(a) => {
                if v > 0.0 {
                    v
                } else {
                    a as f64 * v
                }
            }
            Activation::Sigmoid => sigmoid(v),
            Activation::Tanh => v.tanh(),
            Activation::Elu(a) => {
                if v > 0.0 {
                    v
                } else {
                    a as f64 * (v.exp() - 1.0)
                }
            }
            Activation::Silu => v * sigmoid(v),
            Activation::Gelu => v * normal_cdf(v),
            Activation::GeluTanh => v * sigmoid(2.0 * gelu_tanh_argument(v)),
            Activation::HardSwish => v * (v + 3.0).clamp(0.0, 6.0) / 6.0,
            Activation::HardSigmoid { alpha, beta } => {
                (alpha as f64 * v + beta as f64).clamp(0.0, 1.0)
            }
            Activation::Clamp { min, max } => v.max(min as f64).min(max as f64),
            Activation::Erf => libm::erf(v),
        })
        .collect()
}

pub fn backward(kind: Activation, x: &[f64], dy: &[f64]) -> Vec<f64> {
    x.iter()
        .zip(dy)
        .map(|(&v, &d)| {
            d * match kind {
                Activation::Relu => step(v > 0.0),
                Activation::LeakyRelu(a) => {
                    if v > 0.0 {
                        1.0
                    } else {
                        a as f64
                    }
                }
                Activation::Sigmoid => sigmoid(v) * (1.0 - sigmoid(v)),
                Activation::Tanh => 1.0 - v.tanh().powi(2),
                Activation::Elu(a) => {
                    if v > 0.0 {
                        1.0
                    } else {
                        a as f64 * v.exp()
                    }
                }
                Activation::Silu => sigmoid(v) * (1.0 + v * sigmoid(-v)),
                Activation::Gelu => normal_cdf(v) + v * (-0.5 * v * v).exp() / (2.0 * PI).sqrt(),
                Activation::GeluTanh => {
                    let u = gelu_tanh_argument(v);
                    let du = (2.0 / PI).sqrt() * (1.0 + 3.0 * 0.044715 * v * v);
                    sigmoid(2.0 * u) + 2.0 * v * sigmoid(2.0 * u) * sigmoid(-2.0 * u) * du
                }
                Activation::HardSwish => {
                    if v < -3.0 {
                        0.0
                    } else if v > 3.0 {
                        1.0
                    } else {
                        (2.0 * v + 3.0) / 6.0
                    }
                }
                Activation::HardSigmoid { alpha, beta } => {
                    let u = alpha as f64 * v + beta as f64;
                    alpha as f64 * step(u > 0.0 && u < 1.0)
                }
                Activation::Clamp { min, max } => step(v >= min as f64 && v <= max as f64),
                Activation::Erf => 2.0 / PI.sqrt() * (-v * v).exp(),
            }
        })
        .collect()
}
