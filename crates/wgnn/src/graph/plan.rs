//! Compile once, run many: a plan fixes every buffer, bind group and pipeline of a graph for its
//! shapes. Activation buffers come from a pool and go back to it after their last reader, so
//! tensors whose lifetimes do not overlap share memory. A step is one command encoder, one
//! compute pass and one queue submission; only the outputs asked for are read back.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use super::profile::{DispatchCost, Profile};
use super::{EncodeCtx, Graph, NodeId, NodeKind};
use crate::error::{Error, Result};
use crate::gpu::{BufferPool, Dispatch, Gpu};
use crate::tensor::{DType, Tensor};

/// Where a plan finds the tensors of the graph's parameter nodes, by name (`nn::ParamStore`).
pub trait Parameters {
    fn parameter(&self, name: &str) -> Option<&Tensor>;
}

/// One parameter to update and the gradient that the plan computes for it.
pub struct UpdateSlot<'a> {
    pub name: &'a str,
    pub param: &'a Tensor,
    pub grad: &'a Tensor,
}

/// What a plan appends to each step to update parameters from their gradients: an optimiser
/// (`optim`).
pub trait UpdateRule {
    /// Creates the rule's state for these parameters (if not yet there) and the dispatches that
    /// update them in place; `Plan::compile` appends them to every step.
    fn prepare(&mut self, gpu: &Gpu, slots: &[UpdateSlot<'_>]) -> Result<Vec<Dispatch>>;
}

/// What to compile.
#[derive(Default)]
pub struct PlanSpec<'a> {
    /// Read back after every step, in this order.
    pub outputs: Vec<NodeId>,
    /// Kept alive (never reused) so that `Plan::read` can fetch them on demand.
    pub keep: Vec<NodeId>,
    /// (parameter, gradient) pairs that the optimizer updates at the end of each step.
    pub updates: Vec<(NodeId, NodeId)>,
    pub optimizer: Option<&'a mut dyn UpdateRule>,
    /// Dispatches appended after the update (e.g. clamping an optimised image into range).
    pub after_update: Vec<Dispatch>,
}

impl<'a> PlanSpec<'a> {
    /// A training step: read back `outputs`, and update each parameter from its gradient
    /// (`updates`: (parameter, gradient) pairs) with `optimizer`.
    pub fn training(
        outputs: Vec<NodeId>,
        updates: Vec<(NodeId, NodeId)>,
        optimizer: &'a mut dyn UpdateRule,
    ) -> Self {
        Self {
            outputs,
            updates,
            optimizer: Some(optimizer),
            ..Default::default()
        }
    }
}

/// Sizes of what a plan holds, for `--summary`-style printing.
#[derive(Clone, Debug, Default)]
pub struct PlanSummary {
    pub ops: usize,
    pub dispatches: usize,
    pub flops: u64,
    pub parameter_bytes: u64,
    /// Sum over forward op outputs (before buffer sharing).
    pub activation_bytes: u64,
    /// Sum over gradient op outputs (before buffer sharing).
    pub gradient_bytes: u64,
    pub input_bytes: u64,
    /// Bytes actually allocated for activations and gradients after sharing by liveness.
    pub pooled_bytes: u64,
    pub scratch_bytes: u64,
    /// Everything the plan holds on the GPU at once (parameters, inputs, pooled, scratch).
    pub peak_bytes: u64,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

impl fmt::Display for PlanSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "plan: {} ops, {} dispatches, {:.3} GFLOP per step",
            self.ops,
            self.dispatches,
            self.flops as f64 / 1e9
        )?;
        writeln!(f, "  parameters  {:>10.2} MiB", mib(self.parameter_bytes))?;
        writeln!(f, "  inputs      {:>10.2} MiB", mib(self.input_bytes))?;
        writeln!(
            f,
            "  activations {:>10.2} MiB (before sharing)",
            mib(self.activation_bytes)
        )?;
        writeln!(
            f,
            "  gradients   {:>10.2} MiB (before sharing)",
            mib(self.gradient_bytes)
        )?;
        writeln!(
            f,
            "  pooled      {:>10.2} MiB (activations + gradients, shared by liveness)",
            mib(self.pooled_bytes)
        )?;
        writeln!(f, "  scratch     {:>10.2} MiB", mib(self.scratch_bytes))?;
        write!(f, "  peak        {:>10.2} MiB", mib(self.peak_bytes))
    }
}

pub struct Plan {
    tensors: HashMap<NodeId, Tensor>,
    input_written: HashMap<NodeId, bool>,
    dispatches: Vec<Dispatch>,
    /// What each dispatch computes, in the order of `dispatches`.
    costs: Vec<DispatchCost>,
    outputs: Vec<(NodeId, wgpu::Buffer)>,
    names: HashMap<NodeId, String>,
    summary: PlanSummary,
    _scratch: Vec<Arc<wgpu::Buffer>>,
}

impl Plan {
    pub fn compile(
        gpu: &Gpu,
        graph: &Graph,
        params: &dyn Parameters,
        spec: PlanSpec<'_>,
    ) -> Result<Plan> {
        let nodes = graph.nodes();
        let check = |id: NodeId| -> Result<()> {
            if id.0 >= nodes.len() {
                return Err(Error::Invalid(format!(
                    "plan: {id} is not a node of this graph"
                )));
            }
            Ok(())
        };
        let mut roots: Vec<NodeId> = spec.outputs.iter().chain(&spec.keep).copied().collect();
        for &(param, grad) in &spec.updates {
            check(param)?;
            if !matches!(nodes[param.0].kind, NodeKind::Param) {
                return Err(Error::Invalid(format!(
                    "plan: update target `{}` is not a parameter",
                    nodes[param.0].name
                )));
            }
            // The parameter too: an update target that nothing else reads (a running statistic)
            // still needs its tensor.
            roots.push(param);
            roots.push(grad);
        }
        for &r in &roots {
            check(r)?;
        }
        // Which nodes are needed, and when each is read for the last time.
        let mut needed = vec![false; nodes.len()];
        for &r in &roots {
            needed[r.0] = true;
        }
        for i in (0..nodes.len()).rev() {
            if needed[i] {
                for &j in &nodes[i].inputs {
                    needed[j.0] = true;
                }
            }
        }
        let mut last_use = vec![0usize; nodes.len()];
        for (i, node) in nodes.iter().enumerate().filter(|(i, _)| needed[*i]) {
            for &j in &node.inputs {
                last_use[j.0] = i;
            }
        }
        let pinned: BTreeSet<usize> = roots.iter().map(|r| r.0).collect();

        let mut pool = BufferPool::new();
        let mut ctx = EncodeCtx::new(gpu);
        let mut tensors: HashMap<NodeId, Tensor> = HashMap::new();
        let mut pooled: HashMap<NodeId, Arc<wgpu::Buffer>> = HashMap::new();
        let mut input_written = HashMap::new();
        let mut dispatches = Vec::new();
        let mut costs = Vec::new();
        let mut summary = PlanSummary::default();

        for (i, node) in nodes.iter().enumerate() {
            if !needed[i] {
                continue;
            }
            let id = NodeId(i);
            match &node.kind {
                NodeKind::Input => {
                    let buffer = Arc::new(gpu.storage_buffer(&node.name, node.shape.bytes())?);
                    summary.input_bytes += buffer.size();
                    tensors.insert(
                        id,
                        Tensor {
                            shape: node.shape.clone(),
                            dtype: node.dtype,
                            buffer,
                        },
                    );
                    input_written.insert(id, false);
                }
                NodeKind::Param => {
                    let tensor = params.parameter(&node.name).ok_or_else(|| {
                        Error::Invalid(format!(
                            "plan: parameter `{}` ({}) is missing from the parameter store",
                            node.name, node.shape
                        ))
                    })?;
                    if tensor.shape != node.shape {
                        return Err(Error::shape(
                            "plan",
                            format!(
                                "parameter `{}` is {} in the store but {} in the graph",
                                node.name, tensor.shape, node.shape
                            ),
                        ));
                    }
                    summary.parameter_bytes += tensor.shape.bytes();
                    tensors.insert(id, tensor.clone());
                }
                NodeKind::Op(op) => {
                    let buffer = pool.take(gpu, &node.name, node.shape.bytes())?;
                    let output = Tensor {
                        shape: node.shape.clone(),
                        dtype: node.dtype,
                        buffer: buffer.clone(),
                    };
                    let inputs: Vec<&Tensor> = node.inputs.iter().map(|j| &tensors[j]).collect();
                    let input_shapes: Vec<_> = inputs.iter().map(|t| &t.shape).collect();
                    let flops = op.flops(&input_shapes, &node.shape);
                    let bytes = op.bytes(&input_shapes, &node.shape);
                    summary.flops += flops;
                    let mut prepared =
                        op.encode(&mut ctx, &inputs, &output).map_err(|e| match e {
                            Error::Validation { kernel, message } => Error::Validation {
                                kernel: format!("{kernel} (node {} `{}`)", id, node.name),
                                message,
                            },
                            other => other,
                        })?;
                    costs.extend((0..prepared.len()).map(|_| DispatchCost {
                        node: Some(i),
                        flops: flops as f64,
                        bytes: bytes as f64,
                    }));
                    dispatches.append(&mut prepared);
                    summary.ops += 1;
                    if node.is_gradient {
                        summary.gradient_bytes += node.shape.bytes();
                    } else {
                        summary.activation_bytes += node.shape.bytes();
                    }
                    tensors.insert(id, output);
                    pooled.insert(id, buffer);
                    // Inputs read for the last time here go back to the pool.
                    let mut released = BTreeSet::new();
                    for &j in &node.inputs {
                        if last_use[j.0] == i && !pinned.contains(&j.0) && released.insert(j) {
                            if let Some(b) = pooled.remove(&j) {
                                pool.give_back(b);
                            }
                        }
                    }
                }
            }
        }

        if let Some(optimizer) = spec.optimizer {
            let slots: Vec<UpdateSlot<'_>> = spec
                .updates
                .iter()
                .map(|(p, g)| UpdateSlot {
                    name: &nodes[p.0].name,
                    param: &tensors[p],
                    grad: &tensors[g],
                })
                .collect();
            dispatches.extend(optimizer.prepare(gpu, &slots)?);
        } else if !spec.updates.is_empty() {
            return Err(Error::Invalid(
                "plan: updates were given without an optimizer".into(),
            ));
        }

        dispatches.extend(spec.after_update);

        let mut outputs = Vec::new();
        for &o in &spec.outputs {
            let bytes = nodes[o.0].shape.bytes();
            outputs.push((o, gpu.readback_buffer(&nodes[o.0].name, bytes)));
        }
        summary.dispatches = dispatches.len();
        summary.pooled_bytes = pool.allocated_bytes();
        summary.scratch_bytes = ctx.scratch.iter().map(|b| b.size()).sum();
        summary.peak_bytes = summary.parameter_bytes
            + summary.input_bytes
            + summary.pooled_bytes
            + summary.scratch_bytes;
        // Only what stays valid between steps can be read: the rest shares pooled buffers.
        tensors
            .retain(|id, _| pinned.contains(&id.0) || !matches!(nodes[id.0].kind, NodeKind::Op(_)));
        let names = tensors
            .keys()
            .map(|&id| (id, nodes[id.0].name.clone()))
            .collect();
        Ok(Plan {
            tensors,
            input_written,
            dispatches,
            costs,
            outputs,
            names,
            summary,
            _scratch: ctx.scratch,
        })
    }

    pub fn summary(&self) -> &PlanSummary {
        &self.summary
    }

    /// The prepared dispatches of one step, in order (for profiling them one by one).
    pub fn dispatches(&self) -> &[Dispatch] {
        &self.dispatches
    }

    /// What each dispatch of `dispatches` belongs to: its op's node, FLOPs and bytes (none for
    /// the optimiser's).
    pub fn dispatch_costs(&self) -> &[DispatchCost] {
        &self.costs
    }

    /// Times each kernel of a step on its own, then whole steps (`repeats` of each, medians).
    /// The step runs as it would in training: parameters it updates change.
    pub fn profile(&mut self, gpu: &Gpu, repeats: usize) -> Result<Profile> {
        // A first step compiles nothing more but warms caches and checks the inputs.
        self.step_without_readback(gpu)?;
        let timing = Profile::best_timing(gpu);
        let mut profile = Profile::measure(gpu, &self.dispatches, &self.costs, repeats, timing)?;
        let mut steps = Vec::new();
        for _ in 0..repeats.max(1) {
            let start = std::time::Instant::now();
            self.step_without_readback(gpu)?;
            steps.push(start.elapsed().as_secs_f64() * 1e3);
        }
        steps.sort_by(f64::total_cmp);
        profile.step_ms = Some(steps[steps.len() / 2]);
        Ok(profile)
    }

    fn input_tensor(&self, id: NodeId, dtype: DType, len: usize) -> Result<&Tensor> {
        let name = self
            .names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| id.to_string());
        if !self.input_written.contains_key(&id) {
            return Err(Error::Invalid(format!(
                "`{name}` is not an input of this plan"
            )));
        }
        let tensor = &self.tensors[&id];
        if tensor.dtype != dtype {
            return Err(Error::Invalid(format!(
                "input `{name}` holds {:?}, not {dtype:?}",
                tensor.dtype
            )));
        }
        if tensor.shape.numel() != len {
            return Err(Error::Invalid(format!(
                "input `{name}` of shape {} given {len} values",
                tensor.shape
            )));
        }
        Ok(tensor)
    }

    /// Sets an f32 input for the next steps.
    pub fn write_input(&mut self, gpu: &Gpu, id: NodeId, data: &[f32]) -> Result<()> {
        let tensor = self.input_tensor(id, DType::F32, data.len())?;
        gpu.queue
            .write_buffer(&tensor.buffer, 0, bytemuck::cast_slice(data));
        self.input_written.insert(id, true);
        Ok(())
    }

    /// Sets a u32 input (indices) for the next steps.
    pub fn write_input_u32(&mut self, gpu: &Gpu, id: NodeId, data: &[u32]) -> Result<()> {
        let tensor = self.input_tensor(id, DType::U32, data.len())?;
        gpu.queue
            .write_buffer(&tensor.buffer, 0, bytemuck::cast_slice(data));
        self.input_written.insert(id, true);
        Ok(())
    }

    /// Runs one step (forward, backward and update as compiled) and returns the outputs.
    pub fn step(&mut self, gpu: &Gpu) -> Result<Vec<Vec<f32>>> {
        self.submit(gpu, true)?;
        let staging: Vec<&wgpu::Buffer> = self.outputs.iter().map(|(_, b)| b).collect();
        let raw = gpu.read_mapped(&staging)?;
        Ok(self
            .outputs
            .iter()
            .zip(raw)
            .map(|((id, _), bytes)| {
                let n = self.tensors[id].shape.numel();
                bytemuck::cast_slice::<u8, f32>(&bytes)[..n].to_vec()
            })
            .collect())
    }

    /// Runs one step without reading anything back, waiting for the GPU to finish.
    pub fn step_without_readback(&mut self, gpu: &Gpu) -> Result<()> {
        self.submit(gpu, false)?;
        gpu.wait()
    }

    fn submit(&mut self, gpu: &Gpu, copy_outputs: bool) -> Result<()> {
        if let Some((id, _)) = self.input_written.iter().find(|(_, &w)| !w) {
            return Err(Error::Invalid(format!(
                "input `{}` was never written",
                self.names[id]
            )));
        }
        let what = self
            .dispatches
            .first()
            .map(|d| d.label.clone())
            .unwrap_or_else(|| "plan".into());
        gpu.validated(&what, || {
            let mut encoder = gpu.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                for d in &self.dispatches {
                    d.encode(&mut pass);
                }
            }
            if copy_outputs {
                for (id, staging) in &self.outputs {
                    let source = &self.tensors[id].buffer;
                    encoder.copy_buffer_to_buffer(source, 0, staging, 0, staging.size());
                }
            }
            gpu.queue.submit([encoder.finish()]);
        })
    }

    /// The tensor of an input, parameter, output or kept node.
    pub fn tensor(&self, id: NodeId) -> Option<&Tensor> {
        self.tensors.get(&id)
    }

    /// Reads a node's current value (an output, kept node, input or parameter).
    pub fn read(&self, gpu: &Gpu, id: NodeId) -> Result<Vec<f32>> {
        let tensor = self
            .tensors
            .get(&id)
            .ok_or_else(|| Error::Invalid(format!("{id} is not held by this plan")))?;
        tensor.to_vec(gpu)
    }
}
