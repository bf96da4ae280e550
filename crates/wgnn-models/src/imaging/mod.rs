//! Images on the CPU side of the applications: loading and saving, PIL-compatible resizing,
//! the networks' input normalisations, and colour preservation for style transfer.
//!
//! Everything works on one type, [`RgbImage`]: three planes of f32 samples in [0, 1], channel
//! first (CHW), which is the layout a network input takes on the GPU. Every function here is a
//! pure, deterministic function of its inputs (no threads, no global state).
//!
//! - [`io`]: decode PNG, JPEG, GIF, PNM and BMP files; save PNG or JPEG atomically.
//! - [`resize`]: bilinear resampling exactly as PIL's `Image.resize(size, BILINEAR)`.
//! - [`preprocess`]: the SqueezeNet (Caffe) and VGG (torchvision) input normalisations.
//! - [`color`]: luminance transfer (`--preserve-colors`).

pub mod color;
pub mod io;
pub mod preprocess;
pub mod resize;

use wgnn::error::{Error, Result};

/// An RGB image as planar f32 samples, nominally in [0, 1].
///
/// Layout (CHW): `data[c * height * width + y * width + x]`, with channel `c` = 0 red, 1 green,
/// 2 blue, `y` counting rows from the top and `x` columns from the left; `data.len()` is always
/// `3 * width * height` and both sides are at least 1.
///
/// Images decoded from files hold exactly `k as f32 / 255.0` for 8-bit values `k` (see
/// [`RgbImage::from_rgb8`]); images made by computation may hold any value, and
/// [`RgbImage::to_rgb8`] clamps them to [0, 1] when they are stored in 8 bits.
#[derive(Clone, Debug, PartialEq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl RgbImage {
    /// An image from CHW samples; an error if the length is not `3 * width * height` or a side
    /// is zero.
    pub fn new(width: usize, height: usize, data: Vec<f32>) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(Error::shape(
                "RgbImage",
                format!("an image needs at least one pixel, got {width}x{height}"),
            ));
        }
        if data.len() != 3 * width * height {
            return Err(Error::shape(
                "RgbImage",
                format!(
                    "{width}x{height} RGB needs {} samples, got {}",
                    3 * width * height,
                    data.len()
                ),
            ));
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// An image of one colour.
    pub fn filled(width: usize, height: usize, rgb: [f32; 3]) -> Result<Self> {
        let plane = width * height;
        let data = rgb
            .iter()
            .flat_map(|&v| std::iter::repeat_n(v, plane))
            .collect();
        Self::new(width, height, data)
    }

    /// An image from interleaved 8-bit RGB (`[r, g, b, r, g, b, ...]`, rows top to bottom), each
    /// sample mapped to `k as f32 / 255.0`.
    pub fn from_rgb8(width: usize, height: usize, rgb: &[u8]) -> Result<Self> {
        if rgb.len() != 3 * width * height {
            return Err(Error::shape(
                "RgbImage::from_rgb8",
                format!(
                    "{width}x{height} RGB needs {} bytes, got {}",
                    3 * width * height,
                    rgb.len()
                ),
            ));
        }
        let plane = width * height;
        let mut data = vec![0.0; 3 * plane];
        for (i, pixel) in rgb.chunks_exact(3).enumerate() {
            for (c, &k) in pixel.iter().enumerate() {
                data[c * plane + i] = k as f32 / 255.0;
            }
        }
        Self::new(width, height, data)
    }

    /// Interleaved 8-bit RGB: each sample clamped to [0, 1] and rounded to the nearest of the
    /// 256 levels (`round(255 * v)`, halves away from zero), so `from_rgb8` followed by
    /// `to_rgb8` gives back the same bytes. NaN becomes 0.
    pub fn to_rgb8(&self) -> Vec<u8> {
        let plane = self.plane();
        let mut rgb = vec![0u8; 3 * plane];
        for (i, pixel) in rgb.chunks_exact_mut(3).enumerate() {
            for (c, k) in pixel.iter_mut().enumerate() {
                *k = quantize_u8(self.data[c * plane + i]);
            }
        }
        rgb
    }

    /// `width * height`: the length of one channel plane.
    pub fn plane(&self) -> usize {
        self.width * self.height
    }

    /// Channel `c` (0 red, 1 green, 2 blue) as a row-major plane.
    pub fn channel(&self, c: usize) -> &[f32] {
        let plane = self.plane();
        &self.data[c * plane..(c + 1) * plane]
    }

    /// The `[r, g, b]` samples of pixel (x, y).
    pub fn pixel(&self, x: usize, y: usize) -> [f32; 3] {
        let i = y * self.width + x;
        let plane = self.plane();
        [self.data[i], self.data[plane + i], self.data[2 * plane + i]]
    }

    /// Whether every sample is exactly one of the 256 levels `k as f32 / 255.0`, as in an image
    /// decoded from an 8-bit file; such images are resampled with PIL's 8-bit arithmetic.
    pub fn is_8bit(&self) -> bool {
        self.data
            .iter()
            .all(|&v| (0.0..=1.0).contains(&v) && quantize_u8(v) as f32 / 255.0 == v)
    }

    /// Every sample clamped to [0, 1] (NaN becomes 0).
    pub fn clamped(&self) -> RgbImage {
        RgbImage {
            width: self.width,
            height: self.height,
            data: self.data.iter().map(|&v| clamp_unit(v)).collect(),
        }
    }
}

/// Clamps to [0, 1]; NaN becomes 0.
pub(crate) fn clamp_unit(v: f32) -> f32 {
    if v.is_nan() {
        0.0
    } else {
        v.clamp(0.0, 1.0)
    }
}

/// A [0, 1] sample to the nearest 8-bit level (after clamping; NaN becomes 0).
pub(crate) fn quantize_u8(v: f32) -> u8 {
    (clamp_unit(v) * 255.0).round() as u8
}
