//! Image folders: listing order, loading, resizing, holdout split, and every bad input.

mod faces_support;

use std::cmp::Ordering;
use std::path::Path;

use faces_support::{pgm, TempDir, ORL};
use wgnn_faces::dataset::{load_image, natural_cmp, ImageFolder, Preprocess};

const ORL_SIZE: Preprocess = Preprocess {
    width: 92,
    height: 112,
    channels: 1,
};

/// The grey values of a binary PGM, decoded plainly.
fn pgm_values(path: &Path) -> (u32, u32, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(String::from_utf8(bytes[start..at].to_vec()).unwrap());
    }
    assert_eq!(fields[0], "P5");
    assert_eq!(fields[3], "255");
    let (w, h): (u32, u32) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let data = bytes[at + 1..].to_vec();
    assert_eq!(data.len(), (w * h) as usize);
    (w, h, data)
}

#[test]
fn natural_order_compares_digit_runs_as_numbers() {
    assert_eq!(natural_cmp("s2", "s10"), Ordering::Less);
    assert_eq!(natural_cmp("2.pgm", "10.pgm"), Ordering::Less);
    assert_eq!(natural_cmp("s10", "s9"), Ordering::Greater);
    assert_eq!(natural_cmp("img007", "img8"), Ordering::Less);
    assert_eq!(natural_cmp("a", "a1"), Ordering::Less);
    assert_eq!(natural_cmp("Bob", "alice"), Ordering::Greater);
    // Total order: equal numbers and letters still differ by their spelling.
    assert_ne!(natural_cmp("s01", "s1"), Ordering::Equal);
    assert_ne!(natural_cmp("A", "a"), Ordering::Equal);
    assert_eq!(natural_cmp("s7", "s7"), Ordering::Equal);

    let mut names = vec!["s10", "s1", "s2", "s20", "s3", "t1", "S4"];
    names.sort_by(|a, b| natural_cmp(a, b));
    assert_eq!(names, ["s1", "s2", "s3", "S4", "s10", "s20", "t1"]);
}

#[test]
fn orl_lists_identities_and_images_in_natural_order() {
    let folder = ImageFolder::open(ORL).unwrap();
    let names: Vec<&str> = folder.identities.iter().map(|i| i.name.as_str()).collect();
    let expected: Vec<String> = (1..=40).map(|k| format!("s{k}")).collect();
    assert_eq!(names, expected);
    for identity in &folder.identities {
        let files: Vec<String> = identity
            .images
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        let expected: Vec<String> = (1..=10).map(|k| format!("{k}.pgm")).collect();
        assert_eq!(files, expected, "{}", identity.name);
    }
    assert_eq!(folder.image_count(), 400);
    // The loose README beside the identity folders is not an identity and not worth a warning.
    assert!(folder.warnings.is_empty(), "{:?}", folder.warnings);
    assert!(folder.single_image_identities().is_empty());
}

#[test]
fn holdout_takes_the_last_identities() {
    let folder = ImageFolder::open(ORL).unwrap();
    let (train, holdout) = folder.split_holdout(10).unwrap();
    assert_eq!(train.identities.len(), 30);
    assert_eq!(train.identities[29].name, "s30");
    let held: Vec<&str> = holdout.identities.iter().map(|i| i.name.as_str()).collect();
    let expected: Vec<String> = (31..=40).map(|k| format!("s{k}")).collect();
    assert_eq!(held, expected);

    let (all, none) = folder.split_holdout(0).unwrap();
    assert_eq!((all.identities.len(), none.identities.len()), (40, 0));
    let err = folder.split_holdout(41).unwrap_err().to_string();
    assert!(err.contains("41") && err.contains("only 40"), "{err}");
}

#[test]
fn native_size_loads_exact_pixels_without_resampling() {
    let folder = ImageFolder::open(ORL).unwrap();
    let (_, holdout) = folder.split_holdout(2).unwrap();
    let loaded = holdout.load(ORL_SIZE).unwrap();
    assert_eq!(loaded.len(), 20);
    assert_eq!(loaded.image_len(), 92 * 112);
    assert_eq!(loaded.data.len(), 20 * 92 * 112);
    assert_eq!(loaded.labels, [[0u32; 10], [1; 10]].concat());
    for i in [0, 7, 13, 19] {
        let (w, h, raw) = pgm_values(&loaded.paths[i]);
        assert_eq!((w, h), (92, 112));
        for (k, (&got, &byte)) in loaded.image(i).iter().zip(&raw).enumerate() {
            assert!(
                (got - byte as f32 / 255.0).abs() < 1e-6,
                "{} pixel {k}: {got} vs {byte}",
                loaded.paths[i].display()
            );
        }
    }
}

#[test]
fn labelled_paths_are_what_load_decodes_in_its_order() {
    let folder = ImageFolder::open(ORL).unwrap();
    let (first_three, _) = folder.split_holdout(37).unwrap();
    let (paths, labels) = first_three.labelled_paths();
    let loaded = first_three.load(ORL_SIZE).unwrap();
    assert_eq!(paths, loaded.paths);
    assert_eq!(labels, loaded.labels);
    assert_eq!(labels, [[0u32; 10], [1; 10], [2; 10]].concat());
    assert!(paths[10].ends_with("s2/1.pgm"), "{}", paths[10].display());
    assert!(paths[19].ends_with("s2/10.pgm"), "{}", paths[19].display());
}

#[test]
fn resizing_is_bilinear_and_colour_replicates_grey() {
    let path = Path::new(ORL).join("s1/1.pgm");
    let (_, _, raw) = pgm_values(&path);
    let half = Preprocess {
        width: 46,
        height: 56,
        channels: 1,
    };
    let small = load_image(&path, half).unwrap();
    assert_eq!(small.len(), 46 * 56);
    // Averaging filters keep the mean brightness.
    let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
    let raw_mean = raw.iter().map(|&b| b as f64 / 255.0).sum::<f64>() / raw.len() as f64;
    assert!((mean(&small) - raw_mean).abs() < 0.01);
    // The same as the image crate's own triangle filter on the float image.
    let decoded = image::open(&path).unwrap().to_luma32f();
    let expected = image::imageops::resize(&decoded, 46, 56, image::imageops::FilterType::Triangle);
    assert_eq!(small, expected.into_raw());

    let rgb = load_image(
        &path,
        Preprocess {
            channels: 3,
            ..half
        },
    )
    .unwrap();
    let plane = 46 * 56;
    assert_eq!(rgb.len(), 3 * plane);
    for c in 0..3 {
        for (a, b) in rgb[c * plane..(c + 1) * plane].iter().zip(&small) {
            assert!((a - b).abs() < 1e-5, "channel {c}: {a} vs {b}");
        }
    }
}

#[test]
fn colour_images_load_as_planar_rgb_or_luma() {
    let dir = TempDir::new("faces-colour");
    // 3x2 pixels: red, green, blue / white, black, grey.
    let pixels: [[u8; 3]; 6] = [
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [255, 255, 255],
        [0, 0, 0],
        [128, 128, 128],
    ];
    let image = image::RgbImage::from_fn(3, 2, |x, y| image::Rgb(pixels[(y * 3 + x) as usize]));
    let path = dir.path().join("ann/a.png");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image.save(&path).unwrap();
    let size = Preprocess {
        width: 3,
        height: 2,
        channels: 3,
    };
    let rgb = load_image(&path, size).unwrap();
    for (p, pixel) in pixels.iter().enumerate() {
        for c in 0..3 {
            assert!((rgb[c * 6 + p] - pixel[c] as f32 / 255.0).abs() < 1e-6);
        }
    }
    let luma = load_image(
        &path,
        Preprocess {
            channels: 1,
            ..size
        },
    )
    .unwrap();
    assert_eq!(luma.len(), 6);
    // Rec. 709 luma: green is brightest, blue darkest; white 1, black 0.
    assert!(luma[1] > luma[0] && luma[0] > luma[2], "{luma:?}");
    assert!((luma[3] - 1.0).abs() < 1e-3 && luma[4].abs() < 1e-6);
}

#[test]
fn bad_preprocessing_is_an_error() {
    let path = Path::new(ORL).join("s1/1.pgm");
    for bad in [
        Preprocess {
            channels: 2,
            ..ORL_SIZE
        },
        Preprocess {
            width: 0,
            ..ORL_SIZE
        },
    ] {
        assert!(load_image(&path, bad).is_err(), "{bad:?}");
    }
}

#[test]
fn missing_folder_or_file_is_an_error() {
    let dir = TempDir::new("faces-missing");
    let missing = dir.path().join("nowhere");
    let err = ImageFolder::open(&missing).unwrap_err().to_string();
    assert!(
        err.contains("nowhere") && err.contains("no such folder"),
        "{err}"
    );

    let file = dir.write("plain.txt", b"hello");
    let err = ImageFolder::open(&file).unwrap_err().to_string();
    assert!(err.contains("not a folder"), "{err}");
}

#[test]
fn folder_without_identities_is_an_error() {
    let dir = TempDir::new("faces-empty");
    let err = ImageFolder::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("no identities"), "{err}");

    // Loose images, hidden folders and empty identity folders do not make identities.
    dir.write("loose.pgm", &pgm(2, 2, &[1, 2, 3, 4]));
    dir.write(".hidden/1.pgm", &pgm(2, 2, &[1, 2, 3, 4]));
    std::fs::create_dir_all(dir.path().join("nobody")).unwrap();
    let err = ImageFolder::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("no identities"), "{err}");
}

#[test]
fn single_image_identities_are_kept_with_a_warning() {
    let dir = TempDir::new("faces-single");
    dir.write("ann/1.pgm", &pgm(2, 2, &[1, 2, 3, 4]));
    dir.write("ann/2.pgm", &pgm(2, 2, &[5, 6, 7, 8]));
    dir.write("bob/only.pgm", &pgm(2, 2, &[9, 9, 9, 9]));
    std::fs::create_dir_all(dir.path().join("carl")).unwrap();
    dir.write("ann/notes.txt", b"not a face");
    dir.write("ann/.DS_Store", b"\0\0");
    dir.write("ann/sub/3.pgm", &pgm(2, 2, &[1, 1, 1, 1]));

    let folder = ImageFolder::open(dir.path()).unwrap();
    let names: Vec<&str> = folder.identities.iter().map(|i| i.name.as_str()).collect();
    // A folder of images inside an identity's folder is an identity of its own.
    assert_eq!(names, ["ann", "ann/sub", "bob"]);
    assert_eq!(folder.identities[0].images.len(), 2);
    assert_eq!(folder.single_image_identities(), ["ann/sub", "bob"]);
    let warnings = folder.warnings.join("\n");
    assert!(
        warnings.contains("bob") && warnings.contains("positive"),
        "{warnings}"
    );
    assert!(warnings.contains("ann/sub"), "{warnings}");
    assert!(
        warnings.contains("carl") && warnings.contains("no images"),
        "{warnings}"
    );
    assert!(warnings.contains("notes.txt"), "{warnings}");
    assert!(!warnings.contains("DS_Store"), "{warnings}");
    assert_eq!(folder.warnings.len(), 4, "{warnings}");

    let loaded = folder
        .load(Preprocess {
            width: 2,
            height: 2,
            channels: 1,
        })
        .unwrap();
    assert_eq!(loaded.labels, [0, 0, 1, 2]);
}

#[test]
fn corrupt_or_unreadable_images_name_the_file() {
    let size = Preprocess {
        width: 2,
        height: 2,
        channels: 1,
    };
    let cases: [(&str, &[u8]); 4] = [
        ("garbage.png", b"this is not an image at all"),
        ("truncated.pgm", b"P5\n4 4\n255\n\x01\x02"),
        ("empty.jpg", b""),
        ("cut.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
    ];
    for (name, bytes) in cases {
        let dir = TempDir::new("faces-corrupt");
        dir.write("ann/1.pgm", &pgm(2, 2, &[1, 2, 3, 4]));
        dir.write(&format!("ann/{name}"), bytes);
        let folder = ImageFolder::open(dir.path()).unwrap();
        let err = folder.load(size).unwrap_err().to_string();
        assert!(err.contains(name), "{name}: {err}");
    }
}

#[test]
fn images_decode_by_content_not_extension() {
    let dir = TempDir::new("faces-content");
    // A PGM saved with a .png name still loads.
    let path = dir.write("ann/looks_like.png", &pgm(2, 1, &[0, 255]));
    let values = load_image(
        &path,
        Preprocess {
            width: 2,
            height: 1,
            channels: 1,
        },
    )
    .unwrap();
    assert_eq!(values, [0.0, 1.0]);
}

#[test]
fn nested_folders_list_their_leaf_identities_with_groups() {
    // Omniglot's layout: DIR/<alphabet>/<character>/<drawing>, natural order at every level.
    let dir = TempDir::new("faces-nested");
    for (path, v) in [
        ("Latin/character10/a.png", 1),
        ("Latin/character2/a.png", 2),
        ("Latin/character2/b.png", 3),
        ("Greek/character1/a.png", 4),
        ("Greek/character1/b.png", 5),
        ("Latin/character10/b.png", 6),
    ] {
        dir.write(path, &pgm(2, 2, &[v; 4]));
    }
    dir.write("README.txt", b"loose files at the root are no identity");
    let folder = ImageFolder::open(dir.path()).unwrap();
    let names: Vec<&str> = folder.identities.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        ["Greek/character1", "Latin/character2", "Latin/character10"]
    );
    let groups: Vec<&str> = folder.identities.iter().map(|i| i.group()).collect();
    assert_eq!(groups, ["Greek", "Latin", "Latin"]);
    assert!(folder.warnings.is_empty(), "{:?}", folder.warnings);
}
