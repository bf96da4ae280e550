//! `onnx_classify`: the top classes of pictures by an ONNX image classifier. The work is
//! `wgnn_onnx_classify::OnnxClassifier`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use wgnn_onnx::OnnxModel;
use wgnn_onnx_classify::{load_labels, Normalize, OnnxClassifier};

/// Classify pictures with an ONNX image classifier (opset 11 to 21) imported into wgnn.
///
/// The model takes one RGB batch [N, 3, H, W] and gives class scores first (or their Softmax or
/// LogSoftmax over the classes); each picture is resized to H x W as a whole (PIL-exact
/// bilinear) and the top classes are printed with their softmax probabilities. Operators and attributes the importer does not support are named.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The .onnx file.
    #[arg(long, value_name = "FILE", value_parser = wgnn_cli::path)]
    model: PathBuf,

    /// Pictures (PNG, JPEG, GIF, PNM, BMP).
    #[arg(required = true, value_name = "IMAGE", value_parser = wgnn_cli::path)]
    images: Vec<PathBuf>,

    /// Where the model's external tensor data lies [default: the model's folder].
    #[arg(long, value_name = "DIR", value_parser = wgnn_cli::path)]
    external_data: Option<PathBuf>,

    /// Input normalisation of RGB in [0, 1]: `unit` (none) or `imagenet` ((x - mean) / std).
    #[arg(long, default_value = "unit", value_parser = Normalize::parse)]
    normalize: Normalize,

    /// Pictures go in at SIZE x SIZE [default: the model's fixed input size].
    #[arg(long, value_parser = wgnn_cli::positive, allow_negative_numbers = true)]
    size: Option<usize>,

    /// Class names, one a line [default: ImageNet's for 1000 classes, else `class <i>`].
    #[arg(long, value_name = "FILE", value_parser = wgnn_cli::path)]
    labels: Option<PathBuf>,

    /// How many classes to print per picture.
    #[arg(long, default_value_t = 5, value_parser = wgnn_cli::positive, allow_negative_numbers = true)]
    top: usize,

    /// One JSON line per picture: {"image": PATH, "top": [{"class": NAME, "index": I,
    /// "probability": P}, ...]}.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    limit: wgnn_cli::ImageLimit,
}

fn run(args: &Args) -> wgnn::Result<()> {
    args.limit.apply();
    let mut model = OnnxModel::load(&args.model)?;
    if let Some(dir) = &args.external_data {
        model = model.with_external_dir(dir);
    }
    let labels = args.labels.as_deref().map(load_labels).transpose()?;
    // Every picture is decoded before any output, so a bad file fails the whole run early.
    let pictures = args
        .images
        .iter()
        .map(wgnn_models::imaging::io::load)
        .collect::<wgnn::Result<Vec<_>>>()?;
    let gpu = wgnn::Gpu::new()?;
    let mut classifier = OnnxClassifier::new(&gpu, &model, args.normalize, args.size, labels)?;
    for (path, picture) in args.images.iter().zip(&pictures) {
        let top = classifier.top_k(&gpu, picture, args.top)?;
        if args.json {
            let top: Vec<serde_json::Value> = top
                .iter()
                .map(|p| {
                    serde_json::json!({"index": p.index, "class": p.class, "probability": p.probability})
                })
                .collect();
            let line = serde_json::json!({"image": path.display().to_string(), "top": top});
            println!("{line}");
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
