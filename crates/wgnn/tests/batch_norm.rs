//! Batch normalisation against the float64 reference: the statistics, the normalisation with
//! batch and running statistics, every gradient (each op alone and the training-mode
//! composition), the running statistics over two plan steps, and folding into a convolution.
use wgnn_reference::testing as common;

use common::*;
use wgnn::nn::ParamStore;
use wgnn::ops::batch_norm::{
    fold_into_conv, running_stats_update, BatchNormApply, BatchNormGradSums, BatchStats,
    BatchStatsBackward, FrozenBatchNorm, Statistics, TrackRunningStats, BATCH_NORM_EPS,
    BATCH_NORM_MOMENTUM, CHUNK,
};
use wgnn::ops::conv::ConvParams;
use wgnn::optim::{Sgd, SgdConfig};
use wgnn::rng::Rng;
use wgnn::{Graph, Plan, PlanSpec, Shape};
use wgnn_reference::batch_norm as reference;

const EPS: f64 = BATCH_NORM_EPS as f64;

/// Odd sizes of every rank, batch > 1: spatial sizes that are and are not multiples of 4 (the
/// vec4 and scalar pointwise kernels), and channels longer than `CHUNK` (two-pass reductions).
fn shapes() -> Vec<Vec<usize>> {
    vec![
        vec![3, 5, 7, 9],
        vec![3, 5, 4, 6],
        vec![4, 3, 11],
        vec![2, 3, 12],
        vec![2, 3, 3, 5, 3],
        vec![2, 2, 3, 2, 4],
        vec![7, 5],
        vec![3, 2, 29, 31],
    ]
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

fn positive(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.range(0.2, 1.5)).collect()
}

/// The largest magnitude of `v`: a floor for values that are differences of larger terms.
fn scale_of(v: &[f64]) -> f64 {
    v.iter().fold(0.0f64, |m, x| m.max(x.abs()))
}

#[test]
fn reference_backward_matches_finite_differences() {
    let mut rng = Rng::new(1);
    for shape in [vec![3, 2, 5], vec![2, 3, 2, 1, 3]] {
        let (n, c) = (numel(&shape), shape[1]);
        let x = random_nonzero(&mut rng, n);
        let up = random_f64(&mut rng, n);
        let up_stats = random_f64(&mut rng, 2 * c);
        let (mean, var) = (random_f64(&mut rng, c), positive(&mut rng, c));
        let gamma = random_nonzero(&mut rng, c);
        let beta = random_f64(&mut rng, c);
        let what = |name: &str| format!("{name} {shape:?}");

        let f = |v: &[f64]| dot(&reference::batch_stats(v, &shape), &up_stats);
        let dx = reference::batch_stats_backward(&x, &shape, &up_stats);
        assert_gradient(&what("batch_stats"), &f, &x, &dx);

        let grads = reference::apply_backward(&x, &shape, &mean, &var, &gamma, EPS, &up);
        let apply = |x: &[f64], mean: &[f64], var: &[f64], gamma: &[f64], beta: &[f64]| {
            dot(
                &reference::apply(x, &shape, mean, var, gamma, beta, EPS),
                &up,
            )
        };
        let f = |v: &[f64]| apply(v, &mean, &var, &gamma, &beta);
        assert_gradient(&what("apply dx"), &f, &x, &grads.dx);
        let f = |v: &[f64]| apply(&x, v, &var, &gamma, &beta);
        assert_gradient(&what("apply dmean"), &f, &mean, &grads.dmean);
        let f = |v: &[f64]| apply(&x, &mean, v, &gamma, &beta);
        assert_gradient(&what("apply dvar"), &f, &var, &grads.dvar);
        let f = |v: &[f64]| apply(&x, &mean, &var, v, &beta);
        assert_gradient(&what("apply dgamma"), &f, &gamma, &grads.dgamma);
        let f = |v: &[f64]| apply(&x, &mean, &var, &gamma, v);
        assert_gradient(&what("apply dbeta"), &f, &beta, &grads.dbeta);

        let (dx, dgamma, dbeta) = reference::batch_norm_backward(&x, &shape, &gamma, EPS, &up);
        let train = |x: &[f64], gamma: &[f64], beta: &[f64]| {
            dot(&reference::batch_norm(x, &shape, gamma, beta, EPS), &up)
        };
        let f = |v: &[f64]| train(v, &gamma, &beta);
        assert_gradient(&what("batch_norm dx"), &f, &x, &dx);
        let f = |v: &[f64]| train(&x, v, &beta);
        assert_gradient(&what("batch_norm dgamma"), &f, &gamma, &dgamma);
        let f = |v: &[f64]| train(&x, &gamma, v);
        assert_gradient(&what("batch_norm dbeta"), &f, &beta, &dbeta);
    }
}

#[test]
fn batch_stats_match_reference() {
    let mut rng = Rng::new(2);
    let mut all = shapes();
    // More chunks per channel than stats_finish has invocations.
    all.push(vec![2, 2, 300_001]);
    for shape in all {
        let x = random_nonzero(&mut rng, numel(&shape));
        let tx = tensor(&shape, &x);
        let stats = eval(&BatchStats, &[&tx]);
        assert_close(
            &format!("batch_stats {shape:?}"),
            &stats,
            &reference::batch_stats(&x, &shape),
            1e-4,
            1e-3,
        );
        assert_eq!(stats, eval(&BatchStats, &[&tx]), "deterministic {shape:?}");
    }
}

#[test]
fn batch_stats_keep_their_precision_far_from_zero() {
    // Values 1000 +- 1: a sum of squares in f32 would lose the variance entirely.
    let mut rng = Rng::new(3);
    for shape in [vec![3, 4, 7, 9], vec![2, 3, 40, 31]] {
        let x: Vec<f64> = random_nonzero(&mut rng, numel(&shape))
            .iter()
            .map(|v| 1000.0 + v)
            .collect();
        let stats = eval(&BatchStats, &[&tensor(&shape, &x)]);
        let expect = reference::batch_stats(&x, &shape);
        let c = shape[1];
        assert_close(
            &format!("mean {shape:?}"),
            &stats[..c],
            &expect[..c],
            1e-6,
            1.0,
        );
        // x itself is rounded to f32 (ulp 6e-5 at 1000): judge the variance on its inputs.
        let rounded: Vec<f64> = x.iter().map(|&v| v as f32 as f64).collect();
        let expect = reference::batch_stats(&rounded, &shape);
        assert_close(
            &format!("var {shape:?}"),
            &stats[c..],
            &expect[c..],
            1e-3,
            1e-3,
        );
    }
}

#[test]
fn apply_with_batch_and_running_statistics_matches_reference() {
    let mut rng = Rng::new(4);
    for shape in shapes() {
        let c = shape[1];
        let x = random_nonzero(&mut rng, numel(&shape));
        let (mean, var) = (random_f64(&mut rng, c), positive(&mut rng, c));
        let gamma = random_nonzero(&mut rng, c);
        let beta = random_f64(&mut rng, c);
        let expect = reference::apply(&x, &shape, &mean, &var, &gamma, &beta, EPS);
        let (tx, tgamma, tbeta) = (
            tensor(&shape, &x),
            tensor(&[c], &gamma),
            tensor(&[c], &beta),
        );
        let stats = tensor(&[2, c], &[mean.clone(), var.clone()].concat());
        let op = BatchNormApply {
            eps: BATCH_NORM_EPS,
            statistics: Statistics::Batch,
        };
        let y = eval(&op, &[&tx, &stats, &tgamma, &tbeta]);
        assert_close(&format!("apply {shape:?}"), &y, &expect, 1e-4, 1e-3);
        let op = BatchNormApply {
            eps: BATCH_NORM_EPS,
            statistics: Statistics::Running,
        };
        let (tmean, tvar) = (tensor(&[c], &mean), tensor(&[c], &var));
        let y = eval(&op, &[&tx, &tmean, &tvar, &tgamma, &tbeta]);
        assert_close(&format!("inference {shape:?}"), &y, &expect, 1e-4, 1e-3);
    }
}

#[test]
fn batch_stats_backward_matches_reference() {
    let mut rng = Rng::new(5);
    for shape in shapes() {
        let c = shape[1];
        let x = random_nonzero(&mut rng, numel(&shape));
        let dstats = random_f64(&mut rng, 2 * c);
        let stats = reference::batch_stats(&x, &shape);
        let inputs = [
            &tensor(&shape, &x),
            &tensor(&[2, c], &stats),
            &tensor(&[2, c], &dstats),
        ];
        let dx = eval(&BatchStatsBackward, &inputs);
        let expect = reference::batch_stats_backward(&x, &shape, &dstats);
        let floor = 1e-3 * scale_of(&expect);
        assert_close(&format!("{shape:?}"), &dx, &expect, 1e-4, floor);
        // Through the graph: BatchStats' backward rule.
        let (y, grads) = graph_vjp(&[(&shape, &x)], &dstats, &|g, ids| {
            g.apply(BatchStats, &[ids[0]]).unwrap()
        });
        assert_close(&format!("graph stats {shape:?}"), &y, &stats, 1e-4, 1e-3);
        assert_close(&format!("graph {shape:?}"), &grads[0], &expect, 1e-4, floor);
    }
}

#[test]
fn apply_backward_through_the_graph_matches_reference() {
    let mut rng = Rng::new(6);
    for shape in shapes() {
        let c = shape[1];
        let x = random_nonzero(&mut rng, numel(&shape));
        let up = random_f64(&mut rng, numel(&shape));
        let (mean, var) = (random_f64(&mut rng, c), positive(&mut rng, c));
        let gamma = random_nonzero(&mut rng, c);
        let beta = random_f64(&mut rng, c);
        let expect = reference::apply_backward(&x, &shape, &mean, &var, &gamma, EPS, &up);
        // Sums over a channel: judge them against the size of the terms added.
        let sum_floor = 1e-3 * (reference::count(&shape) as f64).sqrt();
        let what = |name: &str| format!("{name} {shape:?}");

        let stats = [mean.clone(), var.clone()].concat();
        let inputs: [(&[usize], &[f64]); 4] = [
            (&shape, &x),
            (&[2, c], &stats),
            (&[c], &gamma),
            (&[c], &beta),
        ];
        let (_, grads) = graph_vjp(&inputs, &up, &|g, ids| {
            let op = BatchNormApply {
                eps: BATCH_NORM_EPS,
                statistics: Statistics::Batch,
            };
            g.apply(op, ids).unwrap()
        });
        assert_close(&what("dx"), &grads[0], &expect.dx, 1e-4, 1e-3);
        let dstats = [expect.dmean.clone(), expect.dvar.clone()].concat();
        assert_close(&what("dstats"), &grads[1], &dstats, 1e-4, sum_floor);
        assert_close(&what("dgamma"), &grads[2], &expect.dgamma, 1e-4, sum_floor);
        assert_close(&what("dbeta"), &grads[3], &expect.dbeta, 1e-4, sum_floor);

        let inputs: [(&[usize], &[f64]); 5] = [
            (&shape, &x),
            (&[c], &mean),
            (&[c], &var),
            (&[c], &gamma),
            (&[c], &beta),
        ];
        let (_, grads) = graph_vjp(&inputs, &up, &|g, ids| {
            g.batch_norm_inference(ids[0], ids[1], ids[2], ids[3], ids[4], BATCH_NORM_EPS)
                .unwrap()
        });
        assert_close(&what("inference dx"), &grads[0], &expect.dx, 1e-4, 1e-3);
        assert_close(
            &what("d running_mean"),
            &grads[1],
            &expect.dmean,
            1e-4,
            sum_floor,
        );
        assert_close(
            &what("d running_var"),
            &grads[2],
            &expect.dvar,
            1e-4,
            sum_floor,
        );
        assert_close(
            &what("inference dgamma"),
            &grads[3],
            &expect.dgamma,
            1e-4,
            sum_floor,
        );
        assert_close(
            &what("inference dbeta"),
            &grads[4],
            &expect.dbeta,
            1e-4,
            sum_floor,
        );
    }
}

#[test]
fn gradient_sums_are_deterministic() {
    let mut rng = Rng::new(7);
    for shape in [vec![3, 5, 7, 9], vec![3, 2, 29, 31]] {
        let c = shape[1];
        let n = numel(&shape);
        let (x, dy) = (random_nonzero(&mut rng, n), random_f64(&mut rng, n));
        let stats = reference::batch_stats(&x, &shape);
        let inputs = [
            &tensor(&shape, &x),
            &tensor(&shape, &dy),
            &tensor(&[2, c], &stats),
        ];
        let op = BatchNormGradSums {
            statistics: Statistics::Batch,
        };
        let sums = eval(&op, &inputs);
        let mut expect = vec![0.0; 2 * c];
        for (i, (xi, gi)) in x.iter().zip(&dy).enumerate() {
            let ch = (i / numel(&shape[2..])) % c;
            expect[ch] += gi;
            expect[c + ch] += gi * (xi - stats[ch]);
        }
        let floor = 1e-3 * (reference::count(&shape) as f64).sqrt();
        assert_close(&format!("{shape:?}"), &sums, &expect, 1e-4, floor);
        assert_eq!(sums, eval(&op, &inputs), "{shape:?}");
    }
}

#[test]
fn training_mode_gradients_match_the_closed_form() {
    let mut rng = Rng::new(8);
    for shape in shapes() {
        let c = shape[1];
        let x = random_nonzero(&mut rng, numel(&shape));
        let up = random_f64(&mut rng, numel(&shape));
        let gamma = random_nonzero(&mut rng, c);
        let beta = random_f64(&mut rng, c);
        let inputs: [(&[usize], &[f64]); 3] = [(&shape, &x), (&[c], &gamma), (&[c], &beta)];
        let (y, grads) = graph_vjp(&inputs, &up, &|g, ids| {
            g.batch_norm(ids[0], ids[1], ids[2], BATCH_NORM_EPS)
                .unwrap()
                .output
        });
        let what = |name: &str| format!("{name} {shape:?}");
        let expect = reference::batch_norm(&x, &shape, &gamma, &beta, EPS);
        assert_close(&what("y"), &y, &expect, 1e-4, 1e-3);
        let (dx, dgamma, dbeta) = reference::batch_norm_backward(&x, &shape, &gamma, EPS, &up);
        // dx cancels terms of size |gamma * dy| / std: judge it against that scale.
        assert_close(&what("dx"), &grads[0], &dx, 1e-3, 1e-3 * scale_of(&dx));
        let sum_floor = 1e-3 * (reference::count(&shape) as f64).sqrt();
        assert_close(&what("dgamma"), &grads[1], &dgamma, 1e-4, sum_floor);
        assert_close(&what("dbeta"), &grads[2], &dbeta, 1e-4, sum_floor);
    }
}

#[test]
fn one_training_step_of_a_layer_takes_the_documented_dispatches() {
    let gpu = gpu();
    for (shape, expected) in [([3, 5, 7, 9], 9), ([3, 2, 29, 31], 11)] {
        let mut g = Graph::new();
        let x = g.input("x", shape);
        let gamma = g.input("gamma", [shape[1]]);
        let beta = g.input("beta", [shape[1]]);
        let y = g.batch_norm(x, gamma, beta, BATCH_NORM_EPS).unwrap().output;
        let seed = g.input("seed", shape);
        let mut outputs = g.backward(y, seed, &[x, gamma, beta]).unwrap();
        outputs.push(y);
        let spec = PlanSpec {
            outputs,
            ..Default::default()
        };
        let plan = Plan::compile(gpu, &g, &ParamStore::new(), spec).unwrap();
        // 2 forward, 7 backward; channels over CHUNK values: one more per reduction.
        assert_eq!(plan.summary().dispatches, expected, "{shape:?}");
        assert!(shape[0] * shape[2] * shape[3] > CHUNK || expected == 9);
    }
}

/// A training plan over x [shape] with one batch-normalised layer whose running statistics
/// start at (0, 1); gamma and beta updated by SGD from the gradient of sum(y * seed).
struct Trainer {
    plan: Plan,
    params: ParamStore,
    x: wgnn::NodeId,
    seed: wgnn::NodeId,
}

fn trainer(shape: &[usize], gamma: &[f64], beta: &[f64], sgd: &mut Sgd) -> Trainer {
    let gpu = gpu();
    let c = shape[1];
    let mut params = ParamStore::new();
    for (name, values) in [
        ("bn.weight", to_f32(gamma)),
        ("bn.bias", to_f32(beta)),
        ("bn.running_mean", vec![0.0; c]),
        ("bn.running_var", vec![1.0; c]),
    ] {
        params.insert_f32(gpu, name, [c], &values).unwrap();
    }
    let mut g = Graph::new();
    let x = g.input("x", shape);
    let names = ["bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"];
    let ids = g.params_from(&params, &names).unwrap();
    let bn = g.batch_norm(x, ids[0], ids[1], BATCH_NORM_EPS).unwrap();
    let seed = g.input("seed", shape);
    let grads = g.backward(bn.output, seed, &ids[..2]).unwrap();
    let mut rule = TrackRunningStats::new(Some(sgd));
    rule.track(&g, &bn, ids[2], ids[3], BATCH_NORM_MOMENTUM)
        .unwrap();
    let mut updates = vec![(ids[0], grads[0]), (ids[1], grads[1])];
    updates.extend(rule.updates());
    let spec = PlanSpec {
        outputs: vec![bn.output],
        keep: rule.keep(),
        updates,
        optimizer: Some(&mut rule),
        ..Default::default()
    };
    let plan = Plan::compile(gpu, &g, &params, spec).unwrap();
    Trainer {
        plan,
        params,
        x,
        seed,
    }
}

#[test]
fn running_statistics_follow_two_training_steps() {
    let gpu = gpu();
    let mut rng = Rng::new(9);
    let shape = [3, 4, 5, 7];
    let (n, c) = (numel(&shape), shape[1]);
    let mut gamma = random_nonzero(&mut rng, c);
    let mut beta = random_f64(&mut rng, c);
    let lr = 0.1;
    let mut sgd = Sgd::new(
        gpu,
        SgdConfig {
            lr: lr as f32,
            ..Default::default()
        },
    )
    .unwrap();
    let mut t = trainer(&shape, &gamma, &beta, &mut sgd);
    let (mut running_mean, mut running_var) = (vec![0.0; c], vec![1.0; c]);
    for step in 0..2 {
        // Shifted and scaled per step, so that the two steps' statistics differ.
        let x: Vec<f64> = random_nonzero(&mut rng, n)
            .iter()
            .map(|v| 2.0 * v + step as f64)
            .collect();
        let up = random_f64(&mut rng, n);
        t.plan.write_input(gpu, t.x, &to_f32(&x)).unwrap();
        t.plan.write_input(gpu, t.seed, &to_f32(&up)).unwrap();
        let y = t.plan.step(gpu).unwrap().remove(0);
        let what = |name: &str| format!("{name} after step {}", step + 1);
        let expect = reference::batch_norm(&x, &shape, &gamma, &beta, EPS);
        assert_close(&what("y"), &y, &expect, 1e-4, 1e-3);

        let stats = reference::batch_stats(&x, &shape);
        let count = reference::count(&shape);
        (running_mean, running_var) = reference::update_running(
            &running_mean,
            &running_var,
            &stats,
            count,
            BATCH_NORM_MOMENTUM as f64,
        );
        let (_, dgamma, dbeta) = reference::batch_norm_backward(&x, &shape, &gamma, EPS, &up);
        for ch in 0..c {
            gamma[ch] -= lr * dgamma[ch];
            beta[ch] -= lr * dbeta[ch];
        }
        let read = |name: &str| t.params.get(name).unwrap().to_vec(gpu).unwrap();
        let tol = 1e-4;
        assert_close(
            &what("running_mean"),
            &read("bn.running_mean"),
            &running_mean,
            tol,
            1e-3,
        );
        assert_close(
            &what("running_var"),
            &read("bn.running_var"),
            &running_var,
            tol,
            1e-3,
        );
        assert_close(&what("gamma"), &read("bn.weight"), &gamma, tol, 1e-3);
        assert_close(&what("beta"), &read("bn.bias"), &beta, tol, 1e-3);
    }
}

#[test]
fn running_stats_update_alone_matches_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(10);
    let c = 300;
    let (mean, var) = (random_f64(&mut rng, c), positive(&mut rng, c));
    let stats = [random_f64(&mut rng, c), positive(&mut rng, c)].concat();
    let (tmean, tvar) = (tensor(&[c], &mean), tensor(&[c], &var));
    let tstats = tensor(&[2, c], &stats);
    let update = running_stats_update(gpu, &tstats, &tmean, &tvar, 3, 0.25).unwrap();
    gpu.run(&[update]).unwrap();
    let (expect_mean, expect_var) = reference::update_running(&mean, &var, &stats, 3, 0.25);
    assert_close(
        "mean",
        &tmean.to_vec(gpu).unwrap(),
        &expect_mean,
        1e-5,
        1e-3,
    );
    assert_close("var", &tvar.to_vec(gpu).unwrap(), &expect_var, 1e-5, 1e-3);

    for (count, momentum, wanted) in [(1, 0.1, "at least 2"), (5, 1.5, "momentum")] {
        let e = running_stats_update(gpu, &tstats, &tmean, &tvar, count, momentum)
            .unwrap_err()
            .to_string();
        assert!(e.contains(wanted), "{e}");
    }
    let e = running_stats_update(gpu, &tmean, &tmean, &tvar, 5, 0.1)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("running_stats_update") && e.contains("[2, 300]") && e.contains("[300]"),
        "{e}"
    );
}

#[test]
fn folding_into_a_convolution_matches_conv_then_inference() {
    let gpu = gpu();
    let mut rng = Rng::new(11);
    let cases = [
        (
            vec![2, 3, 9, 7],
            vec![4, 3, 3, 3],
            ConvParams::new(2).padding(1),
            true,
        ),
        (
            vec![3, 2, 11],
            vec![5, 2, 3],
            ConvParams::new(1).stride(2),
            false,
        ),
    ];
    for (x_shape, w_shape, params, has_bias) in cases {
        let o = w_shape[0];
        let x = random_nonzero(&mut rng, numel(&x_shape));
        let w = random_nonzero(&mut rng, numel(&w_shape));
        let bias = has_bias.then(|| random_f64(&mut rng, o));
        let (mean, var) = (random_f64(&mut rng, o), positive(&mut rng, o));
        let gamma = random_nonzero(&mut rng, o);
        let beta = random_f64(&mut rng, o);

        // GPU: conv, then inference-mode batch normalisation.
        let mut store = ParamStore::new();
        for (name, shape, values) in [
            ("w", &w_shape[..], &w),
            ("mean", &[o][..], &mean),
            ("var", &[o], &var),
            ("gamma", &[o], &gamma),
            ("beta", &[o], &beta),
        ] {
            store.insert_f32(gpu, name, shape, &to_f32(values)).unwrap();
        }
        if let Some(b) = &bias {
            store.insert_f32(gpu, "b", [o], &to_f32(b)).unwrap();
        }
        let mut g = Graph::new();
        let input = g.input("x", &x_shape[..]);
        let ids = g
            .params_from(&store, &["w", "mean", "var", "gamma", "beta"])
            .unwrap();
        let b = has_bias.then(|| g.params_from(&store, &["b"]).unwrap()[0]);
        let conv = g.conv(input, ids[0], b, &params).unwrap();
        let y = g
            .batch_norm_inference(conv, ids[1], ids[2], ids[3], ids[4], BATCH_NORM_EPS)
            .unwrap();
        let spec = PlanSpec {
            outputs: vec![y],
            ..Default::default()
        };
        let mut plan = Plan::compile(gpu, &g, &store, spec).unwrap();
        plan.write_input(gpu, input, &to_f32(&x)).unwrap();
        let unfolded = plan.step(gpu).unwrap().remove(0);

        // The folded convolution, weights folded on the CPU.
        let bn = (to_f32(&gamma), to_f32(&beta), to_f32(&mean), to_f32(&var));
        let frozen = FrozenBatchNorm {
            gamma: &bn.0,
            beta: &bn.1,
            running_mean: &bn.2,
            running_var: &bn.3,
            eps: BATCH_NORM_EPS,
        };
        let bias32 = bias.as_deref().map(to_f32);
        let (w2, b2) = fold_into_conv(
            &to_f32(&w),
            &Shape::new(&w_shape).unwrap(),
            bias32.as_deref(),
            &frozen,
        )
        .unwrap();
        let mut folded_store = ParamStore::new();
        folded_store
            .insert_f32(gpu, "w", &w_shape[..], &w2)
            .unwrap();
        folded_store.insert_f32(gpu, "b", [o], &b2).unwrap();
        let mut g = Graph::new();
        let input = g.input("x", &x_shape[..]);
        let ids = g.params_from(&folded_store, &["w", "b"]).unwrap();
        let y = g.conv(input, ids[0], Some(ids[1]), &params).unwrap();
        let spec = PlanSpec {
            outputs: vec![y],
            ..Default::default()
        };
        let mut plan = Plan::compile(gpu, &g, &folded_store, spec).unwrap();
        plan.write_input(gpu, input, &to_f32(&x)).unwrap();
        let folded = plan.step(gpu).unwrap().remove(0);

        let conv =
            wgnn_reference::conv::forward(&x, &x_shape, &w, &w_shape, bias.as_deref(), &params);
        let y_shape = wgnn_reference::conv::output_shape(&x_shape, &w_shape, &params);
        let expect = reference::apply(&conv, &y_shape, &mean, &var, &gamma, &beta, EPS);
        let what = format!("{x_shape:?} * {w_shape:?}");
        let floor = 1e-3 * scale_of(&expect);
        assert_close(
            &format!("conv + inference {what}"),
            &unfolded,
            &expect,
            1e-4,
            floor,
        );
        assert_close(
            &format!("folded conv {what}"),
            &folded,
            &expect,
            1e-4,
            floor,
        );
        assert_close(
            &format!("folded vs unfolded {what}"),
            &folded,
            &to_f64(&unfolded),
            1e-4,
            floor,
        );
    }
}

#[test]
fn folding_checks_its_inputs() {
    let w = vec![0.5; 2 * 3 * 3];
    let shape = Shape::new(&[2, 3, 3]).unwrap();
    let ones = [1.0, 1.0];
    let frozen = FrozenBatchNorm {
        gamma: &ones,
        beta: &ones,
        running_mean: &ones,
        running_var: &ones,
        eps: BATCH_NORM_EPS,
    };
    assert!(fold_into_conv(&w, &shape, None, &frozen).is_ok());
    let e = fold_into_conv(&w, &shape, Some(&[1.0]), &frozen).unwrap_err();
    assert!(e.to_string().contains("bias has 1 values"), "{e}");
    let e = fold_into_conv(&w[1..], &shape, None, &frozen).unwrap_err();
    assert!(e.to_string().contains("[2, 3, 3] with 17 values"), "{e}");
    let negative = [1.0, -2.0];
    let e = fold_into_conv(
        &w,
        &shape,
        None,
        &FrozenBatchNorm {
            running_var: &negative,
            ..frozen
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("running_var[1]"), "{e}");
}

#[test]
fn shape_errors_name_the_op_and_the_shapes() {
    let mut g = Graph::new();
    let x = g.input("x", [2, 3, 4, 4]);
    let c3 = g.input("c3", [3]);
    let c4 = g.input("c4", [4]);
    let err = |r: wgnn::Result<wgnn::NodeId>| r.unwrap_err().to_string();

    let e = err(g.batch_norm(x, c4, c3, BATCH_NORM_EPS).map(|b| b.output));
    assert!(
        e.contains("batch_norm_apply") && e.contains("gamma must be [3]"),
        "{e}"
    );
    assert!(e.contains("[2, 3, 4, 4]") && e.contains("[4]"), "{e}");
    let e = err(g.batch_norm_inference(x, c3, c4, c3, c3, BATCH_NORM_EPS));
    assert!(
        e.contains("batch_norm_inference") && e.contains("running variance"),
        "{e}"
    );
    let vector = g.input("v", [6]);
    let e = err(g
        .batch_norm(vector, c3, c3, BATCH_NORM_EPS)
        .map(|b| b.output));
    assert!(e.contains("batch_stats") && e.contains("[6]"), "{e}");
    let single = g.input("single", [1, 3, 1, 1]);
    let e = err(g
        .batch_norm(single, c3, c3, BATCH_NORM_EPS)
        .map(|b| b.output));
    assert!(e.contains("more than one value per channel"), "{e}");
    let e = err(g.batch_norm(x, c3, c3, f32::NAN).map(|b| b.output));
    assert!(e.contains("eps"), "{e}");
    let stats = g.input("stats", [3, 3]);
    let op = BatchNormApply {
        eps: BATCH_NORM_EPS,
        statistics: Statistics::Batch,
    };
    let e = err(g.apply(op, &[x, stats, c3, c3]));
    assert!(e.contains("must be [2, 3]") && e.contains("[3, 3]"), "{e}");
    let e = err(g.apply(BatchStats, &[x, x]));
    assert!(e.contains("batch_stats: takes 1 input, not 2"), "{e}");
    let e = err(g.apply(BatchStatsBackward, &[x]));
    assert!(
        e.contains("batch_stats_backward: takes 3 inputs, not 1"),
        "{e}"
    );
    assert!(g.batch_norm(x, c3, c3, BATCH_NORM_EPS).is_ok());

    let rm = g.input("rm", [3]);
    let bn = g.batch_norm(x, c3, c3, BATCH_NORM_EPS).unwrap();
    let mut rule = TrackRunningStats::new(None);
    let e = rule
        .track(&g, &bn, rm, rm, BATCH_NORM_MOMENTUM)
        .unwrap_err()
        .to_string();
    assert!(e.contains("must be a parameter"), "{e}");
}

#[test]
fn receptive_field_passes_through_inference_but_not_training() {
    let mut g = Graph::new();
    let x = g.input("x", [1, 2, 9, 9]);
    let w = g.input("w", [2, 2, 3, 3]);
    let c = g.input("c", [2]);
    let conv = g.conv(x, w, None, &ConvParams::new(2)).unwrap();
    let inference = g
        .batch_norm_inference(conv, c, c, c, c, BATCH_NORM_EPS)
        .unwrap();
    assert_eq!(
        g.receptive_field(x, inference).unwrap(),
        g.receptive_field(x, conv).unwrap()
    );
    let training = g.batch_norm(conv, c, c, BATCH_NORM_EPS).unwrap().output;
    assert_eq!(
        g.receptive_field(x, training).unwrap(),
        wgnn::graph::ReceptiveField::Whole
    );
}
