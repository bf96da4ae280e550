//! dlib's 5-point landmarks and face chips against dlib itself: tests/fixtures/dlib_landmarks.json
//! holds what dlib 20 computed for a few ORL faces (scripts/make_landmark_fixture.py); the
//! converted model is assets/shape_predictor_5.safetensors. Also: the initial face box, and
//! malformed model files and arguments as errors, not panics.

use std::path::Path;

use serde_json::Value;
use wgnn_models::face_landmarks::{
    face_chip, initial_rect, Rect, ShapePredictor, CHIP_PADDING, CHIP_SIZE,
};
use wgnn_models::imaging::{io, RgbImage};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/dlib_landmarks.json"
);
const ORL: &str = concat!(env!("WGNN_SHARED_DATA"), "/orl_faces");

/// The embedded predictor, which the face ResNet's alignment uses.
fn predictor() -> ShapePredictor {
    ShapePredictor::from_safetensors(wgnn_assets::SHAPE_PREDICTOR_5_SAFETENSORS)
        .expect("a valid shape predictor")
}

fn fixture() -> Value {
    serde_json::from_str(&std::fs::read_to_string(FIXTURE).expect("the fixture")).unwrap()
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// The case's image as dlib saw it: the PGM as R = G = B, or tinted R = g,
/// G = min(g + 40, 255), B = g / 2; a suffix `_xK` enlarges it K times by repeating each pixel
/// K x K times (see the fixture script).
fn case_image(case: &Value) -> RgbImage {
    let path = Path::new(ORL).join(case["image"].as_str().unwrap());
    // A missing photo fails the test: a green run must mean the comparison ran.
    let grey = io::load(&path).unwrap_or_else(|e| panic!("{e}: the tests read ORL at {ORL}"));
    let variant = case["variant"].as_str().unwrap();
    let (colour, factor) = match variant.split_once("_x") {
        Some((colour, factor)) => (colour, factor.parse::<usize>().unwrap()),
        None => (variant, 1),
    };
    let tint = |g: u8| match colour {
        "grey" => [g, g, g],
        "tinted" => [g, g.saturating_add(40), g / 2],
        other => panic!("unknown variant {other}"),
    };
    let levels: Vec<u8> = grey.to_rgb8().chunks_exact(3).map(|p| p[0]).collect();
    let (width, height) = (grey.width * factor, grey.height * factor);
    let rgb: Vec<u8> = (0..height)
        .flat_map(|y| (0..width).map(move |x| (x, y)))
        .flat_map(|(x, y)| tint(levels[(y / factor) * grey.width + x / factor]))
        .collect();
    RgbImage::from_rgb8(width, height, &rgb).unwrap()
}

fn case_rect(case: &Value) -> Rect {
    let r = numbers(&case["rect"]);
    Rect {
        left: r[0] as i64,
        top: r[1] as i64,
        right: r[2] as i64,
        bottom: r[3] as i64,
    }
}

#[test]
fn landmarks_match_dlib() {
    let predictor = predictor();
    let fixture = fixture();
    for case in fixture["cases"].as_array().unwrap() {
        let image = case_image(case);
        let points = predictor.predict(&image, case_rect(case));
        let expected: Vec<Vec<f64>> = case["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(numbers)
            .collect();
        for (got, want) in points.iter().zip(&expected) {
            for (g, w) in got.iter().zip(want) {
                assert!(
                    (g - w).abs() <= 0.01,
                    "{}: landmarks {points:?}, dlib {expected:?}",
                    case["image"]
                );
            }
        }
        // dlib rounds the sub-pixel positions to the nearest pixel.
        let subpixel = predictor.predict_subpixel(&image, case_rect(case));
        for (s, p) in subpixel.iter().flatten().zip(points.iter().flatten()) {
            assert!((s - p).abs() <= 0.5, "{s} rounds to {p}");
        }
    }
}

#[test]
fn face_chips_match_dlib() {
    let predictor = predictor();
    let fixture = fixture();
    assert_eq!(fixture["chip_size"].as_u64(), Some(CHIP_SIZE as u64));
    assert_eq!(fixture["chip_padding"].as_f64(), Some(CHIP_PADDING));
    let positions: Vec<Vec<f64>> = fixture["chip_positions_yx"]
        .as_array()
        .unwrap()
        .iter()
        .map(numbers)
        .collect();
    let tolerance = 1.0 / 255.0 + 1e-6;
    for case in fixture["cases"].as_array().unwrap() {
        let image = case_image(case);
        let name = case["image"].as_str().unwrap();
        let points = predictor.predict(&image, case_rect(case));
        let chip = face_chip(&image, &points, CHIP_SIZE, CHIP_PADDING).unwrap();
        assert_eq!((chip.width, chip.height), (CHIP_SIZE, CHIP_SIZE));
        let check = |y: usize, x: usize, want: &[f64]| {
            let got = chip.pixel(x, y);
            for c in 0..3 {
                assert!(
                    (got[c] as f64 - want[c] / 255.0).abs() <= tolerance,
                    "{name}: chip ({x}, {y}) channel {c} is {}, dlib {}",
                    got[c] * 255.0,
                    want[c]
                );
            }
        };
        let samples = case["chip_samples"].as_array().unwrap();
        for (yx, want) in positions.iter().zip(samples) {
            check(yx[0] as usize, yx[1] as usize, &numbers(want));
        }
        let middle = CHIP_SIZE / 2;
        for (x, want) in case["chip_middle_row"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            check(middle, x, &numbers(want));
        }
        for (y, want) in case["chip_middle_column"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            check(y, middle, &numbers(want));
        }
        for (c, want) in numbers(&case["chip_mean"]).iter().enumerate() {
            let mean = chip.channel(c).iter().map(|&v| v as f64).sum::<f64>()
                / (CHIP_SIZE * CHIP_SIZE) as f64;
            assert!(
                (mean * 255.0 - want).abs() <= 0.05,
                "{name}: chip mean channel {c} is {}, dlib {want}",
                mean * 255.0
            );
        }
    }
}

#[test]
fn initial_rect_of_orl_is_the_fixed_box() {
    assert_eq!(
        initial_rect(92, 112),
        Rect {
            left: 4,
            top: 30,
            right: 81,
            bottom: 106
        }
    );
}

#[test]
fn malformed_models_are_errors() {
    let bytes = wgnn_assets::SHAPE_PREDICTOR_5_SAFETENSORS.to_vec();
    for len in [0, 7, 8, 100, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            ShapePredictor::from_safetensors(&bytes[..len]).is_err(),
            "{len} bytes"
        );
    }
    assert!(ShapePredictor::from_safetensors(b"not a model at all").is_err());

    // A well-formed safetensors file that is not a shape predictor.
    let header = br#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let mut other = (header.len() as u64).to_le_bytes().to_vec();
    other.extend_from_slice(header);
    other.extend_from_slice(&1f32.to_le_bytes());
    assert!(ShapePredictor::from_safetensors(&other).is_err());
}

#[test]
fn bad_chip_arguments_are_errors() {
    let image = RgbImage::filled(92, 112, [0.5; 3]).unwrap();
    let points = [
        [60.0, 50.0],
        [50.0, 50.0],
        [20.0, 50.0],
        [30.0, 50.0],
        [40.0, 75.0],
    ];
    assert!(face_chip(&image, &points, 0, 0.25).is_err());
    assert!(face_chip(&image, &points, 150, -1.0).is_err());
    assert!(face_chip(&image, &points, 150, f64::NAN).is_err());
    let mut nan_points = points;
    nan_points[2][1] = f64::NAN;
    assert!(face_chip(&image, &nan_points, 150, 0.25).is_err());
    // A flat grey image gives a flat chip inside and black where the chip leaves the image.
    let chip = face_chip(&image, &points, 150, 0.25).unwrap();
    assert!(chip
        .data
        .iter()
        .all(|&v| v == 0.0 || v == 128.0 / 255.0 || v == 127.0 / 255.0));
}
