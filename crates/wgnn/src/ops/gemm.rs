//! GEMM building blocks in WGSL that the conv, matmul and gram kernels include.

use crate::gpu::{wgsl_file, WgslFile};

/// `fma_outer` on 4 x 4 blocks held as mat4x4 values, and the lane offsets `LANES`.
pub(crate) static BLOCK4: WgslFile = wgsl_file!("ops/gemm/block4.wgsl");

/// Tiles staged in workgroup memory (`tile_a`, `tile_b`, BM x BN in slices of BK) and the 8 x 8
/// `Block` of an invocation: `multiply_slice`.
pub(crate) static TILED: WgslFile = wgsl_file!("ops/gemm/tiled.wgsl", [&BLOCK4]);

/// Rows of A shared by subgroup broadcasts: `lane_rows`, `spread`, the `Acc8` / `AccRows`
/// accumulators and `multiply_rows`, for the kernels of devices with `Gpu::subgroup_broadcast`.
pub(crate) static SUBGROUP: WgslFile = wgsl_file!("ops/gemm/subgroup.wgsl", [&BLOCK4]);
