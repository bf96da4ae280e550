//! Image classification and fine-tuning with an ONNX model imported by `wgnn-onnx`: the
//! model's one input is an RGB batch [N, 3, H, W] and its first output the class scores, or
//! their Softmax or LogSoftmax over the classes (then the scores under it are taken: the
//! probabilities are the same, and fine-tuning teaches the scores).
//! - [`OnnxClassifier`]: the top classes of a picture (softmax over the scores, float64);
//! - [`fine_tune`]: trains chosen parameters (by default the last layer's) on labelled pictures.

use std::path::Path;

use wgnn::error::{Error, Result};
use wgnn::graph::NodeId;
use wgnn::optim::{Adam, AdamConfig};
use wgnn::{Gpu, Plan, PlanSpec};
use wgnn_models::imaging::{resize::resize_exact, RgbImage};
use wgnn_onnx::{ImportOptions, Imported, OnnxModel};

/// What is done to RGB values in [0, 1] before they enter the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Normalize {
    /// As they are (a model that normalises inside its graph, like the SqueezeNet of the tests).
    Unit,
    /// torchvision's ImageNet normalisation: (x - mean) / std per channel.
    Imagenet,
}

const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

impl Normalize {
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "unit" => Ok(Normalize::Unit),
            "imagenet" => Ok(Normalize::Imagenet),
            other => Err(format!("`{other}` is not `unit` or `imagenet`")),
        }
    }

    /// Normalises planar RGB (3 x H x W) in place.
    fn apply(self, data: &mut [f32]) {
        if self == Normalize::Imagenet {
            let plane = data.len() / 3;
            for (c, channel) in data.chunks_mut(plane).enumerate() {
                for v in channel {
                    *v = (*v - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
                }
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    pub index: usize,
    pub class: String,
    pub probability: f64,
}

/// The picture size a model takes: `size` x `size` when given, else the file's fixed H and W.
/// Operators without a mapping are named first, before the input is looked at.
pub fn input_size(model: &OnnxModel, size: Option<usize>) -> Result<(String, usize, usize)> {
    let unsupported = model.unsupported_operators();
    if !unsupported.is_empty() {
        return Err(Error::Invalid(format!(
            "the model uses operators the importer does not support: {}",
            unsupported.join(", ")
        )));
    }
    let inputs = model.inputs();
    let [input] = inputs.as_slice() else {
        return Err(Error::Invalid(format!(
            "the model has {} inputs; an image classifier takes one",
            inputs.len()
        )));
    };
    if input.dims.len() != 4 || input.dims[1].is_some_and(|c| c != 3) {
        return Err(Error::Invalid(format!(
            "the model's input `{}` has dims {:?}; an RGB batch [N, 3, H, W] is expected",
            input.name, input.dims
        )));
    }
    match (size, input.dims[2], input.dims[3]) {
        (Some(s), _, _) => Ok((input.name.clone(), s, s)),
        (None, Some(h), Some(w)) => Ok((input.name.clone(), h, w)),
        _ => Err(Error::Invalid(format!(
            "the model's input `{}` has no fixed height and width; give a size (--size)",
            input.name
        ))),
    }
}

/// The ONNX value under the model's first output when that output is a Softmax or LogSoftmax
/// over axis 1 of a matrix [N, classes] (at every opset, the class scores normalised row by
/// row), else None.
fn scores_under_softmax(model: &OnnxModel, net: &Imported, output: &str) -> Option<NodeId> {
    let graph = model.proto().graph.as_ref()?;
    let producer = graph
        .node
        .iter()
        .find(|n| n.output.first().map(String::as_str) == Some(output))?;
    if !matches!(producer.op_type.as_str(), "Softmax" | "LogSoftmax") {
        return None;
    }
    let scores = net.value(producer.input.first()?).ok()?;
    let default_axis = if model.opset() >= 13 { -1 } else { 1 };
    let axis = producer
        .attribute
        .iter()
        .find(|a| a.name == "axis")
        .map_or(default_axis, |a| a.i);
    let over_classes = net.graph.shape(scores).rank() == 2 && (axis == 1 || axis == -1);
    over_classes.then_some(scores)
}

/// Imports `model` for `batch` pictures of `height` x `width`; returns the network with its
/// input and its class scores [batch, classes] (the first output flattened, or the scores under
/// its final Softmax or LogSoftmax).
fn import(
    gpu: &Gpu,
    model: &OnnxModel,
    input: &str,
    batch: usize,
    (height, width): (usize, usize),
) -> Result<(Imported, NodeId, NodeId)> {
    let options = ImportOptions::default().input_shape(input, &[batch, 3, height, width]);
    let mut net = model.import(gpu, &options)?;
    let x = net.input(input)?;
    let (name, scores) = net
        .outputs
        .first()
        .cloned()
        .ok_or_else(|| Error::Invalid("the model has no output".to_string()))?;
    let scores = scores_under_softmax(model, &net, &name).unwrap_or(scores);
    let dims = net.graph.shape(scores).dims().to_vec();
    let classes = dims.iter().product::<usize>() / batch;
    if dims[0] != batch || dims[1] != classes {
        return Err(Error::Invalid(format!(
            "the model's output `{name}` has dims {dims:?}; class scores [N, classes] are expected"
        )));
    }
    let scores = if dims.len() == 2 {
        scores
    } else {
        net.graph.reshape(scores, [batch, classes])?
    };
    Ok((net, x, scores))
}

/// The class names: `labels` when given (one per score), ImageNet's for 1000 scores, else
/// `class <i>`.
fn class_names(labels: Option<Vec<String>>, classes: usize) -> Result<Vec<String>> {
    match labels {
        Some(l) if l.len() == classes => Ok(l),
        Some(l) => Err(Error::Invalid(format!(
            "{} labels given for a model with {classes} class scores",
            l.len()
        ))),
        None if classes == 1000 => Ok(wgnn_assets::imagenet_classes()
            .iter()
            .map(|s| s.to_string())
            .collect()),
        None => Ok((0..classes).map(|i| format!("class {i}")).collect()),
    }
}

/// A label file: one class name a line.
pub fn load_labels(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
    Ok(text.lines().map(|l| l.trim().to_string()).collect())
}

/// Pictures resized to `height` x `width` (PIL-exact bilinear) and normalised, one batch.
fn batch(
    pictures: &[&RgbImage],
    (height, width): (usize, usize),
    normalize: Normalize,
) -> Result<Vec<f32>> {
    let mut data = Vec::with_capacity(pictures.len() * 3 * height * width);
    for picture in pictures {
        let mut resized = resize_exact(picture, width, height)?.data;
        normalize.apply(&mut resized);
        data.extend(resized);
    }
    Ok(data)
}

/// A compiled ONNX classifier for one picture at a time.
pub struct OnnxClassifier {
    plan: Plan,
    input: NodeId,
    size: (usize, usize),
    normalize: Normalize,
    names: Vec<String>,
}

impl OnnxClassifier {
    pub fn new(
        gpu: &Gpu,
        model: &OnnxModel,
        normalize: Normalize,
        size: Option<usize>,
        labels: Option<Vec<String>>,
    ) -> Result<Self> {
        Self::build(gpu, model, normalize, size, labels, None)
    }

    /// The classifier with `params` (the model's parameters after [`fine_tune`], by name) in
    /// place of the file's.
    pub fn with_params(
        gpu: &Gpu,
        model: &OnnxModel,
        normalize: Normalize,
        size: Option<usize>,
        params: &wgnn::nn::ParamStore,
    ) -> Result<Self> {
        Self::build(gpu, model, normalize, size, None, Some(params))
    }

    fn build(
        gpu: &Gpu,
        model: &OnnxModel,
        normalize: Normalize,
        size: Option<usize>,
        labels: Option<Vec<String>>,
        params: Option<&wgnn::nn::ParamStore>,
    ) -> Result<Self> {
        let (input, height, width) = input_size(model, size)?;
        let (net, x, scores) = import(gpu, model, &input, 1, (height, width))?;
        let names = class_names(labels, net.graph.shape(scores).dim(-1))?;
        let spec = PlanSpec {
            outputs: vec![scores],
            ..Default::default()
        };
        let plan = Plan::compile(gpu, &net.graph, params.unwrap_or(&net.params), spec)?;
        Ok(Self {
            plan,
            input: x,
            size: (height, width),
            normalize,
            names,
        })
    }

    /// The `k` most probable classes of `picture`, resized to the model's input as a whole.
    pub fn top_k(&mut self, gpu: &Gpu, picture: &RgbImage, k: usize) -> Result<Vec<Prediction>> {
        let data = batch(&[picture], self.size, self.normalize)?;
        self.plan.write_input(gpu, self.input, &data)?;
        let scores = self.plan.step(gpu)?.remove(0);
        let max = scores.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
        let exp: Vec<f64> = scores.iter().map(|&v| (v as f64 - max).exp()).collect();
        let total: f64 = exp.iter().sum();
        let mut order: Vec<usize> = (0..exp.len()).collect();
        order.sort_by(|&a, &b| exp[b].total_cmp(&exp[a]).then(a.cmp(&b)));
        Ok(order
            .into_iter()
            .take(k)
            .map(|i| Prediction {
                index: i,
                class: self.names[i].clone(),
                probability: exp[i] / total,
            })
            .collect())
    }
}

/// What [`fine_tune`] trains and how.
#[derive(Clone, Debug)]
pub struct FineTune {
    /// Parameter names to train; empty: the last two the graph uses (the last layer's weight
    /// and bias in a network that ends in a convolution or a linear layer).
    pub train: Vec<String>,
    pub steps: usize,
    pub learning_rate: f32,
    /// Pictures are resized to size x size; None: the model's own input size.
    pub size: Option<usize>,
    pub normalize: Normalize,
    /// The score each picture's label is taught (every other class is taught 0).
    pub label_score: f32,
}

/// The outcome of [`fine_tune`].
pub struct FineTuned {
    /// The loss before each step.
    pub losses: Vec<f32>,
    pub trained: Vec<String>,
    /// The model's parameters after training (save them with `ParamStore::save_safetensors`).
    pub params: wgnn::nn::ParamStore,
}

/// Trains the chosen parameters so that each picture scores its label: the mean squared error
/// of the class scores against `label_score` for the label and 0 for every other class, Adam,
/// all pictures in one batch per step. (A squared error rather than a cross-entropy on
/// sigmoids: classifiers such as SqueezeNet end in a ReLU, whose scores cannot go below 0.)
pub fn fine_tune(
    gpu: &Gpu,
    model: &OnnxModel,
    examples: &[(&RgbImage, usize)],
    config: &FineTune,
) -> Result<FineTuned> {
    if examples.is_empty() || config.steps == 0 {
        return Err(Error::Invalid(
            "fine-tuning needs at least one picture and one step".to_string(),
        ));
    }
    let (input, height, width) = input_size(model, config.size)?;
    let n = examples.len();
    let (mut net, x, scores) = import(gpu, model, &input, n, (height, width))?;
    let classes = net.graph.shape(scores).dim(-1);
    let trained: Vec<(String, NodeId)> = if config.train.is_empty() {
        net.parameters.iter().rev().take(2).rev().cloned().collect()
    } else {
        config
            .train
            .iter()
            .map(|name| {
                net.parameters
                    .iter()
                    .find(|(p, _)| p == name)
                    .cloned()
                    .ok_or_else(|| {
                        Error::Invalid(format!("the model has no parameter `{name}` to train"))
                    })
            })
            .collect::<Result<_>>()?
    };
    let mut targets = vec![0.0f32; n * classes];
    for (i, &(_, label)) in examples.iter().enumerate() {
        if label >= classes {
            return Err(Error::Invalid(format!(
                "label {label} is beyond the model's {classes} classes"
            )));
        }
        targets[i * classes + label] = config.label_score;
    }
    let ids: Vec<NodeId> = trained.iter().map(|(_, id)| *id).collect();
    let g = &mut net.graph;
    let labels = g.input("labels", [n, classes]);
    let loss = g.mse(scores, labels)?;
    let grads = g.gradients(loss, &ids)?;
    let mut adam = Adam::new(
        gpu,
        AdamConfig {
            lr: config.learning_rate,
            ..Default::default()
        },
    )?;
    let spec = PlanSpec::training(vec![loss], ids.into_iter().zip(grads).collect(), &mut adam);
    let mut plan = Plan::compile(gpu, &net.graph, &net.params, spec)?;
    let pictures: Vec<&RgbImage> = examples.iter().map(|(p, _)| *p).collect();
    plan.write_input(
        gpu,
        x,
        &batch(&pictures, (height, width), config.normalize)?,
    )?;
    plan.write_input(gpu, labels, &targets)?;
    let losses = (0..config.steps)
        .map(|_| Ok(plan.step(gpu)?[0][0]))
        .collect::<Result<Vec<f32>>>()?;
    Ok(FineTuned {
        losses,
        trained: trained.into_iter().map(|(name, _)| name).collect(),
        params: net.params,
    })
}
