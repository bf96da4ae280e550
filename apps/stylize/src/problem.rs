//! The style-transfer objective on the GPU, exactly as the README defines it:
//! - content: `J_c = sum over content layers l of mean((F_l(x) - F_l(content))^2)`
//! - style: `J_s = sum over style layers l of w_l * mean((A_l(x) - A_l(style))^2)` with
//!   `A_l = F_l F_l^T / (C_l H_l W_l)` and the target Gram the blend of the styles' Grams
//! - total variation: `J_tv = mean(vertical differences^2) + mean(horizontal differences^2)`
//! - `J = content_weight * J_c + style_weight * J_s + tv_weight * J_tv`
//!
//! The image x (RGB in [0, 1], [1, 3, H, W]) is the only parameter. Two plans share it: one that
//! also applies an Adam update and clamps x into [0, 1] (one submission per iteration), and one
//! that only evaluates J and dJ/dx (iteration 0, L-BFGS).

use wgnn::error::{Error, Result};
use wgnn::gpu::Gpu;
use wgnn::graph::{Graph, NodeId, Plan, PlanSpec, Profile};
use wgnn::nn::ParamStore;
use wgnn::ops::elementwise::clamp_in_place;
use wgnn::optim::{Adam, AdamConfig, Optimizer};
use wgnn::tensor::Tensor;
use wgnn_models::{Architecture, Pooling};

/// What the objective is made of.
#[derive(Clone, Debug)]
pub struct Objective {
    pub model: Architecture,
    pub pooling: Pooling,
    pub content_layers: Vec<String>,
    pub style_layers: Vec<String>,
    /// One per style layer.
    pub style_layer_weights: Vec<f32>,
    pub content_weight: f32,
    pub style_weight: f32,
    pub tv_weight: f32,
}

/// The loss terms at one image, and the L2 norm of dJ/dx.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Losses {
    pub content: f64,
    pub style: f64,
    pub tv: f64,
    pub total: f64,
    pub grad_norm: f64,
}

/// An RGB image as CHW f32 values in [0, 1].
pub struct ImageData<'a> {
    pub width: usize,
    pub height: usize,
    pub chw: &'a [f32],
}

impl<'a> From<&'a wgnn_models::imaging::RgbImage> for ImageData<'a> {
    fn from(image: &'a wgnn_models::imaging::RgbImage) -> Self {
        Self {
            width: image.width,
            height: image.height,
            chw: &image.data,
        }
    }
}

/// One vector of values per layer.
type PerLayer = Vec<Vec<f32>>;

/// The targets: content features and blended style Grams, one vector per layer.
struct Targets {
    content: PerLayer,
    style: PerLayer,
}

fn union_layers(objective: &Objective) -> Vec<String> {
    let order = objective.model.layer_names();
    order
        .into_iter()
        .filter(|l| objective.content_layers.contains(l) || objective.style_layers.contains(l))
        .collect()
}

/// Runs the backbone once on `image` and returns (features of `feature_layers`, Grams of
/// `gram_layers`).
fn forward_targets(
    gpu: &Gpu,
    backbone: &ParamStore,
    objective: &Objective,
    image: &ImageData<'_>,
    feature_layers: &[String],
    gram_layers: &[String],
) -> Result<(PerLayer, PerLayer)> {
    let mut g = Graph::new();
    let x = g.input("image", [1, 3, image.height, image.width]);
    let pre = g.channel_affine(x, objective.model.preprocess())?;
    let features = objective
        .model
        .features(&mut g, pre, objective.pooling, feature_layers)?;
    let grams_in = objective
        .model
        .features(&mut g, pre, objective.pooling, gram_layers)?;
    let mut outputs = features.clone();
    for f in grams_in {
        outputs.push(g.gram(f)?);
    }
    let mut plan = Plan::compile(
        gpu,
        &g,
        backbone,
        PlanSpec {
            outputs,
            ..Default::default()
        },
    )?;
    plan.write_input(gpu, x, image.chw)?;
    let mut values = plan.step(gpu)?;
    let grams = values.split_off(features.len());
    Ok((values, grams))
}

pub struct StyleProblem {
    height: usize,
    width: usize,
    image: Tensor,
    update_plan: Option<Plan>,
    eval_plan: Plan,
    eval_inputs: Vec<(NodeId, Vec<f32>)>,
    summary: String,
}

/// Checks the objective before any GPU work, with messages a user can act on.
fn check(objective: &Objective) -> Result<()> {
    objective.model.check_layers(&objective.content_layers)?;
    objective.model.check_layers(&objective.style_layers)?;
    if objective.style_layer_weights.len() != objective.style_layers.len() {
        return Err(Error::Invalid(format!(
            "{} style layer weights given for {} style layers",
            objective.style_layer_weights.len(),
            objective.style_layers.len()
        )));
    }
    let weights = [
        ("content weight", objective.content_weight),
        ("style weight", objective.style_weight),
        ("tv weight", objective.tv_weight),
    ];
    for (what, w) in weights.into_iter().chain(
        objective
            .style_layer_weights
            .iter()
            .map(|&w| ("style layer weight", w)),
    ) {
        if !w.is_finite() || w < 0.0 {
            return Err(Error::Invalid(format!(
                "{what} must be a finite number >= 0, got {w}"
            )));
        }
    }
    if objective.content_layers.is_empty() && objective.style_layers.is_empty() {
        return Err(Error::Invalid(
            "give at least one content or style layer".into(),
        ));
    }
    Ok(())
}

/// The largest tensor (in bytes) that the iteration's graph holds for a `width` x `height`
/// image, by shape inference alone (no GPU work): what decides whether a size fits the
/// device's largest storage buffer binding.
pub fn largest_tensor_bytes(objective: &Objective, height: usize, width: usize) -> Result<u64> {
    let (g, _) = StyleProblem::build_graph(objective, height, width)?;
    Ok(g.nodes().iter().map(|n| n.shape.bytes()).max().unwrap_or(0))
}

impl StyleProblem {
    /// Computes the targets and compiles the plans for a `width` x `height` output.
    /// `styles` are (image, blend weight); the weights are normalised to sum to 1.
    /// `learning_rate` is Some for Adam (the update plan), None for evaluation only.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &Gpu,
        backbone: &ParamStore,
        objective: &Objective,
        content: &ImageData<'_>,
        styles: &[(ImageData<'_>, f32)],
        init: &[f32],
        learning_rate: Option<f32>,
    ) -> Result<Self> {
        check(objective)?;
        let (height, width) = (content.height, content.width);
        if init.len() != 3 * height * width {
            return Err(Error::Invalid(format!(
                "initial image has {} values, expected 3x{height}x{width}",
                init.len()
            )));
        }
        if styles.is_empty() && !objective.style_layers.is_empty() {
            return Err(Error::Invalid(
                "style layers given but no style image".into(),
            ));
        }
        let blend_total: f32 = styles.iter().map(|(_, w)| *w).sum();
        if styles.iter().any(|(_, w)| !w.is_finite() || *w < 0.0)
            || (!styles.is_empty() && blend_total <= 0.0)
        {
            return Err(Error::Invalid(
                "style blend weights must be >= 0 with a positive sum".into(),
            ));
        }

        // Targets, computed once.
        let (content_features, _) = forward_targets(
            gpu,
            backbone,
            objective,
            content,
            &objective.content_layers,
            &[],
        )?;
        let mut style_grams: Vec<Vec<f32>> = Vec::new();
        for (style, weight) in styles {
            let (_, grams) = forward_targets(
                gpu,
                backbone,
                objective,
                style,
                &[],
                &objective.style_layers,
            )?;
            let share = weight / blend_total;
            if style_grams.is_empty() {
                style_grams = grams
                    .iter()
                    .map(|gm| gm.iter().map(|v| v * share).collect())
                    .collect();
            } else {
                for (acc, gm) in style_grams.iter_mut().zip(&grams) {
                    for (a, v) in acc.iter_mut().zip(gm) {
                        *a += v * share;
                    }
                }
            }
        }
        let targets = Targets {
            content: content_features,
            style: style_grams,
        };

        let mut store = backbone.clone();
        let image = Tensor::from_f32(gpu, [1, 3, height, width], init)?;
        store.insert("image", image.clone());

        let (mut g, nodes) = Self::build_graph(objective, height, width)?;
        let grad_sq = {
            let sq = g.mul(nodes.grad, nodes.grad)?;
            g.sum(sq)?
        };
        let outputs = vec![nodes.content, nodes.style, nodes.tv, nodes.total, grad_sq];
        let mut inputs = Vec::new();
        for (id, t) in nodes.content_targets.iter().zip(&targets.content) {
            inputs.push((*id, t.clone()));
        }
        for (id, t) in nodes.style_targets.iter().zip(&targets.style) {
            inputs.push((*id, t.clone()));
        }

        let mut eval_outputs = outputs.clone();
        eval_outputs.push(nodes.grad);
        let mut eval_plan = Plan::compile(
            gpu,
            &g,
            &store,
            PlanSpec {
                outputs: eval_outputs,
                ..Default::default()
            },
        )?;
        for (id, data) in &inputs {
            eval_plan.write_input(gpu, *id, data)?;
        }
        let update_plan = match learning_rate {
            Some(lr) => {
                let mut adam = Adam::new(
                    gpu,
                    AdamConfig {
                        lr,
                        ..Default::default()
                    },
                )?;
                let optimizer: &mut dyn Optimizer = &mut adam;
                let spec = PlanSpec {
                    outputs,
                    updates: vec![(nodes.image, nodes.grad)],
                    optimizer: Some(optimizer),
                    after_update: vec![clamp_in_place(gpu, &image, 0.0, 1.0)?],
                    ..Default::default()
                };
                let mut plan = Plan::compile(gpu, &g, &store, spec)?;
                for (id, data) in &inputs {
                    plan.write_input(gpu, *id, data)?;
                }
                Some(plan)
            }
            None => None,
        };
        let summary = update_plan
            .as_ref()
            .unwrap_or(&eval_plan)
            .summary()
            .to_string();
        Ok(Self {
            height,
            width,
            image,
            update_plan,
            eval_plan,
            eval_inputs: inputs,
            summary,
        })
    }

    fn build_graph(
        objective: &Objective,
        height: usize,
        width: usize,
    ) -> Result<(Graph, LossNodes)> {
        let mut g = Graph::new();
        let image = g.param("image", [1, 3, height, width])?;
        let pre = g.channel_affine(image, objective.model.preprocess())?;
        let layers = union_layers(objective);
        let features = objective
            .model
            .features(&mut g, pre, objective.pooling, &layers)?;
        let feature = |name: &String| features[layers.iter().position(|l| l == name).unwrap()];

        let mut content_targets = Vec::new();
        let mut content_terms = Vec::new();
        for layer in &objective.content_layers {
            let f = feature(layer);
            let target = g.input(&format!("content_target.{layer}"), g.shape(f).clone());
            content_targets.push(target);
            content_terms.push(g.mse(f, target)?);
        }
        let mut style_targets = Vec::new();
        let mut style_terms = Vec::new();
        for (layer, &w) in objective
            .style_layers
            .iter()
            .zip(&objective.style_layer_weights)
        {
            let gram = g.gram(feature(layer))?;
            let target = g.input(&format!("style_target.{layer}"), g.shape(gram).clone());
            style_targets.push(target);
            let term = g.mse(gram, target)?;
            style_terms.push(g.scale(term, w)?);
        }
        let content = sum_terms(&mut g, &content_terms)?;
        let style = sum_terms(&mut g, &style_terms)?;
        let tv = g.total_variation(image)?;
        let weighted = [
            g.scale(content, objective.content_weight)?,
            g.scale(style, objective.style_weight)?,
            g.scale(tv, objective.tv_weight)?,
        ];
        let total = sum_terms(&mut g, &weighted)?;
        let grad = g.gradients(total, &[image])?[0];
        Ok((
            g,
            LossNodes {
                image,
                content,
                style,
                tv,
                total,
                grad,
                content_targets,
                style_targets,
            },
        ))
    }

    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// The compiled plan's summary (ops, FLOPs, memory).
    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// One Adam iteration: returns the losses at the image before the update.
    pub fn adam_step(&mut self, gpu: &Gpu) -> Result<Losses> {
        let plan = self
            .update_plan
            .as_mut()
            .ok_or_else(|| Error::Invalid("this problem was built without Adam".into()))?;
        let values = plan.step(gpu)?;
        losses_from(&values)
    }

    /// J and dJ/dx at the current image, without changing it.
    pub fn evaluate(&mut self, gpu: &Gpu) -> Result<(Losses, Vec<f32>)> {
        let mut values = self.eval_plan.step(gpu)?;
        let grad = values.pop().unwrap_or_default();
        Ok((losses_from(&values)?, grad))
    }

    pub fn image(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        self.image.to_vec(gpu)
    }

    pub fn set_image(&self, gpu: &Gpu, chw: &[f32]) -> Result<()> {
        self.image.write(gpu, chw)
    }

    /// Times each kernel of an iteration (`repeats` runs of each, medians), then whole
    /// iterations: what `--profile` prints. Changes the image (the update runs too).
    pub fn profile(&mut self, gpu: &Gpu, repeats: usize) -> Result<Profile> {
        match self.update_plan.as_mut() {
            Some(plan) => plan.profile(gpu, repeats),
            None => self.eval_plan.profile(gpu, repeats),
        }
    }

    /// Bytes uploaded as targets (for summaries).
    pub fn target_values(&self) -> usize {
        self.eval_inputs.iter().map(|(_, v)| v.len()).sum()
    }
}

struct LossNodes {
    image: NodeId,
    content: NodeId,
    style: NodeId,
    tv: NodeId,
    total: NodeId,
    grad: NodeId,
    content_targets: Vec<NodeId>,
    style_targets: Vec<NodeId>,
}

/// The sum of one-element terms (a zero constant when there are none).
fn sum_terms(g: &mut Graph, terms: &[NodeId]) -> Result<NodeId> {
    let Some((&first, rest)) = terms.split_first() else {
        return g.fill([1], 0.0);
    };
    let mut total = first;
    for &t in rest {
        total = g.add(total, t)?;
    }
    Ok(total)
}

fn losses_from(values: &[Vec<f32>]) -> Result<Losses> {
    let scalar = |i: usize| {
        values
            .get(i)
            .and_then(|v| v.first())
            .map(|&v| v as f64)
            .unwrap_or(f64::NAN)
    };
    let losses = Losses {
        content: scalar(0),
        style: scalar(1),
        tv: scalar(2),
        total: scalar(3),
        // A sum of squares: NaN stays NaN (f64::max would hide it).
        grad_norm: scalar(4).sqrt(),
    };
    if !losses.total.is_finite() || !losses.grad_norm.is_finite() {
        return Err(Error::Invalid(format!(
            "the loss became non-finite (content {}, style {}, tv {}): lower the learning rate or the weights",
            losses.content, losses.style, losses.tv
        )));
    }
    Ok(losses)
}
