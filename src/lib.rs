//! wgnn: a deep-learning engine on wgpu with hand-written WGSL kernels and reverse-mode autodiff.
//!
//! - [`gpu`]: adapter, device, pipeline cache, buffers.
//! - [`tensor`]: shapes and GPU tensors.
//! - [`ops`]: one module per op family (forward kernels and backward rules), `shaders/*.wgsl`.
//! - [`graph`]: symbolic graphs, autodiff, compiled plans.
//! - [`nn`], [`optim`]: parameters, layers, optimisers.
//! - [`faces`]: one-shot face recognition: the Siamese network and its training, datasets,
//!   triplet mining, metrics, galleries, ROC plots.
//! - [`imaging`]: image files, PIL-compatible resizing, network preprocessing, colour transfer.
//! - [`assets`]: the embedded SqueezeNet weights, class names and default pictures.
//! - [`models`]: SqueezeNet v1.1 and VGG16/19 as graph builders.
//! - [`style`]: neural style transfer.
//! - [`reference`](mod@reference): float64 CPU implementations that the kernels are tested against.

pub mod assets;
pub mod classify;
pub mod error;
pub mod faces;
pub mod gpu;
pub mod graph;
pub mod imaging;
pub mod models;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod reference;
pub mod rng;
pub mod style;
pub mod tensor;

pub use error::{Error, Result};
pub use gpu::Gpu;
pub use graph::{Graph, NodeId, Plan, PlanSpec};
pub use tensor::{Shape, Tensor};
