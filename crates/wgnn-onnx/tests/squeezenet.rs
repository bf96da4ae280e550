//! SqueezeNet v1.1 written as ONNX by `scripts/onnx_fixtures.py` (the graph checked in, the
//! weights external data at offsets inside `assets/squeezenet1_1.safetensors`) imports to a
//! graph whose logits on a real photo match the hand-built network of `wgnn-models`.

use std::path::Path;

use wgnn::graph::Graph;
use wgnn::{Plan, PlanSpec};
use wgnn_models::imaging::{io::load, resize::resize_exact};
use wgnn_models::{squeezenet_classifier, Architecture, Pooling};
use wgnn_onnx::{ImportOptions, OnnxModel};
use wgnn_reference::testing::gpu;

fn model_bytes() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/squeezenet1_1.onnx"))
        .unwrap()
}

/// The hand-built network's logits for `image` (RGB in [0, 1], 3 x 227 x 227).
fn hand_built_logits(image: &[f32]) -> Vec<f32> {
    let gpu = gpu();
    let arch = Architecture::SqueezeNet;
    let weights = wgnn_assets::backbone_weights(gpu, arch, None).unwrap();
    let mut g = Graph::new();
    let input = g.input("image", [1, 3, 227, 227]);
    let x = g.channel_affine(input, arch.preprocess()).unwrap();
    let fire9 = arch
        .features(&mut g, x, Pooling::Max, &["fire9".to_string()])
        .unwrap()[0];
    let logits = squeezenet_classifier(&mut g, fire9).unwrap();
    let spec = PlanSpec {
        outputs: vec![logits],
        ..Default::default()
    };
    let mut plan = Plan::compile(gpu, &g, &weights, spec).unwrap();
    plan.write_input(gpu, input, image).unwrap();
    plan.step(gpu).unwrap().remove(0)
}

fn top(logits: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    order.truncate(k);
    order
}

#[test]
fn imported_squeezenet_matches_the_hand_built_network_on_a_photo() {
    let gpu = gpu();
    let assets = Path::new(env!("WGNN_ASSETS"));
    let model = OnnxModel::from_bytes("squeezenet1_1.onnx", &model_bytes(), Some(assets)).unwrap();
    assert!(model.unsupported_operators().is_empty());
    let net = model.import(gpu, &ImportOptions::default()).unwrap();
    // 52 weights and biases, plus the preprocessing's scale and mean.
    assert_eq!(net.parameters.len(), 54);
    let (input, logits) = (net.input("image").unwrap(), net.output("logits").unwrap());
    assert_eq!(net.graph.shape(input).dims(), [1, 3, 227, 227]);
    assert_eq!(net.graph.shape(logits).dims(), [1, 1000]);
    let spec = PlanSpec {
        outputs: vec![logits],
        ..Default::default()
    };
    let mut plan = Plan::compile(gpu, &net.graph, &net.params, spec).unwrap();

    let photo = resize_exact(&load(assets.join("chelsea.png")).unwrap(), 227, 227).unwrap();
    plan.write_input(gpu, input, &photo.data).unwrap();
    let imported = plan.step(gpu).unwrap().remove(0);
    let reference = hand_built_logits(&photo.data);
    let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let worst = imported
        .iter()
        .zip(&reference)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        worst <= 1e-4 * scale,
        "logits differ by {worst} (largest {scale})"
    );
    assert_eq!(top(&imported, 5), top(&reference, 5));
    assert_eq!(top(&imported, 1), vec![285], "Egyptian cat");
}

#[test]
fn external_data_needs_a_folder_and_an_existing_file() {
    let bytes = model_bytes();
    let model = OnnxModel::from_bytes("squeezenet1_1.onnx", &bytes, None).unwrap();
    let e = model
        .import(gpu(), &ImportOptions::default())
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("no folder for its external data"),
        "{e}"
    );
    let empty = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let model = OnnxModel::from_bytes("squeezenet1_1.onnx", &bytes, Some(empty)).unwrap();
    let e = model
        .import(gpu(), &ImportOptions::default())
        .err()
        .unwrap();
    assert!(e.to_string().contains("squeezenet1_1.safetensors"), "{e}");
}

#[test]
fn symbolic_batch_takes_the_requested_size_and_shapes_can_be_overridden() {
    let gpu = gpu();
    let assets = Path::new(env!("WGNN_ASSETS"));
    let model = OnnxModel::from_bytes("squeezenet1_1.onnx", &model_bytes(), Some(assets)).unwrap();
    assert_eq!(
        model.inputs()[0].dims,
        vec![None, Some(3), Some(227), Some(227)]
    );
    let net = model
        .import(gpu, &ImportOptions::default().batch(2))
        .unwrap();
    assert_eq!(net.graph.shape(net.outputs[0].1).dims(), [2, 1000]);
    let options = ImportOptions::default().input_shape("image", &[1, 3, 96, 128]);
    let net = model.import(gpu, &options).unwrap();
    assert_eq!(net.graph.shape(net.outputs[0].1).dims(), [1, 1000]);
    let e = net.input("picture").unwrap_err();
    assert!(e.to_string().contains("inputs are image"), "{e}");
}
