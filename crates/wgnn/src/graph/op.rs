//! The contract between the graph runtime and the op families: an `Op` infers its output
//! shape, prepares its dispatches once per plan, and states its backward rule as more nodes.

use std::fmt;
use std::sync::Arc;

use super::{Graph, NodeId, SpatialMap};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu};
use crate::tensor::{DType, Shape, Tensor};

/// What a backward rule gets to see of the node it differentiates.
pub struct BackwardCtx<'a> {
    /// The node's inputs, in order.
    pub inputs: &'a [NodeId],
    /// The node itself (its forward output), for rules that reuse it (sigmoid, tanh, max pool).
    pub output: NodeId,
    /// dLoss/dOutput.
    pub grad: NodeId,
    /// Whether each input needs a gradient: a rule may return `None` for those that do not.
    pub needs_grad: &'a [bool],
}

/// One operation of the graph. Ops are plain data (their attributes); the runtime owns buffers.
pub trait Op: fmt::Debug + Send + Sync {
    /// Short name used in errors, summaries and kernel labels ("conv2d", "relu").
    fn name(&self) -> &'static str;

    /// The output shape for these input shapes, or an error naming the shapes.
    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape>;

    fn output_dtype(&self) -> DType {
        DType::F32
    }

    /// Prepares the dispatches that compute `output` from `inputs`. Called once per plan.
    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>>;

    /// The gradient of each input as new graph nodes, given dLoss/dOutput (`ctx.grad`). Ops
    /// that compute gradients themselves keep this default: wgnn has no second derivatives.
    fn backward(&self, _g: &mut Graph, _ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        Err(Error::Invalid(format!(
            "{} has no backward rule: second derivatives are not implemented",
            self.name()
        )))
    }

    /// How the output's spatial positions read the inputs' (for receptive fields); `None`: not
    /// stated, and a receptive field through this op is an error naming it.
    fn spatial_map(&self, _inputs: &[&Shape]) -> Option<SpatialMap> {
        None
    }

    /// Floating-point operations of one forward evaluation (for summaries and benchmarks).
    fn flops(&self, _inputs: &[&Shape], output: &Shape) -> u64 {
        output.numel() as u64
    }

    /// Bytes one forward evaluation reads and writes at least (for throughput figures): by
    /// default every input once and the output once.
    fn bytes(&self, inputs: &[&Shape], output: &Shape) -> u64 {
        inputs.iter().map(|s| s.bytes()).sum::<u64>() + output.bytes()
    }
}

/// What `Op::encode` may use: the GPU, and scratch buffers that live as long as the plan.
pub struct EncodeCtx<'a> {
    pub gpu: &'a Gpu,
    pub scratch: Vec<Arc<wgpu::Buffer>>,
}

impl<'a> EncodeCtx<'a> {
    pub fn new(gpu: &'a Gpu) -> Self {
        Self {
            gpu,
            scratch: Vec::new(),
        }
    }

    /// A buffer private to one op (partial sums and the like), kept alive by the plan.
    pub fn scratch(&mut self, label: &str, bytes: u64) -> Result<Arc<wgpu::Buffer>> {
        let buffer = Arc::new(self.gpu.storage_buffer(label, bytes)?);
        self.scratch.push(buffer.clone());
        Ok(buffer)
    }
}

/// Runs one op eagerly on tensors: the output starts filled with NaN, so an element that the
/// kernel never writes shows up. For tests and one-off work; training uses compiled plans.
pub fn eval(gpu: &Gpu, op: &dyn Op, inputs: &[&Tensor]) -> Result<Tensor> {
    let shapes: Vec<&Shape> = inputs.iter().map(|t| &t.shape).collect();
    let shape = op.output_shape(&shapes)?;
    let output = match op.output_dtype() {
        DType::F32 => Tensor::filled(gpu, shape, f32::NAN)?,
        DType::U32 => Tensor::from_u32(gpu, shape.clone(), &vec![u32::MAX; shape.numel()])?,
    };
    let mut ctx = EncodeCtx::new(gpu);
    let dispatches = op.encode(&mut ctx, inputs, &output)?;
    gpu.run(&dispatches)?;
    Ok(output)
}
