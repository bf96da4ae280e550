//! Plain float64 CPU implementations of every op: the oracle that the GPU kernels are tested
//! against. Clarity beats speed here: obvious nested loops over NCDHW / row-major indices.
//!
//! Each family has its own file, mirroring the engine's `ops`. Forward functions return the output;
//! backward functions take the upstream gradient and return the gradient of each input.

pub mod activation;
pub mod batch_norm;
pub mod concat;
pub mod conv;
pub mod dropout;
pub mod elementwise;
pub mod gram;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod optim;
pub mod pad;
pub mod pool;
pub mod reduce;
pub mod resize;
pub mod softmax;
pub mod testing;
pub mod view;

/// Every multi-index below `dims`, row-major (last dimension fastest).
pub(crate) fn multi_indices(dims: &[usize]) -> Vec<Vec<usize>> {
    let mut all = vec![vec![]];
    for &d in dims {
        all = all
            .into_iter()
            .flat_map(|prefix| {
                (0..d).map(move |i| {
                    let mut v = prefix.clone();
                    v.push(i);
                    v
                })
            })
            .collect();
    }
    all
}

/// Central finite differences of a scalar function `f` at `x`, in float64.
/// Used to prove that each reference backward is right before it judges the GPU.
pub fn numerical_gradient(f: &dyn Fn(&[f64]) -> f64, x: &[f64], eps: f64) -> Vec<f64> {
    let mut probe = x.to_vec();
    (0..x.len())
        .map(|i| {
            let orig = probe[i];
            probe[i] = orig + eps;
            let plus = f(&probe);
            probe[i] = orig - eps;
            let minus = f(&probe);
            probe[i] = orig;
            (plus - minus) / (2.0 * eps)
        })
        .collect()
}

/// Largest elementwise relative error `|a - b| / max(|b|, floor)`: the floor stops values near
/// zero from dominating (they are judged by absolute error instead).
pub fn max_relative_error(actual: &[f64], expected: &[f64], floor: f64) -> f64 {
    assert_eq!(actual.len(), expected.len(), "length mismatch");
    actual
        .iter()
        .zip(expected)
        .map(|(a, b)| {
            if a.is_nan() || b.is_nan() {
                f64::INFINITY
            } else {
                (a - b).abs() / b.abs().max(floor)
            }
        })
        .fold(0.0, f64::max)
}
