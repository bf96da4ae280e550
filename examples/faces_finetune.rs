//! Validation of fine-tuning part of the trunk, on the training identities only (see
//! docs/faces.md).
//!
//! `faces_finetune --data DIR [key=value...]` opens only the identities that
//! `train_siamese train --holdout-identities 10` trains on (s1-s30 of ORL), computes the frozen
//! part of the trunk (SqueezeNet up to fire5, 184x224, image and mirror image) once per image
//! and variant (cached under `cache=DIR`), and then, on each of several random splits of those
//! identities into `train` training and the rest validation identities, trains and scores the
//! network three ways on the same split:
//! - `white`: the default descriptor (fire5 4x3 + fire7 1x1, mirror-summed) and learned
//!   whitening computed on the split's training identities (no triplet epochs);
//! - `head`: the same, then `epochs` triplet epochs of the projection alone (the default);
//! - `tune`: the same, but fire6 and fire7 (`tune=fire6,fire7`) are trained with the
//!   projection, from the ImageNet weights, at `trunk_lr` times the projection's rate.
//!
//! Keys: `splits=0,1,2` (split seeds, as in `faces_validate`), `train=20`, `epochs=30`,
//! `lr=0.001`, `trunk_lr=0.1`, `tune=fire6,fire7`, `variants=orig,full1`, `probes=orig,mild`,
//! `margin=0.2`, `p=8`, `k=4`, `dim=128` (the embedding), `modes=white,head,tune`.

use std::collections::BTreeMap;
use std::time::Instant;

use wgnn::faces::augment::Augment;
use wgnn::faces::commands::preprocess_of;
use wgnn::faces::dataset::ImageFolder;
use wgnn::faces::embed::{trunk_weights, ImageRunner};
use wgnn::faces::metrics;
use wgnn::faces::mining::{mine_triplets, Mining, MiningConfig};
use wgnn::faces::network::{
    grid_pooling, HeadSpec, Level, NetworkSpec, TrunkArchitecture, TrunkSpec,
};
use wgnn::faces::sampler::BatchSampler;
use wgnn::faces::whitening::learned_whitening;
use wgnn::graph::{Graph, NodeId, Plan, PlanSpec};
use wgnn::nn::ParamStore;
use wgnn::ops::conv::ConvParams;
use wgnn::ops::pool::PoolParams;
use wgnn::optim::{Adam, AdamConfig, Optimizer};
use wgnn::rng::Rng;
use wgnn::{Error, Gpu, Result};

#[path = "faces_support/perturb.rs"]
mod perturb;
use perturb::perturb;

/// fire5's map per pass.
const C5: usize = 256;
const H5: usize = 27;
const W5: usize = 22;
const PASS: usize = C5 * H5 * W5;
const BATCH: usize = 32;

/// (torchvision index, input channels, squeeze, expand) of fire6 and fire7.
const FIRES: [(&str, usize, usize, usize, usize); 2] =
    [("fire6", 9, 256, 48, 192), ("fire7", 10, 384, 48, 192)];

fn spec() -> NetworkSpec {
    NetworkSpec {
        trunk: TrunkSpec {
            architecture: TrunkArchitecture::SqueezeNet,
            width: 184,
            height: 224,
        },
        head: HeadSpec {
            levels: vec![Level {
                layer: "fire5".into(),
                grids: vec![[1, 1]],
            }],
            embedding_dim: 128,
        },
        mirror: true,
        zooms: vec![1.0],
        align: None,
    }
}

/// fire5 maps of every training image for one variant kind: `[n, 2 * PASS]`, cached in a file.
fn fire5_maps(
    gpu: &Gpu,
    runner: &mut ImageRunner,
    images: &wgnn::faces::dataset::LoadedImages,
    kind: &str,
    cache: &str,
) -> Result<Vec<f32>> {
    let path = format!("{cache}/fire5_{kind}.bin");
    if let Ok(bytes) = std::fs::read(&path) {
        if bytes.len() == images.len() * 2 * PASS * 4 {
            return Ok(bytemuck::cast_slice(&bytes).to_vec());
        }
    }
    let started = Instant::now();
    let spec = spec();
    let (w, h) = (spec.trunk.width, spec.trunk.height);
    let full = Augment::parse("shift,zoom,brightness,gamma,blur,light,noise", 3)?;
    let mut inputs = Vec::with_capacity(images.data.len());
    for i in 0..images.len() {
        let image = images.image(i);
        inputs.extend(match kind {
            "orig" => image.to_vec(),
            _ => match kind.strip_prefix("full") {
                Some(v) => full.variant(image, w, h, v.parse().unwrap(), i, 1),
                None => match kind {
                    "mild" => perturb(image, w, h, i, true),
                    _ => panic!("unknown kind {kind}"),
                },
            },
        });
    }
    let maps = runner.run(gpu, &inputs, &mut |_| {})?;
    std::fs::create_dir_all(cache).map_err(|e| Error::file(cache, e))?;
    std::fs::write(&path, bytemuck::cast_slice(&maps)).map_err(|e| Error::file(&path, e))?;
    eprintln!("fire5 {kind}: {:.1} s", started.elapsed().as_secs_f64());
    Ok(maps)
}

/// The network above fire5, on `[BATCH, 2 * PASS]` fire5 maps (image, then mirror image):
/// per pass fire5 4x3 and fire7 1x1 (fire6, fire7 from `trunk`, each weight `scale` times its
/// stored parameter), L2-normalised and concatenated; summed over passes. Returns
/// (input, descriptor).
fn descriptor_graph(g: &mut Graph, scale: f32) -> Result<(NodeId, NodeId)> {
    let input = g.input("fire5 maps", [BATCH, 2 * PASS]);
    let mut sum = None;
    for pass in 0..2 {
        let flat = g.slice_channels(input, pass * PASS, PASS)?;
        let map = g.reshape(flat, [BATCH, C5, H5, W5])?;
        let cells = g.avg_pool(map, &grid_pooling([H5, W5], [4, 3]))?;
        let cells = g.reshape(cells, [BATCH, C5 * 12])?;
        let d5 = g.l2_normalize(cells)?;
        let mut h = g.max_pool(map, &PoolParams::new(&[3, 3]).stride(2).ceil_mode(true))?;
        for (_, index, cin, squeeze, expand) in FIRES {
            h = fire(g, h, index, cin, squeeze, expand, scale)?;
        }
        let d7 = g.global_avg_pool(h)?;
        let d7 = g.reshape(d7, [BATCH, 384])?;
        let d7 = g.l2_normalize(d7)?;
        let y = g.concat_channels(&[d5, d7])?;
        sum = Some(match sum {
            None => y,
            Some(s) => g.add(s, y)?,
        });
    }
    Ok((input, sum.unwrap()))
}

fn conv_relu(
    g: &mut Graph,
    x: NodeId,
    name: &str,
    shape: [usize; 4],
    padding: usize,
    scale: f32,
) -> Result<NodeId> {
    let mut w = g.param(&format!("{name}.weight"), shape)?;
    let mut b = g.param(&format!("{name}.bias"), [shape[0]])?;
    if scale != 1.0 {
        w = g.scale(w, scale)?;
        b = g.scale(b, scale)?;
    }
    let y = g.conv(x, w, Some(b), &ConvParams::new(2).padding(padding))?;
    g.relu(y)
}

fn fire(
    g: &mut Graph,
    x: NodeId,
    index: usize,
    cin: usize,
    squeeze: usize,
    expand: usize,
    scale: f32,
) -> Result<NodeId> {
    let p = format!("features.{index}");
    let s = conv_relu(
        g,
        x,
        &format!("{p}.squeeze"),
        [squeeze, cin, 1, 1],
        0,
        scale,
    )?;
    let e1 = conv_relu(
        g,
        s,
        &format!("{p}.expand1x1"),
        [expand, squeeze, 1, 1],
        0,
        scale,
    )?;
    let e3 = conv_relu(
        g,
        s,
        &format!("{p}.expand3x3"),
        [expand, squeeze, 3, 3],
        1,
        scale,
    )?;
    g.concat_channels(&[e1, e3])
}

const D: usize = C5 * 12 + 384;

/// Runs a forward plan over `maps` (each `2 * PASS` values: image, mirror image) in batches.
fn run_batched(gpu: &Gpu, plan: &mut Plan, input: NodeId, maps: &[&[f32]]) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    let mut batch = vec![0f32; BATCH * 2 * PASS];
    for chunk in maps.chunks(BATCH) {
        batch.fill(0.0);
        for (r, m) in chunk.iter().enumerate() {
            batch[r * 2 * PASS..][..2 * PASS].copy_from_slice(m);
        }
        plan.write_input(gpu, input, &batch)?;
        let y = plan.step(gpu)?.remove(0);
        let len = y.len() / BATCH;
        out.extend_from_slice(&y[..chunk.len() * len]);
    }
    Ok(out)
}

fn main() -> Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut args = BTreeMap::new();
    let mut i = 0;
    while i < argv.len() {
        if let Some(key) = argv[i].strip_prefix("--") {
            args.insert(key.to_string(), argv[i + 1].clone());
            i += 2;
        } else {
            let (k, v) = argv[i].split_once('=').expect("key=value");
            args.insert(k.to_string(), v.to_string());
            i += 1;
        }
    }
    let get = |k: &str, d: &str| args.get(k).cloned().unwrap_or_else(|| d.to_string());
    let list =
        |k: &str, d: &str| -> Vec<String> { get(k, d).split(',').map(str::to_string).collect() };
    let folder = ImageFolder::open(&args["data"])?;
    let (training, _) = folder.split_holdout(10)?;
    let spec = spec();
    let images = training.load(preprocess_of(&spec))?;
    let gpu = Gpu::new()?;
    let weights = trunk_weights(&gpu, &spec)?;
    let cache = get("cache", "/tmp/siam");
    let variants = list("variants", "orig,full1");
    let probes = list("probes", "orig,mild");
    let mut kinds: Vec<String> = variants.clone();
    for p in &probes {
        if !kinds.contains(p) {
            kinds.push(p.clone());
        }
    }
    let mut maps: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    {
        let mut runner = ImageRunner::trunk(&gpu, &spec, &weights)?;
        for kind in &kinds {
            maps.insert(
                kind.clone(),
                fire5_maps(&gpu, &mut runner, &images, kind, &cache)?,
            );
        }
    }
    let map = |kind: &str, i: usize| &maps[kind][i * 2 * PASS..][..2 * PASS];
    let n = images.len();
    let labels = &images.labels;
    let identities = *labels.iter().max().unwrap() as usize + 1;
    let n_train: usize = get("train", "20").parse().unwrap();
    let epochs: usize = get("epochs", "30").parse().unwrap();
    let lr: f32 = get("lr", "0.001").parse().unwrap();
    let trunk_lr: f32 = get("trunk_lr", "0.1").parse().unwrap();
    let margin: f32 = get("margin", "0.2").parse().unwrap();
    let dim: usize = get("dim", "128").parse().unwrap();
    let (p, k): (usize, usize) = (
        get("p", "8").parse().unwrap(),
        get("k", "4").parse().unwrap(),
    );
    let tuned: Vec<String> = list("tune", "fire6,fire7");
    let modes = list("modes", "white,head,tune");
    let mut table: BTreeMap<String, Vec<Vec<f64>>> = BTreeMap::new();
    for split in list("splits", "0,1,2") {
        let split: u64 = split.parse().unwrap();
        let mut order: Vec<u32> = (0..identities as u32).collect();
        Rng::new(1000 + split).shuffle(&mut order);
        let train_ids = order[..n_train].to_vec();
        let train_rows: Vec<usize> = (0..n).filter(|&i| train_ids.contains(&labels[i])).collect();
        let val_rows: Vec<usize> = (0..n)
            .filter(|&i| !train_ids.contains(&labels[i]))
            .collect();
        let train_labels: Vec<u32> = train_rows.iter().map(|&i| labels[i]).collect();
        let val_labels: Vec<u32> = val_rows.iter().map(|&i| labels[i]).collect();
        for mode in &modes {
            let started = Instant::now();
            let tune = mode == "tune";
            let scale = if tune { trunk_lr } else { 1.0 };
            // Parameters: fire6, fire7 (stored divided by `scale`), then the projection.
            let mut params = ParamStore::new();
            for (name, shape, data) in weights.to_host(&gpu)? {
                if FIRES
                    .iter()
                    .any(|f| name.starts_with(&format!("features.{}.", f.1)))
                {
                    let data: Vec<f32> = data.iter().map(|x| x / scale).collect();
                    params.insert_f32(&gpu, &name, shape, &data)?;
                }
            }
            let mut g = Graph::new();
            let (desc_input, descriptor) = descriptor_graph(&mut g, scale)?;
            let mut desc_plan = Plan::compile(
                &gpu,
                &g,
                &params,
                PlanSpec {
                    outputs: vec![descriptor],
                    ..Default::default()
                },
            )?;
            let mut rows: Vec<&[f32]> = Vec::new();
            let mut white_labels = Vec::new();
            for v in &variants {
                for &i in &train_rows {
                    rows.push(map(v, i));
                    white_labels.push(labels[i]);
                }
            }
            let descriptors = run_batched(&gpu, &mut desc_plan, desc_input, &rows)?;
            let white = learned_whitening(&descriptors, D, &white_labels, dim, 0.25)?;
            params.insert_f32(&gpu, "head.project.weight", [dim, D], &white.weight)?;
            params.insert_f32(&gpu, "head.project.bias", [dim], &white.bias)?;
            let build = |g: &mut Graph| -> Result<(NodeId, NodeId)> {
                let (input, d) = descriptor_graph(g, scale)?;
                let w = g.param("head.project.weight", [dim, D])?;
                let b = g.param("head.project.bias", [dim])?;
                let y = g.linear(d, w, Some(b))?;
                Ok((input, g.l2_normalize(y)?))
            };
            let mut g = Graph::new();
            let (embed_input, embeddings) = build(&mut g)?;
            let mut embed_plan = Plan::compile(
                &gpu,
                &g,
                &params,
                PlanSpec {
                    outputs: vec![embeddings],
                    ..Default::default()
                },
            )?;
            if mode != "white" {
                let mut optimizer = Adam::new(
                    &gpu,
                    AdamConfig {
                        lr,
                        weight_decay: 1e-4,
                        ..Default::default()
                    },
                )?;
                let mut g = Graph::new();
                let (train_input, embeddings) = build(&mut g)?;
                let triplets = g.input_u32("triplets", [BATCH, 3]);
                let loss = g.triplet_loss(embeddings, triplets, margin)?;
                let trained: Vec<NodeId> = g
                    .params()
                    .into_iter()
                    .filter(|(_, name, _)| {
                        name.starts_with("head.")
                            || (tune
                                && FIRES.iter().any(|f| {
                                    tuned.iter().any(|t| t == f.0)
                                        && name.starts_with(&format!("features.{}.", f.1))
                                }))
                    })
                    .map(|(id, _, _)| id)
                    .collect();
                let grads = g.gradients(loss, &trained)?;
                let mut train_plan = Plan::compile(
                    &gpu,
                    &g,
                    &params,
                    PlanSpec {
                        outputs: vec![loss],
                        updates: trained.into_iter().zip(grads).collect(),
                        optimizer: Some(&mut optimizer as &mut dyn Optimizer),
                        ..Default::default()
                    },
                )?;
                let sampler = BatchSampler::new(&train_labels, p, k, 1)?;
                let decayed = (0.75 * epochs as f32).ceil() as usize;
                let mut batch = vec![0f32; BATCH * 2 * PASS];
                for epoch in 0..epochs {
                    optimizer
                        .set_learning_rate(&gpu, if epoch >= decayed { lr * 0.1 } else { lr })?;
                    let mut vrng = Rng::new(epoch as u64 * 7919 + 5);
                    let (mut loss_sum, mut active) = (0.0, 0.0);
                    let batches = sampler.epoch(epoch as u64);
                    for b in &batches {
                        for (r, &row) in b.images.iter().enumerate() {
                            let v = &variants[vrng.below(variants.len())];
                            batch[r * 2 * PASS..][..2 * PASS]
                                .copy_from_slice(map(v, train_rows[row as usize]));
                        }
                        embed_plan.write_input(&gpu, embed_input, &batch)?;
                        let e = embed_plan.step(&gpu)?.remove(0);
                        let mined = mine_triplets(
                            &e,
                            dim,
                            &b.labels,
                            MiningConfig {
                                strategy: Mining::BatchHard,
                                margin,
                                active_only: false,
                            },
                        )?;
                        let flat: Vec<u32> = mined.triplets.iter().flatten().copied().collect();
                        train_plan.write_input(&gpu, train_input, &batch)?;
                        train_plan.write_input_u32(&gpu, triplets, &flat)?;
                        loss_sum += train_plan.step(&gpu)?[0][0] as f64;
                        active += mined.stats.active_fraction as f64;
                    }
                    let nb = batches.len() as f64;
                    if epoch % 5 == 4 || epoch == epochs - 1 {
                        eprintln!(
                            "  split {split} {mode} epoch {}: loss {:.4} active {:.3} ({:.0} s)",
                            epoch + 1,
                            loss_sum / nb,
                            active / nb,
                            started.elapsed().as_secs_f64()
                        );
                    }
                }
            }
            let mut scores = Vec::new();
            for probe in &probes {
                let rows: Vec<&[f32]> = val_rows.iter().map(|&i| map(probe, i)).collect();
                let e = run_batched(&gpu, &mut embed_plan, embed_input, &rows)?;
                let m = metrics::evaluate(&e, dim, &val_labels)?;
                scores.push(m.one_shot_accuracy);
                scores.push(m.eer);
            }
            let line: Vec<String> = probes
                .iter()
                .enumerate()
                .map(|(j, pr)| format!("{pr} {:.4} eer {:.4}", scores[2 * j], scores[2 * j + 1]))
                .collect();
            println!(
                "split {split} {mode:<5} {} ({:.0} s)",
                line.join(" | "),
                started.elapsed().as_secs_f64()
            );
            table.entry(mode.clone()).or_default().push(scores);
        }
    }
    for (mode, rows) in &table {
        let mean = |j: usize| rows.iter().map(|r| r[j]).sum::<f64>() / rows.len() as f64;
        let line: Vec<String> = probes
            .iter()
            .enumerate()
            .map(|(j, pr)| format!("{pr} {:.4} eer {:.4}", mean(2 * j), mean(2 * j + 1)))
            .collect();
        println!(
            "mean {mode:<5} {} ({} splits)",
            line.join(" | "),
            rows.len()
        );
    }
    Ok(())
}
