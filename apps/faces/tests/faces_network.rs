//! The Siamese network and its model file: the reshape op, mirror symmetry, batching, the
//! network description pinned byte for byte, the model file (round trip, same bytes, the model
//! and gallery fixtures load and keep their bytes, rejection of other files).
use wgnn_reference::testing as common;
mod faces_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{eval, gpu, graph_vjp, tensor, to_f32, to_f64};
use faces_support::{orl_photos, tiny_network, TempDir, ORL};
use serde_json::json;
use wgnn::graph::{Graph, Plan, PlanSpec};
use wgnn::nn::ParamStore;
use wgnn::ops::elementwise::Reshape;
use wgnn::rng::Rng;
use wgnn::{Error, Shape};
use wgnn_faces::commands;
use wgnn_faces::embed::{trunk_weights, ImageRunner};
use wgnn_faces::model::{LogisticVerifier, Network, SiameseModel, FORMAT};
use wgnn_faces::network::{aligned_chip, NetworkSpec};
use wgnn_models::face_resnet::CHIP_SIZE;

#[test]
fn reshape_keeps_values_and_back_propagates() {
    let mut rng = Rng::new(1);
    let x: Vec<f64> = (0..2 * 3 * 4 * 5).map(|_| rng.range(-1.0, 1.0)).collect();
    let input = tensor(&[2, 3, 4, 5], &x);
    let op = Reshape {
        shape: Shape::from([2, 60]),
    };
    // A copy: exactly the f32 values.
    assert_eq!(eval(&op, &[&input]), to_f32(&x));
    // The gradient of a reshape is the upstream gradient in the input's shape.
    let up: Vec<f64> = (0..120).map(|_| rng.range(-1.0, 1.0)).collect();
    let (y, grads) = graph_vjp(&[(&[2, 3, 4, 5], &x)], &up, &|g, inputs| {
        g.reshape(inputs[0], [2, 60]).unwrap()
    });
    assert_eq!(y, to_f32(&x));
    assert_eq!(grads[0], to_f32(&up));
}

#[test]
fn reshape_to_another_element_count_is_an_error() {
    let mut g = Graph::new();
    let x = g.input("x", [2, 3]);
    match g.reshape(x, [7]) {
        Err(Error::Shape { op, .. }) => assert_eq!(op, "reshape"),
        other => panic!("expected a shape error, got {other:?}"),
    }
}

/// The JSON that model files of the default network carry (their `network` metadata), as the
/// model files and galleries written so far hold it: the model's fingerprint hashes it.
const DEFAULT_DESCRIPTION: &str = concat!(
    r#"{"head":{"descriptor":"the trunk's 128 values L2-normalised, summed over passes (the "#,
    r#"chip and its mirror image)","embedding_dim":128,"levels":[],"normalisation":"L2","#,
    r#""projection":"linear (head.project.weight, head.project.bias)"},"input":{"alignment":"#,
    r#""the most confident face of dlib's CNN face detector (embedded mmod_human_face_detector) "#,
    r#"on the resized photo, or where it finds none the face box [0.0435, 0.268, 0.88, 0.946] "#,
    r#"(left, top, right, bottom as fractions of the resized photo); from that box dlib's "#,
    r#"5-point shape predictor (embedded shape_predictor_5_face_landmarks), then dlib's face "#,
    r#"chip: 150 x 150 pixels, padding 0.25","channels":3,"colour":"RGB in [0, 1]; greyscale "#,
    r#"replicated to 3 channels","height":224,"normalisation":"RGB, (255 x - mean) / 256, "#,
    r#"means (122.782, 117.001, 104.298)","resize":"bilinear, to exactly width x height","#,
    r#""width":184},"mirror":true,"trunk":{"architecture":"dlib_face_resnet_v1","frozen":true,"#,
    r#""weights":"embedded dlib_face_recognition_resnet_model_v1 (Davis King, CC0)"},"#,
    r#""zooms":[1.0]}"#
);

#[test]
fn the_network_description_keeps_its_bytes() {
    let spec = NetworkSpec::default();
    assert_eq!(spec.to_json().to_string(), DEFAULT_DESCRIPTION);
    assert_eq!(
        spec.to_json()["trunk"]["architecture"],
        "dlib_face_resnet_v1"
    );
    let parsed: serde_json::Value = serde_json::from_str(DEFAULT_DESCRIPTION).unwrap();
    assert_eq!(NetworkSpec::from_json(&parsed).unwrap(), spec);
    // Other sizes and settings round-trip too.
    let tiny = NetworkSpec {
        mirror: false,
        ..tiny_network()
    };
    assert_eq!(NetworkSpec::from_json(&tiny.to_json()).unwrap(), tiny);

    // Descriptions the face ResNet cannot run are refused with the reason.
    for (key, value, expected) in [
        ("levels", json!(["fire5:4x3"]), "no descriptor levels"),
        ("zooms", json!([1.0, 1.08]), "the image once"),
        ("architecture", json!("resnet50"), "not supported"),
        ("width", json!(32), "too small"),
    ] {
        let mut bad = parsed.clone();
        match key {
            "levels" => bad["head"]["levels"] = value,
            "zooms" => bad["zooms"] = value,
            "architecture" => bad["trunk"]["architecture"] = value,
            _ => bad["input"]["width"] = value,
        }
        let message = NetworkSpec::from_json(&bad).unwrap_err();
        assert!(message.contains(expected), "{key}: {message}");
    }
}

/// An untrained model of the tiny network.
fn random_model(seed: u64) -> SiameseModel {
    let gpu = gpu();
    let spec = tiny_network();
    let head = spec.init_head(gpu, &mut Rng::new(seed)).unwrap();
    SiameseModel::new(
        gpu,
        Network::FaceResNet(spec),
        head,
        0.75,
        json!({"note": "test"}),
    )
    .unwrap()
}

#[test]
fn a_chip_and_its_mirror_image_get_the_same_embedding() {
    // The network's input for a photo is its chip and the chip's mirror image; for the mirror
    // image of that chip it is the same two chips in the other order.
    let gpu = gpu();
    let model = random_model(2);
    let spec = model.network.face("this test").unwrap();
    let photo = orl_photos(spec, &["s4/2.pgm"]);
    let chip = aligned_chip(spec.trunk.width, spec.trunk.height, &photo, None).unwrap();
    let mut mirrored = chip.clone();
    for row in mirrored.chunks_exact_mut(CHIP_SIZE) {
        row.reverse();
    }
    assert_ne!(chip, mirrored);
    let both: Vec<f32> = [&chip, &mirrored, &mirrored, &chip]
        .into_iter()
        .flatten()
        .copied()
        .collect();
    let mut g = Graph::new();
    let input = g.input("chips", [2, 6, CHIP_SIZE, CHIP_SIZE]);
    let trunk = spec.build_trunk(&mut g, input).unwrap();
    let embedding = spec.build_head(&mut g, trunk).unwrap();
    let mut params = trunk_weights(gpu).unwrap();
    for (name, tensor) in model.params.iter() {
        params.insert(name, tensor.clone());
    }
    let mut plan = Plan::compile(
        gpu,
        &g,
        &params,
        PlanSpec {
            outputs: vec![embedding],
            ..Default::default()
        },
    )
    .unwrap();
    plan.write_input(gpu, input, &both).unwrap();
    let e = plan.step(gpu).unwrap().remove(0);
    let d = model.embedding_dim();
    assert_eq!(
        e[..d],
        e[d..],
        "embeddings of a chip and its mirror image differ"
    );
    let norm: f64 = to_f64(&e[..d]).iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "embedding norm {norm}");
}

#[test]
fn many_images_give_what_each_gives_alone() {
    // More images than one chunk of network inputs (32), and a short last chunk and batch.
    let gpu = gpu();
    let model = random_model(7);
    let files: Vec<String> = (1..=4)
        .flat_map(|s| (1..=10).map(move |i| format!("s{s}/{i}.pgm")))
        .take(37)
        .collect();
    let names: Vec<&str> = files.iter().map(String::as_str).collect();
    let spec = model.network.face("this test").unwrap();
    let images = orl_photos(spec, &names);
    let mut embedder = ImageRunner::embeddings(gpu, spec, &model.params).unwrap();
    let all = embedder.run(gpu, &images, &mut |_| {}).unwrap();
    let len = images.len() / files.len();
    let d = model.embedding_dim();
    for k in [0, 8, 31, 32, 36] {
        let alone = embedder
            .run(gpu, &images[k * len..(k + 1) * len], &mut |_| {})
            .unwrap();
        assert_eq!(alone, &all[k * d..(k + 1) * d], "image {k}");
    }
}

#[test]
fn the_model_file_round_trips_and_the_same_model_gives_the_same_bytes() {
    let gpu = gpu();
    let dir = TempDir::new("model-roundtrip");
    let mut model = random_model(3);
    model.verifier = Some(LogisticVerifier {
        weight: (0..32).map(|i| i as f32 * -0.25).collect(),
        bias: 1.5,
        description: json!({"kind": "test"}),
    });
    let (a, b) = (
        dir.path().join("a.safetensors"),
        dir.path().join("b.safetensors"),
    );
    model.save(gpu, &a).unwrap();
    let loaded = SiameseModel::load(gpu, &a).unwrap();
    assert_eq!(loaded.network, model.network);
    assert_eq!(loaded.threshold, model.threshold);
    assert_eq!(loaded.verifier, model.verifier);
    assert_eq!(loaded.fingerprint, model.fingerprint);
    assert_eq!(
        loaded.params.to_host(gpu).unwrap(),
        model.params.to_host(gpu).unwrap()
    );
    loaded.save(gpu, &b).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let metadata = wgnn::nn::read_safetensors_metadata(&a).unwrap();
    assert_eq!(metadata["format"], FORMAT);
    assert_eq!(metadata["embedding_dim"], "32");
    // The fingerprint follows the weights, not the verifier.
    let mut without = model.clone();
    without.verifier = None;
    assert_eq!(without.fingerprint, model.fingerprint);
    assert_ne!(random_model(4).fingerprint, model.fingerprint);
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn the_model_and_gallery_fixtures_load_and_keep_their_bytes() {
    // tests/fixtures/README.md: a face-ResNet model with a verifier and a gallery, written by
    // train_siamese at 18e1bb5.
    let gpu = gpu();
    let dir = TempDir::new("model-fixture");
    let path = fixture("face_resnet_model.safetensors");
    let model = SiameseModel::load(gpu, &path).unwrap();
    assert_eq!(model.network.face("this test").unwrap().trunk.width, 184);
    assert_eq!(model.embedding_dim(), 8);
    assert!(model.verifier.is_some());
    // Written again, the same bytes: the same description, metadata and weights.
    let again = dir.path().join("again.safetensors");
    model.save(gpu, &again).unwrap();
    assert!(
        std::fs::read(&again).unwrap() == std::fs::read(&path).unwrap(),
        "the model file changed when written again"
    );

    // The gallery loads with the model (its fingerprint is the model's), and enrolling the same
    // photo writes the same gallery, byte for byte: the same embedding.
    let gallery = fixture("face_resnet_gallery.json");
    let photo = Path::new(ORL).join("s5/1.pgm");
    let v = commands::verify(gpu, &model, &gallery, "s5", &photo, model.threshold).unwrap();
    assert!(v.matched && v.distance < 1e-5, "{v:?}");
    let enrolled = dir.path().join("gallery.json");
    commands::enroll(gpu, &model, &enrolled, "s5", &[photo]).unwrap();
    assert_eq!(
        std::fs::read_to_string(&enrolled).unwrap(),
        std::fs::read_to_string(&gallery).unwrap()
    );
}

fn load_error(path: &std::path::Path) -> String {
    match SiameseModel::load(gpu(), path) {
        Ok(_) => panic!("{} loaded as a model", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn files_that_are_not_wgnn_models_are_refused_clearly() {
    let gpu = gpu();
    let dir = TempDir::new("model-reject");
    let text = dir.write("notes.safetensors", b"hello, this is not a model");
    let message = load_error(&text);
    assert!(message.contains("not a wgnn face model"), "{message}");

    // A valid safetensors file without the format tag (e.g. someone else's weights).
    let mut store = ParamStore::new();
    store.insert_f32(gpu, "weight", [2], &[1.0, 2.0]).unwrap();
    let foreign = dir.path().join("foreign.safetensors");
    store
        .save_safetensors(
            gpu,
            &foreign,
            &BTreeMap::from([("author".into(), "x".into())]),
        )
        .unwrap();
    let message = load_error(&foreign);
    assert!(
        message.contains("not a wgnn face model") && message.contains(FORMAT),
        "{message}"
    );

    // The embedded SqueezeNet weights themselves are no face model either.
    let squeezenet = dir.write(
        "squeezenet.safetensors",
        wgnn_assets::SQUEEZENET1_1_SAFETENSORS,
    );
    assert!(load_error(&squeezenet).contains("not a wgnn face model"));

    // A face model of the SqueezeNet trunk (tests/fixtures/README.md): retrain.
    let message = load_error(&fixture("squeezenet_model.safetensors"));
    assert!(
        message.contains(
            "made with the SqueezeNet trunk, which train_siamese no longer has: retrain with \
             this version"
        ),
        "{message}"
    );

    // A model whose trunk fingerprint is not this wgnn's.
    let good = dir.path().join("good.safetensors");
    random_model(5).save(gpu, &good).unwrap();
    let mut metadata = wgnn::nn::read_safetensors_metadata(&good).unwrap();
    metadata.insert("trunk_fingerprint".into(), "0123456789abcdef".into());
    let stored = ParamStore::load_safetensors(gpu, &good).unwrap();
    let other_trunk = dir.path().join("other-trunk.safetensors");
    stored
        .save_safetensors(gpu, &other_trunk, &metadata)
        .unwrap();
    assert!(load_error(&other_trunk).contains("other trunk weights"));

    let missing = dir.path().join("missing.safetensors");
    assert!(load_error(&missing).contains("missing.safetensors"));
}
