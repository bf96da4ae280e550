//! GEMM building blocks in WGSL that the conv, matmul and gram kernels include.

use crate::gpu::{wgsl_file, WgslFile};

/// Rows of A shared by subgroup broadcasts: `spread`, the `Acc8` / `AccRows` accumulators and
/// `multiply_rows`, for the kernels of devices with `Gpu::subgroup_broadcast`.
pub(crate) static SUBGROUP: WgslFile = wgsl_file!("ops/gemm/subgroup.wgsl");
