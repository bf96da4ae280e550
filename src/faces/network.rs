//! The Siamese network: one CNN maps every face (anchor, positive, negative, probe, gallery
//! image alike) to an L2-normalised embedding.
//!
//! - **Trunk** (frozen): the embedded ImageNet SqueezeNet v1.1 up to a fire module (fire7 by
//!   default) on an RGB image resized to `width x height` (184x224 by default: ORL's 92x112
//!   doubled), preprocessed as SqueezeNet was trained (BGR, 0..255, minus the Caffe mean).
//! - **Head**: average pooling of the map to a small `rows x cols` grid (faces are aligned
//!   enough that where a feature fires matters), flattened and L2-normalised (the descriptor),
//!   then the trained part: a linear projection to the embedding, and L2 normalisation.
//! - **Mirror symmetry** (`mirror`): trunk and head run on the image and on its mirror image
//!   with the same weights, and the embedding is the normalised sum of both outputs, so a face
//!   and its mirror image get the same embedding (pose to the left or to the right looks alike).
//!
//! The trunk is frozen, so training computes its output once per image (and augmented variant)
//! and runs only the head per step; see `faces::train`.

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::graph::{Graph, NodeId};
use crate::models::{Architecture, Pooling};
use crate::nn::{Init, ParamStore};
use crate::ops::pool::PoolParams;
use crate::rng::Rng;
use crate::tensor::Shape;
use crate::Gpu;

/// The frozen part: which pretrained network, how deep, on what input.
#[derive(Clone, Debug, PartialEq)]
pub struct TrunkSpec {
    /// A SqueezeNet layer name (`fire2` ... `fire9`).
    pub layer: String,
    /// Input size the image is resized to (bilinear), in pixels.
    pub width: usize,
    pub height: usize,
}

/// The trained part.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadSpec {
    /// The pooled grid, rows x cols.
    pub grid: [usize; 2],
    pub embedding_dim: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NetworkSpec {
    pub trunk: TrunkSpec,
    pub head: HeadSpec,
    /// Mirror-symmetric embeddings: the network runs on the image and on its mirror image
    /// (same weights) and normalises the sum of the two heads' outputs, so that a face and its
    /// mirror image get the same embedding.
    pub mirror: bool,
}

impl Default for NetworkSpec {
    /// The defaults of `train_siamese train` (chosen on held-out training identities, see
    /// docs/faces.md).
    fn default() -> Self {
        Self {
            trunk: TrunkSpec {
                layer: "fire5".to_string(),
                width: 184,
                height: 224,
            },
            head: HeadSpec {
                grid: [4, 3],
                embedding_dim: 128,
            },
            mirror: true,
        }
    }
}

/// The pretrained trunk's architecture: its weights are the embedded ones.
pub const TRUNK_ARCHITECTURE: Architecture = Architecture::SqueezeNet;

/// Names of the head's parameters.
pub const PROJECT_WEIGHT: &str = "head.project.weight";
pub const PROJECT_BIAS: &str = "head.project.bias";

impl NetworkSpec {
    /// Checks the sizes and the layer name.
    pub fn validate(&self) -> Result<()> {
        let layers = [
            "fire2", "fire3", "fire4", "fire5", "fire6", "fire7", "fire8", "fire9",
        ];
        if !layers.contains(&self.trunk.layer.as_str()) {
            return Err(Error::Invalid(format!(
                "trunk layer `{}`: choose one of {}",
                self.trunk.layer,
                layers.join(", ")
            )));
        }
        if self.trunk.width < 64 || self.trunk.height < 64 {
            return Err(Error::Invalid(format!(
                "input size {}x{} is too small for the trunk: at least 64x64",
                self.trunk.width, self.trunk.height
            )));
        }
        if self.head.embedding_dim == 0 {
            return Err(Error::Invalid(
                "the embedding dimension must be >= 1".into(),
            ));
        }
        let [c, h, w] = self.trunk_output()?;
        let [rows, cols] = self.head.grid;
        if rows == 0 || cols == 0 || rows > h || cols > w {
            return Err(Error::Invalid(format!(
                "pooling grid {rows}x{cols} does not fit the trunk's {h}x{w} map ({c} channels)"
            )));
        }
        Ok(())
    }

    /// The trunk's output `[C, H, W]` for one pass (one image, or its mirror image).
    pub fn trunk_output(&self) -> Result<[usize; 3]> {
        let mut g = Graph::new();
        let x = g.input("image", [1, 3, self.trunk.height, self.trunk.width]);
        let y = TRUNK_ARCHITECTURE.features(
            &mut g,
            x,
            Pooling::Max,
            std::slice::from_ref(&self.trunk.layer),
        )?[0];
        let d = g.shape(y).dims();
        Ok([d[1], d[2], d[3]])
    }

    /// Passes per image: 2 with `mirror`, else 1.
    pub fn passes(&self) -> usize {
        1 + self.mirror as usize
    }

    /// The trunk maps of one image, `[passes * C, H, W]`: those of the image, then (with
    /// `mirror`) those of its mirror image, concatenated on channels.
    pub fn trunk_maps_shape(&self) -> Result<[usize; 3]> {
        let [c, h, w] = self.trunk_output()?;
        Ok([self.passes() * c, h, w])
    }

    /// Values per image of the trunk maps.
    pub fn trunk_len(&self) -> Result<usize> {
        Ok(self.trunk_maps_shape()?.iter().product())
    }

    /// The network's input for one image `[3, height, width]` (RGB in [0, 1]): the image, then
    /// (with `mirror`) its mirror image, `[3 * passes, height, width]`.
    pub fn network_input(&self, image: &[f32]) -> Vec<f32> {
        let mut input = image.to_vec();
        if self.mirror {
            let mut mirrored = image.to_vec();
            for row in mirrored.chunks_exact_mut(self.trunk.width) {
                row.reverse();
            }
            input.extend(mirrored);
        }
        input
    }

    /// The trunk on network inputs `[N, 3 * passes, height, width]` (see `network_input`):
    /// the trunk maps `[N, passes * C, H, W]`. Both passes use the same weights.
    pub fn build_trunk(&self, g: &mut Graph, images: NodeId) -> Result<NodeId> {
        let mut maps = Vec::new();
        for pass in 0..self.passes() {
            let image = if self.mirror {
                g.slice_channels(images, 3 * pass, 3)?
            } else {
                images
            };
            let x = g.channel_affine(image, TRUNK_ARCHITECTURE.preprocess())?;
            maps.push(
                TRUNK_ARCHITECTURE.features(
                    g,
                    x,
                    Pooling::Max,
                    std::slice::from_ref(&self.trunk.layer),
                )?[0],
            );
        }
        if maps.len() == 1 {
            Ok(maps[0])
        } else {
            g.concat_channels(&maps)
        }
    }

    /// Values of a descriptor (the head's input to the projection): `C * rows * cols`.
    pub fn descriptor_len(&self) -> Result<usize> {
        let [rows, cols] = self.head.grid;
        Ok(self.trunk_output()?[0] * rows * cols)
    }

    /// The fixed part of the head on trunk maps `[N, passes * C, H, W]`: per pass, the map
    /// average-pooled to the grid, flattened and L2-normalised; the sum over passes, `[N, d]`.
    pub fn build_descriptor(&self, g: &mut Graph, maps: NodeId) -> Result<NodeId> {
        let [c, h, w] = self.trunk_output()?;
        let n = g.shape(maps).dim(0);
        let d = self.descriptor_len()?;
        let mut sum = None;
        for pass in 0..self.passes() {
            let map = if self.mirror {
                g.slice_channels(maps, pass * c, c)?
            } else {
                maps
            };
            let grid = g.avg_pool(map, &grid_pooling([h, w], self.head.grid))?;
            let flat = g.reshape(grid, [n, d])?;
            let y = g.l2_normalize(flat)?;
            sum = Some(match sum {
                None => y,
                Some(s) => g.add(s, y)?,
            });
        }
        Ok(sum.unwrap())
    }

    /// The head on trunk maps `[N, passes * C, H, W]`: the descriptor, a linear projection
    /// (the trained weights) and L2 normalisation, `[N, embedding_dim]`.
    pub fn build_head(&self, g: &mut Graph, maps: NodeId) -> Result<NodeId> {
        let descriptor = self.build_descriptor(g, maps)?;
        let d = self.descriptor_len()?;
        let weight = g.param(PROJECT_WEIGHT, [self.head.embedding_dim, d])?;
        let bias = g.param(PROJECT_BIAS, [self.head.embedding_dim])?;
        let y = g.linear(descriptor, weight, Some(bias))?;
        g.l2_normalize(y)
    }

    /// Every head parameter's name and shape, in name order.
    pub fn head_parameter_shapes(&self) -> Result<Vec<(String, Shape)>> {
        let d = self.descriptor_len()?;
        let e = self.head.embedding_dim;
        Ok(vec![
            (PROJECT_BIAS.to_string(), Shape::from([e])),
            (PROJECT_WEIGHT.to_string(), Shape::from([e, d])),
        ])
    }

    /// Random head parameters: Xavier-normal projection, zero bias (`--init random`).
    pub fn init_head(&self, gpu: &Gpu, rng: &mut Rng) -> Result<ParamStore> {
        let mut store = ParamStore::new();
        for (name, shape) in self.head_parameter_shapes()? {
            let init = if name == PROJECT_BIAS {
                Init::Zeros
            } else {
                Init::xavier_normal()
            };
            store.insert_init(gpu, &name, shape, init, rng)?;
        }
        Ok(store)
    }

    /// The description stored in a model file's metadata.
    pub fn to_json(&self) -> Value {
        json!({
            "trunk": {
                "architecture": "squeezenet1_1",
                "weights": "embedded ImageNet weights (torchvision squeezenet1_1)",
                "layer": self.trunk.layer,
                "frozen": true,
            },
            "input": {
                "width": self.trunk.width,
                "height": self.trunk.height,
                "channels": 3,
                "resize": "bilinear, to exactly width x height",
                "colour": "RGB in [0, 1]; greyscale replicated to 3 channels",
                "normalisation": "BGR order, x 255, minus the Caffe mean (104.006, 116.669, 122.679)",
            },
            "head": {
                "pool": "average over a grid of windows covering the map",
                "grid": self.head.grid,
                "descriptor": "per pass: pooled grid flattened and L2-normalised; summed over passes",
                "projection": "linear (head.project.weight, head.project.bias)",
                "embedding_dim": self.head.embedding_dim,
                "normalisation": "L2",
            },
            "mirror": self.mirror,
        })
    }

    /// Reads what `to_json` wrote.
    pub fn from_json(value: &Value) -> std::result::Result<Self, String> {
        let number = |v: &Value, what: &str| {
            v.as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| format!("network description: `{what}` is not a number"))
        };
        if value["trunk"]["architecture"] != "squeezenet1_1" {
            return Err(format!(
                "network description: trunk {} is not supported (only squeezenet1_1)",
                value["trunk"]["architecture"]
            ));
        }
        let grid = value["head"]["grid"]
            .as_array()
            .filter(|g| g.len() == 2)
            .ok_or("network description: `head.grid` is not [rows, cols]")?;
        let spec = NetworkSpec {
            trunk: TrunkSpec {
                layer: value["trunk"]["layer"]
                    .as_str()
                    .ok_or("network description: no trunk layer")?
                    .to_string(),
                width: number(&value["input"]["width"], "input.width")?,
                height: number(&value["input"]["height"], "input.height")?,
            },
            head: HeadSpec {
                grid: [number(&grid[0], "grid")?, number(&grid[1], "grid")?],
                embedding_dim: number(&value["head"]["embedding_dim"], "head.embedding_dim")?,
            },
            mirror: value["mirror"]
                .as_bool()
                .ok_or("network description: `mirror` is not true or false")?,
        };
        spec.validate().map_err(|e| e.to_string())?;
        Ok(spec)
    }
}

/// Average pooling of an `h x w` map to a `rows x cols` grid with equal windows that cover the
/// whole map: stride `floor(size / cells)`, window `size - (cells - 1) * stride` (windows
/// overlap when the size does not divide).
pub fn grid_pooling([h, w]: [usize; 2], [rows, cols]: [usize; 2]) -> PoolParams {
    let stride = [h / rows, w / cols];
    let kernel = [h - (rows - 1) * stride[0], w - (cols - 1) * stride[1]];
    PoolParams::new(&kernel).strides(&stride)
}

/// A short hash of bytes (FNV-1a, 64 bits) as 16 hex digits: names the trunk weights and the
/// models in files, so that mismatches are detected.
pub fn fingerprint(parts: &[&[u8]]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &byte in part.iter() {
            hash ^= byte as u64;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        // Separates parts, so that ("ab", "c") and ("a", "bc") differ.
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The fingerprint of the embedded trunk weights.
pub fn trunk_fingerprint() -> String {
    fingerprint(&[crate::assets::SQUEEZENET1_1_SAFETENSORS])
}
