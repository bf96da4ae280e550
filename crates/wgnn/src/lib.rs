//! wgnn: a deep-learning engine on wgpu with hand-written WGSL kernels and reverse-mode autodiff.
//!
//! - [`gpu`]: adapter, device, pipeline cache, buffers.
//! - [`tensor`]: shapes and GPU tensors.
//! - [`graph`]: symbolic graphs, the [`Op`](graph::Op) contract, compiled plans.
//! - [`ops`]: one module per op family (forward kernels and backward rules) with its shader,
//!   and reverse-mode autodiff over them.
//! - [`nn`], [`optim`]: parameters, initialisation, safetensors I/O; GPU optimisers.
//! - [`files`]: atomic writes and output checks before long work.

pub mod error;
pub mod files;
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

/// Every shader of the crate, for validation with naga in the tests.
pub fn all_shaders() -> Vec<&'static gpu::Shader> {
    vec![
        &ops::activation::SHADER,
        &ops::batch_norm::SHADER,
        &ops::concat::SHADER,
        &ops::conv::tiled::SHADER,
        &ops::conv::subgroup::SHADER,
        &ops::conv::grouped::SHADER,
        &ops::conv::REDUCE_SHADER,
        &ops::dropout::SHADER,
        &ops::elementwise::SHADER,
        &ops::gram::tiled::SHADER,
        &ops::gram::subgroup::SHADER,
        &ops::gram::REDUCE_SHADER,
        &ops::loss::SHADER,
        &ops::matmul::tiled::SHADER,
        &ops::matmul::subgroup::SHADER,
        &ops::norm::SHADER,
        &ops::pad::SHADER,
        &ops::pool::SHADER,
        &ops::pool::indices::UNPOOL_SHADER,
        &ops::reduce::SHADER,
        &ops::resize::SHADER,
        &ops::softmax::SHADER,
        &ops::view::SHADER,
        &optim::SHADER,
    ]
}
