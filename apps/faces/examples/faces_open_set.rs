//! Open-set identification on people a model never saw: the first `enrolled` identities of
//! `DIR` (natural order) are enrolled from their first photo each; their other photos must be
//! named, and every photo of the remaining identities (strangers) must be called unknown.
//!
//! ```sh
//! cargo run --release -p wgnn-faces --example faces_open_set -- MODEL DIR [enrolled=10]
//! ```
//!
//! Prints, for the threshold calibrated for the gallery (`faces::open_set`, at several gallery
//! false-accept rates) and for the model's verification threshold: the fraction of enrolled
//! people's probes named correctly and the fraction of strangers' photos rejected.

use std::path::PathBuf;

use wgnn::{Error, Gpu, Result};
use wgnn_faces::commands::{embed_files, Quiet};
use wgnn_faces::dataset::ImageFolder;
use wgnn_faces::gallery::Gallery;
use wgnn_faces::model::SiameseModel;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(model), Some(dir)) = (args.first(), args.get(1)) else {
        return Err(Error::Invalid(
            "usage: faces_open_set MODEL DIR [enrolled=10]".into(),
        ));
    };
    let enrolled: usize = match args.get(2).and_then(|a| a.strip_prefix("enrolled=")) {
        Some(n) => n
            .parse()
            .map_err(|_| Error::Invalid(format!("enrolled={n}")))?,
        None => 10,
    };
    let gpu = Gpu::new()?;
    let model = SiameseModel::load(&gpu, &PathBuf::from(model))?;
    let folder = ImageFolder::open(dir)?;
    if folder.identities.len() <= enrolled {
        return Err(Error::Invalid(format!(
            "{dir} has {} identities: need more than the {enrolled} enrolled",
            folder.identities.len()
        )));
    }
    let (paths, labels) = folder.labelled_paths();
    let embeddings = embed_files(&gpu, &model, &paths, &mut Quiet)?;
    let dim = model.embedding_dim();
    let mut gallery = Gallery::new(model.fingerprint.clone(), dim);
    let mut enrolled_rows = Vec::new();
    for (id, identity) in folder.identities.iter().take(enrolled).enumerate() {
        let row = labels
            .iter()
            .position(|&l| l as usize == id)
            .expect("identities have images");
        gallery.enroll(&identity.name, &embeddings[row * dim..(row + 1) * dim])?;
        enrolled_rows.push(row);
    }
    let mut rows = Vec::new();
    for (t_name, threshold) in thresholds(&model, enrolled) {
        let (mut named, mut probes, mut rejected, mut strangers) = (0, 0, 0, 0);
        for (row, &label) in labels.iter().enumerate() {
            if enrolled_rows.contains(&row) {
                continue;
            }
            let id = gallery.identify(&embeddings[row * dim..(row + 1) * dim], threshold)?;
            if (label as usize) < enrolled {
                probes += 1;
                named +=
                    (id.name.as_deref() == Some(&folder.identities[label as usize].name)) as usize;
            } else {
                strangers += 1;
                rejected += id.name.is_none() as usize;
            }
        }
        rows.push(format!(
            "{t_name:<28} threshold {threshold:.4}  named {:.3} ({named}/{probes})  strangers rejected {:.3} ({rejected}/{strangers})",
            named as f64 / probes as f64,
            rejected as f64 / strangers as f64
        ));
    }
    println!(
        "{enrolled} enrolled from {dir}, {} strangers",
        folder.identities.len() - enrolled
    );
    for row in rows {
        println!("{row}");
    }
    Ok(())
}

/// The thresholds compared: calibrated at several rates, and the verification threshold.
fn thresholds(model: &SiameseModel, gallery: usize) -> Vec<(String, f32)> {
    let mut out: Vec<(String, f32)> = [0.01, 0.02, 0.05, 0.1]
        .iter()
        .map(|&rate| {
            (
                format!("calibrated, rate {rate}"),
                model.identification_threshold(gallery, rate),
            )
        })
        .collect();
    out.push(("verification (one pair)".into(), model.threshold));
    for factor in [0.9, 0.8, 0.7] {
        out.push((format!("{factor} x verification"), factor * model.threshold));
    }
    out
}
