//! Tensors: a shape (up to 6-D: N C D H W, or any row-major layout) and a GPU storage buffer of
//! f32 (or u32 indices).

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::Gpu;

pub const MAX_RANK: usize = 6;

/// Row-major dimensions, outermost first (NCW, NCHW, NCDHW; [rows, cols] for matrices).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Shape(Vec<usize>);

impl Shape {
    pub fn new(dims: &[usize]) -> Result<Self> {
        if dims.len() > MAX_RANK {
            return Err(Error::Invalid(format!(
                "shape {dims:?} has rank {}, at most {MAX_RANK} is supported",
                dims.len()
            )));
        }
        if dims.contains(&0) {
            return Err(Error::Invalid(format!(
                "shape {dims:?} has a zero dimension"
            )));
        }
        Ok(Shape(dims.to_vec()))
    }

    /// The shape of a scalar (one element).
    pub fn scalar() -> Self {
        Shape(vec![1])
    }

    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }

    pub fn bytes(&self) -> u64 {
        4 * self.numel() as u64
    }

    /// Dimension `i`, counting from the end when negative (-1 is the last).
    pub fn dim(&self, i: isize) -> usize {
        let index = if i < 0 { self.0.len() as isize + i } else { i };
        self.0[index as usize]
    }
}

impl From<&[usize]> for Shape {
    /// Panics on invalid dims; use `Shape::new` for user input.
    fn from(dims: &[usize]) -> Self {
        Shape::new(dims).expect("invalid shape")
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(dims: [usize; N]) -> Self {
        Shape::new(&dims).expect("invalid shape")
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self.0.iter().map(|d| d.to_string()).collect();
        write!(f, "[{}]", dims.join(", "))
    }
}

/// Element type of a tensor. Everything is f32 but index lists (e.g. triplets), which are u32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    U32,
}

/// A shape with its data on the GPU.
#[derive(Clone, Debug)]
pub struct Tensor {
    pub shape: Shape,
    pub dtype: DType,
    pub buffer: Arc<wgpu::Buffer>,
}

impl Tensor {
    pub fn from_f32(gpu: &Gpu, shape: impl Into<Shape>, data: &[f32]) -> Result<Self> {
        let shape = shape.into();
        if data.len() != shape.numel() {
            return Err(Error::Invalid(format!(
                "{} values given for a tensor of shape {shape}",
                data.len()
            )));
        }
        Ok(Tensor {
            buffer: Arc::new(gpu.upload("tensor", data)?),
            shape,
            dtype: DType::F32,
        })
    }

    pub fn from_u32(gpu: &Gpu, shape: impl Into<Shape>, data: &[u32]) -> Result<Self> {
        let shape = shape.into();
        if data.len() != shape.numel() {
            return Err(Error::Invalid(format!(
                "{} values given for a tensor of shape {shape}",
                data.len()
            )));
        }
        Ok(Tensor {
            buffer: Arc::new(gpu.upload("tensor", data)?),
            shape,
            dtype: DType::U32,
        })
    }

    /// A tensor whose every element is `value` (NaN poisons outputs in tests).
    pub fn filled(gpu: &Gpu, shape: impl Into<Shape>, value: f32) -> Result<Self> {
        let shape = shape.into();
        let data = vec![value; shape.numel()];
        Self::from_f32(gpu, shape, &data)
    }

    pub fn to_vec(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        gpu.download(&self.buffer, self.shape.numel())
    }

    /// Overwrites the contents (same number of elements).
    pub fn write(&self, gpu: &Gpu, data: &[f32]) -> Result<()> {
        if data.len() != self.shape.numel() {
            return Err(Error::Invalid(format!(
                "{} values written to a tensor of shape {}",
                data.len(),
                self.shape
            )));
        }
        gpu.queue
            .write_buffer(&self.buffer, 0, bytemuck::cast_slice(data));
        Ok(())
    }
}
