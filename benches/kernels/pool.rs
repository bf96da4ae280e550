//! Pooling: 2x2 stride-2 max pooling of a VGG-sized feature map.
//! Throughput in bytes (GB/s): the input read once plus the output written once.

use criterion::Criterion;
use wgnn::ops::pool::{Pool, PoolParams};
use wgnn::rng::Rng;

use crate::{bench_ops, random_tensor};

pub fn benches(c: &mut Criterion) {
    let mut rng = Rng::new(1);
    let x = random_tensor(&mut rng, &[1, 256, 128, 128]);
    let pool = Pool::max(PoolParams::new(&[2, 2]).stride(2));
    let bytes = 4 * (256 * 128 * 128 + 256 * 64 * 64) as u64;
    bench_ops(
        c,
        "max_pool2d_forward",
        "n1_c256_h128_w128_2x2",
        &[(&pool, vec![&x])],
        bytes,
    );
}
