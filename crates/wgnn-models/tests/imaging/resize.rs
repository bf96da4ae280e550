use wgnn::rng::Rng;
use wgnn_models::imaging::io;
use wgnn_models::imaging::resize::{
    fit_longest_side, fit_longest_side_size, resize_exact, resize_with, Arithmetic,
};
use wgnn_models::imaging::RgbImage;

use crate::pil_expected::{EIGHT_BIT, FLOAT, PHOTOS_227};
use crate::{asset, pattern_f32, pattern_u8, random_image};

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

#[test]
fn same_size_is_returned_unchanged() {
    let mut rng = Rng::new(1);
    // Out-of-range samples would be clamped by any resampling pass.
    let float = random_image(&mut rng, 5, 4, -0.5, 1.5);
    assert_eq!(resize_exact(&float, 5, 4).unwrap(), float);
    let eight = RgbImage::from_rgb8(7, 5, &pattern_u8(7, 5)).unwrap();
    assert_eq!(resize_exact(&eight, 7, 5).unwrap(), eight);
    assert_eq!(
        resize_with(&float, 5, 4, Arithmetic::EightBit).unwrap(),
        float
    );
    assert_eq!(fit_longest_side(&float, 5).unwrap(), float);
}

#[test]
fn constant_image_stays_constant() {
    for &(w, h) in &[(1, 1), (3, 2), (9, 4), (17, 23), (40, 7), (2, 31)] {
        let float = RgbImage::filled(11, 13, [0.3, -0.25, 1.75]).unwrap();
        let out = resize_exact(&float, w, h).unwrap();
        assert_eq!((out.width, out.height), (w, h));
        for c in 0..3 {
            let expected = float.data[c * float.plane()];
            assert!(
                out.channel(c).iter().all(|&v| v == expected),
                "float {w}x{h} channel {c}: {:?}",
                out.channel(c)
            );
        }
        let levels = [0u8, 128, 255];
        let eight = RgbImage::filled(11, 13, levels.map(|k| k as f32 / 255.0)).unwrap();
        let out = resize_exact(&eight, w, h).unwrap();
        assert_eq!(
            out.to_rgb8(),
            [0u8, 128, 255].repeat(w * h),
            "8-bit {w}x{h}"
        );
    }
}

#[test]
fn hand_computed_downscale_4_to_2() {
    // scale 2, support 2: output 0 is centred at 1.0 and reads inputs 0, 1, 2 with triangle
    // weights 0.75, 0.75, 0.25 (normalised: 3/7, 3/7, 1/7); output 1 at 3.0 reads 1, 2, 3 with
    // 1/7, 3/7, 3/7.
    let row = [0.7f32, 0.0, 0.35, 0.14];
    let image = RgbImage::new(4, 1, row.repeat(3)).unwrap();
    assert!(!image.is_8bit());
    let out = resize_exact(&image, 2, 1).unwrap();
    let expected = [(3.0 * 0.7 + 0.35) / 7.0, (3.0 * 0.35 + 3.0 * 0.14) / 7.0]; // 0.35, 0.21
    for (c, chunk) in out.data.chunks(2).enumerate() {
        for (i, (&got, want)) in chunk.iter().zip(expected).enumerate() {
            assert!(
                (got as f64 - want).abs() < 1e-7,
                "channel {c} [{i}]: {got} vs {want}"
            );
        }
    }
    // The same in PIL's 8-bit arithmetic: (3 * 210 + 105) / 7 = 105, (3 * 105 + 3 * 42) / 7 = 63.
    let image =
        RgbImage::from_rgb8(4, 1, &[210, 210, 210, 0, 0, 0, 105, 105, 105, 42, 42, 42]).unwrap();
    assert_eq!(
        resize_exact(&image, 2, 1).unwrap().to_rgb8(),
        [105, 105, 105, 63, 63, 63]
    );
}

#[test]
fn hand_computed_upscale_2_to_4() {
    // Upscaling by 2: outputs centred at 0.25, 0.75, 1.25, 1.75 in input coordinates give
    // [a, 3/4 a + 1/4 b, 1/4 a + 3/4 b, b] along each axis (edges replicate).
    let (a, b, c, d) = (0.21f64, 0.63, 0.97, 0.38); // [[a, b], [c, d]]
    let image = RgbImage::new(2, 2, [a, b, c, d].map(|v| v as f32).repeat(3)).unwrap();
    assert!(!image.is_8bit());
    let out = resize_exact(&image, 4, 4).unwrap();
    let axis = |p: f64, q: f64| [p, 0.75 * p + 0.25 * q, 0.25 * p + 0.75 * q, q];
    let top = axis(a, b);
    let bottom = axis(c, d);
    for x in 0..4 {
        let column = axis(top[x], bottom[x]);
        for (y, want) in column.iter().enumerate() {
            for ch in 0..3 {
                let got = out.pixel(x, y)[ch] as f64;
                assert!((got - want).abs() < 1e-7, "({x}, {y}): {got} vs {want}");
            }
        }
    }
}

#[test]
fn downscale_of_a_gradient_is_monotone() {
    for arithmetic in [Arithmetic::Float, Arithmetic::EightBit] {
        let (w, h) = (64, 48);
        let mut data = Vec::with_capacity(3 * w * h);
        for c in 0..3 {
            for y in 0..h {
                for x in 0..w {
                    // Increasing in x for red, in y for green, in both for blue.
                    let v = match c {
                        0 => x as f32 / (w - 1) as f32,
                        1 => y as f32 / (h - 1) as f32,
                        _ => (x + y) as f32 / (w + h - 2) as f32,
                    };
                    data.push((v * 255.0).round() / 255.0);
                }
            }
        }
        let image = RgbImage::new(w, h, data).unwrap();
        for &(ow, oh) in &[(17, 5), (9, 13), (31, 47), (3, 2)] {
            let out = resize_with(&image, ow, oh, arithmetic).unwrap();
            for y in 0..oh {
                for x in 0..ow {
                    let p = out.pixel(x, y);
                    if x + 1 < ow {
                        let right = out.pixel(x + 1, y);
                        assert!(
                            right[0] > p[0],
                            "{arithmetic:?} {ow}x{oh} red at ({x}, {y})"
                        );
                        assert!(
                            right[2] >= p[2],
                            "{arithmetic:?} {ow}x{oh} blue at ({x}, {y})"
                        );
                        assert_eq!(
                            right[1], p[1],
                            "{arithmetic:?} {ow}x{oh} green row constant"
                        );
                    }
                    if y + 1 < oh {
                        let below = out.pixel(x, y + 1);
                        assert!(
                            below[1] > p[1],
                            "{arithmetic:?} {ow}x{oh} green at ({x}, {y})"
                        );
                        assert!(
                            below[2] >= p[2],
                            "{arithmetic:?} {ow}x{oh} blue at ({x}, {y})"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn eight_bit_images_match_pil_bit_for_bit() {
    let image = RgbImage::from_rgb8(7, 5, &pattern_u8(7, 5)).unwrap();
    assert!(image.is_8bit());
    for &(w, h, expected) in EIGHT_BIT {
        let out = resize_exact(&image, w, h).unwrap();
        assert_eq!(out.to_rgb8(), expected, "7x5 -> {w}x{h}");
        assert!(out.is_8bit());
    }
}

#[test]
fn float_images_match_pil_mode_f() {
    let image = pattern_f32(6, 5);
    assert!(!image.is_8bit());
    for &(w, h, expected) in FLOAT {
        let out = resize_exact(&image, w, h).unwrap();
        for (i, (&got, &want)) in out.data.iter().zip(expected).enumerate() {
            assert!(
                (got - want).abs() <= 1e-7 * want.abs().max(1.0),
                "6x5 -> {w}x{h} [{i}]: {got} vs PIL {want}"
            );
        }
        assert_eq!(out.data.len(), expected.len());
    }
}

#[test]
fn photos_resized_to_227_match_pil_bit_for_bit() {
    for &(name, sum, hash) in PHOTOS_227 {
        let image = io::load(asset(name)).unwrap();
        let out = resize_exact(&image, 227, 227).unwrap();
        let bytes = out.to_rgb8();
        let got_sum: u64 = bytes.iter().map(|&b| b as u64).sum();
        assert_eq!(got_sum, sum, "{name}: sum of the bytes");
        assert_eq!(fnv1a64(&bytes), hash, "{name}: hash of the bytes");
    }
}

#[test]
fn eight_bit_arithmetic_rounds_a_float_image_first() {
    let mut rng = Rng::new(2);
    let float = random_image(&mut rng, 9, 7, 0.0, 1.0);
    let quantized = RgbImage::from_rgb8(9, 7, &float.to_rgb8()).unwrap();
    assert_eq!(
        resize_with(&float, 4, 3, Arithmetic::EightBit).unwrap(),
        resize_exact(&quantized, 4, 3).unwrap()
    );
    // The float arithmetic does not round.
    assert!(!resize_with(&float, 4, 3, Arithmetic::Float)
        .unwrap()
        .is_8bit());
}

#[test]
fn fit_longest_side_keeps_the_aspect_ratio() {
    assert_eq!(fit_longest_side_size(451, 300, 227).unwrap(), (227, 151));
    assert_eq!(fit_longest_side_size(300, 451, 227).unwrap(), (151, 227));
    assert_eq!(fit_longest_side_size(512, 512, 100).unwrap(), (100, 100));
    assert_eq!(fit_longest_side_size(4, 2, 3).unwrap(), (3, 2)); // 1.5 rounds up
    assert_eq!(fit_longest_side_size(600, 400, 64).unwrap(), (64, 43)); // 42.67
    assert_eq!(fit_longest_side_size(1000, 1, 10).unwrap(), (10, 1)); // never 0
    assert_eq!(fit_longest_side_size(30, 20, 300).unwrap(), (300, 200)); // upscaling

    let image = RgbImage::from_rgb8(7, 5, &pattern_u8(7, 5)).unwrap();
    let out = fit_longest_side(&image, 3).unwrap();
    assert_eq!((out.width, out.height), (3, 2));
    assert_eq!(out, resize_exact(&image, 3, 2).unwrap());
}

#[test]
fn zero_sizes_are_errors() {
    let image = RgbImage::filled(4, 3, [0.5; 3]).unwrap();
    assert!(resize_exact(&image, 0, 3).is_err());
    assert!(resize_exact(&image, 4, 0).is_err());
    assert!(fit_longest_side(&image, 0).is_err());
    assert!(fit_longest_side_size(0, 3, 10).is_err());
    let broken = RgbImage {
        width: 4,
        height: 3,
        data: vec![0.0; 5],
    };
    assert!(resize_exact(&broken, 2, 2).is_err());
}
