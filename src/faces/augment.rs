//! Training-time augmentation as a fixed set of variants per image.
//!
//! The trunk is frozen and its output is computed once per image variant (see `faces::train`),
//! so augmentation cannot draw a fresh transform every step. Instead each training image gets:
//! variant 0, the image itself; variant 1, its mirror image (with `flip`); then `copies` random
//! variants, each drawn once from a seeded RNG: mirrored with probability 1/2 (with `flip`),
//! shifted by up to `MAX_SHIFT` of the size in each direction (with `shift`, edges replicated),
//! and with brightness and contrast changed (with `brightness`: `x * gain + offset`, gain in
//! [0.7, 1.3], offset in [-0.1, 0.1], clamped to [0, 1]). Training draws one variant per batch
//! row. More variants cost one trunk pass each (the bulk of the training time) for more
//! robustness to pose, framing and lighting.

use crate::error::{Error, Result};
use crate::rng::Rng;

/// Largest shift, as a fraction of the image's width or height.
pub const MAX_SHIFT: f64 = 0.06;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Augment {
    pub flip: bool,
    pub shift: bool,
    pub brightness: bool,
    /// Random variants per image beyond the original and its mirror image.
    pub copies: usize,
}

impl Augment {
    pub const NONE: Augment = Augment {
        flip: false,
        shift: false,
        brightness: false,
        copies: 0,
    };

    /// Parses `--augment`: `none`, or a comma-separated list of `flip`, `shift`, `brightness`.
    pub fn parse(list: &str, copies: usize) -> Result<Self> {
        let mut augment = Augment {
            copies,
            ..Augment::NONE
        };
        if list.trim() == "none" {
            return Ok(Augment::NONE);
        }
        for item in list.split(',').map(str::trim) {
            match item {
                "flip" | "flips" => augment.flip = true,
                "shift" | "shifts" => augment.shift = true,
                "brightness" => augment.brightness = true,
                other => {
                    return Err(Error::Invalid(format!(
                        "unknown augmentation `{other}`: use none, or a list of flip, shift, brightness"
                    )))
                }
            }
        }
        if !(augment.shift || augment.brightness || augment.flip) {
            augment.copies = 0;
        }
        Ok(augment)
    }

    /// The `--augment` list.
    pub fn list(&self) -> String {
        let names: Vec<&str> = [
            (self.flip, "flip"),
            (self.shift, "shift"),
            (self.brightness, "brightness"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(",")
        }
    }

    /// Variants per image, the original included.
    pub fn variants(&self) -> usize {
        1 + self.flip as usize + self.copies
    }

    /// Variant `variant` of `image` (`[3, height, width]`, values in [0, 1]); image `index` and
    /// `seed` pick the random transforms.
    pub fn variant(
        &self,
        image: &[f32],
        width: usize,
        height: usize,
        variant: usize,
        index: usize,
        seed: u64,
    ) -> Vec<f32> {
        let mut out = image.to_vec();
        if variant == 0 {
            return out;
        }
        if self.flip && variant == 1 {
            mirror(&mut out, width, height);
            return out;
        }
        let mut rng = Rng::new(
            seed ^ (index as u64)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add((variant as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)),
        );
        // Draw every random number whatever is enabled, so that one switch does not change the
        // transforms that the others draw.
        let mirrored = rng.uniform() < 0.5;
        let max_dx = (MAX_SHIFT * width as f64).round();
        let max_dy = (MAX_SHIFT * height as f64).round();
        let dx = rng.range(-max_dx, max_dx + 1.0).floor() as isize;
        let dy = rng.range(-max_dy, max_dy + 1.0).floor() as isize;
        let gain = rng.range(0.7, 1.3) as f32;
        let offset = rng.range(-0.1, 0.1) as f32;
        if self.flip && mirrored {
            mirror(&mut out, width, height);
        }
        if self.shift {
            out = shifted(&out, width, height, dx, dy);
        }
        if self.brightness {
            for x in &mut out {
                *x = (*x * gain + offset).clamp(0.0, 1.0);
            }
        }
        out
    }
}

fn mirror(image: &mut [f32], width: usize, height: usize) {
    for row in image.chunks_exact_mut(width).take(3 * height) {
        row.reverse();
    }
}

/// The image moved by (dx, dy) pixels, the edge pixels replicated into the uncovered border.
fn shifted(image: &[f32], width: usize, height: usize, dx: isize, dy: isize) -> Vec<f32> {
    let mut out = vec![0.0; image.len()];
    let clamp = |v: isize, n: usize| v.clamp(0, n as isize - 1) as usize;
    for c in 0..3 {
        let plane = &image[c * width * height..][..width * height];
        for y in 0..height {
            let sy = clamp(y as isize - dy, height);
            for x in 0..width {
                let sx = clamp(x as isize - dx, width);
                out[c * width * height + y * width + x] = plane[sy * width + sx];
            }
        }
    }
    out
}
