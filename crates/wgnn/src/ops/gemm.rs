//! GEMM building blocks in WGSL that the conv, matmul and gram kernels include.

use crate::error::{Error, Result};
use crate::gpu::{wgsl_file, Dispatch, Gpu, TuningMode, WgslFile};
use crate::graph::EncodeCtx;

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
    /// The built-in rule: the design that runs on `gpu` when nothing is forced or timed.
    pub(crate) fn for_device(gpu: &Gpu) -> Self {
        if gpu.subgroup_broadcast {
            Self::Subgroup
        } else {
            Self::Tiled
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Tiled => "tiled",
            Self::Subgroup => "subgroup",
        }
    }

    /// The designs `gpu` can run.
    fn available(gpu: &Gpu) -> Vec<Self> {
        if gpu.subgroup_broadcast {
            vec![Self::Subgroup, Self::Tiled]
        } else {
            vec![Self::Tiled]
        }
    }

    /// `WGNN_GEMM_VARIANT` (`tiled` or `subgroup`), which forces one design everywhere.
    fn forced(gpu: &Gpu) -> Result<Option<Self>> {
        let Ok(value) = std::env::var("WGNN_GEMM_VARIANT") else {
            return Ok(None);
        };
        let variant = match value.as_str() {
            "tiled" => Self::Tiled,
            "subgroup" => Self::Subgroup,
            other => {
                return Err(Error::Invalid(format!(
                    "WGNN_GEMM_VARIANT={other:?}: the designs are `tiled` and `subgroup`"
                )))
            }
        };
        if !Self::available(gpu).contains(&variant) {
            return Err(Error::Invalid(format!(
                "WGNN_GEMM_VARIANT=subgroup: {} was opened without subgroup broadcasts",
                gpu.adapter.name
            )));
        }
        Ok(Some(variant))
    }
}

/// Runs of each candidate that the autotuner takes the median of (after one untimed run).
const TUNING_RUNS: usize = 3;

/// The dispatches of the design that computes `role` (a kernel role such as "conv.forward")
/// for a GEMM of `[m, n, k]`: the one `WGNN_GEMM_VARIANT` forces; else, with the autotuner on
/// (`TuningMode`), the one that was fastest for the shape class (the role and m, n, k rounded
/// up to powers of two) on this adapter and driver, timed on first use and remembered; else
/// the built-in rule. `prepare` makes a design's dispatches. Timing runs the candidates on the
/// op's own buffers, before any step has: the output is written again by the step.
pub(crate) fn choose<'a>(
    ctx: &mut EncodeCtx<'a>,
    role: &str,
    [m, n, k]: [usize; 3],
    mut prepare: impl FnMut(&mut EncodeCtx<'a>, GemmVariant) -> Result<Vec<Dispatch>>,
) -> Result<Vec<Dispatch>> {
    let gpu = ctx.gpu;
    if let Some(variant) = GemmVariant::forced(gpu)? {
        return prepare(ctx, variant);
    }
    let candidates = GemmVariant::available(gpu);
    if gpu.tuner.mode == TuningMode::Off || candidates.len() < 2 {
        return prepare(ctx, GemmVariant::for_device(gpu));
    }
    let key = format!(
        "{role} m{} n{} k{}",
        m.next_power_of_two(),
        n.next_power_of_two(),
        k.next_power_of_two()
    );
    if let Some(choice) = gpu.tuner.choice(&key) {
        if let Some(&variant) = candidates.iter().find(|v| v.name() == choice) {
            return prepare(ctx, variant);
        }
    }
    // Each candidate's scratch buffers are set aside; only the winner's stay with the plan.
    let mut best: Option<(f64, GemmVariant, Vec<Dispatch>, Vec<_>)> = None;
    for variant in candidates {
        let before = ctx.scratch.len();
        let dispatches = prepare(ctx, variant)?;
        let scratch: Vec<_> = ctx.scratch.drain(before..).collect();
        gpu.run(&dispatches)?;
        let mut times = Vec::with_capacity(TUNING_RUNS);
        for _ in 0..TUNING_RUNS {
            let start = std::time::Instant::now();
            gpu.run(&dispatches)?;
            times.push(start.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let time = times[TUNING_RUNS / 2];
        if best.as_ref().is_none_or(|b| time < b.0) {
            best = Some((time, variant, dispatches, scratch));
        }
    }
    let (_, variant, dispatches, scratch) = best.expect("at least one candidate");
    ctx.scratch.extend(scratch);
    gpu.tuner.record(&key, variant.name())?;
    Ok(dispatches)
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
