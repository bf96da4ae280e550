//! dlib's 5-point face landmarks and face chips, computed exactly as dlib computes them.
//!
//! - [`ShapePredictor`]: an ensemble of regression trees (Kazemi & Sullivan 2014, dlib's
//!   `shape_predictor`), loaded from the safetensors that
//!   `scripts/dlib_shape_predictor_to_safetensors.py` writes from
//!   `shape_predictor_5_face_landmarks.dat`.
//! - [`face_chip`]: dlib's `get_face_chip_details` + `extract_image_chip`, the upright, scaled
//!   150x150 crop that dlib's face ResNet expects (with dlib's image pyramid when it shrinks).
//! - [`initial_rect`]: the face box assumed for a photo that is already a face crop (like ORL).
//!
//! Images are [`RgbImage`] (CHW f32 in [0, 1]). dlib works on 8-bit pixels, so both functions
//! first quantise samples to `round(255 * v)`; a greyscale photo is R = G = B.
//!
//! Coordinates are pixels, x to the right and y down, pixel centres at integers (dlib's
//! convention). Points 0-1 are the corners of one eye, 2-3 of the other, 4 is below the nose.

use safetensors::{Dtype, SafeTensors};

use crate::imaging::RgbImage;
use wgnn::error::{Error, Result};

/// The only file format [`ShapePredictor::from_safetensors`] reads.
pub const FORMAT: &str = "dlib-shape-predictor-v1";

/// Landmarks per face in the 5-point model.
pub const LANDMARKS: usize = 5;

/// The chip size and padding dlib's face ResNet was trained with (`dlib.get_face_chip`'s
/// defaults).
pub const CHIP_SIZE: usize = 150;
pub const CHIP_PADDING: f64 = 0.25;

/// The face box of a face-crop photo as fractions of its width and height (left, top, right,
/// bottom); for ORL's 92x112 it is dlib's rectangle (4, 30, 81, 106).
pub const INITIAL_RECT_FRACTIONS: [f64; 4] = [0.0435, 0.268, 0.880, 0.946];

/// A dlib `rectangle`: integer corners, right and bottom inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub left: i64,
    pub top: i64,
    pub right: i64,
    pub bottom: i64,
}

/// The face box assumed for a `width` x `height` photo that is a face crop:
/// [`INITIAL_RECT_FRACTIONS`] of the sides, rounded to pixels.
pub fn initial_rect(width: usize, height: usize) -> Rect {
    let [l, t, r, b] = INITIAL_RECT_FRACTIONS;
    let at = |fraction: f64, side: usize| (fraction * side as f64).round() as i64;
    Rect {
        left: at(l, width),
        top: at(t, height),
        right: at(r, width),
        bottom: at(b, height),
    }
}

/// A 2x2 matrix and a translation: `m * p + b`, in f64 as dlib's `point_transform_affine`.
#[derive(Clone, Copy, Debug)]
struct Affine {
    m: [[f64; 2]; 2],
    b: [f64; 2],
}

impl Affine {
    fn apply(&self, p: [f64; 2]) -> [f64; 2] {
        [
            self.m[0][0] * p[0] + self.m[0][1] * p[1] + self.b[0],
            self.m[1][0] * p[0] + self.m[1][1] * p[1] + self.b[1],
        ]
    }
}

/// The least-squares similarity transform (scale, rotation, translation) taking `from` to `to`:
/// dlib's `find_similarity_transform` (Umeyama), in closed form. For 2-D points the best
/// rotation of the covariance `C = mean((to - mean_to)(from - mean_from)^T)` has cosine and
/// sine proportional to `C00 + C11` and `C10 - C01`, and the scale `trace(D S) / sigma_from`
/// is their norm over `sigma_from`; this equals the SVD route, reflections handled the same
/// way.
fn similarity_transform(from: &[[f64; 2]], to: &[[f64; 2]]) -> Affine {
    let n = from.len() as f64;
    let mean = |points: &[[f64; 2]]| {
        let s = points
            .iter()
            .fold([0.0, 0.0], |a, p| [a[0] + p[0], a[1] + p[1]]);
        [s[0] / n, s[1] / n]
    };
    let (mean_from, mean_to) = (mean(from), mean(to));
    let mut sigma_from = 0.0;
    let mut cov = [[0.0f64; 2]; 2];
    for (f, t) in from.iter().zip(to) {
        let df = [f[0] - mean_from[0], f[1] - mean_from[1]];
        let dt = [t[0] - mean_to[0], t[1] - mean_to[1]];
        sigma_from += df[0] * df[0] + df[1] * df[1];
        for (row, &dt_r) in cov.iter_mut().zip(&dt) {
            row[0] += dt_r * df[0];
            row[1] += dt_r * df[1];
        }
    }
    sigma_from /= n;
    let cov = cov.map(|row| row.map(|v| v / n));
    let (cos_part, sin_part) = (cov[0][0] + cov[1][1], cov[1][0] - cov[0][1]);
    // Coincident source points: dlib's SVD of the zero covariance gives the identity.
    let m = if sigma_from == 0.0 {
        [[1.0, 0.0], [0.0, 1.0]]
    } else {
        let (c, s) = (cos_part / sigma_from, sin_part / sigma_from);
        [[c, -s], [s, c]]
    };
    let b = [
        mean_to[0] - (m[0][0] * mean_from[0] + m[0][1] * mean_from[1]),
        mean_to[1] - (m[1][0] * mean_from[0] + m[1][1] * mean_from[1]),
    ];
    Affine { m, b }
}

/// dlib's `unnormalizing_tform`: the unit box (0,0)-(1,1) onto the rectangle's corners.
fn unit_box_to(rect: Rect) -> Affine {
    Affine {
        m: [
            [(rect.right - rect.left) as f64, 0.0],
            [0.0, (rect.bottom - rect.top) as f64],
        ],
        b: [rect.left as f64, rect.top as f64],
    }
}

/// dlib's conversion of a real point to an integer `point`: `floor(v + 0.5)`.
fn round_half_up(v: f64) -> f64 {
    (v + 0.5).floor()
}

/// One cascade level: the feature pixels it reads and its trees.
#[derive(Clone, Debug)]
struct Cascade {
    /// Per feature pixel, the landmark it is attached to ...
    anchor_idx: Vec<usize>,
    /// ... and its offset from that landmark in the initial shape (unit-box coordinates).
    deltas: Vec<[f32; 2]>,
    /// `[trees, splits]`: feature pixel pairs and thresholds of complete binary trees, nodes in
    /// breadth-first order (children of node i are 2i+1 and 2i+2).
    split_idx1: Vec<usize>,
    split_idx2: Vec<usize>,
    split_thresh: Vec<f32>,
    /// `[trees, leaves, 2 * landmarks]`: the shape increment of each leaf.
    leaf_values: Vec<f32>,
}

/// dlib's `shape_predictor` for 5 landmarks.
#[derive(Clone, Debug)]
pub struct ShapePredictor {
    /// `[x0, y0, x1, y1, ...]` in the unit box of the face rectangle.
    initial_shape: Vec<f32>,
    cascades: Vec<Cascade>,
    trees_per_cascade: usize,
    splits_per_tree: usize,
}

/// The named tensor's values, checked to have exactly `dims` and `dtype`.
fn tensor_bytes<'a>(
    tensors: &'a SafeTensors<'a>,
    name: &str,
    dtype: Dtype,
    dims: &[usize],
) -> Result<&'a [u8]> {
    let view = tensors
        .tensor(name)
        .map_err(|e| invalid(format!("tensor `{name}`: {e}")))?;
    if view.dtype() != dtype || view.shape() != dims {
        return Err(invalid(format!(
            "tensor `{name}` is {:?} {:?}, expected {dtype:?} {dims:?}",
            view.dtype(),
            view.shape()
        )));
    }
    Ok(view.data())
}

fn invalid(message: String) -> Error {
    Error::Invalid(format!("shape predictor: {message}"))
}

fn f32_values(bytes: &[u8], name: &str) -> Result<Vec<f32>> {
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if values.iter().any(|v| !v.is_finite()) {
        return Err(invalid(format!("tensor `{name}` holds NaN or infinity")));
    }
    Ok(values)
}

/// I32 values checked to lie in `0..bound` (indices into pixels or landmarks).
fn index_values(bytes: &[u8], name: &str, bound: usize) -> Result<Vec<usize>> {
    bytes
        .chunks_exact(4)
        .map(|c| {
            let v = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            usize::try_from(v)
                .ok()
                .filter(|&i| i < bound)
                .ok_or_else(|| invalid(format!("tensor `{name}` holds {v}, outside 0..{bound}")))
        })
        .collect()
}

impl ShapePredictor {
    /// Loads the safetensors written by `scripts/dlib_shape_predictor_to_safetensors.py`; any
    /// malformed, truncated or inconsistent file is an [`Error::Invalid`].
    pub fn from_safetensors(bytes: &[u8]) -> Result<Self> {
        let tensors = SafeTensors::deserialize(bytes)
            .map_err(|e| invalid(format!("not a valid safetensors file: {e}")))?;
        let metadata = wgnn::nn::metadata_of_format(bytes, FORMAT).map_err(invalid)?;
        let count = |key: &str| -> Result<usize> {
            metadata
                .get(key)
                .and_then(|v| v.parse::<usize>().ok())
                .filter(|&v| v > 0 && v <= 1 << 20)
                .ok_or_else(|| invalid(format!("metadata `{key}` is missing or not a count")))
        };
        let cascades = count("cascades")?;
        let trees = count("trees_per_cascade")?;
        let depth = count("tree_depth")?;
        let landmarks = count("landmarks")?;
        let pixels = count("feature_pixels")?;
        if landmarks != LANDMARKS {
            return Err(invalid(format!(
                "the model has {landmarks} landmarks, this port handles {LANDMARKS}"
            )));
        }
        if depth > 16 {
            return Err(invalid(format!("tree depth {depth} is implausible")));
        }
        let leaves = 1usize << depth;
        let splits = leaves - 1;
        let (c, t, p, l2) = (cascades, trees, pixels, 2 * landmarks);

        let initial_shape = f32_values(
            tensor_bytes(&tensors, "initial_shape", Dtype::F32, &[landmarks, 2])?,
            "initial_shape",
        )?;
        let anchor_idx = index_values(
            tensor_bytes(&tensors, "anchor_idx", Dtype::I32, &[c, p])?,
            "anchor_idx",
            landmarks,
        )?;
        let deltas = f32_values(
            tensor_bytes(&tensors, "deltas", Dtype::F32, &[c, p, 2])?,
            "deltas",
        )?;
        let split_idx1 = index_values(
            tensor_bytes(&tensors, "split_idx1", Dtype::I32, &[c, t, splits])?,
            "split_idx1",
            pixels,
        )?;
        let split_idx2 = index_values(
            tensor_bytes(&tensors, "split_idx2", Dtype::I32, &[c, t, splits])?,
            "split_idx2",
            pixels,
        )?;
        let split_thresh = f32_values(
            tensor_bytes(&tensors, "split_thresh", Dtype::F32, &[c, t, splits])?,
            "split_thresh",
        )?;
        let leaf_values = f32_values(
            tensor_bytes(
                &tensors,
                "leaf_values",
                Dtype::F32,
                &[c, t, leaves, landmarks, 2],
            )?,
            "leaf_values",
        )?;

        let per_cascade_splits = t * splits;
        let per_cascade_leaves = t * leaves * l2;
        let cascades = (0..c)
            .map(|i| Cascade {
                anchor_idx: anchor_idx[i * p..(i + 1) * p].to_vec(),
                deltas: deltas[i * 2 * p..(i + 1) * 2 * p]
                    .chunks_exact(2)
                    .map(|d| [d[0], d[1]])
                    .collect(),
                split_idx1: split_idx1[i * per_cascade_splits..(i + 1) * per_cascade_splits]
                    .to_vec(),
                split_idx2: split_idx2[i * per_cascade_splits..(i + 1) * per_cascade_splits]
                    .to_vec(),
                split_thresh: split_thresh[i * per_cascade_splits..(i + 1) * per_cascade_splits]
                    .to_vec(),
                leaf_values: leaf_values[i * per_cascade_leaves..(i + 1) * per_cascade_leaves]
                    .to_vec(),
            })
            .collect();
        Ok(Self {
            initial_shape,
            cascades,
            trees_per_cascade: trees,
            splits_per_tree: splits,
        })
    }

    /// The 5 landmarks of the face in `rect`, as dlib's `shape_predictor::operator()` returns
    /// them: whole pixels (dlib rounds to integer `point`s), as f64.
    pub fn predict(&self, image: &RgbImage, rect: Rect) -> [[f64; 2]; LANDMARKS] {
        self.predict_subpixel(image, rect)
            .map(|p| p.map(round_half_up))
    }

    /// The same landmarks before dlib rounds them to whole pixels.
    pub fn predict_subpixel(&self, image: &RgbImage, rect: Rect) -> [[f64; 2]; LANDMARKS] {
        let intensity = grey_intensity(image);
        let shape = self.regress_shape(&intensity, image.width, image.height, rect);
        let to_image = unit_box_to(rect);
        std::array::from_fn(|i| to_image.apply([shape[2 * i] as f64, shape[2 * i + 1] as f64]))
    }

    /// The cascade on an 8-bit intensity plane: the final shape in unit-box coordinates.
    fn regress_shape(&self, intensity: &[u8], width: usize, height: usize, rect: Rect) -> Vec<f32> {
        let to_image = unit_box_to(rect);
        let initial = as_points(&self.initial_shape);
        let mut shape = self.initial_shape.clone();
        let mut feature_pixels = Vec::new();
        for cascade in &self.cascades {
            // Feature pixels move with the current shape: its similarity to the initial shape,
            // rotation and scale only (dlib casts that 2x2 matrix to f32), applied to each
            // delta in f32, added to the anchor landmark's current position in f32.
            let m = similarity_transform(&initial, &as_points(&shape)).m;
            let m = m.map(|row| row.map(|v| v as f32));
            feature_pixels.clear();
            feature_pixels.extend(cascade.anchor_idx.iter().zip(&cascade.deltas).map(
                |(&anchor, d)| {
                    let x = (m[0][0] * d[0] + m[0][1] * d[1]) + shape[2 * anchor];
                    let y = (m[1][0] * d[0] + m[1][1] * d[1]) + shape[2 * anchor + 1];
                    let p = to_image.apply([x as f64, y as f64]).map(round_half_up);
                    // Outside the image reads as 0.
                    let inside =
                        p[0] >= 0.0 && p[1] >= 0.0 && p[0] < width as f64 && p[1] < height as f64;
                    if inside {
                        intensity[p[1] as usize * width + p[0] as usize] as f32
                    } else {
                        0.0
                    }
                },
            ));
            let splits = self.splits_per_tree;
            let leaf_len = shape.len();
            for tree in 0..self.trees_per_cascade {
                let base = tree * splits;
                let mut node = 0;
                while node < splits {
                    let i = base + node;
                    let difference = feature_pixels[cascade.split_idx1[i]]
                        - feature_pixels[cascade.split_idx2[i]];
                    node = if difference > cascade.split_thresh[i] {
                        2 * node + 1
                    } else {
                        2 * node + 2
                    };
                }
                let leaf = tree * (splits + 1) + (node - splits);
                let values = &cascade.leaf_values[leaf * leaf_len..(leaf + 1) * leaf_len];
                for (s, v) in shape.iter_mut().zip(values) {
                    *s += v;
                }
            }
        }
        shape
    }
}

fn as_points(shape: &[f32]) -> Vec<[f64; 2]> {
    shape
        .chunks_exact(2)
        .map(|p| [p[0] as f64, p[1] as f64])
        .collect()
}

/// dlib's `get_pixel_intensity` of an `rgb_pixel`: `(r + g + b) / 3` in integer arithmetic
/// (pixel.h, grayscale from rgb), so a grey image reads back its own level.
fn grey_intensity(image: &RgbImage) -> Vec<u8> {
    image
        .to_rgb8()
        .chunks_exact(3)
        .map(|p| ((p[0] as u32 + p[1] as u32 + p[2] as u32) / 3) as u8)
        .collect()
}

/// dlib's `get_face_chip_details` reference positions of the 5 landmarks in a chip without
/// padding, in units of the chip side.
const CHIP_REFERENCE_POINTS: [[f64; 2]; LANDMARKS] = [
    [0.8595674595992, 0.2134981538014],
    [0.6460604764104, 0.2289674387677],
    [0.1205750620789, 0.2137274526848],
    [0.3340850613712, 0.2290642403242],
    [0.4901123135679, 0.6277975316475],
];

/// dlib's `get_face_chip(image, points, size, padding)`: the face rotated upright and scaled so
/// that the landmarks land on fixed reference positions (least squares), `size` x `size`, with
/// `padding` times the face's extent added on each side. CHW f32 with values `k / 255`: dlib
/// interpolates bilinearly in f64 and truncates to 8 bits; samples whose 2x2 neighbourhood is
/// not entirely inside the image are black. When the chip shrinks the face by about 2x or more,
/// dlib (and this port) first halves the image with its 5x5 Gaussian pyramid.
pub fn face_chip(
    image: &RgbImage,
    points: &[[f64; 2]; LANDMARKS],
    size: usize,
    padding: f64,
) -> Result<RgbImage> {
    if !(2..=1 << 14).contains(&size) {
        return Err(Error::Invalid(format!(
            "face_chip: size {size} is not in 2..=16384"
        )));
    }
    if !(padding >= 0.0 && padding.is_finite()) {
        return Err(Error::Invalid(format!(
            "face_chip: padding {padding} is not a finite value >= 0"
        )));
    }
    if points.iter().flatten().any(|v| !v.is_finite()) {
        return Err(Error::Invalid(
            "face_chip: landmarks contain NaN or infinity".into(),
        ));
    }
    let details = ChipDetails::for_face(points, size, padding);
    let source = Rgb8 {
        width: image.width,
        height: image.height,
        rgb: image.to_rgb8(),
    };
    let chip = extract_chip(&source, &details);
    let plane = size * size;
    let mut data = vec![0f32; 3 * plane];
    for (i, pixel) in chip.chunks_exact(3).enumerate() {
        for (c, &k) in pixel.iter().enumerate() {
            data[c * plane + i] = k as f32 / 255.0;
        }
    }
    RgbImage::new(size, size, data)
}

/// A dlib `drectangle`: real corners, width `right - left + 1`.
#[derive(Clone, Copy, Debug)]
struct RealRect {
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
}

impl RealRect {
    fn area(&self) -> f64 {
        if self.left > self.right || self.top > self.bottom {
            0.0
        } else {
            (self.right - self.left + 1.0) * (self.bottom - self.top + 1.0)
        }
    }

    fn centre(&self) -> [f64; 2] {
        [
            (self.left + self.right) / 2.0,
            (self.top + self.bottom) / 2.0,
        ]
    }

    fn translated(&self, dx: f64, dy: f64) -> RealRect {
        RealRect {
            left: self.left + dx,
            top: self.top + dy,
            right: self.right + dx,
            bottom: self.bottom + dy,
        }
    }

    /// `pyramid_down<2>::rect_down`: where this rectangle lies in the next pyramid level.
    fn down(&self) -> RealRect {
        RealRect {
            left: self.left / 2.0 - 1.25,
            top: self.top / 2.0 - 0.75,
            right: self.right / 2.0 - 1.25,
            bottom: self.bottom / 2.0 - 0.75,
        }
    }

    /// The corners tl, tr, bl, br turned by `angle` about the centre (dlib's `rotate_point`).
    fn rotated_corners(&self, angle: f64) -> [[f64; 2]; 4] {
        let centre = self.centre();
        let (sin, cos) = angle.sin_cos();
        [
            [self.left, self.top],
            [self.right, self.top],
            [self.left, self.bottom],
            [self.right, self.bottom],
        ]
        .map(|[x, y]| {
            let (dx, dy) = (x - centre[0], y - centre[1]);
            [
                cos * dx - sin * dy + centre[0],
                sin * dx + cos * dy + centre[1],
            ]
        })
    }
}

/// dlib's `chip_details`: the rectangle of the source the chip covers, turned by `angle`.
struct ChipDetails {
    rect: RealRect,
    angle: f64,
    size: usize,
}

impl ChipDetails {
    /// dlib's `get_face_chip_details` for 5 points.
    fn for_face(points: &[[f64; 2]; LANDMARKS], size: usize, padding: f64) -> ChipDetails {
        let side = size as f64;
        let chip_points =
            CHIP_REFERENCE_POINTS.map(|p| p.map(|v| (padding + v) / (2.0 * padding + 1.0) * side));
        let chip_to_image = similarity_transform(&chip_points, points);
        // Only the rotation and scale of that transform are kept, with the rectangle it maps
        // the chip onto: centered_drect of the mapped chip centre, sides size * scale.
        let [cos_scaled, sin_scaled] = [chip_to_image.m[0][0], chip_to_image.m[1][0]];
        let scale = cos_scaled.hypot(sin_scaled);
        let centre = chip_to_image.apply([side / 2.0, side / 2.0]);
        let half_extent = (side * scale - 1.0) / 2.0;
        ChipDetails {
            rect: RealRect {
                left: centre[0] - half_extent,
                top: centre[1] - half_extent,
                right: centre[0] + half_extent,
                bottom: centre[1] + half_extent,
            },
            angle: sin_scaled.atan2(cos_scaled),
            size,
        }
    }
}

/// Interleaved 8-bit RGB, the pixels dlib works on.
struct Rgb8 {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Rgb8 {
    fn at(&self, x: usize, y: usize, c: usize) -> u8 {
        self.rgb[3 * (y * self.width + x) + c]
    }

    /// The pixels of the inclusive integer rectangle, which lies inside the image.
    fn crop(&self, left: usize, top: usize, right: usize, bottom: usize) -> Rgb8 {
        let width = right + 1 - left;
        let rgb = (top..=bottom)
            .flat_map(|y| &self.rgb[3 * (y * self.width + left)..3 * (y * self.width + right + 1)])
            .copied()
            .collect();
        Rgb8 {
            width,
            height: bottom + 1 - top,
            rgb,
        }
    }

    /// `pyramid_down<2>` on RGB: a separable [1 4 6 4 1] filter taking every other pixel,
    /// `(w - 3) / 2` x `(h - 3) / 2`, the sum of 256 weights truncated; images of 8 pixels or
    /// fewer on a side give an empty image.
    fn pyramid_down(&self) -> Rgb8 {
        if self.width <= 8 || self.height <= 8 {
            return Rgb8 {
                width: 0,
                height: 0,
                rgb: Vec::new(),
            };
        }
        const TAPS: [u32; 5] = [1, 4, 6, 4, 1];
        let (width, height) = ((self.width - 3) / 2, (self.height - 3) / 2);
        // Rows filtered and subsampled horizontally, every source row kept.
        let mut rows = vec![0u32; 3 * width * self.height];
        for y in 0..self.height {
            for x in 0..width {
                for c in 0..3 {
                    rows[3 * (y * width + x) + c] = TAPS
                        .iter()
                        .enumerate()
                        .map(|(k, &w)| w * self.at(2 * x + k, y, c) as u32)
                        .sum();
                }
            }
        }
        let mut rgb = vec![0u8; 3 * width * height];
        for y in 0..height {
            for x in 0..width {
                for c in 0..3 {
                    let sum: u32 = TAPS
                        .iter()
                        .enumerate()
                        .map(|(k, &w)| w * rows[3 * ((2 * y + k) * width + x) + c])
                        .sum();
                    rgb[3 * (y * width + x) + c] = (sum / 256) as u8;
                }
            }
        }
        Rgb8 { width, height, rgb }
    }
}

/// dlib's `std::lround` (halves away from zero), as `drectangle` converts to `rectangle`.
fn lround(v: f64) -> i64 {
    v.round() as i64
}

/// dlib's `extract_image_chip` with bilinear interpolation: interleaved RGB, `size` x `size`.
fn extract_chip(image: &Rgb8, details: &ChipDetails) -> Vec<u8> {
    let size = details.size;
    let mut chip = vec![0u8; 3 * size * size];
    let rect = details.rect;

    // An unrotated, unscaled chip is a plain copy of the (rounded) rectangle.
    if details.angle == 0.0
        && rect.bottom - rect.top + 1.0 == size as f64
        && rect.right - rect.left + 1.0 == size as f64
    {
        let (left, top) = (lround(rect.left), lround(rect.top));
        for row in 0..size {
            for col in 0..size {
                let (x, y) = (left + col as i64, top + row as i64);
                if x >= 0 && y >= 0 && (x as usize) < image.width && (y as usize) < image.height {
                    for c in 0..3 {
                        chip[3 * (row * size + col) + c] = image.at(x as usize, y as usize, c);
                    }
                }
            }
        }
        return chip;
    }

    // How many pyramid levels until the rectangle is about the chip's size, and the margin
    // the pyramid's filters need around it.
    let chip_area = (size * size) as f64;
    let mut grow = 2.0;
    let mut down = rect.down();
    while down.area() > chip_area {
        down = down.down();
        grow = grow * 2.0 + 2.0;
    }
    // Only the grown bounding box of the turned rectangle is read (and filtered).
    let corners = rect.rotated_corners(details.angle);
    let min = |i: usize| corners.iter().map(|p| p[i]).fold(f64::INFINITY, f64::min);
    let max = |i: usize| {
        corners
            .iter()
            .map(|p| p[i])
            .fold(f64::NEG_INFINITY, f64::max)
    };
    let bounds = [
        lround((min(0) - grow).max(0.0)),
        lround((min(1) - grow).max(0.0)),
        lround((max(0) + grow).min(image.width as f64 - 1.0)),
        lround((max(1) + grow).min(image.height as f64 - 1.0)),
    ];
    if bounds[0] > bounds[2] || bounds[1] > bounds[3] {
        return chip;
    }
    let mut source = image.crop(
        bounds[0] as usize,
        bounds[1] as usize,
        bounds[2] as usize,
        bounds[3] as usize,
    );
    let mut rect = rect.translated(-bounds[0] as f64, -bounds[1] as f64);
    while rect.down().area() > chip_area {
        rect = rect.down();
        source = source.pyramid_down();
    }

    // Chip corners (0,0), (size-1,0), (0,size-1) go to the rectangle's turned corners.
    let [tl, tr, bl, _] = rect.rotated_corners(details.angle);
    let last = size as f64 - 1.0;
    let chip_to_source = Affine {
        m: [
            [(tr[0] - tl[0]) / last, (bl[0] - tl[0]) / last],
            [(tr[1] - tl[1]) / last, (bl[1] - tl[1]) / last],
        ],
        b: tl,
    };
    let (width, height) = (source.width as f64, source.height as f64);
    for row in 0..size {
        for col in 0..size {
            let p = chip_to_source.apply([col as f64, row as f64]);
            let (x0, y0) = (p[0].floor(), p[1].floor());
            if !(x0 >= 0.0 && y0 >= 0.0 && x0 + 1.0 < width && y0 + 1.0 < height) {
                continue;
            }
            let (lr, tb) = (p[0] - x0, p[1] - y0);
            let (x0, y0) = (x0 as usize, y0 as usize);
            let sample = |x: usize, y: usize, c: usize| source.at(x, y, c) as f64;
            for c in 0..3 {
                // dlib's interpolate_bilinear in its order of operations, then its
                // static_cast<unsigned char> (truncation).
                let value = (1.0 - tb)
                    * ((1.0 - lr) * sample(x0, y0, c) + lr * sample(x0 + 1, y0, c))
                    + tb * ((1.0 - lr) * sample(x0, y0 + 1, c) + lr * sample(x0 + 1, y0 + 1, c));
                chip[3 * (row * size + col) + c] = value as u8;
            }
        }
    }
    chip
}
