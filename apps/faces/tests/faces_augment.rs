//! The fixed augmented variants of training images (`faces::augment`): parsing, determinism,
//! and what each transform does to images whose answer is known.
use wgnn_faces::augment::{rotated, Augment, MAX_FURTHER, MAX_GAMMA, MAX_NEARER};

const W: usize = 23;
const H: usize = 17;

fn ramp() -> Vec<f32> {
    (0..3 * W * H)
        .map(|i| ((i % W) as f32 / W as f32) * 0.8 + 0.1)
        .collect()
}

#[test]
fn every_transform_parses_and_lists_back() {
    let all = "shift,zoom,brightness,gamma,blur,light,noise,distance";
    let augment = Augment::parse(all, 2).unwrap();
    assert_eq!(augment.list(), all);
    assert_eq!(augment.variants(), 3);
    assert!(augment.random());
    assert_eq!(Augment::parse("none", 5).unwrap(), Augment::NONE);
    assert_eq!(Augment::parse("flip", 0).unwrap().variants(), 2);
    let error = Augment::parse("shift,fog", 1).unwrap_err().to_string();
    assert!(
        error.contains("fog") && error.contains("distance"),
        "{error}"
    );
}

/// Side of the bright square of `square()`, and of its image.
const SIDE: usize = 21;
const S: usize = 61;

/// A bright square centred on a dark `S x S` image.
fn square() -> Vec<f32> {
    let lo = (S - SIDE) / 2;
    (0..3 * S * S)
        .map(|i| {
            let (x, y) = (i % S, (i / S) % S);
            if (lo..lo + SIDE).contains(&x) && (lo..lo + SIDE).contains(&y) {
                0.9
            } else {
                0.1
            }
        })
        .collect()
}

#[test]
fn distance_rescales_every_copy_but_the_first_within_its_range() {
    let augment = Augment::parse("distance", 40).unwrap();
    let image = square();
    assert_eq!(
        augment.variant(&image, S, S, 1, 4, 1),
        image,
        "copy 1 keeps the distance"
    );
    let mut factors = Vec::new();
    for v in 2..=40 {
        let out = augment.variant(&image, S, S, v, 4, 1);
        // The square's side, from its area in one channel.
        let bright = out[..S * S].iter().filter(|&&x| x > 0.5).count();
        let factor = (bright as f64).sqrt() / SIDE as f64;
        assert!(
            factor > 1.0 / MAX_FURTHER - 0.06 && factor < MAX_NEARER + 0.06,
            "copy {v}: scaled by {factor}"
        );
        factors.push(factor);
    }
    let (least, most) = factors
        .iter()
        .fold((f64::INFINITY, 0f64), |(a, b), &f| (a.min(f), b.max(f)));
    assert!(
        least < 0.95 && most > 1.1,
        "closer and further: {factors:?}"
    );
}

#[test]
fn distance_leaves_the_other_transforms_draws_alone() {
    let without = Augment::parse("shift,zoom,brightness,gamma,blur,light,noise", 3).unwrap();
    let with = Augment::parse("shift,zoom,brightness,gamma,blur,light,noise,distance", 3).unwrap();
    let image = ramp();
    assert_eq!(
        with.variant(&image, W, H, 1, 9, 5),
        without.variant(&image, W, H, 1, 9, 5)
    );
    for v in 2..=3 {
        assert_ne!(
            with.variant(&image, W, H, v, 9, 5),
            without.variant(&image, W, H, v, 9, 5)
        );
    }
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
        assert!((1.0 / MAX_GAMMA - 1e-4..=MAX_GAMMA + 1e-4).contains(&exponent));
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

#[test]
fn rotation_turns_the_image_about_its_centre() {
    // A quarter turn counter-clockwise (as displayed) moves the top-right corner to the top-left.
    let image: Vec<f32> = (0..3 * S * S)
        .map(|i| ((i * 7919) % 997) as f32 / 997.0)
        .collect();
    let turned = rotated(&image, S, S, 90.0);
    for c in 0..3 {
        for y in 0..S {
            for x in 0..S {
                let want = image[c * S * S + x * S + (S - 1 - y)];
                let got = turned[c * S * S + y * S + x];
                assert!((got - want).abs() < 1e-5, "({x}, {y}): {got} vs {want}");
            }
        }
    }
    // A small turn and back leaves the middle of a smooth image as it was.
    let smooth = ramp();
    let back = rotated(&rotated(&smooth, W, H, 8.0), W, H, -8.0);
    for y in 4..H - 4 {
        for x in 4..W - 4 {
            assert!((back[y * W + x] - smooth[y * W + x]).abs() < 0.01);
        }
    }
    assert_ne!(rotated(&smooth, W, H, 8.0), smooth);
}
