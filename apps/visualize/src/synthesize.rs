//! Images that excite a unit: gradient ascent on the pixels of an image (one per unit, all
//! units of a layer in one batch) to raise the unit's summed activation, through the same
//! autodiff that trains networks. Raw ascent yields high-frequency noise that excites the unit
//! but shows nothing; three regularisers make the result readable (Yosinski et al. 2015):
//! jitter (the image is shifted by a few random pixels before each step, so no pattern can rely
//! on exact pixel positions), a blur every few steps (it damps high frequencies), and a decay of
//! the pixels towards mid-grey (it keeps what does not help the unit neutral).

use wgnn::graph::{Graph, NodeId};
use wgnn::nn::ParamStore;
use wgnn::rng::Rng;
use wgnn::{Error, Gpu, Plan, PlanSpec, Result};
use wgnn_models::imaging::RgbImage;

use crate::network::Model;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SynthesisConfig {
    /// Side of the square images, in pixels.
    pub side: usize,
    pub steps: usize,
    /// Each step moves a pixel by at most about this much (the gradient is normalised by its
    /// mean magnitude per image).
    pub learning_rate: f32,
    /// Largest random shift, in pixels, before each step.
    pub jitter: usize,
    /// Blur the images every this many steps (0: never).
    pub blur_every: usize,
    /// Fraction of each pixel's distance to mid-grey removed each step.
    pub decay: f32,
    pub seed: u64,
}

impl Default for SynthesisConfig {
    fn default() -> Self {
        Self {
            side: 128,
            steps: 96,
            learning_rate: 0.02,
            jitter: 6,
            blur_every: 4,
            decay: 0.005,
            seed: 0,
        }
    }
}

/// The network up to `layer` on a batch of `units.len()` images, with the objective: for image
/// i, the sum of `units[i]`'s activations over the layer's positions.
struct AscentGraph {
    graph: Graph,
    images: NodeId,
    selection: NodeId,
    activations: NodeId,
    objective: NodeId,
    gradient: NodeId,
}

impl AscentGraph {
    fn new(model: Model, layer: &str, batch: usize, side: usize) -> Result<Self> {
        let mut g = Graph::new();
        let images = g.input("images", [batch, 3, side, side]);
        let activations = model.build(&mut g, images, &[layer.to_string()])?[0];
        let channels = g.shape(activations).dim(1);
        let selection = g.input("selection", [batch, channels, 1, 1]);
        let selected = g.mul(activations, selection)?;
        let objective = g.sum(selected)?;
        let gradient = g.gradients(objective, &[images])?[0];
        Ok(Self {
            graph: g,
            images,
            selection,
            activations,
            objective,
            gradient,
        })
    }

    /// One-hot rows: image i selects channel `units[i]`.
    fn selection_values(&self, units: &[usize]) -> Result<Vec<f32>> {
        let channels = self.graph.shape(self.activations).dim(1);
        if let Some(u) = units.iter().find(|&&u| u >= channels) {
            return Err(Error::Invalid(format!(
                "unit {u} is out of range: the layer has units 0 to {}",
                channels - 1
            )));
        }
        let mut values = vec![0.0f32; units.len() * channels];
        for (i, &u) in units.iter().enumerate() {
            values[i * channels + u] = 1.0;
        }
        Ok(values)
    }
}

/// One image per unit of `units` (of `layer`), each raising that unit's activation.
pub fn synthesize(
    gpu: &Gpu,
    model: Model,
    weights: &ParamStore,
    layer: &str,
    units: &[usize],
    config: &SynthesisConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<RgbImage>> {
    if units.is_empty() {
        return Ok(Vec::new());
    }
    let learning_rate_ok = config.learning_rate.is_finite() && config.learning_rate > 0.0;
    if config.side < 16 || !learning_rate_ok || !(0.0..1.0).contains(&config.decay) {
        return Err(Error::Invalid(format!(
            "synthesis needs a side of at least 16, a learning rate > 0 and a decay in [0, 1), \
             not {config:?}"
        )));
    }
    let (n, side) = (units.len(), config.side);
    let ascent = AscentGraph::new(model, layer, n, side)?;
    let spec = PlanSpec {
        outputs: vec![ascent.objective, ascent.gradient],
        ..Default::default()
    };
    let mut plan = Plan::compile(gpu, &ascent.graph, weights, spec)?;
    plan.write_input(gpu, ascent.selection, &ascent.selection_values(units)?)?;

    let mut rng = Rng::new(config.seed);
    let plane = side * side;
    let mut pixels: Vec<f32> = (0..n * 3 * plane)
        .map(|_| 0.5 + rng.range(-0.25, 0.25) as f32)
        .collect();
    for step in 0..config.steps {
        let j = config.jitter as i64;
        let (dy, dx) = (
            rng.range(-j as f64, j as f64 + 1.0).floor() as i64,
            rng.range(-j as f64, j as f64 + 1.0).floor() as i64,
        );
        plan.write_input(gpu, ascent.images, &roll(&pixels, side, dy, dx))?;
        let outputs = plan.step(gpu)?;
        let gradient = roll(&outputs[1], side, -dy, -dx);
        for (image, grad) in pixels
            .chunks_exact_mut(3 * plane)
            .zip(gradient.chunks_exact(3 * plane))
        {
            let scale = grad.iter().map(|g| g.abs()).sum::<f32>() / grad.len() as f32;
            let step_size = if scale > 0.0 {
                config.learning_rate / scale
            } else {
                0.0
            };
            for (p, g) in image.iter_mut().zip(grad) {
                let moved = *p + step_size * g;
                *p = (0.5 + (moved - 0.5) * (1.0 - config.decay)).clamp(0.0, 1.0);
            }
        }
        if config.blur_every > 0 && (step + 1) % config.blur_every == 0 {
            blur(&mut pixels, side);
        }
        progress(step + 1, config.steps);
    }
    pixels
        .chunks_exact(3 * plane)
        .map(|chw| RgbImage::new(side, side, chw.to_vec()))
        .collect()
}

/// The mean over positions of `unit`'s activation at `layer` for each image (each [3, side,
/// side] in [0, 1]): what `synthesize` raises (it ascends the sum).
pub fn unit_response(
    gpu: &Gpu,
    model: Model,
    weights: &ParamStore,
    layer: &str,
    unit: usize,
    images: &[RgbImage],
) -> Result<Vec<f32>> {
    let side = images.first().map_or(0, |im| im.width);
    if images
        .iter()
        .any(|im| im.width != side || im.height != side)
    {
        return Err(Error::Invalid(
            "unit_response takes square images of one size".into(),
        ));
    }
    let ascent = AscentGraph::new(model, layer, images.len(), side)?;
    let spec = PlanSpec {
        outputs: vec![ascent.activations],
        ..Default::default()
    };
    let mut plan = Plan::compile(gpu, &ascent.graph, weights, spec)?;
    let data: Vec<f32> = images
        .iter()
        .flat_map(|im| im.data.iter().copied())
        .collect();
    ascent.selection_values(&[unit])?;
    plan.write_input(gpu, ascent.images, &data)?;
    let activations = plan.step(gpu)?.remove(0);
    let dims = ascent.graph.shape(ascent.activations).dims().to_vec();
    let map = dims[2] * dims[3];
    Ok((0..images.len())
        .map(|i| {
            let start = (i * dims[1] + unit) * map;
            activations[start..start + map].iter().sum::<f32>() / map as f32
        })
        .collect())
}

/// Each [3, side, side] image of `pixels` shifted by (dy, dx), wrapping around.
fn roll(pixels: &[f32], side: usize, dy: i64, dx: i64) -> Vec<f32> {
    let s = side as i64;
    let mut out = vec![0.0; pixels.len()];
    for (src, dst) in pixels
        .chunks_exact(side * side)
        .zip(out.chunks_exact_mut(side * side))
    {
        for y in 0..s {
            let ty = (y + dy).rem_euclid(s) as usize;
            for x in 0..s {
                let tx = (x + dx).rem_euclid(s) as usize;
                dst[ty * side + tx] = src[y as usize * side + x as usize];
            }
        }
    }
    out
}

/// A 3x3 binomial blur ([1 2 1] / 4 each way) of every plane, edges clamped.
fn blur(pixels: &mut [f32], side: usize) {
    let at = |p: &[f32], y: usize, x: usize, dy: i64, dx: i64| {
        let yy = (y as i64 + dy).clamp(0, side as i64 - 1) as usize;
        let xx = (x as i64 + dx).clamp(0, side as i64 - 1) as usize;
        p[yy * side + xx]
    };
    for plane in pixels.chunks_exact_mut(side * side) {
        let source = plane.to_vec();
        for y in 0..side {
            for x in 0..side {
                let mut sum = 0.0;
                for (dy, wy) in [(-1, 1.0), (0, 2.0), (1, 1.0)] {
                    for (dx, wx) in [(-1, 1.0), (0, 2.0), (1, 1.0)] {
                        sum += wy * wx * at(&source, y, x, dy, dx);
                    }
                }
                plane[y * side + x] = sum / 16.0;
            }
        }
    }
}
