//! Matrix products: batched `C[b] = op(A[b]) op(B[b])` with op = identity or transpose, and the
//! linear layer built on it. `shaders/matmul.wgsl`; where the device has subgroups of at least 8
//! (`Gpu::subgroup_broadcast`), `shaders/matmul_subgroup.wgsl`'s kernel instead (rows of op(A)
//! shared by subgroup broadcasts, no workgroup memory), with matmul.wgsl's tiles as the fallback.
//!
//! Shapes: A is [M, K] or [batch, M, K] (stored [K, M] / [batch, K, M] when `transpose_a`), B is
//! [K, N] or [batch, K, N] (stored [N, K] / [batch, N, K] when `transpose_b`). A rank-2 operand
//! next to a rank-3 one is shared by every batch element (a weight matrix); its gradient sums
//! over the batch.
//!
//! Backward, with dC the upstream gradient (transposes composed so that one kernel serves all):
//! - d op(A) = dC op(B)^T, so dA = matmul_t(dC, B, false, !tb), or op(B) dC^T = matmul_t(B, dC,
//!   tb, true) when A is stored transposed;
//! - d op(B) = op(A)^T dC, so dB = matmul_t(A, dC, !ta, false), or dC^T op(A) = matmul_t(dC, A,
//!   true, ta) when B is stored transposed.

use crate::error::{Error, Result};
use crate::gpu::{bytes_of, wgsl_file, Dispatch, KernelCall, Shader, WORKGROUP_INDEX};
use crate::graph::{BackwardCtx, EncodeCtx, Graph, NodeId, Op};
use crate::ops::gemm;
use crate::tensor::{Shape, Tensor};

pub static SHADER: Shader = Shader {
    name: "matmul",
    file: wgsl_file!("ops/matmul.wgsl", [&WORKGROUP_INDEX]),
    subgroups: false,
};

/// matmul.wgsl followed by the kernel that shares rows of op(A) through subgroup broadcasts, for
/// devices with `Gpu::subgroup_broadcast`.
pub static SUBGROUP_SHADER: Shader = Shader {
    name: "matmul_subgroup",
    file: wgsl_file!("ops/matmul_subgroup.wgsl", [&SHADER.file, &gemm::SUBGROUP]),
    subgroups: true,
};
/// Rows and columns of C per workgroup (`TILE` in matmul.wgsl).
const TILE: usize = 128;
/// Columns of C per workgroup of matmul_broadcast (4 per invocation, 64 invocations).
const BROADCAST_COLUMNS: usize = 256;

/// Row groups of 8 per workgroup of matmul_broadcast (ROW_GROUPS): 4 (32 rows) unless M is at
/// most 16 or 8, so that few rows are wasted.
fn broadcast_row_groups(m: usize) -> usize {
    match m {
        0..=8 => 1,
        9..=16 => 2,
        _ => 4,
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
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
}

impl Op for MatMul {
    fn name(&self) -> &'static str {
        "matmul"
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
        let (m, n, k) = (d.m, d.n, d.k);
        let (a_m, a_k) = if self.transpose_a { (1, m) } else { (k, 1) };
        let (b_k, b_n) = if self.transpose_b { (1, k) } else { (n, 1) };
        let batch = d.batch.max(1);
        // Operands read as vec4s where a lane's 4 values are contiguous and aligned (see
        // matmul_subgroup.wgsl): 1.4x faster on lavapipe at 1024 x 1024 x 1024; then tiles of 64
        // rows where M is above 32 (ROW_BLOCKS = 2).
        let b_vec4 = if self.transpose_b { k } else { n } % 4 == 0;
        let vec4 = ctx.gpu.subgroup_broadcast && !self.transpose_a && k % 4 == 0 && b_vec4;
        let row_blocks = if vec4 && m > 32 { 2 } else { 1 };
        let (row_groups, (rows, cols)) = if ctx.gpu.subgroup_broadcast {
            let groups = broadcast_row_groups(m);
            (groups, (8 * groups * row_blocks, BROADCAST_COLUMNS))
        } else {
            (0, (TILE, TILE))
        };
        let (tiles_m, tiles_n) = (m.div_ceil(rows), n.div_ceil(cols));
        let params = Params {
            batch: batch as u32,
            m: m as u32,
            n: n as u32,
            k: k as u32,
            a_batch: if d.a_batched { m * k } else { 0 } as u32,
            a_m: a_m as u32,
            a_k: a_k as u32,
            b_batch: if d.b_batched { k * n } else { 0 } as u32,
            b_k: b_k as u32,
            b_n: b_n as u32,
            tiles_m: tiles_m as u32,
            tiles_n: tiles_n as u32,
        };
        let workgroups = (batch * tiles_m * tiles_n) as u32;
        let reads: [&wgpu::Buffer; 2] = [&inputs[0].buffer, &inputs[1].buffer];
        let dispatch = if ctx.gpu.subgroup_broadcast {
            let (entry, constants) = if vec4 {
                let b_columns = self.transpose_b as u32 as f64;
                (
                    "matmul_broadcast_vec4",
                    vec![
                        ("ROW_GROUPS", row_groups as f64),
                        ("B_COLUMNS", b_columns),
                        ("ROW_BLOCKS", row_blocks as f64),
                    ],
                )
            } else {
                ("matmul_broadcast", vec![("ROW_GROUPS", row_groups as f64)])
            };
            ctx.gpu.prepare(KernelCall {
                shader: &SUBGROUP_SHADER,
                entry,
                constants: &constants,
                params: bytes_of(&params),
                reads: &reads,
                writes: &[&output.buffer],
                workgroups,
            })?
        } else {
            ctx.gpu.dispatch(
                &SHADER,
                "matmul",
                bytes_of(&params),
                &reads,
                &[&output.buffer],
                workgroups,
            )?
        };
        Ok(vec![dispatch])
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
