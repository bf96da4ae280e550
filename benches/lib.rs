//! The benchmarks live in `kernels/`: `cargo bench --bench kernels`. This library holds what
//! they share with the examples (`examples/profile_train_step.rs`).

use wgnn::graph::Graph;
use wgnn::nn::{init::Init, ParamStore};
use wgnn::ops::{conv::ConvParams, pool::PoolParams};
use wgnn::optim::{Adam, AdamConfig};
use wgnn::rng::Rng;
use wgnn::{Gpu, Plan, PlanSpec};
use wgnn_faces::mining::{mine_triplets, Mining, MiningConfig};

const IDENTITIES: usize = 10;
const IMAGES: usize = 5;
const BATCH: usize = IDENTITIES * IMAGES;
const EMBEDDING: usize = 128;

/// One compiled training step of the reference Siamese network `train_step/conv4_b50_56x48`:
/// grey input 56x48, batch 50 (10 identities x 5 images); conv 3x3 pad 1 with 32, 64, 128 and
/// 256 channels, each followed by ReLU and the first three by 2x2 max pooling; global average
/// pooling; linear 256 -> 128; L2 normalisation; the triplet loss (margin 0.2) on the batch-hard
/// triplets of the initial weights (mined by `train_siamese`'s own CPU mining, outside the
/// step); the backward pass; the Adam update. Inputs are written: the plan is ready to step.
pub fn conv4_training_step(gpu: &Gpu) -> wgnn::Result<TrainingStep> {
    let mut rng = Rng::new(11);
    let mut params = ParamStore::new();
    let widths = [1, 32, 64, 128, 256];
    for b in 0..4 {
        let shape = [widths[b + 1], widths[b], 3, 3];
        params.insert_weight_and_bias(
            gpu,
            &format!("conv{b}"),
            shape,
            Init::kaiming_normal(),
            &mut rng,
        )?;
    }
    params.insert_weight_and_bias(
        gpu,
        "embed",
        [EMBEDDING, 256],
        Init::kaiming_normal(),
        &mut rng,
    )?;
    let names: Vec<String> = params.iter().map(|(name, _)| name.to_string()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();

    let mut g = Graph::new();
    let x = g.input("images", [BATCH, 1, 56, 48]);
    let triplets = g.input_u32("triplets", [BATCH, 3]);
    let w = g.params_from(&params, &names)?;
    let weight = |name: &str| w[names.iter().position(|n| *n == name).unwrap()];
    let mut h = x;
    for b in 0..4 {
        let (cw, cb) = (
            weight(&format!("conv{b}.weight")),
            weight(&format!("conv{b}.bias")),
        );
        h = g.conv_relu(h, cw, Some(cb), &ConvParams::new(2).padding(1))?;
        if b < 3 {
            h = g.max_pool(h, &PoolParams::new(&[2, 2]))?;
        }
    }
    let h = g.global_avg_pool(h)?;
    let e = g.linear(h, weight("embed.weight"), Some(weight("embed.bias")))?;
    let e = g.l2_normalize(e)?;
    let loss = g.triplet_loss(e, triplets, 0.2)?;
    let grads = g.gradients(loss, &w)?;

    let images = rng.vec_f32(BATCH * 56 * 48, 0.0, 1.0);
    let mut embed = Plan::compile(
        gpu,
        &g,
        &params,
        PlanSpec {
            outputs: vec![e],
            ..Default::default()
        },
    )?;
    embed.write_input(gpu, x, &images)?;
    let labels: Vec<u32> = (0..BATCH as u32).map(|i| i / IMAGES as u32).collect();
    let config = MiningConfig {
        strategy: Mining::BatchHard,
        margin: 0.2,
        active_only: false,
    };
    let embeddings = embed.step(gpu)?.remove(0);
    let mined = mine_triplets(&embeddings, EMBEDDING, &labels, config)
        .map_err(|e| wgnn::Error::Invalid(e.to_string()))?;
    let mined: Vec<u32> = mined.triplets.into_iter().flatten().collect();

    let mut adam = Adam::new(gpu, AdamConfig::default())?;
    let spec = PlanSpec::training(vec![loss], w.into_iter().zip(grads).collect(), &mut adam);
    let mut plan = Plan::compile(gpu, &g, &params, spec)?;
    plan.write_input(gpu, x, &images)?;
    plan.write_input_u32(gpu, triplets, &mined)?;
    Ok(TrainingStep { plan, _adam: adam })
}

/// A compiled training step and the optimiser whose state it updates.
pub struct TrainingStep {
    pub plan: Plan,
    _adam: Adam,
}
