//! A small CNN learns to tell vertical from horizontal stripes in noise, then is saved.
use wgnn::nn::{init::Init, ParamStore};
use wgnn::ops::{conv::ConvParams, pool::PoolParams};
use wgnn::optim::{Adam, AdamConfig};
use wgnn::{rng::Rng, Gpu, Graph, Plan, PlanSpec, Result};

pub fn train(steps: usize, out: &str) -> Result<Vec<f32>> {
    let (gpu, mut rng, mut params) = (Gpu::new()?, Rng::new(7), ParamStore::new());
    params.insert_weight_and_bias(&gpu, "conv", [8, 1, 3, 3], Init::kaiming_normal(), &mut rng)?;
    params.insert_weight_and_bias(&gpu, "fc", [1, 8], Init::kaiming_normal(), &mut rng)?;
    let mut g = Graph::new(); // conv 3x3 + ReLU, max pool 2x2, mean, linear, BCE loss
    let (x, labels) = (g.input("x", [16, 1, 12, 12]), g.input("labels", [16, 1]));
    let names = ["conv.weight", "conv.bias", "fc.weight", "fc.bias"];
    let w = g.params_from(&params, &names)?; // w[0] is conv.weight, ...
    let h = g.conv_relu(x, w[0], Some(w[1]), &ConvParams::new(2).padding(1))?;
    let h = g.max_pool(h, &PoolParams::new(&[2, 2]))?;
    let h = g.global_avg_pool(h)?;
    let logits = g.linear(h, w[2], Some(w[3]))?;
    let loss = g.bce_with_logits(logits, labels)?;
    let grads = g.gradients(loss, &w)?; // reverse-mode autodiff adds the backward nodes
    let mut adam = Adam::new(&gpu, AdamConfig::default())?;
    let spec = PlanSpec::training(vec![loss], w.into_iter().zip(grads).collect(), &mut adam);
    let mut plan = Plan::compile(&gpu, &g, &params, spec)?; // buffers and pipelines, once
    let mut images = rng.vec_f32(16 * 144, -1.0, 1.0); // noise, plus stripes of 1s:
    for (k, pixel) in images.iter_mut().enumerate() {
        *pixel += ([k / 12, k][k / 144 % 2] % 2) as f32; // odd images' stripes are vertical
    }
    plan.write_input(&gpu, x, &images)?;
    plan.write_input(&gpu, labels, &[0.0, 1.0].repeat(8))?;
    let losses: Result<Vec<f32>> = (0..steps).map(|_| Ok(plan.step(&gpu)?[0][0])).collect();
    params.save_safetensors(&gpu, out, &Default::default())?;
    losses
}

fn main() -> Result<()> {
    let losses = train(300, "small_cnn.safetensors")?;
    println!("loss {} -> {}", losses[0], losses[299]);
    Ok(())
}
