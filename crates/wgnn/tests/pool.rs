//! Max, average and global average pooling against the float64 reference, forward and backward,
//! over every stride / padding / ceil-mode path in 1-D, 2-D and 3-D.
use wgnn_reference::testing as common;

use common::*;
use wgnn::ops::pool::{
    AvgPoolBackward, GlobalAvgPool, GlobalAvgPoolBackward, MaxPoolBackward, Pool, PoolParams,
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
    let mut rng = Rng::new(2);
    for (shape, p) in cases() {
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
    // Rows shorter and longer than the 64-invocation workgroup, ranks 3 to 5.
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
    // Padding over half the kernel, kernel over the padded input, zero stride.
    assert!(g.max_pool(x, &PoolParams::new(&[3, 3]).padding(2)).is_err());
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
