//! Batch normalisation in float64 on x [N, C, spatial...]: statistics per channel over the batch
//! and every spatial position, as PyTorch's BatchNorm computes them. Batch statistics are [2, C]:
//! the means, then the biased variances.
//!
//! The training-mode gradient (`batch_norm_backward`) is the textbook closed form, not the
//! chained rules of the engine's two ops, so that the two are computed differently.

/// (N, C, S) of x [N, C, spatial...].
fn layout(shape: &[usize]) -> (usize, usize, usize) {
    (shape[0], shape[1], shape[2..].iter().product())
}

/// Calls `visit(index, channel)` for every element of x, in memory order.
fn for_each(shape: &[usize], mut visit: impl FnMut(usize, usize)) {
    let (n, c, s) = layout(shape);
    for b in 0..n {
        for ch in 0..c {
            for i in 0..s {
                visit((b * c + ch) * s + i, ch);
            }
        }
    }
}

/// Values per channel (M).
pub fn count(shape: &[usize]) -> usize {
    let (n, _, s) = layout(shape);
    n * s
}

/// [2, C]: the mean of each channel, then its biased variance (two passes).
pub fn batch_stats(x: &[f64], shape: &[usize]) -> Vec<f64> {
    let c = shape[1];
    let m = count(shape) as f64;
    let mut stats = vec![0.0; 2 * c];
    for_each(shape, |i, ch| stats[ch] += x[i] / m);
    for_each(shape, |i, ch| {
        stats[c + ch] += (x[i] - stats[ch]).powi(2) / m
    });
    stats
}

/// dx of `batch_stats` given d[2, C]: dx = dmean / M + dvar * 2 (x - mean) / M.
pub fn batch_stats_backward(x: &[f64], shape: &[usize], dstats: &[f64]) -> Vec<f64> {
    let c = shape[1];
    let m = count(shape) as f64;
    let stats = batch_stats(x, shape);
    let mut dx = vec![0.0; x.len()];
    for_each(shape, |i, ch| {
        dx[i] = dstats[ch] / m + dstats[c + ch] * 2.0 * (x[i] - stats[ch]) / m;
    });
    dx
}

/// y = (x - mean) / sqrt(var + eps) * gamma + beta, every vector [C].
pub fn apply(
    x: &[f64],
    shape: &[usize],
    mean: &[f64],
    var: &[f64],
    gamma: &[f64],
    beta: &[f64],
    eps: f64,
) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for_each(shape, |i, ch| {
        y[i] = (x[i] - mean[ch]) / (var[ch] + eps).sqrt() * gamma[ch] + beta[ch];
    });
    y
}

/// The gradients of `apply` with respect to each of its inputs.
pub struct ApplyGrads {
    pub dx: Vec<f64>,
    pub dmean: Vec<f64>,
    pub dvar: Vec<f64>,
    pub dgamma: Vec<f64>,
    pub dbeta: Vec<f64>,
}

/// The gradients of `apply` given dy, with mean and var as independent inputs.
pub fn apply_backward(
    x: &[f64],
    shape: &[usize],
    mean: &[f64],
    var: &[f64],
    gamma: &[f64],
    eps: f64,
    dy: &[f64],
) -> ApplyGrads {
    let c = shape[1];
    let mut grads = ApplyGrads {
        dx: vec![0.0; x.len()],
        dmean: vec![0.0; c],
        dvar: vec![0.0; c],
        dgamma: vec![0.0; c],
        dbeta: vec![0.0; c],
    };
    for_each(shape, |i, ch| {
        let std = (var[ch] + eps).sqrt();
        let centred = x[i] - mean[ch];
        grads.dx[i] = dy[i] * gamma[ch] / std;
        grads.dmean[ch] -= dy[i] * gamma[ch] / std;
        grads.dvar[ch] -= 0.5 * dy[i] * gamma[ch] * centred / (std * std * std);
        grads.dgamma[ch] += dy[i] * centred / std;
        grads.dbeta[ch] += dy[i];
    });
    grads
}

/// Training mode: `apply` with the batch's own statistics.
pub fn batch_norm(x: &[f64], shape: &[usize], gamma: &[f64], beta: &[f64], eps: f64) -> Vec<f64> {
    let c = shape[1];
    let stats = batch_stats(x, shape);
    apply(x, shape, &stats[..c], &stats[c..], gamma, beta, eps)
}

/// (dx, dgamma, dbeta) of training mode given dy, in the closed form
/// dx = gamma * rstd / M * (M * dy - sum(dy) - xhat * sum(dy * xhat)).
pub fn batch_norm_backward(
    x: &[f64],
    shape: &[usize],
    gamma: &[f64],
    eps: f64,
    dy: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let c = shape[1];
    let m = count(shape) as f64;
    let stats = batch_stats(x, shape);
    let rstd: Vec<f64> = (0..c)
        .map(|ch| 1.0 / (stats[c + ch] + eps).sqrt())
        .collect();
    let xhat = |i: usize, ch: usize| (x[i] - stats[ch]) * rstd[ch];
    let (mut dgamma, mut dbeta) = (vec![0.0; c], vec![0.0; c]);
    for_each(shape, |i, ch| {
        dgamma[ch] += dy[i] * xhat(i, ch);
        dbeta[ch] += dy[i];
    });
    let mut dx = vec![0.0; x.len()];
    for_each(shape, |i, ch| {
        dx[i] = gamma[ch] * rstd[ch] / m * (m * dy[i] - dbeta[ch] - xhat(i, ch) * dgamma[ch]);
    });
    (dx, dgamma, dbeta)
}

/// The running statistics after one training step: running = (1 - momentum) * running +
/// momentum * batch, with the unbiased variance var * M / (M - 1).
pub fn update_running(
    running_mean: &[f64],
    running_var: &[f64],
    stats: &[f64],
    count: usize,
    momentum: f64,
) -> (Vec<f64>, Vec<f64>) {
    let c = running_mean.len();
    let unbiased = count as f64 / (count - 1) as f64;
    let mean = (0..c)
        .map(|ch| (1.0 - momentum) * running_mean[ch] + momentum * stats[ch])
        .collect();
    let var = (0..c)
        .map(|ch| (1.0 - momentum) * running_var[ch] + momentum * stats[c + ch] * unbiased)
        .collect();
    (mean, var)
}
