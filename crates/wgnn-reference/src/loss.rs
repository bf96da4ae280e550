//! Losses in float64. Each forward returns the loss; each backward takes the upstream gradient
//! `dy` of that one value.

/// mean((a - b)^2).
pub fn mse(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / a.len() as f64
}

/// (da, db) of `mse`.
pub fn mse_backward(a: &[f64], b: &[f64], dy: f64) -> (Vec<f64>, Vec<f64>) {
    let n = a.len() as f64;
    let da: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(x, y)| 2.0 * (x - y) / n * dy)
        .collect();
    let db = da.iter().map(|v| -v).collect();
    (da, db)
}

/// mean of max(x, 0) - x t + ln(1 + exp(-|x|)), which equals -(t ln s(x) + (1 - t) ln(1 - s(x))).
pub fn bce_with_logits(x: &[f64], t: &[f64]) -> f64 {
    x.iter()
        .zip(t)
        .map(|(&x, &t)| x.max(0.0) - x * t + (-x.abs()).exp().ln_1p())
        .sum::<f64>()
        / x.len() as f64
}

/// (dlogits, dtargets) of `bce_with_logits`.
pub fn bce_with_logits_backward(x: &[f64], t: &[f64], dy: f64) -> (Vec<f64>, Vec<f64>) {
    let n = x.len() as f64;
    let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
    let dx = x
        .iter()
        .zip(t)
        .map(|(&x, &t)| (sigmoid(x) - t) / n * dy)
        .collect();
    let dt = x.iter().map(|&x| -x / n * dy).collect();
    (dx, dt)
}

/// Planes, rows and columns of an image batch [.., H, W].
fn planes(dims: &[usize]) -> (usize, usize, usize) {
    let (h, w) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    (dims.iter().product::<usize>() / (h * w), h, w)
}

/// mean of (x[.., i + 1, j] - x[.., i, j])^2 plus mean of (x[.., i, j + 1] - x[.., i, j])^2.
pub fn total_variation(x: &[f64], dims: &[usize]) -> f64 {
    let (planes, h, w) = planes(dims);
    let (mut vertical, mut horizontal) = (0.0, 0.0);
    for p in 0..planes {
        let at = |i: usize, j: usize| x[(p * h + i) * w + j];
        for i in 0..h {
            for j in 0..w {
                if i + 1 < h {
                    vertical += (at(i + 1, j) - at(i, j)).powi(2);
                }
                if j + 1 < w {
                    horizontal += (at(i, j + 1) - at(i, j)).powi(2);
                }
            }
        }
    }
    vertical / (planes * (h - 1) * w) as f64 + horizontal / (planes * h * (w - 1)) as f64
}

/// dx of `total_variation`.
pub fn total_variation_backward(x: &[f64], dims: &[usize], dy: f64) -> Vec<f64> {
    let (planes, h, w) = planes(dims);
    let cv = 2.0 * dy / (planes * (h - 1) * w) as f64;
    let ch = 2.0 * dy / (planes * h * (w - 1)) as f64;
    let mut dx = vec![0.0; x.len()];
    let index = |p: usize, i: usize, j: usize| (p * h + i) * w + j;
    for p in 0..planes {
        for i in 0..h {
            for j in 0..w {
                if i + 1 < h {
                    let d = x[index(p, i + 1, j)] - x[index(p, i, j)];
                    dx[index(p, i + 1, j)] += cv * d;
                    dx[index(p, i, j)] -= cv * d;
                }
                if j + 1 < w {
                    let d = x[index(p, i, j + 1)] - x[index(p, i, j)];
                    dx[index(p, i, j + 1)] += ch * d;
                    dx[index(p, i, j)] -= ch * d;
                }
            }
        }
    }
    dx
}

fn squared_distance(e: &[f64], dim: usize, r: usize, s: usize) -> f64 {
    (0..dim)
        .map(|d| (e[r * dim + d] - e[s * dim + d]).powi(2))
        .sum()
}

/// The hinge max(0, |e_a - e_p|^2 - |e_a - e_n|^2 + margin) of each triplet.
pub fn triplet_hinges(e: &[f64], dim: usize, triplets: &[[usize; 3]], margin: f64) -> Vec<f64> {
    triplets
        .iter()
        .map(|&[a, p, n]| {
            (squared_distance(e, dim, a, p) - squared_distance(e, dim, a, n) + margin).max(0.0)
        })
        .collect()
}

/// Mean over triplets of the hinge; embeddings `e` are [rows, dim] row-major.
pub fn triplet_loss(e: &[f64], dim: usize, triplets: &[[usize; 3]], margin: f64) -> f64 {
    triplet_hinges(e, dim, triplets, margin).iter().sum::<f64>() / triplets.len() as f64
}

/// d embeddings of `triplet_loss` (zero for the triplets whose hinge is not positive).
pub fn triplet_loss_backward(
    e: &[f64],
    dim: usize,
    triplets: &[[usize; 3]],
    margin: f64,
    dy: f64,
) -> Vec<f64> {
    let hinges = triplet_hinges(e, dim, triplets, margin);
    let scale = dy / triplets.len() as f64;
    let mut de = vec![0.0; e.len()];
    for (&[a, p, n], hinge) in triplets.iter().zip(hinges) {
        if hinge <= 0.0 {
            continue;
        }
        for d in 0..dim {
            let (ea, ep, en) = (e[a * dim + d], e[p * dim + d], e[n * dim + d]);
            de[a * dim + d] += scale * 2.0 * (en - ep);
            de[p * dim + d] -= scale * 2.0 * (ea - ep);
            de[n * dim + d] += scale * 2.0 * (ea - en);
        }
    }
    de
}

/// The logits [N, C, inner...] as (N, C, inner).
fn class_view(dims: &[usize]) -> (usize, usize, usize) {
    (dims[0], dims[1], dims[2..].iter().product())
}

/// Cross-entropy of `logits` (`dims` [N, C, ...]) against class `labels` ([N, ...] row-major):
/// the mean over positions whose label is not `ignore` of log(sum_c exp(x_c)) - x_label, each
/// log-sum-exp shifted by the position's maximum.
pub fn cross_entropy(
    logits: &[f64],
    dims: &[usize],
    labels: &[usize],
    ignore: Option<usize>,
) -> f64 {
    let (n, classes, inner) = class_view(dims);
    let (mut total, mut count) = (0.0, 0.0);
    for b in 0..n {
        for j in 0..inner {
            let label = labels[b * inner + j];
            if Some(label) == ignore {
                continue;
            }
            let x = |c: usize| logits[(b * classes + c) * inner + j];
            let m = (0..classes).map(x).fold(f64::NEG_INFINITY, f64::max);
            let lse = m + (0..classes).map(|c| (x(c) - m).exp()).sum::<f64>().ln();
            total += lse - x(label);
            count += 1.0;
        }
    }
    total / count
}

/// dlogits of `cross_entropy`: (softmax(x) - onehot(label)) / count * dy at labelled positions,
/// 0 at ignored ones.
pub fn cross_entropy_backward(
    logits: &[f64],
    dims: &[usize],
    labels: &[usize],
    ignore: Option<usize>,
    dy: f64,
) -> Vec<f64> {
    let (n, classes, inner) = class_view(dims);
    let count = labels.iter().filter(|&&l| Some(l) != ignore).count() as f64;
    let mut dx = vec![0.0; logits.len()];
    for b in 0..n {
        for j in 0..inner {
            let label = labels[b * inner + j];
            if Some(label) == ignore {
                continue;
            }
            let at = |c: usize| (b * classes + c) * inner + j;
            let m = (0..classes)
                .map(|c| logits[at(c)])
                .fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = (0..classes).map(|c| (logits[at(c)] - m).exp()).sum();
            for c in 0..classes {
                let target = if c == label { 1.0 } else { 0.0 };
                dx[at(c)] = ((logits[at(c)] - m).exp() / s - target) / count * dy;
            }
        }
    }
    dx
}
