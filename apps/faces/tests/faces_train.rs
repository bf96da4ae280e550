//! Training the Siamese head: a tiny run on a few ORL identities beats raw pixels on held-out
//! ones, the same seed gives the same model file, resuming equals not stopping, and failures
//! (NaN loss, collapse, bad resumes, unusable data) are clear errors.
use wgnn_reference::testing as common;
mod faces_support;

use common::gpu;
use faces_support::{orl_subset, raw_pixel_metrics, tiny_config, TempDir};
use wgnn::{Error, Result};
use wgnn_faces::commands::{self, Progress, Quiet, TrainRequest, VerificationHead};
use wgnn_faces::train::{EpochStats, HeadInit, TrainConfig};

fn request(data: &std::path::Path, holdout: usize, config: TrainConfig) -> TrainRequest {
    TrainRequest {
        data: data.to_path_buf(),
        holdout_identities: holdout,
        config,
        checkpoint_every: 0,
        checkpoint: None,
        resume: None,
        profile: false,
    }
}

#[test]
fn a_tiny_training_beats_raw_pixels_on_held_out_identities() {
    let gpu = gpu();
    let dir = TempDir::new("train-beats-pixels");
    // s1..s10: train on s1..s6, hold out s7..s10 (never seen in training).
    let all = orl_subset(&dir, "all", 1, 10, 10);
    let held_out = orl_subset(&dir, "held_out", 7, 4, 10);
    // 64 dimensions from 60 training images: the whitening keeps 59 principal directions and
    // leaves the last rows of the projection zero.
    let mut config = tiny_config(3);
    config.network.head.embedding_dim = 64;
    let trained = commands::train(gpu, &request(&all, 4, config), &mut Quiet).unwrap();
    assert_eq!(trained.epochs.len(), 3);
    assert_eq!(
        trained.model.training["identities"],
        serde_json::json!(["s1", "s2", "s3", "s4", "s5", "s6"])
    );
    assert!(trained.model.threshold > 0.0 && trained.model.threshold < 4.0);
    let ours = commands::evaluate(
        gpu,
        &trained.model,
        &held_out,
        VerificationHead::Distance,
        &mut Quiet,
    )
    .unwrap()
    .metrics;
    let pixels = raw_pixel_metrics(&held_out);
    eprintln!(
        "held out s7-s10: model one-shot {:.3} EER {:.3}; raw pixels one-shot {:.3} EER {:.3}",
        ours.one_shot_accuracy, ours.eer, pixels.one_shot_accuracy, pixels.eer
    );
    assert_eq!(ours.identities, 4);
    assert!(ours.one_shot_accuracy > pixels.one_shot_accuracy);
    assert!(ours.eer < pixels.eer);
    assert!(ours.one_shot_accuracy >= 0.95, "{ours:?}");
}

fn model_bytes(dir: &TempDir, name: &str, trained: &commands::Trained) -> Vec<u8> {
    let path = dir.path().join(name);
    trained.model.save(gpu(), &path).unwrap();
    std::fs::read(path).unwrap()
}

/// Randomly initialised so that every epoch changes the weights (and the seed matters).
fn random_init(epochs: usize, seed: u64) -> TrainConfig {
    TrainConfig {
        init: HeadInit::Random,
        seed,
        ..tiny_config(epochs)
    }
}

#[test]
fn the_same_seed_gives_the_same_model_file_bit_for_bit() {
    let gpu = gpu();
    let dir = TempDir::new("train-determinism");
    let data = orl_subset(&dir, "data", 11, 4, 4);
    let run = |config: TrainConfig| commands::train(gpu, &request(&data, 0, config), &mut Quiet);
    let a = model_bytes(&dir, "a.safetensors", &run(random_init(2, 7)).unwrap());
    let b = model_bytes(&dir, "b.safetensors", &run(random_init(2, 7)).unwrap());
    assert!(a == b, "same seed, different model files");
    let c = model_bytes(&dir, "c.safetensors", &run(random_init(2, 8)).unwrap());
    assert!(a != c, "another seed should give another model");
    let w1 = model_bytes(&dir, "w1.safetensors", &run(tiny_config(2)).unwrap());
    let w2 = model_bytes(&dir, "w2.safetensors", &run(tiny_config(2)).unwrap());
    assert!(w1 == w2, "whitening init: same seed, different model files");

    // --profile times a trunk batch and a head step after training; the model stays as it was.
    let mut profiled = request(&data, 0, random_init(2, 7));
    profiled.profile = true;
    let profiled = commands::train(gpu, &profiled, &mut Quiet).unwrap();
    let what: Vec<&str> = profiled.profiles.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(what.len(), 2, "{what:?}");
    assert!(
        what[0].contains("trunk") && what[1].contains("training step"),
        "{what:?}"
    );
    let trunk = &profiled.profiles[0].1;
    assert!(trunk
        .rows
        .iter()
        .any(|r| r.kernel.contains("conv") && r.flops > 0.0));
    let d = model_bytes(&dir, "d.safetensors", &profiled);
    assert!(a == d, "profiling changed the model");
}

/// Stops training (as an interruption would) once `stop_after` epochs are done.
struct Interrupt {
    stop_after: usize,
}

impl Progress for Interrupt {
    fn epoch(&mut self, stats: &EpochStats) -> Result<()> {
        if stats.epoch >= self.stop_after {
            return Err(Error::Invalid("interrupted".into()));
        }
        Ok(())
    }
}

#[test]
fn resuming_from_a_checkpoint_equals_an_uninterrupted_run() {
    let gpu = gpu();
    let dir = TempDir::new("train-resume");
    let data = orl_subset(&dir, "data", 15, 4, 4);
    let checkpoint = dir.path().join("run.checkpoint.safetensors");
    let mut interrupted = request(&data, 0, random_init(4, 3));
    interrupted.checkpoint_every = 2;
    interrupted.checkpoint = Some(checkpoint.clone());

    // Killed during epoch 3: the checkpoint of epoch 2 survives.
    let error = commands::train(gpu, &interrupted, &mut Interrupt { stop_after: 3 })
        .err()
        .expect("the interruption stops training");
    assert!(error.to_string().contains("interrupted"));
    let metadata = wgnn::nn::read_safetensors_metadata(&checkpoint).unwrap();
    assert_eq!(metadata["epoch"], "2");
    assert!(metadata.contains_key("step"));

    let mut resumed = interrupted.clone();
    resumed.resume = Some(checkpoint.clone());
    let resumed = commands::train(gpu, &resumed, &mut Quiet).unwrap();
    assert_eq!(
        resumed.epochs.iter().map(|s| s.epoch).collect::<Vec<_>>(),
        vec![3, 4]
    );
    let uninterrupted =
        commands::train(gpu, &request(&data, 0, random_init(4, 3)), &mut Quiet).unwrap();
    assert!(
        model_bytes(&dir, "resumed.safetensors", &resumed)
            == model_bytes(&dir, "straight.safetensors", &uninterrupted),
        "resumed training differs from uninterrupted training"
    );

    // Other settings, other data, or a file that is no checkpoint: refused.
    let mut other = interrupted.clone();
    other.config.margin = 0.3;
    other.resume = Some(checkpoint.clone());
    let message = commands::train(gpu, &other, &mut Quiet)
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("other settings"), "{message}");
    let other_data = orl_subset(&dir, "other", 20, 4, 4);
    let mut moved = interrupted.clone();
    moved.data = other_data;
    moved.resume = Some(checkpoint.clone());
    let message = commands::train(gpu, &moved, &mut Quiet)
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("other images"), "{message}");
    let model = dir.path().join("straight.safetensors");
    let mut not_checkpoint = interrupted.clone();
    not_checkpoint.resume = Some(model);
    let message = commands::train(gpu, &not_checkpoint, &mut Quiet)
        .err()
        .unwrap()
        .to_string();
    assert!(
        message.contains("not a wgnn training checkpoint"),
        "{message}"
    );
}

#[test]
fn a_nan_loss_stops_training_with_advice() {
    let gpu = gpu();
    let dir = TempDir::new("train-nan");
    let data = orl_subset(&dir, "data", 25, 4, 4);
    let config = TrainConfig {
        learning_rate: 1e38,
        ..random_init(5, 1)
    };
    let message = commands::train(gpu, &request(&data, 0, config), &mut Quiet)
        .err()
        .expect("a learning rate of 1e38 diverges")
        .to_string();
    assert!(
        message.contains("NaN") && message.contains("--learning-rate"),
        "{message}"
    );
}

#[test]
fn collapse_is_detected_from_the_epoch_statistics() {
    let collapsed = EpochStats {
        epoch: 4,
        loss: 0.2,
        active_triplets: 1.0,
        pos_dist: 1e-6,
        neg_dist: 1e-6,
        spread: 1e-5,
        ms: 10.0,
    };
    assert!(collapsed.collapsed(0.2));
    let healthy = EpochStats {
        loss: 0.05,
        spread: 1.2,
        pos_dist: 0.3,
        neg_dist: 1.1,
        ..collapsed
    };
    assert!(!healthy.collapsed(0.2));
    let advice = wgnn_faces::train::collapse_advice(&collapsed, &TrainConfig::default());
    assert!(advice.contains("collapsed") && advice.contains("--learning-rate"));
}

#[test]
fn the_epoch_log_line_has_the_documented_keys() {
    let stats = EpochStats {
        epoch: 3,
        loss: 0.125,
        active_triplets: 0.5,
        pos_dist: 0.25,
        neg_dist: 1.5,
        spread: 1.0,
        ms: 12.34,
    };
    let line = stats.to_json_line();
    let value: serde_json::Value = serde_json::from_str(&line).unwrap();
    let keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 6, "{line}");
    for key in [
        "epoch",
        "loss",
        "active_triplets",
        "pos_dist",
        "neg_dist",
        "ms",
    ] {
        assert!(value.get(key).is_some(), "{key} missing from {line}");
    }
    assert!(
        line.starts_with("{\"epoch\": 3, \"loss\": 0.125,"),
        "{line}"
    );
}

#[test]
fn unusable_training_data_is_refused_before_any_work() {
    let gpu = gpu();
    let dir = TempDir::new("train-bad-data");
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let message = commands::train(gpu, &request(&empty, 0, tiny_config(1)), &mut Quiet)
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("no identities"), "{message}");

    // Three people with one photo each: usable in a gallery, but no positives to train on.
    let singles = orl_subset(&dir, "singles", 1, 3, 1);
    struct Notes(Vec<String>);
    impl Progress for Notes {
        fn note(&mut self, message: &str) {
            self.0.push(message.to_string());
        }
    }
    let mut notes = Notes(Vec::new());
    let message = commands::train(gpu, &request(&singles, 0, tiny_config(1)), &mut notes)
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("two or more images"), "{message}");
    assert!(
        notes.0.iter().any(|n| n.contains("only one image")),
        "{:?}",
        notes.0
    );

    // A corrupt image is named.
    let data = orl_subset(&dir, "corrupt", 1, 3, 3);
    let bad = data.join("s2/2.pgm");
    std::fs::write(&bad, b"P5\n92 112\n255\nshort").unwrap();
    let message = commands::train(gpu, &request(&data, 0, tiny_config(1)), &mut Quiet)
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("s2/2.pgm"), "{message}");

    let message = commands::train(gpu, &request(&data, 3, tiny_config(1)), &mut Quiet)
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("leaves none"), "{message}");
}
