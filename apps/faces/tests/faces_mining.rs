//! Triplet mining against brute-force references, and the P x K batch sampler.

mod faces_support;

use faces_support::random_unit_rows;
use wgnn::rng::Rng;
use wgnn_faces::mining::{mine_triplets, Mining, MiningConfig};
use wgnn_faces::sampler::BatchSampler;

/// Squared L2 distance, summed in f32 in index order (the order the miner documents).
fn dist(e: &[f32], dim: usize, i: usize, j: usize) -> f32 {
    let mut sum = 0.0f32;
    for k in 0..dim {
        let d = e[i * dim + k] - e[j * dim + k];
        sum += d * d;
    }
    sum
}

fn brute_batch_hard(e: &[f32], dim: usize, labels: &[u32]) -> Vec<[u32; 3]> {
    let b = labels.len();
    let mut out = Vec::new();
    for a in 0..b {
        let mut far_p: Option<usize> = None;
        let mut near_n: Option<usize> = None;
        for j in 0..b {
            let positive = j != a && labels[j] == labels[a];
            if positive && (far_p.is_none() || dist(e, dim, a, j) > dist(e, dim, a, far_p.unwrap()))
            {
                far_p = Some(j);
            }
            let negative = labels[j] != labels[a];
            if negative
                && (near_n.is_none() || dist(e, dim, a, j) < dist(e, dim, a, near_n.unwrap()))
            {
                near_n = Some(j);
            }
        }
        if let (Some(p), Some(n)) = (far_p, near_n) {
            out.push([a as u32, p as u32, n as u32]);
        }
    }
    out
}

fn brute_semi_hard(e: &[f32], dim: usize, labels: &[u32], margin: f32) -> Vec<[u32; 3]> {
    let b = labels.len();
    let mut out = Vec::new();
    for a in 0..b {
        for p in 0..b {
            if p == a || labels[p] != labels[a] {
                continue;
            }
            let dap = dist(e, dim, a, p);
            let mut semi: Option<usize> = None;
            let mut hardest: Option<usize> = None;
            for n in 0..b {
                if labels[n] == labels[a] {
                    continue;
                }
                let dan = dist(e, dim, a, n);
                if hardest.is_none() || dan < dist(e, dim, a, hardest.unwrap()) {
                    hardest = Some(n);
                }
                let in_margin = dap < dan && dan < dap + margin;
                if in_margin && (semi.is_none() || dan < dist(e, dim, a, semi.unwrap())) {
                    semi = Some(n);
                }
            }
            if let Some(h) = hardest {
                out.push([a as u32, p as u32, semi.unwrap_or(h) as u32]);
            }
        }
    }
    out
}

fn brute_batch_all(
    e: &[f32],
    dim: usize,
    labels: &[u32],
    margin: f32,
    active_only: bool,
) -> Vec<[u32; 3]> {
    let b = labels.len();
    let mut out = Vec::new();
    for a in 0..b {
        for p in 0..b {
            for n in 0..b {
                let valid = p != a && labels[p] == labels[a] && labels[n] != labels[a];
                let loss = dist(e, dim, a, p) - dist(e, dim, a, n) + margin;
                if valid && (loss > 0.0 || !active_only) {
                    out.push([a as u32, p as u32, n as u32]);
                }
            }
        }
    }
    out
}

/// P identities x K images with shuffled rows and arbitrary label values.
fn random_batch(rng: &mut Rng, p: usize, k: usize) -> Vec<u32> {
    let mut labels: Vec<u32> = (0..p * k).map(|i| 7 + 3 * (i / k) as u32).collect();
    rng.shuffle(&mut labels);
    labels
}

fn config(strategy: Mining, margin: f32, active_only: bool) -> MiningConfig {
    MiningConfig {
        strategy,
        margin,
        active_only,
    }
}

#[test]
fn all_strategies_match_brute_force_on_random_batches() {
    let mut rng = Rng::new(41);
    for case in 0..30 {
        let (p, k) = (2 + rng.below(5), 2 + rng.below(4));
        let dim = 2 + rng.below(15);
        let margin = [0.05f32, 0.2, 0.5, 1.0][case % 4];
        let labels = random_batch(&mut rng, p, k);
        let e = random_unit_rows(&mut rng, labels.len(), dim);
        let what = format!("case {case}: P={p} K={k} D={dim} margin={margin}");

        let got =
            mine_triplets(&e, dim, &labels, config(Mining::BatchHard, margin, false)).unwrap();
        assert_eq!(
            got.triplets,
            brute_batch_hard(&e, dim, &labels),
            "batch-hard {what}"
        );
        assert_eq!(got.triplets.len(), p * k, "{what}");

        let got = mine_triplets(&e, dim, &labels, config(Mining::SemiHard, margin, false)).unwrap();
        assert_eq!(
            got.triplets,
            brute_semi_hard(&e, dim, &labels, margin),
            "semi-hard {what}"
        );
        assert_eq!(got.triplets.len(), p * k * (k - 1), "{what}");

        for active_only in [false, true] {
            let got = mine_triplets(
                &e,
                dim,
                &labels,
                config(Mining::BatchAll, margin, active_only),
            )
            .unwrap();
            let expected = brute_batch_all(&e, dim, &labels, margin, active_only);
            assert_eq!(
                got.triplets, expected,
                "batch-all active_only={active_only} {what}"
            );
        }
    }
}

#[test]
fn semi_hard_finds_negatives_inside_the_margin() {
    // With a wide margin most anchor-positive pairs have a semi-hard negative, so the fallback
    // is not the only path exercised above.
    let mut rng = Rng::new(5);
    let labels = random_batch(&mut rng, 4, 4);
    let dim = 8;
    let e = random_unit_rows(&mut rng, labels.len(), dim);
    let margin = 1.0;
    let got = mine_triplets(&e, dim, &labels, config(Mining::SemiHard, margin, false)).unwrap();
    let semi_hard = got
        .triplets
        .iter()
        .filter(|&&[a, p, n]| {
            let (dap, dan) = (
                dist(&e, dim, a as usize, p as usize),
                dist(&e, dim, a as usize, n as usize),
            );
            dap < dan && dan < dap + margin
        })
        .count();
    assert!(
        semi_hard > got.triplets.len() / 2,
        "{semi_hard} of {}",
        got.triplets.len()
    );
}

#[test]
fn statistics_match_brute_force() {
    let mut rng = Rng::new(8);
    let labels = random_batch(&mut rng, 4, 3);
    let dim = 6;
    let e = random_unit_rows(&mut rng, labels.len(), dim);
    let margin = 0.3;
    let check = |strategy, active_only, all: Vec<[u32; 3]>| {
        let got = mine_triplets(&e, dim, &labels, config(strategy, margin, active_only)).unwrap();
        let d = |i: u32, j: u32| dist(&e, dim, i as usize, j as usize) as f64;
        let active = all
            .iter()
            .filter(|&&[a, p, n]| d(a, p) - d(a, n) + margin as f64 > 0.0)
            .count();
        let returned = &got.triplets;
        let mean = |f: &dyn Fn(&[u32; 3]) -> f64| {
            returned.iter().map(f).sum::<f64>() / returned.len() as f64
        };
        assert_eq!(got.stats.considered, all.len());
        let fraction = active as f64 / all.len() as f64;
        assert!((got.stats.active_fraction as f64 - fraction).abs() < 1e-6);
        assert!((got.stats.mean_pos_dist as f64 - mean(&|t| d(t[0], t[1]))).abs() < 1e-5);
        assert!((got.stats.mean_neg_dist as f64 - mean(&|t| d(t[0], t[2]))).abs() < 1e-5);
        assert_eq!(got.stats.anchors_without_positive, 0);
    };
    check(Mining::BatchHard, false, brute_batch_hard(&e, dim, &labels));
    check(
        Mining::SemiHard,
        false,
        brute_semi_hard(&e, dim, &labels, margin),
    );
    check(
        Mining::BatchAll,
        false,
        brute_batch_all(&e, dim, &labels, margin, false),
    );
    // With active_only the fraction is still over every valid triplet.
    check(
        Mining::BatchAll,
        true,
        brute_batch_all(&e, dim, &labels, margin, false),
    );
}

#[test]
fn a_label_with_one_image_has_no_positives() {
    let mut rng = Rng::new(3);
    let labels = [0u32, 0, 1, 1, 2, 0, 1];
    let dim = 4;
    let e = random_unit_rows(&mut rng, labels.len(), dim);
    for strategy in [Mining::BatchHard, Mining::SemiHard, Mining::BatchAll] {
        let got = mine_triplets(&e, dim, &labels, config(strategy, 0.2, false)).unwrap();
        assert_eq!(got.stats.anchors_without_positive, 1, "{strategy:?}");
        assert!(
            got.triplets.iter().all(|t| t[0] != 4 && t[1] != 4),
            "{strategy:?}"
        );
        // The lone image still serves as a negative.
        if strategy == Mining::BatchAll {
            assert!(got.triplets.iter().any(|t| t[2] == 4));
        }
    }
}

#[test]
fn batches_without_triplets_give_empty_results() {
    let mut rng = Rng::new(4);
    let dim = 3;
    // One identity: positives but no negatives. All distinct: negatives but no positives.
    for labels in [vec![5u32; 4], vec![0, 1, 2, 3]] {
        let e = random_unit_rows(&mut rng, labels.len(), dim);
        for strategy in [Mining::BatchHard, Mining::SemiHard, Mining::BatchAll] {
            let got = mine_triplets(&e, dim, &labels, config(strategy, 0.2, false)).unwrap();
            assert!(got.triplets.is_empty());
            assert_eq!(got.stats.considered, 0);
            assert_eq!(got.stats.active_fraction, 0.0);
            assert_eq!(got.stats.mean_pos_dist, 0.0);
        }
    }
}

#[test]
fn ties_go_to_the_smallest_index() {
    // All embeddings equal: every distance is 0.
    let labels = [0u32, 1, 0, 1, 0];
    let e = [1.0f32, 0.0].repeat(labels.len());
    let got = mine_triplets(&e, 2, &labels, config(Mining::BatchHard, 0.2, false)).unwrap();
    assert_eq!(
        got.triplets,
        [[0, 2, 1], [1, 3, 0], [2, 0, 1], [3, 1, 0], [4, 0, 1]]
    );
    assert_eq!(got.stats.active_fraction, 1.0);
}

#[test]
fn bad_input_is_an_error() {
    let e = vec![0.6f32, 0.8, 1.0, 0.0, 0.0, 1.0];
    let bh = config(Mining::BatchHard, 0.2, false);
    assert!(mine_triplets(&e, 2, &[0, 1], bh).is_err(), "rows vs labels");
    assert!(mine_triplets(&e, 0, &[], bh).is_err(), "zero dim");
    let mut nan = e.clone();
    nan[3] = f32::NAN;
    assert!(mine_triplets(&nan, 2, &[0, 1, 0], bh).is_err(), "NaN");
    assert!(mine_triplets(&e, 2, &[0, 1, 0], config(Mining::BatchHard, -0.1, false)).is_err());
}

#[test]
fn strategy_names_round_trip() {
    for strategy in [Mining::BatchHard, Mining::SemiHard, Mining::BatchAll] {
        assert_eq!(strategy.as_str().parse::<Mining>().unwrap(), strategy);
    }
    assert!("hardest".parse::<Mining>().is_err());
}

fn orl_like_labels(identities: u32, images: u32) -> Vec<u32> {
    (0..identities)
        .flat_map(|id| std::iter::repeat_n(id, images as usize))
        .collect()
}

#[test]
fn sampler_batches_are_p_identities_by_k_images() {
    let labels = orl_like_labels(30, 10);
    let sampler = BatchSampler::new(&labels, 8, 4, 11).unwrap();
    assert_eq!(sampler.batch_size(), 32);
    assert_eq!(sampler.batches_per_epoch(), 4);
    for epoch in 0..3 {
        let batches = sampler.epoch(epoch);
        assert_eq!(batches.len(), 4);
        let mut seen = std::collections::BTreeSet::new();
        for batch in &batches {
            assert_eq!(batch.images.len(), 32);
            for group in 0..8 {
                let rows = group * 4..(group + 1) * 4;
                let label = batch.labels[rows.start];
                assert!(batch.labels[rows.clone()].iter().all(|&l| l == label));
                let mut images: Vec<u32> = batch.images[rows].to_vec();
                assert!(images.iter().all(|&i| labels[i as usize] == label));
                images.sort();
                images.dedup();
                assert_eq!(images.len(), 4, "K distinct images of an identity with 10");
                seen.insert(label);
            }
            let mut distinct = batch.labels.clone();
            distinct.dedup();
            assert_eq!(distinct.len(), 8, "P distinct identities");
        }
        assert_eq!(seen.len(), 30, "an epoch passes over every identity");
    }
}

#[test]
fn sampler_is_deterministic_per_seed_and_epoch() {
    let labels = orl_like_labels(12, 5);
    let a = BatchSampler::new(&labels, 4, 3, 7).unwrap();
    let b = BatchSampler::new(&labels, 4, 3, 7).unwrap();
    let c = BatchSampler::new(&labels, 4, 3, 8).unwrap();
    assert_eq!(a.epoch(2), b.epoch(2));
    // Epoch 2 does not depend on whether epochs 0 and 1 were drawn (resuming).
    let _ = a.epoch(0);
    let _ = a.epoch(1);
    assert_eq!(a.epoch(2), b.epoch(2));
    assert_ne!(a.epoch(2), c.epoch(2));
    assert_ne!(a.epoch(2), a.epoch(3));
}

#[test]
fn sampler_repeats_images_of_small_identities_and_skips_singletons() {
    // Identity 0 has 2 images, 1 has 5, 2 has 1 (unusable), 3 has 3.
    let labels = [0u32, 0, 1, 1, 1, 1, 1, 2, 3, 3, 3];
    let sampler = BatchSampler::new(&labels, 3, 4, 1).unwrap();
    assert_eq!(sampler.usable_identities(), 3);
    for epoch in 0..5 {
        let batches = sampler.epoch(epoch);
        assert_eq!(batches.len(), 1);
        let batch = &batches[0];
        assert!(!batch.labels.contains(&2));
        for group in batch.images.chunks(4) {
            let label = labels[group[0] as usize];
            let mut distinct: Vec<u32> = group.to_vec();
            distinct.sort();
            distinct.dedup();
            let available = labels.iter().filter(|&&l| l == label).count();
            assert_eq!(distinct.len(), available.min(4), "label {label}: {group:?}");
        }
    }
}

#[test]
fn sampler_tops_up_the_last_batch() {
    let labels = orl_like_labels(5, 3);
    let sampler = BatchSampler::new(&labels, 2, 2, 3).unwrap();
    let batches = sampler.epoch(0);
    assert_eq!(batches.len(), 3);
    for batch in &batches {
        assert_eq!(batch.images.len(), 4);
        assert_ne!(batch.labels[0], batch.labels[2]);
    }
}

#[test]
fn sampler_rejects_impossible_batches() {
    let labels = orl_like_labels(3, 4);
    assert!(
        BatchSampler::new(&labels, 4, 2, 0).is_err(),
        "P > identities"
    );
    assert!(BatchSampler::new(&labels, 1, 2, 0).is_err(), "P < 2");
    assert!(BatchSampler::new(&labels, 2, 1, 0).is_err(), "K < 2");
    // Singletons do not count towards P.
    let err = BatchSampler::new(&[0, 1, 2, 2], 2, 2, 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("identities-per-batch"), "{err}");
}
