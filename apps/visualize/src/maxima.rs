//! Each unit's largest activation in each image, and the position where it occurs: all that
//! choosing units and their top patches needs, so the activations themselves are not kept.

use wgnn::graph::{Graph, NodeId};
use wgnn::nn::ParamStore;
use wgnn::{Error, Gpu, Plan, PlanSpec, Result};

use crate::network::Model;

/// One layer's maxima over `images` images: `values[image * units + unit]` is the largest
/// activation of `unit` in `image`, at `positions[image * units + unit]` (row, column of the
/// layer's map; the first such position in row-major order when several tie).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerMaxima {
    pub layer: String,
    pub units: usize,
    /// The layer's map size (rows, columns).
    pub map: (usize, usize),
    pub images: usize,
    pub values: Vec<f32>,
    pub positions: Vec<(usize, usize)>,
}

impl LayerMaxima {
    pub fn value(&self, image: usize, unit: usize) -> f32 {
        self.values[image * self.units + unit]
    }

    pub fn position(&self, image: usize, unit: usize) -> (usize, usize) {
        self.positions[image * self.units + unit]
    }
}

/// The largest value of each (image, channel) map of `activations` ([n, c, h, w], row-major)
/// and its first position: (values, positions), indexed `image * c + channel`.
pub fn spatial_maxima(
    activations: &[f32],
    [n, c, h, w]: [usize; 4],
) -> (Vec<f32>, Vec<(usize, usize)>) {
    let mut values = Vec::with_capacity(n * c);
    let mut positions = Vec::with_capacity(n * c);
    for map in activations.chunks_exact(h * w).take(n * c) {
        let (mut best, mut at) = (f32::NEG_INFINITY, 0);
        for (i, &v) in map.iter().enumerate() {
            if v > best {
                (best, at) = (v, i);
            }
        }
        values.push(best);
        positions.push((at / w, at % w));
    }
    (values, positions)
}

/// Something to tell while images go through the network.
pub trait Progress {
    fn images_done(&mut self, _done: usize, _total: usize) {}
}

impl Progress for () {}

/// Runs `images` (each [3, side, side] in [0, 1], CHW) through `model` in batches of `batch`
/// and returns the maxima of each of `layers`. The network is compiled once; the last batch is
/// padded with copies of its last image, whose results are dropped.
pub fn layer_maxima(
    gpu: &Gpu,
    model: Model,
    weights: &ParamStore,
    layers: &[String],
    images: &[Vec<f32>],
    batch: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<LayerMaxima>> {
    if images.is_empty() {
        return Err(Error::Invalid(
            "no images to run through the network".into(),
        ));
    }
    let side = model.input_side();
    let per_image = 3 * side * side;
    if let Some(i) = images.iter().position(|im| im.len() != per_image) {
        return Err(Error::Invalid(format!(
            "image {i} has {} values, not 3x{side}x{side}",
            images[i].len()
        )));
    }
    let batch = batch.clamp(1, images.len());
    let mut g = Graph::new();
    let x = g.input("images", [batch, 3, side, side]);
    let nodes: Vec<NodeId> = model.build(&mut g, x, layers)?;
    let spec = PlanSpec {
        outputs: nodes.clone(),
        ..Default::default()
    };
    let mut plan = Plan::compile(gpu, &g, weights, spec)?;
    let mut maxima: Vec<LayerMaxima> = layers
        .iter()
        .zip(&nodes)
        .map(|(layer, &node)| {
            let dims = g.shape(node).dims();
            LayerMaxima {
                layer: layer.clone(),
                units: dims[1],
                map: (dims[2], dims[3]),
                images: 0,
                values: Vec::new(),
                positions: Vec::new(),
            }
        })
        .collect();
    let mut input = vec![0.0f32; batch * per_image];
    for (b, chunk) in images.chunks(batch).enumerate() {
        for slot in 0..batch {
            let image = &chunk[slot.min(chunk.len() - 1)];
            input[slot * per_image..(slot + 1) * per_image].copy_from_slice(image);
        }
        plan.write_input(gpu, x, &input)?;
        let outputs = plan.step(gpu)?;
        for (layer, activations) in maxima.iter_mut().zip(&outputs) {
            let (c, (h, w)) = (layer.units, layer.map);
            let (values, positions) = spatial_maxima(activations, [chunk.len(), c, h, w]);
            layer.values.extend(values);
            layer.positions.extend(positions);
            layer.images += chunk.len();
        }
        progress((b * batch + chunk.len()).min(images.len()), images.len());
    }
    Ok(maxima)
}
