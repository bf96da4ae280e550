//! The face model and gallery loaders on files cut short, with bits flipped and with wrong
//! headers: each load ends in a clean error naming the file (or, for a flip that leaves a valid
//! file, the loaded model or gallery), never in a panic. A model whose threshold or weights are
//! NaN is refused, naming what is wrong.
use wgnn_reference::testing as common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use common::gpu;
use wgnn::rng::Rng;
use wgnn::Error;
use wgnn_faces::gallery::Gallery;
use wgnn_faces::model::SiameseModel;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn scratch() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("faces_hostile_files");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `load` on `bytes` written at `path`: Ok, or an error naming `path`; a panic fails.
fn cleanly<T>(
    path: &Path,
    bytes: &[u8],
    load: &dyn Fn(&Path) -> wgnn::Result<T>,
) -> Result<T, String> {
    std::fs::write(path, bytes).unwrap();
    match catch_unwind(AssertUnwindSafe(|| load(path))) {
        Err(_) => panic!(
            "loading {} ({} bytes) panicked",
            path.display(),
            bytes.len()
        ),
        Ok(Ok(value)) => Ok(value),
        Ok(Err(Error::File {
            path: named,
            message,
        })) => {
            assert_eq!(named, path, "{message}");
            Err(message)
        }
        Ok(Err(other)) => panic!("{}: not a file error: {other}", path.display()),
    }
}

fn mutations(bytes: &[u8], rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for _ in 0..30 {
        out.push(bytes[..rng.below(bytes.len())].to_vec());
    }
    for _ in 0..40 {
        let mut flipped = bytes.to_vec();
        let at = rng.below(flipped.len());
        flipped[at] ^= 1 << rng.below(8);
        out.push(flipped);
    }
    for header in [&b"\x89PNG\r\n\x1a\n"[..], b"{}", &[0xff; 8]] {
        let mut wrong = header.to_vec();
        wrong.extend_from_slice(&bytes[header.len().min(bytes.len())..]);
        out.push(wrong);
    }
    out
}

#[test]
fn models_cut_flipped_or_mislabelled_end_in_clean_errors() {
    let gpu = gpu();
    let path = scratch().join("model.safetensors");
    let bytes = std::fs::read(fixture("face_resnet_model.safetensors")).unwrap();
    let load = |p: &Path| SiameseModel::load(gpu, p);
    assert!(cleanly(&path, &bytes, &load).is_ok());
    let mut rng = Rng::new(6);
    for (i, mutated) in mutations(&bytes, &mut rng).into_iter().enumerate() {
        let result = cleanly(&path, &mutated, &load);
        if i < 30 {
            assert!(
                result.is_err(),
                "a model cut to {} bytes loaded",
                mutated.len()
            );
        }
    }
}

#[test]
fn galleries_cut_flipped_or_mislabelled_end_in_clean_errors() {
    let gpu = gpu();
    let model = SiameseModel::load(gpu, &fixture("face_resnet_model.safetensors")).unwrap();
    let path = scratch().join("gallery.json");
    let bytes = std::fs::read(fixture("face_resnet_gallery.json")).unwrap();
    let load = |p: &Path| Gallery::load(p, &model.fingerprint);
    assert!(cleanly(&path, &bytes, &load).is_ok());
    let mut rng = Rng::new(8);
    for mutated in mutations(&bytes, &mut rng) {
        if let Ok(gallery) = cleanly(&path, &mutated, &load) {
            assert!(!gallery.is_empty());
        }
    }
}

#[test]
fn a_model_with_a_nan_threshold_or_weights_is_refused_by_name() {
    let gpu = gpu();
    let dir = scratch();
    let model = SiameseModel::load(gpu, &fixture("face_resnet_model.safetensors")).unwrap();
    let mut poisoned = model.clone();
    poisoned.threshold = f32::NAN;
    let path = dir.join("nan_threshold.safetensors");
    poisoned.save(gpu, &path).unwrap();
    let err = SiameseModel::load(gpu, &path).unwrap_err().to_string();
    assert!(
        err.contains("nan_threshold.safetensors") && err.contains("threshold"),
        "{err}"
    );

    // A weight made NaN in the file's data: the loader names the tensor.
    let bytes = std::fs::read(fixture("face_resnet_model.safetensors")).unwrap();
    let header_len = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut nan = bytes.clone();
    nan[header_len..header_len + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let path = dir.join("nan_weight.safetensors");
    std::fs::write(&path, &nan).unwrap();
    let err = SiameseModel::load(gpu, &path).unwrap_err().to_string();
    assert!(
        err.contains("nan_weight.safetensors") && err.contains("NaN"),
        "{err}"
    );
}

#[test]
fn checkpoints_cut_flipped_or_mislabelled_end_in_clean_errors() {
    use wgnn_faces::augment::Augment;
    use wgnn_faces::train::{HeadInit, TrainConfig, Trainer, TrainingSet};
    let gpu = gpu();
    let mut rng = Rng::new(12);
    let (identities, per_identity, dim) = (6, 4, 128);
    let n = identities * per_identity;
    let set = TrainingSet {
        descriptors: rng.vec_f32(n * dim, -1.0, 1.0),
        descriptor_len: dim,
        variants: 1,
        labels: (0..n as u32).map(|i| i / per_identity as u32).collect(),
        fingerprint: "synthetic".into(),
    };
    let config = TrainConfig {
        init: HeadInit::Random,
        epochs: 1,
        identities_per_batch: 3,
        images_per_identity: 2,
        augment: Augment::NONE,
        ..TrainConfig::default()
    };
    let path = scratch().join("run.checkpoint.safetensors");
    {
        let mut trainer = Trainer::new(gpu, config.clone(), &set).unwrap();
        trainer.run_epoch(&mut |_| {}).unwrap();
        trainer.save_checkpoint(&path).unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    let load = |p: &Path| Trainer::resume(gpu, config.clone(), &set, p).map(|_| ());
    assert!(cleanly(&path, &bytes, &load).is_ok());
    for (i, mutated) in mutations(&bytes, &mut Rng::new(13)).into_iter().enumerate() {
        let result = cleanly(&path, &mutated, &load);
        if i < 30 {
            assert!(
                result.is_err(),
                "a checkpoint cut to {} bytes resumed",
                mutated.len()
            );
        }
    }
}
