//! The graph runtime in a paragraph: a `Graph` is a list of nodes in topological order (a node
//! only refers to earlier ones); each node is an input, a named parameter, or an [`Op`] applied
//! to earlier nodes, with its shape inferred when it is added. `Graph::backward` (in
//! `ops::autodiff`, beside the op families it chains) walks the nodes in reverse and asks each
//! op's backward rule for more nodes. `Plan::compile` turns the graph into buffers, bind groups
//! and pipelines for fixed shapes, finding parameters through [`Parameters`] and appending an
//! [`UpdateRule`]'s dispatches; `Plan::step` runs it in one submission.

mod op;
mod plan;
mod profile;
mod receptive_field;

pub use op::{eval, BackwardCtx, EncodeCtx, Op};
pub use plan::{Parameters, Plan, PlanSpec, PlanSummary, UpdateRule, UpdateSlot};
pub use profile::{DispatchCost, KernelRow, Profile, Timing};
pub use receptive_field::{AxisField, AxisWindow, ReceptiveField, SpatialMap};

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::tensor::{DType, Shape};

/// A symbolic tensor: the index of a node in its graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub(crate) usize);

impl NodeId {
    pub fn index(self) -> usize {
        self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

#[derive(Clone, Debug)]
pub enum NodeKind {
    /// Fed by the caller before each step.
    Input,
    /// A trainable or frozen tensor that lives in a `ParamStore` under this node's name.
    Param,
    Op(Arc<dyn Op>),
}

#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub kind: NodeKind,
    pub inputs: Vec<NodeId>,
    pub shape: Shape,
    pub dtype: DType,
    /// Created by `backward`: counted as gradient memory in summaries.
    pub is_gradient: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    nodes: Vec<Node>,
    building_gradients: bool,
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0]
    }

    pub fn shape(&self, id: NodeId) -> &Shape {
        &self.nodes[id.0].shape
    }

    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        NodeId(self.nodes.len() - 1)
    }

    /// An f32 input of this shape, fed with `Plan::write_input`.
    pub fn input(&mut self, name: &str, shape: impl Into<Shape>) -> NodeId {
        self.push(Node {
            name: name.to_string(),
            kind: NodeKind::Input,
            inputs: vec![],
            shape: shape.into(),
            dtype: DType::F32,
            is_gradient: false,
        })
    }

    /// A u32 input (indices: triplets, class labels, dropout seeds), fed with
    /// `Plan::write_input_u32`.
    pub fn input_u32(&mut self, name: &str, shape: impl Into<Shape>) -> NodeId {
        let id = self.input(name, shape);
        self.nodes[id.0].dtype = DType::U32;
        id
    }

    /// A parameter named `name` (torchvision-style, e.g. `features.0.weight`), looked up in the
    /// `ParamStore` given to `Plan::compile`. Using the same name twice gives the same node.
    pub fn param(&mut self, name: &str, shape: impl Into<Shape>) -> Result<NodeId> {
        let shape = shape.into();
        if let Some(i) = self
            .nodes
            .iter()
            .position(|n| matches!(n.kind, NodeKind::Param) && n.name == name)
        {
            if self.nodes[i].shape != shape {
                return Err(Error::shape(
                    "param",
                    format!(
                        "parameter `{name}` declared as {shape} but already declared as {}",
                        self.nodes[i].shape
                    ),
                ));
            }
            return Ok(NodeId(i));
        }
        Ok(self.push(Node {
            name: name.to_string(),
            kind: NodeKind::Param,
            inputs: vec![],
            shape,
            dtype: DType::F32,
            is_gradient: false,
        }))
    }

    /// The parameters `names` with the shapes they have in `params` (a `ParamStore`), in that
    /// order, so that a network declared in a store is wired into a graph without repeating
    /// its shapes.
    pub fn params_from(&mut self, params: &dyn Parameters, names: &[&str]) -> Result<Vec<NodeId>> {
        names
            .iter()
            .map(|&name| {
                let tensor = params.parameter(name).ok_or_else(|| {
                    Error::Invalid(format!("parameter `{name}` is not in the parameter store"))
                })?;
                self.param(name, tensor.shape.clone())
            })
            .collect()
    }

    /// Adds `op` applied to `inputs`, inferring the output shape. A shape mismatch is an error
    /// naming the op and every input shape.
    pub fn apply(&mut self, op: impl Op + 'static, inputs: &[NodeId]) -> Result<NodeId> {
        self.apply_arc(Arc::new(op), inputs)
    }

    pub fn apply_arc(&mut self, op: Arc<dyn Op>, inputs: &[NodeId]) -> Result<NodeId> {
        for &i in inputs {
            if i.0 >= self.nodes.len() {
                return Err(Error::Invalid(format!(
                    "{}: input {i} is not a node of this graph",
                    op.name()
                )));
            }
        }
        let shapes: Vec<&Shape> = inputs.iter().map(|&i| &self.nodes[i.0].shape).collect();
        let shape = op.output_shape(&shapes).map_err(|e| match e {
            Error::Shape { op, message } => {
                let list: Vec<String> = shapes.iter().map(|s| s.to_string()).collect();
                Error::Shape {
                    op,
                    message: format!("{message} (input shapes: {})", list.join(", ")),
                }
            }
            other => other,
        })?;
        let dtype = op.output_dtype();
        let name = op.name().to_string();
        let is_gradient = self.building_gradients;
        Ok(self.push(Node {
            name,
            kind: NodeKind::Op(op),
            inputs: inputs.to_vec(),
            shape,
            dtype,
            is_gradient,
        }))
    }

    /// Marks the nodes added from now on as gradients (counted as gradient memory in plan
    /// summaries) or not; returns the previous setting.
    pub(crate) fn set_building_gradients(&mut self, on: bool) -> bool {
        std::mem::replace(&mut self.building_gradients, on)
    }

    /// Renames a node (shown in summaries and errors).
    pub fn set_name(&mut self, id: NodeId, name: &str) {
        self.nodes[id.0].name = name.to_string();
    }

    /// The parameters of the graph as (node, name, shape), in order of creation.
    pub fn params(&self) -> Vec<(NodeId, String, Shape)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| matches!(n.kind, NodeKind::Param))
            .map(|(i, n)| (NodeId(i), n.name.clone(), n.shape.clone()))
            .collect()
    }
}
