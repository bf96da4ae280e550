//! Convolutions, f32, stride 1, "same" padding (k / 2). Work is counted in FLOPs:
//! 2 * N * O * output positions * C * kernel taps per pass (one multiply and one add per tap);
//! the backward run computes both dx and dw, twice that. The forward includes the bias.
//! The image gradient (dx alone, of a strided first layer with few input channels) counts the
//! same 2 * N * O * output positions * C * kernel taps. Depthwise convolutions (groups = C)
//! count 2 * N * C * output positions * kernel taps per pass, each pass timed alone.

use criterion::Criterion;
use wgnn::graph::Op;
use wgnn::ops::conv::{ConvBackwardInput, ConvBackwardWeight, ConvForward, ConvParams};
use wgnn::rng::Rng;
use wgnn::Shape;

use crate::{bench_ops, random_tensor};

/// x [n, c, spatial...], w [o, c, kernel...].
struct ConvShape<'a> {
    x: &'a [usize],
    o: usize,
    kernel: &'a [usize],
}

impl ConvShape<'_> {
    fn w(&self) -> Vec<usize> {
        let mut w = vec![self.o, self.x[1]];
        w.extend_from_slice(self.kernel);
        w
    }

    fn params(&self) -> ConvParams {
        let same: Vec<usize> = self.kernel.iter().map(|k| k / 2).collect();
        ConvParams::new(self.kernel.len()).paddings(&same)
    }

    /// Output positions equal input positions with "same" padding and stride 1.
    fn flops(&self) -> u64 {
        let positions: usize = self.x[2..].iter().product();
        let taps: usize = self.kernel.iter().product();
        2 * (self.x[0] * self.o * positions * self.x[1] * taps) as u64
    }
}

fn bench_forward(c: &mut Criterion, group: &str, id: &str, shape: ConvShape<'_>) {
    let mut rng = Rng::new(7);
    let x = random_tensor(&mut rng, shape.x);
    let w = random_tensor(&mut rng, &shape.w());
    let b = random_tensor(&mut rng, &[shape.o]);
    let op = ConvForward {
        params: shape.params(),
        relu: false,
    };
    bench_ops(c, group, id, &[(&op, vec![&x, &w, &b])], shape.flops());
}

fn bench_backward(c: &mut Criterion, group: &str, id: &str, shape: ConvShape<'_>) {
    let mut rng = Rng::new(8);
    let x = random_tensor(&mut rng, shape.x);
    let w = random_tensor(&mut rng, &shape.w());
    let mut y_dims = shape.x.to_vec();
    y_dims[1] = shape.o;
    let dy = random_tensor(&mut rng, &y_dims);
    let input_grad = ConvBackwardInput {
        params: shape.params(),
        input_shape: Shape::new(shape.x).unwrap(),
    };
    let weight_grad = ConvBackwardWeight {
        params: shape.params(),
        weight_shape: Shape::new(&shape.w()).unwrap(),
    };
    let ops: [(&dyn Op, Vec<_>); 2] = [(&input_grad, vec![&dy, &w]), (&weight_grad, vec![&x, &dy])];
    bench_ops(c, group, id, &ops, 2 * shape.flops());
}

/// dx alone of a convolution of `x` by `o` filters of `kernel`, stride `stride`, no padding:
/// the gradient of the image through a network's first layer.
fn bench_image_gradient(
    c: &mut Criterion,
    id: &str,
    x: &[usize],
    o: usize,
    kernel: &[usize],
    stride: usize,
) {
    let mut rng = Rng::new(9);
    let mut w_dims = vec![o, x[1]];
    w_dims.extend_from_slice(kernel);
    let params = ConvParams::new(kernel.len()).stride(stride);
    let mut y_dims = vec![x[0], o];
    y_dims.extend(x[2..].iter().zip(kernel).map(|(i, k)| (i - k) / stride + 1));
    let w = random_tensor(&mut rng, &w_dims);
    let dy = random_tensor(&mut rng, &y_dims);
    let op = ConvBackwardInput {
        params,
        input_shape: Shape::new(x).unwrap(),
    };
    let flops = 2 * (y_dims.iter().product::<usize>() * w_dims[1..].iter().product::<usize>());
    bench_ops(
        c,
        "conv2d_backward_input",
        id,
        &[(&op, vec![&dy, &w])],
        flops as u64,
    );
}

/// Forward, dx and dw of a depthwise 3 x 3 convolution of `x`, stride 1, padding 1 (a
/// MobileNet layer), each timed alone.
fn bench_depthwise(c: &mut Criterion, id: &str, x: &[usize]) {
    let mut rng = Rng::new(10);
    let channels = x[1];
    let w_dims = [channels, 1, 3, 3];
    let params = ConvParams::new(2).padding(1).groups(channels);
    let tx = random_tensor(&mut rng, x);
    let w = random_tensor(&mut rng, &w_dims);
    let b = random_tensor(&mut rng, &[channels]);
    let dy = random_tensor(&mut rng, x);
    let flops = 2 * 9 * x.iter().product::<usize>() as u64;
    let forward = ConvForward {
        params: params.clone(),
        relu: false,
    };
    bench_ops(
        c,
        "conv2d_depthwise_forward",
        id,
        &[(&forward, vec![&tx, &w, &b])],
        flops,
    );
    let input_grad = ConvBackwardInput {
        params: params.clone(),
        input_shape: Shape::new(x).unwrap(),
    };
    bench_ops(
        c,
        "conv2d_depthwise_backward_input",
        id,
        &[(&input_grad, vec![&dy, &w])],
        flops,
    );
    let weight_grad = ConvBackwardWeight {
        params,
        weight_shape: Shape::new(&w_dims).unwrap(),
    };
    bench_ops(
        c,
        "conv2d_depthwise_backward_weight",
        id,
        &[(&weight_grad, vec![&tx, &dy])],
        flops,
    );
}

pub fn benches(c: &mut Criterion) {
    bench_depthwise(c, "n1_c128_h56_w56_3x3", &[1, 128, 56, 56]);
    bench_image_gradient(
        c,
        "n1_c3_h256_w256_k64_3x3_s2",
        &[1, 3, 256, 256],
        64,
        &[3, 3],
        2,
    );
    bench_forward(
        c,
        "conv2d_forward",
        "n1_c128_h64_w64_k256_3x3",
        ConvShape {
            x: &[1, 128, 64, 64],
            o: 256,
            kernel: &[3, 3],
        },
    );
    bench_backward(
        c,
        "conv2d_backward",
        "n1_c128_h64_w64_k256_3x3",
        ConvShape {
            x: &[1, 128, 64, 64],
            o: 256,
            kernel: &[3, 3],
        },
    );
    bench_forward(
        c,
        "conv2d_forward",
        "n32_c32_h32_w32_k64_3x3",
        ConvShape {
            x: &[32, 32, 32, 32],
            o: 64,
            kernel: &[3, 3],
        },
    );
    if crate::gpu_sized_shapes() {
        let gpu_sized = || ConvShape {
            x: &[32, 256, 56, 56],
            o: 256,
            kernel: &[3, 3],
        };
        bench_forward(
            c,
            "conv2d_forward",
            "n32_c256_h56_w56_k256_3x3",
            gpu_sized(),
        );
        bench_backward(
            c,
            "conv2d_backward",
            "n32_c256_h56_w56_k256_3x3",
            gpu_sized(),
        );
    }
    bench_forward(
        c,
        "conv3d_forward",
        "n2_c16_d16_h16_w16_k32_3x3x3",
        ConvShape {
            x: &[2, 16, 16, 16, 16],
            o: 32,
            kernel: &[3, 3, 3],
        },
    );
    bench_forward(
        c,
        "conv1d_forward",
        "n16_c64_l1024_k128_5",
        ConvShape {
            x: &[16, 64, 1024],
            o: 128,
            kernel: &[5],
        },
    );
}
