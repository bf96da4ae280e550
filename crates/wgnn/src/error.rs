//! The one error type of the library: every failure a user can cause is a value, not a panic.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no GPU adapter found{0}: install a Vulkan, Metal or DX12 driver (on a headless Linux machine: `apt-get install mesa-vulkan-drivers`)")]
    NoAdapter(String),
    #[error("could not open the GPU device: {0}")]
    Device(String),
    #[error("GPU validation error in kernel `{kernel}`: {message}")]
    Validation { kernel: String, message: String },
    #[error("{op}: {message}")]
    Shape { op: String, message: String },
    #[error("{what} does not fit this device: {message}")]
    Limit { what: String, message: String },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("GPU readback failed: {0}")]
    Readback(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn shape(op: &str, message: impl Into<String>) -> Self {
        Error::Shape {
            op: op.to_string(),
            message: message.into(),
        }
    }

    pub fn file(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        Error::File {
            path: path.into(),
            message: message.to_string(),
        }
    }
}
