//! Milliseconds per style-transfer iteration and where they go.
//!
//! `cargo run --release --example stylize_profile -- [SIZE] [ITERATIONS] [SLOWEST]` builds the
//! default objective (SqueezeNet, default layers and weights) on a SIZE x SIZE image (the
//! astronaut photo, the embedded painting), times ITERATIONS fused Adam steps (the median after
//! the first 3), then profiles the step (`StyleProblem::profile`, what `stylize --profile` prints)
//! and lists the SLOWEST (default 8) dispatches.

use std::time::Instant;

use wgnn_models::imaging::{io, resize::resize_exact};
use wgnn_stylize::run::{objective, StyleConfig, DEFAULT_LEARNING_RATE};
use wgnn_stylize::{ImageData, StyleProblem};

fn main() -> wgnn::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let size: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(256);
    let iterations: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let slowest_shown: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(8);
    let gpu = wgnn::Gpu::new()?;
    let config = StyleConfig::default();
    let objective = objective(&config)?;
    let weights = wgnn_assets::backbone_weights(&gpu, config.model, None)?;
    let photo = io::load(concat!(env!("WGNN_ASSETS"), "/astronaut.png"))?;
    let content = resize_exact(&photo, size, size)?;
    let style = resize_exact(&wgnn_assets::default_style()?, size, size)?;
    let mut problem = StyleProblem::new(
        &gpu,
        &weights,
        &objective,
        &ImageData::from(&content),
        &[(ImageData::from(&style), 1.0)],
        &content.data,
        Some(DEFAULT_LEARNING_RATE),
    )?;
    println!("{} on {}", problem.summary(), gpu.adapter);
    let mut times = Vec::new();
    for _ in 0..iterations {
        let start = Instant::now();
        problem.adam_step(&gpu)?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let mut steady: Vec<f64> = times.iter().skip(3.min(times.len() - 1)).copied().collect();
    steady.sort_by(f64::total_cmp);
    println!(
        "{size}x{size}: {:.1} ms per iteration (median of {}; all: {:?})",
        steady[steady.len() / 2],
        steady.len(),
        times.iter().map(|t| t.round()).collect::<Vec<_>>()
    );

    let profile = problem.profile(&gpu, 3)?;
    println!("{profile}");
    let mut slowest: Vec<_> = profile.dispatches.iter().enumerate().collect();
    slowest.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
    println!("slowest dispatches (index in the step):");
    for (i, (label, ms, _)) in slowest.into_iter().take(slowest_shown) {
        println!("{ms:9.2} ms  #{i:<4} {label}");
    }
    Ok(())
}
