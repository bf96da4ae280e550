//! Losses against the float64 reference: forward, the backward ops, gradients through compiled
//! graphs (by hand for the u32 triplets and labels), repeated triplet indices with active and
//! inactive hinges, cross-entropy with [N, C] and [N, C, d1, d2] logits, ignored and
//! out-of-range labels and labels changed between steps, extreme logits, and bad shapes.
use wgnn_reference::testing as common;

use common::*;
use wgnn::ops::loss::{
    BceInput, BceWithLogits, BceWithLogitsBackward, CrossEntropy, CrossEntropyBackward, Mse,
    MseBackward, TotalVariation, TotalVariationBackward, TripletLoss, TripletLossBackward,
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

/// Logits [N, C, ...] with labels [N, ...] (about one in five `IGNORED` when `ignore`).
struct CrossEntropyCase {
    dims: Vec<usize>,
    logits: Vec<f64>,
    labels: Vec<usize>,
    ignore: Option<usize>,
}

const IGNORED: usize = 3;

impl CrossEntropyCase {
    fn random(rng: &mut Rng, dims: &[usize], ignore: bool) -> Self {
        let positions = numel(dims) / dims[1];
        let labels = (0..positions)
            .map(|_| {
                if ignore && rng.uniform() < 0.2 {
                    IGNORED
                } else {
                    rng.below(dims[1])
                }
            })
            .collect();
        Self {
            dims: dims.to_vec(),
            logits: (0..numel(dims)).map(|_| rng.range(-4.0, 4.0)).collect(),
            labels,
            ignore: ignore.then_some(IGNORED),
        }
    }

    fn label_dims(&self) -> Vec<usize> {
        let mut dims = self.dims.clone();
        dims.remove(1);
        dims
    }

    fn labels_u32(&self) -> Vec<u32> {
        self.labels.iter().map(|&l| l as u32).collect()
    }

    fn label_tensor(&self) -> Tensor {
        Tensor::from_u32(gpu(), self.label_dims().as_slice(), &self.labels_u32()).unwrap()
    }

    fn ignore_u32(&self) -> Option<u32> {
        self.ignore.map(|i| i as u32)
    }

    fn loss(&self) -> f64 {
        reference::cross_entropy(&self.logits, &self.dims, &self.labels, self.ignore)
    }

    fn dlogits(&self, dy: f64) -> Vec<f64> {
        reference::cross_entropy_backward(&self.logits, &self.dims, &self.labels, self.ignore, dy)
    }
}

/// Logit shapes: [N, C]; [N, C, d1, d2] with odd sizes; more classes than a workgroup; and
/// 600 positions, past the length where the sum of terms goes through chunks.
const CE_SHAPES: [&[usize]; 4] = [&[7, 5], &[3, 4, 5, 3], &[3, 300], &[600, 6]];

#[test]
fn cross_entropy_reference_backward_matches_finite_differences() {
    let mut rng = Rng::new(6);
    for dims in [&[5, 4][..], &[2, 5, 3, 2]] {
        for ignore in [false, true] {
            let case = CrossEntropyCase::random(&mut rng, dims, ignore);
            let up = 0.6;
            let f =
                |v: &[f64]| up * reference::cross_entropy(v, &case.dims, &case.labels, case.ignore);
            let what = format!("cross-entropy {dims:?} ignore {ignore}");
            assert_gradient(&what, &f, &case.logits, &case.dlogits(up));
        }
    }
}

#[test]
fn cross_entropy_matches_reference() {
    let mut rng = Rng::new(7);
    for dims in CE_SHAPES {
        for ignore in [false, true] {
            let case = CrossEntropyCase::random(&mut rng, dims, ignore);
            let what = format!("cross-entropy {dims:?} ignore {ignore}");
            let tx = tensor(dims, &case.logits);
            let tl = case.label_tensor();
            let op = CrossEntropy {
                ignore_index: case.ignore_u32(),
            };
            assert_close(&what, &eval(&op, &[&tx, &tl]), &[case.loss()], 1e-4, 1e-3);
            let up = -1.3;
            let backward = CrossEntropyBackward {
                ignore_index: case.ignore_u32(),
            };
            let g = eval(&backward, &[&tx, &tl, &tensor(&[1], &[up])]);
            let expect = case.dlogits(up);
            let floor = 1e-3 / case.labels.len() as f64;
            assert_close(&format!("{what} backward"), &g, &expect, 1e-4, floor);
            if ignore {
                // Every class of an ignored position gets exactly 0.
                let inner = numel(&dims[2..]);
                for (q, _) in case
                    .labels
                    .iter()
                    .enumerate()
                    .filter(|(_, &l)| l == IGNORED)
                {
                    let (b, j) = (q / inner, q % inner);
                    for c in 0..dims[1] {
                        assert_eq!(
                            g[(b * dims[1] + c) * inner + j],
                            0.0,
                            "{what}: position {q}"
                        );
                    }
                }
            }
        }
    }
}

/// A plan computing the loss and dlogits of `cross_entropy[_ignoring]` over u32 labels.
fn cross_entropy_plan(dims: &[usize], ignore: Option<u32>) -> (Plan, [wgnn::NodeId; 3]) {
    let mut graph = Graph::new();
    let x = graph.input("logits", dims);
    let mut label_dims = dims.to_vec();
    label_dims.remove(1);
    let labels = graph.input_u32("labels", label_dims.as_slice());
    let loss = match ignore {
        Some(index) => graph.cross_entropy_ignoring(x, labels, index).unwrap(),
        None => graph.cross_entropy(x, labels).unwrap(),
    };
    let seed = graph.input("seed", [1]);
    let grads = graph.backward(loss, seed, &[x]).unwrap();
    let spec = PlanSpec {
        outputs: vec![loss, grads[0]],
        ..Default::default()
    };
    let params = wgnn::nn::ParamStore::new();
    let plan = Plan::compile(gpu(), &graph, &params, spec).unwrap();
    (plan, [x, labels, seed])
}

#[test]
fn cross_entropy_through_a_graph_with_labels_changed_per_step() {
    let mut rng = Rng::new(8);
    let gpu = gpu();
    for (dims, ignore) in [(&[6, 7][..], false), (&[3, 5, 2, 3], true)] {
        let first = CrossEntropyCase::random(&mut rng, dims, ignore);
        let (mut plan, [x, labels, seed]) = cross_entropy_plan(dims, first.ignore_u32());
        plan.write_input(gpu, x, &to_f32(&first.logits)).unwrap();
        plan.write_input(gpu, seed, &[0.9]).unwrap();
        // Two steps on the same logits, each with its own labels, through one compiled plan.
        let mut second = CrossEntropyCase::random(&mut rng, dims, ignore);
        second.logits = first.logits.clone();
        assert_ne!(first.labels, second.labels);
        for case in [&first, &second] {
            plan.write_input_u32(gpu, labels, &case.labels_u32())
                .unwrap();
            let results = plan.step(gpu).unwrap();
            let what = format!("cross-entropy {dims:?} (graph)");
            assert_close(&what, &results[0], &[case.loss()], 1e-4, 1e-3);
            let floor = 1e-3 / case.labels.len() as f64;
            let expect = case.dlogits(0.9);
            assert_close(
                &format!("{what} backward"),
                &results[1],
                &expect,
                1e-4,
                floor,
            );
        }
    }
}

#[test]
fn cross_entropy_with_large_logits_stays_finite() {
    // Logits of +-1e4 around each position: exp(1e4) overflows without the shift by the
    // maximum. The labels pick both the largest logit (loss near 0) and far smaller ones.
    let mut rng = Rng::new(9);
    let dims = [4, 6];
    let logits: Vec<f64> = (0..24)
        .map(|k| ((if k % 2 == 0 { 1e4 } else { -1e4 }) + rng.range(-3.0, 3.0)) as f32 as f64)
        .collect();
    let case = CrossEntropyCase {
        dims: dims.to_vec(),
        logits,
        labels: vec![0, 1, 4, 5],
        ignore: None,
    };
    let (tx, tl) = (tensor(&dims, &case.logits), case.label_tensor());
    let loss = eval(&CrossEntropy::default(), &[&tx, &tl]);
    assert!(loss[0].is_finite(), "loss {loss:?}");
    assert_close(
        "cross-entropy large logits",
        &loss,
        &[case.loss()],
        1e-4,
        1e-3,
    );
    let g = eval(
        &CrossEntropyBackward::default(),
        &[&tx, &tl, &tensor(&[1], &[1.0])],
    );
    assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
    assert_close(
        "cross-entropy large logits backward",
        &g,
        &case.dlogits(1.0),
        1e-4,
        1e-4,
    );
}

#[test]
fn cross_entropy_label_out_of_range_gives_nan_and_all_ignored_gives_nan() {
    let dims = [2, 3];
    let tx = tensor(&dims, &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]);
    let tl = Tensor::from_u32(gpu(), [2], &[1, 3]).unwrap();
    let loss = eval(&CrossEntropy::default(), &[&tx, &tl]);
    assert!(loss[0].is_nan(), "loss {loss:?}");
    let g = eval(
        &CrossEntropyBackward::default(),
        &[&tx, &tl, &tensor(&[1], &[1.0])],
    );
    assert!(g[3..].iter().all(|v| v.is_nan()), "the bad position: {g:?}");
    assert!(
        g[..3].iter().all(|v| v.is_finite()),
        "the good position: {g:?}"
    );
    // The out-of-range label as the ignored one counts for nothing instead.
    let ignoring = CrossEntropy {
        ignore_index: Some(3),
    };
    let expect = reference::cross_entropy(&to_f64(&to_f32(&[0.1, 0.2, 0.3])), &[1, 3], &[1], None);
    assert_close(
        "ignoring 3",
        &eval(&ignoring, &[&tx, &tl]),
        &[expect],
        1e-4,
        1e-3,
    );
    let all_ignored = Tensor::from_u32(gpu(), [2], &[3, 3]).unwrap();
    let loss = eval(&ignoring, &[&tx, &all_ignored]);
    assert!(loss[0].is_nan(), "every label ignored: {loss:?}");
}

#[test]
fn cross_entropy_bad_shapes_and_dtypes_are_errors() {
    let mut g = Graph::new();
    let x = g.input("x", [4, 5, 3]);
    let message = |r: wgnn::Result<wgnn::NodeId>| r.unwrap_err().to_string();
    let labels = g.input_u32("labels", [4, 3]);
    assert!(g.cross_entropy(x, labels).is_ok());
    let wrong = g.input_u32("wrong", [4, 5]);
    assert!(message(g.cross_entropy(x, wrong)).contains("without the class axis 1"));
    let flat = g.input("flat", [5]);
    let l1 = g.input_u32("l1", [1]);
    assert!(message(g.cross_entropy(flat, l1)).contains("logits must be [N, C]"));
    let f32_labels = g.input("f32 labels", [4, 3]);
    assert!(message(g.cross_entropy(x, f32_labels)).contains("labels must be U32"));
    assert!(message(g.cross_entropy(labels, labels)).contains("logits must be F32"));
    // The ops check dtypes when evaluated eagerly, too.
    let tx = tensor(&[2, 3], &[0.5; 6]);
    let tf = tensor(&[2], &[0.0; 2]);
    assert!(wgnn::graph::eval(gpu(), &CrossEntropy::default(), &[&tx, &tf]).is_err());
}
