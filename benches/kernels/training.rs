//! One compiled training step of the reference Siamese network: `train_step/conv4_b50_56x48`
//! (`wgnn_benches::conv4_training_step` says what it holds). Throughput in FLOPs (GFLOP/s) as
//! `Plan::summary` counts them for the whole step.

use criterion::{Criterion, Throughput};

use crate::gpu;

pub fn benches(c: &mut Criterion) {
    let mut step = wgnn_benches::conv4_training_step(gpu()).unwrap();
    let plan = &mut step.plan;
    plan.step_without_readback(gpu()).unwrap();
    let mut group = c.benchmark_group("train_step");
    group.sample_size(10);
    group.throughput(Throughput::Elements(plan.summary().flops));
    group.bench_function("conv4_b50_56x48", |b| {
        b.iter(|| plan.step_without_readback(gpu()).unwrap())
    });
    group.finish();
}
