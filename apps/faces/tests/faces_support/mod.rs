//! Helpers shared by the `faces_*` test files.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use wgnn::rng::Rng;

/// The ORL faces (40 identities x 10 images, 92x112 PGM), beside the repository.
pub const ORL: &str = concat!(env!("WGNN_SHARED_DATA"), "/orl_faces");

/// A folder under the system temp dir, unique per process and call, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "wgnn-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `bytes` to `relative` (creating folders on the way) and returns the full path.
    pub fn write(&self, relative: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Names of the entries of the folder, sorted.
    pub fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A binary PGM (P5) of `width x height` with the given grey values.
pub fn pgm(width: u32, height: u32, values: &[u8]) -> Vec<u8> {
    assert_eq!(values.len(), (width * height) as usize);
    let mut bytes = format!("P5\n{width} {height}\n255\n").into_bytes();
    bytes.extend_from_slice(values);
    bytes
}

/// `n` random rows of `dim` values, each L2-normalised.
pub fn random_unit_rows(rng: &mut Rng, n: usize, dim: usize) -> Vec<f32> {
    let mut rows = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let row: Vec<f32> = (0..dim).map(|_| rng.normal() as f32).collect();
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        rows.extend(row.iter().map(|x| x / norm));
    }
    rows
}

/// Copies identities `s{first}` .. `s{first + count - 1}` of ORL, each with its first `images`
/// images (natural order), into `dir/<relative>` and returns that folder.
pub fn orl_subset(
    dir: &TempDir,
    relative: &str,
    first: usize,
    count: usize,
    images: usize,
) -> PathBuf {
    let root = dir.path().join(relative);
    for s in first..first + count {
        let target = root.join(format!("s{s}"));
        std::fs::create_dir_all(&target).unwrap();
        for i in 1..=images {
            let source = Path::new(ORL).join(format!("s{s}/{i}.pgm"));
            std::fs::copy(&source, target.join(format!("{i}.pgm"))).unwrap();
        }
    }
    root
}

/// A small, fast network for tests: the face ResNet on photos at ORL's native 92x112 (a
/// smaller image pyramid for the detector than the default 184x224), 32 dimensions, the chip
/// and its mirror image.
pub fn tiny_network() -> wgnn_faces::network::NetworkSpec {
    use wgnn_faces::network::{HeadSpec, NetworkSpec, TrunkSpec};
    NetworkSpec {
        trunk: TrunkSpec {
            width: 92,
            height: 112,
        },
        head: HeadSpec { embedding_dim: 32 },
        mirror: true,
    }
}

/// Training settings for tests: the tiny network, 3 x 3 batches, a few epochs, no augmentation.
pub fn tiny_config(epochs: usize) -> wgnn_faces::train::TrainConfig {
    wgnn_faces::train::TrainConfig {
        network: tiny_network(),
        epochs,
        identities_per_batch: 3,
        images_per_identity: 3,
        augment: wgnn_faces::augment::Augment::NONE,
        ..Default::default()
    }
}

/// ORL photos (paths relative to the database, e.g. `s6/4.pgm`) at `spec`'s input size, RGB,
/// one after another.
pub fn orl_photos(spec: &wgnn_faces::network::NetworkSpec, files: &[&str]) -> Vec<f32> {
    let preprocess = wgnn_faces::dataset::Preprocess {
        width: spec.trunk.width as u32,
        height: spec.trunk.height as u32,
        channels: 3,
    };
    files
        .iter()
        .flat_map(|f| wgnn_faces::dataset::load_image(&Path::new(ORL).join(f), preprocess).unwrap())
        .collect()
}

/// Raw pixels (greyscale, L2-normalised) as embeddings of a folder's photos: the baseline a
/// trained model must beat.
pub fn raw_pixel_metrics(folder: &Path) -> wgnn_faces::metrics::Metrics {
    let images = wgnn_faces::dataset::ImageFolder::open(folder)
        .unwrap()
        .load(wgnn_faces::dataset::Preprocess {
            width: 92,
            height: 112,
            channels: 1,
        })
        .unwrap();
    let mut rows = Vec::new();
    for i in 0..images.len() {
        let x = images.image(i);
        let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
        rows.extend(x.iter().map(|v| v / norm));
    }
    wgnn_faces::metrics::evaluate(&rows, images.image_len(), &images.labels).unwrap()
}
