//! The ROC curve of a verification run as a PNG: true accept rate against false accept rate,
//! with the chance diagonal, the equal-error point, and the AUC and EER in the caption.
//!
//! Lines are drawn by plotters' bitmap backend; text by a built-in 5x7 bitmap font (below), since
//! plotters' own text needs a font stack (font-kit with fontconfig and freetype) that CI lacks.

use std::path::Path;

use plotters::prelude::*;

use super::metrics::Pairs;
use wgnn::files::write_atomically;
use wgnn::{Error, Result};

/// Smallest image (below it the labels crowd) and largest side, in pixels.
pub const MIN_SIZE: (u32, u32) = (320, 240);
pub const MAX_SIDE: u32 = 8192;

/// Draws the ROC curve of `pairs` and writes it atomically to `path` as a `width x height` PNG.
pub fn write_roc_png(path: &Path, pairs: &Pairs, width: u32, height: u32) -> Result<()> {
    let image = render_roc(pairs, width, height)?;
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| Error::file(path, format!("cannot encode PNG: {e}")))?;
    write_atomically(path, &png)
}

/// Draws the ROC curve of `pairs` on a `width x height` RGB image.
pub fn render_roc(pairs: &Pairs, width: u32, height: u32) -> Result<image::RgbImage> {
    if width < MIN_SIZE.0 || height < MIN_SIZE.1 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(Error::Invalid(format!(
            "ROC plot size {width}x{height}: each side must be within {}x{} and {MAX_SIDE}",
            MIN_SIZE.0, MIN_SIZE.1
        )));
    }
    let curve = pairs.roc_curve();
    let (auc, eer) = (pairs.auc(), pairs.eer());
    // Glyph pixel size: the 5x7 font is legible at 2 px per dot on a 640x480 plot.
    let s = (width.min(height * 4 / 3) / 320).max(1) as i32;
    let glyph_w = 6 * s; // 5 dots and a gap
                         // Left: vertical title, gap, tick labels ("0.2"), gap. Bottom: tick labels, title.
    let (left, right, top, bottom) = (7 * s + 4 * s + 3 * glyph_w + 4 * s, 10 * s, 18 * s, 26 * s);

    let mut buffer = vec![255u8; (width * height * 3) as usize];
    let mut ticks = Vec::new();
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        let mut chart = ChartBuilder::on(&root)
            .margin_left(left)
            .margin_right(right)
            .margin_top(top)
            .margin_bottom(bottom)
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)
            .map_err(plot_error)?;
        let grid = RGBColor(225, 225, 225);
        for k in 0..=5 {
            let v = k as f64 / 5.0;
            chart
                .draw_series(LineSeries::new([(v, 0.0), (v, 1.0)], grid))
                .map_err(plot_error)?;
            chart
                .draw_series(LineSeries::new([(0.0, v), (1.0, v)], grid))
                .map_err(plot_error)?;
            ticks.push((
                v,
                chart.backend_coord(&(v, 0.0)),
                chart.backend_coord(&(0.0, v)),
            ));
        }
        chart
            .draw_series(DashedLineSeries::new(
                [(0.0, 0.0), (1.0, 1.0)],
                4 * s,
                4 * s,
                RGBColor(150, 150, 150).into(),
            ))
            .map_err(plot_error)?;
        chart
            .draw_series(LineSeries::new(
                [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0), (0.0, 0.0)],
                BLACK,
            ))
            .map_err(plot_error)?;
        chart
            .draw_series(LineSeries::new(
                curve.iter().map(|p| (p.far, p.tar)),
                RGBColor(20, 80, 200).stroke_width(s.max(1) as u32),
            ))
            .map_err(plot_error)?;
        chart
            .draw_series(std::iter::once(Circle::new(
                (eer, 1.0 - eer),
                3 * s,
                RGBColor(200, 40, 40).filled(),
            )))
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }

    let mut canvas = Canvas {
        pixels: &mut buffer,
        width: width as i32,
        height: height as i32,
        scale: s,
    };
    let ink = [0, 0, 0];
    for &(v, (x_at, x_base), (y_base, y_at)) in &ticks {
        let label = format!("{v:.1}");
        let label_w = label.len() as i32 * glyph_w - s;
        canvas.text(x_at - label_w / 2, x_base + 3 * s, &label, false, ink);
        canvas.text(
            y_base - 3 * s - label_w,
            y_at - 7 * s / 2,
            &label,
            false,
            ink,
        );
    }
    let (plot_left, plot_bottom) = (left, height as i32 - bottom);
    let plot_mid_x = (plot_left + width as i32 - right) / 2;
    let x_title = "FALSE ACCEPT RATE";
    canvas.text(
        plot_mid_x - (x_title.len() as i32 * glyph_w) / 2,
        plot_bottom + 3 * s + 7 * s + 5 * s,
        x_title,
        false,
        ink,
    );
    let y_title = "TRUE ACCEPT RATE";
    let plot_mid_y = (top + plot_bottom) / 2;
    canvas.text(
        2 * s,
        plot_mid_y + (y_title.len() as i32 * glyph_w) / 2,
        y_title,
        true,
        ink,
    );
    let caption = format!("AUC {auc:.4}   EER {eer:.4}");
    canvas.text(left, 6 * s, &caption, false, ink);

    image::RgbImage::from_raw(width, height, buffer)
        .ok_or_else(|| Error::Invalid("ROC plot buffer has the wrong size".to_string()))
}

fn plot_error(e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("drawing the ROC curve failed: {e}"))
}

/// An RGB pixel buffer that text is stamped on.
struct Canvas<'a> {
    pixels: &'a mut [u8],
    width: i32,
    height: i32,
    /// Pixels per font dot.
    scale: i32,
}

impl Canvas<'_> {
    /// Draws `text` with its top-left corner at `(x, y)`; `vertical` text reads bottom to top
    /// from `(x, y)` (its glyphs rotated a quarter turn anticlockwise).
    fn text(&mut self, x: i32, y: i32, text: &str, vertical: bool, rgb: [u8; 3]) {
        let s = self.scale;
        for (k, c) in text.chars().enumerate() {
            let advance = k as i32 * 6 * s;
            let rows = glyph(c);
            for (row, bits) in rows.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) == 0 {
                        continue;
                    }
                    let (dx, dy) = (col * s, row as i32 * s);
                    let (px, py) = if vertical {
                        (x + dy, y - advance - dx)
                    } else {
                        (x + advance + dx, y + dy)
                    };
                    self.fill(px, py, s, rgb);
                }
            }
        }
    }

    fn fill(&mut self, x: i32, y: i32, size: i32, rgb: [u8; 3]) {
        for py in y.max(0)..(y + size).min(self.height) {
            for px in x.max(0)..(x + size).min(self.width) {
                let at = ((py * self.width + px) * 3) as usize;
                self.pixels[at..at + 3].copy_from_slice(&rgb);
            }
        }
    }
}

/// A 5x7 glyph: 7 rows, the 5 low bits of each from left (0x10) to right (0x01). Covers digits,
/// upper-case letters (lower case is drawn upper case) and `. = : -`; anything else is blank.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        '=' => [0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        _ => [0; 7],
    }
}
