//! The Siamese network: one CNN maps every face (anchor, positive, negative, probe, gallery
//! image alike) to an L2-normalised embedding.
//!
//! - **Alignment** (CPU, no parameters): the photo, resized to `width x height`, is aligned as
//!   dlib aligns faces. The face box is the one dlib's CNN face detector is surest of
//!   (`wgnn_models::face_detection`, run by `faces::embed`), or, where it finds none, the box a
//!   face-crop photo is assumed to have (`landmarks::INITIAL_RECT_FRACTIONS`); dlib's shape
//!   predictor finds five landmarks in that box, and the 150x150 chip that puts them at fixed
//!   positions is cut (`aligned_chip`). The landmarks fix the face's scale, position and
//!   in-plane rotation.
//! - **Trunk** (frozen): dlib's face ResNet (`wgnn_models::face_resnet`, embedded weights)
//!   maps the chip to 128 values.
//! - **Descriptor** (no parameters): those values L2-normalised, summed over the chip and (with
//!   `mirror`) its mirror image, so that a chip and its mirror image get the same descriptor.
//! - **Head** (trained): a linear projection to the embedding, then L2 normalisation.
//!
//! The trunk is frozen and the descriptor has no parameters, so training computes the
//! descriptor once per image (and augmented variant) and runs only the projection per step; see
//! `faces::train`.

use serde_json::{json, Value};

use wgnn::error::{Error, Result};
use wgnn::graph::{Graph, NodeId};
use wgnn::nn::{Init, ParamStore};
use wgnn::rng::Rng;
use wgnn::tensor::Shape;
use wgnn::Gpu;
use wgnn_models::face_landmarks as landmarks;
use wgnn_models::face_resnet;

/// The frozen part's input: the size photos are resized to (bilinear), in pixels, before the
/// face and its landmarks are found and the chip is cut.
#[derive(Clone, Debug, PartialEq)]
pub struct TrunkSpec {
    pub width: usize,
    pub height: usize,
}

/// The trained head.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadSpec {
    pub embedding_dim: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NetworkSpec {
    pub trunk: TrunkSpec,
    pub head: HeadSpec,
    /// The descriptor sums the chip's and its mirror image's (two trunk passes per image), so
    /// that a face and its mirror image get the same embedding.
    pub mirror: bool,
}

impl Default for NetworkSpec {
    /// The defaults of `train_siamese train` (chosen on the training identities, see
    /// docs/faces.md): photos at 184x224 (ORL's 92x112 doubled), the chip and its mirror
    /// image, a 128-dimensional embedding (the trunk's own size).
    fn default() -> Self {
        Self {
            trunk: TrunkSpec {
                width: 184,
                height: 224,
            },
            head: HeadSpec {
                embedding_dim: face_resnet::OUTPUT_LEN,
            },
            mirror: true,
        }
    }
}

/// The trunk's name in model files.
pub const FACE_RESNET_NAME: &str = "dlib_face_resnet_v1";

/// Names of the head's parameters.
pub const PROJECT_WEIGHT: &str = "head.project.weight";
pub const PROJECT_BIAS: &str = "head.project.bias";

impl NetworkSpec {
    /// Checks the input size and the embedding size.
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
        Ok(())
    }

    /// Trunk passes per image: the chip, and with `mirror` its mirror image.
    pub fn passes(&self) -> usize {
        1 + self.mirror as usize
    }

    /// Values per image of the trunk's outputs: `passes * 128` (the chip's, then its mirror
    /// image's).
    pub fn trunk_len(&self) -> usize {
        self.passes() * face_resnet::OUTPUT_LEN
    }

    /// The shape of one image's network input (see `network_input`): `[3 * passes, 150, 150]`.
    pub fn input_item(&self) -> [usize; 3] {
        [
            3 * self.passes(),
            face_resnet::CHIP_SIZE,
            face_resnet::CHIP_SIZE,
        ]
    }

    /// The network's input for one photo `[3, height, width]` (RGB in [0, 1]): the chip aligned
    /// from the face box `face` (the detector's; `None`: the box assumed for a face-crop photo)
    /// and, with `mirror`, its mirror image, `[3 * passes, 150, 150]`.
    pub fn network_input(&self, image: &[f32], face: Option<landmarks::Rect>) -> Result<Vec<f32>> {
        let chip = aligned_chip(self.trunk.width, self.trunk.height, image, face)?;
        let mut input = chip.clone();
        if self.mirror {
            let mut mirrored = chip;
            for row in mirrored.chunks_exact_mut(face_resnet::CHIP_SIZE) {
                row.reverse();
            }
            input.extend(mirrored);
        }
        Ok(input)
    }

    /// The trunk on network inputs `[N, 3 * passes, 150, 150]` (see `network_input`): the
    /// trunk's outputs `[N, trunk_len]`. Both passes use the same weights.
    pub fn build_trunk(&self, g: &mut Graph, images: NodeId) -> Result<NodeId> {
        let mut outputs = Vec::new();
        for pass in 0..self.passes() {
            let chip = if self.passes() > 1 {
                g.slice_channels(images, 3 * pass, 3)?
            } else {
                images
            };
            let x = g.channel_affine(chip, face_resnet::preprocess())?;
            outputs.push(face_resnet::build(g, x)?);
        }
        if outputs.len() == 1 {
            Ok(outputs[0])
        } else {
            g.concat_channels(&outputs)
        }
    }

    /// Values of a descriptor (the head's input to the projection): the trunk's 128.
    pub fn descriptor_len(&self) -> usize {
        face_resnet::OUTPUT_LEN
    }

    /// The fixed part of the head on the trunk's outputs `[N, trunk_len]`: each pass's 128
    /// values L2-normalised, summed over the passes, `[N, 128]` (a sum of two is the same in
    /// either order, so a chip and its mirror image get bit-identical descriptors).
    pub fn build_descriptor(&self, g: &mut Graph, trunk: NodeId) -> Result<NodeId> {
        let len = face_resnet::OUTPUT_LEN;
        let mut sum = None;
        for pass in 0..self.passes() {
            let values = g.slice_channels(trunk, pass * len, len)?;
            let y = g.l2_normalize(values)?;
            sum = Some(match sum {
                None => y,
                Some(s) => g.add(s, y)?,
            });
        }
        Ok(sum.expect("at least one pass"))
    }

    /// The head on the trunk's outputs `[N, trunk_len]`: the descriptor, a linear projection
    /// (the trained weights) and L2 normalisation, `[N, embedding_dim]`.
    pub fn build_head(&self, g: &mut Graph, trunk: NodeId) -> Result<NodeId> {
        let descriptor = self.build_descriptor(g, trunk)?;
        self.build_projection(g, descriptor)
    }

    /// The head's trained part on descriptors `[N, d]`: the linear projection and L2
    /// normalisation, `[N, embedding_dim]`.
    pub fn build_projection(&self, g: &mut Graph, descriptor: NodeId) -> Result<NodeId> {
        let d = self.descriptor_len();
        let weight = g.param(PROJECT_WEIGHT, [self.head.embedding_dim, d])?;
        let bias = g.param(PROJECT_BIAS, [self.head.embedding_dim])?;
        let y = g.linear(descriptor, weight, Some(bias))?;
        g.l2_normalize(y)
    }

    /// Every head parameter's name and shape, in name order.
    pub fn head_parameter_shapes(&self) -> Vec<(String, Shape)> {
        let d = self.descriptor_len();
        let e = self.head.embedding_dim;
        vec![
            (PROJECT_BIAS.to_string(), Shape::from([e])),
            (PROJECT_WEIGHT.to_string(), Shape::from([e, d])),
        ]
    }

    /// Random head parameters: Xavier-normal projection, zero bias (`--init random`).
    pub fn init_head(&self, gpu: &Gpu, rng: &mut Rng) -> Result<ParamStore> {
        let mut store = ParamStore::new();
        for (name, shape) in self.head_parameter_shapes() {
            let init = if name == PROJECT_BIAS {
                Init::Zeros
            } else {
                Init::xavier_normal()
            };
            store.insert_init(gpu, &name, shape, init, rng)?;
        }
        Ok(store)
    }

    /// The description stored in a model file's metadata (and hashed into the model's
    /// fingerprint, which galleries record).
    ///
    /// `head.levels` (none) and `zooms` (the image itself) belong to the model file format
    /// `wgnn-siamese-v1`: every face model file carries them, so the description keeps them
    /// and with them the bytes, and so the fingerprints, of the model files and galleries
    /// already written.
    pub fn to_json(&self) -> Value {
        // serde_json keeps keys sorted, so the order of insertion does not change the bytes.
        json!({
            "trunk": {
                "architecture": FACE_RESNET_NAME,
                "weights": "embedded dlib_face_recognition_resnet_model_v1 (Davis King, CC0)",
                "frozen": true,
            },
            "input": {
                "width": self.trunk.width,
                "height": self.trunk.height,
                "channels": 3,
                "resize": "bilinear, to exactly width x height",
                "colour": "RGB in [0, 1]; greyscale replicated to 3 channels",
                "normalisation": "RGB, (255 x - mean) / 256, means (122.782, 117.001, 104.298)",
                "alignment": format!(
                    "the most confident face of dlib's CNN face detector (embedded \
                     mmod_human_face_detector) on the resized photo, or where it finds none the \
                     face box {:?} (left, top, right, bottom as fractions of the resized \
                     photo); from that box dlib's 5-point shape predictor (embedded \
                     shape_predictor_5_face_landmarks), then dlib's face chip: {} x {} pixels, \
                     padding {}",
                    landmarks::INITIAL_RECT_FRACTIONS,
                    face_resnet::CHIP_SIZE,
                    face_resnet::CHIP_SIZE,
                    landmarks::CHIP_PADDING
                ),
            },
            "head": {
                "levels": [],
                "descriptor": "the trunk's 128 values L2-normalised, summed over passes (the chip and its mirror image)",
                "projection": "linear (head.project.weight, head.project.bias)",
                "embedding_dim": self.head.embedding_dim,
                "normalisation": "L2",
            },
            "mirror": self.mirror,
            "zooms": [1.0],
        })
    }

    /// Reads what `to_json` wrote.
    pub fn from_json(value: &Value) -> std::result::Result<Self, String> {
        let number = |v: &Value, what: &str| {
            v.as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| format!("network description: `{what}` is not a number"))
        };
        if value["trunk"]["architecture"] != FACE_RESNET_NAME {
            return Err(format!(
                "network description: trunk {} is not supported ({FACE_RESNET_NAME})",
                value["trunk"]["architecture"]
            ));
        }
        // The fixed parts of the format (see `to_json`): no descriptor levels, the image once.
        if value["head"]["levels"] != json!([]) || value["zooms"] != json!([1.0]) {
            return Err(format!(
                "network description: the {FACE_RESNET_NAME} trunk reads no descriptor levels \
                 and the image once (levels {}, zooms {})",
                value["head"]["levels"], value["zooms"]
            ));
        }
        let spec = NetworkSpec {
            trunk: TrunkSpec {
                width: number(&value["input"]["width"], "input.width")?,
                height: number(&value["input"]["height"], "input.height")?,
            },
            head: HeadSpec {
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

/// The fingerprint of the embedded weights the frozen part uses: the face ResNet's, with the
/// face detector's and the landmark predictor's, since they shape its input.
pub fn trunk_fingerprint() -> String {
    fingerprint(&[
        wgnn_assets::DLIB_FACE_RESNET_SAFETENSORS,
        wgnn_assets::SHAPE_PREDICTOR_5_SAFETENSORS,
        wgnn_assets::MMOD_FACE_DETECTOR_SAFETENSORS,
    ])
}
