//! Galleries: enroll, verify, identify, the file round trip, atomic writes and every error.

mod faces_support;

use faces_support::TempDir;
use wgnn::files::write_atomically;
use wgnn_faces::gallery::Gallery;

const MODEL: &str = "model-fingerprint-a";

/// The unit vector of `dim` at angle `degrees` in the plane of axes 0 and 1.
fn at_angle(degrees: f32, dim: usize) -> Vec<f32> {
    let mut v = vec![0.0; dim];
    v[0] = degrees.to_radians().cos();
    v[1] = degrees.to_radians().sin();
    v
}

fn three_people() -> Gallery {
    let mut gallery = Gallery::new(MODEL, 3);
    gallery.enroll("ann", &at_angle(0.0, 3)).unwrap();
    gallery.enroll("bob", &at_angle(90.0, 3)).unwrap();
    gallery.enroll("carl", &[0.0, 0.0, 1.0]).unwrap();
    gallery
}

#[test]
fn enroll_stores_the_renormalised_mean() {
    let mut gallery = Gallery::new(MODEL, 3);
    let images = [at_angle(0.0, 3), at_angle(60.0, 3)].concat();
    assert!(!gallery.enroll("ann", &images).unwrap());
    let ann = gallery.person("ann").unwrap();
    assert_eq!(ann.images, 2);
    let expected = at_angle(30.0, 3);
    for (a, b) in ann.embedding.iter().zip(&expected) {
        assert!((a - b).abs() < 1e-6, "{:?} vs {expected:?}", ann.embedding);
    }
    // Enrolling again replaces.
    assert!(gallery.enroll("ann", &at_angle(90.0, 3)).unwrap());
    assert_eq!(gallery.person("ann").unwrap().images, 1);
    assert_eq!(gallery.len(), 1);
}

#[test]
fn verify_compares_the_distance_with_the_threshold() {
    let gallery = three_people();
    // 60 degrees apart on the unit circle: squared distance 2 - 2 cos 60 = 1.
    let probe = at_angle(60.0, 3);
    let near = gallery.verify("ann", &probe, 1.01).unwrap();
    assert!(near.matched);
    assert!((near.distance - 1.0).abs() < 1e-6);
    let far = gallery.verify("ann", &probe, 0.99).unwrap();
    assert!(!far.matched);
    assert_eq!(far.distance, near.distance);
}

#[test]
fn verify_of_an_unknown_name_lists_the_enrolled() {
    let gallery = three_people();
    let err = gallery
        .verify("dora", &at_angle(0.0, 3), 1.0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dora") && err.contains("ann, bob, carl"),
        "{err}"
    );
}

#[test]
fn identify_returns_the_nearest_or_unknown() {
    let gallery = three_people();
    let found = gallery.identify(&at_angle(80.0, 3), 0.5).unwrap();
    assert_eq!(found.name.as_deref(), Some("bob"));
    assert_eq!(found.nearest, "bob");
    let expected = 2.0 - 2.0 * 10f32.to_radians().cos();
    assert!((found.distance - expected).abs() < 1e-6);

    // Between everyone: the nearest is reported, but over the threshold it is unknown.
    let lost = gallery.identify(&[-1.0, 0.0, 0.0], 1.5).unwrap();
    assert_eq!(lost.name, None);
    assert!(lost.distance > 1.5);

    // Equal distances go to the first name.
    let tie = gallery.identify(&at_angle(45.0, 3), 4.0).unwrap();
    assert_eq!(tie.name.as_deref(), Some("ann"));
}

#[test]
fn identify_in_an_empty_gallery_is_an_error() {
    let gallery = Gallery::new(MODEL, 3);
    let err = gallery
        .identify(&at_angle(0.0, 3), 1.0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("empty"), "{err}");
    let err = gallery
        .verify("ann", &at_angle(0.0, 3), 1.0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("nobody"), "{err}");
}

#[test]
fn bad_embeddings_and_names_are_errors() {
    let mut gallery = three_people();
    assert!(gallery.enroll("dora", &[]).is_err(), "no images");
    assert!(gallery.enroll("dora", &[1.0, 0.0]).is_err(), "wrong dim");
    assert!(
        gallery.enroll("dora", &[1.0, 0.0, 0.0, 1.0]).is_err(),
        "not a multiple"
    );
    assert!(
        gallery.enroll("dora", &[f32::NAN, 0.0, 0.0]).is_err(),
        "NaN"
    );
    let cancel = [at_angle(0.0, 3), at_angle(180.0, 3)].concat();
    assert!(gallery.enroll("dora", &cancel).is_err(), "zero mean");
    for name in ["", " ann", "unknown", "a\nb"] {
        assert!(gallery.enroll(name, &at_angle(0.0, 3)).is_err(), "{name:?}");
    }
    assert!(gallery.verify("ann", &[1.0, 0.0], 1.0).is_err());
    assert!(gallery.identify(&[1.0, 0.0, 0.0, 0.0], 1.0).is_err());
    assert_eq!(gallery.len(), 3, "failed enrolments change nothing");
}

#[test]
fn file_round_trip_is_exact() {
    let dir = TempDir::new("gallery-roundtrip");
    let path = dir.path().join("people.json");
    let mut gallery = Gallery::new(MODEL, 5);
    let odd = [0.1f32, -0.2, 0.3, 1e-7, 0.123_456_79];
    gallery.enroll("Zoë \"Z\" Ödegaard", &odd).unwrap();
    gallery.enroll("ann", &[0.0, 0.0, 0.0, 0.0, 1.0]).unwrap();
    gallery.save(&path).unwrap();
    let loaded = Gallery::load(&path, MODEL).unwrap();
    assert_eq!(loaded, gallery);
    assert_eq!(loaded.names(), ["Zoë \"Z\" Ödegaard", "ann"]);
    assert_eq!(loaded.model_fingerprint(), MODEL);
    assert_eq!(loaded.dim(), 5);
    // Only the gallery itself is left: no temporary file.
    assert_eq!(dir.entries(), ["people.json"]);
}

#[test]
fn open_or_new_creates_then_reopens() {
    let dir = TempDir::new("gallery-open");
    let path = dir.path().join("g.json");
    let mut gallery = Gallery::open_or_new(&path, MODEL, 3).unwrap();
    assert!(gallery.is_empty());
    assert!(!path.exists(), "nothing written until saved");
    gallery.enroll("ann", &at_angle(0.0, 3)).unwrap();
    gallery.save(&path).unwrap();
    let again = Gallery::open_or_new(&path, MODEL, 3).unwrap();
    assert_eq!(again.names(), ["ann"]);
    let err = Gallery::open_or_new(&path, MODEL, 4)
        .unwrap_err()
        .to_string();
    assert!(err.contains('3') && err.contains('4'), "{err}");
}

#[test]
fn another_models_gallery_is_refused() {
    let dir = TempDir::new("gallery-model");
    let path = dir.path().join("g.json");
    three_people().save(&path).unwrap();
    let err = Gallery::load(&path, "model-fingerprint-b")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("another model") && err.contains(MODEL) && err.contains("model-fingerprint-b"),
        "{err}"
    );
}

#[test]
fn files_that_are_not_galleries_are_refused() {
    let dir = TempDir::new("gallery-bad");
    let cases: [(&str, &str, &str); 6] = [
        ("text.json", "hello", "not a wgnn gallery"),
        ("other.json", "{\"format\": \"something\"}", "not a wgnn gallery"),
        (
            "future.json",
            "{\"format\": \"wgnn-gallery\", \"version\": 99}",
            "version 99",
        ),
        (
            "nodim.json",
            "{\"format\": \"wgnn-gallery\", \"version\": 1, \"model_fingerprint\": \"m\", \"people\": []}",
            "dim",
        ),
        (
            "short.json",
            "{\"format\": \"wgnn-gallery\", \"version\": 1, \"model_fingerprint\": \"m\", \"dim\": 3, \
             \"people\": [{\"name\": \"ann\", \"images\": 1, \"embedding\": [1, 0]}]}",
            "ann",
        ),
        (
            "strings.json",
            "{\"format\": \"wgnn-gallery\", \"version\": 1, \"model_fingerprint\": \"m\", \"dim\": 1, \
             \"people\": [{\"name\": \"bob\", \"images\": 1, \"embedding\": [\"x\"]}]}",
            "bob",
        ),
    ];
    for (name, text, expected) in cases {
        let path = dir.write(name, text.as_bytes());
        let err = Gallery::load(&path, "m").unwrap_err().to_string();
        assert!(
            err.contains(name) && err.contains(expected),
            "{name}: {err}"
        );
    }
    let err = Gallery::load(&dir.path().join("missing.json"), "m")
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.json"), "{err}");
}

#[test]
fn atomic_writes_replace_whole_files_or_nothing() {
    let dir = TempDir::new("atomic");
    let path = dir.path().join("file.bin");
    write_atomically(&path, b"first version").unwrap();
    write_atomically(&path, b"second").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"second");
    assert_eq!(dir.entries(), ["file.bin"]);

    // A folder that does not exist: an error naming the file, nothing created.
    let nowhere = dir.path().join("no/such/folder/g.json");
    let err = three_people().save(&nowhere).unwrap_err().to_string();
    assert!(err.contains("g.json"), "{err}");
    assert_eq!(dir.entries(), ["file.bin"]);

    // Writing over a folder fails after the temporary file was written: it is cleaned up.
    std::fs::create_dir(dir.path().join("taken")).unwrap();
    std::fs::write(dir.path().join("taken/inside"), b"x").unwrap();
    assert!(write_atomically(&dir.path().join("taken"), b"data").is_err());
    assert_eq!(dir.entries(), ["file.bin", "taken"]);
}
