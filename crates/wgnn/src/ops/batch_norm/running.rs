//! Running statistics: the in-place update from a step's batch statistics, and the update rule
//! that puts it into a training plan's step.

use super::{check_vector, stats_shape, BatchNormNodes, BatchStats, Layout, Params};
use super::{SHADER, WORKGROUP};
use crate::error::{Error, Result};
use crate::gpu::{bytes_of, workgroups_for, Dispatch, Gpu};
use crate::graph::{Graph, NodeId, NodeKind, Op, UpdateRule, UpdateSlot};
use crate::tensor::Tensor;

/// Prepares the dispatch that updates `running_mean` and `running_var` [C] in place from batch
/// statistics [2, C] over `count` values per channel: running = (1 - momentum) * running +
/// momentum * batch, with the unbiased variance var * count / (count - 1), as PyTorch does.
pub fn running_stats_update(
    gpu: &Gpu,
    stats: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    count: usize,
    momentum: f32,
) -> Result<Dispatch> {
    let op = "running_stats_update";
    let channels = running_mean.shape.numel();
    check_vector(op, "the running mean", &running_mean.shape, channels)?;
    check_vector(op, "the running variance", &running_var.shape, channels)?;
    if stats.shape != stats_shape(channels) {
        return Err(Error::shape(
            op,
            format!(
                "the batch statistics must be [2, {channels}], not {}",
                stats.shape
            ),
        ));
    }
    if count < 2 {
        return Err(Error::shape(
            op,
            format!("the unbiased variance needs at least 2 values per channel, not {count}"),
        ));
    }
    if !(0.0..=1.0).contains(&momentum) {
        return Err(Error::Invalid(format!(
            "{op}: momentum must lie in [0, 1], not {momentum}"
        )));
    }
    let params = Params {
        channels: channels as u32,
        count: count as u32,
        momentum,
        unbiased: (count as f64 / (count - 1) as f64) as f32,
        ..Default::default()
    };
    gpu.dispatch(
        &SHADER,
        "update_running",
        bytes_of(&params),
        &[&stats.buffer],
        &[&running_mean.buffer, &running_var.buffer],
        workgroups_for(channels, WORKGROUP),
    )
}

/// One tracked layer: the parameter names of its running statistics and its update.
#[derive(Clone, Debug)]
struct TrackedLayer {
    stats: NodeId,
    mean: (NodeId, String),
    var: (NodeId, String),
    count: usize,
    momentum: f32,
}

/// The update rule of a training plan with batch normalisation: updates each tracked layer's
/// running statistics from its batch statistics (`running_stats_update`, one dispatch per
/// layer) and hands every other (parameter, gradient) slot to `optimizer`. See the module
/// documentation for how a trainer compiles with it.
pub struct TrackRunningStats<'a> {
    optimizer: Option<&'a mut dyn UpdateRule>,
    layers: Vec<TrackedLayer>,
}

impl<'a> TrackRunningStats<'a> {
    /// Without an optimiser, the plan may update nothing but running statistics.
    pub fn new(optimizer: Option<&'a mut dyn UpdateRule>) -> Self {
        Self {
            optimizer,
            layers: Vec::new(),
        }
    }

    /// Tracks `layer` (from `Graph::batch_norm`), whose running statistics are the parameters
    /// `running_mean` and `running_var` [C].
    pub fn track(
        &mut self,
        g: &Graph,
        layer: &BatchNormNodes,
        running_mean: NodeId,
        running_var: NodeId,
        momentum: f32,
    ) -> Result<()> {
        let op = "track_running_stats";
        let stats = g.node(layer.stats);
        let x = match &stats.kind {
            NodeKind::Op(kind) if kind.name() == BatchStats.name() => stats.inputs[0],
            _ => {
                return Err(Error::Invalid(format!(
                    "{op}: `{}` ({}) is not a batch_stats node",
                    stats.name, layer.stats
                )))
            }
        };
        let layout = Layout::of(op, g.shape(x))?;
        for (id, what) in [
            (running_mean, "running mean"),
            (running_var, "running variance"),
        ] {
            let node = g.node(id);
            if !matches!(node.kind, NodeKind::Param) {
                return Err(Error::Invalid(format!(
                    "{op}: the {what} `{}` ({id}) must be a parameter",
                    node.name
                )));
            }
            check_vector(
                op,
                &format!("the {what} `{}`", node.name),
                &node.shape,
                layout.channels,
            )?;
        }
        if !(0.0..=1.0).contains(&momentum) {
            return Err(Error::Invalid(format!(
                "{op}: momentum must lie in [0, 1], not {momentum}"
            )));
        }
        self.layers.push(TrackedLayer {
            stats: layer.stats,
            mean: (running_mean, g.node(running_mean).name.clone()),
            var: (running_var, g.node(running_var).name.clone()),
            count: layout.count(),
            momentum,
        });
        Ok(())
    }

    /// The (running statistic, batch statistics) pairs to append to `PlanSpec::updates`.
    pub fn updates(&self) -> Vec<(NodeId, NodeId)> {
        self.layers
            .iter()
            .flat_map(|l| [(l.mean.0, l.stats), (l.var.0, l.stats)])
            .collect()
    }

    /// The running statistics' parameter nodes, to append to `PlanSpec::keep`: a plan holds a
    /// parameter only when a node it computes or keeps reads it, which a training step does not.
    pub fn keep(&self) -> Vec<NodeId> {
        self.layers
            .iter()
            .flat_map(|l| [l.mean.0, l.var.0])
            .collect()
    }
}

impl UpdateRule for TrackRunningStats<'_> {
    fn prepare(&mut self, gpu: &Gpu, slots: &[UpdateSlot<'_>]) -> Result<Vec<Dispatch>> {
        let find = |name: &str| {
            slots.iter().find(|s| s.name == name).ok_or_else(|| {
                Error::Invalid(format!(
                    "track_running_stats: `{name}` is not among the plan's updates (append \
                     TrackRunningStats::updates to PlanSpec::updates)"
                ))
            })
        };
        let mut dispatches = Vec::new();
        for layer in &self.layers {
            let (mean, var) = (find(&layer.mean.1)?, find(&layer.var.1)?);
            if mean.grad.buffer != var.grad.buffer {
                return Err(Error::Invalid(format!(
                    "track_running_stats: `{}` and `{}` are paired with different statistics",
                    layer.mean.1, layer.var.1
                )));
            }
            dispatches.push(running_stats_update(
                gpu,
                mean.grad,
                mean.param,
                var.param,
                layer.count,
                layer.momentum,
            )?);
        }
        let tracked = |name: &str| {
            self.layers
                .iter()
                .any(|l| l.mean.1 == name || l.var.1 == name)
        };
        let rest: Vec<UpdateSlot<'_>> = slots
            .iter()
            .filter(|s| !tracked(s.name))
            .map(|s| UpdateSlot {
                name: s.name,
                param: s.param,
                grad: s.grad,
            })
            .collect();
        match (&mut self.optimizer, rest.first()) {
            (Some(optimizer), _) => {
                let mut updates = optimizer.prepare(gpu, &rest)?;
                updates.append(&mut dispatches);
                Ok(updates)
            }
            (None, Some(slot)) => Err(Error::Invalid(format!(
                "track_running_stats: `{}` has a gradient to apply but no optimiser was given",
                slot.name
            ))),
            (None, None) => Ok(dispatches),
        }
    }
}
