//! The decoder's pixel limit, which is process-wide: in a test binary of its own, so that
//! lowering it cannot reach another test.

use std::path::{Path, PathBuf};

use wgnn::Error;
use wgnn_models::imaging::io;

fn asset(name: &str) -> PathBuf {
    Path::new(env!("WGNN_ASSETS")).join(name)
}

fn assert_file_error<T>(result: wgnn::Result<T>, path: &Path, needle: &str) {
    match result {
        Err(Error::File { path: p, message }) => {
            assert_eq!(p, path);
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
        Err(other) => panic!("expected a file error naming {path:?}, got {other}"),
        Ok(_) => panic!("expected a file error for {path:?}, got Ok"),
    }
}

/// A PNG made of a signature, a header chunk claiming `width` x `height` RGB, and an empty
/// data chunk: what a decoder reads before it allocates the picture.
fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in bytes {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
        out
    };
    let mut header = width.to_be_bytes().to_vec();
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &header));
    png.extend(chunk(b"IDAT", &[]));
    png
}

#[test]
fn an_image_over_the_pixel_limit_is_refused_from_its_header() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("image_limits");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("huge.png");
    std::fs::write(&path, png_header_only(20000, 20000)).unwrap();
    assert_file_error(io::load(&path), &path, "20000x20000");
    assert_file_error(io::load(&path), &path, "--max-image-pixels");
    // The same limit for JPEG, from its own header; it can be lowered and raised again.
    let jpeg = asset("scream.jpg");
    let png = asset("chelsea.png");
    io::set_max_pixels(300 * 300);
    assert_file_error(io::load(&jpeg), &jpeg, "over the limit of 0.1 megapixels");
    assert_file_error(io::load(&png), &png, "451x300");
    io::set_max_pixels(io::DEFAULT_MAX_PIXELS);
    assert!(io::load(&jpeg).is_ok() && io::load(&png).is_ok());
}
