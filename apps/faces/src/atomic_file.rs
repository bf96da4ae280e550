//! Writing files so that a reader (or a crash) sees the old content or the new, never half of it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use wgnn::{Error, Result};

/// Writes `bytes` to `path` atomically: a temporary file in the same folder (so the rename does
/// not cross file systems), flushed to disk, renamed over `path`, then the folder is synced so the
/// rename itself survives a power cut. On failure the temporary file is removed and `path` is
/// untouched.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let temporary = temporary_path(path)?;
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temporary, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(Error::file(path, format!("cannot write: {e}")));
    }
    sync_folder(path);
    Ok(())
}

/// `.<name>.<pid>-<counter>.tmp` beside `path`: hidden, unique within and across processes.
fn temporary_path(path: &Path) -> Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| Error::file(path, "not a file name"))?
        .to_string_lossy();
    let unique = format!(
        ".{name}.{}-{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    Ok(path.with_file_name(unique))
}

/// Best effort: folders cannot be opened for syncing on every platform.
fn sync_folder(path: &Path) {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(dir) = std::fs::File::open(folder) {
        let _ = dir.sync_all();
    }
}
