//! dlib's face recognition ResNet (Davis King, `dlib_face_recognition_resnet_model_v1`, CC0):
//! a 29-convolution residual network trained on about 3 million faces that maps an aligned
//! 150x150 RGB face chip to 128 values (not normalised). `load_weights` reads them as
//! `scripts/dlib_face_resnet_to_safetensors.py` converts them (each affine (batch-norm) layer
//! folded into its convolution); the applications embed that file.
//!
//! The architecture, as dlib defines it: conv 7x7 stride 2 (32) + ReLU, max-pool 3x3 stride 2,
//! then 14 residual blocks and a linear layer without bias on the global average. A block is
//! conv 3x3 (stride 1 or 2) + ReLU, conv 3x3 stride 1, added to the block's input and ReLU'd.
//! dlib pads a convolution or pool by half its size only when its stride is 1, so the stride-2
//! ones have no padding. In a stride-2 block the shortcut is the input average-pooled 2x2
//! stride 2; where the two sides differ in size (channels, or rows and columns: 3x3 against
//! 4x4 and 1x1 against 2x2 in the last two stride-2 blocks), dlib adds them top-left aligned
//! with the missing entries zero.

use wgnn::error::Result;
use wgnn::graph::{Graph, NodeId};
use wgnn::nn::ParamStore;
use wgnn::ops::conv::ConvParams;
use wgnn::ops::elementwise::ChannelAffine;
use wgnn::ops::pool::PoolParams;
use wgnn::tensor::Shape;
use wgnn::Gpu;

/// The chip's side in pixels: the network was trained on 150x150 chips.
pub const CHIP_SIZE: usize = 150;

/// Values per output.
pub const OUTPUT_LEN: usize = 128;

/// (output channels, stride) of each residual block in order; a block's input channels are
/// the previous block's output (32 for the first).
pub const BLOCKS: [(usize, usize); 14] = [
    (32, 1),
    (32, 1),
    (32, 1),
    (64, 2),
    (64, 1),
    (64, 1),
    (64, 1),
    (128, 2),
    (128, 1),
    (128, 1),
    (256, 2),
    (256, 1),
    (256, 1),
    (256, 2),
];

/// The name of the fixed kernel that extends a block's output with zeros (see `zero_extend`);
/// it is built by `load_weights`, not read from the file.
fn extend_name(block: usize) -> String {
    format!("blocks.{block}.extend.weight")
}

/// Every stored parameter's name and shape.
pub fn parameter_shapes() -> Vec<(String, Shape)> {
    let mut shapes = vec![
        ("stem.weight".to_string(), Shape::from([32, 3, 7, 7])),
        ("stem.bias".to_string(), Shape::from([32])),
    ];
    let mut cin = 32;
    for (i, &(n, _)) in BLOCKS.iter().enumerate() {
        for (conv, input) in [("conv1", cin), ("conv2", n)] {
            shapes.push((
                format!("blocks.{i}.{conv}.weight"),
                Shape::from([n, input, 3, 3]),
            ));
            shapes.push((format!("blocks.{i}.{conv}.bias"), Shape::from([n])));
        }
        cin = n;
    }
    shapes.push(("fc.weight".to_string(), Shape::from([OUTPUT_LEN, 256])));
    shapes
}

/// Maps an RGB chip in [0, 1] to the network's input: `(255 x - mean) / 256` per channel, RGB
/// order, dlib's means.
pub fn preprocess() -> ChannelAffine {
    let mean = [122.782f32, 117.001, 104.298];
    ChannelAffine {
        perm: vec![0, 1, 2],
        scale: vec![255.0 / 256.0; 3],
        offset: mean.iter().map(|m| -m / 256.0).collect(),
    }
}

/// Output side of a convolution or pool of `kernel`, `stride` and dlib's default padding.
fn dlib_out(size: usize, kernel: usize, stride: usize) -> usize {
    let padding = if stride == 1 { kernel / 2 } else { 0 };
    (size + 2 * padding - kernel) / stride + 1
}

/// The spatial side of each block's two paths (the convolutions', the shortcut's) for a chip.
fn block_sides() -> Vec<(usize, usize)> {
    let mut side = dlib_out(dlib_out(CHIP_SIZE, 7, 2), 3, 2);
    BLOCKS
        .iter()
        .map(|&(_, stride)| {
            let (convolved, shortcut) = if stride == 1 {
                (side, side)
            } else {
                (dlib_out(side, 3, 2), dlib_out(side, 2, 2))
            };
            side = convolved.max(shortcut);
            (convolved, shortcut)
        })
        .collect()
}

/// The stored weights (safetensors `bytes`, called `name` in errors) plus the fixed
/// zero-extension kernels of the blocks whose paths differ in size; every stored tensor is
/// checked by name and shape.
pub fn load_weights(gpu: &Gpu, name: &str, bytes: &[u8]) -> Result<ParamStore> {
    let mut store =
        ParamStore::load_for_bytes(gpu, std::path::Path::new(name), bytes, &parameter_shapes())?;
    for (i, (convolved, shortcut)) in block_sides().into_iter().enumerate() {
        if convolved < shortcut {
            let n = BLOCKS[i].0;
            // Identity across channels at the 2x2 kernel's bottom-right tap: with padding 1,
            // output (r, c) reads input (r, c), and the extra row and column read padding.
            let mut weight = vec![0.0f32; n * n * 4];
            for channel in 0..n {
                weight[(channel * n + channel) * 4 + 3] = 1.0;
            }
            store.insert_f32(gpu, &extend_name(i), [n, n, 2, 2], &weight)?;
        }
    }
    Ok(store)
}

/// `x` [N, C, s, s] extended with zeros to [N, C, s + 1, s + 1] (the new row and column last):
/// a convolution with the block's fixed selection kernel, exact since every other term is
/// a product with zero.
fn zero_extend(g: &mut Graph, x: NodeId, block: usize) -> Result<NodeId> {
    let n = g.shape(x).dim(1);
    let w = g.param(&extend_name(block), [n, n, 2, 2])?;
    g.conv(x, w, None, &ConvParams::new(2).padding(1))
}

fn conv(
    g: &mut Graph,
    x: NodeId,
    name: &str,
    [cout, cin, k]: [usize; 3],
    stride: usize,
    relu: bool,
) -> Result<NodeId> {
    let w = g.param(&format!("{name}.weight"), [cout, cin, k, k])?;
    let b = g.param(&format!("{name}.bias"), [cout])?;
    let padding = if stride == 1 { k / 2 } else { 0 };
    let p = ConvParams::new(2).stride(stride).padding(padding);
    if relu {
        g.conv_relu(x, w, Some(b), &p)
    } else {
        g.conv(x, w, Some(b), &p)
    }
}

/// The layers a user may look inside, in network order: the stem (conv 7x7 + ReLU) and each
/// residual block's output (after its ReLU).
pub fn layer_names() -> Vec<String> {
    std::iter::once("stem".to_string())
        .chain((1..=BLOCKS.len()).map(|b| format!("block{b}")))
        .collect()
}

/// The network on preprocessed chips `x` [N, 3, 150, 150] up to the last residual block:
/// the node of each of `layer_names()`, in order.
pub fn build_layers(g: &mut Graph, x: NodeId) -> Result<Vec<NodeId>> {
    let n = g.shape(x).dim(0);
    let stem = conv(g, x, "stem", [32, 3, 7], 2, true)?;
    let mut layers = vec![stem];
    let mut h = g.max_pool(stem, &PoolParams::new(&[3, 3]).stride(2))?;
    let mut cin = 32;
    for (i, ((cout, stride), (convolved, shortcut))) in
        BLOCKS.into_iter().zip(block_sides()).enumerate()
    {
        let a = conv(
            g,
            h,
            &format!("blocks.{i}.conv1"),
            [cout, cin, 3],
            stride,
            true,
        )?;
        let mut residual = conv(
            g,
            a,
            &format!("blocks.{i}.conv2"),
            [cout, cout, 3],
            1,
            false,
        )?;
        let mut skip = h;
        if stride != 1 {
            skip = g.avg_pool(h, &PoolParams::new(&[2, 2]).stride(2))?;
        }
        if cout > cin {
            let zeros = g.fill([n, cout - cin, shortcut, shortcut], 0.0)?;
            skip = g.concat_channels(&[skip, zeros])?;
        }
        if convolved < shortcut {
            residual = zero_extend(g, residual, i)?;
        }
        let sum = g.add(skip, residual)?;
        h = g.relu(sum)?;
        layers.push(h);
        cin = cout;
    }
    Ok(layers)
}

/// The network on preprocessed chips `x` [N, 3, 150, 150]: [N, 128].
pub fn build(g: &mut Graph, x: NodeId) -> Result<NodeId> {
    let last = *build_layers(g, x)?.last().expect("the network has layers");
    let pooled = g.global_avg_pool(last)?;
    let w = g.param("fc.weight", [OUTPUT_LEN, 256])?;
    g.linear(pooled, w, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sides_follow_dlib_padding() {
        let sides = block_sides();
        assert_eq!(sides[0], (35, 35));
        assert_eq!(sides[3], (17, 17));
        assert_eq!(sides[7], (8, 8));
        assert_eq!(sides[10], (3, 4));
        assert_eq!(sides[13], (1, 2));
    }
}
