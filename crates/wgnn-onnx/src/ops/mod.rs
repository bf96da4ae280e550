//! One mapping per ONNX operator, in a table: the function that adds the operator's wgnn nodes
//! (or folds it on the CPU when its inputs are known) and the attributes it reads. An attribute
//! outside that list is refused before the mapping runs; a value the mapping cannot express
//! exactly is refused by the mapping, naming what is missing. Adding an operator is adding a row.
//!
//! Files by family: `conv` and `pool` (windowed ops and their padding), `linear` (Gemm,
//! MatMul), `elementwise` (arithmetic and activations), `shape` (reshaping, slicing, constants
//! and the shape arithmetic folded on the CPU, with `fold`'s helpers), `norm` (batch and L2
//! normalisation), `reduce` (means and sums over axes), `softmax` (Softmax, LogSoftmax),
//! `resize` (Resize), `pad` (Pad).

mod conv;
mod elementwise;
mod fold;
mod linear;
mod norm;
mod pad;
mod pool;
mod reduce;
mod resize;
mod shape;
mod softmax;

use wgnn::error::{Error, Result};
use wgnn::graph::NodeId;

use crate::import::{Ctx, NodeView, Value};

pub type MapFn = fn(&mut Ctx<'_>, &NodeView<'_>) -> Result<Vec<Value>>;

/// How one operator maps: its function and the attributes it reads.
pub struct Mapping {
    pub map: MapFn,
    pub attributes: &'static [&'static str],
}

const fn row(map: MapFn, attributes: &'static [&'static str]) -> Mapping {
    Mapping { map, attributes }
}

/// The table, sorted by operator name.
static TABLE: &[(&str, Mapping)] = &[
    ("Add", row(elementwise::add, &[])),
    (
        "AveragePool",
        row(
            pool::average_pool,
            &[
                "auto_pad",
                "kernel_shape",
                "pads",
                "strides",
                "dilations",
                "ceil_mode",
                "count_include_pad",
            ],
        ),
    ),
    (
        "BatchNormalization",
        row(norm::batch_norm, &["epsilon", "momentum", "training_mode"]),
    ),
    ("Cast", row(shape::cast, &["to", "saturate"])),
    ("Clip", row(elementwise::clip, &[])),
    ("Concat", row(shape::concat, &["axis"])),
    (
        "Constant",
        row(
            shape::constant,
            &[
                "value",
                "value_float",
                "value_floats",
                "value_int",
                "value_ints",
            ],
        ),
    ),
    (
        "Conv",
        row(
            conv::conv,
            &[
                "auto_pad",
                "kernel_shape",
                "pads",
                "strides",
                "dilations",
                "group",
            ],
        ),
    ),
    (
        "ConvTranspose",
        row(
            conv::conv_transpose,
            &[
                "auto_pad",
                "kernel_shape",
                "pads",
                "strides",
                "dilations",
                "group",
                "output_padding",
                "output_shape",
            ],
        ),
    ),
    ("Div", row(elementwise::div, &[])),
    ("Dropout", row(shape::dropout, &["seed", "ratio"])),
    ("Elu", row(elementwise::elu, &["alpha"])),
    ("Erf", row(elementwise::erf, &[])),
    ("Flatten", row(shape::flatten, &["axis"])),
    ("Gather", row(shape::gather, &["axis"])),
    ("Gelu", row(elementwise::gelu, &["approximate"])),
    (
        "Gemm",
        row(linear::gemm, &["alpha", "beta", "transA", "transB"]),
    ),
    ("GlobalAveragePool", row(pool::global_average_pool, &[])),
    ("GlobalMaxPool", row(pool::global_max_pool, &[])),
    (
        "HardSigmoid",
        row(elementwise::hard_sigmoid, &["alpha", "beta"]),
    ),
    ("HardSwish", row(elementwise::hard_swish, &[])),
    ("Identity", row(shape::identity, &[])),
    ("LeakyRelu", row(elementwise::leaky_relu, &["alpha"])),
    ("LogSoftmax", row(softmax::log_softmax, &["axis"])),
    (
        "LpNormalization",
        row(norm::lp_normalization, &["axis", "p"]),
    ),
    ("MatMul", row(linear::matmul, &[])),
    (
        "MaxPool",
        row(
            pool::max_pool,
            &[
                "auto_pad",
                "kernel_shape",
                "pads",
                "strides",
                "dilations",
                "ceil_mode",
                "storage_order",
            ],
        ),
    ),
    (
        "MaxUnpool",
        row(pool::max_unpool, &["kernel_shape", "pads", "strides"]),
    ),
    ("Mul", row(elementwise::mul, &[])),
    ("Neg", row(elementwise::neg, &[])),
    ("Pad", row(pad::pad, &["mode"])),
    (
        "ReduceMean",
        row(
            reduce::reduce_mean,
            &["axes", "keepdims", "noop_with_empty_axes"],
        ),
    ),
    (
        "ReduceSum",
        row(
            reduce::reduce_sum,
            &["axes", "keepdims", "noop_with_empty_axes"],
        ),
    ),
    ("Relu", row(elementwise::relu, &[])),
    ("Reshape", row(shape::reshape, &["allowzero"])),
    (
        "Resize",
        row(
            resize::resize,
            &[
                "mode",
                "coordinate_transformation_mode",
                "nearest_mode",
                "cubic_coeff_a",
                "exclude_outside",
                "extrapolation_value",
                "antialias",
                "axes",
                "keep_aspect_ratio_policy",
            ],
        ),
    ),
    ("Shape", row(shape::shape, &["start", "end"])),
    ("Sigmoid", row(elementwise::sigmoid, &[])),
    ("Slice", row(shape::slice, &[])),
    ("Softmax", row(softmax::softmax, &["axis"])),
    (
        "Split",
        row(shape::split, &["axis", "split", "num_outputs"]),
    ),
    ("Squeeze", row(shape::squeeze, &["axes"])),
    ("Sub", row(elementwise::sub, &[])),
    ("Sum", row(elementwise::sum, &[])),
    ("Tanh", row(elementwise::tanh, &[])),
    ("Transpose", row(shape::transpose, &["perm"])),
    ("Unsqueeze", row(shape::unsqueeze, &["axes"])),
];

/// The mapping of `op_type`, if there is one.
pub fn mapping(op_type: &str) -> Option<&'static Mapping> {
    TABLE
        .binary_search_by(|(name, _)| name.cmp(&op_type))
        .ok()
        .map(|i| &TABLE[i].1)
}

/// Every operator with a mapping, sorted.
pub fn names() -> Vec<&'static str> {
    TABLE.iter().map(|(name, _)| *name).collect()
}

/// One output, a node.
fn node(id: NodeId) -> Result<Vec<Value>> {
    Ok(vec![Value::Node(id)])
}

/// An ONNX axis (negative counts from the end) checked against `rank`.
fn axis(axis: i64, rank: usize) -> Result<usize> {
    let resolved = if axis < 0 { axis + rank as i64 } else { axis };
    if resolved < 0 || resolved >= rank as i64 {
        return Err(Error::Invalid(format!(
            "axis {axis} is out of range for rank {rank}"
        )));
    }
    Ok(resolved as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique_so_lookup_finds_every_row() {
        for pair in TABLE.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{} before {}", pair[0].0, pair[1].0);
        }
        for (name, _) in TABLE {
            assert!(mapping(name).is_some(), "{name}");
        }
        assert!(mapping("NonZero").is_none());
    }
}
