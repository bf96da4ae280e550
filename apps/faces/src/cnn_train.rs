//! Triplet training of the convolutional network (`faces::cnn`) from random weights, end to end
//! on images: every step samples P identities x K images (`faces::sampler`), embeds the batch
//! with batch statistics and mines triplets on the CPU (`faces::mining`), then runs one compiled
//! training step: the network, the triplet loss on the mined triplets, the gradients of every
//! convolution, normalisation and embedding weight, the Adam update and the running statistics'
//! update, in one submission. Both plans share the parameter buffers.

use wgnn::graph::{Graph, NodeId};
use wgnn::nn::ParamStore;
use wgnn::ops::batch_norm::{TrackRunningStats, BATCH_NORM_MOMENTUM};
use wgnn::optim::{Adam, AdamConfig};
use wgnn::rng::Rng;
use wgnn::{Error, Gpu, Plan, PlanSpec, Result};

use crate::cnn::CnnSpec;
use crate::mining::{mine_triplets, Mining, MiningConfig};
use crate::sampler::BatchSampler;

/// Everything that decides the trained weights (with the images).
#[derive(Clone, Debug, PartialEq)]
pub struct CnnTrainConfig {
    pub spec: CnnSpec,
    pub identities_per_batch: usize,
    pub images_per_identity: usize,
    pub margin: f32,
    pub mining: Mining,
    pub learning_rate: f32,
    pub weight_decay: f32,
    pub seed: u64,
}

impl Default for CnnTrainConfig {
    fn default() -> Self {
        Self {
            spec: CnnSpec::default(),
            identities_per_batch: 10,
            images_per_identity: 5,
            margin: 0.2,
            mining: Mining::BatchHard,
            learning_rate: 1e-3,
            weight_decay: 0.0,
            seed: 1,
        }
    }
}

/// What one step did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    pub loss: f32,
    /// Fraction of the mined triplets with a positive hinge.
    pub active_triplets: f32,
}

pub struct CnnTrainer<'a> {
    gpu: &'a Gpu,
    config: CnnTrainConfig,
    images: &'a [f32],
    sampler: BatchSampler,
    params: ParamStore,
    embed_plan: Plan,
    embed_input: NodeId,
    train_plan: Plan,
    train_input: NodeId,
    triplets_input: NodeId,
    triplet_count: usize,
    batches: Vec<crate::sampler::Batch>,
    epoch: u64,
    steps: u64,
}

impl<'a> CnnTrainer<'a> {
    /// A trainer on `images` ([N, channels, input, input], values in [0, 1]) with identity
    /// `labels`, from random weights drawn from the config's seed.
    pub fn new(
        gpu: &'a Gpu,
        config: CnnTrainConfig,
        images: &'a [f32],
        labels: &[u32],
    ) -> Result<Self> {
        let spec = &config.spec;
        spec.validate()?;
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
        let sampler = BatchSampler::new(
            labels,
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
        let params = spec.init(gpu, &mut Rng::new(config.seed))?;
        let shape = [batch, spec.channels, spec.input, spec.input];

        let mut g = Graph::new();
        let embed_input = g.input("images", shape);
        let (embeddings, _) = spec.build_training(&mut g, embed_input)?;
        let outputs = vec![embeddings];
        let embed_plan = Plan::compile(
            gpu,
            &g,
            &params,
            PlanSpec {
                outputs,
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
                lr: config.learning_rate,
                weight_decay: config.weight_decay,
                ..Default::default()
            },
        )?;
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
        let mut updates: Vec<(NodeId, NodeId)> = trained.into_iter().zip(grads).collect();
        updates.extend(rule.updates());
        let train_plan = Plan::compile(
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
        )?;
        Ok(Self {
            gpu,
            config,
            images,
            sampler,
            params,
            embed_plan,
            embed_input,
            train_plan,
            train_input,
            triplets_input,
            triplet_count,
            batches: Vec::new(),
            epoch: 0,
            steps: 0,
        })
    }

    /// The parameters as trained so far (live), running statistics included.
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    pub fn steps_done(&self) -> u64 {
        self.steps
    }

    /// One training step on the next batch of the sampler's epochs.
    pub fn step(&mut self) -> Result<StepStats> {
        if self.batches.is_empty() {
            self.batches = self.sampler.epoch(self.epoch);
            self.batches.reverse();
            self.epoch += 1;
        }
        let batch = self.batches.pop().expect("an epoch has batches");
        let spec = &self.config.spec;
        let image_len = spec.channels * spec.input * spec.input;
        let mut pixels = Vec::with_capacity(batch.images.len() * image_len);
        for &i in &batch.images {
            pixels.extend_from_slice(&self.images[i as usize * image_len..][..image_len]);
        }
        self.embed_plan
            .write_input(self.gpu, self.embed_input, &pixels)?;
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
            .write_input(self.gpu, self.train_input, &pixels)?;
        self.train_plan
            .write_input_u32(self.gpu, self.triplets_input, &flat)?;
        let loss = self.train_plan.step(self.gpu)?[0][0];
        if !loss.is_finite() {
            return Err(self.diverged());
        }
        self.steps += 1;
        Ok(StepStats {
            loss,
            active_triplets: mined.stats.active_fraction,
        })
    }

    fn diverged(&self) -> Error {
        Error::Invalid(format!(
            "training diverged at step {}: the loss became NaN or infinite; train again with a \
             lower --learning-rate (now {})",
            self.steps + 1,
            self.config.learning_rate
        ))
    }

    /// Embeddings of `images` ([N, channels, input, input]) with the running statistics, in
    /// batches of the trainer's batch size.
    pub fn embed(&self, images: &[f32]) -> Result<Vec<f32>> {
        embed(self.gpu, &self.config.spec, &self.params, images)
    }
}

/// Embeddings of `images` by the network of `spec` with `params` (running statistics), a
/// compiled plan of up to 64 images run as often as needed (the last batch padded).
pub fn embed(gpu: &Gpu, spec: &CnnSpec, params: &ParamStore, images: &[f32]) -> Result<Vec<f32>> {
    let image_len = spec.channels * spec.input * spec.input;
    let n = images.len() / image_len;
    let batch = n.clamp(1, 64);
    let mut g = Graph::new();
    let x = g.input("images", [batch, spec.channels, spec.input, spec.input]);
    let e = spec.build_inference(&mut g, x)?;
    let mut plan = Plan::compile(
        gpu,
        &g,
        params,
        PlanSpec {
            outputs: vec![e],
            ..Default::default()
        },
    )?;
    let mut out = Vec::with_capacity(n * spec.embedding_dim);
    for start in (0..n).step_by(batch) {
        let end = (start + batch).min(n);
        let mut input = images[start * image_len..end * image_len].to_vec();
        input.resize(batch * image_len, 0.0);
        plan.write_input(gpu, x, &input)?;
        let e = plan.step(gpu)?.remove(0);
        out.extend_from_slice(&e[..(end - start) * spec.embedding_dim]);
    }
    Ok(out)
}
