//! Lists the GPU adapters wgpu can see and the one wgnn would pick.

use clap::Parser;

/// List the GPU adapters that wgnn can use, and the one it picks by default.
///
/// The choice follows wgpu's conventions: WGPU_ADAPTER_NAME (a substring of the adapter's
/// name), WGPU_POWER_PREF (low, high, none) and WGPU_BACKEND (vulkan, metal, dx12).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Also print the chosen adapter's limits.
    #[arg(long)]
    limits: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let adapters = wgnn::gpu::list_adapters();
    if adapters.is_empty() {
        eprintln!("no GPU adapter found: install a Vulkan, Metal or DX12 driver (headless Linux: apt-get install mesa-vulkan-drivers)");
        return std::process::ExitCode::FAILURE;
    }
    for adapter in &adapters {
        println!("{adapter}");
    }
    match wgnn::Gpu::new() {
        Ok(gpu) => {
            println!("chosen: {}", gpu.adapter);
            if args.limits {
                println!("{:#?}", gpu.limits);
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
