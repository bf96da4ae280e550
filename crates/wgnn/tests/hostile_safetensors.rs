//! Safetensors files cut short, with bits flipped and with wrong headers: each load ends in a
//! clean error naming the file (or, for a flip inside the data that leaves finite numbers, the
//! parameters), never in a panic.
use wgnn_reference::testing as common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use common::gpu;
use wgnn::nn::ParamStore;
use wgnn::rng::Rng;
use wgnn::{Error, Shape};

fn scratch() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile_safetensors");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn load_cleanly(path: &Path, bytes: &[u8], expected: &[(String, Shape)]) -> Result<(), String> {
    std::fs::write(path, bytes).unwrap();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        (
            ParamStore::load_safetensors(gpu(), path),
            ParamStore::load_for(gpu(), path, expected),
        )
    }));
    let Ok((all, some)) = outcome else {
        panic!(
            "loading {} ({} bytes) panicked",
            path.display(),
            bytes.len()
        );
    };
    let mut result = Ok(());
    for r in [all.map(|_| ()), some.map(|_| ())] {
        match r {
            Ok(()) => {}
            Err(Error::File {
                path: named,
                message,
            }) => {
                assert_eq!(named, path, "{message}");
                result = Err(message);
            }
            Err(other) => panic!("{}: not a file error: {other}", path.display()),
        }
    }
    result
}

#[test]
fn truncations_flips_and_wrong_headers_end_in_clean_errors() {
    let gpu = gpu();
    let dir = scratch();
    let path = dir.join("weights.safetensors");
    let mut rng = Rng::new(2);
    let mut store = ParamStore::new();
    store
        .insert_f32(
            gpu,
            "conv.weight",
            [4, 3, 3, 3],
            &rng.vec_f32(108, -1.0, 1.0),
        )
        .unwrap();
    store
        .insert_f32(gpu, "conv.bias", [4], &rng.vec_f32(4, -1.0, 1.0))
        .unwrap();
    store
        .save_safetensors(gpu, &path, &Default::default())
        .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let expected = vec![
        ("conv.weight".to_string(), Shape::from([4, 3, 3, 3])),
        ("conv.bias".to_string(), Shape::from([4])),
    ];
    assert!(load_cleanly(&path, &bytes, &expected).is_ok());
    for _ in 0..60 {
        let keep = rng.below(bytes.len());
        assert!(
            load_cleanly(&path, &bytes[..keep], &expected).is_err(),
            "cut to {keep} loaded"
        );
    }
    let header_len = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    for _ in 0..120 {
        let mut flipped = bytes.clone();
        // Half the flips in the header and its length, half anywhere.
        let span = if rng.below(2) == 0 {
            header_len
        } else {
            bytes.len()
        };
        let at = rng.below(span);
        flipped[at] ^= 1 << rng.below(8);
        let _ = load_cleanly(&path, &flipped, &expected);
    }
    for header in [
        &b"\x89PNG\r\n\x1a\n"[..],
        b"{\"__metadata__\":{}}",
        &[0xff; 8],
        &[0; 8],
    ] {
        let mut wrong = header.to_vec();
        wrong.extend_from_slice(&bytes[8..]);
        assert!(load_cleanly(&path, &wrong, &expected).is_err());
    }
}
