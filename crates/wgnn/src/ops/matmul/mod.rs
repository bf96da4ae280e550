//! Matrix products: batched `C[b] = op(A[b]) op(B[b])` with op = identity or transpose, and the
//! linear layer built on it.
//!
//! Shapes: A is [M, K] or [batch, M, K] (stored [K, M] / [batch, K, M] when `transpose_a`), B is
//! [K, N] or [batch, K, N] (stored [N, K] / [batch, N, K] when `transpose_b`). A rank-2 operand
//! next to a rank-3 one is shared by every batch element (a weight matrix); its gradient sums
//! over the batch. The kernels see strides (`common.wgsl`), so one kernel serves every layout.
//!
//! Backward, with dC the upstream gradient (transposes composed so that one kernel serves all):
//! - d op(A) = dC op(B)^T, so dA = matmul_t(dC, B, false, !tb), or op(B) dC^T = matmul_t(B, dC,
//!   tb, true) when A is stored transposed;
//! - d op(B) = op(A)^T dC, so dB = matmul_t(A, dC, !ta, false), or dC^T op(A) = matmul_t(dC, A,
//!   true, ta) when B is stored transposed.
//!
//! The kernel comes in two designs (`GemmVariant`), one file each: `tiled` (tiles staged in
//! workgroup memory, every device) and `subgroup` (rows of op(A) shared by subgroup broadcasts,
//! no workgroup memory; devices with `Gpu::subgroup_broadcast`).

pub(crate) mod subgroup;
pub(crate) mod tiled;

use crate::error::{Error, Result};
use crate::gpu::{shader_struct, wgsl_file, Dispatch, Gpu, WgslFile};
use crate::graph::{BackwardCtx, EncodeCtx, Graph, NodeId, Op, SpatialMap};
use crate::ops::gemm::GemmVariant;
use crate::tensor::{Shape, Tensor};

/// Params and the bindings of both designs' kernels.
static COMMON: WgslFile = wgsl_file!("ops/matmul/common.wgsl");

shader_struct! {
    /// Mirrors `Params` in common.wgsl.
    struct Params {
        batch: u32,
        m: u32,
        n: u32,
        k: u32,
        a_batch: u32,
        a_m: u32,
        a_k: u32,
        b_batch: u32,
        b_k: u32,
        b_n: u32,
        tiles_m: u32,
        tiles_n: u32,
    }
}

/// C = op(A) op(B), batched; see the module documentation for shapes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MatMul {
    pub transpose_a: bool,
    pub transpose_b: bool,
}

/// The sizes of one product, resolved from the operand shapes.
#[derive(Clone, Copy, Debug)]
struct Dims {
    /// 0 when both operands are rank 2 (the output is then rank 2 too).
    batch: usize,
    a_batched: bool,
    b_batched: bool,
    m: usize,
    n: usize,
    k: usize,
}

impl MatMul {
    fn dims(&self, a: &Shape, b: &Shape) -> Result<Dims> {
        let name = self.name();
        for (what, s) in [("A", a), ("B", b)] {
            if !(2..=3).contains(&s.rank()) {
                return Err(Error::shape(
                    name,
                    format!("{what} must be a matrix or a batch of matrices, not {s}"),
                ));
            }
        }
        let (a_rows, a_cols) = (a.dim(-2), a.dim(-1));
        let (b_rows, b_cols) = (b.dim(-2), b.dim(-1));
        let (m, ka) = if self.transpose_a {
            (a_cols, a_rows)
        } else {
            (a_rows, a_cols)
        };
        let (kb, n) = if self.transpose_b {
            (b_cols, b_rows)
        } else {
            (b_rows, b_cols)
        };
        if ka != kb {
            return Err(Error::shape(
                name,
                format!(
                    "inner dimensions differ: op(A) is {m} x {ka}, op(B) is {kb} x {n} \
                     (transpose_a {}, transpose_b {})",
                    self.transpose_a, self.transpose_b
                ),
            ));
        }
        let (a_batched, b_batched) = (a.rank() == 3, b.rank() == 3);
        let batch = match (a_batched, b_batched) {
            (true, true) if a.dim(0) != b.dim(0) => {
                return Err(Error::shape(
                    name,
                    format!("batch sizes differ: {} and {}", a.dim(0), b.dim(0)),
                ))
            }
            (true, _) => a.dim(0),
            (_, true) => b.dim(0),
            _ => 0,
        };
        Ok(Dims {
            batch,
            a_batched,
            b_batched,
            m,
            n,
            k: ka,
        })
    }

    /// The uniform parameters of the product `d` in workgroup tiles of `rows` x `cols` of C.
    fn params(&self, d: &Dims, rows: usize, cols: usize) -> Params {
        let (m, n, k) = (d.m, d.n, d.k);
        let (a_m, a_k) = if self.transpose_a { (1, m) } else { (k, 1) };
        let (b_k, b_n) = if self.transpose_b { (1, k) } else { (n, 1) };
        Params {
            batch: d.batch.max(1) as u32,
            m: m as u32,
            n: n as u32,
            k: k as u32,
            a_batch: if d.a_batched { m * k } else { 0 } as u32,
            a_m: a_m as u32,
            a_k: a_k as u32,
            b_batch: if d.b_batched { k * n } else { 0 } as u32,
            b_k: b_k as u32,
            b_n: b_n as u32,
            tiles_m: m.div_ceil(rows) as u32,
            tiles_n: n.div_ceil(cols) as u32,
        }
    }
}

impl Params {
    /// One workgroup per tile of each batch element.
    fn workgroups(&self) -> u32 {
        self.batch * self.tiles_m * self.tiles_n
    }
}

/// C = op(A) op(B) (inputs A, B) in this device's design.
fn product(
    gpu: &Gpu,
    op: &MatMul,
    d: &Dims,
    inputs: &[&Tensor],
    output: &Tensor,
) -> Result<Dispatch> {
    match GemmVariant::for_device(gpu) {
        GemmVariant::Tiled => tiled::product(gpu, op, d, inputs, output),
        GemmVariant::Subgroup => subgroup::product(gpu, op, d, inputs, output),
    }
}

impl Op for MatMul {
    fn name(&self) -> &'static str {
        "matmul"
    }

    fn spatial_map(&self, _inputs: &[&Shape]) -> Option<SpatialMap> {
        Some(SpatialMap::Global)
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        let d = self.dims(inputs[0], inputs[1])?;
        if d.batch == 0 {
            Shape::new(&[d.m, d.n])
        } else {
            Shape::new(&[d.batch, d.m, d.n])
        }
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let d = self.dims(&inputs[0].shape, &inputs[1].shape)?;
        Ok(vec![product(ctx.gpu, self, &d, inputs, output)?])
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        let (a, b, dc) = (ctx.inputs[0], ctx.inputs[1], ctx.grad);
        let (ta, tb) = (self.transpose_a, self.transpose_b);
        let da = if ctx.needs_grad[0] {
            let da = if ta {
                g.matmul_t(b, dc, tb, true)?
            } else {
                g.matmul_t(dc, b, false, !tb)?
            };
            Some(sum_shared_batch(g, da, a)?)
        } else {
            None
        };
        let db = if ctx.needs_grad[1] {
            let db = if tb {
                g.matmul_t(dc, a, true, ta)?
            } else {
                g.matmul_t(a, dc, !ta, false)?
            };
            Some(sum_shared_batch(g, db, b)?)
        } else {
            None
        };
        Ok(vec![da, db])
    }

    fn flops(&self, inputs: &[&Shape], output: &Shape) -> u64 {
        let k = match self.dims(inputs[0], inputs[1]) {
            Ok(d) => d.k,
            Err(_) => return 0,
        };
        2 * output.numel() as u64 * k as u64
    }
}

/// A gradient computed per batch element for an operand shared by the batch (rank 2 next to
/// rank 3) is summed over the batch.
fn sum_shared_batch(g: &mut Graph, grad: NodeId, operand: NodeId) -> Result<NodeId> {
    if g.shape(grad).rank() > g.shape(operand).rank() {
        g.sum_axis(grad, 0, false)
    } else {
        Ok(grad)
    }
}

impl Graph {
    /// A B for matrices [M, K] x [K, N], batches [batch, M, K] x [batch, K, N], or a batch
    /// times a shared matrix ([batch, M, K] x [K, N]).
    pub fn matmul(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.matmul_t(a, b, false, false)
    }

    /// op(A) op(B), where op transposes its operand when the flag is set.
    pub fn matmul_t(
        &mut self,
        a: NodeId,
        b: NodeId,
        transpose_a: bool,
        transpose_b: bool,
    ) -> Result<NodeId> {
        self.apply(
            MatMul {
                transpose_a,
                transpose_b,
            },
            &[a, b],
        )
    }

    /// A linear layer in torch's layout: x [N, in] (or [batch, N, in]), w [out, in], optional
    /// bias [out]: y = x w^T + bias.
    pub fn linear(&mut self, x: NodeId, w: NodeId, bias: Option<NodeId>) -> Result<NodeId> {
        if self.shape(w).rank() != 2 {
            return Err(Error::shape(
                "linear",
                format!("the weight must be [out, in], not {}", self.shape(w)),
            ));
        }
        let y = self.matmul_t(x, w, false, true)?;
        match bias {
            None => Ok(y),
            Some(bias) => {
                let out = self.shape(w).dim(0);
                if self.shape(bias).dims() != [out] {
                    return Err(Error::shape(
                        "linear",
                        format!(
                            "the bias must be [{out}] for a weight {}, not {}",
                            self.shape(w),
                            self.shape(bias)
                        ),
                    ));
                }
                self.add(y, bias)
            }
        }
    }
}
