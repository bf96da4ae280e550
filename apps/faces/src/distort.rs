//! Online affine distortion of training images for `train --model cnn`: every time an image
//! enters a batch it is redrawn under a fresh random rotation, shear, scale and translation
//! (Koch, Zemel and Salakhutdinov's augmentation for Omniglot), so the network rarely sees the
//! same pixels twice. Distortions are drawn from an RNG seeded by the seed and the step, so a
//! step's batch is the same however the run was interrupted and resumed. The warp runs on the
//! CPU, on a thread that prepares the next batch while the GPU trains on the current one.

use wgnn::rng::Rng;
use wgnn::{Error, Result};

/// Largest distortions drawn (each uniformly in [-max, max]); all zero: none.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Distortion {
    /// Rotation, degrees.
    pub rotation: f32,
    /// Shear along each axis, degrees.
    pub shear: f32,
    /// Relative change of size along each axis (0.15: 0.85x to 1.15x).
    pub scale: f32,
    /// Translation along each axis, as a fraction of the side.
    pub shift: f32,
}

impl Default for Distortion {
    /// Rotation 10 degrees, shear 10 degrees, scale 15 %, shift 10 % of the side.
    fn default() -> Self {
        Self {
            rotation: 10.0,
            shear: 10.0,
            scale: 0.15,
            shift: 0.1,
        }
    }
}

impl Distortion {
    pub fn none() -> Self {
        Self {
            rotation: 0.0,
            shear: 0.0,
            scale: 0.0,
            shift: 0.0,
        }
    }

    pub fn is_none(&self) -> bool {
        *self == Self::none()
    }

    /// Parses `none` or `rotation=D,shear=D,scale=F,shift=F` (any subset; a key left out is 0).
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let mut d = Self::none();
        if text == "none" {
            return Ok(d);
        }
        for item in text.split(',').map(str::trim) {
            let (key, value) = item.split_once('=').ok_or_else(|| {
                Error::Invalid(format!(
                    "--distort `{item}`: give `none` or key=value pairs such as \
                     rotation=10,shear=10,scale=0.15,shift=0.1"
                ))
            })?;
            let value: f32 = value.trim().parse().map_err(|_| {
                Error::Invalid(format!("--distort {key}: `{value}` is not a number"))
            })?;
            let (slot, limit) = match key.trim() {
                "rotation" => (&mut d.rotation, 180.0),
                "shear" => (&mut d.shear, 45.0),
                "scale" => (&mut d.scale, 0.9),
                "shift" => (&mut d.shift, 0.5),
                other => {
                    return Err(Error::Invalid(format!(
                        "--distort: unknown key `{other}` (rotation, shear, scale, shift)"
                    )))
                }
            };
            if !(value.is_finite() && (0.0..=limit).contains(&value)) {
                return Err(Error::Invalid(format!(
                    "--distort {key}={value}: must be between 0 and {limit}"
                )));
            }
            *slot = value;
        }
        Ok(d)
    }

    /// The form `parse` reads.
    pub fn to_text(&self) -> String {
        if self.is_none() {
            return "none".into();
        }
        format!(
            "rotation={},shear={},scale={},shift={}",
            self.rotation, self.shear, self.scale, self.shift
        )
    }

    /// A random map from output to source coordinates (pixels, relative to the centre).
    pub fn draw(&self, rng: &mut Rng, side: usize) -> Affine {
        let mut draw = |max: f32| rng.range(-max as f64, max as f64) as f32;
        let angle = draw(self.rotation).to_radians();
        let shear_x = draw(self.shear).to_radians().tan();
        let shear_y = draw(self.shear).to_radians().tan();
        let scale_x = 1.0 + draw(self.scale);
        let scale_y = 1.0 + draw(self.scale);
        let shift_x = draw(self.shift) * side as f32;
        let shift_y = draw(self.shift) * side as f32;
        // Forward map: scale, then shear, then rotate, then shift; `Affine` holds its inverse.
        let (sin, cos) = angle.sin_cos();
        let sheared = [[scale_x, shear_x * scale_y], [shear_y * scale_x, scale_y]];
        let forward = [
            [
                cos * sheared[0][0] - sin * sheared[1][0],
                cos * sheared[0][1] - sin * sheared[1][1],
            ],
            [
                sin * sheared[0][0] + cos * sheared[1][0],
                sin * sheared[0][1] + cos * sheared[1][1],
            ],
        ];
        let det = forward[0][0] * forward[1][1] - forward[0][1] * forward[1][0];
        let inverse = [
            [forward[1][1] / det, -forward[0][1] / det],
            [-forward[1][0] / det, forward[0][0] / det],
        ];
        Affine {
            matrix: inverse,
            shift: [shift_x, shift_y],
        }
    }
}

/// Output pixel (x, y) samples the source at `matrix * ((x, y) - centre - shift) + centre`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine {
    pub matrix: [[f32; 2]; 2],
    pub shift: [f32; 2],
}

impl Affine {
    pub fn identity() -> Self {
        Self {
            matrix: [[1.0, 0.0], [0.0, 1.0]],
            shift: [0.0, 0.0],
        }
    }

    /// Warps `image` ([channels, side, side]) into `out` by bilinear sampling; samples outside
    /// the image take the nearest edge pixel, so the background continues whatever its colour.
    pub fn warp(&self, image: &[f32], channels: usize, side: usize, out: &mut [f32]) {
        let centre = (side as f32 - 1.0) / 2.0;
        let plane = side * side;
        let last = side as f32 - 1.0;
        for y in 0..side {
            for x in 0..side {
                let dx = x as f32 - centre - self.shift[0];
                let dy = y as f32 - centre - self.shift[1];
                let sx =
                    (self.matrix[0][0] * dx + self.matrix[0][1] * dy + centre).clamp(0.0, last);
                let sy =
                    (self.matrix[1][0] * dx + self.matrix[1][1] * dy + centre).clamp(0.0, last);
                let (x0, y0) = (sx.floor() as usize, sy.floor() as usize);
                let (x1, y1) = ((x0 + 1).min(side - 1), (y0 + 1).min(side - 1));
                let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
                for c in 0..channels {
                    let p = &image[c * plane..(c + 1) * plane];
                    let top = p[y0 * side + x0] * (1.0 - fx) + p[y0 * side + x1] * fx;
                    let bottom = p[y1 * side + x0] * (1.0 - fx) + p[y1 * side + x1] * fx;
                    out[c * plane + y * side + x] = top * (1.0 - fy) + bottom * fy;
                }
            }
        }
    }
}

/// The RNG of step `step`'s distortions.
pub fn step_rng(seed: u64, step: u64) -> Rng {
    Rng::new(
        seed ^ 0x9E37_79B9_7F4A_7C15 ^ step.wrapping_add(1).wrapping_mul(0xBF58_476D_1CE4_E5B9),
    )
}

/// `[channels, side, side]` rotated by `quarter_turns` x 90 degrees counter-clockwise.
pub fn rotate_quarter(
    image: &[f32],
    channels: usize,
    side: usize,
    quarter_turns: usize,
) -> Vec<f32> {
    let mut out = image.to_vec();
    for _ in 0..quarter_turns % 4 {
        let from = out.clone();
        for c in 0..channels {
            let plane = c * side * side;
            for y in 0..side {
                for x in 0..side {
                    // The pixel at (x, y) comes from (side - 1 - y, x) of the source.
                    out[plane + y * side + x] = from[plane + x * side + (side - 1 - y)];
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_image(rng: &mut Rng, channels: usize, side: usize) -> Vec<f32> {
        rng.vec_f32(channels * side * side, 0.1, 0.9)
    }

    #[test]
    fn identity_warp_copies_the_image() {
        let mut rng = Rng::new(3);
        let image = random_image(&mut rng, 3, 9);
        let mut out = vec![f32::NAN; image.len()];
        Affine::identity().warp(&image, 3, 9, &mut out);
        assert_eq!(out, image);
    }

    #[test]
    fn quarter_turn_warp_matches_the_exact_rotation() {
        let mut rng = Rng::new(5);
        let side = 7;
        let image = random_image(&mut rng, 1, side);
        // Output (x, y) samples the source at (side - 1 - y, x) about the centre.
        let turn = Affine {
            matrix: [[0.0, -1.0], [1.0, 0.0]],
            shift: [0.0, 0.0],
        };
        let mut out = vec![f32::NAN; image.len()];
        turn.warp(&image, 1, side, &mut out);
        let exact = rotate_quarter(&image, 1, side, 1);
        for (a, b) in out.iter().zip(&exact) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        assert_eq!(rotate_quarter(&exact, 1, side, 3), image);
    }

    #[test]
    fn a_shift_moves_pixels_and_the_edge_continues() {
        let side = 6;
        let image: Vec<f32> = (0..side * side).map(|i| 0.5 + i as f32).collect();
        let shift = Affine {
            matrix: [[1.0, 0.0], [0.0, 1.0]],
            shift: [2.0, 0.0],
        };
        let mut out = vec![f32::NAN; image.len()];
        shift.warp(&image, 1, side, &mut out);
        for y in 0..side {
            for x in 0..side {
                let from = x.saturating_sub(2);
                assert_eq!(out[y * side + x], image[y * side + from]);
            }
        }
    }

    #[test]
    fn drawn_distortions_stay_within_bounds_and_depend_on_the_step() {
        let d = Distortion::default();
        let mut rng = step_rng(7, 12);
        for _ in 0..200 {
            let a = d.draw(&mut rng, 28);
            assert!(a.shift.iter().all(|s| s.abs() <= 0.1 * 28.0 + 1e-4));
            let det = a.matrix[0][0] * a.matrix[1][1] - a.matrix[0][1] * a.matrix[1][0];
            // Each axis scales by 0.85 to 1.15 and shear changes the area by 1 - tan^2 at most.
            assert!(det > 0.5 && det < 1.8, "{det}");
        }
        let a = d.draw(&mut step_rng(7, 12), 28);
        assert_eq!(a, d.draw(&mut step_rng(7, 12), 28));
        assert_ne!(a, d.draw(&mut step_rng(7, 13), 28));
        assert_eq!(Distortion::none().draw(&mut rng, 28), Affine::identity());
    }

    #[test]
    fn parsing_round_trips_and_refuses_nonsense() {
        let d = Distortion::parse("rotation=5, shift=0.2").unwrap();
        assert_eq!(
            (d.rotation, d.shear, d.scale, d.shift),
            (5.0, 0.0, 0.0, 0.2)
        );
        assert_eq!(Distortion::parse(&d.to_text()).unwrap(), d);
        assert_eq!(Distortion::parse("none").unwrap(), Distortion::none());
        let default = Distortion::default();
        assert_eq!(Distortion::parse(&default.to_text()).unwrap(), default);
        for bad in [
            "rotation",
            "spin=3",
            "rotation=x",
            "shift=0.7",
            "scale=-0.1",
            "shear=nan",
        ] {
            let e = Distortion::parse(bad).unwrap_err().to_string();
            assert!(e.contains("--distort"), "{bad}: {e}");
        }
    }
}
