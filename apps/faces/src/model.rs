//! The model file: safetensors holding the trained head (and the verifier, once trained), with a
//! `__metadata__` that describes everything else, so that every subcommand needs only the file:
//!
//! - `format`: `wgnn-siamese-v1` (a file without it is refused as not a wgnn face model);
//! - `network`: the architecture, input size and preprocessing (JSON): the face design
//!   (`NetworkSpec`: dlib's face ResNet, frozen, and a trained head) or a convolutional network
//!   trained from random weights (`CnnSpec`, `"architecture": "cnn"`);
//! - `trunk_fingerprint`: for the face design, the embedded weights the head was trained on (the
//!   trunk itself is not stored: it is the face ResNet embedded in wgnn, with the face detector
//!   and the landmark predictor that shape its input); `none` for a convolutional network,
//!   whose every weight is stored (its batch normalisation folded into the convolutions);
//! - `embedding_dim`, `threshold` (squared L2 distance, chosen by 10-fold cross-validation on
//!   the training identities);
//! - `verifier`: `none`, or a JSON description of the logistic unit (tensors `verifier.weight`
//!   [1, D] and `verifier.bias` [1]);
//! - `impostor_tail` (optional): the lower tail of the training images' impostor distances,
//!   from which identification against K people takes its threshold (`faces::open_set`);
//! - `training`: the training settings and data, for the record (JSON).
//!
//! The model's fingerprint (which galleries record) hashes what decides the embeddings: the
//! network description, the trunk fingerprint and the head's weights; training a verifier does
//! not change it.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::cnn::{self, CnnSpec};
use super::dataset::Preprocess;
use super::network::{fingerprint, trunk_fingerprint, NetworkSpec};
use super::open_set::ImpostorTail;
use wgnn::error::{Error, Result};
use wgnn::nn::{read_safetensors_metadata, ParamStore};
use wgnn::Gpu;

pub const FORMAT: &str = "wgnn-siamese-v1";

/// The trunk name in the network description of model files made with the SqueezeNet trunk,
/// which are refused with the advice to retrain (docs/decisions/face-trunk.md).
const SQUEEZENET_NAME: &str = "squeezenet1_1";

/// A logistic unit on `|f(x1) - f(x2)|`: `P(same) = sigmoid(weight . |f1 - f2| + bias)`.
#[derive(Clone, Debug, PartialEq)]
pub struct LogisticVerifier {
    pub weight: Vec<f32>,
    pub bias: f32,
    /// What it was trained on, for the record (JSON).
    pub description: Value,
}

impl LogisticVerifier {
    /// The logit of "same person" for two embeddings.
    pub fn logit(&self, a: &[f32], b: &[f32]) -> f64 {
        let dot: f64 = self
            .weight
            .iter()
            .zip(a.iter().zip(b))
            .map(|(&w, (&x, &y))| w as f64 * (x - y).abs() as f64)
            .sum();
        dot + self.bias as f64
    }
}

/// The network a model embeds images with.
#[derive(Clone, Debug, PartialEq)]
pub enum Network {
    /// dlib's face ResNet on the aligned face chip, frozen, and a trained linear head.
    FaceResNet(NetworkSpec),
    /// A convolutional network trained from random weights (`faces::cnn`), stored with its
    /// batch normalisation folded into the convolutions.
    Cnn(CnnSpec),
}

impl Network {
    pub fn embedding_dim(&self) -> usize {
        match self {
            Network::FaceResNet(spec) => spec.head.embedding_dim,
            Network::Cnn(spec) => spec.embedding_dim,
        }
    }

    /// How photos become the network's input.
    pub fn preprocess(&self) -> Preprocess {
        match self {
            Network::FaceResNet(spec) => Preprocess {
                width: spec.trunk.width as u32,
                height: spec.trunk.height as u32,
                channels: 3,
            },
            Network::Cnn(spec) => Preprocess {
                width: spec.input as u32,
                height: spec.input as u32,
                channels: spec.channels as u32,
            },
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Network::FaceResNet(spec) => spec.to_json(),
            Network::Cnn(spec) => spec.to_json(),
        }
    }

    fn from_json(value: &Value) -> std::result::Result<Self, String> {
        if value["architecture"] == cnn::CNN_NAME {
            return CnnSpec::from_json(value).map(Network::Cnn);
        }
        NetworkSpec::from_json(value).map(Network::FaceResNet)
    }

    /// The stored parameters' names and shapes.
    fn parameter_shapes(&self) -> Vec<(String, wgnn::Shape)> {
        match self {
            Network::FaceResNet(spec) => spec.head_parameter_shapes(),
            Network::Cnn(spec) => spec.folded_shapes(),
        }
    }

    /// What the stored parameters were trained on besides themselves.
    fn trunk_fingerprint(&self) -> String {
        match self {
            Network::FaceResNet(_) => trunk_fingerprint(),
            Network::Cnn(_) => "none".to_string(),
        }
    }

    /// The face design's description, or an error saying what `what` needs.
    pub fn face(&self, what: &str) -> Result<&NetworkSpec> {
        match self {
            Network::FaceResNet(spec) => Ok(spec),
            Network::Cnn(_) => Err(Error::Invalid(format!(
                "{what} works on face models (dlib's face ResNet), not on a convolutional network \
                 trained from random weights"
            ))),
        }
    }
}

/// A trained model.
#[derive(Clone, Debug)]
pub struct SiameseModel {
    pub network: Network,
    /// The trained parameters, on the GPU: the face design's head (`head.*`), or every weight
    /// of a convolutional network (normalisation folded in).
    pub params: ParamStore,
    pub threshold: f32,
    pub verifier: Option<LogisticVerifier>,
    /// The impostor distances of the training images, for open-set identification; models
    /// written without it identify at the verification threshold.
    pub impostors: Option<ImpostorTail>,
    /// Training settings and data (JSON), for the record.
    pub training: Value,
    /// See the module documentation.
    pub fingerprint: String,
}

impl SiameseModel {
    /// Assembles a model, computing its fingerprint from its weights.
    pub fn new(
        gpu: &Gpu,
        network: Network,
        params: ParamStore,
        threshold: f32,
        training: Value,
    ) -> Result<Self> {
        let fingerprint = model_fingerprint(gpu, &network, &params)?;
        Ok(Self {
            network,
            params,
            threshold,
            verifier: None,
            impostors: None,
            training,
            fingerprint,
        })
    }

    /// The squared-distance threshold under which identification against `gallery` people
    /// names the nearest, for a gallery false-accept rate `rate` (`faces::open_set`); the
    /// verification threshold when the model has no impostor tail.
    pub fn identification_threshold(&self, gallery: usize, rate: f64) -> f32 {
        match &self.impostors {
            Some(tail) => tail.gallery_threshold(self.threshold, gallery, rate),
            None => self.threshold,
        }
    }

    pub fn embedding_dim(&self) -> usize {
        self.network.embedding_dim()
    }

    /// Writes the model atomically (the same model gives the same bytes).
    pub fn save(&self, gpu: &Gpu, path: &Path) -> Result<()> {
        let mut store = ParamStore::new();
        for (name, tensor) in self.params.iter() {
            store.insert(name, tensor.clone());
        }
        let verifier = match &self.verifier {
            None => "none".to_string(),
            Some(v) => {
                let d = v.weight.len();
                store.insert_f32(gpu, "verifier.weight", [1, d], &v.weight)?;
                store.insert_f32(gpu, "verifier.bias", [1], &[v.bias])?;
                v.description.to_string()
            }
        };
        let mut metadata = BTreeMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("network".to_string(), self.network.to_json().to_string()),
            (
                "trunk_fingerprint".to_string(),
                self.network.trunk_fingerprint(),
            ),
            (
                "embedding_dim".to_string(),
                self.embedding_dim().to_string(),
            ),
            ("threshold".to_string(), self.threshold.to_string()),
            ("verifier".to_string(), verifier),
            ("training".to_string(), self.training.to_string()),
        ]);
        if let Some(tail) = &self.impostors {
            metadata.insert("impostor_tail".to_string(), tail.to_json().to_string());
        }
        store.save_safetensors(gpu, path, &metadata)
    }

    /// Reads a model written by [`SiameseModel::save`]; anything else is refused with a message
    /// saying what the file is not.
    pub fn load(gpu: &Gpu, path: &Path) -> Result<Self> {
        let not_a_model = |why: &str| {
            Error::file(
                path,
                format!(
                    "not a wgnn face model ({why}); train one with `train_siamese train --data \
                     DIR --out MODEL.safetensors`"
                ),
            )
        };
        let metadata = read_safetensors_metadata(path).map_err(|e| match e {
            Error::File { message, .. } if message.starts_with("not a valid safetensors") => {
                not_a_model(&message)
            }
            other => other,
        })?;
        match metadata.get("format").map(String::as_str) {
            Some(FORMAT) => {}
            Some(super::train::CHECKPOINT_FORMAT) => {
                return Err(Error::file(
                    path,
                    "this is a training checkpoint, not a model: continue training with \
                     `train_siamese train --resume` and use the model it writes",
                ))
            }
            Some(other) => {
                return Err(not_a_model(&format!(
                    "format `{other}`, expected `{FORMAT}`"
                )))
            }
            None => return Err(not_a_model(&format!("no `{FORMAT}` format tag"))),
        }
        let field = |key: &str| {
            metadata
                .get(key)
                .ok_or_else(|| Error::file(path, format!("corrupt wgnn model: no `{key}`")))
        };
        let corrupt = |what: String| Error::file(path, format!("corrupt wgnn model: {what}"));
        let network: Value = serde_json::from_str(field("network")?)
            .map_err(|e| corrupt(format!("network description: {e}")))?;
        if network["trunk"]["architecture"] == SQUEEZENET_NAME {
            return Err(Error::file(
                path,
                "this model was made with the SqueezeNet trunk, which train_siamese no longer \
                 has: retrain with this version (`train_siamese train`)",
            ));
        }
        let network = Network::from_json(&network).map_err(corrupt)?;
        let trunk = field("trunk_fingerprint")?;
        let expected_trunk = network.trunk_fingerprint();
        if *trunk != expected_trunk {
            return Err(Error::file(
                path,
                format!(
                    "this model was trained on other trunk weights (fingerprint {trunk}; this \
                     wgnn embeds {expected_trunk}): train it again with this version",
                ),
            ));
        }
        let threshold: f32 = field("threshold")?
            .parse()
            .map_err(|_| corrupt("threshold is not a number".into()))?;
        if !(threshold.is_finite() && threshold >= 0.0) {
            return Err(corrupt(format!(
                "threshold {threshold}: a squared distance must be a finite number >= 0"
            )));
        }
        let training = metadata
            .get("training")
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(Value::Null);

        let mut expected = network.parameter_shapes();
        let d = network.embedding_dim();
        let has_verifier = field("verifier")? != "none";
        if has_verifier {
            expected.push(("verifier.weight".into(), wgnn::Shape::from([1, d])));
            expected.push(("verifier.bias".into(), wgnn::Shape::from([1])));
        }
        let stored = ParamStore::load_for(gpu, path, &expected)?;
        let mut params = ParamStore::new();
        for (name, tensor) in stored.iter().filter(|(n, _)| !n.starts_with("verifier.")) {
            params.insert(name, tensor.clone());
        }
        let verifier = if has_verifier {
            let description: Value = serde_json::from_str(field("verifier")?)
                .map_err(|e| corrupt(format!("verifier description: {e}")))?;
            Some(LogisticVerifier {
                weight: stored.get("verifier.weight").unwrap().to_vec(gpu)?,
                bias: stored.get("verifier.bias").unwrap().to_vec(gpu)?[0],
                description,
            })
        } else {
            None
        };
        let impostors = match metadata.get("impostor_tail") {
            None => None,
            Some(text) => {
                let value: Value = serde_json::from_str(text)
                    .map_err(|e| corrupt(format!("impostor tail: {e}")))?;
                Some(ImpostorTail::from_json(&value).map_err(corrupt)?)
            }
        };
        let fingerprint = model_fingerprint(gpu, &network, &params)?;
        Ok(Self {
            network,
            params,
            threshold,
            verifier,
            impostors,
            training,
            fingerprint,
        })
    }
}

/// Hash of the network description, the trunk fingerprint and the stored weights (name order).
fn model_fingerprint(gpu: &Gpu, network: &Network, params: &ParamStore) -> Result<String> {
    let trunk = network.trunk_fingerprint();
    let network = network.to_json().to_string();
    let host = params.to_host(gpu)?;
    let bytes: Vec<Vec<u8>> = host
        .iter()
        .map(|(name, _, values)| {
            let mut b = name.as_bytes().to_vec();
            b.extend(values.iter().flat_map(|v| v.to_le_bytes()));
            b
        })
        .collect();
    let mut parts: Vec<&[u8]> = vec![network.as_bytes(), trunk.as_bytes()];
    parts.extend(bytes.iter().map(Vec::as_slice));
    Ok(fingerprint(&parts))
}
