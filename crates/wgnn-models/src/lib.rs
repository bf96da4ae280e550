//! Pretrained networks on the wgnn engine, as graph builders plus weight loading (the weights
//! come from files or bytes the caller gives; this crate embeds none):
//! - [`Architecture`]: the ImageNet backbones SqueezeNet v1.1 and VGG16/19 with torchvision's
//!   parameter names, and SqueezeNet's classifier;
//! - [`face_resnet`]: dlib's face recognition ResNet (128-value face descriptors);
//! - [`face_detector`] and [`face_detection`]: dlib's CNN face detector (MMOD) and the image
//!   pyramid, scanning and non-maximum suppression around it;
//! - [`face_landmarks`]: dlib's 5-point landmark predictor and its aligned face chips;
//! - [`imaging`]: the CPU image type these networks take, file I/O, PIL-compatible resizing,
//!   input normalisations and colour transfer.

pub mod face_detection;
pub mod face_detector;
pub mod face_landmarks;
pub mod face_resnet;
pub mod imaging;
mod squeezenet;
mod vgg;

use std::path::Path;

use wgnn::error::{Error, Result};
use wgnn::graph::{Graph, NodeId};
use wgnn::nn::ParamStore;
use wgnn::ops::elementwise::ChannelAffine;
use wgnn::tensor::Shape;
use wgnn::Gpu;

/// Pooling used between stages: the networks were trained with max pooling; Gatys et al.
/// found average pooling gives smoother style transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    Max,
    Avg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    SqueezeNet,
    Vgg16,
    Vgg19,
}

impl Architecture {
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "squeezenet" | "squeezenet1_1" => Ok(Architecture::SqueezeNet),
            "vgg16" => Ok(Architecture::Vgg16),
            "vgg19" => Ok(Architecture::Vgg19),
            other => Err(Error::Invalid(format!(
                "unknown model `{other}`: choose squeezenet, vgg16 or vgg19"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Architecture::SqueezeNet => "squeezenet",
            Architecture::Vgg16 => "vgg16",
            Architecture::Vgg19 => "vgg19",
        }
    }

    /// The layer names a user may ask for, in network order.
    pub fn layer_names(self) -> Vec<String> {
        match self {
            Architecture::SqueezeNet => squeezenet::LAYERS.iter().map(|s| s.to_string()).collect(),
            Architecture::Vgg16 | Architecture::Vgg19 => vgg::layer_names(vgg::config(self)),
        }
    }

    /// Maps an RGB image in [0, 1] to the network's input (channel order, scale, mean, std).
    pub fn preprocess(self) -> ChannelAffine {
        match self {
            // Caffe weights: BGR, 0..255, minus the BGR mean (from the weights' metadata).
            Architecture::SqueezeNet => ChannelAffine {
                perm: vec![2, 1, 0],
                scale: vec![255.0; 3],
                offset: vec![-104.006, -116.669, -122.679],
            },
            // torchvision: RGB / 255 normalised by ImageNet mean and std.
            Architecture::Vgg16 | Architecture::Vgg19 => {
                let mean = [0.485f32, 0.456, 0.406];
                let std = [0.229f32, 0.224, 0.225];
                ChannelAffine {
                    perm: vec![0, 1, 2],
                    scale: std.iter().map(|s| 1.0 / s).collect(),
                    offset: mean.iter().zip(&std).map(|(m, s)| -m / s).collect(),
                }
            }
        }
    }

    /// Every parameter's torchvision name and shape (feature layers; SqueezeNet's classifier too).
    pub fn parameter_shapes(self) -> Vec<(String, Shape)> {
        match self {
            Architecture::SqueezeNet => squeezenet::parameter_shapes(),
            Architecture::Vgg16 | Architecture::Vgg19 => vgg::parameter_shapes(vgg::config(self)),
        }
    }

    /// Checks layer names, listing the valid ones on error.
    pub fn check_layers(self, layers: &[String]) -> Result<()> {
        let valid = self.layer_names();
        for layer in layers {
            if !valid.contains(layer) {
                return Err(Error::Invalid(format!(
                    "unknown layer `{layer}` for {}: valid layers are {}",
                    self.name(),
                    valid.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Builds the network on a preprocessed input `x` ([N, 3, H, W]) up to the deepest of
    /// `layers` and returns the node of each requested layer, in the order asked.
    pub fn features(
        self,
        g: &mut Graph,
        x: NodeId,
        pooling: Pooling,
        layers: &[String],
    ) -> Result<Vec<NodeId>> {
        self.check_layers(layers)?;
        let names = self.layer_names();
        let deepest = layers
            .iter()
            .filter_map(|l| names.iter().position(|n| n == l))
            .max()
            .unwrap_or(0);
        let built = match self {
            Architecture::SqueezeNet => squeezenet::build_features(g, x, pooling, deepest + 1)?,
            Architecture::Vgg16 | Architecture::Vgg19 => {
                vgg::build_features(g, x, pooling, vgg::config(self), deepest + 1)?
            }
        };
        Ok(layers
            .iter()
            .map(|l| built[names.iter().position(|n| n == l).unwrap()])
            .collect())
    }
}

pub use squeezenet::classifier as squeezenet_classifier;

impl Architecture {
    /// The network's weights from a safetensors file of torchvision's `state_dict` (for VGG,
    /// `scripts/export_vgg.py` writes one); every tensor is checked by name and shape.
    pub fn load_weights_file(self, gpu: &Gpu, path: &Path) -> Result<ParamStore> {
        ParamStore::load_for(gpu, path, &self.parameter_shapes())
    }

    /// The network's weights from safetensors bytes already in memory (an application's
    /// embedded copy), called `name` in errors; every tensor is checked by name and shape.
    pub fn load_weights_bytes(self, gpu: &Gpu, name: &str, bytes: &[u8]) -> Result<ParamStore> {
        ParamStore::load_for_bytes(gpu, Path::new(name), bytes, &self.parameter_shapes())
    }
}
