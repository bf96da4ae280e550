//! The default network, dlib's face ResNet on the aligned face chip: its input (the chip and
//! its mirror image), its descriptor against a CPU reference, the face detector's part, and a
//! tiny training that beats raw pixels on held-out people.
use wgnn_reference::testing as common;
mod faces_support;

use common::{assert_close, gpu, to_f64};
use faces_support::{orl_photos, orl_subset, raw_pixel_metrics, TempDir};
use wgnn_faces::augment::Augment;
use wgnn_faces::commands::{self, Quiet, TrainRequest, VerificationHead};
use wgnn_faces::embed::{trunk_weights, ImageRunner};
use wgnn_faces::network::{aligned_chip, NetworkSpec};
use wgnn_faces::train::TrainConfig;
use wgnn_models::face_resnet::{CHIP_SIZE, OUTPUT_LEN};

/// ORL photos at the default network's input size (184x224, RGB).
fn photos(files: &[&str]) -> Vec<f32> {
    orl_photos(&NetworkSpec::default(), files)
}

#[test]
fn the_default_is_the_face_resnet_on_the_chip_and_its_mirror_image() {
    let spec = NetworkSpec::default();
    assert_eq!(spec.input_item(), [6, CHIP_SIZE, CHIP_SIZE]);
    let (w, h) = (spec.trunk.width, spec.trunk.height);
    let photo = photos(&["s6/4.pgm"]);
    let input = spec.network_input(&photo, None).unwrap();
    let chip_len = 3 * CHIP_SIZE * CHIP_SIZE;
    assert_eq!(input.len(), 2 * chip_len);
    let chip = aligned_chip(w, h, &photo, None).unwrap();
    assert_eq!(&input[..chip_len], &chip[..]);
    let mut mirrored = chip.clone();
    mirrored
        .chunks_exact_mut(CHIP_SIZE)
        .for_each(|row| row.reverse());
    assert_eq!(&input[chip_len..], &mirrored[..]);
    // The chip is a face, not the photo squeezed: it differs from the photo resized to 150x150
    // and is not blank.
    let mean = chip.iter().sum::<f32>() / chip.len() as f32;
    assert!(mean > 0.1 && mean < 0.9, "chip mean {mean}");
    let spread = chip.iter().map(|v| (v - mean).abs()).sum::<f32>() / chip.len() as f32;
    assert!(spread > 0.05, "chip spread {spread}");
}

#[test]
fn descriptors_are_the_normalised_sum_of_both_passes() {
    let gpu = gpu();
    let spec = NetworkSpec::default();
    let images = photos(&["s1/1.pgm", "s2/3.pgm", "s3/5.pgm"]);
    let weights = trunk_weights(gpu).unwrap();
    let outputs = ImageRunner::trunk(gpu, &spec, &weights)
        .unwrap()
        .run(gpu, &images, &mut |_| {})
        .unwrap();
    assert_eq!(outputs.len(), 3 * 2 * OUTPUT_LEN);
    let descriptors = ImageRunner::descriptors(gpu, &spec, &weights)
        .unwrap()
        .run(gpu, &images, &mut |_| {})
        .unwrap();
    assert_eq!(spec.descriptor_len(), OUTPUT_LEN);
    let mut expected = Vec::new();
    for image in to_f64(&outputs).chunks_exact(2 * OUTPUT_LEN) {
        let mut sum = vec![0.0; OUTPUT_LEN];
        for pass in image.chunks_exact(OUTPUT_LEN) {
            let norm = pass.iter().map(|v| v * v).sum::<f64>().sqrt();
            sum.iter_mut().zip(pass).for_each(|(s, v)| *s += v / norm);
        }
        expected.extend(sum);
    }
    assert_close("face descriptors", &descriptors, &expected, 1e-4, 1e-2);
    // Different people's photos give different descriptors.
    let distance: f64 = expected[..OUTPUT_LEN]
        .iter()
        .zip(&expected[OUTPUT_LEN..2 * OUTPUT_LEN])
        .map(|(a, b)| (a - b) * (a - b))
        .sum();
    assert!(distance > 0.1, "{distance}");
}

#[test]
fn a_tiny_face_resnet_training_beats_raw_pixels_on_held_out_identities() {
    let gpu = gpu();
    let dir = TempDir::new("face-resnet-train");
    // Train on s1..s6, hold out s7..s10.
    let all = orl_subset(&dir, "all", 1, 10, 10);
    let held_out = orl_subset(&dir, "held_out", 7, 4, 10);
    let config = TrainConfig {
        epochs: 2,
        identities_per_batch: 3,
        images_per_identity: 3,
        augment: Augment::NONE,
        ..TrainConfig::default()
    };
    assert_eq!(config.network, NetworkSpec::default());
    let request = TrainRequest {
        data: all,
        holdout_identities: 4,
        config,
        checkpoint_every: 0,
        checkpoint: None,
        resume: None,
        profile: false,
    };
    let trained = commands::train(gpu, &request, &mut Quiet).unwrap();
    assert_eq!(trained.model.embedding_dim(), OUTPUT_LEN);
    let ours = commands::evaluate(
        gpu,
        &trained.model,
        &held_out,
        VerificationHead::Distance,
        &mut Quiet,
    )
    .unwrap()
    .metrics;
    let pixels = raw_pixel_metrics(&held_out);
    eprintln!(
        "held out s7-s10: face ResNet one-shot {:.3} EER {:.3}; raw pixels one-shot {:.3} EER {:.3}",
        ours.one_shot_accuracy, ours.eer, pixels.one_shot_accuracy, pixels.eer
    );
    assert!(ours.one_shot_accuracy > pixels.one_shot_accuracy);
    assert!(ours.eer < pixels.eer);
    assert!(ours.one_shot_accuracy >= 0.97, "{ours:?}");
    assert!(ours.eer <= 0.05, "{ours:?}");
}

#[test]
fn the_detector_follows_a_face_off_the_centre_of_the_photo() {
    let gpu = gpu();
    let spec = NetworkSpec::default();
    let (w, h) = (spec.trunk.width, spec.trunk.height);
    let photos = photos(&["s6/4.pgm", "s9/2.pgm"]);
    let len = 3 * w * h;
    // The first photo moved 10 % of the way right and down (edges replicated): the fixed face
    // box would sit off the face; the detector's box moves with it.
    let moved = wgnn_faces::augment::shifted(&photos[..len], w, h, 18, 22);
    let mut images = photos.clone();
    images.extend(&moved);
    let weights = trunk_weights(gpu).unwrap();
    let descriptors = ImageRunner::descriptors(gpu, &spec, &weights)
        .unwrap()
        .run(gpu, &images, &mut |_| {})
        .unwrap();
    let d = OUTPUT_LEN;
    let distance = |a: usize, b: usize| -> f32 {
        descriptors[a * d..][..d]
            .iter()
            .zip(&descriptors[b * d..][..d])
            .map(|(x, y)| (x - y) * (x - y))
            .sum()
    };
    let (same, other) = (distance(0, 2), distance(0, 1));
    // With the detector 0.10 against 0.75; from the fixed box the moved photo was farther
    // (0.77) than another person's.
    assert!(same < 0.25 * other, "moved {same}, another person {other}");
}
