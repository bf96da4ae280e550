//! A whole `visualize` run: load the images, run them through the network once, choose the
//! units of each layer, cut each unit's top patches out of the images, optionally synthesise an
//! image per unit, and write one grid PNG per layer plus a report.

use std::path::{Path, PathBuf};

use serde_json::json;
use wgnn::graph::{Graph, ReceptiveField};
use wgnn::{Error, Gpu, Result};
use wgnn_models::imaging::{io, resize::resize_exact, RgbImage};

use crate::maxima::{layer_maxima, LayerMaxima};
use crate::network::Model;
use crate::patches::{field_span, grid, patch, patch_side};
use crate::selection::{check_units, most_variable_units, top_images};
use crate::synthesize::{synthesize, unit_response, SynthesisConfig};
use wgnn_faces::embed::FaceAligner;

/// File extensions read as images when a folder is given.
pub const IMAGE_EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "gif", "bmp", "pgm", "ppm", "pnm"];
pub const DEFAULT_UNITS: usize = 8;
pub const DEFAULT_PATCHES: usize = 9;
pub const DEFAULT_OUT: &str = "features";
pub const DEFAULT_BATCH: usize = 8;

/// Which units of each layer to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Units {
    /// This many, the most variable across the images (`selection::most_variable_units`).
    MostVariable(usize),
    /// These channel indices, in every layer.
    Ids(Vec<usize>),
}

#[derive(Clone, Debug)]
pub struct VisualizeConfig {
    pub model: Model,
    /// A safetensors file replacing the embedded weights (VGG has none embedded).
    pub weights: Option<PathBuf>,
    /// Image files and folders (searched recursively); empty: the embedded photos.
    pub images: Vec<PathBuf>,
    /// None: `Model::default_layers`.
    pub layers: Option<Vec<String>>,
    pub units: Units,
    pub patches: usize,
    pub out: PathBuf,
    pub batch: usize,
    /// Also draw an image that excites each unit.
    pub synthesis: Option<SynthesisConfig>,
}

impl VisualizeConfig {
    pub fn new(model: Model) -> Self {
        Self {
            model,
            weights: None,
            images: Vec::new(),
            layers: None,
            units: Units::MostVariable(DEFAULT_UNITS),
            patches: DEFAULT_PATCHES,
            out: PathBuf::from(DEFAULT_OUT),
            batch: DEFAULT_BATCH,
            synthesis: None,
        }
    }
}

/// Stages of a run, for a progress bar.
pub trait Progress {
    fn stage(&mut self, _what: &str, _total: usize) {}
    fn advance(&mut self, _done: usize) {}
}

/// Reports nothing.
pub struct Silent;
impl Progress for Silent {}

/// One patch: the image it comes from, the position of the layer's map, the input rows and
/// columns it covers (inclusive, possibly past the border) and the unit's activation there.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchReport {
    pub image: String,
    pub position: (usize, usize),
    pub rows: (i64, i64),
    pub cols: (i64, i64),
    pub value: f32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct UnitReport {
    pub unit: usize,
    pub patches: Vec<PatchReport>,
    /// With synthesis: the unit's mean activation over the layer's positions on its
    /// synthesised image and on a plain mid-grey image.
    pub synthesis_response: Option<(f32, f32)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LayerReport {
    pub layer: String,
    pub units_in_layer: usize,
    /// Rows x columns of input seen by one position; None when it sees the whole image.
    pub receptive_field: Option<(usize, usize)>,
    pub patch_side: usize,
    pub grid: PathBuf,
    pub units: Vec<UnitReport>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub model: String,
    pub images: Vec<String>,
    pub layers: Vec<LayerReport>,
}

impl Report {
    pub fn to_json(&self) -> serde_json::Value {
        let layers: Vec<_> = self
            .layers
            .iter()
            .map(|l| {
                let units: Vec<_> = l
                    .units
                    .iter()
                    .map(|u| {
                        let patches: Vec<_> = u
                            .patches
                            .iter()
                            .map(|p| {
                                json!({
                                    "image": p.image,
                                    "position": [p.position.0, p.position.1],
                                    "rows": [p.rows.0, p.rows.1],
                                    "cols": [p.cols.0, p.cols.1],
                                    "value": p.value,
                                })
                            })
                            .collect();
                        let mut unit = json!({"unit": u.unit, "patches": patches});
                        if let Some((synthesized, start)) = u.synthesis_response {
                            unit["synthesized_response"] = json!(synthesized);
                            unit["start_response"] = json!(start);
                        }
                        unit
                    })
                    .collect();
                json!({
                    "layer": l.layer,
                    "units_in_layer": l.units_in_layer,
                    "receptive_field": l.receptive_field.map(|(h, w)| vec![h, w]),
                    "patch_side": l.patch_side,
                    "grid": l.grid.display().to_string(),
                    "units": units,
                })
            })
            .collect();
        json!({"model": self.model, "images": self.images, "layers": layers})
    }

    /// One line per layer and one per unit with its top activation values.
    pub fn to_text(&self) -> String {
        let mut text = format!("{}: {} images\n", self.model, self.images.len());
        for l in &self.layers {
            let field = match l.receptive_field {
                Some((h, w)) => format!("receptive field {h}x{w}"),
                None => "receptive field: the whole image".to_string(),
            };
            text += &format!(
                "{} ({} units, {field}) -> {}\n",
                l.layer,
                l.units_in_layer,
                l.grid.display()
            );
            for u in &l.units {
                let values: Vec<String> = u
                    .patches
                    .iter()
                    .map(|p| format!("{:.3}", p.value))
                    .collect();
                text += &format!("  unit {:>4}: {}", u.unit, values.join(" "));
                if let Some((synthesized, start)) = u.synthesis_response {
                    text +=
                        &format!("  (synthesised image: mean {synthesized:.3}, grey: {start:.3})");
                }
                text += "\n";
            }
        }
        text
    }
}

/// The image files named by `inputs` (files as given, folders searched recursively for
/// `IMAGE_EXTENSIONS`), each folder's files in sorted order.
pub fn image_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::file(dir, e))?
            .map(|e| e.map(|e| e.path()).map_err(|e| Error::file(dir, e)))
            .collect::<Result<_>>()?;
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, found)?;
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            {
                found.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let before = files.len();
            walk(input, &mut files)?;
            if files.len() == before {
                return Err(Error::file(
                    input,
                    format!(
                        "no images in this folder (looked for {})",
                        IMAGE_EXTENSIONS.join(", ")
                    ),
                ));
            }
        } else if input.exists() {
            files.push(input.clone());
        } else {
            return Err(Error::file(input, "no such file or folder"));
        }
    }
    Ok(files)
}

/// `image` scaled so that its shorter side is `side`, then its centre `side` x `side`.
pub fn center_square(image: &RgbImage, side: usize) -> Result<RgbImage> {
    let scale = side as f64 / image.width.min(image.height) as f64;
    let (w, h) = (
        ((image.width as f64 * scale).round() as usize).max(side),
        ((image.height as f64 * scale).round() as usize).max(side),
    );
    let scaled = resize_exact(image, w, h)?;
    let (top, left) = ((h - side) / 2, (w - side) / 2);
    crate::patches::crop(
        &scaled,
        [
            (top as i64, (top + side) as i64 - 1),
            (left as i64, (left + side) as i64 - 1),
        ],
    )
}

/// The named images the network sees: `config.images` or the embedded photos, each made the
/// network's square input (for the face ResNet, each photo's face aligned as `train_siamese`
/// aligns it).
pub fn network_images(gpu: &Gpu, config: &VisualizeConfig) -> Result<Vec<(String, RgbImage)>> {
    let side = config.model.input_side();
    if config.model == Model::FaceResNet && !config.images.is_empty() {
        let mut aligner = FaceAligner::new(gpu)?;
        return image_files(&config.images)?
            .into_iter()
            .map(|path| Ok((path.display().to_string(), aligner.chip(gpu, &path)?)))
            .collect();
    }
    let named: Vec<(String, RgbImage)> = if config.images.is_empty() {
        wgnn_assets::photos()?
    } else {
        image_files(&config.images)?
            .into_iter()
            .map(|path| Ok((path.display().to_string(), io::load(&path)?)))
            .collect::<Result<_>>()?
    };
    named
        .into_iter()
        .map(|(name, image)| Ok((name, center_square(&image, side)?)))
        .collect()
}

/// The receptive field of each of `layers` in the network's input.
pub fn receptive_fields(model: Model, layers: &[String]) -> Result<Vec<ReceptiveField>> {
    let side = model.input_side();
    let mut g = Graph::new();
    let x = g.input("image", [1, 3, side, side]);
    let nodes = model.build(&mut g, x, layers)?;
    nodes.iter().map(|&n| g.receptive_field(x, n)).collect()
}

fn check(config: &VisualizeConfig, layers: &[String]) -> Result<()> {
    config.model.check_layers(layers)?;
    if config.patches == 0 {
        return Err(Error::Invalid("--patches must be at least 1".into()));
    }
    if config.batch == 0 {
        return Err(Error::Invalid("--batch must be at least 1".into()));
    }
    match &config.units {
        Units::MostVariable(0) => Err(Error::Invalid("--units must be at least 1".into())),
        Units::Ids(ids) if ids.is_empty() => Err(Error::Invalid("--unit-ids lists no unit".into())),
        _ => Ok(()),
    }
}

/// Runs everything and writes `config.out/<layer>.png`; the images and the output folder are
/// checked before any GPU work.
pub fn run(gpu: &Gpu, config: &VisualizeConfig, progress: &mut dyn Progress) -> Result<Report> {
    let layers = config
        .layers
        .clone()
        .unwrap_or_else(|| config.model.default_layers());
    check(config, &layers)?;
    if config.out.exists() && !config.out.is_dir() {
        return Err(Error::file(
            &config.out,
            "is not a folder: --out names the folder for the grids",
        ));
    }
    std::fs::create_dir_all(&config.out).map_err(|e| Error::file(&config.out, e))?;
    let images = network_images(gpu, config)?;
    let fields = receptive_fields(config.model, &layers)?;
    let weights = config.model.weights(gpu, config.weights.as_deref())?;

    progress.stage("running the images through the network", images.len());
    let pixels: Vec<Vec<f32>> = images.iter().map(|(_, im)| im.data.clone()).collect();
    let maxima = layer_maxima(
        gpu,
        config.model,
        &weights,
        &layers,
        &pixels,
        config.batch,
        &mut |done, _| progress.advance(done),
    )?;

    let side = config.model.input_side();
    let mut reports = Vec::new();
    for (layer, field) in maxima.iter().zip(&fields) {
        let units = match &config.units {
            Units::MostVariable(n) => most_variable_units(layer, *n),
            Units::Ids(ids) => {
                check_units(layer, ids)?;
                ids.clone()
            }
        };
        let synthesized = match &config.synthesis {
            Some(s) => {
                progress.stage(&format!("synthesising images for {}", layer.layer), s.steps);
                let made = synthesize(
                    gpu,
                    config.model,
                    &weights,
                    &layer.layer,
                    &units,
                    s,
                    &mut |done, _| progress.advance(done),
                )?;
                Some(made)
            }
            None => None,
        };
        reports.push(layer_report(
            gpu,
            config,
            &weights,
            (layer, field),
            &units,
            &images,
            synthesized,
            side,
        )?);
    }
    Ok(Report {
        model: config.model.name().to_string(),
        images: images.into_iter().map(|(name, _)| name).collect(),
        layers: reports,
    })
}

// The layer's maxima and field, its units, the images and the synthesised images are all
// independent inputs of one layer's grid.
#[allow(clippy::too_many_arguments)]
fn layer_report(
    gpu: &Gpu,
    config: &VisualizeConfig,
    weights: &wgnn::nn::ParamStore,
    (layer, field): (&LayerMaxima, &ReceptiveField),
    units: &[usize],
    images: &[(String, RgbImage)],
    synthesized: Option<Vec<RgbImage>>,
    side: usize,
) -> Result<LayerReport> {
    let cell = patch_side(field, side);
    let mut rows = Vec::new();
    let mut unit_reports = Vec::new();
    for (i, &unit) in units.iter().enumerate() {
        let mut patches = Vec::new();
        let mut cells = Vec::new();
        for image in top_images(layer, unit, config.patches) {
            let position = layer.position(image, unit);
            let [rows_span, cols_span] = field_span(field, position, (side, side))?;
            cells.push(patch(&images[image].1, [rows_span, cols_span], cell)?);
            patches.push(PatchReport {
                image: images[image].0.clone(),
                position,
                rows: rows_span,
                cols: cols_span,
                value: layer.value(image, unit),
            });
        }
        let (synthesis_cell, synthesis_response) = match &synthesized {
            Some(made) => {
                let image = &made[i];
                let start = RgbImage::filled(image.width, image.height, [0.5; 3])?;
                let responses = unit_response(
                    gpu,
                    config.model,
                    weights,
                    &layer.layer,
                    unit,
                    &[image.clone(), start],
                )?;
                (
                    Some(resize_exact(image, cell, cell)?),
                    Some((responses[0], responses[1])),
                )
            }
            None => (None, None),
        };
        rows.push((synthesis_cell, cells));
        unit_reports.push(UnitReport {
            unit,
            patches,
            synthesis_response,
        });
    }
    let path = config.out.join(format!("{}.png", layer.layer));
    io::save(&grid(&rows, config.patches, cell)?, &path)?;
    Ok(LayerReport {
        layer: layer.layer.clone(),
        units_in_layer: layer.units,
        receptive_field: match field {
            ReceptiveField::Whole => None,
            ReceptiveField::Local(axes) => Some((axes[0].size(), axes[1].size())),
        },
        patch_side: cell,
        grid: path,
        units: unit_reports,
    })
}
