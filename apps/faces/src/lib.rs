//! One-shot face recognition with a Siamese network trained by the triplet loss.
//!
//! The network and its training:
//! - [`cnn`]: a convolutional network trained from random weights (Conv-4 and its family).
//! - [`cnn_train`]: its triplet training, end to end on images.
//! - [`network`]: dlib's face ResNet (frozen) on the face chip aligned by dlib's face detector
//!   and five landmarks (`wgnn_models::face_detection`, `wgnn_models::face_landmarks`), the
//!   descriptor and the trained head, as graphs.
//! - [`embed`]: compiled plans from photos to the trunk's outputs, descriptors and embeddings.
//! - [`whitening`]: the head's closed-form starting point (learned whitening).
//! - [`train`]: triplet training on precomputed descriptors, checkpoints.
//! - [`augment`]: the fixed augmented variants of training images.
//! - [`verifier`]: a logistic unit on |f(x1) - f(x2)|.
//! - [`model`]: the model file.
//! - [`commands`]: what each `train_siamese` subcommand does.
//!
//! The CPU side, on embeddings as `[N, D]` f32 rows:
//! - [`dataset`]: `DIR/<identity>/<image>` folders in natural order, loaded to `[N, C, H, W]`.
//! - [`sampler`]: deterministic P identities x K images batches.
//! - [`mining`]: batch-hard, semi-hard and batch-all triplets inside a batch.
//! - [`metrics`]: one-shot identification, verification accuracy, AUC, EER, VAL.
//! - [`gallery`]: enroll / verify / identify against a gallery file.
//! - [`open_set`]: the identification threshold for a gallery of K people.
//! - [`roc_plot`]: the ROC curve as a PNG.

pub mod augment;
pub mod cnn;
pub mod cnn_train;
pub mod commands;
pub mod dataset;
pub mod distort;
pub mod embed;
pub mod gallery;
pub mod metrics;
pub mod mining;
pub mod model;
pub mod network;
pub mod open_set;
pub mod roc_plot;
pub mod sampler;
pub mod train;
pub mod verifier;
pub mod whitening;

use wgnn::{Error, Result};

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
