//! Max, average and global average pooling against the float64 reference, forward and backward,
//! over every stride / dilation / padding (symmetric, asymmetric, automatic, over half the kernel)
//! / ceil-mode / divisor path in 1-D, 2-D and 3-D; max pooling's indices and max-unpooling.
use wgnn_reference::testing as common;

use common::*;
use wgnn::ops::pool::{
    AutoPad, AvgPoolBackward, GlobalAvgPool, GlobalAvgPoolBackward, IndexBase, MaxPoolBackward,
    MaxPoolIndices, MaxUnpool, MaxUnpoolBackward, Pads, Pool, PoolParams,
};
use wgnn::rng::Rng;
use wgnn::Shape;
use wgnn_reference::pool as reference;

/// (input shape, params): each spatial rank with floor and ceil mode, padding, unequal
/// per-dim settings, overlapping and non-overlapping windows, and sizes where ceil mode adds a
/// window clipped at the padded edge or drops one that would start in the right padding.
fn cases() -> Vec<(Vec<usize>, PoolParams)> {
    vec![
        // 1-D
        (vec![2, 3, 11], PoolParams::new(&[3]).stride(2)),
        (vec![2, 3, 11], PoolParams::new(&[2])),
        (
            vec![2, 3, 12],
            PoolParams::new(&[3]).stride(2).ceil_mode(true),
        ),
        (
            vec![2, 3, 11],
            PoolParams::new(&[3]).stride(2).padding(1).ceil_mode(true),
        ),
        (vec![1, 2, 10], PoolParams::new(&[2]).stride(1).padding(1)),
        (
            vec![2, 1, 13],
            PoolParams::new(&[4]).stride(3).padding(2).ceil_mode(true),
        ),
        // Stride over the kernel: some inputs are in no window (their gradient is 0).
        (vec![2, 2, 11], PoolParams::new(&[2]).stride(3)),
        // 2-D
        (vec![2, 3, 9, 8], PoolParams::new(&[2, 2])),
        (
            vec![2, 3, 9, 8],
            PoolParams::new(&[3, 3]).stride(2).ceil_mode(true),
        ),
        (
            vec![1, 2, 7, 9],
            PoolParams::new(&[3, 3]).stride(1).padding(1),
        ),
        (
            vec![2, 2, 9, 7],
            PoolParams::new(&[3, 2])
                .strides(&[2, 1])
                .paddings(&[1, 0])
                .ceil_mode(true),
        ),
        (
            vec![1, 3, 8, 10],
            PoolParams::new(&[2, 3])
                .strides(&[3, 2])
                .paddings(&[1, 1])
                .ceil_mode(true),
        ),
        (vec![1, 2, 7, 8], PoolParams::new(&[2, 1]).strides(&[3, 2])),
        // 3-D
        (vec![2, 2, 5, 6, 7], PoolParams::new(&[2, 2, 2])),
        (
            vec![1, 2, 5, 6, 7],
            PoolParams::new(&[3, 3, 3])
                .stride(2)
                .padding(1)
                .ceil_mode(true),
        ),
        (
            vec![2, 1, 6, 5, 6],
            PoolParams::new(&[3, 2, 3])
                .strides(&[1, 2, 2])
                .paddings(&[1, 0, 1])
                .ceil_mode(true),
        ),
    ]
}

fn pads(begin: &[usize], end: &[usize]) -> Pads {
    Pads {
        begin: begin.to_vec(),
        end: end.to_vec(),
    }
}

/// (input shape, params) for the newer options: dilation, asymmetric padding, padding over half
/// the kernel, ONNX's automatic padding (ceil mode ignored with it), the divisor without padding,
/// and their combinations in 1-D, 2-D and 3-D. Every window holds a real element.
fn option_cases() -> Vec<(Vec<usize>, PoolParams)> {
    vec![
        // 1-D
        (vec![2, 3, 13], PoolParams::new(&[3]).stride(2).dilation(2)),
        (
            vec![2, 3, 12],
            PoolParams::new(&[3])
                .stride(2)
                .dilation(2)
                .pads(pads(&[1], &[2]))
                .ceil_mode(true)
                .count_include_pad(false),
        ),
        (
            vec![2, 2, 11],
            PoolParams::new(&[2]).stride(1).auto_pad(AutoPad::SameUpper),
        ),
        (
            vec![2, 2, 11],
            PoolParams::new(&[4])
                .stride(3)
                .dilation(2)
                .auto_pad(AutoPad::SameLower)
                .count_include_pad(false),
        ),
        (
            vec![2, 1, 10],
            PoolParams::new(&[3])
                .stride(2)
                .auto_pad(AutoPad::Valid)
                .ceil_mode(true),
        ),
        // Padding over half the kernel (ONNX allows it), divisor without padding.
        (
            vec![2, 2, 9],
            PoolParams::new(&[3])
                .stride(2)
                .pads(pads(&[2], &[3]))
                .count_include_pad(false),
        ),
        (vec![2, 2, 9], PoolParams::new(&[3]).stride(2).padding(2)),
        // 2-D
        (
            vec![2, 3, 9, 11],
            PoolParams::new(&[3, 3])
                .stride(2)
                .dilation(2)
                .pads(pads(&[1, 0], &[2, 1]))
                .ceil_mode(true)
                .count_include_pad(false),
        ),
        (
            vec![2, 2, 8, 7],
            PoolParams::new(&[2, 3])
                .strides(&[1, 2])
                .dilations(&[2, 1])
                .auto_pad(AutoPad::SameUpper)
                .count_include_pad(false),
        ),
        (
            vec![1, 3, 7, 10],
            PoolParams::new(&[3, 2])
                .strides(&[2, 3])
                .auto_pad(AutoPad::SameLower)
                .ceil_mode(true),
        ),
        (
            vec![2, 2, 10, 9],
            PoolParams::new(&[3, 2])
                .stride(2)
                .pads(pads(&[2, 1], &[2, 1]))
                .ceil_mode(true)
                .count_include_pad(false),
        ),
        (
            vec![2, 2, 9, 10],
            PoolParams::new(&[3, 3])
                .stride(1)
                .dilations(&[1, 3])
                .pads(pads(&[0, 3], &[2, 1])),
        ),
        // 3-D
        (
            vec![2, 2, 5, 6, 7],
            PoolParams::new(&[3, 3, 3])
                .stride(2)
                .dilations(&[1, 2, 1])
                .pads(pads(&[1, 0, 2], &[0, 2, 1]))
                .ceil_mode(true)
                .count_include_pad(false),
        ),
        (
            vec![1, 2, 6, 5, 7],
            PoolParams::new(&[2, 3, 2])
                .strides(&[1, 2, 2])
                .dilation(2)
                .auto_pad(AutoPad::SameUpper),
        ),
        (
            vec![2, 1, 5, 6, 5],
            PoolParams::new(&[2, 2, 3])
                .strides(&[2, 1, 2])
                .pads(pads(&[1, 1, 0], &[0, 1, 2]))
                .ceil_mode(true),
        ),
    ]
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

#[test]
fn output_sizes_follow_pytorch() {
    let size = |input: usize, p: PoolParams| {
        let shape = Shape::new(&[1, 1, input]).unwrap();
        let out = p.output_shape("pool", &shape).unwrap().dims()[2];
        assert_eq!(out, reference::output_size(&[input], &p)[0], "{p:?}");
        out
    };
    // SqueezeNet's 3x3 stride-2 ceil-mode pooling.
    let squeeze = || PoolParams::new(&[3]).stride(2).ceil_mode(true);
    assert_eq!(size(13, squeeze()), 6);
    assert_eq!(size(14, squeeze()), 7);
    assert_eq!(size(14, squeeze().ceil_mode(false)), 6);
    assert_eq!(size(111, squeeze()), 55);
    // Ceil mode would add a window starting in the right padding: (4 - 1) * 2 >= 5 + 1.
    assert_eq!(size(5, PoolParams::new(&[2]).padding(1).ceil_mode(true)), 3);
    assert_eq!(size(5, PoolParams::new(&[2]).padding(1)), 3);
    assert_eq!(size(6, PoolParams::new(&[2]).padding(1).ceil_mode(true)), 4);
}

#[test]
fn avg_divisor_clips_ceil_windows_to_the_padded_input() {
    // PyTorch: avg_pool1d([1..6], 3, stride 2, padding 1, ceil_mode=True) = [1, 3, 5, 3]; the last
    // window [6, pad, beyond] divides by 2, the first [pad, 1, 2] by 3.
    let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let p = PoolParams::new(&[3]).stride(2).padding(1).ceil_mode(true);
    let expect = [1.0, 3.0, 5.0, 3.0];
    let (y, shape) = reference::avg_pool(&x, &[1, 1, 6], &p);
    assert_eq!(shape, vec![1, 1, 4]);
    assert_eq!(y, expect);
    let gpu = eval(&Pool::avg(p), &[&tensor(&[1, 1, 6], &x)]);
    assert_close("avg divisor", &gpu, &expect, 1e-6, 1e-6);
}

#[test]
fn reference_backward_matches_finite_differences() {
    let mut rng = Rng::new(1);
    let small = [
        (
            vec![1, 2, 9],
            PoolParams::new(&[3]).stride(2).padding(1).ceil_mode(true),
        ),
        (
            vec![2, 1, 6, 7],
            PoolParams::new(&[3, 3]).stride(2).ceil_mode(true),
        ),
        (
            vec![1, 2, 5, 5],
            PoolParams::new(&[2, 3]).strides(&[1, 2]).paddings(&[1, 1]),
        ),
        (
            vec![1, 1, 4, 5, 5],
            PoolParams::new(&[3, 2, 3])
                .stride(2)
                .paddings(&[1, 1, 0])
                .ceil_mode(true),
        ),
        (
            vec![2, 1, 9],
            PoolParams::new(&[3])
                .stride(2)
                .dilation(2)
                .pads(pads(&[2], &[1]))
                .ceil_mode(true)
                .count_include_pad(false),
        ),
        (
            vec![1, 2, 6, 5],
            PoolParams::new(&[2, 3])
                .strides(&[1, 2])
                .dilations(&[2, 1])
                .auto_pad(AutoPad::SameLower)
                .count_include_pad(false),
        ),
        (
            vec![1, 1, 4, 5, 4],
            PoolParams::new(&[2, 2, 3])
                .stride(2)
                .dilations(&[1, 2, 1])
                .pads(pads(&[1, 0, 2], &[0, 2, 1]))
                .ceil_mode(true),
        ),
    ];
    for (shape, p) in small {
        let x = random_nonzero(&mut rng, numel(&shape));
        let out = reference::output_shape(&shape, &p);
        let up = random_f64(&mut rng, numel(&out));
        let what = format!("{shape:?} {p:?}");
        let f = |v: &[f64]| dot(&reference::max_pool(v, &shape, &p).0, &up);
        let dx = reference::max_pool_backward(&x, &shape, &p, &up);
        assert_gradient(&format!("max {what}"), &f, &x, &dx);
        let f = |v: &[f64]| dot(&reference::avg_pool(v, &shape, &p).0, &up);
        let dx = reference::avg_pool_backward(&shape, &p, &up);
        assert_gradient(&format!("avg {what}"), &f, &x, &dx);
    }
    let shape = [2, 3, 4, 3];
    let x = random_nonzero(&mut rng, numel(&shape));
    let up = random_f64(&mut rng, 6);
    let f = |v: &[f64]| dot(&reference::global_avg_pool(v, &shape), &up);
    let dx = reference::global_avg_pool_backward(&shape, &up);
    assert_gradient("global avg", &f, &x, &dx);
}

#[test]
fn forward_and_backward_match_reference() {
    check_against_reference(cases(), 2);
}

#[test]
fn options_match_reference() {
    check_against_reference(option_cases(), 7);
}

fn check_against_reference(cases: Vec<(Vec<usize>, PoolParams)>, seed: u64) {
    let mut rng = Rng::new(seed);
    for (shape, p) in cases {
        let what = format!("{shape:?} {p:?}");
        let x = random_nonzero(&mut rng, numel(&shape));
        let tx = tensor(&shape, &x);
        let out = reference::output_shape(&shape, &p);
        let up = random_f64(&mut rng, numel(&out));
        let tup = tensor(&out, &up);

        let (expect, expect_shape) = reference::max_pool(&x, &shape, &p);
        let pool = Pool::max(p.clone());
        let y = wgnn::graph::eval(gpu(), &pool, &[&tx]).unwrap();
        assert_eq!(y.shape.dims(), expect_shape.as_slice(), "max {what}");
        assert_close(
            &format!("max {what}"),
            &y.to_vec(gpu()).unwrap(),
            &expect,
            1e-6,
            1e-6,
        );
        let dx = eval(&MaxPoolBackward(p.clone()), &[&tx, &tup]);
        let expect = reference::max_pool_backward(&x, &shape, &p, &up);
        assert_close(&format!("max backward {what}"), &dx, &expect, 1e-4, 1e-3);

        let (expect, _) = reference::avg_pool(&x, &shape, &p);
        let y = eval(&Pool::avg(p.clone()), &[&tx]);
        assert_close(&format!("avg {what}"), &y, &expect, 1e-4, 1e-3);
        let backward = AvgPoolBackward {
            params: p.clone(),
            input: Shape::new(&shape).unwrap(),
        };
        let dx = eval(&backward, &[&tup]);
        let expect = reference::avg_pool_backward(&shape, &p, &up);
        assert_close(&format!("avg backward {what}"), &dx, &expect, 1e-4, 1e-3);
    }
}

#[test]
fn squeezenet_pooling_shapes() {
    // 3x3 stride-2 ceil-mode max pooling as in SqueezeNet, on odd and even sizes.
    let mut rng = Rng::new(3);
    let p = PoolParams::new(&[3, 3]).stride(2).ceil_mode(true);
    for (size, expect_size) in [(13, 6), (14, 7), (27, 13)] {
        let shape = [2, 3, size, size];
        let x = random_nonzero(&mut rng, numel(&shape));
        let up = random_f64(&mut rng, 2 * 3 * expect_size * expect_size);
        let (y, grads) = graph_vjp(&[(&shape, &x)], &up, &|g, ids| {
            g.max_pool(ids[0], &p).unwrap()
        });
        let (expect, out) = reference::max_pool(&x, &shape, &p);
        assert_eq!(out, vec![2, 3, expect_size, expect_size]);
        assert_close(&format!("squeezenet max {size}"), &y, &expect, 1e-6, 1e-6);
        let dx = reference::max_pool_backward(&x, &shape, &p, &up);
        assert_close(
            &format!("squeezenet max backward {size}"),
            &grads[0],
            &dx,
            1e-4,
            1e-3,
        );
    }
}

#[test]
fn max_backward_sends_ties_to_the_first_maximal_element() {
    // Every window is constant: the whole gradient of a window goes to its first element.
    let shape = [1, 2, 5, 5];
    let x: Vec<f64> = (0..50).map(|i| if i < 25 { 0.5 } else { -0.25 }).collect();
    let p = PoolParams::new(&[3, 3])
        .stride(2)
        .padding(1)
        .ceil_mode(true);
    let out = reference::output_shape(&shape, &p);
    let mut rng = Rng::new(4);
    let up = random_f64(&mut rng, numel(&out));
    let dx = eval(
        &MaxPoolBackward(p.clone()),
        &[&tensor(&shape, &x), &tensor(&out, &up)],
    );
    let expect = reference::max_pool_backward(&x, &shape, &p, &up);
    assert_close("ties", &dx, &expect, 1e-4, 1e-3);
    // Windows start at columns -1, 1 and 3: (0, 0) and (0, 1) are first elements, (0, 2) is not.
    assert!(expect[0] != 0.0 && expect[1] != 0.0 && expect[2] == 0.0);
}

#[test]
fn global_avg_pool_matches_reference() {
    let mut rng = Rng::new(5);
    // Rows summed by one invocation each (at most 256 positions) and by a workgroup of 64
    // (300), ranks 3 to 5.
    for shape in [
        vec![3, 5, 7],
        vec![2, 3, 13, 11],
        vec![2, 2, 3, 5, 7],
        vec![1, 3, 300],
    ] {
        let x = random_nonzero(&mut rng, numel(&shape));
        let rows = shape[0] * shape[1];
        let up = random_f64(&mut rng, rows);
        let tx = tensor(&shape, &x);
        let y = eval(&GlobalAvgPool, &[&tx]);
        let what = format!("{shape:?}");
        assert_close(
            &what,
            &y,
            &reference::global_avg_pool(&x, &shape),
            1e-4,
            1e-3,
        );
        let backward = GlobalAvgPoolBackward {
            input: Shape::new(&shape).unwrap(),
        };
        let dx = eval(&backward, &[&tensor(&shape[..2], &up)]);
        let expect = reference::global_avg_pool_backward(&shape, &up);
        assert_close(&format!("backward {what}"), &dx, &expect, 1e-4, 1e-3);
    }
}

#[test]
fn graph_gradient_through_pool_chain() {
    // max pool -> avg pool -> global avg pool, differentiated through compiled plans.
    let mut rng = Rng::new(6);
    let shape = [2, 3, 11, 10];
    let x = random_nonzero(&mut rng, numel(&shape));
    let up = random_f64(&mut rng, 6);
    let pm = PoolParams::new(&[3, 3])
        .stride(2)
        .padding(1)
        .ceil_mode(true);
    let pa = PoolParams::new(&[2, 2]).stride(1).padding(1);
    let (y, grads) = graph_vjp(&[(&shape, &x)], &up, &|g, ids| {
        let m = g.max_pool(ids[0], &pm).unwrap();
        let a = g.avg_pool(m, &pa).unwrap();
        g.global_avg_pool(a).unwrap()
    });
    let (m, m_shape) = reference::max_pool(&x, &shape, &pm);
    let (a, a_shape) = reference::avg_pool(&m, &m_shape, &pa);
    assert_close(
        "chain forward",
        &y,
        &reference::global_avg_pool(&a, &a_shape),
        1e-4,
        1e-3,
    );
    let da = reference::global_avg_pool_backward(&a_shape, &up);
    let dm = reference::avg_pool_backward(&m_shape, &pa, &da);
    let dx = reference::max_pool_backward(&x, &shape, &pm, &dm);
    assert_close("chain backward", &grads[0], &dx, 1e-4, 1e-3);
}

#[test]
fn bad_shapes_are_errors() {
    let mut g = wgnn::Graph::new();
    let x = g.input("x", [2, 3, 8, 8]);
    // Kernel rank does not match the input's spatial rank.
    assert!(g.max_pool(x, &PoolParams::new(&[2])).is_err());
    assert!(g.avg_pool(x, &PoolParams::new(&[2, 2, 2])).is_err());
    // A window wholly in the padding (padding 3 of a 3-wide kernel), kernel over the padded
    // input, zero stride.
    assert!(g.max_pool(x, &PoolParams::new(&[3, 3]).padding(3)).is_err());
    assert!(g.max_pool(x, &PoolParams::new(&[9, 9])).is_err());
    assert!(g.avg_pool(x, &PoolParams::new(&[2, 2]).stride(0)).is_err());
    // Stride and padding lengths that do not match the kernel.
    assert!(g
        .max_pool(x, &PoolParams::new(&[2, 2]).strides(&[2]))
        .is_err());
    assert!(g
        .max_pool(x, &PoolParams::new(&[2, 2]).paddings(&[0, 0, 0]))
        .is_err());
    assert!(g.max_pool(x, &PoolParams::new(&[])).is_err());
    let v = g.input("v", [2, 3]);
    assert!(g.global_avg_pool(v).is_err());
    // A backward op given a dy of the wrong shape.
    let dy = g.input("dy", [2, 3, 3, 3]);
    assert!(g
        .apply(MaxPoolBackward(PoolParams::new(&[2, 2])), &[x, dy])
        .is_err());
    assert!(g.max_pool(x, &PoolParams::new(&[2, 2])).is_ok());
}

/// Average pooling that counts padding accepts a window lying wholly in the end padding (ONNX's
/// reference averages its zeros: 0); max pooling and the divisor without padding refuse it.
#[test]
fn window_wholly_in_padding_averages_to_zero_when_padding_counts() {
    let mut rng = Rng::new(8);
    let shape = [2, 2, 7];
    // Windows start at 0, 2, 4, 6, 8; the last one's taps 8 and 9 are both padding.
    let p = PoolParams::new(&[2]).stride(2).pads(pads(&[0], &[3]));
    let x = random_nonzero(&mut rng, numel(&shape));
    let (expect, out) = reference::avg_pool(&x, &shape, &p);
    assert_eq!(out, vec![2, 2, 5]);
    assert_eq!(expect[4], 0.0);
    let y = eval(&Pool::avg(p.clone()), &[&tensor(&shape, &x)]);
    assert_close("padding-only window", &y, &expect, 1e-6, 1e-6);
    let up = random_f64(&mut rng, numel(&out));
    let backward = AvgPoolBackward {
        params: p.clone(),
        input: Shape::new(&shape).unwrap(),
    };
    let dx = eval(&backward, &[&tensor(&out, &up)]);
    let expect = reference::avg_pool_backward(&shape, &p, &up);
    assert_close("padding-only window backward", &dx, &expect, 1e-5, 1e-5);

    let mut g = wgnn::Graph::new();
    let v = g.input("x", shape);
    let err = g.max_pool(v, &p).unwrap_err().to_string();
    assert!(err.contains("wholly in the padding"), "{err}");
    assert!(g.avg_pool(v, &p.clone().count_include_pad(false)).is_err());
    assert!(g.avg_pool(v, &p).is_ok());
}

#[test]
fn automatic_padding_keeps_ceil_of_input_over_stride() {
    for (input, kernel, stride, dilation) in [(11, 3, 2, 1), (10, 2, 3, 2), (7, 4, 1, 1)] {
        for mode in [AutoPad::SameUpper, AutoPad::SameLower] {
            for ceil in [false, true] {
                let p = PoolParams::new(&[kernel])
                    .stride(stride)
                    .dilation(dilation)
                    .auto_pad(mode)
                    .ceil_mode(ceil);
                let shape = Shape::new(&[1, 1, input]).unwrap();
                let out = p.output_shape("pool", &shape).unwrap().dims()[2];
                assert_eq!(out, input.div_ceil(stride), "{p:?}");
                assert_eq!(out, reference::output_size(&[input], &p)[0], "{p:?}");
            }
        }
        // VALID: no padding, rounded down even in ceil mode.
        let p = PoolParams::new(&[kernel])
            .stride(stride)
            .dilation(dilation)
            .auto_pad(AutoPad::Valid)
            .ceil_mode(true);
        let shape = Shape::new(&[1, 1, input]).unwrap();
        let span = (kernel - 1) * dilation + 1;
        let out = p.output_shape("pool", &shape).unwrap().dims()[2];
        assert_eq!(out, (input - span) / stride + 1, "{p:?}");
    }
    // SAME_UPPER puts the odd padding element at the end, SAME_LOWER at the beginning: a 2-wide
    // window over [1, 2, 3] pools [1, 2], [2, 3], [3, pad] upper and [pad, 1], [1, 2], [2, 3] lower.
    let x = [1.0, 2.0, 3.0];
    for (mode, expect) in [
        (AutoPad::SameUpper, [2.0, 3.0, 3.0]),
        (AutoPad::SameLower, [1.0, 2.0, 3.0]),
    ] {
        let p = PoolParams::new(&[2]).stride(1).auto_pad(mode);
        let y = eval(&Pool::max(p.clone()), &[&tensor(&[1, 1, 3], &x)]);
        assert_close(&format!("{mode:?}"), &y, &expect, 1e-6, 1e-6);
        assert_eq!(reference::max_pool(&x, &[1, 1, 3], &p).0, expect);
    }
}

#[test]
fn avg_divisor_with_and_without_padding() {
    // avg_pool1d([1..5], 3, stride 2, padding 1): windows [pad, 1, 2], [2, 3, 4], [4, 5, pad].
    let x = [1.0, 2.0, 3.0, 4.0, 5.0];
    let p = PoolParams::new(&[3]).stride(2).padding(1);
    for (include, expect) in [(true, [1.0, 3.0, 3.0]), (false, [1.5, 3.0, 4.5])] {
        let p = p.clone().count_include_pad(include);
        assert_eq!(reference::avg_pool(&x, &[1, 1, 5], &p).0, expect);
        let y = eval(&Pool::avg(p), &[&tensor(&[1, 1, 5], &x)]);
        assert_close(&format!("include {include}"), &y, &expect, 1e-6, 1e-6);
    }
    // Dilation 2, stride 2, padding 2 before and 1 after, ceil mode: taps -2, 0, 2 | 0, 2, 4 |
    // 2, 4, 6, where 6 lies past the end padding and does not count.
    let p = PoolParams::new(&[3])
        .stride(2)
        .dilation(2)
        .pads(pads(&[2], &[1]))
        .ceil_mode(true);
    let (y, _) = reference::avg_pool(&x, &[1, 1, 5], &p);
    assert_eq!(
        y,
        vec![
            (1.0 + 3.0) / 3.0,
            (1.0 + 3.0 + 5.0) / 3.0,
            (3.0 + 5.0) / 2.0
        ]
    );
    let gpu = eval(&Pool::avg(p), &[&tensor(&[1, 1, 5], &x)]);
    assert_close("dilated divisor", &gpu, &y, 1e-6, 1e-6);
}

fn download_u32(t: &wgnn::Tensor) -> Vec<u32> {
    gpu().download(&t.buffer, t.shape.numel()).unwrap()
}

fn u32_tensor(shape: &[usize], values: &[u32]) -> wgnn::Tensor {
    wgnn::Tensor::from_u32(gpu(), Shape::new(shape).unwrap(), values).unwrap()
}

#[test]
fn max_indices_and_unpool_match_reference() {
    let mut rng = Rng::new(9);
    let mut all = cases();
    all.extend(option_cases());
    for (shape, p) in all {
        let what = format!("{shape:?} {p:?}");
        let x = random_nonzero(&mut rng, numel(&shape));
        let tx = tensor(&shape, &x);
        let out = reference::output_shape(&shape, &p);
        for (base, whole) in [(IndexBase::Plane, false), (IndexBase::Tensor, true)] {
            let op = MaxPoolIndices {
                params: p.clone(),
                base,
            };
            let indices = wgnn::graph::eval(gpu(), &op, &[&tx]).unwrap();
            let expect = reference::max_pool_indices(&x, &shape, &p, whole);
            assert_eq!(download_u32(&indices), expect, "indices {base:?} {what}");

            // Unpool the pooled values back to x's size, and its backward, from these indices.
            let (values, _) = reference::max_pool(&x, &shape, &p);
            let unpool = MaxUnpool {
                output: shape[2..].to_vec(),
                base,
            };
            let y = eval(&unpool, &[&tensor(&out, &values), &indices]);
            let expect_y = reference::max_unpool(&values, &expect, &out, &shape, whole);
            assert_close(
                &format!("unpool {base:?} {what}"),
                &y,
                &expect_y,
                1e-6,
                1e-6,
            );
            let up = random_f64(&mut rng, numel(&shape));
            let dv = eval(
                &MaxUnpoolBackward { base },
                &[&tensor(&shape, &up), &indices],
            );
            let expect_dv = reference::max_unpool_backward(&up, &expect, &out, &shape, whole);
            assert_close(
                &format!("unpool backward {base:?} {what}"),
                &dv,
                &expect_dv,
                1e-6,
                1e-6,
            );
        }
    }
}

#[test]
fn unpool_to_a_larger_size_skips_indices_outside_it() {
    // Plane indices into a 3 x 4 output, one out of range (12) and skipped; the gradient of the
    // skipped value is 0.
    let shape = [2, 1, 2, 2];
    let values = [0.5, -0.75, 0.25, 1.5, -0.5, 0.125, 2.0, -1.0];
    let indices = [0, 5, 11, 12, 3, 4, 7, 10];
    let out = [2, 1, 3, 4];
    let unpool = MaxUnpool {
        output: vec![3, 4],
        base: IndexBase::Plane,
    };
    let y = eval(
        &unpool,
        &[&tensor(&shape, &values), &u32_tensor(&shape, &indices)],
    );
    let expect = reference::max_unpool(&values, &indices, &shape, &out, false);
    assert_eq!(expect[12 + 3], -0.5);
    assert_eq!(expect.iter().filter(|&&v| v != 0.0).count(), 7);
    assert_close("unpool", &y, &expect, 1e-6, 1e-6);
    let mut rng = Rng::new(10);
    let up = random_f64(&mut rng, 24);
    let dv = eval(
        &MaxUnpoolBackward {
            base: IndexBase::Plane,
        },
        &[&tensor(&out, &up), &u32_tensor(&shape, &indices)],
    );
    let expect = reference::max_unpool_backward(&up, &indices, &shape, &out, false);
    assert_eq!(expect[3], 0.0);
    assert_close("unpool backward", &dv, &expect, 1e-6, 1e-6);
}

#[test]
fn reference_unpool_backward_matches_finite_differences() {
    let mut rng = Rng::new(11);
    // Windows that do not overlap (stride >= span), so no two values share an index.
    let shape = [2, 2, 5, 6];
    let p = PoolParams::new(&[2, 2])
        .strides(&[2, 3])
        .dilations(&[1, 2])
        .pads(pads(&[1, 0], &[0, 1]));
    let x = random_nonzero(&mut rng, numel(&shape));
    let out = reference::output_shape(&shape, &p);
    for whole in [false, true] {
        let indices = reference::max_pool_indices(&x, &shape, &p, whole);
        let values = random_nonzero(&mut rng, numel(&out));
        let up = random_f64(&mut rng, numel(&shape));
        let f = |v: &[f64]| {
            dot(
                &reference::max_unpool(v, &indices, &out, &shape, whole),
                &up,
            )
        };
        let dv = reference::max_unpool_backward(&up, &indices, &out, &shape, whole);
        // Distinct output positions (plane indices repeat across planes).
        let (pooled, plane) = (numel(&out[2..]), numel(&shape[2..]));
        let mut positions: Vec<usize> = indices
            .iter()
            .enumerate()
            .map(|(i, &at)| if whole { 0 } else { i / pooled * plane } + at as usize)
            .collect();
        positions.sort();
        positions.dedup();
        assert_eq!(
            positions.len(),
            indices.len(),
            "windows must not share an argmax"
        );
        assert_gradient(&format!("unpool whole {whole}"), &f, &values, &dv);
    }
}

#[test]
fn graph_gradient_through_max_pool_indices_and_unpool() {
    // x -> (values, indices) -> max_unpool back to x's size: overlapping 3 x 3 windows at stride
    // 2 with dilation and asymmetric padding; values sharing an index are equal, so the output
    // does not depend on which lands.
    let mut rng = Rng::new(12);
    let shape = [2, 3, 9, 8];
    let p = PoolParams::new(&[3, 3])
        .stride(2)
        .dilations(&[1, 2])
        .pads(pads(&[1, 2], &[2, 1]))
        .ceil_mode(true);
    let x = random_nonzero(&mut rng, numel(&shape));
    let up = random_f64(&mut rng, numel(&shape));
    let (y, grads) = graph_vjp(&[(&shape, &x)], &up, &|g, ids| {
        let (values, indices) = g.max_pool_with_indices(ids[0], &p).unwrap();
        g.max_unpool(values, indices, &p, Some(&shape[2..]))
            .unwrap()
    });
    let (values, out) = reference::max_pool(&x, &shape, &p);
    let indices = reference::max_pool_indices(&x, &shape, &p, false);
    let expect = reference::max_unpool(&values, &indices, &out, &shape, false);
    assert_close("pool-unpool forward", &y, &expect, 1e-6, 1e-6);
    let dvalues = reference::max_unpool_backward(&up, &indices, &out, &shape, false);
    let dx = reference::max_pool_backward(&x, &shape, &p, &dvalues);
    assert_close("pool-unpool backward", &grads[0], &dx, 1e-4, 1e-3);
    // The same with indices over the whole tensor (ONNX's): the same values and gradients.
    let (y, grads) = graph_vjp(&[(&shape, &x)], &up, &|g, ids| {
        let values = g.max_pool(ids[0], &p).unwrap();
        let indices = g.max_pool_indices(ids[0], &p, IndexBase::Tensor).unwrap();
        g.max_unpool_to(values, indices, &shape[2..], IndexBase::Tensor)
            .unwrap()
    });
    assert_close("whole-tensor pool-unpool forward", &y, &expect, 1e-6, 1e-6);
    assert_close(
        "whole-tensor pool-unpool backward",
        &grads[0],
        &dx,
        1e-4,
        1e-3,
    );
}

#[test]
fn gradient_of_unpool_backward_is_unpool() {
    // MaxUnpoolBackward is linear in dy; its own backward rule is max-unpooling, run through a
    // compiled plan with u32 indices.
    let mut rng = Rng::new(13);
    let (pooled, full) = ([2, 2, 3, 4], [2, 2, 6, 8]);
    let indices: Vec<u32> = (0..numel(&pooled))
        .map(|i| ((i % 12) * 4 + (i * 7) % 3) as u32)
        .collect();
    let dy = random_nonzero(&mut rng, numel(&full));
    let seed = random_f64(&mut rng, numel(&pooled));
    let mut g = wgnn::Graph::new();
    let x = g.input("dy", full);
    let ids = g.input_u32("indices", pooled);
    let base = IndexBase::Plane;
    let out = g.apply(MaxUnpoolBackward { base }, &[x, ids]).unwrap();
    let s = g.input("seed", pooled);
    let grads = g.backward(out, s, &[x]).unwrap();
    let params = wgnn::nn::ParamStore::new();
    let spec = wgnn::PlanSpec {
        outputs: vec![out, grads[0]],
        ..Default::default()
    };
    let mut plan = wgnn::Plan::compile(gpu(), &g, &params, spec).unwrap();
    plan.write_input(gpu(), x, &to_f32(&dy)).unwrap();
    plan.write_input_u32(gpu(), ids, &indices).unwrap();
    plan.write_input(gpu(), s, &to_f32(&seed)).unwrap();
    let results = plan.step(gpu()).unwrap();
    let expect = reference::max_unpool_backward(&dy, &indices, &pooled, &full, false);
    assert_close("gather", &results[0], &expect, 1e-6, 1e-6);
    // The indices are distinct, so the adjoint is exact: the seed scattered back.
    let expect = reference::max_unpool(&seed, &indices, &pooled, &full, false);
    let f = |v: &[f64]| {
        dot(
            &reference::max_unpool_backward(v, &indices, &pooled, &full, false),
            &seed,
        )
    };
    assert_gradient("unpool backward's adjoint", &f, &dy, &expect);
    assert_close("adjoint", &results[1], &expect, 1e-6, 1e-6);
}

#[test]
fn bad_options_are_errors() {
    let mut g = wgnn::Graph::new();
    let x = g.input("x", [2, 3, 8, 8]);
    // Dilation of the wrong length or 0; pads of the wrong length.
    let p = PoolParams::new(&[2, 2]);
    assert!(g.max_pool(x, &p.clone().dilations(&[1])).is_err());
    assert!(g.max_pool(x, &p.clone().dilation(0)).is_err());
    assert!(g.max_pool(x, &p.clone().pads(pads(&[1, 1], &[1]))).is_err());
    // The dilated window spans more than the padded input: (3 - 1) * 4 + 1 = 9 > 8.
    let err = g
        .max_pool(x, &PoolParams::new(&[3, 3]).dilation(4))
        .unwrap_err()
        .to_string();
    assert!(err.contains("spans 9 positions"), "{err}");
    // Taps that skip the only real elements: input 2, kernel 2, dilation 3, padding 1 each side:
    // the one window's taps are -1 and 2.
    let v = g.input("v", [1, 1, 2]);
    let p = PoolParams::new(&[2]).dilation(3).padding(1);
    assert!(g.max_pool(v, &p).is_err());
    assert!(g.avg_pool(v, &p.clone().count_include_pad(false)).is_err());
    assert!(g.avg_pool(v, &p).is_ok());
    // Unpooling: indices of another shape, f32 indices, an output size of the wrong rank.
    let (values, indices) = g
        .max_pool_with_indices(x, &PoolParams::new(&[2, 2]))
        .unwrap();
    let other = g.input_u32("other", [2, 3, 3, 4]);
    assert!(g
        .max_unpool(values, other, &PoolParams::new(&[2, 2]), None)
        .is_err());
    assert!(g
        .max_unpool(values, values, &PoolParams::new(&[2, 2]), None)
        .is_err());
    assert!(g
        .max_unpool(values, indices, &PoolParams::new(&[2, 2]), Some(&[8]))
        .is_err());
    let auto = PoolParams::new(&[2, 2]).auto_pad(AutoPad::SameUpper);
    assert!(g.max_unpool(values, indices, &auto, None).is_err());
    let y = g
        .max_unpool(values, indices, &PoolParams::new(&[2, 2]), None)
        .unwrap();
    assert_eq!(g.shape(y).dims(), &[2, 3, 8, 8]);
    let dtype = wgnn::graph::eval(
        gpu(),
        &MaxUnpool {
            output: vec![4, 4],
            base: IndexBase::Plane,
        },
        &[
            &tensor(&[1, 1, 2, 2], &[1.0; 4]),
            &tensor(&[1, 1, 2, 2], &[1.0; 4]),
        ],
    );
    assert!(dtype.unwrap_err().to_string().contains("indices u32"));
}

#[test]
fn output_positions_stay_exact_past_two_to_the_24() {
    // The forward kernels split an output's flat index with float reciprocals and integer fix-ups;
    // 1 x 1 windows copy x, so every element shows whether its index was split exactly. 3 columns
    // and over 2^24 elements: the first float estimate of index / 3 is off by up to 2 there.
    let shape = [1, 1, 5_600_011, 3];
    let n = numel(&shape);
    assert!(n > 1 << 24);
    let x: Vec<f32> = (0..n).map(|i| (i % 1_000_003) as f32 + 0.5).collect();
    let tx = wgnn::Tensor::from_f32(gpu(), Shape::new(&shape).unwrap(), &x).unwrap();
    for op in [
        Pool::max(PoolParams::new(&[1, 1])),
        Pool::avg(PoolParams::new(&[1, 1])),
    ] {
        let y = eval(&op, &[&tx]);
        let wrong = y.iter().zip(&x).position(|(a, b)| a != b);
        assert_eq!(wrong, None, "{op:?}");
    }
}
