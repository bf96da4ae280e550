//! The graph runtime: shape errors, plans (buffer sharing by liveness, summaries, inputs),
//! and autodiff plumbing (fan-out accumulation, broadcasting).
use wgnn_reference::testing as common;

use common::*;
use wgnn::nn::ParamStore;
use wgnn::rng::Rng;
use wgnn::{Graph, Plan, PlanSpec};

#[test]
fn shape_mismatch_names_the_op_and_both_shapes() {
    let mut g = Graph::new();
    let a = g.input("a", [2, 3]);
    let b = g.input("b", [4]);
    let message = g.add(a, b).expect_err("must fail").to_string();
    for needle in ["add", "[2, 3]", "[4]"] {
        assert!(
            message.contains(needle),
            "`{needle}` missing from: {message}"
        );
    }
}

#[test]
fn activation_buffers_are_shared_by_liveness() {
    let gpu = gpu();
    let mut g = Graph::new();
    let x = g.input("x", [1000]);
    let mut h = x;
    for _ in 0..10 {
        h = g.tanh(h).unwrap();
    }
    let plan = Plan::compile(
        gpu,
        &g,
        &ParamStore::new(),
        PlanSpec {
            outputs: vec![h],
            ..Default::default()
        },
    )
    .unwrap();
    let s = plan.summary();
    assert_eq!(s.ops, 10);
    assert_eq!(s.activation_bytes, 10 * 4000);
    // A chain needs its live tensor and the one being written: two buffers, not ten.
    assert!(
        s.pooled_bytes <= 2 * 4000,
        "pooled {} bytes",
        s.pooled_bytes
    );
    let text = s.to_string();
    assert!(
        text.contains("activations") && text.contains("peak"),
        "{text}"
    );
}

#[test]
fn shared_buffers_do_not_corrupt_values() {
    // A diamond with a long branch: the short branch's value must survive while the long
    // branch reuses pooled buffers.
    let gpu = gpu();
    let mut rng = Rng::new(4);
    let x = random_f64(&mut rng, 257);
    let mut g = Graph::new();
    let ix = g.input("x", [257]);
    let short = g.sigmoid(ix).unwrap();
    let mut long = g.tanh(ix).unwrap();
    for _ in 0..5 {
        long = g.tanh(long).unwrap();
    }
    let y = g.mul(short, long).unwrap();
    let mut plan = Plan::compile(
        gpu,
        &g,
        &ParamStore::new(),
        PlanSpec {
            outputs: vec![y],
            ..Default::default()
        },
    )
    .unwrap();
    plan.write_input(gpu, ix, &to_f32(&x)).unwrap();
    let out = plan.step(gpu).unwrap().remove(0);
    let expect: Vec<f64> = x
        .iter()
        .map(|&v| {
            let mut t = v.tanh();
            for _ in 0..5 {
                t = t.tanh();
            }
            t / (1.0 + (-v).exp())
        })
        .collect();
    assert_close("diamond", &out, &expect, 1e-4, 1e-4);
    // Steps are repeatable bit for bit.
    let again = plan.step(gpu).unwrap().remove(0);
    assert_eq!(out, again);
}

#[test]
fn fan_out_gradients_are_summed_and_broadcasts_reduced() {
    // y = x * b + x with b of shape [3, 1] broadcast over [3, 4]:
    // dy/dx = b + 1, dy/db = sum over the row of x * upstream.
    let mut rng = Rng::new(5);
    let x = random_nonzero(&mut rng, 12);
    let b = random_nonzero(&mut rng, 3);
    let up = random_f64(&mut rng, 12);
    let (y, grads) = graph_vjp(&[(&[3, 4], &x), (&[3, 1], &b)], &up, &|g, ids| {
        let xb = g.mul(ids[0], ids[1]).unwrap();
        g.add(xb, ids[0]).unwrap()
    });
    let expect_y: Vec<f64> = (0..12).map(|i| x[i] * b[i / 4] + x[i]).collect();
    let expect_dx: Vec<f64> = (0..12).map(|i| up[i] * (b[i / 4] + 1.0)).collect();
    let expect_db: Vec<f64> = (0..3)
        .map(|r| (0..4).map(|c| x[r * 4 + c] * up[r * 4 + c]).sum())
        .collect();
    assert_close("y", &y, &expect_y, 1e-5, 1e-4);
    assert_close("dx", &grads[0], &expect_dx, 1e-5, 1e-4);
    assert_close("db", &grads[1], &expect_db, 1e-5, 1e-4);
}

#[test]
fn plan_input_errors_are_clear() {
    let gpu = gpu();
    let mut g = Graph::new();
    let x = g.input("pixels", [2, 2]);
    let y = g.relu(x).unwrap();
    let mut plan = Plan::compile(
        gpu,
        &g,
        &ParamStore::new(),
        PlanSpec {
            outputs: vec![y],
            ..Default::default()
        },
    )
    .unwrap();
    let unwritten = plan.step(gpu).expect_err("unwritten input").to_string();
    assert!(unwritten.contains("pixels"), "{unwritten}");
    let wrong_len = plan
        .write_input(gpu, x, &[1.0; 3])
        .expect_err("wrong length")
        .to_string();
    assert!(
        wrong_len.contains("pixels") && wrong_len.contains('3'),
        "{wrong_len}"
    );
    let not_input = plan
        .write_input(gpu, y, &[1.0; 4])
        .expect_err("not an input")
        .to_string();
    assert!(not_input.contains("not an input"), "{not_input}");
}

#[test]
fn missing_or_misshapen_parameters_are_named() {
    let gpu = gpu();
    let mut g = Graph::new();
    let w = g.param("layer.weight", [2, 3]).unwrap();
    let y = g.relu(w).unwrap();
    let spec = || PlanSpec {
        outputs: vec![y],
        ..Default::default()
    };
    let missing = Plan::compile(gpu, &g, &ParamStore::new(), spec())
        .err()
        .expect("missing")
        .to_string();
    assert!(
        missing.contains("layer.weight") && missing.contains("missing"),
        "{missing}"
    );
    let mut params = ParamStore::new();
    params
        .insert_f32(gpu, "layer.weight", [3, 2], &[0.5; 6])
        .unwrap();
    let wrong = Plan::compile(gpu, &g, &params, spec())
        .err()
        .expect("wrong shape")
        .to_string();
    assert!(
        wrong.contains("layer.weight") && wrong.contains("[3, 2]") && wrong.contains("[2, 3]"),
        "{wrong}"
    );
}

#[test]
fn gradients_need_a_scalar_loss_and_a_path() {
    let mut g = Graph::new();
    let x = g.input("x", [3]);
    let unused = g.input("unused", [3]);
    let y = g.relu(x).unwrap();
    assert!(
        g.gradients(y, &[x]).is_err(),
        "a non-scalar loss must be refused"
    );
    let one = g.input("one", [1]);
    let total = g
        .apply(
            wgnn::ops::elementwise::SumToShape { target: [1].into() },
            &[y],
        )
        .unwrap();
    let total = g.mul(total, one).unwrap();
    let message = g
        .gradients(total, &[unused])
        .expect_err("no path")
        .to_string();
    assert!(message.contains("unused"), "{message}");
}

#[test]
fn channel_affine_permutes_scales_and_back_propagates() {
    // RGB -> BGR * 255 - mean, as SqueezeNet's preprocessing.
    let mut rng = Rng::new(6);
    let (n, c, s) = (2, 3, 5);
    let x = random_f64(&mut rng, n * c * s);
    let up = random_f64(&mut rng, n * c * s);
    let affine = wgnn::ops::elementwise::ChannelAffine {
        perm: vec![2, 1, 0],
        scale: vec![255.0, 254.0, 253.0],
        offset: vec![-104.0, -116.5, -122.75],
    };
    let (y, grads) = graph_vjp(&[(&[n, c, s], &x)], &up, &|g, ids| {
        g.channel_affine(ids[0], affine.clone()).unwrap()
    });
    let idx = |b: usize, ch: usize, i: usize| (b * c + ch) * s + i;
    let mut expect_y = vec![0.0; n * c * s];
    let mut expect_dx = vec![0.0; n * c * s];
    for b in 0..n {
        for ch in 0..c {
            for i in 0..s {
                let src = affine.perm[ch];
                expect_y[idx(b, ch, i)] =
                    affine.scale[ch] as f64 * x[idx(b, src, i)] + affine.offset[ch] as f64;
                expect_dx[idx(b, src, i)] += affine.scale[ch] as f64 * up[idx(b, ch, i)];
            }
        }
    }
    assert_close("channel_affine", &y, &expect_y, 1e-5, 1e-3);
    assert_close("channel_affine backward", &grads[0], &expect_dx, 1e-5, 1e-3);
}

#[test]
fn clamp_in_place_projects_into_range() {
    let gpu = gpu();
    let mut rng = Rng::new(7);
    let x = rng.vec_f32(1001, -2.0, 2.0);
    let t = wgnn::Tensor::from_f32(gpu, [1001], &x).unwrap();
    let d = wgnn::ops::elementwise::clamp_in_place(gpu, &t, 0.0, 1.0).unwrap();
    gpu.run(&[d]).unwrap();
    let y = t.to_vec(gpu).unwrap();
    assert!(y.iter().zip(&x).all(|(a, b)| *a == b.clamp(0.0, 1.0)));
}

#[test]
fn an_update_target_that_nothing_else_reads_compiles() {
    // A running statistic: a parameter the graph never reads, updated from another node.
    let gpu = gpu();
    let mut params = wgnn::nn::ParamStore::new();
    params.insert_f32(gpu, "w", [3], &[1.0, 2.0, 3.0]).unwrap();
    params
        .insert_f32(gpu, "unread", [3], &[0.5, 0.5, 0.5])
        .unwrap();
    let mut g = Graph::new();
    let x = g.input("x", [3]);
    let w = g.param("w", [3]).unwrap();
    let unread = g.param("unread", [3]).unwrap();
    let y = g.mul(x, w).unwrap();
    let mut sgd = wgnn::optim::Sgd::new(
        gpu,
        wgnn::optim::SgdConfig {
            lr: 1.0,
            ..Default::default()
        },
    )
    .unwrap();
    let spec = PlanSpec::training(vec![y], vec![(unread, y)], &mut sgd);
    let mut plan = Plan::compile(gpu, &g, &params, spec).unwrap();
    plan.write_input(gpu, x, &[1.0, 1.0, 1.0]).unwrap();
    plan.step(gpu).unwrap();
    // SGD: unread -= 1.0 * y, with y = x * w = [1, 2, 3].
    assert_eq!(
        params.get("unread").unwrap().to_vec(gpu).unwrap(),
        [-0.5, -1.5, -2.5]
    );
}

/// `Plan::profile` times every dispatch of a step once per repeat, groups them by kernel, and
/// carries the FLOPs of their ops; both timings (GPU timestamps where the device has them, the
/// host's clock everywhere) cover the same dispatches.
#[test]
fn profile_times_every_dispatch_and_counts_the_ops_flops() {
    let gpu = gpu();
    let mut rng = Rng::new(41);
    let mut params = ParamStore::new();
    let w_data = rng.vec_f32(7 * 3, -1.0, 1.0);
    params.insert("w", wgnn::Tensor::from_f32(gpu, [7, 3], &w_data).unwrap());
    let mut g = Graph::new();
    let x = g.input("x", [5, 7]);
    let w = g.params_from(&params, &["w"]).unwrap()[0];
    let h = g.matmul(x, w).unwrap();
    let h = g.tanh(h).unwrap();
    let loss = g.sum(h).unwrap();
    let mut plan = Plan::compile(
        gpu,
        &g,
        &params,
        PlanSpec {
            outputs: vec![loss],
            ..Default::default()
        },
    )
    .unwrap();
    plan.write_input(gpu, x, &rng.vec_f32(5 * 7, -1.0, 1.0))
        .unwrap();
    let before = plan.step(gpu).unwrap();

    let profile = plan.profile(gpu, 3).unwrap();
    let summary = plan.summary();
    assert_eq!(profile.timing, wgnn::graph::Profile::best_timing(gpu));
    assert_eq!(profile.dispatches.len(), summary.dispatches);
    let calls: usize = profile.rows.iter().map(|r| r.calls).sum();
    assert_eq!(calls, summary.dispatches);
    let flops: f64 = profile.rows.iter().map(|r| r.flops).sum();
    assert!(
        (flops - summary.flops as f64).abs() < 1e-6 * summary.flops as f64,
        "rows count {flops} FLOPs, the plan {}",
        summary.flops
    );
    for row in &profile.rows {
        assert!(row.ms.is_finite() && row.ms >= 0.0, "{row:?}");
    }
    let total: f64 = profile.rows.iter().map(|r| r.ms).sum();
    assert!((total - profile.gpu_ms).abs() < 1e-9 && profile.gpu_ms > 0.0);
    assert!(profile.step_ms.is_some_and(|ms| ms > 0.0));
    let table = profile.to_string();
    for row in &profile.rows {
        assert!(table.contains(&row.kernel), "{table}");
    }
    // Slowest first.
    assert!(profile.rows.windows(2).all(|w| w[0].ms >= w[1].ms));

    let host = wgnn::graph::Profile::measure(
        gpu,
        plan.dispatches(),
        plan.dispatch_costs(),
        1,
        wgnn::graph::Timing::HostClock,
    )
    .unwrap();
    assert_eq!(host.dispatches.len(), summary.dispatches);
    assert!(host.to_string().contains("host clock"));
    // Profiling ran the forward pass as steps do; nothing about the plan changed.
    assert_eq!(plan.step(gpu).unwrap(), before);
}
