//! Named parameter tensors (torchvision-style names such as `features.0.weight`), living on the
//! GPU and shared with every plan compiled against the store: an optimizer step in a plan
//! updates them in place.

use std::collections::BTreeMap;

use super::init::Init;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::Parameters;
use crate::rng::Rng;
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

    /// A new parameter `name` filled by `init`, drawn from `rng`.
    pub fn insert_init(
        &mut self,
        gpu: &Gpu,
        name: &str,
        shape: impl Into<Shape>,
        init: Init,
        rng: &mut Rng,
    ) -> Result<()> {
        let shape = shape.into();
        let values = init.values(&shape, rng).map_err(|e| match e {
            Error::Shape { op, message } => Error::Shape {
                op,
                message: format!("parameter `{name}`: {message}"),
            },
            other => Error::Invalid(format!("parameter `{name}`: {other}")),
        })?;
        self.insert_f32(gpu, name, shape, &values)
    }

    /// A layer's `<prefix>.weight` of `weight_shape` (PyTorch layout: [out, in] or
    /// [O, I, k...]) filled by `init`, and `<prefix>.bias` of [out] zeros.
    pub fn insert_weight_and_bias(
        &mut self,
        gpu: &Gpu,
        prefix: &str,
        weight_shape: impl Into<Shape>,
        init: Init,
        rng: &mut Rng,
    ) -> Result<()> {
        let weight_shape = weight_shape.into();
        if weight_shape.rank() < 2 {
            return Err(Error::shape(
                "insert_weight_and_bias",
                format!("`{prefix}.weight` must have rank >= 2, not {weight_shape}"),
            ));
        }
        let out = weight_shape.dims()[0];
        self.insert_init(gpu, &format!("{prefix}.weight"), weight_shape, init, rng)?;
        self.insert_f32(gpu, &format!("{prefix}.bias"), [out], &vec![0.0; out])
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

impl Parameters for ParamStore {
    fn parameter(&self, name: &str) -> Option<&Tensor> {
        self.get(name)
    }
}
