//! Parameters as safetensors: bit-exact round trips, metadata, conversions from F64/F16/BF16,
//! and errors for missing tensors, wrong shapes, corrupt and missing files and failed saves.
use wgnn_reference::testing as common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::gpu;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use wgnn::nn::{read_safetensors_metadata, Init, ParamStore};
use wgnn::rng::Rng;
use wgnn::{Error, Shape};

/// An empty directory of its own for each test, under cargo's target/tmp.
fn scratch_dir(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("safetensors_io-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sample_store() -> ParamStore {
    let gpu = gpu();
    let mut rng = Rng::new(21);
    let mut params = ParamStore::new();
    params
        .insert_weight_and_bias(
            gpu,
            "features.0",
            [4, 3, 3, 3],
            Init::kaiming_normal(),
            &mut rng,
        )
        .unwrap();
    params
        .insert_init(
            gpu,
            "classifier.1.weight",
            [5, 4],
            Init::xavier_uniform(),
            &mut rng,
        )
        .unwrap();
    // Values that a lossy path would change: subnormals, signed zero, extremes.
    params
        .insert_f32(
            gpu,
            "special",
            [6],
            &[
                f32::MIN_POSITIVE / 8.0,
                -0.0,
                f32::MAX,
                -f32::MAX,
                1e-30,
                3.0,
            ],
        )
        .unwrap();
    params
}

fn host_bits(params: &ParamStore) -> Vec<(String, Shape, Vec<u32>)> {
    params
        .to_host(gpu())
        .unwrap()
        .into_iter()
        .map(|(n, s, v)| (n, s, v.iter().map(|x| x.to_bits()).collect()))
        .collect()
}

fn file_error_message(err: Error, path: &std::path::Path) -> String {
    match err {
        Error::File { path: p, message } => {
            assert_eq!(p, path, "the error names the file");
            message
        }
        other => panic!("expected Error::File, got {other:?}"),
    }
}

#[test]
fn round_trip_is_bit_exact_with_metadata() {
    let dir = scratch_dir("round_trip");
    let path = dir.join("model.safetensors");
    let params = sample_store();
    let metadata = BTreeMap::from([
        ("step".to_string(), "1200".to_string()),
        ("format".to_string(), "pt".to_string()),
    ]);
    params.save_safetensors(gpu(), &path, &metadata).unwrap();
    let loaded = ParamStore::load_safetensors(gpu(), &path).unwrap();
    assert_eq!(host_bits(&loaded), host_bits(&params));
    assert_eq!(read_safetensors_metadata(&path).unwrap(), metadata);

    // Saving again replaces the file; no temporary file is left beside it.
    let empty = BTreeMap::new();
    params.save_safetensors(gpu(), &path, &empty).unwrap();
    assert!(read_safetensors_metadata(&path).unwrap().is_empty());
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, ["model.safetensors"]);

    // The file is standard safetensors: the crate itself reads it.
    let bytes = std::fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = file.tensor("features.0.weight").unwrap();
    assert_eq!(view.dtype(), Dtype::F32);
    assert_eq!(view.shape(), [4, 3, 3, 3]);
}

#[test]
fn load_for_checks_names_and_shapes() {
    let dir = scratch_dir("load_for");
    let path = dir.join("model.safetensors");
    let params = sample_store();
    params
        .save_safetensors(gpu(), &path, &BTreeMap::new())
        .unwrap();

    let wanted = vec![
        ("features.0.weight".to_string(), Shape::from([4, 3, 3, 3])),
        ("classifier.1.weight".to_string(), Shape::from([5, 4])),
    ];
    let loaded = ParamStore::load_for(gpu(), &path, &wanted).unwrap();
    assert_eq!(loaded.len(), 2);
    let original = params
        .get("classifier.1.weight")
        .unwrap()
        .to_vec(gpu())
        .unwrap();
    assert_eq!(
        loaded
            .get("classifier.1.weight")
            .unwrap()
            .to_vec(gpu())
            .unwrap(),
        original
    );

    let missing = vec![("features.3.weight".to_string(), Shape::from([2, 2]))];
    let message = file_error_message(
        ParamStore::load_for(gpu(), &path, &missing).err().unwrap(),
        &path,
    );
    assert!(
        message.contains("`features.3.weight`") && message.contains("missing"),
        "{message}"
    );

    let wrong = vec![("classifier.1.weight".to_string(), Shape::from([4, 5]))];
    let message = file_error_message(
        ParamStore::load_for(gpu(), &path, &wrong).err().unwrap(),
        &path,
    );
    assert!(
        message.contains("`classifier.1.weight`")
            && message.contains("[5, 4]")
            && message.contains("[4, 5]"),
        "{message}"
    );
}

fn write_raw(path: &std::path::Path, tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)>) {
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            (
                *name,
                TensorView::new(*dtype, shape.clone(), bytes).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

#[test]
fn other_float_dtypes_are_converted() {
    let dir = scratch_dir("dtypes");
    let path = dir.join("mixed.safetensors");
    let f64s = [0.1f64, -2.5, 1e-40, 3.0];
    // 1.5, -2, the smallest normal, the smallest subnormal, -0, the largest finite.
    let f16s: [u16; 6] = [0x3e00, 0xc000, 0x0400, 0x0001, 0x8000, 0x7bff];
    let bf16s: [u16; 3] = [0x3f80, 0xc060, 0x0001];
    let bytes16 = |v: &[u16]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let tensors = |half: &[u16]| {
        vec![
            (
                "double",
                Dtype::F64,
                vec![2, 2],
                f64s.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
            ("half", Dtype::F16, vec![6], bytes16(half)),
            ("brain", Dtype::BF16, vec![1, 3], bytes16(&bf16s)),
        ]
    };
    write_raw(&path, tensors(&f16s));
    let loaded = ParamStore::load_safetensors(gpu(), &path).unwrap();
    let read = |name: &str| loaded.get(name).unwrap().to_vec(gpu()).unwrap();
    assert_eq!(read("double"), f64s.map(|x| x as f32));
    assert_eq!(loaded.get("double").unwrap().shape, Shape::from([2, 2]));
    let half = read("half");
    assert_eq!(half[..3], [1.5, -2.0, 2f32.powi(-14)]);
    assert_eq!(half[3], 2f32.powi(-24));
    assert_eq!(half[4].to_bits(), (-0.0f32).to_bits());
    assert_eq!(half[5], 65504.0);
    assert_eq!(read("brain"), [1.0, -3.5, f32::from_bits(0x0001_0000)]);

    // Infinity and NaN (as f16 and as f32) are refused, naming the file, the tensor and
    // where the first one is.
    for (bits, what) in [(0x7c00u16, "inf"), (0xfe00, "NaN")] {
        let mut poisoned = f16s;
        poisoned[4] = bits;
        write_raw(&path, tensors(&poisoned));
        let err = ParamStore::load_safetensors(gpu(), &path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("mixed.safetensors")
                && err.contains("`half`")
                && err.contains(what)
                && err.contains("element 4"),
            "{err}"
        );
    }
}

#[test]
fn unconvertible_dtype_is_an_error_unless_not_needed() {
    let dir = scratch_dir("int_dtype");
    let path = dir.join("with_counter.safetensors");
    write_raw(
        &path,
        vec![
            (
                "bn.num_batches_tracked",
                Dtype::I64,
                vec![],
                7i64.to_le_bytes().to_vec(),
            ),
            (
                "bn.weight",
                Dtype::F32,
                vec![2],
                [1.0f32, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
        ],
    );
    let message = file_error_message(
        ParamStore::load_safetensors(gpu(), &path).err().unwrap(),
        &path,
    );
    assert!(
        message.contains("`bn.num_batches_tracked`") && message.contains("I64"),
        "{message}"
    );
    // Loading only what a graph needs skips it.
    let wanted = vec![("bn.weight".to_string(), Shape::from([2]))];
    let loaded = ParamStore::load_for(gpu(), &path, &wanted).unwrap();
    assert_eq!(
        loaded.get("bn.weight").unwrap().to_vec(gpu()).unwrap(),
        [1.0, 2.0]
    );
}

#[test]
fn corrupt_and_missing_files_are_errors_naming_the_file() {
    let dir = scratch_dir("corrupt");
    let good = dir.join("good.safetensors");
    sample_store()
        .save_safetensors(gpu(), &good, &BTreeMap::new())
        .unwrap();
    let bytes = std::fs::read(&good).unwrap();

    let truncated = dir.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 3]).unwrap();
    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"this is not a safetensors file at all").unwrap();
    let tiny = dir.join("tiny.safetensors");
    std::fs::write(&tiny, [1u8, 2, 3]).unwrap();
    let mut bad_json = bytes.clone();
    bad_json[8] = b'[';
    let bad_header = dir.join("bad_header.safetensors");
    std::fs::write(&bad_header, &bad_json).unwrap();

    for path in [&truncated, &garbage, &tiny, &bad_header] {
        let message = file_error_message(
            ParamStore::load_safetensors(gpu(), path).err().unwrap(),
            path,
        );
        assert!(
            message.contains("not a valid safetensors file"),
            "{}: {message}",
            path.display()
        );
        let wanted = vec![("features.0.bias".to_string(), Shape::from([4]))];
        file_error_message(
            ParamStore::load_for(gpu(), path, &wanted).err().unwrap(),
            path,
        );
        let message = file_error_message(read_safetensors_metadata(path).err().unwrap(), path);
        assert!(
            message.contains("not a valid safetensors file"),
            "{}: {message}",
            path.display()
        );
    }

    let missing = dir.join("missing.safetensors");
    for err in [
        ParamStore::load_safetensors(gpu(), &missing).err().unwrap(),
        read_safetensors_metadata(&missing).err().unwrap(),
    ] {
        let message = file_error_message(err, &missing);
        assert!(message.contains("cannot read"), "{message}");
    }
}

#[test]
fn failed_saves_leave_no_file() {
    let dir = scratch_dir("failed_save");
    let params = sample_store();
    let metadata = BTreeMap::new();

    let nowhere = dir.join("no_such_directory").join("model.safetensors");
    let message = file_error_message(
        params
            .save_safetensors(gpu(), &nowhere, &metadata)
            .err()
            .unwrap(),
        &nowhere,
    );
    assert!(message.contains("does not exist"), "{message}");
    assert!(!nowhere.exists());

    // The target is a directory: the temporary file is written, the rename fails, and the
    // temporary file is removed again.
    let occupied = dir.join("occupied.safetensors");
    std::fs::create_dir(&occupied).unwrap();
    std::fs::write(occupied.join("keep"), b"x").unwrap();
    let err = params
        .save_safetensors(gpu(), &occupied, &metadata)
        .err()
        .unwrap();
    file_error_message(err, &occupied);
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        entries,
        ["occupied.safetensors"],
        "something was left behind"
    );
    assert!(occupied.join("keep").exists());
}

#[test]
fn optimiser_state_saves_and_loads_as_safetensors() {
    use wgnn::graph::{UpdateRule, UpdateSlot};
    use wgnn::optim::{Adam, AdamConfig, Optimizer};
    let gpu = gpu();
    let dir = scratch_dir("optimiser_state");
    let path = dir.join("adam.safetensors");
    let params = sample_store();
    let mut adam = Adam::new(gpu, AdamConfig::default()).unwrap();
    let trained: Vec<(&str, &wgnn::Tensor)> = params
        .iter()
        .filter(|(name, _)| *name != "special")
        .collect();
    let grads: Vec<wgnn::Tensor> = trained
        .iter()
        .map(|(_, t)| wgnn::Tensor::filled(gpu, t.shape.clone(), 0.5).unwrap())
        .collect();
    let slots: Vec<UpdateSlot<'_>> = trained
        .iter()
        .zip(&grads)
        .map(|((name, param), grad)| UpdateSlot { name, param, grad })
        .collect();
    let dispatches = adam.prepare(gpu, &slots).unwrap();
    gpu.run(&dispatches).unwrap();
    let mut state = ParamStore::new();
    for (name, t) in adam.state() {
        state.insert(&name, t);
    }
    let metadata = BTreeMap::from([(
        "step".to_string(),
        adam.step_count(gpu).unwrap().to_string(),
    )]);
    state.save_safetensors(gpu, &path, &metadata).unwrap();

    let mut restored = Adam::new(gpu, AdamConfig::default()).unwrap();
    let loaded: Vec<_> = ParamStore::load_safetensors(gpu, &path)
        .unwrap()
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    restored.load_state(gpu, &loaded).unwrap();
    let step: u64 = read_safetensors_metadata(&path).unwrap()["step"]
        .parse()
        .unwrap();
    restored.set_step_count(gpu, step).unwrap();
    assert_eq!(restored.step_count(gpu).unwrap(), 1);
    let host = |s: Vec<(String, wgnn::Tensor)>| {
        s.into_iter()
            .map(|(n, t)| (n, t.to_vec(gpu).unwrap()))
            .collect::<Vec<_>>()
    };
    assert_eq!(host(restored.state()), host(adam.state()));
    assert_eq!(restored.state().len(), 6);
}
