//! Add, subtract and multiply against the float64 reference, forward and backward: operands of
//! the same shape (the kernel without index arithmetic, as in gradient sums) and broadcast ones.
use wgnn_reference::testing as common;

// Tolerances: inputs rounded to f32 and sums of up to 77 broadcast terms; a wrong element is
// off by O(1).

use common::*;
use wgnn::ops::elementwise::{Binary, BinaryKind};
use wgnn::rng::Rng;
use wgnn_reference::elementwise as reference;

const KINDS: [BinaryKind; 3] = [BinaryKind::Add, BinaryKind::Sub, BinaryKind::Mul];

/// (a, b) shapes: odd sizes spanning several workgroups of 256, batch > 1, every path (the
/// same-shape ones with a multiple of 4 elements, 840 and 2244, take the vec4 kernel).
fn shapes() -> Vec<(Vec<usize>, Vec<usize>)> {
    vec![
        (vec![3, 5, 7, 11], vec![3, 5, 7, 11]),
        (vec![2, 3, 4, 5, 7], vec![2, 3, 4, 5, 7]),
        (vec![4, 33, 17], vec![4, 33, 17]),
        (vec![1031], vec![1031]),
        (vec![3, 5, 7, 11], vec![5, 1, 1]),
        (vec![3, 1, 9], vec![2, 1]),
    ]
}

#[test]
fn binary_ops_match_reference() {
    for (i, (a_dims, b_dims)) in shapes().into_iter().enumerate() {
        let mut rng = Rng::new(1000 + i as u64);
        let a = random_nonzero(&mut rng, a_dims.iter().product());
        let b = random_nonzero(&mut rng, b_dims.iter().product());
        let (ta, tb) = (tensor(&a_dims, &a), tensor(&b_dims, &b));
        for kind in KINDS {
            let y = eval(&Binary(kind), &[&ta, &tb]);
            let expect = reference::forward(kind, &a, &a_dims, &b, &b_dims);
            let what = format!("{kind:?} {a_dims:?} {b_dims:?}");
            assert_close(&what, &y, &expect, 1e-4, 1e-2);
        }
    }
}

#[test]
fn binary_gradients_match_reference() {
    for (i, (a_dims, b_dims)) in shapes().into_iter().enumerate() {
        let mut rng = Rng::new(1100 + i as u64);
        let a = random_nonzero(&mut rng, a_dims.iter().product());
        let b = random_nonzero(&mut rng, b_dims.iter().product());
        let out = reference::output_shape(&a_dims, &b_dims);
        let up = random_nonzero(&mut rng, out.iter().product());
        for kind in KINDS {
            // y = (a op b) + a: the graph sums a's two gradients, both of a's shape.
            let (y, grads) = graph_vjp(&[(&a_dims, &a), (&b_dims, &b)], &up, &|g, ids| {
                let ab = match kind {
                    BinaryKind::Add => g.add(ids[0], ids[1]),
                    BinaryKind::Sub => g.sub(ids[0], ids[1]),
                    BinaryKind::Mul => g.mul(ids[0], ids[1]),
                }
                .unwrap();
                g.add(ab, ids[0]).unwrap()
            });
            let what = |part: &str| format!("{kind:?} {a_dims:?} {b_dims:?}: {part}");
            let ab = reference::forward(kind, &a, &a_dims, &b, &b_dims);
            let expect_y = reference::forward(BinaryKind::Add, &ab, &out, &a, &a_dims);
            assert_close(&what("y"), &y, &expect_y, 1e-4, 1e-2);
            let (da, db) = reference::backward(kind, &a, &a_dims, &b, &b_dims, &up);
            let (_, da_direct) = reference::backward(BinaryKind::Add, &ab, &out, &a, &a_dims, &up);
            let da: Vec<f64> = da.iter().zip(&da_direct).map(|(x, y)| x + y).collect();
            assert_close(&what("da"), &grads[0], &da, 1e-4, 1e-2);
            assert_close(&what("db"), &grads[1], &db, 1e-4, 1e-2);
        }
    }
}
