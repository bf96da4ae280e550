//! `stylize`: neural style transfer. Parses the options and draws the progress bar; the work is
//! `wgnn_stylize::run::run`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use wgnn_models::{Architecture, Pooling};
use wgnn_stylize::run::{
    self, InitKind, IterationRecord, OptimizerKind, Progress, StyleConfig, DEFAULT_CONTENT_WEIGHT,
    DEFAULT_ITERATIONS, DEFAULT_LEARNING_RATE, DEFAULT_OUTPUT, DEFAULT_SEED, DEFAULT_SIZE,
    DEFAULT_STYLE_WEIGHT, DEFAULT_TV_WEIGHT,
};

/// Neural style transfer (Gatys et al.): repaint a photo in the style of a painting by
/// optimising the picture's features in a pretrained CNN.
///
/// With no arguments it paints the embedded photo (a cat) in the style of the embedded
/// painting (The Starry Night) with the embedded SqueezeNet and writes stylized.png.
///
/// The losses, on the RGB image x in [0, 1] with F_l the activations of layer l (C_l x H_l W_l):
/// content J_c = sum over content layers of mean((F_l(x) - F_l(content))^2);
/// style J_s = sum over style layers of w_l * mean((A_l(x) - A_l(style))^2) with
/// A_l = F_l F_l^T / (C_l H_l W_l) (several styles: the blend of their Grams);
/// J_tv = mean of squared vertical plus mean of squared horizontal neighbour differences of x;
/// J = content_weight * J_c + style_weight * J_s + tv_weight * J_tv.
#[derive(Parser)]
#[command(version, verbatim_doc_comment)]
struct Args {
    /// Content photo [default: the embedded chelsea.png].
    #[arg(long, value_name = "PATH", value_parser = wgnn_cli::path)]
    content: Option<PathBuf>,

    /// Style painting(s), comma-separated [default: the embedded starry_night.jpg].
    #[arg(long, value_name = "PATH[,PATH...]", value_delimiter = ',', value_parser = wgnn_cli::path)]
    style: Vec<PathBuf>,

    /// One weight per style image, comma-separated, normalised to sum 1 [default: equal].
    #[arg(
        long,
        value_name = "W[,W...]",
        value_delimiter = ',',
        allow_negative_numbers = true
    )]
    style_blend_weights: Option<Vec<f32>>,

    /// Where the result goes (.png, .jpg or .jpeg), written atomically.
    #[arg(long, short, value_name = "PATH", default_value = DEFAULT_OUTPUT, value_parser = wgnn_cli::path)]
    output: PathBuf,

    /// Longest side of the result in pixels (an image already that size is not resampled).
    #[arg(long, default_value_t = DEFAULT_SIZE, value_parser = wgnn_cli::positive, allow_negative_numbers = true)]
    size: usize,

    /// The style image's longest side is this times --size.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    style_scale: f32,

    /// Backbone network: squeezenet is embedded; vgg16 and vgg19 need --weights.
    #[arg(long, value_enum, default_value_t = Model::Squeezenet)]
    model: Model,

    /// Weights as safetensors: torchvision's state_dict names (scripts/export_vgg.py writes
    /// VGG's) [default: the embedded SqueezeNet v1.1].
    #[arg(long, value_name = "PATH", value_parser = wgnn_cli::path)]
    weights: Option<PathBuf>,

    /// Content layers, comma-separated [default: fire7 for squeezenet, relu4_2 for vgg].
    /// SqueezeNet: conv1, fire2 ... fire9; VGG: conv1_1, relu1_1, ..., pool5.
    #[arg(long, value_name = "LAYER[,LAYER...]", value_delimiter = ',', value_parser = wgnn_cli::name)]
    content_layers: Option<Vec<String>>,

    /// Style layers, comma-separated [default: conv1,fire2,fire3,fire5,fire7 for squeezenet,
    /// relu1_1,relu2_1,relu3_1,relu4_1,relu5_1 for vgg].
    #[arg(long, value_name = "LAYER[,LAYER...]", value_delimiter = ',', value_parser = wgnn_cli::name)]
    style_layers: Option<Vec<String>>,

    /// One weight w_l per style layer, comma-separated [default: all 1].
    #[arg(
        long,
        value_name = "W[,W...]",
        value_delimiter = ',',
        allow_negative_numbers = true
    )]
    style_layer_weights: Option<Vec<f32>>,

    /// Weight of the content loss J_c.
    #[arg(long, default_value_t = DEFAULT_CONTENT_WEIGHT, allow_negative_numbers = true)]
    content_weight: f32,

    /// Weight of the style loss J_s.
    #[arg(long, default_value_t = DEFAULT_STYLE_WEIGHT, allow_negative_numbers = true)]
    style_weight: f32,

    /// Weight of the total variation J_tv (smoothness).
    #[arg(long, default_value_t = DEFAULT_TV_WEIGHT, allow_negative_numbers = true)]
    tv_weight: f32,

    /// Iterations per scale; 0 computes and logs the losses and the gradient without any
    /// update.
    #[arg(long, default_value_t = DEFAULT_ITERATIONS, value_parser = wgnn_cli::count, allow_negative_numbers = true)]
    iterations: usize,

    /// adam (one compiled step per iteration) or lbfgs (history 10, a line search that never
    /// increases J).
    #[arg(long, value_enum, default_value_t = Optimizer::Adam)]
    optimizer: Optimizer,

    /// Adam's step on [0, 1] pixels; for lbfgs, the largest pixel change of the first step.
    #[arg(long, default_value_t = DEFAULT_LEARNING_RATE, allow_negative_numbers = true)]
    learning_rate: f32,

    /// Starting image: content, noise (uniform, from --seed) or the PATH of a picture.
    #[arg(long, value_name = "content|noise|PATH", default_value = "content")]
    init: String,

    /// Seed of the noise initialisation (runs with the same seed are bit-identical).
    #[arg(long, default_value_t = DEFAULT_SEED, allow_negative_numbers = true)]
    seed: u64,

    /// Pooling between stages: max as trained, or avg (smoother results, as in Gatys et al.).
    #[arg(long, value_enum, default_value_t = PoolingArg::Max)]
    pooling: PoolingArg,

    /// Keep the content's colours (luminance transfer in YUV).
    #[arg(long)]
    preserve_colors: bool,

    /// Coarse to fine: run at size/2^(N-1), ..., size, each result upsampled as the next start.
    #[arg(long, default_value_t = 1, value_parser = wgnn_cli::positive, allow_negative_numbers = true)]
    scales: usize,

    /// Write a snapshot every N iterations next to the output (stylized_iter0100.png); 0: never.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = wgnn_cli::count, allow_negative_numbers = true)]
    save_every: usize,

    /// Write one JSON object per iteration to PATH: iter (0 = before any update), content,
    /// style, tv, total, grad_norm (L2 norm of dJ/dx), ms (wall time); scale too with --scales > 1.
    #[arg(long, value_name = "PATH", value_parser = wgnn_cli::path)]
    log_json: Option<PathBuf>,

    /// After the run, time every kernel of one iteration at the last scale on the GPU (its
    /// timestamp queries where the adapter has them, else the host's clock around each kernel
    /// submitted alone; 5 runs each, medians) and print a table to stdout: GPU ms per kernel,
    /// share, calls per iteration, GFLOP/s and GB/s from the FLOPs and bytes its ops state, and
    /// a whole iteration's wall time with the host-side part beside the kernels. The profiled
    /// runs come after the saved result and do not change it (off by default).
    #[arg(long)]
    profile: bool,

    /// No progress bar or summary.
    #[arg(long, short)]
    quiet: bool,

    #[command(flatten)]
    limit: wgnn_cli::ImageLimit,
}

#[derive(Clone, Copy, ValueEnum)]
enum Model {
    Squeezenet,
    Vgg16,
    Vgg19,
}

#[derive(Clone, Copy, ValueEnum)]
enum Optimizer {
    Adam,
    Lbfgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum PoolingArg {
    Max,
    Avg,
}

impl Args {
    fn config(self) -> StyleConfig {
        StyleConfig {
            content: self.content,
            styles: self.style,
            style_blend_weights: self.style_blend_weights,
            output: self.output,
            size: self.size,
            style_scale: self.style_scale,
            model: match self.model {
                Model::Squeezenet => Architecture::SqueezeNet,
                Model::Vgg16 => Architecture::Vgg16,
                Model::Vgg19 => Architecture::Vgg19,
            },
            weights: self.weights,
            content_layers: self.content_layers,
            style_layers: self.style_layers,
            style_layer_weights: self.style_layer_weights,
            content_weight: self.content_weight,
            style_weight: self.style_weight,
            tv_weight: self.tv_weight,
            iterations: self.iterations,
            optimizer: match self.optimizer {
                Optimizer::Adam => OptimizerKind::Adam,
                Optimizer::Lbfgs => OptimizerKind::Lbfgs,
            },
            learning_rate: self.learning_rate,
            init: match self.init.as_str() {
                "content" => InitKind::Content,
                "noise" => InitKind::Noise,
                path => InitKind::Image(PathBuf::from(path)),
            },
            seed: self.seed,
            pooling: match self.pooling {
                PoolingArg::Max => Pooling::Max,
                PoolingArg::Avg => Pooling::Avg,
            },
            preserve_colors: self.preserve_colors,
            scales: self.scales,
            save_every: self.save_every,
            log_json: self.log_json,
            profile: self.profile,
        }
    }
}

/// A progress bar per scale: iteration, losses, ETA.
struct Bar {
    iterations: usize,
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Progress for Bar {
    fn scale_started(&mut self, scale: usize, scales: usize, width: usize, height: usize) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
        if self.quiet {
            return;
        }
        let bar = ProgressBar::new(self.iterations as u64);
        let template = "{prefix} [{bar:30}] {pos}/{len} {msg} (ETA {eta})";
        bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(if scales > 1 {
            format!("scale {}/{scales} {width}x{height}", scale + 1)
        } else {
            format!("{width}x{height}")
        });
        bar.enable_steady_tick(Duration::from_millis(500));
        self.bar = Some(bar);
    }

    fn iteration(&mut self, r: &IterationRecord) {
        if let Some(bar) = &self.bar {
            let l = &r.losses;
            bar.set_position(r.iter as u64);
            bar.set_message(format!(
                "J {:.4e} (content {:.3e}, style {:.3e}, tv {:.3e}) {:.0} ms",
                l.total, l.content, l.style, l.tv, r.ms
            ));
        }
    }

    fn note(&mut self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None if !self.quiet => eprintln!("{text}"),
            None => {}
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    args.limit.apply();
    let quiet = args.quiet;
    let config = args.config();
    let gpu = match wgnn::Gpu::new() {
        Ok(gpu) => gpu,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut bar = Bar {
        iterations: config.iterations,
        bar: None,
        quiet,
    };
    let result = run::run(&gpu, &config, &mut bar);
    if let Some(b) = bar.bar.take() {
        b.finish();
    }
    match result {
        Ok(summary) => {
            if !quiet {
                let first = summary.records.first().map(|r| r.losses.total);
                let last = summary.records.last().map(|r| r.losses.total);
                let speed = summary
                    .median_ms(3)
                    .map(|ms| format!(", {ms:.0} ms per iteration (median)"))
                    .unwrap_or_default();
                eprintln!(
                    "wrote {} ({}x{}), J {:.4e} -> {:.4e}{speed} on {}",
                    config.output.display(),
                    summary.image.width,
                    summary.image.height,
                    first.unwrap_or(f64::NAN),
                    last.unwrap_or(f64::NAN),
                    gpu.adapter.name
                );
            }
            if let Some(profile) = &summary.profile {
                println!("{profile}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
