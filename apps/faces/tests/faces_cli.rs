//! The `train_siamese` binary end to end: help texts, train (with its JSON log), eval,
//! train-verifier, enroll / verify / identify and their output formats, and bad inputs (a
//! message, a non-zero exit, nothing written).
mod faces_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use faces_support::{orl_subset, TempDir, ORL};

const BIN: &str = env!("CARGO_BIN_EXE_train_siamese");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(o.status.success(), "{args:?} failed: {}", stderr(&o));
    stdout(&o)
}

/// Fails, names `expected` on stderr.
fn fails(args: &[&str], expected: &str) {
    let o = run(args);
    assert!(!o.status.success(), "{args:?} should fail: {}", stdout(&o));
    assert!(
        stderr(&o).contains(expected),
        "{args:?}: expected `{expected}` in: {}",
        stderr(&o)
    );
}

/// The flags of a tiny, fast training (photos at ORL's native size, no augmented copies).
const TINY: &[&str] = &[
    "--input-size",
    "92x112",
    "--embedding-dim",
    "32",
    "--identities-per-batch",
    "3",
    "--images-per-identity",
    "3",
    "--augment",
    "none",
    "--quiet",
];

struct Fixture {
    dir: TempDir,
    data: PathBuf,
    model: PathBuf,
    log: PathBuf,
}

impl Fixture {
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A model trained by the binary on s1..s5 of s1..s8 (3 held out), once per test file.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = TempDir::new("cli");
        let data = orl_subset(&dir, "orl", 1, 8, 5);
        let model = dir.path().join("model.safetensors");
        let log = dir.path().join("log.jsonl");
        let mut args = vec![
            "train",
            "--data",
            s(&data),
            "--out",
            s(&model),
            "--holdout-identities",
            "3",
            "--epochs",
            "2",
            "--log-json",
            s(&log),
        ];
        args.extend_from_slice(TINY);
        ok(&args);
        Fixture {
            dir,
            data,
            model,
            log,
        }
    })
}

fn orl(identity: usize, image: usize) -> String {
    format!("{ORL}/s{identity}/{image}.pgm")
}

#[test]
fn help_explains_every_subcommand_and_flag_with_defaults() {
    let top = ok(&["--help"]);
    for sub in [
        "train",
        "eval",
        "train-verifier",
        "enroll",
        "verify",
        "identify",
    ] {
        assert!(top.contains(sub), "{sub} missing from --help:\n{top}");
    }
    let train = ok(&["train", "--help"]);
    for flag in [
        "--data",
        "--out",
        "--holdout-identities",
        "--epochs",
        "--identities-per-batch",
        "--images-per-identity",
        "--margin",
        "--mining",
        "--embedding-dim",
        "--optimizer",
        "--learning-rate",
        "--weight-decay",
        "--augment",
        "--seed",
        "--checkpoint-every",
        "--resume",
        "--log-json",
        "--input-size",
        "--no-mirror",
        "--profile",
    ] {
        assert!(
            train.contains(flag),
            "{flag} missing from train --help:\n{train}"
        );
    }
    for default in [
        "[default: 0.2]",
        "[default: batch-hard]",
        "[default: 128]",
        "[default: 184x224 for face-resnet, 28 for cnn]",
        "[default: adam]",
        "[default: 0]",
    ] {
        assert!(train.contains(default), "{default} missing:\n{train}");
    }
    assert!(train.contains("semi-hard") && train.contains("batch-all"));
    let eval = ok(&["eval", "--help"]);
    for flag in ["--model", "--data", "--json", "--roc", "--head"] {
        assert!(eval.contains(flag), "{flag} missing from eval --help");
    }
    assert!(ok(&["identify", "--help"]).contains("image,name,distance"));

    // Every flag of every subcommand says what it does and what it is unless set: a default,
    // `Required`, or, for a switch, `off by default`.
    for sub in [
        "train",
        "eval",
        "train-verifier",
        "enroll",
        "verify",
        "identify",
    ] {
        let help = ok(&[sub, "--help"]);
        for (flag, text) in flags_of(&help) {
            if flag == "--help" {
                continue;
            }
            assert!(!text.is_empty(), "{sub} {flag} is not explained:\n{help}");
            let said = ["[default:", "Required", "off by default"]
                .iter()
                .any(|default| text.contains(default));
            assert!(said, "{sub} {flag} does not say its default: {text}");
        }
    }
    // Only the face ResNet's settings: no trunk to choose, no SqueezeNet descriptor or views.
    for gone in ["--trunk", "--descriptor", "--zooms", "--align"] {
        assert!(!train.contains(gone), "{gone} in train --help:\n{train}");
    }
    assert!(!train.to_lowercase().contains("squeezenet"), "{train}");
}

/// Each `--flag` of a `--help` text with the text that follows it up to the next flag (its
/// value name first, then its explanation and default).
fn flags_of(help: &str) -> Vec<(String, String)> {
    let mut flags: Vec<(String, String)> = Vec::new();
    for line in help.lines() {
        let trimmed = line.trim_start();
        let flag_line = trimmed.starts_with("--") || trimmed.starts_with("-h, --");
        if flag_line {
            let at = trimmed.find("--").unwrap();
            let (flag, rest) = trimmed[at..]
                .split_once(char::is_whitespace)
                .unwrap_or((&trimmed[at..], ""));
            flags.push((flag.to_string(), rest.trim().to_string()));
        } else if let Some((_, text)) = flags.last_mut() {
            if !trimmed.is_empty() && line.starts_with("    ") {
                text.push(' ');
                text.push_str(trimmed);
            }
        }
    }
    flags
}

#[test]
fn train_writes_a_model_and_one_json_line_per_epoch() {
    let f = fixture();
    let metadata = wgnn::nn::read_safetensors_metadata(&f.model).unwrap();
    assert_eq!(metadata["format"], "wgnn-siamese-v1");
    let log = std::fs::read_to_string(&f.log).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{log}");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["epoch"], i + 1);
        for key in ["loss", "active_triplets", "pos_dist", "neg_dist", "ms"] {
            assert!(line[key].is_number(), "{key} in {line}");
        }
    }
}

#[test]
fn eval_prints_json_and_draws_the_roc_curve() {
    let f = fixture();
    let held_out = orl_subset(&f.dir, "eval-held-out", 6, 3, 5);
    let roc = f.path("roc.png");
    let out = ok(&[
        "eval",
        "--model",
        s(&f.model),
        "--data",
        s(&held_out),
        "--json",
        "--roc",
        &roc,
        "--quiet",
    ]);
    let value: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(value["identities"], 3);
    assert_eq!(value["images"], 15);
    assert!(value["one_shot_accuracy"].as_f64().unwrap() > 0.5);
    assert!(value["val_at_far_1e-3"].is_number() && value["threshold"].is_number());
    let png = image::open(&roc).unwrap();
    assert_eq!((png.width(), png.height()), (640, 480));
    let text = ok(&[
        "eval",
        "--model",
        s(&f.model),
        "--data",
        s(&held_out),
        "--quiet",
    ]);
    assert!(
        text.contains("one-shot accuracy") && text.contains("EER"),
        "{text}"
    );

    fails(
        &[
            "eval",
            "--model",
            s(&f.model),
            "--data",
            s(&held_out),
            "--head",
            "logistic",
        ],
        "train-verifier",
    );
    let with_verifier = f.path("with-verifier.safetensors");
    ok(&[
        "train-verifier",
        "--model",
        s(&f.model),
        "--data",
        s(&f.data),
        "--out",
        &with_verifier,
        "--quiet",
    ]);
    let out = ok(&[
        "eval",
        "--model",
        &with_verifier,
        "--data",
        s(&held_out),
        "--head",
        "logistic",
        "--json",
        "--quiet",
    ]);
    let value: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(value["head"], "logistic");
    assert!(value["verification_accuracy"].as_f64().unwrap() > 0.5);
}

#[test]
fn enroll_verify_identify_through_the_binary() {
    let f = fixture();
    let gallery = f.path("people.json");
    let model = s(&f.model);
    let out = ok(&[
        "enroll",
        "--model",
        model,
        "--gallery",
        &gallery,
        "--name",
        "six",
        &orl(6, 1),
        &orl(6, 2),
    ]);
    assert!(out.contains("enrolled six (2 images)"), "{out}");
    ok(&[
        "enroll",
        "--model",
        model,
        "--gallery",
        &gallery,
        "--name",
        "seven",
        &orl(7, 1),
    ]);

    let out = ok(&[
        "verify",
        "--model",
        model,
        "--gallery",
        &gallery,
        "--name",
        "seven",
        &orl(7, 1),
    ]);
    assert!(out.starts_with("match distance="), "{out}");
    assert!(out.contains("threshold="), "{out}");

    let out = ok(&[
        "identify",
        "--model",
        model,
        "--gallery",
        &gallery,
        &orl(7, 1),
        &orl(6, 1),
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "image,name,distance");
    assert!(
        lines[1].starts_with(&format!("{},seven,", orl(7, 1))),
        "{out}"
    );
    assert!(lines[2].starts_with(&format!("{},", orl(6, 1))), "{out}");
    assert_eq!(lines.len(), 3);

    let out = ok(&[
        "identify",
        "--model",
        model,
        "--gallery",
        &gallery,
        "--json",
        &orl(7, 1),
        &orl(6, 3),
    ]);
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["image"], orl(7, 1));
    assert_eq!(rows[0]["name"], "seven");
    assert!(rows[0]["distance"].as_f64().unwrap() < 1e-4);
    assert!(rows[1]["name"].is_string() && rows[1]["distance"].is_number());
    assert!(
        rows[0].get("nearest").is_none(),
        "no list unless --top asks"
    );

    // --top K lists the nearest with their distances, the first even beyond a zero threshold
    // (which makes everyone but an exact match unknown).
    let out = ok(&[
        "identify",
        "--model",
        model,
        "--gallery",
        &gallery,
        "--json",
        "--top",
        "5",
        "--threshold",
        "0",
        &orl(6, 3),
    ]);
    let row: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(row["name"], "unknown");
    let nearest = row["nearest"].as_array().unwrap();
    assert!(!nearest.is_empty() && nearest.len() <= 5, "{row}");
    assert_eq!(nearest[0]["distance"], row["distance"]);
    let distances: Vec<f64> = nearest
        .iter()
        .map(|n| n["distance"].as_f64().unwrap())
        .collect();
    assert!(distances.windows(2).all(|w| w[0] <= w[1]), "{row}");
    let csv = ok(&[
        "identify",
        "--model",
        model,
        "--gallery",
        &gallery,
        "--top",
        "2",
        &orl(7, 1),
    ]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "image,name,distance,nearest");
    assert!(
        lines[1].contains(",seven,") && lines[1].contains("seven:"),
        "{csv}"
    );
    let strict = ok(&[
        "verify",
        "--model",
        model,
        "--gallery",
        &gallery,
        "--name",
        "seven",
        "--threshold",
        "0",
        &orl(7, 2),
    ]);
    assert!(
        strict.starts_with("no match") && strict.contains("threshold=0.000000"),
        "{strict}"
    );

    fails(
        &[
            "verify",
            "--model",
            model,
            "--gallery",
            &gallery,
            "--name",
            "eight",
            &orl(8, 1),
        ],
        "`eight` is not enrolled",
    );
}

#[test]
fn bad_inputs_fail_with_a_message_and_write_nothing() {
    let f = fixture();
    let model = s(&f.model);

    // Training on an empty folder, on one-photo people, or diverging: no model written.
    let empty = f.dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = f.path("never.safetensors");
    let mut args = vec!["train", "--data", s(&empty), "--out", &out, "--epochs", "1"];
    args.extend_from_slice(TINY);
    fails(&args, "no identities");
    let singles = orl_subset(&f.dir, "singles", 1, 4, 1);
    let mut args = vec![
        "train",
        "--data",
        s(&singles),
        "--out",
        &out,
        "--epochs",
        "1",
    ];
    args.extend_from_slice(TINY);
    fails(&args, "only one image");
    let mut args = vec![
        "train",
        "--data",
        s(&f.data),
        "--out",
        &out,
        "--epochs",
        "3",
        "--init",
        "random",
        "--learning-rate",
        "1e38",
    ];
    args.extend_from_slice(TINY);
    fails(&args, "NaN");
    assert!(!Path::new(&out).exists());

    // A model file that is not a wgnn model.
    let not_model = f.dir.write(
        "weights.safetensors",
        b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ",
    );
    let gallery = f.path("bad.json");
    fails(
        &[
            "enroll",
            "--model",
            s(&not_model),
            "--gallery",
            &gallery,
            "--name",
            "a",
            &orl(1, 1),
        ],
        "not a wgnn face model",
    );

    // A corrupt image is named; the gallery is not created.
    let corrupt = f.dir.write("corrupt.jpg", b"\xff\xd8\xff\xe0 truncated");
    fails(
        &[
            "enroll",
            "--model",
            model,
            "--gallery",
            &gallery,
            "--name",
            "a",
            s(&corrupt),
        ],
        "corrupt.jpg",
    );
    assert!(!Path::new(&gallery).exists());

    // A gallery of another model's embeddings.
    ok(&[
        "enroll",
        "--model",
        model,
        "--gallery",
        &gallery,
        "--name",
        "a",
        &orl(1, 1),
    ]);
    let text = std::fs::read_to_string(&gallery).unwrap();
    let fingerprint = serde_json::from_str::<serde_json::Value>(&text).unwrap()
        ["model_fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let other = f.path("other.json");
    std::fs::write(&other, text.replace(&fingerprint, "ffffffffffffffff")).unwrap();
    fails(
        &[
            "identify",
            "--model",
            model,
            "--gallery",
            &other,
            &orl(1, 2),
        ],
        "another model",
    );
    fails(
        &[
            "verify",
            "--model",
            model,
            "--gallery",
            &other,
            "--name",
            "a",
            &orl(1, 2),
        ],
        "another model",
    );
}

#[test]
fn the_network_is_the_face_resnet_and_takes_no_squeezenet_flags() {
    let dir = TempDir::new("cli-face-resnet");
    let data = orl_subset(&dir, "orl", 1, 4, 5);
    let out = dir.path().join("model.safetensors");
    let base = [
        "train",
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--epochs",
        "1",
        "--identities-per-batch",
        "3",
        "--images-per-identity",
        "3",
        "--augment",
        "none",
        "--quiet",
    ];
    ok(&base);
    let metadata = wgnn::nn::read_safetensors_metadata(&out).unwrap();
    let network: serde_json::Value = serde_json::from_str(&metadata["network"]).unwrap();
    assert_eq!(network["trunk"]["architecture"], "dlib_face_resnet_v1");
    assert_eq!(metadata["embedding_dim"], "128");
    let eval = ok(&[
        "eval",
        "--model",
        s(&out),
        "--data",
        s(&data),
        "--json",
        "--quiet",
    ]);
    let line: serde_json::Value = serde_json::from_str(eval.trim()).unwrap();
    assert!(line["one_shot_accuracy"].as_f64().unwrap() > 0.9, "{line}");

    // The SqueezeNet trunk's settings are no flags of train, and nothing is written.
    std::fs::remove_file(&out).unwrap();
    for (extra, message) in [
        (
            &["--descriptor", "fire5:4x3"][..],
            "unexpected argument '--descriptor'",
        ),
        (&["--zooms", "1,1.08"][..], "unexpected argument '--zooms'"),
        (&["--align"][..], "unexpected argument '--align'"),
        (
            &["--trunk", "squeezenet"][..],
            "unexpected argument '--trunk'",
        ),
    ] {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        fails(&args, message);
    }
    assert!(!out.exists());
}

#[test]
fn a_table_of_bad_arguments_is_refused_by_name_before_any_work() {
    let f = fixture();
    let model = s(&f.model);
    let data = s(&f.data);
    let folder = f.dir.path().display().to_string();
    let out = f.path("table.safetensors");
    let missing_dir = f.path("no/such/dir/m.safetensors");
    let half_jpeg = {
        let jpeg = std::fs::read(Path::new(env!("WGNN_ASSETS")).join("scream.jpg")).unwrap();
        f.dir.write("half.jpg", &jpeg[..jpeg.len() / 2])
    };
    let gallery = f.path("table_gallery.json");
    let photo = orl(1, 1);
    // (arguments, exit code: 2 from clap, 1 from the checks before the GPU, what to name)
    let cnn = |extra: &[&'static str]| -> Vec<&str> {
        let mut args = vec!["train", "--model", "cnn", "--data", data, "--out", &out];
        args.extend_from_slice(extra);
        args
    };
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["train", "--data", data, "--out", &out, "--epochs", "-1"],
            2,
            "--epochs",
        ),
        (cnn(&["--distort", "spin=3"]), 1, "--distort"),
        (cnn(&["--distort", "rotation=400"]), 1, "--distort"),
        (cnn(&["--ways", "0"]), 2, "--ways"),
        (cnn(&["--eval-every", "0"]), 2, "--eval-every"),
        (cnn(&["--lr-schedule", "wavy"]), 2, "--lr-schedule"),
        (
            vec!["eval", "--model", model, "--data", data, "--ways", "1x"],
            2,
            "--ways",
        ),
        (
            vec![
                "train",
                "--data",
                data,
                "--out",
                &out,
                "--identities-per-batch",
                "0",
            ],
            2,
            "--identities-per-batch",
        ),
        (
            vec![
                "train",
                "--data",
                data,
                "--out",
                &out,
                "--identities-per-batch",
                "1",
            ],
            1,
            "--identities-per-batch",
        ),
        (
            vec!["train", "--data", data, "--out", &out, "--margin", "-0.2"],
            2,
            "--margin",
        ),
        (
            vec![
                "train",
                "--data",
                data,
                "--out",
                &out,
                "--learning-rate",
                "nan",
            ],
            2,
            "--learning-rate",
        ),
        (
            vec![
                "train",
                "--data",
                data,
                "--out",
                &out,
                "--input-size",
                "92by112",
            ],
            1,
            "--input-size",
        ),
        (
            vec!["train", "--data", data, "--out", &folder],
            1,
            "is a folder",
        ),
        (
            vec!["train", "--data", data, "--out", &missing_dir],
            1,
            "does not exist",
        ),
        (
            vec![
                "train",
                "--data",
                data,
                "--out",
                &out,
                "--checkpoint",
                &folder,
            ],
            1,
            "is a folder",
        ),
        (
            vec![
                "train",
                "--data",
                data,
                "--out",
                &out,
                "--resume",
                "no-such.safetensors",
            ],
            1,
            "no-such.safetensors",
        ),
        (
            vec![
                "train",
                "--data",
                data,
                "--out",
                &out,
                "--log-json",
                &folder,
            ],
            1,
            "is a folder",
        ),
        (
            vec!["train", "--data", "no-such-folder", "--out", &out],
            1,
            "no-such-folder",
        ),
        (
            vec!["train", "--data", model, "--out", &out],
            1,
            "is a file",
        ),
        (
            vec!["eval", "--model", model, "--data", data, "--roc", "roc.xyz"],
            1,
            "roc.xyz",
        ),
        (
            vec!["eval", "--model", "no-model.safetensors", "--data", data],
            1,
            "no-model.safetensors",
        ),
        (
            vec![
                "enroll",
                "--model",
                model,
                "--gallery",
                &gallery,
                "--name",
                "a",
                s(&half_jpeg),
            ],
            1,
            "half.jpg",
        ),
        (
            vec![
                "enroll",
                "--model",
                model,
                "--gallery",
                &folder,
                "--name",
                "a",
                &photo,
            ],
            1,
            "is a folder",
        ),
        (
            vec![
                "enroll",
                "--model",
                model,
                "--gallery",
                &gallery,
                "--name",
                "a",
                "gone.png",
            ],
            1,
            "gone.png",
        ),
        (
            vec![
                "verify",
                "--model",
                model,
                "--gallery",
                "none.json",
                "--name",
                "a",
                &photo,
            ],
            1,
            "none.json",
        ),
        (
            vec![
                "identify",
                "--model",
                model,
                "--gallery",
                "none.json",
                &photo,
            ],
            1,
            "none.json",
        ),
        (
            vec![
                "identify",
                "--model",
                model,
                "--gallery",
                &gallery,
                &photo,
                "",
            ],
            2,
            "empty path",
        ),
        (
            vec![
                "--max-image-pixels",
                "0",
                "identify",
                "--model",
                model,
                "--gallery",
                &gallery,
                &photo,
            ],
            2,
            "--max-image-pixels",
        ),
    ];
    for (args, code, needle) in cases {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(needle),
            "{args:?}: {:?} does not name {needle}",
            stderr(&o)
        );
        assert!(
            !Path::new(&out).exists() && !Path::new(&gallery).exists(),
            "{args:?} wrote"
        );
    }
}

#[test]
fn a_convolutional_model_trains_from_random_weights_and_serves_every_command() {
    let f = fixture();
    let data = s(&f.data);
    let model = f.path("cnn.safetensors");
    let log = f.path("cnn_log.jsonl");
    let args = [
        "train",
        "--model",
        "cnn",
        "--data",
        data,
        "--out",
        &model,
        "--holdout-identities",
        "3",
        "--steps",
        "6",
        "--input-size",
        "16",
        "--width",
        "4",
        "--depth",
        "2",
        "--embedding-dim",
        "8",
        "--identities-per-batch",
        "3",
        "--images-per-identity",
        "3",
        "--quiet",
        "--validation-identities",
        "2",
        "--eval-every",
        "3",
        "--checkpoint-every",
        "3",
        "--log-json",
        &log,
    ];
    ok(&args);
    // One JSON line per step, the validation accuracy on evaluation steps.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["step"], i as u64 + 1);
        assert!(line["loss"].as_f64().unwrap() >= 0.0, "{line}");
        assert!(line["learning_rate"].as_f64().unwrap() > 0.0, "{line}");
        let active = line["active_triplets"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&active), "{line}");
        assert_eq!(
            line.get("validation_one_shot").is_some(),
            (i + 1) % 3 == 0,
            "{line}"
        );
    }
    let checkpoint = f.path("cnn.checkpoint.safetensors");
    assert_eq!(
        wgnn::nn::read_safetensors_metadata(&checkpoint).unwrap()["step"],
        "6"
    );
    let metadata = wgnn::nn::read_safetensors_metadata(&model).unwrap();
    let network: serde_json::Value = serde_json::from_str(&metadata["network"]).unwrap();
    assert_eq!(network["architecture"], "cnn");
    assert_eq!(network["input"], 16);
    assert_eq!(metadata["trunk_fingerprint"], "none");
    let eval = ok(&[
        "eval", "--model", &model, "--data", data, "--json", "--quiet",
    ]);
    let eval: serde_json::Value = serde_json::from_str(eval.trim()).unwrap();
    assert!(eval["one_shot_accuracy"].as_f64().unwrap() > 0.0, "{eval}");
    let within = ok(&[
        "eval", "--model", &model, "--data", data, "--json", "--quiet", "--ways", "2",
    ]);
    let within: serde_json::Value = serde_json::from_str(within.trim()).unwrap();
    assert_eq!(within["ways"], 2);
    let identities = within["identities"].as_u64().unwrap();
    assert_eq!(within["episodes"].as_u64().unwrap(), identities / 2);
    let accuracy = within["one_shot_within_groups"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy), "{within}");
    let gallery = f.path("cnn_gallery.json");
    ok(&[
        "enroll",
        "--model",
        &model,
        "--gallery",
        &gallery,
        "--name",
        "one",
        &orl(1, 1),
    ]);
    let found = ok(&[
        "identify",
        "--model",
        &model,
        "--gallery",
        &gallery,
        "--json",
        &orl(1, 1),
    ]);
    let row: serde_json::Value = serde_json::from_str(found.trim()).unwrap();
    assert_eq!(
        row["name"], "one",
        "the enrolled photo itself is its person: {row}"
    );
    // Bad sizes are named before any work.
    let mut bad = args.to_vec();
    bad[12] = "8";
    bad[16] = "4";
    fails(&bad, "--input-size 8");
}
