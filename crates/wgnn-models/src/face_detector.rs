//! dlib's CNN face detector (Davis King, `mmod_human_face_detector`, CC0): a fully
//! convolutional network trained with the max-margin object detection (MMOD) loss that scores
//! every 8th pixel of a tiled image pyramid for an 80x80 face window. The weights are converted
//! by `scripts/dlib_mmod_to_safetensors.py` (each affine layer folded into its convolution);
//! `faces::detect` builds the pyramid and turns the score map into face boxes.
//!
//! The architecture, as dlib defines it: three 5x5 stride-2 convolutions (16, 32, 32 filters,
//! no padding) each with ReLU, three 5x5 stride-1 convolutions (45 filters, padding 2) with
//! ReLU, and a 9x9 stride-1 convolution (padding 4) to one score channel. dlib pads a
//! convolution by half its size only when its stride is 1.

use wgnn::error::Result;
use wgnn::graph::{Graph, NodeId};
use wgnn::nn::ParamStore;
use wgnn::ops::conv::ConvParams;
use wgnn::ops::elementwise::ChannelAffine;
use wgnn::tensor::Shape;
use wgnn::Gpu;

/// (name, output channels, kernel side, stride) of each convolution in order; all but the last
/// (`score`) are followed by a ReLU.
pub const CONVS: [(&str, usize, usize, usize); 7] = [
    ("down.0", 16, 5, 2),
    ("down.1", 32, 5, 2),
    ("down.2", 32, 5, 2),
    ("body.0", 45, 5, 1),
    ("body.1", 45, 5, 1),
    ("body.2", 45, 5, 1),
    ("score", 1, 9, 1),
];

/// dlib's default padding: half the kernel at stride 1, none otherwise.
fn padding(kernel: usize, stride: usize) -> usize {
    if stride == 1 {
        kernel / 2
    } else {
        0
    }
}

/// Every stored parameter's name and shape.
pub fn parameter_shapes() -> Vec<(String, Shape)> {
    let mut shapes = Vec::new();
    let mut cin = 3;
    for (name, cout, k, _) in CONVS {
        shapes.push((format!("{name}.weight"), Shape::from([cout, cin, k, k])));
        shapes.push((format!("{name}.bias"), Shape::from([cout])));
        cin = cout;
    }
    shapes
}

/// The channel means dlib subtracts (input_rgb_image_pyramid's defaults, also in the file).
pub const MEAN_RGB: [f32; 3] = [122.782, 117.001, 104.298];

/// Maps RGB in [0, 1] to the network's input: `(255 x - mean) / 256` per channel, RGB order.
pub fn preprocess() -> ChannelAffine {
    ChannelAffine {
        perm: vec![0, 1, 2],
        scale: vec![255.0 / 256.0; 3],
        offset: MEAN_RGB.iter().map(|m| -m / 256.0).collect(),
    }
}

/// The weights from a safetensors file's bytes (`name` stands for it in errors); every tensor
/// is checked by name and shape.
pub fn load_weights(gpu: &Gpu, name: &str, bytes: &[u8]) -> Result<ParamStore> {
    ParamStore::load_for_bytes(gpu, std::path::Path::new(name), bytes, &parameter_shapes())
}

/// The side of the score map for an input side (dlib's convolution arithmetic).
pub fn output_side(mut side: usize) -> usize {
    for (_, _, k, stride) in CONVS {
        side = (side + 2 * padding(k, stride)).saturating_sub(k) / stride + 1;
    }
    side
}

/// The input-tensor coordinate of score-map coordinate `p` (dlib's
/// `output_tensor_to_input_tensor`: each convolution maps `p` to `p stride - padding + k / 2`).
pub fn score_to_input(mut p: f64) -> f64 {
    for (_, _, k, stride) in CONVS.iter().rev() {
        p = p * *stride as f64 - padding(*k, *stride) as f64 + (*k / 2) as f64;
    }
    p
}

/// The network on preprocessed input `x` [N, 3, H, W]: the score map [N, 1, h, w].
pub fn build(g: &mut Graph, x: NodeId) -> Result<NodeId> {
    let mut h = x;
    let mut cin = 3;
    for (name, cout, k, stride) in CONVS {
        let w = g.param(&format!("{name}.weight"), [cout, cin, k, k])?;
        let b = g.param(&format!("{name}.bias"), [cout])?;
        let p = ConvParams::new(2)
            .stride(stride)
            .padding(padding(k, stride));
        h = if name == "score" {
            g.conv(h, w, Some(b), &p)?
        } else {
            g.conv_relu(h, w, Some(b), &p)?
        };
        cin = cout;
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_locations_map_to_dlib_input_points() {
        // Three stride-2 convolutions without padding: 8 p + 14.
        assert_eq!(score_to_input(0.0), 14.0);
        assert_eq!(score_to_input(3.0), 38.0);
        assert_eq!(output_side(206), 23);
    }
}
