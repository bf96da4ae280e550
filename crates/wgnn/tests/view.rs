//! Transposes, slices, concatenation along any axis, flatten and inferred reshapes against the
//! float64 reference, forward and backward, at odd sizes with batch > 1, up to rank 6.
use wgnn_reference::testing as common;

use common::*;
use wgnn::ops::concat::Concat;
use wgnn::ops::view::{Slice, SliceAxis, Transpose};
use wgnn::rng::Rng;
use wgnn_reference::view as reference;

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// (input dims, permutation): ranks 1 to 6, identity and reversals, batch first or moved.
fn transpose_cases() -> Vec<(Vec<usize>, Vec<usize>)> {
    vec![
        (vec![7], vec![0]),
        (vec![5, 3], vec![1, 0]),
        (vec![2, 3, 5], vec![0, 2, 1]),
        (vec![3, 5, 7], vec![2, 0, 1]),
        (vec![2, 3, 5, 7], vec![0, 2, 3, 1]),
        (vec![3, 2, 5, 3], vec![3, 2, 1, 0]),
        (vec![2, 3, 1, 5, 3], vec![4, 1, 0, 3, 2]),
        (vec![2, 3, 2, 3, 5, 3], vec![5, 3, 1, 0, 4, 2]),
        (vec![2, 3, 2, 3, 5, 3], vec![0, 1, 2, 3, 4, 5]),
        // Over several workgroups: 2 * 33 * 67 elements.
        (vec![2, 33, 67], vec![2, 1, 0]),
    ]
}

#[test]
fn reference_backward_matches_finite_differences() {
    let mut rng = Rng::new(1);
    // Transpose: the gradient is the transpose by the inverse permutation.
    let (dims, perm) = (vec![2, 3, 4, 3], vec![2, 0, 3, 1]);
    let x = random_nonzero(&mut rng, numel(&dims));
    let up = random_f64(&mut rng, numel(&dims));
    let out_dims: Vec<usize> = perm.iter().map(|&a| dims[a]).collect();
    let inverse = Transpose { perm: perm.clone() }.inverse().perm;
    let f = |v: &[f64]| dot(&reference::transpose(v, &dims, &perm), &up);
    let grad = reference::transpose(&up, &out_dims, &inverse);
    assert_gradient("transpose", &f, &x, &grad);
    // A strided, reversed slice: its gradient scatters back.
    let dims = [3, 5, 4];
    let indices = vec![
        reference::slice_indices(3, 0, 3, 1),
        reference::slice_indices(5, -1, -6, -2),
        reference::slice_indices(4, 1, 100, 2),
    ];
    let x = random_nonzero(&mut rng, numel(&dims));
    let up = random_f64(&mut rng, indices.iter().map(|v| v.len()).product());
    let f = |v: &[f64]| dot(&reference::gather(v, &dims, &indices), &up);
    let grad = reference::gather_backward(&up, &dims, &indices);
    assert_gradient("slice", &f, &x, &grad);
    // Concatenation along the last axis: each input's gradient is its range of dy.
    let (da, db) = ([2usize, 3, 2], [2usize, 3, 5]);
    let (a, b) = (
        random_nonzero(&mut rng, numel(&da)),
        random_nonzero(&mut rng, numel(&db)),
    );
    let up = random_f64(&mut rng, 2 * 3 * 7);
    let whole = |n: usize| (0..n).collect::<Vec<_>>();
    let part = |lo: usize, hi: usize| vec![whole(2), whole(3), (lo..hi).collect()];
    let f = |v: &[f64]| dot(&reference::concat(&[(v, &da), (&b, &db)], 2), &up);
    let grad = reference::gather(&up, &[2, 3, 7], &part(0, 2));
    assert_gradient("concat a", &f, &a, &grad);
    let f = |v: &[f64]| dot(&reference::concat(&[(&a, &da), (v, &db)], 2), &up);
    let grad = reference::gather(&up, &[2, 3, 7], &part(2, 7));
    assert_gradient("concat b", &f, &b, &grad);
}

#[test]
fn reference_slice_indices_follow_onnx() {
    // Worked by hand from the operator's rules.
    assert_eq!(reference::slice_indices(7, 1, 5, 2), [1, 3]);
    assert_eq!(reference::slice_indices(7, -3, i64::MAX, 1), [4, 5, 6]);
    assert_eq!(reference::slice_indices(7, -100, 2, 1), [0, 1]);
    assert_eq!(
        reference::slice_indices(7, i64::MAX, i64::MIN, -3),
        [6, 3, 0]
    );
    assert_eq!(reference::slice_indices(7, 5, 1, -1), [5, 4, 3, 2]);
    assert_eq!(
        reference::slice_indices(7, -1, -8, -1),
        [6, 5, 4, 3, 2, 1, 0]
    );
    assert!(reference::slice_indices(7, 4, 4, 1).is_empty());
}

#[test]
fn transpose_forward_and_backward_match_reference() {
    let mut rng = Rng::new(2);
    for (dims, perm) in transpose_cases() {
        let x = random_nonzero(&mut rng, numel(&dims));
        let op = Transpose { perm: perm.clone() };
        let y = eval(&op, &[&tensor(&dims, &x)]);
        let what = format!("transpose {dims:?} by {perm:?}");
        assert_close(
            &what,
            &y,
            &reference::transpose(&x, &dims, &perm),
            1e-6,
            1e-6,
        );

        let up = random_f64(&mut rng, numel(&dims));
        let (y, grads) = graph_vjp(&[(&dims, &x)], &up, &|g, ids| {
            g.transpose(ids[0], &perm).unwrap()
        });
        assert_close(
            &format!("{what} graph"),
            &y,
            &reference::transpose(&x, &dims, &perm),
            1e-6,
            1e-6,
        );
        let out_dims: Vec<usize> = perm.iter().map(|&a| dims[a]).collect();
        let dx = reference::transpose(&up, &out_dims, &op.inverse().perm);
        assert_close(&format!("{what} dx"), &grads[0], &dx, 1e-6, 1e-6);
    }
}

/// (input dims, slices): the contiguous copy (one axis, step 1; its vec4 variant where the ranges
/// are whole vec4s), and the strided gather (several axes, steps > 1, reversed axes, negative
/// and out-of-range indices clamped), ranks 1 to 6.
fn slice_cases() -> Vec<(Vec<usize>, Vec<SliceAxis>)> {
    let s = SliceAxis::new;
    vec![
        (vec![2, 5, 7], vec![s(1, 1, 4, 1)]),
        (vec![3, 8, 4, 5], vec![s(1, 4, 8, 1)]),
        (vec![3, 7, 5], vec![s(-1, 2, i64::MAX, 1)]),
        (vec![3, 7, 5], vec![s(0, 1, 3, 1)]),
        (vec![11], vec![s(0, -4, -1, 1)]),
        (vec![2, 3, 4], vec![]),
        (vec![2, 5, 7], vec![s(1, 1, 4, 1), s(2, 0, 7, 2)]),
        (vec![3, 7, 9], vec![s(2, -1, i64::MIN, -1)]),
        (vec![3, 7, 9], vec![s(1, 6, -100, -3), s(2, 2, 9, 3)]),
        (vec![2, 3, 5, 7, 3], vec![s(4, 1, 2, 1), s(3, -2, 0, -2)]),
        (
            vec![2, 3, 2, 3, 5, 3],
            vec![s(5, 0, 3, 2), s(4, 4, 0, -1), s(1, -100, 100, 2)],
        ),
        // Over several workgroups.
        (vec![3, 41, 37], vec![s(1, 3, 40, 2), s(-1, 35, -40, -1)]),
    ]
}

fn indices_of(dims: &[usize], axes: &[SliceAxis]) -> Vec<Vec<usize>> {
    let mut indices: Vec<Vec<usize>> = dims.iter().map(|&d| (0..d).collect()).collect();
    for s in axes {
        let axis = s.axis.rem_euclid(dims.len() as isize) as usize;
        indices[axis] = reference::slice_indices(dims[axis], s.start, s.end, s.step);
    }
    indices
}

#[test]
fn slice_forward_and_backward_match_reference() {
    let mut rng = Rng::new(3);
    for (dims, axes) in slice_cases() {
        let indices = indices_of(&dims, &axes);
        let out_dims: Vec<usize> = indices.iter().map(|v| v.len()).collect();
        let x = random_nonzero(&mut rng, numel(&dims));
        let what = format!("slice {dims:?} by {axes:?}");
        let op = Slice { axes: axes.clone() };
        let y = wgnn::graph::eval(gpu(), &op, &[&tensor(&dims, &x)]).unwrap();
        assert_eq!(y.shape.dims(), out_dims.as_slice(), "{what}");
        let expect = reference::gather(&x, &dims, &indices);
        assert_close(&what, &y.to_vec(gpu()).unwrap(), &expect, 1e-6, 1e-6);

        let up = random_f64(&mut rng, numel(&out_dims));
        let (_, grads) = graph_vjp(&[(&dims, &x)], &up, &|g, ids| {
            g.slice(ids[0], &axes).unwrap()
        });
        let dx = reference::gather_backward(&up, &dims, &indices);
        assert_close(&format!("{what} dx"), &grads[0], &dx, 1e-6, 1e-6);
    }
}

/// (input dims, axis): every axis of ranks 1 to 6, odd lengths, the vec4 copy where an outer
/// item's ranges are whole vec4s (the last case).
fn concat_cases() -> Vec<(Vec<Vec<usize>>, isize)> {
    vec![
        (vec![vec![3], vec![5], vec![1]], 0),
        (vec![vec![2, 3, 5], vec![3, 3, 5]], 0),
        (vec![vec![2, 3, 5], vec![2, 3, 2], vec![2, 3, 1]], 2),
        (vec![vec![2, 3, 5, 7], vec![2, 3, 4, 7]], -2),
        (vec![vec![2, 1, 3, 2, 5], vec![2, 1, 3, 2, 3]], 4),
        (vec![vec![2, 1, 3, 2, 3, 3], vec![2, 1, 3, 5, 3, 3]], 3),
        (
            vec![vec![3, 4, 2, 4], vec![3, 4, 5, 4], vec![3, 4, 1, 4]],
            2,
        ),
    ]
}

#[test]
fn concat_on_any_axis_matches_reference() {
    let mut rng = Rng::new(4);
    for (shapes, axis) in concat_cases() {
        let rank = shapes[0].len() as isize;
        let resolved = axis.rem_euclid(rank) as usize;
        let xs: Vec<Vec<f64>> = shapes
            .iter()
            .map(|s| random_nonzero(&mut rng, numel(s)))
            .collect();
        let inputs: Vec<(&[f64], &[usize])> = xs
            .iter()
            .zip(&shapes)
            .map(|(x, s)| (x.as_slice(), s.as_slice()))
            .collect();
        let expect = reference::concat(&inputs, resolved);
        let what = format!("concat {shapes:?} along {axis}");
        let tensors: Vec<_> = shapes.iter().zip(&xs).map(|(s, x)| tensor(s, x)).collect();
        let refs: Vec<&wgnn::Tensor> = tensors.iter().collect();
        let y = eval(&Concat { axis }, &refs);
        assert_close(&what, &y, &expect, 1e-6, 1e-6);

        let up = random_f64(&mut rng, expect.len());
        let graph_inputs: Vec<(&[usize], &[f64])> = shapes
            .iter()
            .zip(&xs)
            .map(|(s, x)| (s.as_slice(), x.as_slice()))
            .collect();
        let (_, grads) = graph_vjp(&graph_inputs, &up, &|g, ids| g.concat(ids, axis).unwrap());
        let mut out_dims = shapes[0].clone();
        out_dims[resolved] = shapes.iter().map(|s| s[resolved]).sum();
        let mut start = 0;
        for (k, s) in shapes.iter().enumerate() {
            let mut indices: Vec<Vec<usize>> = out_dims.iter().map(|&d| (0..d).collect()).collect();
            indices[resolved] = (start..start + s[resolved]).collect();
            let dx = reference::gather(&up, &out_dims, &indices);
            assert_close(&format!("{what} d{k}"), &grads[k], &dx, 1e-6, 1e-6);
            start += s[resolved];
        }
    }
}

#[test]
fn flatten_and_inferred_reshape() {
    let mut rng = Rng::new(5);
    let dims = [2usize, 3, 5, 7];
    let x = random_nonzero(&mut rng, numel(&dims));
    let flat = [
        (0, [1, 210]),
        (1, [2, 105]),
        (2, [6, 35]),
        (-1, [30, 7]),
        (4, [210, 1]),
        (-4, [1, 210]),
    ];
    for (axis, expect) in flat {
        let up = random_f64(&mut rng, 210);
        let (y, grads) = graph_vjp(&[(&dims, &x)], &up, &|g, ids| {
            let y = g.flatten(ids[0], axis).unwrap();
            assert_eq!(g.shape(y).dims(), expect, "flatten at {axis}");
            y
        });
        // Row-major order is kept: the values are x's, the gradient is dy's.
        assert_close(&format!("flatten {axis}"), &y, &x, 1e-6, 1e-6);
        assert_close(&format!("flatten {axis} dx"), &grads[0], &up, 1e-6, 1e-6);
    }
    let reshapes: [(&[i64], &[usize]); 5] = [
        (&[0, -1], &[2, 105]),
        (&[-1, 7], &[30, 7]),
        (&[0, 0, -1], &[2, 3, 35]),
        (&[5, 0, 2, -1], &[5, 3, 2, 7]),
        (&[2, 3, 5, 7, 1, 1], &[2, 3, 5, 7, 1, 1]),
    ];
    for (spec, expect) in reshapes {
        let up = random_f64(&mut rng, 210);
        let (y, grads) = graph_vjp(&[(&dims, &x)], &up, &|g, ids| {
            let y = g.reshape_inferred(ids[0], spec).unwrap();
            assert_eq!(g.shape(y).dims(), expect, "reshape {spec:?}");
            y
        });
        assert_close(&format!("reshape {spec:?}"), &y, &x, 1e-6, 1e-6);
        assert_close(&format!("reshape {spec:?} dx"), &grads[0], &up, 1e-6, 1e-6);
    }
}

/// Each bad argument is an error whose message names the rule.
#[test]
fn bad_arguments_are_errors_naming_the_rule() {
    let mut g = wgnn::Graph::new();
    let x = g.input("x", [2, 3, 4]);
    let y = g.input("y", [2, 5, 4]);
    let v = g.input("v", [7]);
    let message = |r: wgnn::Result<wgnn::NodeId>| r.unwrap_err().to_string();
    let not_perm = "is not a permutation";
    assert!(message(g.transpose(x, &[0, 1])).contains(not_perm));
    assert!(message(g.transpose(x, &[0, 1, 1])).contains(not_perm));
    assert!(message(g.transpose(x, &[0, 1, 3])).contains(not_perm));
    assert!(message(g.transpose(x, &[0, 1, 2, 3])).contains(not_perm));
    let s = SliceAxis::new;
    assert!(message(g.slice(x, &[s(3, 0, 1, 1)])).contains("out of range"));
    assert!(message(g.slice(x, &[s(-4, 0, 1, 1)])).contains("out of range"));
    assert!(message(g.slice(x, &[s(1, 0, 1, 1), s(-2, 0, 1, 1)])).contains("sliced twice"));
    assert!(message(g.slice(x, &[s(1, 0, 2, 0)])).contains("non-zero"));
    assert!(message(g.slice(x, &[s(1, 2, 2, 1)])).contains("empty"));
    assert!(message(g.slice(x, &[s(1, 0, 3, -1)])).contains("empty"));
    assert!(message(g.slice_range(x, 1, 2, 2)).contains("not a non-empty range"));
    assert!(message(g.slice_range(x, 3, 0, 1)).contains("not a non-empty range"));
    assert!(message(g.slice_channels(v, 0, 1)).contains("channel dim"));
    assert!(message(g.concat(&[x, y], 2)).contains("agree in every dim"));
    assert!(message(g.concat(&[x, v], 0)).contains("equal ranks"));
    assert!(message(g.concat(&[x, y], 3)).contains("out of range"));
    assert!(message(g.concat(&[], 0)).contains("nothing to concatenate"));
    assert!(g.concat(&[x, y], 1).is_ok());
    assert!(g.concat(&[x, y], -2).is_ok());
    assert!(message(g.flatten(x, 4)).contains("out of range"));
    assert!(message(g.flatten(x, -4)).contains("out of range"));
    assert!(message(g.reshape_inferred(x, &[-1, -1])).contains("at most one"));
    assert!(message(g.reshape_inferred(x, &[5, -1])).contains("no size for the -1"));
    assert!(message(g.reshape_inferred(x, &[0, 0, 0, 0])).contains("copies no dim"));
    assert!(message(g.reshape_inferred(x, &[-2, 12])).contains("neither"));
    assert!(message(g.reshape_inferred(x, &[1; 7])).contains("rank 7"));
    assert!(message(g.reshape_inferred(x, &[4, 7])).contains("cannot reshape"));
    assert!(wgnn::Shape::new(&[1; 7]).is_err());
    // The ops refuse when evaluated eagerly, too.
    let t = tensor(&[2, 3], &[0.5; 6]);
    let bad = Transpose { perm: vec![1, 1] };
    assert!(wgnn::graph::eval(gpu(), &bad, &[&t]).is_err());
}
