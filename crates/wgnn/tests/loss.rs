//! Losses against the float64 reference: forward, the backward ops, gradients through compiled
//! graphs (by hand for the u32 triplets), repeated triplet indices with active and inactive
//! hinges, extreme logits, and bad shapes.
use wgnn_reference::testing as common;

use common::*;
use wgnn::ops::loss::{
    BceInput, BceWithLogits, BceWithLogitsBackward, Mse, MseBackward, TotalVariation,
    TotalVariationBackward, TripletLoss, TripletLossBackward,
};
use wgnn::rng::Rng;
use wgnn::{Graph, Plan, PlanSpec, Tensor};
use wgnn_reference::loss as reference;

/// Shapes: small and odd, and one long enough for the chunked (multi-workgroup) sum.
const SHAPES: [&[usize]; 3] = [&[3, 5, 7], &[37], &[7, 13, 61]];

fn numel(dims: &[usize]) -> usize {
    dims.iter().product()
}

fn targets(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.range(0.0, 1.0)).collect()
}

#[test]
fn reference_backward_matches_finite_differences() {
    let mut rng = Rng::new(1);
    let n = 23;
    let (a, b) = (random_nonzero(&mut rng, n), random_nonzero(&mut rng, n));
    let up = 0.7;
    let (da, db) = reference::mse_backward(&a, &b, up);
    assert_gradient("mse da", &|v| up * reference::mse(v, &b), &a, &da);
    assert_gradient("mse db", &|v| up * reference::mse(&a, v), &b, &db);

    let x: Vec<f64> = (0..n).map(|_| rng.range(-4.0, 4.0)).collect();
    let t = targets(&mut rng, n);
    let (dx, dt) = reference::bce_with_logits_backward(&x, &t, up);
    let f = |v: &[f64]| up * reference::bce_with_logits(v, &t);
    assert_gradient("bce dlogits", &f, &x, &dx);
    let f = |v: &[f64]| up * reference::bce_with_logits(&x, v);
    assert_gradient("bce dtargets", &f, &t, &dt);

    for dims in [&[3, 4, 5][..], &[2, 2, 3, 4]] {
        let x = random_nonzero(&mut rng, numel(dims));
        let dx = reference::total_variation_backward(&x, dims, up);
        let f = |v: &[f64]| up * reference::total_variation(v, dims);
        assert_gradient(&format!("total variation {dims:?}"), &f, &x, &dx);
    }

    let case = TripletCase::repeated_indices(&mut rng);
    let de = reference::triplet_loss_backward(&case.e, case.dim, &case.triplets, case.margin, up);
    let f = |v: &[f64]| up * reference::triplet_loss(v, case.dim, &case.triplets, case.margin);
    assert_gradient("triplet de", &f, &case.e, &de);
}

#[test]
fn mse_matches_reference() {
    let mut rng = Rng::new(2);
    for dims in SHAPES {
        let n = numel(dims);
        let (a, b) = (random_f64(&mut rng, n), random_f64(&mut rng, n));
        let (ta, tb) = (tensor(dims, &a), tensor(dims, &b));
        let loss = eval(&Mse, &[&ta, &tb]);
        assert_close("mse", &loss, &[reference::mse(&a, &b)], 1e-4, 1e-3);
        let up = 1.3;
        let tup = tensor(&[1], &[up]);
        let (da, db) = reference::mse_backward(&a, &b, up);
        let floor = 1e-2 / n as f64;
        let ga = eval(&MseBackward { sign: 1.0 }, &[&ta, &tb, &tup]);
        assert_close(&format!("mse da {dims:?}"), &ga, &da, 1e-4, floor);
        let gb = eval(&MseBackward { sign: -1.0 }, &[&ta, &tb, &tup]);
        assert_close(&format!("mse db {dims:?}"), &gb, &db, 1e-4, floor);
        let (loss, grads) = graph_vjp(&[(dims, &a), (dims, &b)], &[up], &|g, ids| {
            g.mse(ids[0], ids[1]).unwrap()
        });
        assert_close("mse (graph)", &loss, &[reference::mse(&a, &b)], 1e-4, 1e-3);
        assert_close("mse da (graph)", &grads[0], &da, 1e-4, floor);
        assert_close("mse db (graph)", &grads[1], &db, 1e-4, floor);
    }
}

#[test]
fn bce_with_logits_matches_reference() {
    let mut rng = Rng::new(3);
    for dims in SHAPES {
        let n = numel(dims);
        let x: Vec<f64> = (0..n).map(|_| rng.range(-6.0, 6.0)).collect();
        let t = targets(&mut rng, n);
        let (tx, tt) = (tensor(dims, &x), tensor(dims, &t));
        let expect = reference::bce_with_logits(&x, &t);
        assert_close(
            "bce",
            &eval(&BceWithLogits, &[&tx, &tt]),
            &[expect],
            1e-4,
            1e-3,
        );
        let up = -0.8;
        let tup = tensor(&[1], &[up]);
        let (dx, dt) = reference::bce_with_logits_backward(&x, &t, up);
        let floor = 1e-2 / n as f64;
        let wrt = |wrt| BceWithLogitsBackward { wrt };
        let gx = eval(&wrt(BceInput::Logits), &[&tx, &tt, &tup]);
        assert_close(&format!("bce dlogits {dims:?}"), &gx, &dx, 1e-4, floor);
        let gt = eval(&wrt(BceInput::Targets), &[&tx, &tt, &tup]);
        assert_close(&format!("bce dtargets {dims:?}"), &gt, &dt, 1e-4, floor);
        let (loss, grads) = graph_vjp(&[(dims, &x), (dims, &t)], &[up], &|g, ids| {
            g.bce_with_logits(ids[0], ids[1]).unwrap()
        });
        assert_close("bce (graph)", &loss, &[expect], 1e-4, 1e-3);
        assert_close("bce dlogits (graph)", &grads[0], &dx, 1e-4, floor);
        assert_close("bce dtargets (graph)", &grads[1], &dt, 1e-4, floor);
    }
}

#[test]
fn bce_with_extreme_logits_stays_finite() {
    let x = [-1e4, -100.0, -20.0, 20.0, 100.0, 1e4];
    let t = [0.0, 1.0, 0.5, 0.5, 0.0, 1.0];
    let (tx, tt) = (tensor(&[6], &x), tensor(&[6], &t));
    let loss = eval(&BceWithLogits, &[&tx, &tt]);
    assert!(loss[0].is_finite(), "loss {loss:?}");
    assert_close(
        "bce extreme",
        &loss,
        &[reference::bce_with_logits(&x, &t)],
        1e-4,
        1e-3,
    );
    let tup = tensor(&[1], &[1.0]);
    let dx = eval(
        &BceWithLogitsBackward {
            wrt: BceInput::Logits,
        },
        &[&tx, &tt, &tup],
    );
    let (expect, _) = reference::bce_with_logits_backward(&x, &t, 1.0);
    assert_close("bce extreme dlogits", &dx, &expect, 1e-4, 1e-4);
}

#[test]
fn total_variation_matches_reference() {
    let mut rng = Rng::new(4);
    for dims in [
        &[3, 4, 6][..],
        &[2, 3, 5, 7],
        &[2, 3, 17, 19],
        &[1, 1, 2, 2],
    ] {
        let n = numel(dims);
        let x = random_f64(&mut rng, n);
        let tx = tensor(dims, &x);
        let expect = reference::total_variation(&x, dims);
        let what = format!("total variation {dims:?}");
        assert_close(&what, &eval(&TotalVariation, &[&tx]), &[expect], 1e-4, 1e-3);
        let up = 0.9;
        let dx = reference::total_variation_backward(&x, dims, up);
        let floor = 1e-2 / n as f64;
        let g = eval(&TotalVariationBackward, &[&tx, &tensor(&[1], &[up])]);
        assert_close(&format!("{what} backward"), &g, &dx, 1e-4, floor);
        let (loss, grads) = graph_vjp(&[(dims, &x)], &[up], &|g, ids| {
            g.total_variation(ids[0]).unwrap()
        });
        assert_close(&format!("{what} (graph)"), &loss, &[expect], 1e-4, 1e-3);
        assert_close(
            &format!("{what} backward (graph)"),
            &grads[0],
            &dx,
            1e-4,
            floor,
        );
    }
}

/// Embeddings [rows, dim] with triplets (anchor, positive, negative) and a margin.
struct TripletCase {
    e: Vec<f64>,
    rows: usize,
    dim: usize,
    triplets: Vec<[usize; 3]>,
    margin: f64,
}

impl TripletCase {
    /// Hand-picked repeats: anchor = positive, anchor = negative, all three equal, a triplet
    /// twice, and rows in several roles across triplets.
    fn repeated_indices(rng: &mut Rng) -> Self {
        let (rows, dim) = (7, 5);
        let triplets = vec![
            [0, 1, 2],
            [2, 2, 3],
            [4, 1, 4],
            [5, 5, 5],
            [0, 1, 2],
            [3, 0, 6],
            [6, 3, 0],
            [1, 4, 5],
            [2, 6, 1],
            [5, 0, 3],
            [4, 2, 6],
        ];
        Self {
            e: random_nonzero(rng, rows * dim),
            rows,
            dim,
            triplets,
            margin: 0.5,
        }
    }

    /// Random triplets over more than one chunk of 64, embeddings wider than 64 components.
    fn large(rng: &mut Rng) -> Self {
        let (rows, dim) = (9, 70);
        let triplets = (0..150)
            .map(|_| [rng.below(rows), rng.below(rows), rng.below(rows)])
            .collect();
        Self {
            e: random_nonzero(rng, rows * dim),
            rows,
            dim,
            triplets,
            margin: 1.0,
        }
    }

    fn flat(&self) -> Vec<u32> {
        self.triplets.iter().flatten().map(|&i| i as u32).collect()
    }

    fn count(&self) -> usize {
        self.triplets.len()
    }
}

#[test]
fn triplet_loss_matches_reference() {
    let mut rng = Rng::new(5);
    for case in [
        TripletCase::repeated_indices(&mut rng),
        TripletCase::large(&mut rng),
    ] {
        let (rows, dim, margin) = (case.rows, case.dim, case.margin);
        let hinges = reference::triplet_hinges(&case.e, dim, &case.triplets, margin);
        let active = hinges.iter().filter(|&&h| h > 0.0).count();
        assert!(
            active > 0 && active < case.count(),
            "the case must mix active and inactive hinges ({active} of {} active)",
            case.count()
        );
        let te = tensor(&[rows, dim], &case.e);
        let tt = Tensor::from_u32(gpu(), [case.count(), 3], &case.flat()).unwrap();
        let op = TripletLoss {
            margin: margin as f32,
        };
        let expect = reference::triplet_loss(&case.e, dim, &case.triplets, margin);
        let what = format!("triplet loss {rows}x{dim}, {} triplets", case.count());
        assert_close(&what, &eval(&op, &[&te, &tt]), &[expect], 1e-4, 1e-3);

        let up = 1.7;
        let de = reference::triplet_loss_backward(&case.e, dim, &case.triplets, margin, up);
        let backward = TripletLossBackward {
            margin: margin as f32,
        };
        let g = eval(&backward, &[&te, &tt, &tensor(&[1], &[up])]);
        assert_close(&format!("{what} backward"), &g, &de, 1e-4, 1e-3);

        // Through a compiled graph, fed by hand (graph_vjp only feeds f32 inputs).
        let gpu = gpu();
        let mut graph = Graph::new();
        let e = graph.input("embeddings", [rows, dim]);
        let t = graph.input_u32("triplets", [case.count(), 3]);
        let loss = graph.triplet_loss(e, t, margin as f32).unwrap();
        let seed = graph.input("seed", [1]);
        let grads = graph.backward(loss, seed, &[e]).unwrap();
        let spec = PlanSpec {
            outputs: vec![loss, grads[0]],
            ..Default::default()
        };
        let params = wgnn::nn::ParamStore::new();
        let mut plan = Plan::compile(gpu, &graph, &params, spec).unwrap();
        plan.write_input(gpu, e, &to_f32(&case.e)).unwrap();
        plan.write_input_u32(gpu, t, &case.flat()).unwrap();
        plan.write_input(gpu, seed, &[up as f32]).unwrap();
        let results = plan.step(gpu).unwrap();
        assert_close(
            &format!("{what} (graph)"),
            &results[0],
            &[expect],
            1e-4,
            1e-3,
        );
        assert_close(
            &format!("{what} backward (graph)"),
            &results[1],
            &de,
            1e-4,
            1e-3,
        );
    }
}

#[test]
fn triplet_rows_without_active_triplets_get_zero_gradient() {
    // Far apart negatives: every hinge is inactive and every gradient exactly 0.
    let e = [0.0, 0.0, 0.1, 0.0, 10.0, 10.0];
    let triplets = [0u32, 1, 2, 1, 0, 2];
    let te = tensor(&[3, 2], &e);
    let tt = Tensor::from_u32(gpu(), [2, 3], &triplets).unwrap();
    let loss = eval(&TripletLoss { margin: 1.0 }, &[&te, &tt]);
    assert_eq!(loss, [0.0]);
    let g = eval(
        &TripletLossBackward { margin: 1.0 },
        &[&te, &tt, &tensor(&[1], &[1.0])],
    );
    assert_eq!(g, [0.0; 6]);
}

#[test]
fn triplet_index_out_of_range_gives_nan() {
    let te = tensor(&[2, 2], &[0.1, 0.2, 0.3, 0.4]);
    let tt = Tensor::from_u32(gpu(), [1, 3], &[0, 1, 2]).unwrap();
    let loss = eval(&TripletLoss { margin: 1.0 }, &[&te, &tt]);
    assert!(loss[0].is_nan(), "loss {loss:?}");
}

#[test]
fn bad_shapes_are_errors() {
    let mut g = Graph::new();
    let a = g.input("a", [3, 4]);
    let b = g.input("b", [4, 3]);
    assert!(g.mse(a, b).is_err(), "mse of [3, 4] and [4, 3]");
    assert!(g.bce_with_logits(a, b).is_err(), "bce of [3, 4] and [4, 3]");
    assert!(
        g.total_variation(a).is_err(),
        "total variation of a rank-2 tensor"
    );
    let thin = g.input("thin", [2, 1, 5]);
    assert!(
        g.total_variation(thin).is_err(),
        "one row: no vertical differences"
    );
    let e = g.input("e", [5, 3]);
    let t = g.input_u32("t", [4, 3]);
    let t2 = g.input_u32("t2", [4, 2]);
    assert!(g.triplet_loss(e, t2, 1.0).is_err(), "triplets [4, 2]");
    let flat = g.input("flat", [15]);
    assert!(
        g.triplet_loss(flat, t, 1.0).is_err(),
        "embeddings of rank 1"
    );
    let t_f32 = g.input("t_f32", [4, 3]);
    assert!(g.triplet_loss(e, t_f32, 1.0).is_err(), "f32 triplets");
    assert!(g.triplet_loss(t, t, 1.0).is_err(), "u32 embeddings");
    assert!(g.triplet_loss(e, t, 1.0).is_ok());
    // The ops check dtypes when evaluated eagerly, too.
    let te = tensor(&[5, 3], &[0.5; 15]);
    let tf = tensor(&[4, 3], &[0.0; 12]);
    let op = TripletLoss { margin: 1.0 };
    assert!(wgnn::graph::eval(gpu(), &op, &[&te, &tf]).is_err());
}
