//! Optimiser steps in float64, written after PyTorch's `torch.optim.SGD` (dampening 0) and
//! `torch.optim.Adam` / `AdamW` single-tensor loops. Hyperparameters are the f32 values the GPU
//! uses, widened, so that only the arithmetic differs.

use wgnn::optim::{AdamConfig, SgdConfig};

/// One SGD step at learning rate `lr`; `momentum_buffer` is ignored without momentum.
pub fn sgd_step(
    config: &SgdConfig,
    lr: f64,
    param: &mut [f64],
    momentum_buffer: &mut [f64],
    grad: &[f64],
) {
    let mu = config.momentum as f64;
    let wd = config.weight_decay as f64;
    for i in 0..param.len() {
        let g = grad[i] + wd * param[i];
        let direction = if mu != 0.0 {
            momentum_buffer[i] = mu * momentum_buffer[i] + g;
            if config.nesterov {
                g + mu * momentum_buffer[i]
            } else {
                momentum_buffer[i]
            }
        } else {
            g
        };
        param[i] -= lr * direction;
    }
}

/// Adam step number `step` (1 for the first) at learning rate `lr`.
pub fn adam_step(
    config: &AdamConfig,
    lr: f64,
    step: u64,
    param: &mut [f64],
    exp_avg: &mut [f64],
    exp_avg_sq: &mut [f64],
    grad: &[f64],
) {
    let (beta1, beta2) = (config.beta1 as f64, config.beta2 as f64);
    let (eps, wd) = (config.eps as f64, config.weight_decay as f64);
    let bias_correction1 = 1.0 - beta1.powi(step as i32);
    let bias_correction2 = 1.0 - beta2.powi(step as i32);
    let step_size = lr / bias_correction1;
    for i in 0..param.len() {
        let mut g = grad[i];
        if config.decoupled_weight_decay {
            param[i] *= 1.0 - lr * wd;
        } else {
            g += wd * param[i];
        }
        exp_avg[i] = beta1 * exp_avg[i] + (1.0 - beta1) * g;
        exp_avg_sq[i] = beta2 * exp_avg_sq[i] + (1.0 - beta2) * g * g;
        let denom = exp_avg_sq[i].sqrt() / bias_correction2.sqrt() + eps;
        param[i] -= step_size * exp_avg[i] / denom;
    }
}
