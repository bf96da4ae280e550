//! Whole networks as applications run them: dlib's face ResNet forward on a batch of 8 face
//! chips (150x150), the batch `train_siamese` embeds at a time. Throughput in FLOPs (GFLOP/s),
//! as `Plan::summary` counts them (convolutions, pooling, the linear layer and elementwise ops).

use criterion::{Criterion, Throughput};
use wgnn::graph::Graph;
use wgnn::models::face_resnet;
use wgnn::rng::Rng;
use wgnn::{Plan, PlanSpec};

use crate::gpu;

pub fn benches(c: &mut Criterion) {
    let gpu = gpu();
    let n = 8;
    let params = face_resnet::load_weights(gpu).unwrap();
    let mut g = Graph::new();
    let size = face_resnet::CHIP_SIZE;
    let x = g.input("chips", [n, 3, size, size]);
    let input = g.channel_affine(x, face_resnet::preprocess()).unwrap();
    let y = face_resnet::build(&mut g, input).unwrap();
    let spec = PlanSpec {
        outputs: vec![y],
        ..Default::default()
    };
    let mut plan = Plan::compile(gpu, &g, &params, spec).unwrap();
    let chips = Rng::new(3).vec_f32(n * 3 * size * size, 0.0, 1.0);
    plan.write_input(gpu, x, &chips).unwrap();
    plan.step_without_readback(gpu).unwrap();
    let mut group = c.benchmark_group("face_resnet_forward");
    group.sample_size(10);
    group.throughput(Throughput::Elements(plan.summary().flops));
    group.bench_function("n8_150x150", |b| {
        b.iter(|| plan.step_without_readback(gpu).unwrap())
    });
    group.finish();
}
