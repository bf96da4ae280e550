//! Every fixture model of `scripts/onnx_fixtures.py` (one operator, or a short chain, on random
//! inputs) imported and run on the GPU, against the outputs of ONNX's reference evaluator; the
//! models the importer must refuse, refused with a message naming the node and what is missing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use wgnn::tensor::DType;
use wgnn::{Plan, PlanSpec};
use wgnn_onnx::{ImportOptions, OnnxModel};
use wgnn_reference::testing::gpu;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The values of a tensor of `cases.safetensors`: floats, or MaxPool's indices (INT64).
enum Values {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// `cases.safetensors`: `<case>/in/<input>` and `<case>/out/<output>`, with their dims.
fn cases() -> BTreeMap<String, (Vec<usize>, Values)> {
    let bytes = std::fs::read(fixtures().join("cases.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = match view.dtype() {
                safetensors::Dtype::F32 => Values::F32(
                    view.data()
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                        .collect(),
                ),
                safetensors::Dtype::I64 => Values::I64(
                    view.data()
                        .chunks_exact(8)
                        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
                        .collect(),
                ),
                other => panic!("{name}: dtype {other:?}"),
            };
            (name, (view.shape().to_vec(), values))
        })
        .collect()
}

/// The operator cases: every fixture but the refused ones and SqueezeNet.
fn case_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".onnx").map(str::to_string)
        })
        .filter(|n| !n.starts_with("unsupported_") && n != "squeezenet1_1")
        .collect();
    names.sort();
    names
}

/// Imports and runs one case; the failures, as messages. Float outputs match within 2e-5
/// (relative, above 1); indices exactly.
fn check_case(name: &str, data: &BTreeMap<String, (Vec<usize>, Values)>) -> Vec<String> {
    let gpu = gpu();
    let model = OnnxModel::load(fixtures().join(format!("{name}.onnx"))).unwrap();
    let net = match model.import(gpu, &ImportOptions::default()) {
        Ok(net) => net,
        Err(e) => return vec![format!("{name}: import failed: {e}")],
    };
    let outputs: Vec<_> = net.outputs.iter().map(|(_, id)| *id).collect();
    let spec = PlanSpec {
        outputs: outputs.clone(),
        ..Default::default()
    };
    let mut plan = match Plan::compile(gpu, &net.graph, &net.params, spec) {
        Ok(plan) => plan,
        Err(e) => return vec![format!("{name}: compile failed: {e}")],
    };
    for (input, id) in &net.inputs {
        let Values::F32(values) = &data[&format!("{name}/in/{input}")].1 else {
            panic!("{name}: input {input} is not float");
        };
        assert!(values.iter().all(|&v| v != 0.0), "{name}: a zero input");
        plan.write_input(gpu, *id, values).unwrap();
    }
    let results = plan.step(gpu).unwrap();
    let mut failures = Vec::new();
    for ((output, id), got) in net.outputs.iter().zip(&results) {
        let (dims, expected) = &data[&format!("{name}/out/{output}")];
        let engine_dims = net.graph.shape(*id).dims().to_vec();
        let expected_dims = if dims.is_empty() {
            vec![1]
        } else {
            dims.clone()
        };
        if engine_dims != expected_dims {
            failures.push(format!(
                "{name}/{output}: shape {engine_dims:?}, ONNX {expected_dims:?}"
            ));
            continue;
        }
        let dtype = net.graph.node(*id).dtype;
        match expected {
            Values::F32(expected) if dtype == DType::F32 => {
                let worst = got
                    .iter()
                    .zip(expected)
                    .map(|(&g, &e)| (g - e).abs() / (1.0 + e.abs()))
                    .fold(0.0f32, f32::max);
                if worst > 2e-5 || got.iter().any(|v| !v.is_finite()) {
                    failures.push(format!("{name}/{output}: differs by {worst} (relative)"));
                }
            }
            // `Plan::step` hands back a u32 output's bits in f32s.
            Values::I64(expected) if dtype == DType::U32 => {
                let got: Vec<i64> = got.iter().map(|v| v.to_bits() as i64).collect();
                if &got != expected {
                    let wrong = got.iter().zip(expected).filter(|(g, e)| g != e).count();
                    failures.push(format!("{name}/{output}: {wrong} indices differ"));
                }
            }
            _ => failures.push(format!(
                "{name}/{output}: the engine's {dtype:?} for ONNX's type"
            )),
        }
    }
    failures
}

#[test]
fn every_fixture_model_matches_onnx_reference_outputs() {
    let data = cases();
    let names = case_names();
    assert!(names.len() >= 50, "only {} cases", names.len());
    let failures: Vec<String> = names.iter().flat_map(|n| check_case(n, &data)).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_mapped_operator_has_a_fixture() {
    let mut used = BTreeSet::new();
    for name in case_names() {
        let model = OnnxModel::load(fixtures().join(format!("{name}.onnx"))).unwrap();
        for node in &model.proto().graph.as_ref().unwrap().node {
            used.insert(node.op_type.clone());
        }
    }
    let missing: Vec<&str> = wgnn_onnx::supported_operators()
        .into_iter()
        .filter(|op| !used.contains(*op))
        .collect();
    assert!(
        missing.is_empty(),
        "operators without a fixture: {missing:?}"
    );
}

/// The import error of `unsupported_<name>.onnx`.
fn refusal(name: &str) -> String {
    let path = fixtures().join(format!("unsupported_{name}.onnx"));
    match OnnxModel::load(&path).and_then(|m| m.import(gpu(), &ImportOptions::default())) {
        Ok(_) => panic!("{name}: imported, but it must be refused"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unsupported_models_are_refused_naming_node_operator_and_reason() {
    let expectations: &[(&str, &[&str])] = &[
        (
            "nonzero",
            &["(NonZero", "operator NonZero is not supported", "Conv"],
        ),
        (
            "convtranspose_output_shape_longer",
            &[
                "(ConvTranspose",
                "`output_shape` = [14, 18] is longer than the full output (17 positions) along \
                 spatial axis 1",
                "negative padding is not supported",
            ],
        ),
        (
            "avgpool_ceil_include_pad_overhang",
            &[
                "(AveragePool",
                "ceil_mode with count_include_pad = 1",
                "axis 1",
            ],
        ),
        (
            "maxpool_storage_order",
            &[
                "(MaxPool",
                "storage_order = 1 (indices counted column-major) is not supported",
            ],
        ),
        (
            "maxunpool_constant_indices",
            &[
                "(MaxUnpool",
                "the indices (`i`) must be the `Indices` output of a MaxPool node",
            ],
        ),
        (
            "indices_cast_to_float",
            &[
                "(Cast",
                "casting MaxPool's indices (`i`) to FLOAT is not supported",
            ],
        ),
        (
            "indices_added",
            &[
                "(Add",
                "`i` holds MaxPool's indices (INT64)",
                "only MaxUnpool",
            ],
        ),
        (
            "unknown_attribute",
            &["(Relu", "attribute `flavour` is not supported"],
        ),
        ("div_computed", &["(Div", "divisor `x` is computed"]),
        (
            "missing_initialiser",
            &["(Conv", "input `w` is not an initialiser"],
        ),
        ("old_opset", &["opset 10 is not supported", "11 to 21"]),
        (
            "batchnorm_training",
            &["(BatchNormalization", "training_mode = 1"],
        ),
        (
            "resize_cubic",
            &[
                "(Resize",
                "mode = `cubic` is not supported; only `nearest` and `linear` are",
            ],
        ),
        (
            "resize_antialias",
            &["(Resize", "antialias = 1 is not supported"],
        ),
        (
            "resize_exclude_outside",
            &["(Resize", "exclude_outside = 1 is not supported"],
        ),
        (
            "resize_tf_crop_and_resize",
            &[
                "(Resize",
                "coordinate_transformation_mode = `tf_crop_and_resize` is not supported",
            ],
        ),
        (
            "resize_channels",
            &["(Resize", "resizing axis 1 (C)", "only the spatial axes"],
        ),
        (
            "resize_keep_aspect_ratio",
            &[
                "(Resize",
                "keep_aspect_ratio_policy = `not_smaller`",
                "axis 2 becomes 7.5 long",
            ],
        ),
        (
            "resize_computed_scales",
            &["(Resize", "the scales (`s`) is computed by the graph"],
        ),
        (
            "clip_computed_bound",
            &["(Clip", "the minimum (`lo`) is computed by the graph"],
        ),
        (
            "pad_wrap_opset18",
            &[
                "(Pad",
                "mode = `wrap` is defined from opset 19 on",
                "opset is 18",
            ],
        ),
        (
            "pad_removes_axis",
            &[
                "(Pad",
                "the pads -3 and -2 of axis 2 remove all of its 5 elements",
            ],
        ),
    ];
    for (name, parts) in expectations {
        let message = refusal(name);
        for part in *parts {
            assert!(message.contains(part), "{name}: `{part}` not in: {message}");
        }
        assert!(
            message.contains("unsupported_"),
            "{name}: no file named: {message}"
        );
    }
    let files = std::fs::read_dir(fixtures())
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("unsupported_")
        })
        .count();
    assert_eq!(
        files,
        expectations.len(),
        "a refused fixture without expectations"
    );
}

#[test]
fn truncated_and_garbage_files_are_errors() {
    let bytes = std::fs::read(fixtures().join("small_cnn.onnx")).unwrap();
    for cut in [bytes.len() / 2, bytes.len() - 3, 7] {
        let e = OnnxModel::from_bytes("cut.onnx", &bytes[..cut], None).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{cut}: {e}");
    }
    let e = OnnxModel::from_bytes("text.onnx", b"hello, this is not a model", None).unwrap_err();
    assert!(e.to_string().contains("not"), "{e}");
    let e = OnnxModel::load("no/such/model.onnx").unwrap_err();
    assert!(e.to_string().contains("no/such/model.onnx"), "{e}");
}

#[test]
fn unsupported_operators_are_listed_before_import() {
    let model = OnnxModel::load(fixtures().join("unsupported_nonzero.onnx")).unwrap();
    assert_eq!(model.unsupported_operators(), vec!["NonZero".to_string()]);
    let model = OnnxModel::load(fixtures().join("small_cnn.onnx")).unwrap();
    assert!(model.unsupported_operators().is_empty());
    assert_eq!(model.opset(), 17);
    assert_eq!(
        model.inputs()[0].dims,
        vec![Some(2), Some(3), Some(8), Some(8)]
    );
}

#[test]
fn corrupted_files_give_errors_or_models_never_panics() {
    let mut rng = wgnn::rng::Rng::new(11);
    let mut imported = 0;
    for name in [
        "small_cnn",
        "torch_flatten",
        "conv3d",
        "split_channels",
        "classifier_softmax",
        "resize_opset11_roi",
        "slice_any_axes",
        "transpose_rank6",
        "clip",
    ] {
        let bytes = std::fs::read(fixtures().join(format!("{name}.onnx"))).unwrap();
        for _ in 0..150 {
            let mut corrupted = bytes.clone();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(corrupted.len());
                corrupted[at] = rng.below(256) as u8;
            }
            let result = OnnxModel::from_bytes("corrupted.onnx", &corrupted, None)
                .and_then(|m| m.import(gpu(), &ImportOptions::default()));
            imported += result.is_ok() as usize;
        }
    }
    // Most corruptions hit tensor data or names, which still import.
    assert!(imported > 0);
}

#[test]
fn a_relu_reading_only_a_convolution_is_fused_into_it() {
    let count = |name: &str| {
        let model = OnnxModel::load(fixtures().join(format!("{name}.onnx"))).unwrap();
        let net = model.import(gpu(), &ImportOptions::default()).unwrap();
        net.graph.nodes().len()
    };
    // x, w, b and one fused convolution; the shared case keeps its ReLU and adds the sum.
    assert_eq!(count("conv_relu"), 4);
    assert_eq!(count("conv_relu_shared"), 5);
}
