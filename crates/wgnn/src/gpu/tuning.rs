//! The autotuner's memory: which kernel design won for a (kernel role, shape class) on this
//! adapter and driver, kept in memory and in a cache file so that a later process does not
//! time the candidates again. The candidates and their timing belong to the op families
//! (`ops::gemm::choose`); this holds the choices.
//!
//! The cache file is plain text, one choice per line: `adapter<TAB>driver<TAB>key<TAB>choice`,
//! rewritten atomically when a choice is added. Lines of other adapters or drivers are kept.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::Result;

/// Whether kernels are chosen by timing them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TuningMode {
    /// Each design's built-in rule (`GemmVariant::for_device`), nothing timed.
    Off,
    /// On the first use of a shape class, time the candidates and keep the fastest; with a
    /// path, remember the choices there across processes.
    On { cache: Option<PathBuf> },
}

impl TuningMode {
    /// `WGNN_TUNE=1` or `0` turns the autotuner on or off; by default it is on for GPUs and off
    /// for CPU adapters (lavapipe), where timing the candidates of a large layer takes seconds
    /// and the built-in rule was measured there. `WGNN_TUNE_CACHE` names the cache file;
    /// otherwise it is `wgnn/tuning.tsv` under `XDG_CACHE_HOME` or `~/.cache`.
    pub fn from_env(cpu_adapter: bool) -> Self {
        let on = match std::env::var("WGNN_TUNE").as_deref() {
            Ok("1") => true,
            Ok("0") => false,
            _ => !cpu_adapter,
        };
        if !on {
            return TuningMode::Off;
        }
        let cache = std::env::var_os("WGNN_TUNE_CACHE")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
                    .map(|dir| dir.join("wgnn").join("tuning.tsv"))
            });
        TuningMode::On { cache }
    }
}

/// The choices made so far, and how many were timed or read from the cache file.
pub struct Tuner {
    pub mode: TuningMode,
    adapter: String,
    driver: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    loaded: bool,
    choices: HashMap<String, String>,
    /// Lines of the cache file that belong to other adapters or drivers.
    others: Vec<String>,
    timed: usize,
    from_cache: usize,
}

impl Tuner {
    pub(crate) fn new(mode: TuningMode, adapter: &str, driver: &str) -> Self {
        // Tabs and newlines would break the file's lines.
        let clean = |s: &str| s.replace(['\t', '\n'], " ");
        Self {
            mode,
            adapter: clean(adapter),
            driver: clean(driver),
            state: Mutex::new(State::default()),
        }
    }

    fn cache_path(&self) -> Option<&Path> {
        match &self.mode {
            TuningMode::On { cache } => cache.as_deref(),
            TuningMode::Off => None,
        }
    }

    /// The remembered choice for `key`, reading the cache file on first use (a file that cannot
    /// be read counts as empty: the candidates are timed again).
    pub fn choice(&self, key: &str) -> Option<String> {
        let mut state = self.state.lock().unwrap();
        if !state.loaded {
            state.loaded = true;
            if let Some(text) = self
                .cache_path()
                .and_then(|p| std::fs::read_to_string(p).ok())
            {
                for line in text.lines() {
                    let fields: Vec<&str> = line.split('\t').collect();
                    match fields.as_slice() {
                        [adapter, driver, key, choice]
                            if *adapter == self.adapter && *driver == self.driver =>
                        {
                            state.choices.insert(key.to_string(), choice.to_string());
                        }
                        [_, _, _, _] => state.others.push(line.to_string()),
                        _ => {}
                    }
                }
            }
        }
        let found = state.choices.get(key).cloned();
        if found.is_some() {
            state.from_cache += 1;
        }
        found
    }

    /// Remembers the timed choice for `key` and rewrites the cache file. A file that cannot be
    /// written is an error: a tuner told to remember must not silently forget.
    pub fn record(&self, key: &str, choice: &str) -> Result<()> {
        let mut state = self.state.lock().unwrap();
        state.timed += 1;
        state.choices.insert(key.to_string(), choice.to_string());
        let Some(path) = self.cache_path() else {
            return Ok(());
        };
        let mut lines = state.others.clone();
        let mut mine: Vec<_> = state.choices.iter().collect();
        mine.sort();
        for (key, choice) in mine {
            lines.push(format!(
                "{}\t{}\t{key}\t{choice}",
                self.adapter, self.driver
            ));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                crate::Error::file(dir, format!("cannot create the tuning cache's folder: {e}"))
            })?;
        }
        crate::files::write_atomically(path, (lines.join("\n") + "\n").as_bytes())
    }

    /// (choices timed, choices read back) so far.
    pub fn counts(&self) -> (usize, usize) {
        let state = self.state.lock().unwrap();
        (state.timed, state.from_cache)
    }
}
