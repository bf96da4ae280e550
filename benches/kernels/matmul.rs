//! Matrix product benchmarks. Throughput in FLOP/s: 2 * M * N * K per product (one multiply
//! and one add per term).

use criterion::Criterion;
use wgnn::ops::matmul::MatMul;
use wgnn::rng::Rng;

pub fn benches(c: &mut Criterion) {
    bench_matmul(c, 1024);
    if crate::gpu_sized_shapes() {
        bench_matmul(c, 4096);
    }
}

/// matmul/NxNxN.
fn bench_matmul(c: &mut Criterion, size: usize) {
    let mut rng = Rng::new(7);
    let (m, n, k) = (size, size, size);
    let a = crate::random_tensor(&mut rng, &[m, k]);
    let b = crate::random_tensor(&mut rng, &[k, n]);
    let op = MatMul::default();
    crate::bench_ops(
        c,
        "matmul",
        &format!("{m}x{n}x{k}"),
        &[(&op, vec![&a, &b])],
        2 * (m * n * k) as u64,
    );
}
