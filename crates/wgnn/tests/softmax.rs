//! Softmax and log-softmax against the float64 reference: every axis of odd shapes on both
//! kernels, batch > 1, the backward ops and the backward rule through graphs, logits that would
//! overflow without the shift by the maximum, and bad axes.
use wgnn_reference::testing as common;

use common::*;
use wgnn::graph::{Op, SpatialMap};
use wgnn::ops::softmax::{Softmax, SoftmaxBackward, SoftmaxKernel};
use wgnn::rng::Rng;
use wgnn::{Graph, Shape};
use wgnn_reference::softmax as reference;

/// (shape, axis): short rows with and without a stride, and rows of 256 values or more (the
/// workgroup kernel on GPUs), strided and contiguous, over several rows each.
const CASES: [(&[usize], usize); 7] = [
    (&[3, 5, 7], 0),
    (&[3, 5, 7], 1),
    (&[3, 5, 7], 2),
    (&[2, 3, 4, 5, 3], 3),
    (&[2, 300, 3], 1),
    (&[5, 517], 1),
    (&[1030], 0),
];

const KERNELS: [SoftmaxKernel; 2] = [SoftmaxKernel::Rows, SoftmaxKernel::Workgroup];

fn softmax(axis: usize, log: bool, kernel: SoftmaxKernel) -> Softmax {
    Softmax {
        axis,
        log,
        kernel: Some(kernel),
    }
}

fn softmax_backward(axis: usize, log: bool, kernel: SoftmaxKernel) -> SoftmaxBackward {
    SoftmaxBackward {
        axis,
        log,
        kernel: Some(kernel),
    }
}

fn numel(dims: &[usize]) -> usize {
    dims.iter().product()
}

#[test]
fn reference_backward_matches_finite_differences() {
    let mut rng = Rng::new(1);
    for (dims, axis) in [(&[3, 4, 5][..], 1), (&[2, 7], 1), (&[4, 3], 0), (&[6], 0)] {
        for log in [false, true] {
            let x: Vec<f64> = (0..numel(dims)).map(|_| rng.range(-3.0, 3.0)).collect();
            let up = random_f64(&mut rng, x.len());
            let f = |v: &[f64]| dot(&reference::forward(v, dims, axis, log), &up);
            let dx = reference::backward(&x, dims, axis, log, &up);
            assert_gradient(&format!("log {log} {dims:?} axis {axis}"), &f, &x, &dx);
        }
    }
}

#[test]
fn forward_and_backward_match_reference_on_both_kernels() {
    let mut rng = Rng::new(2);
    for ((dims, axis), log) in CASES
        .into_iter()
        .flat_map(|case| [false, true].map(move |log| (case, log)))
    {
        let n = numel(dims);
        let x: Vec<f64> = (0..n).map(|_| rng.range(-4.0, 4.0)).collect();
        let up = random_f64(&mut rng, n);
        let expect = reference::forward(&x, dims, axis, log);
        let dx = reference::backward(&x, dims, axis, log, &up);
        for kernel in KERNELS {
            let what = format!("log {log} {dims:?} axis {axis} ({kernel:?})");
            let y = eval(&softmax(axis, log, kernel), &[&tensor(dims, &x)]);
            assert_close(&format!("{what} forward"), &y, &expect, 1e-5, 1e-6);
            // Rows sum to 1 (softmax) or their exponentials do (log-softmax).
            if axis + 1 == dims.len() {
                for row in y.chunks(dims[axis]) {
                    let total: f64 = row
                        .iter()
                        .map(|&v| if log { (v as f64).exp() } else { v as f64 })
                        .sum();
                    assert!((total - 1.0).abs() < 1e-5, "{what}: a row sums to {total}");
                }
            }
            let backward = softmax_backward(axis, log, kernel);
            let g = eval(&backward, &[&tensor(dims, &expect), &tensor(dims, &up)]);
            assert_close(&format!("{what} backward"), &g, &dx, 1e-4, 1e-5);
        }
        // Through a graph, with the device's choice of kernel.
        let what = format!("log {log} {dims:?} axis {axis} (graph)");
        let (y, grads) = graph_vjp(&[(dims, &x)], &up, &|g, ids| {
            if log {
                g.log_softmax(ids[0], axis).unwrap()
            } else {
                g.softmax(ids[0], axis).unwrap()
            }
        });
        assert_close(&format!("{what} forward"), &y, &expect, 1e-5, 1e-6);
        assert_close(&format!("{what} backward"), &grads[0], &dx, 1e-4, 1e-5);
    }
}

#[test]
fn the_device_choice_of_kernel() {
    let gpu = gpu();
    assert_eq!(SoftmaxKernel::choose(gpu, 255), SoftmaxKernel::Rows);
    let long = if gpu.adapter.device_type == "Cpu" {
        SoftmaxKernel::Rows
    } else {
        SoftmaxKernel::Workgroup
    };
    assert_eq!(SoftmaxKernel::choose(gpu, 256), long, "{}", gpu.adapter);
}

#[test]
fn large_logits_do_not_overflow() {
    // exp(1e4) overflows f32 (and f64); rows around +1e4, -1e4 and spread over 3e4, on both
    // kernels. A naive exp(x) / sum(exp(x)) gives inf / inf = NaN.
    let mut rng = Rng::new(3);
    for (dims, axis) in [(&[3, 11][..], 1), (&[3, 400], 1)] {
        let len = dims[axis];
        let x: Vec<f64> = (0..numel(dims))
            .map(|k| match k / len {
                0 => 1e4 + rng.range(-5.0, 5.0),
                1 => -1e4 + rng.range(-5.0, 5.0),
                _ => rng.range(-1.5e4, 1.5e4),
            } as f32 as f64)
            .collect();
        for (log, kernel) in [false, true]
            .into_iter()
            .flat_map(|log| KERNELS.map(move |kernel| (log, kernel)))
        {
            let y = eval(&softmax(axis, log, kernel), &[&tensor(dims, &x)]);
            assert!(
                y.iter().all(|v| v.is_finite()),
                "log {log} {dims:?} {kernel:?}"
            );
            let expect = reference::forward(&x, dims, axis, log);
            // Log-probabilities near -1e4 carry f32's absolute error there (1e-3).
            let floor = if log { 1e1 } else { 1e-6 };
            assert_close(
                &format!("large logits log {log} {dims:?} {kernel:?}"),
                &y,
                &expect,
                1e-4,
                floor,
            );
            let up = random_f64(&mut rng, x.len());
            let dx = reference::backward(&x, dims, axis, log, &up);
            let g = eval(
                &softmax_backward(axis, log, kernel),
                &[&tensor(dims, &expect), &tensor(dims, &up)],
            );
            assert!(
                g.iter().all(|v| v.is_finite()),
                "log {log} {dims:?} {kernel:?} backward"
            );
            assert_close(
                &format!("large logits backward log {log} {kernel:?}"),
                &g,
                &dx,
                1e-4,
                1e-5,
            );
        }
    }
}

#[test]
fn bad_axes_are_errors() {
    let mut g = Graph::new();
    let x = g.input("x", [2, 3]);
    let message = g.softmax(x, 2).unwrap_err().to_string();
    assert!(message.contains("axis 2 is out of range"), "{message}");
    assert!(g.log_softmax(x, 5).is_err());
    assert!(g.softmax(x, 1).is_ok());
    let y = g.input("y", [3, 2]);
    let backward = softmax_backward(0, false, SoftmaxKernel::Rows);
    assert!(
        g.apply(backward, &[x, y]).is_err(),
        "y and dy of different shapes"
    );
}

#[test]
fn spatial_map_is_pointwise_across_channels_and_global_across_space() {
    let shape = Shape::new(&[2, 3, 5, 7]).unwrap();
    for (axis, map) in [
        (0, SpatialMap::Pointwise),
        (1, SpatialMap::Pointwise),
        (2, SpatialMap::Global),
        (3, SpatialMap::Global),
    ] {
        let op = softmax(axis, false, SoftmaxKernel::Rows);
        assert_eq!(op.spatial_map(&[&shape]), Some(map), "axis {axis}");
    }
}
