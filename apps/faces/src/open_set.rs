//! Open-set identification: naming a probe against a gallery of K enrolled people, or calling it
//! unknown. The model's threshold is a verification threshold, chosen for one pair; a stranger
//! compared with K people has K chances to fall under it, so a gallery of ten accepts strangers
//! about ten times as often as one verification does.
//!
//! The model therefore stores the lower tail of the distribution of impostor distances (squared
//! distances between embeddings of different people), as quantiles ([`ImpostorTail`]). The
//! training identities themselves are separated far better than unseen people are (their
//! impostor distances lie above the verification threshold), so the distances come from
//! cross-validation over identities (`faces::commands::train`): the head is trained again on
//! the identities of four folds and embeds the fifth, whose people it never saw, and the
//! impostor distances of the five held-out folds are pooled. Against K people, if a stranger's K distances behave like independent
//! draws of that distribution, the stranger is accepted with probability
//! `1 - (1 - F(t))^K` at threshold t; setting that to the wanted gallery false-accept rate `a`
//! gives `t_K = F^-1(1 - (1 - a)^(1/K))`, which tightens as the gallery grows. Identification
//! uses `t_K`, never looser than the verification threshold.

use serde_json::{json, Value};

use crate::metrics::squared_l2;
use wgnn::rng::Rng;
use wgnn::{Error, Result};

/// The gallery false-accept rate that identification aims at unless told otherwise.
pub const DEFAULT_FALSE_ACCEPT_RATE: f32 = 0.01;

/// Pairs of training images at most whose distances make the tail (beyond it, a seeded sample
/// of the images): 5 million distances, 20 MB.
const MAX_PAIRS: usize = 5_000_000;

/// The seed of the sample of images when there are too many pairs.
const IMPOSTOR_SAMPLE_SEED: u64 = 0x5eed;

/// Probabilities at which the tail is stored: 10^-6 to 10^-0.3, ten a decade.
fn grid() -> impl Iterator<Item = f64> {
    (0..=57).map(|i| 10f64.powf(-6.0 + 0.1 * i as f64))
}

/// The impostor distance at each of a grid of probabilities `p` (F^-1(p), `p` ascending).
#[derive(Clone, Debug, PartialEq)]
pub struct ImpostorTail {
    pub quantiles: Vec<(f64, f32)>,
    /// How many impostor distances the quantiles come from.
    pub pairs: usize,
}

impl ImpostorTail {
    /// The tail of the impostor distances among `embeddings` (`[n, dim]` rows, `labels[i]` the
    /// identity of row i).
    pub fn from_embeddings(embeddings: &[f32], dim: usize, labels: &[u32]) -> Result<Self> {
        Self::from_distances(impostor_distances(embeddings, dim, labels)?)
    }

    /// The tail of a set of impostor distances.
    pub fn from_distances(mut distances: Vec<f32>) -> Result<Self> {
        if distances.is_empty() {
            return Err(Error::Invalid(
                "the impostor distances need images of at least two identities".into(),
            ));
        }
        distances.sort_by(f32::total_cmp);
        let n = distances.len();
        let quantiles = grid()
            .map(|p| (p, distances[((p * n as f64) as usize).min(n - 1)]))
            .collect();
        Ok(Self {
            quantiles,
            pairs: n,
        })
    }

    /// F^-1(p): the impostor distance under which a fraction `p` of impostor pairs fall,
    /// interpolated linearly in log p between the stored probabilities (clamped at the ends).
    pub fn quantile(&self, p: f64) -> f32 {
        let q = &self.quantiles;
        if p <= q[0].0 {
            return q[0].1;
        }
        match q.windows(2).find(|w| p <= w[1].0) {
            Some(w) => {
                let t = (p.ln() - w[0].0.ln()) / (w[1].0.ln() - w[0].0.ln());
                (w[0].1 as f64 + t * (w[1].1 as f64 - w[0].1 as f64)) as f32
            }
            None => q[q.len() - 1].1,
        }
    }

    /// The identification threshold against `gallery` people for a gallery false-accept rate
    /// `rate`: `F^-1(1 - (1 - rate)^(1/gallery))`, at most `verification`.
    pub fn gallery_threshold(&self, verification: f32, gallery: usize, rate: f64) -> f32 {
        let per_pair = 1.0 - (1.0 - rate).powf(1.0 / gallery.max(1) as f64);
        self.quantile(per_pair).min(verification)
    }

    pub fn to_json(&self) -> Value {
        let quantiles: Vec<Value> = self.quantiles.iter().map(|&(p, d)| json!([p, d])).collect();
        json!({"pairs": self.pairs, "quantiles": quantiles})
    }

    pub fn from_json(value: &Value) -> std::result::Result<Self, String> {
        let bad =
            || "impostor tail: expected {\"pairs\": N, \"quantiles\": [[p, d], ...]}".to_string();
        let pairs = value["pairs"].as_u64().ok_or_else(bad)? as usize;
        let quantiles: Vec<(f64, f32)> = value["quantiles"]
            .as_array()
            .ok_or_else(bad)?
            .iter()
            .map(|pd| Some((pd[0].as_f64()?, pd[1].as_f64()? as f32)))
            .collect::<Option<_>>()
            .ok_or_else(bad)?;
        let ordered = quantiles
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
        let finite = quantiles
            .iter()
            .all(|&(p, d)| p > 0.0 && p < 1.0 && d.is_finite() && d >= 0.0);
        if quantiles.is_empty() || !ordered || !finite {
            return Err("impostor tail: probabilities and distances must rise, finite".into());
        }
        Ok(Self { quantiles, pairs })
    }
}

/// The squared distances between rows of different identities among `embeddings` (`[n, dim]`,
/// `labels[i]` the identity of row i); with more than `MAX_PAIRS` pairs, among a seeded sample
/// of the rows.
pub fn impostor_distances(embeddings: &[f32], dim: usize, labels: &[u32]) -> Result<Vec<f32>> {
    crate::check_embeddings("impostor_distances", embeddings, dim, labels.len())?;
    let mut rows: Vec<usize> = (0..labels.len()).collect();
    let keep = (1..=rows.len())
        .rev()
        .find(|&m| m * (m - 1) / 2 <= MAX_PAIRS)
        .unwrap_or(0);
    if keep < rows.len() {
        Rng::new(IMPOSTOR_SAMPLE_SEED).shuffle(&mut rows);
        rows.truncate(keep);
        rows.sort_unstable();
    }
    let row = |i: usize| &embeddings[i * dim..(i + 1) * dim];
    let mut distances = Vec::new();
    for (a, &i) in rows.iter().enumerate() {
        for &j in &rows[a + 1..] {
            if labels[i] != labels[j] {
                distances.push(squared_l2(row(i), row(j)) as f32);
            }
        }
    }
    Ok(distances)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two tight clusters per identity axis: impostor distances are 2 (orthogonal unit rows)
    /// and genuine ones 0.
    fn orthogonal(identities: usize, per: usize) -> (Vec<f32>, Vec<u32>) {
        let dim = identities;
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for id in 0..identities {
            for _ in 0..per {
                rows.extend((0..dim).map(|d| (d == id) as u32 as f32));
                labels.push(id as u32);
            }
        }
        (rows, labels)
    }

    #[test]
    fn the_tail_holds_the_impostor_distances_only() {
        let (rows, labels) = orthogonal(4, 3);
        let tail = ImpostorTail::from_embeddings(&rows, 4, &labels).unwrap();
        // 12 rows, 66 pairs, 4 x 3 genuine pairs.
        assert_eq!(tail.pairs, 66 - 12);
        assert!(
            tail.quantiles.iter().all(|&(_, d)| (d - 2.0).abs() < 1e-6),
            "{tail:?}"
        );
        let one = ImpostorTail::from_embeddings(&rows[..12], 4, &labels[..3]);
        assert!(one.is_err(), "a single identity has no impostors");
    }

    #[test]
    fn quantiles_interpolate_and_the_gallery_threshold_tightens() {
        // Impostor distances spread uniformly over [0, 4): rows on a circle.
        let n = 400;
        let mut rows = Vec::new();
        for i in 0..n {
            let a = i as f32 / n as f32 * std::f32::consts::TAU;
            rows.extend([a.cos(), a.sin()]);
        }
        let labels: Vec<u32> = (0..n as u32).collect();
        let tail = ImpostorTail::from_embeddings(&rows, 2, &labels).unwrap();
        let (low, mid) = (tail.quantile(1e-3), tail.quantile(0.1));
        assert!(low < mid, "{low} {mid}");
        assert!(tail.quantile(1e-9) == tail.quantiles[0].1);
        let between = tail.quantile(0.0015);
        assert!(tail.quantile(1e-3) <= between && between <= tail.quantile(2e-3));
        let verification = tail.quantile(0.2);
        let thresholds: Vec<f32> = [1, 10, 100]
            .map(|k| tail.gallery_threshold(verification, k, 0.05))
            .to_vec();
        assert!(
            thresholds[0] > thresholds[1] && thresholds[1] > thresholds[2],
            "{thresholds:?}"
        );
        assert!(thresholds[0] <= verification);
        assert_eq!(
            tail.gallery_threshold(0.0, 1, 0.05),
            0.0,
            "never looser than verification"
        );
        let back = ImpostorTail::from_json(&tail.to_json()).unwrap();
        assert_eq!(back, tail);
        for bad in [
            json!({}),
            json!({"pairs": 3, "quantiles": [[0.5, 1.0], [0.1, 2.0]]}),
        ] {
            assert!(ImpostorTail::from_json(&bad).is_err(), "{bad}");
        }
    }
}
