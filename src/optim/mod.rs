//! Optimisers as GPU kernels: each prepares, once per plan, the dispatches that update every
//! parameter from its gradient at the end of a step.

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu};
use crate::tensor::Tensor;

/// One parameter to update and the gradient that the plan computes for it.
pub struct UpdateSlot<'a> {
    pub name: &'a str,
    pub param: &'a Tensor,
    pub grad: &'a Tensor,
}

pub trait Optimizer {
    fn name(&self) -> &'static str;

    /// Creates the optimiser's state for these parameters (if not yet there) and the dispatches
    /// that update them in place; `Plan::compile` appends them to every step.
    fn prepare(&mut self, gpu: &Gpu, slots: &[UpdateSlot<'_>]) -> Result<Vec<Dispatch>>;
}
