//! The walk over an ONNX graph: initialisers and `Constant`s are known values ([`Constant`]),
//! everything else is a node of the wgnn graph being built ([`Value::Node`]). Each ONNX node is
//! handed to its operator's mapping (`ops`), after its attributes are checked against the ones
//! the mapping reads; errors are prefixed with the node's name and operator.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use wgnn::error::{Error, Result};
use wgnn::graph::{Graph, NodeId};
use wgnn::nn::ParamStore;
use wgnn::tensor::{DType, Shape};
use wgnn::Gpu;

use crate::constant::{self, Constant};
use crate::ops;
use crate::proto::{attribute_type, data_type, AttributeProto, GraphProto, NodeProto};
use crate::{ImportOptions, Imported, InputInfo};

/// What an ONNX value name stands for.
#[derive(Clone, Debug)]
pub enum Value {
    Node(NodeId),
    Const(Constant),
}

/// The graph under construction and the values by name.
pub struct Ctx<'a> {
    pub graph: Graph,
    pub params: ParamStore,
    gpu: &'a Gpu,
    values: HashMap<String, Value>,
    /// Parameter nodes made from constants, by value name.
    param_nodes: BTreeMap<String, NodeId>,
    parameters: Vec<(String, NodeId)>,
    /// Indices of the nodes that read each value.
    consumers: HashMap<String, Vec<usize>>,
    graph_outputs: HashSet<String>,
    /// Nodes already mapped together with an earlier one (a ReLU fused into its convolution).
    pub fused: HashSet<usize>,
    nodes: &'a [NodeProto],
    /// The default domain's opset version (where an operator's meaning changed with it).
    pub opset: i64,
}

impl Ctx<'_> {
    /// The value called `name`, or an error saying nothing defines it.
    pub fn value(&self, name: &str) -> Result<&Value> {
        self.values.get(name).ok_or_else(|| {
            Error::Invalid(format!(
                "input `{name}` is not an initialiser, a graph input or an earlier node's output"
            ))
        })
    }

    /// Gives the value `name` (an output of a node fused into the current one).
    pub fn define(&mut self, name: &str, value: Value) {
        self.values.insert(name.to_string(), value);
    }

    /// `name` as a node of the graph: constants become parameters named `name`. Indices (u32
    /// nodes) are refused: only the mappings that read indices take them, through `indices`.
    pub fn tensor(&mut self, name: &str) -> Result<NodeId> {
        let id = self.node(name)?;
        if self.graph.node(id).dtype == DType::U32 {
            return Err(Error::Invalid(format!(
                "`{name}` holds MaxPool's indices (INT64), which only MaxUnpool reads"
            )));
        }
        Ok(id)
    }

    /// `name` as a node of the graph, floats or indices.
    fn node(&mut self, name: &str) -> Result<NodeId> {
        match self.value(name)?.clone() {
            Value::Node(id) => Ok(id),
            Value::Const(c) => self.constant_node(name, &c),
        }
    }

    /// `name` as indices: a u32 node, as MaxPool's `Indices` output is in the engine (ONNX
    /// stores them as INT64; the values are the same).
    pub fn indices(&self, name: &str, what: &str) -> Result<NodeId> {
        match self.value(name)? {
            Value::Node(id) if self.graph.node(*id).dtype == DType::U32 => Ok(*id),
            _ => Err(Error::Invalid(format!(
                "{what} (`{name}`) must be the `Indices` output of a MaxPool node; other index \
                 tensors (constants, graph inputs) are not supported"
            ))),
        }
    }

    /// Whether the value `name` is indices (a u32 node).
    pub fn is_indices(&self, name: &str) -> Result<bool> {
        Ok(match self.value(name)? {
            Value::Node(id) => self.graph.node(*id).dtype == DType::U32,
            Value::Const(_) => false,
        })
    }

    /// A parameter called `name` holding `c` (once per name).
    pub fn constant_node(&mut self, name: &str, c: &Constant) -> Result<NodeId> {
        if let Some(&id) = self.param_nodes.get(name) {
            return Ok(id);
        }
        if c.dims.contains(&0) {
            return Err(Error::Invalid(format!(
                "`{name}` has dims {:?}: empty tensors are not supported",
                c.dims
            )));
        }
        let dims = if c.dims.is_empty() {
            vec![1]
        } else {
            c.dims.clone()
        };
        let shape = Shape::new(&dims)?;
        self.params
            .insert_f32(self.gpu, name, shape.clone(), &c.floats())?;
        let id = self.graph.param(name, shape)?;
        self.param_nodes.insert(name.to_string(), id);
        self.parameters.push((name.to_string(), id));
        Ok(id)
    }

    /// The constant called `name`, or an error saying it must be known at import time.
    pub fn constant(&self, name: &str, what: &str) -> Result<&Constant> {
        match self.value(name)? {
            Value::Const(c) => Ok(c),
            Value::Node(_) => Err(Error::Invalid(format!(
                "{what} (`{name}`) is computed by the graph; it must be an initialiser or a constant"
            ))),
        }
    }

    /// The dims of a value, for nodes from the graph's shape inference.
    pub fn dims(&self, name: &str) -> Result<Vec<usize>> {
        Ok(match self.value(name)? {
            Value::Node(id) => self.graph.shape(*id).dims().to_vec(),
            Value::Const(c) => c.dims.clone(),
        })
    }

    /// The index of the one node reading `name` when exactly one does and `name` is not a graph
    /// output (so the value may be fused away).
    pub fn sole_consumer(&self, name: &str) -> Option<(usize, &NodeProto)> {
        if self.graph_outputs.contains(name) {
            return None;
        }
        match self.consumers.get(name).map(Vec::as_slice) {
            Some(&[index]) => Some((index, &self.nodes[index])),
            _ => None,
        }
    }
}

/// One ONNX node as a mapping sees it.
pub struct NodeView<'a> {
    pub proto: &'a NodeProto,
    pub index: usize,
}

impl NodeView<'_> {
    /// The name of input `i`, or None when absent (an empty name marks an omitted optional).
    pub fn input(&self, i: usize) -> Option<&str> {
        self.proto
            .input
            .get(i)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// The name of required input `i`.
    pub fn required(&self, i: usize) -> Result<&str> {
        self.input(i)
            .ok_or_else(|| Error::Invalid(format!("input {i} is required but missing")))
    }

    pub fn output_count(&self) -> usize {
        self.proto.output.len()
    }

    fn attribute(&self, name: &str, kind: i32) -> Result<Option<&AttributeProto>> {
        match self.proto.attribute.iter().find(|a| a.name == name) {
            None => Ok(None),
            Some(a) if a.r#type == kind => Ok(Some(a)),
            Some(a) => Err(Error::Invalid(format!(
                "attribute `{name}` has type {}, expected {kind}",
                a.r#type
            ))),
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.proto.attribute.iter().any(|a| a.name == name)
    }

    pub fn int(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self
            .attribute(name, attribute_type::INT)?
            .map_or(default, |a| a.i))
    }

    pub fn float(&self, name: &str, default: f32) -> Result<f32> {
        Ok(self
            .attribute(name, attribute_type::FLOAT)?
            .map_or(default, |a| a.f))
    }

    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        Ok(self
            .attribute(name, attribute_type::INTS)?
            .map(|a| a.ints.clone()))
    }

    pub fn floats(&self, name: &str) -> Result<Option<Vec<f32>>> {
        Ok(self
            .attribute(name, attribute_type::FLOATS)?
            .map(|a| a.floats.clone()))
    }

    pub fn string(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .attribute(name, attribute_type::STRING)?
            .map(|a| String::from_utf8_lossy(&a.s).into_owned()))
    }

    pub fn tensor(&self, name: &str) -> Result<Option<Constant>> {
        match self.attribute(name, attribute_type::TENSOR)? {
            Some(a) => {
                let t = a
                    .t
                    .as_ref()
                    .ok_or_else(|| Error::Invalid(format!("attribute `{name}` holds no tensor")))?;
                Ok(Some(constant::decode(t, None)?))
            }
            None => Ok(None),
        }
    }

    /// How messages name this node: its name, or its position and first output.
    pub fn describe(&self) -> String {
        let p = self.proto;
        if p.name.is_empty() {
            let output = p.output.first().map_or("", String::as_str);
            format!("node #{} ({}, output `{output}`)", self.index, p.op_type)
        } else {
            format!("node `{}` ({})", p.name, p.op_type)
        }
    }
}

/// Graph inputs that are not initialisers.
pub fn graph_inputs(graph: &GraphProto) -> Vec<InputInfo> {
    let initialisers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    graph
        .input
        .iter()
        .filter(|i| !initialisers.contains(i.name.as_str()))
        .map(|i| InputInfo {
            name: i.name.clone(),
            dims: i
                .r#type
                .as_ref()
                .and_then(|t| t.tensor_type.as_ref())
                .and_then(|t| t.shape.as_ref())
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| d.dim_value.filter(|&v| v > 0).map(|v| v as usize))
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}

/// The shape of input `info`: from `options`, else the file's with a symbolic first dim set to
/// the batch size.
fn input_shape(info: &InputInfo, options: &ImportOptions) -> Result<Shape> {
    if let Some(dims) = options.input_shapes.get(&info.name) {
        return Shape::new(dims).map_err(|e| Error::Invalid(format!("input `{}`: {e}", info.name)));
    }
    if info.dims.is_empty() {
        return Err(Error::Invalid(format!(
            "input `{}` has no shape in the file; give one with ImportOptions::input_shape",
            info.name
        )));
    }
    let mut dims = Vec::with_capacity(info.dims.len());
    for (k, d) in info.dims.iter().enumerate() {
        dims.push(match (k, d) {
            (_, Some(d)) => *d,
            (0, None) => options.batch,
            (k, None) => {
                return Err(Error::Invalid(format!(
                "input `{}` has a symbolic dim {k}; give its shape with ImportOptions::input_shape",
                info.name
            )))
            }
        });
    }
    Shape::new(&dims).map_err(|e| Error::Invalid(format!("input `{}`: {e}", info.name)))
}

pub fn import(
    gpu: &Gpu,
    proto: &GraphProto,
    opset: i64,
    external_dir: Option<&Path>,
    options: &ImportOptions,
) -> Result<Imported> {
    if !proto.sparse_initializer.is_empty() {
        return Err(Error::Invalid(
            "sparse initialisers are not supported".to_string(),
        ));
    }
    let mut consumers: HashMap<String, Vec<usize>> = HashMap::new();
    for (index, node) in proto.node.iter().enumerate() {
        for input in node.input.iter().filter(|s| !s.is_empty()) {
            consumers.entry(input.clone()).or_default().push(index);
        }
    }
    let mut ctx = Ctx {
        graph: Graph::new(),
        params: ParamStore::new(),
        gpu,
        values: HashMap::new(),
        param_nodes: BTreeMap::new(),
        parameters: Vec::new(),
        consumers,
        graph_outputs: proto.output.iter().map(|o| o.name.clone()).collect(),
        fused: HashSet::new(),
        nodes: &proto.node,
        opset,
    };
    for t in &proto.initializer {
        let c = constant::decode(t, external_dir)
            .map_err(|e| Error::Invalid(format!("initialiser `{}`: {e}", t.name)))?;
        ctx.values.insert(t.name.clone(), Value::Const(c));
    }
    let mut inputs = Vec::new();
    for info in graph_inputs(proto) {
        let declared = proto.input.iter().find(|i| i.name == info.name);
        let elem = declared
            .and_then(|i| i.r#type.as_ref())
            .and_then(|t| t.tensor_type.as_ref())
            .map(|t| t.elem_type);
        if elem != Some(data_type::FLOAT) {
            return Err(Error::Invalid(format!(
                "input `{}` is {}; only FLOAT tensor inputs are supported",
                info.name,
                elem.map_or("not a tensor", data_type::name)
            )));
        }
        let id = ctx.graph.input(&info.name, input_shape(&info, options)?);
        ctx.values.insert(info.name.clone(), Value::Node(id));
        inputs.push((info.name, id));
    }
    for (index, node) in proto.node.iter().enumerate() {
        if ctx.fused.contains(&index) {
            continue;
        }
        let view = NodeView { proto: node, index };
        let first_new = ctx.graph.nodes().len();
        let outputs = map_node(&mut ctx, &view).map_err(|e| match e {
            Error::Invalid(m) => Error::Invalid(format!("{}: {m}", view.describe())),
            Error::Shape { op, message } => {
                Error::Invalid(format!("{}: {op}: {message}", view.describe()))
            }
            other => other,
        })?;
        for (name, value) in node.output.iter().zip(outputs) {
            if let Value::Node(id) = value {
                if id.index() >= first_new {
                    ctx.graph.set_name(id, name);
                }
            }
            ctx.values.insert(name.clone(), value);
        }
    }
    let mut values: BTreeMap<String, NodeId> = BTreeMap::new();
    for (name, value) in &ctx.values {
        if let Value::Node(id) = value {
            values.insert(name.clone(), *id);
        }
    }
    let mut outputs = Vec::new();
    for o in &proto.output {
        let id = ctx
            .node(&o.name)
            .map_err(|e| Error::Invalid(format!("graph output `{}`: {e}", o.name)))?;
        outputs.push((o.name.clone(), id));
    }
    Ok(Imported {
        graph: ctx.graph,
        params: ctx.params,
        inputs,
        outputs,
        parameters: ctx.parameters,
        values,
    })
}

/// Checks the domain, the attributes and the outputs of `node` around its mapping.
fn map_node(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<Value>> {
    let p = node.proto;
    if !(p.domain.is_empty() || p.domain == "ai.onnx") {
        return Err(Error::Invalid(format!(
            "operator domain `{}` is not supported",
            p.domain
        )));
    }
    let mapping = ops::mapping(&p.op_type).ok_or_else(|| {
        Error::Invalid(format!(
            "operator {} is not supported (supported: {})",
            p.op_type,
            ops::names().join(", ")
        ))
    })?;
    for a in &p.attribute {
        if !a.ref_attr_name.is_empty() {
            return Err(Error::Invalid(format!(
                "attribute `{}` refers to a function attribute, which is not supported",
                a.name
            )));
        }
        if !mapping.attributes.contains(&a.name.as_str()) {
            return Err(Error::Invalid(format!(
                "attribute `{}` is not supported ({} reads {})",
                a.name,
                p.op_type,
                if mapping.attributes.is_empty() {
                    "none".to_string()
                } else {
                    mapping.attributes.join(", ")
                }
            )));
        }
    }
    let outputs = (mapping.map)(ctx, node)?;
    for (k, name) in p.output.iter().enumerate().skip(outputs.len()) {
        if !name.is_empty() {
            return Err(Error::Invalid(format!(
                "output {k} (`{name}`) is not supported; only the first {} output(s) are",
                outputs.len()
            )));
        }
    }
    Ok(outputs)
}
