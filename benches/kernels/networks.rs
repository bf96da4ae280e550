//! Whole networks as applications run them: dlib's face ResNet forward on a batch of 8 face
//! chips (150x150), the batch `train_siamese` embeds at a time, and dlib's face detector on the
//! tiled image pyramid of one 184x224 photo. Throughput in FLOPs (GFLOP/s), as `Plan::summary`
//! counts them (convolutions, pooling, the linear layer and elementwise ops).

use criterion::{Criterion, Throughput};
use wgnn::graph::{Graph, NodeId};
use wgnn::nn::ParamStore;
use wgnn::rng::Rng;
use wgnn::{Plan, PlanSpec};
use wgnn_models::face_detection::FaceDetector;
use wgnn_models::{face_detector, face_resnet};

use crate::gpu;

/// Times the forward pass of the network `build` makes on random inputs in [0, 1] of `dims`.
fn bench_network(
    c: &mut Criterion,
    group: &str,
    id: &str,
    params: &ParamStore,
    dims: [usize; 4],
    build: impl FnOnce(&mut Graph, NodeId) -> NodeId,
) {
    let gpu = gpu();
    let mut g = Graph::new();
    let x = g.input("input", dims);
    let y = build(&mut g, x);
    let spec = PlanSpec {
        outputs: vec![y],
        ..Default::default()
    };
    let mut plan = Plan::compile(gpu, &g, params, spec).unwrap();
    let input = Rng::new(3).vec_f32(dims.iter().product(), 0.0, 1.0);
    plan.write_input(gpu, x, &input).unwrap();
    plan.step_without_readback(gpu).unwrap();
    let mut group = c.benchmark_group(group);
    group.sample_size(10);
    group.throughput(Throughput::Elements(plan.summary().flops));
    group.bench_function(id, |b| b.iter(|| plan.step_without_readback(gpu).unwrap()));
    group.finish();
}

pub fn benches(c: &mut Criterion) {
    let gpu = gpu();
    let size = face_resnet::CHIP_SIZE;
    let params = wgnn_assets::face_resnet_weights(gpu).unwrap();
    bench_network(
        c,
        "face_resnet_forward",
        "n8_150x150",
        &params,
        [8, 3, size, size],
        |g, x| {
            let input = g.channel_affine(x, face_resnet::preprocess()).unwrap();
            face_resnet::build(g, input).unwrap()
        },
    );

    let weights = wgnn_assets::MMOD_FACE_DETECTOR_SAFETENSORS;
    let pyramid = FaceDetector::new(gpu, weights, 184, 224)
        .unwrap()
        .pyramid()
        .clone();
    let params = face_detector::load_weights(gpu, "<MMOD face detector>", weights).unwrap();
    let dims = [1, 3, pyramid.height, pyramid.width];
    let id = format!("pyramid_of_184x224_{}x{}", pyramid.width, pyramid.height);
    bench_network(c, "face_detector_forward", &id, &params, dims, |g, x| {
        let input = g.channel_affine(x, face_detector::preprocess()).unwrap();
        face_detector::build(g, input).unwrap()
    });
}
