//! Tests of the CPU image pipeline (`wgnn_models::imaging`): one module per
//! concern, one test binary (no GPU needed).

mod color;
mod io;
mod pil_expected;
mod preprocess;
mod resize;

use wgnn::rng::Rng;
use wgnn_models::imaging::RgbImage;

/// The 8-bit test pattern of `scripts/pil_resize_reference.py`, interleaved RGB.
pub fn pattern_u8(width: usize, height: usize) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(3 * width * height);
    for y in 0..height {
        for x in 0..width {
            for c in 0..3 {
                rgb.push(((x * 37 + y * 91 + c * 53 + (x * y * 7) % 23 * 11) % 256) as u8);
            }
        }
    }
    rgb
}

/// The float test pattern of `scripts/pil_resize_reference.py`, CHW.
pub fn pattern_f32(width: usize, height: usize) -> RgbImage {
    let mut data = Vec::with_capacity(3 * width * height);
    for c in 0..3 {
        for y in 0..height {
            for x in 0..width {
                let v = (((x * 13 + y * 29 + c * 7) % 17) as f64 / 16.0 - 0.1 * c as f64) as f32;
                data.push(v);
            }
        }
    }
    RgbImage::new(width, height, data).unwrap()
}

/// A random image with samples uniform in [lo, hi).
pub fn random_image(rng: &mut Rng, width: usize, height: usize, lo: f64, hi: f64) -> RgbImage {
    let data = (0..3 * width * height)
        .map(|_| rng.range(lo, hi) as f32)
        .collect();
    RgbImage::new(width, height, data).unwrap()
}

/// A fresh, empty directory for one test under cargo's scratch directory.
pub fn scratch_dir(test: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("imaging")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The names of the entries of a directory, sorted.
pub fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

pub fn asset(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("WGNN_ASSETS")).join(name)
}
