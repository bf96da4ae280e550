//! Add, subtract and multiply in float64 with numpy-style broadcasting (shapes aligned on the
//! right; a dimension of size 1 repeats), and the gradients of each operand.

use wgnn::ops::elementwise::BinaryKind;

/// The broadcast output shape of `a` and `b` (the caller ensures they are compatible).
pub fn output_shape(a: &[usize], b: &[usize]) -> Vec<usize> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], k: usize| (k + s.len()).checked_sub(rank).map_or(1, |i| s[i]);
    (0..rank).map(|k| dim(a, k).max(dim(b, k))).collect()
}

/// The row-major index into an operand of shape `dims` of the output element at `index`
/// (coordinates over `out`).
fn source(index: &[usize], dims: &[usize], out: &[usize]) -> usize {
    let skip = out.len() - dims.len();
    dims.iter().enumerate().fold(0, |flat, (k, &d)| {
        flat * d + if d == 1 { 0 } else { index[skip + k] }
    })
}

pub fn forward(
    kind: BinaryKind,
    a: &[f64],
    a_dims: &[usize],
    b: &[f64],
    b_dims: &[usize],
) -> Vec<f64> {
    let out = output_shape(a_dims, b_dims);
    super::multi_indices(&out)
        .iter()
        .map(|c| {
            let (x, y) = (a[source(c, a_dims, &out)], b[source(c, b_dims, &out)]);
            match kind {
                BinaryKind::Add => x + y,
                BinaryKind::Sub => x - y,
                BinaryKind::Mul => x * y,
            }
        })
        .collect()
}

/// (da, db) for the upstream gradient `dy` of the output: each summed over the elements that
/// its operand's element was broadcast to.
pub fn backward(
    kind: BinaryKind,
    a: &[f64],
    a_dims: &[usize],
    b: &[f64],
    b_dims: &[usize],
    dy: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let out = output_shape(a_dims, b_dims);
    let mut da = vec![0.0; a.len()];
    let mut db = vec![0.0; b.len()];
    for (c, g) in super::multi_indices(&out).iter().zip(dy) {
        let (i, j) = (source(c, a_dims, &out), source(c, b_dims, &out));
        let (ga, gb) = match kind {
            BinaryKind::Add => (*g, *g),
            BinaryKind::Sub => (*g, -g),
            BinaryKind::Mul => (g * b[j], g * a[i]),
        };
        da[i] += ga;
        db[j] += gb;
    }
    (da, db)
}
