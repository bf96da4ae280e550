//! Where a face model's one-shot errors fall: which people, which photos, taken for whom.
//!
//! ```sh
//! cargo run --release -p wgnn-faces --example faces_diagnose -- MODEL DIR
//! ```
//!
//! Embeds every image of `DIR/<identity>/<image>` and prints, per identity: its wrong one-shot
//! decisions as probe and as gallery image (the protocol of `train_siamese eval`: in round r
//! the r-th image of every identity is the gallery), the mean and largest squared distance
//! between its own images, the distance to the nearest image of anyone else, and each image's
//! errors as probe; then which identities are taken for which.

use std::collections::BTreeMap;

use wgnn::{Error, Gpu, Result};
use wgnn_faces::commands::{embed_images, Quiet};
use wgnn_faces::dataset::ImageFolder;
use wgnn_faces::metrics::squared_l2;
use wgnn_faces::model::SiameseModel;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, data] = args.as_slice() else {
        return Err(Error::Invalid("usage: faces_diagnose MODEL DIR".into()));
    };
    let gpu = Gpu::new()?;
    let model = SiameseModel::load(&gpu, model.as_ref())?;
    let folder = ImageFolder::open(data)?;
    let images = folder.load(model.network.preprocess())?;
    let embeddings = embed_images(&gpu, &model, &images.data, &mut Quiet)?;
    let dim = model.embedding_dim();
    let row = |i: usize| &embeddings[i * dim..(i + 1) * dim];
    let labels = &images.labels;
    let name = |label: u32| folder.identities[label as usize].name.as_str();
    let mut images_of = BTreeMap::<u32, Vec<usize>>::new();
    for (i, &label) in labels.iter().enumerate() {
        images_of.entry(label).or_default().push(i);
    }
    let rounds = images_of.values().map(Vec::len).max().unwrap_or(0);
    let mut as_probe = vec![0usize; labels.len()];
    let mut as_gallery = vec![0usize; labels.len()];
    let mut taken_for = BTreeMap::<(u32, u32), usize>::new();
    for r in 0..rounds {
        let taking_part: Vec<&Vec<usize>> = images_of.values().filter(|v| v.len() > r).collect();
        let gallery: Vec<usize> = taking_part.iter().map(|images| images[r]).collect();
        for (right, own) in taking_part.iter().enumerate() {
            for &probe in own.iter().filter(|&&i| i != own[r]) {
                let distance = |g: usize| squared_l2(row(probe), row(gallery[g]));
                let nearest = (0..gallery.len())
                    .min_by(|&a, &b| distance(a).total_cmp(&distance(b)))
                    .expect("a gallery of at least one image");
                if nearest != right {
                    as_probe[probe] += 1;
                    as_gallery[own[r]] += 1;
                    *taken_for
                        .entry((labels[probe], labels[gallery[nearest]]))
                        .or_default() += 1;
                }
            }
        }
    }
    println!(
        "identity  probe_errors  gallery_errors  within_mean  within_max  nearest_other  per_image"
    );
    for (&label, own) in &images_of {
        let mut within = Vec::new();
        for (a, &i) in own.iter().enumerate() {
            for &j in &own[a + 1..] {
                within.push(squared_l2(row(i), row(j)));
            }
        }
        let nearest_other = own
            .iter()
            .flat_map(|&i| {
                (0..labels.len())
                    .filter(move |&j| labels[j] != label)
                    .map(move |j| squared_l2(row(i), row(j)))
            })
            .fold(f64::INFINITY, f64::min);
        let mean = within.iter().sum::<f64>() / within.len().max(1) as f64;
        let max = within.iter().copied().fold(0.0, f64::max);
        println!(
            "{:<9} {:>12}  {:>14}  {mean:>11.3}  {max:>10.3}  {nearest_other:>13.3}  {:?}",
            name(label),
            own.iter().map(|&i| as_probe[i]).sum::<usize>(),
            own.iter().map(|&i| as_gallery[i]).sum::<usize>(),
            own.iter().map(|&i| as_probe[i]).collect::<Vec<_>>()
        );
    }
    let mut confusions: Vec<_> = taken_for.into_iter().collect();
    confusions.sort_by_key(|&(_, count)| std::cmp::Reverse(count));
    for ((probe, taken), count) in confusions {
        println!("{} taken for {}: {count}", name(probe), name(taken));
    }
    Ok(())
}
