//! Patches and grids: the receptive field of a position cut out of the image the network saw
//! (grey where the field reaches past the image's border, as the network saw zero padding of
//! a mid-grey image), scaled to one size per layer, and laid out one row per unit.

use wgnn::graph::{AxisField, ReceptiveField};
use wgnn::{Error, Result};
use wgnn_models::imaging::{resize::resize_exact, RgbImage};

/// The grey that stands for positions outside the image.
pub const OUTSIDE: [f32; 3] = [0.5, 0.5, 0.5];
/// Lines between patches, in pixels, and their colour.
pub const SEPARATOR: usize = 2;
const SEPARATOR_RGB: [f32; 3] = [0.1, 0.1, 0.1];
/// The gap between a unit's synthesised image and its patches.
pub const SYNTHESIS_GAP: usize = 8;
/// Patch sides stay within these bounds: a 3x3 field is enlarged to be seen, a field larger
/// than the image is shrunk.
pub const MIN_PATCH: usize = 48;
pub const MAX_PATCH: usize = 112;

/// The input rows and columns (first, last; inclusive, possibly outside the image) that the
/// position (row, col) of a layer sees.
pub fn field_span(
    field: &ReceptiveField,
    (row, col): (usize, usize),
    (height, width): (usize, usize),
) -> Result<[(i64, i64); 2]> {
    match field {
        ReceptiveField::Whole => Ok([(0, height as i64 - 1), (0, width as i64 - 1)]),
        ReceptiveField::Local(axes) => match axes.as_slice() {
            [rows, cols] => Ok([rows.span(row), cols.span(col)]),
            _ => Err(Error::Invalid(format!(
                "a patch needs a 2-D receptive field, not {} axes",
                axes.len()
            ))),
        },
    }
}

/// The side of the patches of a layer whose field is `field` for an input of `side` pixels.
pub fn patch_side(field: &ReceptiveField, side: usize) -> usize {
    let seen = match field {
        ReceptiveField::Whole => side,
        ReceptiveField::Local(axes) => axes.iter().map(AxisField::size).max().unwrap_or(1),
    };
    seen.min(side).clamp(MIN_PATCH, MAX_PATCH)
}

/// The part of `image` in `rows` x `cols` (inclusive spans, which may reach outside it; the
/// outside is `OUTSIDE` grey).
pub fn crop(image: &RgbImage, [rows, cols]: [(i64, i64); 2]) -> Result<RgbImage> {
    let (h, w) = (
        (rows.1 - rows.0 + 1) as usize,
        (cols.1 - cols.0 + 1) as usize,
    );
    let mut patch = RgbImage::filled(w, h, OUTSIDE)?;
    let plane = h * w;
    for y in 0..h {
        let sy = rows.0 + y as i64;
        if sy < 0 || sy >= image.height as i64 {
            continue;
        }
        for x in 0..w {
            let sx = cols.0 + x as i64;
            if sx < 0 || sx >= image.width as i64 {
                continue;
            }
            let rgb = image.pixel(sx as usize, sy as usize);
            for (c, v) in rgb.into_iter().enumerate() {
                patch.data[c * plane + y * w + x] = v;
            }
        }
    }
    Ok(patch)
}

/// `crop`, scaled to `side` x `side`.
pub fn patch(image: &RgbImage, span: [(i64, i64); 2], side: usize) -> Result<RgbImage> {
    resize_exact(&crop(image, span)?, side, side)
}

/// A grid of `rows` (one per unit: an optional synthesised image, then the patches, each
/// `side` x `side`), with `SEPARATOR` lines around every cell and a `SYNTHESIS_GAP` after the
/// synthesised column. Rows may have fewer patches than `columns`; their cells stay dark.
pub fn grid(
    rows: &[(Option<RgbImage>, Vec<RgbImage>)],
    columns: usize,
    side: usize,
) -> Result<RgbImage> {
    if rows.is_empty() || columns == 0 {
        return Err(Error::Invalid(
            "a grid needs at least one row and one column".into(),
        ));
    }
    let synthesized = rows.iter().any(|(s, _)| s.is_some());
    let lead = if synthesized { side + SYNTHESIS_GAP } else { 0 };
    let width = lead + columns * (side + SEPARATOR) + SEPARATOR;
    let height = rows.len() * (side + SEPARATOR) + SEPARATOR;
    let mut out = RgbImage::filled(width, height, SEPARATOR_RGB)?;
    for (r, (synthesis, patches)) in rows.iter().enumerate() {
        let top = SEPARATOR + r * (side + SEPARATOR);
        if let Some(image) = synthesis {
            paste(&mut out, image, SEPARATOR, top, side)?;
        }
        for (c, p) in patches.iter().enumerate() {
            paste(
                &mut out,
                p,
                lead + SEPARATOR + c * (side + SEPARATOR),
                top,
                side,
            )?;
        }
    }
    Ok(out)
}

fn paste(out: &mut RgbImage, image: &RgbImage, left: usize, top: usize, side: usize) -> Result<()> {
    if image.width != side || image.height != side {
        return Err(Error::Invalid(format!(
            "a grid cell is {side}x{side}, not {}x{}",
            image.width, image.height
        )));
    }
    let (plane, out_plane) = (side * side, out.width * out.height);
    for c in 0..3 {
        for y in 0..side {
            let from = c * plane + y * side;
            let to = c * out_plane + (top + y) * out.width + left;
            out.data[to..to + side].copy_from_slice(&image.data[from..from + side]);
        }
    }
    Ok(())
}
