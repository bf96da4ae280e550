//! Adam, as `torch.optim.Adam` (weight decay as L2 added to the gradient) and, with
//! `decoupled_weight_decay`, `torch.optim.AdamW` (param *= 1 - lr * wd before the update):
//! m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2;
//! param -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).

use super::schedule::{check_learning_rate, Schedule, UpdateParams, DECOUPLED};
use super::state::{check_slots, NamedState};
use super::{Optimizer, SHADER};
use crate::error::{Error, Result};
use crate::gpu::{bytes_of, workgroups_for, Dispatch, Gpu};
use crate::graph::{UpdateRule, UpdateSlot};
use crate::tensor::Tensor;

const WORKGROUP: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// The initial learning rate (see `Optimizer::set_learning_rate`).
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// AdamW: decay the parameter itself instead of adding wd * param to the gradient.
    pub decoupled_weight_decay: bool,
}

impl Default for AdamConfig {
    /// PyTorch's defaults.
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled_weight_decay: false,
        }
    }
}

pub struct Adam {
    config: AdamConfig,
    schedule: Schedule,
    state: NamedState,
}

impl Adam {
    pub fn new(gpu: &Gpu, config: AdamConfig) -> Result<Self> {
        check_learning_rate(config.lr)?;
        for (what, beta) in [("beta1", config.beta1), ("beta2", config.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(Error::Invalid(format!(
                    "adam: {what} must be in [0, 1), not {beta}"
                )));
            }
        }
        if !(config.eps >= 0.0 && config.eps.is_finite()) {
            return Err(Error::Invalid(format!(
                "adam: eps must be >= 0, not {}",
                config.eps
            )));
        }
        if !(config.weight_decay >= 0.0 && config.weight_decay.is_finite()) {
            return Err(Error::Invalid(format!(
                "adam: weight decay must be >= 0, not {}",
                config.weight_decay
            )));
        }
        Ok(Self {
            config,
            schedule: Schedule::new(gpu, "adam schedule", config.lr)?,
            state: NamedState::new("adam", &["exp_avg", "exp_avg_sq"]),
        })
    }

    pub fn config(&self) -> &AdamConfig {
        &self.config
    }
}

impl UpdateRule for Adam {
    fn prepare(&mut self, gpu: &Gpu, slots: &[UpdateSlot<'_>]) -> Result<Vec<Dispatch>> {
        check_slots(Optimizer::name(self), slots)?;
        let c = self.config;
        let mut dispatches = vec![self.schedule.advance(gpu, c.beta1, c.beta2)?];
        for slot in slots {
            let n = slot.param.shape.numel();
            let params = UpdateParams {
                n: n as u32,
                flags: if c.decoupled_weight_decay {
                    DECOUPLED
                } else {
                    0
                },
                weight_decay: c.weight_decay,
                beta1: c.beta1,
                beta2: c.beta2,
                eps: c.eps,
                ..Default::default()
            };
            let state = self.state.ensure(gpu, slot.name, &slot.param.shape)?;
            dispatches.push(gpu.dispatch(
                &SHADER,
                "adam",
                bytes_of(&params),
                &[self.schedule.buffer(), &slot.grad.buffer],
                &[&slot.param.buffer, &state[0].buffer, &state[1].buffer],
                workgroups_for(n, WORKGROUP),
            )?);
        }
        Ok(dispatches)
    }
}

impl Optimizer for Adam {
    fn name(&self) -> &'static str {
        "adam"
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        self.state.export()
    }

    fn load_state(&mut self, gpu: &Gpu, state: &[(String, Tensor)]) -> Result<()> {
        self.state.load(gpu, state)
    }

    fn schedule(&self) -> &Schedule {
        &self.schedule
    }
}
