//! `onnx_classify` through the binary on the SqueezeNet of the importer's fixtures (the same
//! probabilities as the hand-built `classify`), its refusals, and the fine-tuning example run
//! small.
use std::path::{Path, PathBuf};
use std::process::Command;

use wgnn_models::imaging::io::load;
use wgnn_onnx::OnnxModel;
use wgnn_onnx_classify::{fine_tune, FineTune, Normalize, OnnxClassifier};
use wgnn_reference::testing::gpu;

#[path = "../examples/onnx_finetune.rs"]
#[allow(dead_code)]
mod onnx_finetune;

fn asset(name: &str) -> PathBuf {
    Path::new(env!("WGNN_ASSETS")).join(name)
}

fn squeezenet() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../crates/wgnn-onnx/tests/fixtures/squeezenet1_1.onnx")
}

fn onnx_classify(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_onnx_classify"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn onnx_classify_gives_the_hand_built_networks_classes() {
    let (model, assets) = (squeezenet(), asset(""));
    let (cat, coffee) = (asset("chelsea.png"), asset("coffee.png"));
    let output = onnx_classify(&[
        "--model".as_ref(),
        model.as_os_str(),
        "--external-data".as_ref(),
        assets.as_os_str(),
        "--json".as_ref(),
        "--top".as_ref(),
        "3".as_ref(),
        cat.as_os_str(),
        coffee.as_os_str(),
    ]);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let top = lines[0]["top"].as_array().unwrap();
    assert_eq!(top.len(), 3);
    assert_eq!(top[0]["class"], "Egyptian cat");
    assert_eq!(top[0]["index"], 285);
    // The float64 reference of assets/SOURCES.md, as `classify` checks it.
    assert!(
        (top[0]["probability"].as_f64().unwrap() - 0.514).abs() < 1e-3,
        "{top:?}"
    );
    assert_eq!(top[1]["class"], "tiger cat");
    assert_eq!(lines[1]["top"][0]["class"], "espresso");
}

#[test]
fn onnx_classify_names_what_it_refuses() {
    let (model, cat) = (squeezenet(), asset("chelsea.png"));
    // The external data is not beside the fixture: the message names the missing file.
    let output = onnx_classify(&["--model".as_ref(), model.as_os_str(), cat.as_os_str()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("squeezenet1_1.safetensors"), "{stderr}");

    let nonzero = squeezenet().with_file_name("unsupported_nonzero.onnx");
    let output = onnx_classify(&["--model".as_ref(), nonzero.as_os_str(), cat.as_os_str()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("does not support: NonZero"), "{stderr}");

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnx_classify");
    std::fs::create_dir_all(&dir).unwrap();
    let truncated = dir.join("half.onnx");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let output = onnx_classify(&["--model".as_ref(), truncated.as_os_str(), cat.as_os_str()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("half.onnx") && stderr.contains("truncated"),
        "{stderr}"
    );

    let output = onnx_classify(&[
        "--model".as_ref(),
        model.as_os_str(),
        "--normalize".as_ref(),
        "caffe".as_ref(),
        cat.as_os_str(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--normalize") && stderr.contains("`caffe`"),
        "{stderr}"
    );
}

#[test]
fn fine_tuning_the_last_layer_lowers_the_loss_and_changes_only_it() {
    let gpu = gpu();
    let model = OnnxModel::load(squeezenet())
        .unwrap()
        .with_external_dir(&asset(""));
    let pictures = [
        load(asset("chelsea.png")).unwrap(),
        load(asset("brick.png")).unwrap(),
    ];
    let examples = [(&pictures[0], 7), (&pictures[1], 9)];
    let config = FineTune {
        train: vec![],
        steps: 4,
        learning_rate: 1e-3,
        size: Some(64),
        normalize: Normalize::Unit,
        label_score: 20.0,
    };
    let tuned = fine_tune(gpu, &model, &examples, &config).unwrap();
    assert_eq!(tuned.trained, ["classifier.1.weight", "classifier.1.bias"]);
    assert!(tuned.losses[3] < tuned.losses[0], "{:?}", tuned.losses);
    let original = model
        .import(gpu, &wgnn_onnx::ImportOptions::default())
        .unwrap()
        .params
        .to_host(gpu)
        .unwrap();
    for ((name, _, before), (_, _, after)) in
        original.iter().zip(tuned.params.to_host(gpu).unwrap())
    {
        assert_eq!(
            before == &after,
            !name.starts_with("classifier.1"),
            "{name}"
        );
    }
    let bad = FineTune {
        train: vec!["fc.weight".to_string()],
        ..config
    };
    let e = fine_tune(gpu, &model, &examples, &bad).err().unwrap();
    assert!(e.to_string().contains("no parameter `fc.weight`"), "{e}");
}

#[test]
fn fine_tuning_example_runs_small_and_its_loss_falls() {
    let (losses, tops) = onnx_finetune::run(20, 96).unwrap();
    assert_eq!(losses.len(), 20);
    assert!(losses[19] < 0.01 * losses[0], "{losses:?}");
    assert_eq!(
        tops,
        [0, 1, 2, 3],
        "each photo gets the class it was taught"
    );
}

/// The fixture's SqueezeNet with `op` (Softmax or LogSoftmax over axis 1) after its logits,
/// whose output `probabilities` is the model's only output, written under the test folder.
fn squeezenet_ending_in(op: &str) -> PathBuf {
    use prost::Message;
    use wgnn_onnx::proto::{attribute_type, AttributeProto, NodeProto};
    let model = OnnxModel::load(squeezenet()).unwrap();
    let mut proto = model.proto().clone();
    let graph = proto.graph.as_mut().unwrap();
    graph.node.push(NodeProto {
        input: vec!["logits".to_string()],
        output: vec!["probabilities".to_string()],
        op_type: op.to_string(),
        attribute: vec![AttributeProto {
            name: "axis".to_string(),
            r#type: attribute_type::INT,
            i: 1,
            ..Default::default()
        }],
        ..Default::default()
    });
    graph.output[0].name = "probabilities".to_string();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnx_classify");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("squeezenet_{op}.onnx"));
    std::fs::write(&path, proto.encode_to_vec()).unwrap();
    path
}

#[test]
fn a_model_ending_in_softmax_gives_the_probabilities_of_its_scores() {
    let (model, assets, cat) = (
        squeezenet_ending_in("Softmax"),
        asset(""),
        asset("chelsea.png"),
    );
    let output = onnx_classify(&[
        "--model".as_ref(),
        model.as_os_str(),
        "--external-data".as_ref(),
        assets.as_os_str(),
        "--json".as_ref(),
        cat.as_os_str(),
    ]);
    assert!(output.status.success(), "{output:?}");
    let line: serde_json::Value =
        serde_json::from_str(String::from_utf8(output.stdout).unwrap().trim()).unwrap();
    let top = &line["top"][0];
    assert_eq!(top["class"], "Egyptian cat");
    // A softmax of the model's probabilities would give about 1 / 1000 here.
    assert!(
        (top["probability"].as_f64().unwrap() - 0.514).abs() < 1e-3,
        "{line}"
    );

    // Through the library at 64 x 64: the same classes and probabilities as the plain model,
    // for Softmax and LogSoftmax alike.
    let gpu = gpu();
    let picture = load(cat).unwrap();
    let top3 = |path: PathBuf| {
        let model = OnnxModel::load(path).unwrap().with_external_dir(&assets);
        let mut classifier =
            OnnxClassifier::new(gpu, &model, Normalize::Unit, Some(64), None).unwrap();
        classifier.top_k(gpu, &picture, 3).unwrap()
    };
    let plain = top3(squeezenet());
    for op in ["Softmax", "LogSoftmax"] {
        let ending = top3(squeezenet_ending_in(op));
        for (a, b) in plain.iter().zip(&ending) {
            assert_eq!(a.index, b.index, "{op}");
            assert!(
                (a.probability - b.probability).abs() < 1e-6,
                "{op}: {a:?} {b:?}"
            );
        }
    }
}
