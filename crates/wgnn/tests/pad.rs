//! Padding (constant, reflect, edge, wrap) against the float64 reference, forward and backward,
//! with outputs poisoned beforehand, at odd sizes with batch > 1, ranks 1 to 6, asymmetric pads
//! on several axes, pads longer than their axis; the reference checked by hand and by finite
//! differences.
use wgnn_reference::testing as common;

use common::*;
use wgnn::ops::pad::{Pad, PadBackward, PadMode};
use wgnn::ops::padding::Pads;
use wgnn::rng::Rng;
use wgnn::Shape;
use wgnn_reference::pad as reference;

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

const MODES: [PadMode; 5] = [
    PadMode::Constant(0.0),
    PadMode::Constant(-1.5),
    PadMode::Reflect,
    PadMode::Edge,
    PadMode::Wrap,
];

/// (input dims, begin, end).
fn cases() -> Vec<(Vec<usize>, Vec<usize>, Vec<usize>)> {
    vec![
        (vec![7], vec![3], vec![2]),
        (vec![3, 5], vec![2, 1], vec![0, 3]),
        // The spatial axes of NCHW, asymmetric.
        (vec![2, 3, 5, 7], vec![0, 0, 1, 3], vec![0, 0, 2, 0]),
        // Every axis, batch and channels too.
        (vec![2, 3, 4, 5], vec![1, 0, 2, 1], vec![0, 2, 1, 3]),
        // Pads longer than their axis (reflect and wrap go round more than once).
        (vec![2, 3, 4], vec![0, 0, 9], vec![0, 1, 7]),
        // An axis of length 1 padded.
        (vec![2, 1, 5], vec![0, 2, 1], vec![0, 3, 2]),
        (
            vec![2, 3, 3, 5, 2],
            vec![0, 1, 1, 0, 2],
            vec![1, 0, 2, 2, 1],
        ),
        (
            vec![2, 1, 3, 2, 3, 2],
            vec![1, 0, 1, 0, 2, 1],
            vec![0, 1, 2, 1, 0, 1],
        ),
        // No padding at all.
        (vec![2, 3, 5], vec![0, 0, 0], vec![0, 0, 0]),
        // Over several workgroups.
        (vec![3, 17, 33], vec![0, 2, 5], vec![0, 3, 4]),
    ]
}

fn pads(begin: &[usize], end: &[usize]) -> Pads {
    Pads {
        begin: begin.to_vec(),
        end: end.to_vec(),
    }
}

#[test]
fn reference_pads_as_worked_by_hand() {
    let x = [1.0, 2.0, 3.0, 4.0];
    let one_d = |mode, begin, end| reference::pad(&x, &[4], &[begin], &[end], mode);
    let expect: [(PadMode, [f64; 9]); 4] = [
        (PadMode::Constant(9.0), [9., 9., 1., 2., 3., 4., 9., 9., 9.]),
        (PadMode::Reflect, [3., 2., 1., 2., 3., 4., 3., 2., 1.]),
        (PadMode::Edge, [1., 1., 1., 2., 3., 4., 4., 4., 4.]),
        (PadMode::Wrap, [3., 4., 1., 2., 3., 4., 1., 2., 3.]),
    ];
    for (mode, values) in expect {
        assert_eq!(one_d(mode, 2, 3), values, "{mode:?}");
    }
    // Past the axis: numpy's np.pad(x, (7, 6), mode) for 'reflect' and 'wrap'.
    let reflect = [
        2., 1., 2., 3., 4., 3., 2., 1., 2., 3., 4., 3., 2., 1., 2., 3., 4.,
    ];
    assert_eq!(one_d(PadMode::Reflect, 7, 6), reflect);
    let wrap = [
        2., 3., 4., 1., 2., 3., 4., 1., 2., 3., 4., 1., 2., 3., 4., 1., 2.,
    ];
    assert_eq!(one_d(PadMode::Wrap, 7, 6), wrap);
    assert_eq!(
        reference::pad(&[5.0], &[1], &[2], &[1], PadMode::Reflect),
        [5.0; 4]
    );
    // 2-D: rows, then columns.
    let m = [1.0, 2.0, 3.0, 4.0];
    let y = reference::pad(&m, &[2, 2], &[1, 0], &[0, 1], PadMode::Edge);
    assert_eq!(y, [1., 2., 2., 1., 2., 2., 3., 4., 4.]);
}

#[test]
fn reference_backward_matches_finite_differences() {
    let mut rng = Rng::new(1);
    for (dims, begin, end) in [
        (vec![2, 3, 4], vec![0, 2, 5], vec![1, 3, 6]),
        (vec![1, 5], vec![4, 1], vec![2, 3]),
    ] {
        for mode in MODES {
            let x = random_nonzero(&mut rng, numel(&dims));
            let out = reference::output_dims(&dims, &begin, &end);
            let up = random_f64(&mut rng, numel(&out));
            let f = |v: &[f64]| dot(&reference::pad(v, &dims, &begin, &end, mode), &up);
            let grad = reference::pad_backward(&up, &dims, &begin, &end, mode);
            assert_gradient(&format!("pad {dims:?} {mode:?}"), &f, &x, &grad);
        }
    }
}

#[test]
fn pad_forward_and_backward_match_reference() {
    let mut rng = Rng::new(2);
    for (dims, begin, end) in cases() {
        let out = reference::output_dims(&dims, &begin, &end);
        for mode in MODES {
            let what = format!("pad {dims:?} by {begin:?} / {end:?} {mode:?}");
            let x = random_nonzero(&mut rng, numel(&dims));
            let expect = reference::pad(&x, &dims, &begin, &end, mode);
            let op = Pad {
                pads: pads(&begin, &end),
                mode,
            };
            let y = eval(&op, &[&tensor(&dims, &x)]);
            assert_close(&what, &y, &expect, 1e-6, 1e-6);

            let up = random_f64(&mut rng, numel(&out));
            let dx = reference::pad_backward(&up, &dims, &begin, &end, mode);
            let backward = PadBackward {
                pads: pads(&begin, &end),
                mode,
                input: Shape::new(&dims).unwrap(),
            };
            let got = eval(&backward, &[&tensor(&out, &up)]);
            // dx sums several elements of dy in f32: near zero, judged by absolute error 1e-6.
            assert_close(&format!("{what} dx"), &got, &dx, 1e-5, 0.1);

            // Through a graph: `Graph::pad` and its backward rule.
            let (y, grads) = graph_vjp(&[(&dims, &x)], &up, &|g, ids| {
                g.pad(ids[0], &pads(&begin, &end), mode).unwrap()
            });
            assert_close(&format!("{what} graph"), &y, &expect, 1e-6, 1e-6);
            assert_close(&format!("{what} graph dx"), &grads[0], &dx, 1e-5, 0.1);
        }
    }
}

/// The backward's own gradient is the padding of its upstream gradient (zeros in the constant
/// mode), as the backward is linear.
#[test]
fn pad_backward_has_padding_as_its_gradient() {
    let mut rng = Rng::new(3);
    let (dims, begin, end) = (vec![2, 3, 4], vec![0, 3, 1], vec![1, 2, 5]);
    let out = reference::output_dims(&dims, &begin, &end);
    for mode in MODES {
        let dy = random_nonzero(&mut rng, numel(&out));
        let up = random_f64(&mut rng, numel(&dims));
        let (dx, grads) = graph_vjp(&[(&out, &dy)], &up, &|g, ids| {
            let backward = PadBackward {
                pads: pads(&begin, &end),
                mode,
                input: Shape::new(&dims).unwrap(),
            };
            g.apply(backward, &[ids[0]]).unwrap()
        });
        let what = format!("pad_backward {mode:?}");
        let expect = reference::pad_backward(&dy, &dims, &begin, &end, mode);
        assert_close(&what, &dx, &expect, 1e-5, 0.1);
        let linear = match mode {
            PadMode::Constant(_) => PadMode::Constant(0.0),
            mode => mode,
        };
        let expect = reference::pad(&up, &dims, &begin, &end, linear);
        assert_close(&format!("{what} gradient"), &grads[0], &expect, 1e-6, 1e-6);
    }
}

#[test]
fn bad_pads_are_errors_naming_the_rule() {
    let mut g = wgnn::Graph::new();
    let x = g.input("x", [2, 3, 4]);
    let message = |r: wgnn::Result<wgnn::NodeId>| r.unwrap_err().to_string();
    let short = pads(&[1, 1], &[1, 1]);
    assert!(message(g.pad(x, &short, PadMode::Edge))
        .contains("a begin and an end for each of the 3 axes"));
    let uneven = pads(&[1, 1, 1], &[1, 1]);
    assert!(message(g.pad(x, &uneven, PadMode::Reflect)).contains("pads"));
    assert!(g
        .pad(x, &pads(&[0, 1, 2], &[3, 0, 1]), PadMode::Wrap)
        .is_ok());
    let huge = pads(&[0, 0, 1 << 30], &[0, 0, 1 << 30]);
    assert!(message(g.pad(x, &huge, PadMode::Edge)).contains("2^31 elements or more"));
    let overflow = pads(&[0, 0, usize::MAX], &[0, 0, 1]);
    assert!(message(g.pad(x, &overflow, PadMode::Edge)).contains("2^31 elements or more"));
    let backward = PadBackward {
        pads: pads(&[0, 1, 2], &[0, 0, 0]),
        mode: PadMode::Edge,
        input: Shape::new(&[2, 3, 4]).unwrap(),
    };
    assert!(message(g.apply(backward, &[x])).contains("padded shape [2, 4, 6]"));
}
