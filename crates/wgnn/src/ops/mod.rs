//! Ops: each family has a Rust file here that infers output shapes, fills the uniform parameters,
//! prepares the dispatches and states the backward rule (as more graph nodes), and beside it a
//! WGSL file of the same name with its kernels. `Graph` methods for each family live in its file.
//! The families whose kernels come in several designs (conv, matmul, gram: see
//! `gemm::GemmVariant`) are folders: `mod.rs` with what the designs share and one dispatcher per
//! kernel role, `common.wgsl`, and a Rust and a WGSL file per design. `pool/` is a folder for a
//! second kind of op in the family: max pooling's indices and max-unpooling (`indices.rs`). WGSL
//! that several families include sits here too: the GEMM building blocks (`gemm/`) and
//! `sigmoid.wgsl`; and so does a helper that one family includes but that is a function in its
//! own right (`erf.wgsl`).
//! Reverse-mode autodiff ([`autodiff`]) sits here too: it chains the families' backward rules
//! and sums the gradients of a node that feeds several others with `add`.

pub mod activation;
mod autodiff;
pub mod batch_norm;
pub mod concat;
pub mod conv;
pub mod dropout;
pub mod elementwise;
mod gemm;
pub mod gram;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod pad;
pub mod padding;
pub mod pool;
pub mod reduce;
pub mod resize;
pub mod softmax;
pub mod view;

use crate::gpu::{wgsl_file, WgslFile};

/// `sigmoid(v)` without overflow, for the activation and loss kernels.
static SIGMOID: WgslFile = wgsl_file!("ops/sigmoid.wgsl");
