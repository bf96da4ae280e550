//! Reading and writing image files.
//!
//! [`load`] decodes PNG, JPEG, GIF (first frame), PNM (PBM/PGM/PPM/PAM) and BMP, the formats
//! enabled for the `image` crate in Cargo.toml. The format is recognised from the file's
//! contents (its magic bytes), falling back to the extension. Whatever the stored colour type,
//! the result is 8 bits per channel RGB, like PIL's `Image.convert("RGB")`: grey is replicated
//! into three channels, an alpha channel is dropped (not composited), 16-bit samples are
//! rounded to 8 bits. Samples become `k as f32 / 255.0`.
//!
//! Decoding refuses what it cannot read whole: JPEG goes through zune-jpeg in its strict mode
//! (the `image` crate's lenient mode fills a truncated picture with grey and succeeds), PNG's
//! checksums are verified. An image of more than [`max_pixels`] pixels is refused from its
//! header, before anything is allocated for it; [`set_max_pixels`] raises the limit (the
//! applications' `--max-image-pixels`).
//!
//! [`save`] writes PNG (8-bit RGB) or JPEG (quality [`JPEG_QUALITY`]) according to the
//! extension, atomically (`wgnn::files`): a file that was already at the destination is left
//! untouched on any error.
//!
//! Every error is an [`Error::File`] naming the path.

use std::io::Cursor;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use image::{DynamicImage, ImageDecoder, ImageEncoder, ImageError, ImageFormat, ImageReader};
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;

use super::RgbImage;
use wgnn::error::{Error, Result};

/// The formats [`load`] reads, for messages.
pub const READABLE_FORMATS: &str = "PNG, JPEG, GIF, PNM (PBM/PGM/PPM), BMP";

/// JPEG quality (1-100) used by [`save`] for `.jpg` / `.jpeg`.
pub const JPEG_QUALITY: u8 = 95;

/// The largest image decoded unless raised: 64 megapixels (a 8192 x 8192 square, more than
/// any phone camera takes), about 0.8 GB once decoded to f32 RGB.
pub const DEFAULT_MAX_PIXELS: u64 = 64 << 20;

static MAX_PIXELS: AtomicU64 = AtomicU64::new(DEFAULT_MAX_PIXELS);

/// The largest image (width x height) that [`load`] and [`decode`] accept.
pub fn max_pixels() -> u64 {
    MAX_PIXELS.load(Ordering::Relaxed)
}

/// Sets the largest image that [`load`] and [`decode`] accept, for the whole process.
pub fn set_max_pixels(pixels: u64) {
    MAX_PIXELS.store(pixels.max(1), Ordering::Relaxed);
}

fn check_size(path: &Path, width: u64, height: u64) -> Result<()> {
    let pixels = width * height;
    let limit = max_pixels();
    if pixels > limit {
        return Err(Error::file(
            path,
            format!(
                "the image is {width}x{height} ({:.1} megapixels), over the limit of {:.1} \
                 megapixels (--max-image-pixels raises it)",
                pixels as f64 / (1 << 20) as f64,
                limit as f64 / (1 << 20) as f64
            ),
        ));
    }
    Ok(())
}

/// Decodes an image file into RGB [0, 1] samples (see the module documentation).
pub fn load(path: impl AsRef<Path>) -> Result<RgbImage> {
    let path = path.as_ref();
    to_rgb_image(&load_dynamic(path)?, path)
}

/// Decodes an image held in memory (e.g. an embedded asset); `name` stands for the path in
/// error messages.
pub fn decode(bytes: &[u8], name: impl AsRef<Path>) -> Result<RgbImage> {
    let name = name.as_ref();
    to_rgb_image(&decode_dynamic(bytes, name)?, name)
}

/// The checked decoding of [`load`] (limits, strict JPEG, EXIF orientation applied), keeping
/// the file's own colour type: for callers that convert or resize with the `image` crate.
pub fn load_dynamic(path: impl AsRef<Path>) -> Result<DynamicImage> {
    let path = path.as_ref();
    let metadata = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::file(path, "no such file"),
        _ => Error::file(path, format!("cannot read: {e}")),
    })?;
    if metadata.is_dir() {
        return Err(Error::file(path, "is a directory, not an image file"));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    decode_dynamic(&bytes, path)
}

/// [`load_dynamic`] for bytes in memory; `name` stands for the path in error messages (and
/// its extension names the format when the contents do not).
pub fn decode_dynamic(bytes: &[u8], name: impl AsRef<Path>) -> Result<DynamicImage> {
    let path = name.as_ref();
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let Some(format) = reader
        .format()
        .or_else(|| ImageFormat::from_path(path).ok())
    else {
        return Err(Error::file(
            path,
            format!("not an image in a supported format (supported: {READABLE_FORMATS})"),
        ));
    };
    let describe = |e: ImageError| {
        // Some decoders end their messages with a newline.
        let detail = e.to_string().trim_end().to_string();
        let message = match e {
            ImageError::Unsupported(_) => {
                format!("unsupported image format: {detail} (supported: {READABLE_FORMATS})")
            }
            ImageError::IoError(_) => {
                format!(
                    "corrupt or truncated {} file: {detail}",
                    format_name(format)
                )
            }
            _ => format!(
                "corrupt or unreadable {} file: {detail}",
                format_name(format)
            ),
        };
        Error::file(path, message)
    };
    let mut decoder = ImageReader::with_format(Cursor::new(bytes), format)
        .into_decoder()
        .map_err(describe)?;
    let (width, height) = decoder.dimensions();
    check_size(path, width as u64, height as u64)?;
    let orientation = decoder.orientation().ok();
    let mut image = if format == ImageFormat::Jpeg {
        drop(decoder);
        decode_jpeg(bytes, path)?
    } else {
        DynamicImage::from_decoder(decoder).map_err(describe)?
    };
    if image.width() == 0 || image.height() == 0 {
        return Err(Error::file(path, "the image has no pixels"));
    }
    if let Some(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    Ok(image)
}

fn to_rgb_image(image: &DynamicImage, path: &Path) -> Result<RgbImage> {
    let rgb = image.to_rgb8();
    RgbImage::from_rgb8(rgb.width() as usize, rgb.height() as usize, rgb.as_raw())
        .map_err(|e| Error::file(path, e))
}

/// JPEG in zune-jpeg's strict mode: data that ends early or breaks the format is an error.
/// Greyscale stays greyscale; anything else becomes RGB.
fn decode_jpeg(bytes: &[u8], path: &Path) -> Result<DynamicImage> {
    let corrupt = |e: zune_jpeg::errors::DecodeErrors| {
        let detail = e.to_string().trim_end().to_string();
        Error::file(path, format!("corrupt or truncated JPEG file: {detail}"))
    };
    let options = |colorspace| {
        DecoderOptions::default()
            .set_strict_mode(true)
            .set_max_width(usize::MAX)
            .set_max_height(usize::MAX)
            .jpeg_set_out_colorspace(colorspace)
    };
    let mut probe =
        zune_jpeg::JpegDecoder::new_with_options(Cursor::new(bytes), options(ColorSpace::RGB));
    probe.decode_headers().map_err(corrupt)?;
    let (width, height) = probe
        .dimensions()
        .ok_or_else(|| Error::file(path, "corrupt JPEG file: no image size in its header"))?;
    let grey = probe.input_colorspace() == Some(ColorSpace::Luma);
    let colorspace = if grey {
        ColorSpace::Luma
    } else {
        ColorSpace::RGB
    };
    let samples = zune_jpeg::JpegDecoder::new_with_options(Cursor::new(bytes), options(colorspace))
        .decode()
        .map_err(corrupt)?;
    let (w, h) = (width as u32, height as u32);
    let image = if grey {
        image::GrayImage::from_raw(w, h, samples).map(DynamicImage::ImageLuma8)
    } else {
        image::RgbImage::from_raw(w, h, samples).map(DynamicImage::ImageRgb8)
    };
    image.ok_or_else(|| Error::file(path, "corrupt JPEG file: fewer samples than its size"))
}

fn format_name(format: ImageFormat) -> String {
    format!("{format:?}").to_uppercase()
}

/// The encodings [`save`] can write, chosen by the destination's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Png,
    Jpeg,
}

impl OutputFormat {
    /// `png` -> PNG, `jpg` / `jpeg` -> JPEG (case-insensitive); anything else is an error
    /// naming the path.
    pub fn from_path(path: &Path) -> Result<Self> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase());
        match extension.as_deref() {
            Some("png") => Ok(OutputFormat::Png),
            Some("jpg" | "jpeg") => Ok(OutputFormat::Jpeg),
            Some(other) => Err(Error::file(
                path,
                format!("cannot write `.{other}` images: use a .png, .jpg or .jpeg file name"),
            )),
            None => Err(Error::file(
                path,
                "no file extension: use a .png, .jpg or .jpeg file name",
            )),
        }
    }
}

/// Saves `image` as 8-bit RGB, PNG or JPEG by extension, atomically (see the module
/// documentation). Samples are clamped to [0, 1] and rounded to 8 bits
/// ([`RgbImage::to_rgb8`]); an image holding NaN is refused, since it can only come from a
/// failed computation.
pub fn save(image: &RgbImage, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let format = OutputFormat::from_path(path)?;
    if image.data.iter().any(|v| v.is_nan()) {
        return Err(Error::file(
            path,
            "the image contains NaN samples; nothing was written",
        ));
    }
    if image.data.len() != 3 * image.plane() || image.plane() == 0 {
        return Err(Error::file(
            path,
            format!(
                "not a valid {}x{} RGB image ({} samples); nothing was written",
                image.width,
                image.height,
                image.data.len()
            ),
        ));
    }
    let (Ok(width), Ok(height)) = (u32::try_from(image.width), u32::try_from(image.height)) else {
        return Err(Error::file(path, "image too large to encode"));
    };
    let rgb = image.to_rgb8();
    wgnn::files::write_atomically_with(path, |out| {
        match format {
            OutputFormat::Png => image::codecs::png::PngEncoder::new(out).write_image(
                &rgb,
                width,
                height,
                image::ExtendedColorType::Rgb8,
            ),
            OutputFormat::Jpeg => image::codecs::jpeg::JpegEncoder::new_with_quality(
                out,
                JPEG_QUALITY,
            )
            .write_image(&rgb, width, height, image::ExtendedColorType::Rgb8),
        }
        .map_err(std::io::Error::other)
    })
}
