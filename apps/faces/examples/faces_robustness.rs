//! How a trained face model holds up when the probe photo comes from another camera, light or
//! distance than the enrolled one: the gallery is the clean photos, the probes are changed.
//!
//! ```sh
//! cargo run --release -p wgnn-faces --example faces_robustness -- MODEL DIR [seed=7]
//! ```
//!
//! For each kind of change, one-shot identification as `eval` defines it (for each r, the r-th
//! photo of every person is the gallery; every other photo is a probe), except that each probe
//! is the changed photo while the gallery stays clean, and the EER over all clean-against-
//! changed pairs of different photos. Kinds (on the photo resized to the model's input):
//! - `clean`: the photos as they are;
//! - `light`: gamma 0.67-1.5, a lighting gradient of up to +-30 %, gain 0.7-1.3 and offset
//!   +-0.1, sensor noise (the training augmentation's photometric family, drawn anew);
//! - `lowres`: a camera of a third of the resolution (3x3 block averages, blown up again);
//! - `closer` / `further`: the face 15-35 % larger / 13-20 % smaller about the centre;
//! - `shifted`: moved by 6-10 % of the width and height;
//! - `tilted`: turned in the image plane by 8-15 degrees.

use std::path::PathBuf;

use wgnn::rng::Rng;
use wgnn::{Gpu, Result};
use wgnn_faces::augment::{rotated, shifted, zoomed, Augment};
use wgnn_faces::commands::{embed_images, Quiet};
use wgnn_faces::dataset::ImageFolder;
use wgnn_faces::metrics::{self, squared_l2, Pairs};
use wgnn_faces::model::SiameseModel;

const KINDS: [&str; 7] = [
    "clean", "light", "lowres", "closer", "further", "shifted", "tilted",
];

/// `image` ([3, h, w]) as a camera of a third of the resolution would take it.
fn low_resolution(image: &[f32], width: usize, height: usize) -> Vec<f32> {
    let mut out = image.to_vec();
    for plane in out.chunks_exact_mut(width * height) {
        let source = plane.to_vec();
        let source = &source;
        for by in (0..height).step_by(3) {
            for bx in (0..width).step_by(3) {
                let (ys, xs) = (by..(by + 3).min(height), bx..(bx + 3).min(width));
                let cells = (ys.len() * xs.len()) as f32;
                let mean = ys
                    .clone()
                    .flat_map(|y| xs.clone().map(move |x| source[y * width + x]))
                    .sum::<f32>()
                    / cells;
                for y in ys {
                    plane[y * width + bx..y * width + xs.end].fill(mean);
                }
            }
        }
    }
    out
}

fn changed(kind: &str, image: &[f32], w: usize, h: usize, index: usize, rng: &mut Rng) -> Vec<f32> {
    let sign = |rng: &mut Rng| if rng.uniform() < 0.5 { -1.0 } else { 1.0 };
    match kind {
        "clean" => image.to_vec(),
        "light" => Augment::parse("brightness,gamma,light,noise", 1)
            .unwrap()
            .variant(image, w, h, 1, index, rng.next_u64()),
        "lowres" => low_resolution(image, w, h),
        "closer" => zoomed(image, w, h, rng.range(1.15, 1.35)),
        "further" => zoomed(image, w, h, 1.0 / rng.range(1.15, 1.25)),
        "shifted" => {
            let dx = sign(rng) * rng.range(0.06, 0.10) * w as f64;
            let dy = sign(rng) * rng.range(0.06, 0.10) * h as f64;
            shifted(image, w, h, dx.round() as isize, dy.round() as isize)
        }
        "tilted" => rotated(image, w, h, sign(rng) * rng.range(8.0, 15.0)),
        other => unreachable!("kind {other}"),
    }
}

/// One-shot accuracy with clean galleries and changed probes, and the EER (as `eval` computes
/// it) over clean-changed pairs of different photos.
fn mixed_metrics(clean: &[f32], probes: &[f32], dim: usize, labels: &[u32]) -> Result<(f64, f64)> {
    let n = labels.len();
    let distance =
        |i: usize, j: usize| squared_l2(&clean[i * dim..][..dim], &probes[j * dim..][..dim]);
    let mut people = labels.to_vec();
    people.dedup();
    let photos: Vec<Vec<usize>> = people
        .iter()
        .map(|&p| (0..n).filter(|&i| labels[i] == p).collect())
        .collect();
    let rounds = photos.iter().map(Vec::len).min().unwrap_or(0);
    let (mut right, mut total) = (0usize, 0usize);
    for r in 0..rounds {
        let gallery: Vec<usize> = photos.iter().map(|p| p[r]).collect();
        for j in (0..n).filter(|j| !gallery.contains(j)) {
            let nearest = gallery
                .iter()
                .min_by(|&&a, &&b| distance(a, j).total_cmp(&distance(b, j)))
                .unwrap();
            right += (labels[*nearest] == labels[j]) as usize;
            total += 1;
        }
    }
    let (mut distances, mut same) = (Vec::new(), Vec::new());
    for i in 0..n {
        for j in (0..n).filter(|&j| j != i) {
            distances.push(distance(i, j));
            same.push(labels[i] == labels[j]);
        }
    }
    let eer = Pairs::new(distances, same)?.eer();
    Ok((right as f64 / total as f64, eer))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (model_path, data) = match &args[..] {
        [model, data, ..] => (PathBuf::from(model), PathBuf::from(data)),
        _ => {
            eprintln!("usage: faces_robustness MODEL DIR [seed=N]");
            std::process::exit(2);
        }
    };
    let seed: u64 = args
        .iter()
        .find_map(|a| a.strip_prefix("seed="))
        .map_or(7, |s| s.parse().expect("seed=N"));
    let gpu = Gpu::new()?;
    let model = SiameseModel::load(&gpu, &model_path)?;
    let preprocess = model.network.preprocess();
    let images = ImageFolder::open(&data)?.load(preprocess)?;
    let spec = model.network.face("faces_robustness")?;
    let (w, h) = (spec.trunk.width, spec.trunk.height);
    let dim = model.embedding_dim();
    let clean = embed_images(&gpu, &model, &images.data, &mut Quiet)?;
    let overall = metrics::evaluate(&clean, dim, &images.labels)?;
    println!(
        "{}: {} people, {} photos; eval's one-shot {:.4}, EER {:.4}",
        model_path.display(),
        overall.identities,
        images.len(),
        overall.one_shot_accuracy,
        overall.eer
    );
    println!("kind     one-shot  EER   (clean gallery, changed probes)");
    for kind in KINDS {
        let mut rng = Rng::new(seed);
        let probes: Vec<f32> = (0..images.len())
            .flat_map(|i| changed(kind, images.image(i), w, h, i, &mut rng))
            .collect();
        let embedded = embed_images(&gpu, &model, &probes, &mut Quiet)?;
        let (one_shot, eer) = mixed_metrics(&clean, &embedded, dim, &images.labels)?;
        println!("{kind:<8} {one_shot:.4}    {eer:.4}");
    }
    Ok(())
}
