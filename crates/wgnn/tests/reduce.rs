//! Sums and means against the float64 reference: whole tensors and single axes, through both
//! the sequential and the chunked tree paths (several passes), their backward, determinism.
use wgnn_reference::testing as common;

use common::*;
use wgnn::graph::Op;
use wgnn::ops::reduce::{Reduce, ReduceBackward, ReduceKind};
use wgnn::rng::Rng;
use wgnn::Shape;
use wgnn_reference::reduce as reference;

fn op(kind: ReduceKind, axis: Option<usize>, keepdim: bool) -> Reduce {
    Reduce {
        kind,
        axis,
        keepdim,
    }
}

const KINDS: [ReduceKind; 2] = [ReduceKind::Sum, ReduceKind::Mean];

/// The absolute floor for sums of `len` values in [-1, 1]: f32 rounding grows with the sum.
fn floor(kind: ReduceKind, len: usize) -> f64 {
    let sum_floor = 1e-3 * (len as f64).sqrt();
    match kind {
        ReduceKind::Sum => sum_floor,
        ReduceKind::Mean => sum_floor / len as f64,
    }
}

fn reduced_len(dims: &[usize], axis: Option<usize>) -> usize {
    axis.map_or(dims.iter().product(), |a| dims[a])
}

#[test]
fn reference_backward_matches_finite_differences() {
    let mut rng = Rng::new(1);
    let dims = [3, 4, 5];
    let x = random_nonzero(&mut rng, 60);
    for kind in KINDS {
        let mean = kind == ReduceKind::Mean;
        for axis in [None, Some(0), Some(1), Some(2)] {
            let up = random_f64(&mut rng, 60 / reduced_len(&dims, axis));
            let f = |v: &[f64]| dot(&reference::forward(v, &dims, axis, mean), &up);
            let dx = reference::backward(&dims, axis, mean, &up);
            assert_gradient(&format!("{kind:?} axis {axis:?}"), &f, &x, &dx);
        }
    }
}

#[test]
fn forward_matches_reference() {
    let mut rng = Rng::new(2);
    let cases: Vec<(Vec<usize>, Option<usize>)> = vec![
        // Short sums: one invocation per output.
        (vec![3, 5, 7], None),
        (vec![3, 5, 7], Some(0)),
        (vec![3, 5, 7], Some(1)),
        (vec![3, 5, 7], Some(2)),
        (vec![130, 70], Some(1)),
        (vec![37], Some(0)),
        // Long sums over few outputs: chunks added by workgroups, one or more passes.
        (vec![7, 13, 61], None),
        (vec![3, 1100, 2], Some(1)),
        (vec![2, 4500, 3], Some(1)),
        (vec![40000, 3], Some(0)),
        (vec![2049, 2048], None),
    ];
    for (dims, axis) in &cases {
        let x = random_f64(&mut rng, dims.iter().product());
        let tx = tensor(dims, &x);
        for kind in KINDS {
            let mean = kind == ReduceKind::Mean;
            let y = eval(&op(kind, *axis, false), &[&tx]);
            let expect = reference::forward(&x, dims, *axis, mean);
            let what = format!("{kind:?} of {dims:?} over {axis:?}");
            assert_close(
                &what,
                &y,
                &expect,
                1e-4,
                floor(kind, reduced_len(dims, *axis)),
            );
        }
    }
}

#[test]
fn output_shapes() {
    let mut g = wgnn::Graph::new();
    let x = g.input("x", [3, 4, 5]);
    let cases: [(Option<usize>, bool, &[usize]); 5] = [
        (None, false, &[1]),
        (Some(1), true, &[3, 1, 5]),
        (Some(1), false, &[3, 5]),
        (Some(0), false, &[4, 5]),
        (Some(2), true, &[3, 4, 1]),
    ];
    for (axis, keepdim, expect) in cases {
        let y = g.apply(op(ReduceKind::Sum, axis, keepdim), &[x]).unwrap();
        assert_eq!(g.shape(y).dims(), expect, "axis {axis:?} keepdim {keepdim}");
    }
    let v = g.input("v", [6]);
    let s = g.sum_axis(v, 0, false).unwrap();
    assert_eq!(g.shape(s).dims(), [1]);
}

#[test]
fn backward_op_matches_reference() {
    let mut rng = Rng::new(3);
    for (dims, axis, keepdim) in [
        (vec![3, 5, 7], None, false),
        (vec![3, 5, 7], Some(1), false),
        (vec![3, 5, 7], Some(2), true),
        (vec![3, 5, 7], Some(0), true),
    ] {
        for kind in KINDS {
            let shape = Shape::new(&dims).unwrap();
            let reduced = op(kind, axis, keepdim).output_shape(&[&shape]).unwrap();
            let up = random_f64(&mut rng, reduced.numel());
            let backward = ReduceBackward {
                kind,
                axis,
                keepdim,
                shape,
            };
            let dx = eval(&backward, &[&tensor(reduced.dims(), &up)]);
            let expect = reference::backward(&dims, axis, kind == ReduceKind::Mean, &up);
            let what = format!("{kind:?} backward of {dims:?} over {axis:?}");
            assert_close(&what, &dx, &expect, 1e-4, 1e-3);
        }
    }
}

#[test]
fn gradients_through_graph_match_reference() {
    let mut rng = Rng::new(4);
    let dims = [2, 3, 5];
    let x = random_nonzero(&mut rng, 30);
    // mean over axis 1 (kept), then sum over axis 2: [2, 3, 5] -> [2, 1, 5] -> [2, 1].
    let up = random_f64(&mut rng, 2);
    let (y, grads) = graph_vjp(&[(&dims, &x)], &up, &|g, ids| {
        let m = g.mean_axis(ids[0], 1, true).unwrap();
        g.sum_axis(m, 2, false).unwrap()
    });
    let m = reference::forward(&x, &dims, Some(1), true);
    let expect_y = reference::forward(&m, &[2, 1, 5], Some(2), false);
    assert_close("mean_axis -> sum_axis", &y, &expect_y, 1e-4, 1e-3);
    let dm = reference::backward(&[2, 1, 5], Some(2), false, &up);
    let dx = reference::backward(&dims, Some(1), true, &dm);
    assert_close("mean_axis -> sum_axis backward", &grads[0], &dx, 1e-4, 1e-3);

    // Whole-tensor sum and mean.
    for kind in KINDS {
        let mean = kind == ReduceKind::Mean;
        let up = random_f64(&mut rng, 1);
        let (y, grads) = graph_vjp(&[(&dims, &x)], &up, &|g, ids| {
            if mean {
                g.mean(ids[0]).unwrap()
            } else {
                g.sum(ids[0]).unwrap()
            }
        });
        let what = format!("{kind:?} of everything");
        assert_close(
            &what,
            &y,
            &reference::forward(&x, &dims, None, mean),
            1e-4,
            1e-3,
        );
        let dx = reference::backward(&dims, None, mean, &up);
        assert_close(&format!("{what} backward"), &grads[0], &dx, 1e-4, 1e-3);
    }
}

#[test]
fn second_order_gradient_of_a_sum_is_a_sum() {
    // The backward of the broadcast (ReduceBackward) is the reduction itself.
    let mut rng = Rng::new(5);
    let dims = [3, 4];
    let x = random_nonzero(&mut rng, 12);
    let up = random_f64(&mut rng, 12);
    let (y, grads) = graph_vjp(&[(&[3], &x[..3])], &up, &|g, ids| {
        g.apply(
            ReduceBackward {
                kind: ReduceKind::Mean,
                axis: Some(1),
                keepdim: false,
                shape: Shape::new(&dims).unwrap(),
            },
            &[ids[0]],
        )
        .unwrap()
    });
    assert_close(
        "broadcast",
        &y,
        &reference::backward(&dims, Some(1), true, &x[..3]),
        1e-4,
        1e-3,
    );
    let expect = reference::forward(&up, &dims, Some(1), true);
    assert_close("backward of the broadcast", &grads[0], &expect, 1e-4, 1e-3);
}

#[test]
fn results_are_bit_identical_across_runs() {
    let mut rng = Rng::new(6);
    let dims = [7, 13, 61];
    let x = random_f64(&mut rng, 7 * 13 * 61);
    let tx = tensor(&dims, &x);
    for axis in [None, Some(1)] {
        let first = eval(&op(ReduceKind::Sum, axis, false), &[&tx]);
        for _ in 0..3 {
            let again = eval(&op(ReduceKind::Sum, axis, false), &[&tx]);
            let same = first
                .iter()
                .zip(&again)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "sum over {axis:?} changed between runs");
        }
    }
}

#[test]
fn bad_shapes_are_errors() {
    let mut g = wgnn::Graph::new();
    let x = g.input("x", [3, 4]);
    assert!(
        g.sum_axis(x, 2, false).is_err(),
        "axis 2 of a rank-2 tensor"
    );
    assert!(g.mean_axis(x, 5, true).is_err(), "axis 5");
    let dy = g.input("dy", [4]);
    let backward = ReduceBackward {
        kind: ReduceKind::Sum,
        axis: Some(1),
        keepdim: false,
        shape: Shape::new(&[3, 4]).unwrap(),
    };
    assert!(
        g.apply(backward, &[dy]).is_err(),
        "dy [4] for a sum of [3, 4] over axis 1"
    );
}
