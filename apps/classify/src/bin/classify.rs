//! `classify`: ImageNet classes of pictures with the embedded SqueezeNet v1.1. The work is
//! `wgnn_classify::Classifier`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use wgnn_classify::{Classifier, Prediction};
use wgnn_models::Architecture;

/// Classify pictures into the 1000 ImageNet classes with the embedded SqueezeNet v1.1.
///
/// Each picture is resized to 227x227 as a whole (PIL-exact bilinear; a 227x227 picture is
/// not resampled) and the top classes are printed with their softmax probabilities.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Pictures (PNG, JPEG, GIF, PNM, BMP).
    #[arg(required = true, value_name = "IMAGE", value_parser = wgnn_cli::path)]
    images: Vec<PathBuf>,

    /// How many classes to print per picture.
    #[arg(long, default_value_t = 5, value_parser = wgnn_cli::positive, allow_negative_numbers = true)]
    top: usize,

    /// One JSON line per picture: {"image": PATH, "top": [{"index": I, "class": NAME,
    /// "probability": P}, ...]}.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    limit: wgnn_cli::ImageLimit,
}

/// The `--json` line, keys in the documented order.
fn json_line(path: &std::path::Path, top: &[Prediction]) -> String {
    let string = |s: &str| serde_json::Value::from(s).to_string();
    let top: Vec<String> = top
        .iter()
        .map(|p| {
            format!(
                r#"{{"index": {}, "class": {}, "probability": {}}}"#,
                p.index,
                string(&p.class),
                serde_json::Value::from(p.probability)
            )
        })
        .collect();
    format!(
        r#"{{"image": {}, "top": [{}]}}"#,
        string(&path.display().to_string()),
        top.join(", ")
    )
}

fn run(args: &Args) -> wgnn::Result<()> {
    args.limit.apply();
    if args.top == 0 || args.top > 1000 {
        return Err(wgnn::Error::Invalid(format!(
            "--top must be between 1 and 1000, got {}",
            args.top
        )));
    }
    // Every picture is decoded before any output, so a bad file fails the whole run early.
    let pictures = args
        .images
        .iter()
        .map(wgnn_models::imaging::io::load)
        .collect::<wgnn::Result<Vec<_>>>()?;
    let gpu = wgnn::Gpu::new()?;
    let weights = wgnn_assets::backbone_weights(&gpu, Architecture::SqueezeNet, None)?;
    let mut classifier = Classifier::new(&gpu, &weights)?;
    for (path, picture) in args.images.iter().zip(&pictures) {
        let top = classifier.top_k(&gpu, picture, args.top)?;
        if args.json {
            println!("{}", json_line(path, &top));
        } else {
            println!("{}:", path.display());
            for p in &top {
                println!(
                    "  {:6.2}%  {:4}  {}",
                    100.0 * p.probability,
                    p.index,
                    p.class
                );
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    wgnn_cli::exit_status(run(&Args::parse()))
}
