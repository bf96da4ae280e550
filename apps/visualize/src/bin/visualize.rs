//! `visualize`: what each layer of a CNN has learned. Parses arguments and calls
//! `wgnn_visualize::run`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use wgnn::Gpu;
use wgnn_visualize::network::Model;
use wgnn_visualize::run::{self, Progress, Units, VisualizeConfig};
use wgnn_visualize::synthesize::SynthesisConfig;

/// Shows what units of a CNN's layers respond to: for each chosen unit (channel), the image
/// patches that excite it most, one per image, strongest first, cut out of the images at the
/// unit's receptive field; one grid PNG per layer, one row per unit. With no arguments: the
/// embedded SqueezeNet on the embedded photos, layers conv1, fire3, fire5 and fire7, eight units
/// each, into features/.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The network: squeezenet (embedded ImageNet weights), face-resnet (dlib's face
    /// recognition ResNet, embedded), vgg16 or vgg19 (need --weights).
    #[arg(long, default_value = "squeezenet")]
    model: String,

    /// A safetensors file of the network's weights (torchvision's names for SqueezeNet and
    /// VGG), instead of the embedded ones.
    #[arg(long, value_name = "FILE", value_parser = wgnn_cli::path)]
    weights: Option<PathBuf>,

    /// Image files or folders (searched recursively for png, jpg, gif, bmp, pgm, ppm);
    /// [default: the embedded photos]. Each image is scaled so its shorter side is the
    /// network's input size (227 for SqueezeNet, 224 for VGG, 150 for the face ResNet), and its
    /// centre square is used.
    #[arg(long, value_name = "DIR|FILE", num_args = 1.., value_delimiter = ',', value_parser = wgnn_cli::path)]
    images: Vec<PathBuf>,

    /// Comma-separated layers [default: conv1,fire3,fire5,fire7 for SqueezeNet;
    /// relu1_2,relu2_2,relu3_3,relu4_3 for VGG16 (relu3_4, relu4_4 for VGG19);
    /// stem,block3,block7,block11 for the face ResNet].
    #[arg(long, value_delimiter = ',', value_name = "LAYER,...", value_parser = wgnn_cli::name)]
    layers: Option<Vec<String>>,

    /// How many units per layer: those whose strongest response varies most across the
    /// images.
    #[arg(long, default_value_t = run::DEFAULT_UNITS, conflicts_with = "unit_ids", value_parser = wgnn_cli::positive, allow_negative_numbers = true)]
    units: usize,

    /// Show these units (channel indices) of every layer instead.
    #[arg(long, value_delimiter = ',', value_name = "I,...", value_parser = wgnn_cli::count, allow_negative_numbers = true)]
    unit_ids: Option<Vec<usize>>,

    /// Patches per unit (the top images).
    #[arg(long, default_value_t = run::DEFAULT_PATCHES, value_parser = wgnn_cli::positive, allow_negative_numbers = true)]
    patches: usize,

    /// Folder for the grids, one <layer>.png each (created if missing).
    #[arg(long, default_value = run::DEFAULT_OUT, value_parser = wgnn_cli::path)]
    out: PathBuf,

    /// Print the report as JSON (per layer and unit: each patch's image, position, input rows
    /// and columns, and activation) instead of text.
    #[arg(long)]
    json: bool,

    /// Images per batch through the network.
    #[arg(long, default_value_t = run::DEFAULT_BATCH, value_parser = wgnn_cli::positive, allow_negative_numbers = true)]
    batch: usize,

    /// Also synthesise, for each unit, an image that excites it (gradient ascent on the pixels
    /// with jitter, blur and decay), shown left of its patches.
    #[arg(long)]
    synthesize: bool,

    /// Steps of gradient ascent per layer with --synthesize.
    #[arg(long, default_value_t = SynthesisConfig::default().steps, value_parser = wgnn_cli::positive, allow_negative_numbers = true)]
    synthesis_steps: usize,

    /// Side of the synthesised images, in pixels.
    #[arg(long, default_value_t = SynthesisConfig::default().side, value_parser = wgnn_cli::positive, allow_negative_numbers = true)]
    synthesis_size: usize,

    /// Seed of the synthesis' starting noise and jitter.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    seed: u64,

    #[command(flatten)]
    limit: wgnn_cli::ImageLimit,
}

struct Bar(Option<ProgressBar>);

impl Progress for Bar {
    fn stage(&mut self, what: &str, total: usize) {
        if let Some(bar) = self.0.take() {
            bar.finish();
        }
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed_precise}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_message(what.to_string());
        self.0 = Some(bar);
    }

    fn advance(&mut self, done: usize) {
        if let Some(bar) = &self.0 {
            bar.set_position(done as u64);
        }
    }
}

fn main() -> ExitCode {
    wgnn_cli::exit_status(visualize(Args::parse()))
}

fn visualize(args: Args) -> wgnn::Result<()> {
    args.limit.apply();
    let model = Model::parse(&args.model)?;
    let mut config = VisualizeConfig::new(model);
    config.weights = args.weights;
    config.images = args.images;
    config.layers = args.layers;
    config.units = match args.unit_ids {
        Some(ids) => Units::Ids(ids),
        None => Units::MostVariable(args.units),
    };
    config.patches = args.patches;
    config.out = args.out;
    config.batch = args.batch;
    if args.synthesize {
        config.synthesis = Some(SynthesisConfig {
            steps: args.synthesis_steps,
            side: args.synthesis_size,
            seed: args.seed,
            ..SynthesisConfig::default()
        });
    }
    let gpu = Gpu::new()?;
    let mut bar = Bar(None);
    let report = run::run(&gpu, &config, &mut bar)?;
    if let Some(b) = bar.0.take() {
        b.finish_and_clear();
    }
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}
