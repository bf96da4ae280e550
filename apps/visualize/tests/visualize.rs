//! visualize: the per-image maxima and the top-patch selection against plain CPU references,
//! patches and grids, a whole run on a few photos, synthesis, and bad input.
use wgnn_reference::testing as common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::gpu;
use wgnn::graph::{AxisField, ReceptiveField};
use wgnn::rng::Rng;
use wgnn_models::imaging::{io, RgbImage};
use wgnn_visualize::maxima::{spatial_maxima, LayerMaxima};
use wgnn_visualize::network::Model;
use wgnn_visualize::patches::{crop, field_span, patch_side, OUTSIDE, SEPARATOR};
use wgnn_visualize::run::{self, Silent, Units, VisualizeConfig};
use wgnn_visualize::selection::{most_variable_units, top_images};
use wgnn_visualize::synthesize::{synthesize, unit_response, SynthesisConfig};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("visualize")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Activations with ties and repeats: values on a coarse grid of 0.25.
fn coarse_activations(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len)
        .map(|_| (rng.below(9) as f32 - 3.0) * 0.25)
        .collect()
}

#[test]
fn maxima_and_top_images_match_a_brute_force_ranking() {
    let mut rng = Rng::new(3);
    let (n, c, h, w) = (11, 5, 3, 7);
    let activations = coarse_activations(&mut rng, n * c * h * w);
    let (values, positions) = spatial_maxima(&activations, [n, c, h, w]);
    let maxima = LayerMaxima {
        layer: "layer".into(),
        units: c,
        map: (h, w),
        images: n,
        values,
        positions,
    };
    for unit in 0..c {
        // Reference: every (value, image, position) of the unit, best first, then one per
        // image (its first best position in row-major order), positive values only.
        let mut all: Vec<(f32, usize, usize)> = Vec::new();
        for image in 0..n {
            for p in 0..h * w {
                all.push((activations[((image * c) + unit) * h * w + p], image, p));
            }
        }
        all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let mut seen = Vec::new();
        let mut expected = Vec::new();
        for (value, image, p) in all {
            if !seen.contains(&image) {
                seen.push(image);
                if value > 0.0 {
                    expected.push((image, (p / w, p % w), value));
                }
            }
        }
        for k in [1, 4, n + 3] {
            let got: Vec<_> = top_images(&maxima, unit, k)
                .into_iter()
                .map(|i| (i, maxima.position(i, unit), maxima.value(i, unit)))
                .collect();
            let want: Vec<_> = expected.iter().take(k).copied().collect();
            assert_eq!(got, want, "unit {unit}, k {k}");
        }
    }
}

#[test]
fn the_most_variable_units_come_first() {
    let mut rng = Rng::new(8);
    let (n, c) = (9, 12);
    let values = coarse_activations(&mut rng, n * c);
    let maxima = LayerMaxima {
        layer: "layer".into(),
        units: c,
        map: (1, 1),
        images: n,
        values: values.clone(),
        positions: vec![(0, 0); n * c],
    };
    let variance = |unit: usize| {
        let v: Vec<f64> = (0..n).map(|i| values[i * c + unit] as f64).collect();
        let mean = v.iter().sum::<f64>() / n as f64;
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64
    };
    let mut expected: Vec<usize> = (0..c).collect();
    expected.sort_by(|&a, &b| variance(b).total_cmp(&variance(a)).then(a.cmp(&b)));
    assert_eq!(most_variable_units(&maxima, 5), expected[..5]);
    assert_eq!(most_variable_units(&maxima, 50), expected);
}

#[test]
fn crops_are_grey_outside_the_image_and_exact_inside() {
    let mut rng = Rng::new(1);
    let (w, h) = (7, 5);
    let image = RgbImage::new(w, h, rng.vec_f32(3 * w * h, 0.0, 1.0)).unwrap();
    let patch = crop(&image, [(-2, 3), (4, 9)]).unwrap();
    assert_eq!((patch.width, patch.height), (6, 6));
    for y in 0..6 {
        for x in 0..6 {
            let (sy, sx) = (y as i64 - 2, x as i64 + 4);
            let expected = if sy >= 0 && (sx as usize) < w {
                image.pixel(sx as usize, sy as usize)
            } else {
                OUTSIDE
            };
            assert_eq!(patch.pixel(x, y), expected, "({x}, {y})");
        }
    }
    let field = ReceptiveField::Local(vec![
        AxisField {
            stride: 4,
            first: -6,
            last: 10
        };
        2
    ]);
    assert_eq!(
        field_span(&field, (2, 3), (50, 50)).unwrap(),
        [(2, 18), (6, 22)]
    );
    assert_eq!(
        field_span(&ReceptiveField::Whole, (0, 0), (50, 40)).unwrap(),
        [(0, 49), (0, 39)]
    );
    assert_eq!(patch_side(&field, 227), 48);
    assert_eq!(patch_side(&ReceptiveField::Whole, 227), 112);
}

/// Three photos in a folder, as a user would give them.
fn photo_folder(name: &str) -> PathBuf {
    let dir = scratch(name);
    for (file, bytes) in wgnn_assets::PHOTOS.iter().take(3) {
        std::fs::write(dir.join(file), bytes).unwrap();
    }
    dir
}

#[test]
fn a_run_writes_one_grid_per_layer_without_blank_patches() {
    let out = scratch("run_out");
    let mut config = VisualizeConfig::new(Model::parse("squeezenet").unwrap());
    config.images = vec![photo_folder("run_in")];
    config.layers = Some(vec!["conv1".into(), "fire3".into()]);
    config.units = Units::MostVariable(3);
    config.patches = 2;
    config.out = out.clone();
    let report = run::run(gpu(), &config, &mut Silent).unwrap();
    assert_eq!(report.images.len(), 3);
    assert_eq!(report.layers.len(), 2);
    let conv1 = &report.layers[0];
    assert_eq!(conv1.receptive_field, Some((3, 3)));
    assert_eq!(report.layers[1].receptive_field, Some((23, 23)));
    for layer in &report.layers {
        assert_eq!(layer.units.len(), 3);
        let grid = io::load(&layer.grid).unwrap();
        let side = layer.patch_side;
        assert_eq!(grid.width, 2 * (side + SEPARATOR) + SEPARATOR);
        assert_eq!(grid.height, 3 * (side + SEPARATOR) + SEPARATOR);
        for (r, unit) in layer.units.iter().enumerate() {
            assert!(
                !unit.patches.is_empty(),
                "{} unit {}",
                layer.layer,
                unit.unit
            );
            let values: Vec<f32> = unit.patches.iter().map(|p| p.value).collect();
            assert!(values.windows(2).all(|v| v[0] >= v[1]), "{values:?}");
            let images: Vec<&str> = unit.patches.iter().map(|p| p.image.as_str()).collect();
            let mut distinct = images.clone();
            distinct.dedup();
            assert_eq!(
                distinct.len(),
                images.len(),
                "one patch per image: {images:?}"
            );
            for c in 0..unit.patches.len() {
                // A patch is not blank: its pixels are not all one colour.
                let (top, left) = (
                    SEPARATOR + r * (side + SEPARATOR),
                    SEPARATOR + c * (side + SEPARATOR),
                );
                let first = grid.pixel(left, top);
                let varied =
                    (0..side).any(|y| (0..side).any(|x| grid.pixel(left + x, top + y) != first));
                assert!(
                    varied,
                    "{} unit {} patch {c} is blank",
                    layer.layer, unit.unit
                );
            }
        }
    }
    let json = report.to_json();
    let patch = &json["layers"][1]["units"][0]["patches"][0];
    assert!(
        patch["image"].as_str().unwrap().ends_with(".png")
            || patch["image"].as_str().unwrap().ends_with(".jpg")
    );
    assert_eq!(patch["position"].as_array().unwrap().len(), 2);
    assert!(patch["value"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_synthesised_image_excites_its_unit_far_more_than_noise() {
    let gpu = gpu();
    let model = Model::parse("squeezenet").unwrap();
    let weights = model.weights(gpu, None).unwrap();
    let config = SynthesisConfig {
        side: 48,
        steps: 24,
        ..SynthesisConfig::default()
    };
    let units = [3, 40];
    let made = synthesize(
        gpu,
        model,
        &weights,
        "fire3",
        &units,
        &config,
        &mut |_, _| {},
    )
    .unwrap();
    let mut rng = Rng::new(11);
    for (image, &unit) in made.iter().zip(&units) {
        let noise = RgbImage::new(48, 48, rng.vec_f32(3 * 48 * 48, 0.0, 1.0)).unwrap();
        let r =
            unit_response(gpu, model, &weights, "fire3", unit, &[image.clone(), noise]).unwrap();
        assert!(
            r[0] > 3.0 * r[1] && r[0] > r[1] + 1.0,
            "unit {unit}: synthesised {} against noise {}",
            r[0],
            r[1]
        );
    }
}

#[test]
fn bad_input_is_named() {
    let gpu = gpu();
    let model = Model::parse("squeezenet").unwrap();
    let attempt = |change: &dyn Fn(&mut VisualizeConfig)| {
        let mut config = VisualizeConfig::new(model);
        config.images = vec![photo_folder("bad_in")];
        config.out = scratch("bad_out");
        config.layers = Some(vec!["conv1".into()]);
        change(&mut config);
        run::run(gpu, &config, &mut Silent).unwrap_err().to_string()
    };
    let err = attempt(&|c| c.layers = Some(vec!["fire99".into()]));
    assert!(err.contains("fire99") && err.contains("fire7"), "{err}");
    let err = attempt(&|c| c.units = Units::Ids(vec![2, 64]));
    assert!(err.contains("64") && err.contains("0 to 63"), "{err}");
    let empty = scratch("empty");
    let err = attempt(&|c| c.images = vec![empty.clone()]);
    assert!(err.contains("no images") && err.contains("empty"), "{err}");
    let broken = scratch("broken").join("truncated.png");
    std::fs::write(&broken, &wgnn_assets::PHOTOS[0].1[..200]).unwrap();
    let err = attempt(&|c| c.images = vec![broken.clone()]);
    assert!(err.contains("truncated.png"), "{err}");
    let file = scratch("file_out").join("not_a_folder");
    std::fs::write(&file, b"x").unwrap();
    let err = attempt(&|c| c.out = file.clone());
    assert!(
        err.contains("not_a_folder") && err.contains("not a folder"),
        "{err}"
    );
    assert!(Model::parse("resnet50")
        .unwrap_err()
        .to_string()
        .contains("face-resnet"));
}

#[test]
fn the_binary_explains_its_flags_and_fails_cleanly() {
    let help = Command::new(env!("CARGO_BIN_EXE_visualize"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for flag in [
        "--model",
        "--weights",
        "--images",
        "--layers",
        "--units",
        "--unit-ids",
        "--patches",
        "--out",
        "--json",
        "--batch",
        "--synthesize",
        "[default: features]",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    let out = scratch("binary_out");
    let run = Command::new(env!("CARGO_BIN_EXE_visualize"))
        .args(["--layers", "conv1,nope", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("nope") && stderr.contains("fire9"),
        "{stderr}"
    );
    assert!(
        std::fs::read_dir(&out).unwrap().next().is_none(),
        "nothing written"
    );

    let run = Command::new(env!("CARGO_BIN_EXE_visualize"))
        .args([
            "--layers",
            "conv1",
            "--units",
            "2",
            "--patches",
            "3",
            "--json",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["layers"][0]["units"].as_array().unwrap().len(), 2);
    assert!(out.join("conv1.png").exists());
}

#[test]
fn a_table_of_bad_arguments_is_refused_by_name() {
    let out = scratch("table_out");
    let file_out = scratch("table_file").join("taken");
    std::fs::write(&file_out, b"x").unwrap();
    let half = scratch("table_half").join("half.jpg");
    let jpeg = std::fs::read(Path::new(env!("WGNN_ASSETS")).join("scream.jpg")).unwrap();
    std::fs::write(&half, &jpeg[..jpeg.len() / 2]).unwrap();
    let (half, file_out) = (
        half.to_str().unwrap().to_string(),
        file_out.to_str().unwrap().to_string(),
    );
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["--units", "0"], 2, "--units"),
        (vec!["--units", "-2"], 2, "--units"),
        (vec!["--patches", "0"], 2, "--patches"),
        (vec!["--unit-ids", "1,,2"], 2, "--unit-ids"),
        (vec!["--layers", "conv1,,fire3"], 2, "--layers"),
        (vec!["--batch", "0"], 2, "--batch"),
        (vec!["--max-image-pixels", "0"], 2, "--max-image-pixels"),
        (vec!["--model", "resnet50"], 1, "face-resnet"),
        (vec!["--model", "vgg16"], 1, "--weights"),
        (vec!["--unit-ids", "64", "--layers", "conv1"], 1, "0 to 63"),
        (vec!["--images", &half], 1, "half.jpg"),
        (vec!["--images", "nowhere/"], 1, "nowhere"),
        (vec!["--max-image-pixels", "1000"], 1, "--max-image-pixels"),
    ];
    for (args, code, needle) in cases {
        let run = Command::new(env!("CARGO_BIN_EXE_visualize"))
            .args(&args)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: {stderr:?} does not name {needle}"
        );
        assert!(
            std::fs::read_dir(&out).unwrap().next().is_none(),
            "{args:?} wrote a grid"
        );
    }
    let run = Command::new(env!("CARGO_BIN_EXE_visualize"))
        .args(["--out", &file_out])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("not a folder"));
}
