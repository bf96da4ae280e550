//! Activations in float64.

use wgnn::ops::activation::Activation;

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
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
        })
        .collect()
}

pub fn backward(kind: Activation, x: &[f64], dy: &[f64]) -> Vec<f64> {
    x.iter()
        .zip(dy)
        .map(|(&v, &d)| {
            d * match kind {
                Activation::Relu => {
                    if v > 0.0 {
                        1.0
                    } else {
                        0.0
                    }
                }
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
            }
        })
        .collect()
}
