//! ImageNet classification with the embedded SqueezeNet v1.1: proves the backbone end to end.

use wgnn::error::Result;
use wgnn::gpu::Gpu;
use wgnn::graph::{Graph, Plan, PlanSpec};
use wgnn::nn::ParamStore;
use wgnn_models::imaging::{resize::resize_exact, RgbImage};
use wgnn_models::{squeezenet_classifier, Architecture, Pooling};

/// SqueezeNet's input size.
pub const INPUT_SIZE: usize = 227;

#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    pub index: usize,
    pub class: String,
    pub probability: f64,
}

/// A compiled classifier for 227x227 images.
pub struct Classifier {
    plan: Plan,
    input: wgnn::graph::NodeId,
}

impl Classifier {
    /// Builds the network on `weights` (see `Architecture::load_weights`).
    pub fn new(gpu: &Gpu, weights: &ParamStore) -> Result<Self> {
        let arch = Architecture::SqueezeNet;
        let mut g = Graph::new();
        let input = g.input("image", [1, 3, INPUT_SIZE, INPUT_SIZE]);
        let x = g.channel_affine(input, arch.preprocess())?;
        let fire9 = arch.features(&mut g, x, Pooling::Max, &["fire9".to_string()])?[0];
        let logits = squeezenet_classifier(&mut g, fire9)?;
        let plan = Plan::compile(
            gpu,
            &g,
            weights,
            PlanSpec {
                outputs: vec![logits],
                ..Default::default()
            },
        )?;
        Ok(Self { plan, input })
    }

    /// The `k` most probable classes (softmax over the 1000 logits, in float64). The image is
    /// resized to 227x227 as a whole (PIL-exact bilinear) unless it already is that size.
    pub fn top_k(&mut self, gpu: &Gpu, image: &RgbImage, k: usize) -> Result<Vec<Prediction>> {
        let resized = resize_exact(image, INPUT_SIZE, INPUT_SIZE)?;
        self.plan.write_input(gpu, self.input, &resized.data)?;
        let logits = self.plan.step(gpu)?.remove(0);
        let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
        let exp: Vec<f64> = logits.iter().map(|&v| (v as f64 - max).exp()).collect();
        let total: f64 = exp.iter().sum();
        let mut order: Vec<usize> = (0..exp.len()).collect();
        order.sort_by(|&a, &b| exp[b].total_cmp(&exp[a]).then(a.cmp(&b)));
        let names = wgnn_assets::imagenet_classes();
        Ok(order
            .into_iter()
            .take(k)
            .map(|i| Prediction {
                index: i,
                class: names[i].to_string(),
                probability: exp[i] / total,
            })
            .collect())
    }
}
