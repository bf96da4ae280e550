//! Row-wise L2 normalisation against the float64 reference, forward and backward.
use wgnn_reference::testing as common;

use common::*;
use wgnn::ops::norm::{L2Normalize, L2NormalizeBackward};
use wgnn::rng::Rng;
use wgnn_reference::norm as reference;

#[test]
fn reference_backward_matches_finite_differences() {
    let mut rng = Rng::new(1);
    let (rows, cols) = (3, 7);
    let x = random_nonzero(&mut rng, rows * cols);
    let up = random_f64(&mut rng, rows * cols);
    let f = |v: &[f64]| dot(&reference::l2_normalize(v, cols), &up);
    assert_gradient(
        "l2_normalize",
        &f,
        &x,
        &reference::l2_normalize_backward(&x, cols, &up),
    );
}

#[test]
fn forward_and_backward_match_reference() {
    let mut rng = Rng::new(2);
    // Rows shorter than, equal to, and longer than the 64-invocation workgroup; one column.
    for (rows, cols) in [(5, 3), (3, 37), (2, 64), (3, 300), (4, 1)] {
        let x = random_nonzero(&mut rng, rows * cols);
        let up = random_f64(&mut rng, rows * cols);
        let (tx, tup) = (tensor(&[rows, cols], &x), tensor(&[rows, cols], &up));
        let what = format!("[{rows}, {cols}]");
        let y = eval(&L2Normalize, &[&tx]);
        assert_close(&what, &y, &reference::l2_normalize(&x, cols), 1e-4, 1e-3);
        let dx = eval(&L2NormalizeBackward, &[&tx, &tup]);
        let expect = reference::l2_normalize_backward(&x, cols, &up);
        // dx is a difference of terms of size |dy| / norm (they cancel entirely when cols = 1):
        // judge it against that scale (a few f32 ulps of it).
        let min_norm = x
            .chunks(cols)
            .map(|row| dot(row, row).sqrt())
            .fold(f64::INFINITY, f64::min);
        let floor = 1e-2 * up.iter().fold(0.0f64, |m, v| m.max(v.abs())) / min_norm;
        assert_close(&format!("backward {what}"), &dx, &expect, 1e-4, floor);
        // Deterministic reductions: a second run is bit-identical.
        assert_eq!(dx, eval(&L2NormalizeBackward, &[&tx, &tup]), "{what}");
    }
}

#[test]
fn zero_row_stays_finite() {
    // eps inside the square root: a zero row maps to zeros and its gradient is dy / sqrt(eps).
    let x = [0.0, 0.0, 0.0, 0.3, -0.4, 0.5];
    let up = [0.5, -1.0, 2.0e-3, 0.7, 0.1, -0.2];
    let (tx, tup) = (tensor(&[2, 3], &x), tensor(&[2, 3], &up));
    let y = eval(&L2Normalize, &[&tx]);
    assert_close("zero row", &y, &reference::l2_normalize(&x, 3), 1e-4, 1e-3);
    let dx = eval(&L2NormalizeBackward, &[&tx, &tup]);
    assert!(dx.iter().all(|v| v.is_finite()), "{dx:?}");
    let expect = reference::l2_normalize_backward(&x, 3, &up);
    assert_close("zero row backward", &dx, &expect, 1e-4, 1e-3);
}

#[test]
fn graph_gradient_through_l2_normalize() {
    let mut rng = Rng::new(3);
    let (rows, cols) = (4, 70);
    let x = random_nonzero(&mut rng, rows * cols);
    let up = random_f64(&mut rng, rows * cols);
    let (y, grads) = graph_vjp(&[(&[rows, cols], &x)], &up, &|g, ids| {
        g.l2_normalize(ids[0]).unwrap()
    });
    assert_close(
        "forward",
        &y,
        &reference::l2_normalize(&x, cols),
        1e-4,
        1e-3,
    );
    let dx = reference::l2_normalize_backward(&x, cols, &up);
    assert_close("backward", &grads[0], &dx, 1e-4, 1e-3);
}

#[test]
fn bad_shapes_are_errors() {
    let mut g = wgnn::Graph::new();
    let a = g.input("a", [2, 3, 4]);
    let v = g.input("v", [5]);
    let m = g.input("m", [2, 3]);
    let other = g.input("o", [3, 2]);
    assert!(g.l2_normalize(a).is_err());
    assert!(g.l2_normalize(v).is_err());
    assert!(g.apply(L2NormalizeBackward, &[m, other]).is_err());
    assert!(g.l2_normalize(m).is_ok());
}
