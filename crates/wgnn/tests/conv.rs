//! Convolution 1-D / 2-D / 3-D against the float64 reference, forward and backward.
use wgnn_reference::testing as common;

use common::*;
use wgnn::ops::conv::{
    conv_output_shape, ConvBackwardBias, ConvBackwardInput, ConvBackwardWeight, ConvForward,
    ConvParams, FEW_CHANNELS,
};
use wgnn::ops::padding::{AutoPad, Pads};
use wgnn::rng::Rng;
use wgnn::{Error, Graph, Shape};
use wgnn_reference::conv as reference;

struct Case {
    name: &'static str,
    x: Vec<usize>,
    w: Vec<usize>,
    params: ConvParams,
    bias: bool,
}

fn case(name: &'static str, x: &[usize], w: &[usize], params: ConvParams, bias: bool) -> Case {
    Case {
        name,
        x: x.to_vec(),
        w: w.to_vec(),
        params,
        bias,
    }
}

/// Small shapes covering every path: each rank, batch > 1, odd sizes, stride 2, padding,
/// dilation 2, non-square kernels, per-dim values, with and without bias.
fn cases() -> Vec<Case> {
    vec![
        case("1d", &[2, 3, 11], &[4, 3, 3], ConvParams::new(1), true),
        case(
            "1d stride 2, pad 2, dilation 2",
            &[3, 2, 13],
            &[5, 2, 4],
            ConvParams::new(1).stride(2).padding(2).dilation(2),
            false,
        ),
        case(
            "2d same padding",
            &[2, 3, 7, 9],
            &[5, 3, 3, 3],
            ConvParams::new(2).padding(1),
            true,
        ),
        case(
            "2d non-square kernel, per-dim stride and padding",
            &[2, 4, 9, 8],
            &[3, 4, 2, 3],
            ConvParams::new(2).strides(&[2, 1]).paddings(&[1, 0]),
            true,
        ),
        case(
            "2d stride 2, pad 2, dilation 2",
            &[3, 2, 10, 11],
            &[4, 2, 3, 3],
            ConvParams::new(2).stride(2).padding(2).dilation(2),
            false,
        ),
        case(
            "2d per-dim dilation",
            &[2, 3, 8, 7],
            &[6, 3, 3, 1],
            ConvParams::new(2)
                .strides(&[1, 2])
                .paddings(&[0, 1])
                .dilations(&[2, 1]),
            true,
        ),
        case(
            "3d same padding",
            &[2, 3, 5, 6, 7],
            &[4, 3, 3, 3, 3],
            ConvParams::new(3).padding(1),
            true,
        ),
        case(
            "3d non-cubic, per-dim stride, padding, dilation",
            &[2, 2, 7, 6, 9],
            &[3, 2, 2, 3, 2],
            ConvParams::new(3)
                .strides(&[2, 1, 2])
                .paddings(&[1, 1, 0])
                .dilations(&[1, 2, 2]),
            false,
        ),
    ]
}

/// Shapes that span several workgroup tiles in every GEMM dimension, with remainders, in every
/// tile shape (conv.wgsl: 16 x 256 for at most 16 GEMM rows where the device has the workgroup
/// memory, 32 x 128 for at most 32, 64 x 64 above; ops/conv/subgroup.wgsl: 8, 16 or 32 x 256 for at
/// most 8, 16 and above), and weight gradients whose reduction is split over workgroups (the
/// two-pass path), with one tile and with several; the subgroup weight gradient reads dy as vec4s
/// where the output positions are a multiple of 4 (1d long, the last two), as scalars elsewhere,
/// in tiles of 64 rows for more than 32 (the last); the subgroup forward reads the weights as
/// vec4s where K = C * taps is a multiple of 4 (in tiles of 8, 16, 32 rows and of 64 for more than
/// 32, with the upper 32 rows partly or wholly past M: "several square tiles", the last two) and
/// as scalars elsewhere (also above 32 rows: the first). The subgroup dx reads a transposed copy
/// of the weights as vec4s where O is a multiple of 4 (in tiles of 8, 16 and 32 rows above, and
/// of 64 for more than 32 input channels where that leaves two workgroups or more: the 2d and
/// 3d of the last three, the upper 32 rows partly past M, and in two row tiles, the second
/// wholly past M in its upper half; 32 where 64 would leave one, the 1d), as scalars elsewhere
/// (also above 32 rows: "several square tiles").
fn large_cases() -> Vec<Case> {
    vec![
        case(
            "2d several tiles",
            &[2, 5, 9, 9],
            &[70, 5, 3, 3],
            ConvParams::new(2).padding(1),
            true,
        ),
        case(
            "2d several square tiles in every GEMM",
            &[2, 40, 7, 7],
            &[70, 40, 3, 3],
            ConvParams::new(2).padding(1),
            true,
        ),
        case(
            "2d 17 to 32 GEMM rows in every pass, stride 2",
            &[2, 20, 19, 21],
            &[24, 20, 3, 3],
            ConvParams::new(2).stride(2).padding(1),
            true,
        ),
        case(
            "2d 9 to 16 GEMM rows in every pass, several column tiles",
            &[3, 12, 13, 11],
            &[14, 12, 3, 3],
            ConvParams::new(2).padding(1),
            true,
        ),
        case(
            "1d long: split weight reduction",
            &[2, 2, 1500],
            &[3, 2, 3],
            ConvParams::new(1).padding(1),
            true,
        ),
        case(
            "2d split weight reduction, stride 2",
            &[4, 3, 33, 32],
            &[8, 3, 3, 3],
            ConvParams::new(2).stride(2).padding(1),
            true,
        ),
        case(
            "2d split weight reduction over two column tiles of 17 to 32 rows",
            &[2, 29, 37, 41],
            &[20, 29, 3, 3],
            ConvParams::new(2).padding(1),
            true,
        ),
        case(
            "2d 9 to 16 GEMM rows, output positions a multiple of 4",
            &[2, 12, 12, 10],
            &[14, 12, 3, 3],
            ConvParams::new(2).padding(1),
            true,
        ),
        case(
            "2d split weight reduction over two column tiles, output positions a multiple of 4, \
             33 to 64 GEMM rows",
            &[2, 29, 36, 40],
            &[40, 29, 3, 3],
            ConvParams::new(2).padding(1),
            true,
        ),
        case(
            "2d 33 to 64 GEMM rows, K a multiple of 4, two column tiles",
            &[2, 8, 15, 13],
            &[40, 8, 3, 3],
            ConvParams::new(2).padding(1),
            true,
        ),
        case(
            "2d 1 x 1, 33 to 64 GEMM rows, K a multiple of 4",
            &[3, 16, 10, 9],
            &[36, 16, 1, 1],
            ConvParams::new(2),
            true,
        ),
        case(
            "2d 33 to 64 input channels, O a multiple of 4, stride 2, pad 2, dilation 2, two \
             column tiles",
            &[2, 44, 13, 12],
            &[8, 44, 3, 3],
            ConvParams::new(2).stride(2).padding(2).dilation(2),
            true,
        ),
        case(
            "1d 33 to 64 input channels, O a multiple of 4, stride 3, one column tile",
            &[2, 36, 30],
            &[12, 36, 5],
            ConvParams::new(1).stride(3).padding(2),
            true,
        ),
        case(
            "3d 65 input channels and more, O a multiple of 4",
            &[2, 70, 3, 4, 5],
            &[4, 70, 2, 3, 2],
            ConvParams::new(3).padding(1),
            true,
        ),
    ]
}

/// dx of convolutions with at most `FEW_CHANNELS` input channels takes its own kernel (one input
/// position per invocation, positions grouped by stride phase, 4 along W, weights staged in
/// chunks of output channels): every channel count, rank, stride (with phases of unequal size),
/// padding and dilation, widths that leave partial groups of 4, more output channels than one
/// staged chunk holds, and phases of more than one workgroup's 64 blocks (the broadcasting
/// kernel interleaves the phases by workgroup). So does dw (blocks of 8 output channels by 9
/// taps, in slices of the terms): output channels that leave a partial block (45, 5, 7), kernels
/// of more than 9 taps (5 x 5, 3-D), one slice (the 1-D case's 18 terms) and many.
fn few_channel_cases() -> Vec<Case> {
    vec![
        case(
            "2d 3 channels, stride 2 (SqueezeNet's conv1)",
            &[2, 3, 17, 15],
            &[64, 3, 3, 3],
            ConvParams::new(2).stride(2),
            true,
        ),
        case(
            "2d 2 channels, stride 2, pad 2: two chunks of output channels",
            &[2, 2, 9, 11],
            &[45, 2, 5, 5],
            ConvParams::new(2).stride(2).padding(2),
            false,
        ),
        case(
            "2d 1 channel, per-dim stride, padding and dilation",
            &[3, 1, 10, 13],
            &[4, 1, 3, 2],
            ConvParams::new(2)
                .strides(&[3, 2])
                .paddings(&[1, 2])
                .dilations(&[2, 3]),
            true,
        ),
        case(
            "1d 4 channels, stride 4, pad 3, dilation 2",
            &[3, 4, 23],
            &[5, 4, 5],
            ConvParams::new(1).stride(4).padding(3).dilation(2),
            false,
        ),
        case(
            "3d 2 channels, per-dim stride, padding, dilation",
            &[2, 2, 7, 6, 11],
            &[3, 2, 2, 3, 2],
            ConvParams::new(3)
                .strides(&[2, 1, 3])
                .paddings(&[1, 0, 1])
                .dilations(&[1, 2, 2]),
            true,
        ),
        case(
            "2d 3 channels, stride 2, batch 2: more than 64 blocks of 4 positions per phase",
            &[2, 3, 41, 37],
            &[7, 3, 3, 3],
            ConvParams::new(2).stride(2),
            false,
        ),
        case(
            "2d 2 channels, stride 3, padding, dilation, batch 3: partial groups of 64 blocks",
            &[3, 2, 61, 45],
            &[5, 2, 3, 3],
            ConvParams::new(2).stride(3).padding(1).dilation(2),
            true,
        ),
        case(
            "2d 3 channels, stride 1, same padding (VGG's conv1)",
            &[2, 3, 7, 9],
            &[6, 3, 3, 3],
            ConvParams::new(2).padding(1),
            true,
        ),
    ]
}

/// `cases()` with more than `FEW_CHANNELS` input channels, so that their dx takes the GEMM, and
/// a kernel with more taps than the few-channel kernel stages, which takes the GEMM too.
fn gemm_input_gradient_cases() -> Vec<Case> {
    let mut all: Vec<Case> = cases()
        .into_iter()
        .map(|mut c| {
            c.x[1] = FEW_CHANNELS + 1;
            c.w[1] = FEW_CHANNELS + 1;
            c
        })
        .collect();
    all.push(case(
        "1d 1 channel, 1025 taps",
        &[2, 1, 1030],
        &[2, 1, 1025],
        ConvParams::new(1),
        false,
    ));
    all
}

/// Tiny shapes for the finite-difference check of the reference (float64 rounding of the loss
/// grows with its number of terms), still with every option on each rank.
fn finite_difference_cases() -> Vec<Case> {
    vec![
        case(
            "1d",
            &[2, 2, 7],
            &[3, 2, 3],
            ConvParams::new(1).stride(2).padding(2).dilation(2),
            true,
        ),
        case(
            "2d",
            &[2, 2, 5, 6],
            &[3, 2, 2, 3],
            ConvParams::new(2)
                .strides(&[2, 1])
                .paddings(&[1, 1])
                .dilations(&[1, 2]),
            true,
        ),
        case(
            "3d",
            &[2, 2, 3, 4, 5],
            &[2, 2, 2, 3, 2],
            ConvParams::new(3)
                .strides(&[1, 2, 1])
                .paddings(&[1, 0, 1])
                .dilations(&[2, 1, 1]),
            true,
        ),
    ]
}

fn pads(begin: &[usize], end: &[usize]) -> Pads {
    Pads {
        begin: begin.to_vec(),
        end: end.to_vec(),
    }
}

/// Grouped convolutions, which every device runs on the grouped kernels: depthwise (with a
/// channel multiplier too), groups of several input and output channels, each rank, stride,
/// asymmetric and large padding, dilation, batch > 1, widths that leave partial blocks of 4,
/// and more weights than one dispatch dimension holds (the weight gradient's workgroups).
/// `Graph::conv` runs those of at least 8 input and output channels per group (the last two)
/// as one ungrouped convolution per group instead: the ops check the grouped kernels, the
/// graph checks (`check_graph_vjp`, `check_conv_relu_vjp`) both routes.
fn grouped_cases() -> Vec<Case> {
    vec![
        case(
            "1d depthwise, stride 2, pad 1",
            &[2, 6, 13],
            &[6, 1, 3],
            ConvParams::new(1).stride(2).padding(1).groups(6),
            true,
        ),
        case(
            "2d depthwise with multiplier 2, dilation 2, asymmetric padding",
            &[2, 3, 9, 11],
            &[6, 1, 3, 3],
            ConvParams::new(2)
                .dilation(2)
                .pads(pads(&[2, 1], &[1, 3]))
                .groups(3),
            false,
        ),
        case(
            "2d 2 groups of 4 input and 3 output channels, per-dim stride",
            &[3, 8, 7, 10],
            &[6, 4, 3, 2],
            ConvParams::new(2)
                .strides(&[2, 3])
                .paddings(&[1, 0])
                .groups(2),
            true,
        ),
        case(
            "3d depthwise, per-dim stride, padding, dilation",
            &[2, 4, 5, 6, 7],
            &[4, 1, 3, 2, 3],
            ConvParams::new(3)
                .strides(&[1, 2, 2])
                .paddings(&[1, 0, 2])
                .dilations(&[2, 1, 1])
                .groups(4),
            true,
        ),
        case(
            "2d 4 groups of 1 input channel, padding larger than the kernel",
            &[2, 4, 6, 5],
            &[8, 1, 3, 3],
            ConvParams::new(2).padding(4).groups(4),
            true,
        ),
        case(
            "2d depthwise 3 x 3 at 17 x 19, SAME_UPPER, stride 2",
            &[2, 16, 17, 19],
            &[16, 1, 3, 3],
            ConvParams::new(2)
                .stride(2)
                .auto_pad(AutoPad::SameUpper)
                .groups(16),
            true,
        ),
        case(
            "2d 3 groups of 8 input and 10 output channels, stride 2: per-group GEMMs through \
             the graph",
            &[2, 24, 9, 8],
            &[30, 8, 3, 3],
            ConvParams::new(2)
                .stride(2)
                .pads(pads(&[1, 0], &[0, 2]))
                .groups(3),
            true,
        ),
        case(
            "2d 2 groups, 73728 weights: more weight-gradient workgroups than one dimension",
            &[1, 128, 5, 4],
            &[128, 64, 3, 3],
            ConvParams::new(2).padding(1).groups(2),
            false,
        ),
    ]
}

/// Asymmetric, automatic and large padding on ungrouped convolutions, whose kernels shift
/// coordinates by the padding before each dim (the padding after changes only the output
/// size): with more than `FEW_CHANNELS` input channels (dx by GEMM; the subgroup GEMMs' vec4
/// paths where K = C * taps, O or the output positions are multiples of 4, scalar elsewhere)
/// and with few (dx by the few-channel gather).
fn padding_cases() -> Vec<Case> {
    vec![
        case(
            "1d asymmetric padding (0 before, 3 after), stride 2",
            &[2, 5, 12],
            &[4, 5, 3],
            ConvParams::new(1).stride(2).pads(pads(&[0], &[3])),
            true,
        ),
        case(
            "2d asymmetric padding per dim, dilation 2, K and O multiples of 4",
            &[2, 8, 8, 9],
            &[8, 8, 2, 2],
            ConvParams::new(2).dilation(2).pads(pads(&[2, 0], &[1, 3])),
            false,
        ),
        case(
            "2d SAME_UPPER, stride 2",
            &[2, 6, 9, 10],
            &[5, 6, 3, 3],
            ConvParams::new(2).stride(2).auto_pad(AutoPad::SameUpper),
            true,
        ),
        case(
            "2d SAME_LOWER, stride 2, even kernel",
            &[2, 6, 9, 10],
            &[4, 6, 4, 2],
            ConvParams::new(2).stride(2).auto_pad(AutoPad::SameLower),
            true,
        ),
        case(
            "3d SAME_UPPER, per-dim stride and dilation",
            &[2, 5, 5, 6, 7],
            &[3, 5, 2, 3, 2],
            ConvParams::new(3)
                .strides(&[1, 2, 3])
                .dilations(&[2, 1, 1])
                .auto_pad(AutoPad::SameUpper),
            false,
        ),
        case(
            "1d VALID, which ignores the padding given",
            &[2, 5, 11],
            &[3, 5, 4],
            ConvParams::new(1).padding(3).auto_pad(AutoPad::Valid),
            true,
        ),
        case(
            "2d padding 5 around a 3 x 3 kernel",
            &[2, 6, 4, 5],
            &[3, 6, 3, 3],
            ConvParams::new(2).padding(5),
            true,
        ),
        case(
            "1d padding far past the kernel, stride 3",
            &[2, 5, 7],
            &[4, 5, 2],
            ConvParams::new(1).stride(3).pads(pads(&[7], &[4])),
            false,
        ),
        case(
            "2d 3 channels, asymmetric padding, stride 2",
            &[2, 3, 11, 9],
            &[6, 3, 3, 3],
            ConvParams::new(2).stride(2).pads(pads(&[0, 2], &[2, 1])),
            true,
        ),
        case(
            "2d 2 channels, SAME_LOWER, stride 3, dilation 2",
            &[3, 2, 10, 8],
            &[5, 2, 3, 2],
            ConvParams::new(2)
                .stride(3)
                .dilation(2)
                .auto_pad(AutoPad::SameLower),
            false,
        ),
        case(
            "2d 1 channel, padding larger than the kernel, stride 2",
            &[2, 1, 5, 6],
            &[4, 1, 3, 3],
            ConvParams::new(2).stride(2).padding(4),
            true,
        ),
    ]
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// An absolute floor for comparisons of sums of `terms` products of values in [-1, 1]:
/// float32 rounding grows with the number of terms.
fn floor_for(terms: usize) -> f64 {
    1e-3 * terms.max(1) as f64
}

struct Data {
    x: Vec<f64>,
    w: Vec<f64>,
    b: Option<Vec<f64>>,
    y_shape: Vec<usize>,
    up: Vec<f64>,
}

fn data(c: &Case, seed: u64) -> Data {
    let mut rng = Rng::new(seed);
    let x = random_nonzero(&mut rng, numel(&c.x));
    let w = random_nonzero(&mut rng, numel(&c.w));
    let b = c.bias.then(|| random_nonzero(&mut rng, c.w[0]));
    let y_shape = reference::output_shape(&c.x, &c.w, &c.params);
    let up = random_nonzero(&mut rng, numel(&y_shape));
    Data {
        x,
        w,
        b,
        y_shape,
        up,
    }
}

fn taps(c: &Case) -> usize {
    numel(&c.w[2..])
}

fn check_forward(c: &Case, seed: u64) {
    check_forward_with(c, seed, false);
}

/// `relu`: the fused ReLU, against max(reference, 0).
fn check_forward_with(c: &Case, seed: u64, relu: bool) {
    let d = data(c, seed);
    let mut expect = reference::forward(&d.x, &c.x, &d.w, &c.w, d.b.as_deref(), &c.params);
    if relu {
        expect.iter_mut().for_each(|v| *v = v.max(0.0));
    }
    let tx = tensor(&c.x, &d.x);
    let tw = tensor(&c.w, &d.w);
    let op = ConvForward {
        params: c.params.clone(),
        relu,
    };
    let y = match &d.b {
        Some(b) => eval(&op, &[&tx, &tw, &tensor(&[c.w[0]], b)]),
        None => eval(&op, &[&tx, &tw]),
    };
    let floor = floor_for(c.x[1] * taps(c));
    assert_close(&format!("{} forward", c.name), &y, &expect, 1e-4, floor);
}

fn check_backward_ops(c: &Case, seed: u64) {
    let d = data(c, seed);
    let tw = tensor(&c.w, &d.w);
    let tx = tensor(&c.x, &d.x);
    let tup = tensor(&d.y_shape, &d.up);
    let out_positions: usize = numel(&d.y_shape[2..]);

    let dx = eval(
        &ConvBackwardInput {
            params: c.params.clone(),
            input_shape: Shape::new(&c.x).unwrap(),
        },
        &[&tup, &tw],
    );
    let expect_dx = reference::backward_input(&d.up, &d.w, &c.w, &c.x, &c.params);
    let floor = floor_for(c.w[0] * taps(c));
    assert_close(&format!("{} dx", c.name), &dx, &expect_dx, 1e-4, floor);

    let dw = eval(
        &ConvBackwardWeight {
            params: c.params.clone(),
            weight_shape: Shape::new(&c.w).unwrap(),
        },
        &[&tx, &tup],
    );
    let expect_dw = reference::backward_weight(&d.x, &c.x, &d.up, &c.w, &c.params);
    let floor = floor_for(c.x[0] * out_positions);
    assert_close(&format!("{} dw", c.name), &dw, &expect_dw, 1e-4, floor);

    let db = eval(&ConvBackwardBias, &[&tup]);
    let expect_db = reference::backward_bias(&d.up, &d.y_shape);
    assert_close(&format!("{} dbias", c.name), &db, &expect_db, 1e-4, floor);
}

/// y and the gradients of (x, w, bias) for the upstream gradient `d.up`, through a graph of
/// one `conv` (or `conv_relu` when `fused_relu`).
fn conv_graph_vjp(c: &Case, d: &Data, fused_relu: bool) -> (Vec<f32>, Vec<Vec<f32>>) {
    let b_shape = [c.w[0]];
    let mut inputs: Vec<(&[usize], &[f64])> = vec![(&c.x, &d.x), (&c.w, &d.w)];
    if let Some(b) = &d.b {
        inputs.push((&b_shape, b));
    }
    let params = c.params.clone();
    graph_vjp(&inputs, &d.up, &|g, ids| {
        let bias = ids.get(2).copied();
        if fused_relu {
            g.conv_relu(ids[0], ids[1], bias, &params).unwrap()
        } else {
            g.conv(ids[0], ids[1], bias, &params).unwrap()
        }
    })
}

fn check_graph_vjp(c: &Case, seed: u64) {
    let d = data(c, seed);
    let (y, grads) = conv_graph_vjp(c, &d, false);
    let out_positions: usize = numel(&d.y_shape[2..]);
    let expect_y = reference::forward(&d.x, &c.x, &d.w, &c.w, d.b.as_deref(), &c.params);
    let what = |part: &str| format!("{} through the graph: {part}", c.name);
    assert_close(&what("y"), &y, &expect_y, 1e-4, floor_for(c.x[1] * taps(c)));
    assert_close(
        &what("dx"),
        &grads[0],
        &reference::backward_input(&d.up, &d.w, &c.w, &c.x, &c.params),
        1e-4,
        floor_for(c.w[0] * taps(c)),
    );
    let floor = floor_for(c.x[0] * out_positions);
    assert_close(
        &what("dw"),
        &grads[1],
        &reference::backward_weight(&d.x, &c.x, &d.up, &c.w, &c.params),
        1e-4,
        floor,
    );
    if d.b.is_some() {
        assert_close(
            &what("dbias"),
            &grads[2],
            &reference::backward_bias(&d.up, &d.y_shape),
            1e-4,
            floor,
        );
    }
}

#[test]
fn reference_backward_matches_finite_differences() {
    for (i, c) in finite_difference_cases().iter().enumerate() {
        let d = data(c, 100 + i as u64);
        let b = d.b.clone();
        let loss_x = |x: &[f64]| {
            dot(
                &reference::forward(x, &c.x, &d.w, &c.w, b.as_deref(), &c.params),
                &d.up,
            )
        };
        let dx = reference::backward_input(&d.up, &d.w, &c.w, &c.x, &c.params);
        assert_gradient(&format!("{} dx", c.name), &loss_x, &d.x, &dx);

        let loss_w = |w: &[f64]| {
            dot(
                &reference::forward(&d.x, &c.x, w, &c.w, b.as_deref(), &c.params),
                &d.up,
            )
        };
        let dw = reference::backward_weight(&d.x, &c.x, &d.up, &c.w, &c.params);
        assert_gradient(&format!("{} dw", c.name), &loss_w, &d.w, &dw);

        if let Some(b) = &d.b {
            let loss_b = |b: &[f64]| {
                dot(
                    &reference::forward(&d.x, &c.x, &d.w, &c.w, Some(b), &c.params),
                    &d.up,
                )
            };
            let db = reference::backward_bias(&d.up, &d.y_shape);
            assert_gradient(&format!("{} dbias", c.name), &loss_b, b, &db);
        }
    }
}

#[test]
fn reference_output_sizes_follow_the_formula() {
    // floor((in + 2p - d(k - 1) - 1) / s) + 1 per dim.
    let p = ConvParams::new(2)
        .strides(&[2, 3])
        .paddings(&[1, 2])
        .dilations(&[2, 1]);
    assert_eq!(
        reference::output_shape(&[2, 3, 10, 11], &[4, 3, 3, 5], &p),
        vec![2, 4, 4, 4]
    );
    let same = ConvParams::new(1).padding(2);
    assert_eq!(
        reference::output_shape(&[1, 1, 9], &[1, 1, 5], &same),
        vec![1, 1, 9]
    );
}

#[test]
fn forward_matches_reference() {
    for (i, c) in cases().iter().enumerate() {
        check_forward(c, 200 + i as u64);
    }
}

#[test]
fn forward_matches_reference_over_several_tiles() {
    for (i, c) in large_cases().iter().enumerate() {
        check_forward(c, 300 + i as u64);
    }
}

#[test]
fn backward_ops_match_reference() {
    for (i, c) in cases().iter().enumerate() {
        check_backward_ops(c, 400 + i as u64);
    }
}

#[test]
fn backward_ops_match_reference_over_several_tiles() {
    for (i, c) in large_cases().iter().enumerate() {
        check_backward_ops(c, 500 + i as u64);
    }
}

#[test]
fn backward_ops_match_reference_with_few_channels() {
    for (i, c) in few_channel_cases().iter().enumerate() {
        assert!(c.x[1] <= FEW_CHANNELS, "{}", c.name);
        check_backward_ops(c, 800 + i as u64);
        check_graph_vjp(c, 850 + i as u64);
    }
}

#[test]
fn backward_ops_match_reference_with_gemm_input_gradient() {
    for (i, c) in gemm_input_gradient_cases().iter().enumerate() {
        assert!(c.x[1] > FEW_CHANNELS || taps(c) > 1024, "{}", c.name);
        check_backward_ops(c, 900 + i as u64);
    }
}

/// Where the device has subgroups, forward and dx take ops/conv/subgroup.wgsl's kernels everywhere
/// above; this runs conv.wgsl's (the fallback) on the same cases.
#[test]
fn kernels_without_subgroups_match_reference() {
    without_subgroups(|| {
        for (i, c) in cases().iter().chain(&large_cases()).enumerate() {
            check_forward(c, 1000 + i as u64);
            check_backward_ops(c, 1100 + i as u64);
        }
        for (i, c) in gemm_input_gradient_cases().iter().enumerate() {
            check_backward_ops(c, 1200 + i as u64);
        }
        for (i, c) in few_channel_cases().iter().enumerate() {
            check_backward_ops(c, 1250 + i as u64);
        }
    });
}

/// conv_relu through the graph: y = max(conv, 0), and the gradients of conv for the upstream
/// gradient masked by y > 0 (the GPU's y, so that a pre-activation within rounding of 0 cannot
/// flip the mask between the two sides).
fn check_conv_relu_vjp(c: &Case, seed: u64) {
    let d = data(c, seed);
    let (y, grads) = conv_graph_vjp(c, &d, true);
    let mut expect_y = reference::forward(&d.x, &c.x, &d.w, &c.w, d.b.as_deref(), &c.params);
    expect_y.iter_mut().for_each(|v| *v = v.max(0.0));
    let what = |part: &str| format!("{} conv_relu: {part}", c.name);
    assert_close(&what("y"), &y, &expect_y, 1e-4, floor_for(c.x[1] * taps(c)));
    let masked: Vec<f64> =
        d.up.iter()
            .zip(&y)
            .map(|(&u, &v)| if v > 0.0 { u } else { 0.0 })
            .collect();
    assert!(masked.contains(&0.0) && masked.iter().any(|&u| u != 0.0));
    assert_close(
        &what("dx"),
        &grads[0],
        &reference::backward_input(&masked, &d.w, &c.w, &c.x, &c.params),
        1e-4,
        floor_for(c.w[0] * taps(c)),
    );
    let out_positions: usize = numel(&d.y_shape[2..]);
    assert_close(
        &what("dw"),
        &grads[1],
        &reference::backward_weight(&d.x, &c.x, &masked, &c.w, &c.params),
        1e-4,
        floor_for(c.x[0] * out_positions),
    );
}

#[test]
fn fused_relu_matches_reference() {
    let check = |offset: u64| {
        for (i, c) in cases().iter().chain(&large_cases()).enumerate() {
            check_forward_with(c, offset + i as u64, true);
            check_conv_relu_vjp(c, offset + 50 + i as u64);
        }
    };
    check(1300);
    without_subgroups(|| check(1400));
}

#[test]
fn graph_gradients_match_reference() {
    let all = cases();
    let mut picked: Vec<&Case> = all.iter().collect();
    let large = large_cases();
    picked.push(&large[4]);
    for (i, c) in picked.into_iter().enumerate() {
        check_graph_vjp(c, 600 + i as u64);
    }
}

#[test]
fn results_are_bit_identical_between_runs() {
    for c in large_cases()
        .into_iter()
        .chain(few_channel_cases().into_iter().filter(|c| c.bias))
    {
        let d = data(&c, 700);
        let tx = tensor(&c.x, &d.x);
        let tw = tensor(&c.w, &d.w);
        let tb = tensor(&[c.w[0]], d.b.as_ref().unwrap());
        let tup = tensor(&d.y_shape, &d.up);
        let forward = ConvForward {
            params: c.params.clone(),
            relu: false,
        };
        let backward_input = ConvBackwardInput {
            params: c.params.clone(),
            input_shape: Shape::new(&c.x).unwrap(),
        };
        let backward_weight = ConvBackwardWeight {
            params: c.params.clone(),
            weight_shape: Shape::new(&c.w).unwrap(),
        };
        let run = || {
            let bits = |v: Vec<f32>| v.iter().map(|f| f.to_bits()).collect::<Vec<u32>>();
            (
                bits(eval(&forward, &[&tx, &tw, &tb])),
                bits(eval(&backward_input, &[&tup, &tw])),
                bits(eval(&backward_weight, &[&tx, &tup])),
                bits(eval(&ConvBackwardBias, &[&tup])),
            )
        };
        assert!(run() == run(), "{}: results differ between runs", c.name);
    }
}

#[test]
fn grouped_results_are_bit_identical_between_runs() {
    for c in grouped_cases().iter().filter(|c| c.bias) {
        let d = data(c, 710);
        let tx = tensor(&c.x, &d.x);
        let tw = tensor(&c.w, &d.w);
        let tb = tensor(&[c.w[0]], d.b.as_ref().unwrap());
        let tup = tensor(&d.y_shape, &d.up);
        let forward = ConvForward {
            params: c.params.clone(),
            relu: false,
        };
        let backward_input = ConvBackwardInput {
            params: c.params.clone(),
            input_shape: Shape::new(&c.x).unwrap(),
        };
        let backward_weight = ConvBackwardWeight {
            params: c.params.clone(),
            weight_shape: Shape::new(&c.w).unwrap(),
        };
        let run = || {
            let bits = |v: Vec<f32>| v.iter().map(|f| f.to_bits()).collect::<Vec<u32>>();
            (
                bits(eval(&forward, &[&tx, &tw, &tb])),
                bits(eval(&backward_input, &[&tup, &tw])),
                bits(eval(&backward_weight, &[&tx, &tup])),
            )
        };
        assert!(run() == run(), "{}: results differ between runs", c.name);
    }
}

#[test]
fn params_builders_set_every_dim() {
    let p = ConvParams::new(3)
        .stride(2)
        .padding(1)
        .dilation(3)
        .groups(4);
    assert_eq!(p.stride, vec![2, 2, 2]);
    assert_eq!(p.padding, Pads::symmetric(&[1, 1, 1]));
    assert_eq!(p.dilation, vec![3, 3, 3]);
    assert_eq!(p.groups, 4);
    let q = ConvParams::new(2)
        .strides(&[1, 2])
        .paddings(&[0, 3])
        .dilations(&[2, 1]);
    assert_eq!(q.stride, vec![1, 2]);
    assert_eq!(q.padding, Pads::symmetric(&[0, 3]));
    assert_eq!(q.dilation, vec![2, 1]);
    let r = q.pads(pads(&[1, 2], &[3, 4])).auto_pad(AutoPad::SameLower);
    assert_eq!(r.padding, pads(&[1, 2], &[3, 4]));
    assert_eq!(r.auto_pad, Some(AutoPad::SameLower));
    let d = ConvParams::new(1);
    assert_eq!(
        (d.stride, d.padding, d.dilation, d.auto_pad, d.groups),
        (vec![1], Pads::none(1), vec![1], None, 1)
    );
}

fn conv_error(x: &[usize], w: &[usize], bias: Option<&[usize]>, p: &ConvParams) -> Error {
    let mut g = Graph::new();
    let x = g.input("x", Shape::new(x).unwrap());
    let w = g.input("w", Shape::new(w).unwrap());
    let b = bias.map(|b| g.input("b", Shape::new(b).unwrap()));
    g.conv(x, w, b, p)
        .expect_err("a bad shape must give an error")
}

#[test]
fn bad_shapes_give_errors() {
    let p2 = ConvParams::new(2);
    let bad = [
        (
            "channel mismatch",
            conv_error(&[1, 3, 8, 8], &[4, 2, 3, 3], None, &p2),
        ),
        (
            "rank mismatch",
            conv_error(&[1, 3, 8, 8], &[4, 3, 3], None, &p2),
        ),
        (
            "rank 2 input",
            conv_error(&[3, 8], &[4, 3], None, &ConvParams::new(0)),
        ),
        (
            "params for 1 spatial dim on a 2d input",
            conv_error(&[1, 3, 8, 8], &[4, 3, 3, 3], None, &ConvParams::new(1)),
        ),
        (
            "two strides on a 3d input",
            conv_error(
                &[1, 3, 4, 4, 4],
                &[4, 3, 1, 1, 1],
                None,
                &ConvParams::new(3).strides(&[1, 1]),
            ),
        ),
        (
            "kernel larger than input",
            conv_error(&[1, 3, 2, 2], &[4, 3, 3, 3], None, &p2),
        ),
        (
            "dilated kernel larger than input",
            conv_error(
                &[1, 1, 5],
                &[1, 1, 3],
                None,
                &ConvParams::new(1).dilation(3),
            ),
        ),
        (
            "zero stride",
            conv_error(&[1, 3, 8, 8], &[4, 3, 3, 3], None, &p2.clone().stride(0)),
        ),
        (
            "bias of the wrong size",
            conv_error(&[1, 3, 8, 8], &[4, 3, 3, 3], Some(&[5]), &p2),
        ),
        (
            "bias of the wrong rank",
            conv_error(&[1, 3, 8, 8], &[4, 3, 3, 3], Some(&[4, 1]), &p2),
        ),
        (
            "spatial dim beyond the kernels' limit",
            conv_error(&[1, 1, 1 << 22], &[1, 1, 1], None, &ConvParams::new(1)),
        ),
    ];
    for (what, e) in bad {
        assert!(matches!(e, Error::Shape { .. }), "{what}: {e}");
    }

    // Backward ops check the output gradient against the convolution they belong to.
    let mut g = Graph::new();
    let dy = g.input("dy", [1, 4, 5, 5]);
    let w = g.input("w", [4, 3, 3, 3]);
    let x = g.input("x", [1, 3, 8, 8]);
    let input_grad = ConvBackwardInput {
        params: p2.clone(),
        input_shape: Shape::new(&[1, 3, 8, 8]).unwrap(),
    };
    assert!(g.apply(input_grad, &[dy, w]).is_err());
    let weight_grad = ConvBackwardWeight {
        params: p2.clone(),
        weight_shape: Shape::new(&[4, 3, 3, 3]).unwrap(),
    };
    assert!(g.apply(weight_grad, &[x, dy]).is_err());
    let vector = g.input("v", [4]);
    assert!(g.apply(ConvBackwardBias, &[vector]).is_err());
}

#[test]
fn grouped_convolutions_match_reference() {
    let check = |offset: u64| {
        for (i, c) in grouped_cases().iter().enumerate() {
            let seed = offset + 10 * i as u64;
            check_forward(c, seed);
            check_forward_with(c, seed + 1, true);
            check_backward_ops(c, seed + 2);
            check_graph_vjp(c, seed + 3);
            check_conv_relu_vjp(c, seed + 4);
        }
    };
    check(2000);
    // The device without subgroups routes grouped convolutions to the same kernels.
    without_subgroups(|| check(2100));
}

#[test]
fn padding_options_match_reference() {
    let check = |offset: u64| {
        for (i, c) in padding_cases().iter().enumerate() {
            let seed = offset + 10 * i as u64;
            check_forward(c, seed);
            check_backward_ops(c, seed + 1);
            check_graph_vjp(c, seed + 2);
        }
    };
    check(2200);
    without_subgroups(|| check(2300));
}

#[test]
fn auto_padding_keeps_ceil_of_input_over_stride() {
    for mode in [AutoPad::SameUpper, AutoPad::SameLower] {
        for (x, w, stride) in [
            ([1, 2, 9, 10], [3, 2, 3, 3], [2, 2]),
            ([1, 2, 7, 8], [3, 2, 4, 5], [3, 1]),
            ([1, 2, 5, 5], [3, 2, 1, 2], [4, 2]),
        ] {
            let p = ConvParams::new(2).strides(&stride).auto_pad(mode);
            let shape =
                conv_output_shape(&Shape::new(&x).unwrap(), &Shape::new(&w).unwrap(), &p).unwrap();
            let expected = [1, 3, x[2].div_ceil(stride[0]), x[3].div_ceil(stride[1])];
            assert_eq!(shape.dims(), expected, "{mode:?} {x:?} {w:?}");
            assert_eq!(reference::output_shape(&x, &w, &p), expected.to_vec());
        }
    }
    // Asymmetric explicit padding: floor((in + begin + end - span) / stride) + 1.
    let p = ConvParams::new(1).stride(2).pads(pads(&[0], &[3]));
    let shape = conv_output_shape(
        &Shape::new(&[1, 1, 12]).unwrap(),
        &Shape::new(&[1, 1, 3]).unwrap(),
        &p,
    )
    .unwrap();
    assert_eq!(shape.dims(), [1, 1, 7]);
}

#[test]
fn bad_groups_and_padding_give_errors() {
    let p2 = ConvParams::new(2);
    let bad = [
        (
            "input channels not divisible by groups",
            conv_error(&[1, 6, 8, 8], &[4, 3, 3, 3], None, &p2.clone().groups(4)),
            "divisible by groups",
        ),
        (
            "output channels not divisible by groups",
            conv_error(&[1, 6, 8, 8], &[5, 3, 3, 3], None, &p2.clone().groups(2)),
            "divisible by groups",
        ),
        (
            "weight channels times groups differ from the input's",
            conv_error(&[1, 6, 8, 8], &[4, 2, 3, 3], None, &p2.clone().groups(2)),
            "per group",
        ),
        (
            "zero groups",
            conv_error(&[1, 6, 8, 8], &[4, 6, 3, 3], None, &p2.clone().groups(0)),
            "groups 0 must be at least 1",
        ),
        (
            "padding ends for 1 dim on a 2d input",
            conv_error(
                &[1, 3, 8, 8],
                &[4, 3, 3, 3],
                None,
                &p2.clone().pads(pads(&[1, 1], &[1])),
            ),
            "padding (end)",
        ),
        (
            "asymmetric padding that leaves the output empty",
            conv_error(
                &[1, 3, 2, 8],
                &[4, 3, 5, 3],
                None,
                &p2.clone().pads(pads(&[1, 0], &[1, 0])),
            ),
            "output would be empty",
        ),
    ];
    for (what, e, rule) in bad {
        assert!(matches!(e, Error::Shape { .. }), "{what}: {e}");
        assert!(e.to_string().contains(rule), "{what}: {e}");
    }
}

/// The receptive field of a convolution starts `padding before` positions before each output
/// position's origin, with the auto padding resolved from the input size.
#[test]
fn receptive_fields_start_at_the_padding_before() {
    use wgnn::graph::{AxisField, ReceptiveField};
    let mut g = Graph::new();
    let x = g.input("x", [1, 2, 9, 10]);
    let w = g.input("w", [4, 2, 3, 4]);
    let asymmetric = ConvParams::new(2).stride(2).pads(pads(&[2, 0], &[0, 3]));
    let y = g.conv(x, w, None, &asymmetric).unwrap();
    let field = |stride: usize, first: i64, last: i64| AxisField {
        stride,
        first,
        last,
    };
    assert_eq!(
        g.receptive_field(x, y).unwrap(),
        ReceptiveField::Local(vec![field(2, -2, 0), field(2, 0, 3)])
    );
    // SAME_LOWER on 9 x 10 at stride 2 under 3 x 4 needs 2 positions of padding per dim: 1
    // before, 1 after.
    let same = ConvParams::new(2).stride(2).auto_pad(AutoPad::SameLower);
    let z = g.conv(x, w, None, &same).unwrap();
    assert_eq!(
        g.receptive_field(x, z).unwrap(),
        ReceptiveField::Local(vec![field(2, -1, 1), field(2, -1, 2)])
    );
}

/// The op names of a graph's nodes.
fn op_names(g: &Graph) -> Vec<&'static str> {
    g.nodes()
        .iter()
        .filter_map(|node| match &node.kind {
            wgnn::graph::NodeKind::Op(op) => Some(op.name()),
            _ => None,
        })
        .collect()
}

/// `Graph::conv` keeps a grouped convolution of few channels per group (depthwise) as one node
/// on the grouped kernels, and splits one of at least 8 input and output channels per group
/// into one ungrouped convolution per group.
#[test]
fn graph_routes_groups_by_channels_per_group() {
    let mut g = Graph::new();
    let x = g.input("x", [1, 16, 6, 6]);
    let depthwise = g.input("w", [16, 1, 3, 3]);
    g.conv(x, depthwise, None, &ConvParams::new(2).groups(16))
        .unwrap();
    assert_eq!(op_names(&g), ["conv2d"]);

    let mut g = Graph::new();
    let x = g.input("x", [1, 16, 6, 6]);
    let w = g.input("w", [16, 8, 3, 3]);
    let b = g.input("b", [16]);
    g.conv_relu(x, w, Some(b), &ConvParams::new(2).groups(2))
        .unwrap();
    let names = op_names(&g);
    assert_eq!(names.iter().filter(|&&n| n == "conv2d").count(), 2);
    assert_eq!(names.last(), Some(&"concat"));

    // A bias of the wrong size is an error on either route.
    let mut g = Graph::new();
    let x = g.input("x", [1, 16, 6, 6]);
    let w = g.input("w", [16, 8, 3, 3]);
    let b = g.input("b", [17]);
    assert!(g
        .conv(x, w, Some(b), &ConvParams::new(2).groups(2))
        .is_err());
}
