//! Channel concatenation and slicing against the float64 reference, forward and backward.
use wgnn_reference::testing as common;

use common::*;
use wgnn::ops::concat::Concat;
use wgnn::ops::view::{Slice, SliceAxis};
use wgnn::rng::Rng;
use wgnn_reference::concat as reference;

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Shapes to concatenate: batch > 1, odd channel counts, ranks 2 to 5; the first three take the
/// vec4 kernels (a batch item's ranges whole vec4s: channels a multiple of 4 with an odd
/// spatial size, over several workgroups, or 4 elements per channel with odd channels).
fn cases() -> Vec<Vec<Vec<usize>>> {
    vec![
        vec![vec![2, 4, 9, 7], vec![2, 8, 9, 7], vec![2, 4, 9, 7]],
        vec![vec![2, 16, 11, 13], vec![2, 32, 11, 13]],
        vec![vec![3, 1, 4], vec![3, 2, 4]],
        vec![vec![2, 3, 5, 7], vec![2, 1, 5, 7], vec![2, 4, 5, 7]],
        vec![vec![3, 5], vec![3, 2]],
        vec![vec![2, 2, 9], vec![2, 3, 9]],
        vec![
            vec![2, 1, 3, 2, 5],
            vec![2, 2, 3, 2, 5],
            vec![2, 1, 3, 2, 5],
        ],
    ]
}

#[test]
fn reference_backward_matches_finite_differences() {
    let mut rng = Rng::new(1);
    let shapes = [vec![2, 3, 4], vec![2, 2, 4], vec![2, 1, 4]];
    let xs: Vec<Vec<f64>> = shapes
        .iter()
        .map(|s| random_nonzero(&mut rng, numel(s)))
        .collect();
    let total = numel(&[2, 6, 4]);
    let up = random_f64(&mut rng, total);
    let mut start = 0;
    for k in 0..shapes.len() {
        let f = |v: &[f64]| {
            let inputs: Vec<(&[f64], &[usize])> = (0..shapes.len())
                .map(|j| {
                    let values: &[f64] = if j == k { v } else { &xs[j] };
                    (values, shapes[j].as_slice())
                })
                .collect();
            dot(&reference::concat_channels(&inputs), &up)
        };
        let grad = reference::slice_channels(&up, &[2, 6, 4], start, shapes[k][1]);
        assert_gradient(&format!("input {k}"), &f, &xs[k], &grad);
        start += shapes[k][1];
    }
}

#[test]
fn forward_and_backward_match_reference() {
    let mut rng = Rng::new(2);
    for shapes in cases() {
        let xs: Vec<Vec<f64>> = shapes
            .iter()
            .map(|s| random_nonzero(&mut rng, numel(s)))
            .collect();
        let tensors: Vec<_> = shapes.iter().zip(&xs).map(|(s, x)| tensor(s, x)).collect();
        let refs: Vec<&wgnn::Tensor> = tensors.iter().collect();
        let inputs: Vec<(&[f64], &[usize])> = xs
            .iter()
            .zip(&shapes)
            .map(|(x, s)| (x.as_slice(), s.as_slice()))
            .collect();
        let expect = reference::concat_channels(&inputs);
        let y = wgnn::graph::eval(gpu(), &Concat { axis: 1 }, &refs).unwrap();
        let mut out_shape = shapes[0].clone();
        out_shape[1] = shapes.iter().map(|s| s[1]).sum();
        assert_eq!(y.shape.dims(), out_shape.as_slice());
        let what = format!("{shapes:?}");
        assert_close(&what, &y.to_vec(gpu()).unwrap(), &expect, 1e-6, 1e-6);

        // Backward: each input's gradient is its slice of dy.
        let up = random_f64(&mut rng, numel(&out_shape));
        let tup = tensor(&out_shape, &up);
        let mut start = 0;
        for s in &shapes {
            let range = SliceAxis::new(1, start as i64, (start + s[1]) as i64, 1);
            let slice = Slice { axes: vec![range] };
            let dx = eval(&slice, &[&tup]);
            let expect = reference::slice_channels(&up, &out_shape, start, s[1]);
            assert_close(
                &format!("slice {start} of {what}"),
                &dx,
                &expect,
                1e-6,
                1e-6,
            );
            start += s[1];
        }
    }
}

#[test]
fn graph_gradient_through_concat_and_slice() {
    let mut rng = Rng::new(3);
    let (sa, sb) = ([2usize, 3, 4, 3], [2usize, 2, 4, 3]);
    let a = random_nonzero(&mut rng, numel(&sa));
    let b = random_nonzero(&mut rng, numel(&sb));
    // concat(a, b, a) then channels 2..6: gradients flow through the slice's backward (zeros
    // around dy) and the concatenation's (slices), and a's two uses are summed.
    let up = random_f64(&mut rng, 2 * 4 * 12);
    let (y, grads) = graph_vjp(&[(&sa, &a), (&sb, &b)], &up, &|g, ids| {
        let c = g.concat_channels(&[ids[0], ids[1], ids[0]]).unwrap();
        g.slice_channels(c, 2, 4).unwrap()
    });
    let c = reference::concat_channels(&[(&a, &sa), (&b, &sb), (&a, &sa)]);
    let wide = [2, 8, 4, 3];
    assert_close(
        "forward",
        &y,
        &reference::slice_channels(&c, &wide, 2, 4),
        1e-6,
        1e-6,
    );
    // dC: up in channels 2..6, zero elsewhere.
    let mut dc = vec![0.0; numel(&wide)];
    for n in 0..2 {
        for ch in 0..4 {
            for s in 0..12 {
                dc[(n * 8 + ch + 2) * 12 + s] = up[(n * 4 + ch) * 12 + s];
            }
        }
    }
    let da: Vec<f64> = reference::slice_channels(&dc, &wide, 0, 3)
        .iter()
        .zip(reference::slice_channels(&dc, &wide, 5, 3))
        .map(|(x, y)| x + y)
        .collect();
    assert_close("da", &grads[0], &da, 1e-6, 1e-6);
    let db = reference::slice_channels(&dc, &wide, 3, 2);
    assert_close("db", &grads[1], &db, 1e-6, 1e-6);
}

#[test]
fn bad_shapes_are_errors() {
    let mut g = wgnn::Graph::new();
    let a = g.input("a", [2, 3, 4, 4]);
    let b = g.input("b", [2, 3, 4, 5]);
    let c = g.input("c", [3, 3, 4, 4]);
    let d = g.input("d", [2, 3, 16]);
    let v = g.input("v", [7]);
    assert!(g.concat_channels(&[a, b]).is_err());
    assert!(g.concat_channels(&[a, c]).is_err());
    assert!(g.concat_channels(&[a, d]).is_err());
    assert!(g.concat_channels(&[]).is_err());
    assert!(g.concat_channels(&[v, v]).is_err());
    assert!(g.slice_channels(a, 2, 2).is_err());
    assert!(g.slice_channels(a, 0, 0).is_err());
    assert!(g.slice_channels(v, 0, 1).is_err());
    assert!(g.concat_channels(&[a, a]).is_ok());
}
