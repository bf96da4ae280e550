//! GEMM building blocks in WGSL that the conv, matmul and gram kernels include.

use crate::gpu::{wgsl_file, Gpu, WgslFile};

/// `fma_outer` on 4 x 4 blocks held as mat4x4 values, and the lane offsets `LANES`.
pub(crate) static BLOCK4: WgslFile = wgsl_file!("ops/gemm/block4.wgsl");

/// Tiles staged in workgroup memory (`tile_a`, `tile_b`, BM x BN in slices of BK) and the 8 x 8
/// `Block` of an invocation: `multiply_slice`.
pub(crate) static TILED: WgslFile = wgsl_file!("ops/gemm/tiled.wgsl", [&BLOCK4]);

/// Rows of A shared by subgroup broadcasts: `lane_rows`, `spread`, the `Acc8` / `AccRows`
/// accumulators and `multiply_rows`, for the kernels of devices with `Gpu::subgroup_broadcast`.
pub(crate) static SUBGROUP: WgslFile = wgsl_file!("ops/gemm/subgroup.wgsl", [&BLOCK4]);

/// The designs of the GEMM-shaped kernels. Conv, matmul and gram keep one design per file
/// (`tiled.rs` beside `tiled.wgsl`, `subgroup.rs` beside `subgroup.wgsl`) and, in their `mod.rs`,
/// one dispatcher per kernel role that matches on this; a new design is one more file per family
/// and one more arm per dispatcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GemmVariant {
    /// Tiles staged in workgroup memory: every device.
    Tiled,
    /// Rows of A shared by subgroup broadcasts, without workgroup memory: devices with
    /// `Gpu::subgroup_broadcast` (3-4x faster than `Tiled` on lavapipe).
    Subgroup,
}

impl GemmVariant {
    /// The design that runs on `gpu`.
    pub(crate) fn for_device(gpu: &Gpu) -> Self {
        if gpu.subgroup_broadcast {
            Self::Subgroup
        } else {
            Self::Tiled
        }
    }
}

/// Columns of a workgroup's tile in the subgroup kernels of 64 invocations (BCAST_COLS): 4 each.
pub(crate) const SUBGROUP_COLUMNS: usize = 256;

/// Row groups of 8 per workgroup tile of the subgroup kernels (ROW_GROUPS) for a GEMM of `m`
/// rows: 4 (32 rows) unless M is at most 16 or 8, so that few rows are wasted.
pub(crate) fn subgroup_row_groups(m: usize) -> usize {
    match m {
        0..=8 => 1,
        9..=16 => 2,
        _ => 4,
    }
}
