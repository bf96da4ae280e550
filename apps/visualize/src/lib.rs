//! What each layer of a CNN has learned, shown the way Zeiler and Fergus (2014) and the CS231n
//! lecture do: run many images through the network, and for a unit (a channel) of a layer find
//! the image patches that excite it most; and, beyond that, synthesise an image that excites
//! the unit by gradient ascent on the pixels (Erhan et al. 2009; Yosinski et al. 2015).
//!
//! - [`network`]: the networks that can be looked inside, their layers and inputs.
//! - [`maxima`]: each unit's largest activation per image, and where it is.
//! - [`selection`]: which units to show, and their top images (one patch per image).
//! - [`patches`]: the receptive field of a position cut out of the input, and the grid PNG.
//! - [`synthesize`]: images that excite a unit.
//! - [`run`](mod@run): a whole `visualize` run, from options to grids and a report.

pub mod maxima;
pub mod network;
pub mod patches;
pub mod run;
pub mod selection;
pub mod synthesize;
