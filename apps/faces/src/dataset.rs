//! Image folders of identities: `DIR/<identity>/<image>` (ORL's layout) or nested,
//! `DIR/<group>/.../<identity>/<image>` (Omniglot's: `<alphabet>/<character>/<drawing>`), listed
//! in natural order and loaded to f32.
//!
//! Listing rules (the contract every subcommand relies on):
//! - identities are the folders below `DIR` that hold image files, at any depth, named by their
//!   path from `DIR` (`s1`, or `Greek/character01`) and listed depth first in natural order
//!   (`s2` before `s10`); an identity's group is the path of its parent (`Greek`; empty for an
//!   identity directly in `DIR`); loose files in `DIR` itself (a README, a licence) are ignored;
//! - images are the files of an identity folder whose extension the `image` crate decodes
//!   (pgm/pnm/ppm/pbm, png, jpg/jpeg, gif, bmp; any case), in natural order (`2.pgm` before
//!   `10.pgm`); other files are ignored with a warning;
//! - hidden entries (names starting with `.`) are ignored silently, at every level;
//! - an identity folder without images is skipped with a warning; an identity with a single image
//!   is kept (it can be enrolled in a gallery) but reported as unusable for positive pairs;
//! - a folder that is missing, not a folder, or holds no identity with an image is an error.
//!
//! Images decode by content (a PNG named `.jpg` still loads), honour the EXIF orientation of
//! photos, and a file that does not decode is an error naming that file.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use wgnn::{Error, Result};

/// File extensions (lower case) that are taken as images.
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "pgm", "pnm", "ppm", "pbm", "png", "jpg", "jpeg", "gif", "bmp",
];

/// One person (or character): a name (the folder's path from the root) and the paths of their
/// images, in natural order.
#[derive(Clone, Debug, PartialEq)]
pub struct Identity {
    pub name: String,
    pub images: Vec<PathBuf>,
}

impl Identity {
    /// The path of the identity's parent folder from the root (`Greek` for
    /// `Greek/character01`; empty for an identity directly in the root).
    pub fn group(&self) -> &str {
        self.name.rsplit_once('/').map_or("", |(group, _)| group)
    }
}

/// A listed image folder (nothing decoded yet).
#[derive(Clone, Debug)]
pub struct ImageFolder {
    pub root: PathBuf,
    /// In natural order of their names.
    pub identities: Vec<Identity>,
    /// Things that were skipped or are unusable for some purpose, one sentence each.
    pub warnings: Vec<String>,
}

/// How an image becomes network input: the size it is resized to and its channel count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preprocess {
    pub width: u32,
    pub height: u32,
    /// 1 (greyscale, luma of colour images) or 3 (RGB; greyscale images are replicated).
    pub channels: u32,
}

/// Decoded images, `[N, C, H, W]` row-major, values in [0, 1], in the folder's order.
#[derive(Clone, Debug)]
pub struct LoadedImages {
    pub preprocess: Preprocess,
    /// `N * C * H * W` values; image `i` is `data[i * image_len()..][..image_len()]`.
    pub data: Vec<f32>,
    /// Identity index (into the folder's `identities`) of each image.
    pub labels: Vec<u32>,
    pub paths: Vec<PathBuf>,
}

impl ImageFolder {
    /// Lists `root` (see the module documentation for the rules).
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let metadata = std::fs::metadata(&root).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::file(&root, "no such folder"),
            _ => Error::file(&root, e),
        })?;
        if !metadata.is_dir() {
            return Err(Error::file(
                &root,
                "not a folder: expected DIR/<identity>/<image>",
            ));
        }
        let mut warnings = Vec::new();
        let mut identities = Vec::new();
        for (name, path) in visible_entries(&root)? {
            if path.is_dir() {
                list_identities(&path, &name, &mut identities, &mut warnings)?;
            }
        }
        if identities.is_empty() {
            return Err(Error::file(
                &root,
                "no identities: expected sub-folders DIR/<identity>/ (or nested,\
                 DIR/<group>/<identity>/) holding images",
            ));
        }
        Ok(Self {
            root,
            identities,
            warnings,
        })
    }

    /// Every image's path and identity index, identity by identity, in order (what `load`
    /// decodes, without decoding).
    pub fn labelled_paths(&self) -> (Vec<PathBuf>, Vec<u32>) {
        let mut paths = Vec::with_capacity(self.image_count());
        let mut labels = Vec::with_capacity(self.image_count());
        for (label, identity) in self.identities.iter().enumerate() {
            paths.extend(identity.images.iter().cloned());
            labels.extend(std::iter::repeat_n(label as u32, identity.images.len()));
        }
        (paths, labels)
    }

    /// Number of images over all identities.
    pub fn image_count(&self) -> usize {
        self.identities.iter().map(|id| id.images.len()).sum()
    }

    /// Names of the identities with a single image (no positive pair can be formed from them).
    pub fn single_image_identities(&self) -> Vec<&str> {
        self.identities
            .iter()
            .filter(|id| id.images.len() < 2)
            .map(|id| id.name.as_str())
            .collect()
    }

    /// The group of each identity, as an index into the sorted list of the folder's groups.
    pub fn group_of_identities(&self) -> Vec<u32> {
        let mut groups: Vec<&str> = self.identities.iter().map(|i| i.group()).collect();
        groups.sort_unstable();
        groups.dedup();
        self.identities
            .iter()
            .map(|i| groups.binary_search(&i.group()).unwrap_or(0) as u32)
            .collect()
    }

    /// Splits off the last `holdout` identities (in natural order): `(training, holdout)`.
    /// Warnings stay with the training part.
    pub fn split_holdout(&self, holdout: usize) -> Result<(ImageFolder, ImageFolder)> {
        let n = self.identities.len();
        if holdout > n {
            return Err(Error::Invalid(format!(
                "cannot hold out {holdout} identities: {} has only {n}",
                self.root.display()
            )));
        }
        let part = |identities: &[Identity], warnings: Vec<String>| ImageFolder {
            root: self.root.clone(),
            identities: identities.to_vec(),
            warnings,
        };
        Ok((
            part(&self.identities[..n - holdout], self.warnings.clone()),
            part(&self.identities[n - holdout..], Vec::new()),
        ))
    }

    /// Decodes every image (identity by identity, in order) to `[N, C, H, W]`.
    pub fn load(&self, preprocess: Preprocess) -> Result<LoadedImages> {
        let image_len = preprocess.image_len()?;
        let (paths, labels) = self.labelled_paths();
        let mut data = Vec::with_capacity(paths.len() * image_len);
        for path in &paths {
            data.extend(load_image(path, preprocess)?);
        }
        Ok(LoadedImages {
            preprocess,
            data,
            labels,
            paths,
        })
    }
}

impl Preprocess {
    /// Values per image: `C * H * W`; an error for a zero size or a channel count other than 1, 3.
    pub fn image_len(&self) -> Result<usize> {
        if self.width == 0 || self.height == 0 {
            return Err(Error::Invalid(format!(
                "image size {}x{} is empty",
                self.width, self.height
            )));
        }
        if self.channels != 1 && self.channels != 3 {
            return Err(Error::Invalid(format!(
                "{} channels: only 1 (greyscale) or 3 (RGB) are supported",
                self.channels
            )));
        }
        Ok((self.channels * self.width * self.height) as usize)
    }
}

impl LoadedImages {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image, `C * H * W`.
    pub fn image_len(&self) -> usize {
        let p = self.preprocess;
        (p.channels * p.width * p.height) as usize
    }

    /// Image `i` as `[C, H, W]`.
    pub fn image(&self, i: usize) -> &[f32] {
        let len = self.image_len();
        &self.data[i * len..(i + 1) * len]
    }
}

/// Decodes one image to `[C, H, W]` in [0, 1] (the checked decoding of
/// `wgnn_models::imaging::io::load_dynamic`: limits, strict JPEG, EXIF orientation), converted
/// to the requested channels, then resized with a bilinear (triangle) filter unless it already
/// has the requested size. Any failure is an error naming the file.
pub fn load_image(path: &Path, preprocess: Preprocess) -> Result<Vec<f32>> {
    preprocess.image_len()?;
    let image = wgnn_models::imaging::io::load_dynamic(path)?;
    let (w, h) = (preprocess.width, preprocess.height);
    let same_size = image.width() == w && image.height() == h;
    Ok(if preprocess.channels == 1 {
        let luma = image.to_luma32f();
        let luma = if same_size {
            luma
        } else {
            image::imageops::resize(&luma, w, h, FilterType::Triangle)
        };
        luma.into_raw()
    } else {
        let rgb = image.to_rgb32f();
        let rgb = if same_size {
            rgb
        } else {
            image::imageops::resize(&rgb, w, h, FilterType::Triangle)
        };
        // Interleaved HWC to planar CHW.
        let plane = (w * h) as usize;
        let hwc = rgb.into_raw();
        let mut chw = vec![0.0; 3 * plane];
        for (p, pixel) in hwc.chunks_exact(3).enumerate() {
            for c in 0..3 {
                chw[c * plane + p] = pixel[c];
            }
        }
        chw
    })
}

/// Adds `folder` (named `name` from the root) as an identity if it holds images, then its
/// sub-folders, depth first in natural order.
fn list_identities(
    folder: &Path,
    name: &str,
    identities: &mut Vec<Identity>,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let mut images = Vec::new();
    let mut folders = Vec::new();
    for (file_name, file) in visible_entries(folder)? {
        if file.is_dir() {
            folders.push((format!("{name}/{file_name}"), file));
        } else if has_image_extension(&file_name) {
            images.push(file);
        } else {
            warnings.push(format!(
                "{}: not an image file (extension not one of {}), ignored",
                file.display(),
                IMAGE_EXTENSIONS.join(", ")
            ));
        }
    }
    match images.len() {
        0 if folders.is_empty() => warnings.push(format!("identity {name}: no images, skipped")),
        0 => {}
        1 => {
            warnings.push(format!(
                "identity {name}: only one image; usable in a gallery, not for positive pairs"
            ));
            identities.push(Identity {
                name: name.to_string(),
                images,
            });
        }
        _ => identities.push(Identity {
            name: name.to_string(),
            images,
        }),
    }
    for (sub_name, sub) in folders {
        list_identities(&sub, &sub_name, identities, warnings)?;
    }
    Ok(())
}

/// `(name, path)` of the non-hidden entries of `dir`, in natural order of their names.
fn visible_entries(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::file(dir, e))? {
        let entry = entry.map_err(|e| Error::file(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            entries.push((name, entry.path()));
        }
    }
    entries.sort_by(|a, b| natural_cmp(&a.0, &b.0));
    Ok(entries)
}

fn has_image_extension(name: &str) -> bool {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Natural order: runs of ASCII digits compare as numbers (`s2` < `s10`, `2.pgm` < `10.pgm`),
/// other text compares case-insensitively; remaining ties fall back to the plain byte order so
/// that the order is total (`s01` vs `s1`, `A` vs `a`).
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    while !x.is_empty() && !y.is_empty() {
        let (cx, cy) = (x[0], y[0]);
        let ordering = if cx.is_ascii_digit() && cy.is_ascii_digit() {
            let (dx, rx) = split_digits(x);
            let (dy, ry) = split_digits(y);
            x = rx;
            y = ry;
            let (tx, ty) = (trim_zeros(dx), trim_zeros(dy));
            tx.len().cmp(&ty.len()).then_with(|| tx.cmp(ty))
        } else {
            x = &x[1..];
            y = &y[1..];
            cx.to_ascii_lowercase().cmp(&cy.to_ascii_lowercase())
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    x.len().cmp(&y.len()).then_with(|| a.cmp(b))
}

fn split_digits(s: &[u8]) -> (&[u8], &[u8]) {
    let end = s
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(s.len());
    s.split_at(end)
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let start = digits
        .iter()
        .position(|&c| c != b'0')
        .unwrap_or(digits.len());
    &digits[start..]
}
