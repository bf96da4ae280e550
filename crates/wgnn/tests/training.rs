//! A tiny CNN trained end to end on the GPU: the loss goes down, and two runs with the same
//! seed give bit-identical parameters.
use wgnn_reference::testing as common;

use common::*;
use wgnn::nn::init::Init;
use wgnn::nn::ParamStore;
use wgnn::ops::conv::ConvParams;
use wgnn::optim::{Adam, AdamConfig, Optimizer};
use wgnn::rng::Rng;
use wgnn::{Graph, Plan, PlanSpec};

/// Trains conv -> relu -> global average pool -> linear -> BCE on a fixed random batch whose
/// labels depend on the input (brightness of the left half vs the right half), and returns the
/// loss of each step and the final parameters.
fn train(seed: u64, steps: usize) -> (Vec<f32>, Vec<(String, Vec<f32>)>) {
    let gpu = gpu();
    let mut rng = Rng::new(seed);
    let (n, side) = (8, 6);
    let mut params = ParamStore::new();
    params
        .insert_weight_and_bias(gpu, "conv", [4, 1, 3, 3], Init::kaiming_normal(), &mut rng)
        .unwrap();
    params
        .insert_weight_and_bias(gpu, "fc", [1, 4], Init::xavier_uniform(), &mut rng)
        .unwrap();

    let images = rng.vec_f32(n * side * side, -1.0, 1.0);
    let labels: Vec<f32> = (0..n)
        .map(|i| {
            let image = &images[i * side * side..(i + 1) * side * side];
            let left: f32 = image
                .iter()
                .enumerate()
                .filter(|(k, _)| k % side < side / 2)
                .map(|(_, v)| v)
                .sum();
            let right: f32 = image
                .iter()
                .enumerate()
                .filter(|(k, _)| k % side >= side / 2)
                .map(|(_, v)| v)
                .sum();
            if left > right {
                1.0
            } else {
                0.0
            }
        })
        .collect();

    let mut g = Graph::new();
    let x = g.input("images", [n, 1, side, side]);
    let t = g.input("labels", [n, 1]);
    let (cw, cb) = (
        g.param("conv.weight", [4, 1, 3, 3]).unwrap(),
        g.param("conv.bias", [4]).unwrap(),
    );
    let (fw, fb) = (
        g.param("fc.weight", [1, 4]).unwrap(),
        g.param("fc.bias", [1]).unwrap(),
    );
    let h = g
        .conv(x, cw, Some(cb), &ConvParams::new(2).padding(1))
        .unwrap();
    let h = g.relu(h).unwrap();
    let h = g.global_avg_pool(h).unwrap();
    let logits = g.linear(h, fw, Some(fb)).unwrap();
    let loss = g.bce_with_logits(logits, t).unwrap();
    let wrt = [cw, cb, fw, fb];
    let grads = g.gradients(loss, &wrt).unwrap();

    let mut adam = Adam::new(
        gpu,
        AdamConfig {
            lr: 0.05,
            ..Default::default()
        },
    )
    .unwrap();
    let optimizer: &mut dyn Optimizer = &mut adam;
    let spec = PlanSpec {
        outputs: vec![loss],
        updates: wrt.iter().copied().zip(grads).collect(),
        optimizer: Some(optimizer),
        ..Default::default()
    };
    let mut plan = Plan::compile(gpu, &g, &params, spec).unwrap();
    plan.write_input(gpu, x, &images).unwrap();
    plan.write_input(gpu, t, &labels).unwrap();
    let losses = (0..steps).map(|_| plan.step(gpu).unwrap()[0][0]).collect();
    let trained = params
        .to_host(gpu)
        .unwrap()
        .into_iter()
        .map(|(name, _, values)| (name, values))
        .collect();
    (losses, trained)
}

#[test]
fn a_tiny_cnn_learns_and_runs_are_reproducible() {
    let (losses, params) = train(21, 60);
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    let (first, last) = (losses[0], *losses.last().unwrap());
    assert!(
        last < 0.5 * first,
        "loss went from {first} to {last}: {losses:?}"
    );

    let (losses_again, params_again) = train(21, 60);
    assert_eq!(losses, losses_again, "same seed, different losses");
    for ((name, a), (_, b)) in params.iter().zip(&params_again) {
        let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(
            same,
            "parameter {name} differs between two runs with the same seed"
        );
    }
    let (_, other) = train(22, 3);
    assert_ne!(
        params[0].1, other[0].1,
        "a different seed should give different parameters"
    );
}
