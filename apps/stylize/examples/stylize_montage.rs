//! content | style | result, side by side, for the README.
//!
//! `cargo run --release --example stylize_montage -- RESULT MONTAGE [CONTENT STYLE]`
//!
//! RESULT is a picture written by `stylize` and is copied as it is (never resampled); the
//! content and the style (by default the embedded ones, which `stylize` uses with no
//! arguments) are resized to its height. Panels are separated by white gaps.

use wgnn_models::imaging::resize::resize_exact;
use wgnn_models::imaging::{io, RgbImage};

const GAP: usize = 6;

fn at_height(image: &RgbImage, height: usize) -> wgnn::Result<RgbImage> {
    let width = ((image.width * height) as f64 / image.height as f64).round() as usize;
    resize_exact(image, width.max(1), height)
}

/// Panels left to right on a white background.
fn side_by_side(panels: &[RgbImage]) -> wgnn::Result<RgbImage> {
    let height = panels.iter().map(|p| p.height).max().unwrap_or(1);
    let width = panels.iter().map(|p| p.width).sum::<usize>() + GAP * (panels.len() - 1);
    let mut out = RgbImage::filled(width, height, [1.0; 3])?;
    let mut left = 0;
    for panel in panels {
        for c in 0..3 {
            for y in 0..panel.height {
                let row = &panel.channel(c)[y * panel.width..(y + 1) * panel.width];
                let at = c * width * height + y * width + left;
                out.data[at..at + panel.width].copy_from_slice(row);
            }
        }
        left += panel.width + GAP;
    }
    Ok(out)
}

/// PNG at the encoder's best compression (the picture goes into the repository).
fn save_small_png(image: &RgbImage, path: &str) -> wgnn::Result<()> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::ImageEncoder;
    let fail = |e: &dyn std::fmt::Display| wgnn::Error::file(path, e);
    let file = std::fs::File::create(path).map_err(|e| fail(&e))?;
    PngEncoder::new_with_quality(
        std::io::BufWriter::new(file),
        CompressionType::Best,
        FilterType::Adaptive,
    )
    .write_image(
        &image.to_rgb8(),
        image.width as u32,
        image.height as u32,
        image::ExtendedColorType::Rgb8,
    )
    .map_err(|e| fail(&e))
}

fn main() -> wgnn::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 2 && args.len() != 4 {
        eprintln!("usage: stylize_montage RESULT MONTAGE [CONTENT STYLE]");
        std::process::exit(2);
    }
    let result = io::load(&args[0])?;
    let (content, style) = if args.len() == 4 {
        (io::load(&args[2])?, io::load(&args[3])?)
    } else {
        (
            wgnn_assets::default_content()?,
            wgnn_assets::default_style()?,
        )
    };
    let montage = side_by_side(&[
        at_height(&content, result.height)?,
        at_height(&style, result.height)?,
        result,
    ])?;
    save_small_png(&montage, &args[1])?;
    eprintln!("wrote {} ({}x{})", args[1], montage.width, montage.height);
    Ok(())
}
