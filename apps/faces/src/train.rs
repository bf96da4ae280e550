//! Triplet training of the Siamese head on precomputed descriptors.
//!
//! The trunk is frozen and the descriptor has no parameters, so the descriptor of every
//! training image (and augmented variant, see `faces::augment`) is computed once; an epoch then
//! runs only the projection. A step is:
//! 1. pick a P x K batch (`faces::sampler`, deterministic per seed and epoch) and, per row, one
//!    of the image's variants (drawn from an RNG seeded by seed and epoch);
//! 2. embed the batch (a forward-only plan) and mine triplets on the CPU (`faces::mining`);
//! 3. run the training plan: the same head, the triplet loss on the mined triplets, its
//!    gradient and the optimiser update, in one submission.
//!
//! The head starts from learned whitening of the training descriptors (`faces::whitening`), or
//! from random weights (`HeadInit::Random`); the triplet loss then trains it from there.
//! Both plans share the head's parameter buffers, so step 2 always sees the current weights.
//! Everything an epoch draws depends only on (seed, epoch), and the GPU kernels are
//! deterministic, so the same seed gives the same model bit for bit, and training resumed from a
//! checkpoint (head weights, optimiser state, step count, epoch) continues exactly as an
//! uninterrupted run would.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde_json::{json, Value};

use super::augment::Augment;
use super::mining::{mine_triplets, pairwise_sq_distances, Mining, MiningConfig};
use super::network::{NetworkSpec, PROJECT_BIAS, PROJECT_WEIGHT};
use super::sampler::BatchSampler;
use super::whitening::learned_whitening;
use wgnn::error::{Error, Result};
use wgnn::graph::{Graph, NodeId, Plan, PlanSpec, Profile};
use wgnn::nn::{read_safetensors_metadata, ParamStore};
use wgnn::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use wgnn::rng::Rng;
use wgnn::Gpu;

/// Format tag of checkpoint files.
pub const CHECKPOINT_FORMAT: &str = "wgnn-siamese-checkpoint-v1";

/// Mean pairwise squared distance (unit embeddings: 0 to 4, about 2 when spread) under which
/// the embeddings count as collapsed to one point.
pub const COLLAPSE_SPREAD: f32 = 1e-3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OptimizerKind {
    /// With PyTorch's defaults (betas 0.9 and 0.999, eps 1e-8).
    Adam,
    /// With momentum 0.9.
    Sgd,
}

/// How the head's projection starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum HeadInit {
    /// Learned whitening of the training descriptors.
    Whitening,
    /// Xavier-normal weights, zero bias.
    Random,
}

impl HeadInit {
    pub fn as_str(self) -> &'static str {
        match self {
            HeadInit::Whitening => "whitening",
            HeadInit::Random => "random",
        }
    }
}

impl OptimizerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OptimizerKind::Adam => "adam",
            OptimizerKind::Sgd => "sgd",
        }
    }
}

/// Everything that decides the trained weights (with the training data).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    pub network: NetworkSpec,
    pub init: HeadInit,
    /// Shrinkage of the within-identity scatter in the whitening (see `faces::whitening`).
    pub whitening_shrinkage: f64,
    pub epochs: usize,
    pub identities_per_batch: usize,
    pub images_per_identity: usize,
    pub margin: f32,
    pub mining: Mining,
    pub optimizer: OptimizerKind,
    pub learning_rate: f32,
    pub weight_decay: f32,
    /// The learning rate is multiplied by 0.1 for this last fraction of the epochs.
    pub final_decay_fraction: f32,
    /// The variants whose descriptors the `TrainingSet` holds (recorded, not applied here).
    pub augment: Augment,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            network: NetworkSpec::default(),
            init: HeadInit::Whitening,
            whitening_shrinkage: 0.25,
            epochs: 30,
            identities_per_batch: 8,
            images_per_identity: 4,
            margin: 0.2,
            mining: Mining::BatchHard,
            optimizer: OptimizerKind::Adam,
            learning_rate: 1e-3,
            weight_decay: 1e-4,
            final_decay_fraction: 0.25,
            augment: Augment {
                flip: false,
                shift: true,
                brightness: true,
                zoom: true,
                gamma: true,
                blur: true,
                light: true,
                noise: true,
                distance: true,
                tilt: false,
                copies: 4,
            },
            seed: 1,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        self.network.validate()?;
        if self.epochs == 0 {
            return Err(Error::Invalid("--epochs must be at least 1".into()));
        }
        if self.identities_per_batch < 2 || self.images_per_identity < 2 {
            return Err(Error::Invalid(format!(
                "--identities-per-batch {} and --images-per-identity {}: a batch holds triplets \
                 only when both are at least 2",
                self.identities_per_batch, self.images_per_identity
            )));
        }
        if !(self.margin.is_finite() && self.margin > 0.0) {
            return Err(Error::Invalid(format!(
                "--margin {} must be > 0",
                self.margin
            )));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(Error::Invalid(format!(
                "--learning-rate {} must be > 0",
                self.learning_rate
            )));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::Invalid(format!(
                "--weight-decay {} must be >= 0",
                self.weight_decay
            )));
        }
        if !(self.whitening_shrinkage.is_finite() && self.whitening_shrinkage > 0.0) {
            return Err(Error::Invalid(format!(
                "whitening shrinkage {} must be > 0",
                self.whitening_shrinkage
            )));
        }
        if !(0.0..=1.0).contains(&self.final_decay_fraction) {
            return Err(Error::Invalid(format!(
                "final decay fraction {} must be in [0, 1]",
                self.final_decay_fraction
            )));
        }
        Ok(())
    }

    /// The learning rate of epoch `epoch` (0-based).
    pub fn learning_rate_at(&self, epoch: usize) -> f32 {
        let decayed = ((1.0 - self.final_decay_fraction) * self.epochs as f32).ceil() as usize;
        if epoch >= decayed {
            self.learning_rate * 0.1
        } else {
            self.learning_rate
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "network": self.network.to_json(),
            "init": self.init.as_str(),
            "whitening_shrinkage": self.whitening_shrinkage,
            "epochs": self.epochs,
            "identities_per_batch": self.identities_per_batch,
            "images_per_identity": self.images_per_identity,
            "margin": self.margin,
            "mining": self.mining.as_str(),
            "optimizer": self.optimizer.as_str(),
            "learning_rate": self.learning_rate,
            "weight_decay": self.weight_decay,
            "final_decay_fraction": self.final_decay_fraction,
            "augment": self.augment.list(),
            "augment_copies": self.augment.copies,
            "seed": self.seed,
        })
    }
}

/// Descriptors of the training images (`NetworkSpec::build_descriptor`): `variants` versions
/// of each of `labels.len()` images, variant-major (`descriptors[(v * n + i) * descriptor_len..]`
/// is variant `v` of image `i`; variant 0 is the image itself).
#[derive(Clone, Debug)]
pub struct TrainingSet {
    pub descriptors: Vec<f32>,
    pub descriptor_len: usize,
    pub variants: usize,
    pub labels: Vec<u32>,
    /// Names the data (identities and files), so that a checkpoint is not resumed on other data.
    pub fingerprint: String,
}

impl TrainingSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The descriptor of variant `v` of image `i`.
    pub fn descriptor(&self, v: usize, i: usize) -> &[f32] {
        let n = self.labels.len();
        &self.descriptors[(v * n + i) * self.descriptor_len..][..self.descriptor_len]
    }

    /// The descriptors of the original (variant 0) images.
    pub fn originals(&self) -> &[f32] {
        &self.descriptors[..self.labels.len() * self.descriptor_len]
    }
}

/// What one epoch did, as `--log-json` writes it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochStats {
    /// 1-based.
    pub epoch: usize,
    /// Mean over batches of the loss that was minimised.
    pub loss: f32,
    /// Mean over batches of the fraction of mined triplets with a positive loss.
    pub active_triplets: f32,
    /// Mean anchor-positive and anchor-negative squared distances of the mined triplets.
    pub pos_dist: f32,
    pub neg_dist: f32,
    /// Mean squared distance between all pairs of rows in a batch (collapse shows here).
    pub spread: f32,
    /// Wall time of the epoch in milliseconds.
    pub ms: f64,
}

impl EpochStats {
    /// `{"epoch": E, "loss": L, "active_triplets": A, "pos_dist": P, "neg_dist": N, "ms": M}`.
    pub fn to_json_line(&self) -> String {
        let number = |x: f64| Value::from(x).to_string();
        format!(
            "{{\"epoch\": {}, \"loss\": {}, \"active_triplets\": {}, \"pos_dist\": {}, \
             \"neg_dist\": {}, \"ms\": {}}}",
            self.epoch,
            number(self.loss as f64),
            number(self.active_triplets as f64),
            number(self.pos_dist as f64),
            number(self.neg_dist as f64),
            number((self.ms * 10.0).round() / 10.0),
        )
    }

    /// Collapse: every embedding (nearly) the same point, so the loss sits at the margin and no
    /// gradient separates anything.
    pub fn collapsed(&self, margin: f32) -> bool {
        self.spread < COLLAPSE_SPREAD && (self.loss - margin).abs() < 0.05 * margin
    }
}

/// Advice printed when training collapses.
pub fn collapse_advice(stats: &EpochStats, config: &TrainConfig) -> String {
    format!(
        "training collapsed at epoch {}: all embeddings are nearly the same point (mean squared \
         distance {:.2e}, loss {:.4} at the margin {}). Lower --learning-rate (now {}), use \
         --mining semi-hard (batch-hard on few identities can pull everything together), or \
         lower --weight-decay (now {}).",
        stats.epoch,
        stats.spread,
        stats.loss,
        config.margin,
        config.learning_rate,
        config.weight_decay
    )
}

/// Training in progress: the head, the optimiser and the compiled plans.
pub struct Trainer<'a> {
    gpu: &'a Gpu,
    config: TrainConfig,
    set: &'a TrainingSet,
    sampler: BatchSampler,
    head: ParamStore,
    optimizer: Box<dyn Optimizer>,
    embed_plan: Plan,
    embed_input: NodeId,
    train_plan: Plan,
    train_input: NodeId,
    triplets_input: NodeId,
    scale_input: NodeId,
    triplet_count: usize,
    /// Epochs completed.
    epoch: usize,
}

impl<'a> Trainer<'a> {
    /// A fresh head: learned whitening of the training descriptors (every variant), or
    /// random weights drawn from the seed.
    pub fn new(gpu: &'a Gpu, config: TrainConfig, set: &'a TrainingSet) -> Result<Self> {
        config.validate()?;
        let head = match config.init {
            HeadInit::Random => config.network.init_head(gpu, &mut Rng::new(config.seed))?,
            HeadInit::Whitening => {
                let labels: Vec<u32> = (0..set.variants)
                    .flat_map(|_| set.labels.iter().copied())
                    .collect();
                let map = learned_whitening(
                    &set.descriptors,
                    config.network.descriptor_len(),
                    &labels,
                    config.network.head.embedding_dim,
                    config.whitening_shrinkage,
                )?;
                let mut head = ParamStore::new();
                head.insert_f32(gpu, PROJECT_WEIGHT, [map.rows, map.cols], &map.weight)?;
                head.insert_f32(gpu, PROJECT_BIAS, [map.rows], &map.bias)?;
                head
            }
        };
        Self::with_head(gpu, config, set, head, None, 0)
    }

    /// Continues from a checkpoint written by [`Trainer::save_checkpoint`] with the same
    /// configuration (the number of epochs may differ) and the same data.
    pub fn resume(
        gpu: &'a Gpu,
        config: TrainConfig,
        set: &'a TrainingSet,
        checkpoint: &Path,
    ) -> Result<Self> {
        config.validate()?;
        let metadata = read_safetensors_metadata(checkpoint)?;
        if metadata.get("format").map(String::as_str) != Some(CHECKPOINT_FORMAT) {
            return Err(Error::file(
                checkpoint,
                format!("not a wgnn training checkpoint (no format tag `{CHECKPOINT_FORMAT}`)"),
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
        wanted["epochs"] = Value::Null;
        saved_cmp["epochs"] = Value::Null;
        if wanted != saved_cmp {
            return Err(Error::file(
                checkpoint,
                format!(
                    "this checkpoint was written with other settings: resume with the same \
                     flags as the interrupted run (only --epochs may change).\n  checkpoint: \
                     {saved_cmp}\n  now:        {wanted}"
                ),
            ));
        }
        if field("data")? != &set.fingerprint {
            return Err(Error::file(
                checkpoint,
                "this checkpoint was trained on other images (the identities or files differ)",
            ));
        }
        let parse = |key: &str| -> Result<u64> {
            field(key)?
                .parse()
                .map_err(|_| Error::file(checkpoint, format!("corrupt `{key}`")))
        };
        let epoch = parse("epoch")? as usize;
        let step = parse("step")?;
        let stored = ParamStore::load_safetensors(gpu, checkpoint)?;
        let mut head = ParamStore::new();
        let mut state = Vec::new();
        for (name, tensor) in stored.iter() {
            match name.strip_prefix("optimizer.") {
                Some(key) => state.push((key.to_string(), tensor.clone())),
                None => head.insert(name, tensor.clone()),
            }
        }
        for (name, shape) in config.network.head_parameter_shapes() {
            match head.get(&name) {
                Some(t) if t.shape == shape => {}
                _ => {
                    return Err(Error::file(
                        checkpoint,
                        format!(
                            "head parameter `{name}` ({shape}) is missing or has another shape"
                        ),
                    ))
                }
            }
        }
        Self::with_head(gpu, config, set, head, Some((state, step)), epoch)
    }

    fn with_head(
        gpu: &'a Gpu,
        config: TrainConfig,
        set: &'a TrainingSet,
        head: ParamStore,
        optimizer_state: Option<(Vec<(String, wgnn::Tensor)>, u64)>,
        epoch: usize,
    ) -> Result<Self> {
        let descriptor_len = config.network.descriptor_len();
        if set.variants != config.augment.variants() {
            return Err(Error::Invalid(format!(
                "training set holds {} variants per image, augmentation `{}` makes {}",
                set.variants,
                config.augment.list(),
                config.augment.variants()
            )));
        }
        if set.descriptor_len != descriptor_len {
            return Err(Error::Invalid(format!(
                "training set holds descriptors of {} values, the network makes {descriptor_len}",
                set.descriptor_len
            )));
        }
        let sampler = BatchSampler::new(
            &set.labels,
            config.identities_per_batch,
            config.images_per_identity,
            config.seed,
        )?;
        let batch = sampler.batch_size();
        let k = config.images_per_identity;
        let triplet_count = match config.mining {
            Mining::BatchHard => batch,
            Mining::SemiHard => batch * (k - 1),
            Mining::BatchAll => batch * (k - 1) * (batch - k),
        };

        let mut optimizer: Box<dyn Optimizer> = match config.optimizer {
            OptimizerKind::Adam => Box::new(Adam::new(
                gpu,
                AdamConfig {
                    lr: config.learning_rate,
                    weight_decay: config.weight_decay,
                    ..Default::default()
                },
            )?),
            OptimizerKind::Sgd => Box::new(Sgd::new(
                gpu,
                SgdConfig {
                    lr: config.learning_rate,
                    momentum: 0.9,
                    weight_decay: config.weight_decay,
                    nesterov: false,
                },
            )?),
        };
        if let Some((state, step)) = &optimizer_state {
            optimizer.load_state(gpu, state)?;
            optimizer.set_step_count(gpu, *step)?;
        }

        let build = |g: &mut Graph| -> Result<(NodeId, NodeId)> {
            let input = g.input("descriptors", [batch, descriptor_len]);
            let embeddings = config.network.build_projection(g, input)?;
            Ok((input, embeddings))
        };
        let mut g = Graph::new();
        let (embed_input, embeddings) = build(&mut g)?;
        let embed_plan = Plan::compile(
            gpu,
            &g,
            &head,
            PlanSpec {
                outputs: vec![embeddings],
                ..Default::default()
            },
        )?;

        let mut g = Graph::new();
        let (train_input, embeddings) = build(&mut g)?;
        let triplets_input = g.input_u32("triplets", [triplet_count, 3]);
        let scale_input = g.input("loss scale", [1]);
        let loss = g.triplet_loss(embeddings, triplets_input, config.margin)?;
        let loss = g.mul(loss, scale_input)?;
        let params: Vec<NodeId> = g.params().into_iter().map(|(id, _, _)| id).collect();
        let grads = g.gradients(loss, &params)?;
        let train_plan = Plan::compile(
            gpu,
            &g,
            &head,
            PlanSpec {
                outputs: vec![loss],
                updates: params.into_iter().zip(grads).collect(),
                optimizer: Some(optimizer.as_mut()),
                ..Default::default()
            },
        )?;
        Ok(Self {
            gpu,
            config,
            set,
            sampler,
            head,
            optimizer,
            embed_plan,
            embed_input,
            train_plan,
            train_input,
            triplets_input,
            scale_input,
            triplet_count,
            epoch,
        })
    }

    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Epochs completed so far.
    pub fn epochs_done(&self) -> usize {
        self.epoch
    }

    pub fn batches_per_epoch(&self) -> usize {
        self.sampler.batches_per_epoch()
    }

    /// The head's parameters (live: they change with every step).
    pub fn head(&self) -> &ParamStore {
        &self.head
    }

    /// Runs the next epoch, calling `on_batch(done)` after each batch. A NaN or infinite loss
    /// is an error; the caller decides what to do with collapse (see `EpochStats::collapsed`).
    pub fn run_epoch(&mut self, on_batch: &mut dyn FnMut(usize)) -> Result<EpochStats> {
        let start = Instant::now();
        let epoch = self.epoch;
        self.optimizer
            .set_learning_rate(self.gpu, self.config.learning_rate_at(epoch))?;
        let batches = self.sampler.epoch(epoch as u64);
        let mut variant_rng = Rng::new(
            self.config.seed ^ (epoch as u64 + 1).wrapping_mul(0x9E6C_63D0_676A_9A99) ^ 0x5EED,
        );
        let dim = self.config.network.head.embedding_dim;
        let mining = MiningConfig {
            strategy: self.config.mining,
            margin: self.config.margin,
            active_only: false,
        };
        let (mut loss_sum, mut active_sum, mut pos_sum, mut neg_sum, mut spread_sum) =
            (0f64, 0f64, 0f64, 0f64, 0f64);
        let mut descriptors =
            Vec::with_capacity(self.sampler.batch_size() * self.set.descriptor_len);
        for (b, batch) in batches.iter().enumerate() {
            descriptors.clear();
            for &image in &batch.images {
                let variant = variant_rng.below(self.set.variants);
                descriptors.extend_from_slice(self.set.descriptor(variant, image as usize));
            }
            self.embed_plan
                .write_input(self.gpu, self.embed_input, &descriptors)?;
            let embeddings = self.embed_plan.step(self.gpu)?.remove(0);
            if embeddings.iter().any(|x| !x.is_finite()) {
                return Err(self.diverged(epoch, b));
            }
            let mined = mine_triplets(&embeddings, dim, &batch.labels, mining)?;
            if mined.triplets.len() != self.triplet_count {
                return Err(Error::Invalid(format!(
                    "mining gave {} triplets where the plan expects {}",
                    mined.triplets.len(),
                    self.triplet_count
                )));
            }
            // Batch-all averages over the active triplets only (Hermans et al.): the plan's
            // mean over all of them (inactive ones add zero) is rescaled.
            let scale = match self.config.mining {
                Mining::BatchAll => {
                    let active = (mined.stats.active_fraction as f64 * self.triplet_count as f64)
                        .round()
                        .max(1.0);
                    (self.triplet_count as f64 / active) as f32
                }
                _ => 1.0,
            };
            let flat: Vec<u32> = mined.triplets.iter().flatten().copied().collect();
            self.train_plan
                .write_input(self.gpu, self.train_input, &descriptors)?;
            self.train_plan
                .write_input_u32(self.gpu, self.triplets_input, &flat)?;
            self.train_plan
                .write_input(self.gpu, self.scale_input, &[scale])?;
            let loss = self.train_plan.step(self.gpu)?[0][0];
            if !loss.is_finite() {
                return Err(self.diverged(epoch, b));
            }
            let distances = pairwise_sq_distances(&embeddings, dim);
            let rows = batch.labels.len();
            spread_sum +=
                distances.iter().map(|&d| d as f64).sum::<f64>() / (rows * (rows - 1)) as f64;
            loss_sum += loss as f64;
            active_sum += mined.stats.active_fraction as f64;
            pos_sum += mined.stats.mean_pos_dist as f64;
            neg_sum += mined.stats.mean_neg_dist as f64;
            on_batch(b + 1);
        }
        self.epoch += 1;
        let n = batches.len() as f64;
        Ok(EpochStats {
            epoch: self.epoch,
            loss: (loss_sum / n) as f32,
            active_triplets: (active_sum / n) as f32,
            pos_dist: (pos_sum / n) as f32,
            neg_dist: (neg_sum / n) as f32,
            spread: (spread_sum / n) as f32,
            ms: start.elapsed().as_secs_f64() * 1000.0,
        })
    }

    fn diverged(&self, epoch: usize, batch: usize) -> Error {
        Error::Invalid(format!(
            "training diverged: the loss became NaN or infinite at epoch {}, batch {}; train \
             again with a lower --learning-rate (now {}); no model was written",
            epoch + 1,
            batch + 1,
            self.config.learning_rate
        ))
    }

    /// Writes the head, the optimiser state and the position (epochs done, step count)
    /// atomically to `path`.
    /// The kernels of one training step (`Plan::profile`) on the last batch, the head's weights
    /// kept as they were (the optimiser's moments move on).
    pub fn profile_step(&mut self, repeats: usize) -> Result<Profile> {
        let weights = self.head.to_host(self.gpu)?;
        let profile = self.train_plan.profile(self.gpu, repeats)?;
        for (name, _, values) in &weights {
            if let Some(tensor) = self.head.get(name) {
                tensor.write(self.gpu, values)?;
            }
        }
        Ok(profile)
    }

    pub fn save_checkpoint(&self, path: &Path) -> Result<()> {
        let mut store = ParamStore::new();
        for (name, tensor) in self.head.iter() {
            store.insert(name, tensor.clone());
        }
        for (name, tensor) in self.optimizer.state() {
            store.insert(&format!("optimizer.{name}"), tensor);
        }
        let step = self.optimizer.step_count(self.gpu)?;
        let metadata = BTreeMap::from([
            ("format".to_string(), CHECKPOINT_FORMAT.to_string()),
            ("config".to_string(), self.config.to_json().to_string()),
            ("data".to_string(), self.set.fingerprint.clone()),
            ("epoch".to_string(), self.epoch.to_string()),
            ("step".to_string(), step.to_string()),
        ]);
        store.save_safetensors(self.gpu, path, &metadata)
    }
}
