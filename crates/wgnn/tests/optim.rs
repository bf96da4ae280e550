//! Optimisers against the float64 references, step by step; determinism; checkpoint state;
//! and training through a compiled plan.
use wgnn_reference::testing as common;

use common::*;
use wgnn::graph::{UpdateRule, UpdateSlot};
use wgnn::nn::ParamStore;
use wgnn::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use wgnn::rng::Rng;
use wgnn::{Graph, Plan, PlanSpec, Shape, Tensor};
use wgnn_reference::optim as reference;

/// Names with dots (torchvision-style) and sizes on both sides of the 256-wide workgroup.
const PARAMS: [(&str, &[usize]); 3] = [
    ("features.0.weight", &[7, 13]),
    ("features.0.bias", &[7]),
    ("classifier.weight", &[3, 100]),
];
const STEPS: usize = 5;
/// A learning rate per step: exercises `set_learning_rate` between steps.
const LRS: [f32; STEPS] = [0.05, 0.05, 0.02, 0.02, 0.01];

/// Values exactly representable in f32, so that the reference starts where the GPU does.
fn f32_exact(rng: &mut Rng, n: usize) -> Vec<f64> {
    to_f64(&to_f32(&random_nonzero(rng, n)))
}

struct Problem {
    params: Vec<Vec<f64>>,
    /// grads[step][parameter]
    grads: Vec<Vec<Vec<f64>>>,
}

fn problem(seed: u64, steps: usize) -> Problem {
    let mut rng = Rng::new(seed);
    let numel = |shape: &[usize]| shape.iter().product::<usize>();
    let params = PARAMS
        .iter()
        .map(|(_, s)| f32_exact(&mut rng, numel(s)))
        .collect();
    let grads = (0..steps)
        .map(|_| {
            PARAMS
                .iter()
                .map(|(_, s)| f32_exact(&mut rng, numel(s)))
                .collect()
        })
        .collect();
    Problem { params, grads }
}

struct GpuRun {
    /// params_after[step][parameter]
    params_after: Vec<Vec<Vec<f32>>>,
    state: Vec<(String, Vec<f32>)>,
    steps_taken: u64,
    final_lr: f32,
}

fn download_state(optimizer: &dyn Optimizer) -> Vec<(String, Vec<f32>)> {
    optimizer
        .state()
        .into_iter()
        .map(|(name, t)| (name, t.to_vec(gpu()).unwrap()))
        .collect()
}

/// Prepares `optimizer` for fresh parameter tensors and runs the steps, setting each step's
/// gradients and learning rate first.
fn run_gpu(optimizer: &mut dyn Optimizer, problem: &Problem, lrs: &[f32]) -> GpuRun {
    let gpu = gpu();
    let shapes: Vec<&[usize]> = PARAMS.iter().map(|(_, s)| *s).collect();
    let params: Vec<Tensor> = shapes
        .iter()
        .zip(&problem.params)
        .map(|(s, v)| tensor(s, v))
        .collect();
    let grads: Vec<Tensor> = shapes
        .iter()
        .zip(&problem.grads[0])
        .map(|(s, v)| tensor(s, v))
        .collect();
    let slots: Vec<UpdateSlot<'_>> = PARAMS
        .iter()
        .zip(params.iter().zip(&grads))
        .map(|((name, _), (param, grad))| UpdateSlot { name, param, grad })
        .collect();
    let dispatches = optimizer.prepare(gpu, &slots).unwrap();
    let mut params_after = Vec::new();
    for (step_grads, &lr) in problem.grads.iter().zip(lrs) {
        for (t, g) in grads.iter().zip(step_grads) {
            t.write(gpu, &to_f32(g)).unwrap();
        }
        optimizer.set_learning_rate(gpu, lr).unwrap();
        gpu.run(&dispatches).unwrap();
        params_after.push(params.iter().map(|p| p.to_vec(gpu).unwrap()).collect());
    }
    GpuRun {
        params_after,
        state: download_state(optimizer),
        steps_taken: optimizer.step_count(gpu).unwrap(),
        final_lr: optimizer.learning_rate(gpu).unwrap(),
    }
}

fn check_run(
    what: &str,
    run: &GpuRun,
    params_after: &[Vec<Vec<f64>>],
    state: &[(String, Vec<f64>)],
) {
    for (step, (gpu_params, ref_params)) in run.params_after.iter().zip(params_after).enumerate() {
        for ((name, _), (g, r)) in PARAMS.iter().zip(gpu_params.iter().zip(ref_params)) {
            assert_close(
                &format!("{what}: {name} after step {}", step + 1),
                g,
                r,
                1e-4,
                1e-3,
            );
        }
    }
    let names: Vec<&str> = run.state.iter().map(|(n, _)| n.as_str()).collect();
    let expected: Vec<&str> = state.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, expected, "{what}: state names");
    for ((name, g), (_, r)) in run.state.iter().zip(state) {
        assert_close(&format!("{what}: state {name}"), g, r, 1e-4, state_floor(r));
    }
    assert_eq!(
        run.steps_taken,
        params_after.len() as u64,
        "{what}: step count"
    );
}

/// The relative-error floor for an optimiser state: a thousandth of its largest element.
/// `exp_avg` and momentum buffers sum signed gradients and can cancel to far below their
/// terms, where one f32 rounding of a term (fused into an FMA by NVIDIA's driver, rounded
/// twice by lavapipe) is a large relative error; such elements are measured against the
/// state's scale instead. Elements near the largest are still held to `1e-4` relative.
fn state_floor(reference: &[f64]) -> f64 {
    let largest = reference.iter().fold(0f64, |m, v| m.max(v.abs()));
    (1e-3 * largest).max(1e-7)
}

/// Parameters after each step, and the final state by name.
type Trajectory = (Vec<Vec<Vec<f64>>>, Vec<(String, Vec<f64>)>);

fn sorted(mut state: Vec<(String, Vec<f64>)>) -> Vec<(String, Vec<f64>)> {
    state.sort_by(|a, b| a.0.cmp(&b.0));
    state
}

fn sgd_reference(config: &SgdConfig, problem: &Problem, lrs: &[f32]) -> Trajectory {
    let mut params = problem.params.clone();
    let mut buffers: Vec<Vec<f64>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
    let mut after = Vec::new();
    for (grads, &lr) in problem.grads.iter().zip(lrs) {
        for ((p, b), g) in params.iter_mut().zip(&mut buffers).zip(grads) {
            reference::sgd_step(config, lr as f64, p, b, g);
        }
        after.push(params.clone());
    }
    let state = if config.momentum > 0.0 {
        PARAMS
            .iter()
            .zip(buffers)
            .map(|((name, _), b)| (format!("{name}.momentum_buffer"), b))
            .collect()
    } else {
        vec![]
    };
    (after, sorted(state))
}

fn adam_reference(config: &AdamConfig, problem: &Problem, lrs: &[f32]) -> Trajectory {
    let mut params = problem.params.clone();
    let mut m: Vec<Vec<f64>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
    let mut v = m.clone();
    let mut after = Vec::new();
    for (step, (grads, &lr)) in problem.grads.iter().zip(lrs).enumerate() {
        for (k, g) in grads.iter().enumerate() {
            reference::adam_step(
                config,
                lr as f64,
                step as u64 + 1,
                &mut params[k],
                &mut m[k],
                &mut v[k],
                g,
            );
        }
        after.push(params.clone());
    }
    let mut state = Vec::new();
    for (k, (name, _)) in PARAMS.iter().enumerate() {
        state.push((format!("{name}.exp_avg"), m[k].clone()));
        state.push((format!("{name}.exp_avg_sq"), v[k].clone()));
    }
    (after, sorted(state))
}

const SGD_CONFIGS: [SgdConfig; 4] = [
    SgdConfig {
        lr: 0.1,
        momentum: 0.0,
        weight_decay: 0.0,
        nesterov: false,
    },
    SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 0.0,
        nesterov: false,
    },
    SgdConfig {
        lr: 0.1,
        momentum: 0.5,
        weight_decay: 0.1,
        nesterov: false,
    },
    SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 0.01,
        nesterov: true,
    },
];

fn adam_configs() -> [AdamConfig; 3] {
    [
        AdamConfig {
            lr: 0.01,
            ..Default::default()
        },
        AdamConfig {
            lr: 0.01,
            beta1: 0.8,
            beta2: 0.99,
            eps: 1e-6,
            weight_decay: 0.1,
            decoupled_weight_decay: false,
        },
        AdamConfig {
            lr: 0.01,
            weight_decay: 0.1,
            decoupled_weight_decay: true,
            ..Default::default()
        },
    ]
}

#[test]
fn sgd_matches_reference() {
    let problem = problem(1, STEPS);
    for config in SGD_CONFIGS {
        let mut sgd = Sgd::new(gpu(), config).unwrap();
        let run = run_gpu(&mut sgd, &problem, &LRS);
        let (after, state) = sgd_reference(&config, &problem, &LRS);
        check_run(&format!("{config:?}"), &run, &after, &state);
        assert_eq!(run.final_lr, LRS[STEPS - 1]);
    }
}

#[test]
fn adam_matches_reference() {
    let problem = problem(2, STEPS);
    for config in adam_configs() {
        let mut adam = Adam::new(gpu(), config).unwrap();
        let run = run_gpu(&mut adam, &problem, &LRS);
        let (after, state) = adam_reference(&config, &problem, &LRS);
        check_run(&format!("{config:?}"), &run, &after, &state);
        assert_eq!(run.final_lr, LRS[STEPS - 1]);
    }
}

#[test]
fn adam_bias_correction_after_many_steps() {
    // Steps 1..=300 with beta2 = 0.999: the GPU's beta^t by squaring must track float64.
    let problem = problem(3, 300);
    let lrs = vec![1e-3; 300];
    let config = AdamConfig::default();
    let mut adam = Adam::new(gpu(), config).unwrap();
    let run = run_gpu(&mut adam, &problem, &lrs);
    let (after, state) = adam_reference(&config, &problem, &lrs);
    check_run("adam, 300 steps", &run, &after, &state);
}

fn bits(run: &GpuRun) -> Vec<u32> {
    let params = run.params_after.iter().flatten().flatten();
    let state = run.state.iter().flat_map(|(_, v)| v);
    params.chain(state).map(|v| v.to_bits()).collect()
}

#[test]
fn runs_are_bit_identical() {
    let problem = problem(4, STEPS);
    let sgd = |c| Box::new(Sgd::new(gpu(), c).unwrap()) as Box<dyn Optimizer>;
    let adam = |c| Box::new(Adam::new(gpu(), c).unwrap()) as Box<dyn Optimizer>;
    for make in [
        &(|| sgd(SGD_CONFIGS[3])) as &dyn Fn() -> Box<dyn Optimizer>,
        &|| adam(adam_configs()[2]),
    ] {
        let first = run_gpu(make().as_mut(), &problem, &LRS);
        let second = run_gpu(make().as_mut(), &problem, &LRS);
        assert!(bits(&first) == bits(&second), "two runs differ");
    }
}

/// Runs `steps` of `problem` on `params`, starting at step `start` of it.
fn continue_steps(
    optimizer: &mut dyn Optimizer,
    params: &[Tensor],
    problem: &Problem,
    range: std::ops::Range<usize>,
) {
    let gpu = gpu();
    let grads: Vec<Tensor> = params
        .iter()
        .map(|p| Tensor::filled(gpu, p.shape.clone(), 0.0).unwrap())
        .collect();
    let slots: Vec<UpdateSlot<'_>> = PARAMS
        .iter()
        .zip(params.iter().zip(&grads))
        .map(|((name, _), (param, grad))| UpdateSlot { name, param, grad })
        .collect();
    let dispatches = optimizer.prepare(gpu, &slots).unwrap();
    for step in range {
        for (t, g) in grads.iter().zip(&problem.grads[step]) {
            t.write(gpu, &to_f32(g)).unwrap();
        }
        gpu.run(&dispatches).unwrap();
    }
}

fn fresh_params(problem: &Problem) -> Vec<Tensor> {
    PARAMS
        .iter()
        .zip(&problem.params)
        .map(|((_, s), v)| tensor(s, v))
        .collect()
}

fn reupload(host: &[(String, Vec<f32>)], like: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    host.iter()
        .zip(like)
        .map(|((name, v), (_, t))| {
            (
                name.clone(),
                Tensor::from_f32(gpu(), t.shape.clone(), v).unwrap(),
            )
        })
        .collect()
}

#[test]
fn resuming_from_saved_state_is_bit_identical() {
    let gpu = gpu();
    let problem = problem(5, 6);
    for config in [adam_configs()[1], adam_configs()[2]] {
        let mut straight = Adam::new(gpu, config).unwrap();
        let params = fresh_params(&problem);
        continue_steps(&mut straight, &params, &problem, 0..6);
        let expected: Vec<Vec<f32>> = params.iter().map(|p| p.to_vec(gpu).unwrap()).collect();

        let mut first = Adam::new(gpu, config).unwrap();
        let params = fresh_params(&problem);
        continue_steps(&mut first, &params, &problem, 0..3);
        let saved_state = download_state(&first);
        let saved_params: Vec<Vec<f32>> = params.iter().map(|p| p.to_vec(gpu).unwrap()).collect();
        let steps = first.step_count(gpu).unwrap();
        assert_eq!(steps, 3);

        // Loaded before `prepare`: kept until the parameters are prepared.
        let mut resumed = Adam::new(gpu, config).unwrap();
        resumed
            .load_state(gpu, &reupload(&saved_state, &first.state()))
            .unwrap();
        resumed.set_step_count(gpu, steps).unwrap();
        let params: Vec<Tensor> = PARAMS
            .iter()
            .zip(&saved_params)
            .map(|((_, s), v)| Tensor::from_f32(gpu, Shape::new(s).unwrap(), v).unwrap())
            .collect();
        continue_steps(&mut resumed, &params, &problem, 3..6);
        let got: Vec<Vec<f32>> = params.iter().map(|p| p.to_vec(gpu).unwrap()).collect();
        let to_bits =
            |v: &Vec<Vec<f32>>| v.iter().flatten().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(
            to_bits(&got) == to_bits(&expected),
            "resumed Adam differs from an uninterrupted run"
        );
        assert_eq!(resumed.step_count(gpu).unwrap(), 6);
    }
}

#[test]
fn state_loaded_after_prepare_is_used() {
    let gpu = gpu();
    let problem = problem(6, 2);
    let config = SGD_CONFIGS[1];
    // Reference: one step, then a second from the state it left.
    let (after, state) = sgd_reference(&config, &problem, &[0.1, 0.1]);
    let mut sgd = Sgd::new(gpu, config).unwrap();
    let params: Vec<Tensor> = PARAMS
        .iter()
        .zip(&after[0])
        .map(|((_, s), v)| tensor(s, v))
        .collect();
    let grads: Vec<Tensor> = PARAMS
        .iter()
        .zip(&problem.grads[1])
        .map(|((_, s), v)| tensor(s, v))
        .collect();
    let slots: Vec<UpdateSlot<'_>> = PARAMS
        .iter()
        .zip(params.iter().zip(&grads))
        .map(|((name, _), (param, grad))| UpdateSlot { name, param, grad })
        .collect();
    let dispatches = sgd.prepare(gpu, &slots).unwrap();
    // The momentum after step 1 is the first gradient (buffers start at zero).
    let loaded: Vec<(String, Tensor)> = PARAMS
        .iter()
        .zip(&problem.grads[0])
        .map(|((name, s), g)| (format!("{name}.momentum_buffer"), tensor(s, g)))
        .collect();
    sgd.load_state(gpu, &loaded).unwrap();
    gpu.run(&dispatches).unwrap();
    for (((name, _), p), r) in PARAMS.iter().zip(&params).zip(&after[1]) {
        assert_close(name, &p.to_vec(gpu).unwrap(), r, 1e-4, 1e-3);
    }
    let got = download_state(&sgd);
    for ((name, g), (_, r)) in got.iter().zip(&state) {
        assert_close(name, g, r, 1e-4, state_floor(r));
    }
}

#[test]
fn bad_configurations_and_slots_are_errors() {
    let gpu = gpu();
    let nesterov = SgdConfig {
        momentum: 0.0,
        nesterov: true,
        ..Default::default()
    };
    assert!(Sgd::new(gpu, nesterov).is_err());
    assert!(Sgd::new(
        gpu,
        SgdConfig {
            lr: -1.0,
            ..Default::default()
        }
    )
    .is_err());
    assert!(Adam::new(
        gpu,
        AdamConfig {
            beta1: 1.0,
            ..Default::default()
        }
    )
    .is_err());
    assert!(Adam::new(
        gpu,
        AdamConfig {
            eps: f32::NAN,
            ..Default::default()
        }
    )
    .is_err());

    let mut adam = Adam::new(gpu, AdamConfig::default()).unwrap();
    assert!(adam.set_learning_rate(gpu, f32::NAN).is_err());
    let w = tensor(&[2, 3], &[0.5; 6]);
    let wrong = tensor(&[3, 2], &[0.5; 6]);
    let err = adam
        .prepare(
            gpu,
            &[UpdateSlot {
                name: "w",
                param: &w,
                grad: &wrong,
            }],
        )
        .expect_err("a gradient of the wrong shape must be an error");
    assert!(err.to_string().contains("`w`"), "{err}");
    let gw = tensor(&[2, 3], &[0.1; 6]);
    let slot = || UpdateSlot {
        name: "w",
        param: &w,
        grad: &gw,
    };
    let aliased = UpdateSlot {
        name: "w",
        param: &w,
        grad: &w,
    };
    assert!(
        adam.prepare(gpu, &[aliased]).is_err(),
        "a gradient aliasing its parameter"
    );
    assert!(
        adam.prepare(gpu, &[slot(), slot()]).is_err(),
        "a parameter listed twice"
    );

    adam.prepare(gpu, &[slot()]).unwrap();
    let unknown = vec![("w.momentum_buffer".to_string(), w.clone())];
    assert!(adam.load_state(gpu, &unknown).is_err());
    let bad_shape = vec![("w.exp_avg".to_string(), tensor(&[6], &[0.5; 6]))];
    let err = adam
        .load_state(gpu, &bad_shape)
        .expect_err("wrong state shape");
    assert!(err.to_string().contains("w.exp_avg"), "{err}");
    assert!(adam.set_step_count(gpu, u64::MAX).is_err());
}

/// loss = sum((w * x + b - t)^2) over 33 elements, trained for `steps` with `optimizer`;
/// returns the losses and the final (w, b).
fn train_linear(
    optimizer: &mut dyn Optimizer,
    seed: u64,
    steps: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let gpu = gpu();
    let n = 33;
    let mut g = Graph::new();
    let x = g.input("x", [n]);
    let t = g.input("t", [n]);
    let w = g.param("w", [n]).unwrap();
    let b = g.param("b", [1]).unwrap();
    let wx = g.mul(w, x).unwrap();
    let prediction = g.add(wx, b).unwrap();
    let error = g.sub(prediction, t).unwrap();
    let squared = g.mul(error, error).unwrap();
    let scalar = g.fill([1], 0.0).unwrap();
    let loss = g.sum_to_shape(squared, scalar).unwrap();
    let grads = g.gradients(loss, &[w, b]).unwrap();

    let mut rng = Rng::new(seed);
    let mut params = ParamStore::new();
    params
        .insert_f32(gpu, "w", [n], &to_f32(&random_nonzero(&mut rng, n)))
        .unwrap();
    params.insert_f32(gpu, "b", [1], &[0.0]).unwrap();
    let xs = random_nonzero(&mut rng, n);
    let ts: Vec<f64> = xs.iter().map(|x| 0.7 * x - 0.3).collect();
    let mut plan = Plan::compile(
        gpu,
        &g,
        &params,
        PlanSpec {
            outputs: vec![loss],
            updates: vec![(w, grads[0]), (b, grads[1])],
            optimizer: Some(optimizer),
            ..Default::default()
        },
    )
    .unwrap();
    plan.write_input(gpu, x, &to_f32(&xs)).unwrap();
    plan.write_input(gpu, t, &to_f32(&ts)).unwrap();
    let losses = (0..steps).map(|_| plan.step(gpu).unwrap()[0][0]).collect();
    (
        losses,
        plan.read(gpu, w).unwrap(),
        plan.read(gpu, b).unwrap(),
    )
}

#[test]
fn adam_trains_through_a_plan() {
    let config = AdamConfig {
        lr: 0.05,
        ..Default::default()
    };
    let mut adam = Adam::new(gpu(), config).unwrap();
    let (losses, w, b) = train_linear(&mut adam, 7, 50);
    assert_eq!(adam.step_count(gpu()).unwrap(), 50);
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(
        losses[49] < 0.1 * losses[0],
        "loss did not decrease: {losses:?}"
    );
    let mut again = Adam::new(gpu(), config).unwrap();
    let (losses2, w2, b2) = train_linear(&mut again, 7, 50);
    let to_bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        to_bits(&losses),
        to_bits(&losses2),
        "losses differ between runs"
    );
    assert_eq!(to_bits(&w), to_bits(&w2), "w differs between runs");
    assert_eq!(to_bits(&b), to_bits(&b2), "b differs between runs");
}

#[test]
fn plan_steps_match_reference_adam() {
    // Three steps through the plan against float64 gradients of the same loss and the
    // reference Adam.
    let config = AdamConfig {
        lr: 0.05,
        ..Default::default()
    };
    let mut adam = Adam::new(gpu(), config).unwrap();
    let (_, w, b) = train_linear(&mut adam, 8, 3);
    let n = 33;
    let mut rng = Rng::new(8);
    let mut wr = to_f64(&to_f32(&random_nonzero(&mut rng, n)));
    let mut br = vec![0.0];
    let xs = to_f64(&to_f32(&random_nonzero(&mut rng, n)));
    let ts: Vec<f64> = xs
        .iter()
        .map(|x| to_f64(&[(0.7 * x - 0.3) as f32])[0])
        .collect();
    let (mut mw, mut vw, mut mb, mut vb) = (vec![0.0; n], vec![0.0; n], vec![0.0], vec![0.0]);
    for step in 1..=3 {
        let errors: Vec<f64> = (0..n).map(|i| wr[i] * xs[i] + br[0] - ts[i]).collect();
        let gw: Vec<f64> = (0..n).map(|i| 2.0 * errors[i] * xs[i]).collect();
        let gb = vec![2.0 * errors.iter().sum::<f64>()];
        reference::adam_step(
            &config,
            0.05f32 as f64,
            step,
            &mut wr,
            &mut mw,
            &mut vw,
            &gw,
        );
        reference::adam_step(
            &config,
            0.05f32 as f64,
            step,
            &mut br,
            &mut mb,
            &mut vb,
            &gb,
        );
    }
    assert_close("w after 3 plan steps", &w, &wr, 1e-4, 1e-3);
    assert_close("b after 3 plan steps", &b, &br, 1e-4, 1e-3);
}

#[test]
fn sgd_with_momentum_trains_through_a_plan() {
    let config = SgdConfig {
        lr: 0.01,
        momentum: 0.9,
        nesterov: true,
        ..Default::default()
    };
    let mut sgd = Sgd::new(gpu(), config).unwrap();
    let (losses, _, _) = train_linear(&mut sgd, 9, 50);
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(
        losses[49] < 0.1 * losses[0],
        "loss did not decrease: {losses:?}"
    );
    assert_eq!(sgd.state().len(), 2);
}
