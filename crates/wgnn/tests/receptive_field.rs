//! Receptive fields against brute force: perturb one input pixel at a time and see which output
//! positions change, on a small network with strides (different per axis), padding, dilation,
//! pooling and two branches added together; every weight and input is positive, so a large
//! perturbation raises every output that can see the pixel (and becomes the max of any pooling
//! window it enters). The network has no holes in its fields (the dilated convolution follows a
//! dense one), so "can see" is exactly the field's rectangle.
use wgnn_reference::testing as common;

use common::gpu;
use wgnn::graph::{AxisField, Op, ReceptiveField};
use wgnn::nn::ParamStore;
use wgnn::ops::conv::ConvParams;
use wgnn::ops::pool::PoolParams;
use wgnn::rng::Rng;
use wgnn::{Graph, NodeId, Plan, PlanSpec, Shape};

const H: usize = 23;
const W: usize = 19;

struct Net {
    graph: Graph,
    x: NodeId,
    y: NodeId,
    params: ParamStore,
}

fn net(n: usize) -> Net {
    let gpu = gpu();
    let mut rng = Rng::new(5);
    let mut params = ParamStore::new();
    let shapes: [(&str, [usize; 4]); 4] = [
        ("dense", [3, 1, 3, 3]),
        ("dilated", [2, 3, 3, 3]),
        ("branch", [2, 3, 1, 1]),
        ("strided", [2, 2, 3, 3]),
    ];
    for (name, shape) in shapes {
        let count = shape.iter().product();
        params
            .insert_f32(
                gpu,
                &format!("{name}.weight"),
                shape,
                &rng.vec_f32(count, 0.1, 1.0),
            )
            .unwrap();
        params
            .insert_f32(
                gpu,
                &format!("{name}.bias"),
                [shape[0]],
                &rng.vec_f32(shape[0], 0.1, 0.5),
            )
            .unwrap();
    }
    let mut g = Graph::new();
    let x = g.input("x", [n, 1, H, W]);
    let conv = |g: &mut Graph, input, name: &str, p: ConvParams| {
        let w = g
            .params_from(
                &params,
                &[&format!("{name}.weight"), &format!("{name}.bias")],
            )
            .unwrap();
        g.conv_relu(input, w[0], Some(w[1]), &p).unwrap()
    };
    let dense = conv(&mut g, x, "dense", ConvParams::new(2).padding(1));
    let dilated = conv(
        &mut g,
        dense,
        "dilated",
        ConvParams::new(2).padding(2).dilation(2),
    );
    let branch = conv(&mut g, dense, "branch", ConvParams::new(2));
    let sum = g.add(dilated, branch).unwrap();
    let strided = conv(
        &mut g,
        sum,
        "strided",
        ConvParams::new(2).strides(&[2, 1]).padding(1),
    );
    let pooled = g
        .max_pool(strided, &PoolParams::new(&[3, 3]).stride(2).padding(1))
        .unwrap();
    let y = g
        .avg_pool(pooled, &PoolParams::new(&[2, 2]).stride(1))
        .unwrap();
    Net {
        graph: g,
        x,
        y,
        params,
    }
}

#[test]
fn fields_match_the_outputs_a_pixel_perturbation_changes() {
    let base = net(1);
    let field = base.graph.receptive_field(base.x, base.y).unwrap();
    let ReceptiveField::Local(axes) = &field else {
        panic!("a local field was expected, got {field:?}");
    };
    assert_eq!(axes.len(), 2);
    // Rows, as (first, last) at a stride: dense 3x3 pad 1 (-1, 1) at 1; dilated (-3, 3), the
    // 1x1 branch (-1, 1) inside it; the stride-2 conv pad 1 (-4, 4) at 2; max pool 3 stride 2
    // pad 1 (-6, 6) at 4; avg pool 2 (-6, 10) at 4. Columns: the conv has stride 1 there, so
    // (-4, 4) at 1, (-5, 5) at 2, (-5, 7) at 2.
    let rows = AxisField {
        stride: 4,
        first: -6,
        last: 10,
    };
    let cols = AxisField {
        stride: 2,
        first: -5,
        last: 7,
    };
    assert_eq!(axes.as_slice(), [rows, cols]);

    // Batch: image 0 unperturbed, image 1 + i with pixel i raised by 1000.
    let gpu = gpu();
    let pixels = H * W;
    let n = pixels + 1;
    let Net {
        graph,
        x,
        y,
        params,
    } = net(n);
    let out_shape = graph.shape(y).clone();
    let (c, oh, ow) = (out_shape.dim(1), out_shape.dim(2), out_shape.dim(3));
    let spec = PlanSpec {
        outputs: vec![y],
        ..Default::default()
    };
    let mut plan = Plan::compile(gpu, &graph, &params, spec).unwrap();
    let image = Rng::new(9).vec_f32(pixels, 0.5, 1.0);
    let mut input = Vec::with_capacity(n * pixels);
    for k in 0..n {
        let mut copy = image.clone();
        if k > 0 {
            copy[k - 1] += 1000.0;
        }
        input.extend(copy);
    }
    plan.write_input(gpu, x, &input).unwrap();
    let out = plan.step(gpu).unwrap().remove(0);
    let per_image = c * oh * ow;
    let mut mismatches = Vec::new();
    for pixel in 0..pixels {
        let (py, px) = ((pixel / W) as i64, (pixel % W) as i64);
        for r in 0..oh {
            for q in 0..ow {
                let changed = (0..c).any(|ch| {
                    let at = ch * oh * ow + r * ow + q;
                    (out[(pixel + 1) * per_image + at] - out[at]).abs() > 1e-3
                });
                let (rows, cols) = (axes[0].span(r), axes[1].span(q));
                let inside = rows.0 <= py && py <= rows.1 && cols.0 <= px && px <= cols.1;
                if changed != inside {
                    mismatches.push((py, px, r, q, changed));
                }
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} (pixel row, col, output row, col, changed) disagree with the field, first {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(5)]
    );
}

#[test]
fn global_pooling_sees_the_whole_input_and_unknown_ops_are_named() {
    let mut g = Graph::new();
    let x = g.input("x", [1, 2, 9, 9]);
    let pooled = g.global_avg_pool(x).unwrap();
    assert_eq!(g.receptive_field(x, pooled).unwrap(), ReceptiveField::Whole);

    #[derive(Debug)]
    struct Mystery;
    impl Op for Mystery {
        fn name(&self) -> &'static str {
            "mystery"
        }
        fn output_shape(&self, inputs: &[&Shape]) -> wgnn::Result<Shape> {
            Ok(inputs[0].clone())
        }
        fn encode(
            &self,
            _: &mut wgnn::graph::EncodeCtx<'_>,
            _: &[&wgnn::Tensor],
            _: &wgnn::Tensor,
        ) -> wgnn::Result<Vec<wgnn::gpu::Dispatch>> {
            Ok(Vec::new())
        }
    }
    let unrelated = g.input("other", [1, 2, 9, 9]);
    let err = g.receptive_field(x, unrelated).unwrap_err().to_string();
    assert!(err.contains("does not depend"), "{err}");
    let odd = g.apply(Mystery, &[x]).unwrap();
    let err = g.receptive_field(x, odd).unwrap_err().to_string();
    assert!(err.contains("mystery"), "{err}");
}

#[test]
fn branches_at_different_strides_are_an_error() {
    let gpu = gpu();
    let mut params = ParamStore::new();
    params
        .insert_f32(gpu, "one", [2, 2, 1, 1], &[1.0; 4])
        .unwrap();
    params
        .insert_f32(gpu, "five", [2, 2, 5, 5], &[1.0; 100])
        .unwrap();
    let mut g = Graph::new();
    let x = g.input("x", [1, 2, 8, 8]);
    let w = g.params_from(&params, &["one", "five"]).unwrap();
    // Both 4x4: a 1x1 convolution at stride 2, and a 5x5 one at stride 1 without padding.
    let strided = g
        .conv(x, w[0], None, &ConvParams::new(2).stride(2))
        .unwrap();
    let wide = g.conv(x, w[1], None, &ConvParams::new(2)).unwrap();
    let pooled = g.max_pool(x, &PoolParams::new(&[2, 2])).unwrap();
    let same = g.add(strided, pooled).unwrap();
    let field = g.receptive_field(x, same).unwrap();
    let expected = AxisField {
        stride: 2,
        first: 0,
        last: 1,
    };
    assert_eq!(field, ReceptiveField::Local(vec![expected; 2]));
    let mixed = g.concat_channels(&[wide, strided]).unwrap();
    let err = g.receptive_field(x, mixed).unwrap_err().to_string();
    assert!(err.contains("different strides"), "{err}");
}
