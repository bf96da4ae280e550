//! Neural style transfer (Gatys, Ecker & Bethge 2015): optimise an image so that its features in
//! a pretrained CNN match a content photo's and its Gram matrices match a painting's.
//!
//! - [`problem`](StyleProblem): the objective on the GPU (compiled plans, J and dJ/dx).
//! - [`lbfgs`](Lbfgs): L-BFGS with a monotone line search on the CPU.
//! - [`run`](mod@run): a whole `stylize` run from options to a saved picture.

mod lbfgs;
mod problem;
pub mod run;

pub use lbfgs::{line_search, Lbfgs, LineSearch};
pub use problem::{largest_tensor_bytes, ImageData, Losses, Objective, StyleProblem};
