//! Softmax and log-softmax along one axis in float64, each row shifted by its maximum.

/// The view [outer, len, inner] of `dims` along `axis`.
fn view(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        dims[..axis].iter().product(),
        dims[axis],
        dims[axis + 1..].iter().product(),
    )
}

/// Softmax (or log-softmax when `log`) of `x` (row-major `dims`) along `axis`.
pub fn forward(x: &[f64], dims: &[usize], axis: usize, log: bool) -> Vec<f64> {
    let (outer, len, inner) = view(dims, axis);
    let mut y = vec![0.0; x.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |l: usize| (o * len + l) * inner + i;
            let m = (0..len).map(|l| x[at(l)]).fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = (0..len).map(|l| (x[at(l)] - m).exp()).sum();
            for l in 0..len {
                y[at(l)] = if log {
                    x[at(l)] - m - s.ln()
                } else {
                    (x[at(l)] - m).exp() / s
                };
            }
        }
    }
    y
}

/// dx for the upstream gradient `dy`, from the Jacobian of each row: softmax' has entries
/// y_l (delta_lk - y_k), log-softmax' has delta_lk - softmax_k.
pub fn backward(x: &[f64], dims: &[usize], axis: usize, log: bool, dy: &[f64]) -> Vec<f64> {
    let (outer, len, inner) = view(dims, axis);
    let p = forward(x, dims, axis, false);
    let mut dx = vec![0.0; x.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |l: usize| (o * len + l) * inner + i;
            for k in 0..len {
                dx[at(k)] = (0..len)
                    .map(|l| {
                        let delta = if l == k { 1.0 } else { 0.0 };
                        let jacobian = if log {
                            delta - p[at(k)]
                        } else {
                            p[at(l)] * (delta - p[at(k)])
                        };
                        dy[at(l)] * jacobian
                    })
                    .sum();
            }
        }
    }
    dx
}
