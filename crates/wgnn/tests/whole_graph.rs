//! Whole graphs against float64 compositions of the reference ops: the loss matches, and the
//! GPU gradient passes a directional-derivative check (central differences of the float64
//! loss along random directions in the space of every input and parameter).
use wgnn_reference::testing as common;

use common::*;
use wgnn::nn::ParamStore;
use wgnn::ops::conv::ConvParams;
use wgnn::ops::pool::PoolParams;
use wgnn::rng::Rng;
use wgnn::{Graph, NodeId, Plan, PlanSpec, Shape};
use wgnn_reference as r;

/// A named tensor of the test: its shape and float64 values.
struct Leaf {
    name: &'static str,
    shape: Vec<usize>,
    values: Vec<f64>,
}

fn leaf(rng: &mut Rng, name: &'static str, shape: &[usize], scale: f64) -> Leaf {
    let n = shape.iter().product();
    Leaf {
        name,
        shape: shape.to_vec(),
        values: random_f64(rng, n).into_iter().map(|v| v * scale).collect(),
    }
}

/// Adds an extra u32 input to a graph and gives its values (the triplets of a triplet loss).
type ExtraInput<'a> = &'a dyn Fn(&mut Graph) -> Option<(NodeId, Vec<u32>)>;

/// Runs the graph built by `build` (leaf 0 is an input, the others parameters) and returns the
/// loss and the gradient of every leaf.
fn gpu_loss_and_gradients(
    leaves: &[Leaf],
    build: &dyn Fn(&mut Graph, &[NodeId]) -> NodeId,
    extra: ExtraInput<'_>,
) -> (f64, Vec<Vec<f32>>) {
    let gpu = gpu();
    let mut g = Graph::new();
    let mut params = ParamStore::new();
    let mut ids = vec![g.input(leaves[0].name, Shape::new(&leaves[0].shape).unwrap())];
    for l in &leaves[1..] {
        ids.push(g.param(l.name, Shape::new(&l.shape).unwrap()).unwrap());
        params
            .insert_f32(
                gpu,
                l.name,
                Shape::new(&l.shape).unwrap(),
                &to_f32(&l.values),
            )
            .unwrap();
    }
    let indices = extra(&mut g);
    let mut all = ids.clone();
    if let Some((id, _)) = &indices {
        all.push(*id);
    }
    let loss = build(&mut g, &all);
    let grads = g.gradients(loss, &ids).unwrap();
    let mut outputs = vec![loss];
    outputs.extend(&grads);
    let mut plan = Plan::compile(
        gpu,
        &g,
        &params,
        PlanSpec {
            outputs,
            ..Default::default()
        },
    )
    .unwrap();
    plan.write_input(gpu, ids[0], &to_f32(&leaves[0].values))
        .unwrap();
    if let Some((id, data)) = &indices {
        plan.write_input_u32(gpu, *id, data).unwrap();
    }
    let mut values = plan.step(gpu).unwrap();
    let loss = values.remove(0)[0] as f64;
    (loss, values)
}

/// Checks the GPU gradient against central differences of the float64 loss along `directions`
/// random directions.
fn directional_check(
    what: &str,
    leaves: &[Leaf],
    grads: &[Vec<f32>],
    loss: &dyn Fn(&[Vec<f64>]) -> f64,
    rng: &mut Rng,
) {
    let base: Vec<Vec<f64>> = leaves.iter().map(|l| l.values.clone()).collect();
    for trial in 0..4 {
        let direction: Vec<Vec<f64>> = base.iter().map(|v| random_f64(rng, v.len())).collect();
        let eps = 1e-5;
        let shifted = |sign: f64| -> Vec<Vec<f64>> {
            base.iter()
                .zip(&direction)
                .map(|(v, d)| v.iter().zip(d).map(|(a, b)| a + sign * eps * b).collect())
                .collect()
        };
        let numeric = (loss(&shifted(1.0)) - loss(&shifted(-1.0))) / (2.0 * eps);
        let analytic: f64 = grads
            .iter()
            .zip(&direction)
            .map(|(g, d)| dot(&to_f64(g), d))
            .sum();
        let scale = numeric.abs().max(analytic.abs()).max(1e-3);
        assert!(
            (numeric - analytic).abs() / scale < 2e-3,
            "{what}, direction {trial}: GPU directional derivative {analytic} vs float64 central difference {numeric}"
        );
    }
}

#[test]
fn conv_relu_pool_conv_gram_gradients() {
    let mut rng = Rng::new(11);
    let leaves = vec![
        leaf(&mut rng, "x", &[2, 3, 9, 9], 1.0),
        leaf(&mut rng, "conv1.weight", &[4, 3, 3, 3], 0.5),
        leaf(&mut rng, "conv1.bias", &[4], 0.1),
        leaf(&mut rng, "conv2.weight", &[5, 4, 3, 3], 0.5),
        leaf(&mut rng, "mix", &[2, 5, 5], 1.0),
    ];
    let conv1 = ConvParams::new(2).padding(1);
    let pool = PoolParams::new(&[2, 2]).ceil_mode(true);
    let conv2 = ConvParams::new(2).dilation(1);
    let (c1, p1, c2) = (conv1.clone(), pool.clone(), conv2.clone());
    let build = move |g: &mut Graph, ids: &[NodeId]| {
        let h = g.conv(ids[0], ids[1], Some(ids[2]), &c1).unwrap();
        let h = g.relu(h).unwrap();
        let h = g.max_pool(h, &p1).unwrap();
        let h = g.conv(h, ids[3], None, &c2).unwrap();
        let gram = g.gram(h).unwrap();
        // A random linear functional of the Gram matrices makes every entry matter.
        let weighted = g.mul(gram, ids[4]).unwrap();
        g.sum(weighted).unwrap()
    };
    let (gpu_loss, grads) = gpu_loss_and_gradients(&leaves, &build, &|_| None);

    let cpu_loss = |v: &[Vec<f64>]| -> f64 {
        let shape1 = r::conv::output_shape(&[2, 3, 9, 9], &[4, 3, 3, 3], &conv1);
        let h = r::conv::forward(
            &v[0],
            &[2, 3, 9, 9],
            &v[1],
            &[4, 3, 3, 3],
            Some(&v[2]),
            &conv1,
        );
        let h = r::activation::forward(wgnn::ops::activation::Activation::Relu, &h);
        let (h, pooled) = r::pool::max_pool(&h, &shape1, &pool);
        let shape2 = r::conv::output_shape(&pooled, &[5, 4, 3, 3], &conv2);
        let h = r::conv::forward(&h, &pooled, &v[3], &[5, 4, 3, 3], None, &conv2);
        let hw: usize = shape2[2..].iter().product();
        let gram = r::gram::gram(&h, 2, 5, hw);
        dot(&gram, &v[4])
    };
    let base: Vec<Vec<f64>> = leaves.iter().map(|l| l.values.clone()).collect();
    let expected = cpu_loss(&base);
    assert!(
        (gpu_loss - expected).abs() <= 1e-4 * expected.abs().max(1e-3),
        "loss {gpu_loss} vs {expected}"
    );
    directional_check(
        "conv->relu->pool->conv->gram",
        &leaves,
        &grads,
        &cpu_loss,
        &mut rng,
    );
}

#[test]
fn embedding_net_l2_norm_triplet_gradients() {
    let mut rng = Rng::new(12);
    let leaves = vec![
        leaf(&mut rng, "faces", &[6, 2, 7, 7], 1.0),
        leaf(&mut rng, "conv.weight", &[5, 2, 3, 3], 0.5),
        leaf(&mut rng, "conv.bias", &[5], 0.2),
        leaf(&mut rng, "fc.weight", &[4, 5], 1.0),
        leaf(&mut rng, "fc.bias", &[4], 0.2),
    ];
    let triplets: Vec<[usize; 3]> = vec![[0, 1, 2], [3, 4, 5], [1, 0, 3], [5, 4, 2], [2, 5, 0]];
    let flat: Vec<u32> = triplets
        .iter()
        .flat_map(|t| t.iter().map(|&i| i as u32))
        .collect();
    let margin = 0.8;
    let conv = ConvParams::new(2).stride(2).padding(1);
    let c = conv.clone();
    let build = move |g: &mut Graph, ids: &[NodeId]| {
        let h = g.conv(ids[0], ids[1], Some(ids[2]), &c).unwrap();
        let h = g.elu(h, 1.0).unwrap();
        let h = g.global_avg_pool(h).unwrap();
        let e = g.linear(h, ids[3], Some(ids[4])).unwrap();
        let e = g.l2_normalize(e).unwrap();
        g.triplet_loss(e, ids[5], margin as f32).unwrap()
    };
    let extra = |g: &mut Graph| Some((g.input_u32("triplets", [5, 3]), flat.clone()));
    let (gpu_loss, grads) = gpu_loss_and_gradients(&leaves, &build, &extra);

    let embeddings = |v: &[Vec<f64>]| -> Vec<f64> {
        let shape = r::conv::output_shape(&[6, 2, 7, 7], &[5, 2, 3, 3], &conv);
        let h = r::conv::forward(
            &v[0],
            &[6, 2, 7, 7],
            &v[1],
            &[5, 2, 3, 3],
            Some(&v[2]),
            &conv,
        );
        let h = r::activation::forward(wgnn::ops::activation::Activation::Elu(1.0), &h);
        let h = r::pool::global_avg_pool(&h, &shape);
        let mut e = r::matmul::forward(&h, &[6, 5], &v[3], &[4, 5], false, true);
        for (i, x) in e.iter_mut().enumerate() {
            *x += v[4][i % 4];
        }
        r::norm::l2_normalize(&e, 4)
    };
    let cpu_loss = |v: &[Vec<f64>]| r::loss::triplet_loss(&embeddings(v), 4, &triplets, margin);
    let base: Vec<Vec<f64>> = leaves.iter().map(|l| l.values.clone()).collect();
    // Every hinge is clearly on one side of its kink, so the loss is smooth around this point
    // and some terms are active.
    let hinges: Vec<f64> = triplets
        .iter()
        .map(|t| {
            let e = embeddings(&base);
            let d = |a: usize, b: usize| {
                (0..4)
                    .map(|k| (e[a * 4 + k] - e[b * 4 + k]).powi(2))
                    .sum::<f64>()
            };
            d(t[0], t[1]) - d(t[0], t[2]) + margin
        })
        .collect();
    assert!(
        hinges.iter().all(|h| h.abs() > 1e-3),
        "a hinge sits on its kink: {hinges:?}"
    );
    assert!(
        hinges.iter().any(|&h| h > 0.0),
        "no active triplet: {hinges:?}"
    );
    let expected = cpu_loss(&base);
    assert!(
        (gpu_loss - expected).abs() <= 1e-4 * expected.abs().max(1e-3),
        "loss {gpu_loss} vs {expected}"
    );
    directional_check(
        "conv->elu->gap->linear->l2norm->triplet",
        &leaves,
        &grads,
        &cpu_loss,
        &mut rng,
    );
}
