//! Nearest and linear resizing against the float64 reference, forward and backward, for every
//! rounding and coordinate mode, scales and sizes, up- and downsampling, 1 to 3 spatial dims, at
//! odd sizes with batch > 1; and against values worked by hand from PyTorch's definitions.
use wgnn_reference::testing as common;

use common::*;
use wgnn::ops::resize::{
    CoordinateTransform as Coords, NearestRounding as Round, Resize, ResizeMode, ResizeParams,
    ResizeTarget,
};
use wgnn::rng::Rng;
use wgnn_reference::resize as reference;

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

fn onnx(target: ResizeTarget, mode: ResizeMode, coordinates: Coords) -> ResizeParams {
    ResizeParams {
        target,
        mode,
        coordinates,
    }
}

/// Every interpolation with every coordinate mode it is used with, PyTorch's four first.
fn modes(target: ResizeTarget) -> Vec<ResizeParams> {
    let nearest = |r| ResizeMode::Nearest(r);
    vec![
        ResizeParams::nearest(target.clone()),
        ResizeParams::nearest_exact(target.clone()),
        ResizeParams::linear(target.clone(), false),
        ResizeParams::linear(target.clone(), true),
        onnx(
            target.clone(),
            nearest(Round::RoundPreferFloor),
            Coords::HalfPixel,
        ),
        onnx(
            target.clone(),
            nearest(Round::RoundPreferFloor),
            Coords::TfHalfPixelForNn,
        ),
        onnx(target.clone(), nearest(Round::Ceil), Coords::AlignCorners),
        onnx(
            target.clone(),
            nearest(Round::RoundPreferCeil),
            Coords::PytorchHalfPixel,
        ),
        onnx(target.clone(), ResizeMode::Linear, Coords::PytorchHalfPixel),
        onnx(target, ResizeMode::Linear, Coords::Asymmetric),
    ]
}

/// (input dims, target): upsampling by integer and fractional scales, downsampling, explicit
/// sizes (to 1 as well), 1-D and 3-D, and one over several workgroups.
fn cases() -> Vec<(Vec<usize>, ResizeTarget)> {
    use ResizeTarget::{Scales, Sizes};
    vec![
        (vec![2, 3, 5, 7], Scales(vec![2.0, 3.0])),
        (vec![2, 3, 5, 7], Scales(vec![0.5, 1.7])),
        (vec![3, 2, 5, 7], Sizes(vec![4, 11])),
        (vec![2, 1, 5, 6], Sizes(vec![1, 3])),
        (vec![2, 3, 7], Scales(vec![2.5])),
        (vec![2, 3, 9], Sizes(vec![4])),
        (vec![2, 2, 3, 4, 5], Scales(vec![2.0, 1.5, 0.6])),
        (vec![2, 3, 17, 19], Scales(vec![2.0, 2.0])),
    ]
}

#[test]
fn reference_backward_matches_finite_differences() {
    let mut rng = Rng::new(1);
    let dims = [2, 2, 4, 5];
    for params in modes(ResizeTarget::Sizes(vec![7, 3])) {
        let x = random_nonzero(&mut rng, numel(&dims));
        let out = numel(&reference::output_dims(&dims, &params));
        let up = random_f64(&mut rng, out);
        let f = |v: &[f64]| dot(&reference::forward(v, &dims, &params), &up);
        let grad = reference::backward(&up, &dims, &params);
        assert_gradient(&format!("{params:?}"), &f, &x, &grad);
    }
}

/// Values worked by hand from PyTorch's `interpolate` on [0, 1, 2, 3] and [0, 1].
#[test]
fn matches_pytorch_on_hand_worked_cases() {
    use ResizeTarget::{Scales, Sizes};
    let cases: Vec<(Vec<f64>, ResizeParams, Vec<f64>)> = vec![
        // nearest, x2: each value twice.
        (
            vec![0.0, 1.0],
            ResizeParams::nearest(Scales(vec![2.0])),
            vec![0.0, 0.0, 1.0, 1.0],
        ),
        // nearest to 3 of 4: floor(x * 4 / 3) = 0, 1, 2.
        (
            vec![0.0, 1.0, 2.0, 3.0],
            ResizeParams::nearest(Sizes(vec![3])),
            vec![0.0, 1.0, 2.0],
        ),
        // nearest-exact to 3 of 4: floor((x + 0.5) * 4 / 3) = 0, 2, 3.
        (
            vec![0.0, 1.0, 2.0, 3.0],
            ResizeParams::nearest_exact(Sizes(vec![3])),
            vec![0.0, 2.0, 3.0],
        ),
        // linear, x2, align_corners=False: sources -0.25 (clamped), 0.25, 0.75, 1.25 (edge).
        (
            vec![0.0, 1.0],
            ResizeParams::linear(Scales(vec![2.0]), false),
            vec![0.0, 0.25, 0.75, 1.0],
        ),
        // linear to 4, align_corners=True: sources 0, 1/3, 2/3, 1.
        (
            vec![0.0, 1.0],
            ResizeParams::linear(Sizes(vec![4]), true),
            vec![0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0],
        ),
        // linear to 2 of 4, align_corners=False: sources 0.5 and 2.5.
        (
            vec![0.0, 1.0, 2.0, 3.0],
            ResizeParams::linear(Sizes(vec![2]), false),
            vec![0.5, 2.5],
        ),
    ];
    for (x, params, expect) in cases {
        let dims = [1, 1, x.len()];
        assert_close(
            &format!("reference {params:?}"),
            &to_f32(&reference::forward(&x, &dims, &params)),
            &expect,
            1e-6,
            1e-6,
        );
        let y = eval(&Resize(params.clone()), &[&tensor(&dims, &x)]);
        assert_close(&format!("{params:?}"), &y, &expect, 1e-6, 1e-6);
    }
}

#[test]
fn forward_and_backward_match_reference() {
    let mut rng = Rng::new(2);
    for (dims, target) in cases() {
        for params in modes(target.clone()) {
            let what = format!("{dims:?} {params:?}");
            let out_dims = reference::output_dims(&dims, &params);
            let x = random_nonzero(&mut rng, numel(&dims));
            let y =
                wgnn::graph::eval(gpu(), &Resize(params.clone()), &[&tensor(&dims, &x)]).unwrap();
            assert_eq!(y.shape.dims(), out_dims.as_slice(), "{what}");
            let expect = reference::forward(&x, &dims, &params);
            assert_close(&what, &y.to_vec(gpu()).unwrap(), &expect, 1e-4, 1e-3);

            let up = random_f64(&mut rng, numel(&out_dims));
            let (_, grads) = graph_vjp(&[(&dims, &x)], &up, &|g, ids| {
                g.resize(ids[0], &params).unwrap()
            });
            let dx = reference::backward(&up, &dims, &params);
            assert_close(&format!("{what} dx"), &grads[0], &dx, 1e-4, 1e-3);
        }
    }
}

/// Each bad argument is an error whose message names the rule.
#[test]
fn bad_arguments_are_errors_naming_the_rule() {
    use ResizeTarget::{Scales, Sizes};
    let mut g = wgnn::Graph::new();
    let x = g.input("x", [2, 3, 5, 7]);
    let m = g.input("m", [5, 7]);
    let message = |r: wgnn::Result<wgnn::NodeId>| r.unwrap_err().to_string();
    let nearest = ResizeParams::nearest;
    assert!(message(g.resize(m, &nearest(Scales(vec![2.0])))).contains("spatial dims"));
    assert!(message(g.resize(x, &nearest(Scales(vec![2.0])))).contains("1 scales or sizes"));
    assert!(message(g.resize(x, &nearest(Sizes(vec![2, 3, 4])))).contains("3 scales or sizes"));
    assert!(message(g.resize(x, &nearest(Scales(vec![2.0, 0.0])))).contains("positive"));
    assert!(message(g.resize(x, &nearest(Scales(vec![f64::NAN, 1.0])))).contains("positive"));
    assert!(message(g.resize(x, &nearest(Scales(vec![0.1, 1.0])))).contains("resized to 0"));
    assert!(message(g.resize(x, &nearest(Sizes(vec![0, 3])))).contains("resized to 0"));
    assert!(g.resize(x, &nearest(Sizes(vec![1, 3]))).is_ok());
}
