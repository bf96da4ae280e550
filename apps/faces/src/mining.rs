//! Online triplet mining inside a batch of P identities x K images (FaceNet; Hermans, Beyer and
//! Leibe, "In Defense of the Triplet Loss").
//!
//! Input: the batch's embeddings `[B, D]` (L2-normalised, row-major) and a label per row.
//! Distances are squared L2, `d(i, j) = sum_k (e_ik - e_jk)^2`, summed in f32 in order of `k`.
//! The triplet loss of `(a, p, n)` is `max(0, d(a, p) - d(a, n) + margin)`; a triplet is
//! *active* when that is > 0.
//!
//! Strategies (ties between equal distances go to the smaller index, so the output is
//! deterministic):
//! - `batch-hard`: per anchor, the farthest positive and the nearest negative; one triplet per
//!   anchor that has both a positive and a negative.
//! - `semi-hard`: per anchor-positive pair `(a, p)` (ordered, `a != p`), the nearest negative
//!   with `d(a, p) < d(a, n) < d(a, p) + margin`. When there is none, the pair falls back to the
//!   nearest (hardest) negative of the anchor: the triplet is then either inactive (every
//!   negative lies beyond the margin) or hard, which keeps a triplet for every pair. (TensorFlow
//!   Addons falls back to the farthest negative instead; we follow the FaceNet text, which picks
//!   the hardest.)
//! - `batch-all`: every valid triplet; with `active_only`, only those with a positive loss (the
//!   loss is then the mean over active triplets, as Hermans et al. recommend).
//!
//! Output triplets are ordered by anchor, then positive, then negative.

use super::check_embeddings;
use wgnn::{Error, Result};

/// How triplets are chosen in a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mining {
    BatchHard,
    SemiHard,
    BatchAll,
}

impl Mining {
    /// The name used on the command line and in model metadata.
    pub fn as_str(&self) -> &'static str {
        match self {
            Mining::BatchHard => "batch-hard",
            Mining::SemiHard => "semi-hard",
            Mining::BatchAll => "batch-all",
        }
    }
}

impl std::str::FromStr for Mining {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "batch-hard" => Ok(Mining::BatchHard),
            "semi-hard" => Ok(Mining::SemiHard),
            "batch-all" => Ok(Mining::BatchAll),
            _ => Err(Error::Invalid(format!(
                "unknown mining strategy `{s}`: expected batch-hard, semi-hard or batch-all"
            ))),
        }
    }
}

/// A mining request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MiningConfig {
    pub strategy: Mining,
    pub margin: f32,
    /// `batch-all` only: keep only triplets with a positive loss.
    pub active_only: bool,
}

/// The chosen triplets and what they say about the batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Mined {
    /// `[anchor, positive, negative]` row indices into the batch.
    pub triplets: Vec<[u32; 3]>,
    pub stats: MiningStats,
}

/// Statistics of one mined batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MiningStats {
    /// Triplets the strategy considered: the returned ones, except for `batch-all` with
    /// `active_only`, where it is every valid triplet of the batch.
    pub considered: usize,
    /// Fraction of the considered triplets with a positive loss (0 when none was considered).
    pub active_fraction: f32,
    /// Mean `d(a, p)` and `d(a, n)` over the returned triplets (0 when none was returned).
    pub mean_pos_dist: f32,
    pub mean_neg_dist: f32,
    /// Rows that have no other row with their label in the batch (they can only be negatives).
    pub anchors_without_positive: usize,
}

/// Squared L2 distances between all rows of `embeddings` (`[B, D]`): `[B, B]` row-major.
pub fn pairwise_sq_distances(embeddings: &[f32], dim: usize) -> Vec<f32> {
    let b = embeddings.len() / dim.max(1);
    let row = |i: usize| &embeddings[i * dim..(i + 1) * dim];
    let mut distances = vec![0.0f32; b * b];
    for i in 0..b {
        for j in i + 1..b {
            let d = row(i)
                .iter()
                .zip(row(j))
                .map(|(x, y)| (x - y) * (x - y))
                .sum::<f32>();
            distances[i * b + j] = d;
            distances[j * b + i] = d;
        }
    }
    distances
}

/// Mines triplets from a batch (see the module documentation).
pub fn mine_triplets(
    embeddings: &[f32],
    dim: usize,
    labels: &[u32],
    config: MiningConfig,
) -> Result<Mined> {
    let b = labels.len();
    check_embeddings("mine_triplets", embeddings, dim, b)?;
    if !(config.margin.is_finite() && config.margin >= 0.0) {
        return Err(Error::Invalid(format!(
            "mine_triplets: margin {} must be finite and >= 0",
            config.margin
        )));
    }
    let d = pairwise_sq_distances(embeddings, dim);
    let dist = |i: usize, j: usize| d[i * b + j];
    let positives = |a: usize| (0..b).filter(move |&p| p != a && labels[p] == labels[a]);
    let negatives = |a: usize| (0..b).filter(move |&n| labels[n] != labels[a]);
    let loss = |a: usize, p: usize, n: usize| dist(a, p) - dist(a, n) + config.margin;

    let mut triplets = Vec::new();
    let mut considered = 0usize;
    let mut active = 0usize;
    let anchors_without_positive = (0..b).filter(|&a| positives(a).next().is_none()).count();

    for a in 0..b {
        // Strict comparisons keep the first (smallest) index among equal distances.
        let hardest_negative = negatives(a).fold(None, |best: Option<usize>, n| match best {
            Some(m) if dist(a, m) <= dist(a, n) => Some(m),
            _ => Some(n),
        });
        let Some(hardest_negative) = hardest_negative else {
            continue;
        };
        match config.strategy {
            Mining::BatchHard => {
                let hardest_positive =
                    positives(a).fold(None, |best: Option<usize>, p| match best {
                        Some(q) if dist(a, q) >= dist(a, p) => Some(q),
                        _ => Some(p),
                    });
                if let Some(p) = hardest_positive {
                    triplets.push([a, p, hardest_negative]);
                }
            }
            Mining::SemiHard => {
                for p in positives(a) {
                    let dap = dist(a, p);
                    let semi_hard = negatives(a)
                        .filter(|&n| dap < dist(a, n) && dist(a, n) < dap + config.margin)
                        .fold(None, |best: Option<usize>, n| match best {
                            Some(m) if dist(a, m) <= dist(a, n) => Some(m),
                            _ => Some(n),
                        });
                    triplets.push([a, p, semi_hard.unwrap_or(hardest_negative)]);
                }
            }
            Mining::BatchAll => {
                for p in positives(a) {
                    for n in negatives(a) {
                        considered += 1;
                        let is_active = loss(a, p, n) > 0.0;
                        active += is_active as usize;
                        if is_active || !config.active_only {
                            triplets.push([a, p, n]);
                        }
                    }
                }
            }
        }
    }
    if config.strategy != Mining::BatchAll {
        considered = triplets.len();
        active = triplets
            .iter()
            .filter(|&&[a, p, n]| loss(a, p, n) > 0.0)
            .count();
    }

    let count = triplets.len().max(1) as f64;
    let mean = |pick: fn(&[usize; 3]) -> (usize, usize)| {
        let total: f64 = triplets
            .iter()
            .map(|t| {
                let (i, j) = pick(t);
                dist(i, j) as f64
            })
            .sum();
        (total / count) as f32
    };
    let stats = MiningStats {
        considered,
        active_fraction: if considered == 0 {
            0.0
        } else {
            (active as f64 / considered as f64) as f32
        },
        mean_pos_dist: mean(|t| (t[0], t[1])),
        mean_neg_dist: mean(|t| (t[0], t[2])),
        anchors_without_positive,
    };
    Ok(Mined {
        triplets: triplets.into_iter().map(|t| t.map(|i| i as u32)).collect(),
        stats,
    })
}
