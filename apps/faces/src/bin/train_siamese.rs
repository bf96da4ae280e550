//! One-shot face recognition with a Siamese network trained by the triplet loss: train, evaluate,
//! train a logistic verifier, enroll people in a gallery, verify and identify faces.
//! Thin: every subcommand is a function of `wgnn_faces::commands`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use wgnn::graph::Profile;
use wgnn::{Error, Gpu, Result};
use wgnn_faces::augment::Augment;
use wgnn_faces::cnn::CnnSpec;
use wgnn_faces::cnn_train::{CnnTrainConfig, LrSchedule, StepStats};
use wgnn_faces::commands::{self, Progress, Threshold, TrainRequest, VerificationHead};
use wgnn_faces::distort::Distortion;
use wgnn_faces::gallery::UNKNOWN;
use wgnn_faces::mining::Mining;
use wgnn_faces::model::SiameseModel;
use wgnn_faces::network::{HeadSpec, NetworkSpec, TrunkSpec};
use wgnn_faces::open_set::DEFAULT_FALSE_ACCEPT_RATE;
use wgnn_faces::roc_plot::write_roc_png;
use wgnn_faces::train::{EpochStats, HeadInit, OptimizerKind, TrainConfig};
use wgnn_faces::verifier::VerifierConfig;

/// One-shot face recognition: a Siamese network (one CNN shared by anchor, positive and
/// negative) trained with the triplet loss on a folder DIR/<identity>/<image>, then used to
/// recognise people it never saw from a single enrolled photo. The network: dlib's face
/// detector and five landmarks align each face to a 150x150 chip, dlib's face ResNet (frozen)
/// describes the chip and its mirror image, and a linear head (learned whitening, then the
/// triplet loss) maps that to the embedding.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Largest photo to decode, in pixels (width x height); larger ones are refused before
    /// they are read [default: 67108864, 64 megapixels].
    #[arg(long, global = true, value_name = "PIXELS", value_parser = wgnn_cli::positive, allow_negative_numbers = true)]
    max_image_pixels: Option<usize>,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model on DIR/<identity>/<image> and write it to --out.
    Train(Box<TrainArgs>),
    /// Embed every image of a folder and report one-shot identification and verification.
    Eval(EvalArgs),
    /// Train a logistic unit on |f(x1) - f(x2)| (embedding frozen) and store it in the model.
    TrainVerifier(TrainVerifierArgs),
    /// Add a person to a gallery (created if missing) from one or more photos.
    Enroll(EnrollArgs),
    /// Say whether a photo shows an enrolled person.
    Verify(VerifyArgs),
    /// Name the enrolled person nearest to each photo, or `unknown`.
    Identify(IdentifyArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ModelKind {
    /// Faces: dlib's face detector, landmarks and face ResNet (frozen), a trained head.
    FaceResnet,
    /// Anything else (characters, signatures, leaves): a convolutional network trained from
    /// random weights (--width, --depth, --channels, --steps), no face detection.
    Cnn,
}

#[derive(Args)]
struct TrainArgs {
    /// Training images: one folder per identity holding its images, DIR/<identity>/<image> or
    /// nested DIR/<group>/<identity>/<image> (PGM, PNG, JPEG, GIF, BMP; any size, grey or
    /// colour). For faces, photos should be portraits: the face detector finds faces at least
    /// 80 pixels wide in the photo resized to --input-size, and where it finds none the face is
    /// assumed to fill the photo as in ORL. Required.
    #[arg(long, value_name = "DIR", value_parser = wgnn_cli::path)]
    data: PathBuf,
    /// The network: face-resnet (faces; the flags below up to --no-mirror) or cnn (a
    /// convolutional network trained from random weights: --steps, --width, --depth,
    /// --channels, --input-size, --embedding-dim, the batch, margin, mining, learning-rate and
    /// seed flags).
    #[arg(long, value_enum, default_value = "face-resnet")]
    model: ModelKind,
    /// cnn: training steps (one P x K batch each).
    #[arg(long, value_name = "N", default_value_t = CnnTrainConfig::default().steps, value_parser = wgnn_cli::positive, allow_negative_numbers = true)]
    steps: usize,
    /// cnn: how the learning rate moves over the steps (cosine: down to 1 % at the last step).
    #[arg(long, value_enum, default_value = "cosine")]
    lr_schedule: LrSchedule,
    /// cnn: random affine distortion of every image each time it enters a batch: `none` or
    /// rotation=DEGREES,shear=DEGREES,scale=FRACTION,shift=FRACTION (each drawn uniformly in
    /// [-x, x]; a key left out is 0; shift is a fraction of the side).
    #[arg(long, value_name = "SPEC", default_value_t = CnnTrainConfig::default().distortion.to_text())]
    distort: String,
    /// cnn: also train on every identity rotated by 90, 180 and 270 degrees, as three new
    /// identities (for characters and symbols, where a rotated one is another one; not faces;
    /// off by default).
    #[arg(long)]
    rotated_classes: bool,
    /// cnn: keep the last V training identities (natural order; for DIR/<group>/<identity>,
    /// the last groups' identities) out of training and measure N-way one-shot accuracy
    /// within their groups (--ways) every --eval-every steps; the model keeps the weights of
    /// the best evaluation [default: 0, no validation].
    #[arg(long, value_name = "V", default_value_t = 0, value_parser = wgnn_cli::count, allow_negative_numbers = true)]
    validation_identities: usize,
    /// cnn: steps between validation evaluations.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = wgnn_cli::positive, allow_negative_numbers = true)]
    eval_every: usize,
    /// cnn: stop when this many evaluations in a row bring no better validation accuracy
    /// (0: run every step).
    #[arg(long, value_name = "E", default_value_t = 5, value_parser = wgnn_cli::count, allow_negative_numbers = true)]
    patience: usize,
    /// cnn: identities per validation episode (one-shot N-way within a group, Lake et al.'s
    /// Omniglot task; a group with fewer is one episode).
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = wgnn_cli::positive, allow_negative_numbers = true)]
    ways: usize,
    /// cnn: channels of every block's 3x3 convolution.
    #[arg(long, value_name = "C", default_value_t = CnnSpec::default().width, value_parser = wgnn_cli::positive, allow_negative_numbers = true)]
    width: usize,
    /// cnn: blocks of convolution, batch normalisation, ReLU and 2x2 max pooling.
    #[arg(long, value_name = "B", default_value_t = CnnSpec::default().depth, value_parser = wgnn_cli::positive, allow_negative_numbers = true)]
    depth: usize,
    /// cnn: 1 (images as greyscale) or 3 (RGB).
    #[arg(long, value_name = "1|3", default_value_t = CnnSpec::default().channels, value_parser = wgnn_cli::positive, allow_negative_numbers = true)]
    channels: usize,
    /// Where to write the model (safetensors; written atomically at the end). Required.
    #[arg(long, value_name = "MODEL", value_parser = wgnn_cli::path)]
    out: PathBuf,
    /// Leave the last K identities (in natural order: s2 before s10) out of training, to
    /// evaluate on people the model never saw.
    #[arg(long, value_name = "K", default_value_t = 0, value_parser = wgnn_cli::count, allow_negative_numbers = true)]
    holdout_identities: usize,
    /// Passes over the training identities with the triplet loss.
    #[arg(long, value_name = "N", default_value_t = TrainConfig::default().epochs, value_parser = wgnn_cli::positive, allow_negative_numbers = true)]
    epochs: usize,
    /// P: identities per batch [default: 8 for face-resnet, 20 for cnn].
    #[arg(long, value_name = "P", value_parser = wgnn_cli::positive, allow_negative_numbers = true)]
    identities_per_batch: Option<usize>,
    /// K: images per identity in a batch (repeats when a person has fewer) [default: 4 for
    /// face-resnet, 5 for cnn].
    #[arg(long, value_name = "K", value_parser = wgnn_cli::positive, allow_negative_numbers = true)]
    images_per_identity: Option<usize>,
    /// Triplet margin on squared L2 distances between unit embeddings (0 to 4).
    #[arg(long, default_value_t = TrainConfig::default().margin, value_parser = wgnn_cli::positive_number, allow_negative_numbers = true)]
    margin: f32,
    /// Which triplets of a batch train: per anchor the hardest positive and negative
    /// (batch-hard), the nearest negative beyond the positive (semi-hard), or every triplet
    /// with a positive loss (batch-all).
    #[arg(long, value_enum, default_value = "batch-hard")]
    mining: Mining,
    /// Embedding size: the head's output (the face ResNet's descriptor has 128 values).
    #[arg(long, value_name = "D", default_value_t = NetworkSpec::default().head.embedding_dim, value_parser = wgnn_cli::positive, allow_negative_numbers = true)]
    embedding_dim: usize,
    /// How the head's projection starts: learned whitening of the training images'
    /// descriptors (closed form) or random (Xavier).
    #[arg(long, value_enum, default_value = "whitening")]
    init: HeadInit,
    /// Shrinkage of the within-identity scatter in the whitening, as a fraction of its mean
    /// eigenvalue: larger trusts the training identities less.
    #[arg(long, default_value_t = TrainConfig::default().whitening_shrinkage, allow_negative_numbers = true)]
    whitening_shrinkage: f64,
    /// Optimiser of the triplet training (sgd: momentum 0.9).
    #[arg(long, value_enum, default_value = "adam")]
    optimizer: OptimizerKind,
    /// Learning rate (multiplied by 0.1 for the last quarter of the epochs).
    #[arg(long, default_value_t = TrainConfig::default().learning_rate, value_parser = wgnn_cli::positive_number, allow_negative_numbers = true)]
    learning_rate: f32,
    /// L2 weight decay.
    #[arg(long, default_value_t = TrainConfig::default().weight_decay, value_parser = wgnn_cli::non_negative_number, allow_negative_numbers = true)]
    weight_decay: f32,
    /// Augmentation: `none` or a list of flip, shift, zoom, brightness, gamma, blur (a camera
    /// of lower resolution), light (uneven lighting), noise (sensor noise), distance (every copy
    /// but the first photographed up to 1.35x closer or 1.2x further away), tilt (the head
    /// turned in the image plane by up to 12 degrees). Each image gets a fixed set of variants
    /// (see --augment-copies) whose descriptors are computed once; flips are built into the
    /// mirror-symmetric network and need no variants.
    #[arg(long, default_value_t = TrainConfig::default().augment.list())]
    augment: String,
    /// Random variants per training image (drawn from --augment) besides the image itself;
    /// each costs a face detection and the trunk's passes (two with the mirror image), the
    /// bulk of the training time.
    #[arg(long, value_name = "N", default_value_t = TrainConfig::default().augment.copies, value_parser = wgnn_cli::count, allow_negative_numbers = true)]
    augment_copies: usize,
    /// Seed of everything random: same seed, same data, same model file, bit for bit.
    #[arg(long, default_value_t = TrainConfig::default().seed, allow_negative_numbers = true)]
    seed: u64,
    /// Write a checkpoint every N epochs (face-resnet) or steps (cnn) to --checkpoint, atomically
    /// (0: never) [default: 0 for face-resnet, 250 for cnn].
    #[arg(long, value_name = "N", value_parser = wgnn_cli::count, allow_negative_numbers = true)]
    checkpoint_every: Option<usize>,
    /// Checkpoint file [default: MODEL with `.checkpoint.safetensors`].
    #[arg(long, value_name = "PATH", value_parser = wgnn_cli::path)]
    checkpoint: Option<PathBuf>,
    /// Continue an interrupted run from this checkpoint, with the same flags (only --epochs,
    /// or --steps for cnn, may differ; the learning-rate schedule follows it), bit for bit as
    /// if never interrupted [default: start afresh].
    #[arg(long, value_name = "CHECKPOINT", value_parser = wgnn_cli::path)]
    resume: Option<PathBuf>,
    /// After training, time every kernel of a training step on the GPU (face-resnet: also of a
    /// batch of the trunk, the frozen face ResNet) with its timestamp queries where the adapter
    /// has them, else the host's clock around each kernel submitted alone (5 runs each,
    /// medians), and print a table to stdout: GPU ms per kernel, share, calls per step, GFLOP/s
    /// and GB/s from the FLOPs and bytes its ops state, and a whole step's wall time with the
    /// host-side part beside the kernels. The model written is the trained one, untouched
    /// (off by default).
    #[arg(long)]
    profile: bool,
    /// Write one JSON line per epoch (appended when resuming): {"epoch", "loss",
    /// "active_triplets", "pos_dist", "neg_dist", "ms"}; for cnn one per step: {"step",
    /// "loss", "active_triplets", "learning_rate"}, with "validation_one_shot" on evaluation
    /// steps [default: no log].
    #[arg(long, value_name = "PATH", value_parser = wgnn_cli::path)]
    log_json: Option<PathBuf>,
    /// face-resnet: size WIDTHxHEIGHT photos are resized to before the face and its landmarks
    /// are found and the 150x150 face chip is cut; cnn: the side N of the square images the
    /// network takes [default: 184x224 for face-resnet, 28 for cnn].
    #[arg(long, value_name = "WxH|N")]
    input_size: Option<String>,
    /// Describe the face chip alone instead of summing it with its mirror image's description
    /// (half the trunk time; off by default).
    #[arg(long)]
    no_mirror: bool,
    /// No progress bars (off by default).
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct EvalArgs {
    /// The model to evaluate (written by `train`). Required.
    #[arg(long, value_name = "MODEL", value_parser = wgnn_cli::path)]
    model: PathBuf,
    /// Images to evaluate on: one sub-folder per person. Required.
    #[arg(long, value_name = "DIR", value_parser = wgnn_cli::path)]
    data: PathBuf,
    /// Print one JSON line: identities, images, one_shot_accuracy, verification_accuracy, auc,
    /// eer, val_at_far_1e-3, threshold (plus head and model_threshold) [default: a table].
    #[arg(long)]
    json: bool,
    /// Draw the ROC curve to this PNG [default: none].
    #[arg(long, value_name = "ROC.png", value_parser = wgnn_cli::path)]
    roc: Option<PathBuf>,
    /// Verification by distance (threshold by 10-fold cross-validation on DIR) or by the
    /// logistic unit of train-verifier (its own decision, P(same) >= 0.5).
    #[arg(long, value_enum, default_value = "distance")]
    head: VerificationHead,
    /// Also report N-way one-shot accuracy within groups: the identities of each group
    /// (DIR/<group>/<identity>/, e.g. an Omniglot alphabet) in episodes of N, one image of each
    /// as the gallery in turn, the others as probes (Lake et al.'s 20-way task with N = 20)
    /// [default: off].
    #[arg(long, value_name = "N", value_parser = wgnn_cli::positive, allow_negative_numbers = true)]
    ways: Option<usize>,
    /// No progress bars (off by default).
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct TrainVerifierArgs {
    /// The model to add the verifier to (rewritten atomically unless --out is given). Required.
    #[arg(long, value_name = "MODEL", value_parser = wgnn_cli::path)]
    model: PathBuf,
    /// Training images: one sub-folder per person (the model's own training data). Required.
    #[arg(long, value_name = "DIR", value_parser = wgnn_cli::path)]
    data: PathBuf,
    /// Leave the last K identities out [default: as the model was trained].
    #[arg(long, value_name = "K", value_parser = wgnn_cli::count, allow_negative_numbers = true)]
    holdout_identities: Option<usize>,
    /// Write the model with its verifier here instead [default: --model].
    #[arg(long, value_name = "MODEL", value_parser = wgnn_cli::path)]
    out: Option<PathBuf>,
    /// Full-batch Adam steps.
    #[arg(long, default_value_t = VerifierConfig::default().steps, value_parser = wgnn_cli::positive, allow_negative_numbers = true)]
    steps: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = VerifierConfig::default().learning_rate, value_parser = wgnn_cli::positive_number, allow_negative_numbers = true)]
    learning_rate: f32,
    /// Seed of the drawing of different-identity pairs.
    #[arg(long, default_value_t = VerifierConfig::default().seed, allow_negative_numbers = true)]
    seed: u64,
    /// Pair only the photos, not also the augmented copies the model was trained on (faster:
    /// each copy costs a face detection and the trunk's passes; the unit generalises far
    /// worse; off by default).
    #[arg(long)]
    originals_only: bool,
    /// No progress bars (off by default).
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct EnrollArgs {
    /// The model whose embeddings the gallery holds. Required.
    #[arg(long, value_name = "MODEL", value_parser = wgnn_cli::path)]
    model: PathBuf,
    /// Gallery file (JSON; created if missing, written atomically). Required.
    #[arg(long, value_name = "G", value_parser = wgnn_cli::path)]
    gallery: PathBuf,
    /// The person's name (replaces an earlier enrolment of that name). Required.
    #[arg(long)]
    name: String,
    /// Photos of the person; their embeddings are averaged. At least one.
    #[arg(required = true, value_name = "IMAGE", value_parser = wgnn_cli::path)]
    images: Vec<PathBuf>,
}

#[derive(Args)]
struct VerifyArgs {
    /// The model the gallery was made with. Required.
    #[arg(long, value_name = "MODEL", value_parser = wgnn_cli::path)]
    model: PathBuf,
    /// Gallery file written by `enroll`. Required.
    #[arg(long, value_name = "G", value_parser = wgnn_cli::path)]
    gallery: PathBuf,
    /// The enrolled person the photo claims to show. Required.
    #[arg(long)]
    name: String,
    /// The photo to check.
    #[arg(value_name = "IMAGE", value_parser = wgnn_cli::path)]
    image: PathBuf,
    /// Squared-distance threshold of a match for this run [default: the model's].
    #[arg(long, value_name = "T", value_parser = wgnn_cli::non_negative_number, allow_negative_numbers = true)]
    threshold: Option<f32>,
}

#[derive(Args)]
struct IdentifyArgs {
    /// The model the gallery was made with. Required.
    #[arg(long, value_name = "MODEL", value_parser = wgnn_cli::path)]
    model: PathBuf,
    /// Gallery file written by `enroll`. Required.
    #[arg(long, value_name = "G", value_parser = wgnn_cli::path)]
    gallery: PathBuf,
    /// Photos to identify. At least one.
    #[arg(required = true, value_name = "IMAGE", value_parser = wgnn_cli::path)]
    images: Vec<PathBuf>,
    /// One JSON line per image: {"image", "name", "distance"} (with --top, also "nearest":
    /// [{"name", "distance"}, ...]) [default: CSV image,name,distance (with --top, a fourth
    /// column nearest: name:distance;name:distance...)].
    #[arg(long)]
    json: bool,
    /// Also list the K nearest enrolled people with their distances, nearest first, the first
    /// even beyond the threshold (a closed-set K-way choice reads off the first) [default: off].
    #[arg(long, value_name = "K", value_parser = wgnn_cli::positive, allow_negative_numbers = true)]
    top: Option<usize>,
    /// Squared-distance threshold under which the nearest person is named, for this run
    /// (replaces the one calibrated for the gallery) [default: calibrated, see
    /// --false-accept-rate].
    #[arg(long, value_name = "T", value_parser = wgnn_cli::non_negative_number, allow_negative_numbers = true, conflicts_with = "false_accept_rate")]
    threshold: Option<f32>,
    /// How often a stranger (someone not enrolled) may be named as someone enrolled, over the
    /// whole gallery. Against K people a stranger has K chances to fall under a one-pair
    /// threshold, so the threshold is calibrated for the gallery's size from the impostor
    /// distances of the model's training images: it tightens as the gallery grows, and is
    /// never looser than the verification threshold (models trained before the calibration
    /// use that).
    #[arg(long, value_name = "RATE", default_value_t = DEFAULT_FALSE_ACCEPT_RATE, value_parser = wgnn_cli::positive_number, allow_negative_numbers = true)]
    false_accept_rate: f32,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let limit = wgnn_cli::ImageLimit {
        max_image_pixels: cli.max_image_pixels,
    };
    limit.apply();
    wgnn_cli::exit_status(run(cli.command))
}

/// A file that a command reads: it must exist and not be a folder.
fn input_file(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(Error::file(path, "is a folder, not a file")),
        Ok(_) => Ok(()),
        Err(_) => Err(Error::file(path, "no such file")),
    }
}

/// A folder of images that a command reads.
fn input_folder(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::file(
            path,
            "is a file: give the folder of one sub-folder per person",
        )),
        Err(_) => Err(Error::file(path, "no such folder")),
    }
}

/// Every file a command reads and writes, checked before the GPU opens: a wrong path costs
/// nothing, not a training.
fn check_paths(command: &Command) -> Result<()> {
    use wgnn::files::check_output;
    match command {
        Command::Train(a) => {
            input_folder(&a.data)?;
            check_output(&a.out, &["safetensors"])?;
            let checkpoint = a
                .checkpoint
                .clone()
                .unwrap_or_else(|| default_checkpoint(&a.out));
            check_output(&checkpoint, &["safetensors"])?;
            if checkpoint == a.out {
                return Err(Error::file(
                    &a.out,
                    "the model and the checkpoint are the same file",
                ));
            }
            if let Some(resume) = &a.resume {
                input_file(resume)?;
            }
            if let Some(log) = &a.log_json {
                check_output(log, &[])?;
            }
        }
        Command::Eval(a) => {
            input_file(&a.model)?;
            input_folder(&a.data)?;
            if let Some(roc) = &a.roc {
                check_output(roc, &["png"])?;
            }
        }
        Command::TrainVerifier(a) => {
            input_file(&a.model)?;
            input_folder(&a.data)?;
            check_output(a.out.as_ref().unwrap_or(&a.model), &["safetensors"])?;
        }
        Command::Enroll(a) => {
            input_file(&a.model)?;
            check_output(&a.gallery, &[])?;
            a.images.iter().try_for_each(|p| input_file(p))?;
        }
        Command::Verify(a) => {
            input_file(&a.model)?;
            input_file(&a.gallery)?;
            input_file(&a.image)?;
        }
        Command::Identify(a) => {
            input_file(&a.model)?;
            input_file(&a.gallery)?;
            a.images.iter().try_for_each(|p| input_file(p))?;
        }
    }
    Ok(())
}

fn run(command: Command) -> Result<()> {
    check_paths(&command)?;
    if let Command::Train(args) = &command {
        match args.model {
            ModelKind::FaceResnet => train_config(args)?.validate()?,
            ModelKind::Cnn => cnn_config(args)?.spec.validate()?,
        }
    }
    let gpu = Gpu::new()?;
    match command {
        Command::Train(args) => train(&gpu, *args),
        Command::Eval(args) => eval(&gpu, args),
        Command::TrainVerifier(args) => train_verifier(&gpu, args),
        Command::Enroll(args) => {
            let model = SiameseModel::load(&gpu, &args.model)?;
            let replaced = commands::enroll(&gpu, &model, &args.gallery, &args.name, &args.images)?;
            println!(
                "{} {} ({} image{}) in {}",
                if replaced { "re-enrolled" } else { "enrolled" },
                args.name,
                args.images.len(),
                if args.images.len() == 1 { "" } else { "s" },
                args.gallery.display()
            );
            Ok(())
        }
        Command::Verify(args) => {
            let model = SiameseModel::load(&gpu, &args.model)?;
            let threshold = args.threshold.unwrap_or(model.threshold);
            let v = commands::verify(
                &gpu,
                &model,
                &args.gallery,
                &args.name,
                &args.image,
                threshold,
            )?;
            println!(
                "{} distance={:.6} threshold={:.6}",
                if v.matched { "match" } else { "no match" },
                v.distance,
                threshold
            );
            Ok(())
        }
        Command::Identify(args) => {
            let model = SiameseModel::load(&gpu, &args.model)?;
            if args.false_accept_rate >= 1.0 {
                return Err(Error::Invalid(format!(
                    "--false-accept-rate {} must be below 1",
                    args.false_accept_rate
                )));
            }
            let threshold = match args.threshold {
                Some(t) => Threshold::Fixed(t),
                None => Threshold::FalseAcceptRate(args.false_accept_rate as f64),
            };
            let top = args.top.unwrap_or(1);
            let (found, threshold) =
                commands::identify(&gpu, &model, &args.gallery, &args.images, threshold, top)?;
            if !args.json {
                let nearest_column = if args.top.is_some() { ",nearest" } else { "" };
                println!("image,name,distance{nearest_column}");
            }
            for (path, (id, nearest)) in args.images.iter().zip(found) {
                let name = id.name.as_deref().unwrap_or(UNKNOWN);
                let image = path.display().to_string();
                if args.json {
                    let mut line = serde_json::json!({
                        "image": image, "name": name, "distance": id.distance, "threshold": threshold
                    });
                    if args.top.is_some() {
                        line["nearest"] = nearest
                            .iter()
                            .map(|(n, d)| serde_json::json!({"name": n, "distance": d}))
                            .collect();
                    }
                    println!("{line}");
                } else {
                    let mut row =
                        format!("{},{},{}", csv_field(&image), csv_field(name), id.distance);
                    if args.top.is_some() {
                        let list: Vec<String> =
                            nearest.iter().map(|(n, d)| format!("{n}:{d}")).collect();
                        row += &format!(",{}", csv_field(&list.join(";")));
                    }
                    println!("{row}");
                }
            }
            Ok(())
        }
    }
}

/// Quotes a CSV field when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn parse_pair(flag: &str, text: &str) -> Result<[usize; 2]> {
    let parse = || -> Option<[usize; 2]> {
        let (a, b) = text.split_once('x')?;
        Some([a.trim().parse().ok()?, b.trim().parse().ok()?])
    };
    parse().ok_or_else(|| Error::Invalid(format!("{flag} `{text}`: expected AxB, e.g. 184x224")))
}

/// The training configuration the flags describe.
fn train_config(args: &TrainArgs) -> Result<TrainConfig> {
    let size = args.input_size.as_deref().unwrap_or("184x224");
    let [width, height] = parse_pair("--input-size", size)?;
    let network = NetworkSpec {
        trunk: TrunkSpec { width, height },
        head: HeadSpec {
            embedding_dim: args.embedding_dim,
        },
        mirror: !args.no_mirror,
    };
    let augment = Augment::parse(&args.augment, args.augment_copies)?;
    Ok(TrainConfig {
        network,
        init: args.init,
        whitening_shrinkage: args.whitening_shrinkage,
        epochs: args.epochs,
        identities_per_batch: args
            .identities_per_batch
            .unwrap_or(TrainConfig::default().identities_per_batch),
        images_per_identity: args
            .images_per_identity
            .unwrap_or(TrainConfig::default().images_per_identity),
        margin: args.margin,
        mining: args.mining,
        optimizer: args.optimizer,
        learning_rate: args.learning_rate,
        weight_decay: args.weight_decay,
        augment,
        seed: args.seed,
        ..TrainConfig::default()
    })
}

/// The configuration of `train --model cnn`.
fn cnn_config(args: &TrainArgs) -> Result<CnnTrainConfig> {
    let input = match args.input_size.as_deref() {
        None => CnnSpec::default().input,
        Some(text) => match text.parse::<usize>() {
            Ok(n) => n,
            Err(_) => match parse_pair("--input-size", text)? {
                [w, h] if w == h => w,
                _ => {
                    return Err(Error::Invalid(format!(
                        "--input-size {text}: the cnn takes square images, give one side N"
                    )))
                }
            },
        },
    };
    let config = CnnTrainConfig {
        spec: CnnSpec {
            input,
            channels: args.channels,
            width: args.width,
            depth: args.depth,
            embedding_dim: args.embedding_dim,
        },
        identities_per_batch: args
            .identities_per_batch
            .unwrap_or(CnnTrainConfig::default().identities_per_batch),
        images_per_identity: args
            .images_per_identity
            .unwrap_or(CnnTrainConfig::default().images_per_identity),
        margin: args.margin,
        mining: args.mining,
        learning_rate: args.learning_rate,
        schedule: args.lr_schedule,
        weight_decay: args.weight_decay,
        steps: args.steps,
        distortion: Distortion::parse(&args.distort)?,
        seed: args.seed,
    };
    if config.identities_per_batch < 2 || config.images_per_identity < 2 {
        return Err(Error::Invalid(format!(
            "--identities-per-batch {} and --images-per-identity {}: a batch holds triplets \
             only when both are at least 2",
            config.identities_per_batch, config.images_per_identity
        )));
    }
    Ok(config)
}

fn train_cnn(gpu: &Gpu, args: TrainArgs) -> Result<()> {
    let checkpoint = args
        .checkpoint
        .clone()
        .unwrap_or_else(|| default_checkpoint(&args.out));
    let request = commands::CnnTrainRequest {
        data: args.data.clone(),
        holdout_identities: args.holdout_identities,
        validation_identities: args.validation_identities,
        ways: args.ways,
        eval_every: args.eval_every,
        patience: args.patience,
        rotated_classes: args.rotated_classes,
        config: cnn_config(&args)?,
        checkpoint_every: args.checkpoint_every.unwrap_or(CNN_CHECKPOINT_EVERY),
        checkpoint: Some(checkpoint),
        resume: args.resume.clone(),
        profile: args.profile,
    };
    let mut progress = Bars::new(args.quiet, open_log(&args)?);
    let trained = commands::train_cnn(gpu, &request, &mut progress)?;
    progress.finish();
    trained.model.save(gpu, &args.out)?;
    let tail: Vec<f32> = trained
        .steps
        .iter()
        .rev()
        .take(50)
        .map(|s| s.loss)
        .collect();
    let loss = tail.iter().sum::<f32>() / tail.len().max(1) as f32;
    let best = match trained.best {
        Some((accuracy, step)) => format!(
            "; best validation one-shot {accuracy:.4} at step {step}{}",
            if trained.stopped_early {
                " (stopped early)"
            } else {
                ""
            }
        ),
        None => String::new(),
    };
    eprintln!(
        "wrote {} (threshold {:.4}, mean loss of the last {} steps {loss:.4}{best}); {} steps in \
         {:.1} s",
        args.out.display(),
        trained.model.threshold,
        tail.len(),
        trained.steps.len(),
        trained.total_seconds
    );
    print_profiles(&trained.profiles);
    Ok(())
}

/// `--profile`'s tables, each under what it profiled.
fn print_profiles(profiles: &[(String, Profile)]) {
    for (what, profile) in profiles {
        println!("{what}:\n{profile}\n");
    }
}

/// Checkpoint interval of `train --model cnn`, in steps.
const CNN_CHECKPOINT_EVERY: usize = 250;

/// The --log-json file: created, or appended to when resuming.
fn open_log(args: &TrainArgs) -> Result<Option<File>> {
    let Some(path) = &args.log_json else {
        return Ok(None);
    };
    let file = if args.resume.is_some() {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    } else {
        File::create(path)
    };
    Ok(Some(file.map_err(|e| {
        Error::file(path, format!("cannot write: {e}"))
    })?))
}

fn train(gpu: &Gpu, args: TrainArgs) -> Result<()> {
    if args.model == ModelKind::Cnn {
        return train_cnn(gpu, args);
    }
    let config = train_config(&args)?;
    let checkpoint = args
        .checkpoint
        .clone()
        .unwrap_or_else(|| default_checkpoint(&args.out));
    let request = TrainRequest {
        data: args.data.clone(),
        holdout_identities: args.holdout_identities,
        config,
        checkpoint_every: args.checkpoint_every.unwrap_or(0),
        checkpoint: Some(checkpoint),
        resume: args.resume.clone(),
        profile: args.profile,
    };
    let mut progress = Bars::new(args.quiet, open_log(&args)?);
    let trained = commands::train(gpu, &request, &mut progress)?;
    progress.finish();
    trained.model.save(gpu, &args.out)?;
    let last = trained.epochs.last();
    eprintln!(
        "wrote {} (threshold {:.4}{}); trunk features {:.1} s, {} epochs {:.1} s ({:.0} ms per \
         epoch), total {:.1} s",
        args.out.display(),
        trained.model.threshold,
        last.map(|s| format!(", final loss {:.4}", s.loss))
            .unwrap_or_default(),
        trained.trunk_seconds,
        trained.epochs.len(),
        trained.epoch_seconds,
        trained.epoch_seconds * 1000.0 / trained.epochs.len().max(1) as f64,
        trained.total_seconds
    );
    print_profiles(&trained.profiles);
    Ok(())
}

/// `model.safetensors` -> `model.checkpoint.safetensors`.
fn default_checkpoint(out: &Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    out.with_file_name(format!("{stem}.checkpoint.safetensors"))
}

fn eval(gpu: &Gpu, args: EvalArgs) -> Result<()> {
    let model = SiameseModel::load(gpu, &args.model)?;
    let mut progress = Bars::new(args.quiet, None);
    let evaluation =
        commands::evaluate_with_ways(gpu, &model, &args.data, args.head, args.ways, &mut progress)?;
    progress.finish();
    if let Some(path) = &args.roc {
        write_roc_png(path, &evaluation.pairs, 640, 480)?;
    }
    let m = &evaluation.metrics;
    if args.json {
        println!("{}", evaluation.to_json_line());
    } else {
        println!("identities            {}", m.identities);
        println!("images                {}", m.images);
        println!("one-shot accuracy     {:.4}", m.one_shot_accuracy);
        if let Some(w) = &evaluation.within_groups {
            println!(
                "{}-way within groups   {:.4} ({} episodes)",
                w.ways,
                w.accuracy,
                w.episodes.len()
            );
        }
        match evaluation.head {
            VerificationHead::Distance => {
                println!(
                    "verification accuracy {:.4} (10-fold threshold, mean {:.4})",
                    m.verification_accuracy, m.threshold
                );
                println!("model threshold       {:.4}", evaluation.model_threshold);
            }
            VerificationHead::Logistic => println!(
                "verification accuracy {:.4} (logistic unit, P(same) >= 0.5)",
                m.verification_accuracy
            ),
        }
        println!("ROC AUC               {:.4}", m.auc);
        println!("EER                   {:.4}", m.eer);
        println!("VAL at FAR 1e-3       {:.4}", m.val_at_far_1e_3);
    }
    Ok(())
}

fn train_verifier(gpu: &Gpu, args: TrainVerifierArgs) -> Result<()> {
    let mut model = SiameseModel::load(gpu, &args.model)?;
    let holdout = match args.holdout_identities {
        Some(k) => k,
        None => model.training["holdout_identities"]
            .as_u64()
            .ok_or_else(|| {
                Error::Invalid(
                    "the model does not record its held-out identities: give --holdout-identities"
                        .into(),
                )
            })? as usize,
    };
    let config = VerifierConfig {
        steps: args.steps,
        learning_rate: args.learning_rate,
        seed: args.seed,
        augmented: !args.originals_only,
        ..VerifierConfig::default()
    };
    let mut progress = Bars::new(args.quiet, None);
    let accuracy =
        commands::add_verifier(gpu, &mut model, &args.data, holdout, config, &mut progress)?;
    progress.finish();
    let out = args.out.as_ref().unwrap_or(&args.model);
    model.save(gpu, out)?;
    eprintln!(
        "wrote {} with a logistic verifier (balanced accuracy on the training pairs {accuracy:.4})",
        out.display()
    );
    Ok(())
}

/// Progress bars on stderr (one per stage; one per epoch while training) and the JSON log.
struct Bars {
    quiet: bool,
    bar: Option<ProgressBar>,
    log: Option<File>,
    /// The last validation accuracy, shown beside the loss.
    validation: Option<f64>,
}

impl Bars {
    fn new(quiet: bool, log: Option<File>) -> Self {
        Self {
            quiet,
            bar: None,
            log,
            validation: None,
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bars {
    fn stage(&mut self, what: &str, total: usize) {
        self.finish();
        if self.quiet {
            return;
        }
        let bar = if total == 0 {
            let bar = ProgressBar::new_spinner();
            bar.set_message(what.to_string());
            bar
        } else {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:>16} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}",
                )
                .unwrap()
                .progress_chars("=> "),
            );
            bar.set_message(what.to_string());
            bar
        };
        self.bar = Some(bar);
    }

    fn advance(&mut self, done: usize) {
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
        }
    }

    fn epoch(&mut self, stats: &EpochStats) -> Result<()> {
        if let Some(log) = &mut self.log {
            writeln!(log, "{}", stats.to_json_line())
                .and_then(|_| log.flush())
                .map_err(|e| Error::Invalid(format!("--log-json: cannot write: {e}")))?;
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            if !self.quiet {
                eprintln!(
                    "epoch {:>3}: loss {:.4}, active triplets {:.3}, pos {:.3}, neg {:.3}, {:.0} ms",
                    stats.epoch,
                    stats.loss,
                    stats.active_triplets,
                    stats.pos_dist,
                    stats.neg_dist,
                    stats.ms
                );
            }
        }
        Ok(())
    }

    fn training_step(&mut self, stats: &StepStats, validation: Option<f64>) -> Result<()> {
        if let Some(log) = &mut self.log {
            let mut line = serde_json::json!({
                "step": stats.step,
                "loss": stats.loss,
                "active_triplets": stats.active_triplets,
                "learning_rate": stats.learning_rate,
            });
            if let Some(accuracy) = validation {
                line["validation_one_shot"] = accuracy.into();
            }
            writeln!(log, "{line}")
                .and_then(|_| log.flush())
                .map_err(|e| Error::Invalid(format!("--log-json: cannot write: {e}")))?;
        }
        if let Some(accuracy) = validation {
            self.validation = Some(accuracy);
        }
        if let Some(bar) = &self.bar {
            let validation = self
                .validation
                .map(|a| format!(", validation {a:.3}"))
                .unwrap_or_default();
            bar.set_message(format!(
                "loss {:.4}, active {:.2}{validation}",
                stats.loss, stats.active_triplets
            ));
        }
        Ok(())
    }

    fn note(&mut self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(format!("note: {message}")),
            None => eprintln!("note: {message}"),
        }
    }
}
