//! Shared test fixtures: the GPU (tests fail, never skip, without an adapter), seeded random
//! inputs, and comparisons against the float64 references.

use crate::{max_relative_error, numerical_gradient};
use wgnn::rng::Rng;

/// Random values in [-1, 1) excluding a band around zero, so that kinks (ReLU, max, abs) are
/// not hit by finite differences and no test ever runs on zeros.
pub fn random_nonzero(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let v = rng.range(0.1, 1.0);
            if rng.uniform() < 0.5 {
                -v
            } else {
                v
            }
        })
        .collect()
}

pub fn random_f64(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.range(-1.0, 1.0)).collect()
}

pub fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Asserts that GPU output (f32) matches the float64 reference within `tol` relative error
/// (absolute below `floor`), naming the check and the worst element on failure.
pub fn assert_close(what: &str, gpu: &[f32], reference: &[f64], tol: f64, floor: f64) {
    assert_eq!(
        gpu.len(),
        reference.len(),
        "{what}: length {} vs reference {}",
        gpu.len(),
        reference.len()
    );
    let actual = to_f64(gpu);
    let err = max_relative_error(&actual, reference, floor);
    if err > tol {
        let (i, _) = actual
            .iter()
            .zip(reference)
            .enumerate()
            .map(|(i, (a, b))| {
                (
                    i,
                    if a.is_nan() {
                        f64::INFINITY
                    } else {
                        (a - b).abs() / b.abs().max(floor)
                    },
                )
            })
            .fold((0, -1.0), |acc, x| if x.1 > acc.1 { x } else { acc });
        panic!("{what}: max relative error {err:.3e} > {tol:.1e}; worst at [{i}]: gpu {} vs reference {}", actual[i], reference[i]);
    }
}

/// Checks an analytic float64 gradient against central finite differences of `f`.
pub fn assert_gradient(what: &str, f: &dyn Fn(&[f64]) -> f64, x: &[f64], analytic: &[f64]) {
    let numeric = numerical_gradient(f, x, 1e-6);
    let err = max_relative_error(analytic, &numeric, 1e-3);
    assert!(
        err < 1e-5,
        "{what}: reference gradient vs finite differences: max relative error {err:.3e}"
    );
}

/// Loss used to test a backward pass: L = sum(output * upstream), so dL/doutput = upstream.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The GPU shared by a test binary. Panics (fails the test) when there is no adapter: a green
/// run must mean that the shaders ran.
/// The tensors of safetensors bytes (f32) as f64, by name: the weights a float64 reference
/// network reads.
pub fn safetensors_f64(bytes: &[u8]) -> std::collections::BTreeMap<String, Vec<f64>> {
    let file = safetensors::SafeTensors::deserialize(bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)
                .collect();
            (name, values)
        })
        .collect()
}

pub fn gpu() -> &'static wgnn::Gpu {
    if FALLBACK.with(|f| f.get()) {
        return fallback_gpu();
    }
    static GPU: std::sync::OnceLock<wgnn::Gpu> = std::sync::OnceLock::new();
    GPU.get_or_init(|| match wgnn::Gpu::new() {
        Ok(gpu) => {
            eprintln!("adapter: {}", gpu.adapter);
            gpu
        }
        Err(e) => panic!("tests need a GPU adapter and none could be opened: {e}"),
    })
}

thread_local! {
    static FALLBACK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The same adapter opened without subgroup operations, so that kernels take their fallbacks.
fn fallback_gpu() -> &'static wgnn::Gpu {
    static GPU: std::sync::OnceLock<wgnn::Gpu> = std::sync::OnceLock::new();
    GPU.get_or_init(|| {
        let choice = wgnn::gpu::AdapterChoice {
            subgroups: false,
            ..wgnn::gpu::AdapterChoice::from_env()
        };
        let gpu = wgnn::Gpu::with_choice(&choice).expect("the adapter opens without subgroups");
        assert!(!gpu.subgroup_broadcast);
        gpu
    })
}

/// Runs `f` with `gpu()` (and so `tensor`, `eval`, `graph_vjp`) on a device opened without
/// subgroup operations: the fallback kernels of ops that have subgroup versions.
pub fn without_subgroups(f: impl FnOnce()) {
    FALLBACK.with(|flag| flag.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    FALLBACK.with(|flag| flag.set(false));
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// Uploads f64 values as an f32 tensor.
pub fn tensor(shape: &[usize], values: &[f64]) -> wgnn::Tensor {
    wgnn::Tensor::from_f32(gpu(), wgnn::Shape::new(shape).unwrap(), &to_f32(values)).unwrap()
}

/// Runs one op eagerly (output poisoned with NaN first) and returns its values.
pub fn eval(op: &dyn wgnn::graph::Op, inputs: &[&wgnn::Tensor]) -> Vec<f32> {
    let out = wgnn::graph::eval(gpu(), op, inputs).unwrap();
    out.to_vec(gpu()).unwrap()
}

/// Builds `build(graph, inputs)` -> output, seeds the backward pass with `upstream` and returns
/// (output, gradient of each input) computed on the GPU through a compiled plan.
pub fn graph_vjp(
    inputs: &[(&[usize], &[f64])],
    upstream: &[f64],
    build: &dyn Fn(&mut wgnn::Graph, &[wgnn::NodeId]) -> wgnn::NodeId,
) -> (Vec<f32>, Vec<Vec<f32>>) {
    let gpu = gpu();
    let mut g = wgnn::Graph::new();
    let ids: Vec<_> = inputs
        .iter()
        .enumerate()
        .map(|(i, (shape, _))| g.input(&format!("x{i}"), *shape))
        .collect();
    let y = build(&mut g, &ids);
    let seed = g.input("seed", g.shape(y).clone());
    let grads = g.backward(y, seed, &ids).unwrap();
    let mut outputs = vec![y];
    outputs.extend(&grads);
    let params = wgnn::nn::ParamStore::new();
    let mut plan = wgnn::Plan::compile(
        gpu,
        &g,
        &params,
        wgnn::PlanSpec {
            outputs,
            ..Default::default()
        },
    )
    .unwrap();
    for (id, (_, values)) in ids.iter().zip(inputs) {
        plan.write_input(gpu, *id, &to_f32(values)).unwrap();
    }
    plan.write_input(gpu, seed, &to_f32(upstream)).unwrap();
    let mut results = plan.step(gpu).unwrap();
    let y = results.remove(0);
    (y, results)
}
