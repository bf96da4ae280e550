//! Gram matrices of feature maps (style losses): G[n] = F F^T / (C * HW) with F the C x HW
//! matrix of x[n]. `shaders/gram.wgsl`, tiled kernels for both passes.
//! Backward: dF = (dG + dG^T) F / (C * HW).
//! Where the device has subgroups of at least 8 (`Gpu::subgroup_broadcast`), both passes run
//! `shaders/gram_subgroup.wgsl`'s kernels instead (3x faster on lavapipe); gram.wgsl's remain
//! the fallback.

use crate::error::{Error, Result};
use crate::gpu::{
    bytes_of, wgsl_file, workgroups_for, Dispatch, Gpu, KernelCall, Shader, WORKGROUP_INDEX,
};
use crate::graph::{BackwardCtx, EncodeCtx, Graph, NodeId, Op};
use crate::ops::gemm;
use crate::tensor::{Shape, Tensor};

pub static SHADER: Shader = Shader {
    name: "gram",
    file: wgsl_file!("ops/gram.wgsl", [&WORKGROUP_INDEX, &gemm::TILED]),
    subgroups: false,
};

/// gram.wgsl followed by the kernels that share rows of the left operand by subgroup
/// broadcasts, for devices with `Gpu::subgroup_broadcast`.
pub static SUBGROUP_SHADER: Shader = Shader {
    name: "gram_subgroup",
    file: wgsl_file!("ops/gram_subgroup.wgsl", [&SHADER.file, &gemm::SUBGROUP]),
    subgroups: true,
};
/// forward_broadcast's tile (GRAM_ROWS x GRAM_COLS in gram_subgroup.wgsl).
const BROADCAST_ROWS: usize = 32;
const BROADCAST_COLS: usize = 64;
/// backward_broadcast's tile columns (GRAM_GRAD_COLS).
const BROADCAST_GRAD_COLS: usize = 256;
/// Output tile edge of both kernels (see the shader).
const TILE: usize = 64;
/// Reduction step of both kernels: split ranges of the forward pass are multiples of it.
const STEP: usize = 16;
/// The forward pass splits its reduction over HW when it would launch fewer workgroups than
/// this (small C, e.g. the 64 channels of VGG's first block, give one 64 x 64 tile)...
const MIN_WORKGROUPS: usize = 64;
/// ...into ranges of at least this many columns of F.
const MIN_SPLIT_COLUMNS: usize = 1024;
const REDUCE_WORKGROUP: usize = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    c: u32,
    hw: u32,
    row_tiles: u32,
    tiles: u32,
    col_tiles: u32,
    scale: f32,
    splits: u32,
    k_split: u32,
    count: u32,
    _pad: u32,
}

/// (N, C, HW) of a feature tensor [N, C, spatial...] of rank 3 to 5.
fn features(op: &str, shape: &Shape) -> Result<(usize, usize, usize)> {
    if !(3..=5).contains(&shape.rank()) {
        return Err(Error::shape(
            op,
            format!("features must be [N, C, spatial...] of rank 3 to 5, not {shape}"),
        ));
    }
    let d = shape.dims();
    Ok((d[0], d[1], d[2..].iter().product()))
}

fn params(x: &Shape, forward: bool) -> Params {
    let d = x.dims();
    let (n, c, hw) = (d[0], d[1], d[2..].iter().product::<usize>());
    let row_tiles = c.div_ceil(TILE);
    let col_tiles = hw.div_ceil(TILE);
    Params {
        batch: n as u32,
        c: c as u32,
        hw: hw as u32,
        row_tiles: row_tiles as u32,
        tiles: if forward {
            row_tiles * (row_tiles + 1) / 2
        } else {
            row_tiles * col_tiles
        } as u32,
        col_tiles: col_tiles as u32,
        scale: 1.0 / (c * hw) as f32,
        splits: 1,
        k_split: hw as u32,
        count: (n * c * c) as u32,
        _pad: 0,
    }
}

/// `params` for gram_subgroup.wgsl's tiles: forward row blocks of 32 (row_tiles) by column
/// blocks of 64 (col_tiles), row block ti taking the column blocks from ti / 2; backward
/// blocks of 8 * `row_groups` rows by 256 columns.
fn broadcast_params(x: &Shape, forward: bool, row_groups: usize) -> Params {
    let mut p = params(x, forward);
    let (c, hw) = (p.c as usize, p.hw as usize);
    if forward {
        let row_tiles = c.div_ceil(BROADCAST_ROWS);
        let col_tiles = c.div_ceil(BROADCAST_COLS);
        p.row_tiles = row_tiles as u32;
        p.col_tiles = col_tiles as u32;
        p.tiles = (0..row_tiles).map(|ti| col_tiles - ti / 2).sum::<usize>() as u32;
    } else {
        let row_tiles = c.div_ceil(8 * row_groups);
        let col_tiles = hw.div_ceil(BROADCAST_GRAD_COLS);
        p.row_tiles = row_tiles as u32;
        p.col_tiles = col_tiles as u32;
        p.tiles = (row_tiles * col_tiles) as u32;
    }
    p
}

/// Row groups of 8 of backward_broadcast (ROW_GROUPS): 4 unless C is at most 16 or 8.
fn broadcast_row_groups(c: usize) -> usize {
    match c {
        0..=8 => 1,
        9..=16 => 2,
        _ => 4,
    }
}

/// A dispatch of `SHADER` or, where the device has subgroups, of `SUBGROUP_SHADER`.
fn gram_dispatch(
    gpu: &Gpu,
    entry: &'static str,
    params: &Params,
    constants: &[(&'static str, f64)],
    reads: &[&wgpu::Buffer],
    writes: &[&wgpu::Buffer],
    workgroups: usize,
) -> Result<Dispatch> {
    let shader = if gpu.subgroup_broadcast {
        &SUBGROUP_SHADER
    } else {
        &SHADER
    };
    gpu.prepare(KernelCall {
        shader,
        entry,
        constants,
        params: bytes_of(params),
        reads,
        writes,
        workgroups: workgroups as u32,
    })
}

/// (splits, columns per split) of the forward reduction over `hw` for `workgroups` tiles.
fn split_reduction(workgroups: usize, hw: usize) -> (usize, usize) {
    if workgroups >= MIN_WORKGROUPS {
        return (1, hw);
    }
    let wanted = MIN_WORKGROUPS
        .div_ceil(workgroups)
        .min(hw / MIN_SPLIT_COLUMNS)
        .max(1);
    let k_split = hw.div_ceil(wanted).next_multiple_of(STEP);
    (hw.div_ceil(k_split), k_split)
}

/// [N, C, spatial...] -> [N, C, C].
#[derive(Debug)]
pub struct Gram;

/// dF of `Gram`; inputs (x, dG).
#[derive(Debug)]
pub struct GramBackward;

impl Op for Gram {
    fn name(&self) -> &'static str {
        "gram"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        let (n, c, _) = features(self.name(), inputs[0])?;
        Shape::new(&[n, c, c])
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let broadcast = ctx.gpu.subgroup_broadcast;
        let (mut params, entry) = if broadcast {
            (
                broadcast_params(&inputs[0].shape, true, 4),
                "forward_broadcast",
            )
        } else {
            (params(&inputs[0].shape, true), "forward")
        };
        let tiles = (params.batch * params.tiles) as usize;
        let (splits, k_split) = split_reduction(tiles, params.hw as usize);
        if splits == 1 {
            return Ok(vec![gram_dispatch(
                ctx.gpu,
                entry,
                &params,
                &[],
                &[&inputs[0].buffer],
                &[&output.buffer],
                tiles,
            )?]);
        }
        let partial = ctx.scratch("gram partial sums", splits as u64 * output.shape.bytes())?;
        let scale = params.scale;
        params.splits = splits as u32;
        params.k_split = k_split as u32;
        params.scale = 1.0;
        let partial_sums = gram_dispatch(
            ctx.gpu,
            entry,
            &params,
            &[],
            &[&inputs[0].buffer],
            &[&partial],
            splits * tiles,
        )?;
        params.scale = scale;
        let reduce = ctx.gpu.dispatch(
            &SHADER,
            "reduce_splits",
            bytes_of(&params),
            &[&partial],
            &[&output.buffer],
            workgroups_for(params.count as usize, REDUCE_WORKGROUP),
        )?;
        Ok(vec![partial_sums, reduce])
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        Ok(vec![Some(
            g.apply(GramBackward, &[ctx.inputs[0], ctx.grad])?,
        )])
    }

    fn flops(&self, inputs: &[&Shape], _: &Shape) -> u64 {
        let (n, c, hw) = features(self.name(), inputs[0]).unwrap_or_default();
        (2 * n * c * c * hw) as u64
    }
}

impl Op for GramBackward {
    fn name(&self) -> &'static str {
        "gram_backward"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        let (n, c, _) = features(self.name(), inputs[0])?;
        if inputs[1].dims() != [n, c, c] {
            return Err(Error::shape(
                self.name(),
                format!("dG must be [{n}, {c}, {c}] for features {}", inputs[0]),
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
        if !ctx.gpu.subgroup_broadcast {
            let params = params(&inputs[0].shape, false);
            return Ok(vec![gram_dispatch(
                ctx.gpu,
                "backward",
                &params,
                &[],
                &[&inputs[0].buffer, &inputs[1].buffer],
                &[&output.buffer],
                (params.batch * params.tiles) as usize,
            )?]);
        }
        let (_, c, _) = features(self.name(), &inputs[0].shape)?;
        let row_groups = broadcast_row_groups(c);
        let params = broadcast_params(&inputs[0].shape, false, row_groups);
        let symmetric = ctx.scratch("gram_backward dG + dG^T", inputs[1].shape.bytes())?;
        let sum = gram_dispatch(
            ctx.gpu,
            "symmetric_sum",
            &params,
            &[],
            &[&inputs[1].buffer],
            &[&symmetric],
            params.count.div_ceil(REDUCE_WORKGROUP as u32) as usize,
        )?;
        let product = gram_dispatch(
            ctx.gpu,
            "backward_broadcast",
            &params,
            &[("ROW_GROUPS", row_groups as f64)],
            &[&inputs[0].buffer, &symmetric],
            &[&output.buffer],
            (params.batch * params.tiles) as usize,
        )?;
        Ok(vec![sum, product])
    }

    fn flops(&self, inputs: &[&Shape], _: &Shape) -> u64 {
        let (n, c, hw) = features(self.name(), inputs[0]).unwrap_or_default();
        (2 * n * c * c * hw) as u64
    }
}

impl Graph {
    /// Gram matrix of features [N, C, spatial...]: [N, C, C], normalised by C * HW.
    pub fn gram(&mut self, x: NodeId) -> Result<NodeId> {
        self.apply(Gram, &[x])
    }
}
