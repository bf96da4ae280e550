//! Activations against the float64 reference, forward and backward.
use wgnn_reference::testing as common;

use common::*;
use wgnn::ops::activation::{Activation, ActivationBackward, ActivationForward};
use wgnn::rng::Rng;
use wgnn_reference::activation as reference;

const KINDS: [Activation; 5] = [
    Activation::Relu,
    Activation::LeakyRelu(0.1),
    Activation::Sigmoid,
    Activation::Tanh,
    Activation::Elu(0.7),
];

#[test]
fn reference_backward_matches_finite_differences() {
    let mut rng = Rng::new(1);
    for kind in KINDS {
        let x = random_nonzero(&mut rng, 37);
        let up = random_f64(&mut rng, 37);
        let f = |v: &[f64]| dot(&reference::forward(kind, v), &up);
        assert_gradient(kind.name(), &f, &x, &reference::backward(kind, &x, &up));
    }
}

#[test]
fn forward_and_backward_match_reference() {
    let mut rng = Rng::new(2);
    // 3 * 5 * 7 * 11 = 1155 elements: not a multiple of the workgroup size (nor of 4: the
    // scalar kernels); 2 * 6 * 9 * 19 = 2052 = 4 * 513: the vec4 kernels, over 3 workgroups.
    for (shape, kind) in [[3, 5, 7, 11], [2, 6, 9, 19]]
        .into_iter()
        .flat_map(|shape| KINDS.into_iter().map(move |kind| (shape, kind)))
    {
        let n: usize = shape.iter().product();
        // Out to |x| = 7, where sigmoid' and tanh' fall to 1e-3 and 3e-6: the backward is held
        // to relative accuracy there (floor 1e-7), which `1 - tanh^2` cannot give in f32.
        let x: Vec<f64> = (0..n).map(|_| rng.range(-7.0, 7.0)).collect();
        let up = random_f64(&mut rng, n);
        let tx = tensor(&shape, &x);
        let tup = tensor(&shape, &up);
        let y = eval(&ActivationForward(kind), &[&tx]);
        assert_close(
            &format!("{} forward {shape:?}", kind.name()),
            &y,
            &reference::forward(kind, &x),
            1e-4,
            1e-3,
        );
        let dx = eval(&ActivationBackward(kind), &[&tx, &tup]);
        assert_close(
            &format!("{} backward {shape:?}", kind.name()),
            &dx,
            &reference::backward(kind, &x, &up),
            1e-4,
            1e-7,
        );
    }
}

#[test]
fn extreme_inputs_stay_finite() {
    let x = [-1e4, -100.0, -20.0, 20.0, 100.0, 1e4];
    let tx = tensor(&[6], &x);
    for kind in [Activation::Sigmoid, Activation::Tanh, Activation::Elu(1.0)] {
        let y = eval(&ActivationForward(kind), &[&tx]);
        assert!(y.iter().all(|v| v.is_finite()), "{}: {y:?}", kind.name());
        assert_close(kind.name(), &y, &reference::forward(kind, &x), 1e-4, 1e-3);
    }
}

#[test]
fn graph_gradient_through_activation_chain() {
    let mut rng = Rng::new(3);
    let x = random_nonzero(&mut rng, 2 * 3 * 5);
    let up = random_f64(&mut rng, 2 * 3 * 5);
    let (y, grads) = graph_vjp(&[(&[2, 3, 5], &x)], &up, &|g, ids| {
        let h = g.tanh(ids[0]).unwrap();
        g.relu(h).unwrap()
    });
    let h = reference::forward(Activation::Tanh, &x);
    let expect_y = reference::forward(Activation::Relu, &h);
    assert_close("tanh->relu forward", &y, &expect_y, 1e-4, 1e-3);
    let dh = reference::backward(Activation::Relu, &h, &up);
    let dx = reference::backward(Activation::Tanh, &x, &dh);
    assert_close("tanh->relu backward", &grads[0], &dx, 1e-4, 1e-3);
}
