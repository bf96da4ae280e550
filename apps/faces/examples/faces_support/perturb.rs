//! The validation perturbations shared by the `faces_validate` and `faces_finetune` harnesses:
//! probe images changed as by another camera and lighting, drawn from the image index so that
//! both harnesses score the same probes.

use wgnn::rng::Rng;

/// Another camera and lighting: zoom 0.88-1.12 and shift up to 8 %, gamma 0.6-1.6, a linear
/// lighting gradient across the face (gain 1 -+ 0.35 at the edges, any direction), a blur (a
/// camera of half the resolution) half of the time, Gaussian noise up to 0.03.
/// `mild` halves every range (and blurs a quarter of the time).
pub fn perturb(image: &[f32], width: usize, height: usize, index: usize, mild: bool) -> Vec<f32> {
    let mut rng = Rng::new(0xFACE_0FF5 ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let k = if mild { 0.5 } else { 1.0 };
    let zoom = 1.0 + k * rng.range(-0.12, 0.12);
    let dx = k * rng.range(-0.08, 0.08) * width as f64;
    let dy = k * rng.range(-0.08, 0.08) * height as f64;
    let gamma = (1.0 + k * rng.range(-0.4, 0.6)) as f32;
    let angle = rng.range(0.0, std::f64::consts::TAU);
    let slope = k * rng.range(0.0, 0.35);
    let blur = rng.uniform() < 0.5 * k;
    let noise = k * rng.range(0.0, 0.03);
    let (cx, cy) = (width as f64 / 2.0, height as f64 / 2.0);
    let mut out = vec![0f32; image.len()];
    for c in 0..3 {
        let plane = &image[c * width * height..][..width * height];
        let at = |x: isize, y: isize| {
            plane[y.clamp(0, height as isize - 1) as usize * width
                + x.clamp(0, width as isize - 1) as usize]
        };
        for y in 0..height {
            for x in 0..width {
                let sx = (x as f64 - cx - dx) / zoom + cx;
                let sy = (y as f64 - cy - dy) / zoom + cy;
                let (x0, y0) = (sx.floor(), sy.floor());
                let (fx, fy) = ((sx - x0) as f32, (sy - y0) as f32);
                let (x0, y0) = (x0 as isize, y0 as isize);
                let v = (1.0 - fy) * ((1.0 - fx) * at(x0, y0) + fx * at(x0 + 1, y0))
                    + fy * ((1.0 - fx) * at(x0, y0 + 1) + fx * at(x0 + 1, y0 + 1));
                out[c * width * height + y * width + x] = v;
            }
        }
    }
    if blur {
        let src = out.clone();
        for c in 0..3 {
            for y in 0..height {
                for x in 0..width {
                    let mut s = 0.0;
                    for (oy, ox) in [(0, 0), (0, 1), (1, 0), (1, 1), (-1, 0), (0, -1)] {
                        let yy = (y as isize + oy).clamp(0, height as isize - 1) as usize;
                        let xx = (x as isize + ox).clamp(0, width as isize - 1) as usize;
                        s += src[c * width * height + yy * width + xx];
                    }
                    out[c * width * height + y * width + x] = s / 6.0;
                }
            }
        }
    }
    let (ux, uy) = (angle.cos(), angle.sin());
    let mut noise_rng = Rng::new(index as u64 ^ 0xA11CE);
    let noise_plane: Vec<f32> = (0..width * height)
        .map(|_| (noise_rng.normal() * noise) as f32)
        .collect();
    for c in 0..3 {
        for y in 0..height {
            for x in 0..width {
                let t = ((x as f64 / width as f64 - 0.5) * ux
                    + (y as f64 / height as f64 - 0.5) * uy)
                    * 2.0;
                let gain = (1.0 + slope * t) as f32;
                let v = &mut out[c * width * height + y * width + x];
                *v = ((v.clamp(0.0, 1.0).powf(gamma)) * gain + noise_plane[y * width + x])
                    .clamp(0.0, 1.0);
            }
        }
    }
    out
}
