//! `stylize` over a table of bad arguments: each exits non-zero (2 for what clap refuses, 1 for
//! what the run refuses before any work) with a message naming the flag or the file, and writes
//! nothing.

use std::path::Path;
use std::process::Command;

fn scratch() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("stylize_cli");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn bad_arguments_are_refused_by_name() {
    let dir = scratch();
    let out = dir.join("out.png");
    let truncated = dir.join("truncated.jpg");
    let jpeg = std::fs::read(Path::new(env!("WGNN_ASSETS")).join("scream.jpg")).unwrap();
    std::fs::write(&truncated, &jpeg[..jpeg.len() / 2]).unwrap();
    let folder = dir.join("a_folder");
    std::fs::create_dir(&folder).unwrap();
    let truncated = truncated.to_str().unwrap().to_string();
    let folder = folder.to_str().unwrap().to_string();
    let missing = dir
        .join("missing")
        .join("out.png")
        .to_str()
        .unwrap()
        .to_string();
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["--size", "-1"], 2, "--size"),
        (vec!["--size", "0"], 2, "--size"),
        (vec!["--size", "big"], 2, "--size"),
        (vec!["--scales", "0"], 2, "--scales"),
        (vec!["--iterations", "-3"], 2, "--iterations"),
        (vec!["--style", "a.jpg,,b.jpg"], 2, "--style"),
        (vec!["--content-layers", "fire2,"], 2, "--content-layers"),
        (vec!["--model", "resnet"], 2, "--model"),
        (vec!["--max-image-pixels", "0"], 2, "--max-image-pixels"),
        (vec!["--style-scale", "1000"], 1, "--style-scale"),
        (vec!["--style-scale", "0.01"], 1, "--style-scale"),
        (vec!["--style-weight", "nan"], 1, "--style-weight"),
        (vec!["--learning-rate", "0"], 1, "--learning-rate"),
        (vec!["--content-layers", "fire99"], 1, "fire99"),
        (vec!["--content", &truncated], 1, "truncated.jpg"),
        (vec!["--style", &truncated], 1, "truncated.jpg"),
        (
            vec!["--content", "no-such-photo.png"],
            1,
            "no-such-photo.png",
        ),
        (vec!["--max-image-pixels", "1000"], 1, "--max-image-pixels"),
        (vec!["--model", "vgg16"], 1, "--weights"),
    ];
    for (args, code, needle) in cases {
        let run = Command::new(env!("CARGO_BIN_EXE_stylize"))
            .args(&args)
            .args(["--iterations", "1", "--quiet", "--output"])
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: {stderr:?} does not name {needle}"
        );
        assert!(!out.exists(), "{args:?} wrote the output");
    }
    for (output, needle) in [
        (folder.as_str(), "is a folder"),
        (missing.as_str(), "does not exist"),
        ("out.gif", ".gif"),
    ] {
        let run = Command::new(env!("CARGO_BIN_EXE_stylize"))
            .args(["--iterations", "1", "--quiet", "--output", output])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{output}: {stderr}");
        assert!(
            stderr.contains(needle) && stderr.contains(output),
            "{output}: {stderr:?}"
        );
    }
}
