//! The README's program is examples/small_cnn.rs word for word, under 40 lines, and it trains:
//! the loss falls and the saved file holds the network's parameters.

#[path = "../examples/small_cnn.rs"]
#[allow(dead_code)] // its `main`
mod small_cnn;

use wgnn::nn::ParamStore;
use wgnn_reference::testing::gpu;

const README: &str = include_str!("../README.md");
const EXAMPLE: &str = include_str!("../examples/small_cnn.rs");

#[test]
fn the_readme_shows_the_example_word_for_word() {
    assert!(
        README.contains(&format!("```rust\n{EXAMPLE}```")),
        "README.md's program differs from examples/small_cnn.rs"
    );
    let lines = EXAMPLE.lines().count();
    assert!(lines < 40, "the example has {lines} lines");
}

#[test]
fn the_example_learns_and_saves_its_parameters() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("readme_example");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("small_cnn.safetensors");
    let _ = std::fs::remove_file(&out);
    let losses = small_cnn::train(300, out.to_str().unwrap()).unwrap();
    let (first, last) = (losses[0], losses[299]);
    assert!(last < 0.5 * first, "loss {first} -> {last}");
    let saved = ParamStore::load_safetensors(gpu(), &out).unwrap();
    let shapes: Vec<(String, Vec<usize>)> = saved
        .iter()
        .map(|(name, t)| (name.to_string(), t.shape.dims().to_vec()))
        .collect();
    let expected = [
        ("conv.bias", vec![8]),
        ("conv.weight", vec![8, 1, 3, 3]),
        ("fc.bias", vec![1]),
        ("fc.weight", vec![1, 8]),
    ];
    assert_eq!(shapes.len(), expected.len(), "{shapes:?}");
    for ((name, dims), (want_name, want_dims)) in shapes.iter().zip(&expected) {
        assert_eq!((name.as_str(), dims), (*want_name, want_dims));
    }
}
