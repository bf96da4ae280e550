//! Where the time of the reference training step `train_step/conv4_b50_56x48` goes, kernel by
//! kernel: `cargo run --release -p wgnn-benches --example profile_train_step -- [REPEATS]`.

fn main() -> wgnn::Result<()> {
    let repeats: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let gpu = wgnn::Gpu::new()?;
    let mut step = wgnn_benches::conv4_training_step(&gpu)?;
    println!("{} on {}", step.plan.summary(), gpu.adapter);
    let profile = step.plan.profile(&gpu, repeats)?;
    println!("{profile}");
    println!("dispatches in step order:");
    for (i, (kernel, ms, cost)) in profile.dispatches.iter().enumerate() {
        println!(
            "#{i:<3} {ms:9.3} ms {:7.1} GFLOP/s  {kernel}",
            cost.flops / (ms * 1e6)
        );
    }
    Ok(())
}
