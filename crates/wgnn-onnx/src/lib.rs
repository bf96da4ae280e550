//! ONNX import for wgnn: an `.onnx` file (opset 11 to 21) becomes a [`Graph`] whose float
//! initialisers are ordinary parameters in a [`ParamStore`], so the imported network runs, and
//! trains with the engine's autodiff and optimisers like a network built by hand.
//!
//! ```no_run
//! # fn main() -> wgnn::Result<()> {
//! let gpu = wgnn::Gpu::new()?;
//! let model = wgnn_onnx::OnnxModel::load("model.onnx")?;
//! let net = model.import(&gpu, &wgnn_onnx::ImportOptions::default())?;
//! let spec = wgnn::PlanSpec { outputs: vec![net.outputs[0].1], ..Default::default() };
//! let mut plan = wgnn::Plan::compile(&gpu, &net.graph, &net.params, spec)?;
//! # Ok(()) }
//! ```
//!
//! Each ONNX operator has one mapping function (`ops`, a table from operator name to function);
//! an operator, attribute or attribute value that no mapping expresses exactly is an error
//! naming the node, its operator and what is missing, never an approximation. Shape arithmetic
//! on values known at import time (`Shape`, `Gather`, `Concat`, `Unsqueeze` ... feeding a
//! `Reshape`, as PyTorch exports `flatten`) is folded on the CPU.
//!
//! Files: `proto` (the onnx.proto messages), `constant` (tensor data, external files),
//! `import` (the walk over the nodes and the values it tracks), `ops/*` (the mappings).

mod constant;
mod import;
mod ops;
pub mod proto;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prost::Message;
use wgnn::error::{Error, Result};
use wgnn::graph::{Graph, NodeId};
use wgnn::nn::ParamStore;
use wgnn::Gpu;

use proto::ModelProto;

/// The operator set versions of the default domain that the mappings follow.
pub const OPSET_RANGE: std::ops::RangeInclusive<i64> = 11..=21;

/// A decoded `.onnx` file, checked for its opset, ready to import.
#[derive(Clone, Debug)]
pub struct OnnxModel {
    proto: ModelProto,
    opset: i64,
    /// Where external tensor data is looked up (the model's folder).
    external_dir: Option<PathBuf>,
    /// The file name, or the name given with the bytes, for messages.
    source: String,
}

/// A model input: its name and dims, `None` where the file leaves a dim symbolic or unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputInfo {
    pub name: String,
    pub dims: Vec<Option<usize>>,
}

/// How to fix the shapes the file leaves open.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Complete shapes for named inputs, overriding the file's.
    pub input_shapes: BTreeMap<String, Vec<usize>>,
    /// The size given to an input's symbolic first dim (the batch) when `input_shapes` does not
    /// name the input. Other symbolic dims must be given in `input_shapes`.
    pub batch: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            input_shapes: BTreeMap::new(),
            batch: 1,
        }
    }
}

impl ImportOptions {
    /// The same options with `name`'s shape set to `dims`.
    pub fn input_shape(mut self, name: &str, dims: &[usize]) -> Self {
        self.input_shapes.insert(name.to_string(), dims.to_vec());
        self
    }

    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = batch;
        self
    }
}

/// An imported network.
pub struct Imported {
    pub graph: Graph,
    /// The float initialisers (and `Constant` tensors) the graph uses as tensors, under their
    /// ONNX names.
    pub params: ParamStore,
    /// The graph's inputs (fed with `Plan::write_input`), in the file's order.
    pub inputs: Vec<(String, NodeId)>,
    /// The graph's outputs, in the file's order: f32 nodes, but MaxPool's `Indices`, which are
    /// u32 (`graph.node(id).dtype`; `Plan::step` hands their bits back in f32s).
    pub outputs: Vec<(String, NodeId)>,
    /// Every parameter node with its name, in order of first use: what to train.
    pub parameters: Vec<(String, NodeId)>,
    /// Every ONNX value that is a node of the graph (inputs, and what operators compute), by
    /// name: intermediate activations, or the logits under a final Softmax.
    pub values: BTreeMap<String, NodeId>,
}

impl Imported {
    /// The input called `name`, or an error listing the inputs.
    pub fn input(&self, name: &str) -> Result<NodeId> {
        find(&self.inputs, name, "input")
    }

    /// The output called `name`, or an error listing the outputs.
    pub fn output(&self, name: &str) -> Result<NodeId> {
        find(&self.outputs, name, "output")
    }

    /// The node of the ONNX value `name`, or an error saying it is not one (a constant, or
    /// absent).
    pub fn value(&self, name: &str) -> Result<NodeId> {
        self.values.get(name).copied().ok_or_else(|| {
            Error::Invalid(format!(
                "the model has no computed value `{name}` (it is absent, or a constant folded at import)"
            ))
        })
    }
}

fn find(list: &[(String, NodeId)], name: &str, what: &str) -> Result<NodeId> {
    list.iter()
        .find(|(n, _)| n == name)
        .map(|&(_, id)| id)
        .ok_or_else(|| {
            let names: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
            Error::Invalid(format!(
                "the model has no {what} `{name}`; its {what}s are {}",
                names.join(", ")
            ))
        })
}

impl OnnxModel {
    /// Reads and decodes `path`; external tensor data is read from its folder.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::file(path, e))?;
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Self::from_bytes(&path.display().to_string(), &bytes, Some(&dir)).map_err(|e| match e {
            Error::Invalid(message) => Error::file(path, message),
            other => other,
        })
    }

    /// Decodes a model held in memory, called `name` in messages; external tensor data is read
    /// from `external_dir` (a model with external data and no folder fails at import).
    pub fn from_bytes(name: &str, bytes: &[u8], external_dir: Option<&Path>) -> Result<Self> {
        let proto = ModelProto::decode(bytes).map_err(|e| {
            Error::Invalid(format!(
                "not a readable ONNX model (truncated or not protobuf): {e}"
            ))
        })?;
        if proto.graph.is_none() {
            return Err(Error::Invalid(
                "not an ONNX model: it holds no graph".to_string(),
            ));
        }
        let mut opset = None;
        for set in &proto.opset_import {
            match set.domain.as_str() {
                "" | "ai.onnx" => opset = Some(set.version),
                other => {
                    return Err(Error::Invalid(format!(
                        "operator set domain `{other}` (version {}) is not supported; only the default domain (ai.onnx) is",
                        set.version
                    )))
                }
            }
        }
        let opset = opset.ok_or_else(|| {
            Error::Invalid("the model imports no default operator set (opset_import)".to_string())
        })?;
        if !OPSET_RANGE.contains(&opset) {
            return Err(Error::Invalid(format!(
                "opset {opset} is not supported: wgnn-onnx reads opset {} to {} (convert the model with onnx.version_converter)",
                OPSET_RANGE.start(),
                OPSET_RANGE.end()
            )));
        }
        Ok(Self {
            proto,
            opset,
            external_dir: external_dir.map(Path::to_path_buf),
            source: name.to_string(),
        })
    }

    /// The same model reading its external tensor data from `dir` instead.
    pub fn with_external_dir(mut self, dir: &Path) -> Self {
        self.external_dir = Some(dir.to_path_buf());
        self
    }

    /// The default domain's opset version.
    pub fn opset(&self) -> i64 {
        self.opset
    }

    /// The protobuf message, for inspection.
    pub fn proto(&self) -> &ModelProto {
        &self.proto
    }

    /// The inputs the caller feeds (graph inputs that are not initialisers).
    pub fn inputs(&self) -> Vec<InputInfo> {
        import::graph_inputs(self.graph())
    }

    fn graph(&self) -> &proto::GraphProto {
        self.proto.graph.as_ref().expect("checked in from_bytes")
    }

    /// Builds the graph and uploads its parameters.
    pub fn import(&self, gpu: &Gpu, options: &ImportOptions) -> Result<Imported> {
        import::import(
            gpu,
            self.graph(),
            self.opset,
            self.external_dir.as_deref(),
            options,
        )
        .map_err(|e| match e {
            Error::Invalid(message) => Error::Invalid(format!("{}: {message}", self.source)),
            other => other,
        })
    }

    /// The operator types the model uses that no mapping covers, sorted; empty when every
    /// operator has a mapping (attributes are still checked at import).
    pub fn unsupported_operators(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .graph()
            .node
            .iter()
            .filter(|n| ops::mapping(&n.op_type).is_none())
            .map(|n| n.op_type.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// The operator types with a mapping, sorted.
pub fn supported_operators() -> Vec<&'static str> {
    ops::names()
}
