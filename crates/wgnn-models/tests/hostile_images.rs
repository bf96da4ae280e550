//! Every image format the loader reads, cut short, with bits flipped and with wrong headers:
//! each attempt ends in a clean error naming the file (or, for a flip the format cannot detect,
//! a decoded picture), never in a panic.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use wgnn::rng::Rng;
use wgnn::Error;
use wgnn_models::imaging::{io, RgbImage};

fn scratch() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile_images");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A small picture in every readable format, written by the `image` crate.
fn samples() -> Vec<(&'static str, Vec<u8>)> {
    let mut rng = Rng::new(4);
    let (w, h) = (23u32, 17u32);
    let rgb: Vec<u8> = (0..w * h * 3).map(|_| rng.below(256) as u8).collect();
    let picture = image::RgbImage::from_raw(w, h, rgb).unwrap();
    let mut out = Vec::new();
    for (name, format) in [
        ("png", image::ImageFormat::Png),
        ("jpg", image::ImageFormat::Jpeg),
        ("gif", image::ImageFormat::Gif),
        ("bmp", image::ImageFormat::Bmp),
        ("ppm", image::ImageFormat::Pnm),
    ] {
        let mut bytes = std::io::Cursor::new(Vec::new());
        picture.write_to(&mut bytes, format).unwrap();
        out.push((name, bytes.into_inner()));
    }
    out
}

/// Loads `bytes` written at `path`: Ok, or an error that names `path`; a panic fails.
fn load_cleanly(path: &Path, bytes: &[u8]) -> Result<RgbImage, String> {
    std::fs::write(path, bytes).unwrap();
    let outcome = catch_unwind(AssertUnwindSafe(|| io::load(path)));
    match outcome {
        Err(_) => panic!(
            "loading {} ({} bytes) panicked",
            path.display(),
            bytes.len()
        ),
        Ok(Ok(image)) => Ok(image),
        Ok(Err(Error::File {
            path: named,
            message,
        })) => {
            assert_eq!(named, path, "{message}");
            Err(message)
        }
        Ok(Err(other)) => panic!("{}: not a file error: {other}", path.display()),
    }
}

#[test]
fn truncations_flips_and_wrong_headers_end_in_clean_errors() {
    let dir = scratch();
    let mut rng = Rng::new(17);
    for (extension, bytes) in samples() {
        let path = dir.join(format!("sample.{extension}"));
        assert!(
            load_cleanly(&path, &bytes).is_ok(),
            "the intact {extension} loads"
        );
        // Cut short anywhere: always an error (the last byte of a JPEG or GIF is an end
        // marker that the pixels do not need, so cuts keep at most all but two bytes).
        for _ in 0..40 {
            let keep = rng.below(bytes.len() - 2);
            let result = load_cleanly(&path, &bytes[..keep]);
            assert!(
                result.is_err(),
                "{extension} cut to {keep} of {} bytes loaded",
                bytes.len()
            );
        }
        // Flipped bits: an error or a picture of the stored size, never a panic.
        for _ in 0..60 {
            let mut flipped = bytes.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(flipped.len());
                flipped[at] ^= 1 << rng.below(8);
            }
            if let Ok(image) = load_cleanly(&path, &flipped) {
                assert!(image.width > 0 && image.height > 0);
            }
        }
        // Another format's header, or garbage, in front of the data.
        for prefix in [
            &b"\x89PNG\r\n\x1a\n"[..],
            b"\xff\xd8\xff\xe0",
            b"GIF89a",
            b"BM",
            b"P6\n",
            b"xx",
        ] {
            let mut wrong = prefix.to_vec();
            wrong.extend_from_slice(&bytes[prefix.len().min(bytes.len())..]);
            let _ = load_cleanly(&path, &wrong);
        }
    }
}
