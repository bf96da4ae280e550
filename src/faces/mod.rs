//! One-shot face recognition, the CPU side: image folders, P x K batch sampling, online triplet
//! mining, the evaluation metrics, galleries of enrolled people and ROC plots. The network that
//! computes embeddings lives elsewhere; everything here takes embeddings as `[N, D]` f32 rows.
//!
//! - [`dataset`]: `DIR/<identity>/<image>` folders in natural order, loaded to `[N, C, H, W]`.
//! - [`sampler`]: deterministic P identities x K images batches.
//! - [`mining`]: batch-hard, semi-hard and batch-all triplets inside a batch.
//! - [`metrics`]: one-shot identification, verification accuracy, AUC, EER, VAL.
//! - [`gallery`]: enroll / verify / identify against a gallery file.
//! - [`roc_plot`]: the ROC curve as a PNG.
//! - [`atomic_file`]: writes that never leave a half-written file.

pub mod atomic_file;
pub mod augment;
pub mod commands;
pub mod dataset;
pub mod embed;
pub mod gallery;
pub mod metrics;
pub mod mining;
pub mod model;
pub mod network;
pub mod roc_plot;
pub mod sampler;
pub mod train;
pub mod verifier;
pub mod whitening;

use crate::{Error, Result};

/// Checks that `embeddings` is `[rows, dim]` and finite.
pub(crate) fn check_embeddings(
    op: &str,
    embeddings: &[f32],
    dim: usize,
    rows: usize,
) -> Result<()> {
    if dim == 0 || embeddings.len() != rows * dim {
        return Err(Error::shape(
            op,
            format!(
                "embeddings have {} values, expected {rows} rows x dim {dim}",
                embeddings.len()
            ),
        ));
    }
    if embeddings.iter().any(|x| !x.is_finite()) {
        return Err(Error::Invalid(format!(
            "{op}: embeddings contain NaN or infinity"
        )));
    }
    Ok(())
}
