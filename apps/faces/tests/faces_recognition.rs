//! Using a trained model through the library: evaluation, the logistic verifier, and enroll /
//! verify / identify end to end, with every bad input a clear error that writes nothing.
use wgnn_reference::testing as common;
mod faces_support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::gpu;
use faces_support::{orl_subset, pgm, tiny_config, TempDir};
use wgnn_faces::commands::{self, Quiet, Threshold, TrainRequest, VerificationHead};
use wgnn_faces::gallery::Gallery;
use wgnn_faces::model::SiameseModel;
use wgnn_faces::verifier::VerifierConfig;

/// ORL s1..s10 (train on s1..s6) and a tiny model trained once for the whole file.
struct Fixture {
    _dir: TempDir,
    data: PathBuf,
    held_out: PathBuf,
    model: SiameseModel,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = TempDir::new("recognition");
        let data = orl_subset(&dir, "orl", 1, 10, 6);
        let held_out = orl_subset(&dir, "held_out", 7, 4, 6);
        let request = TrainRequest {
            data: data.clone(),
            holdout_identities: 4,
            config: tiny_config(2),
            checkpoint_every: 0,
            checkpoint: None,
            resume: None,
            profile: false,
        };
        let model = commands::train(gpu(), &request, &mut Quiet).unwrap().model;
        Fixture {
            _dir: dir,
            data,
            held_out,
            model,
        }
    })
}

fn orl(identity: usize, image: usize) -> PathBuf {
    Path::new(faces_support::ORL).join(format!("s{identity}/{image}.pgm"))
}

#[test]
fn eval_reports_every_figure_and_the_logistic_head_its_accuracy() {
    let gpu = gpu();
    let f = fixture();
    let e = commands::evaluate(
        gpu,
        &f.model,
        &f.held_out,
        VerificationHead::Distance,
        &mut Quiet,
    )
    .unwrap();
    let line: serde_json::Value = serde_json::from_str(&e.to_json_line()).unwrap();
    for key in [
        "identities",
        "images",
        "one_shot_accuracy",
        "verification_accuracy",
        "auc",
        "eer",
        "val_at_far_1e-3",
        "threshold",
    ] {
        assert!(line.get(key).is_some(), "{key} missing: {line}");
    }
    assert_eq!(line["identities"], 4);
    assert_eq!(line["images"], 24);
    assert!(e.metrics.one_shot_accuracy > 0.8, "{:?}", e.metrics);
    assert!(e.metrics.auc > 0.9, "{:?}", e.metrics);

    // No verifier yet: --head logistic says what to do.
    let message = commands::evaluate(
        gpu,
        &f.model,
        &f.held_out,
        VerificationHead::Logistic,
        &mut Quiet,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(message.contains("train-verifier"), "{message}");

    let mut model = f.model.clone();
    let training_accuracy = commands::add_verifier(
        gpu,
        &mut model,
        &f.data,
        4,
        VerifierConfig::default(),
        &mut Quiet,
    )
    .unwrap();
    assert!(training_accuracy > 0.9, "{training_accuracy}");
    assert_eq!(
        model.fingerprint, f.model.fingerprint,
        "the embedding is unchanged"
    );
    let verifier = model.verifier.as_ref().unwrap();
    assert_eq!(verifier.weight.len(), model.embedding_dim());
    let logistic = commands::evaluate(
        gpu,
        &model,
        &f.held_out,
        VerificationHead::Logistic,
        &mut Quiet,
    )
    .unwrap();
    // Well above chance (0.5 accuracy and AUC) on the held-out people; the exact figures
    // depend on the GPU's rounding in this tiny training (accuracy 0.800 on lavapipe, 0.795 on
    // an H200's Vulkan driver).
    assert!(
        logistic.metrics.verification_accuracy > 0.7 && logistic.metrics.auc > 0.8,
        "{:?}",
        logistic.metrics
    );
    assert!(logistic.to_json_line().contains("\"head\": \"logistic\""));

    // With the augmented copies a model records, the unit sees more pairs (the copies' too).
    let same_pairs = |model: &SiameseModel| {
        model.verifier.as_ref().unwrap().description["training_pairs"]["same"]
            .as_u64()
            .unwrap()
    };
    let mut copied = f.model.clone();
    copied.training["config"]["augment"] = "shift,brightness".into();
    copied.training["config"]["augment_copies"] = 2.into();
    commands::add_verifier(
        gpu,
        &mut copied,
        &f.data,
        4,
        VerifierConfig::default(),
        &mut Quiet,
    )
    .unwrap();
    assert!(
        same_pairs(&copied) > 3 * same_pairs(&model),
        "{} vs {}",
        same_pairs(&copied),
        same_pairs(&model)
    );
    let originals_only = VerifierConfig {
        augmented: false,
        ..VerifierConfig::default()
    };
    commands::add_verifier(gpu, &mut copied, &f.data, 4, originals_only, &mut Quiet).unwrap();
    assert_eq!(same_pairs(&copied), same_pairs(&model));

    // Saved and loaded with its verifier.
    let dir = TempDir::new("recognition-verifier");
    let path = dir.path().join("m.safetensors");
    model.save(gpu, &path).unwrap();
    assert_eq!(
        SiameseModel::load(gpu, &path).unwrap().verifier,
        model.verifier
    );
}

#[test]
fn enroll_verify_identify_end_to_end() {
    let gpu = gpu();
    let f = fixture();
    let dir = TempDir::new("recognition-gallery");
    let gallery = dir.path().join("people.json");
    // One photo each of four people the model never saw.
    for s in 7..=10 {
        let replaced =
            commands::enroll(gpu, &f.model, &gallery, &format!("person{s}"), &[orl(s, 1)]).unwrap();
        assert!(!replaced);
    }
    // Re-enrolling from two photos replaces the entry.
    assert!(commands::enroll(gpu, &f.model, &gallery, "person7", &[orl(7, 1), orl(7, 2)]).unwrap());
    let people = Gallery::load(&gallery, &f.model.fingerprint).unwrap();
    assert_eq!(
        people.names(),
        vec!["person10", "person7", "person8", "person9"]
    );
    assert_eq!(people.person("person7").unwrap().images, 2);

    // The enrolled photo itself is a match at distance ~0.
    let t = f.model.threshold;
    let v = commands::verify(gpu, &f.model, &gallery, "person8", &orl(8, 1), t).unwrap();
    assert!(v.matched && v.distance < 1e-5, "{v:?}");

    // Other photos of the four: identified mostly right (one-shot, unseen people).
    let probes: Vec<PathBuf> = (7..=10)
        .flat_map(|s| (3..=6).map(move |i| orl(s, i)))
        .collect();
    let found = commands::identify(gpu, &f.model, &gallery, &probes, Threshold::Fixed(t), 3)
        .unwrap()
        .0;
    let right = found
        .iter()
        .zip((7..=10).flat_map(|s| std::iter::repeat_n(s, 4)))
        .filter(|((id, _), s)| id.nearest == format!("person{s}"))
        .count();
    assert!(right >= 13, "{right} of 16 right: {found:?}");
    for (id, nearest) in &found {
        assert_eq!(
            id.name.is_some(),
            id.distance <= f.model.threshold,
            "{id:?}"
        );
        // The top 3: the nearest first (the identification's), distances ascending.
        assert_eq!(nearest.len(), 3);
        assert_eq!(
            (nearest[0].0.as_str(), nearest[0].1),
            (id.nearest.as_str(), id.distance)
        );
        assert!(nearest.windows(2).all(|w| w[0].1 <= w[1].1), "{nearest:?}");
    }
    // Verification agrees with identification's distances.
    let v = commands::verify(gpu, &f.model, &gallery, "person9", &orl(9, 4), t).unwrap();
    assert_eq!(v.matched, v.distance <= f.model.threshold);

    // With a zero threshold nothing but the enrolled photos themselves is anyone, yet the
    // nearest are still listed; with a huge one everyone is someone.
    let found = commands::identify(
        gpu,
        &f.model,
        &gallery,
        &[orl(9, 5)],
        Threshold::Fixed(0.0),
        10,
    )
    .unwrap()
    .0;
    assert_eq!(found[0].0.name, None);
    assert_eq!(found[0].1.len(), 4, "all four enrolled, fewer than asked");
    let found = commands::identify(
        gpu,
        &f.model,
        &gallery,
        &[orl(9, 5)],
        Threshold::Fixed(1e9),
        1,
    )
    .unwrap()
    .0;
    assert!(found[0].0.name.is_some());

    // Calibrated for the gallery: the trained model carries its impostor tail, and the
    // threshold for these four people is tighter than the verification threshold, and tighter
    // still for a larger gallery or a lower false-accept rate.
    let tail = f
        .model
        .impostors
        .as_ref()
        .expect("train stores the impostor tail");
    assert!(tail.pairs > 0);
    let (_, four) = commands::identify(
        gpu,
        &f.model,
        &gallery,
        &[orl(9, 5)],
        Threshold::FalseAcceptRate(0.05),
        1,
    )
    .unwrap();
    assert_eq!(four, f.model.identification_threshold(4, 0.05));
    assert!(four <= f.model.threshold);
    assert!(f.model.identification_threshold(40, 0.05) <= four);
    assert!(f.model.identification_threshold(4, 0.005) <= four);
}

#[test]
fn bad_inputs_are_clear_errors_and_write_nothing() {
    let gpu = gpu();
    let f = fixture();
    let dir = TempDir::new("recognition-bad");
    let gallery = dir.path().join("g.json");

    // A corrupt or missing image is named, and no gallery is created.
    let corrupt = dir.write("broken.png", b"\x89PNG\r\n\x1a\nnot really");
    let message = commands::enroll(gpu, &f.model, &gallery, "x", &[orl(7, 1), corrupt.clone()])
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("broken.png"), "{message}");
    let missing = dir.path().join("nobody.pgm");
    let message = commands::enroll(gpu, &f.model, &gallery, "x", &[missing])
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("nobody.pgm"), "{message}");
    assert!(!gallery.exists());

    // No gallery yet, then an unknown name.
    let message = commands::verify(gpu, &f.model, &gallery, "x", &orl(7, 1), 1.0)
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("enroll someone first"), "{message}");
    commands::enroll(gpu, &f.model, &gallery, "alice", &[orl(7, 1)]).unwrap();
    let before = std::fs::read(&gallery).unwrap();
    let message = commands::verify(gpu, &f.model, &gallery, "bob", &orl(7, 2), 1.0)
        .err()
        .unwrap()
        .to_string();
    assert!(
        message.contains("`bob` is not enrolled") && message.contains("alice"),
        "{message}"
    );

    // A gallery made with another model is refused, and left as it was.
    let mut other = f.model.clone();
    other.fingerprint = "0000000000000000".into();
    let message = commands::enroll(gpu, &other, &gallery, "carol", &[orl(8, 1)])
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("another model"), "{message}");
    let message = commands::identify(
        gpu,
        &other,
        &gallery,
        &[orl(8, 1)],
        Threshold::Fixed(1.0),
        1,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(message.contains("another model"), "{message}");
    assert_eq!(std::fs::read(&gallery).unwrap(), before);

    // Reserved and empty names.
    assert!(commands::enroll(gpu, &f.model, &gallery, "unknown", &[orl(8, 1)]).is_err());
    assert!(commands::enroll(gpu, &f.model, &gallery, " ", &[orl(8, 1)]).is_err());
    assert_eq!(std::fs::read(&gallery).unwrap(), before);

    // Evaluating an empty folder, or one whose only identity has one image.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let message = commands::evaluate(
        gpu,
        &f.model,
        &empty,
        VerificationHead::Distance,
        &mut Quiet,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(message.contains("no identities"), "{message}");
    dir.write("lonely/only/1.pgm", &pgm(4, 4, &[128; 16]));
    let lonely = dir.path().join("lonely");
    assert!(commands::evaluate(
        gpu,
        &f.model,
        &lonely,
        VerificationHead::Distance,
        &mut Quiet
    )
    .is_err());
}

#[test]
fn a_person_with_a_single_photo_can_be_enrolled_and_identified() {
    let gpu = gpu();
    let f = fixture();
    let dir = TempDir::new("recognition-single");
    let gallery = dir.path().join("g.json");
    // A colour PNG of another size works as well as ORL's greyscale PGM.
    let photo = image::open(orl(10, 3)).unwrap().to_rgb8();
    let photo = image::imageops::resize(&photo, 150, 180, image::imageops::FilterType::Triangle);
    let path = dir.path().join("ten.png");
    photo.save(&path).unwrap();
    commands::enroll(gpu, &f.model, &gallery, "ten", std::slice::from_ref(&path)).unwrap();
    let found = commands::identify(
        gpu,
        &f.model,
        &gallery,
        &[path],
        Threshold::Fixed(f.model.threshold),
        1,
    )
    .unwrap()
    .0;
    assert_eq!(found[0].0.name.as_deref(), Some("ten"));
    assert!(found[0].0.distance < 1e-3, "{:?}", found[0]);
}
