//! Named parameter tensors (torchvision-style names such as `features.0.weight`), living on the
//! GPU and shared with every plan compiled against the store: an optimizer step in a plan
//! updates them in place.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::tensor::{Shape, Tensor};

#[derive(Clone, Debug, Default)]
pub struct ParamStore {
    tensors: BTreeMap<String, Tensor>,
}

impl ParamStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    pub fn insert(&mut self, name: &str, tensor: Tensor) {
        self.tensors.insert(name.to_string(), tensor);
    }

    /// Uploads `data` as parameter `name`.
    pub fn insert_f32(
        &mut self,
        gpu: &Gpu,
        name: &str,
        shape: impl Into<Shape>,
        data: &[f32],
    ) -> Result<()> {
        let tensor = Tensor::from_f32(gpu, shape, data)
            .map_err(|e| Error::Invalid(format!("parameter `{name}`: {e}")))?;
        self.insert(name, tensor);
        Ok(())
    }

    /// (name, tensor) in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.tensors.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Reads every parameter back to the CPU, in name order.
    pub fn to_host(&self, gpu: &Gpu) -> Result<Vec<(String, Shape, Vec<f32>)>> {
        self.tensors
            .iter()
            .map(|(k, t)| Ok((k.clone(), t.shape.clone(), t.to_vec(gpu)?)))
            .collect()
    }
}
