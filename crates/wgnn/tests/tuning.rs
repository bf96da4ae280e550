//! The autotuner: with tuning on, the first use of a shape class times the designs that the
//! device can run and keeps the fastest, in memory and in the cache file, whose choices a later
//! device (another process) reads back without timing; results match the float64 references
//! whichever design wins. Tuning off times nothing and writes no file.
use wgnn_reference::testing::*;

use wgnn::gpu::{AdapterChoice, TuningMode};
use wgnn::graph::eval;
use wgnn::ops::conv::{ConvForward, ConvParams};
use wgnn::ops::matmul::MatMul;
use wgnn::rng::Rng;
use wgnn::{Gpu, Shape, Tensor};
use wgnn_reference::{conv as conv_reference, matmul as matmul_reference};

fn open(tuning: TuningMode) -> Gpu {
    Gpu::with_choice(&AdapterChoice {
        tuning: Some(tuning),
        ..AdapterChoice::from_env()
    })
    .expect("the adapter opens")
}

fn upload(gpu: &Gpu, dims: &[usize], values: &[f64]) -> Tensor {
    Tensor::from_f32(gpu, Shape::new(dims).unwrap(), &to_f32(values)).unwrap()
}

/// A convolution and a matrix product on `gpu`, checked against the references.
fn run_both(gpu: &Gpu, seed: u64) {
    let mut rng = Rng::new(seed);
    let (x_dims, w_dims) = ([2, 5, 9, 7], [6, 5, 3, 3]);
    let x = random_nonzero(&mut rng, 2 * 5 * 9 * 7);
    let w = random_nonzero(&mut rng, 6 * 5 * 9);
    let params = ConvParams::new(2).padding(1);
    let op = ConvForward {
        params: params.clone(),
        relu: false,
    };
    let y = eval(
        gpu,
        &op,
        &[&upload(gpu, &x_dims, &x), &upload(gpu, &w_dims, &w)],
    )
    .unwrap()
    .to_vec(gpu)
    .unwrap();
    let expect = conv_reference::forward(&x, &x_dims, &w, &w_dims, None, &params);
    assert_close("conv", &y, &expect, 1e-4, 1e-2);

    let a = random_nonzero(&mut rng, 13 * 11);
    let b = random_nonzero(&mut rng, 11 * 17);
    let c = eval(
        gpu,
        &MatMul::default(),
        &[&upload(gpu, &[13, 11], &a), &upload(gpu, &[11, 17], &b)],
    )
    .unwrap()
    .to_vec(gpu)
    .unwrap();
    let expect = matmul_reference::forward(&a, &[13, 11], &b, &[11, 17], false, false);
    assert_close("matmul", &c, &expect, 1e-4, 1e-2);
}

#[test]
fn choices_are_timed_once_and_read_back_by_a_later_device() {
    let dir = std::env::temp_dir().join(format!("wgnn-tuning-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cache = dir.join("nested").join("tuning.tsv");
    std::fs::create_dir_all(cache.parent().unwrap()).unwrap();
    // Another adapter's choice and a damaged line: the first is kept, the second dropped.
    let foreign = "Some GPU\tsome driver\tconv.forward m64 n4096 k512\ttiled";
    std::fs::write(&cache, format!("{foreign}\nnot a choice\n")).unwrap();

    let first = open(TuningMode::On {
        cache: Some(cache.clone()),
    });
    run_both(&first, 1);
    let designs = if first.subgroup_broadcast { 2 } else { 1 };
    // With one design there is nothing to time.
    let timed = if designs == 2 { 2 } else { 0 };
    assert_eq!(first.tuner.counts(), (timed, 0));
    // The same shapes again: remembered, not timed.
    run_both(&first, 2);
    assert_eq!(first.tuner.counts(), (timed, timed));
    if designs == 1 {
        return;
    }

    let text = std::fs::read_to_string(&cache).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines.contains(&foreign), "{text}");
    assert!(!text.contains("not a choice"), "{text}");
    for role in ["conv.forward", "matmul"] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&first.adapter.name) && l.contains(role))
            .unwrap_or_else(|| panic!("no {role} choice in {text}"));
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.len(), 4, "{line}");
        assert_eq!(fields[0], first.adapter.name);
        assert!(["tiled", "subgroup"].contains(&fields[3]), "{line}");
    }

    // A later process: its device reads the file and times nothing.
    let later = open(TuningMode::On {
        cache: Some(cache.clone()),
    });
    run_both(&later, 3);
    assert_eq!(later.tuner.counts(), (0, 2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tuning_off_times_nothing_and_writes_nothing() {
    let gpu = open(TuningMode::Off);
    run_both(&gpu, 4);
    assert_eq!(gpu.tuner.counts(), (0, 0));
}
