//! Convolution in float64: NCW / NCHW / NCDHW inputs, OIW / OIHW / OIDHW weights (O, C / groups,
//! kernel...), zero padding before and after each dim (ONNX's auto padding computed here from
//! its definition), channel groups; and the transposed convolution, written as the scatter of
//! its definition.
//! Every rank is lifted to 3-D by giving the missing leading spatial dims size 1 (kernel 1,
//! stride 1, padding 0, dilation 1), which changes no value.
//!
//! The backward of the input is written as a scatter (the adjoint of the forward loop), not as
//! the GPU's gather, so that the two are computed differently.

use wgnn::ops::conv::{ConvParams, ConvTransposeParams};
use wgnn::ops::padding::AutoPad;

/// Shapes and hyper-parameters lifted to three spatial dims.
struct Lifted {
    n: usize,
    c: usize,
    o: usize,
    input: [usize; 3],
    kernel: [usize; 3],
    output: [usize; 3],
    groups: usize,
    stride: [usize; 3],
    pad_begin: [usize; 3],
    dilation: [usize; 3],
}

fn lift3(values: &[usize], fill: usize) -> [usize; 3] {
    let mut out = [fill; 3];
    out[3 - values.len()..].copy_from_slice(values);
    out
}

/// ONNX's SAME padding of one dim: the output has ceil(in / stride) positions, the total
/// padding that needs split in two, the odd element at the end (upper) or the start (lower).
fn same_padding(mode: AutoPad, input: usize, span: usize, stride: usize) -> (usize, usize) {
    let out = input.div_ceil(stride);
    let total = ((out - 1) * stride + span).saturating_sub(input);
    match mode {
        AutoPad::SameUpper => (total / 2, total - total / 2),
        AutoPad::SameLower => (total - total / 2, total / 2),
        AutoPad::Valid => (0, 0),
    }
}

fn lift(x_shape: &[usize], w_shape: &[usize], p: &ConvParams) -> Lifted {
    let spatial = x_shape.len() - 2;
    assert_eq!(
        w_shape.len(),
        x_shape.len(),
        "reference conv: rank mismatch"
    );
    assert_eq!(
        w_shape[1] * p.groups,
        x_shape[1],
        "reference conv: channel mismatch"
    );
    assert_eq!(w_shape[0] % p.groups, 0, "reference conv: groups");
    assert_eq!(p.stride.len(), spatial);
    let input = lift3(&x_shape[2..], 1);
    let kernel = lift3(&w_shape[2..], 1);
    let stride = lift3(&p.stride, 1);
    let dilation = lift3(&p.dilation, 1);
    let mut pad_begin = lift3(&p.padding.begin, 0);
    let mut pad_end = lift3(&p.padding.end, 0);
    let mut output = [0; 3];
    for d in 0..3 {
        let span = dilation[d] * (kernel[d] - 1) + 1;
        if let (Some(mode), true) = (p.auto_pad, d >= 3 - spatial) {
            (pad_begin[d], pad_end[d]) = same_padding(mode, input[d], span, stride[d]);
        }
        let padded = input[d] + pad_begin[d] + pad_end[d];
        assert!(padded >= span, "reference conv: output would be empty");
        output[d] = (padded - span) / stride[d] + 1;
    }
    Lifted {
        n: x_shape[0],
        c: x_shape[1],
        o: w_shape[0],
        input,
        kernel,
        output,
        groups: p.groups,
        stride,
        pad_begin,
        dilation,
    }
}

/// The output shape [N, O, spatial...] of a convolution.
pub fn output_shape(x_shape: &[usize], w_shape: &[usize], p: &ConvParams) -> Vec<usize> {
    let l = lift(x_shape, w_shape, p);
    let mut shape = vec![l.n, l.o];
    shape.extend_from_slice(&l.output[3 - (x_shape.len() - 2)..]);
    shape
}

/// Every (z, y, x) of a d x h x w box, x fastest.
fn grid(d: usize, h: usize, w: usize) -> impl Iterator<Item = (usize, usize, usize)> {
    (0..d).flat_map(move |z| (0..h).flat_map(move |y| (0..w).map(move |x| (z, y, x))))
}

impl Lifted {
    fn x_index(&self, n: usize, c: usize, z: usize, y: usize, x: usize) -> usize {
        (((n * self.c + c) * self.input[0] + z) * self.input[1] + y) * self.input[2] + x
    }

    /// The weight of output channel o, input channel c (of all C; it must be in o's group).
    fn w_index(&self, o: usize, c: usize, z: usize, y: usize, x: usize) -> usize {
        let c_group = self.c / self.groups;
        let cg = c % c_group;
        (((o * c_group + cg) * self.kernel[0] + z) * self.kernel[1] + y) * self.kernel[2] + x
    }

    fn y_index(&self, n: usize, o: usize, z: usize, y: usize, x: usize) -> usize {
        (((n * self.o + o) * self.output[0] + z) * self.output[1] + y) * self.output[2] + x
    }

    /// The input coordinate along dim `d` that kernel tap `k` of output `out` reads, or None
    /// in the zero padding.
    fn input_at(&self, out: usize, k: usize, d: usize) -> Option<usize> {
        let pos =
            (out * self.stride[d] + k * self.dilation[d]) as isize - self.pad_begin[d] as isize;
        (pos >= 0 && (pos as usize) < self.input[d]).then_some(pos as usize)
    }

    /// Calls `visit(x_index, w_index, y_index)` for every product x * w that contributes to an
    /// output, skipping taps that fall in the zero padding.
    fn for_each_tap(&self, mut visit: impl FnMut(usize, usize, usize)) {
        let [od, oh, ow] = self.output;
        let [kd, kh, kw] = self.kernel;
        let (c_group, o_group) = (self.c / self.groups, self.o / self.groups);
        for n in 0..self.n {
            for o in 0..self.o {
                let first_c = o / o_group * c_group;
                for (oz, oy, ox) in grid(od, oh, ow) {
                    let yi = self.y_index(n, o, oz, oy, ox);
                    for c in first_c..first_c + c_group {
                        for (kz, ky, kx) in grid(kd, kh, kw) {
                            let (Some(iz), Some(iy), Some(ix)) = (
                                self.input_at(oz, kz, 0),
                                self.input_at(oy, ky, 1),
                                self.input_at(ox, kx, 2),
                            ) else {
                                continue;
                            };
                            visit(
                                self.x_index(n, c, iz, iy, ix),
                                self.w_index(o, c, kz, ky, kx),
                                yi,
                            );
                        }
                    }
                }
            }
        }
    }

    fn output_spatial(&self) -> usize {
        self.output.iter().product()
    }
}

/// y[n, o, pos] = bias[o] + sum over c and kernel taps of x * w.
pub fn forward(
    x: &[f64],
    x_shape: &[usize],
    w: &[f64],
    w_shape: &[usize],
    bias: Option<&[f64]>,
    p: &ConvParams,
) -> Vec<f64> {
    let l = lift(x_shape, w_shape, p);
    let spatial = l.output_spatial();
    let mut y = vec![0.0; l.n * l.o * spatial];
    if let Some(b) = bias {
        for (i, v) in y.iter_mut().enumerate() {
            *v = b[(i / spatial) % l.o];
        }
    }
    l.for_each_tap(|xi, wi, yi| y[yi] += x[xi] * w[wi]);
    y
}

/// dL/dx given dL/dy: each product x * w sends dy * w back to x.
pub fn backward_input(
    dy: &[f64],
    w: &[f64],
    w_shape: &[usize],
    x_shape: &[usize],
    p: &ConvParams,
) -> Vec<f64> {
    let l = lift(x_shape, w_shape, p);
    let mut dx = vec![0.0; x_shape.iter().product()];
    l.for_each_tap(|xi, wi, yi| dx[xi] += dy[yi] * w[wi]);
    dx
}

/// dL/dw given dL/dy: each product x * w sends dy * x back to w.
pub fn backward_weight(
    x: &[f64],
    x_shape: &[usize],
    dy: &[f64],
    w_shape: &[usize],
    p: &ConvParams,
) -> Vec<f64> {
    let l = lift(x_shape, w_shape, p);
    let mut dw = vec![0.0; w_shape.iter().product()];
    l.for_each_tap(|xi, wi, yi| dw[wi] += dy[yi] * x[xi]);
    dw
}

/// dL/dbias: dy summed over the batch and every output position. `y_shape` is [N, O, ...].
pub fn backward_bias(dy: &[f64], y_shape: &[usize]) -> Vec<f64> {
    let o = y_shape[1];
    let spatial: usize = y_shape[2..].iter().product();
    let mut db = vec![0.0; o];
    for (i, v) in dy.iter().enumerate() {
        db[(i / spatial) % o] += v;
    }
    db
}

/// A transposed convolution's shapes and hyper-parameters lifted to three spatial dims: x
/// [N, C_in, input], w [C_in, O / groups, kernel], y [N, O, output].
struct TransposeLifted {
    n: usize,
    c_in: usize,
    o: usize,
    groups: usize,
    input: [usize; 3],
    kernel: [usize; 3],
    output: [usize; 3],
    stride: [usize; 3],
    pad_begin: [usize; 3],
    dilation: [usize; 3],
}

fn lift_transpose(
    x_shape: &[usize],
    w_shape: &[usize],
    p: &ConvTransposeParams,
) -> TransposeLifted {
    let spatial = x_shape.len() - 2;
    let conv = &p.conv;
    assert_eq!(
        w_shape.len(),
        x_shape.len(),
        "reference conv_transpose: rank"
    );
    assert_eq!(w_shape[0], x_shape[1], "reference conv_transpose: channels");
    let input = lift3(&x_shape[2..], 1);
    let kernel = lift3(&w_shape[2..], 1);
    let stride = lift3(&conv.stride, 1);
    let dilation = lift3(&conv.dilation, 1);
    let extra = lift3(&p.output_padding, 0);
    let mut pad_begin = lift3(&conv.padding.begin, 0);
    let mut pad_end = lift3(&conv.padding.end, 0);
    let mut output = [0; 3];
    for d in 0..3 {
        // Every position that some tap of some input reaches, plus output_padding at the end.
        let full = (input[d] - 1) * stride[d] + (kernel[d] - 1) * dilation[d] + 1 + extra[d];
        if let (Some(mode), true) = (conv.auto_pad, d >= 3 - spatial) {
            // ONNX ConvTranspose: SAME keeps in * stride positions.
            let total = full - input[d] * stride[d];
            (pad_begin[d], pad_end[d]) = match mode {
                AutoPad::SameUpper => (total / 2, total - total / 2),
                AutoPad::SameLower => (total - total / 2, total / 2),
                AutoPad::Valid => (0, 0),
            };
        }
        assert!(
            full > pad_begin[d] + pad_end[d],
            "reference conv_transpose: empty output"
        );
        output[d] = full - pad_begin[d] - pad_end[d];
    }
    TransposeLifted {
        n: x_shape[0],
        c_in: x_shape[1],
        o: w_shape[1] * conv.groups,
        groups: conv.groups,
        input,
        kernel,
        output,
        stride,
        pad_begin,
        dilation,
    }
}

impl TransposeLifted {
    /// Calls `visit(x_index, w_index, y_index)` for every product x * w that lands on an output
    /// position: input i of channel ci sends x * w[ci, og, t] to position
    /// i * stride - pad_begin + t * dilation of output channel (group of ci) * O / groups + og.
    fn for_each_tap(&self, mut visit: impl FnMut(usize, usize, usize)) {
        let [id, ih, iw] = self.input;
        let [kd, kh, kw] = self.kernel;
        let (c_group, o_group) = (self.c_in / self.groups, self.o / self.groups);
        let taps = kd * kh * kw;
        let place = |i: usize, t: usize, d: usize| {
            let pos =
                (i * self.stride[d] + t * self.dilation[d]) as isize - self.pad_begin[d] as isize;
            (pos >= 0 && (pos as usize) < self.output[d]).then_some(pos as usize)
        };
        for n in 0..self.n {
            for ci in 0..self.c_in {
                for (iz, iy, ix) in grid(id, ih, iw) {
                    let xi = (((n * self.c_in + ci) * id + iz) * ih + iy) * iw + ix;
                    for og in 0..o_group {
                        let o = ci / c_group * o_group + og;
                        for (t, (kz, ky, kx)) in grid(kd, kh, kw).enumerate() {
                            let (Some(z), Some(y), Some(x)) =
                                (place(iz, kz, 0), place(iy, ky, 1), place(ix, kx, 2))
                            else {
                                continue;
                            };
                            let [od, oh, ow] = self.output;
                            let yi = (((n * self.o + o) * od + z) * oh + y) * ow + x;
                            visit(xi, (ci * o_group + og) * taps + t, yi);
                        }
                    }
                }
            }
        }
    }
}

/// The output shape [N, O, spatial...] of a transposed convolution.
pub fn transpose_output_shape(
    x_shape: &[usize],
    w_shape: &[usize],
    p: &ConvTransposeParams,
) -> Vec<usize> {
    let l = lift_transpose(x_shape, w_shape, p);
    let mut shape = vec![l.n, l.o];
    shape.extend_from_slice(&l.output[3 - (x_shape.len() - 2)..]);
    shape
}

/// y = conv_transpose(x, w) + bias, as the scatter of its definition.
pub fn transpose_forward(
    x: &[f64],
    x_shape: &[usize],
    w: &[f64],
    w_shape: &[usize],
    bias: Option<&[f64]>,
    p: &ConvTransposeParams,
) -> Vec<f64> {
    let l = lift_transpose(x_shape, w_shape, p);
    let spatial: usize = l.output.iter().product();
    let mut y = vec![0.0; l.n * l.o * spatial];
    if let Some(b) = bias {
        for (i, v) in y.iter_mut().enumerate() {
            *v = b[(i / spatial) % l.o];
        }
    }
    l.for_each_tap(|xi, wi, yi| y[yi] += x[xi] * w[wi]);
    y
}

/// dL/dx of the transposed convolution given dL/dy: each product sends dy * w back to x.
pub fn transpose_backward_input(
    dy: &[f64],
    w: &[f64],
    w_shape: &[usize],
    x_shape: &[usize],
    p: &ConvTransposeParams,
) -> Vec<f64> {
    let l = lift_transpose(x_shape, w_shape, p);
    let mut dx = vec![0.0; x_shape.iter().product()];
    l.for_each_tap(|xi, wi, yi| dx[xi] += dy[yi] * w[wi]);
    dx
}

/// dL/dw of the transposed convolution given dL/dy: each product sends dy * x back to w.
pub fn transpose_backward_weight(
    x: &[f64],
    x_shape: &[usize],
    dy: &[f64],
    w_shape: &[usize],
    p: &ConvTransposeParams,
) -> Vec<f64> {
    let l = lift_transpose(x_shape, w_shape, p);
    let mut dw = vec![0.0; w_shape.iter().product()];
    l.for_each_tap(|xi, wi, yi| dw[wi] += dy[yi] * x[xi]);
    dw
}
