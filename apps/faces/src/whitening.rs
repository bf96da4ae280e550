//! The head's starting point: learned whitening (Mikolajczyk and Matas 2007; Radenović et al.
//! 2018), a linear map computed in closed form from the training identities, that triplet
//! training then refines.
//!
//! Given descriptors `x_i` (rows of `[n, d]`) with identities:
//! 1. centre them on their mean `mu`;
//! 2. project onto the top `k = min(dim, n - 1)` principal directions (through the `n x n` Gram
//!    matrix, as `n << d`);
//! 3. whiten the within-identity scatter in that space: `Sw = 1/n sum (y_i - m_id(i))(...)^T`,
//!    shrunk towards its mean eigenvalue (`Sw + shrinkage * trace(Sw) / k * I`, so that
//!    directions barely seen varying in training are not blown up), and map `y` to
//!    `Lambda^-1/2 U^T y` where `Sw = U Lambda U^T`.
//!
//! The result is `W` (`[dim, d]`, rows beyond `k` zero) and `b = -W mu`: distances between
//! `W x + b` discount the ways one person's face varies (pose, expression) relative to the ways
//! people differ. Everything is f64 and sequential, so it is deterministic.

use wgnn::error::{Error, Result};

/// A linear map `x -> weight x + bias`, `weight` row-major `[rows, cols]`.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearMap {
    pub rows: usize,
    pub cols: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// Learned whitening of `descriptors` (`[n, d]` row-major) with `labels` (one per row) to
/// `dim` outputs (see the module documentation).
pub fn learned_whitening(
    descriptors: &[f32],
    d: usize,
    labels: &[u32],
    dim: usize,
    shrinkage: f64,
) -> Result<LinearMap> {
    let n = labels.len();
    if n < 2 || descriptors.len() != n * d || dim == 0 {
        return Err(Error::shape(
            "learned_whitening",
            format!(
                "{} values for {n} descriptors of {d} values, {dim} outputs",
                descriptors.len()
            ),
        ));
    }
    let CentredRows {
        mean,
        rows: centred,
        gram,
    } = centred_rows(descriptors, d);

    // Principal directions from the Gram matrix: if G u = l u with G = Xc Xc^T, then
    // v = Xc^T u / sqrt(l) is a unit principal direction with variance l / n.
    let (values, vectors) = symmetric_eigen(gram, n);
    let largest = values.first().copied().unwrap_or(0.0);
    let k = values
        .iter()
        .take(dim.min(n - 1))
        .take_while(|&&l| l > largest * 1e-10 && l > 0.0)
        .count();
    if k == 0 {
        return Err(Error::Invalid(
            "learned whitening: the training descriptors are all the same".into(),
        ));
    }
    let directions: Vec<Vec<f64>> = parallel_map(k, |j| {
        let scale = 1.0 / values[j].sqrt();
        let mut direction = vec![0f64; d];
        for (i, row) in centred.iter().enumerate() {
            let u = vectors[i * n + j] * scale;
            for (v, x) in direction.iter_mut().zip(row) {
                *v += u * x;
            }
        }
        direction
    });
    let projected: Vec<Vec<f64>> = parallel_map(n, |i| {
        directions.iter().map(|v| dot(v, &centred[i])).collect()
    });

    // Within-identity scatter in the principal subspace.
    let mut sums = std::collections::BTreeMap::<u32, (Vec<f64>, usize)>::new();
    for (y, &label) in projected.iter().zip(labels) {
        let entry = sums.entry(label).or_insert_with(|| (vec![0.0; k], 0));
        entry.0.iter_mut().zip(y).for_each(|(s, v)| *s += v);
        entry.1 += 1;
    }
    let mut scatter = vec![0f64; k * k];
    for (y, label) in projected.iter().zip(labels) {
        let (sum, count) = &sums[label];
        let r: Vec<f64> = y
            .iter()
            .zip(sum)
            .map(|(v, s)| v - s / *count as f64)
            .collect();
        for a in 0..k {
            for b in 0..k {
                scatter[a * k + b] += r[a] * r[b] / n as f64;
            }
        }
    }
    let trace: f64 = (0..k).map(|a| scatter[a * k + a]).sum();
    let floor = (shrinkage * trace / k as f64).max(1e-12 * largest / n as f64);
    for a in 0..k {
        scatter[a * k + a] += floor;
    }
    let (within, basis) = symmetric_eigen(scatter, k);

    // W = Lambda^-1/2 U^T V^T, b = -W mu.
    let rows = parallel_map(k, |r| {
        let scale = 1.0 / within[r].sqrt();
        let mut row = vec![0f64; d];
        for (a, direction) in directions.iter().enumerate() {
            let c = basis[a * k + r] * scale;
            for (w, v) in row.iter_mut().zip(direction) {
                *w += c * v;
            }
        }
        row
    });
    let mut weight = vec![0f32; dim * d];
    let mut bias = vec![0f32; dim];
    for (r, row) in rows.iter().enumerate() {
        bias[r] = -dot(row, &mean) as f32;
        for (w, v) in weight[r * d..(r + 1) * d].iter_mut().zip(row) {
            *w = *v as f32;
        }
    }
    Ok(LinearMap {
        rows: dim,
        cols: d,
        weight,
        bias,
    })
}

/// Rows of `[n, d]` centred on their mean, in f64, and their `n x n` Gram matrix: what the
/// whitening starts from.
struct CentredRows {
    pub mean: Vec<f64>,
    pub rows: Vec<Vec<f64>>,
    /// `rows[i] . rows[j]`, row-major.
    pub gram: Vec<f64>,
}

fn centred_rows(descriptors: &[f32], d: usize) -> CentredRows {
    let n = descriptors.len() / d;
    let mut mean = vec![0f64; d];
    for row in descriptors.chunks_exact(d) {
        for (m, &x) in mean.iter_mut().zip(row) {
            *m += x as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let rows: Vec<Vec<f64>> = descriptors
        .chunks_exact(d)
        .map(|row| row.iter().zip(&mean).map(|(&x, m)| x as f64 - m).collect())
        .collect();
    let upper = parallel_map(n, |i| {
        (i..n)
            .map(|j| dot(&rows[i], &rows[j]))
            .collect::<Vec<f64>>()
    });
    let mut gram = vec![0f64; n * n];
    for (i, row) in upper.iter().enumerate() {
        for (j, &s) in (i..n).zip(row) {
            gram[i * n + j] = s;
            gram[j * n + i] = s;
        }
    }
    CentredRows { mean, rows, gram }
}

/// `[f(0), ..., f(count - 1)]`, computed on all the CPU's cores. Thread `t` of `T` takes the
/// indices `t, t + T, ...` (the rows of a triangle cost unequal work), and each `f(i)` runs
/// whole on one thread, so the result is the same bits whatever the number of threads.
fn parallel_map<T: Send>(count: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let cores = std::thread::available_parallelism().map_or(1, |t| t.get());
    parallel_map_on(cores, count, f)
}

/// `parallel_map` on `threads` threads (at most one per index).
fn parallel_map_on<T: Send>(threads: usize, count: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = threads.clamp(1, count.max(1));
    let mut parts: Vec<Vec<T>> = std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = (0..threads)
            .map(|t| scope.spawn(move || (t..count).step_by(threads).map(f).collect::<Vec<T>>()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut iters: Vec<_> = parts.iter_mut().map(|p| p.drain(..)).collect();
    (0..count)
        .map(|i| iters[i % threads].next().expect("one result per index"))
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Eigenvalues (descending) and eigenvectors (column `j` of the row-major `[n, n]` result
/// belongs to value `j`) of a symmetric matrix: Householder reduction to tridiagonal form and
/// the implicit QL algorithm (`tred2` and `tql2` of EISPACK, as in JAMA). Each eigenvector is
/// signed so that its largest-magnitude entry is positive.
pub fn symmetric_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(a.len(), n * n, "symmetric_eigen: not an n x n matrix");
    let mut d = vec![0f64; n];
    let mut e = vec![0f64; n];
    tred2(&mut a, &mut d, &mut e, n);
    tql2(&mut a, &mut d, &mut e, n);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| d[j].total_cmp(&d[i]).then(i.cmp(&j)));
    let values = order.iter().map(|&i| d[i]).collect();
    let mut vectors = vec![0f64; n * n];
    let at = column_major(n);
    for (column, &i) in order.iter().enumerate() {
        let (mut big, mut sign) = (0f64, 1f64);
        for r in 0..n {
            if a[at(r, i)].abs() > big {
                big = a[at(r, i)].abs();
                sign = a[at(r, i)].signum();
            }
        }
        for r in 0..n {
            vectors[r * n + column] = sign * a[at(r, i)];
        }
    }
    (values, vectors)
}

/// Where `tred2` and `tql2` keep element (i, j) of their matrix: column-major, so that their
/// inner loops, which run down a column, read consecutive memory (a row-major layout made the
/// eigendecompositions of a 1500 x 1500 Gram matrix and a 1024 x 1024 scatter 4x slower). The
/// input is symmetric, so either layout reads it the same.
fn column_major(n: usize) -> impl Fn(usize, usize) -> usize {
    move |i, j| j * n + i
}

/// Householder tridiagonalisation; `v` becomes the accumulated transformation (column-major,
/// see `column_major`). Index loops kept as in EISPACK, so the port can be checked line by line.
#[allow(clippy::needless_range_loop)]
fn tred2(v: &mut [f64], d: &mut [f64], e: &mut [f64], n: usize) {
    let at = column_major(n);
    for j in 0..n {
        d[j] = v[at(n - 1, j)];
    }
    for i in (1..n).rev() {
        let mut scale = 0.0;
        let mut h = 0.0;
        for k in 0..i {
            scale += d[k].abs();
        }
        if scale == 0.0 {
            e[i] = d[i - 1];
            for j in 0..i {
                d[j] = v[at(i - 1, j)];
                v[at(i, j)] = 0.0;
                v[at(j, i)] = 0.0;
            }
        } else {
            for k in 0..i {
                d[k] /= scale;
                h += d[k] * d[k];
            }
            let mut f = d[i - 1];
            let mut g = h.sqrt();
            if f > 0.0 {
                g = -g;
            }
            e[i] = scale * g;
            h -= f * g;
            d[i - 1] = f - g;
            for j in 0..i {
                e[j] = 0.0;
            }
            for j in 0..i {
                f = d[j];
                v[at(j, i)] = f;
                g = e[j] + v[at(j, j)] * f;
                for k in j + 1..i {
                    g += v[at(k, j)] * d[k];
                    e[k] += v[at(k, j)] * f;
                }
                e[j] = g;
            }
            f = 0.0;
            for j in 0..i {
                e[j] /= h;
                f += e[j] * d[j];
            }
            let hh = f / (h + h);
            for j in 0..i {
                e[j] -= hh * d[j];
            }
            for j in 0..i {
                f = d[j];
                g = e[j];
                for k in j..i {
                    v[at(k, j)] -= f * e[k] + g * d[k];
                }
                d[j] = v[at(i - 1, j)];
                v[at(i, j)] = 0.0;
            }
        }
        d[i] = h;
    }
    for i in 0..n.saturating_sub(1) {
        v[at(n - 1, i)] = v[at(i, i)];
        v[at(i, i)] = 1.0;
        let h = d[i + 1];
        if h != 0.0 {
            for k in 0..=i {
                d[k] = v[at(k, i + 1)] / h;
            }
            for j in 0..=i {
                let mut g = 0.0;
                for k in 0..=i {
                    g += v[at(k, i + 1)] * v[at(k, j)];
                }
                for k in 0..=i {
                    v[at(k, j)] -= g * d[k];
                }
            }
        }
        for k in 0..=i {
            v[at(k, i + 1)] = 0.0;
        }
    }
    for j in 0..n {
        d[j] = v[at(n - 1, j)];
        v[at(n - 1, j)] = 0.0;
    }
    if n > 0 {
        v[at(n - 1, n - 1)] = 1.0;
    }
    e[0] = 0.0;
}

/// Implicit QL iterations on the tridiagonal (`d`, `e`), accumulating into `v` (column-major).
#[allow(clippy::needless_range_loop)]
fn tql2(v: &mut [f64], d: &mut [f64], e: &mut [f64], n: usize) {
    let at = column_major(n);
    for i in 1..n {
        e[i - 1] = e[i];
    }
    if n > 0 {
        e[n - 1] = 0.0;
    }
    let mut f = 0.0;
    let mut tst1: f64 = 0.0;
    let eps = f64::EPSILON;
    for l in 0..n {
        tst1 = tst1.max(d[l].abs() + e[l].abs());
        let mut m = l;
        while m < n {
            if e[m].abs() <= eps * tst1 {
                break;
            }
            m += 1;
        }
        if m > l {
            loop {
                let mut g = d[l];
                let mut p = (d[l + 1] - g) / (2.0 * e[l]);
                let mut r = p.hypot(1.0);
                if p < 0.0 {
                    r = -r;
                }
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                let dl1 = d[l + 1];
                let mut h = g - d[l];
                for i in l + 2..n {
                    d[i] -= h;
                }
                f += h;
                p = d[m];
                let mut c = 1.0;
                let mut c2 = c;
                let mut c3 = c;
                let el1 = e[l + 1];
                let mut s = 0.0;
                let mut s2 = 0.0;
                for i in (l..m).rev() {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    g = c * e[i];
                    h = c * p;
                    r = p.hypot(e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    for k in 0..n {
                        h = v[at(k, i + 1)];
                        v[at(k, i + 1)] = s * v[at(k, i)] + c * h;
                        v[at(k, i)] = c * v[at(k, i)] - s * h;
                    }
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
                if e[l].abs() <= eps * tst1 {
                    break;
                }
            }
        }
        d[l] += f;
        e[l] = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::parallel_map_on;

    #[test]
    fn parallel_map_gives_every_index_in_order_on_any_number_of_threads() {
        let f = |i: usize| (i as f64 * 0.7).sin() * i as f64;
        for count in [0, 1, 2, 7, 100] {
            let serial: Vec<f64> = (0..count).map(f).collect();
            for threads in 1..=5 {
                assert_eq!(
                    parallel_map_on(threads, count, f),
                    serial,
                    "{count} on {threads}"
                );
            }
        }
    }
}
