//! Training `--model cnn` as a user leaves it running: the same seed gives the same model file,
//! a run interrupted after a checkpoint and resumed equals the uninterrupted run bit for bit, a
//! diverging run stops and names its last good checkpoint, validation keeps the best weights
//! and stops when they no longer improve, and the N-way within-group metric is what it says.
use wgnn_reference::testing as common;
mod faces_support;

use common::gpu;
use faces_support::{orl_subset, TempDir};
use wgnn::{Error, Result};
use wgnn_faces::cnn::CnnSpec;
use wgnn_faces::cnn_train::{CnnTrainConfig, LrSchedule, StepStats};
use wgnn_faces::commands::{self, CnnTrainRequest, Progress, Quiet, TrainedCnn};
use wgnn_faces::metrics::{episodic_one_shot, one_shot_accuracy};

fn tiny(steps: usize, seed: u64) -> CnnTrainConfig {
    CnnTrainConfig {
        spec: CnnSpec {
            input: 16,
            channels: 1,
            width: 4,
            depth: 2,
            embedding_dim: 8,
        },
        identities_per_batch: 3,
        images_per_identity: 3,
        learning_rate: 3e-3,
        schedule: LrSchedule::Cosine,
        steps,
        seed,
        ..CnnTrainConfig::default()
    }
}

fn request(data: &std::path::Path, config: CnnTrainConfig) -> CnnTrainRequest {
    CnnTrainRequest {
        data: data.to_path_buf(),
        holdout_identities: 0,
        validation_identities: 0,
        ways: 20,
        eval_every: 1,
        patience: 0,
        rotated_classes: false,
        config,
        checkpoint_every: 0,
        checkpoint: None,
        resume: None,
        profile: false,
    }
}

fn model_bytes(dir: &TempDir, name: &str, trained: &TrainedCnn) -> Vec<u8> {
    let path = dir.path().join(name);
    trained.model.save(gpu(), &path).unwrap();
    std::fs::read(path).unwrap()
}

#[test]
fn the_same_seed_gives_the_same_model_file_bit_for_bit() {
    let gpu = gpu();
    let dir = TempDir::new("cnn-determinism");
    let data = orl_subset(&dir, "data", 11, 4, 4);
    let run = |config| commands::train_cnn(gpu, &request(&data, config), &mut Quiet).unwrap();
    let a = model_bytes(&dir, "a.safetensors", &run(tiny(4, 7)));
    let b = model_bytes(&dir, "b.safetensors", &run(tiny(4, 7)));
    assert!(a == b, "same seed, different model files");
    let c = model_bytes(&dir, "c.safetensors", &run(tiny(4, 8)));
    assert!(a != c, "another seed should give another model");

    // --profile times a training step after training and leaves the model as it was.
    let mut profiled = request(&data, tiny(4, 7));
    profiled.profile = true;
    let profiled = commands::train_cnn(gpu, &profiled, &mut Quiet).unwrap();
    assert_eq!(profiled.profiles.len(), 1);
    let (what, profile) = &profiled.profiles[0];
    assert!(what.contains("9 images"), "{what}");
    let kernels: Vec<&str> = profile.rows.iter().map(|r| r.kernel.as_str()).collect();
    for wanted in ["conv", "batch_norm", "pool::max", "optim::adam"] {
        assert!(
            kernels.iter().any(|k| k.contains(wanted)),
            "no {wanted} kernel among {kernels:?}"
        );
    }
    let d = model_bytes(&dir, "d.safetensors", &profiled);
    assert!(a == d, "profiling changed the model");
}

/// Stops training (as an interruption would) once `stop_after` steps are done.
struct Interrupt {
    stop_after: u64,
}

impl Progress for Interrupt {
    fn training_step(&mut self, stats: &StepStats, _validation: Option<f64>) -> Result<()> {
        if stats.step >= self.stop_after {
            return Err(Error::Invalid("interrupted".into()));
        }
        Ok(())
    }
}

#[test]
fn resuming_from_a_checkpoint_equals_an_uninterrupted_run() {
    let gpu = gpu();
    let dir = TempDir::new("cnn-resume");
    let data = orl_subset(&dir, "data", 15, 5, 4);
    let checkpoint = dir.path().join("run.checkpoint.safetensors");
    let mut interrupted = request(&data, tiny(9, 3));
    interrupted.validation_identities = 2;
    interrupted.eval_every = 2;
    interrupted.checkpoint_every = 4;
    interrupted.checkpoint = Some(checkpoint.clone());

    // Killed during step 6: the checkpoint of step 4 survives.
    let error = commands::train_cnn(gpu, &interrupted, &mut Interrupt { stop_after: 6 })
        .err()
        .expect("the interruption stops training");
    assert!(error.to_string().contains("interrupted"), "{error}");
    assert!(
        !error.to_string().contains("learning-rate"),
        "only a divergence gets the advice to lower the learning rate: {error}"
    );
    let metadata = wgnn::nn::read_safetensors_metadata(&checkpoint).unwrap();
    assert_eq!(metadata["step"], "4");

    let mut resumed = interrupted.clone();
    resumed.resume = Some(checkpoint.clone());
    let resumed = commands::train_cnn(gpu, &resumed, &mut Quiet).unwrap();
    assert_eq!(
        resumed.steps.iter().map(|s| s.step).collect::<Vec<_>>(),
        (5..=9).collect::<Vec<_>>()
    );
    let straight = commands::train_cnn(gpu, &interrupted, &mut Quiet).unwrap();
    assert_eq!(straight.steps.len(), 9);
    assert_eq!(
        resumed.best, straight.best,
        "the best evaluation carries over"
    );
    assert!(
        model_bytes(&dir, "resumed.safetensors", &resumed)
            == model_bytes(&dir, "straight.safetensors", &straight),
        "resumed training differs from uninterrupted training"
    );

    // Other settings, other data, a finished run or a file that is no checkpoint: refused.
    let mut other = interrupted.clone();
    other.resume = Some(checkpoint.clone());
    other.config.margin = 0.3;
    let e = commands::train_cnn(gpu, &other, &mut Quiet).err().unwrap();
    assert!(e.to_string().contains("other settings"), "{e}");
    let mut other = interrupted.clone();
    other.resume = Some(checkpoint.clone());
    other.data = orl_subset(&dir, "other", 21, 5, 4);
    let e = commands::train_cnn(gpu, &other, &mut Quiet).err().unwrap();
    assert!(e.to_string().contains("other images"), "{e}");
    let mut other = interrupted.clone();
    other.resume = Some(checkpoint.clone());
    other.config.steps = 4;
    let e = commands::train_cnn(gpu, &other, &mut Quiet).err().unwrap();
    assert!(e.to_string().contains("nothing is left"), "{e}");
    let model = dir.path().join("straight.safetensors");
    let mut other = interrupted.clone();
    other.resume = Some(model);
    let e = commands::train_cnn(gpu, &other, &mut Quiet).err().unwrap();
    assert!(e.to_string().contains("not a checkpoint"), "{e}");
}

#[test]
fn a_diverging_run_stops_and_names_its_last_good_checkpoint() {
    let gpu = gpu();
    let dir = TempDir::new("cnn-diverge");
    let data = orl_subset(&dir, "data", 2, 4, 4);
    let checkpoint = dir.path().join("run.checkpoint.safetensors");
    let mut config = tiny(30, 1);
    config.learning_rate = 1e36;
    config.schedule = LrSchedule::Constant;
    let mut run = request(&data, config);
    run.checkpoint_every = 1;
    run.checkpoint = Some(checkpoint.clone());
    let e = commands::train_cnn(gpu, &run, &mut Quiet)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("diverged"), "{e}");
    assert!(e.contains("no model was written"), "{e}");
    assert!(e.contains("last good checkpoint"), "{e}");
    assert!(e.contains(&checkpoint.display().to_string()), "{e}");
    let metadata = wgnn::nn::read_safetensors_metadata(&checkpoint).unwrap();
    let step: usize = metadata["step"].parse().unwrap();
    assert!(e.contains(&format!("(step {step})")), "{e}");
    let stored = wgnn::nn::ParamStore::load_safetensors(gpu, &checkpoint).unwrap();
    for (name, tensor) in stored.iter() {
        let values = tensor.to_vec(gpu).unwrap();
        assert!(values.iter().all(|x| x.is_finite()), "{name} is not finite");
    }
}

/// Records every validation evaluation.
#[derive(Default)]
struct Evaluations(Vec<(u64, f64)>);

impl Progress for Evaluations {
    fn training_step(&mut self, stats: &StepStats, validation: Option<f64>) -> Result<()> {
        if let Some(accuracy) = validation {
            self.0.push((stats.step, accuracy));
        }
        Ok(())
    }
}

#[test]
fn validation_keeps_the_best_weights_and_stops_when_they_no_longer_improve() {
    let gpu = gpu();
    let dir = TempDir::new("cnn-validation");
    let data = orl_subset(&dir, "data", 1, 9, 5);
    let validation = orl_subset(&dir, "validation", 6, 4, 5);
    let mut run = request(&data, tiny(40, 4));
    run.validation_identities = 4;
    run.ways = 4;
    run.eval_every = 2;
    run.patience = 2;
    let mut seen = Evaluations::default();
    let trained = commands::train_cnn(gpu, &run, &mut seen).unwrap();
    assert_eq!(seen.0, trained.validation);
    assert!(seen.0.iter().all(|(step, _)| step % 2 == 0));
    let (best, best_step) = trained.best.unwrap();
    let max = seen.0.iter().map(|e| e.1).fold(f64::MIN, f64::max);
    assert_eq!(best, max);
    assert_eq!(
        seen.0.iter().find(|e| e.1 == max).unwrap().0,
        best_step,
        "the first best evaluation wins"
    );
    let last = seen.0.last().unwrap().0;
    if trained.stopped_early {
        assert!(last < 40);
        let after_best = seen.0.iter().filter(|e| e.0 > best_step).count();
        assert_eq!(
            after_best, 2,
            "stops after `patience` evaluations without progress"
        );
    } else {
        assert_eq!(last, 40);
    }
    assert_eq!(
        trained.model.training["identities"],
        serde_json::json!(["s1", "s2", "s3", "s4", "s5"]),
        "the validation identities are not trained on"
    );
    // The model holds the best weights: it scores the validation identities as that evaluation.
    let evaluation = commands::evaluate_with_ways(
        gpu,
        &trained.model,
        &validation,
        commands::VerificationHead::Distance,
        Some(4),
        &mut Quiet,
    )
    .unwrap();
    let within = evaluation.within_groups.unwrap();
    assert!(
        (within.accuracy - best).abs() < 0.02,
        "model {} vs best evaluation {best}",
        within.accuracy
    );
    assert!((within.accuracy - evaluation.metrics.one_shot_accuracy).abs() < 1e-12);
}

#[test]
fn one_shot_within_groups_is_the_mean_over_episodes_of_each_group() {
    let mut rng = wgnn::rng::Rng::new(9);
    let dim = 3;
    // Groups: 0 has identities 0-4, 1 has 5-6, 2 has 7; three images each.
    let group_of = [0, 0, 0, 0, 0, 1, 1, 2];
    let labels: Vec<u32> = (0..8u32).flat_map(|l| [l, l, l]).collect();
    let embeddings = rng.vec_f32(labels.len() * dim, -1.0, 1.0);
    let (mean, episodes) = episodic_one_shot(&embeddings, dim, &labels, &group_of, 2).unwrap();
    let members: Vec<Vec<u32>> = episodes.iter().map(|(m, _)| m.clone()).collect();
    // 5 identities in episodes of 2: [0, 1], [2, 3, 4]; the lone identity 7 has no episode.
    assert_eq!(members, vec![vec![0, 1], vec![2, 3, 4], vec![5, 6]]);
    for (m, accuracy) in &episodes {
        let rows: Vec<usize> = (0..labels.len())
            .filter(|&i| m.contains(&labels[i]))
            .collect();
        let sub: Vec<f32> = rows
            .iter()
            .flat_map(|&i| embeddings[i * dim..(i + 1) * dim].to_vec())
            .collect();
        let sub_labels: Vec<u32> = rows.iter().map(|&i| labels[i]).collect();
        assert_eq!(
            *accuracy,
            one_shot_accuracy(&sub, dim, &sub_labels).unwrap()
        );
    }
    let expected = episodes.iter().map(|e| e.1).sum::<f64>() / 3.0;
    assert!((mean - expected).abs() < 1e-12);
    assert!(episodic_one_shot(&embeddings, dim, &labels, &group_of, 1).is_err());
    assert!(episodic_one_shot(&embeddings, dim, &labels, &group_of[..4], 2).is_err());
}
