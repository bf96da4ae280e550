//! Shaders: WGSL files under `src/`, each beside the Rust file that dispatches it, assembled from
//! `#include` lines.
//!
//! A line `#include "ops/gemm/subgroup.wgsl"` (a path under `src/`) is replaced by that file's
//! text. The including file lists the files it includes (`WgslFile::includes`, embedded with
//! `include_str!` by `wgsl_file!`), so nothing is read from disk at run time and a shader's
//! dependencies are visible in Rust. Each file goes into a shader once, at its first `#include`
//! (later ones are dropped); an `#include` of a file that is not listed, and a listed file that is
//! never included, are errors. Nothing else is prepended: the assembled text is the whole shader.

use super::StructLayout;

/// One WGSL file under `src/` and the files its `#include` lines name.
#[derive(Debug)]
pub struct WgslFile {
    /// The path under `src/`, as `#include` lines name it.
    pub path: &'static str,
    pub source: &'static str,
    pub includes: &'static [&'static WgslFile],
}

/// A `WgslFile` for a path under `src/`, embedded at build time, and the files it includes:
/// `wgsl_file!("ops/conv/common.wgsl", [&gemm::BLOCK4])`.
macro_rules! wgsl_file {
    ($path:literal) => {
        $crate::gpu::wgsl_file!($path, [])
    };
    ($path:literal, [$($include:expr),* $(,)?]) => {
        $crate::gpu::WgslFile {
            path: $path,
            source: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/", $path)),
            includes: &[$($include),*],
        }
    };
}
pub(crate) use wgsl_file;

/// A shader module: the WGSL file whose entry points are dispatched, with its includes.
#[derive(Debug)]
pub struct Shader {
    /// Names the shader in pipeline labels (`name::entry`) and in the pipeline cache.
    pub name: &'static str,
    pub file: WgslFile,
    /// Uses subgroup operations: compiled only on devices where `Gpu::subgroup_broadcast` holds.
    pub subgroups: bool,
    /// The structs that the host writes for it (its uniform `Params`, ...): each WGSL struct's
    /// name and the layout of the Rust struct that fills it (`shader_struct!`), which
    /// `check_structs` compares.
    pub structs: &'static [(&'static str, StructLayout)],
}

impl Shader {
    /// The source that is compiled: the file with its includes inserted.
    pub fn source(&self) -> Result<String, String> {
        assemble(&self.file)
    }

    /// The file and every file it includes, directly or not, each once.
    pub fn files(&self) -> Vec<&WgslFile> {
        let mut files = vec![&self.file];
        let mut next = 0;
        while next < files.len() {
            for &included in files[next].includes {
                if !files.iter().any(|f| f.path == included.path) {
                    files.push(included);
                }
            }
            next += 1;
        }
        files
    }
}

/// `file` with each `#include` line replaced by the included file's (assembled) text, the first
/// time that file is named; see the module documentation.
pub fn assemble(file: &WgslFile) -> Result<String, String> {
    let mut text = String::new();
    let mut inserted = vec![file.path];
    insert(file, &mut inserted, &mut text)?;
    Ok(text)
}

fn insert(
    file: &WgslFile,
    inserted: &mut Vec<&'static str>,
    text: &mut String,
) -> Result<(), String> {
    let mut named = vec![false; file.includes.len()];
    for (number, line) in file.source.lines().enumerate() {
        let Some(target) = include_target(line) else {
            text.push_str(line);
            text.push('\n');
            continue;
        };
        let at = format!("{}:{}", file.path, number + 1);
        let target = target.map_err(|e| format!("{at}: {e}"))?;
        let index = file
            .includes
            .iter()
            .position(|f| f.path == target)
            .ok_or_else(|| {
                format!("{at}: `#include \"{target}\"` names a file that is not among its includes")
            })?;
        named[index] = true;
        let included = file.includes[index];
        if !inserted.contains(&included.path) {
            inserted.push(included.path);
            text.push_str(&format!("// ---- {} ----\n", included.path));
            insert(included, inserted, text)?;
            text.push_str(&format!("// ---- end of {} ----\n", included.path));
        }
    }
    if let Some(unused) = named.iter().position(|&n| !n) {
        return Err(format!(
            "{} lists {} among its includes but has no `#include` line for it",
            file.path, file.includes[unused].path
        ));
    }
    Ok(())
}

/// The path of an `#include "path"` line; None for every other line.
fn include_target(line: &str) -> Option<Result<&str, String>> {
    let rest = line.trim().strip_prefix("#include")?;
    let path = rest
        .trim()
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .filter(|p| !p.is_empty() && !p.contains('"'));
    Some(path.ok_or_else(|| format!("`{}` is not `#include \"path\"`", line.trim())))
}

/// Assembles, parses and validates a shader with naga, returning naga's message on failure.
pub fn validate_wgsl(shader: &Shader) -> Result<(), String> {
    let source = shader.source()?;
    let module = naga::front::wgsl::parse_str(&source).map_err(|e| e.emit_to_string(&source))?;
    let mut capabilities = naga::valid::Capabilities::default();
    if shader.subgroups {
        capabilities |= naga::valid::Capabilities::SUBGROUP;
    }
    let mut validator =
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities);
    validator
        .validate(&module)
        .map_err(|e| e.emit_to_string(&source))?;
    Ok(())
}
