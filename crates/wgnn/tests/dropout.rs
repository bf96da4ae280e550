//! Dropout: the mask against the reference hash and the scaling of kept elements at odd sizes,
//! the fraction dropped on a large tensor, the backward on exactly the forward's mask through a
//! graph, the same mask for the same seed and different masks for different seeds and for
//! layers sharing a seed, inference as the identity, and bad arguments.
use wgnn_reference::testing as common;

use common::*;
use wgnn::ops::dropout::Dropout;
use wgnn::rng::Rng;
use wgnn::{Graph, NodeId, Plan, PlanSpec, Tensor};
use wgnn_reference::dropout as reference;

fn seed_tensor(seed: u32) -> Tensor {
    Tensor::from_u32(gpu(), [1], &[seed]).unwrap()
}

/// Values away from zero, so that a kept element is never 0 and `y != 0` reads the mask.
fn values(rng: &mut Rng, n: usize) -> Vec<f64> {
    random_nonzero(rng, n)
}

fn kept(y: &[f32]) -> Vec<bool> {
    y.iter().map(|&v| v != 0.0).collect()
}

#[test]
fn reference_backward_matches_finite_differences() {
    let mut rng = Rng::new(1);
    let x = values(&mut rng, 41);
    let up = random_f64(&mut rng, 41);
    let keep = reference::keep_mask(7, 3, 41, 0.3);
    assert!(keep.iter().any(|&k| k) && !keep.iter().all(|&k| k));
    let f = |v: &[f64]| dot(&reference::forward(v, &keep, 0.3), &up);
    assert_gradient("dropout", &f, &x, &reference::backward(&up, &keep, 0.3));
}

#[test]
fn forward_matches_reference_mask_and_scale() {
    let mut rng = Rng::new(2);
    for (shape, p, seed, stream) in [
        (&[3, 5, 7][..], 0.25, 1u32, 0u32),
        (&[2, 3, 11, 13], 0.5, 0xdead_beef, 17),
        (&[4, 301], 0.9, 12345, 4),
        (&[5, 7], 0.0, 99, 1),
    ] {
        let n: usize = shape.iter().product();
        let x = values(&mut rng, n);
        let op = Dropout { p, stream };
        let y = eval(&op, &[&tensor(shape, &x), &seed_tensor(seed)]);
        let keep = reference::keep_mask(seed, stream, n, p);
        let what = format!("dropout p {p} {shape:?}");
        assert_eq!(kept(&y), keep, "{what}: the mask");
        let expect = reference::forward(&x, &keep, p as f64);
        assert_close(&what, &y, &expect, 1e-6, 1e-6);
        if p == 0.0 {
            assert!(keep.iter().all(|&k| k), "p = 0 keeps everything");
        }
    }
}

#[test]
fn the_fraction_dropped_matches_p_on_a_large_tensor() {
    let n = (1 << 20) + 7;
    let ones = tensor(&[n], &vec![1.0; n]);
    for (p, seed) in [(0.1f32, 5u32), (0.5, 6), (0.8, 7)] {
        let y = eval(&Dropout { p, stream: 2 }, &[&ones, &seed_tensor(seed)]);
        let p = p as f64;
        // Within 5 standard deviations of a binomial fraction (5e-4 for p = 0.5).
        let tolerance = 5.0 * (p * (1.0 - p) / n as f64).sqrt();
        let dropped = y.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
        assert!(
            (dropped - p).abs() < tolerance,
            "p {p}: dropped {dropped}, tolerance {tolerance}"
        );
        // Neighbours are independent: both dropped as often as p^2.
        let pairs = y.windows(2).filter(|w| w[0] == 0.0 && w[1] == 0.0).count() as f64;
        let both = pairs / (n - 1) as f64;
        let tolerance = 5.0 * (p * p * (1.0 - p * p) / n as f64).sqrt();
        assert!(
            (both - p * p).abs() < tolerance,
            "p {p}: neighbours both dropped {both}"
        );
        // Kept ones are scaled so that the mean is kept (variance p / (1 - p) per element).
        let mean = y.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let tolerance = 5.0 * (p / (1.0 - p) / n as f64).sqrt();
        assert!((mean - 1.0).abs() < tolerance, "p {p}: mean {mean}");
    }
}

#[test]
fn masks_repeat_for_a_seed_and_differ_between_seeds_and_streams() {
    let mut rng = Rng::new(3);
    let n = 20_000;
    let x = tensor(&[n], &values(&mut rng, n));
    let p = 0.4;
    let mask = |seed: u32, stream: u32| {
        let y = eval(&Dropout { p, stream }, &[&x, &seed_tensor(seed)]);
        kept(&y)
    };
    let first = mask(11, 0);
    assert_eq!(first, mask(11, 0), "the same seed gives the same mask");
    // Two independent masks disagree on a fraction 2 p (1 - p) = 0.48 of the elements.
    let disagree =
        |a: &[bool], b: &[bool]| a.iter().zip(b).filter(|(x, y)| x != y).count() as f64 / n as f64;
    for (other, what) in [(mask(12, 0), "seed 12"), (mask(11, 1), "stream 1")] {
        let d = disagree(&first, &other);
        assert!((d - 0.48).abs() < 0.02, "{what}: masks disagree on {d}");
    }
}

/// x -> dropout(p, seed) -> y with dx for the upstream `up`, compiled once.
fn dropout_plan(shape: &[usize], p: f32) -> (Plan, [NodeId; 4]) {
    let mut g = Graph::new();
    let x = g.input("x", shape);
    let seed = g.input_u32("seed", [1]);
    let y = g.dropout(x, p, seed).unwrap();
    let up = g.input("up", shape);
    let grads = g.backward(y, up, &[x]).unwrap();
    let spec = PlanSpec {
        outputs: vec![y, grads[0]],
        ..Default::default()
    };
    let params = wgnn::nn::ParamStore::new();
    let plan = Plan::compile(gpu(), &g, &params, spec).unwrap();
    (plan, [x, seed, up, y])
}

#[test]
fn backward_uses_the_forward_mask_in_every_step() {
    let mut rng = Rng::new(4);
    let gpu = gpu();
    let (shape, p) = ([3, 7, 11], 0.35f32);
    let n = 3 * 7 * 11;
    let (mut plan, [x, seed, up, _]) = dropout_plan(&shape, p);
    let xs = values(&mut rng, n);
    let ups = values(&mut rng, n);
    plan.write_input(gpu, x, &to_f32(&xs)).unwrap();
    plan.write_input(gpu, up, &to_f32(&ups)).unwrap();
    let scale = Dropout { p, stream: 0 }.scale();
    let mut runs = Vec::new();
    for step_seed in [21u32, 22, 21] {
        plan.write_input_u32(gpu, seed, &[step_seed]).unwrap();
        let results = plan.step(gpu).unwrap();
        let (y, dx) = (&results[0], &results[1]);
        let keep = kept(y);
        assert!(keep.iter().any(|&k| k) && !keep.iter().all(|&k| k));
        // dx = up / (1 - p) exactly where y kept x, and exactly 0 where it dropped it.
        for i in 0..n {
            let expect = if keep[i] { ups[i] as f32 * scale } else { 0.0 };
            assert_eq!(dx[i], expect, "seed {step_seed}, element {i}");
        }
        let expect = reference::forward(&xs, &keep, p as f64);
        assert_close("dropout (graph)", y, &expect, 1e-6, 1e-6);
        runs.push(results);
    }
    assert_ne!(kept(&runs[0][0]), kept(&runs[1][0]), "seeds 21 and 22");
    assert_eq!(
        runs[0], runs[2],
        "seed 21 twice: the same step, bit for bit"
    );
}

#[test]
fn layers_sharing_a_seed_draw_different_masks() {
    let mut g = Graph::new();
    let x = g.input("x", [1000]);
    let seed = g.input_u32("seed", [1]);
    let a = g.dropout(x, 0.5, seed).unwrap();
    let b = g.dropout(x, 0.5, seed).unwrap();
    let spec = PlanSpec {
        outputs: vec![a, b],
        ..Default::default()
    };
    let params = wgnn::nn::ParamStore::new();
    let gpu = gpu();
    let mut plan = Plan::compile(gpu, &g, &params, spec).unwrap();
    plan.write_input(gpu, x, &vec![1.0; 1000]).unwrap();
    plan.write_input_u32(gpu, seed, &[3]).unwrap();
    let results = plan.step(gpu).unwrap();
    let same = kept(&results[0])
        .iter()
        .zip(kept(&results[1]))
        .filter(|(a, b)| **a == *b)
        .count();
    assert!(
        (400..600).contains(&same),
        "the masks agree on {same} of 1000"
    );
}

#[test]
fn inference_is_the_identity() {
    let mut g = Graph::new();
    let x = g.input("x", [2, 3]);
    assert_eq!(g.dropout_inference(x, 0.5).unwrap(), x);
    assert_eq!(g.nodes().len(), 1, "no node added");
}

#[test]
fn bad_arguments_are_errors() {
    let mut g = Graph::new();
    let x = g.input("x", [2, 3]);
    let seed = g.input_u32("seed", [1]);
    let message = |r: wgnn::Result<NodeId>| r.unwrap_err().to_string();
    for p in [1.0, 1.5, -0.1, f32::NAN] {
        assert!(
            message(g.dropout(x, p, seed)).contains("must be in [0, 1)"),
            "p {p}"
        );
        assert!(g.dropout_inference(x, p).is_err(), "inference, p {p}");
    }
    let f32_seed = g.input("f32 seed", [1]);
    assert!(message(g.dropout(x, 0.5, f32_seed)).contains("seed must be U32"));
    let seeds = g.input_u32("seeds", [2]);
    assert!(message(g.dropout(x, 0.5, seeds)).contains("one u32 value"));
    assert!(message(g.dropout(seed, 0.5, seed)).contains("x must be F32"));
    assert!(g.dropout(x, 0.0, seed).is_ok());
    let tx = tensor(&[2], &[0.5, -0.5]);
    let tf = tensor(&[1], &[1.0]);
    let op = Dropout { p: 0.5, stream: 0 };
    assert!(
        wgnn::graph::eval(gpu(), &op, &[&tx, &tf]).is_err(),
        "f32 seed, eagerly"
    );
}
