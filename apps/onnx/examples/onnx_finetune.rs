//! Fine-tunes the last layer of an imported ONNX classifier on a few labelled photos: the
//! SqueezeNet v1.1 of the importer's tests (weights in assets/), taught that four of the
//! embedded photos are the ImageNet classes 0 to 3 (tench, goldfish, great white shark, tiger
//! shark). Prints the loss of each step and each photo's top class after training.
//!
//! cargo run --release -p wgnn-onnx-classify --example onnx_finetune -- [STEPS] [SIZE]
use std::path::Path;

use wgnn::Result;
use wgnn_models::imaging::io::load;
use wgnn_onnx::OnnxModel;
use wgnn_onnx_classify::{fine_tune, FineTune, Normalize, OnnxClassifier};

const PHOTOS: [&str; 4] = ["chelsea.png", "coffee.png", "astronaut.png", "brick.png"];

/// Trains for `steps` on the photos at `size` x `size`; returns the losses and the top class of
/// each photo afterwards.
pub fn run(steps: usize, size: usize) -> Result<(Vec<f32>, Vec<usize>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let assets = Path::new(env!("WGNN_ASSETS"));
    let model = OnnxModel::load(root.join("crates/wgnn-onnx/tests/fixtures/squeezenet1_1.onnx"))?
        .with_external_dir(assets);
    let pictures = PHOTOS
        .iter()
        .map(|name| load(assets.join(name)))
        .collect::<Result<Vec<_>>>()?;
    let examples: Vec<_> = pictures.iter().zip(0..).collect();
    let config = FineTune {
        train: vec![],
        steps,
        learning_rate: 1e-2,
        size: Some(size),
        normalize: Normalize::Unit,
        label_score: 20.0,
    };
    let gpu = wgnn::Gpu::new()?;
    let tuned = fine_tune(&gpu, &model, &examples, &config)?;
    println!("trained {}", tuned.trained.join(", "));
    let mut classifier =
        OnnxClassifier::with_params(&gpu, &model, Normalize::Unit, Some(size), &tuned.params)?;
    let mut tops = Vec::new();
    for (name, picture) in PHOTOS.iter().zip(&pictures) {
        let top = classifier.top_k(&gpu, picture, 1)?.remove(0);
        println!("{name}: {} ({:.3})", top.class, top.probability);
        tops.push(top.index);
    }
    Ok((tuned.losses, tops))
}

#[allow(dead_code)]
fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut number = |what: &str, default: usize| match args.next() {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| wgnn::Error::Invalid(format!("{what} `{text}` is not a whole number"))),
    };
    let (steps, size) = (number("STEPS", 30)?, number("SIZE", 227)?);
    let (losses, _) = run(steps, size)?;
    for (step, loss) in losses.iter().enumerate() {
        println!("step {step:3}  loss {loss:.5}");
    }
    Ok(())
}
