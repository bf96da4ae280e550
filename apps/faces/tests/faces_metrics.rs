//! Metrics on synthetic embeddings with known answers, a hand-computed case, brute-force
//! references, and the raw-pixel baseline on ORL (the README's results table).

mod faces_support;

use faces_support::{random_unit_rows, ORL};
use wgnn::rng::Rng;
use wgnn_faces::dataset::{ImageFolder, Preprocess};
use wgnn_faces::metrics::{
    choose_threshold, evaluate, one_shot_accuracy, Metrics, Pairs, RocPoint,
};

fn close(what: &str, got: f64, expected: f64) {
    assert!((got - expected).abs() < 1e-9, "{what}: {got} vs {expected}");
}

/// `identities x images` rows: each identity's images share one basis vector of `dim`.
fn separated(identities: usize, images: usize) -> (Vec<f32>, Vec<u32>) {
    let mut e = Vec::new();
    let mut labels = Vec::new();
    for id in 0..identities {
        for _ in 0..images {
            let mut row = vec![0.0f32; identities];
            row[id] = 1.0;
            e.extend(row);
            labels.push(id as u32);
        }
    }
    (e, labels)
}

#[test]
fn perfectly_separated_embeddings_score_perfectly() {
    let (e, labels) = separated(6, 4);
    let m = evaluate(&e, 6, &labels).unwrap();
    assert_eq!((m.identities, m.images), (6, 24));
    close("one-shot", m.one_shot_accuracy, 1.0);
    close("verification", m.verification_accuracy, 1.0);
    close("auc", m.auc, 1.0);
    close("eer", m.eer, 0.0);
    close("val", m.val_at_far_1e_3, 1.0);
    // Same-identity distances are 0, different 2: the threshold is the middle of the gap.
    close("threshold", m.threshold, 1.0);
    close(
        "chosen",
        choose_threshold(&e, 6, &labels).unwrap() as f64,
        1.0,
    );
}

#[test]
fn identical_embeddings_score_chance() {
    let labels: Vec<u32> = (0..5).flat_map(|id| [id; 3]).collect();
    let e = [0.6f32, 0.8].repeat(labels.len());
    let m = evaluate(&e, 2, &labels).unwrap();
    close("auc", m.auc, 0.5);
    close("eer", m.eer, 0.5);
    close("verification", m.verification_accuracy, 0.5);
    // Every gallery entry ties: expected accuracy of a random pick among 5.
    close("one-shot", m.one_shot_accuracy, 0.2);
    close("val", m.val_at_far_1e_3, 0.0);
}

/// Positives at 0.1, 0.3, 0.4; negatives at 0.2, 0.4, 0.5.
fn hand_pairs() -> Pairs {
    Pairs::new(
        vec![0.1, 0.4, 0.3, 0.5, 0.4, 0.2],
        vec![true, false, true, false, true, false],
    )
    .unwrap()
}

#[test]
fn hand_computed_roc_auc_eer_val() {
    let pairs = hand_pairs();
    let curve: Vec<(f64, f64, f64)> = pairs
        .roc_curve()
        .iter()
        .map(|p| (p.threshold, p.far, p.tar))
        .collect();
    let third = 1.0 / 3.0;
    let expected = [
        (f64::NEG_INFINITY, 0.0, 0.0),
        (0.1, 0.0, third),
        (0.2, third, third),
        (0.3, third, 2.0 * third),
        (0.4, 2.0 * third, 1.0),
        (0.5, 1.0, 1.0),
    ];
    assert_eq!(curve.len(), expected.len());
    for (got, want) in curve.iter().zip(&expected) {
        assert_eq!(got.0, want.0);
        close("far", got.1, want.1);
        close("tar", got.2, want.2);
    }
    // Mann-Whitney: 0.1 beats 3 negatives, 0.3 beats 2, 0.4 beats 1 and ties 1: 6.5 / 9.
    close("auc", pairs.auc(), 6.5 / 9.0);
    // The ROC point (1/3, 2/3) has FAR = FRR = 1/3.
    close("eer", pairs.eer(), third);
    close("val at 0", pairs.val_at_far(0.0), third);
    close("val at 0.34", pairs.val_at_far(0.34), 2.0 * third);
    // Thresholds 0.15 and 0.35 both reach 2/3; the first wins.
    let (threshold, accuracy) = pairs.best_threshold();
    close("best threshold", threshold, 0.15);
    close("best accuracy", accuracy, 2.0 * third);
    close(
        "accuracy at 0.35",
        pairs.balanced_accuracy(0.35),
        2.0 * third,
    );
    close(
        "accuracy at 0.45",
        pairs.balanced_accuracy(0.45),
        2.0 * third,
    );
    close("accept all", pairs.balanced_accuracy(9.0), 0.5);
}

#[test]
fn eer_interpolates_inside_a_tied_segment() {
    // Positives 0.1, 0.2; negatives 0.2, 0.3. ROC: (0,0) (0,1/2) (1/2,1) (1,1). FAR - FRR goes
    // from -1/2 to +1/2 along the middle segment: equal halfway, at FAR = 1/4.
    let pairs = Pairs::new(vec![0.1, 0.2, 0.2, 0.3], vec![true, true, false, false]).unwrap();
    close("eer", pairs.eer(), 0.25);
    close("auc", pairs.auc(), (2.0 + 1.0 + 0.5) / 4.0);
}

#[test]
fn auc_matches_brute_force_with_ties() {
    let mut rng = Rng::new(17);
    for _ in 0..20 {
        let n = 5 + rng.below(60);
        // Coarse distances: many ties.
        let distance: Vec<f64> = (0..n).map(|_| rng.below(8) as f64 * 0.25).collect();
        let mut same: Vec<bool> = (0..n).map(|_| rng.below(3) == 0).collect();
        same[0] = true;
        same[1] = false;
        let mut wins = 0.0;
        let (mut pos, mut neg) = (0.0, 0.0);
        for i in 0..n {
            pos += same[i] as u32 as f64;
            neg += !same[i] as u32 as f64;
            for j in 0..n {
                if same[i] && !same[j] {
                    if distance[i] < distance[j] {
                        wins += 1.0;
                    } else if distance[i] == distance[j] {
                        wins += 0.5;
                    }
                }
            }
        }
        let pairs = Pairs::new(distance, same).unwrap();
        close("auc", pairs.auc(), wins / (pos * neg));
        // The trapezoid area under the ROC curve is the same number.
        let roc: Vec<RocPoint> = pairs.roc_curve();
        let area: f64 = roc
            .windows(2)
            .map(|w| (w[1].far - w[0].far) * (w[1].tar + w[0].tar) / 2.0)
            .sum();
        close("trapezoid", area, pairs.auc());
        // EER: where FAR reaches FRR. It lies between the rates of the ROC points before the
        // crossing (FAR < FRR) and after it (FAR >= FRR).
        let eer = pairs.eer();
        let (before, after): (Vec<&RocPoint>, Vec<&RocPoint>) =
            roc.iter().partition(|p| p.far < 1.0 - p.tar);
        let far_lo = before.iter().map(|p| p.far).fold(0.0, f64::max);
        let far_hi = after.iter().map(|p| p.far).fold(1.0, f64::min);
        let frr_lo = after.iter().map(|p| 1.0 - p.tar).fold(0.0, f64::max);
        let frr_hi = before.iter().map(|p| 1.0 - p.tar).fold(1.0, f64::min);
        assert!(
            far_lo - 1e-12 <= eer && eer <= far_hi + 1e-12,
            "{eer} vs FAR {far_lo}..{far_hi}"
        );
        assert!(
            frr_lo - 1e-12 <= eer && eer <= frr_hi + 1e-12,
            "{eer} vs FRR {frr_lo}..{frr_hi}"
        );
    }
}

/// Cross-validation written out plainly: stratified folds by pair order, and per fold every
/// candidate threshold tried independently.
fn brute_cross_validation(distance: &[f64], same: &[bool]) -> (f64, Vec<f64>) {
    let folds = 10;
    let mut fold = vec![0; same.len()];
    let (mut pos, mut neg) = (0, 0);
    for i in 0..same.len() {
        if same[i] {
            fold[i] = pos % folds;
            pos += 1;
        } else {
            fold[i] = neg % folds;
            neg += 1;
        }
    }
    let balanced = |keep: &dyn Fn(usize) -> bool, t: f64| {
        let (mut tp, mut p, mut tn, mut n) = (0.0, 0.0, 0.0, 0.0);
        for i in 0..same.len() {
            if !keep(i) {
                continue;
            }
            if same[i] {
                p += 1.0;
                if distance[i] <= t {
                    tp += 1.0;
                }
            } else {
                n += 1.0;
                if distance[i] > t {
                    tn += 1.0;
                }
            }
        }
        (tp / p + tn / n) / 2.0
    };
    let mut accuracy = 0.0;
    let mut thresholds = Vec::new();
    for f in 0..folds {
        let train = |i: usize| fold[i] != f;
        let mut values: Vec<f64> = (0..same.len())
            .filter(|&i| train(i))
            .map(|i| distance[i])
            .collect();
        values.sort_by(f64::total_cmp);
        values.dedup();
        let mut candidates: Vec<f64> = values.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
        candidates.push(*values.last().unwrap());
        let mut best = (f64::NAN, -1.0);
        for &t in &candidates {
            let a = balanced(&train, t);
            if a > best.1 || (a == best.1 && t < best.0) {
                best = (t, a);
            }
        }
        thresholds.push(best.0);
        accuracy += balanced(&|i| fold[i] == f, best.0) / folds as f64;
    }
    (accuracy, thresholds)
}

#[test]
fn cross_validation_matches_brute_force() {
    let mut rng = Rng::new(23);
    let dim = 5;
    let labels: Vec<u32> = (0..12).flat_map(|id| [id; 3]).collect();
    // Clustered but overlapping: identity centres plus noise.
    let centres = random_unit_rows(&mut rng, 12, dim);
    let mut e = Vec::new();
    for &l in &labels {
        for k in 0..dim {
            e.push(centres[l as usize * dim + k] + 0.6 * rng.normal() as f32);
        }
    }
    let pairs = Pairs::all(&e, dim, &labels).unwrap();
    let mut distance = Vec::new();
    let mut same = Vec::new();
    for i in 0..labels.len() {
        for j in i + 1..labels.len() {
            let d: f64 = (0..dim)
                .map(|k| (e[i * dim + k] as f64 - e[j * dim + k] as f64).powi(2))
                .sum();
            distance.push(d);
            same.push(labels[i] == labels[j]);
        }
    }
    let (accuracy, thresholds) = brute_cross_validation(&distance, &same);
    let cv = pairs.cross_validate(10).unwrap();
    close("cv accuracy", cv.accuracy, accuracy);
    assert_eq!(cv.thresholds.len(), 10);
    for (got, want) in cv.thresholds.iter().zip(&thresholds) {
        close("fold threshold", *got, *want);
    }
    assert!(cv.accuracy > 0.6 && cv.accuracy < 1.0, "{}", cv.accuracy);
    let m = evaluate(&e, dim, &labels).unwrap();
    close("metrics", m.verification_accuracy, accuracy);
    close(
        "threshold",
        m.threshold,
        thresholds.iter().sum::<f64>() / 10.0,
    );
}

#[test]
fn few_pairs_use_fewer_folds() {
    // 2 identities x 2 images: 2 same pairs, 4 different: 2 folds.
    let pairs = Pairs::new(
        vec![0.1, 0.9, 0.8, 0.7, 0.95, 0.2],
        vec![true, false, false, false, false, true],
    )
    .unwrap();
    let cv = pairs.cross_validate(10).unwrap();
    assert_eq!(cv.thresholds.len(), 2);
    close("accuracy", cv.accuracy, 1.0);
    let one_same = Pairs::new(vec![0.1, 0.5], vec![true, false]).unwrap();
    assert!(one_same.cross_validate(10).is_err());
}

#[test]
fn one_shot_hand_computed() {
    // 1-D: identity 0 at 0 and 1, identity 1 at 3 and 1.5.
    let e = [0.0f32, 1.0, 3.0, 1.5];
    let labels = [0u32, 0, 1, 1];
    // Round 0 (gallery 0 and 3): probe 1 is right; probe 1.5 ties (2.25 each), half credit.
    // Round 1 (gallery 1 and 1.5): probe 0 right, probe 3 right.
    close(
        "one-shot",
        one_shot_accuracy(&e, 1, &labels).unwrap(),
        (0.75 + 1.0) / 2.0,
    );
}

#[test]
fn one_shot_with_unequal_image_counts() {
    // Identity 0 at 0, 1; identity 1 at 10, 11; identity 2 (one image) at 0.9.
    let e = [0.0f32, 1.0, 10.0, 11.0, 0.9];
    let labels = [0u32, 0, 1, 1, 2];
    // Round 0: gallery 0, 10, 0.9; probe 1 goes to 0.9 (wrong), probe 11 right: 1/2.
    // Round 1: identity 2 has no second image and takes no part; both probes right: 1.
    close("one-shot", one_shot_accuracy(&e, 1, &labels).unwrap(), 0.75);
    // Interleaved rows: images are numbered per identity in row order.
    let e = [0.0f32, 10.0, 0.9, 1.0, 11.0];
    let labels = [0u32, 1, 2, 0, 1];
    close(
        "interleaved",
        one_shot_accuracy(&e, 1, &labels).unwrap(),
        0.75,
    );
}

#[test]
fn degenerate_inputs_are_errors() {
    // Only singletons: no probe, no positive pair.
    let e = [0.0f32, 1.0, 2.0];
    assert!(one_shot_accuracy(&e, 1, &[0, 1, 2]).is_err());
    assert!(evaluate(&e, 1, &[0, 1, 2]).is_err());
    // One identity: no negative pair, no second gallery entry.
    assert!(evaluate(&e, 1, &[4, 4, 4]).is_err());
    // Shape and value errors.
    assert!(evaluate(&e, 2, &[0, 0, 1]).is_err());
    assert!(evaluate(&[0.0, f32::NAN, 1.0, 2.0], 1, &[0, 0, 1, 1]).is_err());
    assert!(Pairs::new(vec![0.1], vec![true, false]).is_err());
    assert!(Pairs::new(vec![0.1, f64::NAN], vec![true, false]).is_err());
}

#[test]
fn json_line_has_the_documented_keys_in_order() {
    let m = Metrics {
        identities: 10,
        images: 100,
        one_shot_accuracy: 0.75,
        verification_accuracy: 0.875,
        auc: 1.0,
        eer: 0.0625,
        val_at_far_1e_3: 0.5,
        threshold: 0.25,
    };
    assert_eq!(
        m.to_json_line(),
        "{\"identities\": 10, \"images\": 100, \"one_shot_accuracy\": 0.75, \
         \"verification_accuracy\": 0.875, \"auc\": 1.0, \"eer\": 0.0625, \
         \"val_at_far_1e-3\": 0.5, \"threshold\": 0.25}"
    );
    let parsed: serde_json::Value = serde_json::from_str(&m.to_json_line()).unwrap();
    assert_eq!(parsed["val_at_far_1e-3"], 0.5);
}

/// Raw pixels of ORL s31-s40 at 92x112, each image flattened, with `centre` its mean removed,
/// then L2-normalised.
fn raw_pixel_metrics(centre: bool) -> Metrics {
    let folder = ImageFolder::open(ORL).unwrap();
    let (_, holdout) = folder.split_holdout(10).unwrap();
    let size = Preprocess {
        width: 92,
        height: 112,
        channels: 1,
    };
    let images = holdout.load(size).unwrap();
    let dim = images.image_len();
    let mut e = images.data.clone();
    for row in e.chunks_mut(dim) {
        if centre {
            let mean = row.iter().sum::<f32>() / dim as f32;
            row.iter_mut().for_each(|x| *x -= mean);
        }
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        row.iter_mut().for_each(|x| *x /= norm);
    }
    evaluate(&e, dim, &images.labels).unwrap()
}

#[test]
fn raw_pixel_baseline_reproduces_the_readme_figures() {
    // The README's baseline: raw pixels on unseen ORL s31-s40 give one-shot 0.782 and EER 0.180.
    let m = raw_pixel_metrics(false);
    assert_eq!((m.identities, m.images), (10, 100));
    assert!(
        (0.74..0.82).contains(&m.one_shot_accuracy),
        "{}",
        m.to_json_line()
    );
    assert!((0.14..0.22).contains(&m.eer), "{}", m.to_json_line());
    assert!((0.85..0.97).contains(&m.auc), "{}", m.to_json_line());
    // Per-image standardised pixels (mean removed) land on the baseline's EER.
    let m = raw_pixel_metrics(true);
    assert!(
        (0.74..0.82).contains(&m.one_shot_accuracy),
        "{}",
        m.to_json_line()
    );
    assert!((0.17..0.19).contains(&m.eer), "{}", m.to_json_line());
}
