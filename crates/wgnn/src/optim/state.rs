//! Optimiser state (momentum buffers, Adam's moments): one tensor per kind per parameter name,
//! created once and kept across plans, exported and loaded for checkpoints.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::UpdateSlot;
use crate::tensor::{DType, Shape, Tensor};

pub(super) struct NamedState {
    optimizer: &'static str,
    /// PyTorch's state keys, e.g. `exp_avg`; the tensors of a parameter follow this order.
    kinds: &'static [&'static str],
    tensors: BTreeMap<String, Vec<Tensor>>,
}

impl NamedState {
    pub fn new(optimizer: &'static str, kinds: &'static [&'static str]) -> Self {
        Self {
            optimizer,
            kinds,
            tensors: BTreeMap::new(),
        }
    }

    /// The state tensors of parameter `name` (one per kind), created as zeros on first use.
    pub fn ensure(&mut self, gpu: &Gpu, name: &str, shape: &Shape) -> Result<&[Tensor]> {
        if let Some(existing) = self.tensors.get(name) {
            if let Some(t) = existing.first() {
                if &t.shape != shape {
                    return Err(Error::shape(
                        self.optimizer,
                        format!(
                            "state of parameter `{name}` is {} but the parameter is {shape}",
                            t.shape
                        ),
                    ));
                }
            }
        } else {
            let zeros = self
                .kinds
                .iter()
                .map(|_| Tensor::filled(gpu, shape.clone(), 0.0))
                .collect::<Result<Vec<_>>>()?;
            self.tensors.insert(name.to_string(), zeros);
        }
        Ok(&self.tensors[name])
    }

    /// `(<parameter>.<kind>, tensor)` in name order.
    pub fn export(&self) -> Vec<(String, Tensor)> {
        self.tensors
            .iter()
            .flat_map(|(name, tensors)| {
                self.kinds
                    .iter()
                    .zip(tensors)
                    .map(move |(kind, t)| (format!("{name}.{kind}"), t.clone()))
            })
            .collect()
    }

    /// Copies `state` into the state buffers (creating those not there yet). Everything is
    /// checked before anything is written.
    pub fn load(&mut self, gpu: &Gpu, state: &[(String, Tensor)]) -> Result<()> {
        let mut targets = Vec::with_capacity(state.len());
        for (key, tensor) in state {
            let (name, kind) = key
                .rsplit_once('.')
                .and_then(|(name, kind)| {
                    let k = self.kinds.iter().position(|&x| x == kind)?;
                    Some((name, k))
                })
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "{}: unknown state tensor `{key}` (expected <parameter>.<kind>, kind one of {:?})",
                        self.optimizer, self.kinds
                    ))
                })?;
            if tensor.dtype != DType::F32 {
                return Err(Error::Invalid(format!(
                    "{}: state tensor `{key}` holds {:?}, not F32",
                    self.optimizer, tensor.dtype
                )));
            }
            if let Some(existing) = self.tensors.get(name) {
                if existing[kind].shape != tensor.shape {
                    return Err(Error::shape(
                        self.optimizer,
                        format!(
                            "state tensor `{key}` is {} but the optimiser holds {}",
                            tensor.shape, existing[kind].shape
                        ),
                    ));
                }
            }
            targets.push((name, kind, tensor));
        }
        // Two loaded kinds of one new parameter must agree on its shape.
        let mut shapes: BTreeMap<&str, &Shape> = BTreeMap::new();
        for &(name, _, tensor) in &targets {
            if let Some(shape) = shapes.insert(name, &tensor.shape) {
                if shape != &tensor.shape {
                    return Err(Error::shape(
                        self.optimizer,
                        format!(
                            "state tensors of `{name}` disagree on its shape: {shape} and {}",
                            tensor.shape
                        ),
                    ));
                }
            }
        }
        for (name, shape) in shapes {
            self.ensure(gpu, name, shape)?;
        }
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        for (name, kind, tensor) in targets {
            let target = &self.tensors[name][kind];
            encoder.copy_buffer_to_buffer(
                &tensor.buffer,
                0,
                &target.buffer,
                0,
                tensor.shape.bytes(),
            );
        }
        gpu.validated(self.optimizer, || gpu.queue.submit([encoder.finish()]))?;
        Ok(())
    }
}

/// Every gradient matches its parameter, both are f32 in distinct buffers, and no parameter
/// appears twice (it would be updated twice per step).
pub(super) fn check_slots(optimizer: &str, slots: &[UpdateSlot<'_>]) -> Result<()> {
    let mut seen = BTreeSet::new();
    for slot in slots {
        if !seen.insert(slot.name) {
            return Err(Error::Invalid(format!(
                "{optimizer}: parameter `{}` is listed twice",
                slot.name
            )));
        }
        if slot.param.shape != slot.grad.shape {
            return Err(Error::shape(
                optimizer,
                format!(
                    "gradient of `{}` is {} but the parameter is {}",
                    slot.name, slot.grad.shape, slot.param.shape
                ),
            ));
        }
        if slot.param.buffer == slot.grad.buffer {
            return Err(Error::Invalid(format!(
                "{optimizer}: the gradient of `{}` is the parameter's own buffer",
                slot.name
            )));
        }
        if slot.param.dtype != DType::F32 || slot.grad.dtype != DType::F32 {
            return Err(Error::Invalid(format!(
                "{optimizer}: parameter `{}` and its gradient must be F32",
                slot.name
            )));
        }
    }
    Ok(())
}
