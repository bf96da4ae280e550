//! The Siamese network: the reshape op it needs, the descriptor against a CPU reference, mirror
//! symmetry, zoom alignment, and the model file (round trip, same bytes, rejection of other
//! files).
use wgnn_reference::testing as common;
mod faces_support;

use std::collections::BTreeMap;

use common::{assert_close, eval, gpu, graph_vjp, tensor, to_f32, to_f64};
use faces_support::{orl_photos, tiny_network_aligned, tiny_network_with_views, TempDir};
use serde_json::json;
use wgnn::graph::Graph;
use wgnn::nn::ParamStore;
use wgnn::ops::elementwise::Reshape;
use wgnn::rng::Rng;
use wgnn::{Error, Shape};
use wgnn_faces::align::ZoomRegressor;
use wgnn_faces::augment::zoomed;
use wgnn_faces::embed::{trunk_weights, DescriptorRunner, ImageRunner};
use wgnn_faces::model::{LogisticVerifier, SiameseModel, FORMAT};
use wgnn_faces::network::{grid_pooling, NetworkSpec};

#[test]
fn reshape_keeps_values_and_back_propagates() {
    let mut rng = Rng::new(1);
    let x: Vec<f64> = (0..2 * 3 * 4 * 5).map(|_| rng.range(-1.0, 1.0)).collect();
    let input = tensor(&[2, 3, 4, 5], &x);
    let op = Reshape {
        shape: Shape::from([2, 60]),
    };
    // A copy: exactly the f32 values.
    assert_eq!(eval(&op, &[&input]), to_f32(&x));
    // The gradient of a reshape is the upstream gradient in the input's shape.
    let up: Vec<f64> = (0..120).map(|_| rng.range(-1.0, 1.0)).collect();
    let (y, grads) = graph_vjp(&[(&[2, 3, 4, 5], &x)], &up, &|g, inputs| {
        g.reshape(inputs[0], [2, 60]).unwrap()
    });
    assert_eq!(y, to_f32(&x));
    assert_eq!(grads[0], to_f32(&up));
}

#[test]
fn reshape_to_another_element_count_is_an_error() {
    let mut g = Graph::new();
    let x = g.input("x", [2, 3]);
    match g.reshape(x, [7]) {
        Err(Error::Shape { op, .. }) => assert_eq!(op, "reshape"),
        other => panic!("expected a shape error, got {other:?}"),
    }
}

#[test]
fn grid_pooling_windows_cover_the_map() {
    for (h, cells) in [(27usize, 4usize), (22, 3), (13, 2), (11, 3), (5, 5)] {
        let p = grid_pooling([h, h], [cells, cells]);
        let (k, s) = (p.kernel[0], p.stride[0]);
        assert_eq!((h - k) / s + 1, cells, "size {h} cells {cells}");
        assert_eq!((cells - 1) * s + k, h, "the last window ends at the edge");
    }
}

#[test]
fn descriptors_match_a_cpu_reference() {
    let gpu = gpu();
    let spec = tiny_network_with_views();
    let images = orl_photos(&spec, &["s1/1.pgm", "s2/3.pgm", "s3/5.pgm"]);
    let weights = trunk_weights(gpu, &spec).unwrap();
    let maps = ImageRunner::trunk(gpu, &spec, &weights)
        .unwrap()
        .run(gpu, &images, &mut |_| {})
        .unwrap();
    let descriptors = DescriptorRunner::new(gpu, &spec)
        .unwrap()
        .run(gpu, &maps)
        .unwrap();
    let layers = spec.trunk_layers();
    let layer_maps = spec.layer_maps().unwrap();
    let pass_len = spec.pass_len().unwrap();
    let d = spec.descriptor_len().unwrap();
    // Per pass, level and grid: window means, channel-major, L2-normalised; all concatenated;
    // passes summed.
    let level = |map: &[f32], [c, h, w]: [usize; 3], [rows, cols]: [usize; 2]| -> Vec<f64> {
        let pool = grid_pooling([h, w], [rows, cols]);
        let (kh, kw, sh, sw) = (
            pool.kernel[0],
            pool.kernel[1],
            pool.stride[0],
            pool.stride[1],
        );
        let mut cells = vec![0f64; c * rows * cols];
        for ch in 0..c {
            for r in 0..rows {
                for q in 0..cols {
                    let mut s = 0.0;
                    for y in r * sh..r * sh + kh {
                        for x in q * sw..q * sw + kw {
                            s += map[ch * h * w + y * w + x] as f64;
                        }
                    }
                    cells[ch * rows * cols + r * cols + q] = s / (kh * kw) as f64;
                }
            }
        }
        let norm = cells.iter().map(|v| v * v).sum::<f64>().sqrt();
        cells.iter().map(|v| v / norm).collect()
    };
    let mut expected = Vec::new();
    assert_eq!(
        spec.passes(),
        4,
        "the tiny network has 2 views and mirror images"
    );
    for image in maps.chunks_exact(spec.passes() * pass_len) {
        let mut sum = vec![0f64; d];
        for pass in image.chunks_exact(pass_len) {
            let mut parts = Vec::new();
            for l in &spec.head.levels {
                let index = layers.iter().position(|x| *x == l.layer).unwrap();
                let offset: usize = layer_maps[..index]
                    .iter()
                    .map(|m| m.iter().product::<usize>())
                    .sum();
                let shape = layer_maps[index];
                let map = &pass[offset..offset + shape.iter().product::<usize>()];
                for &grid in &l.grids {
                    parts.extend(level(map, shape, grid));
                }
            }
            sum.iter_mut().zip(&parts).for_each(|(s, v)| *s += v);
        }
        expected.extend(sum);
    }
    assert_close("descriptor", &descriptors, &expected, 1e-4, 1e-6);
}

#[test]
fn network_input_holds_each_zoomed_view_then_its_mirror_image() {
    let spec = tiny_network_with_views();
    let (w, h) = (spec.trunk.width, spec.trunk.height);
    let image = orl_photos(&spec, &["s6/4.pgm"]);
    let input = spec.network_input(&image, 1.0, None).unwrap();
    assert_eq!(input.len(), spec.passes() * 3 * w * h);
    let view = |k: usize| &input[k * 3 * w * h..][..3 * w * h];
    let mirror = |x: &[f32]| -> Vec<f32> {
        let mut m = x.to_vec();
        m.chunks_exact_mut(w).for_each(|row| row.reverse());
        m
    };
    assert_eq!(view(0), &image[..]);
    assert_eq!(view(1), &mirror(&image)[..]);
    // View 2 is the image 1.1x larger about its centre: pixel (x, y) is the image sampled
    // bilinearly at the centre + (x, y - centre) / 1.1.
    let (cx, cy) = ((w - 1) as f64 / 2.0, (h - 1) as f64 / 2.0);
    let sample = |plane: &[f32], x: f64, y: f64| -> f64 {
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (fx, fy) = (x - x0 as f64, y - y0 as f64);
        let at = |xx: usize, yy: usize| plane[yy * w + xx] as f64;
        (1.0 - fy) * ((1.0 - fx) * at(x0, y0) + fx * at(x0 + 1, y0))
            + fy * ((1.0 - fx) * at(x0, y0 + 1) + fx * at(x0 + 1, y0 + 1))
    };
    for (x, y) in [
        (cx + 0.5 + 22.0, cy + 0.5),
        (cx - 0.5 - 11.0, cy + 0.5 + 33.0),
    ] {
        let (sx, sy) = ((x - cx) / 1.1 + cx, (y - cy) / 1.1 + cy);
        for c in 0..3 {
            let got = view(2)[c * w * h + y as usize * w + x as usize] as f64;
            let want = sample(&image[c * w * h..][..w * h], sx, sy);
            assert!(
                (got - want).abs() < 1e-5,
                "zoomed pixel ({x}, {y}): {got} vs {want}"
            );
        }
    }
    assert_ne!(view(2), &image[..]);
    assert_eq!(view(3), &mirror(view(2))[..]);

    // About another base zoom (alignment), every view is scaled by it too.
    let aligned = spec.network_input(&image, 0.9, None).unwrap();
    let view = |k: usize| &aligned[k * 3 * w * h..][..3 * w * h];
    assert_eq!(view(0), &zoomed(&image, w, h, 0.9)[..]);
    assert_eq!(view(1), &mirror(view(0))[..]);
    assert_eq!(view(2), &zoomed(&image, w, h, 0.9 * 1.1)[..]);
    assert_eq!(view(3), &mirror(view(2))[..]);
}

#[test]
fn a_network_description_without_zooms_is_the_image_alone() {
    let spec = tiny_network_with_views();
    let mut description = spec.to_json();
    assert_eq!(NetworkSpec::from_json(&description).unwrap(), spec);
    description.as_object_mut().unwrap().remove("zooms");
    let old = NetworkSpec::from_json(&description).unwrap();
    assert_eq!(old.zooms, vec![1.0]);
    assert_eq!(old.passes(), 2);
    description["zooms"] = json!([1.0, 3.0]);
    let error = NetworkSpec::from_json(&description).unwrap_err();
    assert!(error.contains("between 0.5 and 2"), "{error}");

    // Zoom alignment round-trips; models from before it have none.
    let spec = tiny_network_aligned();
    let mut description = spec.to_json();
    assert_eq!(NetworkSpec::from_json(&description).unwrap(), spec);
    description.as_object_mut().unwrap().remove("align");
    assert_eq!(NetworkSpec::from_json(&description).unwrap().align, None);
    let mut bad = spec.clone();
    bad.align = Some([1.1, 1.25]);
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("zoom alignment range"));
}

/// Faces the test regressor is fit on (and the alignment test runs on).
const ALIGN_FILES: [&str; 4] = ["s2/1.pgm", "s9/5.pgm", "s17/3.pgm", "s23/8.pgm"];

/// A zoom regressor for `spec` that predicts random log zooms in [-0.2, 0.2] for the
/// `ALIGN_FILES` faces (fit on them), so that they are viewed at several zooms.
fn random_regressor(spec: &NetworkSpec, seed: u64) -> ZoomRegressor {
    let gpu = gpu();
    let stage = spec.alignment_stage();
    let weights = trunk_weights(gpu, spec).unwrap();
    let mut runner = ImageRunner::descriptors(gpu, &stage, &weights, None).unwrap();
    let descriptors = runner
        .run(gpu, &orl_photos(spec, &ALIGN_FILES), &mut |_| {})
        .unwrap();
    let mut rng = Rng::new(seed);
    let targets: Vec<f64> = ALIGN_FILES.iter().map(|_| rng.range(-0.2, 0.2)).collect();
    ZoomRegressor::fit(
        &descriptors,
        stage.descriptor_len().unwrap(),
        &targets,
        1e-3,
    )
    .unwrap()
}

/// An untrained model of the tiny network with zoomed views and zoom alignment.
fn random_model(seed: u64) -> SiameseModel {
    let gpu = gpu();
    let spec = tiny_network_aligned();
    let head = spec.init_head(gpu, &mut Rng::new(seed)).unwrap();
    let regressor = random_regressor(&spec, seed);
    SiameseModel::new(
        gpu,
        spec,
        head,
        Some(regressor),
        0.75,
        json!({"note": "test"}),
    )
    .unwrap()
}

#[test]
fn an_aligned_network_views_each_image_at_the_zoom_its_descriptor_predicts() {
    let gpu = gpu();
    let model = random_model(6);
    let spec = &model.spec;
    let aligner = model.aligner.as_ref().unwrap();
    let files = ALIGN_FILES;
    let images = orl_photos(spec, &files);
    let mut embedder = ImageRunner::embeddings(gpu, spec, &model.head, Some(aligner)).unwrap();
    let mut progress = Vec::new();
    let aligned = embedder
        .run(gpu, &images, &mut |done| progress.push(done))
        .unwrap();
    // Progress counts trunk passes: 2 for the alignment stage, 4 for the views, per image.
    assert_eq!(embedder.passes_per_image(), 6);
    assert_eq!(progress.last(), Some(&(files.len() * 6)));

    // By hand: the alignment stage's descriptors, the regressor's zooms, the network there.
    let weights = trunk_weights(gpu, spec).unwrap();
    let stage = spec.alignment_stage();
    let mut first = ImageRunner::descriptors(gpu, &stage, &weights, None).unwrap();
    let descriptors = first.run(gpu, &images, &mut |_| {}).unwrap();
    let d = stage.descriptor_len().unwrap();
    let zooms: Vec<f64> = descriptors
        .chunks_exact(d)
        .map(|x| {
            let zoom = (-aligner.log_zoom(x)).exp().clamp(0.8, 1.25);
            assert_eq!(zoom, aligner.view_zoom(x, [0.8, 1.25]));
            zoom
        })
        .collect();
    assert!(
        zooms.iter().any(|&z| z != zooms[0]) && zooms.iter().all(|&z| z != 1.0),
        "the test's regressor should pick several zooms: {zooms:?}"
    );
    let unaligned = NetworkSpec {
        align: None,
        ..spec.clone()
    };
    let mut plain = ImageRunner::embeddings(gpu, &unaligned, &model.head, None).unwrap();
    let expected = plain.run_at(gpu, &images, &zooms, &mut |_| {}).unwrap();
    assert_eq!(aligned, expected);
    let at_one = plain.run(gpu, &images, &mut |_| {}).unwrap();
    assert_ne!(aligned, at_one);

    // An aligned network needs its regressor, of the descriptor's length.
    let missing = ImageRunner::embeddings(gpu, spec, &model.head, None);
    assert!(missing
        .err()
        .unwrap()
        .to_string()
        .contains("no zoom regressor"));
    let short = ZoomRegressor {
        weight: vec![0.0; d - 1],
        bias: 0.0,
    };
    let wrong = ImageRunner::embeddings(gpu, spec, &model.head, Some(&short));
    assert!(wrong
        .err()
        .unwrap()
        .to_string()
        .contains("weights for descriptors"));
}

#[test]
fn a_face_and_its_mirror_image_get_the_same_embedding() {
    let gpu = gpu();
    let model = random_model(2);
    let image = orl_photos(&model.spec, &["s4/2.pgm"]);
    let mut mirrored = image.clone();
    for row in mirrored.chunks_exact_mut(model.spec.trunk.width) {
        row.reverse();
    }
    let mut embedder =
        ImageRunner::embeddings(gpu, &model.spec, &model.head, model.aligner.as_ref()).unwrap();
    let both: Vec<f32> = image.iter().chain(&mirrored).copied().collect();
    let e = embedder.run(gpu, &both, &mut |_| {}).unwrap();
    let d = model.embedding_dim();
    assert_eq!(
        e[..d],
        e[d..],
        "embeddings of an image and its mirror image differ"
    );
    let norm: f64 = to_f64(&e[..d]).iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "embedding norm {norm}");
}

#[test]
fn many_images_give_what_each_gives_alone() {
    // More images than one chunk of network inputs (32), and a short last chunk and batch.
    let gpu = gpu();
    let model = random_model(7);
    let files: Vec<String> = (1..=4)
        .flat_map(|s| (1..=10).map(move |i| format!("s{s}/{i}.pgm")))
        .take(37)
        .collect();
    let names: Vec<&str> = files.iter().map(String::as_str).collect();
    let images = orl_photos(&model.spec, &names);
    let mut embedder =
        ImageRunner::embeddings(gpu, &model.spec, &model.head, model.aligner.as_ref()).unwrap();
    let all = embedder.run(gpu, &images, &mut |_| {}).unwrap();
    let len = images.len() / files.len();
    let d = model.embedding_dim();
    for k in [0, 8, 31, 32, 36] {
        let alone = embedder
            .run(gpu, &images[k * len..(k + 1) * len], &mut |_| {})
            .unwrap();
        assert_eq!(alone, &all[k * d..(k + 1) * d], "image {k}");
    }
}

#[test]
fn the_model_file_round_trips_and_the_same_model_gives_the_same_bytes() {
    let gpu = gpu();
    let dir = TempDir::new("model-roundtrip");
    let mut model = random_model(3);
    model.verifier = Some(LogisticVerifier {
        weight: (0..32).map(|i| i as f32 * -0.25).collect(),
        bias: 1.5,
        description: json!({"kind": "test"}),
    });
    let (a, b) = (
        dir.path().join("a.safetensors"),
        dir.path().join("b.safetensors"),
    );
    model.save(gpu, &a).unwrap();
    let loaded = SiameseModel::load(gpu, &a).unwrap();
    assert_eq!(loaded.spec, model.spec);
    assert_eq!(loaded.threshold, model.threshold);
    assert_eq!(loaded.verifier, model.verifier);
    assert_eq!(loaded.aligner, model.aligner);
    assert_eq!(loaded.fingerprint, model.fingerprint);
    assert_eq!(
        loaded.head.to_host(gpu).unwrap(),
        model.head.to_host(gpu).unwrap()
    );
    loaded.save(gpu, &b).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let metadata = wgnn::nn::read_safetensors_metadata(&a).unwrap();
    assert_eq!(metadata["format"], FORMAT);
    assert_eq!(metadata["embedding_dim"], "32");
    // The fingerprint follows the weights, not the verifier.
    let mut without = model.clone();
    without.verifier = None;
    assert_eq!(without.fingerprint, model.fingerprint);
    assert_ne!(random_model(4).fingerprint, model.fingerprint);
    // ... and the zoom regressor, which decides the embeddings too.
    let mut other = model.aligner.clone().unwrap();
    other.bias += 0.01;
    let moved = SiameseModel::new(
        gpu,
        model.spec.clone(),
        model.head.clone(),
        Some(other),
        model.threshold,
        json!({}),
    )
    .unwrap();
    assert_ne!(moved.fingerprint, model.fingerprint);
    let unaligned = SiameseModel::new(
        gpu,
        model.spec.clone(),
        model.head.clone(),
        None,
        model.threshold,
        json!({}),
    );
    assert!(
        unaligned.is_err(),
        "an aligned network without its regressor"
    );
}

fn load_error(path: &std::path::Path) -> String {
    match SiameseModel::load(gpu(), path) {
        Ok(_) => panic!("{} loaded as a model", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn files_that_are_not_wgnn_models_are_refused_clearly() {
    let gpu = gpu();
    let dir = TempDir::new("model-reject");
    let text = dir.write("notes.safetensors", b"hello, this is not a model");
    let message = load_error(&text);
    assert!(message.contains("not a wgnn face model"), "{message}");

    // A valid safetensors file without the format tag (e.g. someone else's weights).
    let mut store = ParamStore::new();
    store.insert_f32(gpu, "weight", [2], &[1.0, 2.0]).unwrap();
    let foreign = dir.path().join("foreign.safetensors");
    store
        .save_safetensors(
            gpu,
            &foreign,
            &BTreeMap::from([("author".into(), "x".into())]),
        )
        .unwrap();
    let message = load_error(&foreign);
    assert!(
        message.contains("not a wgnn face model") && message.contains(FORMAT),
        "{message}"
    );

    // The embedded SqueezeNet weights themselves are no face model either.
    let squeezenet = dir.write(
        "squeezenet.safetensors",
        wgnn_assets::SQUEEZENET1_1_SAFETENSORS,
    );
    assert!(load_error(&squeezenet).contains("not a wgnn face model"));

    // A model whose trunk fingerprint is not this wgnn's.
    let good = dir.path().join("good.safetensors");
    random_model(5).save(gpu, &good).unwrap();
    let mut metadata = wgnn::nn::read_safetensors_metadata(&good).unwrap();
    metadata.insert("trunk_fingerprint".into(), "0123456789abcdef".into());
    let stored = ParamStore::load_safetensors(gpu, &good).unwrap();
    let other_trunk = dir.path().join("other-trunk.safetensors");
    stored
        .save_safetensors(gpu, &other_trunk, &metadata)
        .unwrap();
    assert!(load_error(&other_trunk).contains("other trunk weights"));

    let missing = dir.path().join("missing.safetensors");
    assert!(load_error(&missing).contains("missing.safetensors"));
}
