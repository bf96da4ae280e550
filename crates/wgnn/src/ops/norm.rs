//! Row-wise L2 normalisation of [N, D]: y = x / sqrt(sum x^2 + eps), `norm.wgsl`.
//! Backward: dx = (dy - y * dot(y, dy)) / norm, one kernel reading x and dy.

use crate::error::{Error, Result};
use crate::gpu::{bytes_of, shader_struct, wgsl_file, Dispatch, Shader, WORKGROUP_INDEX};
use crate::graph::{BackwardCtx, EncodeCtx, Graph, NodeId, Op, SpatialMap};
use crate::tensor::{Shape, Tensor};

pub static SHADER: Shader = Shader {
    name: "norm",
    file: wgsl_file!("ops/norm.wgsl", [&WORKGROUP_INDEX]),
    subgroups: false,
    structs: &[("Params", Params::LAYOUT)],
};

/// Added to the sum of squares inside the square root: an all-zero row maps to zeros.
pub const L2_EPS: f32 = 1e-12;

shader_struct! {
    struct Params {
        rows: u32,
        cols: u32,
        eps: f32,
        _pad: u32,
    }
}

fn params(shape: &Shape) -> Params {
    Params {
        rows: shape.dims()[0] as u32,
        cols: shape.dims()[1] as u32,
        eps: L2_EPS,
        _pad: 0,
    }
}

fn check_matrix(op: &str, shape: &Shape) -> Result<()> {
    if shape.rank() != 2 {
        return Err(Error::shape(
            op,
            format!("input must be a matrix [N, D], not {shape}"),
        ));
    }
    Ok(())
}

/// y = x / sqrt(sum x^2 + eps) per row of [N, D].
#[derive(Debug)]
pub struct L2Normalize;

/// dx of `L2Normalize`; inputs (x, dy).
#[derive(Debug)]
pub struct L2NormalizeBackward;

impl Op for L2Normalize {
    fn name(&self) -> &'static str {
        "l2_normalize"
    }

    fn spatial_map(&self, _inputs: &[&Shape]) -> Option<SpatialMap> {
        Some(SpatialMap::Global)
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        check_matrix(self.name(), inputs[0])?;
        Ok(inputs[0].clone())
    }

    fn encode(
        &self,
        ctx: &mut EncodeCtx<'_>,
        inputs: &[&Tensor],
        output: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let params = params(&output.shape);
        Ok(vec![ctx.gpu.dispatch(
            &SHADER,
            "forward",
            bytes_of(&params),
            &[&inputs[0].buffer],
            &[&output.buffer],
            params.rows,
        )?])
    }

    fn backward(&self, g: &mut Graph, ctx: &BackwardCtx<'_>) -> Result<Vec<Option<NodeId>>> {
        Ok(vec![Some(
            g.apply(L2NormalizeBackward, &[ctx.inputs[0], ctx.grad])?,
        )])
    }

    fn flops(&self, _: &[&Shape], output: &Shape) -> u64 {
        3 * output.numel() as u64
    }
}

impl Op for L2NormalizeBackward {
    fn name(&self) -> &'static str {
        "l2_normalize_backward"
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        check_matrix(self.name(), inputs[0])?;
        if inputs[0] != inputs[1] {
            return Err(Error::shape(
                self.name(),
                "x and dy must have the same shape",
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
        let params = params(&output.shape);
        Ok(vec![ctx.gpu.dispatch(
            &SHADER,
            "backward",
            bytes_of(&params),
            &[&inputs[0].buffer, &inputs[1].buffer],
            &[&output.buffer],
            params.rows,
        )?])
    }

    fn flops(&self, _: &[&Shape], output: &Shape) -> u64 {
        6 * output.numel() as u64
    }
}

impl Graph {
    /// Each row of [N, D] divided by its L2 norm (eps = `L2_EPS` inside the square root).
    pub fn l2_normalize(&mut self, x: NodeId) -> Result<NodeId> {
        self.apply(L2Normalize, &[x])
    }
}
