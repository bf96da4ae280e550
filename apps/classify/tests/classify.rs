//! The embedded SqueezeNet classifies the known pictures as a float64 reference does
//! (assets/SOURCES.md gives the reference probabilities).
use wgnn_reference::testing as common;

use std::process::Command;

use common::gpu;
use wgnn_classify::Classifier;
use wgnn_models::imaging::io::load;
use wgnn_models::Architecture;

fn asset(name: &str) -> String {
    format!("{}/{name}", env!("WGNN_ASSETS"))
}

#[test]
fn known_pictures_get_known_classes_and_probabilities() {
    let gpu = gpu();
    let weights = wgnn_assets::backbone_weights(gpu, Architecture::SqueezeNet, None).unwrap();
    let mut classifier = Classifier::new(gpu, &weights).unwrap();

    let cat = classifier
        .top_k(gpu, &load(asset("chelsea.png")).unwrap(), 5)
        .unwrap();
    assert_eq!(cat[0].class, "Egyptian cat", "{cat:?}");
    assert!((cat[0].probability - 0.514).abs() < 1e-3, "{cat:?}");
    assert_eq!(cat[1].class, "tiger cat", "{cat:?}");
    assert!((cat[1].probability - 0.310).abs() < 1e-3, "{cat:?}");
    assert!((cat[2].probability - 0.159).abs() < 1e-3, "{cat:?}");

    let coffee = classifier
        .top_k(gpu, &load(asset("coffee.png")).unwrap(), 5)
        .unwrap();
    assert_eq!(coffee[0].class, "espresso", "{coffee:?}");
    assert!((coffee[0].probability - 0.998).abs() < 1e-3, "{coffee:?}");
    let total: f64 = coffee.iter().map(|p| p.probability).sum();
    assert!(total <= 1.0 + 1e-9);
}

#[test]
fn classify_json_lines_parse() {
    let output = Command::new(env!("CARGO_BIN_EXE_classify"))
        .args(["--json", "--top", "3"])
        .arg(asset("chelsea.png"))
        .arg(asset("coffee.png"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0]["image"].as_str().unwrap().ends_with("chelsea.png"));
    let top = lines[0]["top"].as_array().unwrap();
    assert_eq!(top.len(), 3);
    assert_eq!(top[0]["class"], "Egyptian cat");
    assert_eq!(top[0]["index"], 285);
    assert!((top[0]["probability"].as_f64().unwrap() - 0.514).abs() < 1e-3);
    assert_eq!(lines[1]["top"][0]["class"], "espresso");
}

#[test]
fn classify_names_a_bad_image_and_fails() {
    let output = Command::new(env!("CARGO_BIN_EXE_classify"))
        .arg(asset("chelsea.png"))
        .arg("no-such-picture.png")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no-such-picture.png"), "{stderr}");
}

#[test]
fn bad_arguments_are_refused_by_name() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("classify_cli");
    std::fs::create_dir_all(&dir).unwrap();
    let truncated = dir.join("half.jpg");
    let jpeg = std::fs::read(asset("scream.jpg")).unwrap();
    std::fs::write(&truncated, &jpeg[..jpeg.len() / 2]).unwrap();
    let truncated = truncated.to_str().unwrap().to_string();
    let chelsea = asset("chelsea.png");
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["--top", "-1", &chelsea], 2, "--top"),
        (vec!["--top", "0", &chelsea], 2, "--top"),
        (vec!["--top", "1001", &chelsea], 1, "--top"),
        (
            vec!["--max-image-pixels", "-5", &chelsea],
            2,
            "--max-image-pixels",
        ),
        (
            vec!["--max-image-pixels", "100", &chelsea],
            1,
            "--max-image-pixels",
        ),
        (vec![&chelsea, &truncated], 1, "half.jpg"),
        (vec![&chelsea, ""], 2, "empty path"),
        (vec![], 2, "IMAGE"),
    ];
    for (args, code, needle) in cases {
        let run = Command::new(env!("CARGO_BIN_EXE_classify"))
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: {stderr:?} does not name {needle}"
        );
        assert!(run.stdout.is_empty(), "{args:?} printed classes");
    }
}
