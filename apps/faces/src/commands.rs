//! What each `train_siamese` subcommand does, as library functions that the binary and the
//! tests call: train, evaluate, train-verifier, enroll, verify, identify. Progress goes through
//! the [`Progress`] trait (the binary draws bars; tests ignore it).

use std::borrow::Cow;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;

use super::augment::Augment;
use super::cnn_train::{BestSoFar, CnnTrainConfig, CnnTrainer, StepStats};
use super::dataset::{load_image, ImageFolder, LoadedImages, Preprocess};
use super::embed::{trunk_weights, ImageRunner, ModelEmbedder, ProjectionRunner};
use super::gallery::{Gallery, Identification, Verification};
use super::metrics::{self, Metrics, Pairs};
use super::model::{Network, SiameseModel};
use super::network::{fingerprint, NetworkSpec};
use super::open_set::{impostor_distances, ImpostorTail};
use super::train::{collapse_advice, EpochStats, TrainConfig, Trainer, TrainingSet};
use super::verifier::{train_verifier, VerifierConfig};
use wgnn::error::{Error, Result};
use wgnn::graph::Profile;
use wgnn::nn::ParamStore;
use wgnn::Gpu;

/// Reports progress; every method has a do-nothing default.
pub trait Progress {
    /// A stage of `total` steps begins (`total` 0: no count).
    fn stage(&mut self, _what: &str, _total: usize) {}
    /// `done` of the current stage's steps are done.
    fn advance(&mut self, _done: usize) {}
    /// An epoch ended (after the stage of its batches).
    fn epoch(&mut self, _stats: &EpochStats) -> Result<()> {
        Ok(())
    }
    /// A step of `train --model cnn` ended, with the validation accuracy when it evaluated.
    fn training_step(&mut self, _stats: &StepStats, _validation: Option<f64>) -> Result<()> {
        Ok(())
    }
    /// A warning or a note for the user.
    fn note(&mut self, _message: &str) {}
}

/// Progress that goes nowhere.
pub struct Quiet;

impl Progress for Quiet {}

/// `train`: what to train on and how.
#[derive(Clone, Debug)]
pub struct TrainRequest {
    pub data: PathBuf,
    /// The last `holdout_identities` identities (natural order) are left out of training.
    pub holdout_identities: usize,
    pub config: TrainConfig,
    /// Write a checkpoint every this many epochs (0: never) to `checkpoint`.
    pub checkpoint_every: usize,
    pub checkpoint: Option<PathBuf>,
    /// Continue from this checkpoint.
    pub resume: Option<PathBuf>,
    /// After training, time the kernels of a trunk batch and of a training step (`--profile`).
    pub profile: bool,
}

/// Runs of each kernel that `--profile` takes the median of.
pub const PROFILE_REPEATS: usize = 5;

/// What `train` produced, with timings.
pub struct Trained {
    pub model: SiameseModel,
    pub epochs: Vec<EpochStats>,
    /// With `profile`: what was profiled (a trunk batch, a training step) and its kernels.
    pub profiles: Vec<(String, Profile)>,
    /// Seconds spent on the descriptors (all variants), on the epochs, and in total.
    pub trunk_seconds: f64,
    pub epoch_seconds: f64,
    pub total_seconds: f64,
}

/// The input preprocessing of a network: RGB at the trunk's input size.
pub fn preprocess_of(model_spec: &NetworkSpec) -> Preprocess {
    Preprocess {
        width: model_spec.trunk.width as u32,
        height: model_spec.trunk.height as u32,
        channels: 3,
    }
}

/// Lists `data`, reports its warnings and splits off the held-out identities.
fn training_folder(
    data: &Path,
    holdout: usize,
    progress: &mut dyn Progress,
) -> Result<ImageFolder> {
    let folder = ImageFolder::open(data)?;
    for warning in &folder.warnings {
        progress.note(warning);
    }
    let (training, _) = folder.split_holdout(holdout)?;
    if training.identities.is_empty() {
        return Err(Error::Invalid(format!(
            "holding out {holdout} identities leaves none of the {} to train on",
            folder.identities.len()
        )));
    }
    Ok(training)
}

/// Names the training data: identity names, file names and sizes, and the preprocessing.
fn data_fingerprint(folder: &ImageFolder, preprocess: Preprocess) -> String {
    let mut text = format!(
        "{}x{}x{}\n",
        preprocess.width, preprocess.height, preprocess.channels
    );
    for identity in &folder.identities {
        text.push_str(&identity.name);
        for image in &identity.images {
            let size = std::fs::metadata(image).map(|m| m.len()).unwrap_or(0);
            text.push_str(&format!(
                "\t{}:{size}",
                image.file_name().unwrap_or_default().to_string_lossy()
            ));
        }
        text.push('\n');
    }
    fingerprint(&[text.as_bytes()])
}

/// Variant `variant` (see `faces::augment`) of every image, at the network's input size.
fn variant_of_each(
    augment: &Augment,
    spec: &NetworkSpec,
    images: &LoadedImages,
    variant: usize,
    seed: u64,
) -> Vec<f32> {
    let (width, height) = (spec.trunk.width, spec.trunk.height);
    (0..images.len())
        .flat_map(|i| augment.variant(images.image(i), width, height, variant, i, seed))
        .collect()
}

/// The descriptors of every variant of every image (see `faces::augment`), variant-major.
fn training_descriptors(
    gpu: &Gpu,
    config: &TrainConfig,
    trunk_weights: &ParamStore,
    images: &LoadedImages,
    progress: &mut dyn Progress,
    profiles: Option<&mut Vec<(String, Profile)>>,
) -> Result<Vec<f32>> {
    let spec = &config.network;
    let mut runner = ImageRunner::descriptors(gpu, spec, trunk_weights)?;
    let variants = config.augment.variants();
    let n = images.len();
    let per_variant = n * runner.passes_per_image();
    progress.stage("trunk features", variants * per_variant);
    let mut descriptors = Vec::with_capacity(variants * n * spec.descriptor_len());
    for v in 0..variants {
        let inputs = variant_of_each(&config.augment, spec, images, v, config.seed);
        let before = v * per_variant;
        descriptors.extend(runner.run(gpu, &inputs, &mut |done| progress.advance(before + done))?);
    }
    if let Some(profiles) = profiles {
        profiles.push((
            format!(
                "a batch of {} trunk inputs to descriptors",
                crate::embed::BATCH
            ),
            runner.profile(gpu, PROFILE_REPEATS)?,
        ));
    }
    Ok(descriptors)
}

/// `train`: loads the training identities, computes their descriptors, trains the head (resuming
/// when asked, checkpointing as asked), then picks the threshold on the training identities.
pub fn train(gpu: &Gpu, request: &TrainRequest, progress: &mut dyn Progress) -> Result<Trained> {
    let started = Instant::now();
    let mut config = request.config.clone();
    if config.network.mirror && config.augment.flip {
        progress.note("flips are built into the mirror-symmetric network: no flip variants");
        config.augment = Augment {
            flip: false,
            ..config.augment
        };
        if !config.augment.random() {
            config.augment.copies = 0;
        }
    }
    let config = &config;
    config.validate()?;
    if request.checkpoint_every > 0 && request.checkpoint.is_none() {
        return Err(Error::Invalid(
            "--checkpoint-every needs a checkpoint path".into(),
        ));
    }
    let folder = training_folder(&request.data, request.holdout_identities, progress)?;
    let single = folder.single_image_identities();
    let usable = folder.identities.len() - single.len();
    if usable < config.identities_per_batch {
        return Err(Error::Invalid(format!(
            "{usable} training identities have two or more images, fewer than \
             --identities-per-batch {}: triplets need positives, so add images or people, or \
             lower --identities-per-batch (at least 2)",
            config.identities_per_batch
        )));
    }
    let preprocess = preprocess_of(&config.network);
    progress.stage("loading images", 0);
    let images = folder.load(preprocess)?;

    let trunk_started = Instant::now();
    let weights = trunk_weights(gpu)?;
    let mut profiles = Vec::new();
    let descriptors = training_descriptors(
        gpu,
        config,
        &weights,
        &images,
        progress,
        request.profile.then_some(&mut profiles),
    )?;
    let trunk_seconds = trunk_started.elapsed().as_secs_f64();
    let set = TrainingSet {
        descriptors,
        descriptor_len: config.network.descriptor_len(),
        variants: config.augment.variants(),
        labels: images.labels.clone(),
        fingerprint: data_fingerprint(&folder, preprocess),
    };

    let mut trainer = match &request.resume {
        Some(path) => {
            let trainer = Trainer::resume(gpu, config.clone(), &set, path)?;
            progress.note(&format!(
                "resuming from {} after epoch {}",
                path.display(),
                trainer.epochs_done()
            ));
            trainer
        }
        None => Trainer::new(gpu, config.clone(), &set)?,
    };
    let epochs_started = Instant::now();
    let mut epochs = Vec::new();
    while trainer.epochs_done() < config.epochs {
        let epoch = trainer.epochs_done() + 1;
        progress.stage(
            &format!("epoch {epoch}/{}", config.epochs),
            trainer.batches_per_epoch(),
        );
        let stats = trainer.run_epoch(&mut |done| progress.advance(done))?;
        progress.epoch(&stats)?;
        epochs.push(stats);
        if stats.collapsed(config.margin) {
            return Err(Error::Invalid(collapse_advice(&stats, config)));
        }
        if request.checkpoint_every > 0 && epoch % request.checkpoint_every == 0 {
            trainer.save_checkpoint(request.checkpoint.as_deref().unwrap())?;
        }
    }
    let epoch_seconds = epochs_started.elapsed().as_secs_f64();
    if request.profile && !epochs.is_empty() {
        profiles.push((
            "a training step of the head".into(),
            trainer.profile_step(PROFILE_REPEATS)?,
        ));
    }

    progress.stage("threshold", 0);
    let mut head = ProjectionRunner::new(gpu, &config.network, trainer.head())?;
    let embeddings = head.run(gpu, set.originals())?;
    let threshold = metrics::choose_threshold(
        &embeddings,
        config.network.head.embedding_dim,
        &images.labels,
    )?;
    let training = json!({
        "config": config.to_json(),
        "data": request.data.display().to_string(),
        "holdout_identities": request.holdout_identities,
        "identities": folder.identities.iter().map(|i| i.name.clone()).collect::<Vec<_>>(),
        "images": images.len(),
    });
    let mut model = SiameseModel::new(
        gpu,
        Network::FaceResNet(config.network.clone()),
        trainer.head().clone(),
        threshold,
        training,
    )?;
    progress.stage("impostor distances of unseen identities", IMPOSTOR_FOLDS);
    model.impostors = Some(cross_validated_impostor_tail(
        gpu,
        config,
        &set,
        &embeddings,
        progress,
    )?);
    Ok(Trained {
        model,
        epochs,
        profiles,
        trunk_seconds,
        epoch_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
    })
}

/// `train --model cnn`: what to train on and how.
#[derive(Clone, Debug)]
pub struct CnnTrainRequest {
    pub data: PathBuf,
    /// The last `holdout_identities` identities (natural order) are left out of training.
    pub holdout_identities: usize,
    /// The last `validation_identities` of the rest are not trained on but measured every
    /// `eval_every` steps (N-way one-shot within their groups, `ways` ways); 0: no validation.
    pub validation_identities: usize,
    pub ways: usize,
    pub eval_every: usize,
    /// Stop after this many evaluations without a better validation accuracy (0: never).
    pub patience: usize,
    /// Each training identity also enters rotated by 90, 180 and 270 degrees, as three new
    /// identities (characters, not faces: a rotated character is another character).
    pub rotated_classes: bool,
    pub config: CnnTrainConfig,
    /// Write a checkpoint every this many steps (0: never) to `checkpoint`.
    pub checkpoint_every: usize,
    pub checkpoint: Option<PathBuf>,
    /// Continue from this checkpoint.
    pub resume: Option<PathBuf>,
    /// After training, time the kernels of a training step (`--profile`).
    pub profile: bool,
}

/// What `train --model cnn` produced.
pub struct TrainedCnn {
    pub model: SiameseModel,
    /// With `profile`: a training step's kernels.
    pub profiles: Vec<(String, Profile)>,
    /// The steps this run took (after the checkpoint it resumed from, if any).
    pub steps: Vec<StepStats>,
    /// (step, validation accuracy) of each evaluation of this run.
    pub validation: Vec<(u64, f64)>,
    /// The best validation accuracy and its step, whose weights the model holds.
    pub best: Option<(f64, u64)>,
    /// Validation stopped the training before the last step.
    pub stopped_early: bool,
    pub total_seconds: f64,
}

/// Appends every image rotated by 90, 180 and 270 degrees, each rotation of an identity a new
/// identity.
fn add_rotated_classes(images: &mut LoadedImages, side: usize, channels: usize) {
    let image_len = channels * side * side;
    let identities = images.labels.iter().max().map_or(0, |&l| l + 1);
    let n = images.len();
    for turns in 1..4u32 {
        for i in 0..n {
            let image = &images.data[i * image_len..][..image_len];
            let rotated = crate::distort::rotate_quarter(image, channels, side, turns as usize);
            images.data.extend_from_slice(&rotated);
            images.labels.push(images.labels[i] + turns * identities);
            images.paths.push(images.paths[i].clone());
        }
    }
}

/// `train --model cnn`: a convolutional network trained from random weights with the triplet
/// loss on the images of `data` (at the network's input size, greyscale or RGB, no face
/// detection), with validation and early stopping when asked, checkpoints and resumption; then
/// its threshold chosen on the training images and its normalisation folded into the
/// convolutions. The impostor tail for open-set identification comes from the training images
/// themselves (cross-validation would train the network five more times).
pub fn train_cnn(
    gpu: &Gpu,
    request: &CnnTrainRequest,
    progress: &mut dyn Progress,
) -> Result<TrainedCnn> {
    let started = Instant::now();
    let config = &request.config;
    let spec = &config.spec;
    spec.validate()?;
    if config.steps == 0 {
        return Err(Error::Invalid("--steps must be at least 1".into()));
    }
    if request.checkpoint_every > 0 && request.checkpoint.is_none() {
        return Err(Error::Invalid(
            "--checkpoint-every needs a checkpoint path".into(),
        ));
    }
    if request.validation_identities > 0 && request.eval_every == 0 {
        return Err(Error::Invalid(
            "--validation-identities needs --eval-every of at least 1".into(),
        ));
    }
    let folder = training_folder(&request.data, request.holdout_identities, progress)?;
    let (folder, validation_folder) = folder.split_holdout(request.validation_identities)?;
    if folder.identities.is_empty() {
        return Err(Error::Invalid(format!(
            "--validation-identities {} leaves no identity to train on",
            request.validation_identities
        )));
    }
    let preprocess = Network::Cnn(spec.clone()).preprocess();
    let fingerprint = format!(
        "{}; validation {}; rotated classes {}",
        data_fingerprint(&folder, preprocess),
        data_fingerprint(&validation_folder, preprocess),
        request.rotated_classes
    );
    progress.stage("loading images", 0);
    let mut training = folder.load(preprocess)?;
    let originals = training.len();
    if request.rotated_classes {
        add_rotated_classes(&mut training, spec.input, spec.channels);
    }
    let validation = match request.validation_identities {
        0 => None,
        _ => Some((
            validation_folder.load(preprocess)?,
            validation_folder.group_of_identities(),
        )),
    };
    let source = crate::cnn_train::BatchSource::new(config, &training.data, &training.labels)?;
    let (mut trainer, mut best) = match &request.resume {
        None => (
            CnnTrainer::new(gpu, config.clone(), source.batch_size())?,
            BestSoFar::default(),
        ),
        Some(path) => {
            CnnTrainer::resume(gpu, config.clone(), source.batch_size(), &fingerprint, path)?
        }
    };
    let first = trainer.steps_done();
    if first >= config.steps as u64 {
        return Err(Error::Invalid(format!(
            "the checkpoint is at step {first}: nothing is left of --steps {}",
            config.steps
        )));
    }
    progress.stage("training", config.steps);
    progress.advance(first as usize);
    let mut steps = Vec::new();
    let mut evaluations = Vec::new();
    let mut last_checkpoint: Option<u64> = None;
    let mut stopped_early = false;
    let outcome = source.prefetched(first..config.steps as u64, |batch| {
        let stats = trainer.step(&batch)?;
        let step = stats.step;
        let mut accuracy = None;
        if let Some((images, group_of)) = &validation {
            if step % request.eval_every as u64 == 0 || step == config.steps as u64 {
                let embeddings = trainer.embed(&images.data)?;
                let (a, _) = metrics::episodic_one_shot(
                    &embeddings,
                    spec.embedding_dim,
                    &images.labels,
                    group_of,
                    request.ways,
                )?;
                accuracy = Some(a);
                evaluations.push((step, a));
                if best.best.is_none_or(|(b, _)| a > b) {
                    best.best = Some((a, step));
                    best.params = trainer.snapshot()?;
                    best.evaluations_since = 0;
                } else {
                    best.evaluations_since += 1;
                }
            }
        }
        let stop = request.patience > 0 && best.evaluations_since >= request.patience;
        if (request.checkpoint_every > 0 && step % request.checkpoint_every as u64 == 0) || stop {
            if let Some(path) = &request.checkpoint {
                trainer.save_checkpoint(path, &fingerprint, &best)?;
                last_checkpoint = Some(step);
            }
        }
        progress.training_step(&stats, accuracy)?;
        progress.advance(step as usize);
        steps.push(stats);
        if stop {
            stopped_early = true;
            progress.note(&format!(
                "stopped at step {step}: no better validation accuracy in the last {} \
                 evaluations",
                request.patience
            ));
        }
        Ok(!stop)
    });
    if let Err(e) = outcome {
        if trainer.diverged_at().is_none() {
            return Err(e);
        }
        let checkpoint = match (last_checkpoint, &request.checkpoint, &request.resume) {
            (Some(step), Some(path), _) => format!(
                "the last good checkpoint is {} (step {step}): continue from it with --resume \
                 and a lower --learning-rate (now {})",
                path.display(),
                config.learning_rate
            ),
            (None, _, Some(path)) => format!(
                "the last good checkpoint is the one this run resumed from, {}: continue from it \
                 with a lower --learning-rate (now {})",
                path.display(),
                config.learning_rate
            ),
            _ => format!(
                "no checkpoint was written (--checkpoint-every); train again with a lower \
                 --learning-rate (now {})",
                config.learning_rate
            ),
        };
        return Err(Error::Invalid(format!(
            "{e}; no model was written; {checkpoint}"
        )));
    }
    let mut profiles = Vec::new();
    if request.profile && !steps.is_empty() {
        profiles.push((
            format!("a training step of {} images", source.batch_size()),
            trainer.profile_step(PROFILE_REPEATS)?,
        ));
    }
    if !best.params.is_empty() {
        trainer.restore(&best.params)?;
    }
    progress.stage("threshold", 0);
    let image_len = spec.channels * spec.input * spec.input;
    let embeddings = trainer.embed(&training.data[..originals * image_len])?;
    let labels = &training.labels[..originals];
    let dim = spec.embedding_dim;
    let threshold = metrics::choose_threshold(&embeddings, dim, labels)?;
    let folded = spec.fold_batch_norm(gpu, trainer.params())?;
    let record = json!({
        "config": config.to_json(),
        "data": request.data.display().to_string(),
        "holdout_identities": request.holdout_identities,
        "validation_identities": request.validation_identities,
        "rotated_classes": request.rotated_classes,
        "identities": folder.identities.iter().map(|i| i.name.clone()).collect::<Vec<_>>(),
        "images": originals,
        "best_validation": best.best.map(|(accuracy, step)| json!({"accuracy": accuracy, "step": step})),
    });
    let mut model = SiameseModel::new(gpu, Network::Cnn(spec.clone()), folded, threshold, record)?;
    model.impostors = Some(ImpostorTail::from_embeddings(&embeddings, dim, labels)?);
    Ok(TrainedCnn {
        model,
        profiles,
        steps,
        validation: evaluations,
        best: best.best,
        stopped_early,
        total_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Folds of identities from which the impostor tail is estimated (`faces::open_set`).
pub const IMPOSTOR_FOLDS: usize = 5;

/// The impostor distances of people the head never saw, by cross-validation over identities:
/// for each of `IMPOSTOR_FOLDS` folds (every fifth identity), a head trained as `config` says on
/// the other identities embeds the fold's original images, and the distances between
/// different people of the fold are pooled. Too few identities for that (a fold needs two
/// people, the rest enough for a batch): those of `embeddings`, the trained head's embeddings of
/// the training images, which understate how close strangers come.
fn cross_validated_impostor_tail(
    gpu: &Gpu,
    config: &TrainConfig,
    set: &TrainingSet,
    embeddings: &[f32],
    progress: &mut dyn Progress,
) -> Result<ImpostorTail> {
    let identities: Vec<u32> = {
        let mut ids = set.labels.clone();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let fold_of = |label: u32| identities.binary_search(&label).unwrap_or(0) % IMPOSTOR_FOLDS;
    let dim = config.network.head.embedding_dim;
    let per_fold = identities.len() / IMPOSTOR_FOLDS;
    let trainable = identities.len() - identities.len().div_ceil(IMPOSTOR_FOLDS);
    if per_fold < 2 || trainable < config.identities_per_batch {
        progress.note(
            "too few identities to estimate strangers' distances by cross-validation: the \
             identification threshold comes from the training identities' own",
        );
        return ImpostorTail::from_embeddings(embeddings, dim, &set.labels);
    }
    let n = set.len();
    let mut pooled = Vec::new();
    for fold in 0..IMPOSTOR_FOLDS {
        let (held, kept): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| fold_of(set.labels[i]) == fold);
        let mut descriptors = Vec::with_capacity(set.variants * kept.len() * set.descriptor_len);
        for v in 0..set.variants {
            for &i in &kept {
                descriptors.extend_from_slice(set.descriptor(v, i));
            }
        }
        let subset = TrainingSet {
            descriptors,
            descriptor_len: set.descriptor_len,
            variants: set.variants,
            labels: kept.iter().map(|&i| set.labels[i]).collect(),
            fingerprint: format!("{} fold {fold}", set.fingerprint),
        };
        let trainer = set_head(gpu, config, &subset)?;
        let mut head = ProjectionRunner::new(gpu, &config.network, trainer.head())?;
        let held_descriptors: Vec<f32> = held
            .iter()
            .flat_map(|&i| set.descriptor(0, i).iter().copied())
            .collect();
        let embeddings = head.run(gpu, &held_descriptors)?;
        let labels: Vec<u32> = held.iter().map(|&i| set.labels[i]).collect();
        pooled.extend(impostor_distances(&embeddings, dim, &labels)?);
        progress.advance(fold + 1);
    }
    ImpostorTail::from_distances(pooled)
}

/// A head trained on `set` for all of `config`'s epochs.
fn set_head<'a>(gpu: &'a Gpu, config: &TrainConfig, set: &'a TrainingSet) -> Result<Trainer<'a>> {
    let mut trainer = Trainer::new(gpu, config.clone(), set)?;
    while trainer.epochs_done() < config.epochs {
        trainer.run_epoch(&mut |_| {})?;
    }
    Ok(trainer)
}

/// Embeds `count` images with one compiled network and one progress stage, asking
/// `block_images(range)` for them (`[len, 3, H, W]` in [0, 1]) a block of `block` at a time, so
/// that memory holds one block of network inputs rather than all of them.
fn embed_in_blocks<'a>(
    gpu: &Gpu,
    model: &SiameseModel,
    count: usize,
    block: usize,
    progress: &mut dyn Progress,
    mut block_images: impl FnMut(Range<usize>) -> Result<Cow<'a, [f32]>>,
) -> Result<Vec<f32>> {
    let mut embedder = ModelEmbedder::new(gpu, model)?;
    let passes = embedder.passes_per_image();
    progress.stage("embedding", count * passes);
    let mut embeddings = Vec::with_capacity(count * model.embedding_dim());
    for start in (0..count).step_by(block.max(1)) {
        let images = block_images(start..(start + block).min(count))?;
        embeddings.extend(embedder.run(gpu, &images, &mut |done| {
            progress.advance(start * passes + done)
        })?);
    }
    Ok(embeddings)
}

/// Embeds every image of a loaded folder with the model.
pub fn embed_images(
    gpu: &Gpu,
    model: &SiameseModel,
    images: &[f32],
    progress: &mut dyn Progress,
) -> Result<Vec<f32>> {
    let n = images.len() / model.network.preprocess().image_len()?;
    // One block: the images are in memory already (the runner checks their length).
    embed_in_blocks(gpu, model, n.max(1), n.max(1), progress, |_| {
        Ok(Cow::Borrowed(images))
    })
}

/// Image files decoded at a time by `embed_files`: memory holds this many decoded images
/// (about 0.5 MB each at 184x224) rather than a whole folder's.
const DECODED_AT_ONCE: usize = 128;

/// Embeds image files (each decoded and resized; a bad file is an error naming it), decoding
/// `DECODED_AT_ONCE` of them at a time.
pub fn embed_files(
    gpu: &Gpu,
    model: &SiameseModel,
    paths: &[PathBuf],
    progress: &mut dyn Progress,
) -> Result<Vec<f32>> {
    if paths.is_empty() {
        return Err(Error::Invalid("no images given".into()));
    }
    let preprocess = model.network.preprocess();
    embed_in_blocks(
        gpu,
        model,
        paths.len(),
        DECODED_AT_ONCE,
        progress,
        |range| {
            let mut images = Vec::new();
            for path in &paths[range] {
                images.extend(load_image(path, preprocess)?);
            }
            Ok(Cow::Owned(images))
        },
    )
}

/// How `eval` scores a pair for verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum VerificationHead {
    /// Squared L2 distance between embeddings, thresholded.
    Distance,
    /// The logistic unit of `train-verifier` on |f(x1) - f(x2)|.
    Logistic,
}

/// What `eval` reports.
pub struct Evaluation {
    pub metrics: Metrics,
    /// Every pair of images, scored (distance, or minus the logistic unit's logit).
    pub pairs: Pairs,
    pub head: VerificationHead,
    /// The model's stored threshold (distance) or 0.5 (probability, logistic).
    pub model_threshold: f64,
    /// N-way one-shot within groups, when asked: (N, mean accuracy, episodes with their
    /// identities' names and accuracies).
    pub within_groups: Option<WithinGroups>,
}

/// `eval --ways N`: one-shot identification in episodes of N identities of one group.
pub struct WithinGroups {
    pub ways: usize,
    pub accuracy: f64,
    pub episodes: Vec<(Vec<String>, f64)>,
}

impl Evaluation {
    /// One line of JSON: the keys of `Metrics::to_json_line`, then `head` and `model_threshold`.
    pub fn to_json_line(&self) -> String {
        let mut line = self.metrics.to_json_line();
        line.pop();
        let head = match self.head {
            VerificationHead::Distance => "distance",
            VerificationHead::Logistic => "logistic",
        };
        let within = match &self.within_groups {
            Some(w) => format!(
                ", \"ways\": {}, \"episodes\": {}, \"one_shot_within_groups\": {}",
                w.ways,
                w.episodes.len(),
                serde_json::Value::from(w.accuracy)
            ),
            None => String::new(),
        };
        format!(
            "{line}, \"head\": \"{head}\", \"model_threshold\": {}{within}}}",
            serde_json::Value::from(self.model_threshold)
        )
    }
}

/// `eval`: embeds every image of `data` and computes the metrics of `faces::metrics`. With the
/// logistic head, the verification figures score pairs by the logistic unit and its accuracy is
/// that of its own decision (P(same) >= 0.5), with no threshold tuned on `data`.
pub fn evaluate(
    gpu: &Gpu,
    model: &SiameseModel,
    data: &Path,
    head: VerificationHead,
    progress: &mut dyn Progress,
) -> Result<Evaluation> {
    evaluate_with_ways(gpu, model, data, head, None, progress)
}

/// `evaluate`, plus N-way one-shot within groups when `ways` is given (`metrics::episodic_one_shot`).
pub fn evaluate_with_ways(
    gpu: &Gpu,
    model: &SiameseModel,
    data: &Path,
    head: VerificationHead,
    ways: Option<usize>,
    progress: &mut dyn Progress,
) -> Result<Evaluation> {
    let verifier = match head {
        VerificationHead::Logistic => Some(model.verifier.as_ref().ok_or_else(|| {
            Error::Invalid(
                "this model has no logistic verifier: run `train_siamese train-verifier` first"
                    .into(),
            )
        })?),
        VerificationHead::Distance => None,
    };
    let folder = ImageFolder::open(data)?;
    for warning in &folder.warnings {
        progress.note(warning);
    }
    let (paths, labels) = folder.labelled_paths();
    let embeddings = embed_files(gpu, model, &paths, progress)?;
    let dim = model.embedding_dim();
    let mut metrics = metrics::evaluate(&embeddings, dim, &labels)?;
    let (pairs, model_threshold) = match verifier {
        None => (
            Pairs::all(&embeddings, dim, &labels)?,
            model.threshold as f64,
        ),
        Some(verifier) => {
            let row = |i: usize| &embeddings[i * dim..(i + 1) * dim];
            let n = labels.len();
            let (mut scores, mut same) = (Vec::new(), Vec::new());
            for i in 0..n {
                for j in i + 1..n {
                    scores.push(-verifier.logit(row(i), row(j)));
                    same.push(labels[i] == labels[j]);
                }
            }
            let pairs = Pairs::new(scores, same)?;
            metrics.verification_accuracy = pairs.balanced_accuracy(0.0);
            metrics.auc = pairs.auc();
            metrics.eer = pairs.eer();
            metrics.val_at_far_1e_3 = pairs.val_at_far(1e-3);
            metrics.threshold = 0.0;
            (pairs, 0.5)
        }
    };
    let within_groups = match ways {
        None => None,
        Some(ways) => {
            let group_of = folder.group_of_identities();
            let (accuracy, episodes) =
                metrics::episodic_one_shot(&embeddings, dim, &labels, &group_of, ways)?;
            let name = |label: &u32| folder.identities[*label as usize].name.clone();
            Some(WithinGroups {
                ways,
                accuracy,
                episodes: episodes
                    .into_iter()
                    .map(|(members, a)| (members.iter().map(name).collect(), a))
                    .collect(),
            })
        }
    };
    Ok(Evaluation {
        metrics,
        pairs,
        head,
        model_threshold,
        within_groups,
    })
}

/// `train-verifier`: embeds the training identities of `data` (all but the last
/// `holdout_identities`) and trains the logistic unit; the caller saves the model.
pub fn add_verifier(
    gpu: &Gpu,
    model: &mut SiameseModel,
    data: &Path,
    holdout_identities: usize,
    config: VerifierConfig,
    progress: &mut dyn Progress,
) -> Result<f64> {
    let folder = training_folder(data, holdout_identities, progress)?;
    progress.stage("loading images", 0);
    let images = folder.load(model.network.preprocess())?;
    let (embeddings, labels) =
        if config.augmented && matches!(model.network, Network::FaceResNet(_)) {
            embed_training_variants(gpu, model, &images, progress)?
        } else {
            let embeddings = embed_images(gpu, model, &images.data, progress)?;
            (embeddings, images.labels.clone())
        };
    progress.stage("training the verifier", 0);
    let verifier = train_verifier(gpu, &embeddings, model.embedding_dim(), &labels, config)?;
    let accuracy = verifier.description["training_balanced_accuracy"]
        .as_f64()
        .unwrap_or(f64::NAN);
    model.verifier = Some(verifier);
    Ok(accuracy)
}

/// The embeddings of every variant of every image that the model was trained on (its recorded
/// augmentation and seed), variant-major, with their labels. One variant's inputs are made at a
/// time, so memory holds the photos and one copy of each rather than all the copies.
fn embed_training_variants(
    gpu: &Gpu,
    model: &SiameseModel,
    images: &LoadedImages,
    progress: &mut dyn Progress,
) -> Result<(Vec<f32>, Vec<u32>)> {
    let config = &model.training["config"];
    let missing = || Error::Invalid("the model does not record its augmentation".into());
    let augment = Augment::parse(
        config["augment"].as_str().ok_or_else(missing)?,
        config["augment_copies"].as_u64().ok_or_else(missing)? as usize,
    )?;
    let seed = config["seed"].as_u64().ok_or_else(missing)?;
    let variants = augment.variants();
    let n = images.len();
    let embeddings = embed_in_blocks(gpu, model, variants * n, n, progress, |range| {
        let variant = range.start / n;
        Ok(Cow::Owned(variant_of_each(
            &augment,
            model.network.face("the augmented copies")?,
            images,
            variant,
            seed,
        )))
    })?;
    Ok((embeddings, images.labels.repeat(variants)))
}

/// `enroll`: adds (or replaces) `name` in the gallery at `gallery` (created if missing) from the
/// mean embedding of `images`. Returns whether an earlier enrolment was replaced.
pub fn enroll(
    gpu: &Gpu,
    model: &SiameseModel,
    gallery: &Path,
    name: &str,
    images: &[PathBuf],
) -> Result<bool> {
    let mut people = Gallery::open_or_new(gallery, &model.fingerprint, model.embedding_dim())?;
    let embeddings = embed_files(gpu, model, images, &mut Quiet)?;
    let replaced = people.enroll(name, &embeddings)?;
    people.save(gallery)?;
    Ok(replaced)
}

/// Loads an existing gallery made with this model.
fn existing_gallery(model: &SiameseModel, gallery: &Path) -> Result<Gallery> {
    if !gallery.exists() {
        return Err(Error::file(
            gallery,
            "no such gallery: enroll someone first (`train_siamese enroll`)",
        ));
    }
    Gallery::load(gallery, &model.fingerprint)
}

/// `verify`: is `image` the enrolled `name`? (the squared distance against `threshold`, the
/// model's unless a run sets another)
pub fn verify(
    gpu: &Gpu,
    model: &SiameseModel,
    gallery: &Path,
    name: &str,
    image: &Path,
    threshold: f32,
) -> Result<Verification> {
    let people = existing_gallery(model, gallery)?;
    if people.person(name).is_none() {
        let enrolled = people.names();
        return Err(Error::Invalid(format!(
            "`{name}` is not enrolled in {}; enrolled: {}",
            gallery.display(),
            if enrolled.is_empty() {
                "nobody yet".to_string()
            } else {
                enrolled.join(", ")
            }
        )));
    }
    let embedding = embed_files(gpu, model, &[image.to_path_buf()], &mut Quiet)?;
    people.verify(name, &embedding, threshold)
}

/// One photo's answer from `identify`: the identification, and the nearest enrolled people
/// with their squared distances, nearest first.
pub type Identified = (Identification, Vec<(String, f32)>);

/// The threshold `identify` uses: `Threshold::Fixed`, or the model's for a gallery of that many
/// people at a gallery false-accept rate (`faces::open_set`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Threshold {
    Fixed(f32),
    FalseAcceptRate(f64),
}

impl Threshold {
    /// The squared-distance threshold against `gallery` people.
    pub fn for_gallery(self, model: &SiameseModel, gallery: usize) -> f32 {
        match self {
            Threshold::Fixed(t) => t,
            Threshold::FalseAcceptRate(rate) => model.identification_threshold(gallery, rate),
        }
    }
}

/// `identify`: the nearest enrolled person of each image, or unknown beyond the threshold, and
/// the `top` nearest with their distances (the first even beyond the threshold); also the
/// threshold used.
pub fn identify(
    gpu: &Gpu,
    model: &SiameseModel,
    gallery: &Path,
    images: &[PathBuf],
    threshold: Threshold,
    top: usize,
) -> Result<(Vec<Identified>, f32)> {
    let people = existing_gallery(model, gallery)?;
    if people.is_empty() {
        return Err(Error::file(
            gallery,
            "the gallery is empty: enroll someone first",
        ));
    }
    let threshold = threshold.for_gallery(model, people.len());
    let embeddings = embed_files(gpu, model, images, &mut Quiet)?;
    let found = embeddings
        .chunks_exact(model.embedding_dim())
        .map(|e| Ok((people.identify(e, threshold)?, people.nearest(e, top)?)))
        .collect::<Result<_>>()?;
    Ok((found, threshold))
}
