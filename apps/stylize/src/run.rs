//! One stylize run, from options to a saved picture: check every input before any GPU work,
//! load the pictures and the backbone, optimise coarse to fine (one compiled `StyleProblem` per
//! scale), log each iteration, and write the result atomically. `src/bin/stylize.rs` only parses
//! arguments into a [`StyleConfig`] and draws the progress bar; tests call [`run`] directly.
//!
//! Iterations are numbered per scale: the record of iteration `k` holds the losses at the image
//! after `k` updates (so iteration 0 is the starting image) and `ms`, the wall time of the work
//! that produced it (Adam: the fused evaluate + update step, whose evaluation is of the image
//! before its update; L-BFGS: the line search). `--iterations N` gives N + 1 records per scale.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::lbfgs::{line_search, Lbfgs, LineSearch};
use super::problem::{largest_tensor_bytes, ImageData, Losses, Objective, StyleProblem};
use wgnn::error::{Error, Result};
use wgnn::gpu::Gpu;
use wgnn::graph::Profile;
use wgnn::rng::Rng;
use wgnn_models::imaging::resize::{fit_longest_side, fit_longest_side_size, resize_exact};
use wgnn_models::imaging::{color::preserve_colors, io, RgbImage};
use wgnn_models::{Architecture, Pooling};

pub const DEFAULT_OUTPUT: &str = "stylized.png";
/// Longest side of the result, in pixels.
pub const DEFAULT_SIZE: usize = 256;
pub const DEFAULT_ITERATIONS: usize = 60;
/// Adam's step on [0, 1] pixels; for L-BFGS, the largest pixel change of the first step.
pub const DEFAULT_LEARNING_RATE: f32 = 0.03;
pub const DEFAULT_CONTENT_WEIGHT: f32 = 1.0;
pub const DEFAULT_STYLE_WEIGHT: f32 = 1000.0;
pub const DEFAULT_TV_WEIGHT: f32 = 1000.0;
/// Runs of each kernel that `--profile` takes the median of.
pub const PROFILE_REPEATS: usize = 5;
pub const DEFAULT_SEED: u64 = 0;
/// Pairs (s, y) that L-BFGS remembers.
pub const LBFGS_HISTORY: usize = 10;
/// How far `check_size` looks for the smallest size that the layers accept.
const MAX_SMALLEST_SIZE: usize = 1024;
/// Halvings the L-BFGS line search tries before it declares the image converged.
const LINE_SEARCH_TRIES: usize = 30;

/// The content layers used when none are given.
pub fn default_content_layers(model: Architecture) -> Vec<String> {
    let layers: &[&str] = match model {
        Architecture::SqueezeNet => &["fire7"],
        Architecture::Vgg16 | Architecture::Vgg19 => &["relu4_2"],
    };
    layers.iter().map(|s| s.to_string()).collect()
}

/// The style layers used when none are given.
pub fn default_style_layers(model: Architecture) -> Vec<String> {
    let layers: &[&str] = match model {
        Architecture::SqueezeNet => &["conv1", "fire2", "fire3", "fire5", "fire7"],
        Architecture::Vgg16 | Architecture::Vgg19 => {
            &["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
        }
    };
    layers.iter().map(|s| s.to_string()).collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerKind {
    Adam,
    Lbfgs,
}

/// Where the optimisation starts.
#[derive(Clone, Debug, PartialEq)]
pub enum InitKind {
    Content,
    /// Uniform noise in [0, 1), drawn from `--seed`.
    Noise,
    /// A picture, resized to the content's size.
    Image(PathBuf),
}

/// Every option of `stylize` (see `src/bin/stylize.rs` for their documentation).
#[derive(Clone, Debug)]
pub struct StyleConfig {
    /// None: the embedded photo.
    pub content: Option<PathBuf>,
    /// Empty: the embedded painting.
    pub styles: Vec<PathBuf>,
    /// One per style; None: equal weights.
    pub style_blend_weights: Option<Vec<f32>>,
    pub output: PathBuf,
    pub size: usize,
    pub style_scale: f32,
    pub model: Architecture,
    pub weights: Option<PathBuf>,
    /// None: [`default_content_layers`].
    pub content_layers: Option<Vec<String>>,
    /// None: [`default_style_layers`].
    pub style_layers: Option<Vec<String>>,
    /// One per style layer; None: all 1.
    pub style_layer_weights: Option<Vec<f32>>,
    pub content_weight: f32,
    pub style_weight: f32,
    pub tv_weight: f32,
    /// Per scale; 0 evaluates the losses and the gradient without any update.
    pub iterations: usize,
    pub optimizer: OptimizerKind,
    pub learning_rate: f32,
    pub init: InitKind,
    pub seed: u64,
    pub pooling: Pooling,
    pub preserve_colors: bool,
    pub scales: usize,
    /// 0: no snapshots.
    pub save_every: usize,
    pub log_json: Option<PathBuf>,
    /// After the run, time every kernel of an iteration of the last scale (`--profile`).
    pub profile: bool,
}

impl Default for StyleConfig {
    fn default() -> Self {
        Self {
            content: None,
            styles: Vec::new(),
            style_blend_weights: None,
            output: PathBuf::from(DEFAULT_OUTPUT),
            size: DEFAULT_SIZE,
            style_scale: 1.0,
            model: Architecture::SqueezeNet,
            weights: None,
            content_layers: None,
            style_layers: None,
            style_layer_weights: None,
            content_weight: DEFAULT_CONTENT_WEIGHT,
            style_weight: DEFAULT_STYLE_WEIGHT,
            tv_weight: DEFAULT_TV_WEIGHT,
            iterations: DEFAULT_ITERATIONS,
            optimizer: OptimizerKind::Adam,
            learning_rate: DEFAULT_LEARNING_RATE,
            init: InitKind::Content,
            seed: DEFAULT_SEED,
            pooling: Pooling::Max,
            preserve_colors: false,
            scales: 1,
            save_every: 0,
            log_json: None,
            profile: false,
        }
    }
}

/// One line of the log.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IterationRecord {
    /// 0 for the coarsest scale.
    pub scale: usize,
    pub iter: usize,
    pub losses: Losses,
    pub ms: f64,
}

impl IterationRecord {
    /// The `--log-json` line (without the newline), keys in the documented order; `scale`
    /// (counted from 0, coarsest first) is added only for multi-scale runs.
    pub fn to_json(&self, with_scale: bool) -> String {
        let number = |v: f64| serde_json::Value::from(v).to_string();
        let l = &self.losses;
        let scale = if with_scale {
            format!(r#""scale": {}, "#, self.scale)
        } else {
            String::new()
        };
        format!(
            r#"{{{scale}"iter": {}, "content": {}, "style": {}, "tv": {}, "total": {}, "grad_norm": {}, "ms": {}}}"#,
            self.iter,
            number(l.content),
            number(l.style),
            number(l.tv),
            number(l.total),
            number(l.grad_norm),
            number(self.ms)
        )
    }
}

/// What a caller sees of a run while it goes (the binary draws a progress bar).
pub trait Progress {
    /// A scale begins: `iterations` updates on a `width` x `height` image.
    fn scale_started(&mut self, _scale: usize, _scales: usize, _width: usize, _height: usize) {}
    fn iteration(&mut self, _record: &IterationRecord) {}
    /// Something worth a line (a snapshot written, a converged line search).
    fn note(&mut self, _text: &str) {}
}

/// Reports nothing.
pub struct Silent;
impl Progress for Silent {}

/// The outcome of a run; the picture is already saved at `config.output`.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub records: Vec<IterationRecord>,
    /// The saved picture (after colour preservation when asked).
    pub image: RgbImage,
    pub model_summary: String,
    /// With `StyleConfig::profile`: the kernels of an iteration at the last scale.
    pub profile: Option<Profile>,
}

impl RunSummary {
    /// Median wall time of the update iterations of the last scale, skipping the first
    /// `warmup` (None without updates).
    pub fn median_ms(&self, warmup: usize) -> Option<f64> {
        let last = self.records.last()?.scale;
        let mut ms: Vec<f64> = self
            .records
            .iter()
            .filter(|r| r.scale == last)
            .collect::<Vec<_>>()
            .split_last()
            .map(|(_, updates)| updates.iter().skip(warmup).map(|r| r.ms).collect())
            .unwrap_or_default();
        if ms.is_empty() {
            return None;
        }
        ms.sort_by(f64::total_cmp);
        Some(ms[ms.len() / 2])
    }
}

/// The objective a config describes, with its defaults filled in and every number checked.
pub fn objective(config: &StyleConfig) -> Result<Objective> {
    let model = config.model;
    let content_layers = config
        .content_layers
        .clone()
        .unwrap_or_else(|| default_content_layers(model));
    let style_layers = config
        .style_layers
        .clone()
        .unwrap_or_else(|| default_style_layers(model));
    model.check_layers(&content_layers)?;
    model.check_layers(&style_layers)?;
    let style_layer_weights = config
        .style_layer_weights
        .clone()
        .unwrap_or_else(|| vec![1.0; style_layers.len()]);
    if style_layer_weights.len() != style_layers.len() {
        return Err(Error::Invalid(format!(
            "--style-layer-weights gives {} weights for {} style layers ({})",
            style_layer_weights.len(),
            style_layers.len(),
            style_layers.join(",")
        )));
    }
    let checks = [
        ("--content-weight", config.content_weight),
        ("--style-weight", config.style_weight),
        ("--tv-weight", config.tv_weight),
    ];
    for (flag, w) in checks.into_iter().chain(
        style_layer_weights
            .iter()
            .map(|&w| ("--style-layer-weights", w)),
    ) {
        non_negative(flag, w)?;
    }
    Ok(Objective {
        model,
        pooling: config.pooling,
        content_layers,
        style_layers,
        style_layer_weights,
        content_weight: config.content_weight,
        style_weight: config.style_weight,
        tv_weight: config.tv_weight,
    })
}

fn non_negative(flag: &str, w: f32) -> Result<()> {
    if w.is_finite() && w >= 0.0 {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{flag} must be a finite number >= 0, got {w}"
        )))
    }
}

fn positive(flag: &str, v: f32) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{flag} must be a finite number > 0, got {v}"
        )))
    }
}

/// The blend weight of each style, normalised to sum 1.
fn blend_weights(config: &StyleConfig, styles: usize) -> Result<Vec<f32>> {
    let weights = config
        .style_blend_weights
        .clone()
        .unwrap_or_else(|| vec![1.0; styles]);
    if weights.len() != styles {
        return Err(Error::Invalid(format!(
            "--style-blend-weights gives {} weights for {styles} style images",
            weights.len()
        )));
    }
    for &w in &weights {
        non_negative("--style-blend-weights", w)?;
    }
    let total: f32 = weights.iter().sum();
    if total <= 0.0 {
        return Err(Error::Invalid(
            "--style-blend-weights must not all be 0".into(),
        ));
    }
    Ok(weights.iter().map(|w| w / total).collect())
}

/// Checks the destination before the run: not a folder, a writable folder, an image extension.
fn check_output(path: &Path) -> Result<()> {
    wgnn::files::check_output(path, &["png", "jpg", "jpeg"])
}

/// `stylized.png` -> `stylized_iter0100.png` (`stylized_scale2_iter0100.png` with several
/// scales, counting scales from 1).
pub fn snapshot_path(output: &Path, scale: usize, scales: usize, iter: usize) -> PathBuf {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "stylized".into());
    let extension = output
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let name = if scales > 1 {
        format!("{stem}_scale{}_iter{iter:04}{extension}", scale + 1)
    } else {
        format!("{stem}_iter{iter:04}{extension}")
    };
    output.with_file_name(name)
}

/// The longest side at each scale, coarse to fine: size / 2^(scales - 1), ..., size.
pub fn scale_sizes(size: usize, scales: usize) -> Vec<usize> {
    (0..scales)
        .rev()
        .map(|halvings| size.div_ceil(1 << halvings.min(63)))
        .collect()
}

/// Pictures of a run, decoded, at their original sizes.
struct Pictures {
    content: RgbImage,
    styles: Vec<(RgbImage, f32)>,
    init: Option<RgbImage>,
}

fn load_pictures(config: &StyleConfig) -> Result<Pictures> {
    let content = match &config.content {
        Some(path) => io::load(path)?,
        None => wgnn_assets::default_content()?,
    };
    let style_images = if config.styles.is_empty() {
        vec![wgnn_assets::default_style()?]
    } else {
        config
            .styles
            .iter()
            .map(io::load)
            .collect::<Result<Vec<_>>>()?
    };
    let blend = blend_weights(config, style_images.len())?;
    let init = match &config.init {
        InitKind::Image(path) => Some(io::load(path)?),
        _ => None,
    };
    Ok(Pictures {
        content,
        styles: style_images.into_iter().zip(blend).collect(),
        init,
    })
}

/// (width, height) in pixels.
type Size = (usize, usize);

/// The (width, height) of the content and of each style at longest side `size`.
fn sizes_at(pictures: &Pictures, size: usize, style_scale: f32) -> Result<(Size, Vec<Size>)> {
    let content = fit_longest_side_size(pictures.content.width, pictures.content.height, size)?;
    let style_side = ((size as f64 * style_scale as f64).round() as usize).max(1);
    let styles = pictures
        .styles
        .iter()
        .map(|(s, _)| fit_longest_side_size(s.width, s.height, style_side))
        .collect::<Result<Vec<_>>>()?;
    Ok((content, styles))
}

/// The largest tensor of any graph a run at longest side `size` builds, by shape inference.
fn largest_bytes(
    objective: &Objective,
    pictures: &Pictures,
    size: usize,
    style_scale: f32,
) -> Result<u64> {
    let (content, styles) = sizes_at(pictures, size, style_scale)?;
    let mut largest = largest_tensor_bytes(objective, content.1, content.0)?;
    for (w, h) in styles {
        largest = largest.max(largest_tensor_bytes(objective, h, w)?);
    }
    Ok(largest)
}

/// Refuses a `--size` whose tensors exceed the device's largest storage buffer binding, naming
/// the largest size that fits, and one whose coarsest scale is too small for the layers, naming
/// the smallest that works. Shape inference only: no GPU work.
fn check_size(
    gpu: &Gpu,
    objective: &Objective,
    pictures: &Pictures,
    config: &StyleConfig,
) -> Result<()> {
    let limit = gpu
        .limits
        .max_storage_buffer_binding_size
        .min(gpu.limits.max_buffer_size);
    check_style_scale(objective, pictures, config, limit, gpu)?;
    let bytes = |n: usize| largest_bytes(objective, pictures, n, config.style_scale);
    let coarsest = scale_sizes(config.size, config.scales)[0];
    // Below some size the pooled maps vanish (a shape error); above it, only the kernels'
    // 2^31-element limits make shape inference fail, far beyond any storage binding.
    let smallest_ok = (1..=config.size.max(MAX_SMALLEST_SIZE)).find(|&n| bytes(n).is_ok());
    let Some(smallest_ok) = smallest_ok else {
        let e = bytes(config.size)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        return Err(Error::Invalid(format!(
            "no --size up to {} works with the chosen layers of {}: {e}",
            config.size.max(MAX_SMALLEST_SIZE),
            objective.model.name()
        )));
    };
    if coarsest < smallest_ok {
        let which = if config.scales > 1 {
            format!(
                "the coarsest scale ({coarsest} pixels) of --size {} with --scales {}",
                config.size, config.scales
            )
        } else {
            format!("--size {}", config.size)
        };
        let scales = if config.scales > 1 {
            " at every scale"
        } else {
            ""
        };
        return Err(Error::Invalid(format!(
            "{which} is too small for the chosen layers of {}: the smallest longest side that \
             works{scales} is {smallest_ok} pixels",
            objective.model.name()
        )));
    }
    let fits = |n: usize| matches!(bytes(n), Ok(b) if b <= limit);
    if fits(config.size) {
        return Ok(());
    }
    // The largest fitting size, by bisection between `lo` (fits) and `hi` (does not).
    let (mut lo, mut hi) = (smallest_ok, config.size);
    let advice = if fits(lo) {
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        format!("the largest --size that fits is {lo}")
    } else {
        "no --size fits".to_string()
    };
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let need = match bytes(config.size) {
        Ok(b) => format!("its largest tensor needs {:.1} MiB", mib(b)),
        Err(e) => format!("it exceeds the kernels' limits ({e})"),
    };
    Err(Error::Limit {
        what: format!("--size {}", config.size),
        message: format!(
            "{need} but {} binds at most {:.1} MiB per buffer; {advice}",
            gpu.adapter.name,
            mib(limit)
        ),
    })
}

/// Where the content alone fits at `--size` but a style image scaled by `--style-scale` does
/// not (too large for a buffer, or for the kernels), the scale is to blame: refuses it, naming
/// the largest `--style-scale` that fits.
fn check_style_scale(
    objective: &Objective,
    pictures: &Pictures,
    config: &StyleConfig,
    limit: u64,
    gpu: &Gpu,
) -> Result<()> {
    // The style's longest side in pixels, and whether a style that size fits.
    let side = |scale: f32| ((config.size as f64 * scale as f64).round() as usize).max(1);
    let scale_of = |pixels: usize| pixels as f32 / config.size as f32;
    let fits = |pixels: usize| {
        let bytes = largest_bytes(objective, pictures, config.size, scale_of(pixels));
        matches!(bytes, Ok(b) if b <= limit)
    };
    let (content, _) = sizes_at(pictures, config.size, 1.0)?;
    let content_fits =
        matches!(largest_tensor_bytes(objective, content.1, content.0), Ok(b) if b <= limit);
    let asked = side(config.style_scale);
    if !content_fits || pictures.styles.is_empty() || fits(asked) || !fits(config.size) {
        return Ok(());
    }
    // Bisection between the content's side (fits) and the asked side (does not).
    let (mut good, mut bad) = (config.size, asked);
    while good.abs_diff(bad) > 1 {
        let mid = (good + bad) / 2;
        if fits(mid) {
            good = mid;
        } else {
            bad = mid;
        }
    }
    if asked > config.size {
        return Err(Error::Limit {
            what: format!("--style-scale {}", config.style_scale),
            message: format!(
                "the style image's longest side would be {asked} pixels, more than {} binds in \
                 one buffer; the largest --style-scale that works at --size {} is {:.3}",
                gpu.adapter.name,
                config.size,
                scale_of(good)
            ),
        });
    }
    Err(Error::Invalid(format!(
        "--style-scale {}: the style image's longest side would be {asked} pixels, too small for \
         the chosen layers; the smallest --style-scale that works at --size {} is {:.3}",
        config.style_scale,
        config.size,
        scale_of(good)
    )))
}

/// The `--log-json` file, created fresh, one flushed line per record.
struct JsonLog {
    file: std::fs::File,
    path: PathBuf,
    with_scale: bool,
}

impl JsonLog {
    fn create(path: &Path, with_scale: bool) -> Result<Self> {
        let file = std::fs::File::create(path)
            .map_err(|e| Error::file(path, format!("cannot create the log: {e}")))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            with_scale,
        })
    }

    fn write(&mut self, record: &IterationRecord) -> Result<()> {
        writeln!(self.file, "{}", record.to_json(self.with_scale))
            .and_then(|_| self.file.flush())
            .map_err(|e| Error::file(&self.path, format!("cannot write the log: {e}")))
    }
}

/// Where records go: the caller's progress, the log file, and the summary.
struct Recorder<'a> {
    progress: &'a mut dyn Progress,
    log: Option<JsonLog>,
    records: Vec<IterationRecord>,
}

impl Recorder<'_> {
    fn record(&mut self, record: IterationRecord) -> Result<()> {
        if let Some(log) = &mut self.log {
            log.write(&record)?;
        }
        self.progress.iteration(&record);
        self.records.push(record);
        Ok(())
    }
}

fn elapsed_ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// Runs style transfer as `config` says and saves the result at `config.output`. Every input
/// is checked before any GPU work; on error nothing is written at `config.output`.
pub fn run(gpu: &Gpu, config: &StyleConfig, progress: &mut dyn Progress) -> Result<RunSummary> {
    let objective = objective(config)?;
    positive("--learning-rate", config.learning_rate)?;
    positive("--style-scale", config.style_scale)?;
    if config.size == 0 {
        return Err(Error::Invalid("--size must be at least 1".into()));
    }
    if config.scales == 0 {
        return Err(Error::Invalid("--scales must be at least 1".into()));
    }
    check_output(&config.output)?;
    if let Some(log) = &config.log_json {
        if log == &config.output {
            return Err(Error::file(log, "the log and the output are the same file"));
        }
        wgnn::files::check_output(log, &[])?;
    }
    let pictures = load_pictures(config)?;
    check_size(gpu, &objective, &pictures, config)?;
    let backbone = wgnn_assets::backbone_weights(gpu, config.model, config.weights.as_deref())?;

    let mut recorder = Recorder {
        progress,
        log: None,
        records: Vec::new(),
    };
    let sizes = scale_sizes(config.size, config.scales);
    let mut previous: Option<(RgbImage, RgbImage)> = None; // (content, result) at a scale
    let mut model_summary = String::new();
    let mut profile = None;
    for (scale, &size) in sizes.iter().enumerate() {
        let content = fit_longest_side(&pictures.content, size)?;
        let (_, style_sizes) = sizes_at(&pictures, size, config.style_scale)?;
        let styles = pictures
            .styles
            .iter()
            .zip(style_sizes)
            .map(|((s, w), (sw, sh))| Ok((resize_exact(s, sw, sh)?, *w)))
            .collect::<Result<Vec<_>>>()?;
        let (width, height) = (content.width, content.height);
        let init = match (&previous, &config.init, &pictures.init) {
            (Some((_, image)), _, _) => resize_exact(image, width, height)?.clamped(),
            (None, InitKind::Content, _) => content.clone(),
            (None, InitKind::Noise, _) => {
                let mut rng = Rng::new(config.seed);
                RgbImage::new(width, height, rng.vec_f32(3 * width * height, 0.0, 1.0))?
            }
            (None, InitKind::Image(_), Some(image)) => {
                resize_exact(image, width, height)?.clamped()
            }
            (None, InitKind::Image(path), None) => {
                return Err(Error::file(path, "the initial image was not loaded"))
            }
        };
        let style_data: Vec<(ImageData<'_>, f32)> = styles
            .iter()
            .map(|(s, w)| (ImageData::from(s), *w))
            .collect();
        let learning_rate =
            (config.optimizer == OptimizerKind::Adam).then_some(config.learning_rate);
        let mut problem = StyleProblem::new(
            gpu,
            &backbone,
            &objective,
            &ImageData::from(&content),
            &style_data,
            &init.data,
            learning_rate,
        )
        .map_err(|e| match e {
            Error::Limit { what, message } => Error::Limit {
                what,
                message: format!("{message} (at --size {size}: try a smaller --size)"),
            },
            other => other,
        })?;
        model_summary = problem.summary().to_string();
        if recorder.log.is_none() {
            if let Some(path) = &config.log_json {
                recorder.log = Some(JsonLog::create(path, config.scales > 1)?);
            }
        }
        recorder
            .progress
            .scale_started(scale, config.scales, width, height);
        let snapshot = |recorder: &mut Recorder<'_>, iter: usize, chw: Vec<f32>| -> Result<()> {
            let path = snapshot_path(&config.output, scale, config.scales, iter);
            let image = finish_image(config, &content, RgbImage::new(width, height, chw)?)?;
            io::save(&image, &path)?;
            recorder
                .progress
                .note(&format!("saved snapshot {}", path.display()));
            Ok(())
        };
        let result = match config.optimizer {
            OptimizerKind::Adam => {
                run_adam(gpu, &mut problem, config, scale, &mut recorder, &snapshot)?
            }
            OptimizerKind::Lbfgs => {
                run_lbfgs(gpu, &mut problem, config, scale, &mut recorder, &snapshot)?
            }
        };
        if config.profile && scale + 1 == sizes.len() {
            profile = Some(problem.profile(gpu, PROFILE_REPEATS)?);
        }
        previous = Some((content, RgbImage::new(width, height, result)?));
    }
    let (content, generated) = previous.ok_or_else(|| Error::Invalid("no scale was run".into()))?;
    let image = finish_image(config, &content, generated)?;
    io::save(&image, &config.output)?;
    Ok(RunSummary {
        records: recorder.records,
        image,
        model_summary,
        profile,
    })
}

/// The picture as saved: clamped, with the content's colours when asked.
fn finish_image(config: &StyleConfig, content: &RgbImage, generated: RgbImage) -> Result<RgbImage> {
    if config.preserve_colors {
        preserve_colors(content, &generated)
    } else {
        Ok(generated.clamped())
    }
}

type Snapshot<'s> = dyn Fn(&mut Recorder<'_>, usize, Vec<f32>) -> Result<()> + 's;

/// Adam: each fused step evaluates the image and updates it; the image after the last update
/// is evaluated once more so that every image x_0..x_N gets its record.
fn run_adam(
    gpu: &Gpu,
    problem: &mut StyleProblem,
    config: &StyleConfig,
    scale: usize,
    recorder: &mut Recorder<'_>,
    snapshot: &Snapshot<'_>,
) -> Result<Vec<f32>> {
    for iter in 0..config.iterations {
        let start = Instant::now();
        let losses = problem.adam_step(gpu)?;
        recorder.record(IterationRecord {
            scale,
            iter,
            losses,
            ms: elapsed_ms(start),
        })?;
        let updates = iter + 1;
        if config.save_every > 0 && updates % config.save_every == 0 {
            snapshot(recorder, updates, problem.image(gpu)?)?;
        }
    }
    let start = Instant::now();
    let (losses, _) = problem.evaluate(gpu)?;
    recorder.record(IterationRecord {
        scale,
        iter: config.iterations,
        losses,
        ms: elapsed_ms(start),
    })?;
    problem.image(gpu)
}

/// L-BFGS: the two-loop direction and a backtracking line search that only accepts a lower J.
/// The first step (and any step after a reset) moves no pixel by more than the learning rate.
fn run_lbfgs(
    gpu: &Gpu,
    problem: &mut StyleProblem,
    config: &StyleConfig,
    scale: usize,
    recorder: &mut Recorder<'_>,
    snapshot: &Snapshot<'_>,
) -> Result<Vec<f32>> {
    let start = Instant::now();
    let (mut losses, mut grad) = problem.evaluate(gpu)?;
    recorder.record(IterationRecord {
        scale,
        iter: 0,
        losses,
        ms: elapsed_ms(start),
    })?;
    let mut x = problem.image(gpu)?;
    let mut lbfgs = Lbfgs::new(LBFGS_HISTORY);
    for iter in 1..=config.iterations {
        let start = Instant::now();
        let mut direction = lbfgs.direction(&grad);
        let slope: f64 = direction
            .iter()
            .zip(&grad)
            .map(|(d, g)| *d as f64 * *g as f64)
            .sum();
        if slope >= 0.0 {
            // Not a descent direction (curvature information gone stale): start afresh.
            lbfgs.reset();
            direction = grad.iter().map(|g| -g).collect();
        }
        let initial = if lbfgs.has_history() {
            1.0
        } else {
            let largest = grad.iter().fold(0.0f32, |m, g| m.max(g.abs())) as f64;
            config.learning_rate as f64 / largest.max(f64::MIN_POSITIVE)
        };
        let mut evaluated: Option<(Losses, Vec<f32>)> = None;
        let mut evaluate = |candidate: &[f32]| -> Result<f64> {
            problem.set_image(gpu, candidate)?;
            let (l, g) = problem.evaluate(gpu)?;
            let total = l.total;
            evaluated = Some((l, g));
            Ok(total)
        };
        let (outcome, x_new, _) = line_search(
            &x,
            losses.total,
            &grad,
            &direction,
            initial,
            LINE_SEARCH_TRIES,
            &mut evaluate,
        )?;
        if outcome == LineSearch::Stalled {
            recorder.progress.note(&format!(
                "L-BFGS: no step lowers J after {} iterations; stopping",
                iter - 1
            ));
            break;
        }
        let (new_losses, new_grad) =
            evaluated.ok_or_else(|| Error::Invalid("line search evaluated nothing".into()))?;
        lbfgs.remember(
            x_new.iter().zip(&x).map(|(a, b)| a - b).collect(),
            new_grad.iter().zip(&grad).map(|(a, b)| a - b).collect(),
        );
        x = x_new;
        losses = new_losses;
        grad = new_grad;
        recorder.record(IterationRecord {
            scale,
            iter,
            losses,
            ms: elapsed_ms(start),
        })?;
        if config.save_every > 0 && iter % config.save_every == 0 {
            snapshot(recorder, iter, x.clone())?;
        }
    }
    Ok(x)
}
