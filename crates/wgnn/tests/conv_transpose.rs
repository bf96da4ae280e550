//! Transposed convolution 1-D / 2-D / 3-D against the float64 reference (the scatter of its
//! definition), forward and backward, on every kernel that runs it: the convolution's
//! input-gradient kernels (the GEMM, the few-channel gather, the grouped gather) for the
//! forward, its forward kernels for dx and its weight-gradient kernels for dw, on the device
//! with subgroups and without.
use wgnn_reference::testing as common;

use common::*;
use wgnn::ops::conv::{
    conv_transpose_output_shape, ConvParams, ConvTranspose, ConvTransposeBackwardInput,
    ConvTransposeBackwardWeight, ConvTransposeParams, FEW_CHANNELS,
};
use wgnn::ops::padding::{AutoPad, Pads};
use wgnn::rng::Rng;
use wgnn::{Error, Graph, Shape};
use wgnn_reference::conv as reference;

struct Case {
    name: &'static str,
    x: Vec<usize>,
    w: Vec<usize>,
    params: ConvTransposeParams,
    bias: bool,
}

fn case(
    name: &'static str,
    x: &[usize],
    w: &[usize],
    params: ConvTransposeParams,
    bias: bool,
) -> Case {
    Case {
        name,
        x: x.to_vec(),
        w: w.to_vec(),
        params,
        bias,
    }
}

fn pads(begin: &[usize], end: &[usize]) -> Pads {
    Pads {
        begin: begin.to_vec(),
        end: end.to_vec(),
    }
}

fn transposed(conv: ConvParams) -> ConvTransposeParams {
    ConvTransposeParams::new(conv)
}

/// Every option on each rank, batch > 1, odd sizes. The forward runs the convolution's input
/// gradient, which takes the few-channel gather where the output has at most `FEW_CHANNELS`
/// channels (and groups = 1), the grouped gather for groups > 1, and the GEMM elsewhere (on the
/// subgroup device its vec4 path where C_in is a multiple of 4, scalar elsewhere); dx runs the
/// convolution's forward (vec4 where O / groups * taps is a multiple of 4) and dw its weight
/// gradient (vec4 where the input positions are a multiple of 4).
fn cases() -> Vec<Case> {
    vec![
        case(
            "1d stride 2, padding 1, output padding 1",
            &[2, 6, 9],
            &[6, 5, 3],
            transposed(ConvParams::new(1).stride(2).padding(1)).output_padding(1),
            true,
        ),
        case(
            "2d stride 2, 3 x 3, padding 1, output padding 1 (the usual x2 upsampling)",
            &[2, 8, 5, 6],
            &[8, 6, 3, 3],
            transposed(ConvParams::new(2).stride(2).padding(1)).output_padding(1),
            true,
        ),
        case(
            "2d per-dim stride, asymmetric padding (output cropping), dilation 2",
            &[3, 5, 4, 7],
            &[5, 7, 3, 2],
            transposed(
                ConvParams::new(2)
                    .strides(&[3, 2])
                    .dilation(2)
                    .pads(pads(&[2, 0], &[1, 3])),
            )
            .output_paddings(&[2, 1]),
            false,
        ),
        case(
            "2d output padding at least the stride but below the dilation",
            &[2, 6, 5, 4],
            &[6, 5, 3, 3],
            transposed(ConvParams::new(2).dilation(3)).output_paddings(&[2, 1]),
            true,
        ),
        case(
            "2d 3 output channels (few-channel gather), stride 2, asymmetric padding",
            &[2, 7, 6, 5],
            &[7, 3, 4, 4],
            transposed(ConvParams::new(2).stride(2).pads(pads(&[1, 2], &[2, 1]))),
            true,
        ),
        case(
            "2d 2 groups, stride 2",
            &[2, 6, 5, 5],
            &[6, 2, 3, 3],
            transposed(ConvParams::new(2).stride(2).padding(1).groups(2)).output_padding(1),
            true,
        ),
        case(
            "1d depthwise, stride 3, dilation 2",
            &[2, 5, 8],
            &[5, 1, 4],
            transposed(
                ConvParams::new(1)
                    .stride(3)
                    .dilation(2)
                    .padding(2)
                    .groups(5),
            )
            .output_padding(2),
            false,
        ),
        case(
            "3d per-dim stride, padding, dilation, output padding",
            &[2, 4, 3, 4, 3],
            &[4, 3, 2, 3, 2],
            transposed(
                ConvParams::new(3)
                    .strides(&[2, 1, 2])
                    .paddings(&[0, 1, 1])
                    .dilations(&[1, 2, 1]),
            )
            .output_paddings(&[1, 0, 1]),
            true,
        ),
        case(
            "2d SAME_UPPER, stride 2 (output = input x stride)",
            &[2, 4, 5, 6],
            &[4, 5, 3, 3],
            transposed(ConvParams::new(2).stride(2).auto_pad(AutoPad::SameUpper)),
            false,
        ),
        case(
            "2d SAME_LOWER, per-dim stride, even kernel",
            &[2, 4, 5, 4],
            &[4, 3, 4, 2],
            transposed(
                ConvParams::new(2)
                    .strides(&[3, 2])
                    .auto_pad(AutoPad::SameLower),
            ),
            true,
        ),
        case(
            "1d VALID",
            &[2, 3, 7],
            &[3, 6, 3],
            transposed(ConvParams::new(1).stride(2).auto_pad(AutoPad::Valid)),
            false,
        ),
        case(
            "2d 2 groups of 8 input and 9 output channels: per-group convolutions through the \
             graph",
            &[2, 16, 4, 5],
            &[16, 9, 3, 2],
            transposed(ConvParams::new(2).stride(2).padding(1).groups(2)).output_padding(1),
            true,
        ),
        case(
            "2d 40 input channels, 36 output channels: several GEMM tiles",
            &[2, 40, 7, 6],
            &[40, 36, 3, 3],
            transposed(ConvParams::new(2).stride(2).padding(1)),
            true,
        ),
    ]
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

fn floor_for(terms: usize) -> f64 {
    1e-3 * terms.max(1) as f64
}

fn taps(c: &Case) -> usize {
    numel(&c.w[2..])
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
    let y_shape = reference::transpose_output_shape(&c.x, &c.w, &c.params);
    let b = c.bias.then(|| random_nonzero(&mut rng, y_shape[1]));
    let up = random_nonzero(&mut rng, numel(&y_shape));
    Data {
        x,
        w,
        b,
        y_shape,
        up,
    }
}

fn check_ops(c: &Case, seed: u64) {
    let d = data(c, seed);
    let (tx, tw) = (tensor(&c.x, &d.x), tensor(&c.w, &d.w));
    let tup = tensor(&d.y_shape, &d.up);
    let y = eval(
        &ConvTranspose {
            params: c.params.clone(),
        },
        &[&tx, &tw],
    );
    let expect = reference::transpose_forward(&d.x, &c.x, &d.w, &c.w, None, &c.params);
    let floor = floor_for(c.x[1] * taps(c));
    assert_close(&format!("{} y", c.name), &y, &expect, 1e-4, floor);

    let dx = eval(
        &ConvTransposeBackwardInput {
            params: c.params.clone(),
            input_shape: Shape::new(&c.x).unwrap(),
        },
        &[&tup, &tw],
    );
    let expect = reference::transpose_backward_input(&d.up, &d.w, &c.w, &c.x, &c.params);
    let floor = floor_for(c.w[1] * taps(c));
    assert_close(&format!("{} dx", c.name), &dx, &expect, 1e-4, floor);

    let dw = eval(
        &ConvTransposeBackwardWeight {
            params: c.params.clone(),
            weight_shape: Shape::new(&c.w).unwrap(),
        },
        &[&tx, &tup],
    );
    let expect = reference::transpose_backward_weight(&d.x, &c.x, &d.up, &c.w, &c.params);
    let floor = floor_for(c.x[0] * numel(&c.x[2..]));
    assert_close(&format!("{} dw", c.name), &dw, &expect, 1e-4, floor);
}

/// y and the gradients of x, w and the bias through `Graph::conv_transpose`.
fn check_graph_vjp(c: &Case, seed: u64) {
    let d = data(c, seed);
    let b_shape = [d.y_shape[1]];
    let mut inputs: Vec<(&[usize], &[f64])> = vec![(&c.x, &d.x), (&c.w, &d.w)];
    if let Some(b) = &d.b {
        inputs.push((&b_shape, b));
    }
    let params = c.params.clone();
    let (y, grads) = graph_vjp(&inputs, &d.up, &|g, ids| {
        g.conv_transpose(ids[0], ids[1], ids.get(2).copied(), &params)
            .unwrap()
    });
    let what = |part: &str| format!("{} through the graph: {part}", c.name);
    let expect = reference::transpose_forward(&d.x, &c.x, &d.w, &c.w, d.b.as_deref(), &c.params);
    assert_close(&what("y"), &y, &expect, 1e-4, floor_for(c.x[1] * taps(c)));
    assert_close(
        &what("dx"),
        &grads[0],
        &reference::transpose_backward_input(&d.up, &d.w, &c.w, &c.x, &c.params),
        1e-4,
        floor_for(c.w[1] * taps(c)),
    );
    let floor = floor_for(c.x[0] * numel(&c.x[2..]));
    assert_close(
        &what("dw"),
        &grads[1],
        &reference::transpose_backward_weight(&d.x, &c.x, &d.up, &c.w, &c.params),
        1e-4,
        floor,
    );
    if d.b.is_some() {
        let expect = reference::backward_bias(&d.up, &d.y_shape);
        assert_close(&what("dbias"), &grads[2], &expect, 1e-4, floor);
    }
}

#[test]
fn reference_backward_matches_finite_differences() {
    let small = [
        case(
            "1d groups, stride 2, asymmetric padding, output padding",
            &[2, 4, 4],
            &[4, 2, 3],
            transposed(
                ConvParams::new(1)
                    .stride(2)
                    .pads(pads(&[2], &[1]))
                    .groups(2),
            )
            .output_padding(1),
            true,
        ),
        case(
            "2d per-dim stride and dilation, output padding below the dilation",
            &[2, 2, 3, 3],
            &[2, 3, 2, 2],
            transposed(
                ConvParams::new(2)
                    .strides(&[1, 2])
                    .dilations(&[3, 1])
                    .paddings(&[1, 0]),
            )
            .output_paddings(&[2, 1]),
            false,
        ),
        case(
            "3d SAME_LOWER",
            &[2, 2, 2, 3, 2],
            &[2, 2, 2, 2, 3],
            transposed(
                ConvParams::new(3)
                    .strides(&[2, 1, 2])
                    .auto_pad(AutoPad::SameLower),
            ),
            true,
        ),
    ];
    for (i, c) in small.iter().enumerate() {
        let d = data(c, 100 + i as u64);
        let b = d.b.clone();
        let forward = |x: &[f64], w: &[f64], b: Option<&[f64]>| {
            reference::transpose_forward(x, &c.x, w, &c.w, b, &c.params)
        };
        let loss_x = |x: &[f64]| dot(&forward(x, &d.w, b.as_deref()), &d.up);
        let dx = reference::transpose_backward_input(&d.up, &d.w, &c.w, &c.x, &c.params);
        assert_gradient(&format!("{} dx", c.name), &loss_x, &d.x, &dx);
        let loss_w = |w: &[f64]| dot(&forward(&d.x, w, b.as_deref()), &d.up);
        let dw = reference::transpose_backward_weight(&d.x, &c.x, &d.up, &c.w, &c.params);
        assert_gradient(&format!("{} dw", c.name), &loss_w, &d.w, &dw);
        if let Some(b) = &d.b {
            let loss_b = |b: &[f64]| dot(&forward(&d.x, &d.w, Some(b)), &d.up);
            let db = reference::backward_bias(&d.up, &d.y_shape);
            assert_gradient(&format!("{} dbias", c.name), &loss_b, b, &db);
        }
    }
}

/// The transposed convolution is the adjoint of the convolution: <conv_T(x), y> = <x, conv(y)>
/// for the reference's two independent loops (explicit padding: auto padding follows another rule
/// for each).
#[test]
fn reference_is_the_adjoint_of_the_convolution() {
    let explicit = cases()
        .into_iter()
        .filter(|c| c.params.conv.auto_pad.is_none());
    for (i, c) in explicit.enumerate() {
        let (d, c) = (data(&c, 150 + i as u64), &c);
        let y_t = reference::transpose_forward(&d.x, &c.x, &d.w, &c.w, None, &c.params);
        let conv_of_up = reference::forward(&d.up, &d.y_shape, &d.w, &c.w, None, &c.params.conv);
        let conv_shape = reference::output_shape(&d.y_shape, &c.w, &c.params.conv);
        // With output padding past the stride, the convolution has more outputs than x has
        // positions; those see no x and are dropped.
        let restricted = restrict(&conv_of_up, &conv_shape, &c.x);
        let (left, right) = (dot(&y_t, &d.up), dot(&d.x, &restricted));
        assert!(
            (left - right).abs() < 1e-9 * left.abs().max(1.0),
            "{}: {left} vs {right}",
            c.name
        );
    }
}

/// The leading box of `values` (shape `from`) of shape `to`.
fn restrict(values: &[f64], from: &[usize], to: &[usize]) -> Vec<f64> {
    let mut out = Vec::with_capacity(numel(to));
    let strides: Vec<usize> = (0..from.len()).map(|d| numel(&from[d + 1..])).collect();
    for flat in 0..numel(to) {
        let mut rest = flat;
        let mut at = 0;
        for d in (0..to.len()).rev() {
            at += (rest % to[d]) * strides[d];
            rest /= to[d];
        }
        out.push(values[at]);
    }
    out
}

#[test]
fn output_sizes_follow_the_formula() {
    // (in - 1) stride + dil (k - 1) + 1 + output padding - begin - end per dim.
    let p = transposed(
        ConvParams::new(2)
            .strides(&[2, 3])
            .dilations(&[1, 2])
            .pads(pads(&[1, 0], &[0, 2])),
    )
    .output_paddings(&[1, 0]);
    let (x, w) = ([2, 4, 5, 6], [4, 3, 3, 2]);
    let expected = [2, 3, 4 * 2 + 3 + 1 - 1, 5 * 3 + 3 - 2];
    assert_eq!(reference::transpose_output_shape(&x, &w, &p), expected);
    let shape = conv_transpose_output_shape(&Shape::new(&x).unwrap(), &Shape::new(&w).unwrap(), &p)
        .unwrap();
    assert_eq!(shape.dims(), expected);
    for mode in [AutoPad::SameUpper, AutoPad::SameLower] {
        let p = transposed(ConvParams::new(1).stride(3).auto_pad(mode));
        let shape = conv_transpose_output_shape(
            &Shape::new(&[1, 2, 7]).unwrap(),
            &Shape::new(&[2, 1, 4]).unwrap(),
            &p,
        )
        .unwrap();
        assert_eq!(shape.dims(), [1, 1, 21], "{mode:?}");
    }
}

#[test]
fn matches_reference() {
    for (i, c) in cases().iter().enumerate() {
        check_ops(c, 200 + 10 * i as u64);
        check_graph_vjp(c, 205 + 10 * i as u64);
    }
}

#[test]
fn kernels_without_subgroups_match_reference() {
    without_subgroups(|| {
        for (i, c) in cases().iter().enumerate() {
            check_ops(c, 400 + 10 * i as u64);
        }
    });
}

#[test]
fn cases_reach_every_input_gradient_kernel() {
    let all = cases();
    let channels = |c: &Case| c.w[1] * c.params.conv.groups;
    assert!(all
        .iter()
        .any(|c| c.params.conv.groups == 1 && channels(c) <= FEW_CHANNELS));
    assert!(all
        .iter()
        .any(|c| c.params.conv.groups == 1 && channels(c) > FEW_CHANNELS));
    assert!(all.iter().any(|c| c.params.conv.groups > 1));
}

fn transpose_error(
    x: &[usize],
    w: &[usize],
    bias: Option<&[usize]>,
    p: &ConvTransposeParams,
) -> Error {
    let mut g = Graph::new();
    let x = g.input("x", Shape::new(x).unwrap());
    let w = g.input("w", Shape::new(w).unwrap());
    let b = bias.map(|b| g.input("b", Shape::new(b).unwrap()));
    g.conv_transpose(x, w, b, p)
        .expect_err("bad arguments must give an error")
}

#[test]
fn bad_arguments_give_errors() {
    let p2 = transposed(ConvParams::new(2));
    let bad = [
        (
            "channels not divisible by groups",
            transpose_error(
                &[1, 6, 4, 4],
                &[6, 1, 3, 3],
                None,
                &transposed(ConvParams::new(2).groups(4)),
            ),
            "divisible by groups",
        ),
        (
            "weight's first dim is not the input's channels",
            transpose_error(&[1, 6, 4, 4], &[4, 2, 3, 3], None, &p2),
            "channels but weight",
        ),
        (
            "output padding at least the stride and the dilation",
            transpose_error(
                &[1, 2, 4, 4],
                &[2, 2, 3, 3],
                None,
                &transposed(ConvParams::new(2).stride(2)).output_padding(2),
            ),
            "smaller than the stride",
        ),
        (
            "padding that crops the whole output: negative size",
            transpose_error(
                &[1, 2, 2, 4],
                &[2, 2, 3, 3],
                None,
                &transposed(ConvParams::new(2).pads(pads(&[2, 0], &[3, 0]))),
            ),
            "the output size would be -1",
        ),
        (
            "output padding for 1 dim on a 2d input",
            transpose_error(
                &[1, 2, 4, 4],
                &[2, 2, 3, 3],
                None,
                &p2.clone().output_paddings(&[0]),
            ),
            "output padding",
        ),
        (
            "rank mismatch",
            transpose_error(&[1, 2, 4, 4], &[2, 2, 3], None, &p2),
            "rank",
        ),
        (
            "SAME with a kernel shorter than the stride",
            transpose_error(
                &[1, 2, 4],
                &[2, 2, 1],
                None,
                &transposed(ConvParams::new(1).stride(3).auto_pad(AutoPad::SameUpper)),
            ),
            "auto padding",
        ),
        (
            "bias of the wrong size",
            transpose_error(&[1, 2, 4, 4], &[2, 3, 3, 3], Some(&[2]), &p2),
            "bias",
        ),
    ];
    for (what, e, rule) in bad {
        assert!(matches!(e, Error::Shape { .. }), "{what}: {e}");
        assert!(e.to_string().contains(rule), "{what}: {e}");
    }

    // The backward ops check the output gradient against the op they belong to.
    let mut g = Graph::new();
    let dy = g.input("dy", [1, 3, 5, 5]);
    let w = g.input("w", [2, 3, 3, 3]);
    let x = g.input("x", [1, 2, 4, 4]);
    let input_grad = ConvTransposeBackwardInput {
        params: p2.clone(),
        input_shape: Shape::new(&[1, 2, 4, 4]).unwrap(),
    };
    assert!(g.apply(input_grad, &[dy, w]).is_err());
    let weight_grad = ConvTransposeBackwardWeight {
        params: p2,
        weight_shape: Shape::new(&[2, 3, 3, 3]).unwrap(),
    };
    assert!(g.apply(weight_grad, &[x, dy]).is_err());
}

/// `Graph::conv_transpose` splits groups of at least 8 channels into one ungrouped transposed
/// convolution per group, and keeps smaller groups as one node on the grouped kernels.
#[test]
fn graph_routes_groups_by_channels_per_group() {
    let names = |g: &Graph| -> Vec<&'static str> {
        g.nodes()
            .iter()
            .filter_map(|node| match &node.kind {
                wgnn::graph::NodeKind::Op(op) => Some(op.name()),
                _ => None,
            })
            .collect()
    };
    let mut g = Graph::new();
    let x = g.input("x", [1, 16, 4, 4]);
    let w = g.input("w", [16, 8, 3, 3]);
    g.conv_transpose(x, w, None, &transposed(ConvParams::new(2).groups(2)))
        .unwrap();
    let ops = names(&g);
    assert_eq!(ops.iter().filter(|&&n| n == "conv_transpose2d").count(), 2);
    assert_eq!(ops.last(), Some(&"concat"));

    let mut g = Graph::new();
    let x = g.input("x", [1, 16, 4, 4]);
    let w = g.input("w", [16, 1, 3, 3]);
    g.conv_transpose(x, w, None, &transposed(ConvParams::new(2).groups(16)))
        .unwrap();
    assert_eq!(names(&g), ["conv_transpose2d"]);
}
