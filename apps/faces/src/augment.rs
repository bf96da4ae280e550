//! Training-time augmentation as a fixed set of variants per image.
//!
//! The trunk is frozen and its output is computed once per image variant (see `faces::train`),
//! so augmentation cannot draw a fresh transform every step. Instead each training image gets:
//! variant 0, the image itself; variant 1, its mirror image (with `flip`); then `copies` random
//! variants, each drawn once from a seeded RNG: mirrored with probability 1/2 (with `flip`),
//! shifted by up to `MAX_SHIFT` of the size in each direction (with `shift`, edges replicated),
//! scaled about the centre by `1 +- MAX_ZOOM` (with `zoom`, bilinear, edges replicated), with
//! brightness and contrast changed (with `brightness`: `x * gain + offset`, gain in [0.7, 1.3],
//! offset in [-0.1, 0.1], clamped to [0, 1]) and with a gamma curve (with `gamma`: `x^g`, `g`
//! log-uniform in [1 / MAX_GAMMA, MAX_GAMMA], applied before the gain), blurred as by a camera of
//! lower resolution (with `blur`, half of the time: a Gaussian of up to `MAX_BLUR` pixels), lit
//! unevenly (with `light`: a linear gain across the image in a random direction, up to
//! `1 +- MAX_LIGHT` at the edges) and with sensor noise (with `noise`: Gaussian, the same in the
//! three channels, standard deviation up to `MAX_NOISE`). With `distance`, every copy but the
//! first is also photographed closer or further away: scaled by a factor log-uniform in
//! [1 / MAX_FURTHER, MAX_NEARER] on top of `zoom`, so that the whitening learns that one person
//! seen at another distance is still the same person (the first copy keeps the distance, and
//! with it the robustness to small changes; docs/decisions/head-settings.md has the
//! validation). With `tilt`, every copy is turned about the centre by up to `MAX_TILT` degrees
//! either way (validated without gain, so not in the default). Training draws one variant per
//! batch row. More variants cost a face detection and the trunk's passes each (the bulk of the
//! training time) for more robustness to pose, framing, distance and lighting.

use wgnn::error::{Error, Result};
use wgnn::rng::Rng;

/// Largest shift, as a fraction of the image's width or height.
pub const MAX_SHIFT: f64 = 0.06;

/// Largest change of scale (`zoom`), as a fraction.
pub const MAX_ZOOM: f64 = 0.1;

/// Largest zoom in (`distance`): the face photographed this much closer.
pub const MAX_NEARER: f64 = 1.35;

/// Largest zoom out (`distance`): the face photographed this much further away.
pub const MAX_FURTHER: f64 = 1.2;

/// Largest in-plane rotation of the head (`tilt`), in degrees either way.
pub const MAX_TILT: f64 = 12.0;

/// Largest standard deviation of the blur (`blur`), in pixels.
pub const MAX_BLUR: f64 = 1.5;

/// Largest change of the lighting gain at the image's edges (`light`).
pub const MAX_LIGHT: f64 = 0.3;

/// Largest standard deviation of the noise (`noise`), in [0, 1] units.
pub const MAX_NOISE: f64 = 0.02;

/// Largest gamma exponent (`gamma`): exponents lie in [1 / MAX_GAMMA, MAX_GAMMA].
pub const MAX_GAMMA: f64 = 1.5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Augment {
    pub flip: bool,
    pub shift: bool,
    pub brightness: bool,
    pub zoom: bool,
    pub gamma: bool,
    pub blur: bool,
    pub light: bool,
    pub noise: bool,
    pub distance: bool,
    pub tilt: bool,
    /// Random variants per image beyond the original and its mirror image.
    pub copies: usize,
}

impl Augment {
    pub const NONE: Augment = Augment {
        flip: false,
        shift: false,
        brightness: false,
        zoom: false,
        gamma: false,
        blur: false,
        light: false,
        noise: false,
        distance: false,
        tilt: false,
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
                "zoom" => augment.zoom = true,
                "gamma" => augment.gamma = true,
                "blur" => augment.blur = true,
                "light" => augment.light = true,
                "noise" => augment.noise = true,
                "distance" => augment.distance = true,
                "tilt" => augment.tilt = true,
                other => {
                    return Err(Error::Invalid(format!(
                        "unknown augmentation `{other}`: use none, or a list of flip, shift, \
                         zoom, brightness, gamma, blur, light, noise, distance, tilt"
                    )))
                }
            }
        }
        if !augment.random() && !augment.flip {
            augment.copies = 0;
        }
        Ok(augment)
    }

    /// The `--augment` list.
    pub fn list(&self) -> String {
        let names: Vec<&str> = [
            (self.flip, "flip"),
            (self.shift, "shift"),
            (self.zoom, "zoom"),
            (self.brightness, "brightness"),
            (self.gamma, "gamma"),
            (self.blur, "blur"),
            (self.light, "light"),
            (self.noise, "noise"),
            (self.distance, "distance"),
            (self.tilt, "tilt"),
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

    /// Whether the random variants change anything but the orientation.
    pub fn random(&self) -> bool {
        self.shift
            || self.zoom
            || self.brightness
            || self.gamma
            || self.blur
            || self.light
            || self.noise
            || self.distance
            || self.tilt
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
        let scale = 1.0 + rng.range(-MAX_ZOOM, MAX_ZOOM);
        let exponent = MAX_GAMMA.powf(rng.range(-1.0, 1.0)) as f32;
        let blurred = rng.uniform() < 0.5;
        let sigma = rng.range(0.3, MAX_BLUR);
        let angle = rng.range(0.0, std::f64::consts::TAU);
        let slope = rng.range(0.0, MAX_LIGHT);
        let noise = rng.range(0.0, MAX_NOISE);
        let noise_seed = rng.next_u64();
        let distance = rng.range(-MAX_FURTHER.ln(), MAX_NEARER.ln()).exp();
        let degrees = rng.range(-MAX_TILT, MAX_TILT);
        let copy = variant - self.flip as usize;
        if self.flip && mirrored {
            mirror(&mut out, width, height);
        }
        let scale = match (self.zoom, self.distance && copy >= 2) {
            (true, true) => scale * distance,
            (true, false) => scale,
            (false, true) => distance,
            (false, false) => 1.0,
        };
        if scale != 1.0 {
            out = zoomed(&out, width, height, scale);
        }
        if self.tilt {
            out = rotated(&out, width, height, degrees);
        }
        if self.shift {
            out = shifted(&out, width, height, dx, dy);
        }
        if self.blur && blurred {
            out = gaussian_blur(&out, width, height, sigma);
        }
        if self.gamma {
            for x in &mut out {
                *x = x.clamp(0.0, 1.0).powf(exponent);
            }
        }
        if self.light {
            let (ux, uy) = (angle.cos(), angle.sin());
            for (i, x) in out.iter_mut().enumerate() {
                let (px, py) = (i % width, (i / width) % height);
                // -1 to 1 across the image along (ux, uy), about.
                let t = 2.0 * (px as f64 / width as f64 - 0.5) * ux
                    + 2.0 * (py as f64 / height as f64 - 0.5) * uy;
                *x = (*x * (1.0 + slope * t) as f32).clamp(0.0, 1.0);
            }
        }
        if self.brightness {
            for x in &mut out {
                *x = (*x * gain + offset).clamp(0.0, 1.0);
            }
        }
        if self.noise {
            let mut noise_rng = Rng::new(noise_seed);
            let plane: Vec<f32> = (0..width * height)
                .map(|_| (noise_rng.normal() * noise) as f32)
                .collect();
            for (i, x) in out.iter_mut().enumerate() {
                *x = (*x + plane[i % (width * height)]).clamp(0.0, 1.0);
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

/// A separable Gaussian blur of standard deviation `sigma` pixels (edges replicated).
fn gaussian_blur(image: &[f32], width: usize, height: usize, sigma: f64) -> Vec<f32> {
    let radius = (3.0 * sigma).ceil() as isize;
    let weights: Vec<f32> = (-radius..=radius)
        .map(|k| (-(k * k) as f64 / (2.0 * sigma * sigma)).exp())
        .collect::<Vec<f64>>()
        .iter()
        .map(|&w| w as f32)
        .collect();
    let total: f32 = weights.iter().sum();
    let weights: Vec<f32> = weights.iter().map(|w| w / total).collect();
    let mut horizontal = vec![0.0; image.len()];
    let mut out = vec![0.0; image.len()];
    for c in 0..3 {
        let plane = &image[c * width * height..][..width * height];
        for y in 0..height {
            for x in 0..width {
                let mut s = 0.0;
                for (k, w) in weights.iter().enumerate() {
                    let sx = (x as isize + k as isize - radius).clamp(0, width as isize - 1);
                    s += w * plane[y * width + sx as usize];
                }
                horizontal[c * width * height + y * width + x] = s;
            }
        }
        let plane = &horizontal[c * width * height..][..width * height];
        for y in 0..height {
            for x in 0..width {
                let mut s = 0.0;
                for (k, w) in weights.iter().enumerate() {
                    let sy = (y as isize + k as isize - radius).clamp(0, height as isize - 1);
                    s += w * plane[sy as usize * width + x];
                }
                out[c * width * height + y * width + x] = s;
            }
        }
    }
    out
}

/// The image scaled by `scale` about its centre (bilinear; outside the image, the nearest edge
/// pixel). Columns right of the centre are computed as the mirror images of those left of it,
/// so that zooming a mirrored image gives exactly the mirror image of the zoomed one.
pub fn zoomed(image: &[f32], width: usize, height: usize, scale: f64) -> Vec<f32> {
    let mut out = vec![0.0; image.len()];
    let (cx, cy) = ((width as f64 - 1.0) / 2.0, (height as f64 - 1.0) / 2.0);
    let last = width as isize - 1;
    // Per output column: the two source columns and the second one's weight.
    let columns: Vec<(usize, usize, f32)> = (0..width)
        .map(|x| {
            let right = x > width - 1 - x;
            let x = if right { width - 1 - x } else { x };
            let sx = (x as f64 - cx) / scale + cx;
            let x0 = sx.floor();
            let fx = (sx - x0) as f32;
            let (x0, x1) = (x0 as isize, x0 as isize + 1);
            let (x0, x1) = if right {
                (last - x0, last - x1)
            } else {
                (x0, x1)
            };
            (x0.clamp(0, last) as usize, x1.clamp(0, last) as usize, fx)
        })
        .collect();
    let row = |y: isize| y.clamp(0, height as isize - 1) as usize * width;
    for c in 0..3 {
        let plane = &image[c * width * height..][..width * height];
        for y in 0..height {
            let sy = (y as f64 - cy) / scale + cy;
            let y0 = sy.floor();
            let fy = (sy - y0) as f32;
            let (top_row, bottom_row) = (row(y0 as isize), row(y0 as isize + 1));
            for (x, &(x0, x1, fx)) in columns.iter().enumerate() {
                let top = (1.0 - fx) * plane[top_row + x0] + fx * plane[top_row + x1];
                let bottom = (1.0 - fx) * plane[bottom_row + x0] + fx * plane[bottom_row + x1];
                out[c * width * height + y * width + x] = (1.0 - fy) * top + fy * bottom;
            }
        }
    }
    out
}

/// The image rotated by `degrees` (counter-clockwise as displayed) about its centre, bilinear,
/// the edge pixels replicated into the uncovered corners.
pub fn rotated(image: &[f32], width: usize, height: usize, degrees: f64) -> Vec<f32> {
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (cx, cy) = ((width as f64 - 1.0) / 2.0, (height as f64 - 1.0) / 2.0);
    let mut out = vec![0.0; image.len()];
    let at = |plane: &[f32], x: isize, y: isize| {
        plane[y.clamp(0, height as isize - 1) as usize * width
            + x.clamp(0, width as isize - 1) as usize]
    };
    for c in 0..3 {
        let plane = &image[c * width * height..][..width * height];
        for y in 0..height {
            for x in 0..width {
                // Where the output pixel comes from: the inverse rotation (y points down).
                let (u, v) = (x as f64 - cx, y as f64 - cy);
                let sx = cos * u - sin * v + cx;
                let sy = sin * u + cos * v + cy;
                let (x0, y0) = (sx.floor(), sy.floor());
                let (fx, fy) = ((sx - x0) as f32, (sy - y0) as f32);
                let (x0, y0) = (x0 as isize, y0 as isize);
                let top = (1.0 - fx) * at(plane, x0, y0) + fx * at(plane, x0 + 1, y0);
                let bottom = (1.0 - fx) * at(plane, x0, y0 + 1) + fx * at(plane, x0 + 1, y0 + 1);
                out[c * width * height + y * width + x] = (1.0 - fy) * top + fy * bottom;
            }
        }
    }
    out
}

/// The image moved by (dx, dy) pixels, the edge pixels replicated into the uncovered border.
pub fn shifted(image: &[f32], width: usize, height: usize, dx: isize, dy: isize) -> Vec<f32> {
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
