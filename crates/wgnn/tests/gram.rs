//! Gram matrices against the float64 reference, forward and backward.
use wgnn_reference::testing as common;

use common::*;
use wgnn::ops::gram::{Gram, GramBackward};
use wgnn::rng::Rng;
use wgnn_reference::gram as reference;

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// (N, C, HW) of a feature shape.
fn split(shape: &[usize]) -> (usize, usize, usize) {
    (shape[0], shape[1], shape[2..].iter().product())
}

/// Absolute floor for comparisons: sums of many products, judged relative to the largest.
fn floor(reference: &[f64]) -> f64 {
    1e-2 * reference.iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

#[test]
fn reference_backward_matches_finite_differences() {
    let mut rng = Rng::new(1);
    let shape = [2, 3, 2, 3];
    let (n, c, hw) = split(&shape);
    let x = random_nonzero(&mut rng, numel(&shape));
    let up = random_f64(&mut rng, n * c * c);
    let f = |v: &[f64]| dot(&reference::gram(v, n, c, hw), &up);
    let dx = reference::gram_backward(&x, n, c, hw, &up);
    assert_gradient("gram", &f, &x, &dx);
}

/// Ranks 3 to 5, batch > 1; C and HW not multiples of the tiles or the reduction steps;
/// C = 70, 130 and 200 give several row and column tiles (tiles below the diagonal are skipped
/// and mirrored); C = 5, 12 and 70 give 1, 2 and 4 row groups of 8 in ops/gram/subgroup.wgsl's
/// backward pass; HW = 81, 323 and 300 give several column tiles in both backward passes. The
/// [3, 64, 4, 4], [2, 5, 48, 48] and [1, 3, 3001] cases have few tiles and HW >= 2048 (the last
/// two), so the forward pass splits its reduction over HW (evenly, then unevenly) and sums the
/// partials.
const SHAPES: [&[usize]; 9] = [
    &[1, 3, 17],
    &[2, 5, 2, 3, 3],
    &[2, 70, 5, 7],
    &[1, 130, 9, 9],
    &[3, 64, 4, 4],
    &[2, 5, 48, 48],
    &[1, 3, 3001],
    &[2, 12, 17, 19],
    &[1, 200, 20, 15],
];

fn check_forward_and_backward(rng: &mut Rng, shape: &[usize]) {
    let (n, c, hw) = split(shape);
    let what = format!("{shape:?}");
    let x = random_nonzero(rng, numel(shape));
    let up = random_f64(rng, n * c * c);
    let tx = tensor(shape, &x);
    let tup = tensor(&[n, c, c], &up);

    let g = eval(&Gram, &[&tx]);
    let expect = reference::gram(&x, n, c, hw);
    assert_close(&what, &g, &expect, 1e-4, floor(&expect));
    assert_eq!(g, eval(&Gram, &[&tx]), "{what}: not deterministic");
    for b in 0..n {
        for i in 0..c {
            for j in 0..i {
                let (gij, gji) = (g[(b * c + i) * c + j], g[(b * c + j) * c + i]);
                assert_eq!(
                    gij.to_bits(),
                    gji.to_bits(),
                    "{what}: G not symmetric at {i},{j}"
                );
            }
        }
    }

    let dx = eval(&GramBackward, &[&tx, &tup]);
    let expect = reference::gram_backward(&x, n, c, hw, &up);
    assert_close(
        &format!("backward {what}"),
        &dx,
        &expect,
        1e-4,
        floor(&expect),
    );
    // Deterministic: a second run is bit-identical.
    assert_eq!(dx, eval(&GramBackward, &[&tx, &tup]), "{what}");
}

#[test]
fn forward_and_backward_match_reference() {
    let mut rng = Rng::new(2);
    for shape in SHAPES {
        check_forward_and_backward(&mut rng, shape);
    }
}

/// Where the device has subgroups, the test above runs ops/gram/subgroup.wgsl's kernels; this runs
/// gram.wgsl's (the fallback) on the same shapes.
#[test]
fn kernels_without_subgroups_match_reference() {
    let mut rng = Rng::new(4);
    without_subgroups(|| {
        for shape in SHAPES {
            check_forward_and_backward(&mut rng, shape);
        }
    });
}

#[test]
fn graph_gradient_through_gram() {
    let mut rng = Rng::new(3);
    let shape = [2, 6, 5, 5];
    let (n, c, hw) = split(&shape);
    let x = random_nonzero(&mut rng, numel(&shape));
    let up = random_f64(&mut rng, n * c * c);
    let (y, grads) = graph_vjp(&[(&shape, &x)], &up, &|g, ids| g.gram(ids[0]).unwrap());
    let expect = reference::gram(&x, n, c, hw);
    assert_close("forward", &y, &expect, 1e-4, floor(&expect));
    let dx = reference::gram_backward(&x, n, c, hw, &up);
    assert_close("backward", &grads[0], &dx, 1e-4, floor(&dx));
}

#[test]
fn bad_shapes_are_errors() {
    let mut g = wgnn::Graph::new();
    let m = g.input("m", [4, 5]);
    let x = g.input("x", [2, 3, 4, 4]);
    let dg = g.input("dg", [2, 4, 4]);
    assert!(g.gram(m).is_err());
    assert!(g.apply(GramBackward, &[x, dg]).is_err());
    assert!(g.apply(GramBackward, &[x, x]).is_err());
    assert!(g.gram(x).is_ok());
}
