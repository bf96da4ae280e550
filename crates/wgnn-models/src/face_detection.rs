//! dlib's CNN face detector (`cnn_face_detection_model_v1`, the MMOD network of
//! `models::face_detector`), computed as dlib computes it with no upsampling:
//!
//! 1. The photo, quantised to 8 bits, goes in the top-left of a tiled image pyramid
//!    ([`TiledPyramid`], dlib's `input_rgb_image_pyramid<pyramid_down<6>>`): each level is the
//!    previous one shrunk by 5/6 with dlib's bilinear `resize_image`, the levels stacked down
//!    a first column and then back up a second, 10 pixels apart, with an 11-pixel border.
//!    dlib builds it on the mean-subtracted values with zeros around; here it is built on
//!    [0, 1] samples with the mean colour around and the network's first op subtracts the
//!    mean (the same values up to float rounding).
//! 2. The network scores every 8th pixel of the pyramid for an 80x80 window.
//! 3. Each positive score becomes the window centred on its input point, mapped back to the
//!    photo through the nearest pyramid level; the boxes are sorted by score and dlib's
//!    non-maximum suppression (`overlaps_nms` of the model's options) keeps the best of each
//!    overlapping group.
//!
//! The pyramid's layout depends only on the photo's size, so a [`FaceDetector`] is compiled
//! for one width x height and runs any number of photos of that size.

use crate::face_detector;
use crate::face_landmarks::Rect;
use crate::imaging::RgbImage;
use wgnn::error::{Error, Result};
use wgnn::graph::{Graph, NodeId, Plan, PlanSpec};
use wgnn::Gpu;

/// The only file format [`FaceDetector::new`] reads.
pub const FORMAT: &str = "dlib-mmod-v1";

fn invalid(message: String) -> Error {
    Error::Invalid(format!("MMOD face detector: {message}"))
}

/// What the model file says beyond its weights (dlib's `mmod_options` and pyramid settings).
#[derive(Clone, Debug, PartialEq)]
pub struct MmodOptions {
    /// The detector window's size in pyramid pixels.
    pub window_width: f64,
    pub window_height: f64,
    /// A score-map location is a detection when its score exceeds this.
    pub adjust_threshold: f64,
    /// `overlaps_nms`: two boxes overlap when intersection over union exceeds `nms_iou` or
    /// the intersection covers more than `nms_percent_covered` of either box.
    pub nms_iou: f64,
    pub nms_percent_covered: f64,
    /// Each pyramid level is (N - 1) / N of the previous one.
    pub pyramid_down: usize,
    pub pyramid_padding: usize,
    pub pyramid_outer_padding: usize,
}

impl MmodOptions {
    /// Reads the options from the `__metadata__` of the converter's safetensors file.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Self> {
        let metadata = wgnn::nn::metadata_of_format(bytes, FORMAT).map_err(invalid)?;
        let text = |key: &str| {
            metadata
                .get(key)
                .ok_or_else(|| invalid(format!("metadata `{key}` is missing")))
        };
        let number = |key: &str| -> Result<f64> {
            text(key)?
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| invalid(format!("metadata `{key}` is not a number")))
        };
        let count = |key: &str| -> Result<usize> {
            text(key)?
                .parse::<usize>()
                .ok()
                .filter(|&v| v <= 1 << 16)
                .ok_or_else(|| invalid(format!("metadata `{key}` is not a count")))
        };
        let window = text("detector_window")?;
        let (w, h) = window
            .split_once('x')
            .and_then(|(w, h)| Some((w.parse::<usize>().ok()?, h.parse::<usize>().ok()?)))
            .filter(|&(w, h)| w > 0 && h > 0)
            .ok_or_else(|| invalid(format!("detector_window `{window}` is not WxH")))?;
        let options = MmodOptions {
            window_width: w as f64,
            window_height: h as f64,
            adjust_threshold: number("adjust_threshold")?,
            nms_iou: number("overlaps_nms_iou")?,
            nms_percent_covered: number("overlaps_nms_percent_covered")?,
            pyramid_down: count("pyramid_down")?,
            pyramid_padding: count("pyramid_padding")?,
            pyramid_outer_padding: count("pyramid_outer_padding")?,
        };
        if options.pyramid_down < 2 {
            return Err(invalid("pyramid_down must be at least 2".into()));
        }
        Ok(options)
    }

    /// dlib's `test_box_overlap` with the NMS thresholds.
    pub fn overlaps(&self, a: &Rect, b: &Rect) -> bool {
        let inner = area(&intersect(a, b));
        if inner == 0.0 {
            return false;
        }
        let outer = area(&Rect {
            left: a.left.min(b.left),
            top: a.top.min(b.top),
            right: a.right.max(b.right),
            bottom: a.bottom.max(b.bottom),
        });
        inner / outer > self.nms_iou
            || inner / area(a) > self.nms_percent_covered
            || inner / area(b) > self.nms_percent_covered
    }
}

fn intersect(a: &Rect, b: &Rect) -> Rect {
    Rect {
        left: a.left.max(b.left),
        top: a.top.max(b.top),
        right: a.right.min(b.right),
        bottom: a.bottom.min(b.bottom),
    }
}

/// dlib's `rectangle::area`: 0 for an empty rectangle.
fn area(r: &Rect) -> f64 {
    if r.right < r.left || r.bottom < r.top {
        0.0
    } else {
        ((r.right - r.left + 1) * (r.bottom - r.top + 1)) as f64
    }
}

/// A rectangle with real corners (dlib's `drectangle`).
#[derive(Clone, Copy, Debug, PartialEq)]
struct DRect {
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
}

/// Where each level of a photo's pyramid lies in the tiled image (dlib's
/// `compute_tiled_image_pyramid_details`): level 0 is the photo, level i is
/// `floor(rate^i ...)` of it, rate = (N - 1) / N, down to 5 rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TiledPyramid {
    pub width: usize,
    pub height: usize,
    pub levels: Vec<Rect>,
    /// N of dlib's `pyramid_down<N>`.
    pub down: usize,
}

fn sized(width: i64, height: i64) -> Rect {
    Rect {
        left: 0,
        top: 0,
        right: width - 1,
        bottom: height - 1,
    }
}

fn width_of(r: &Rect) -> i64 {
    r.right - r.left + 1
}

fn height_of(r: &Rect) -> i64 {
    r.bottom - r.top + 1
}

impl TiledPyramid {
    pub fn new(
        width: usize,
        height: usize,
        down: usize,
        padding: usize,
        outer_padding: usize,
    ) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(invalid(format!("cannot tile a {width}x{height} photo")));
        }
        let (padding, outer) = (padding as i64, outer_padding as i64);
        let rate = (down as f64 - 1.0) / down as f64;
        let (mut nr, mut nc) = (height as i64, width as i64);
        let mut rects = vec![sized(nc, nr)];
        loop {
            nr = (rate * nr as f64).floor() as i64;
            nc = (rate * nc as f64).floor() as i64;
            if nr * nc == 0 || nr < 5 {
                break;
            }
            rects.push(sized(nc, nr));
        }
        let first = rects[0];
        let total_height: i64 =
            rects.iter().map(|r| height_of(r) + padding).sum::<i64>() - 2 * padding;
        // The first column goes down until the next level fits beside the previous one and
        // the column is at least half the total height.
        let (mut column, mut prev_width) = (0i64, 0i64);
        for r in &rects {
            if width_of(r) <= width_of(&first) - prev_width - padding
                && (column - height_of(&first)) * 2 >= total_height - height_of(&first)
            {
                break;
            }
            column += height_of(r) + padding;
            prev_width = width_of(r);
        }
        column -= padding;
        let tiled_width = width_of(&first);
        let mut y = outer;
        let mut i = 0;
        while y < column + outer && i < rects.len() {
            let r = rects[i];
            rects[i] = Rect {
                left: r.left + outer,
                top: r.top + y,
                right: r.right + outer,
                bottom: r.bottom + y,
            };
            y += height_of(&rects[i]) + padding;
            i += 1;
        }
        y -= padding;
        // The second column goes back up, right-aligned, and stops before the photo.
        while i < rects.len() {
            let (x1, y1) = (outer + tiled_width - 1, y - 1);
            let r = Rect {
                left: x1 - rects[i].right,
                top: y1 - rects[i].bottom,
                right: x1,
                bottom: y1,
            };
            if area(&intersect(&rects[0], &r)) > 0.0 {
                break;
            }
            rects[i] = r;
            y -= height_of(&r) + padding;
            i += 1;
        }
        rects.truncate(i);
        Ok(TiledPyramid {
            width: (tiled_width + 2 * outer) as usize,
            height: (column + 2 * outer) as usize,
            levels: rects,
            down,
        })
    }

    /// The index of the level that contains `p` or, if none does, the nearest one (dlib's
    /// `nearest_rect`; `p` is rounded to integers first, as dlib converts it to a `point`).
    fn nearest_level(&self, x: f64, y: f64) -> usize {
        let (px, py) = ((x + 0.5).floor() as i64, (y + 0.5).floor() as i64);
        let mut best = (0, f64::INFINITY);
        for (i, r) in self.levels.iter().enumerate() {
            if (r.left..=r.right).contains(&px) && (r.top..=r.bottom).contains(&py) {
                return i;
            }
            let dx = (px.clamp(r.left, r.right) - px) as f64;
            let dy = (py.clamp(r.top, r.bottom) - py) as f64;
            let distance = (dx * dx + dy * dy).sqrt();
            if distance < best.1 {
                best = (i, distance);
            }
        }
        best.0
    }

    /// A box in tiled-image coordinates mapped back to the photo (dlib's
    /// `tiled_pyramid_to_image`): relative to its nearest level, scaled up level by level.
    fn to_image(&self, r: DRect) -> DRect {
        let level = self.nearest_level((r.left + r.right) / 2.0, (r.top + r.bottom) / 2.0);
        let origin = &self.levels[level];
        let ratio = self.down as f64 / (self.down as f64 - 1.0);
        let up = |mut v: f64, origin: i64| {
            v -= origin as f64;
            for _ in 0..level {
                v = v * ratio + 0.3;
            }
            v
        };
        DRect {
            left: up(r.left, origin.left),
            top: up(r.top, origin.top),
            right: up(r.right, origin.left),
            bottom: up(r.bottom, origin.top),
        }
    }

    /// The tiled image [3, height, width] of an 8-bit photo (`rgb` interleaved, as
    /// `RgbImage::to_rgb8`), samples v / 255, `background` (per channel) outside the levels.
    pub fn tile(&self, rgb: &[u8], background: [f32; 3]) -> Vec<f32> {
        let plane = self.width * self.height;
        let mut out = vec![0.0f32; 3 * plane];
        let photo = self.levels[0];
        let photo_width = width_of(&photo) as usize;
        for (c, &fill) in background.iter().enumerate() {
            let channel = &mut out[c * plane..(c + 1) * plane];
            channel.fill(fill);
            for y in 0..height_of(&photo) as usize {
                let row = (photo.top as usize + y) * self.width + photo.left as usize;
                for x in 0..photo_width {
                    channel[row + x] = rgb[(y * photo_width + x) * 3 + c] as f32 / 255.0;
                }
            }
            for pair in self.levels.windows(2) {
                resize_bilinear(channel, self.width, &pair[0], &pair[1]);
            }
        }
        out
    }
}

/// dlib's `resize_image` with bilinear interpolation for float images, from the `src` region of
/// `image` (row stride `stride`) to its `dst` region, including the SIMD path's float
/// arithmetic (four columns at a time while the fourth's right neighbour is inside `src`; the
/// remaining columns in double).
fn resize_bilinear(image: &mut [f32], stride: usize, src: &Rect, dst: &Rect) {
    let (in_nr, in_nc) = (height_of(src), width_of(src));
    let (out_nr, out_nc) = (height_of(dst), width_of(dst));
    let at = |r: i64, c: i64| image[(src.top + r) as usize * stride + (src.left + c) as usize];
    let mut rows = vec![0.0f32; (out_nr * out_nc) as usize];
    let x_scale = (in_nc - 1) as f64 / (out_nc - 1).max(1) as f64;
    let y_scale = (in_nr - 1) as f64 / (out_nr - 1).max(1) as f64;
    let mut y = -y_scale;
    for r in 0..out_nr {
        y += y_scale;
        let top = y.floor() as i64;
        let bottom = (top + 1).min(in_nr - 1);
        let tb_frac = y - top as f64;
        let out_row = &mut rows[(r * out_nc) as usize..((r + 1) * out_nc) as usize];
        let (tb, inv_tb) = (tb_frac as f32, (1.0 - tb_frac) as f32);
        let x0 = -4.0 * x_scale;
        let step = (4.0 * x_scale) as f32;
        let mut lanes = [0, 1, 2, 3].map(|j| (x0 + j as f64 * x_scale) as f32);
        let mut c = 0i64;
        loop {
            for lane in lanes.iter_mut() {
                *lane += step;
            }
            // Truncation towards zero, as _mm_cvttps_epi32.
            let left = lanes.map(|x| x as i32 as i64);
            if left[3] + 1 >= in_nc {
                break;
            }
            for j in 0..4 {
                let lr = lanes[j] - left[j] as f32;
                let inv_lr = 1.0 - lr;
                let (l, rt) = (left[j], left[j] + 1);
                let v = (inv_tb * inv_lr) * at(top, l)
                    + (inv_tb * lr) * at(top, rt)
                    + (tb * inv_lr) * at(bottom, l)
                    + (tb * lr) * at(bottom, rt);
                out_row[(c + j as i64) as usize] = v;
            }
            c += 4;
        }
        let mut x = -x_scale + c as f64 * x_scale;
        while c < out_nc {
            x += x_scale;
            let left = x.floor() as i64;
            let right = (left + 1).min(in_nc - 1);
            let lr = (x - left as f64) as f32;
            let upper = (1.0 - lr) * at(top, left) + lr * at(top, right);
            let lower = (1.0 - lr) * at(bottom, left) + lr * at(bottom, right);
            out_row[c as usize] = ((1.0 - tb_frac) * upper as f64 + tb_frac * lower as f64) as f32;
            c += 1;
        }
    }
    for r in 0..out_nr {
        let start = (dst.top + r) as usize * stride + dst.left as usize;
        image[start..start + out_nc as usize]
            .copy_from_slice(&rows[(r * out_nc) as usize..((r + 1) * out_nc) as usize]);
    }
}

/// dlib's `loss_mmod_::to_label` on one score map [rows, cols]: the boxes (in the photo) and
/// scores of the locations scoring above the threshold, best first, after non-maximum
/// suppression. Equal scores keep their scan order (dlib's sort leaves it unspecified).
pub fn decode(
    scores: &[f32],
    rows: usize,
    cols: usize,
    pyramid: &TiledPyramid,
    options: &MmodOptions,
) -> Vec<(Rect, f64)> {
    let mut candidates = Vec::new();
    for r in 0..rows {
        for c in 0..cols {
            let score = scores[r * cols + c] as f64;
            if score <= options.adjust_threshold {
                continue;
            }
            let (x, y) = (
                face_detector::score_to_input(c as f64),
                face_detector::score_to_input(r as f64),
            );
            // dlib's centered_drect: a width-w box spans w - 1 around its centre.
            let (hw, hh) = (
                (options.window_width - 1.0) / 2.0,
                (options.window_height - 1.0) / 2.0,
            );
            let window = DRect {
                left: x - hw,
                top: y - hh,
                right: x + hw,
                bottom: y + hh,
            };
            let b = pyramid.to_image(window);
            // drectangle -> rectangle rounds each corner (std::lround: halves away from 0).
            let rect = Rect {
                left: b.left.round() as i64,
                top: b.top.round() as i64,
                right: b.right.round() as i64,
                bottom: b.bottom.round() as i64,
            };
            candidates.push((rect, score));
        }
    }
    candidates.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut kept: Vec<(Rect, f64)> = Vec::new();
    for (rect, score) in candidates {
        if !kept.iter().any(|(k, _)| options.overlaps(k, &rect)) {
            kept.push((rect, score));
        }
    }
    kept
}

/// dlib's CNN face detector compiled for photos of one size.
pub struct FaceDetector {
    options: MmodOptions,
    pyramid: TiledPyramid,
    plan: Plan,
    input: NodeId,
    score_rows: usize,
    score_cols: usize,
}

impl FaceDetector {
    /// Compiles the network for `width` x `height` photos from the converter's safetensors
    /// (`scripts/dlib_mmod_to_safetensors.py`).
    pub fn new(gpu: &Gpu, weights: &[u8], width: usize, height: usize) -> Result<Self> {
        let options = MmodOptions::from_safetensors(weights)?;
        let params = face_detector::load_weights(gpu, "<MMOD face detector>", weights)?;
        let pyramid = TiledPyramid::new(
            width,
            height,
            options.pyramid_down,
            options.pyramid_padding,
            options.pyramid_outer_padding,
        )?;
        let mut g = Graph::new();
        let input = g.input("tiled_pyramid", [1, 3, pyramid.height, pyramid.width]);
        let x = g.channel_affine(input, face_detector::preprocess())?;
        let scores = face_detector::build(&mut g, x)?;
        let dims = g.shape(scores).dims().to_vec();
        let plan = Plan::compile(
            gpu,
            &g,
            &params,
            PlanSpec {
                outputs: vec![scores],
                ..Default::default()
            },
        )?;
        Ok(FaceDetector {
            options,
            pyramid,
            plan,
            input,
            score_rows: dims[2],
            score_cols: dims[3],
        })
    }

    pub fn options(&self) -> &MmodOptions {
        &self.options
    }

    pub fn pyramid(&self) -> &TiledPyramid {
        &self.pyramid
    }

    /// The network's score map [rows, cols] for a photo of the compiled size.
    pub fn scores(&mut self, gpu: &Gpu, image: &RgbImage) -> Result<Vec<f32>> {
        let photo = &self.pyramid.levels[0];
        let (width, height) = (width_of(photo) as usize, height_of(photo) as usize);
        if (image.width, image.height) != (width, height) {
            return Err(Error::Invalid(format!(
                "the face detector was compiled for {width}x{height} photos, got {}x{}",
                image.width, image.height
            )));
        }
        let background = face_detector::MEAN_RGB.map(|m| m / 255.0);
        let tiled = self.pyramid.tile(&image.to_rgb8(), background);
        self.plan.write_input(gpu, self.input, &tiled)?;
        Ok(self.plan.step(gpu)?.remove(0))
    }

    /// The faces in `image` as dlib's boxes (may extend past the photo) and confidences, best
    /// first.
    pub fn detect(&mut self, gpu: &Gpu, image: &RgbImage) -> Result<Vec<(Rect, f64)>> {
        let scores = self.scores(gpu, image)?;
        Ok(decode(
            &scores,
            self.score_rows,
            self.score_cols,
            &self.pyramid,
            &self.options,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiled_pyramid_of_a_small_photo() {
        let p = TiledPyramid::new(184, 224, 6, 10, 11).unwrap();
        assert_eq!(
            p.levels[0],
            Rect {
                left: 11,
                top: 11,
                right: 194,
                bottom: 234
            }
        );
        assert_eq!((p.width, p.height), (206, 863));
        // Each level is floor(5/6) of the previous one.
        assert_eq!(width_of(&p.levels[1]), 153);
        assert_eq!(height_of(&p.levels[1]), 186);
        // No two levels overlap.
        for (i, a) in p.levels.iter().enumerate() {
            for b in &p.levels[i + 1..] {
                assert_eq!(area(&intersect(a, b)), 0.0);
            }
        }
    }
}
