//! Face recognition metrics, as `train_siamese eval` reports them (README), on embeddings `[N, D]`
//! with a label per row. Distances are squared L2 accumulated in f64; a pair is predicted "same person" when
//! its distance is `<= threshold`.
//!
//! - **One-shot K-way identification.** Images of an identity are numbered in input order. For
//!   each round `r`, the r-th image of every identity forms the gallery; every other image of the
//!   identities in the gallery is a probe, right when its nearest gallery embedding is its
//!   identity's. Identities with fewer than `r + 1` images take no part in round `r`, neither as
//!   gallery nor as probes (they still serve in the earlier rounds); a round counts only when its
//!   gallery has at least two identities and it has a probe. The accuracy is the mean over the
//!   counted rounds. Exact ties between gallery distances give partial credit `1 / t` when the
//!   right identity is among the `t` nearest (the expected accuracy of a random tie-break).
//! - **Verification** over all pairs `i < j` of images:
//!   - balanced accuracy `(TPR + TNR) / 2` by 10-fold cross-validation: the m-th same-identity
//!     pair (in pair order) goes to fold `m % 10`, and likewise the different-identity pairs (so
//!     every fold has both kinds); per fold, the best threshold on the other 9 folds is scored on
//!     it; the mean over folds. Fewer than 10 pairs of a kind give as many folds as there are
//!     such pairs (at least 2 are needed).
//!   - best threshold on a set of pairs: the candidate thresholds are the midpoints between
//!     consecutive distinct distances, and the largest distance (accept all); the first best
//!     (smallest threshold) wins ties.
//!   - ROC AUC: the Mann-Whitney statistic `P(d_same < d_diff) + P(d_same = d_diff) / 2`.
//!   - EER: the ROC curve (one point per distinct distance) is followed until the false accept
//!     rate reaches the false reject rate, linearly interpolated inside that segment.
//!   - VAL at FAR = 1e-3: the largest true accept rate among thresholds whose false accept rate
//!     is <= 1e-3 (no interpolation).
//!   - [`choose_threshold`]: the mean of the 10 fold thresholds of the cross-validation.
//! - **N-way one-shot within groups** ([`episodic_one_shot`], Lake et al.'s Omniglot task): the
//!   identities of each group (Omniglot's alphabet), in order, are cut into episodes of N (a last
//!   shorter episode joins the one before; a group of fewer than N identities is one episode); the one-shot
//!   accuracy above is computed within each episode, and the figure is the mean over episodes.

use std::collections::BTreeMap;

use super::check_embeddings;
use wgnn::{Error, Result};

/// Folds of the verification cross-validation.
pub const FOLDS: usize = 10;

/// The figures `eval` reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Metrics {
    pub identities: usize,
    pub images: usize,
    pub one_shot_accuracy: f64,
    pub verification_accuracy: f64,
    pub auc: f64,
    pub eer: f64,
    pub val_at_far_1e_3: f64,
    /// Mean of the cross-validation fold thresholds.
    pub threshold: f64,
}

/// One point of the ROC curve: pairs with distance `<= threshold` are accepted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RocPoint {
    /// `-inf` for the first point (nothing accepted).
    pub threshold: f64,
    /// False accept rate: accepted different-identity pairs / all different-identity pairs.
    pub far: f64,
    /// True accept rate: accepted same-identity pairs / all same-identity pairs.
    pub tar: f64,
}

/// Result of the verification cross-validation.
#[derive(Clone, Debug, PartialEq)]
pub struct CrossValidation {
    /// Mean balanced accuracy over folds.
    pub accuracy: f64,
    /// The threshold chosen for each fold (on the other folds).
    pub thresholds: Vec<f64>,
    pub fold_accuracies: Vec<f64>,
}

/// Scored pairs: a distance and whether both images show the same identity.
#[derive(Clone, Debug)]
pub struct Pairs {
    distance: Vec<f64>,
    same: Vec<bool>,
    /// Pair indices sorted by distance (then index).
    order: Vec<usize>,
    positives: usize,
    negatives: usize,
}

/// All metrics of a labelled embedding set (see the module documentation).
pub fn evaluate(embeddings: &[f32], dim: usize, labels: &[u32]) -> Result<Metrics> {
    let pairs = Pairs::all(embeddings, dim, labels)?;
    let cv = pairs.cross_validate(FOLDS)?;
    Ok(Metrics {
        identities: labels
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        images: labels.len(),
        one_shot_accuracy: one_shot_accuracy(embeddings, dim, labels)?,
        verification_accuracy: cv.accuracy,
        auc: pairs.auc(),
        eer: pairs.eer(),
        val_at_far_1e_3: pairs.val_at_far(1e-3),
        threshold: mean(&cv.thresholds),
    })
}

/// The verification threshold to store in a model: the mean of the cross-validation's fold
/// thresholds over all pairs of `embeddings`.
pub fn choose_threshold(embeddings: &[f32], dim: usize, labels: &[u32]) -> Result<f32> {
    let cv = Pairs::all(embeddings, dim, labels)?.cross_validate(FOLDS)?;
    Ok(mean(&cv.thresholds) as f32)
}

/// One-shot K-way identification accuracy (see the module documentation).
pub fn one_shot_accuracy(embeddings: &[f32], dim: usize, labels: &[u32]) -> Result<f64> {
    check_embeddings("one_shot_accuracy", embeddings, dim, labels.len())?;
    let row = |i: usize| &embeddings[i * dim..(i + 1) * dim];
    let mut images_of = BTreeMap::<u32, Vec<usize>>::new();
    for (i, &label) in labels.iter().enumerate() {
        images_of.entry(label).or_default().push(i);
    }
    let rounds = images_of.values().map(Vec::len).max().unwrap_or(0);
    let mut round_accuracies = Vec::new();
    for r in 0..rounds {
        let taking_part: Vec<&Vec<usize>> = images_of.values().filter(|v| v.len() > r).collect();
        let gallery: Vec<usize> = taking_part.iter().map(|images| images[r]).collect();
        if gallery.len() < 2 {
            continue;
        }
        let (mut credit, mut probes) = (0.0f64, 0usize);
        for (right, images) in taking_part.iter().enumerate() {
            for &probe in images.iter().filter(|&&i| i != images[r]) {
                let d: Vec<f64> = gallery
                    .iter()
                    .map(|&g| squared_l2(row(probe), row(g)))
                    .collect();
                let nearest = d.iter().copied().fold(f64::INFINITY, f64::min);
                if d[right] == nearest {
                    credit += 1.0 / d.iter().filter(|&&x| x == nearest).count() as f64;
                }
                probes += 1;
            }
        }
        if probes > 0 {
            round_accuracies.push(credit / probes as f64);
        }
    }
    if round_accuracies.is_empty() {
        return Err(Error::Invalid(
            "one-shot identification needs at least two identities, one with two or more images"
                .to_string(),
        ));
    }
    Ok(mean(&round_accuracies))
}

/// One episode of [`episodic_one_shot`]: its identities and its one-shot accuracy.
pub type Episode = (Vec<u32>, f64);

/// N-way one-shot accuracy within groups (see the module documentation): the mean over
/// episodes and each episode's accuracy, with its identities. `group_of[label]` is the group of
/// identity `label`.
pub fn episodic_one_shot(
    embeddings: &[f32],
    dim: usize,
    labels: &[u32],
    group_of: &[u32],
    ways: usize,
) -> Result<(f64, Vec<Episode>)> {
    check_embeddings("episodic_one_shot", embeddings, dim, labels.len())?;
    if ways < 2 {
        return Err(Error::Invalid(format!(
            "{ways}-way identification: at least 2 ways"
        )));
    }
    let mut identities: Vec<u32> = labels.to_vec();
    identities.sort_unstable();
    identities.dedup();
    let mut groups = BTreeMap::<u32, Vec<u32>>::new();
    for &label in &identities {
        let group = *group_of
            .get(label as usize)
            .ok_or_else(|| Error::Invalid(format!("identity {label} has no group")))?;
        groups.entry(group).or_default().push(label);
    }
    let mut episodes: Vec<Vec<u32>> = Vec::new();
    for members in groups.values() {
        let count = (members.len() / ways).max(1);
        for e in 0..count {
            let end = if e + 1 == count {
                members.len()
            } else {
                (e + 1) * ways
            };
            episodes.push(members[e * ways..end].to_vec());
        }
    }
    let mut results = Vec::new();
    for episode in episodes {
        if episode.len() < 2 {
            continue;
        }
        let rows: Vec<usize> = (0..labels.len())
            .filter(|&i| episode.binary_search(&labels[i]).is_ok())
            .collect();
        let sub: Vec<f32> = rows
            .iter()
            .flat_map(|&i| embeddings[i * dim..(i + 1) * dim].iter().copied())
            .collect();
        let sub_labels: Vec<u32> = rows.iter().map(|&i| labels[i]).collect();
        let accuracy = one_shot_accuracy(&sub, dim, &sub_labels)?;
        results.push((episode, accuracy));
    }
    if results.is_empty() {
        return Err(Error::Invalid(
            "no group has two identities for one-shot identification".into(),
        ));
    }
    let accuracies: Vec<f64> = results.iter().map(|(_, a)| *a).collect();
    Ok((mean(&accuracies), results))
}

impl Pairs {
    /// Every pair `i < j` of rows, in row-major pair order.
    pub fn all(embeddings: &[f32], dim: usize, labels: &[u32]) -> Result<Self> {
        let n = labels.len();
        check_embeddings("Pairs::all", embeddings, dim, n)?;
        let row = |i: usize| &embeddings[i * dim..(i + 1) * dim];
        let mut distance = Vec::with_capacity(n * n.saturating_sub(1) / 2);
        let mut same = Vec::with_capacity(distance.capacity());
        for i in 0..n {
            for j in i + 1..n {
                distance.push(squared_l2(row(i), row(j)));
                same.push(labels[i] == labels[j]);
            }
        }
        Self::new(distance, same)
    }

    /// Pairs from their distances and same-identity flags; needs both kinds of pair.
    pub fn new(distance: Vec<f64>, same: Vec<bool>) -> Result<Self> {
        if distance.len() != same.len() {
            return Err(Error::shape(
                "Pairs::new",
                format!("{} distances but {} flags", distance.len(), same.len()),
            ));
        }
        if distance.iter().any(|d| !d.is_finite()) {
            return Err(Error::Invalid("pair distances must be finite".to_string()));
        }
        let positives = same.iter().filter(|&&s| s).count();
        let negatives = same.len() - positives;
        if positives == 0 || negatives == 0 {
            return Err(Error::Invalid(format!(
                "verification needs same-identity and different-identity pairs; got {positives} \
                 same and {negatives} different (every identity needs two images, and two \
                 identities are needed)"
            )));
        }
        let mut order: Vec<usize> = (0..distance.len()).collect();
        order.sort_by(|&a, &b| distance[a].total_cmp(&distance[b]).then(a.cmp(&b)));
        Ok(Self {
            distance,
            same,
            order,
            positives,
            negatives,
        })
    }

    pub fn len(&self) -> usize {
        self.same.len()
    }

    pub fn is_empty(&self) -> bool {
        self.same.is_empty()
    }

    /// `(TPR + TNR) / 2` when pairs with distance `<= threshold` are accepted.
    pub fn balanced_accuracy(&self, threshold: f64) -> f64 {
        self.balanced_accuracy_of(0..self.len(), threshold)
    }

    /// The best threshold on all pairs and its balanced accuracy.
    pub fn best_threshold(&self) -> (f64, f64) {
        self.best_threshold_where(|_| true)
    }

    /// Balanced accuracy by `folds`-fold cross-validation (stratified as the module documents;
    /// fewer folds when a kind of pair has fewer than `folds` members).
    pub fn cross_validate(&self, folds: usize) -> Result<CrossValidation> {
        let folds = folds.min(self.positives).min(self.negatives);
        if folds < 2 {
            return Err(Error::Invalid(format!(
                "cross-validation needs at least 2 same-identity and 2 different-identity pairs; \
                 got {} and {}",
                self.positives, self.negatives
            )));
        }
        let mut fold_of = vec![0usize; self.len()];
        let (mut pos, mut neg) = (0, 0);
        for (pair, &same) in self.same.iter().enumerate() {
            let counter = if same { &mut pos } else { &mut neg };
            fold_of[pair] = *counter % folds;
            *counter += 1;
        }
        let mut thresholds = Vec::with_capacity(folds);
        let mut fold_accuracies = Vec::with_capacity(folds);
        for fold in 0..folds {
            let (threshold, _) = self.best_threshold_where(|pair| fold_of[pair] != fold);
            let held_out = (0..self.len()).filter(|&pair| fold_of[pair] == fold);
            fold_accuracies.push(self.balanced_accuracy_of(held_out, threshold));
            thresholds.push(threshold);
        }
        Ok(CrossValidation {
            accuracy: mean(&fold_accuracies),
            thresholds,
            fold_accuracies,
        })
    }

    /// The ROC curve from `(0, 0)` to `(1, 1)`, one point per distinct distance.
    pub fn roc_curve(&self) -> Vec<RocPoint> {
        let mut curve = vec![RocPoint {
            threshold: f64::NEG_INFINITY,
            far: 0.0,
            tar: 0.0,
        }];
        let (mut tp, mut fp) = (0usize, 0usize);
        for (k, &pair) in self.order.iter().enumerate() {
            if self.same[pair] {
                tp += 1;
            } else {
                fp += 1;
            }
            let d = self.distance[pair];
            let group_ends = self
                .order
                .get(k + 1)
                .is_none_or(|&next| self.distance[next] != d);
            if group_ends {
                curve.push(RocPoint {
                    threshold: d,
                    far: fp as f64 / self.negatives as f64,
                    tar: tp as f64 / self.positives as f64,
                });
            }
        }
        curve
    }

    /// Area under the ROC curve, tie-aware (Mann-Whitney).
    pub fn auc(&self) -> f64 {
        // Ascending distance: a same-identity pair beats every different-identity pair that
        // comes in a later group and ties with those of its own group.
        let mut negatives_before = 0usize;
        let mut wins = 0.0f64;
        let mut k = 0;
        while k < self.order.len() {
            let d = self.distance[self.order[k]];
            let (mut group_pos, mut group_neg) = (0usize, 0usize);
            while k < self.order.len() && self.distance[self.order[k]] == d {
                if self.same[self.order[k]] {
                    group_pos += 1;
                } else {
                    group_neg += 1;
                }
                k += 1;
            }
            let negatives_after = self.negatives - negatives_before - group_neg;
            wins += group_pos as f64 * (negatives_after as f64 + 0.5 * group_neg as f64);
            negatives_before += group_neg;
        }
        wins / (self.positives as f64 * self.negatives as f64)
    }

    /// Equal error rate: where the false accept rate equals the false reject rate.
    pub fn eer(&self) -> f64 {
        let curve = self.roc_curve();
        // g = FAR - FRR = FAR + TAR - 1 rises from -1 at (0, 0) to 1 at (1, 1).
        let g = |p: &RocPoint| p.far + p.tar - 1.0;
        for w in curve.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            if g(b) >= 0.0 {
                let t = if g(b) == g(a) {
                    0.0
                } else {
                    -g(a) / (g(b) - g(a))
                };
                return a.far + t * (b.far - a.far);
            }
        }
        unreachable!("the ROC curve ends at (1, 1), where FAR - FRR = 1")
    }

    /// The largest true accept rate at a threshold whose false accept rate is `<= far`.
    pub fn val_at_far(&self, far: f64) -> f64 {
        self.roc_curve()
            .iter()
            .filter(|p| p.far <= far)
            .map(|p| p.tar)
            .fold(0.0, f64::max)
    }

    fn balanced_accuracy_of(&self, pairs: impl Iterator<Item = usize>, threshold: f64) -> f64 {
        let (mut tp, mut pos, mut tn, mut neg) = (0usize, 0usize, 0usize, 0usize);
        for pair in pairs {
            let accepted = self.distance[pair] <= threshold;
            if self.same[pair] {
                pos += 1;
                tp += accepted as usize;
            } else {
                neg += 1;
                tn += !accepted as usize;
            }
        }
        balanced(tp, pos, tn, neg)
    }

    fn best_threshold_where(&self, included: impl Fn(usize) -> bool) -> (f64, f64) {
        let selected: Vec<usize> = self
            .order
            .iter()
            .copied()
            .filter(|&p| included(p))
            .collect();
        let pos = selected.iter().filter(|&&p| self.same[p]).count();
        let neg = selected.len() - pos;
        let (mut tp, mut fp) = (0usize, 0usize);
        let mut best: Option<(f64, f64)> = None;
        for (k, &pair) in selected.iter().enumerate() {
            if self.same[pair] {
                tp += 1;
            } else {
                fp += 1;
            }
            let d = self.distance[pair];
            let threshold = match selected.get(k + 1) {
                Some(&next) if self.distance[next] == d => continue,
                Some(&next) => 0.5 * (d + self.distance[next]),
                None => d,
            };
            let accuracy = balanced(tp, pos, neg - fp, neg);
            if best.is_none_or(|(_, b)| accuracy > b) {
                best = Some((threshold, accuracy));
            }
        }
        best.unwrap_or((0.0, 0.5))
    }
}

impl Metrics {
    /// The one-line JSON report of `eval --json`, keys in the order the README lists them.
    pub fn to_json_line(&self) -> String {
        let number = |x: f64| serde_json::Value::from(x).to_string();
        format!(
            "{{\"identities\": {}, \"images\": {}, \"one_shot_accuracy\": {}, \
             \"verification_accuracy\": {}, \"auc\": {}, \"eer\": {}, \"val_at_far_1e-3\": {}, \
             \"threshold\": {}}}",
            self.identities,
            self.images,
            number(self.one_shot_accuracy),
            number(self.verification_accuracy),
            number(self.auc),
            number(self.eer),
            number(self.val_at_far_1e_3),
            number(self.threshold),
        )
    }
}

/// Squared L2 distance, accumulated in f64.
pub fn squared_l2(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = x as f64 - y as f64;
            d * d
        })
        .sum()
}

fn balanced(tp: usize, pos: usize, tn: usize, neg: usize) -> f64 {
    let rate = |k: usize, n: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
    0.5 * (rate(tp, pos) + rate(tn, neg))
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}
