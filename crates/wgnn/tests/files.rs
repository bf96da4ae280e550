//! Atomic writes and output checks: refused paths are named with the reason, and temporary
//! files that a killed process left behind are removed by the next write to the same target.

use std::path::{Path, PathBuf};

use wgnn::files::{check_output, write_atomically};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("files")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn refused(path: &Path, extensions: &[&str], needle: &str) {
    let err = check_output(path, extensions).unwrap_err().to_string();
    assert!(
        err.contains(&path.display().to_string()) && err.contains(needle),
        "{err:?} lacks {needle:?}"
    );
}

#[test]
fn outputs_are_checked_before_any_work() {
    let dir = scratch("check");
    check_output(&dir.join("model.safetensors"), &["safetensors"]).unwrap();
    check_output(&dir.join("Out.PNG"), &["png", "jpg"]).unwrap();
    check_output(&dir.join("anything"), &[]).unwrap();
    refused(&dir, &[], "is a folder");
    refused(
        &dir.join("missing").join("m.safetensors"),
        &[],
        "does not exist",
    );
    std::fs::write(dir.join("plain"), b"x").unwrap();
    refused(
        &dir.join("plain").join("m.safetensors"),
        &[],
        "is not a folder",
    );
    refused(
        &dir.join("roc.xyz"),
        &["png"],
        "cannot write `.xyz` files here: use .png",
    );
    refused(&dir.join("roc"), &["png"], "no file extension");
    assert_eq!(listing(&dir), ["plain"], "a check writes nothing");
}

#[test]
fn a_write_replaces_the_file_whole_and_a_failed_one_changes_nothing() {
    let dir = scratch("write");
    let target = dir.join("state.bin");
    write_atomically(&target, b"first").unwrap();
    write_atomically(&target, b"second").unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"second");
    let blocked = dir.join("taken");
    std::fs::create_dir(&blocked).unwrap();
    std::fs::write(blocked.join("keep"), b"x").unwrap();
    let err = write_atomically(&blocked, b"new").unwrap_err().to_string();
    assert!(err.contains("nothing was written"), "{err}");
    let missing = dir.join("nowhere").join("state.bin");
    let err = write_atomically(&missing, b"new").unwrap_err().to_string();
    assert!(err.contains("does not exist"), "{err}");
    assert_eq!(listing(&dir), ["state.bin", "taken"]);
}

#[test]
fn temporaries_of_ended_processes_are_removed_by_the_next_write() {
    let dir = scratch("left_behind");
    let target = dir.join("model.safetensors");
    // A process id above Linux's largest (2^22) never runs.
    let dead = ".model.safetensors.4194305-0.tmp";
    let alive = format!(".model.safetensors.{}-99.tmp", std::process::id());
    let other = ".other.safetensors.4194305-0.tmp";
    for name in [dead, alive.as_str(), other] {
        std::fs::write(dir.join(name), b"partial").unwrap();
    }
    write_atomically(&target, b"whole").unwrap();
    let mut expected = vec![
        alive.clone(),
        other.to_string(),
        "model.safetensors".to_string(),
    ];
    expected.sort();
    assert_eq!(listing(&dir), expected);
}
