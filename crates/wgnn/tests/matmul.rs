//! Matrix products against the float64 reference: every transpose combination, odd sizes,
//! batches, shared operands, the linear layer, and the gradients through the graph.
use wgnn_reference::testing as common;

use common::*;
use wgnn::ops::matmul::MatMul;
use wgnn::rng::Rng;
use wgnn_reference::matmul as reference;

const FLAGS: [(bool, bool); 4] = [(false, false), (true, false), (false, true), (true, true)];

/// Storage shape of an operand: `rows x cols` of op(X), stored transposed when `t`, with an
/// optional leading batch.
fn stored(batch: Option<usize>, rows: usize, cols: usize, t: bool) -> Vec<usize> {
    let mut dims: Vec<usize> = batch.into_iter().collect();
    if t {
        dims.extend([cols, rows]);
    } else {
        dims.extend([rows, cols]);
    }
    dims
}

/// (A dims, B dims) for op(A) [M, K] and op(B) [K, N] with the given batches.
fn operands(
    (m, n, k): (usize, usize, usize),
    (a_batch, b_batch): (Option<usize>, Option<usize>),
    (ta, tb): (bool, bool),
) -> (Vec<usize>, Vec<usize>) {
    (stored(a_batch, m, k, ta), stored(b_batch, k, n, tb))
}

fn numel(dims: &[usize]) -> usize {
    dims.iter().product()
}

/// Batch layouts: plain matrices, a batch, a batch times a shared B, a shared A times a batch.
const BATCHES: [(Option<usize>, Option<usize>); 4] = [
    (None, None),
    (Some(3), Some(3)),
    (Some(2), None),
    (None, Some(2)),
];

#[test]
fn reference_backward_matches_finite_differences() {
    let mut rng = Rng::new(1);
    for flags in FLAGS {
        for batches in BATCHES {
            let (ad, bd) = operands((3, 4, 5), batches, flags);
            let a = random_nonzero(&mut rng, numel(&ad));
            let b = random_nonzero(&mut rng, numel(&bd));
            let c_len = reference::forward(&a, &ad, &b, &bd, flags.0, flags.1).len();
            let up = random_f64(&mut rng, c_len);
            let (da, db) = reference::backward(&a, &ad, &b, &bd, flags.0, flags.1, &up);
            let what = format!("flags {flags:?} batches {batches:?}");
            let fa = |x: &[f64]| dot(&reference::forward(x, &ad, &b, &bd, flags.0, flags.1), &up);
            assert_gradient(&format!("{what} dA"), &fa, &a, &da);
            let fb = |x: &[f64]| dot(&reference::forward(&a, &ad, x, &bd, flags.0, flags.1), &up);
            assert_gradient(&format!("{what} dB"), &fb, &b, &db);
        }
    }
}

/// Odd sizes below one tile, sizes spanning several tiles with ragged edges, and, for the subgroup
/// kernels (tiles of 8, 16 or 32 rows for M of at most 8, at most 16 and above, by 256 columns),
/// M in each band with N past one column tile, K not a multiple of its step of 4 and, for the
/// vec4 kernel (K a multiple of 4, and N too unless B is transposed), the same bands with both,
/// and M past one of its 64-row tiles.
fn check_forward(seed: u64) {
    let mut rng = Rng::new(seed);
    let scalar = [(37, 53, 29), (131, 259, 67), (7, 300, 5), (13, 261, 10)];
    let vec4 = [(37, 52, 28), (6, 264, 12), (12, 260, 8), (100, 132, 20)];
    for sizes in scalar.into_iter().chain(vec4) {
        for flags in FLAGS {
            for batches in BATCHES {
                if sizes.0 > 100 && batches != (None, None) {
                    continue; // the large case once per transpose combination is enough
                }
                let (ad, bd) = operands(sizes, batches, flags);
                let a = random_nonzero(&mut rng, numel(&ad));
                let b = random_nonzero(&mut rng, numel(&bd));
                let op = MatMul {
                    transpose_a: flags.0,
                    transpose_b: flags.1,
                };
                let c = eval(&op, &[&tensor(&ad, &a), &tensor(&bd, &b)]);
                let expect = reference::forward(&a, &ad, &b, &bd, flags.0, flags.1);
                // Sums of up to 67 products of values in [-1, 1] round to ~1e-6 in f32:
                // results smaller than the floor are judged absolutely.
                let what = format!("matmul {sizes:?} flags {flags:?} batches {batches:?}");
                assert_close(&what, &c, &expect, 1e-4, 0.05);
            }
        }
    }
}

#[test]
fn forward_matches_reference() {
    check_forward(2);
}

/// Where the device has subgroups, the tests above run ops/matmul/subgroup.wgsl's kernel; this runs
/// matmul.wgsl's tiles (the fallback) on the same cases.
#[test]
fn fallback_matches_reference() {
    without_subgroups(|| {
        check_forward(12);
        check_gradients(13);
    });
}

#[test]
fn output_shapes() {
    let mut g = wgnn::Graph::new();
    let a = g.input("a", [2, 3, 4]);
    let b = g.input("b", [4, 5]);
    let c = g.matmul(a, b).unwrap();
    assert_eq!(g.shape(c).dims(), [2, 3, 5]);
    let bt = g.input("bt", [5, 4]);
    let c = g.matmul_t(a, bt, false, true).unwrap();
    assert_eq!(g.shape(c).dims(), [2, 3, 5]);
    let at = g.input("at", [4, 3]);
    let c = g.matmul_t(at, bt, true, true).unwrap();
    assert_eq!(g.shape(c).dims(), [3, 5]);
}

#[test]
fn gradients_through_graph_match_reference() {
    check_gradients(3);
}

/// The gradients are products with transposed operands: with M, N and K of 5 to 20, they take
/// the subgroup kernels' 8- and 16-row tiles, the second size the vec4 kernel where the layout
/// allows.
fn check_gradients(seed: u64) {
    let mut rng = Rng::new(seed);
    for flags in FLAGS {
        for (batches, sizes) in BATCHES
            .into_iter()
            .flat_map(|b| [(b, (5, 18, 11)), (b, (9, 20, 12))])
        {
            let (ad, bd) = operands(sizes, batches, flags);
            let a = random_nonzero(&mut rng, numel(&ad));
            let b = random_nonzero(&mut rng, numel(&bd));
            let expect_c = reference::forward(&a, &ad, &b, &bd, flags.0, flags.1);
            let up = random_f64(&mut rng, expect_c.len());
            let (c, grads) = graph_vjp(&[(&ad, &a), (&bd, &b)], &up, &|g, ids| {
                g.matmul_t(ids[0], ids[1], flags.0, flags.1).unwrap()
            });
            let (da, db) = reference::backward(&a, &ad, &b, &bd, flags.0, flags.1, &up);
            let what = format!("{sizes:?} flags {flags:?} batches {batches:?}");
            assert_close(&format!("{what} C"), &c, &expect_c, 1e-4, 1e-2);
            assert_close(&format!("{what} dA"), &grads[0], &da, 1e-4, 1e-2);
            assert_close(&format!("{what} dB"), &grads[1], &db, 1e-4, 1e-2);
        }
    }
}

/// y = x w^T + bias, with x [rows.., in] (rank 2 or 3), w [out, in], bias [out].
fn linear_reference(x: &[f64], w: &[f64], bias: &[f64], inputs: usize) -> Vec<f64> {
    let out = bias.len();
    let xd = [x.len() / inputs, inputs];
    let mut y = reference::forward(x, &xd, w, &[out, inputs], false, true);
    for (i, v) in y.iter_mut().enumerate() {
        *v += bias[i % out];
    }
    y
}

#[test]
fn linear_forward_and_backward() {
    let mut rng = Rng::new(4);
    let (inputs, out) = (7, 3);
    for x_dims in [vec![5, inputs], vec![2, 5, inputs]] {
        let x = random_nonzero(&mut rng, numel(&x_dims));
        let w = random_nonzero(&mut rng, out * inputs);
        let bias = random_nonzero(&mut rng, out);
        let rows = x.len() / inputs;
        let up = random_f64(&mut rng, rows * out);
        let (y, grads) = graph_vjp(
            &[(&x_dims, &x), (&[out, inputs], &w), (&[out], &bias)],
            &up,
            &|g, ids| g.linear(ids[0], ids[1], Some(ids[2])).unwrap(),
        );
        let what = format!("linear x {x_dims:?}");
        assert_close(
            &format!("{what} y"),
            &y,
            &linear_reference(&x, &w, &bias, inputs),
            1e-4,
            1e-2,
        );
        // Through the float64 reference of the product, the batch folded into the rows.
        let (dx, dw) =
            reference::backward(&x, &[rows, inputs], &w, &[out, inputs], false, true, &up);
        let dbias: Vec<f64> = (0..out)
            .map(|o| (0..rows).map(|r| up[r * out + o]).sum())
            .collect();
        assert_close(&format!("{what} dx"), &grads[0], &dx, 1e-4, 1e-2);
        assert_close(&format!("{what} dw"), &grads[1], &dw, 1e-4, 1e-2);
        assert_close(&format!("{what} dbias"), &grads[2], &dbias, 1e-4, 1e-2);
        // The reference linear layer's gradient itself, by finite differences.
        let fw = |v: &[f64]| dot(&linear_reference(&x, v, &bias, inputs), &up);
        assert_gradient(&format!("{what} reference dw"), &fw, &w, &dw);
    }
    // Without a bias.
    let x = random_nonzero(&mut rng, 4 * inputs);
    let w = random_nonzero(&mut rng, out * inputs);
    let up = random_f64(&mut rng, 4 * out);
    let (y, _) = graph_vjp(
        &[(&[4, inputs], &x), (&[out, inputs], &w)],
        &up,
        &|g, ids| g.linear(ids[0], ids[1], None).unwrap(),
    );
    let expect = reference::forward(&x, &[4, inputs], &w, &[out, inputs], false, true);
    assert_close("linear without bias", &y, &expect, 1e-4, 1e-2);
}

#[test]
fn bad_shapes_are_errors() {
    let mut g = wgnn::Graph::new();
    let a = g.input("a", [3, 4]);
    let b = g.input("b", [5, 6]);
    assert!(g.matmul(a, b).is_err(), "inner dimensions 4 and 5");
    assert!(
        g.matmul_t(a, b, true, false).is_err(),
        "inner dimensions 3 and 5"
    );
    let v = g.input("v", [4]);
    let message = |r: wgnn::Result<wgnn::NodeId>| r.unwrap_err().to_string();
    assert!(message(g.matmul_t(a, v, false, false)).contains("rank >= 2"));
    let t4 = g.input("t4", [2, 2, 5, 5]);
    assert!(message(g.matmul(a, t4)).contains("inner dimensions differ"));
    let b1 = g.input("b1", [2, 3, 4]);
    let b2 = g.input("b2", [3, 4, 5]);
    assert!(message(g.matmul(b1, b2)).contains("do not broadcast"));
    let b3 = g.input("b3", [2, 1, 4, 5]);
    let b4 = g.input("b4", [3, 3, 5, 6]);
    assert!(message(g.matmul(b3, b4)).contains("do not broadcast"));
    let v5 = g.input("v5", [5]);
    assert!(message(g.matmul(a, v5)).contains("inner dimensions differ"));
    let x = g.input("x", [5, 4]);
    let w = g.input("w", [3, 4]);
    let bad_bias = g.input("bad_bias", [4]);
    assert!(
        g.linear(x, w, Some(bad_bias)).is_err(),
        "bias [4] for 3 outputs"
    );
    let w3 = g.input("w3", [2, 3, 4]);
    assert!(g.linear(x, w3, None).is_err(), "rank-3 weight");
    let w_wrong = g.input("w_wrong", [3, 5]);
    assert!(g.linear(x, w_wrong, None).is_err(), "in features 4 and 5");
    // The op itself refuses, too, when evaluated eagerly.
    let ta = tensor(&[3, 4], &[0.5; 12]);
    let tb = tensor(&[5, 6], &[0.5; 30]);
    assert!(wgnn::graph::eval(gpu(), &MatMul::default(), &[&ta, &tb]).is_err());
}

/// Batch dims of (A, B) that broadcast as numpy's matmul: equal, one side 1, one side missing,
/// ranks 3 to 6, and a shared matrix next to a size-1 batch dim.
const BROADCASTS: [(&[usize], &[usize]); 6] = [
    (&[2, 3], &[3]),
    (&[2, 1], &[1, 3]),
    (&[3], &[2, 1]),
    (&[2, 1, 3], &[2, 1]),
    (&[2, 1, 2, 1], &[3, 1, 2]),
    (&[1, 3], &[]),
];

/// The stored dims of an operand: `batch` then the matrix (`rows x cols` of op(X), stored
/// transposed when `t`).
fn batched(batch: &[usize], rows: usize, cols: usize, t: bool) -> Vec<usize> {
    let mut dims = batch.to_vec();
    dims.extend(stored(None, rows, cols, t));
    dims
}

#[test]
fn reference_broadcast_backward_matches_finite_differences() {
    let mut rng = Rng::new(21);
    for (ab, bb) in BROADCASTS {
        let flags = (true, false);
        let (ad, bd) = (batched(ab, 3, 2, flags.0), batched(bb, 2, 3, flags.1));
        let a = random_nonzero(&mut rng, numel(&ad));
        let b = random_nonzero(&mut rng, numel(&bd));
        let c_len = reference::forward(&a, &ad, &b, &bd, flags.0, flags.1).len();
        let up = random_f64(&mut rng, c_len);
        let (da, db) = reference::backward(&a, &ad, &b, &bd, flags.0, flags.1, &up);
        let what = format!("A {ad:?} B {bd:?}");
        let fa = |x: &[f64]| dot(&reference::forward(x, &ad, &b, &bd, flags.0, flags.1), &up);
        assert_gradient(&format!("{what} dA"), &fa, &a, &da);
        let fb = |x: &[f64]| dot(&reference::forward(&a, &ad, x, &bd, flags.0, flags.1), &up);
        assert_gradient(&format!("{what} dB"), &fb, &b, &db);
    }
}

/// Broadcast batches, forward (output poisoned) and backward through the graph (gradients summed
/// over the broadcast dims), every transpose combination, at odd sizes and at sizes that take the
/// subgroup design's vec4 kernel (K and N multiples of 4), with M past 32 for its 64-row tiles.
fn check_broadcast(seed: u64) {
    let mut rng = Rng::new(seed);
    for sizes in [(5, 7, 3), (9, 8, 12), (37, 12, 8)] {
        for flags in FLAGS {
            for (ab, bb) in BROADCASTS {
                let (ad, bd) = (
                    batched(ab, sizes.0, sizes.2, flags.0),
                    batched(bb, sizes.2, sizes.1, flags.1),
                );
                let a = random_nonzero(&mut rng, numel(&ad));
                let b = random_nonzero(&mut rng, numel(&bd));
                let op = MatMul {
                    transpose_a: flags.0,
                    transpose_b: flags.1,
                };
                let (ta, tb) = (tensor(&ad, &a), tensor(&bd, &b));
                let c = wgnn::graph::eval(gpu(), &op, &[&ta, &tb]).unwrap();
                // Sums of up to 37 x 12 products of values in [-1, 1] (dB's also over broadcast
                // dims) round to ~1e-6 in f32: results below the floor are judged absolutely.
                let expect = reference::forward(&a, &ad, &b, &bd, flags.0, flags.1);
                let what = format!("A {ad:?} B {bd:?} flags {flags:?}");
                let mut c_dims: Vec<usize> = (0..ab.len().max(bb.len()))
                    .map(|k| {
                        let at = |d: &[usize]| {
                            (k + d.len())
                                .checked_sub(ab.len().max(bb.len()))
                                .map_or(1, |i| d[i])
                        };
                        at(ab).max(at(bb))
                    })
                    .collect();
                c_dims.extend([sizes.0, sizes.1]);
                assert_eq!(c.shape.dims(), c_dims.as_slice(), "{what}");
                assert_close(&what, &c.to_vec(gpu()).unwrap(), &expect, 1e-4, 0.05);

                let up = random_f64(&mut rng, expect.len());
                let (_, grads) = graph_vjp(&[(&ad, &a), (&bd, &b)], &up, &|g, ids| {
                    g.matmul_t(ids[0], ids[1], flags.0, flags.1).unwrap()
                });
                let (da, db) = reference::backward(&a, &ad, &b, &bd, flags.0, flags.1, &up);
                assert_close(&format!("{what} dA"), &grads[0], &da, 1e-4, 0.05);
                assert_close(&format!("{what} dB"), &grads[1], &db, 1e-4, 0.05);
            }
        }
    }
}

#[test]
fn broadcast_batches_match_reference() {
    eprintln!("subgroup design: {}", gpu().subgroup_broadcast);
    check_broadcast(22);
}

/// The same on the tiled design (the fallback where the device has subgroups).
#[test]
fn broadcast_batches_match_reference_on_fallback() {
    without_subgroups(|| check_broadcast(23));
}

/// numpy's 1-D operands: A [K] is a row, B [K] a column, and the added dim leaves the result.
#[test]
fn vectors_are_promoted_as_numpy_does() {
    let mut rng = Rng::new(24);
    let k = 5;
    // (A dims, B dims, promoted A, promoted B, C dims)
    type Case<'a> = (
        &'a [usize],
        &'a [usize],
        &'a [usize],
        &'a [usize],
        &'a [usize],
    );
    let cases: [Case; 4] = [
        (&[k], &[2, k, 3], &[1, k], &[2, k, 3], &[2, 3]),
        (&[2, 3, 7, k], &[k], &[2, 3, 7, k], &[k, 1], &[2, 3, 7]),
        (&[k], &[k], &[1, k], &[k, 1], &[1]),
        (&[k], &[k, 3], &[1, k], &[k, 3], &[3]),
    ];
    for (ad, bd, pa, pb, cd) in cases {
        let a = random_nonzero(&mut rng, numel(ad));
        let b = random_nonzero(&mut rng, numel(bd));
        let expect = reference::forward(&a, pa, &b, pb, false, false);
        let up = random_f64(&mut rng, expect.len());
        let (c, grads) = graph_vjp(&[(ad, &a), (bd, &b)], &up, &|g, ids| {
            let c = g.matmul(ids[0], ids[1]).unwrap();
            assert_eq!(g.shape(c).dims(), cd, "A {ad:?} B {bd:?}");
            c
        });
        let (da, db) = reference::backward(&a, pa, &b, pb, false, false, &up);
        let what = format!("A {ad:?} B {bd:?}");
        assert_close(&what, &c, &expect, 1e-4, 1e-2);
        assert_close(&format!("{what} dA"), &grads[0], &da, 1e-4, 1e-2);
        assert_close(&format!("{what} dB"), &grads[1], &db, 1e-4, 1e-2);
    }
}
