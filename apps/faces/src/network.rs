//! The Siamese network: one CNN maps every face (anchor, positive, negative, probe, gallery
//! image alike) to an L2-normalised embedding. Two trunks are available:
//!
//! - **Face ResNet** (the default, `TrunkArchitecture::FaceResNet`): the photo, resized to
//!   `width x height`, is aligned as dlib aligns faces (`faces::detect`: the face dlib's CNN
//!   detector is surest of, run by `faces::embed`, or where it finds none the face box a
//!   face-crop photo is assumed to have; `faces::landmarks`: five landmarks by dlib's shape
//!   predictor in that box, then the 150x150 chip that puts them at fixed positions), and dlib's
//!   face ResNet
//!   (`models::face_resnet`, frozen) maps the chip to 128 values; the descriptor is those values
//!   L2-normalised, summed over the chip and its mirror image. No levels, zoomed views or zoom
//!   alignment: the landmarks already fix the face's scale and position.
//!
//! With the SqueezeNet trunk (`TrunkArchitecture::SqueezeNet`, the design before):
//!
//! - **Trunk** (frozen): the embedded ImageNet SqueezeNet v1.1 up to the deepest fire module
//!   the head reads on an RGB image resized to `width x height` (184x224 by default: ORL's 92x112
//!   doubled), preprocessed as SqueezeNet was trained (BGR, 0..255, minus the Caffe mean).
//! - **Head**: the descriptor, then the trained part. The descriptor reads one or more trunk
//!   layers ("levels"); each layer's map is average-pooled to small `rows x cols` grids (faces
//!   are aligned enough that where a feature fires matters; a 1x1 grid, the global average, is
//!   indifferent to where), each flattened and L2-normalised, all concatenated. The trained part
//!   is a linear projection to the embedding, then L2 normalisation.
//! - **Mirror symmetry** (`mirror`): trunk and head run on the image and on its mirror image
//!   with the same weights, and the embedding is the normalised sum of both outputs, so a face
//!   and its mirror image get the same embedding (pose to the left or to the right looks alike).
//! - **Zoomed views** (`zooms`): the same again on the image scaled about its centre by each
//!   factor (1 is the image itself), all outputs summed, so that a face photographed a little
//!   closer or further away gets nearly the same embedding.
//! - **Zoom alignment** (`align`): before all that, the descriptor of the image as it is (with
//!   its mirror image) predicts how much larger or smaller than usual the face is, and the views
//!   are taken about the inverse zoom (`faces::align`), so faces photographed closer or further
//!   away reach the head at about one scale.
//!
//! The trunk is frozen and the descriptor has no parameters, so training computes the
//! descriptor once per image (and augmented variant) and runs only the projection per step; see
//! `faces::train`.

use serde_json::{json, Value};

use crate::augment::zoomed;
use wgnn::error::{Error, Result};
use wgnn::graph::{Graph, NodeId};
use wgnn::nn::{Init, ParamStore};
use wgnn::ops::pool::PoolParams;
use wgnn::rng::Rng;
use wgnn::tensor::Shape;
use wgnn::Gpu;
use wgnn_models::face_landmarks as landmarks;
use wgnn_models::{face_resnet, Architecture, Pooling};

/// Which pretrained network the frozen trunk is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrunkArchitecture {
    /// dlib's face ResNet on the aligned face chip (embedded weights, trained on faces).
    FaceResNet,
    /// SqueezeNet v1.1 on the whole photo (embedded ImageNet weights).
    SqueezeNet,
}

impl TrunkArchitecture {
    /// The name used by `--trunk` and in model files.
    pub fn name(self) -> &'static str {
        match self {
            TrunkArchitecture::FaceResNet => "face-resnet",
            TrunkArchitecture::SqueezeNet => "squeezenet",
        }
    }

    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "face-resnet" => Ok(TrunkArchitecture::FaceResNet),
            "squeezenet" => Ok(TrunkArchitecture::SqueezeNet),
            other => Err(Error::Invalid(format!(
                "trunk `{other}`: choose face-resnet or squeezenet"
            ))),
        }
    }
}

/// The frozen part's input: which network, and the size photos are resized to (bilinear), in
/// pixels (with the face ResNet, the size the landmarks are found at before the chip is cut).
#[derive(Clone, Debug, PartialEq)]
pub struct TrunkSpec {
    pub architecture: TrunkArchitecture,
    pub width: usize,
    pub height: usize,
}

/// One trunk layer the head reads, and the grids it pools that layer's map to.
#[derive(Clone, Debug, PartialEq)]
pub struct Level {
    /// A SqueezeNet layer name (`fire2` ... `fire9`).
    pub layer: String,
    /// Pooling grids (rows x cols), a spatial pyramid: each is pooled, flattened and
    /// L2-normalised on its own.
    pub grids: Vec<[usize; 2]>,
}

/// The head: its descriptor and the trained projection.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadSpec {
    /// What the descriptor reads, concatenated in this order.
    pub levels: Vec<Level>,
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
    /// Views summed like the mirror image: the image scaled about its centre by each factor
    /// (bilinear, edges replicated; 1 is the image itself), each view with its mirror image.
    pub zooms: Vec<f64>,
    /// Zoom alignment (`faces::align`): `Some([min, max])`, the zooms a face may be viewed at
    /// (the views of `zooms` are taken about it); the regressor is stored in the model.
    pub align: Option<[f64; 2]>,
}

/// The default views: the image, 8 % closer and 8 % further away (1 / 1.08, rounded so that
/// `--help` shows it plainly; docs/faces.md).
pub const DEFAULT_ZOOMS: [f64; 3] = [1.0, 1.08, 0.926];

/// The range of aligned zooms that `--align` uses unless told: 1.077^-2 to 1.077^2 (the range
/// validated in docs/faces.md, "Zoom alignment").
pub const DEFAULT_ALIGN_RANGE: [f64; 2] = [0.862, 1.16];

impl Default for NetworkSpec {
    /// The defaults of `train_siamese train` (chosen on held-out training identities, see
    /// docs/faces.md): the face ResNet on the aligned chip and its mirror image, a
    /// 128-dimensional embedding.
    fn default() -> Self {
        Self {
            trunk: TrunkSpec {
                architecture: TrunkArchitecture::FaceResNet,
                width: 184,
                height: 224,
            },
            head: HeadSpec {
                levels: Vec::new(),
                embedding_dim: face_resnet::OUTPUT_LEN,
            },
            mirror: true,
            zooms: vec![1.0],
            align: None,
        }
    }
}

impl NetworkSpec {
    /// The SqueezeNet design's defaults (the default before the face ResNet; docs/faces.md).
    pub fn squeezenet_default() -> Self {
        Self {
            trunk: TrunkSpec {
                architecture: TrunkArchitecture::SqueezeNet,
                width: 184,
                height: 224,
            },
            head: HeadSpec {
                levels: vec![
                    Level {
                        layer: "fire5".to_string(),
                        grids: vec![[4, 3]],
                    },
                    Level {
                        layer: "fire7".to_string(),
                        grids: vec![[1, 1]],
                    },
                ],
                embedding_dim: 1024,
            },
            mirror: true,
            zooms: DEFAULT_ZOOMS.to_vec(),
            align: None,
        }
    }
}

/// The SqueezeNet trunk's architecture: its weights are the embedded ones.
pub const TRUNK_ARCHITECTURE: Architecture = Architecture::SqueezeNet;

/// The face ResNet trunk's name in model files.
pub const FACE_RESNET_NAME: &str = "dlib_face_resnet_v1";

/// Layers a level may read.
pub const LAYERS: [&str; 8] = [
    "fire2", "fire3", "fire4", "fire5", "fire6", "fire7", "fire8", "fire9",
];

/// Names of the head's parameters.
pub const PROJECT_WEIGHT: &str = "head.project.weight";
pub const PROJECT_BIAS: &str = "head.project.bias";

impl Level {
    /// Parses `LAYER:RxC[+RxC...]`, e.g. `fire5:4x3` or `fire7:1x1+2x2`.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || {
            Error::Invalid(format!(
                "descriptor level `{text}`: expected LAYER:ROWSxCOLS[+ROWSxCOLS...], e.g. fire5:4x3"
            ))
        };
        let (layer, grids) = text.split_once(':').ok_or_else(bad)?;
        let grids = grids
            .split('+')
            .map(|g| {
                let (r, c) = g.split_once('x')?;
                Some([r.trim().parse().ok()?, c.trim().parse().ok()?])
            })
            .collect::<Option<Vec<[usize; 2]>>>()
            .ok_or_else(bad)?;
        Ok(Level {
            layer: layer.trim().to_string(),
            grids,
        })
    }

    /// The `LAYER:RxC+...` text of the level.
    pub fn text(&self) -> String {
        let grids: Vec<String> = self.grids.iter().map(|[r, c]| format!("{r}x{c}")).collect();
        format!("{}:{}", self.layer, grids.join("+"))
    }

    fn cells(&self) -> usize {
        self.grids.iter().map(|[r, c]| r * c).sum()
    }
}

impl NetworkSpec {
    /// Checks the sizes, layer names and grids.
    pub fn validate(&self) -> Result<()> {
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
        if self.trunk.architecture == TrunkArchitecture::FaceResNet {
            // The landmarks fix the face's scale and position; the chip has no layers to pick.
            if !self.head.levels.is_empty() {
                return Err(Error::Invalid(
                    "the face-resnet trunk takes no descriptor levels (they are SqueezeNet layers)"
                        .into(),
                ));
            }
            if self.zooms != [1.0] || self.align.is_some() {
                return Err(Error::Invalid(
                    "the face-resnet trunk aligns each face by its landmarks: zoomed views and \
                     zoom alignment are for the squeezenet trunk"
                        .into(),
                ));
            }
            return Ok(());
        }
        if self.head.levels.is_empty() {
            return Err(Error::Invalid(
                "the descriptor needs at least one level (LAYER:ROWSxCOLS)".into(),
            ));
        }
        if self.zooms.is_empty() || self.zooms.iter().any(|z| !(0.5..=2.0).contains(z)) {
            return Err(Error::Invalid(format!(
                "zoomed views {:?}: give one or more factors between 0.5 and 2 (1 is the image itself)",
                self.zooms
            )));
        }
        if let Some([min, max]) = self.align {
            if !(0.5..=1.0).contains(&min) || !(1.0..=2.0).contains(&max) {
                return Err(Error::Invalid(format!(
                    "zoom alignment range [{min}, {max}]: give a minimum in [0.5, 1] and a \
                     maximum in [1, 2]"
                )));
            }
        }
        for level in &self.head.levels {
            if !LAYERS.contains(&level.layer.as_str()) {
                return Err(Error::Invalid(format!(
                    "trunk layer `{}`: choose one of {}",
                    level.layer,
                    LAYERS.join(", ")
                )));
            }
            if level.grids.is_empty() {
                return Err(Error::Invalid(format!(
                    "level {}: no pooling grid",
                    level.layer
                )));
            }
        }
        for (level, [c, h, w]) in self.head.levels.iter().zip(self.level_maps()?) {
            for &[rows, cols] in &level.grids {
                if rows == 0 || cols == 0 || rows > h || cols > w {
                    return Err(Error::Invalid(format!(
                        "pooling grid {rows}x{cols} does not fit {}'s {h}x{w} map ({c} channels)",
                        level.layer
                    )));
                }
            }
        }
        Ok(())
    }

    /// The trunk layers the head reads, each once, in network order.
    pub fn trunk_layers(&self) -> Vec<String> {
        LAYERS
            .iter()
            .filter(|l| self.head.levels.iter().any(|level| level.layer == **l))
            .map(|l| l.to_string())
            .collect()
    }

    /// `[C, H, W]` of each trunk layer (`trunk_layers` order) for one pass; none with the face
    /// ResNet, whose pass gives its 128 values.
    pub fn layer_maps(&self) -> Result<Vec<[usize; 3]>> {
        if self.trunk.architecture == TrunkArchitecture::FaceResNet {
            return Ok(Vec::new());
        }
        let mut g = Graph::new();
        let x = g.input("image", [1, 3, self.trunk.height, self.trunk.width]);
        let nodes = TRUNK_ARCHITECTURE.features(&mut g, x, Pooling::Max, &self.trunk_layers())?;
        Ok(nodes
            .iter()
            .map(|&y| {
                let d = g.shape(y).dims();
                [d[1], d[2], d[3]]
            })
            .collect())
    }

    /// `[C, H, W]` of the map each level reads.
    fn level_maps(&self) -> Result<Vec<[usize; 3]>> {
        let layers = self.trunk_layers();
        let maps = self.layer_maps()?;
        Ok(self
            .head
            .levels
            .iter()
            .map(|level| maps[layers.iter().position(|l| *l == level.layer).unwrap()])
            .collect())
    }

    /// Values of one pass's trunk maps: the trunk layers' maps flattened and concatenated (the
    /// face ResNet's 128 values).
    pub fn pass_len(&self) -> Result<usize> {
        if self.trunk.architecture == TrunkArchitecture::FaceResNet {
            return Ok(face_resnet::OUTPUT_LEN);
        }
        Ok(self
            .layer_maps()?
            .iter()
            .map(|m| m.iter().product::<usize>())
            .sum())
    }

    /// Passes per image: one per zoomed view, times 2 with `mirror`.
    pub fn passes(&self) -> usize {
        self.zooms.len() * (1 + self.mirror as usize)
    }

    /// Values per image of the trunk maps: `passes * pass_len` (per zoomed view, the view's
    /// pass, then its mirror image's).
    pub fn trunk_len(&self) -> Result<usize> {
        Ok(self.passes() * self.pass_len()?)
    }

    /// `[rows, cols]` of one pass's input to the trunk: the chip with the face ResNet, the
    /// resized photo with SqueezeNet.
    pub fn pass_size(&self) -> [usize; 2] {
        match self.trunk.architecture {
            TrunkArchitecture::FaceResNet => [face_resnet::CHIP_SIZE, face_resnet::CHIP_SIZE],
            TrunkArchitecture::SqueezeNet => [self.trunk.height, self.trunk.width],
        }
    }

    /// The shape of one image's network input (see `network_input`): `[3 * passes, rows, cols]`.
    pub fn input_item(&self) -> [usize; 3] {
        let [rows, cols] = self.pass_size();
        [3 * self.passes(), rows, cols]
    }

    /// Whether the network input is the resized photo itself (no views, chips or mirror).
    pub fn input_is_image(&self) -> bool {
        self.trunk.architecture == TrunkArchitecture::SqueezeNet
            && !self.mirror
            && self.zooms == [1.0]
    }

    /// The network's input for one image `[3, height, width]` (RGB in [0, 1]) viewed at
    /// `base_zoom` (1 without alignment): per zoomed view (`base_zoom` times each of `zooms`),
    /// the view, then (with `mirror`) its mirror image, `[3 * passes, height, width]`. With the
    /// face ResNet, the chip aligned from the face box `face` (the detector's; `None`: the box
    /// assumed for a face-crop photo) and (with `mirror`) its mirror image, `[3 * passes, 150,
    /// 150]`.
    pub fn network_input(
        &self,
        image: &[f32],
        base_zoom: f64,
        face: Option<landmarks::Rect>,
    ) -> Result<Vec<f32>> {
        let (width, height) = (self.trunk.width, self.trunk.height);
        if self.trunk.architecture == TrunkArchitecture::FaceResNet {
            let chip = aligned_chip(width, height, image, face)?;
            let mut input = chip.clone();
            if self.mirror {
                let mut mirrored = chip;
                for row in mirrored.chunks_exact_mut(face_resnet::CHIP_SIZE) {
                    row.reverse();
                }
                input.extend(mirrored);
            }
            return Ok(input);
        }
        let mut input = Vec::with_capacity(image.len() * self.passes());
        for &zoom in &self.zooms {
            let zoom = base_zoom * zoom;
            let view = if zoom == 1.0 {
                image.to_vec()
            } else {
                zoomed(image, width, height, zoom)
            };
            if self.mirror {
                let mut mirrored = view.clone();
                for row in mirrored.chunks_exact_mut(width) {
                    row.reverse();
                }
                input.extend(view);
                input.extend(mirrored);
            } else {
                input.extend(view);
            }
        }
        Ok(input)
    }

    /// The trunk on network inputs `[N, 3 * passes, height, width]` (see `network_input`):
    /// the trunk maps `[N, trunk_len]`. Both passes use the same weights.
    pub fn build_trunk(&self, g: &mut Graph, images: NodeId) -> Result<NodeId> {
        let n = g.shape(images).dim(0);
        let layers = self.trunk_layers();
        let mut maps = Vec::new();
        for pass in 0..self.passes() {
            let image = if self.passes() > 1 {
                g.slice_channels(images, 3 * pass, 3)?
            } else {
                images
            };
            if self.trunk.architecture == TrunkArchitecture::FaceResNet {
                let x = g.channel_affine(image, face_resnet::preprocess())?;
                maps.push(face_resnet::build(g, x)?);
                continue;
            }
            let x = g.channel_affine(image, TRUNK_ARCHITECTURE.preprocess())?;
            for y in TRUNK_ARCHITECTURE.features(g, x, Pooling::Max, &layers)? {
                let len = g.shape(y).numel() / n;
                maps.push(g.reshape(y, [n, len])?);
            }
        }
        if maps.len() == 1 {
            Ok(maps[0])
        } else {
            g.concat_channels(&maps)
        }
    }

    /// The first stage of an aligned network: the same descriptor on the image as it is (with
    /// its mirror image), from which the aligner predicts the zoom.
    pub fn alignment_stage(&self) -> NetworkSpec {
        NetworkSpec {
            zooms: vec![1.0],
            align: None,
            ..self.clone()
        }
    }

    /// Values of a descriptor (the head's input to the projection): `sum C * rows * cols`.
    pub fn descriptor_len(&self) -> Result<usize> {
        if self.trunk.architecture == TrunkArchitecture::FaceResNet {
            return Ok(face_resnet::OUTPUT_LEN);
        }
        Ok(self
            .head
            .levels
            .iter()
            .zip(self.level_maps()?)
            .map(|(level, [c, _, _])| c * level.cells())
            .sum())
    }

    /// The fixed part of the head on trunk maps `[N, trunk_len]`: per pass, level and grid,
    /// the level's map average-pooled to the grid, flattened and L2-normalised; all of them
    /// concatenated; the sum over passes, `[N, d]`: each view's pass plus its mirror image's
    /// first (a sum of two is the same in either order, so a face and its mirror image get
    /// bit-identical descriptors), then over views.
    pub fn build_descriptor(&self, g: &mut Graph, maps: NodeId) -> Result<NodeId> {
        let n = g.shape(maps).dim(0);
        let layers = self.trunk_layers();
        let layer_maps = self.layer_maps()?;
        let pass_len = self.pass_len()?;
        let mut sum = None;
        let mut view_sum = None;
        for pass in 0..self.passes() {
            let mut parts = Vec::new();
            if self.trunk.architecture == TrunkArchitecture::FaceResNet {
                let values = g.slice_channels(maps, pass * pass_len, pass_len)?;
                parts.push(g.l2_normalize(values)?);
            }
            for level in &self.head.levels {
                let index = layers.iter().position(|l| *l == level.layer).unwrap();
                let offset: usize = layer_maps[..index]
                    .iter()
                    .map(|m| m.iter().product::<usize>())
                    .sum();
                let [c, h, w] = layer_maps[index];
                let flat = g.slice_channels(maps, pass * pass_len + offset, c * h * w)?;
                let map = g.reshape(flat, [n, c, h, w])?;
                for &grid in &level.grids {
                    let pooled = g.avg_pool(map, &grid_pooling([h, w], grid))?;
                    let cells = g.reshape(pooled, [n, c * grid[0] * grid[1]])?;
                    parts.push(g.l2_normalize(cells)?);
                }
            }
            let y = if parts.len() == 1 {
                parts[0]
            } else {
                g.concat_channels(&parts)?
            };
            view_sum = Some(match view_sum {
                None => y,
                Some(s) => g.add(s, y)?,
            });
            if !self.mirror || pass % 2 == 1 {
                let view = view_sum.take().unwrap();
                sum = Some(match sum {
                    None => view,
                    Some(s) => g.add(s, view)?,
                });
            }
        }
        Ok(sum.unwrap())
    }

    /// The head on trunk maps `[N, trunk_len]`: the descriptor, a linear projection (the
    /// trained weights) and L2 normalisation, `[N, embedding_dim]`.
    pub fn build_head(&self, g: &mut Graph, maps: NodeId) -> Result<NodeId> {
        let descriptor = self.build_descriptor(g, maps)?;
        self.build_projection(g, descriptor)
    }

    /// The head's trained part on descriptors `[N, d]`: the linear projection and L2
    /// normalisation, `[N, embedding_dim]`.
    pub fn build_projection(&self, g: &mut Graph, descriptor: NodeId) -> Result<NodeId> {
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
        let face_resnet = self.trunk.architecture == TrunkArchitecture::FaceResNet;
        let (trunk, normalisation, descriptor) = if face_resnet {
            (
                json!({
                    "architecture": FACE_RESNET_NAME,
                    "weights": "embedded dlib_face_recognition_resnet_model_v1 (Davis King, CC0)",
                    "frozen": true,
                }),
                "RGB, (255 x - mean) / 256, means (122.782, 117.001, 104.298)",
                "the trunk's 128 values L2-normalised, summed over passes (the chip and its mirror image)",
            )
        } else {
            (
                json!({
                    "architecture": "squeezenet1_1",
                    "weights": "embedded ImageNet weights (torchvision squeezenet1_1)",
                    "layers": self.trunk_layers(),
                    "frozen": true,
                }),
                "BGR order, x 255, minus the Caffe mean (104.006, 116.669, 122.679)",
                "per pass, level and grid: the layer's map average-pooled over a grid of windows covering it, flattened and L2-normalised; all concatenated; summed over passes (each view's with its mirror image's, then over the zoomed views)",
            )
        };
        // serde_json keeps keys sorted, so the order of insertion does not change the bytes.
        let mut description = json!({
            "trunk": trunk,
            "input": {
                "width": self.trunk.width,
                "height": self.trunk.height,
                "channels": 3,
                "resize": "bilinear, to exactly width x height",
                "colour": "RGB in [0, 1]; greyscale replicated to 3 channels",
                "normalisation": normalisation,
            },
            "head": {
                "levels": self.head.levels.iter().map(Level::text).collect::<Vec<_>>(),
                "descriptor": descriptor,
                "projection": "linear (head.project.weight, head.project.bias)",
                "embedding_dim": self.head.embedding_dim,
                "normalisation": "L2",
            },
            "mirror": self.mirror,
            "zooms": self.zooms,
        });
        if face_resnet {
            description["input"]["alignment"] = json!(format!(
                "the most confident face of dlib's CNN face detector (embedded \
                 mmod_human_face_detector) on the resized photo, or where it finds none the face \
                 box {:?} (left, top, right, bottom as fractions of the resized photo); from that \
                 box dlib's 5-point shape predictor (embedded shape_predictor_5_face_landmarks), \
                 then dlib's face chip: {} x {} pixels, padding {}",
                landmarks::INITIAL_RECT_FRACTIONS,
                face_resnet::CHIP_SIZE,
                face_resnet::CHIP_SIZE,
                landmarks::CHIP_PADDING
            ));
        }
        // Only aligned networks say so, so that other models keep their bytes and fingerprints.
        if let Some([min, max]) = self.align {
            description["align"] = json!({
                "min_zoom": min,
                "max_zoom": max,
                "how": "ridge regression of the log zoom on the descriptor of the image as it is (align.weight, align.bias); the views are taken about the inverse of the predicted zoom, clamped to [min_zoom, max_zoom]",
            });
        }
        description
    }

    /// Reads what `to_json` wrote.
    pub fn from_json(value: &Value) -> std::result::Result<Self, String> {
        let number = |v: &Value, what: &str| {
            v.as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| format!("network description: `{what}` is not a number"))
        };
        let architecture = match value["trunk"]["architecture"].as_str() {
            Some("squeezenet1_1") => TrunkArchitecture::SqueezeNet,
            Some(FACE_RESNET_NAME) => TrunkArchitecture::FaceResNet,
            _ => {
                return Err(format!(
                    "network description: trunk {} is not supported (squeezenet1_1 or {FACE_RESNET_NAME})",
                    value["trunk"]["architecture"]
                ))
            }
        };
        let levels = value["head"]["levels"]
            .as_array()
            .ok_or("network description: `head.levels` is not a list")?
            .iter()
            .map(|level| {
                let text = level
                    .as_str()
                    .ok_or("network description: a level is not LAYER:RxC text")?;
                Level::parse(text).map_err(|e| e.to_string())
            })
            .collect::<std::result::Result<Vec<_>, String>>()?;
        let spec = NetworkSpec {
            trunk: TrunkSpec {
                architecture,
                width: number(&value["input"]["width"], "input.width")?,
                height: number(&value["input"]["height"], "input.height")?,
            },
            head: HeadSpec {
                levels,
                embedding_dim: number(&value["head"]["embedding_dim"], "head.embedding_dim")?,
            },
            mirror: value["mirror"]
                .as_bool()
                .ok_or("network description: `mirror` is not true or false")?,
            // Models written before zoomed views had the image alone.
            zooms: match &value["zooms"] {
                Value::Null => vec![1.0],
                zooms => zooms
                    .as_array()
                    .and_then(|z| z.iter().map(Value::as_f64).collect::<Option<Vec<_>>>())
                    .ok_or("network description: `zooms` is not a list of numbers")?,
            },
            // Models written before zoom alignment had none.
            align: match &value["align"] {
                Value::Null => None,
                align => Some(
                    align["min_zoom"]
                        .as_f64()
                        .zip(align["max_zoom"].as_f64())
                        .map(|(min, max)| [min, max])
                        .ok_or("network description: `align` has no min_zoom and max_zoom")?,
                ),
            },
        };
        spec.validate().map_err(|e| e.to_string())?;
        Ok(spec)
    }
}

/// The embedded landmark predictor, parsed once.
fn shape_predictor() -> Result<&'static landmarks::ShapePredictor> {
    static PREDICTOR: std::sync::OnceLock<std::result::Result<landmarks::ShapePredictor, String>> =
        std::sync::OnceLock::new();
    PREDICTOR
        .get_or_init(|| {
            landmarks::ShapePredictor::from_safetensors(wgnn_assets::SHAPE_PREDICTOR_5_SAFETENSORS)
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Invalid(format!("the embedded landmark predictor: {e}")))
}

/// The face of a `width x height` photo (`[3, height, width]`, RGB in [0, 1]) as the face
/// ResNet expects it: dlib's five landmarks from the face box (`None`: the box assumed for a
/// face-crop photo), then the 150x150 chip that puts them at dlib's reference positions,
/// `[3, 150, 150]`.
pub fn aligned_chip(
    width: usize,
    height: usize,
    image: &[f32],
    face: Option<landmarks::Rect>,
) -> Result<Vec<f32>> {
    let photo = wgnn_models::imaging::RgbImage::new(width, height, image.to_vec())?;
    let rect = face.unwrap_or_else(|| landmarks::initial_rect(width, height));
    let points = shape_predictor()?.predict(&photo, rect);
    Ok(landmarks::face_chip(
        &photo,
        &points,
        face_resnet::CHIP_SIZE,
        landmarks::CHIP_PADDING,
    )?
    .data)
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

/// The fingerprint of the embedded weights a trunk uses (the face ResNet's with the face
/// detector's and the landmark predictor's, since they shape its input).
pub fn trunk_fingerprint(architecture: TrunkArchitecture) -> String {
    match architecture {
        TrunkArchitecture::SqueezeNet => fingerprint(&[wgnn_assets::SQUEEZENET1_1_SAFETENSORS]),
        TrunkArchitecture::FaceResNet => fingerprint(&[
            wgnn_assets::DLIB_FACE_RESNET_SAFETENSORS,
            wgnn_assets::SHAPE_PREDICTOR_5_SAFETENSORS,
            wgnn_assets::MMOD_FACE_DETECTOR_SAFETENSORS,
        ]),
    }
}
