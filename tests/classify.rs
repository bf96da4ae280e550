//! The embedded SqueezeNet classifies the known pictures as a float64 reference does
//! (assets/SOURCES.md gives the reference probabilities).
mod common;

use common::gpu;
use wgnn::classify::Classifier;
use wgnn::imaging::io::load;
use wgnn::models::Architecture;

fn asset(name: &str) -> String {
    format!("{}/assets/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn known_pictures_get_known_classes_and_probabilities() {
    let gpu = gpu();
    let weights = Architecture::SqueezeNet.load_weights(gpu, None).unwrap();
    let mut classifier = Classifier::new(gpu, &weights).unwrap();

    let cat = classifier
        .top_k(gpu, &load(asset("chelsea.png")).unwrap(), 5)
        .unwrap();
    assert_eq!(cat[0].class, "Egyptian cat", "{cat:?}");
    assert!((cat[0].probability - 0.514).abs() < 1e-3, "{cat:?}");
    assert_eq!(cat[1].class, "tiger cat", "{cat:?}");
    assert!((cat[1].probability - 0.310).abs() < 1e-3, "{cat:?}");
    assert!((cat[2].probability - 0.159).abs() < 1e-3, "{cat:?}");

    let coffee = classifier
        .top_k(gpu, &load(asset("coffee.png")).unwrap(), 5)
        .unwrap();
    assert_eq!(coffee[0].class, "espresso", "{coffee:?}");
    assert!((coffee[0].probability - 0.998).abs() < 1e-3, "{coffee:?}");
    let total: f64 = coffee.iter().map(|p| p.probability).sum();
    assert!(total <= 1.0 + 1e-9);
}
