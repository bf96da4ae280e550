//! Reading and writing image files.
//!
//! [`load`] decodes PNG, JPEG, GIF (first frame), PNM (PBM/PGM/PPM/PAM) and BMP, the formats
//! enabled for the `image` crate in Cargo.toml. The format is recognised from the file's
//! contents (its magic bytes), falling back to the extension. Whatever the stored colour type,
//! the result is 8 bits per channel RGB, like PIL's `Image.convert("RGB")`: grey is replicated
//! into three channels, an alpha channel is dropped (not composited), 16-bit samples are
//! rounded to 8 bits. Samples become `k as f32 / 255.0`.
//!
//! [`save`] writes PNG (8-bit RGB) or JPEG (quality [`JPEG_QUALITY`]) according to the
//! extension. It never leaves a partial file: the image is encoded into a temporary file in
//! the destination's directory, flushed to disk, then renamed over the destination (an atomic
//! replace on POSIX file systems). On any error the temporary file is removed, and a file that
//! was already at the destination is left untouched.
//!
//! Every error is an [`Error::File`] naming the path.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use image::{ImageEncoder, ImageError, ImageFormat, ImageReader};

use super::RgbImage;
use wgnn::error::{Error, Result};

/// The formats [`load`] reads, for messages.
pub const READABLE_FORMATS: &str = "PNG, JPEG, GIF, PNM (PBM/PGM/PPM), BMP";

/// JPEG quality (1-100) used by [`save`] for `.jpg` / `.jpeg`.
pub const JPEG_QUALITY: u8 = 95;

/// Decodes an image file into RGB [0, 1] samples (see the module documentation).
pub fn load(path: impl AsRef<Path>) -> Result<RgbImage> {
    let path = path.as_ref();
    let metadata = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::file(path, "no such file"),
        _ => Error::file(path, format!("cannot read: {e}")),
    })?;
    if metadata.is_dir() {
        return Err(Error::file(path, "is a directory, not an image file"));
    }
    let reader = ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    decode_reader(reader, path)
}

/// Decodes an image held in memory (e.g. an embedded asset); `name` stands for the path in
/// error messages.
pub fn decode(bytes: &[u8], name: impl AsRef<Path>) -> Result<RgbImage> {
    let name = name.as_ref();
    let reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::file(name, format!("cannot read: {e}")))?;
    decode_reader(reader, name)
}

fn decode_reader<R: std::io::BufRead + std::io::Seek>(
    reader: ImageReader<R>,
    path: &Path,
) -> Result<RgbImage> {
    let Some(format) = reader.format() else {
        return Err(Error::file(
            path,
            format!("not an image in a supported format (supported: {READABLE_FORMATS})"),
        ));
    };
    let decoded = reader.decode().map_err(|e| {
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
    })?;
    let rgb = decoded.to_rgb8();
    RgbImage::from_rgb8(rgb.width() as usize, rgb.height() as usize, rgb.as_raw())
        .map_err(|e| Error::file(path, e))
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

    let temp = TempFile::create_beside(path)?;
    let written = (|| -> std::result::Result<(), String> {
        let mut out = BufWriter::new(&temp.file);
        match format {
            OutputFormat::Png => image::codecs::png::PngEncoder::new(&mut out).write_image(
                &rgb,
                width,
                height,
                image::ExtendedColorType::Rgb8,
            ),
            OutputFormat::Jpeg => {
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY)
                    .write_image(&rgb, width, height, image::ExtendedColorType::Rgb8)
            }
        }
        .map_err(|e| format!("cannot encode: {e}"))?;
        out.flush().map_err(|e| format!("cannot write: {e}"))?;
        drop(out);
        temp.file
            .sync_all()
            .map_err(|e| format!("cannot write: {e}"))
    })();
    match written {
        Ok(()) => temp.persist(path),
        Err(message) => Err(Error::file(path, format!("{message}; nothing was written"))),
    }
}

/// A file in the destination's directory that is removed on drop unless persisted.
struct TempFile {
    path: PathBuf,
    file: File,
    persisted: bool,
}

impl TempFile {
    fn create_beside(destination: &Path) -> Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let directory = match destination.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let Some(name) = destination.file_name() else {
            return Err(Error::file(destination, "not a file name"));
        };
        if !directory.is_dir() {
            return Err(Error::file(
                destination,
                format!("directory {} does not exist", directory.display()),
            ));
        }
        // Unique per process and call; `create_new` refuses to reuse a stale file.
        let temp_name = format!(
            ".{}.{}-{}.tmp",
            name.to_string_lossy(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = directory.join(temp_name);
        let file = File::create_new(&path)
            .map_err(|e| Error::file(destination, format!("cannot create a file here: {e}")))?;
        Ok(Self {
            path,
            file,
            persisted: false,
        })
    }

    fn persist(mut self, destination: &Path) -> Result<()> {
        std::fs::rename(&self.path, destination).map_err(|e| {
            Error::file(
                destination,
                format!("cannot replace the file: {e}; nothing was written"),
            )
        })?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
