//! dlib's face ResNet in wgnn: against dlib's own output on a real face chip, and against a
//! float64 reference of the same architecture on random chips (batch 2), which also checks the
//! zero-extended shortcuts of the last two stride-2 blocks.
use wgnn_reference as reference;
use wgnn_reference::testing as common;

use common::{assert_close, gpu, to_f32};
use wgnn::graph::Graph;
use wgnn::ops::conv::ConvParams;
use wgnn::ops::pool::PoolParams;
use wgnn::rng::Rng;
use wgnn::{Plan, PlanSpec};
use wgnn_models::face_resnet::{self, BLOCKS, CHIP_SIZE, OUTPUT_LEN};

/// Runs the network on chips `[n, 3, 150, 150]` (RGB in [0, 1]): `[n, 128]`.
fn run_network(chips: &[f32], n: usize) -> Vec<f32> {
    let gpu = gpu();
    let params = wgnn_assets::face_resnet_weights(gpu).unwrap();
    let mut g = Graph::new();
    let x = g.input("chips", [n, 3, CHIP_SIZE, CHIP_SIZE]);
    let input = g.channel_affine(x, face_resnet::preprocess()).unwrap();
    let y = face_resnet::build(&mut g, input).unwrap();
    assert_eq!(g.shape(y).dims(), [n, OUTPUT_LEN]);
    let mut plan = Plan::compile(
        gpu,
        &g,
        &params,
        PlanSpec {
            outputs: vec![y],
            ..Default::default()
        },
    )
    .unwrap();
    plan.write_input(gpu, x, chips).unwrap();
    plan.step(gpu).unwrap().remove(0)
}

#[test]
fn matches_dlib_on_a_face_chip() {
    // scripts/make_face_resnet_fixture.py: the astronaut's face as dlib aligns it, and dlib's
    // descriptor of that chip.
    let chip = wgnn_models::imaging::io::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/astronaut_face_chip.png"
    ))
    .unwrap();
    assert_eq!((chip.width, chip.height), (CHIP_SIZE, CHIP_SIZE));
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/astronaut_face_descriptor.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let expected: Vec<f64> = fixture["descriptor"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(expected.len(), OUTPUT_LEN);
    let got = run_network(&chip.data, 1);
    // dlib computes in f32 on the CPU; the descriptor's values are about 0.1.
    assert_close("descriptor against dlib", &got, &expected, 1e-4, 1e-2);
}

/// The stored weights as f64, by name.
fn weights() -> std::collections::BTreeMap<String, Vec<f64>> {
    common::safetensors_f64(wgnn_assets::DLIB_FACE_RESNET_SAFETENSORS)
}

/// `x` [n, c, h, w] zero-padded at the end to `[n, channels, side, side]`: dlib's addition
/// of differently sized tensors, top-left aligned.
fn pad_to(x: &[f64], [n, c, h, w]: [usize; 4], channels: usize, side: usize) -> Vec<f64> {
    let mut y = vec![0.0; n * channels * side * side];
    for i in 0..n {
        for k in 0..c {
            for r in 0..h {
                for col in 0..w {
                    y[((i * channels + k) * side + r) * side + col] =
                        x[((i * c + k) * h + r) * w + col];
                }
            }
        }
    }
    y
}

/// The network in float64, written from dlib's definition independently of `build`.
fn reference_network(chips: &[f64], n: usize) -> Vec<f64> {
    let w = weights();
    let mean = [122.782, 117.001, 104.298];
    let plane = CHIP_SIZE * CHIP_SIZE;
    let x: Vec<f64> = chips
        .iter()
        .enumerate()
        .map(|(i, v)| (255.0 * v - mean[(i / plane) % 3]) / 256.0)
        .collect();
    let relu = |v: Vec<f64>| v.into_iter().map(|a| a.max(0.0)).collect::<Vec<_>>();
    let conv = |x: &[f64], shape: [usize; 4], name: &str, cout: usize, k: usize, stride: usize| {
        let pad = if stride == 1 { k / 2 } else { 0 };
        let p = ConvParams::new(2).stride(stride).padding(pad);
        let w_shape = [cout, shape[1], k, k];
        let y = reference::conv::forward(
            x,
            &shape,
            &w[&format!("{name}.weight")],
            &w_shape,
            Some(&w[&format!("{name}.bias")]),
            &p,
        );
        let out = reference::conv::output_shape(&shape, &w_shape, &p);
        (y, [out[0], out[1], out[2], out[3]])
    };
    let (h, shape) = conv(&x, [n, 3, CHIP_SIZE, CHIP_SIZE], "stem", 32, 7, 2);
    let pool = PoolParams::new(&[3, 3]).stride(2);
    let (mut h, _) = reference::pool::max_pool(&relu(h), &shape, &pool);
    let side = reference::pool::output_shape(&shape, &pool)[2];
    let mut shape = [n, 32, side, side];
    for (i, &(cout, stride)) in BLOCKS.iter().enumerate() {
        let (a, a_shape) = conv(&h, shape, &format!("blocks.{i}.conv1"), cout, 3, stride);
        let (r, r_shape) = conv(&relu(a), a_shape, &format!("blocks.{i}.conv2"), cout, 3, 1);
        let (skip, skip_shape) = if stride == 1 {
            (h.clone(), shape.to_vec())
        } else {
            let p = PoolParams::new(&[2, 2]).stride(2);
            let (y, _) = reference::pool::avg_pool(&h, &shape, &p);
            (y, reference::pool::output_shape(&shape, &p))
        };
        let side = r_shape[2].max(skip_shape[2]);
        let skip = pad_to(
            &skip,
            [n, skip_shape[1], skip_shape[2], skip_shape[3]],
            cout,
            side,
        );
        let r = pad_to(&r, r_shape, cout, side);
        h = relu(skip.iter().zip(&r).map(|(a, b)| a + b).collect());
        shape = [n, cout, side, side];
    }
    let pooled = reference::pool::global_avg_pool(&h, &shape);
    let fc = &w["fc.weight"];
    let mut y = vec![0.0; n * OUTPUT_LEN];
    for i in 0..n {
        for o in 0..OUTPUT_LEN {
            y[i * OUTPUT_LEN + o] = (0..256)
                .map(|k| fc[o * 256 + k] * pooled[i * 256 + k])
                .sum();
        }
    }
    y
}

#[test]
fn matches_a_float64_reference_on_random_chips() {
    let n = 2;
    let mut rng = Rng::new(29);
    let chips: Vec<f64> = (0..n * 3 * CHIP_SIZE * CHIP_SIZE)
        .map(|_| rng.range(0.0, 1.0))
        .collect();
    let got = run_network(&to_f32(&chips), n);
    let expected = reference_network(&chips, n);
    assert_close("face ResNet against float64", &got, &expected, 1e-4, 1e-2);
    // The two chips give different outputs (no batch mix-up).
    assert!(got[..OUTPUT_LEN]
        .iter()
        .zip(&got[OUTPUT_LEN..])
        .any(|(a, b)| (a - b).abs() > 1e-3));
}

#[test]
fn parameter_shapes_cover_the_file() {
    let names: Vec<String> = face_resnet::parameter_shapes()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let mut stored: Vec<String> = weights().into_keys().collect();
    stored.sort();
    let mut names_sorted = names.clone();
    names_sorted.sort();
    assert_eq!(names_sorted, stored);
}
