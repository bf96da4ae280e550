//! The fixed augmented variants of training images (`faces::augment`): parsing, determinism,
//! and what each transform does to images whose answer is known.
use wgnn::faces::augment::{Augment, MAX_GAMMA};

const W: usize = 23;
const H: usize = 17;

fn ramp() -> Vec<f32> {
    (0..3 * W * H)
        .map(|i| ((i % W) as f32 / W as f32) * 0.8 + 0.1)
        .collect()
}

#[test]
fn every_transform_parses_and_lists_back() {
    let all = "shift,zoom,brightness,gamma,blur,light,noise";
    let augment = Augment::parse(all, 2).unwrap();
    assert_eq!(augment.list(), all);
    assert_eq!(augment.variants(), 3);
    assert!(augment.random());
    assert_eq!(Augment::parse("none", 5).unwrap(), Augment::NONE);
    assert_eq!(Augment::parse("flip", 0).unwrap().variants(), 2);
    let error = Augment::parse("shift,fog", 1).unwrap_err().to_string();
    assert!(error.contains("fog") && error.contains("noise"), "{error}");
}

#[test]
fn variants_are_deterministic_and_keep_the_size_and_range() {
    let augment = Augment::parse("shift,zoom,brightness,gamma,blur,light,noise", 3).unwrap();
    let image = ramp();
    assert_eq!(augment.variant(&image, W, H, 0, 7, 1), image);
    for v in 1..=3 {
        let a = augment.variant(&image, W, H, v, 7, 1);
        assert_eq!(
            a,
            augment.variant(&image, W, H, v, 7, 1),
            "same draw, same image"
        );
        assert_eq!(a.len(), image.len());
        assert!(a.iter().all(|x| (0.0..=1.0).contains(x)));
        assert_ne!(
            a,
            augment.variant(&image, W, H, v, 8, 1),
            "another image, another draw"
        );
        assert_ne!(
            a,
            augment.variant(&image, W, H, v, 7, 2),
            "another seed, another draw"
        );
    }
}

#[test]
fn geometric_transforms_and_blur_keep_a_constant_image() {
    let augment = Augment::parse("shift,zoom,blur", 8).unwrap();
    let image = vec![0.375f32; 3 * W * H];
    for v in 1..=8 {
        let out = augment.variant(&image, W, H, v, 3, 1);
        assert!(out.iter().all(|x| (x - 0.375).abs() < 1e-6), "variant {v}");
    }
}

#[test]
fn gamma_is_a_power_within_its_range() {
    let augment = Augment::parse("gamma", 8).unwrap();
    let image = ramp();
    for v in 1..=8 {
        let out = augment.variant(&image, W, H, v, 5, 1);
        // The same exponent for every pixel, within [1 / MAX_GAMMA, MAX_GAMMA].
        let exponent = (out[1] as f64).ln() / (image[1] as f64).ln();
        assert!(exponent >= 1.0 / MAX_GAMMA - 1e-4 && exponent <= MAX_GAMMA + 1e-4);
        for (o, x) in out.iter().zip(&image) {
            assert!((*o as f64 - (*x as f64).powf(exponent)).abs() < 1e-4);
        }
    }
}

#[test]
fn light_is_a_linear_gain_and_noise_has_zero_mean() {
    let image = vec![0.5f32; 3 * W * H];
    let light = Augment::parse("light", 4).unwrap();
    for v in 1..=4 {
        let out = light.variant(&image, W, H, v, 2, 1);
        // A plane: second differences vanish along rows and columns.
        for y in 0..H {
            for x in 1..W - 1 {
                let d = out[y * W + x - 1] - 2.0 * out[y * W + x] + out[y * W + x + 1];
                assert!(d.abs() < 1e-5);
            }
        }
        let mean = out.iter().sum::<f32>() / out.len() as f32;
        assert!(
            (mean - 0.5).abs() < 0.02,
            "the gain averages to about 1: {mean}"
        );
    }
    let noise = Augment::parse("noise", 4).unwrap();
    for v in 1..=4 {
        let out = noise.variant(&image, W, H, v, 2, 1);
        let mean = out.iter().sum::<f32>() / out.len() as f32;
        assert!((mean - 0.5).abs() < 0.01);
        // The same noise in the three channels.
        assert_eq!(out[..W * H], out[W * H..2 * W * H]);
    }
}
