//! Optimisers as GPU kernels: each prepares, once per plan, the dispatches that update every
//! parameter from its gradient at the end of a step. `optim.wgsl`.
//!
//! What changes between steps (step count, learning rate, Adam's bias corrections) lives in a
//! small GPU buffer, the [`Schedule`]: a one-invocation `advance` dispatch at the start of the
//! update increments the step and derives the corrections, so a step re-creates nothing and a
//! learning-rate schedule is one `queue.write_buffer`. State buffers (momentum, Adam's moments)
//! are created once per parameter name and shared by every plan prepared with the optimiser.

mod adam;
mod schedule;
mod sgd;
mod state;

pub use adam::{Adam, AdamConfig};
pub use schedule::Schedule;

use schedule::{ScheduleValues, UpdateParams};
pub use sgd::{Sgd, SgdConfig};

use crate::error::Result;
use crate::gpu::{wgsl_file, Gpu, Shader, WORKGROUP_INDEX};
use crate::graph::UpdateRule;
use crate::tensor::Tensor;

pub static SHADER: Shader = Shader {
    name: "optim",
    file: wgsl_file!("optim/optim.wgsl", [&WORKGROUP_INDEX]),
    subgroups: false,
    structs: &[
        ("Params", UpdateParams::LAYOUT),
        ("Schedule", ScheduleValues::LAYOUT),
    ],
};

/// An optimiser: the plan's update rule (`UpdateRule::prepare`), plus what training loops and
/// checkpoints need of it.
pub trait Optimizer: UpdateRule {
    fn name(&self) -> &'static str;

    /// The state tensors for checkpoints, named `<parameter>.<kind>` (PyTorch's state keys:
    /// `momentum_buffer`, `exp_avg`, `exp_avg_sq`), in name order. They are the live buffers.
    fn state(&self) -> Vec<(String, Tensor)>;

    /// Copies checkpointed state (named as `state` names it) into the optimiser, before or after
    /// `prepare`; state of parameters not prepared yet is kept for when they are.
    fn load_state(&mut self, gpu: &Gpu, state: &[(String, Tensor)]) -> Result<()>;

    /// The step count and learning rate on the GPU.
    fn schedule(&self) -> &Schedule;

    /// Sets the learning rate from the next step on (no recompilation).
    fn set_learning_rate(&self, gpu: &Gpu, lr: f32) -> Result<()> {
        self.schedule().set_learning_rate(gpu, lr)
    }

    /// The current learning rate (reads the GPU).
    fn learning_rate(&self, gpu: &Gpu) -> Result<f32> {
        self.schedule().learning_rate(gpu)
    }

    /// Steps taken so far (reads the GPU).
    fn step_count(&self, gpu: &Gpu) -> Result<u64> {
        self.schedule().step_count(gpu)
    }

    /// Sets the step count, e.g. when resuming: Adam's bias corrections follow from it.
    fn set_step_count(&self, gpu: &Gpu, step: u64) -> Result<()> {
        self.schedule().set_step_count(gpu, step)
    }
}
