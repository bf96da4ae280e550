//! Ops: each family has a WGSL file in `shaders/` and a Rust file here with the same name that
//! infers output shapes, fills the uniform parameters, prepares the dispatches and states the
//! backward rule (as more graph nodes). `Graph` methods for each family live in its file.
//! Reverse-mode autodiff ([`autodiff`]) sits here too: it chains the families' backward rules
//! and sums the gradients of a node that feeds several others with `add`.

pub mod activation;
mod autodiff;
pub mod concat;
pub mod conv;
pub mod elementwise;
pub mod gram;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod pool;
pub mod reduce;
