//! The networks' input normalisations, as pure functions on CHW samples.
//!
//! The optimised variable of style transfer and a loaded photo are RGB in [0, 1]; each network
//! wants its own input space:
//! - SqueezeNet v1.1 (Caffe weights, [`Preprocess::SQUEEZENET`]): BGR channel order, 0..255
//!   scale, minus the per-channel mean `mean_bgr = (104.006, 116.669, 122.679)`. These are
//!   the values of the `__metadata__` of `assets/squeezenet1_1.safetensors`, keys `input`
//!   (`"BGR, 0..255, minus per-channel mean"`) and `mean_bgr` (`"104.006,116.669,122.679"`);
//!   [`Preprocess::caffe_from_metadata`] reads them from a weights file.
//! - VGG16/19 (torchvision weights, [`Preprocess::VGG`]): RGB order, `(x - mean) / std` with
//!   mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225).
//!
//! Both are one affine map per output channel reading one input channel,
//! `out[c] = scale * in[source] + offset` ([`Preprocess::channel_affine`]), which a GPU kernel
//! can apply (and whose gradient is `scale` times the upstream gradient, routed back to
//! `source`). [`Preprocess::apply`] evaluates exactly that form in f32 (`scale * x + offset`,
//! one rounding for the product and one for the sum), so the CPU and GPU agree up to the
//! GPU's freedom to fuse the multiply-add. For VGG the affine form differs from
//! `(x - mean) / std` by a few ulp.

use std::collections::HashMap;

use wgnn::error::{Error, Result};

/// A network's input normalisation (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Preprocess {
    /// Caffe: BGR order, `255 * x - mean_bgr[c]` (means in 0..255 units, BGR order).
    Caffe { mean_bgr: [f32; 3] },
    /// torchvision: RGB order, `(x - mean[c]) / std[c]` (RGB order, [0, 1] units).
    Torchvision { mean: [f32; 3], std: [f32; 3] },
}

/// One output channel of a preprocessing: `out = scale * input[source] + offset`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChannelAffine {
    pub scale: f32,
    pub offset: f32,
    /// The input channel (0 red, 1 green, 2 blue) this output channel reads.
    pub source: usize,
}

impl Preprocess {
    /// SqueezeNet v1.1 as shipped in `assets/squeezenet1_1.safetensors`.
    pub const SQUEEZENET: Preprocess = Preprocess::Caffe {
        mean_bgr: [104.006, 116.669, 122.679],
    };

    /// torchvision's ImageNet normalisation, used by its VGG16 and VGG19 weights.
    pub const VGG: Preprocess = Preprocess::Torchvision {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };

    /// A Caffe preprocessing from a safetensors `__metadata__` map: requires `mean_bgr` as
    /// three comma-separated numbers (e.g. `"104.006,116.669,122.679"`), and if `input` is
    /// present it must mention BGR order.
    pub fn caffe_from_metadata(metadata: &HashMap<String, String>) -> Result<Preprocess> {
        let Some(text) = metadata.get("mean_bgr") else {
            return Err(Error::Invalid(
                "weights metadata has no `mean_bgr` entry (expected e.g. \"104.006,116.669,122.679\")"
                    .into(),
            ));
        };
        if let Some(input) = metadata.get("input") {
            if !input.contains("BGR") {
                return Err(Error::Invalid(format!(
                    "weights metadata `input` is {input:?}, expected a BGR Caffe input"
                )));
            }
        }
        let values: Vec<f32> = text
            .split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::Invalid(format!("weights metadata `mean_bgr` {text:?}: {e}")))?;
        match values[..] {
            [b, g, r] if values.iter().all(|v| v.is_finite()) => Ok(Preprocess::Caffe {
                mean_bgr: [b, g, r],
            }),
            _ => Err(Error::Invalid(format!(
                "weights metadata `mean_bgr` {text:?} is not three finite numbers"
            ))),
        }
    }

    /// Output channel `c` is `scale * input[source] + offset`, for c = 0, 1, 2 (in the
    /// network's channel order: BGR for Caffe, RGB for torchvision).
    pub fn channel_affine(&self) -> [ChannelAffine; 3] {
        match *self {
            Preprocess::Caffe { mean_bgr } => std::array::from_fn(|c| ChannelAffine {
                scale: 255.0,
                offset: -mean_bgr[c],
                source: 2 - c,
            }),
            Preprocess::Torchvision { mean, std } => std::array::from_fn(|c| {
                let (mean, std) = (mean[c] as f64, std[c] as f64);
                ChannelAffine {
                    scale: (1.0 / std) as f32,
                    offset: (-mean / std) as f32,
                    source: c,
                }
            }),
        }
    }

    /// Maps RGB [0, 1] CHW samples (`3 * plane` values) to the network's input.
    ///
    /// Panics if `rgb.len()` is not a multiple of 3 (a CHW image always is).
    pub fn apply(&self, rgb: &[f32]) -> Vec<f32> {
        let plane = planes_of(rgb);
        let mut out = Vec::with_capacity(rgb.len());
        for a in self.channel_affine() {
            let source = &rgb[a.source * plane..(a.source + 1) * plane];
            out.extend(source.iter().map(|&x| a.scale * x + a.offset));
        }
        out
    }

    /// The inverse of [`Preprocess::apply`]: network input back to RGB CHW samples
    /// (`(y - offset) / scale`, in f32), not clamped.
    ///
    /// Panics if `input.len()` is not a multiple of 3.
    pub fn invert(&self, input: &[f32]) -> Vec<f32> {
        let plane = planes_of(input);
        let mut rgb = vec![0.0; input.len()];
        for (c, a) in self.channel_affine().into_iter().enumerate() {
            let channel = &input[c * plane..(c + 1) * plane];
            let target = &mut rgb[a.source * plane..(a.source + 1) * plane];
            for (t, &y) in target.iter_mut().zip(channel) {
                *t = (y - a.offset) / a.scale;
            }
        }
        rgb
    }
}

fn planes_of(chw: &[f32]) -> usize {
    assert!(
        chw.len().is_multiple_of(3),
        "preprocess: a CHW RGB image has 3 * H * W samples, got {}",
        chw.len()
    );
    chw.len() / 3
}
