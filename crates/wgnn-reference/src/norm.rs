//! Row-wise L2 normalisation in float64, eps inside the square root as on the GPU.

use wgnn::ops::norm::L2_EPS;

fn norm(row: &[f64]) -> f64 {
    (row.iter().map(|v| v * v).sum::<f64>() + L2_EPS as f64).sqrt()
}

/// y = x / sqrt(sum x^2 + eps) for each row of length `cols`.
pub fn l2_normalize(x: &[f64], cols: usize) -> Vec<f64> {
    x.chunks(cols)
        .flat_map(|row| {
            let n = norm(row);
            row.iter().map(move |v| v / n)
        })
        .collect()
}

/// dx = (dy - y * dot(y, dy)) / norm per row.
pub fn l2_normalize_backward(x: &[f64], cols: usize, dy: &[f64]) -> Vec<f64> {
    x.chunks(cols)
        .zip(dy.chunks(cols))
        .flat_map(|(row, g)| {
            let n = norm(row);
            let y: Vec<f64> = row.iter().map(|v| v / n).collect();
            let along: f64 = y.iter().zip(g).map(|(a, b)| a * b).sum();
            y.into_iter()
                .zip(g)
                .map(move |(yi, gi)| (gi - yi * along) / n)
                .collect::<Vec<_>>()
        })
        .collect()
}
