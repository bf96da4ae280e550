//! P x K batch sampling for triplet training: each batch holds P distinct identities with K images
//! each, so that every anchor has positives and negatives inside its batch.
//!
//! An epoch is one pass over the identities in a shuffled order, cut into batches of P; the last
//! batch, when short, is topped up with identities drawn at random from those not already in it,
//! so every batch has exactly `P * K` rows (the compiled training plan has fixed shapes).
//! Per identity, K images are drawn without replacement; an identity with fewer than K images
//! gives all of its images in shuffled order, then repeats drawn at random. Identities with a
//! single image cannot form positive pairs and are left out (the dataset warns about them).
//!
//! The batches of epoch `e` depend only on `(seed, e)`, not on the epochs before it, so training
//! resumed from a checkpoint sees the same batches as an uninterrupted run.

use wgnn::rng::Rng;
use wgnn::{Error, Result};

/// One batch: `identities_per_batch * images_per_identity` rows, identity-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Image indices (into the label list the sampler was built from).
    pub images: Vec<u32>,
    /// The label of each row.
    pub labels: Vec<u32>,
}

/// Deterministic P x K batches over a labelled image list.
#[derive(Clone, Debug)]
pub struct BatchSampler {
    /// Image indices per usable identity (those with at least two images), in label order.
    identities: Vec<(u32, Vec<u32>)>,
    identities_per_batch: usize,
    images_per_identity: usize,
    seed: u64,
}

impl BatchSampler {
    /// `labels[i]` is the identity of image `i`. Needs at least `identities_per_batch` identities
    /// with two or more images, `identities_per_batch >= 2` and `images_per_identity >= 2`.
    pub fn new(
        labels: &[u32],
        identities_per_batch: usize,
        images_per_identity: usize,
        seed: u64,
    ) -> Result<Self> {
        if identities_per_batch < 2 || images_per_identity < 2 {
            return Err(Error::Invalid(format!(
                "a batch of {identities_per_batch} identities x {images_per_identity} images has \
                 no triplets: both must be at least 2"
            )));
        }
        let mut by_label = std::collections::BTreeMap::<u32, Vec<u32>>::new();
        for (i, &label) in labels.iter().enumerate() {
            by_label.entry(label).or_default().push(i as u32);
        }
        let identities: Vec<(u32, Vec<u32>)> = by_label
            .into_iter()
            .filter(|(_, images)| images.len() >= 2)
            .collect();
        if identities.len() < identities_per_batch {
            return Err(Error::Invalid(format!(
                "{} identities with two or more images, fewer than the {identities_per_batch} \
                 identities per batch: lower --identities-per-batch or add people",
                identities.len()
            )));
        }
        Ok(Self {
            identities,
            identities_per_batch,
            images_per_identity,
            seed,
        })
    }

    /// Rows per batch, `P * K`.
    pub fn batch_size(&self) -> usize {
        self.identities_per_batch * self.images_per_identity
    }

    /// Batches per epoch: `ceil(usable identities / P)`.
    pub fn batches_per_epoch(&self) -> usize {
        self.identities.len().div_ceil(self.identities_per_batch)
    }

    /// Number of identities the sampler draws from (those with at least two images).
    pub fn usable_identities(&self) -> usize {
        self.identities.len()
    }

    /// The batches of epoch `epoch` (0-based).
    pub fn epoch(&self, epoch: u64) -> Vec<Batch> {
        let mut rng =
            Rng::new(self.seed ^ epoch.wrapping_add(1).wrapping_mul(0xD1B5_4A32_D192_ED03));
        let mut order: Vec<usize> = (0..self.identities.len()).collect();
        rng.shuffle(&mut order);
        order
            .chunks(self.identities_per_batch)
            .map(|chunk| {
                let mut chosen = chunk.to_vec();
                while chosen.len() < self.identities_per_batch {
                    let extra = rng.below(self.identities.len());
                    if !chosen.contains(&extra) {
                        chosen.push(extra);
                    }
                }
                self.batch(&chosen, &mut rng)
            })
            .collect()
    }

    fn batch(&self, identities: &[usize], rng: &mut Rng) -> Batch {
        let k = self.images_per_identity;
        let mut batch = Batch {
            images: Vec::with_capacity(identities.len() * k),
            labels: Vec::with_capacity(identities.len() * k),
        };
        for &identity in identities {
            let (label, images) = &self.identities[identity];
            let mut pool = images.clone();
            rng.shuffle(&mut pool);
            let mut picked: Vec<u32> = pool.iter().copied().take(k).collect();
            while picked.len() < k {
                picked.push(images[rng.below(images.len())]);
            }
            batch.images.extend(picked);
            batch.labels.extend(std::iter::repeat_n(*label, k));
        }
        batch
    }
}
