//! wgnn: a deep-learning engine on wgpu with hand-written WGSL kernels and reverse-mode autodiff.
//!
//! - [`gpu`]: adapter, device, pipeline cache, buffers.
//! - [`tensor`]: shapes and GPU tensors.
//! - [`ops`]: one module per op family (forward kernels and backward rules) with its shader.
//! - [`graph`]: symbolic graphs, autodiff, compiled plans.
//! - [`nn`], [`optim`]: parameters, initialisation, safetensors I/O; GPU optimisers.

pub mod error;
pub mod gpu;
pub mod graph;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod rng;
pub mod tensor;

pub use error::{Error, Result};
pub use gpu::Gpu;
pub use graph::{Graph, NodeId, Plan, PlanSpec};
pub use tensor::{Shape, Tensor};
