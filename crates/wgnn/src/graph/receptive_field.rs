//! Receptive fields: which input positions a node's output position can see, composed from each
//! op's window (kernel size, stride, padding, dilation) along the path from the input, so that
//! an activation can be traced back to the patch of the image that produced it.

use super::{Graph, NodeId, NodeKind};
use crate::error::{Error, Result};
use crate::tensor::Shape;

/// A sliding window along one spatial axis: output position `p` reads input positions
/// `p * stride - padding + dilation * t` for `t` in `0..kernel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AxisWindow {
    pub kernel: usize,
    pub stride: usize,
    /// Padding before the first position (what lies after the last does not move the window).
    pub padding: usize,
    pub dilation: usize,
}

/// How an op's output positions read the spatial positions of its inputs (`Op::spatial_map`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpatialMap {
    /// Output position `p` reads position `p` of each input: elementwise ops, activations,
    /// channel-wise operations. Inputs without spatial dims (biases, scalars) are not traced.
    Pointwise,
    /// A window per spatial axis, outermost first (convolution, pooling), over the op's first
    /// input (weights and biases are not traced).
    Window(Vec<AxisWindow>),
    /// Every output reads every input position (global pooling, reshapes, matrix products).
    Global,
}

/// Where position `p` of a node looks along one spatial axis of the input: positions
/// `p * stride + first ..= p * stride + last` (which may lie outside the input: padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AxisField {
    pub stride: usize,
    pub first: i64,
    pub last: i64,
}

impl AxisField {
    /// Positions seen by one output position.
    pub fn size(&self) -> usize {
        (self.last - self.first + 1) as usize
    }

    /// The input positions (first, last) that output position `p` sees.
    pub fn span(&self, p: usize) -> (i64, i64) {
        let origin = (p * self.stride) as i64;
        (origin + self.first, origin + self.last)
    }

    fn through(&self, w: &AxisWindow) -> AxisField {
        // Output p reads node positions p*s - pad .. p*s - pad + d*(k-1), each of which sees
        // its own span of the input.
        let (pad, reach) = (w.padding as i64, (w.dilation * (w.kernel - 1)) as i64);
        let stride = self.stride as i64;
        AxisField {
            stride: self.stride * w.stride,
            first: -pad * stride + self.first,
            last: (reach - pad) * stride + self.last,
        }
    }

    fn union(&self, other: &AxisField) -> Option<AxisField> {
        (self.stride == other.stride).then(|| AxisField {
            stride: self.stride,
            first: self.first.min(other.first),
            last: self.last.max(other.last),
        })
    }
}

/// The receptive field of a node with respect to an input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReceptiveField {
    /// One field per spatial axis, outermost first.
    Local(Vec<AxisField>),
    /// Each output position sees the whole input (after global pooling, for example).
    Whole,
}

impl Graph {
    /// The receptive field of `node`'s positions in the spatial positions of `input` (an input
    /// of rank 3 to 5: N, C, then 1 to 3 spatial axes), composed along every path between them.
    /// An error names an op on the way whose spatial behaviour is unknown, or paths that reach
    /// the node at different strides.
    pub fn receptive_field(&self, input: NodeId, node: NodeId) -> Result<ReceptiveField> {
        let nodes = self.nodes();
        let rank = self.shape(input).rank();
        if !(3..=5).contains(&rank) {
            return Err(Error::shape(
                "receptive_field",
                format!(
                    "input {} must have 1 to 3 spatial axes after N and C",
                    self.shape(input)
                ),
            ));
        }
        let identity = AxisField {
            stride: 1,
            first: 0,
            last: 0,
        };
        let mut fields: Vec<Option<ReceptiveField>> = vec![None; node.0 + 1];
        fields[input.0] = Some(ReceptiveField::Local(vec![identity; rank - 2]));
        for i in input.0 + 1..=node.0 {
            let NodeKind::Op(op) = &nodes[i].kind else {
                continue;
            };
            let traced: Vec<&ReceptiveField> = nodes[i]
                .inputs
                .iter()
                .filter_map(|j| fields[j.0].as_ref())
                .collect();
            if traced.is_empty() {
                continue;
            }
            let unknown = || {
                Error::Invalid(format!(
                    "receptive field: `{}` ({}) does not state how it reads spatial positions",
                    nodes[i].name,
                    op.name()
                ))
            };
            let shapes: Vec<&Shape> = nodes[i].inputs.iter().map(|j| self.shape(*j)).collect();
            let field = match op.spatial_map(&shapes).ok_or_else(unknown)? {
                SpatialMap::Global => ReceptiveField::Whole,
                SpatialMap::Pointwise => union(&traced).ok_or_else(|| {
                    Error::Invalid(format!(
                        "receptive field: the inputs of `{}` ({}) reach it at different strides",
                        nodes[i].name,
                        op.name()
                    ))
                })?,
                SpatialMap::Window(windows) => {
                    let first = nodes[i].inputs.first().and_then(|j| fields[j.0].as_ref());
                    match first {
                        None => continue,
                        Some(ReceptiveField::Whole) => ReceptiveField::Whole,
                        Some(ReceptiveField::Local(axes)) => {
                            if axes.len() != windows.len() {
                                return Err(Error::shape(
                                    op.name(),
                                    format!(
                                        "{} spatial windows for {} spatial axes",
                                        windows.len(),
                                        axes.len()
                                    ),
                                ));
                            }
                            ReceptiveField::Local(
                                axes.iter()
                                    .zip(&windows)
                                    .map(|(a, w)| a.through(w))
                                    .collect(),
                            )
                        }
                    }
                }
            };
            fields[i] = Some(field);
        }
        fields[node.0].take().ok_or_else(|| {
            Error::Invalid(format!(
                "receptive field: `{}` does not depend on `{}`",
                nodes[node.0].name, nodes[input.0].name
            ))
        })
    }
}

fn union(fields: &[&ReceptiveField]) -> Option<ReceptiveField> {
    let mut result = fields[0].clone();
    for field in &fields[1..] {
        result = match (&result, field) {
            (ReceptiveField::Local(a), ReceptiveField::Local(b)) if a.len() == b.len() => {
                ReceptiveField::Local(
                    a.iter()
                        .zip(b)
                        .map(|(x, y)| x.union(y))
                        .collect::<Option<_>>()?,
                )
            }
            (ReceptiveField::Local(_), ReceptiveField::Local(_)) => return None,
            _ => ReceptiveField::Whole,
        };
    }
    Some(result)
}
