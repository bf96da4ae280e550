//! Triplet training of the convolutional network (`faces::cnn`) from random weights, end to end
//! on images. Step `t` takes the P x K batch that the sampler (`faces::sampler`) and the
//! distortions (`faces::distort`) give for `t` alone, prepared on a CPU thread while the GPU runs
//! the step before; it embeds the batch with batch statistics and mines triplets on the CPU
//! (`faces::mining`), then runs one compiled training step: the network, the triplet loss on the
//! mined triplets, the gradients of every convolution, normalisation and embedding weight, the
//! Adam update and the running statistics' update, in one submission. Both plans share the
//! parameter buffers.
//!
//! A step depends only on the weights, the optimiser state and `t` (the kernels are
//! deterministic), so the same seed gives the same model bit for bit, and a run resumed from a
//! checkpoint (weights, running statistics, Adam's moments, step, best validation weights)
//! continues exactly as the uninterrupted run.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc::sync_channel;

use serde_json::{json, Value};

use wgnn::graph::{Graph, NodeId, Profile};
use wgnn::nn::{read_safetensors_metadata, ParamStore};
use wgnn::ops::batch_norm::{TrackRunningStats, BATCH_NORM_MOMENTUM};
use wgnn::optim::{Adam, AdamConfig, Optimizer};
use wgnn::rng::Rng;
use wgnn::tensor::Shape;
use wgnn::{Error, Gpu, Plan, PlanSpec, Result};

use crate::cnn::CnnSpec;
use crate::distort::{step_rng, Distortion};
use crate::embed::BatchedPlan;
use crate::mining::{mine_triplets, Mining, MiningConfig};
use crate::sampler::{Batch, BatchSampler};

/// Format tag of `train --model cnn` checkpoints.
pub const CNN_CHECKPOINT_FORMAT: &str = "wgnn-cnn-checkpoint-v1";

/// How the learning rate moves over the steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LrSchedule {
    /// The same rate throughout.
    Constant,
    /// Half a cosine from the rate down to 1 % of it at the last step.
    Cosine,
}

impl LrSchedule {
    pub fn as_str(self) -> &'static str {
        match self {
            LrSchedule::Constant => "constant",
            LrSchedule::Cosine => "cosine",
        }
    }
}

/// Everything that decides the trained weights (with the images).
#[derive(Clone, Debug, PartialEq)]
pub struct CnnTrainConfig {
    pub spec: CnnSpec,
    pub identities_per_batch: usize,
    pub images_per_identity: usize,
    pub margin: f32,
    pub mining: Mining,
    pub learning_rate: f32,
    pub schedule: LrSchedule,
    pub weight_decay: f32,
    /// Training steps (the schedule runs over them).
    pub steps: usize,
    pub distortion: Distortion,
    pub seed: u64,
}

impl Default for CnnTrainConfig {
    fn default() -> Self {
        Self {
            spec: CnnSpec::default(),
            identities_per_batch: 20,
            images_per_identity: 5,
            margin: 0.2,
            mining: Mining::BatchHard,
            learning_rate: 1e-3,
            schedule: LrSchedule::Cosine,
            weight_decay: 0.0,
            steps: 2000,
            distortion: Distortion::default(),
            seed: 1,
        }
    }
}

impl CnnTrainConfig {
    /// The learning rate of step `step` (0-based).
    pub fn learning_rate_at(&self, step: u64) -> f32 {
        match self.schedule {
            LrSchedule::Constant => self.learning_rate,
            LrSchedule::Cosine => {
                let t = (step as f64 / self.steps.max(1) as f64).min(1.0);
                let fraction = 0.01 + 0.99 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos());
                (self.learning_rate as f64 * fraction) as f32
            }
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "model": "cnn",
            "network": self.spec.to_json(),
            "steps": self.steps,
            "identities_per_batch": self.identities_per_batch,
            "images_per_identity": self.images_per_identity,
            "margin": self.margin,
            "mining": self.mining.as_str(),
            "learning_rate": self.learning_rate,
            "schedule": self.schedule.as_str(),
            "weight_decay": self.weight_decay,
            "distort": self.distortion.to_text(),
            "seed": self.seed,
        })
    }
}

/// What one step did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// 1-based.
    pub step: u64,
    pub loss: f32,
    /// Fraction of the mined triplets with a positive hinge.
    pub active_triplets: f32,
    pub learning_rate: f32,
}

/// One step's input, prepared off the GPU's thread.
pub struct PreparedBatch {
    pub step: u64,
    pub labels: Vec<u32>,
    /// `[P * K, channels, input, input]`, distorted.
    pub pixels: Vec<f32>,
}

/// The batches of a run: a pure function of the step.
pub struct BatchSource<'a> {
    images: &'a [f32],
    image_len: usize,
    channels: usize,
    side: usize,
    sampler: BatchSampler,
    distortion: Distortion,
    seed: u64,
}

impl<'a> BatchSource<'a> {
    /// Batches of `images` ([N, channels, input, input], values in [0, 1]) with identity
    /// `labels`, as `config` says.
    pub fn new(config: &CnnTrainConfig, images: &'a [f32], labels: &[u32]) -> Result<Self> {
        let spec = &config.spec;
        let image_len = spec.channels * spec.input * spec.input;
        if images.len() != labels.len() * image_len {
            return Err(Error::Invalid(format!(
                "{} values are not {} images of {}x{}x{}",
                images.len(),
                labels.len(),
                spec.channels,
                spec.input,
                spec.input
            )));
        }
        Ok(Self {
            images,
            image_len,
            channels: spec.channels,
            side: spec.input,
            sampler: BatchSampler::new(
                labels,
                config.identities_per_batch,
                config.images_per_identity,
                config.seed,
            )?,
            distortion: config.distortion,
            seed: config.seed,
        })
    }

    pub fn batch_size(&self) -> usize {
        self.sampler.batch_size()
    }

    /// The batch of step `step` (0-based); `epoch` caches the sampler's current epoch.
    pub fn batch(&self, step: u64, epoch: &mut Option<(u64, Vec<Batch>)>) -> PreparedBatch {
        let per_epoch = self.sampler.batches_per_epoch() as u64;
        let e = step / per_epoch;
        if epoch.as_ref().map(|(cached, _)| *cached) != Some(e) {
            *epoch = Some((e, self.sampler.epoch(e)));
        }
        let batch = &epoch.as_ref().expect("just filled").1[(step % per_epoch) as usize];
        let mut pixels = vec![0.0; batch.images.len() * self.image_len];
        let mut rng = step_rng(self.seed, step);
        for (row, &i) in pixels.chunks_mut(self.image_len).zip(&batch.images) {
            let image = &self.images[i as usize * self.image_len..][..self.image_len];
            if self.distortion.is_none() {
                row.copy_from_slice(image);
            } else {
                let warp = self.distortion.draw(&mut rng, self.side);
                warp.warp(image, self.channels, self.side, row);
            }
        }
        PreparedBatch {
            step,
            labels: batch.labels.clone(),
            pixels,
        }
    }

    /// Runs `body` on the batches of `steps` in order, each prepared on a second thread while
    /// `body` works on the one before. `body` returns false to stop early.
    pub fn prefetched(
        &self,
        steps: std::ops::Range<u64>,
        mut body: impl FnMut(PreparedBatch) -> Result<bool>,
    ) -> Result<()> {
        std::thread::scope(|scope| {
            let (send, receive) = sync_channel::<PreparedBatch>(2);
            let range = steps.clone();
            scope.spawn(move || {
                let mut epoch = None;
                for step in range {
                    if send.send(self.batch(step, &mut epoch)).is_err() {
                        return;
                    }
                }
            });
            for _ in steps {
                let batch = receive
                    .recv()
                    .map_err(|_| Error::Invalid("the batch preparation thread stopped".into()))?;
                if !body(batch)? {
                    break;
                }
            }
            Ok(())
        })
    }
}

/// The best validation result so far and its weights, for early stopping.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BestSoFar {
    /// (one-shot accuracy, step) of the best evaluation.
    pub best: Option<(f64, u64)>,
    /// Its parameters, running statistics included (name, shape, values).
    pub params: Vec<(String, Shape, Vec<f32>)>,
    /// Evaluations since the best one.
    pub evaluations_since: usize,
}

pub struct CnnTrainer<'a> {
    gpu: &'a Gpu,
    config: CnnTrainConfig,
    params: ParamStore,
    adam: Adam,
    embed_plan: Plan,
    embed_input: NodeId,
    train_plan: Plan,
    train_input: NodeId,
    triplets_input: NodeId,
    triplet_count: usize,
    /// The network with running statistics, for validation and the final embeddings.
    inference: BatchedPlan,
    steps: u64,
    diverged_at: Cell<Option<u64>>,
}

impl<'a> CnnTrainer<'a> {
    /// A trainer from random weights drawn from the config's seed, for batches of `batch_size`.
    pub fn new(gpu: &'a Gpu, config: CnnTrainConfig, batch_size: usize) -> Result<Self> {
        config.spec.validate()?;
        let params = config.spec.init(gpu, &mut Rng::new(config.seed))?;
        Self::with_params(gpu, config, batch_size, params, None, 0)
    }

    fn with_params(
        gpu: &'a Gpu,
        config: CnnTrainConfig,
        batch: usize,
        params: ParamStore,
        optimizer_state: Option<Vec<(String, wgnn::Tensor)>>,
        steps: u64,
    ) -> Result<Self> {
        let spec = &config.spec;
        let k = config.images_per_identity;
        if batch != config.identities_per_batch * k {
            return Err(Error::Invalid(format!(
                "a batch of {batch} rows is not {} identities x {k} images",
                config.identities_per_batch
            )));
        }
        let triplet_count = match config.mining {
            Mining::BatchHard => batch,
            Mining::SemiHard => batch * (k - 1),
            Mining::BatchAll => batch * (k - 1) * (batch - k),
        };
        let shape = [batch, spec.channels, spec.input, spec.input];

        let mut g = Graph::new();
        let embed_input = g.input("images", shape);
        let (embeddings, _) = spec.build_training(&mut g, embed_input)?;
        let embed_plan = Plan::compile(
            gpu,
            &g,
            &params,
            PlanSpec {
                outputs: vec![embeddings],
                ..Default::default()
            },
        )?;

        let mut g = Graph::new();
        let train_input = g.input("images", shape);
        let (embeddings, blocks) = spec.build_training(&mut g, train_input)?;
        let triplets_input = g.input_u32("triplets", [triplet_count, 3]);
        let loss = g.triplet_loss(embeddings, triplets_input, config.margin)?;
        let trained: Vec<NodeId> = spec
            .parameter_shapes()
            .into_iter()
            .map(|(name, shape)| g.param(&name, shape))
            .collect::<Result<_>>()?;
        let grads = g.gradients(loss, &trained)?;
        let mut adam = Adam::new(
            gpu,
            AdamConfig {
                lr: config.learning_rate_at(steps),
                weight_decay: config.weight_decay,
                ..Default::default()
            },
        )?;
        if let Some(state) = &optimizer_state {
            adam.load_state(gpu, state)?;
        }
        let mut updates: Vec<(NodeId, NodeId)> = trained.into_iter().zip(grads).collect();
        let train_plan = {
            let mut rule = TrackRunningStats::new(Some(&mut adam));
            for block in &blocks {
                rule.track(
                    &g,
                    &block.batch_norm,
                    block.running_mean,
                    block.running_var,
                    BATCH_NORM_MOMENTUM,
                )?;
            }
            updates.extend(rule.updates());
            Plan::compile(
                gpu,
                &g,
                &params,
                PlanSpec {
                    outputs: vec![loss],
                    keep: rule.keep(),
                    updates,
                    optimizer: Some(&mut rule),
                    ..Default::default()
                },
            )?
        };
        adam.set_step_count(gpu, steps)?;
        let item = [spec.channels, spec.input, spec.input];
        let inference =
            BatchedPlan::compile(gpu, &item, &params, |g, x| spec.build_inference(g, x))?;
        Ok(Self {
            gpu,
            config,
            params,
            adam,
            embed_plan,
            embed_input,
            train_plan,
            train_input,
            triplets_input,
            triplet_count,
            inference,
            steps,
            diverged_at: Cell::new(None),
        })
    }

    /// Continues from a checkpoint written by [`CnnTrainer::save_checkpoint`] with the same
    /// configuration (the number of steps may differ) and data (`fingerprint`).
    pub fn resume(
        gpu: &'a Gpu,
        config: CnnTrainConfig,
        batch_size: usize,
        fingerprint: &str,
        checkpoint: &Path,
    ) -> Result<(Self, BestSoFar)> {
        config.spec.validate()?;
        let metadata = read_safetensors_metadata(checkpoint)?;
        if metadata.get("format").map(String::as_str) != Some(CNN_CHECKPOINT_FORMAT) {
            return Err(Error::file(
                checkpoint,
                format!(
                    "not a checkpoint of `train --model cnn` (no format tag \
                     `{CNN_CHECKPOINT_FORMAT}`)"
                ),
            ));
        }
        let field = |key: &str| {
            metadata
                .get(key)
                .ok_or_else(|| Error::file(checkpoint, format!("checkpoint has no `{key}`")))
        };
        let saved: Value = serde_json::from_str(field("config")?)
            .map_err(|e| Error::file(checkpoint, format!("corrupt config: {e}")))?;
        let mut wanted = config.to_json();
        let mut saved_cmp = saved.clone();
        wanted["steps"] = Value::Null;
        saved_cmp["steps"] = Value::Null;
        if wanted != saved_cmp {
            return Err(Error::file(
                checkpoint,
                format!(
                    "this checkpoint was written with other settings: resume with the same flags \
                     as the interrupted run (only --steps may change).\n  checkpoint: \
                     {saved_cmp}\n  now:        {wanted}"
                ),
            ));
        }
        if field("data")? != fingerprint {
            return Err(Error::file(
                checkpoint,
                "this checkpoint was trained on other images (the identities or files differ)",
            ));
        }
        let corrupt = |key: &str| Error::file(checkpoint, format!("corrupt `{key}`"));
        let step: u64 = field("step")?.parse().map_err(|_| corrupt("step"))?;
        let best: Value = serde_json::from_str(field("best")?).map_err(|_| corrupt("best"))?;
        let stored = ParamStore::load_safetensors(gpu, checkpoint)?;
        let (mut params, mut state, mut best_params) = (ParamStore::new(), Vec::new(), Vec::new());
        for (name, tensor) in stored.iter() {
            if let Some(key) = name.strip_prefix("optimizer.") {
                state.push((key.to_string(), tensor.clone()));
            } else if let Some(key) = name.strip_prefix("best.") {
                best_params.push((key.to_string(), tensor.shape.clone(), tensor.to_vec(gpu)?));
            } else {
                params.insert(name, tensor.clone());
            }
        }
        let spec = &config.spec;
        for (name, shape) in spec
            .parameter_shapes()
            .into_iter()
            .chain(spec.running_shapes())
        {
            match params.get(&name) {
                Some(t) if t.shape == shape => {}
                _ => {
                    return Err(Error::file(
                        checkpoint,
                        format!("parameter `{name}` ({shape}) is missing or has another shape"),
                    ))
                }
            }
        }
        let best = BestSoFar {
            best: match (best["accuracy"].as_f64(), best["step"].as_u64()) {
                (Some(accuracy), Some(step)) => Some((accuracy, step)),
                _ => None,
            },
            params: best_params,
            evaluations_since: best["evaluations_since"].as_u64().unwrap_or(0) as usize,
        };
        let trainer = Self::with_params(gpu, config, batch_size, params, Some(state), step)?;
        Ok((trainer, best))
    }

    /// Writes the weights, running statistics, Adam's state, the step and the best validation
    /// result with its weights, atomically, to `path`.
    /// Refuses (as a divergence) weights that are no longer finite, so the last checkpoint on
    /// disk stays the last good one.
    /// The kernels of one training step (`Plan::profile`) on the last batch, the weights and
    /// running statistics kept as they were (the optimiser's moments move on).
    pub fn profile_step(&mut self, repeats: usize) -> Result<Profile> {
        let snapshot = self.snapshot()?;
        let profile = self.train_plan.profile(self.gpu, repeats)?;
        self.restore(&snapshot)?;
        Ok(profile)
    }

    pub fn save_checkpoint(&self, path: &Path, fingerprint: &str, best: &BestSoFar) -> Result<()> {
        for (name, _, values) in self.snapshot()? {
            if values.iter().any(|x| !x.is_finite()) {
                self.diverged_at.set(Some(self.steps));
                return Err(Error::Invalid(format!(
                    "training diverged by step {}: `{name}` holds NaN or infinity",
                    self.steps
                )));
            }
        }
        let mut store = ParamStore::new();
        for (name, tensor) in self.params.iter() {
            store.insert(name, tensor.clone());
        }
        for (name, tensor) in self.adam.state() {
            store.insert(&format!("optimizer.{name}"), tensor);
        }
        for (name, shape, values) in &best.params {
            store.insert_f32(self.gpu, &format!("best.{name}"), shape.clone(), values)?;
        }
        let best_json = match best.best {
            Some((accuracy, step)) => json!({
                "accuracy": accuracy,
                "step": step,
                "evaluations_since": best.evaluations_since,
            }),
            None => json!({}),
        };
        let metadata = BTreeMap::from([
            ("format".to_string(), CNN_CHECKPOINT_FORMAT.to_string()),
            ("config".to_string(), self.config.to_json().to_string()),
            ("data".to_string(), fingerprint.to_string()),
            ("step".to_string(), self.steps.to_string()),
            ("best".to_string(), best_json.to_string()),
        ]);
        store.save_safetensors(self.gpu, path, &metadata)
    }

    pub fn config(&self) -> &CnnTrainConfig {
        &self.config
    }

    /// The parameters as trained so far (live), running statistics included.
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// The parameters on the host, for keeping the best ones.
    pub fn snapshot(&self) -> Result<Vec<(String, Shape, Vec<f32>)>> {
        self.params.to_host(self.gpu)
    }

    /// Replaces the parameters' values with a snapshot's.
    pub fn restore(&mut self, snapshot: &[(String, Shape, Vec<f32>)]) -> Result<()> {
        for (name, _, values) in snapshot {
            let tensor = self.params.get(name).ok_or_else(|| {
                Error::Invalid(format!(
                    "the snapshot's parameter `{name}` is not trained here"
                ))
            })?;
            tensor.write(self.gpu, values)?;
        }
        Ok(())
    }

    pub fn steps_done(&self) -> u64 {
        self.steps
    }

    /// One training step on `batch` (the batch of step `steps_done()`).
    pub fn step(&mut self, batch: &PreparedBatch) -> Result<StepStats> {
        if batch.step != self.steps {
            return Err(Error::Invalid(format!(
                "the batch of step {} came for step {}",
                batch.step, self.steps
            )));
        }
        let spec = &self.config.spec;
        let learning_rate = self.config.learning_rate_at(self.steps);
        self.adam.set_learning_rate(self.gpu, learning_rate)?;
        self.embed_plan
            .write_input(self.gpu, self.embed_input, &batch.pixels)?;
        let embeddings = self.embed_plan.step(self.gpu)?.remove(0);
        if embeddings.iter().any(|x| !x.is_finite()) {
            return Err(self.diverged());
        }
        let mining = MiningConfig {
            strategy: self.config.mining,
            margin: self.config.margin,
            active_only: false,
        };
        let mined = mine_triplets(&embeddings, spec.embedding_dim, &batch.labels, mining)?;
        if mined.triplets.len() != self.triplet_count {
            return Err(Error::Invalid(format!(
                "mining gave {} triplets where the plan expects {}",
                mined.triplets.len(),
                self.triplet_count
            )));
        }
        let flat: Vec<u32> = mined.triplets.iter().flatten().copied().collect();
        self.train_plan
            .write_input(self.gpu, self.train_input, &batch.pixels)?;
        self.train_plan
            .write_input_u32(self.gpu, self.triplets_input, &flat)?;
        let loss = self.train_plan.step(self.gpu)?[0][0];
        if !loss.is_finite() {
            return Err(self.diverged());
        }
        self.steps += 1;
        Ok(StepStats {
            step: self.steps,
            loss,
            active_triplets: mined.stats.active_fraction,
            learning_rate,
        })
    }

    fn diverged(&self) -> Error {
        self.diverged_at.set(Some(self.steps + 1));
        Error::Invalid(format!(
            "training diverged at step {}: the loss became NaN or infinite",
            self.steps + 1,
        ))
    }

    /// Embeddings of `images` ([N, channels, input, input]) with the running statistics.
    pub fn embed(&mut self, images: &[f32]) -> Result<Vec<f32>> {
        self.inference.run(self.gpu, images, &mut |_| {})
    }

    /// Whether training stopped because the loss, an embedding or a weight became NaN or
    /// infinite (rather than for another error).
    pub fn diverged_at(&self) -> Option<u64> {
        self.diverged_at.get()
    }
}
