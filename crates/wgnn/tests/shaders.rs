//! Every shader assembles from its `#include` lines, parses and validates with naga, so a WGSL
//! mistake fails here with naga's message rather than as a driver error at run time; every WGSL
//! file under `src/` belongs to a shader; the assembler's rules hold.

use std::collections::BTreeSet;
use std::path::Path;

use wgnn::gpu::{assemble, Shader, WgslFile};

#[test]
fn every_shader_validates_with_naga() {
    let shaders = wgnn::all_shaders();
    assert!(!shaders.is_empty());
    let failures: Vec<String> = shaders
        .iter()
        .filter_map(|s| {
            wgnn::gpu::validate_wgsl(s)
                .err()
                .map(|e| format!("{}: {e}", s.name))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What the driver does to every pipeline: naga replaces the overrides with constants for one
/// entry point. naga panics there on some orders of declarations (see ops/gemm/tiled.wgsl), which
/// this turns into a test failure naming the entry point. The host's constants change values,
/// not the declarations, so the defaults stand in for them.
#[test]
fn every_entry_point_specialises() {
    let mut failures = Vec::new();
    for shader in wgnn::all_shaders() {
        let source = shader.source().unwrap();
        let module = naga::front::wgsl::parse_str(&source).unwrap();
        let info = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        )
        .validate(&module)
        .unwrap();
        for entry in &module.entry_points {
            let result = std::panic::catch_unwind(|| {
                naga::back::pipeline_constants::process_overrides(
                    &module,
                    &info,
                    Some((naga::ShaderStage::Compute, &entry.name)),
                    &Default::default(),
                )
                .map(|_| ())
                .map_err(|e| e.to_string())
            });
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failures.push(format!("{}::{}: {e}", shader.name, entry.name)),
                Err(_) => failures.push(format!("{}::{}: naga panicked", shader.name, entry.name)),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn shader_names_are_unique() {
    let names: Vec<&str> = wgnn::all_shaders().iter().map(|s| s.name).collect();
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(names.len(), unique.len(), "{names:?}");
}

fn wgsl_files_under(dir: &Path, root: &Path, found: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            wgsl_files_under(&path, root, found);
        } else if path.extension().is_some_and(|e| e == "wgsl") {
            let relative = path.strip_prefix(root).unwrap();
            found.insert(relative.to_str().unwrap().replace('\\', "/"));
        }
    }
}

#[test]
fn every_wgsl_file_belongs_to_a_shader() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut on_disk = BTreeSet::new();
    wgsl_files_under(&src, &src, &mut on_disk);
    let used: BTreeSet<String> = wgnn::all_shaders()
        .iter()
        .flat_map(|s| s.files())
        .map(|f| f.path.to_string())
        .collect();
    let unused: Vec<&String> = on_disk.difference(&used).collect();
    assert!(
        unused.is_empty(),
        "WGSL files that no shader of wgnn::all_shaders() compiles or includes: {unused:?}"
    );
    assert_eq!(on_disk, used);
}

static HELPER: WgslFile = WgslFile {
    path: "test/helper.wgsl",
    source: "fn helper() -> f32 {\n    return 1.0;\n}\n",
    includes: &[],
};

static USES_HELPER: WgslFile = WgslFile {
    path: "test/uses_helper.wgsl",
    source: "#include \"test/helper.wgsl\"\nfn twice() -> f32 {\n    return 2.0 * helper();\n}\n",
    includes: &[&HELPER],
};

/// Names `HELPER` itself and through `USES_HELPER`, and once more.
static MAIN: WgslFile = WgslFile {
    path: "test/main.wgsl",
    source: "#include \"test/uses_helper.wgsl\"\n#include \"test/helper.wgsl\"\n  #include \"test/helper.wgsl\"\n@compute @workgroup_size(1)\nfn main() {\n    _ = twice() + helper();\n}\n",
    includes: &[&USES_HELPER, &HELPER],
};

/// Lists `HELPER` but includes `USES_HELPER`.
static UNLISTED: WgslFile = WgslFile {
    path: "test/main.wgsl",
    source: "#include \"test/uses_helper.wgsl\"\n",
    includes: &[&HELPER],
};

/// Lists `HELPER` and never includes it.
static UNUSED: WgslFile = WgslFile {
    path: "test/main.wgsl",
    source: "fn main() {}\n",
    includes: &[&HELPER],
};

#[test]
fn an_include_is_inserted_once_where_it_is_first_named() {
    let text = assemble(&MAIN).unwrap();
    assert_eq!(text.matches("fn helper()").count(), 1, "{text}");
    assert!(!text.contains("#include"), "{text}");
    assert!(
        text.find("fn helper()").unwrap() < text.find("fn twice()").unwrap(),
        "{text}"
    );
    let shader = Shader {
        name: "test",
        file: WgslFile {
            path: MAIN.path,
            source: MAIN.source,
            includes: MAIN.includes,
        },
        subgroups: false,
    };
    wgnn::gpu::validate_wgsl(&shader).unwrap();
    let paths: Vec<&str> = shader.files().iter().map(|f| f.path).collect();
    assert_eq!(
        paths,
        [
            "test/main.wgsl",
            "test/uses_helper.wgsl",
            "test/helper.wgsl"
        ]
    );
}

#[test]
fn an_include_of_an_unlisted_file_is_an_error() {
    let message = assemble(&UNLISTED).unwrap_err();
    assert!(
        message.contains("test/main.wgsl:1") && message.contains("test/uses_helper.wgsl"),
        "{message}"
    );
}

#[test]
fn a_listed_file_without_an_include_line_is_an_error() {
    let message = assemble(&UNUSED).unwrap_err();
    assert!(message.contains("test/helper.wgsl"), "{message}");
}

#[test]
fn a_malformed_include_line_is_an_error() {
    for line in [
        "#include test/helper.wgsl",
        "#include \"\"",
        "#includes \"x\"",
    ] {
        let file = WgslFile {
            path: "test/main.wgsl",
            source: Box::leak(format!("{line}\n").into_boxed_str()),
            includes: &[],
        };
        let message = assemble(&file).unwrap_err();
        assert!(message.contains("test/main.wgsl:1"), "{line}: {message}");
    }
}
