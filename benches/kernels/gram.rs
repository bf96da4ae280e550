//! Gram matrix of a style-transfer feature map [1, 256, 64, 64].
//! Throughput in FLOPs (GFLOP/s): 2 * C * C * HW, the full product F F^T, although the kernel
//! computes only the upper triangle and mirrors it.

use criterion::Criterion;
use wgnn::ops::gram::Gram;
use wgnn::rng::Rng;

use crate::{bench_ops, random_tensor};

pub fn benches(c: &mut Criterion) {
    let mut rng = Rng::new(2);
    let x = random_tensor(&mut rng, &[1, 256, 64, 64]);
    let flops = 2 * 256 * 256 * 4096;
    bench_ops(c, "gram", "c256_hw4096", &[(&Gram, vec![&x])], flops);
}
