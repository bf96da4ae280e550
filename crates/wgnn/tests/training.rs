//! A tiny CNN trained end to end on the GPU: the loss goes down, and two runs with the same
//! seed give bit-identical parameters. A small classifier (GELU, dropout with a new seed each
//! step, cross-entropy on u32 labels) learns, and its inference graph (no dropout, softmax)
//! classifies the training points.
use wgnn_reference::testing as common;

use common::*;
use wgnn::nn::init::Init;
use wgnn::nn::ParamStore;
use wgnn::ops::conv::ConvParams;
use wgnn::optim::{Adam, AdamConfig, Optimizer};
use wgnn::rng::Rng;
use wgnn::{Graph, NodeId, Plan, PlanSpec};

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

/// Linear 2 -> 16, GELU, dropout (training only), linear 16 -> 3: the logits of a batch [n, 2].
fn classifier(g: &mut Graph, x: NodeId, dropout_seed: Option<NodeId>) -> (NodeId, [NodeId; 4]) {
    let w = [
        g.param("fc1.weight", [16, 2]).unwrap(),
        g.param("fc1.bias", [16]).unwrap(),
        g.param("fc2.weight", [3, 16]).unwrap(),
        g.param("fc2.bias", [3]).unwrap(),
    ];
    let h = g.linear(x, w[0], Some(w[1])).unwrap();
    let h = g.gelu(h).unwrap();
    let h = match dropout_seed {
        Some(seed) => g.dropout(h, 0.2, seed).unwrap(),
        None => g.dropout_inference(h, 0.2).unwrap(),
    };
    (g.linear(h, w[2], Some(w[3])).unwrap(), w)
}

#[test]
fn a_classifier_with_gelu_dropout_and_cross_entropy_learns() {
    let gpu = gpu();
    let mut rng = Rng::new(5);
    let n = 48;
    // Three clusters around the corners of a triangle; the label is the cluster.
    let centres = [[1.0, 0.0], [-0.5, 0.87], [-0.5, -0.87]];
    let labels: Vec<u32> = (0..n).map(|i| (i % 3) as u32).collect();
    let points: Vec<f32> = labels
        .iter()
        .flat_map(|&l| {
            let c = centres[l as usize];
            [
                c[0] + rng.range(-0.4, 0.4) as f32,
                c[1] + rng.range(-0.4, 0.4) as f32,
            ]
        })
        .collect();
    let mut params = ParamStore::new();
    for (name, out, input) in [("fc1", 16, 2), ("fc2", 3, 16)] {
        params
            .insert_weight_and_bias(gpu, name, [out, input], Init::kaiming_normal(), &mut rng)
            .unwrap();
    }

    let mut g = Graph::new();
    let x = g.input("points", [n, 2]);
    let y = g.input_u32("labels", [n]);
    let seed = g.input_u32("dropout seed", [1]);
    let (logits, w) = classifier(&mut g, x, Some(seed));
    let loss = g.cross_entropy(logits, y).unwrap();
    let grads = g.gradients(loss, &w).unwrap();
    let mut adam = Adam::new(
        gpu,
        AdamConfig {
            lr: 0.03,
            ..Default::default()
        },
    )
    .unwrap();
    let spec = PlanSpec::training(vec![loss], w.into_iter().zip(grads).collect(), &mut adam);
    let mut plan = Plan::compile(gpu, &g, &params, spec).unwrap();
    plan.write_input(gpu, x, &points).unwrap();
    plan.write_input_u32(gpu, y, &labels).unwrap();
    let losses: Vec<f32> = (0..120u32)
        .map(|step| {
            plan.write_input_u32(gpu, seed, &[step]).unwrap();
            plan.step(gpu).unwrap()[0][0]
        })
        .collect();
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    let (first, last) = (losses[0], *losses.last().unwrap());
    assert!(
        last < 0.3 * first,
        "loss went from {first} to {last}: {losses:?}"
    );

    // The inference graph over the trained parameters: no dropout, softmax probabilities.
    let mut g = Graph::new();
    let x = g.input("points", [n, 2]);
    let (logits, _) = classifier(&mut g, x, None);
    let probabilities = g.softmax(logits, 1).unwrap();
    let spec = PlanSpec {
        outputs: vec![probabilities],
        ..Default::default()
    };
    let mut plan = Plan::compile(gpu, &g, &params, spec).unwrap();
    plan.write_input(gpu, x, &points).unwrap();
    let p = plan.step(gpu).unwrap().remove(0);
    let correct = p
        .chunks(3)
        .zip(&labels)
        .filter(|(row, &label)| {
            let best = (0..3).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
            best == label as usize
        })
        .count();
    assert!(correct >= n - 2, "{correct} of {n} points classified");
}
