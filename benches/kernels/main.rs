//! Kernel benchmarks at realistic shapes: `cargo bench --bench kernels`.
//! Each benchmark times prepared dispatches through to GPU completion (encode, submit, wait);
//! uploads and readbacks are outside the timed loop. Throughput is reported in elements per
//! second where one element is one floating-point operation (GFLOP/s) or one byte (GB/s), as
//! each benchmark's comment says.

mod conv;
mod gram;
mod matmul;
mod networks;
mod pool;
mod training;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wgnn::gpu::Dispatch;
use wgnn::graph::{EncodeCtx, Op};
use wgnn::rng::Rng;
use wgnn::{Gpu, Shape, Tensor};

pub fn gpu() -> &'static Gpu {
    static GPU: std::sync::OnceLock<Gpu> = std::sync::OnceLock::new();
    GPU.get_or_init(|| Gpu::new().unwrap_or_else(|e| panic!("benchmarks need a GPU adapter: {e}")))
}

/// A tensor of random values in [-1, 1).
pub fn random_tensor(rng: &mut Rng, dims: &[usize]) -> Tensor {
    let shape = Shape::new(dims).unwrap();
    let data = rng.vec_f32(shape.numel(), -1.0, 1.0);
    Tensor::from_f32(gpu(), shape, &data).unwrap()
}

/// Prepares `ops` (applied in order, each output feeding nothing: independent ops) once and
/// times their dispatches together. `work` is the FLOPs (or bytes) of one run.
pub fn bench_ops(
    c: &mut Criterion,
    group: &str,
    id: &str,
    ops: &[(&dyn Op, Vec<&Tensor>)],
    work: u64,
) {
    let gpu = gpu();
    let mut ctx = EncodeCtx::new(gpu);
    let mut dispatches: Vec<Dispatch> = Vec::new();
    let mut outputs = Vec::new();
    for (op, inputs) in ops {
        let shapes: Vec<&Shape> = inputs.iter().map(|t| &t.shape).collect();
        let shape = op.output_shape(&shapes).unwrap();
        let output = Tensor::filled(gpu, shape, 0.0).unwrap();
        dispatches.extend(op.encode(&mut ctx, inputs, &output).unwrap());
        outputs.push(output);
    }
    gpu.run(&dispatches).unwrap();
    let mut g = c.benchmark_group(group);
    g.sample_size(10);
    g.throughput(Throughput::Elements(work));
    g.bench_function(id, |b| b.iter(|| gpu.run(&dispatches).unwrap()));
    g.finish();
}

/// Whether to run the GPU-sized shapes (matmul 4096^3, conv2d at n32 c256 56x56): on every
/// adapter that is not a CPU, or where WGNN_BENCH_GPU_SHAPES is set (on lavapipe each of them
/// takes minutes).
pub fn gpu_sized_shapes() -> bool {
    std::env::var_os("WGNN_BENCH_GPU_SHAPES").is_some() || gpu().adapter.device_type != "Cpu"
}

fn benches(c: &mut Criterion) {
    eprintln!("adapter: {}", gpu().adapter);
    if !gpu_sized_shapes() {
        eprintln!(
            "GPU-sized shapes skipped on a CPU adapter (set WGNN_BENCH_GPU_SHAPES=1 to run them)"
        );
    }
    pool::benches(c);
    gram::benches(c);
    matmul::benches(c);
    conv::benches(c);
    networks::benches(c);
    training::benches(c);
}

criterion_group!(kernels, benches);
criterion_main!(kernels);
