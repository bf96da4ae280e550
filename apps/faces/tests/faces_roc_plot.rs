//! ROC plots: a decodable PNG of the requested size, drawn deterministically and atomically.

mod faces_support;

use faces_support::{random_unit_rows, TempDir};
use wgnn::rng::Rng;
use wgnn_faces::metrics::Pairs;
use wgnn_faces::roc_plot::{render_roc, write_roc_png};

/// Pairs of 8 identities x 4 noisy images: overlapping but better than chance.
fn noisy_pairs() -> Pairs {
    let mut rng = Rng::new(2);
    let dim = 6;
    let centres = random_unit_rows(&mut rng, 8, dim);
    let labels: Vec<u32> = (0..8).flat_map(|id| [id; 4]).collect();
    let e: Vec<f32> = labels
        .iter()
        .flat_map(|&l| (0..dim).map(move |k| l as usize * dim + k))
        .map(|at| centres[at] + 0.4 * rng.normal() as f32)
        .collect();
    Pairs::all(&e, dim, &labels).unwrap()
}

#[test]
fn png_decodes_with_the_requested_size() {
    let dir = TempDir::new("roc");
    let pairs = noisy_pairs();
    for (width, height) in [(640, 480), (333, 250), (320, 240)] {
        let path = dir.path().join(format!("roc-{width}x{height}.png"));
        write_roc_png(&path, &pairs, width, height).unwrap();
        let image = image::open(&path).unwrap().to_rgb8();
        assert_eq!(image.dimensions(), (width, height));
        // The curve (blue), the EER point (red) and the black text and frame are all there.
        let count = |f: &dyn Fn(&image::Rgb<u8>) -> bool| image.pixels().filter(|p| f(p)).count();
        assert!(
            count(&|p| p[2] > 150 && p[0] < 80) > 20,
            "curve at {width}x{height}"
        );
        assert!(
            count(&|p| p[0] > 150 && p[1] < 80) > 5,
            "EER point at {width}x{height}"
        );
        assert!(count(&|p| p[0] < 30 && p[1] < 30 && p[2] < 30) > 200, "ink");
    }
    let mut names = dir.entries();
    names.sort();
    assert_eq!(names.len(), 3, "no temporary files left: {names:?}");
}

#[test]
fn rendering_is_deterministic() {
    let pairs = noisy_pairs();
    let a = render_roc(&pairs, 400, 300).unwrap();
    let b = render_roc(&pairs, 400, 300).unwrap();
    assert_eq!(a.as_raw(), b.as_raw());
}

#[test]
fn bad_sizes_and_paths_are_errors() {
    let pairs = noisy_pairs();
    assert!(render_roc(&pairs, 319, 480).is_err());
    assert!(render_roc(&pairs, 640, 239).is_err());
    assert!(render_roc(&pairs, 9000, 480).is_err());
    let dir = TempDir::new("roc-bad");
    let err = write_roc_png(&dir.path().join("missing/roc.png"), &pairs, 640, 480)
        .unwrap_err()
        .to_string();
    assert!(err.contains("roc.png"), "{err}");
    assert!(dir.entries().is_empty());
}
