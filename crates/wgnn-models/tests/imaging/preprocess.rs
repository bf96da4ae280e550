use std::collections::HashMap;

use wgnn::rng::Rng;
use wgnn_models::imaging::preprocess::Preprocess;

use crate::random_image;

fn metadata(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn squeezenet_is_bgr_0_255_minus_mean() {
    // One pixel, RGB = (1.0, 0.5, 0.2).
    let out = Preprocess::SQUEEZENET.apply(&[1.0, 0.5, 0.2]);
    let expected = [
        0.2 * 255.0 - 104.006, // B
        0.5 * 255.0 - 116.669, // G
        1.0 * 255.0 - 122.679, // R
    ];
    for (got, want) in out.iter().zip(expected) {
        assert!((*got as f64 - want).abs() < 1e-4, "{got} vs {want}");
    }
}

#[test]
fn vgg_is_rgb_minus_mean_over_std() {
    let mut rng = Rng::new(3);
    let image = random_image(&mut rng, 5, 3, 0.0, 1.0);
    let out = Preprocess::VGG.apply(&image.data);
    let mean = [0.485, 0.456, 0.406];
    let std = [0.229, 0.224, 0.225];
    let plane = image.plane();
    for (i, (&got, &x)) in out.iter().zip(&image.data).enumerate() {
        let c = i / plane;
        let want = (x as f64 - mean[c]) / std[c];
        assert!((got as f64 - want).abs() < 1e-6, "[{i}]: {got} vs {want}");
    }
}

#[test]
fn apply_is_the_channel_affine_map_and_invert_undoes_it() {
    let mut rng = Rng::new(4);
    let image = random_image(&mut rng, 7, 4, 0.0, 1.0);
    let plane = image.plane();
    for preprocess in [Preprocess::SQUEEZENET, Preprocess::VGG] {
        let out = preprocess.apply(&image.data);
        assert_eq!(out.len(), image.data.len());
        for (c, affine) in preprocess.channel_affine().iter().enumerate() {
            for i in 0..plane {
                let x = image.data[affine.source * plane + i];
                assert_eq!(out[c * plane + i], affine.scale * x + affine.offset);
            }
        }
        let back = preprocess.invert(&out);
        for (i, (&a, &b)) in back.iter().zip(&image.data).enumerate() {
            assert!((a - b).abs() < 1e-5, "{preprocess:?} [{i}]: {a} vs {b}");
        }
    }
    let sources = |p: Preprocess| p.channel_affine().map(|a| a.source);
    assert_eq!(sources(Preprocess::SQUEEZENET), [2, 1, 0]);
    assert_eq!(sources(Preprocess::VGG), [0, 1, 2]);
}

#[test]
fn caffe_preprocessing_is_read_from_the_embedded_weights() {
    let (_, header) =
        safetensors::SafeTensors::read_metadata(wgnn_assets::SQUEEZENET1_1_SAFETENSORS).unwrap();
    let map = header
        .metadata()
        .as_ref()
        .expect("the weights carry __metadata__");
    assert_eq!(map["mean_bgr"], "104.006,116.669,122.679");
    assert_eq!(map["input"], "BGR, 0..255, minus per-channel mean");
    assert_eq!(map["input_size"], "227");
    assert_eq!(
        Preprocess::caffe_from_metadata(map).unwrap(),
        Preprocess::SQUEEZENET
    );
}

#[test]
fn bad_metadata_is_an_error() {
    assert!(Preprocess::caffe_from_metadata(&metadata(&[])).is_err());
    for bad in ["104,116", "1,2,3,4", "a,b,c", "1,NaN,3", ""] {
        assert!(
            Preprocess::caffe_from_metadata(&metadata(&[("mean_bgr", bad)])).is_err(),
            "{bad:?}"
        );
    }
    let rgb = metadata(&[("mean_bgr", "1,2,3"), ("input", "RGB, 0..1")]);
    assert!(Preprocess::caffe_from_metadata(&rgb).is_err());
    let ok = metadata(&[("mean_bgr", " 1, 2.5 ,3 ")]);
    assert_eq!(
        Preprocess::caffe_from_metadata(&ok).unwrap(),
        Preprocess::Caffe {
            mean_bgr: [1.0, 2.5, 3.0]
        }
    );
}
