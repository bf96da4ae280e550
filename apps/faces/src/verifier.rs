//! Verification as binary classification (the lecture's alternative to a distance threshold):
//! with the embedding frozen, a logistic unit on `|f(x1) - f(x2)|` is trained on same /
//! different pairs of the training identities with binary cross-entropy.
//!
//! Pairs: every same-identity pair (or `max_pairs_per_class` drawn, fewer where the features
//! would not fit one storage binding), and as many different-identity pairs drawn (seeded), so
//! that both classes weigh the same; by default among the training photos and the augmented
//! copies the model was trained on (`VerifierConfig::augmented`). The features `|f1 - f2|` are computed on
//! the CPU (the embeddings are fixed); the GPU runs full-batch Adam on the linear unit.

use serde_json::json;

use super::model::LogisticVerifier;
use wgnn::error::{Error, Result};
use wgnn::graph::{Graph, Plan, PlanSpec};
use wgnn::nn::ParamStore;
use wgnn::optim::{Adam, AdamConfig};
use wgnn::rng::Rng;
use wgnn::Gpu;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VerifierConfig {
    /// Full-batch Adam steps.
    pub steps: usize,
    pub learning_rate: f32,
    pub seed: u64,
    /// At most this many same-identity pairs (drawn when there are more).
    pub max_pairs_per_class: usize,
    /// Pair the training images' augmented variants too (those the model was trained on), not
    /// only the images themselves. The whitening makes the training people's own photos
    /// unusually close together; pairs across the copies (other distance, camera, light) are
    /// more like those of new people, so the unit does not learn to reject everything new
    /// (validated with `train` on s1-s20, `eval` on s21-s30: balanced accuracy 0.602 -> 0.969;
    /// docs/decisions/head-settings.md).
    pub augmented: bool,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            steps: 500,
            learning_rate: 0.05,
            seed: 1,
            max_pairs_per_class: 5_000,
            augmented: true,
        }
    }
}

/// Trains the logistic unit on all (balanced) pairs of `embeddings` (`[N, dim]`, one label
/// per row); returns it with its balanced accuracy on those pairs in its description.
pub fn train_verifier(
    gpu: &Gpu,
    embeddings: &[f32],
    dim: usize,
    labels: &[u32],
    config: VerifierConfig,
) -> Result<LogisticVerifier> {
    super::check_embeddings("train_verifier", embeddings, dim, labels.len())?;
    // Both classes' features `[2 * pairs, dim]` must fit one storage binding of the device.
    let binding = gpu
        .limits
        .max_storage_buffer_binding_size
        .min(gpu.limits.max_buffer_size) as usize;
    let fitting = binding / (2 * dim.max(1) * std::mem::size_of::<f32>());
    let (same, different) = balanced_pairs(
        labels,
        config.max_pairs_per_class.min(fitting).max(1),
        config.seed,
    )?;
    let pairs: Vec<(usize, usize, f32)> = same
        .iter()
        .map(|&(i, j)| (i, j, 1.0))
        .chain(different.iter().map(|&(i, j)| (i, j, 0.0)))
        .collect();
    let row = |i: usize| &embeddings[i * dim..(i + 1) * dim];
    let mut features = Vec::with_capacity(pairs.len() * dim);
    for &(i, j, _) in &pairs {
        features.extend(row(i).iter().zip(row(j)).map(|(a, b)| (a - b).abs()));
    }
    let targets: Vec<f32> = pairs.iter().map(|p| p.2).collect();

    let n = pairs.len();
    let mut g = Graph::new();
    let x = g.input("pair features", [n, dim]);
    let y = g.input("same", [n, 1]);
    let w = g.param("verifier.weight", [1, dim])?;
    let b = g.param("verifier.bias", [1])?;
    let logits = g.linear(x, w, Some(b))?;
    let loss = g.bce_with_logits(logits, y)?;
    let grads = g.gradients(loss, &[w, b])?;
    let mut params = ParamStore::new();
    // Zero start: the problem is convex, so nothing needs breaking symmetry.
    params.insert_f32(gpu, "verifier.weight", [1, dim], &vec![0.0; dim])?;
    params.insert_f32(gpu, "verifier.bias", [1], &[0.0])?;
    let mut adam = Adam::new(
        gpu,
        AdamConfig {
            lr: config.learning_rate,
            ..Default::default()
        },
    )?;
    let mut plan = Plan::compile(
        gpu,
        &g,
        &params,
        PlanSpec {
            outputs: vec![loss],
            updates: vec![(w, grads[0]), (b, grads[1])],
            optimizer: Some(&mut adam),
            ..Default::default()
        },
    )?;
    plan.write_input(gpu, x, &features)?;
    plan.write_input(gpu, y, &targets)?;
    let mut loss_value = f32::NAN;
    for _ in 0..config.steps {
        loss_value = plan.step(gpu)?[0][0];
        if !loss_value.is_finite() {
            return Err(Error::Invalid(
                "verifier training diverged (NaN loss): lower its learning rate".into(),
            ));
        }
    }
    let mut verifier = LogisticVerifier {
        weight: params.get("verifier.weight").unwrap().to_vec(gpu)?,
        bias: params.get("verifier.bias").unwrap().to_vec(gpu)?[0],
        description: serde_json::Value::Null,
    };
    let (mut right_same, mut right_different) = (0usize, 0usize);
    for &(i, j, target) in &pairs {
        let said_same = verifier.logit(row(i), row(j)) >= 0.0;
        if said_same && target == 1.0 {
            right_same += 1;
        } else if !said_same && target == 0.0 {
            right_different += 1;
        }
    }
    let accuracy = 0.5
        * (right_same as f64 / same.len() as f64 + right_different as f64 / different.len() as f64);
    verifier.description = json!({
        "kind": "logistic unit on |f(x1) - f(x2)|, P(same) = sigmoid(w . |f1 - f2| + b)",
        "training_pairs": {"same": same.len(), "different": different.len()},
        "training_loss": loss_value,
        "training_balanced_accuracy": accuracy,
        "steps": config.steps,
        "learning_rate": config.learning_rate,
        "seed": config.seed,
        "augmented": config.augmented,
    });
    Ok(verifier)
}

/// Row pairs `(i, j)`, `i < j`.
type PairList = Vec<(usize, usize)>;

/// Same-identity pairs (all, or `cap` drawn) and as many different-identity pairs drawn without
/// repetition, both in pair order.
fn balanced_pairs(labels: &[u32], cap: usize, seed: u64) -> Result<(PairList, PairList)> {
    let n = labels.len();
    let mut same = Vec::new();
    let mut different = Vec::new();
    for i in 0..n {
        for j in i + 1..n {
            if labels[i] == labels[j] {
                same.push((i, j));
            } else {
                different.push((i, j));
            }
        }
    }
    if same.is_empty() || different.is_empty() {
        return Err(Error::Invalid(format!(
            "the verifier needs same-identity and different-identity pairs: got {} and {} \
             (every identity needs two images, and two identities are needed)",
            same.len(),
            different.len()
        )));
    }
    let mut rng = Rng::new(seed);
    let mut draw = |pairs: &mut Vec<(usize, usize)>, k: usize| {
        if pairs.len() > k {
            rng.shuffle(pairs);
            pairs.truncate(k);
            pairs.sort_unstable();
        }
    };
    draw(&mut same, cap);
    let k = same.len();
    draw(&mut different, k);
    Ok((same, different))
}
