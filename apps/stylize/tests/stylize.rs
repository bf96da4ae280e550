//! Style transfer end to end: the objective and its gradient against a float64 composition of
//! the reference ops, short Adam and L-BFGS runs, reproducibility, VGG weights from a file,
//! every bad input, and the two binaries.
use wgnn_reference::testing as common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use wgnn::nn::init::{FanMode, Init, Nonlinearity};
use wgnn::nn::ParamStore;
use wgnn::ops::activation::Activation;
use wgnn::ops::conv::ConvParams;
use wgnn::ops::pool::PoolParams;
use wgnn::rng::Rng;
use wgnn_models::imaging::preprocess::Preprocess;
use wgnn_models::imaging::resize::{fit_longest_side, resize_exact};
use wgnn_models::imaging::{io, RgbImage};
use wgnn_models::{Architecture, Pooling};
use wgnn_reference as r;
use wgnn_stylize::run::{self, InitKind, OptimizerKind, RunSummary, Silent, StyleConfig};
use wgnn_stylize::{ImageData, Objective, StyleProblem};

fn asset(name: &str) -> PathBuf {
    Path::new(env!("WGNN_ASSETS")).join(name)
}

/// A fresh, empty directory for one test under cargo's target/tmp (reused by the next run, so
/// runs do not pile up folders in the system temp dir).
fn scratch_dir(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("stylize-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn picture(name: &str, width: usize, height: usize) -> RgbImage {
    resize_exact(&io::load(asset(name)).unwrap(), width, height).unwrap()
}

// ---------------------------------------------------------------------------------------------
// A float64 SqueezeNet on a tape, built from the reference ops.

/// A float64 tensor and its shape.
type Value = (Vec<f64>, Vec<usize>);

enum Step {
    /// out = relu(conv(input) + bias), remembering the pre-activation.
    ConvRelu {
        prefix: String,
        params: ConvParams,
        input: usize,
        pre: Vec<f64>,
        out: usize,
    },
    Pool {
        params: PoolParams,
        input: usize,
        out: usize,
    },
    Concat {
        a: usize,
        b: usize,
        out: usize,
    },
}

struct Tape<'w> {
    weights: &'w HashMap<String, Value>,
    pooling: Pooling,
    values: Vec<Value>,
    steps: Vec<Step>,
}

impl<'w> Tape<'w> {
    fn new(weights: &'w HashMap<String, Value>, pooling: Pooling, input: Value) -> Self {
        Self {
            weights,
            pooling,
            values: vec![input],
            steps: Vec::new(),
        }
    }

    fn push(&mut self, value: Value) -> usize {
        self.values.push(value);
        self.values.len() - 1
    }

    fn conv_relu(&mut self, input: usize, prefix: &str, params: ConvParams) -> usize {
        let (w, ws) = &self.weights[&format!("{prefix}.weight")];
        let (b, _) = &self.weights[&format!("{prefix}.bias")];
        let (x, xs) = &self.values[input];
        let pre = r::conv::forward(x, xs, w, ws, Some(b), &params);
        let shape = r::conv::output_shape(xs, ws, &params);
        let out = self.push((r::activation::forward(Activation::Relu, &pre), shape));
        self.steps.push(Step::ConvRelu {
            prefix: prefix.to_string(),
            params,
            input,
            pre,
            out,
        });
        out
    }

    fn pool(&mut self, input: usize) -> usize {
        let params = PoolParams::new(&[3, 3]).stride(2).ceil_mode(true);
        let (x, xs) = &self.values[input];
        let value = match self.pooling {
            Pooling::Max => r::pool::max_pool(x, xs, &params),
            Pooling::Avg => r::pool::avg_pool(x, xs, &params),
        };
        let out = self.push(value);
        self.steps.push(Step::Pool { params, input, out });
        out
    }

    fn concat(&mut self, a: usize, b: usize) -> usize {
        let (va, sa) = &self.values[a];
        let (vb, sb) = &self.values[b];
        let values = r::concat::concat_channels(&[(va, sa), (vb, sb)]);
        let mut shape = sa.clone();
        shape[1] += sb[1];
        let out = self.push((values, shape));
        self.steps.push(Step::Concat { a, b, out });
        out
    }

    /// SqueezeNet v1.1's features on value 0; returns the value of each user layer (conv1,
    /// fire2, ..., fire9).
    fn squeezenet(&mut self) -> Vec<usize> {
        // (torchvision index, preceded by a pool)
        let fires = [
            (3, true),
            (4, false),
            (6, true),
            (7, false),
            (9, true),
            (10, false),
            (11, false),
            (12, false),
        ];
        let mut h = self.conv_relu(0, "features.0", ConvParams::new(2).stride(2));
        let mut layers = vec![h];
        for (index, pool_before) in fires {
            if pool_before {
                h = self.pool(h);
            }
            let p = format!("features.{index}");
            let s = self.conv_relu(h, &format!("{p}.squeeze"), ConvParams::new(2));
            let e1 = self.conv_relu(s, &format!("{p}.expand1x1"), ConvParams::new(2));
            let e3 = self.conv_relu(s, &format!("{p}.expand3x3"), ConvParams::new(2).padding(1));
            h = self.concat(e1, e3);
            layers.push(h);
        }
        layers
    }

    fn accumulate(grads: &mut [Option<Vec<f64>>], at: usize, g: Vec<f64>) {
        match &mut grads[at] {
            Some(existing) => existing.iter_mut().zip(g).for_each(|(e, v)| *e += v),
            slot => *slot = Some(g),
        }
    }

    /// Reverse pass: `seeds` are dLoss/dvalue for some values; returns dLoss/dvalue 0.
    fn backward(&self, mut grads: Vec<Option<Vec<f64>>>) -> Vec<f64> {
        grads.resize(self.values.len(), None);
        for step in self.steps.iter().rev() {
            match step {
                Step::ConvRelu {
                    prefix,
                    params,
                    input,
                    pre,
                    out,
                } => {
                    let Some(g) = grads[*out].take() else {
                        continue;
                    };
                    let dpre = r::activation::backward(Activation::Relu, pre, &g);
                    let (w, ws) = &self.weights[&format!("{prefix}.weight")];
                    let xs = &self.values[*input].1;
                    let dx = r::conv::backward_input(&dpre, w, ws, xs, params);
                    Self::accumulate(&mut grads, *input, dx);
                }
                Step::Pool { params, input, out } => {
                    let Some(g) = grads[*out].take() else {
                        continue;
                    };
                    let (x, xs) = &self.values[*input];
                    let dx = match self.pooling {
                        Pooling::Max => r::pool::max_pool_backward(x, xs, params, &g),
                        Pooling::Avg => r::pool::avg_pool_backward(xs, params, &g),
                    };
                    Self::accumulate(&mut grads, *input, dx);
                }
                Step::Concat { a, b, out } => {
                    let Some(g) = grads[*out].take() else {
                        continue;
                    };
                    let shape = &self.values[*out].1;
                    let ca = self.values[*a].1[1];
                    let cb = self.values[*b].1[1];
                    let ga = r::concat::slice_channels(&g, shape, 0, ca);
                    let gb = r::concat::slice_channels(&g, shape, ca, cb);
                    Self::accumulate(&mut grads, *a, ga);
                    Self::accumulate(&mut grads, *b, gb);
                }
            }
        }
        grads[0]
            .take()
            .unwrap_or_else(|| vec![0.0; self.values[0].0.len()])
    }
}

/// RGB [0, 1] CHW -> SqueezeNet's input, with the f32 constants the GPU uses.
fn preprocess(x: &[f64]) -> Vec<f64> {
    let plane = x.len() / 3;
    let mut out = Vec::with_capacity(x.len());
    for a in Preprocess::SQUEEZENET.channel_affine() {
        let source = &x[a.source * plane..(a.source + 1) * plane];
        out.extend(source.iter().map(|&v| a.scale as f64 * v + a.offset as f64));
    }
    out
}

fn preprocess_backward(d: &[f64]) -> Vec<f64> {
    let plane = d.len() / 3;
    let mut dx = vec![0.0; d.len()];
    for (c, a) in Preprocess::SQUEEZENET.channel_affine().iter().enumerate() {
        for i in 0..plane {
            dx[a.source * plane + i] += a.scale as f64 * d[c * plane + i];
        }
    }
    dx
}

fn layer_index(name: &str) -> usize {
    Architecture::SqueezeNet
        .layer_names()
        .iter()
        .position(|l| l == name)
        .unwrap()
}

/// Activations of every user layer of the float64 SqueezeNet on an RGB image.
fn features64(weights: &HashMap<String, Value>, pooling: Pooling, image: &RgbImage) -> Vec<Value> {
    let x = to_f64(&image.data);
    let mut tape = Tape::new(
        weights,
        pooling,
        (preprocess(&x), vec![1, 3, image.height, image.width]),
    );
    let layers = tape.squeezenet();
    layers.iter().map(|&l| tape.values[l].clone()).collect()
}

fn gram64((f, shape): &Value) -> Vec<f64> {
    let hw = shape[2] * shape[3];
    r::gram::gram(f, shape[0], shape[1], hw)
}

/// (J_c, J_s, J_tv, J) and dJ/dx in float64, by the README's definitions.
fn reference_objective(
    weights: &HashMap<String, Value>,
    objective: &Objective,
    content: &RgbImage,
    style: &RgbImage,
    x: &[f64],
    (height, width): (usize, usize),
) -> ([f64; 4], Vec<f64>) {
    let content_features = features64(weights, objective.pooling, content);
    let style_features = features64(weights, objective.pooling, style);
    let mut tape = Tape::new(
        weights,
        objective.pooling,
        (preprocess(x), vec![1, 3, height, width]),
    );
    let layers = tape.squeezenet();
    let mut seeds: Vec<Option<Vec<f64>>> = vec![None; tape.values.len()];
    let (cw, sw, tw) = (
        objective.content_weight as f64,
        objective.style_weight as f64,
        objective.tv_weight as f64,
    );
    let mut j_c = 0.0;
    for name in &objective.content_layers {
        let at = layers[layer_index(name)];
        let f = &tape.values[at].0;
        let target = &content_features[layer_index(name)].0;
        j_c += r::loss::mse(f, target);
        Tape::accumulate(&mut seeds, at, r::loss::mse_backward(f, target, cw).0);
    }
    let mut j_s = 0.0;
    for (name, &w) in objective
        .style_layers
        .iter()
        .zip(&objective.style_layer_weights)
    {
        let at = layers[layer_index(name)];
        let value = &tape.values[at];
        let gram = gram64(value);
        let target = gram64(&style_features[layer_index(name)]);
        j_s += w as f64 * r::loss::mse(&gram, &target);
        let dgram = r::loss::mse_backward(&gram, &target, sw * w as f64).0;
        let shape = &value.1;
        let df = r::gram::gram_backward(&value.0, 1, shape[1], shape[2] * shape[3], &dgram);
        Tape::accumulate(&mut seeds, at, df);
    }
    let dims = [1, 3, height, width];
    let j_tv = r::loss::total_variation(x, &dims);
    let mut grad = preprocess_backward(&tape.backward(seeds));
    let dtv = r::loss::total_variation_backward(x, &dims, tw);
    grad.iter_mut().zip(dtv).for_each(|(g, d)| *g += d);
    ([j_c, j_s, j_tv, cw * j_c + sw * j_s + tw * j_tv], grad)
}

fn host_weights(gpu: &wgnn::Gpu, store: &ParamStore) -> HashMap<String, Value> {
    store
        .to_host(gpu)
        .unwrap()
        .into_iter()
        .map(|(name, shape, values)| (name, (to_f64(&values), shape.dims().to_vec())))
        .collect()
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

fn relative(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-30)
}

#[test]
fn losses_and_gradient_match_a_float64_reference() {
    let gpu = gpu();
    let store = wgnn_assets::backbone_weights(gpu, Architecture::SqueezeNet, None).unwrap();
    let weights = host_weights(gpu, &store);
    let (height, width) = (48, 48);
    let content = picture("chelsea.png", width, height);
    // The style at another size and aspect: Grams do not depend on it.
    let style = picture("starry_night.jpg", 40, 52);
    let init = picture("coffee.png", width, height);
    let x = to_f64(&init.data);
    for pooling in [Pooling::Max, Pooling::Avg] {
        let objective = Objective {
            model: Architecture::SqueezeNet,
            pooling,
            content_layers: vec!["fire3".into(), "fire5".into()],
            style_layers: vec![
                "conv1".into(),
                "fire2".into(),
                "fire4".into(),
                "fire7".into(),
            ],
            style_layer_weights: vec![1.0, 0.5, 2.0, 1.5],
            content_weight: 2.0,
            style_weight: 300.0,
            tv_weight: 5.0,
        };
        let (expected, expected_grad) =
            reference_objective(&weights, &objective, &content, &style, &x, (height, width));

        // The composed reference gradient agrees with central differences of the float64 J.
        let mut rng = Rng::new(11);
        let direction = random_f64(&mut rng, x.len());
        let eps = 1e-7;
        let at = |t: f64| -> f64 {
            let moved: Vec<f64> = x.iter().zip(&direction).map(|(a, d)| a + t * d).collect();
            reference_objective(
                &weights,
                &objective,
                &content,
                &style,
                &moved,
                (height, width),
            )
            .0[3]
        };
        let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
        let analytic = dot(&expected_grad, &direction);
        assert!(
            relative(analytic, numeric) < 1e-5,
            "{pooling:?}: reference dJ/dx along a direction {analytic} vs finite differences {numeric}"
        );

        let mut problem = StyleProblem::new(
            gpu,
            &store,
            &objective,
            &ImageData::from(&content),
            &[(ImageData::from(&style), 1.0)],
            &init.data,
            None,
        )
        .unwrap();
        let (losses, grad) = problem.evaluate(gpu).unwrap();
        let got = [losses.content, losses.style, losses.tv, losses.total];
        for (name, (g, e)) in ["J_c", "J_s", "J_tv", "J"]
            .iter()
            .zip(got.iter().zip(expected))
        {
            assert!(
                relative(*g, e) < 1e-3,
                "{pooling:?}: {name} gpu {g} vs float64 {e}"
            );
        }
        let grad = to_f64(&grad);
        let expected_norm = norm(&expected_grad);
        assert!(
            relative(losses.grad_norm, expected_norm) < 1e-3,
            "{pooling:?}: |dJ/dx| logged {} vs float64 {expected_norm}",
            losses.grad_norm
        );
        assert!(
            relative(norm(&grad), expected_norm) < 1e-3,
            "{pooling:?}: |dJ/dx| {} vs float64 {expected_norm}",
            norm(&grad)
        );
        // Directional derivatives along random directions, relative to |g| |v|.
        for seed in 0..3 {
            let v = random_f64(&mut Rng::new(100 + seed), x.len());
            let scale = expected_norm * norm(&v);
            let (a, b) = (dot(&grad, &v), dot(&expected_grad, &v));
            assert!(
                (a - b).abs() / scale < 1e-4,
                "{pooling:?}: dJ/dx . v gpu {a} vs float64 {b} (|g||v| = {scale})"
            );
        }
        // And element by element, against the largest component.
        let largest = expected_grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        assert_close(
            "dJ/dx",
            &to_f32(&grad),
            &expected_grad,
            1e-3,
            1e-3 * largest,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Runs through the library.

fn config(dir: &Path, size: usize, iterations: usize) -> StyleConfig {
    StyleConfig {
        output: dir.join("out.png"),
        size,
        iterations,
        ..StyleConfig::default()
    }
}

fn totals(summary: &RunSummary) -> Vec<f64> {
    summary.records.iter().map(|r| r.losses.total).collect()
}

#[test]
fn a_short_adam_run_lowers_the_loss_and_writes_the_picture() {
    let dir = scratch_dir("adam");
    let mut cfg = config(&dir, 64, 30);
    cfg.log_json = Some(dir.join("log.jsonl"));
    let summary = run::run(gpu(), &cfg, &mut Silent).unwrap();
    let j = totals(&summary);
    assert_eq!(j.len(), 31, "one record per image x_0..x_30");
    assert!(
        j[30] * 2.0 <= j[0],
        "J went from {} to {} only",
        j[0],
        j[30]
    );

    let saved = io::load(&cfg.output).unwrap();
    assert_eq!((saved.width, saved.height), (64, 43));
    assert_eq!(saved.to_rgb8(), summary.image.to_rgb8());

    let log = std::fs::read_to_string(dir.join("log.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 31);
    for (i, (line, record)) in lines.iter().zip(&summary.records).enumerate() {
        assert_eq!(line["iter"], i);
        for key in ["content", "style", "tv", "total", "grad_norm", "ms"] {
            assert!(line[key].is_f64(), "line {i} lacks {key}: {line}");
        }
        assert_eq!(line["total"].as_f64().unwrap(), record.losses.total);
    }
}

#[test]
fn the_same_seed_gives_the_same_picture() {
    let dir = scratch_dir("seed");
    let run_with = |seed: u64, name: &str| {
        let mut cfg = config(&dir, 40, 4);
        cfg.init = InitKind::Noise;
        cfg.seed = seed;
        cfg.output = dir.join(name);
        run::run(gpu(), &cfg, &mut Silent).unwrap()
    };
    let a = run_with(7, "a.png");
    let b = run_with(7, "b.png");
    let c = run_with(8, "c.png");
    assert_eq!(a.image.data, b.image.data, "same seed, different pictures");
    assert_eq!(totals(&a), totals(&b), "same seed, different losses");
    assert_eq!(
        std::fs::read(dir.join("a.png")).unwrap(),
        std::fs::read(dir.join("b.png")).unwrap()
    );
    assert_ne!(a.image.data, c.image.data, "the seed changes nothing");
}

#[test]
fn lbfgs_never_increases_the_loss() {
    let dir = scratch_dir("lbfgs");
    let mut cfg = config(&dir, 40, 8);
    cfg.optimizer = OptimizerKind::Lbfgs;
    let summary = run::run(gpu(), &cfg, &mut Silent).unwrap();
    let j = totals(&summary);
    assert!(j.len() >= 4, "L-BFGS stopped at once: {j:?}");
    for pair in j.windows(2) {
        assert!(pair[1] <= pair[0], "J increased: {j:?}");
    }
    assert!(j.last().unwrap() * 2.0 < j[0], "J barely moved: {j:?}");
    assert!(cfg.output.exists());
}

#[test]
fn zero_iterations_logs_the_start_and_changes_nothing() {
    let dir = scratch_dir("zero");
    let mut cfg = config(&dir, 48, 0);
    cfg.log_json = Some(dir.join("log.jsonl"));
    let summary = run::run(gpu(), &cfg, &mut Silent).unwrap();
    let log = std::fs::read_to_string(dir.join("log.jsonl")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 1, "{log}");
    let line: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(line["iter"], 0);
    assert_eq!(
        line["content"].as_f64().unwrap(),
        0.0,
        "content init: J_c = 0"
    );
    assert!(line["style"].as_f64().unwrap() > 0.0);
    assert!(line["grad_norm"].as_f64().unwrap() > 0.0);
    // No update: the saved picture is the starting image, the content at --size.
    let content = fit_longest_side(&wgnn_assets::default_content().unwrap(), 48).unwrap();
    assert_eq!(summary.image.to_rgb8(), content.to_rgb8());
    assert_eq!(io::load(&cfg.output).unwrap(), content);
}

#[test]
fn multi_scale_runs_coarse_to_fine_and_snapshots() {
    let dir = scratch_dir("scales");
    let mut cfg = config(&dir, 80, 2);
    cfg.scales = 2;
    cfg.save_every = 2;
    cfg.preserve_colors = true;
    cfg.log_json = Some(dir.join("log.jsonl"));
    let summary = run::run(gpu(), &cfg, &mut Silent).unwrap();
    let scales: Vec<(usize, usize)> = summary.records.iter().map(|r| (r.scale, r.iter)).collect();
    assert_eq!(scales, [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]);
    assert_eq!((summary.image.width, summary.image.height), (80, 53));
    assert!(dir.join("out_scale1_iter0002.png").exists());
    assert!(dir.join("out_scale2_iter0002.png").exists());
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(dir.join("log.jsonl"))
            .unwrap()
            .lines()
            .nth(3)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["scale"], 1);
    assert_eq!(first["iter"], 0);
}

// ---------------------------------------------------------------------------------------------
// VGG from a safetensors file.

#[test]
fn vgg16_weights_from_a_file_drive_a_style_step() {
    let gpu = gpu();
    let dir = scratch_dir("vgg");
    let mut store = ParamStore::new();
    let mut rng = Rng::new(3);
    for (name, shape) in Architecture::Vgg16.parameter_shapes() {
        let init = if name.ends_with("bias") {
            Init::Uniform {
                low: -0.01,
                high: 0.01,
            }
        } else {
            Init::KaimingUniform {
                mode: FanMode::FanIn,
                nonlinearity: Nonlinearity::Relu,
            }
        };
        store
            .insert_init(gpu, &name, shape, init, &mut rng)
            .unwrap();
    }
    let weights = dir.join("vgg16.safetensors");
    store
        .save_safetensors(gpu, &weights, &Default::default())
        .unwrap();

    let mut cfg = config(&dir, 32, 2);
    cfg.model = Architecture::Vgg16;
    cfg.weights = Some(weights.clone());
    let summary = run::run(gpu, &cfg, &mut Silent).unwrap();
    let j = totals(&summary);
    assert_eq!(j.len(), 3);
    assert!(j.iter().all(|v| v.is_finite()) && summary.records[0].losses.style > 0.0);
    assert!(j[2] < j[0], "J did not go down: {j:?}");
    assert!(cfg.output.exists());

    // The same file is refused for VGG19, naming a tensor it lacks.
    let mut cfg19 = config(&dir, 32, 1);
    cfg19.model = Architecture::Vgg19;
    cfg19.weights = Some(weights);
    cfg19.output = dir.join("vgg19.png");
    let e = run::run(gpu, &cfg19, &mut Silent).unwrap_err().to_string();
    assert!(
        e.contains("features.16.weight") && e.contains("missing"),
        "{e}"
    );
    assert!(!cfg19.output.exists());
}

// ---------------------------------------------------------------------------------------------
// Bad input: an error naming the problem, and no output file.

fn assert_refused(test: &str, change: impl FnOnce(&mut StyleConfig, &Path), expected: &[&str]) {
    let dir = scratch_dir(test);
    let mut cfg = config(&dir, 48, 3);
    cfg.log_json = Some(dir.join("log.jsonl"));
    change(&mut cfg, &dir);
    let e = match run::run(gpu(), &cfg, &mut Silent) {
        Ok(_) => panic!("{test}: accepted"),
        Err(e) => e.to_string(),
    };
    for part in expected {
        assert!(e.contains(part), "{test}: `{e}` does not mention `{part}`");
    }
    assert!(!cfg.output.exists(), "{test}: an output file was written");
    assert!(
        !dir.join("log.jsonl").exists(),
        "{test}: a log file was written"
    );
}

/// A SqueezeNet weights file with one tensor removed or reshaped.
fn damaged_weights(dir: &Path, remove: &str, reshape: Option<&[usize]>) -> PathBuf {
    let gpu = gpu();
    let expected = Architecture::SqueezeNet.parameter_shapes();
    let kept: Vec<_> = expected.into_iter().filter(|(n, _)| n != remove).collect();
    let mut store = ParamStore::load_for_bytes(
        gpu,
        Path::new("embedded"),
        wgnn_assets::SQUEEZENET1_1_SAFETENSORS,
        &kept,
    )
    .unwrap();
    if let Some(shape) = reshape {
        let n = shape.iter().product::<usize>();
        store
            .insert_f32(gpu, remove, shape, &vec![0.01; n])
            .unwrap();
    }
    let path = dir.join("weights.safetensors");
    store
        .save_safetensors(gpu, &path, &Default::default())
        .unwrap();
    path
}

#[test]
fn missing_and_corrupt_images_are_named() {
    assert_refused(
        "missing-content",
        |c, d| c.content = Some(d.join("nope.png")),
        &["nope.png", "no such file"],
    );
    assert_refused(
        "corrupt-style",
        |c, d| {
            let path = d.join("broken.png");
            let mut bytes = std::fs::read(asset("chelsea.png")).unwrap();
            bytes.truncate(bytes.len() / 3);
            std::fs::write(&path, bytes).unwrap();
            c.styles = vec![asset("starry_night.jpg"), path];
        },
        &["broken.png", "corrupt"],
    );
    assert_refused(
        "not-an-image",
        |c, _| c.init = InitKind::Image(asset("SOURCES.md")),
        &["SOURCES.md", "not an image"],
    );
    assert_refused(
        "bad-output",
        |c, d| c.output = d.join("out.gif"),
        &["out.gif", ".gif"],
    );
    assert_refused(
        "no-directory",
        |c, d| c.output = d.join("missing").join("out.png"),
        &["does not exist"],
    );
    assert_refused(
        "no-log-directory",
        |c, d| c.log_json = Some(d.join("missing").join("log.jsonl")),
        &["log.jsonl", "does not exist"],
    );
}

#[test]
fn unknown_layers_list_the_valid_ones() {
    assert_refused(
        "layer",
        |c, _| c.style_layers = Some(vec!["conv1".into(), "fire10".into()]),
        &["fire10", "conv1, fire2, fire3", "fire9"],
    );
    assert_refused(
        "vgg-layer",
        |c, d| {
            c.model = Architecture::Vgg19;
            c.weights = Some(d.join("unused.safetensors"));
            c.content_layers = Some(vec!["relu4_5".into()]);
        },
        &["relu4_5", "relu4_4", "pool5"],
    );
}

#[test]
fn damaged_weight_files_name_the_tensor() {
    assert_refused(
        "missing-tensor",
        |c, d| c.weights = Some(damaged_weights(d, "features.7.expand3x3.weight", None)),
        &["features.7.expand3x3.weight", "missing"],
    );
    assert_refused(
        "wrong-shape",
        |c, d| {
            c.weights = Some(damaged_weights(
                d,
                "features.0.weight",
                Some(&[64, 3, 5, 5]),
            ))
        },
        &["features.0.weight", "[64, 3, 5, 5]", "[64, 3, 3, 3]"],
    );
    assert_refused(
        "no-vgg-weights",
        |c, _| c.model = Architecture::Vgg16,
        &["vgg16", "--weights"],
    );
}

#[test]
fn sizes_beyond_the_device_name_the_largest_that_fits() {
    let gpu = gpu();
    let limit = gpu
        .limits
        .max_storage_buffer_binding_size
        .min(gpu.limits.max_buffer_size);
    // conv1's output alone holds 64 * (size / 2)^2 * (300 / 451) floats.
    let size = (2.0 * (limit as f64 * 451.0 / 300.0 / 256.0).sqrt()) as usize + 64;
    assert_refused(
        "size",
        |c, _| c.size = size,
        &[&format!("--size {size}"), "the largest --size that fits is"],
    );
    let dir = scratch_dir("size-value");
    let mut cfg = config(&dir, size, 1);
    let e = run::run(gpu, &cfg, &mut Silent).unwrap_err().to_string();
    let largest: usize = e
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no size at the end of `{e}`"));
    // The size named fits and one more does not, by the same shape inference.
    let objective = run::objective(&cfg).unwrap();
    let bytes = |n: usize| {
        let (w, h) = wgnn_models::imaging::resize::fit_longest_side_size(451, 300, n).unwrap();
        let style = wgnn_models::imaging::resize::fit_longest_side_size(752, 600, n).unwrap();
        wgnn_stylize::largest_tensor_bytes(&objective, h, w)
            .unwrap()
            .max(wgnn_stylize::largest_tensor_bytes(&objective, style.1, style.0).unwrap())
    };
    assert!(bytes(largest) <= limit && bytes(largest + 1) > limit, "{e}");
    cfg.size = 20;
    let e = run::run(gpu, &cfg, &mut Silent).unwrap_err().to_string();
    assert!(e.contains("too small") && e.contains("37"), "{e}");
    assert!(!cfg.output.exists());
}

#[test]
fn nan_and_negative_numbers_are_refused() {
    type Change = fn(&mut StyleConfig);
    let cases: [(&str, Change, &str); 8] = [
        (
            "content-nan",
            |c| c.content_weight = f32::NAN,
            "--content-weight",
        ),
        ("style-neg", |c| c.style_weight = -1.0, "--style-weight"),
        ("tv-inf", |c| c.tv_weight = f32::INFINITY, "--tv-weight"),
        (
            "layer-weight",
            |c| c.style_layer_weights = Some(vec![1.0, 1.0, f32::NAN, 1.0, 1.0]),
            "--style-layer-weights",
        ),
        (
            "blend",
            |c| c.style_blend_weights = Some(vec![-0.5]),
            "--style-blend-weights",
        ),
        ("lr", |c| c.learning_rate = 0.0, "--learning-rate"),
        ("lr-nan", |c| c.learning_rate = f32::NAN, "--learning-rate"),
        ("style-scale", |c| c.style_scale = -2.0, "--style-scale"),
    ];
    for (name, change, flag) in cases {
        assert_refused(name, |c, _| change(c), &[flag]);
    }
}

// ---------------------------------------------------------------------------------------------
// The binaries.

#[test]
fn stylize_binary_documents_defaults_and_refuses_bad_input() {
    let help = Command::new(env!("CARGO_BIN_EXE_stylize"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for flag in [
        "--content",
        "--style",
        "--style-blend-weights",
        "--output",
        "--size",
        "--style-scale",
        "--model",
        "--weights",
        "--content-layers",
        "--style-layers",
        "--style-layer-weights",
        "--content-weight",
        "--style-weight",
        "--tv-weight",
        "--iterations",
        "--optimizer",
        "--learning-rate",
        "--init",
        "--seed",
        "--pooling",
        "--preserve-colors",
        "--scales",
        "--save-every",
        "--log-json",
        "--profile",
        "[default: stylized.png]",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    let dir = scratch_dir("binary");
    let output = dir.join("out.png");
    let run = Command::new(env!("CARGO_BIN_EXE_stylize"))
        .args(["--style-weight", "nan", "--output"])
        .arg(&output)
        .output()
        .unwrap();
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("--style-weight"), "{stderr}");
    assert!(!output.exists());
}

/// `--profile` prints the kernels of an iteration: every row's kernel is one the step runs, the
/// convolutions among them, and the whole iteration's time beside the kernels'.
#[test]
fn stylize_profile_prints_the_kernels_of_an_iteration() {
    let dir = scratch_dir("profile");
    let output = dir.join("out.png");
    let run = Command::new(env!("CARGO_BIN_EXE_stylize"))
        .args([
            "--size",
            "40",
            "--iterations",
            "2",
            "--quiet",
            "--profile",
            "--output",
        ])
        .arg(&output)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(output.exists());
    for needle in [
        "GPU ms",
        "GFLOP/s",
        "conv",
        "gram",
        "optim::adam",
        "a whole step takes",
    ] {
        assert!(
            stdout.contains(needle),
            "`{needle}` missing from:\n{stdout}"
        );
    }
}

/// `WGNN_GEMM_VARIANT` forces one GEMM design: a name the engine does not know is refused with
/// the names it knows, and `tiled` (on every device) runs.
#[test]
fn wgnn_gemm_variant_forces_a_design_or_names_the_choices() {
    let dir = scratch_dir("forced-variant");
    let output = dir.join("out.png");
    let run = |variant: &str| {
        Command::new(env!("CARGO_BIN_EXE_stylize"))
            .env("WGNN_GEMM_VARIANT", variant)
            .args(["--size", "40", "--iterations", "1", "--quiet", "--output"])
            .arg(&output)
            .output()
            .unwrap()
    };
    let bogus = run("fastest");
    assert!(!bogus.status.success());
    let stderr = String::from_utf8_lossy(&bogus.stderr);
    assert!(
        stderr.contains("WGNN_GEMM_VARIANT")
            && stderr.contains("tiled")
            && stderr.contains("subgroup"),
        "{stderr}"
    );
    assert!(!output.exists());
    let tiled = run("tiled");
    assert!(
        tiled.status.success(),
        "{}",
        String::from_utf8_lossy(&tiled.stderr)
    );
    assert!(output.exists());
}
