//! Colour preservation for style transfer (`--preserve-colors`): luminance transfer as in
//! Johnson's neural-style (`original_colors`): convert the generated image to YUV, keep its
//! luminance Y, take the chrominance U and V from the content image, convert back to RGB.
//!
//! The colour space is analog YUV with the BT.601 luma weights, with the forward matrix of
//! Torch's `image.rgb2yuv`, which neural-style uses ([`YUV_FROM_RGB`]):
//!
//! ```text
//! Y =  0.299   R + 0.587   G + 0.114   B
//! U = -0.14713 R - 0.28886 G + 0.436   B
//! V =  0.615   R - 0.51499 G - 0.10001 B
//! ```
//!
//! For the way back we use the exact inverse of that matrix ([`RGB_FROM_YUV`], computed in f64
//! at compile time) rather than Torch's `image.yuv2rgb`, whose coefficients are rounded to five
//! decimals (R = Y + 1.13983 V, G = Y - 0.39465 U - 0.58060 V, B = Y + 2.03211 U): the two
//! differ by less than 1e-4 per sample, and with the exact inverse RGB -> YUV -> RGB is the
//! identity up to f32 rounding. Arithmetic is in f64, results are stored as f32.

use super::{clamp_unit, RgbImage};
use wgnn::error::{Error, Result};

/// RGB to YUV: `yuv[i] = sum_j YUV_FROM_RGB[i][j] * rgb[j]` (Torch's `image.rgb2yuv`).
pub const YUV_FROM_RGB: [[f64; 3]; 3] = [
    [0.299, 0.587, 0.114],
    [-0.14713, -0.28886, 0.436],
    [0.615, -0.51499, -0.10001],
];

/// YUV to RGB: the exact inverse of [`YUV_FROM_RGB`].
pub const RGB_FROM_YUV: [[f64; 3]; 3] = invert3(YUV_FROM_RGB);

/// The inverse of a 3x3 matrix by cofactors (the matrices here are far from singular).
const fn invert3(m: [[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let c00 = m[1][1] * m[2][2] - m[1][2] * m[2][1];
    let c01 = m[1][2] * m[2][0] - m[1][0] * m[2][2];
    let c02 = m[1][0] * m[2][1] - m[1][1] * m[2][0];
    let det = m[0][0] * c00 + m[0][1] * c01 + m[0][2] * c02;
    [
        [
            c00 / det,
            (m[0][2] * m[2][1] - m[0][1] * m[2][2]) / det,
            (m[0][1] * m[1][2] - m[0][2] * m[1][1]) / det,
        ],
        [
            c01 / det,
            (m[0][0] * m[2][2] - m[0][2] * m[2][0]) / det,
            (m[0][2] * m[1][0] - m[0][0] * m[1][2]) / det,
        ],
        [
            c02 / det,
            (m[0][1] * m[2][0] - m[0][0] * m[2][1]) / det,
            (m[0][0] * m[1][1] - m[0][1] * m[1][0]) / det,
        ],
    ]
}

fn multiply(matrix: &[[f64; 3]; 3], v: [f64; 3]) -> [f64; 3] {
    matrix.map(|row| row[0] * v[0] + row[1] * v[1] + row[2] * v[2])
}

/// Applies a 3x3 colour matrix to every pixel of CHW samples, in f64.
fn transform(image: &RgbImage, matrix: &[[f64; 3]; 3]) -> RgbImage {
    let plane = image.plane();
    let mut data = vec![0.0f32; 3 * plane];
    for i in 0..plane {
        let pixel = [0, 1, 2].map(|c| image.data[c * plane + i] as f64);
        for (c, value) in multiply(matrix, pixel).into_iter().enumerate() {
            data[c * plane + i] = value as f32;
        }
    }
    RgbImage {
        width: image.width,
        height: image.height,
        data,
    }
}

/// RGB to YUV (planes Y, U, V in place of R, G, B); Y in [0, 1] for RGB in [0, 1].
pub fn rgb_to_yuv(image: &RgbImage) -> RgbImage {
    transform(image, &YUV_FROM_RGB)
}

/// YUV to RGB, the inverse of [`rgb_to_yuv`]; not clamped.
pub fn yuv_to_rgb(yuv: &RgbImage) -> RgbImage {
    transform(yuv, &RGB_FROM_YUV)
}

/// Luminance transfer: the luminance of `generated` with the chrominance of `content`,
/// clamped to [0, 1] (where the combination falls outside the RGB cube, clamping changes its
/// luminance slightly). Both images must have the same size.
pub fn preserve_colors(content: &RgbImage, generated: &RgbImage) -> Result<RgbImage> {
    if (content.width, content.height) != (generated.width, generated.height) {
        return Err(Error::shape(
            "preserve_colors",
            format!(
                "the content image is {}x{} but the generated image is {}x{}",
                content.width, content.height, generated.width, generated.height
            ),
        ));
    }
    let plane = content.plane();
    let mut data = vec![0.0f32; 3 * plane];
    for i in 0..plane {
        let content_rgb = [0, 1, 2].map(|c| content.data[c * plane + i] as f64);
        let generated_rgb = [0, 1, 2].map(|c| generated.data[c * plane + i] as f64);
        let mut yuv = multiply(&YUV_FROM_RGB, content_rgb);
        yuv[0] = multiply(&YUV_FROM_RGB, generated_rgb)[0];
        for (c, value) in multiply(&RGB_FROM_YUV, yuv).into_iter().enumerate() {
            data[c * plane + i] = clamp_unit(value as f32);
        }
    }
    RgbImage::new(content.width, content.height, data)
}
