//! Parameters in the safetensors format (what PyTorch's `safetensors.torch.save_file` writes):
//! a little-endian u64 header length, a JSON header naming each tensor's dtype, shape and byte
//! range plus an optional `__metadata__` string map, then the raw data. Reading converts F32,
//! F64, F16 and BF16 to f32; writing is F32 only and atomic (a temporary file in the same
//! directory, fsynced, then renamed over the target), so a crash never leaves half a file.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Read;
use std::path::Path;

use safetensors::tensor::{Metadata, TensorView};
use safetensors::{Dtype, SafeTensors};

use super::ParamStore;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::tensor::{DType, Shape, Tensor};

/// The safetensors crate's limit on header size.
const MAX_HEADER_BYTES: u64 = 100_000_000;

fn read_file(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes)
        .map_err(|e| Error::file(path, format!("not a valid safetensors file: {e}")))
}

/// IEEE half precision to f32 (exact: every f16 is an f32).
fn f16_to_f32(h: u16) -> f32 {
    let negative = h & 0x8000 != 0;
    let exponent = ((h >> 10) & 0x1f) as u32;
    let mantissa = (h & 0x3ff) as u32;
    let sign = if negative { 1u32 << 31 } else { 0 };
    match exponent {
        0 => {
            // Zero or subnormal: mantissa * 2^-24.
            let magnitude = mantissa as f32 * f32::from_bits(0x3380_0000);
            if negative {
                -magnitude
            } else {
                magnitude
            }
        }
        0x1f => f32::from_bits(sign | 0x7f80_0000 | (mantissa << 13)),
        _ => f32::from_bits(sign | ((exponent + 127 - 15) << 23) | (mantissa << 13)),
    }
}

/// A tensor's values as f32 (the data of a view need not be aligned: read byte by byte).
fn values_f32(path: &Path, name: &str, view: &TensorView<'_>) -> Result<Vec<f32>> {
    let data = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
            .collect(),
        other => {
            return Err(Error::file(
                path,
                format!("tensor `{name}` has dtype {other}, which cannot be read as f32 (F32, F64, F16 and BF16 can)"),
            ))
        }
    })
}

fn shape_of(path: &Path, name: &str, dims: &[usize]) -> Result<Shape> {
    Shape::new(dims).map_err(|e| Error::file(path, format!("tensor `{name}`: {e}")))
}

/// A tensor's values, refused when one is NaN or infinite: such weights only come from a
/// corrupt file or a diverged training, and would poison every result silently.
fn finite_values(path: &Path, name: &str, view: &TensorView<'_>) -> Result<Vec<f32>> {
    let values = values_f32(path, name, view)?;
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(Error::file(
            path,
            format!(
                "tensor `{name}` holds {} at element {i}: the file is corrupt or was written by a training that diverged",
                values[i]
            ),
        )),
        None => Ok(values),
    }
}

fn upload(gpu: &Gpu, path: &Path, name: &str, view: &TensorView<'_>) -> Result<Tensor> {
    let shape = shape_of(path, name, view.shape())?;
    let values = finite_values(path, name, view)?;
    Tensor::from_f32(gpu, shape, &values)
}

impl ParamStore {
    /// Every tensor of a safetensors file, converted to f32.
    pub fn load_safetensors(gpu: &Gpu, path: impl AsRef<Path>) -> Result<ParamStore> {
        let path = path.as_ref();
        let bytes = read_file(path)?;
        let file = parse(path, &bytes)?;
        let mut store = ParamStore::new();
        for (name, view) in file.iter() {
            store.insert(name, upload(gpu, path, name, &view)?);
        }
        Ok(store)
    }

    /// Only the tensors named in `expected`, each checked against its expected shape: a
    /// missing tensor is an error naming it, a mismatch names it with both shapes. Other
    /// tensors of the file are ignored (and may have any dtype).
    pub fn load_for(
        gpu: &Gpu,
        path: impl AsRef<Path>,
        expected: &[(String, Shape)],
    ) -> Result<ParamStore> {
        let path = path.as_ref();
        let bytes = read_file(path)?;
        Self::load_for_bytes(gpu, path, &bytes, expected)
    }

    /// `load_for` on a file already in memory (e.g. embedded weights); `path` names it in errors.
    pub fn load_for_bytes(
        gpu: &Gpu,
        path: &Path,
        bytes: &[u8],
        expected: &[(String, Shape)],
    ) -> Result<ParamStore> {
        let file = parse(path, bytes)?;
        let mut store = ParamStore::new();
        for (name, shape) in expected {
            let view = file
                .tensor(name)
                .map_err(|_| Error::file(path, format!("tensor `{name}` ({shape}) is missing")))?;
            let found = shape_of(path, name, view.shape())?;
            if &found != shape {
                return Err(Error::file(
                    path,
                    format!("tensor `{name}` is {found} in the file but {shape} is expected"),
                ));
            }
            store.insert(name, upload(gpu, path, name, &view)?);
        }
        Ok(store)
    }

    /// Writes every parameter as F32 with `metadata` as the file's `__metadata__`, atomically:
    /// either the whole new file is at `path` afterwards or the old state is unchanged.
    pub fn save_safetensors(
        &self,
        gpu: &Gpu,
        path: impl AsRef<Path>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<()> {
        let path = path.as_ref();
        if let Some((name, t)) = self.iter().find(|(_, t)| t.dtype != DType::F32) {
            return Err(Error::file(
                path,
                format!(
                    "parameter `{name}` holds {:?}; only F32 is written",
                    t.dtype
                ),
            ));
        }
        let host = self.to_host(gpu)?;
        crate::files::write_atomically(path, &serialize_f32(&host, metadata))
    }
}

/// The safetensors bytes of F32 tensors given in name order (as `ParamStore::to_host` gives
/// them). The header is written here rather than by `safetensors::serialize`, whose
/// `__metadata__` is a `HashMap` serialised in a per-process random order: the same parameters
/// and metadata must give the same bytes in every run. Keys are sorted (serde_json's map), and
/// the header is padded with spaces to a multiple of 8 bytes, as the crate does.
fn serialize_f32(
    tensors: &[(String, Shape, Vec<f32>)],
    metadata: &BTreeMap<String, String>,
) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        header.insert("__metadata__".to_string(), serde_json::json!(metadata));
    }
    let mut offset = 0usize;
    for (name, shape, values) in tensors {
        let end = offset + 4 * values.len();
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape.dims(), "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut header = serde_json::Value::Object(header).to_string().into_bytes();
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut bytes = Vec::with_capacity(8 + header.len() + offset);
    bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&header);
    for (_, _, values) in tensors {
        bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    }
    bytes
}

/// The `__metadata__` of safetensors bytes whose `format` entry is `format` (the converted
/// models embedded in wgnn say what they are); an error message otherwise.
pub fn metadata_of_format(
    bytes: &[u8],
    format: &str,
) -> std::result::Result<std::collections::HashMap<String, String>, String> {
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| format!("not a valid safetensors file: {e}"))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let found = metadata.get("format").map(String::as_str);
    if found != Some(format) {
        return Err(format!("metadata format is {found:?}, expected {format:?}"));
    }
    Ok(metadata)
}

/// The `__metadata__` map of a safetensors file (empty when it has none). Reads and checks
/// only the header.
pub fn read_safetensors_metadata(path: impl AsRef<Path>) -> Result<BTreeMap<String, String>> {
    let path = path.as_ref();
    let corrupt =
        |message: String| Error::file(path, format!("not a valid safetensors file: {message}"));
    let mut file = File::open(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let file_len = file
        .metadata()
        .map_err(|e| Error::file(path, format!("cannot read: {e}")))?
        .len();
    let mut length = [0u8; 8];
    file.read_exact(&mut length)
        .map_err(|_| corrupt(format!("{file_len} bytes is too short for a header")))?;
    let header_len = u64::from_le_bytes(length);
    if header_len > MAX_HEADER_BYTES || 8 + header_len > file_len {
        return Err(corrupt(format!(
            "header length {header_len} does not fit a file of {file_len} bytes"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)
        .map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let metadata: Metadata =
        serde_json::from_slice(&header).map_err(|e| corrupt(format!("header: {e}")))?;
    let expected_len = 8 + header_len + metadata.data_len() as u64;
    if expected_len != file_len {
        return Err(corrupt(format!(
            "the header describes {expected_len} bytes but the file has {file_len}"
        )));
    }
    Ok(metadata
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect())
}
