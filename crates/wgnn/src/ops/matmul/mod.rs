//! Matrix products: batched `C[b] = op(A[b]) op(B[b])` with op = identity or transpose, whose
//! batch dims broadcast as numpy's `matmul` does, and the linear layer built on it.
//!
//! Shapes: A is [..., M, K] (stored [..., K, M] when `transpose_a`), B is [..., K, N] (stored
//! [..., N, K] when `transpose_b`); the dims before the last two are batch dims (up to 4), which
//! broadcast: aligned from the right, equal or 1 (a missing dim counts as 1). C is
//! [batch..., M, N], the broadcast batch dims first. A rank-2 operand next to a batched one is
//! shared by every batch element (a weight matrix). `Graph::matmul` also takes 1-D operands as
//! numpy does: A [K] is a row [1, K] and B [K] a column [K, 1], and the added dim is dropped from
//! the result ([K] x [K] gives [1]: wgnn has no 0-D tensors). The kernels see strides
//! (`common.wgsl`): one kernel serves every layout and every broadcast, without copies.
//!
//! Backward, with dC the upstream gradient (transposes composed so that one kernel serves all):
//! - d op(A) = dC op(B)^T, so dA = matmul_t(dC, B, false, !tb), or op(B) dC^T = matmul_t(B, dC,
//!   tb, true) when A is stored transposed;
//! - d op(B) = op(A)^T dC, so dB = matmul_t(A, dC, !ta, false), or dC^T op(A) = matmul_t(dC, A,
//!   true, ta) when B is stored transposed;
//!
//! each computed over C's batch and summed over the batch dims that the operand broadcasts.
//!
//! The kernel comes in two designs (`GemmVariant`), one file each: `tiled` (tiles staged in
//! workgroup memory, every device) and `subgroup` (rows of op(A) shared by subgroup broadcasts,
//! no workgroup memory; devices with `Gpu::subgroup_broadcast`).

pub(crate) mod subgroup;
pub(crate) mod tiled;

use crate::error::{Error, Result};
use crate::gpu::{shader_struct, wgsl_file, Dispatch, WgslFile};
use crate::graph::{BackwardCtx, EncodeCtx, Graph, NodeId, Op, SpatialMap};
use crate::ops::gemm::{self, GemmVariant};
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
        a_m: u32,
        a_k: u32,
        b_k: u32,
        b_n: u32,
        tiles_m: u32,
        tiles_n: u32,
        pad0: u32,
        pad1: u32,
        batch_dims: [u32; MAX_BATCH_DIMS],
        a_batch_strides: [u32; MAX_BATCH_DIMS],
        b_batch_strides: [u32; MAX_BATCH_DIMS],
    }
}

/// Batch dims the kernels decompose (a vec4 in `Params`): rank 6 operands.
const MAX_BATCH_DIMS: usize = 4;

/// C = op(A) op(B), batched; see the module documentation for shapes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MatMul {
    pub transpose_a: bool,
    pub transpose_b: bool,
}

/// The sizes of one product, resolved from the operand shapes.
#[derive(Clone, Debug)]
struct Dims {
    /// C's batch dims (empty when both operands are matrices: C is then a matrix too).
    batch: Vec<usize>,
    /// Elements of each operand per step along each of C's batch dims; 0 where it broadcasts.
    a_strides: Vec<usize>,
    b_strides: Vec<usize>,
    m: usize,
    n: usize,
    k: usize,
}

/// The strides of an operand's batch dims `dims` (aligned right with C's `batch`) for matrices
/// of `matrix` elements: row-major, 0 where the operand's dim is 1 or missing.
fn batch_strides(dims: &[usize], batch: &[usize], matrix: usize) -> Vec<usize> {
    let missing = batch.len() - dims.len();
    let mut strides = vec![0; batch.len()];
    let mut stride = matrix;
    for (k, &d) in dims.iter().enumerate().rev() {
        if d != 1 {
            strides[missing + k] = stride;
        }
        stride *= d;
    }
    strides
}

impl MatMul {
    fn dims(&self, a: &Shape, b: &Shape) -> Result<Dims> {
        let name = self.name();
        for (what, s) in [("A", a), ("B", b)] {
            if s.rank() < 2 {
                return Err(Error::shape(
                    name,
                    format!(
                        "{what} must be a matrix or a batch of matrices (rank >= 2), not {s} \
                         (Graph::matmul takes vectors)"
                    ),
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
        let (a_batch, b_batch) = (&a.dims()[..a.rank() - 2], &b.dims()[..b.rank() - 2]);
        let rank = a_batch.len().max(b_batch.len());
        let mut batch = Vec::with_capacity(rank);
        for k in 0..rank {
            // Dim k of the result's batch in an operand's dims aligned right (1 where missing).
            let from_end =
                |dims: &[usize]| (k + dims.len()).checked_sub(rank).map_or(1, |i| dims[i]);
            batch.push(match (from_end(a_batch), from_end(b_batch)) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                (x, y) => {
                    return Err(Error::shape(
                        name,
                        format!(
                            "batch dims {a_batch:?} and {b_batch:?} do not broadcast \
                             (batch dim {k} from the left of the result: {x} and {y}; sizes \
                             must be equal or 1)"
                        ),
                    ))
                }
            });
        }
        if rank > MAX_BATCH_DIMS {
            return Err(Error::shape(
                name,
                format!("{rank} batch dims: at most {MAX_BATCH_DIMS} are supported"),
            ));
        }
        Ok(Dims {
            a_strides: batch_strides(a_batch, &batch, m * ka),
            b_strides: batch_strides(b_batch, &batch, ka * n),
            batch,
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
        // Batch dims right-aligned in the vec4s: missing outer dims are 1 with stride 0.
        let slots = |values: &[usize], fill: u32| {
            let mut out = [fill; MAX_BATCH_DIMS];
            let skip = MAX_BATCH_DIMS - values.len();
            for (slot, &v) in out[skip..].iter_mut().zip(values) {
                *slot = v as u32;
            }
            out
        };
        Params {
            batch: d.batch.iter().product::<usize>() as u32,
            m: m as u32,
            n: n as u32,
            k: k as u32,
            a_m: a_m as u32,
            a_k: a_k as u32,
            b_k: b_k as u32,
            b_n: b_n as u32,
            tiles_m: m.div_ceil(rows) as u32,
            tiles_n: n.div_ceil(cols) as u32,
            pad0: 0,
            pad1: 0,
            batch_dims: slots(&d.batch, 1),
            a_batch_strides: slots(&d.a_strides, 0),
            b_batch_strides: slots(&d.b_strides, 0),
        }
    }
}

impl Params {
    /// One workgroup per tile of each batch element.
    fn workgroups(&self) -> u32 {
        self.batch * self.tiles_m * self.tiles_n
    }
}

/// C = op(A) op(B) (inputs A, B) in the design `gemm::choose` picks.
fn product(
    ctx: &mut EncodeCtx<'_>,
    op: &MatMul,
    d: &Dims,
    inputs: &[&Tensor],
    output: &Tensor,
) -> Result<Vec<Dispatch>> {
    let batch: usize = d.batch.iter().product();
    gemm::choose(ctx, "matmul", [batch * d.m, d.n, d.k], |ctx, variant| {
        Ok(vec![match variant {
            GemmVariant::Tiled => tiled::product(ctx.gpu, op, d, inputs, output)?,
            GemmVariant::Subgroup => subgroup::product(ctx.gpu, op, d, inputs, output)?,
        }])
    })
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
        let mut dims = d.batch;
        dims.extend([d.m, d.n]);
        Shape::new(&dims)
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let d = self.dims(&inputs[0].shape, &inputs[1].shape)?;
        product(ctx, self, &d, inputs, output)
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

/// A gradient computed over C's batch for an operand that broadcasts some batch dims (a matrix
/// shared by the batch, or dims of size 1) is summed over those dims.
fn sum_shared_batch(g: &mut Graph, grad: NodeId, operand: NodeId) -> Result<NodeId> {
    let (grad_shape, shape) = (g.shape(grad), g.shape(operand));
    if grad_shape == shape {
        Ok(grad)
    } else if grad_shape.rank() == shape.rank() + 1 && grad_shape.dims()[1..] == *shape.dims() {
        // One leading dim (a batch times a shared matrix): the reduction kernel along it.
        g.sum_axis(grad, 0, false)
    } else {
        g.sum_to_shape(grad, operand)
    }
}

impl Graph {
    /// A B as numpy's `matmul`: matrices [M, K] x [K, N], batches [..., M, K] x [..., K, N]
    /// whose batch dims broadcast (a batch times a shared matrix: [batch, M, K] x [K, N]), and
    /// 1-D operands: A [K] is a row and B [K] a column, whose added dim is dropped from C.
    pub fn matmul(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        let (a_vector, b_vector) = (self.shape(a).rank() == 1, self.shape(b).rank() == 1);
        let a = if a_vector {
            let k = self.shape(a).dim(0);
            self.reshape(a, [1, k])?
        } else {
            a
        };
        let b = if b_vector {
            let k = self.shape(b).dim(0);
            self.reshape(b, [k, 1])?
        } else {
            b
        };
        let c = self.matmul_t(a, b, false, false)?;
        if !(a_vector || b_vector) {
            return Ok(c);
        }
        let mut dims = self.shape(c).dims().to_vec();
        if b_vector {
            dims.pop();
        }
        if a_vector {
            dims.remove(dims.len() - 1 - usize::from(!b_vector));
        }
        if dims.is_empty() {
            dims.push(1);
        }
        self.reshape(c, Shape::new(&dims)?)
    }

    /// op(A) op(B), where op transposes its operand (of rank >= 2) when the flag is set; batch
    /// dims broadcast as in `matmul`.
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
