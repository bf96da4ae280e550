//! The matrix product on subgroup broadcasts (`subgroup.wgsl`): rows of op(A) shared by the lanes
//! of a subgroup, without workgroup memory, for devices with `Gpu::subgroup_broadcast`.

use super::{Dims, MatMul, Params, COMMON};
use crate::error::Result;
use crate::gpu::{bytes_of, wgsl_file, Dispatch, Gpu, KernelCall, Shader, WORKGROUP_INDEX};
use crate::ops::gemm::{self, subgroup_row_groups, SUBGROUP_COLUMNS};
use crate::tensor::Tensor;

pub(crate) static SHADER: Shader = Shader {
    name: "matmul_subgroup",
    file: wgsl_file!(
        "ops/matmul/subgroup.wgsl",
        [&WORKGROUP_INDEX, &COMMON, &gemm::SUBGROUP]
    ),
    subgroups: true,
    structs: &[("Params", Params::LAYOUT)],
};

/// Operands read as vec4s where a lane's 4 values are contiguous and aligned
/// (matmul_broadcast_vec4): 1.4x faster on lavapipe at 1024 x 1024 x 1024; then tiles of 64 rows
/// where M is above 32 (ROW_BLOCKS = 2).
pub(super) fn product(
    gpu: &Gpu,
    op: &MatMul,
    d: &Dims,
    inputs: &[&Tensor],
    output: &Tensor,
) -> Result<Dispatch> {
    let b_inner = if op.transpose_b { d.k } else { d.n };
    let vec4 = !op.transpose_a && d.k.is_multiple_of(4) && b_inner.is_multiple_of(4);
    let row_blocks = if vec4 && d.m > 32 { 2 } else { 1 };
    let row_groups = subgroup_row_groups(d.m);
    let params = op.params(d, 8 * row_groups * row_blocks, SUBGROUP_COLUMNS);
    let (entry, constants) = if vec4 {
        let b_columns = op.transpose_b as u32 as f64;
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
    gpu.prepare(KernelCall {
        shader: &SHADER,
        entry,
        constants: &constants,
        params: bytes_of(&params),
        reads: &[&inputs[0].buffer, &inputs[1].buffer],
        writes: &[&output.buffer],
        workgroups: params.workgroups(),
    })
}
