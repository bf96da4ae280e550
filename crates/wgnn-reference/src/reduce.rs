//! Sums and means in float64, over everything (`axis` None, one value) or over one axis.

/// The view [outer, len, inner] of `dims` reduced over `axis` (or everything).
fn view(dims: &[usize], axis: Option<usize>) -> (usize, usize, usize) {
    match axis {
        None => (1, dims.iter().product(), 1),
        Some(axis) => (
            dims[..axis].iter().product(),
            dims[axis],
            dims[axis + 1..].iter().product(),
        ),
    }
}

/// Sum (or mean) of `x` (row-major `dims`) over `axis`: [outer, inner] values in row-major
/// order, whatever the output shape's keepdim.
pub fn forward(x: &[f64], dims: &[usize], axis: Option<usize>, mean: bool) -> Vec<f64> {
    let (outer, len, inner) = view(dims, axis);
    let scale = if mean { 1.0 / len as f64 } else { 1.0 };
    let mut y = vec![0.0; outer * inner];
    for o in 0..outer {
        for l in 0..len {
            for i in 0..inner {
                y[o * inner + i] += x[(o * len + l) * inner + i];
            }
        }
    }
    y.iter().map(|v| v * scale).collect()
}

/// dx for the upstream gradient `dy` ([outer, inner] values).
pub fn backward(dims: &[usize], axis: Option<usize>, mean: bool, dy: &[f64]) -> Vec<f64> {
    let (outer, len, inner) = view(dims, axis);
    let scale = if mean { 1.0 / len as f64 } else { 1.0 };
    let mut dx = vec![0.0; outer * len * inner];
    for o in 0..outer {
        for l in 0..len {
            for i in 0..inner {
                dx[(o * len + l) * inner + i] = dy[o * inner + i] * scale;
            }
        }
    }
    dx
}
