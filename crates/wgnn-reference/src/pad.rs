//! Padding of a row-major tensor of any rank in float64: each output position is walked back to
//! the input position it reads by the mode's rule, stated one step at a time (a reflection folds
//! a position back across the nearer end until it lies inside).

use crate::multi_indices;
use crate::view::flat_index;
use wgnn::ops::pad::PadMode;

/// The input position that position `u` (relative to the input's first element) reads along an
/// axis of length `n`, or None for the constant mode's padding.
pub fn source(u: i64, n: usize, mode: PadMode) -> Option<usize> {
    let n = n as i64;
    let inside = |u: i64| (0..n).contains(&u);
    match mode {
        PadMode::Constant(_) => inside(u).then_some(u as usize),
        PadMode::Edge => Some(u.clamp(0, n - 1) as usize),
        PadMode::Wrap => {
            let mut u = u;
            while u < 0 {
                u += n;
            }
            while u >= n {
                u -= n;
            }
            Some(u as usize)
        }
        PadMode::Reflect if n == 1 => Some(0),
        PadMode::Reflect => {
            let mut u = u;
            while !inside(u) {
                // Mirror at the first element (u -> -u) or at the last (u -> 2 (n - 1) - u).
                u = if u < 0 { -u } else { 2 * (n - 1) - u };
            }
            Some(u as usize)
        }
    }
}

/// The padded dims.
pub fn output_dims(dims: &[usize], begin: &[usize], end: &[usize]) -> Vec<usize> {
    (0..dims.len())
        .map(|k| dims[k] + begin[k] + end[k])
        .collect()
}

/// The input element that output multi-index `index` reads, or None (constant padding).
fn source_index(index: &[usize], dims: &[usize], begin: &[usize], mode: PadMode) -> Option<usize> {
    let mut position = Vec::with_capacity(dims.len());
    for k in 0..dims.len() {
        position.push(source(index[k] as i64 - begin[k] as i64, dims[k], mode)?);
    }
    Some(flat_index(&position, dims))
}

/// x [dims] padded by `begin[k]` and `end[k]` elements along each axis k.
pub fn pad(x: &[f64], dims: &[usize], begin: &[usize], end: &[usize], mode: PadMode) -> Vec<f64> {
    let fill = match mode {
        PadMode::Constant(v) => v as f64,
        _ => 0.0,
    };
    multi_indices(&output_dims(dims, begin, end))
        .iter()
        .map(|index| source_index(index, dims, begin, mode).map_or(fill, |j| x[j]))
        .collect()
}

/// The gradient of `pad`: dy added at the input element each output position reads.
pub fn pad_backward(
    dy: &[f64],
    dims: &[usize],
    begin: &[usize],
    end: &[usize],
    mode: PadMode,
) -> Vec<f64> {
    let mut dx = vec![0.0; dims.iter().product()];
    for (i, index) in multi_indices(&output_dims(dims, begin, end))
        .iter()
        .enumerate()
    {
        if let Some(j) = source_index(index, dims, begin, mode) {
            dx[j] += dy[i];
        }
    }
    dx
}
