//! Building blocks above single ops: the parameter store and layer helpers.

mod params;

pub use params::ParamStore;
