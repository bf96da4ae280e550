//! The networks `visualize` looks inside: the ImageNet backbones and dlib's face ResNet, each
//! with its layer names, input size and preprocessing, built up to the layers asked for.

use std::path::Path;

use wgnn::graph::{Graph, NodeId};
use wgnn::nn::ParamStore;
use wgnn::{Error, Gpu, Result};
use wgnn_models::{face_resnet, Architecture, Pooling};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    Backbone(Architecture),
    FaceResNet,
}

impl Model {
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "face-resnet" | "face_resnet" => Ok(Model::FaceResNet),
            other => Architecture::parse(other)
                .map(Model::Backbone)
                .map_err(|_| {
                    Error::Invalid(format!(
                        "unknown model `{name}`: choose squeezenet, face-resnet, vgg16 or vgg19"
                    ))
                }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Model::Backbone(a) => a.name(),
            Model::FaceResNet => "face-resnet",
        }
    }

    /// The layer names a user may ask for, in network order.
    pub fn layer_names(self) -> Vec<String> {
        match self {
            Model::Backbone(a) => a.layer_names(),
            Model::FaceResNet => face_resnet::layer_names(),
        }
    }

    /// Four layers from shallow to deep, shown when none are asked for.
    pub fn default_layers(self) -> Vec<String> {
        let names: &[&str] = match self {
            Model::Backbone(Architecture::SqueezeNet) => &["conv1", "fire3", "fire5", "fire7"],
            Model::Backbone(Architecture::Vgg16) => &["relu1_2", "relu2_2", "relu3_3", "relu4_3"],
            Model::Backbone(Architecture::Vgg19) => &["relu1_2", "relu2_2", "relu3_4", "relu4_4"],
            Model::FaceResNet => &["stem", "block3", "block7", "block11"],
        };
        names.iter().map(|s| s.to_string()).collect()
    }

    /// Checks layer names, listing the valid ones on error.
    pub fn check_layers(self, layers: &[String]) -> Result<()> {
        let valid = self.layer_names();
        match layers.iter().find(|l| !valid.contains(l)) {
            Some(bad) => Err(Error::Invalid(format!(
                "unknown layer `{bad}` for {}: valid layers are {}",
                self.name(),
                valid.join(", ")
            ))),
            None if layers.is_empty() => Err(Error::Invalid(format!(
                "no layers given: valid layers for {} are {}",
                self.name(),
                valid.join(", ")
            ))),
            None => Ok(()),
        }
    }

    /// The side of the square image the network is run on: the size it was trained at.
    pub fn input_side(self) -> usize {
        match self {
            Model::Backbone(Architecture::SqueezeNet) => 227,
            Model::Backbone(_) => 224,
            Model::FaceResNet => face_resnet::CHIP_SIZE,
        }
    }

    /// The weights: `path` if given, else the embedded ones (SqueezeNet's and the face
    /// ResNet's; VGG needs a file).
    pub fn weights(self, gpu: &Gpu, path: Option<&Path>) -> Result<ParamStore> {
        match (self, path) {
            (Model::Backbone(a), path) => wgnn_assets::backbone_weights(gpu, a, path),
            (Model::FaceResNet, None) => wgnn_assets::face_resnet_weights(gpu),
            (Model::FaceResNet, Some(path)) => {
                let bytes = std::fs::read(path).map_err(|e| Error::file(path, e))?;
                face_resnet::load_weights(gpu, &path.display().to_string(), &bytes)
            }
        }
    }

    /// Adds the network on RGB images `x` ([N, 3, side, side] in [0, 1]) to `g`, preprocessed
    /// as it was trained, and returns the node of each of `layers` (after its ReLU).
    pub fn build(self, g: &mut Graph, x: NodeId, layers: &[String]) -> Result<Vec<NodeId>> {
        self.check_layers(layers)?;
        match self {
            Model::Backbone(a) => {
                let pre = g.channel_affine(x, a.preprocess())?;
                a.features(g, pre, Pooling::Max, layers)
            }
            Model::FaceResNet => {
                let pre = g.channel_affine(x, face_resnet::preprocess())?;
                let all = face_resnet::build_layers(g, pre)?;
                let names = face_resnet::layer_names();
                Ok(layers
                    .iter()
                    .map(|l| all[names.iter().position(|n| n == l).expect("checked")])
                    .collect())
            }
        }
    }
}
