//! Arithmetic with broadcasting (Add, Sub, Mul, Div, Sum, Neg) and activations. Arithmetic on
//! two constants is folded on the CPU; division needs a constant divisor (multiplication by its
//! reciprocal: the engine has no division).

use wgnn::error::{Error, Result};
use wgnn::ops::activation::Activation;

use super::fold::{self, Arith};
use super::node;
use crate::constant::{Constant, Data};
use crate::import::{Ctx, NodeView, Value};

/// Both inputs as constants when both are known.
fn constants(ctx: &Ctx<'_>, a: &str, b: &str) -> Result<Option<(Constant, Constant)>> {
    match (ctx.value(a)?, ctx.value(b)?) {
        (Value::Const(x), Value::Const(y)) => Ok(Some((x.clone(), y.clone()))),
        _ => Ok(None),
    }
}

fn binary(ctx: &mut Ctx<'_>, n: &NodeView<'_>, op: Arith) -> Result<Vec<Value>> {
    let (a, b) = (n.required(0)?, n.required(1)?);
    if let Some((x, y)) = constants(ctx, a, b)? {
        return Ok(vec![Value::Const(fold::binary(op, &x, &y)?)]);
    }
    let (x, y) = (ctx.tensor(a)?, ctx.tensor(b)?);
    node(match op {
        Arith::Add => ctx.graph.add(x, y)?,
        Arith::Sub => ctx.graph.sub(x, y)?,
        Arith::Mul => ctx.graph.mul(x, y)?,
        Arith::Div => unreachable!("div maps through its reciprocal"),
    })
}

pub fn add(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    binary(ctx, n, Arith::Add)
}

pub fn sub(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    binary(ctx, n, Arith::Sub)
}

pub fn mul(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    binary(ctx, n, Arith::Mul)
}

/// a / b for a constant b: a scale by 1 / b for a single value, else a product with the
/// reciprocals (a parameter named `<b>.reciprocal`).
pub fn div(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let (a, b) = (n.required(0)?, n.required(1)?);
    if let Some((x, y)) = constants(ctx, a, b)? {
        return Ok(vec![Value::Const(fold::binary(Arith::Div, &x, &y)?)]);
    }
    let divisor = match ctx.value(b)? {
        Value::Const(c) => c.clone(),
        Value::Node(_) => {
            return Err(Error::Invalid(format!(
            "the divisor `{b}` is computed by the graph; only division by a constant is supported"
        )))
        }
    };
    let x = ctx.tensor(a)?;
    let reciprocal: Vec<f32> = divisor.floats().iter().map(|v| 1.0 / v).collect();
    if reciprocal.len() == 1 {
        return node(ctx.graph.scale(x, reciprocal[0])?);
    }
    let c = Constant {
        dims: divisor.dims.clone(),
        data: Data::F32(reciprocal),
    };
    let r = ctx.constant_node(&format!("{b}.reciprocal"), &c)?;
    node(ctx.graph.mul(x, r)?)
}

/// The sum of one or more inputs, broadcasting.
pub fn sum(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let names: Vec<String> = n.proto.input.clone();
    let mut total = ctx.tensor(n.required(0)?)?;
    for name in names.iter().skip(1) {
        let x = ctx.tensor(name)?;
        total = ctx.graph.add(total, x)?;
    }
    if names.len() == 1 {
        total = ctx.graph.scale(total, 1.0)?;
    }
    node(total)
}

pub fn neg(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let x = n.required(0)?;
    if let Value::Const(c) = ctx.value(x)? {
        let negated = fold::binary(Arith::Mul, c, &minus_one(c))?;
        return Ok(vec![Value::Const(negated)]);
    }
    let x = ctx.tensor(x)?;
    node(ctx.graph.scale(x, -1.0)?)
}

fn minus_one(like: &Constant) -> Constant {
    match like.data {
        Data::F32(_) => Constant::f32(vec![], vec![-1.0]),
        Data::I64(_) => Constant::i64(vec![], vec![-1]),
    }
}

fn activation(ctx: &mut Ctx<'_>, n: &NodeView<'_>, f: Activation) -> Result<Vec<Value>> {
    let x = ctx.tensor(n.required(0)?)?;
    node(ctx.graph.activation(x, f)?)
}

pub fn relu(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    activation(ctx, n, Activation::Relu)
}

pub fn leaky_relu(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let alpha = n.float("alpha", 0.01)?;
    activation(ctx, n, Activation::LeakyRelu(alpha))
}

pub fn sigmoid(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    activation(ctx, n, Activation::Sigmoid)
}

pub fn tanh(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    activation(ctx, n, Activation::Tanh)
}

pub fn elu(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let alpha = n.float("alpha", 1.0)?;
    activation(ctx, n, Activation::Elu(alpha))
}

pub fn erf(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    activation(ctx, n, Activation::Erf)
}

/// `approximate` "none" (x Phi(x), with erf) or "tanh".
pub fn gelu(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let approximate = n.string("approximate")?;
    let f = match approximate.as_deref().unwrap_or("none") {
        "none" => Activation::Gelu,
        "tanh" => Activation::GeluTanh,
        other => {
            return Err(Error::Invalid(format!(
                "approximate = `{other}` is not supported; only `none` and `tanh`"
            )))
        }
    };
    activation(ctx, n, f)
}

pub fn hard_swish(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    activation(ctx, n, Activation::HardSwish)
}

/// clamp(alpha x + beta, 0, 1), ONNX's defaults alpha 0.2 and beta 0.5.
pub fn hard_sigmoid(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let (alpha, beta) = (n.float("alpha", 0.2)?, n.float("beta", 0.5)?);
    activation(ctx, n, Activation::HardSigmoid { alpha, beta })
}

/// min(max(x, min), max) with the bounds as optional inputs (opset 11 on), each a constant
/// single value; an absent bound is infinite. Where min > max every value becomes max, as ONNX
/// states.
pub fn clip(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let bound = |ctx: &Ctx<'_>, i: usize, what: &str, absent: f32| -> Result<f32> {
        let Some(name) = n.input(i) else {
            return Ok(absent);
        };
        let values = ctx.constant(name, what)?.floats();
        match values.as_slice() {
            [v] if !v.is_nan() => Ok(*v),
            [v] => Err(Error::Invalid(format!("{what} (`{name}`) is {v}"))),
            _ => Err(Error::Invalid(format!(
                "{what} (`{name}`) holds {} values; it must be a single value",
                values.len()
            ))),
        }
    };
    let min = bound(ctx, 1, "the minimum", f32::NEG_INFINITY)?;
    let max = bound(ctx, 2, "the maximum", f32::INFINITY)?;
    let min = min.min(max);
    activation(ctx, n, Activation::Clamp { min, max })
}
