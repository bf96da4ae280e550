//! Every shader assembles from its `#include` lines, parses and validates with naga, so a WGSL
//! mistake fails here with naga's message rather than as a driver error at run time; every WGSL
//! file under `src/` belongs to a shader; the assembler's rules hold; every struct that Rust
//! writes for a shader has the layout of its WGSL declaration.

use std::collections::BTreeSet;
use std::path::Path;

use wgnn::gpu::{assemble, check_structs, compare_struct, Shader, StructLayout, WgslFile};

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
        structs: &[],
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

#[test]
fn every_struct_the_host_writes_matches_its_wgsl_declaration() {
    let failures: Vec<String> = wgnn::all_shaders()
        .iter()
        .filter_map(|s| check_structs(s).err().map(|e| format!("{}: {e}", s.name)))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every shader reads a uniform Params, so every shader pairs at least one struct.
    for shader in wgnn::all_shaders() {
        assert!(!shader.structs.is_empty(), "{}", shader.name);
    }
}

const PARAMS_WGSL: &str =
    "struct Params {\n    n: u32,\n    scale: f32,\n    size: vec4<u32>,\n}\n";

fn params_module() -> naga::Module {
    naga::front::wgsl::parse_str(PARAMS_WGSL).unwrap()
}

#[test]
fn a_matching_layout_passes() {
    let layout = StructLayout {
        name: "Params",
        size: 32,
        fields: &[("n", 0), ("scale", 4), ("size", 16)],
    };
    compare_struct(&params_module(), "Params", &layout).unwrap();
}

#[test]
fn every_kind_of_layout_mismatch_is_caught() {
    let cases: [(&str, StructLayout); 5] = [
        (
            "24 in Rust",
            StructLayout {
                name: "Params",
                size: 24,
                fields: &[("n", 0), ("scale", 4), ("size", 8)],
            },
        ),
        (
            "`size` at byte 8 in Rust",
            StructLayout {
                name: "Params",
                size: 32,
                fields: &[("n", 0), ("scale", 4), ("size", 8)],
            },
        ),
        (
            "`count` at byte 0 in Rust",
            StructLayout {
                name: "Params",
                size: 32,
                fields: &[("count", 0), ("scale", 4), ("size", 16)],
            },
        ),
        (
            "`scale` at byte 0 in Rust",
            StructLayout {
                name: "Params",
                size: 32,
                fields: &[("scale", 0), ("n", 4), ("size", 16)],
            },
        ),
        (
            "3 fields in WGSL, 2 in Rust",
            StructLayout {
                name: "Params",
                size: 32,
                fields: &[("n", 0), ("scale", 4)],
            },
        ),
    ];
    for (expected, layout) in cases {
        let message = compare_struct(&params_module(), "Params", &layout).expect_err(expected);
        assert!(message.contains(expected), "{expected}: {message}");
    }
    let layout = StructLayout {
        name: "Params",
        size: 32,
        fields: &[("n", 0), ("scale", 4), ("size", 16)],
    };
    let message = compare_struct(&params_module(), "Missing", &layout).unwrap_err();
    assert!(message.contains("no struct Missing"), "{message}");
}

static UNPAIRED: WgslFile = WgslFile {
    path: "test/unpaired.wgsl",
    source: "struct Params {\n    n: u32,\n}\n@group(0) @binding(0) var<uniform> p: Params;\n@compute @workgroup_size(1)\nfn main() {\n    _ = p.n;\n}\n",
    includes: &[],
};

#[test]
fn a_bound_struct_without_a_rust_layout_is_caught() {
    let file = WgslFile {
        path: UNPAIRED.path,
        source: UNPAIRED.source,
        includes: UNPAIRED.includes,
    };
    let mut shader = Shader {
        name: "test",
        file,
        subgroups: false,
        structs: &[],
    };
    let message = check_structs(&shader).unwrap_err();
    assert!(message.contains("`p` binds struct Params"), "{message}");
    shader.structs = &[(
        "Params",
        StructLayout {
            name: "Params",
            size: 4,
            fields: &[("n", 0)],
        },
    )];
    check_structs(&shader).unwrap();
}
