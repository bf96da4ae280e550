//! Every shader parses and validates with naga, so a WGSL mistake fails here with naga's
//! message rather than as a driver error at run time.

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

#[test]
fn every_shader_file_is_registered() {
    let registered: Vec<&str> = wgnn::all_shaders().iter().map(|s| s.name).collect();
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders")).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        if path.extension().is_some_and(|e| e == "wgsl") && !stem.ends_with("prelude") {
            assert!(
                registered.contains(&stem.as_str()),
                "shaders/{stem}.wgsl is not in ops::all_shaders()"
            );
        }
    }
}
