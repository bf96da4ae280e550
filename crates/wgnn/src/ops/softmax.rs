//! Softmax and log-softmax along any axis, numerically stable (the row's maximum is subtracted
//! before exponentials): `softmax.wgsl`.
//! Backward from the forward output y: dx = y (dy - sum(dy y)) for softmax, dx = dy -
//! exp(y) sum(dy) for log-softmax, sums along the same axis.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::gpu::{
    bytes_of, shader_struct, wgsl_file, workgroups_for, Dispatch, Shader, WORKGROUP_INDEX,
};
use crate::graph::{BackwardCtx, EncodeCtx, Graph, NodeId, Op, SpatialMap};
use crate::tensor::{Shape, Tensor};

pub static SHADER: Shader = Shader {
    name: "softmax",
    file: wgsl_file!("ops/softmax.wgsl", [&WORKGROUP_INDEX]),
    subgroups: false,
    structs: &[("Params", Params::LAYOUT)],
};
const WORKGROUP: usize = 256;

shader_struct! {
    #[derive(Default)]
    struct Params {
        outer: u32,
        len: u32,
        inner: u32,
        rows: u32,
        log: u32,
        _pad0: u32,
        _pad1: u32,
        _pad2: u32,
    }
}

/// The two designs of the softmax kernels (the same arithmetic, one or 256 invocations per
/// row).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoftmaxKernel {
    /// One invocation per row.
    Rows,
    /// One workgroup of 256 per row, partial maxima and sums combined in workgroup memory.
    Workgroup,
}

impl SoftmaxKernel {
    /// The design for rows of `len` values on `gpu`. On a CPU adapter (lavapipe) one invocation
    /// per row always wins: its workgroup barriers are expensive, and the workgroup forward took
    /// 4.6-74x longer on every [rows, len] measured on two cores (64 x 64 to 64 x 1000,
    /// 4096 x 32, 4096 x 256, 8 x 4096). On a GPU (not timed yet), rows of 256 values or more
    /// take a workgroup each, so that a few long rows (classes, a vocabulary) still fill the
    /// device.
    pub fn choose(gpu: &Gpu, len: usize) -> Self {
        // `wgpu::DeviceType::Cpu`, as the adapter summary spells it.
        let cpu = gpu.adapter.device_type == "Cpu";
        if len >= WORKGROUP && !cpu {
            Self::Workgroup
        } else {
            Self::Rows
        }
    }

    fn entry(self, backward: bool) -> &'static str {
        match (self, backward) {
            (Self::Rows, false) => "forward_rows",
            (Self::Rows, true) => "backward_rows",
            (Self::Workgroup, false) => "forward_workgroup",
            (Self::Workgroup, true) => "backward_workgroup",
        }
    }
}

/// Softmax (or log-softmax when `log`) along `axis`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Softmax {
    pub axis: usize,
    pub log: bool,
    /// The kernel design; None: `SoftmaxKernel::choose` for the device (tests force each).
    pub kernel: Option<SoftmaxKernel>,
}

/// The gradient of `Softmax`; inputs (y, dy), y the forward output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftmaxBackward {
    pub axis: usize,
    pub log: bool,
    pub kernel: Option<SoftmaxKernel>,
}

fn name(log: bool) -> &'static str {
    if log {
        "log_softmax"
    } else {
        "softmax"
    }
}

/// Checks `axis` against `shape` and returns the params of the view [outer, len, inner].
fn params(op: &str, shape: &Shape, axis: usize, log: bool) -> Result<Params> {
    if axis >= shape.rank() {
        return Err(Error::shape(
            op,
            format!(
                "axis {axis} is out of range for shape {shape} (rank {})",
                shape.rank()
            ),
        ));
    }
    let dims = shape.dims();
    let (outer, inner) = (
        dims[..axis].iter().product::<usize>(),
        dims[axis + 1..].iter().product::<usize>(),
    );
    Ok(Params {
        outer: outer as u32,
        len: dims[axis] as u32,
        inner: inner as u32,
        rows: (outer * inner) as u32,
        log: log as u32,
        ..Default::default()
    })
}

fn encode(
    ctx: &mut EncodeCtx<'_>,
    params: &Params,
    kernel: Option<SoftmaxKernel>,
    backward: bool,
    reads: &[&wgpu::Buffer],
    output: &Tensor,
) -> Result<Vec<Dispatch>> {
    let kernel = kernel.unwrap_or_else(|| SoftmaxKernel::choose(ctx.gpu, params.len as usize));
    let rows = params.rows as usize;
    let workgroups = match kernel {
        SoftmaxKernel::Rows => workgroups_for(rows, WORKGROUP),
        SoftmaxKernel::Workgroup => rows as u32,
    };
    Ok(vec![ctx.gpu.dispatch(
        &SHADER,
        kernel.entry(backward),
        bytes_of(params),
        reads,
        &[&output.buffer],
        workgroups,
    )?])
}

impl Op for Softmax {
    fn name(&self) -> &'static str {
        name(self.log)
    }

    /// Along the batch or channel axis, each spatial position is normalised on its own; along a
    /// spatial axis, every position of the row reads every other.
    fn spatial_map(&self, _inputs: &[&Shape]) -> Option<SpatialMap> {
        Some(if self.axis < 2 {
            SpatialMap::Pointwise
        } else {
            SpatialMap::Global
        })
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        params(self.name(), inputs[0], self.axis, self.log)?;
        Ok(inputs[0].clone())
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let params = params(self.name(), &inputs[0].shape, self.axis, self.log)?;
        encode(
            ctx,
            &params,
            self.kernel,
            false,
            &[&inputs[0].buffer],
            output,
        )
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        let backward = SoftmaxBackward {
            axis: self.axis,
            log: self.log,
            kernel: self.kernel,
        };
        Ok(vec![Some(g.apply(backward, &[ctx.output, ctx.grad])?)])
    }

    fn flops(&self, inputs: &[&Shape], _: &Shape) -> u64 {
        5 * inputs[0].numel() as u64
    }
}

impl Op for SoftmaxBackward {
    fn name(&self) -> &'static str {
        if self.log {
            "log_softmax_backward"
        } else {
            "softmax_backward"
        }
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        params(self.name(), inputs[0], self.axis, self.log)?;
        if inputs[0] != inputs[1] {
            return Err(Error::shape(
                self.name(),
                "y and dy must have the same shape",
            ));
        }
        Ok(inputs[0].clone())
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let params = params(self.name(), &inputs[0].shape, self.axis, self.log)?;
        let reads = [&*inputs[0].buffer, &*inputs[1].buffer];
        encode(ctx, &params, self.kernel, true, &reads, output)
    }
}

impl Graph {
    /// Softmax along `axis`: exp(x) / sum(exp(x)), computed as exp(x - max) / sum(exp(x - max)).
    pub fn softmax(&mut self, x: NodeId, axis: usize) -> Result<NodeId> {
        self.apply(
            Softmax {
                axis,
                log: false,
                kernel: None,
            },
            &[x],
        )
    }

    /// Log-softmax along `axis`: (x - max) - log(sum(exp(x - max))).
    pub fn log_softmax(&mut self, x: NodeId, axis: usize) -> Result<NodeId> {
        self.apply(
            Softmax {
                axis,
                log: true,
                kernel: None,
            },
            &[x],
        )
    }
}
