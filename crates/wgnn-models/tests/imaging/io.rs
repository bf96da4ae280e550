use std::path::Path;

use image::ImageEncoder;
use wgnn::Error;
use wgnn_models::imaging::{io, RgbImage};

use crate::{asset, listing, pattern_u8, scratch_dir};

/// Asserts an `Error::File` naming `path` whose message contains `needle`.
fn assert_file_error<T>(result: wgnn::Result<T>, path: &Path, needle: &str) {
    match result {
        Err(Error::File {
            path: named,
            message,
        }) => {
            assert_eq!(named, path, "the error names the path");
            assert!(
                message.to_lowercase().contains(&needle.to_lowercase()),
                "message {message:?} should mention {needle:?}"
            );
            let shown = Error::File {
                path: named,
                message,
            }
            .to_string();
            assert!(shown.contains(&path.display().to_string()), "{shown}");
        }
        Err(other) => panic!(
            "expected a file error for {}, got {other:?}",
            path.display()
        ),
        Ok(_) => panic!("expected a file error for {}, got Ok", path.display()),
    }
}

#[test]
fn png_round_trip_is_exact() {
    let dir = scratch_dir("png_round_trip");
    let image = RgbImage::from_rgb8(7, 5, &pattern_u8(7, 5)).unwrap();
    let path = dir.join("pattern.png");
    io::save(&image, &path).unwrap();
    assert_eq!(io::load(&path).unwrap(), image);
    assert_eq!(listing(&dir), ["pattern.png"], "no temporary file is left");

    // Saving again replaces the file.
    let other = RgbImage::filled(3, 2, [1.0, 0.0, 0.2]).unwrap();
    io::save(&other, &path).unwrap();
    let back = io::load(&path).unwrap();
    assert_eq!((back.width, back.height), (3, 2));
    assert_eq!(back.to_rgb8(), other.to_rgb8());
}

#[test]
fn jpeg_round_trip_is_close() {
    let dir = scratch_dir("jpeg_round_trip");
    let photo = io::load(asset("chelsea.png")).unwrap();
    for name in ["cat.jpg", "cat.JPEG"] {
        let path = dir.join(name);
        io::save(&photo, &path).unwrap();
        let back = io::load(&path).unwrap();
        assert_eq!((back.width, back.height), (451, 300));
        let mean_error = back
            .data
            .iter()
            .zip(&photo.data)
            .map(|(a, b)| (a - b).abs() as f64)
            .sum::<f64>()
            / photo.data.len() as f64;
        assert!(mean_error < 0.02, "{name}: mean error {mean_error}");
    }
}

#[test]
fn save_clamps_to_the_unit_range() {
    let dir = scratch_dir("save_clamps");
    let image = RgbImage::new(2, 1, vec![-0.5, 1.5, 0.5, f32::INFINITY, 0.0, 1.0]).unwrap();
    let path = dir.join("clamped.png");
    io::save(&image, &path).unwrap();
    assert_eq!(
        io::load(&path).unwrap().to_rgb8(),
        [0, 128, 0, 255, 255, 255]
    );
}

#[test]
fn every_enabled_format_loads() {
    let dir = scratch_dir("formats");
    let (w, h) = (5, 4);
    // Few distinct colours, so that GIF's palette holds them exactly.
    let rgb: Vec<u8> = (0..w * h)
        .flat_map(|i| {
            [
                (i % 4) as u8 * 80,
                (i % 3) as u8 * 100,
                255 - (i % 2) as u8 * 255,
            ]
        })
        .collect();
    let expected = RgbImage::from_rgb8(w, h, &rgb).unwrap();
    let buffer = image::RgbImage::from_raw(w as u32, h as u32, rgb.clone()).unwrap();
    for (name, format) in [
        ("a.gif", image::ImageFormat::Gif),
        ("a.ppm", image::ImageFormat::Pnm),
        ("a.bmp", image::ImageFormat::Bmp),
        ("a.png", image::ImageFormat::Png),
    ] {
        let path = dir.join(name);
        buffer.save_with_format(&path, format).unwrap();
        assert_eq!(io::load(&path).unwrap(), expected, "{name}");
    }
    // The contents decide, not the extension: a PNG named .jpg still loads.
    std::fs::copy(dir.join("a.png"), dir.join("png-inside.jpg")).unwrap();
    assert_eq!(io::load(dir.join("png-inside.jpg")).unwrap(), expected);
    // JPEG from the bundled painting.
    let style = io::load(asset("starry_night.jpg")).unwrap();
    assert_eq!((style.width, style.height), (752, 600));
}

#[test]
fn grey_and_alpha_images_become_rgb() {
    let brick = io::load(asset("brick.png")).unwrap();
    assert_eq!((brick.width, brick.height), (512, 512));
    assert_eq!(brick.channel(0), brick.channel(1));
    assert_eq!(brick.channel(0), brick.channel(2));

    let dir = scratch_dir("alpha");
    let path = dir.join("rgba.png");
    let rgba = [10u8, 20, 30, 0, 40, 50, 60, 255];
    let file = std::fs::File::create(&path).unwrap();
    image::codecs::png::PngEncoder::new(file)
        .write_image(&rgba, 2, 1, image::ExtendedColorType::Rgba8)
        .unwrap();
    // Alpha is dropped, not composited (as PIL's convert("RGB")).
    assert_eq!(io::load(&path).unwrap().to_rgb8(), [10, 20, 30, 40, 50, 60]);
}

#[test]
fn missing_file_is_an_error_naming_the_path() {
    let dir = scratch_dir("missing");
    let path = dir.join("no-such-picture.png");
    assert_file_error(io::load(&path), &path, "no such file");
    assert_file_error(io::load(&dir), &dir, "directory");
}

#[test]
fn corrupt_file_is_an_error_naming_the_path() {
    let dir = scratch_dir("corrupt");
    let png = std::fs::read(asset("chelsea.png")).unwrap();

    let truncated = dir.join("truncated.png");
    std::fs::write(&truncated, &png[..png.len() / 2]).unwrap();
    assert_file_error(io::load(&truncated), &truncated, "PNG");

    // A zero width in the header.
    let damaged = dir.join("damaged.png");
    let mut bytes = png.clone();
    bytes[16..20].fill(0);
    std::fs::write(&damaged, &bytes).unwrap();
    assert_file_error(io::load(&damaged), &damaged, "corrupt");

    let jpeg = std::fs::read(asset("scream.jpg")).unwrap();
    let truncated_jpeg = dir.join("truncated.jpg");
    std::fs::write(&truncated_jpeg, &jpeg[..600]).unwrap();
    assert_file_error(io::load(&truncated_jpeg), &truncated_jpeg, "JPEG");

    let empty = dir.join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(io::load(&empty), Err(Error::File { path, .. }) if path == empty));

    assert_file_error(
        io::decode(b"\x89PNG\r\n\x1a\nnot really", "<embedded x.png>"),
        Path::new("<embedded x.png>"),
        "PNG",
    );
}

#[test]
fn unsupported_format_is_an_error_naming_the_path() {
    let dir = scratch_dir("unsupported");
    let text = dir.join("notes.txt");
    std::fs::write(&text, "just some words, not a picture").unwrap();
    assert_file_error(io::load(&text), &text, "supported: PNG");

    // A TIFF header: recognised, but TIFF is not among the enabled formats.
    let tiff = dir.join("scan.tif");
    std::fs::write(&tiff, b"II*\0\x08\0\0\0\0\0\0\0\0\0\0\0").unwrap();
    assert_file_error(io::load(&tiff), &tiff, "unsupported");
}

#[test]
fn failed_save_leaves_nothing() {
    let dir = scratch_dir("failed_save");
    let image = RgbImage::filled(4, 3, [0.25, 0.5, 0.75]).unwrap();

    // Unknown or missing extension: refused before anything is created.
    for name in ["out.gif", "out.webp", "out"] {
        let path = dir.join(name);
        assert_file_error(io::save(&image, &path), &path, ".png");
    }
    // A directory that does not exist.
    let path = dir.join("no-such-dir").join("out.png");
    assert_file_error(io::save(&image, &path), &path, "does not exist");
    assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));

    // The destination is a non-empty directory: the image is encoded into a temporary file,
    // then the rename fails; the temporary file must be gone.
    let blocker = dir.join("taken.png");
    std::fs::create_dir(&blocker).unwrap();
    std::fs::write(blocker.join("keep"), b"x").unwrap();
    assert_file_error(io::save(&image, &blocker), &blocker, "nothing was written");
    assert_eq!(listing(&dir), ["taken.png"]);

    // NaN samples: refused, and an existing file at the destination is left untouched.
    let existing = dir.join("existing.png");
    io::save(&image, &existing).unwrap();
    let before = std::fs::read(&existing).unwrap();
    let mut broken = image.clone();
    broken.data[5] = f32::NAN;
    assert_file_error(io::save(&broken, &existing), &existing, "NaN");
    assert_eq!(std::fs::read(&existing).unwrap(), before);

    // Inconsistent dimensions (the fields are public).
    let inconsistent = RgbImage {
        width: 4,
        height: 3,
        data: vec![0.5; 7],
    };
    assert_file_error(
        io::save(&inconsistent, &existing),
        &existing,
        "nothing was written",
    );
    assert_eq!(std::fs::read(&existing).unwrap(), before);
    assert_eq!(listing(&dir), ["existing.png", "taken.png"]);
}

#[test]
fn a_jpeg_cut_anywhere_before_its_end_is_refused() {
    let dir = scratch_dir("jpeg_cuts");
    let jpeg = std::fs::read(asset("scream.jpg")).unwrap();
    // The lenient decoder fills what is missing with grey and succeeds on all of these.
    for keep in [jpeg.len() - 100, jpeg.len() * 3 / 4, jpeg.len() / 2, 2000] {
        let path = dir.join(format!("cut_{keep}.jpg"));
        std::fs::write(&path, &jpeg[..keep]).unwrap();
        assert_file_error(io::load(&path), &path, "JPEG file");
    }
    let whole = io::load(asset("scream.jpg")).unwrap();
    assert!(whole.width > 0 && whole.is_8bit());
}
