//! Activations against the float64 reference, forward and backward: every kind on the scalar
//! and the vec4 kernels, the left tails of SiLU and GELU held to relative accuracy, erf over a
//! wide range, extreme inputs, gradients through graphs, and bad parameters.
use wgnn_reference::testing as common;

use common::*;
use wgnn::ops::activation::{Activation, ActivationBackward, ActivationForward};
use wgnn::rng::Rng;
use wgnn::Graph;
use wgnn_reference::activation as reference;

const KINDS: [Activation; 12] = [
    Activation::Relu,
    Activation::LeakyRelu(0.1),
    Activation::Sigmoid,
    Activation::Tanh,
    Activation::Elu(0.7),
    Activation::Silu,
    Activation::Gelu,
    Activation::GeluTanh,
    Activation::HardSwish,
    Activation::HardSigmoid {
        alpha: 0.2,
        beta: 0.5,
    },
    Activation::Clamp {
        min: -0.6,
        max: 2.5,
    },
    Activation::Erf,
];

/// Where f' jumps.
fn kinks(kind: Activation) -> Vec<f64> {
    match kind {
        Activation::Relu | Activation::LeakyRelu(_) | Activation::Elu(_) => vec![0.0],
        Activation::HardSwish => vec![-3.0, 3.0],
        Activation::HardSigmoid { alpha, beta } => {
            let (alpha, beta) = (alpha as f64, beta as f64);
            vec![-beta / alpha, (1.0 - beta) / alpha]
        }
        Activation::Clamp { min, max } => vec![min as f64, max as f64],
        _ => vec![],
    }
}

/// `n` values in [-range, range), as f32 would hold them, none within 1e-3 of a kink (where
/// finite differences and the rounding to f32 could land on the other side).
fn inputs(rng: &mut Rng, kind: Activation, n: usize, range: f64) -> Vec<f64> {
    let mut x = Vec::with_capacity(n);
    while x.len() < n {
        let v = rng.range(-range, range) as f32 as f64;
        if kinks(kind).iter().all(|k| (v - k).abs() > 1e-3) {
            x.push(v);
        }
    }
    x
}

/// The floor of the relative comparison of dx. The derivatives of SiLU, GELU and hard-swish
/// cross zero, where f32 can only be absolutely right; `left_tails_keep_relative_accuracy`
/// holds their tails to relative accuracy instead. The others keep a floor of 1e-7 out to
/// |x| = 7, where sigmoid' and tanh' fall to 1e-3 and 3e-6, which `1 - tanh^2` cannot give in
/// f32.
fn backward_floor(kind: Activation) -> f64 {
    match kind {
        Activation::Silu | Activation::Gelu | Activation::GeluTanh | Activation::HardSwish => 1e-2,
        _ => 1e-7,
    }
}

#[test]
fn reference_backward_matches_finite_differences() {
    let mut rng = Rng::new(1);
    for kind in KINDS {
        let x = inputs(&mut rng, kind, 37, 5.0);
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
        let x = inputs(&mut rng, kind, n, 7.0);
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
            backward_floor(kind),
        );
    }
}

#[test]
fn left_tails_keep_relative_accuracy() {
    // Down to values of 1e-32: the forms 1 + erf, 1 + tanh and 1 - sigmoid would have cancelled
    // to 0 long before (and GELU(-12) needs erfc(8.5) = 1.8e-33 to 1e-4).
    for (kind, from) in [
        (Activation::Silu, -12.0),
        (Activation::Gelu, -12.0),
        (Activation::GeluTanh, -6.5),
    ] {
        let x: Vec<f64> = (0..=90)
            .map(|i| (from + (-3.0 - from) * i as f64 / 90.0) as f32 as f64)
            .collect();
        let tx = tensor(&[x.len()], &x);
        let y = eval(&ActivationForward(kind), &[&tx]);
        let what = format!("{} left tail", kind.name());
        assert_close(&what, &y, &reference::forward(kind, &x), 1e-4, 1e-38);
        let ones = vec![1.0; x.len()];
        let dx = eval(
            &ActivationBackward(kind),
            &[&tx, &tensor(&[x.len()], &ones)],
        );
        let expect = reference::backward(kind, &x, &ones);
        assert_close(&format!("{what} backward"), &dx, &expect, 1e-4, 1e-38);
    }
}

#[test]
fn erf_matches_f64_erf_over_a_wide_range() {
    // Tiny magnitudes (the series, relatively), a fine grid over [-6, 6] (both sides of
    // |z| = 1, where the kernel changes formula), and the saturated ends.
    let mut x: Vec<f64> = (0..=1200).map(|i| -6.0 + 0.01 * i as f64).collect();
    for e in [
        1e-30, 1e-12, 1e-6, 1e-3, 0.1, 0.999, 1.0, 1.001, 9.0, 10.0, 30.0, 1e10,
    ] {
        x.extend([e, -e]);
    }
    let x: Vec<f64> = x.iter().map(|&v| v as f32 as f64).collect();
    let tx = tensor(&[x.len()], &x);
    let y = eval(&ActivationForward(Activation::Erf), &[&tx]);
    let expect = reference::forward(Activation::Erf, &x);
    assert_close("erf", &y, &expect, 1e-6, 1e-38);
}

#[test]
fn extreme_inputs_stay_finite() {
    let x = [-1e4, -100.0, -20.0, 20.0, 100.0, 1e4];
    let tx = tensor(&[6], &x);
    let ones = tensor(&[6], &[1.0; 6]);
    for kind in [
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Elu(1.0),
        Activation::Silu,
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::HardSwish,
        Activation::Erf,
    ] {
        let y = eval(&ActivationForward(kind), &[&tx]);
        assert!(y.iter().all(|v| v.is_finite()), "{}: {y:?}", kind.name());
        assert_close(kind.name(), &y, &reference::forward(kind, &x), 1e-4, 1e-3);
        if kind != Activation::Sigmoid && kind != Activation::Tanh && kind != Activation::Elu(1.0) {
            let dx = eval(&ActivationBackward(kind), &[&tx, &ones]);
            let expect = reference::backward(kind, &x, &[1.0; 6]);
            assert_close(
                &format!("{} backward", kind.name()),
                &dx,
                &expect,
                1e-4,
                1e-3,
            );
        }
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

#[test]
fn graph_gradient_through_ported_activations() {
    // Each Graph method builds its kind: gelu -> clamp -> silu -> hard_swish -> hard_sigmoid ->
    // gelu_tanh -> erf on [3, 7, 5], checked against the chained references.
    let mut rng = Rng::new(4);
    let n = 3 * 7 * 5;
    let x: Vec<f64> = (0..n).map(|_| rng.range(-2.0, 2.0)).collect();
    let up = random_f64(&mut rng, n);
    let chain = [
        Activation::Gelu,
        Activation::Clamp {
            min: -0.1,
            max: 1.5,
        },
        Activation::Silu,
        Activation::HardSwish,
        Activation::hard_sigmoid(),
        Activation::GeluTanh,
        Activation::Erf,
    ];
    let (y, grads) = graph_vjp(&[(&[3, 7, 5], &x)], &up, &|g, ids| {
        let h = g.gelu(ids[0]).unwrap();
        let h = g.clamp(h, -0.1, 1.5).unwrap();
        let h = g.silu(h).unwrap();
        let h = g.hard_swish(h).unwrap();
        let h = g.hard_sigmoid(h, 1.0 / 6.0, 0.5).unwrap();
        let h = g.gelu_tanh(h).unwrap();
        g.erf(h).unwrap()
    });
    let mut values = vec![x.clone()];
    for kind in chain {
        let next = reference::forward(kind, values.last().unwrap());
        values.push(next);
    }
    assert_close("chain forward", &y, values.last().unwrap(), 1e-4, 1e-3);
    let mut grad = up.clone();
    for (kind, input) in chain.iter().zip(&values).rev() {
        grad = reference::backward(*kind, input, &grad);
    }
    assert_close("chain backward", &grads[0], &grad, 1e-3, 1e-3);
}

#[test]
fn bad_parameters_are_errors() {
    let mut g = Graph::new();
    let x = g.input("x", [2, 3]);
    let message = |r: wgnn::Result<wgnn::NodeId>| r.unwrap_err().to_string();
    assert!(message(g.clamp(x, 1.0, -1.0)).contains("min <= max"));
    assert!(message(g.clamp(x, f32::NAN, 1.0)).contains("min <= max"));
    assert!(message(g.hard_sigmoid(x, f32::INFINITY, 0.5)).contains("alpha must be finite"));
    assert!(message(g.hard_sigmoid(x, 0.2, f32::NAN)).contains("beta must be finite"));
    assert!(message(g.leaky_relu(x, f32::NAN)).contains("alpha must be finite"));
    assert!(g.clamp(x, 0.0, f32::INFINITY).is_ok(), "infinite bounds");
    assert!(g.clamp(x, 0.5, 0.5).is_ok(), "min == max");
    // Eagerly too, forward and backward.
    let tx = tensor(&[2], &[0.5, -0.5]);
    let clamp = Activation::Clamp { min: 1.0, max: 0.0 };
    assert!(wgnn::graph::eval(gpu(), &ActivationForward(clamp), &[&tx]).is_err());
    assert!(wgnn::graph::eval(gpu(), &ActivationBackward(clamp), &[&tx, &tx]).is_err());
}
