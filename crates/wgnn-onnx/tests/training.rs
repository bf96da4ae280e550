//! An imported network trains: its initialisers are parameters, the engine's autodiff reaches
//! them, and an optimiser lowers a loss.

use std::path::Path;

use wgnn::optim::{Adam, AdamConfig};
use wgnn::rng::Rng;
use wgnn::{Plan, PlanSpec};
use wgnn_onnx::{ImportOptions, OnnxModel};
use wgnn_reference::testing::gpu;

#[test]
fn imported_cnn_fits_targets_with_adam_and_its_initialisers_change() {
    let gpu = gpu();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/small_cnn.onnx");
    let model = OnnxModel::load(path).unwrap();
    let mut net = model.import(gpu, &ImportOptions::default()).unwrap();
    let names: Vec<&str> = net.parameters.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["w1", "b1", "s", "bb", "m", "v", "w2", "b2"]);
    let (x, y) = (net.inputs[0].1, net.outputs[0].1);
    let before = net.params.to_host(gpu).unwrap();

    // The convolution, the batch norm's affine and the linear layer train; the statistics stay.
    let trained: Vec<_> = net
        .parameters
        .iter()
        .filter(|(n, _)| !["m", "v"].contains(&n.as_str()))
        .map(|&(_, id)| id)
        .collect();
    let g = &mut net.graph;
    let targets = g.input("targets", [2, 5]);
    let loss = g.mse(y, targets).unwrap();
    let grads = g.gradients(loss, &trained).unwrap();
    let config = AdamConfig {
        lr: 0.02,
        ..Default::default()
    };
    let mut adam = Adam::new(gpu, config).unwrap();
    let updates = trained.into_iter().zip(grads).collect();
    let spec = PlanSpec::training(vec![loss], updates, &mut adam);
    let mut plan = Plan::compile(gpu, &net.graph, &net.params, spec).unwrap();
    let mut rng = Rng::new(3);
    plan.write_input(gpu, x, &rng.vec_f32(2 * 3 * 8 * 8, -1.0, 1.0))
        .unwrap();
    plan.write_input(gpu, targets, &rng.vec_f32(10, -1.0, 1.0))
        .unwrap();
    let losses: Vec<f32> = (0..40).map(|_| plan.step(gpu).unwrap()[0][0]).collect();
    assert!(losses[39] < 0.1 * losses[0], "{losses:?}");

    let after = net.params.to_host(gpu).unwrap();
    for ((name, _, old), (_, _, new)) in before.iter().zip(&after) {
        let frozen = name == "m" || name == "v";
        assert_eq!(old == new, frozen, "{name}");
    }
}

/// Gradients pass back through the imported Softmax, Gemm, pooling, linear Resize and
/// HardSwish to the convolution: a cross-entropy on the logits under the Softmax (found by name
/// in `Imported::values`) teaches two pictures their labels, which the model's own Softmax
/// output then gives most probability.
#[test]
fn imported_classifier_ending_in_softmax_learns_labels_through_resize_and_hard_swish() {
    let gpu = gpu();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/classifier_softmax.onnx");
    let model = OnnxModel::load(path).unwrap();
    let mut net = model.import(gpu, &ImportOptions::default()).unwrap();
    let (x, probabilities) = (net.inputs[0].1, net.outputs[0].1);
    let logits = net.value("logits").unwrap();
    assert!(net.value("s").is_err(), "a constant is no computed value");
    let trained: Vec<_> = net.parameters.iter().map(|&(_, id)| id).collect();
    let names: Vec<&str> = net.parameters.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["w1", "b1", "w2", "b2"]);
    let g = &mut net.graph;
    let labels = g.input_u32("labels", [2]);
    let loss = g.cross_entropy(logits, labels).unwrap();
    let grads = g.gradients(loss, &trained).unwrap();
    let mut adam = Adam::new(
        gpu,
        AdamConfig {
            lr: 0.05,
            ..Default::default()
        },
    )
    .unwrap();
    let updates = trained.into_iter().zip(grads).collect();
    let mut spec = PlanSpec::training(vec![loss], updates, &mut adam);
    spec.outputs.push(probabilities);
    let mut plan = Plan::compile(gpu, &net.graph, &net.params, spec).unwrap();
    let mut rng = Rng::new(5);
    plan.write_input(gpu, x, &rng.vec_f32(2 * 3 * 6 * 6, -1.0, 1.0))
        .unwrap();
    plan.write_input_u32(gpu, labels, &[3, 1]).unwrap();
    let mut losses = Vec::new();
    let mut last = Vec::new();
    for _ in 0..60 {
        let out = plan.step(gpu).unwrap();
        losses.push(out[0][0]);
        last = out[1].clone();
    }
    assert!(losses[59] < 0.1 * losses[0], "{losses:?}");
    for (row, label) in last.chunks(5).zip([3, 1]) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
        assert!(row[label] > 0.9, "{row:?}");
    }
}
