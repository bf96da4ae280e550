//! Files that matter: written atomically (a reader, or a crash, sees the old content or the
//! new, never half of it), and checked before long work starts, so that a run does not fail at
//! its end on a path it could have refused at once.
//!
//! A write goes to a hidden temporary file beside the target, `.<name>.<pid>-<n>.tmp` (the same
//! folder, so the rename never crosses file systems), is flushed to disk, renamed over the
//! target, and the folder is synced so that the rename survives a power cut. A process killed
//! between creating and renaming leaves its temporary file behind; the next write to the same
//! target removes such files when the process that made them is gone.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};

/// Without /proc to tell whether a temporary file's process still runs, it counts as left
/// behind once it is this old.
const STALE_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Writes `bytes` to `path` atomically (see the module documentation).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically_with(path, |out| out.write_all(bytes))
}

/// Writes what `write` produces to `path` atomically; `write` gets a buffered writer on the
/// temporary file. On any failure the temporary file is removed and `path` is untouched.
pub fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let (folder, name) = split(path)?;
    if !folder.is_dir() {
        let why = if folder.exists() {
            "is not a folder"
        } else {
            "does not exist"
        };
        return Err(Error::file(
            path,
            format!("the folder {} {why}; nothing was written", folder.display()),
        ));
    }
    remove_left_behind(&folder, &name);
    let temporary = folder.join(temporary_name(&name, std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let file = File::create(&temporary)?;
        let mut out = BufWriter::new(file);
        write(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temporary, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temporary);
        return Err(Error::file(
            path,
            format!("cannot write: {e}; nothing was written"),
        ));
    }
    // Makes the rename itself durable; best effort, as not every platform can open a folder.
    if let Ok(dir) = File::open(&folder) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Checks, before any work, that a file can be written at `path`: it is not a folder, its
/// folder exists and accepts a new file, and its extension is one of `extensions` (any
/// extension when empty; compared without case). What is checked is written to nothing.
pub fn check_output(path: &Path, extensions: &[&str]) -> Result<()> {
    if path.is_dir() {
        return Err(Error::file(path, "is a folder: give a file name"));
    }
    if !extensions.is_empty() {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let wanted = extensions
            .iter()
            .map(|e| format!(".{e}"))
            .collect::<Vec<_>>()
            .join(", ");
        match extension {
            Some(e) if extensions.contains(&e.as_str()) => {}
            Some(e) => {
                return Err(Error::file(
                    path,
                    format!("cannot write `.{e}` files here: use {wanted}"),
                ))
            }
            None => {
                return Err(Error::file(
                    path,
                    format!("no file extension: use {wanted}"),
                ))
            }
        }
    }
    let (folder, name) = split(path)?;
    if !folder.is_dir() {
        let why = if folder.exists() {
            "is not a folder"
        } else {
            "does not exist"
        };
        return Err(Error::file(
            path,
            format!("the folder {} {why}", folder.display()),
        ));
    }
    if path.exists() && fs::OpenOptions::new().append(true).open(path).is_err() {
        return Err(Error::file(
            path,
            "exists and cannot be replaced (read-only)",
        ));
    }
    let probe = folder.join(temporary_name(&name, std::process::id()));
    match File::create(&probe) {
        Ok(_) => {
            let _ = fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(Error::file(
            path,
            format!("cannot create files in {}: {e}", folder.display()),
        )),
    }
}

/// The folder and file name of `path` (the current folder when it names none).
fn split(path: &Path) -> Result<(PathBuf, String)> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::file(path, "not a file name"))?
        .to_string_lossy()
        .into_owned();
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((folder, name))
}

fn temporary_name(name: &str, pid: u32) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        ".{name}.{pid}-{}.tmp",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The process id of a temporary file of `name` (`.<name>.<pid>-<n>.tmp`), if `file` is one.
fn temporary_pid(file: &str, name: &str) -> Option<u32> {
    let rest = file
        .strip_prefix('.')?
        .strip_prefix(name)?
        .strip_prefix('.')?;
    let (pid, counter) = rest.strip_suffix(".tmp")?.split_once('-')?;
    counter.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Removes the temporary files of `name` in `folder` whose process has ended (or, where that
/// cannot be told, that are older than `STALE_AFTER`). Best effort: a failure changes nothing.
fn remove_left_behind(folder: &Path, name: &str) {
    let Ok(entries) = fs::read_dir(folder) else {
        return;
    };
    let proc_available = Path::new("/proc/self").exists();
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = temporary_pid(&file.to_string_lossy(), name) else {
            continue;
        };
        let gone = if proc_available {
            pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
        } else {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > STALE_AFTER)
        };
        if gone {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_parse_back() {
        assert_eq!(
            temporary_pid(".m.safetensors.123-4.tmp", "m.safetensors"),
            Some(123)
        );
        assert_eq!(temporary_pid(".m.safetensors.123-4.tmp", "m"), None);
        assert_eq!(
            temporary_pid("m.safetensors.123-4.tmp", "m.safetensors"),
            None
        );
        assert_eq!(
            temporary_pid(".m.safetensors.x-4.tmp", "m.safetensors"),
            None
        );
        let made = temporary_name("a.png", 77);
        assert_eq!(temporary_pid(&made, "a.png"), Some(77));
    }
}
