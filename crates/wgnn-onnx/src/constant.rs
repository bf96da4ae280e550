//! Tensors known at import time: initialisers, `Constant` nodes, and what shape arithmetic
//! (`Shape`, `Gather`, `Concat`, ...) computes from them. Floats become parameters when an
//! operator uses them as tensors; integers only ever feed attributes-like inputs (shapes, axes,
//! slice bounds).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

use wgnn::error::{Error, Result};

use crate::proto::{data_type, TensorProto};

#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// A tensor's values on the CPU, with its ONNX dims (empty for a scalar).
#[derive(Clone, Debug, PartialEq)]
pub struct Constant {
    pub dims: Vec<usize>,
    pub data: Data,
}

impl Constant {
    pub fn f32(dims: Vec<usize>, values: Vec<f32>) -> Self {
        Self {
            dims,
            data: Data::F32(values),
        }
    }

    pub fn i64(dims: Vec<usize>, values: Vec<i64>) -> Self {
        Self {
            dims,
            data: Data::I64(values),
        }
    }

    pub fn len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
        }
    }

    /// The values as integers (shapes, axes, indices); floats are refused.
    pub fn ints(&self, what: &str) -> Result<&[i64]> {
        match &self.data {
            Data::I64(v) => Ok(v),
            Data::F32(_) => Err(Error::Invalid(format!(
                "{what} must hold integers, not floats"
            ))),
        }
    }

    /// The values as f32 (integers converted).
    pub fn floats(&self) -> Vec<f32> {
        match &self.data {
            Data::F32(v) => v.clone(),
            Data::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// Values picked by a row-major index function over `dims`, keeping the type.
    pub fn gather(&self, dims: Vec<usize>, indices: &[usize]) -> Self {
        let data = match &self.data {
            Data::F32(v) => Data::F32(indices.iter().map(|&i| v[i]).collect()),
            Data::I64(v) => Data::I64(indices.iter().map(|&i| v[i]).collect()),
        };
        Self { dims, data }
    }
}

/// Decodes an initialiser or a tensor attribute. External data is read from `base` (the model's
/// folder); a location that leaves it (absolute, or with `..`) is refused.
pub fn decode(tensor: &TensorProto, base: Option<&Path>) -> Result<Constant> {
    let name = &tensor.name;
    let dims = tensor
        .dims
        .iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| Error::Invalid(format!("tensor `{name}` has a negative dim {d}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let count = dims
        .iter()
        .try_fold(1usize, |total, &d| total.checked_mul(d))
        .filter(|&c| c.checked_mul(8).is_some())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "tensor `{name}` has dims {dims:?}: too many values"
            ))
        })?;
    let external;
    let raw: &[u8] = if tensor.data_location == 1 {
        external = read_external(tensor, base)?;
        &external
    } else {
        &tensor.raw_data
    };
    let from_raw = !raw.is_empty() || tensor.data_location == 1;
    let mismatch = |found: usize| {
        Error::Invalid(format!(
            "tensor `{name}` has {found} values for dims {dims:?} ({count} values)"
        ))
    };
    let data = match tensor.data_type {
        data_type::FLOAT => {
            let values: Vec<f32> = if from_raw {
                if raw.len() != 4 * count {
                    return Err(mismatch(raw.len() / 4));
                }
                raw.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            } else {
                tensor.float_data.clone()
            };
            Data::F32(values)
        }
        data_type::INT64 => Data::I64(if from_raw {
            if raw.len() != 8 * count {
                return Err(mismatch(raw.len() / 8));
            }
            raw.chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect()
        } else {
            tensor.int64_data.clone()
        }),
        data_type::INT32 => Data::I64(if from_raw {
            if raw.len() != 4 * count {
                return Err(mismatch(raw.len() / 4));
            }
            raw.chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
                .collect()
        } else {
            tensor.int32_data.iter().map(|&v| v as i64).collect()
        }),
        other => {
            return Err(Error::Invalid(format!(
                "tensor `{name}` has data type {} ({other}); FLOAT, INT64 and INT32 are supported",
                data_type::name(other)
            )))
        }
    };
    let constant = Constant {
        dims: dims.clone(),
        data,
    };
    if constant.len() != count {
        return Err(mismatch(constant.len()));
    }
    Ok(constant)
}

/// The bytes of an external tensor: `location` (relative to `base`), `offset`, `length`.
fn read_external(tensor: &TensorProto, base: Option<&Path>) -> Result<Vec<u8>> {
    let name = &tensor.name;
    let entry = |key: &str| {
        tensor
            .external_data
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.as_str())
    };
    let location = entry("location").ok_or_else(|| {
        Error::Invalid(format!(
            "tensor `{name}` is stored externally but names no `location`"
        ))
    })?;
    let number = |key: &str| -> Result<Option<u64>> {
        entry(key)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    Error::Invalid(format!(
                        "tensor `{name}`: external `{key}` is `{v}`, not a whole number"
                    ))
                })
            })
            .transpose()
    };
    let (offset, length) = (number("offset")?.unwrap_or(0), number("length")?);
    let relative = Path::new(location);
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(Error::Invalid(format!(
            "tensor `{name}`: external data location `{location}` must be a path inside the model's folder"
        )));
    }
    let base = base.ok_or_else(|| {
        Error::Invalid(format!(
            "tensor `{name}` is stored in `{location}`, but the model was given as bytes with no folder for its external data"
        ))
    })?;
    let path = base.join(relative);
    let fail = |message: String| Error::file(&path, message);
    let mut file = std::fs::File::open(&path).map_err(|e| {
        fail(format!(
            "external data of tensor `{name}` cannot be read: {e}"
        ))
    })?;
    let size = file
        .metadata()
        .map_err(|e| {
            fail(format!(
                "external data of tensor `{name}` cannot be read: {e}"
            ))
        })?
        .len();
    let length = length.unwrap_or(size.saturating_sub(offset));
    if offset.checked_add(length).is_none_or(|end| end > size) {
        return Err(fail(format!(
            "external data of tensor `{name}` (offset {offset}, length {length}) lies beyond the file's {size} bytes"
        )));
    }
    let mut bytes = vec![0u8; length as usize];
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut bytes))
        .map_err(|e| {
            fail(format!(
                "external data of tensor `{name}` cannot be read: {e}"
            ))
        })?;
    Ok(bytes)
}
