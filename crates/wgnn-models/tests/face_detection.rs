//! dlib's CNN face detector against dlib itself: tests/fixtures/dlib_mmod_detections.json holds
//! what dlib 20 found (scripts/make_mmod_fixture.py) in ORL photos enlarged twice to 184x224
//! (by repeating pixels, and by PIL's bilinear resize as `resize_exact`), in mosaics of several
//! ORL photos, and in the astronaut; the converted model is assets/mmod_face_detector.safetensors
//! (scripts/dlib_mmod_to_safetensors.py).
use wgnn_reference::testing as common;

use std::path::Path;
use std::time::Instant;

use common::{assert_close, gpu, to_f32};
use serde_json::Value;
use wgnn::ops::conv::ConvParams;
use wgnn::rng::Rng;
use wgnn::{Graph, Plan, PlanSpec};
use wgnn_models::face_detection::{FaceDetector, MmodOptions, TiledPyramid};
use wgnn_models::face_detector::{self, CONVS};
use wgnn_models::face_landmarks::Rect;
use wgnn_models::imaging::resize::resize_exact;
use wgnn_models::imaging::{io, RgbImage};
use wgnn_reference as reference;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/dlib_mmod_detections.json"
);
const MODEL: &str = concat!(env!("WGNN_ASSETS"), "/mmod_face_detector.safetensors");
const ORL: &str = concat!(env!("WGNN_SHARED_DATA"), "/orl_faces");

/// The embedded model, which the face ResNet's alignment uses.
fn weights() -> Vec<u8> {
    wgnn_assets::MMOD_FACE_DETECTOR_SAFETENSORS.to_vec()
}

/// The case's photo as dlib saw it: an asset as it is, or a mosaic of ORL PGMs as R = G = B
/// (the photos of a row side by side, the rows one below the other) with each pixel repeated
/// `scale` x `scale` times, then resized to `resize` (PIL's bilinear filter) if given.
fn case_image(case: &Value) -> RgbImage {
    if let Some(name) = case["image"].as_str() {
        // Named by its path from the repository's root.
        let root = Path::new(env!("WGNN_ASSETS")).parent().unwrap();
        return io::load(root.join(name)).unwrap();
    }
    let factor = case["scale"].as_u64().unwrap() as usize;
    // Grey levels of the mosaic, row by row.
    let mut mosaic: Vec<Vec<u8>> = Vec::new();
    for row in case["rows"].as_array().unwrap() {
        let mut lines: Vec<Vec<u8>> = Vec::new();
        for name in row.as_array().unwrap() {
            let path = Path::new(ORL).join(name.as_str().unwrap());
            // A missing photo fails the test: a green run must mean the comparison ran.
            let grey =
                io::load(&path).unwrap_or_else(|e| panic!("{e}: the tests read ORL at {ORL}"));
            let levels: Vec<u8> = grey.to_rgb8().chunks_exact(3).map(|p| p[0]).collect();
            lines.resize(grey.height, Vec::new());
            for (line, pixels) in lines.iter_mut().zip(levels.chunks_exact(grey.width)) {
                line.extend_from_slice(pixels);
            }
        }
        mosaic.extend(lines);
    }
    let (width, height) = (mosaic[0].len() * factor, mosaic.len() * factor);
    let rgb: Vec<u8> = (0..height)
        .flat_map(|y| (0..width).map(move |x| (x, y)))
        .flat_map(|(x, y)| [mosaic[y / factor][x / factor]; 3])
        .collect();
    let image = RgbImage::from_rgb8(width, height, &rgb).unwrap();
    match case.get("resize") {
        Some(size) => {
            let size: Vec<usize> = size
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            resize_exact(&image, size[0], size[1]).unwrap()
        }
        None => image,
    }
}

fn expected(case: &Value) -> Vec<(Rect, f64)> {
    let boxes = case["boxes"].as_array().unwrap();
    let confidences = case["confidences"].as_array().unwrap();
    boxes
        .iter()
        .zip(confidences)
        .map(|(b, c)| {
            let b: Vec<i64> = b
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap())
                .collect();
            let rect = Rect {
                left: b[0],
                top: b[1],
                right: b[2],
                bottom: b[3],
            };
            (rect, c.as_f64().unwrap())
        })
        .collect()
}

#[test]
fn detections_match_dlib() {
    let gpu = gpu();
    let weights = weights();
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(FIXTURE).expect("the fixture")).unwrap();
    assert_eq!(fixture["upsample"].as_u64(), Some(0));
    let mut detectors: Vec<((usize, usize), FaceDetector)> = Vec::new();
    for case in fixture["cases"].as_array().unwrap() {
        let image = case_image(case);
        let size = (image.width, image.height);
        if !detectors.iter().any(|(s, _)| *s == size) {
            let detector = FaceDetector::new(gpu, &weights, size.0, size.1).unwrap();
            detectors.push((size, detector));
        }
        let detector = &mut detectors.iter_mut().find(|(s, _)| *s == size).unwrap().1;
        let start = Instant::now();
        let got = detector.detect(gpu, &image).unwrap();
        let name = case.get("image").unwrap_or(&case["rows"]).to_string();
        eprintln!(
            "{name} ({}x{}): {:?} in {:.1} ms",
            size.0,
            size.1,
            got,
            start.elapsed().as_secs_f64() * 1e3
        );
        let want = expected(case);
        assert_eq!(got.len(), want.len(), "{name}: {got:?}, dlib {want:?}");
        for ((rect, confidence), (dlib_rect, dlib_confidence)) in got.iter().zip(&want) {
            assert_eq!(rect, dlib_rect, "{name}: box");
            // dlib computes in f32 with each affine layer apart; here they are folded.
            assert!(
                (confidence - dlib_confidence).abs() <= 1e-4,
                "{name}: confidence {confidence}, dlib {dlib_confidence}"
            );
        }
    }
}

#[test]
fn options_come_from_the_model_file() {
    let options = MmodOptions::from_safetensors(&weights()).unwrap();
    assert_eq!((options.window_width, options.window_height), (80.0, 80.0));
    assert_eq!(options.adjust_threshold, 0.0);
    assert!((options.nms_iou - 0.338276).abs() < 1e-6);
    assert_eq!(options.nms_percent_covered, 1.0);
    assert_eq!(
        (
            options.pyramid_down,
            options.pyramid_padding,
            options.pyramid_outer_padding
        ),
        (6, 10, 11)
    );
}

#[test]
fn a_photo_of_another_size_is_an_error() {
    let gpu = gpu();
    let mut detector = FaceDetector::new(gpu, &weights(), 184, 224).unwrap();
    let image = RgbImage::filled(92, 112, [0.5; 3]).unwrap();
    assert!(detector.detect(gpu, &image).is_err());
    // A blank photo has no face.
    let blank = RgbImage::filled(184, 224, [0.5; 3]).unwrap();
    assert!(detector.detect(gpu, &blank).unwrap().is_empty());
}

#[test]
fn malformed_model_files_are_errors() {
    assert!(MmodOptions::from_safetensors(b"not a model").is_err());
    assert!(MmodOptions::from_safetensors(wgnn_assets::SHAPE_PREDICTOR_5_SAFETENSORS).is_err());
    assert!(TiledPyramid::new(0, 10, 6, 10, 11).is_err());
}

/// The network in float64 on a random [1, 3, 70, 90] input in [0, 1], written from dlib's
/// definition (convolutions with dlib's padding, ReLU after all but the last) independently of
/// `face_detector::build`.
#[test]
fn network_matches_a_float64_reference() {
    let gpu = gpu();
    let bytes = weights();
    let (h, w) = (70, 90);
    let mut rng = Rng::new(6);
    let x: Vec<f64> = (0..3 * h * w).map(|_| rng.range(0.0, 1.0)).collect();

    let params = face_detector::load_weights(gpu, MODEL, &bytes).unwrap();
    let mut g = Graph::new();
    let input = g.input("x", [1, 3, h, w]);
    let pre = g
        .channel_affine(input, face_detector::preprocess())
        .unwrap();
    let scores = face_detector::build(&mut g, pre).unwrap();
    let dims = g.shape(scores).dims().to_vec();
    let spec = PlanSpec {
        outputs: vec![scores],
        ..Default::default()
    };
    let mut plan = Plan::compile(gpu, &g, &params, spec).unwrap();
    plan.write_input(gpu, input, &to_f32(&x)).unwrap();
    let got = plan.step(gpu).unwrap().remove(0);

    let stored = common::safetensors_f64(&bytes);
    let mean = [122.782, 117.001, 104.298];
    let mut h_ref: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(i, v)| (255.0 * v - mean[i / (h * w)]) / 256.0)
        .collect();
    let mut shape = vec![1, 3, h, w];
    for (name, cout, k, stride) in CONVS {
        let pad = if stride == 1 { k / 2 } else { 0 };
        let p = ConvParams::new(2).stride(stride).padding(pad);
        let w_shape = [cout, shape[1], k, k];
        let weight = &stored[&format!("{name}.weight")];
        let bias = &stored[&format!("{name}.bias")];
        h_ref = reference::conv::forward(&h_ref, &shape, weight, &w_shape, Some(bias), &p);
        if name != "score" {
            h_ref.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        shape = reference::conv::output_shape(&shape, &w_shape, &p);
    }
    assert_eq!(dims, shape);
    assert_eq!(
        (dims[2], dims[3]),
        (face_detector::output_side(h), face_detector::output_side(w))
    );
    assert_close("MMOD scores against float64", &got, &h_ref, 1e-4, 1e-2);
}
