//! SqueezeNet v1.1 (Iandola et al. 2016), torchvision layout: conv1 (3x3 stride 2, 64) + ReLU,
//! max-pool 3x3 stride 2 ceil-mode, fire2, fire3, pool, fire4, fire5, pool, fire6..fire9, then a
//! classifier conv (1x1, 1000) + ReLU + global average pool. A fire module is a 1x1 squeeze +
//! ReLU feeding a 1x1 and a 3x3 (padding 1) expand, each + ReLU, concatenated (1x1 first).

use super::Pooling;
use wgnn::error::Result;
use wgnn::graph::{Graph, NodeId};
use wgnn::ops::conv::ConvParams;
use wgnn::ops::pool::PoolParams;
use wgnn::tensor::Shape;

/// User-facing layer names; each means the block's output after its ReLU (after the
/// concatenation for fire modules).
pub const LAYERS: [&str; 9] = [
    "conv1", "fire2", "fire3", "fire4", "fire5", "fire6", "fire7", "fire8", "fire9",
];

/// (torchvision index, input channels, squeeze, expand) of each fire module, in order.
const FIRES: [(usize, usize, usize, usize); 8] = [
    (3, 64, 16, 64),
    (4, 128, 16, 64),
    (6, 128, 32, 128),
    (7, 256, 32, 128),
    (9, 256, 48, 192),
    (10, 384, 48, 192),
    (11, 384, 64, 256),
    (12, 512, 64, 256),
];

pub fn parameter_shapes() -> Vec<(String, Shape)> {
    let mut shapes = vec![
        ("features.0.weight".to_string(), Shape::from([64, 3, 3, 3])),
        ("features.0.bias".to_string(), Shape::from([64])),
    ];
    for (index, cin, squeeze, expand) in FIRES {
        let p = format!("features.{index}");
        shapes.push((
            format!("{p}.squeeze.weight"),
            Shape::from([squeeze, cin, 1, 1]),
        ));
        shapes.push((format!("{p}.squeeze.bias"), Shape::from([squeeze])));
        shapes.push((
            format!("{p}.expand1x1.weight"),
            Shape::from([expand, squeeze, 1, 1]),
        ));
        shapes.push((format!("{p}.expand1x1.bias"), Shape::from([expand])));
        shapes.push((
            format!("{p}.expand3x3.weight"),
            Shape::from([expand, squeeze, 3, 3]),
        ));
        shapes.push((format!("{p}.expand3x3.bias"), Shape::from([expand])));
    }
    shapes.push((
        "classifier.1.weight".to_string(),
        Shape::from([1000, 512, 1, 1]),
    ));
    shapes.push(("classifier.1.bias".to_string(), Shape::from([1000])));
    shapes
}

fn conv_relu(
    g: &mut Graph,
    x: NodeId,
    prefix: &str,
    cin: usize,
    cout: usize,
    k: usize,
    p: &ConvParams,
) -> Result<NodeId> {
    let w = g.param(&format!("{prefix}.weight"), [cout, cin, k, k])?;
    let b = g.param(&format!("{prefix}.bias"), [cout])?;
    g.conv_relu(x, w, Some(b), p)
}

fn fire(
    g: &mut Graph,
    x: NodeId,
    index: usize,
    cin: usize,
    squeeze: usize,
    expand: usize,
) -> Result<NodeId> {
    let p = format!("features.{index}");
    let one = ConvParams::new(2);
    let s = conv_relu(g, x, &format!("{p}.squeeze"), cin, squeeze, 1, &one)?;
    let e1 = conv_relu(g, s, &format!("{p}.expand1x1"), squeeze, expand, 1, &one)?;
    let e3 = conv_relu(
        g,
        s,
        &format!("{p}.expand3x3"),
        squeeze,
        expand,
        3,
        &ConvParams::new(2).padding(1),
    )?;
    g.concat_channels(&[e1, e3])
}

fn downsample(g: &mut Graph, x: NodeId, pooling: Pooling) -> Result<NodeId> {
    let p = PoolParams::new(&[3, 3]).stride(2).ceil_mode(true);
    match pooling {
        Pooling::Max => g.max_pool(x, &p),
        Pooling::Avg => g.avg_pool(x, &p),
    }
}

/// Builds the first `count` user layers and returns their nodes (index i = LAYERS[i]).
pub fn build_features(
    g: &mut Graph,
    x: NodeId,
    pooling: Pooling,
    count: usize,
) -> Result<Vec<NodeId>> {
    let mut outputs = Vec::with_capacity(count);
    let mut h = conv_relu(g, x, "features.0", 3, 64, 3, &ConvParams::new(2).stride(2))?;
    outputs.push(h);
    for &(index, cin, squeeze, expand) in &FIRES {
        if outputs.len() >= count {
            break;
        }
        // Pools precede fire2, fire4 and fire6 (torchvision indices 2, 5, 8).
        if matches!(index, 3 | 6 | 9) {
            h = downsample(g, h, pooling)?;
        }
        h = fire(g, h, index, cin, squeeze, expand)?;
        outputs.push(h);
    }
    Ok(outputs)
}

/// ImageNet logits [N, 1000] from the fire9 output: conv 1x1 + ReLU + global average pool.
/// (Dropout is the identity at inference.)
pub fn classifier(g: &mut Graph, fire9: NodeId) -> Result<NodeId> {
    let h = conv_relu(g, fire9, "classifier.1", 512, 1000, 1, &ConvParams::new(2))?;
    g.global_avg_pool(h)
}
