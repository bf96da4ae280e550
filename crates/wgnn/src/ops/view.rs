//! Views of a tensor's elements in another order or shape: transposes by any permutation,
//! slices (start, end, step per axis, ONNX `Slice` semantics), and the reshapes `flatten` and
//! `reshape_inferred` (ONNX `Flatten` and `Reshape`'s -1 and 0). `view.wgsl`.
//!
//! Every node owns its buffer, so a view is a copy: `gather_strided` reads the input through
//! strides (a transpose permutes them, a slice scales them by its steps and starts at its first
//! element), and a slice of one axis with step 1 takes concat's contiguous copy instead. The
//! backward of a transpose is the transpose by the inverse permutation; that of a slice is
//! `slice_backward`, a gather over the input (zeros off the slice), so nothing is scattered.
//! Reshapes are `Reshape` nodes (`ops::elementwise`) with their sizes worked out here.

use crate::error::{Error, Result};
use crate::gpu::{
    bytes_of, shader_struct, wgsl_file, workgroups_for, Dispatch, Shader, WORKGROUP_INDEX,
};
use crate::graph::{BackwardCtx, EncodeCtx, Graph, NodeId, Op, SpatialMap};
use crate::ops::concat::{resolve_axis, slice_axis};
use crate::tensor::{Shape, Tensor, MAX_RANK};

pub static SHADER: Shader = Shader {
    name: "view",
    file: wgsl_file!("ops/view.wgsl", [&WORKGROUP_INDEX]),
    subgroups: false,
    structs: &[("Params", Params::LAYOUT)],
};
const WORKGROUP: usize = 256;
const SLOTS: usize = 8;

shader_struct! {
    #[derive(Default)]
    struct Params {
        count: u32,
        rank: u32,
        offset: u32,
        pad: u32,
        dims: [u32; SLOTS],
        strides: [i32; SLOTS],
        starts: [i32; SLOTS],
        steps: [i32; SLOTS],
        out_dims: [u32; SLOTS],
    }
}

fn slots<T: Copy + Default>(values: impl IntoIterator<Item = T>) -> [T; SLOTS] {
    let mut out = [T::default(); SLOTS];
    for (k, v) in values.into_iter().enumerate() {
        out[k] = v;
    }
    out
}

/// Row-major strides (in elements) of `dims`.
fn strides_of(dims: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; dims.len()];
    for k in (0..dims.len().saturating_sub(1)).rev() {
        strides[k] = strides[k + 1] * dims[k + 1];
    }
    strides
}

/// output[i] = input[offset + sum_k idx_k(i) * strides[k]] over the output's multi-indices.
fn gather_strided(
    ctx: &mut EncodeCtx<'_>,
    input: &Tensor,
    output: &Tensor,
    offset: usize,
    strides: &[i64],
) -> Result<Dispatch> {
    let n = output.shape.numel();
    let params = Params {
        count: n as u32,
        rank: output.shape.rank() as u32,
        offset: offset as u32,
        dims: slots(output.shape.dims().iter().map(|&d| d as u32)),
        strides: slots(strides.iter().map(|&s| s as i32)),
        ..Default::default()
    };
    ctx.gpu.dispatch(
        &SHADER,
        "gather_strided",
        bytes_of(&params),
        &[&input.buffer],
        &[&output.buffer],
        workgroups_for(n, WORKGROUP),
    )
}

/// y = x with its axes permuted: y's axis k is x's axis `perm[k]` (numpy `transpose`, ONNX
/// `Transpose`, torch `permute`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transpose {
    pub perm: Vec<usize>,
}

impl Transpose {
    fn check(&self, shape: &Shape) -> Result<()> {
        let rank = shape.rank();
        let mut seen = vec![false; rank];
        let is_permutation = self.perm.len() == rank
            && self
                .perm
                .iter()
                .all(|&a| a < rank && !std::mem::replace(&mut seen[a], true));
        if !is_permutation {
            return Err(Error::shape(
                self.name(),
                format!(
                    "perm {:?} is not a permutation of the axes 0..{rank} of {shape}",
                    self.perm
                ),
            ));
        }
        Ok(())
    }

    /// The permutation that undoes this one.
    pub fn inverse(&self) -> Transpose {
        let mut perm = vec![0; self.perm.len()];
        for (k, &a) in self.perm.iter().enumerate() {
            perm[a] = k;
        }
        Transpose { perm }
    }
}

impl Op for Transpose {
    fn name(&self) -> &'static str {
        "transpose"
    }

    fn spatial_map(&self, _inputs: &[&Shape]) -> Option<SpatialMap> {
        Some(SpatialMap::Global)
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        self.check(inputs[0])?;
        let dims: Vec<usize> = self.perm.iter().map(|&a| inputs[0].dims()[a]).collect();
        Shape::new(&dims)
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        self.check(&inputs[0].shape)?;
        let strides = strides_of(inputs[0].shape.dims());
        let permuted: Vec<i64> = self.perm.iter().map(|&a| strides[a] as i64).collect();
        Ok(vec![gather_strided(ctx, inputs[0], output, 0, &permuted)?])
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        Ok(vec![Some(g.apply(self.inverse(), &[ctx.grad])?)])
    }

    fn flops(&self, _: &[&Shape], _: &Shape) -> u64 {
        0
    }
}

/// The slice of one axis as ONNX `Slice` states it: indices start, start + step, ... up to but
/// excluding end. Negative start and end count from the end of the axis, then both are clamped
/// (to [0, dim] for step > 0, to [-1, dim - 1] for step < 0), so ends past the axis (i64::MAX,
/// i64::MIN) mean "to the end".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceAxis {
    /// Negative counts from the last axis.
    pub axis: isize,
    pub start: i64,
    pub end: i64,
    /// Non-zero; negative walks the axis backwards.
    pub step: i64,
}

impl SliceAxis {
    pub fn new(axis: isize, start: i64, end: i64, step: i64) -> Self {
        Self {
            axis,
            start,
            end,
            step,
        }
    }
}

/// One axis of a slice once resolved against a shape: the first index, the step and the count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AxisRange {
    start: i64,
    step: i64,
    len: usize,
}

/// The elements of x on the slices of its axes (axes not named are kept whole).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    pub axes: Vec<SliceAxis>,
}

impl Slice {
    /// One range per axis of `shape`, or an error naming the rule broken.
    fn ranges(&self, shape: &Shape) -> Result<Vec<AxisRange>> {
        let name = self.name();
        let mut ranges: Vec<AxisRange> = shape
            .dims()
            .iter()
            .map(|&d| AxisRange {
                start: 0,
                step: 1,
                len: d,
            })
            .collect();
        let mut named = vec![false; shape.rank()];
        for s in &self.axes {
            let axis = resolve_axis(name, s.axis, shape.rank())?;
            if std::mem::replace(&mut named[axis], true) {
                return Err(Error::shape(name, format!("axis {axis} is sliced twice")));
            }
            if s.step == 0 {
                return Err(Error::shape(
                    name,
                    format!("the step of axis {axis} is 0 (it must be non-zero)"),
                ));
            }
            let dim = shape.dims()[axis] as i64;
            let from_end = |v: i64| if v < 0 { v.saturating_add(dim) } else { v };
            let (start, end) = (from_end(s.start), from_end(s.end));
            let (start, end) = if s.step > 0 {
                (start.clamp(0, dim), end.clamp(0, dim))
            } else {
                (start.clamp(0, dim - 1), end.clamp(-1, dim - 1))
            };
            // ceil((end - start) / step), at least 0.
            let span = if s.step > 0 { end - start } else { start - end };
            let len = (span.max(0) + s.step.abs() - 1) / s.step.abs();
            if len == 0 {
                return Err(Error::shape(
                    name,
                    format!(
                        "the slice {}:{}:{} of axis {axis} (size {dim}) is empty: tensors \
                         have no zero dims",
                        s.start, s.end, s.step
                    ),
                ));
            }
            ranges[axis] = AxisRange {
                start,
                step: s.step,
                len: len as usize,
            };
        }
        Ok(ranges)
    }
}

impl Op for Slice {
    fn name(&self) -> &'static str {
        "slice"
    }

    fn spatial_map(&self, inputs: &[&Shape]) -> Option<SpatialMap> {
        // Slicing the batch or the channels keeps positions; a sliced spatial axis moves them,
        // which a receptive field does not describe.
        let ranges = self.ranges(inputs[0]).ok()?;
        let spatial_whole = ranges
            .iter()
            .zip(inputs[0].dims())
            .skip(2)
            .all(|(r, &d)| r.start == 0 && r.step == 1 && r.len == d);
        spatial_whole.then_some(SpatialMap::Pointwise)
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        let dims: Vec<usize> = self.ranges(inputs[0])?.iter().map(|r| r.len).collect();
        Shape::new(&dims)
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let input = inputs[0];
        let ranges = self.ranges(&input.shape)?;
        let cut: Vec<usize> = (0..ranges.len())
            .filter(|&k| ranges[k].len != input.shape.dims()[k])
            .collect();
        // A contiguous range of one axis (or the whole tensor): concat's copy, vec4 where it can.
        if cut.len() <= 1 && ranges.iter().all(|r| r.step == 1) {
            let axis = cut.first().copied().unwrap_or(0);
            let start = ranges[axis].start as usize;
            return Ok(vec![slice_axis(ctx, input, output, axis, start)?]);
        }
        let strides = strides_of(input.shape.dims());
        let offset: i64 = ranges
            .iter()
            .zip(&strides)
            .map(|(r, &s)| r.start * s as i64)
            .sum();
        let steps: Vec<i64> = ranges
            .iter()
            .zip(&strides)
            .map(|(r, &s)| r.step * s as i64)
            .collect();
        Ok(vec![gather_strided(
            ctx,
            input,
            output,
            offset as usize,
            &steps,
        )?])
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        let input = g.shape(ctx.inputs[0]).clone();
        let ranges = self.ranges(&input)?;
        Ok(vec![Some(
            g.apply(SliceBackward { ranges, input }, &[ctx.grad])?,
        )])
    }

    fn flops(&self, _: &[&Shape], _: &Shape) -> u64 {
        0
    }
}

/// The gradient of a slice: dy on the slice's elements of `input`'s shape, zeros elsewhere.
#[derive(Debug)]
struct SliceBackward {
    ranges: Vec<AxisRange>,
    input: Shape,
}

impl Op for SliceBackward {
    fn name(&self) -> &'static str {
        "slice_backward"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        let lens: Vec<usize> = self.ranges.iter().map(|r| r.len).collect();
        if inputs[0].dims() != lens {
            return Err(Error::shape(
                self.name(),
                format!("the gradient must have the slice's shape {lens:?}"),
            ));
        }
        Ok(self.input.clone())
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let n = output.shape.numel();
        let params = Params {
            count: n as u32,
            rank: self.input.rank() as u32,
            dims: slots(self.input.dims().iter().map(|&d| d as u32)),
            starts: slots(self.ranges.iter().map(|r| r.start as i32)),
            steps: slots(self.ranges.iter().map(|r| r.step as i32)),
            out_dims: slots(self.ranges.iter().map(|r| r.len as u32)),
            ..Default::default()
        };
        Ok(vec![ctx.gpu.dispatch(
            &SHADER,
            "slice_backward",
            bytes_of(&params),
            &[&inputs[0].buffer],
            &[&output.buffer],
            workgroups_for(n, WORKGROUP),
        )?])
    }

    fn flops(&self, _: &[&Shape], _: &Shape) -> u64 {
        0
    }
}

impl Graph {
    /// x with its axes permuted: the output's axis k is x's axis `perm[k]`.
    pub fn transpose(&mut self, x: NodeId, perm: &[usize]) -> Result<NodeId> {
        self.apply(
            Transpose {
                perm: perm.to_vec(),
            },
            &[x],
        )
    }

    /// The slice of x along each of `axes` (ONNX `Slice`; see `SliceAxis`).
    pub fn slice(&mut self, x: NodeId, axes: &[SliceAxis]) -> Result<NodeId> {
        self.apply(
            Slice {
                axes: axes.to_vec(),
            },
            &[x],
        )
    }

    /// Indices start..start + len of `axis` of x; unlike `slice`, a range that does not lie
    /// inside the axis is an error rather than clamped.
    pub fn slice_range(
        &mut self,
        x: NodeId,
        axis: usize,
        start: usize,
        len: usize,
    ) -> Result<NodeId> {
        let shape = self.shape(x);
        if axis >= shape.rank() || len == 0 || start + len > shape.dims()[axis] {
            return Err(Error::shape(
                "slice",
                format!(
                    "indices {start}..{} of axis {axis} are not a non-empty range of {shape}",
                    start + len
                ),
            ));
        }
        let range = SliceAxis::new(axis as isize, start as i64, (start + len) as i64, 1);
        self.slice(x, &[range])
    }

    /// x as a matrix (ONNX `Flatten`): the dims before `axis` make the rows, the rest the
    /// columns; `axis` is in -rank..=rank (0 gives one row).
    pub fn flatten(&mut self, x: NodeId, axis: isize) -> Result<NodeId> {
        let dims = self.shape(x).dims().to_vec();
        let rank = dims.len() as isize;
        if axis < -rank || axis > rank {
            return Err(Error::shape(
                "flatten",
                format!(
                    "axis {axis} is out of range for rank {rank} (valid: {} to {rank})",
                    -rank
                ),
            ));
        }
        let axis = if axis < 0 { axis + rank } else { axis } as usize;
        let rows = dims[..axis].iter().product::<usize>();
        let cols = dims[axis..].iter().product::<usize>();
        self.reshape(x, Shape::new(&[rows, cols])?)
    }

    /// x reshaped as ONNX `Reshape` reads `shape`: 0 copies x's dim at the same index, and one
    /// -1 takes whatever size makes the element counts equal.
    pub fn reshape_inferred(&mut self, x: NodeId, shape: &[i64]) -> Result<NodeId> {
        let input = self.shape(x).clone();
        let bad = |why: String| Err(Error::shape("reshape", format!("shape {shape:?}: {why}")));
        if shape.len() > MAX_RANK {
            return bad(format!("rank {} is above {MAX_RANK}", shape.len()));
        }
        let mut dims = Vec::with_capacity(shape.len());
        let mut inferred = None;
        for (k, &d) in shape.iter().enumerate() {
            match d {
                0 if k < input.rank() => dims.push(input.dims()[k]),
                0 => return bad(format!("0 at index {k} copies no dim of {input}")),
                -1 if inferred.is_none() => {
                    inferred = Some(k);
                    dims.push(1);
                }
                -1 => return bad("at most one dim may be -1".into()),
                d if d < 0 => return bad(format!("{d} is neither a size, 0 nor -1")),
                d => dims.push(d as usize),
            }
        }
        let known: usize = dims.iter().product();
        if let Some(k) = inferred {
            if known == 0 || !input.numel().is_multiple_of(known) {
                return bad(format!(
                    "no size for the -1 makes {} elements of {input}",
                    input.numel()
                ));
            }
            dims[k] = input.numel() / known;
        }
        self.reshape(x, Shape::new(&dims)?)
    }
}
