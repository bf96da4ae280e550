//! A convolutional network trained from random weights, for domains without a pretrained
//! network (handwritten characters, signatures, leaves): `depth` blocks of a 3x3 convolution
//! (`width` channels, padding 1, no bias: batch normalisation has its own), batch normalisation,
//! ReLU and 2x2 max pooling, then a linear embedding, L2-normalised (the "Conv-4" of few-shot
//! learning with four blocks of 64). Input: greyscale or RGB at `input x input`.
//!
//! Training runs the network with batch statistics and keeps running statistics
//! (`build_training`); embedding runs it with the running statistics (`build_inference`), and
//! the exported model folds them into the convolutions (`fold_batch_norm`), so inference is
//! convolutions, ReLU, pooling and the embedding alone.

use serde_json::{json, Value};

use wgnn::graph::{Graph, NodeId};
use wgnn::nn::{FanMode, Init, Nonlinearity, ParamStore};
use wgnn::ops::batch_norm::{fold_into_conv, BatchNormNodes, FrozenBatchNorm, BATCH_NORM_EPS};
use wgnn::ops::conv::ConvParams;
use wgnn::ops::pool::PoolParams;
use wgnn::rng::Rng;
use wgnn::tensor::Shape;
use wgnn::{Error, Gpu, Result};

/// The architecture's name in model files.
pub const CNN_NAME: &str = "cnn";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CnnSpec {
    /// Side of the square input, in pixels.
    pub input: usize,
    /// 1 (greyscale) or 3 (RGB).
    pub channels: usize,
    /// Channels of every block's convolution.
    pub width: usize,
    /// Blocks of conv, batch normalisation, ReLU and pooling.
    pub depth: usize,
    pub embedding_dim: usize,
}

impl Default for CnnSpec {
    /// Four blocks of 64 on greyscale 28x28 (the Conv-4 of few-shot learning), a 64-value
    /// embedding.
    fn default() -> Self {
        Self {
            input: 28,
            channels: 1,
            width: 64,
            depth: 4,
            embedding_dim: 64,
        }
    }
}

/// One block's batch normalisation in a training graph: its nodes, and its running statistics
/// (parameters the trainer updates from the batch statistics).
pub struct TrainingBlock {
    pub batch_norm: BatchNormNodes,
    pub running_mean: NodeId,
    pub running_var: NodeId,
}

impl CnnSpec {
    /// Refuses sizes the network cannot take, naming the flag.
    pub fn validate(&self) -> Result<()> {
        if self.channels != 1 && self.channels != 3 {
            return Err(Error::Invalid(format!(
                "{} input channels: 1 (greyscale) or 3 (RGB)",
                self.channels
            )));
        }
        if self.width == 0 || self.depth == 0 || self.embedding_dim == 0 {
            return Err(Error::Invalid(format!(
                "--width {}, --depth {} and --embedding-dim {} must be at least 1",
                self.width, self.depth, self.embedding_dim
            )));
        }
        if self.feature_side() == 0 {
            return Err(Error::Invalid(format!(
                "--input-size {} is too small for --depth {}: each block halves the side, which \
                 must stay at least 1 (at least {} pixels)",
                self.input,
                self.depth,
                1usize << self.depth
            )));
        }
        Ok(())
    }

    /// The side of the last block's maps.
    pub fn feature_side(&self) -> usize {
        self.input >> self.depth.min(usize::BITS as usize - 1)
    }

    /// Values per image of the flattened last block, the embedding's input.
    pub fn feature_len(&self) -> usize {
        self.width * self.feature_side() * self.feature_side()
    }

    fn block_channels(&self, block: usize) -> usize {
        if block == 0 {
            self.channels
        } else {
            self.width
        }
    }

    /// Every trained parameter's name and shape, then the running statistics.
    pub fn parameter_shapes(&self) -> Vec<(String, Shape)> {
        let mut shapes = Vec::new();
        for b in 0..self.depth {
            let w = self.width;
            shapes.push((
                conv_weight(b),
                Shape::from([w, self.block_channels(b), 3, 3]),
            ));
            shapes.push((bn_weight(b), Shape::from([w])));
            shapes.push((bn_bias(b), Shape::from([w])));
        }
        shapes.push((
            EMBED_WEIGHT.into(),
            Shape::from([self.embedding_dim, self.feature_len()]),
        ));
        shapes.push((EMBED_BIAS.into(), Shape::from([self.embedding_dim])));
        shapes
    }

    /// The parameters of the exported network (`build_folded`): each block's convolution with
    /// its bias, and the embedding.
    pub fn folded_shapes(&self) -> Vec<(String, Shape)> {
        let mut shapes = Vec::new();
        for b in 0..self.depth {
            let w = self.width;
            shapes.push((
                conv_weight(b),
                Shape::from([w, self.block_channels(b), 3, 3]),
            ));
            shapes.push((conv_bias(b), Shape::from([w])));
        }
        shapes.push((
            EMBED_WEIGHT.into(),
            Shape::from([self.embedding_dim, self.feature_len()]),
        ));
        shapes.push((EMBED_BIAS.into(), Shape::from([self.embedding_dim])));
        shapes
    }

    /// The running statistics' names and shapes (not trained by the optimiser).
    pub fn running_shapes(&self) -> Vec<(String, Shape)> {
        (0..self.depth)
            .flat_map(|b| {
                [
                    (running_mean(b), Shape::from([self.width])),
                    (running_var(b), Shape::from([self.width])),
                ]
            })
            .collect()
    }

    /// Random weights as PyTorch starts such a network: Kaiming-normal convolutions (fan out,
    /// for ReLU), batch normalisation as the identity (gamma 1, beta 0, running mean 0 and
    /// variance 1), a Xavier-uniform embedding with zero bias.
    pub fn init(&self, gpu: &Gpu, rng: &mut Rng) -> Result<ParamStore> {
        self.validate()?;
        let mut params = ParamStore::new();
        for b in 0..self.depth {
            let shape = [self.width, self.block_channels(b), 3, 3];
            let kaiming = Init::KaimingNormal {
                mode: FanMode::FanOut,
                nonlinearity: Nonlinearity::Relu,
            };
            params.insert_init(gpu, &conv_weight(b), shape, kaiming, rng)?;
            params.insert_f32(gpu, &bn_weight(b), [self.width], &vec![1.0; self.width])?;
            params.insert_f32(gpu, &bn_bias(b), [self.width], &vec![0.0; self.width])?;
            params.insert_f32(gpu, &running_mean(b), [self.width], &vec![0.0; self.width])?;
            params.insert_f32(gpu, &running_var(b), [self.width], &vec![1.0; self.width])?;
        }
        let embed = [self.embedding_dim, self.feature_len()];
        params.insert_init(gpu, EMBED_WEIGHT, embed, Init::xavier_uniform(), rng)?;
        params.insert_f32(
            gpu,
            EMBED_BIAS,
            [self.embedding_dim],
            &vec![0.0; self.embedding_dim],
        )?;
        Ok(params)
    }

    /// The network on images [N, channels, input, input] with batch statistics: the unit
    /// embeddings [N, embedding_dim] and each block's batch normalisation.
    pub fn build_training(&self, g: &mut Graph, x: NodeId) -> Result<(NodeId, Vec<TrainingBlock>)> {
        self.validate()?;
        let mut h = x;
        let mut blocks = Vec::with_capacity(self.depth);
        for b in 0..self.depth {
            let w = g.param(&conv_weight(b), [self.width, self.block_channels(b), 3, 3])?;
            let conv = g.conv(h, w, None, &ConvParams::new(2).padding(1))?;
            let gamma = g.param(&bn_weight(b), [self.width])?;
            let beta = g.param(&bn_bias(b), [self.width])?;
            let batch_norm = g.batch_norm(conv, gamma, beta, BATCH_NORM_EPS)?;
            h = pool(g, batch_norm.output)?;
            blocks.push(TrainingBlock {
                batch_norm,
                running_mean: g.param(&running_mean(b), [self.width])?,
                running_var: g.param(&running_var(b), [self.width])?,
            });
        }
        Ok((self.embed(g, h)?, blocks))
    }

    /// The network on images with the running statistics (no batch dependence): the unit
    /// embeddings [N, embedding_dim].
    pub fn build_inference(&self, g: &mut Graph, x: NodeId) -> Result<NodeId> {
        self.validate()?;
        let mut h = x;
        for b in 0..self.depth {
            let w = g.param(&conv_weight(b), [self.width, self.block_channels(b), 3, 3])?;
            let conv = g.conv(h, w, None, &ConvParams::new(2).padding(1))?;
            let mean = g.param(&running_mean(b), [self.width])?;
            let var = g.param(&running_var(b), [self.width])?;
            let gamma = g.param(&bn_weight(b), [self.width])?;
            let beta = g.param(&bn_bias(b), [self.width])?;
            let normalised =
                g.batch_norm_inference(conv, mean, var, gamma, beta, BATCH_NORM_EPS)?;
            h = pool(g, normalised)?;
        }
        self.embed(g, h)
    }

    /// The network of an exported model: each block's normalisation folded into its
    /// convolution (weights and biases from `fold_batch_norm`).
    pub fn build_folded(&self, g: &mut Graph, x: NodeId) -> Result<NodeId> {
        self.validate()?;
        let mut h = x;
        for b in 0..self.depth {
            let w = g.param(&conv_weight(b), [self.width, self.block_channels(b), 3, 3])?;
            let bias = g.param(&conv_bias(b), [self.width])?;
            h = g.conv_relu(h, w, Some(bias), &ConvParams::new(2).padding(1))?;
            h = g.max_pool(h, &PoolParams::new(&[2, 2]))?;
        }
        self.embed(g, h)
    }

    fn embed(&self, g: &mut Graph, h: NodeId) -> Result<NodeId> {
        let n = g.shape(h).dim(0);
        let flat = g.reshape(h, [n, self.feature_len()])?;
        let w = g.param(EMBED_WEIGHT, [self.embedding_dim, self.feature_len()])?;
        let b = g.param(EMBED_BIAS, [self.embedding_dim])?;
        let embedding = g.linear(flat, w, Some(b))?;
        g.l2_normalize(embedding)
    }

    /// The parameters of `build_folded` from trained ones (`init`'s names): every block's
    /// convolution with its normalisation folded in (running statistics), the embedding as it is.
    pub fn fold_batch_norm(&self, gpu: &Gpu, trained: &ParamStore) -> Result<ParamStore> {
        let host = |name: &str| -> Result<Vec<f32>> {
            trained
                .get(name)
                .ok_or_else(|| Error::Invalid(format!("parameter `{name}` is missing")))?
                .to_vec(gpu)
        };
        let mut folded = ParamStore::new();
        for b in 0..self.depth {
            let shape = Shape::from([self.width, self.block_channels(b), 3, 3]);
            let (gamma, beta) = (host(&bn_weight(b))?, host(&bn_bias(b))?);
            let (mean, var) = (host(&running_mean(b))?, host(&running_var(b))?);
            let bn = FrozenBatchNorm {
                gamma: &gamma,
                beta: &beta,
                running_mean: &mean,
                running_var: &var,
                eps: BATCH_NORM_EPS,
            };
            let (weight, bias) = fold_into_conv(&host(&conv_weight(b))?, &shape, None, &bn)?;
            folded.insert_f32(gpu, &conv_weight(b), shape, &weight)?;
            folded.insert_f32(gpu, &conv_bias(b), [self.width], &bias)?;
        }
        for name in [EMBED_WEIGHT, EMBED_BIAS] {
            let tensor = trained
                .get(name)
                .ok_or_else(|| Error::Invalid(format!("parameter `{name}` is missing")))?;
            folded.insert(name, tensor.clone());
        }
        Ok(folded)
    }

    /// The description stored in model files.
    pub fn to_json(&self) -> Value {
        json!({
            "architecture": CNN_NAME,
            "input": self.input,
            "channels": self.channels,
            "width": self.width,
            "depth": self.depth,
            "embedding_dim": self.embedding_dim,
        })
    }

    pub fn from_json(value: &Value) -> std::result::Result<Self, String> {
        if value["architecture"] != CNN_NAME {
            return Err(format!("not a {CNN_NAME} description: {value}"));
        }
        let field = |key: &str| {
            value[key]
                .as_u64()
                .map(|v| v as usize)
                .ok_or_else(|| format!("the {CNN_NAME} description has no `{key}`"))
        };
        let spec = Self {
            input: field("input")?,
            channels: field("channels")?,
            width: field("width")?,
            depth: field("depth")?,
            embedding_dim: field("embedding_dim")?,
        };
        spec.validate().map_err(|e| e.to_string())?;
        Ok(spec)
    }
}

fn pool(g: &mut Graph, x: NodeId) -> Result<NodeId> {
    let h = g.relu(x)?;
    g.max_pool(h, &PoolParams::new(&[2, 2]))
}

/// Parameter names (PyTorch-like).
pub fn conv_weight(block: usize) -> String {
    format!("blocks.{block}.conv.weight")
}
pub fn conv_bias(block: usize) -> String {
    format!("blocks.{block}.conv.bias")
}
pub fn bn_weight(block: usize) -> String {
    format!("blocks.{block}.bn.weight")
}
pub fn bn_bias(block: usize) -> String {
    format!("blocks.{block}.bn.bias")
}
pub fn running_mean(block: usize) -> String {
    format!("blocks.{block}.bn.running_mean")
}
pub fn running_var(block: usize) -> String {
    format!("blocks.{block}.bn.running_var")
}
pub const EMBED_WEIGHT: &str = "embed.weight";
pub const EMBED_BIAS: &str = "embed.bias";
