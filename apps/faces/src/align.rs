//! Per-image zoom alignment: a face photographed closer or further away is viewed rescaled to
//! about the scale of the training faces before the head describes it (a face detector's crop,
//! for scale only).
//!
//! The frozen descriptor changes with the scale of a face more than with anything else a
//! person's photos differ in: which channels fire changes, not only where, so no pooling makes
//! it indifferent to scale (docs/faces.md, "Distance"). The aligner predicts how much larger
//! (log zoom > 0) or smaller than usual a face is from the descriptor of the image as it is,
//! and the network then views the image zoomed by the inverse, within `[min_zoom, max_zoom]`.
//!
//! The prediction is a ridge regression of the log zoom on that descriptor, fit in closed form
//! on the training photos viewed at known zooms ([`FIT_ZOOM_STEP`]`^k`, `|k| <= FIT_ZOOM_STEPS`):
//! it needs no labels beyond the zooms the fit itself applies. Everything is f64 and
//! sequential, so the fit is deterministic.

use super::whitening::{centred_rows, CentredRows};
use wgnn::error::{Error, Result};

/// The fit views each training photo zoomed by `FIT_ZOOM_STEP^k` for `k` in
/// `-FIT_ZOOM_STEPS..=FIT_ZOOM_STEPS` (0.80 to 1.25).
pub const FIT_ZOOM_STEP: f64 = 1.077;
pub const FIT_ZOOM_STEPS: i32 = 3;

/// The fit's ridge, relative to the mean squared norm of the centred descriptors (chosen on the
/// training identities, docs/faces.md).
pub const RIDGE: f64 = 30.0;

/// The zooms the fit views each training photo at, and their log zooms (the targets).
pub fn fit_zooms() -> Vec<f64> {
    (-FIT_ZOOM_STEPS..=FIT_ZOOM_STEPS)
        .map(|k| FIT_ZOOM_STEP.powi(k))
        .collect()
}

/// A linear prediction of a face's log zoom from its descriptor.
#[derive(Clone, Debug, PartialEq)]
pub struct ZoomRegressor {
    pub weight: Vec<f32>,
    pub bias: f32,
}

impl ZoomRegressor {
    /// Ridge regression of `log_zooms` (one per row) on `descriptors` (`[m, d]` row-major):
    /// minimises `sum (w . x_i + b - y_i)^2 + ridge * s * |w|^2`, `s` the mean squared norm of
    /// the centred rows. Solved in the `m x m` kernel form (`m` is far below `d`).
    pub fn fit(descriptors: &[f32], d: usize, log_zooms: &[f64], ridge: f64) -> Result<Self> {
        let m = log_zooms.len();
        if m < 2 || d == 0 || descriptors.len() != m * d || !ridge.is_finite() || ridge <= 0.0 {
            return Err(Error::shape(
                "zoom regression",
                format!(
                    "{} values for {m} descriptors of {d} values, ridge {ridge}",
                    descriptors.len()
                ),
            ));
        }
        let CentredRows {
            mean,
            rows: centred,
            gram: mut kernel,
        } = centred_rows(descriptors, d);
        let target_mean = log_zooms.iter().sum::<f64>() / m as f64;

        // (K + ridge * s * I) alpha = y - mean(y), K = Xc Xc^T; then w = Xc^T alpha.
        let scale = (0..m).map(|a| kernel[a * m + a]).sum::<f64>() / m as f64;
        if !scale.is_finite() || scale <= 0.0 {
            return Err(Error::Invalid(
                "zoom regression: the descriptors do not vary (or are not finite)".into(),
            ));
        }
        for a in 0..m {
            kernel[a * m + a] += ridge * scale;
        }
        let rhs: Vec<f64> = log_zooms.iter().map(|y| y - target_mean).collect();
        let alpha = cholesky_solve(kernel, m, rhs);
        let mut weight = vec![0f64; d];
        for (a, row) in alpha.iter().zip(&centred) {
            for (w, x) in weight.iter_mut().zip(row) {
                *w += a * x;
            }
        }
        let bias = target_mean - weight.iter().zip(&mean).map(|(w, a)| w * a).sum::<f64>();
        Ok(Self {
            weight: weight.iter().map(|&w| w as f32).collect(),
            bias: bias as f32,
        })
    }

    /// The predicted log zoom of a descriptor: how much larger than usual the face looks.
    pub fn log_zoom(&self, descriptor: &[f32]) -> f64 {
        let dot: f64 = self
            .weight
            .iter()
            .zip(descriptor)
            .map(|(&w, &x)| w as f64 * x as f64)
            .sum();
        dot + self.bias as f64
    }

    /// The zoom to view the image at: the inverse of the predicted one, within `range`.
    pub fn view_zoom(&self, descriptor: &[f32], [min_zoom, max_zoom]: [f64; 2]) -> f64 {
        let zoom = (-self.log_zoom(descriptor)).exp();
        if zoom.is_finite() {
            zoom.clamp(min_zoom, max_zoom)
        } else {
            1.0
        }
    }
}

/// Solves `a x = b` for a symmetric positive definite `a` (`[n, n]` row-major, consumed).
fn cholesky_solve(mut a: Vec<f64>, n: usize, mut b: Vec<f64>) -> Vec<f64> {
    for j in 0..n {
        let mut diag = a[j * n + j];
        for k in 0..j {
            diag -= a[j * n + k] * a[j * n + k];
        }
        let diag = diag.max(f64::MIN_POSITIVE).sqrt();
        a[j * n + j] = diag;
        for i in j + 1..n {
            let mut v = a[i * n + j];
            for k in 0..j {
                v -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = v / diag;
        }
    }
    for i in 0..n {
        for k in 0..i {
            b[i] -= a[i * n + k] * b[k];
        }
        b[i] /= a[i * n + i];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            b[i] -= a[k * n + i] * b[k];
        }
        b[i] /= a[i * n + i];
    }
    b
}
