//! Building blocks above single ops: the parameter store, initialisation and safetensors I/O.

pub mod init;
mod params;
mod safetensors_io;

pub use init::{FanMode, Init, Nonlinearity};
pub use params::ParamStore;
pub use safetensors_io::{metadata_of_format, read_safetensors_metadata};
