//! Stochastic gradient descent with momentum, as `torch.optim.SGD` with dampening 0:
//! g = grad + wd * param; v = momentum * v + g; param -= lr * (nesterov ? g + momentum * v : v)
//! (without momentum: param -= lr * g).

use super::schedule::{check_learning_rate, Schedule, UpdateParams, NESTEROV};
use super::state::{check_slots, NamedState};
use super::{Optimizer, SHADER};
use crate::error::{Error, Result};
use crate::gpu::{bytes_of, workgroups_for, Dispatch, Gpu};
use crate::graph::{UpdateRule, UpdateSlot};
use crate::tensor::Tensor;

const WORKGROUP: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// The initial learning rate (see `Optimizer::set_learning_rate`).
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            momentum: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }
}

pub struct Sgd {
    config: SgdConfig,
    schedule: Schedule,
    state: NamedState,
}

impl Sgd {
    pub fn new(gpu: &Gpu, config: SgdConfig) -> Result<Self> {
        check_learning_rate(config.lr)?;
        if !(config.momentum >= 0.0 && config.momentum.is_finite()) {
            return Err(Error::Invalid(format!(
                "sgd: momentum must be >= 0, not {}",
                config.momentum
            )));
        }
        if !(config.weight_decay >= 0.0 && config.weight_decay.is_finite()) {
            return Err(Error::Invalid(format!(
                "sgd: weight decay must be >= 0, not {}",
                config.weight_decay
            )));
        }
        if config.nesterov && config.momentum == 0.0 {
            return Err(Error::Invalid(
                "sgd: Nesterov momentum needs a momentum > 0".into(),
            ));
        }
        let kinds: &'static [&'static str] = if config.momentum > 0.0 {
            &["momentum_buffer"]
        } else {
            &[]
        };
        Ok(Self {
            config,
            schedule: Schedule::new(gpu, "sgd schedule", config.lr)?,
            state: NamedState::new("sgd", kinds),
        })
    }

    pub fn config(&self) -> &SgdConfig {
        &self.config
    }
}

impl UpdateRule for Sgd {
    fn prepare(&mut self, gpu: &Gpu, slots: &[UpdateSlot<'_>]) -> Result<Vec<Dispatch>> {
        check_slots(Optimizer::name(self), slots)?;
        let mut dispatches = vec![self.schedule.advance(gpu, 0.0, 0.0)?];
        for slot in slots {
            let n = slot.param.shape.numel();
            let params = UpdateParams {
                n: n as u32,
                flags: if self.config.nesterov { NESTEROV } else { 0 },
                momentum: self.config.momentum,
                weight_decay: self.config.weight_decay,
                ..Default::default()
            };
            let state = self.state.ensure(gpu, slot.name, &slot.param.shape)?;
            let mut writes = vec![&*slot.param.buffer];
            writes.extend(state.iter().map(|t| &*t.buffer));
            dispatches.push(gpu.dispatch(
                &SHADER,
                if state.is_empty() {
                    "sgd"
                } else {
                    "sgd_momentum"
                },
                bytes_of(&params),
                &[self.schedule.buffer(), &slot.grad.buffer],
                &writes,
                workgroups_for(n, WORKGROUP),
            )?);
        }
        Ok(dispatches)
    }
}

impl Optimizer for Sgd {
    fn name(&self) -> &'static str {
        "sgd"
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
