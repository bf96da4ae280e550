//! VGG16 / VGG19 feature layers (Simonyan & Zisserman 2014) in torchvision's `features.N`
//! layout: 3x3 convolutions (padding 1) + ReLU, 2x2 stride-2 pooling between stages.

use super::{Architecture, Pooling};
use wgnn::error::Result;
use wgnn::graph::{Graph, NodeId};
use wgnn::ops::conv::ConvParams;
use wgnn::ops::pool::PoolParams;
use wgnn::tensor::Shape;

/// Convolutions per stage.
pub fn config(arch: Architecture) -> &'static [usize] {
    match arch {
        Architecture::Vgg19 => &[2, 2, 4, 4, 4],
        _ => &[2, 2, 3, 3, 3],
    }
}

const WIDTHS: [usize; 5] = [64, 128, 256, 512, 512];

/// One entry per torchvision `features` module, in order.
enum Layer {
    /// (features index, input channels, output channels)
    Conv(usize, usize, usize),
    Relu,
    Pool,
}

fn layers(config: &[usize]) -> Vec<(String, Layer)> {
    let mut out = Vec::new();
    let (mut index, mut cin) = (0, 3);
    for (stage, (&convs, &width)) in config.iter().zip(&WIDTHS).enumerate() {
        for c in 1..=convs {
            out.push((
                format!("conv{}_{c}", stage + 1),
                Layer::Conv(index, cin, width),
            ));
            out.push((format!("relu{}_{c}", stage + 1), Layer::Relu));
            index += 2;
            cin = width;
        }
        out.push((format!("pool{}", stage + 1), Layer::Pool));
        index += 1;
    }
    out
}

pub fn layer_names(config: &[usize]) -> Vec<String> {
    layers(config).into_iter().map(|(name, _)| name).collect()
}

pub fn parameter_shapes(config: &[usize]) -> Vec<(String, Shape)> {
    let mut shapes = Vec::new();
    for (_, layer) in layers(config) {
        if let Layer::Conv(index, cin, cout) = layer {
            shapes.push((
                format!("features.{index}.weight"),
                Shape::from([cout, cin, 3, 3]),
            ));
            shapes.push((format!("features.{index}.bias"), Shape::from([cout])));
        }
    }
    shapes
}

/// Builds the first `count` layers and returns their nodes.
pub fn build_features(
    g: &mut Graph,
    x: NodeId,
    pooling: Pooling,
    config: &[usize],
    count: usize,
) -> Result<Vec<NodeId>> {
    let mut outputs = Vec::with_capacity(count);
    let mut h = x;
    for (_, layer) in layers(config).into_iter().take(count) {
        h = match layer {
            Layer::Conv(index, cin, cout) => {
                let w = g.param(&format!("features.{index}.weight"), [cout, cin, 3, 3])?;
                let b = g.param(&format!("features.{index}.bias"), [cout])?;
                g.conv(h, w, Some(b), &ConvParams::new(2).padding(1))?
            }
            Layer::Relu => g.relu(h)?,
            Layer::Pool => {
                let p = PoolParams::new(&[2, 2]);
                match pooling {
                    Pooling::Max => g.max_pool(h, &p)?,
                    Pooling::Avg => g.avg_pool(h, &p)?,
                }
            }
        };
        outputs.push(h);
    }
    Ok(outputs)
}
