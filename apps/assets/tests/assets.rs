//! The embedded files: the class names, the SqueezeNet weights and the default pictures.

use wgnn_assets as assets;

#[test]
fn there_are_1000_class_names() {
    let classes = assets::imagenet_classes();
    assert_eq!(classes.len(), 1000);
    assert!(classes
        .iter()
        .all(|c| !c.trim().is_empty() && c.trim() == *c));
    assert_eq!(classes[0], "tench, Tinca tinca");
    // The known answers of SOURCES.md.
    assert_eq!(classes[281], "tabby, tabby cat");
    assert_eq!(classes[282], "tiger cat");
    assert_eq!(classes[285], "Egyptian cat");
    assert_eq!(classes[967], "espresso");
}

#[test]
fn embedded_weights_are_squeezenet_1_1() {
    let bytes = assets::SQUEEZENET1_1_SAFETENSORS;
    assert!(bytes.len() < 8 << 20, "{} bytes", bytes.len());
    let weights = safetensors::SafeTensors::deserialize(bytes).unwrap();
    assert_eq!(weights.len(), 52);
    let conv1 = weights.tensor("features.0.weight").unwrap();
    assert_eq!(conv1.dtype(), safetensors::Dtype::F32);
    assert_eq!(conv1.shape(), [64, 3, 3, 3]);
    let classifier = weights.tensor("classifier.1.weight").unwrap();
    assert_eq!(classifier.shape(), [1000, 512, 1, 1]);
}

#[test]
fn default_pictures_decode() {
    let content = assets::default_content().unwrap();
    assert_eq!((content.width, content.height), (451, 300));
    let style = assets::default_style().unwrap();
    assert_eq!((style.width, style.height), (752, 600));
    assert!(content.is_8bit() && style.is_8bit());
}
