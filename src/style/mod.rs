//! Neural style transfer (Gatys, Ecker & Bethge 2015): optimise an image so that its features in
//! a pretrained CNN match a content photo's and its Gram matrices match a painting's.

mod lbfgs;
mod problem;

pub use lbfgs::{line_search, Lbfgs, LineSearch};
pub use problem::{ImageData, Losses, Objective, StyleProblem};
