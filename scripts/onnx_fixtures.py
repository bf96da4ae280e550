#!/usr/bin/env python3
"""Writes the ONNX importer's test fixtures into crates/wgnn-onnx/tests/fixtures/:

- one small model per case, `<case>.onnx`, built with onnx.helper: a single operator (or a
  short chain, such as the Shape -> Gather -> Unsqueeze -> Concat -> Reshape that PyTorch
  exports for flatten) on random inputs that are never zero;
- `cases.safetensors`: for each case `<case>/in/<input>` and `<case>/out/<output>`, the outputs
  computed by onnx.reference.ReferenceEvaluator (float32), except Softmax and LogSoftmax at
  opsets 11 and 12, whose coerced-matrix meaning the evaluator lacks, Resize's opset 11-12
  tf_half_pixel_for_nn, which it does not implement, Pad with negative pads, which its
  numpy.pad refuses, MaxUnpool to an output_shape above the default size, where it scatters
  into the default size (all computed in numpy from the spec), and ConvTranspose's output_shape
  without auto_pad, which it crops at the end only (the evaluator's own ConvTranspose with the
  pads of the spec's rule); MaxPool's indices stay INT64;
- `unsupported_*.onnx`: models the importer must refuse (the Rust tests assert the message);
- `squeezenet1_1.onnx`: SqueezeNet v1.1 as ONNX (RGB in [0, 1] in, logits out, the Caffe
  preprocessing as Slice/Concat/Mul/Sub nodes) whose weights are external data pointing into
  assets/squeezenet1_1.safetensors by offset, so the checked-in file holds only the graph.

Run from the repository's root (needs `pip install onnx numpy`): python3 scripts/onnx_fixtures.py
"""

import json
import shutil
import tempfile
import struct
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "crates" / "wgnn-onnx" / "tests" / "fixtures"
ASSETS = ROOT / "assets"
rng = np.random.default_rng(20261207)


def rand(*shape):
    """Uniform in [-1, -0.1] U [0.1, 1]: never zero."""
    magnitude = rng.uniform(0.1, 1.0, size=shape)
    sign = rng.choice([-1.0, 1.0], size=shape)
    return (magnitude * sign).astype(np.float32)


def positive(*shape):
    return rng.uniform(0.5, 1.5, size=shape).astype(np.float32)


def model(nodes, inputs, outputs, initialisers=(), opset=17, output_shapes=None, output_types=None):
    shapes = output_shapes or [[] for _ in outputs]
    types = output_types or [TensorProto.FLOAT for _ in outputs]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(a.shape)) for n, a in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in zip(outputs, types, shapes)],
        [numpy_helper.from_array(a, n) for n, a in initialisers],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    # The oldest IR version that carries the opset (opset 19 needs IR 9, opset 21 IR 10).
    m.ir_version = 8 if opset <= 18 else 9 if opset <= 20 else 10
    return m


CASES = {}


def case(name, nodes, inputs, outputs, initialisers=(), opset=17, expected=None):
    """`expected` (inputs -> outputs) replaces the reference evaluator where it departs from
    the operator's specification at `opset`."""
    draft = model(nodes, inputs, outputs, initialisers, opset)
    evaluate = expected or (lambda feeds: ReferenceEvaluator(draft).run(None, feeds))
    results = evaluate(dict(inputs))
    # Indices (MaxPool's) are INT64 and stay so, to be compared exactly; the rest is float32.
    indices = [np.asarray(r).dtype == np.int64 for r in results]
    types = [TensorProto.INT64 if i else TensorProto.FLOAT for i in indices]
    m = model(nodes, inputs, outputs, initialisers, opset, [list(r.shape) for r in results], types)
    onnx.checker.check_model(m)
    onnx.save(m, OUT / f"{name}.onnx")
    for n, a in inputs:
        CASES[f"{name}/in/{n}"] = a
    for n, r, i in zip(outputs, results, indices):
        CASES[f"{name}/out/{n}"] = np.asarray(r, dtype=np.int64 if i else np.float32)


def refused(name, nodes, inputs, outputs, initialisers=(), opset=17):
    """A model the importer must refuse; checked by onnx where it is valid ONNX."""
    m = model(nodes, inputs, outputs, initialisers, opset)
    onnx.save(m, OUT / f"unsupported_{name}.onnx")


def node(op, inputs, outputs, **attrs):
    return helper.make_node(op, inputs, outputs, **attrs)


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        dtype = "I64" if tensors[name].dtype == np.int64 else "F32"
        data = np.ascontiguousarray(tensors[name], dtype=np.int64 if dtype == "I64" else np.float32).tobytes()
        shape = list(tensors[name].shape)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def operator_cases():
    x4 = rand(2, 3, 7, 8)
    # Convolution: 2-D with bias, strides / pads / dilations, 1-D, 3-D, SAME padding, fused ReLU.
    case("conv2d", [node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3])],
         [("x", x4)], ["y"], [("w", rand(4, 3, 3, 3)), ("b", rand(4))])
    case("conv2d_stride_pad_dilation",
         [node("Conv", ["x", "w"], ["y"], strides=[2, 1], pads=[1, 2, 1, 2], dilations=[2, 1])],
         [("x", x4)], ["y"], [("w", rand(5, 3, 3, 2))])
    case("conv1d", [node("Conv", ["x", "w", "b"], ["y"], strides=[2], pads=[1, 1])],
         [("x", rand(2, 3, 11))], ["y"], [("w", rand(4, 3, 3)), ("b", rand(4))])
    case("conv3d", [node("Conv", ["x", "w", "b"], ["y"], pads=[1, 0, 1, 1, 0, 1])],
         [("x", rand(1, 2, 4, 5, 6))], ["y"], [("w", rand(3, 2, 3, 2, 3)), ("b", rand(3))])
    case("conv_same_upper", [node("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER")],
         [("x", x4)], ["y"], [("w", rand(4, 3, 3, 3))])
    case("conv_valid", [node("Conv", ["x", "w"], ["y"], auto_pad="VALID", strides=[2, 2])],
         [("x", x4)], ["y"], [("w", rand(4, 3, 3, 3))])
    case("conv_relu", [node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
                       node("Relu", ["c"], ["y"])],
         [("x", x4)], ["y"], [("w", rand(4, 3, 3, 3)), ("b", rand(4))])
    # A ReLU that is not the convolution's only reader is not fused.
    case("conv_relu_shared", [node("Conv", ["x", "w"], ["c"]), node("Relu", ["c"], ["r"]),
                              node("Add", ["c", "r"], ["y"])],
         [("x", x4)], ["y", "c"], [("w", rand(4, 3, 3, 3))])

    # Pooling.
    case("maxpool_ceil", [node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)],
         [("x", x4)], ["y"])
    case("maxpool_pads", [node("MaxPool", ["x"], ["y"], kernel_shape=[3, 2], strides=[1, 2], pads=[1, 1, 1, 1])],
         [("x", x4)], ["y"])
    # Under ceil_mode a window that would start in the right padding is dropped (ONNX and the
    # engine agree): 5 rows give 3 windows, 7 columns 4.
    case("maxpool_ceil_pads", [node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2],
                                    pads=[1, 1, 1, 1], ceil_mode=1)], [("x", rand(2, 3, 5, 7))], ["y"])
    case("maxpool1d", [node("MaxPool", ["x"], ["y"], kernel_shape=[2])], [("x", rand(2, 3, 9))], ["y"])
    case("maxpool_same", [node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], auto_pad="SAME_UPPER")],
         [("x", x4)], ["y"])
    case("avgpool_pads", [node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                               count_include_pad=1)], [("x", x4)], ["y"])
    case("avgpool_ceil", [node("AveragePool", ["x"], ["y"], kernel_shape=[2, 3], strides=[2, 2], ceil_mode=1)],
         [("x", rand(2, 3, 7, 8))], ["y"])
    case("avgpool3d", [node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2, 2])],
         [("x", rand(1, 2, 4, 4, 6))], ["y"])
    case("global_avgpool", [node("GlobalAveragePool", ["x"], ["y"])], [("x", x4)], ["y"])
    case("global_maxpool", [node("GlobalMaxPool", ["x"], ["y"])], [("x", x4)], ["y"])

    # Matrix products.
    case("gemm", [node("Gemm", ["a", "w", "c"], ["y"], transB=1, alpha=0.5, beta=2.0)],
         [("a", rand(3, 5))], ["y"], [("w", rand(4, 5)), ("c", rand(4))])
    case("gemm_trans_a", [node("Gemm", ["a", "b"], ["y"], transA=1)],
         [("a", rand(5, 3)), ("b", rand(5, 4))], ["y"])
    case("matmul", [node("MatMul", ["a", "b"], ["y"])], [("a", rand(3, 5))], ["y"], [("b", rand(5, 4))])
    case("matmul_batch_matrix", [node("MatMul", ["a", "b"], ["y"])],
         [("a", rand(2, 3, 5)), ("b", rand(5, 4))], ["y"])
    case("matmul_batched", [node("MatMul", ["a", "b"], ["y"])],
         [("a", rand(2, 3, 5)), ("b", rand(2, 5, 4))], ["y"])

    # Normalisation.
    case("batchnorm", [node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], epsilon=1e-3)],
         [("x", x4)], ["y"], [("s", rand(3)), ("b", rand(3)), ("m", rand(3)), ("v", positive(3))])
    case("lpnorm", [node("LpNormalization", ["x"], ["y"], axis=-1, p=2)], [("x", rand(3, 6))], ["y"])

    # Activations.
    case("relu", [node("Relu", ["x"], ["y"])], [("x", x4)], ["y"])
    case("leaky_relu", [node("LeakyRelu", ["x"], ["y"], alpha=0.2)], [("x", x4)], ["y"])
    case("sigmoid", [node("Sigmoid", ["x"], ["y"])], [("x", x4)], ["y"])
    case("tanh", [node("Tanh", ["x"], ["y"])], [("x", x4)], ["y"])
    case("elu", [node("Elu", ["x"], ["y"], alpha=0.5)], [("x", x4)], ["y"])

    # Arithmetic.
    case("add_broadcast", [node("Add", ["x", "b"], ["y"])], [("x", x4)], ["y"], [("b", rand(3, 1, 1))])
    case("sub", [node("Sub", ["x", "z"], ["y"])], [("x", x4), ("z", rand(2, 3, 7, 8))], ["y"])
    case("mul_broadcast", [node("Mul", ["x", "z"], ["y"])], [("x", x4), ("z", rand(8))], ["y"])
    case("div_constant", [node("Div", ["x", "d"], ["y"])], [("x", x4)], ["y"], [("d", positive(1, 3, 1, 1))])
    case("div_scalar", [node("Div", ["x", "d"], ["y"])], [("x", x4)], ["y"],
         [("d", np.array(4.0, dtype=np.float32))])
    case("sum3", [node("Sum", ["x", "z", "w"], ["y"])],
         [("x", x4), ("z", rand(2, 3, 7, 8)), ("w", rand(7, 8))], ["y"])
    case("neg", [node("Neg", ["x"], ["y"])], [("x", x4)], ["y"])

    # Shapes, slicing and constants.
    case("concat_channels", [node("Concat", ["x", "z"], ["y"], axis=1)],
         [("x", x4), ("z", rand(2, 2, 7, 8))], ["y"])
    case("concat_negative_axis", [node("Concat", ["x", "z"], ["y"], axis=-3)],
         [("x", x4), ("z", rand(2, 2, 7, 8))], ["y"])
    i64 = lambda *v: np.array(v, dtype=np.int64)
    case("slice_channels", [node("Slice", ["x", "s", "e", "a"], ["y"])], [("x", x4)], ["y"],
         [("s", i64(1)), ("e", i64(3)), ("a", i64(1))])
    case("slice_channels_negative", [node("Slice", ["x", "s", "e", "a", "st"], ["y"])], [("x", x4)], ["y"],
         [("s", i64(-2, 0)), ("e", i64(1000, 100)), ("a", i64(1, 3)), ("st", i64(1, 1))])
    case("split_channels", [node("Split", ["x", "sp"], ["y0", "y1"], axis=1)],
         [("x", rand(2, 5, 3, 4))], ["y0", "y1"], [("sp", i64(2, 3))])
    case("split_opset11", [node("Split", ["x"], ["y0", "y1", "y2"], axis=1)],
         [("x", rand(2, 6, 3, 4))], ["y0", "y1", "y2"], opset=11)
    case("reshape", [node("Reshape", ["x", "s"], ["y"])], [("x", x4)], ["y"], [("s", i64(0, -1, 4))])
    case("flatten", [node("Flatten", ["x"], ["y"], axis=2)], [("x", x4)], ["y"])
    case("squeeze_unsqueeze", [node("Unsqueeze", ["x", "a"], ["u"]), node("Squeeze", ["u", "a"], ["y"])],
         [("x", rand(2, 3, 4))], ["y", "u"], [("a", i64(0, -1))])
    case("squeeze_opset11", [node("Squeeze", ["x"], ["y"], axes=[2])], [("x", rand(2, 3, 1, 4))], ["y"],
         opset=11)
    case("torch_flatten",
         [node("Shape", ["x"], ["shape"]),
          node("Constant", [], ["zero"], value=numpy_helper.from_array(i64(0).reshape(()))),
          node("Gather", ["shape", "zero"], ["batch"], axis=0),
          node("Unsqueeze", ["batch", "axes"], ["batch1"]),
          node("Constant", [], ["rest"], value_ints=[-1]),
          node("Concat", ["batch1", "rest"], ["target"], axis=0),
          node("Reshape", ["x", "target"], ["y"])],
         [("x", x4)], ["y"], [("axes", i64(0))], opset=13)
    case("shape_arithmetic",
         [node("Shape", ["x"], ["shape"], start=2),
          node("Constant", [], ["two"], value=numpy_helper.from_array(i64(2))),
          node("Div", ["shape", "two"], ["half"]),
          node("Sub", ["half", "two"], ["less"]),
          node("Neg", ["less"], ["more"]),
          node("Cast", ["more"], ["scale"], to=TensorProto.FLOAT),
          node("Mul", ["x", "scale"], ["y"])],
         [("x", rand(2, 3, 5, 2))], ["y"], opset=15)
    case("identity_dropout", [node("Identity", ["x"], ["i"]), node("Dropout", ["i", "r"], ["y"])],
         [("x", x4)], ["y"], [("r", np.array(0.5, dtype=np.float32))])
    case("constant", [node("Constant", [], ["c"], value=numpy_helper.from_array(rand(8))),
                      node("Add", ["x", "c"], ["y"])], [("x", x4)], ["y"])
    case("reduce_mean_axes", [node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=1)],
         [("x", x4)], ["y"], opset=13)
    case("reduce_sum_input_axes", [node("ReduceSum", ["x", "a"], ["y"], keepdims=0)],
         [("x", x4)], ["y"], [("a", i64(1, -1))], opset=13)
    case("reduce_mean_all", [node("ReduceMean", ["x"], ["y"], keepdims=0)], [("x", x4)], ["y"], opset=18)

    # A small network: conv, batch norm, relu, pool, flatten, gemm.
    case("small_cnn",
         [node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
          node("BatchNormalization", ["c1", "s", "bb", "m", "v"], ["n1"]),
          node("Relu", ["n1"], ["r1"]),
          node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
          node("Flatten", ["p1"], ["f"]),
          node("Gemm", ["f", "w2", "b2"], ["y"], transB=1)],
         [("x", rand(2, 3, 8, 8))], ["y"],
         [("w1", rand(4, 3, 3, 3)), ("b1", rand(4)), ("s", rand(4)), ("bb", rand(4)),
          ("m", rand(4)), ("v", positive(4)), ("w2", rand(5, 64)), ("b2", rand(5))])


def refused_cases():
    x4 = rand(1, 4, 6, 6)
    refused("nonzero", [node("NonZero", ["x"], ["y"])], [("x", x4)], ["y"])
    # Grouped convolution, begin/end and automatic padding, dilated and exclude-pad pooling.
    case("conv_group2", [node("Conv", ["x", "w"], ["y"], group=2)], [("x", x4)], ["y"],
            [("w", rand(4, 2, 3, 3))])
    case("conv_asymmetric_pads", [node("Conv", ["x", "w"], ["y"], pads=[0, 1, 1, 1])], [("x", x4)], ["y"],
            [("w", rand(2, 4, 3, 3))])
    case("conv_same_even_kernel", [node("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER")], [("x", x4)],
            ["y"], [("w", rand(2, 4, 2, 2))])
    case("avgpool_exclude_pad", [node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
            [("x", x4)], ["y"])
    case("maxpool_dilation", [node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], dilations=[2, 2])],
            [("x", x4)], ["y"])
    refused("unknown_attribute", [node("Relu", ["x"], ["y"], flavour=3)], [("x", x4)], ["y"])
    refused("div_computed", [node("Div", ["x", "x"], ["y"])], [("x", x4)], ["y"])
    refused("missing_initialiser", [node("Conv", ["x", "w"], ["y"])], [("x", x4)], ["y"])
    refused("old_opset", [node("Relu", ["x"], ["y"])], [("x", x4)], ["y"], opset=10)
    refused("batchnorm_training",
            [node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], training_mode=1)],
            [("x", x4)], ["y"], [("s", rand(4)), ("b", rand(4)), ("m", rand(4)), ("v", positive(4))],
            opset=15)


def coerced_softmax(axis, log=False):
    """Softmax and LogSoftmax of opsets 1 to 12: the input as a matrix whose rows are the dims
    before `axis`, normalised along each row (float64). ONNX's reference evaluator applies the
    opset 13 meaning (along `axis` alone) at every opset, so these cases use this instead."""

    def run(feeds):
        x = feeds["x"].astype(np.float64)
        a = axis % x.ndim
        m = x.reshape(int(np.prod(x.shape[:a])), -1)
        shifted = m - m.max(axis=1, keepdims=True)
        total = np.exp(shifted).sum(axis=1, keepdims=True)
        y = shifted - np.log(total) if log else np.exp(shifted) / total
        return [y.reshape(x.shape).astype(np.float32)]

    return run


def tf_half_pixel_nearest(sizes, rounding):
    """Resize of opsets 11 and 12 in mode nearest with coordinate_transformation_mode
    tf_half_pixel_for_nn, which ONNX's reference evaluator lacks: per spatial axis the source
    coordinate (x + 0.5) / scale (scale = output / input length), rounded by `rounding` and
    clamped to the axis."""

    def run(feeds):
        x = feeds["x"]
        y = x
        for a in range(2, x.ndim):
            length, out = x.shape[a], sizes[a]
            source = (np.arange(out, dtype=np.float64) + 0.5) / (out / length)
            index = np.clip(rounding(source), 0, length - 1).astype(np.int64)
            y = np.take(y, index, axis=a)
        return [y.astype(np.float32)]

    return run


def engine_op_cases():
    """Operators on the engine's softmax, activations, views, concat, resize and broadcast
    matmul; written after the cases above so that their random inputs stay as they were."""
    i64 = lambda *v: np.array(v, dtype=np.int64)
    f32 = lambda *v: np.array(v, dtype=np.float32)
    scalar = lambda v: np.array(v, dtype=np.float32)
    x4 = rand(2, 3, 4, 5)

    # Softmax and LogSoftmax: along an axis from opset 13, over a matrix coerced at `axis`
    # before (for a rank-4 input and axis 1 the two differ).
    case("softmax_axis1", [node("Softmax", ["x"], ["y"], axis=1)], [("x", 3 * x4)], ["y"], opset=13)
    case("softmax_default_axis", [node("Softmax", ["x"], ["y"])], [("x", 3 * rand(2, 3, 6))], ["y"], opset=13)
    case("softmax_opset11_coerced", [node("Softmax", ["x"], ["y"], axis=1)], [("x", 3 * x4)], ["y"], opset=11,
         expected=coerced_softmax(1))
    case("softmax_opset12_axis0", [node("Softmax", ["x"], ["y"], axis=0)], [("x", 3 * rand(2, 3, 4))], ["y"],
         opset=12, expected=coerced_softmax(0))
    # Along the last axis both meanings agree: the reference evaluator's outputs.
    case("softmax_opset11_last", [node("Softmax", ["x"], ["y"], axis=-1)], [("x", 3 * rand(2, 3, 4))], ["y"],
         opset=11)
    case("log_softmax_axis0", [node("LogSoftmax", ["x"], ["y"], axis=0)], [("x", 3 * rand(3, 4, 2))], ["y"],
         opset=13)
    case("log_softmax_opset11_coerced", [node("LogSoftmax", ["x"], ["y"])], [("x", 3 * rand(2, 3, 4))], ["y"],
         opset=11, expected=coerced_softmax(1, log=True))

    # Activations (inputs stretched to cover the kinks of the hard ones).
    case("erf", [node("Erf", ["x"], ["y"])], [("x", 2.5 * x4)], ["y"], opset=13)
    case("gelu", [node("Gelu", ["x"], ["y"])], [("x", 3 * x4)], ["y"], opset=20)
    case("gelu_tanh", [node("Gelu", ["x"], ["y"], approximate="tanh")], [("x", 3 * x4)], ["y"], opset=20)
    case("hard_swish", [node("HardSwish", ["x"], ["y"])], [("x", 4 * x4)], ["y"], opset=14)
    case("hard_sigmoid", [node("HardSigmoid", ["x"], ["y"], alpha=0.3, beta=0.4)], [("x", 4 * x4)], ["y"])
    case("hard_sigmoid_default", [node("HardSigmoid", ["x"], ["y"])], [("x", 4 * x4)], ["y"])
    case("clip", [node("Clip", ["x", "lo", "hi"], ["y"])], [("x", x4)], ["y"],
         [("lo", scalar(-0.5)), ("hi", scalar(0.3))], opset=13)
    case("clip_max_only", [node("Clip", ["x", "", "hi"], ["y"])], [("x", x4)], ["y"], [("hi", scalar(0.2))])
    case("clip_min_constant_node", [node("Constant", [], ["lo"], value_float=-0.25),
                                    node("Clip", ["x", "lo"], ["y"])], [("x", x4)], ["y"], opset=12)
    case("clip_unbounded", [node("Clip", ["x"], ["y"])], [("x", x4)], ["y"])
    # min > max: every value becomes max.
    case("clip_inverted", [node("Clip", ["x", "lo", "hi"], ["y"])], [("x", x4)], ["y"],
         [("lo", scalar(0.5)), ("hi", scalar(-0.2))])

    # Transpose, on computed tensors (up to rank 6) and folded on a constant.
    case("transpose_default", [node("Transpose", ["x"], ["y"])], [("x", rand(2, 3, 4))], ["y"])
    case("transpose_perm", [node("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1])], [("x", x4)], ["y"])
    case("transpose_rank6", [node("Transpose", ["x"], ["y"], perm=[5, 0, 3, 1, 4, 2])],
         [("x", rand(2, 1, 3, 2, 2, 3))], ["y"])
    case("transpose_constant", [node("Transpose", ["w"], ["wt"], perm=[1, 0]), node("Add", ["x", "wt"], ["y"])],
         [("x", rand(2, 4, 3))], ["y"], [("w", rand(3, 4))])

    # Concat, Slice and Split along any axis.
    case("concat_axis2", [node("Concat", ["x", "z"], ["y"], axis=2)], [("x", x4), ("z", rand(2, 3, 2, 5))], ["y"])
    case("concat_last_axis", [node("Concat", ["x", "z", "w"], ["y"], axis=-1)],
         [("x", rand(2, 3)), ("z", rand(2, 1)), ("w", rand(2, 4))], ["y"])
    case("concat_axis0_constant", [node("Concat", ["x", "c"], ["y"], axis=0)], [("x", rand(2, 3, 4))], ["y"],
         [("c", rand(1, 3, 4))])
    case("slice_any_axes", [node("Slice", ["x", "s", "e", "a", "st"], ["y"])], [("x", x4)], ["y"],
         [("s", i64(1, 0, -1)), ("e", i64(2, 4, -1000)), ("a", i64(0, 2, 3)), ("st", i64(1, 2, -2))])
    case("slice_rank6_last", [node("Slice", ["x", "s", "e", "a"], ["y"])], [("x", rand(2, 1, 2, 3, 1, 5))], ["y"],
         [("s", i64(1)), ("e", i64(4)), ("a", i64(-1))])
    case("split_last_axis", [node("Split", ["x", "sp"], ["y0", "y1"], axis=-1)], [("x", x4)], ["y0", "y1"],
         [("sp", i64(2, 3))])
    case("split_num_outputs", [node("Split", ["x"], ["y0", "y1", "y2"], axis=2, num_outputs=3)],
         [("x", rand(2, 3, 7, 2))], ["y0", "y1", "y2"], opset=18)

    # MatMul with broadcast batches and 1-D operands.
    case("matmul_broadcast4", [node("MatMul", ["a", "b"], ["y"])], [("a", rand(2, 1, 3, 5)), ("b", rand(4, 5, 6))],
         ["y"])
    case("matmul_rank6", [node("MatMul", ["a", "b"], ["y"])],
         [("a", rand(2, 1, 2, 1, 3, 4)), ("b", rand(1, 2, 1, 2, 4, 2))], ["y"])
    case("matmul_vector_left", [node("MatMul", ["a", "b"], ["y"])], [("a", rand(5)), ("b", rand(2, 5, 3))], ["y"])
    case("matmul_vector_right", [node("MatMul", ["a", "b"], ["y"])], [("a", rand(2, 3, 5))], ["y"],
         [("b", rand(5))])

    # Resize over the spatial axes: each nearest rounding and coordinate mode, scales and sizes,
    # 1-D to 3-D, opset 11's roi input, opset 18's axes.
    x = rand(1, 2, 3, 4)
    case("resize_nearest", [node("Resize", ["x", "", "s"], ["y"])], [("x", x)], ["y"],
         [("s", f32(1, 1, 2, 1.5))], opset=13)
    case("resize_nearest_asymmetric_floor",
         [node("Resize", ["x", "", "s"], ["y"], coordinate_transformation_mode="asymmetric",
               nearest_mode="floor")], [("x", x)], ["y"], [("s", f32(1, 1, 2, 2))], opset=13)
    case("resize_nearest_tf_half_pixel_opset11",
         [node("Resize", ["x", "roi", "sc", "z"], ["y"], coordinate_transformation_mode="tf_half_pixel_for_nn",
               nearest_mode="ceil")], [("x", x)], ["y"],
         [("roi", np.zeros(0, np.float32)), ("sc", np.zeros(0, np.float32)), ("z", i64(1, 2, 5, 7))], opset=11,
         expected=tf_half_pixel_nearest([1, 2, 5, 7], np.ceil))
    case("resize_nearest_pytorch_half_pixel_ceil",
         [node("Resize", ["x", "", "", "z"], ["y"], coordinate_transformation_mode="pytorch_half_pixel",
               nearest_mode="ceil")], [("x", x)], ["y"], [("z", i64(1, 2, 5, 7))], opset=13)
    case("resize_nearest_prefer_ceil_down",
         [node("Resize", ["x", "", "", "z"], ["y"], nearest_mode="round_prefer_ceil")],
         [("x", rand(1, 2, 5, 7))], ["y"], [("z", i64(1, 2, 2, 3))], opset=13)
    case("resize_nearest_align_corners",
         [node("Resize", ["x", "", "", "z"], ["y"], coordinate_transformation_mode="align_corners")],
         [("x", x)], ["y"], [("z", i64(1, 2, 7, 6))], opset=13)
    case("resize_linear", [node("Resize", ["x", "", "s"], ["y"], mode="linear")], [("x", x)], ["y"],
         [("s", f32(1, 1, 2, 2))], opset=13)
    case("resize_linear_align_corners",
         [node("Resize", ["x", "", "", "z"], ["y"], mode="linear", coordinate_transformation_mode="align_corners")],
         [("x", x)], ["y"], [("z", i64(1, 2, 7, 5))], opset=13)
    case("resize_linear_pytorch_half_pixel",
         [node("Resize", ["x", "", "", "z"], ["y"], mode="linear",
               coordinate_transformation_mode="pytorch_half_pixel")],
         [("x", x)], ["y"], [("z", i64(1, 2, 1, 6))], opset=13)
    case("resize_linear_asymmetric_down",
         [node("Resize", ["x", "", "s"], ["y"], mode="linear", coordinate_transformation_mode="asymmetric")],
         [("x", rand(1, 2, 5, 8))], ["y"], [("s", f32(1, 1, 0.6, 0.5))], opset=13)
    case("resize_linear_1d", [node("Resize", ["x", "", "s"], ["y"], mode="linear")], [("x", rand(2, 3, 5))], ["y"],
         [("s", f32(1, 1, 1.6))], opset=13)
    case("resize_linear_3d", [node("Resize", ["x", "", "", "z"], ["y"], mode="linear")],
         [("x", rand(1, 2, 2, 3, 4))], ["y"], [("z", i64(1, 2, 3, 5, 6))], opset=13)
    case("resize_opset11_roi", [node("Resize", ["x", "roi", "s"], ["y"], mode="linear")], [("x", x)], ["y"],
         [("roi", np.zeros(0, np.float32)), ("s", f32(1, 1, 1.5, 2.5))], opset=11)
    # not_larger: one scale of 2 makes [6, 8] (stretch would give [6, 10]); not_smaller: one scale
    # of 7/3 on both axes gives the stretched shape [7, 9] with other columns (linear).
    case("resize_not_larger", [node("Resize", ["x", "", "", "z"], ["y"], axes=[2, 3],
                                    keep_aspect_ratio_policy="not_larger")],
         [("x", x)], ["y"], [("z", i64(6, 10))], opset=18)
    case("resize_not_smaller", [node("Resize", ["x", "", "", "z"], ["y"], mode="linear", axes=[2, 3],
                                     keep_aspect_ratio_policy="not_smaller")],
         [("x", x)], ["y"], [("z", i64(7, 9))], opset=18)
    case("resize_axes_opset18", [node("Resize", ["x", "", "", "z"], ["y"], axes=[3, 2])], [("x", x)], ["y"],
         [("z", i64(6, 5))], opset=18)

    # A small classifier ending in softmax.
    case("classifier_softmax",
         [node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
          node("HardSwish", ["c1"], ["h1"]),
          node("Resize", ["h1", "", "s"], ["u"], mode="linear"),
          node("GlobalAveragePool", ["u"], ["p"]),
          node("Flatten", ["p"], ["f"]),
          node("Gemm", ["f", "w2", "b2"], ["logits"], transB=1),
          node("Softmax", ["logits"], ["y"], axis=1)],
         [("x", rand(2, 3, 6, 6))], ["y"],
         [("w1", rand(4, 3, 3, 3)), ("b1", rand(4)), ("s", f32(1, 1, 2, 2)), ("w2", rand(5, 4)), ("b2", rand(5))],
         opset=14)


def engine_op_refusals():
    x = rand(1, 2, 3, 4)
    f32 = lambda *v: np.array(v, dtype=np.float32)
    i64 = lambda *v: np.array(v, dtype=np.int64)
    scales = [("s", f32(1, 1, 2, 2))]
    refused("resize_cubic", [node("Resize", ["x", "", "s"], ["y"], mode="cubic")], [("x", x)], ["y"], scales,
            opset=13)
    refused("resize_antialias", [node("Resize", ["x", "", "s"], ["y"], mode="linear", antialias=1)],
            [("x", x)], ["y"], [("s", f32(1, 1, 0.5, 0.5))], opset=18)
    refused("resize_exclude_outside", [node("Resize", ["x", "", "s"], ["y"], exclude_outside=1)],
            [("x", x)], ["y"], scales, opset=13)
    refused("resize_tf_crop_and_resize",
            [node("Resize", ["x", "roi", "s"], ["y"], coordinate_transformation_mode="tf_crop_and_resize")],
            [("x", x)], ["y"], [("roi", f32(0, 0, 0, 0, 1, 1, 1, 1))] + scales, opset=13)
    refused("resize_channels", [node("Resize", ["x", "", "s"], ["y"])], [("x", x)], ["y"],
            [("s", f32(1, 2, 1, 1))], opset=13)
    # One scale of 2.5 makes the 3 rows 7.5: ONNX rounds up to 8, the engine's scales down.
    refused("resize_keep_aspect_ratio",
            [node("Resize", ["x", "", "", "z"], ["y"], keep_aspect_ratio_policy="not_smaller", axes=[2, 3])],
            [("x", x)], ["y"], [("z", i64(6, 10))], opset=18)
    refused("resize_computed_scales", [node("Resize", ["x", "", "s"], ["y"])], [("x", x), ("s", f32(1, 1, 2, 2))],
            ["y"], opset=13)
    refused("clip_computed_bound", [node("Clip", ["x", "lo"], ["y"])], [("x", x), ("lo", f32(0.5))], ["y"],
            opset=13)


def squeezenet():
    """SqueezeNet v1.1 with its weights as external data inside assets/squeezenet1_1.safetensors."""
    path = ASSETS / "squeezenet1_1.safetensors"
    raw = path.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + header_len])
    meta = header.pop("__metadata__", {})
    base = 8 + header_len
    initialisers = []
    for name, info in header.items():
        assert info["dtype"] == "F32", name
        t = TensorProto()
        t.name = name
        t.data_type = TensorProto.FLOAT
        t.dims.extend(info["shape"])
        t.data_location = TensorProto.EXTERNAL
        begin, end = info["data_offsets"]
        for key, value in (("location", path.name), ("offset", base + begin), ("length", end - begin)):
            entry = t.external_data.add()
            entry.key, entry.value = key, str(value)
        initialisers.append(t)
    i64 = lambda *v: numpy_helper.from_array(np.array(v, dtype=np.int64))
    nodes = []
    consts = []

    def const(name, array):
        consts.append(numpy_helper.from_array(array, name))
        return name

    # RGB [0, 1] -> BGR, 0..255, minus the Caffe mean (the weights' preprocessing).
    for c in range(3):
        nodes.append(node("Slice", ["image", const(f"start{c}", np.array([c], np.int64)),
                                    const(f"end{c}", np.array([c + 1], np.int64)),
                                    const(f"axis{c}", np.array([1], np.int64))], [f"rgb{c}"]))
    nodes.append(node("Concat", ["rgb2", "rgb1", "rgb0"], ["bgr"], axis=1))
    nodes.append(node("Mul", ["bgr", const("pixel_scale", np.array(255.0, np.float32))], ["bgr255"]))
    mean = np.array([104.006, 116.669, 122.679], np.float32).reshape(1, 3, 1, 1)
    nodes.append(node("Sub", ["bgr255", const("mean_bgr", mean)], ["x"]))

    def conv_relu(x, prefix, out, **attrs):
        nodes.append(node("Conv", [x, f"{prefix}.weight", f"{prefix}.bias"], [f"{out}.conv"], **attrs))
        nodes.append(node("Relu", [f"{out}.conv"], [out]))
        return out

    def fire(x, index):
        p = f"features.{index}"
        s = conv_relu(x, f"{p}.squeeze", f"fire{index}.squeeze")
        e1 = conv_relu(s, f"{p}.expand1x1", f"fire{index}.expand1x1")
        e3 = conv_relu(s, f"{p}.expand3x3", f"fire{index}.expand3x3", pads=[1, 1, 1, 1])
        nodes.append(node("Concat", [e1, e3], [f"fire{index}"], axis=1))
        return f"fire{index}"

    def pool(x, name):
        nodes.append(node("MaxPool", [x], [name], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1))
        return name

    h = conv_relu("x", "features.0", "conv1", strides=[2, 2])
    h = pool(h, "pool1")
    h = fire(fire(h, 3), 4)
    h = pool(h, "pool2")
    h = fire(fire(h, 6), 7)
    h = pool(h, "pool3")
    for index in (9, 10, 11, 12):
        h = fire(h, index)
    nodes.append(node("Dropout", [h], ["dropped"]))
    h = conv_relu("dropped", "classifier.1", "classifier")
    nodes.append(node("GlobalAveragePool", [h], ["pooled"]))
    nodes.append(node("Flatten", ["pooled"], ["logits"]))
    graph = helper.make_graph(
        nodes, "squeezenet1_1",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 227, 227])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1000])],
        initialisers + consts,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="wgnn onnx_fixtures.py")
    m.ir_version = 8
    helper.set_model_props(m, {"preprocessing": "RGB in [0, 1], NCHW; " + json.dumps(meta)})
    target = OUT / "squeezenet1_1.onnx"
    onnx.save(m, target)
    # The checker reads external data beside the model (a regular file): a copy, for the check.
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copy(target, scratch)
        shutil.copy(path, scratch)
        onnx.checker.check_model(str(Path(scratch) / target.name))


def padding_group_transpose_cases():
    """Grouped convolution, begin/end and automatic padding, dilated pooling, ConvTranspose.
    Drawn from their own generator, so the cases above keep their draws."""
    global rng
    saved, rng = rng, np.random.default_rng(20261208)
    x4 = rand(2, 4, 7, 8)
    case("conv_depthwise", [node("Conv", ["x", "w", "b"], ["y"], group=4, pads=[1, 1, 1, 1])],
         [("x", x4)], ["y"], [("w", rand(4, 1, 3, 3)), ("b", rand(4))])
    case("conv_group2_multiplier", [node("Conv", ["x", "w"], ["y"], group=2, strides=[2, 1])],
         [("x", x4)], ["y"], [("w", rand(6, 2, 3, 2))])
    case("conv_group_relu", [node("Conv", ["x", "w", "b"], ["c"], group=2, pads=[0, 1, 2, 1]),
                             node("Relu", ["c"], ["y"])],
         [("x", x4)], ["y"], [("w", rand(4, 2, 3, 3)), ("b", rand(4))])
    case("conv_same_lower_stride", [node("Conv", ["x", "w"], ["y"], auto_pad="SAME_LOWER", strides=[2, 3])],
         [("x", x4)], ["y"], [("w", rand(3, 4, 2, 4))])
    case("conv1d_asymmetric", [node("Conv", ["x", "w"], ["y"], pads=[2, 0], dilations=[2])],
         [("x", rand(1, 3, 9))], ["y"], [("w", rand(2, 3, 3))])
    case("maxpool_asymmetric_pads",
         [node("MaxPool", ["x"], ["y"], kernel_shape=[3, 2], strides=[2, 2], pads=[0, 1, 2, 0])],
         [("x", x4)], ["y"])
    case("maxpool_dilation_pads_ceil",
         [node("MaxPool", ["x"], ["y"], kernel_shape=[2, 3], dilations=[2, 1], strides=[2, 2],
               pads=[1, 1, 1, 0], ceil_mode=1)],
         [("x", x4)], ["y"])
    case("avgpool_exclude_pad_asymmetric",
         [node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 2, 1])],
         [("x", x4)], ["y"])
    case("avgpool_same_upper", [node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 3], auto_pad="SAME_UPPER")],
         [("x", x4)], ["y"])
    case("avgpool_include_pad_asymmetric",
         [node("AveragePool", ["x"], ["y"], kernel_shape=[2, 3], pads=[1, 2, 0, 1], count_include_pad=1)],
         [("x", x4)], ["y"])
    case("avgpool_dilation", [node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], dilations=[2, 3])],
         [("x", x4)], ["y"], opset=19)
    case("convtranspose", [node("ConvTranspose", ["x", "w", "b"], ["y"])],
         [("x", x4)], ["y"], [("w", rand(4, 3, 3, 3)), ("b", rand(3))])
    case("convtranspose_stride_pads_outpad",
         [node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 3], pads=[1, 0, 0, 2],
               output_padding=[1, 2], dilations=[1, 2])],
         [("x", x4)], ["y"], [("w", rand(4, 2, 3, 3))])
    # ONNX's reference evaluator does not run grouped ConvTranspose: one ungrouped run per group.
    wg, bg = rand(4, 3, 2, 3), rand(6)

    def grouped_transpose(feeds, groups=2):
        c, o = wg.shape[0] // groups, wg.shape[1]
        parts = []
        for k in range(groups):
            single = model([node("ConvTranspose", ["x", "w", "b"], ["y"], strides=[2, 2])],
                           [("x", feeds["x"][:, k * c:(k + 1) * c])], ["y"],
                           [("w", wg[k * c:(k + 1) * c]), ("b", bg[k * o:(k + 1) * o])], 17)
            parts.append(ReferenceEvaluator(single).run(None, {"x": feeds["x"][:, k * c:(k + 1) * c]})[0])
        return [np.concatenate(parts, axis=1)]

    case("convtranspose_group", [node("ConvTranspose", ["x", "w", "b"], ["y"], group=2, strides=[2, 2])],
         [("x", x4)], ["y"], [("w", wg), ("b", bg)], expected=grouped_transpose)
    case("convtranspose_same_upper",
         [node("ConvTranspose", ["x", "w"], ["y"], auto_pad="SAME_UPPER", strides=[2, 2])],
         [("x", x4)], ["y"], [("w", rand(4, 2, 3, 3))])
    case("convtranspose1d_same_lower",
         [node("ConvTranspose", ["x", "w"], ["y"], auto_pad="SAME_LOWER", strides=[3])],
         [("x", rand(1, 2, 5))], ["y"], [("w", rand(2, 3, 4))])
    refused("avgpool_ceil_include_pad_overhang",
            [node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                  ceil_mode=1, count_include_pad=1)],
            [("x", x4)], ["y"])
    rng = saved


def pad_cases():
    """Pad in each mode, on any axes, asymmetric, longer than an axis, cropping. Drawn from their
    own generator, so the cases above keep their draws."""
    global rng
    saved, rng = rng, np.random.default_rng(20261209)
    i64 = lambda *v: np.array(v, dtype=np.int64)
    x4 = rand(2, 3, 5, 7)
    case("pad_constant_opset11", [node("Pad", ["x", "p", "v"], ["y"])], [("x", x4)], ["y"],
         [("p", i64(0, 0, 1, 2, 0, 0, 2, 1)), ("v", np.array(0.5, dtype=np.float32))], opset=11)
    case("pad_constant_every_axis", [node("Pad", ["x", "p"], ["y"], mode="constant")], [("x", x4)], ["y"],
         [("p", i64(1, 0, 2, 0, 0, 2, 1, 3))], opset=13)
    case("pad_reflect", [node("Pad", ["x", "p"], ["y"], mode="reflect")], [("x", x4)], ["y"],
         [("p", i64(0, 0, 2, 1, 0, 0, 4, 3))], opset=13)
    # Longer than the axis: numpy's reflection goes on (period 2 (n - 1)).
    case("pad_reflect_long", [node("Pad", ["x", "p"], ["y"], mode="reflect")], [("x", rand(2, 3, 4))], ["y"],
         [("p", i64(0, 0, 6, 0, 1, 5))], opset=13)
    case("pad_edge_axes", [node("Pad", ["x", "p", "", "a"], ["y"], mode="edge")], [("x", x4)], ["y"],
         [("p", i64(1, 3, 2, 0)), ("a", i64(-1, 2))], opset=18)
    case("pad_wrap", [node("Pad", ["x", "p"], ["y"], mode="wrap")], [("x", x4)], ["y"],
         [("p", i64(0, 1, 3, 8, 0, 0, 2, 1))], opset=19)

    # Negative pads crop; the evaluator's numpy.pad refuses them: crop, then pad, in numpy.
    def crop_then_pad(pads, mode, **extra):
        def expected(feeds):
            x = feeds["x"]
            half = len(pads) // 2
            starts = [max(-p, 0) for p in pads[:half]]
            ends = [d - max(-p, 0) for d, p in zip(x.shape, pads[half:])]
            cropped = x[tuple(slice(s, e) for s, e in zip(starts, ends))]
            widths = [(max(b, 0), max(e, 0)) for b, e in zip(pads[:half], pads[half:])]
            return [np.pad(cropped, widths, mode=mode, **extra)]
        return expected

    negative = [0, 0, -1, 2, 0, 0, 1, -3]
    case("pad_negative_constant", [node("Pad", ["x", "p", "v"], ["y"])], [("x", x4)], ["y"],
         [("p", i64(*negative)), ("v", np.array(-2.0, dtype=np.float32))], opset=13,
         expected=crop_then_pad(negative, "constant", constant_values=-2.0))
    case("pad_negative_edge", [node("Pad", ["x", "p"], ["y"], mode="edge")], [("x", x4)], ["y"],
         [("p", i64(*negative))], opset=13, expected=crop_then_pad(negative, "edge"))
    refused("pad_wrap_opset18", [node("Pad", ["x", "p"], ["y"], mode="wrap")], [("x", x4)], ["y"],
            [("p", i64(0, 0, 1, 1, 0, 0, 1, 1))], opset=18)
    refused("pad_removes_axis", [node("Pad", ["x", "p"], ["y"])], [("x", x4)], ["y"],
            [("p", i64(0, 0, -3, 0, 0, 0, -2, 0))], opset=13)
    rng = saved


def indices_unpool_cases():
    """MaxPool's Indices (compared exactly) and MaxUnpool from them. Drawn from their own
    generator, so the cases above keep their draws."""
    global rng
    saved, rng = rng, np.random.default_rng(20261210)
    i64 = lambda *v: np.array(v, dtype=np.int64)
    x4 = rand(2, 3, 7, 9)
    case("maxpool_indices", [node("MaxPool", ["x"], ["y", "i"], kernel_shape=[3, 3], strides=[2, 2])],
         [("x", x4)], ["y", "i"])
    case("maxpool_indices_pads_dilation_ceil",
         [node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 3], strides=[2, 2], pads=[1, 0, 0, 1],
               dilations=[2, 1], ceil_mode=1, storage_order=0)],
         [("x", x4)], ["y", "i"], opset=12)
    case("maxpool_indices_1d", [node("MaxPool", ["x"], ["y", "i"], kernel_shape=[3], strides=[2])],
         [("x", rand(2, 3, 9))], ["y", "i"])
    # Each case has a stride above 1: the evaluator's path for all strides and dilations 1
    # decomposes a window's argmax by the output's shape and leaves out N and C.
    case("maxpool_indices_3d", [node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2, 2], strides=[1, 1, 2])],
         [("x", rand(2, 2, 3, 4, 5))], ["i"])
    # Unpooling to the default size: (pooled - 1) * stride + kernel - pads.
    case("maxunpool", [node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2], strides=[2, 2]),
                       node("MaxUnpool", ["y", "i"], ["z"], kernel_shape=[2, 2], strides=[2, 2])],
         [("x", rand(2, 3, 6, 8))], ["z"], opset=11)
    case("maxunpool_pads",
         [node("MaxPool", ["x"], ["y", "i"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
          node("MaxUnpool", ["y", "i"], ["z"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
         [("x", rand(2, 3, 7, 7))], ["z", "i"])
    # Back to an odd input's size with output_shape: the indices are positions in that shape.
    # The evaluator scatters into the default (smaller) size, and fails: numpy, from the spec.
    pool = node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2], strides=[2, 2])

    def unpool_to_input(feeds):
        x = feeds["x"]
        pooled = model([pool], [("x", x)], ["y", "i"], output_types=[TensorProto.FLOAT, TensorProto.INT64])
        y, i = ReferenceEvaluator(pooled).run(None, {"x": x})
        z = np.zeros(x.size, dtype=np.float32)
        z[i.ravel()] = y.ravel()
        return [z.reshape(x.shape)]

    case("maxunpool_output_shape",
         [pool, node("MaxUnpool", ["y", "i", "s"], ["z"], kernel_shape=[2, 2], strides=[2, 2])],
         [("x", x4)], ["z"], [("s", i64(2, 3, 7, 9))], expected=unpool_to_input)
    refused("maxpool_storage_order",
            [node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2], storage_order=1)], [("x", x4)], ["y", "i"])
    refused("maxunpool_constant_indices", [node("MaxUnpool", ["x", "i"], ["z"], kernel_shape=[2, 2])],
            [("x", rand(1, 1, 2, 2))], ["z"], [("i", i64(0, 3, 9, 10).reshape(1, 1, 2, 2))])
    refused("indices_cast_to_float",
            [node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2]), node("Cast", ["i"], ["f"], to=TensorProto.FLOAT)],
            [("x", x4)], ["f"])
    refused("indices_added",
            [node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2]), node("Add", ["i", "i"], ["f"])],
            [("x", x4)], ["f"])
    rng = saved


def conv_transpose_output_shape_cases():
    """ConvTranspose's output_shape, whose pads follow the specification's rule. Drawn from
    their own generator, so the cases above keep their draws."""
    global rng
    saved, rng = rng, np.random.default_rng(20261211)
    x4 = rand(2, 4, 7, 8)
    # Without auto_pad the evaluator crops the full output at the end only; the specification
    # crops the odd position at the start: its own explicit pads, which give that.
    w = rand(4, 2, 3, 3)

    def explicit_pads(pads, **attrs):
        def expected(feeds):
            single = model([node("ConvTranspose", ["x", "w"], ["y"], pads=pads, **attrs)],
                           [("x", feeds["x"])], ["y"], [("w", w)], 17)
            return ReferenceEvaluator(single).run(None, {"x": feeds["x"]})
        return expected

    # Full output 15 x 17: 1 position cropped on each axis, at the start.
    case("convtranspose_output_shape",
         [node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2], output_shape=[14, 16])],
         [("x", x4)], ["y"], [("w", w)], expected=explicit_pads([1, 1, 0, 0], strides=[2, 2]))
    # Full output 15 x 24: 3 cropped on each axis, the odd one at the end (SAME_UPPER).
    case("convtranspose_output_shape_same_upper",
         [node("ConvTranspose", ["x", "w", "b"], ["y"], strides=[2, 3], auto_pad="SAME_UPPER",
               output_shape=[12, 21])],
         [("x", x4)], ["y"], [("w", rand(4, 3, 3, 3)), ("b", rand(3))])
    # Full output 17 with output_padding: 3 cropped, the odd one at the start (SAME_LOWER).
    case("convtranspose1d_output_shape_same_lower",
         [node("ConvTranspose", ["x", "w"], ["y"], strides=[3], output_padding=[1], auto_pad="SAME_LOWER",
               output_shape=[14])],
         [("x", rand(1, 2, 5))], ["y"], [("w", rand(2, 3, 4))])
    refused("convtranspose_output_shape_longer",
            [node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2], output_shape=[14, 18])],
            [("x", x4)], ["y"], [("w", w)])
    rng = saved


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.onnx"):
        old.unlink()
    operator_cases()
    refused_cases()
    engine_op_cases()
    engine_op_refusals()
    padding_group_transpose_cases()
    pad_cases()
    indices_unpool_cases()
    conv_transpose_output_shape_cases()
    write_safetensors(OUT / "cases.safetensors", CASES)
    squeezenet()
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"{len(list(OUT.iterdir()))} files, {total} bytes in {OUT}")


if __name__ == "__main__":
    main()
