//! Shapes and plumbing: Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Concat, Slice, Split,
//! Identity, Dropout (inference), Constant, Cast, and the shape arithmetic folded on the CPU
//! (Shape, Gather; Concat, Slice, Transpose and the rest when their inputs are constants).

use wgnn::error::{Error, Result};
use wgnn::ops::view::SliceAxis;
use wgnn::tensor::Shape;

use super::{axis, fold, node};
use crate::constant::{Constant, Data};
use crate::import::{Ctx, NodeView, Value};
use crate::proto::data_type;

/// `name`'s values in `dims` (same count): a reshaped constant, or a reshape node.
fn reshaped(ctx: &mut Ctx<'_>, name: &str, dims: Vec<usize>) -> Result<Value> {
    if let Value::Const(c) = ctx.value(name)? {
        let mut c = c.clone();
        c.dims = dims;
        return Ok(Value::Const(c));
    }
    let x = ctx.tensor(name)?;
    let engine_dims = if dims.is_empty() { vec![1] } else { dims };
    Ok(Value::Node(
        ctx.graph.reshape(x, Shape::new(&engine_dims)?)?,
    ))
}

/// Axes from the attribute (older opsets) or the second input (newer ones).
fn axes_of(ctx: &Ctx<'_>, n: &NodeView<'_>) -> Result<Option<Vec<i64>>> {
    if let Some(a) = n.ints("axes")? {
        return Ok(Some(a));
    }
    match n.input(1) {
        Some(name) => Ok(Some(
            ctx.constant(name, "the axes")?.ints("the axes")?.to_vec(),
        )),
        None => Ok(None),
    }
}

pub fn reshape(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let data = n.required(0)?;
    let dims = ctx.dims(data)?;
    let target = ctx
        .constant(n.required(1)?, "the shape")?
        .ints("the shape")?
        .to_vec();
    let allow_zero = n.int("allowzero", 0)? != 0;
    let total: usize = dims.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (k, &t) in target.iter().enumerate() {
        out.push(match t {
            -1 if infer.is_none() => {
                infer = Some(k);
                1
            }
            0 if allow_zero => {
                return Err(Error::Invalid(
                    "a zero dim with allowzero = 1 makes an empty tensor; not supported"
                        .to_string(),
                ))
            }
            0 if k < dims.len() => dims[k],
            t if t >= 1 => t as usize,
            _ => {
                return Err(Error::Invalid(format!(
                    "shape {target:?} is not valid for input dims {dims:?}"
                )))
            }
        });
    }
    let known: usize = out.iter().product();
    if let Some(k) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(Error::Invalid(format!(
                "shape {target:?} does not fit input dims {dims:?}"
            )));
        }
        out[k] = total / known;
    }
    if out.iter().product::<usize>() != total {
        return Err(Error::Invalid(format!(
            "shape {target:?} does not fit input dims {dims:?} ({total} values)"
        )));
    }
    Ok(vec![reshaped(ctx, data, out)?])
}

pub fn flatten(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let data = n.required(0)?;
    let dims = ctx.dims(data)?;
    let a = n.int("axis", 1)?;
    let split = if a == dims.len() as i64 {
        dims.len()
    } else {
        axis(a, dims.len())?
    };
    let outer = dims[..split].iter().product();
    let inner = dims[split..].iter().product();
    Ok(vec![reshaped(ctx, data, vec![outer, inner])?])
}

pub fn squeeze(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let data = n.required(0)?;
    let dims = ctx.dims(data)?;
    let axes: Vec<usize> = match axes_of(ctx, n)? {
        Some(a) => a
            .iter()
            .map(|&v| axis(v, dims.len()))
            .collect::<Result<_>>()?,
        None => (0..dims.len()).filter(|&k| dims[k] == 1).collect(),
    };
    if let Some(&k) = axes.iter().find(|&&k| dims[k] != 1) {
        return Err(Error::Invalid(format!(
            "axis {k} of dims {dims:?} is not 1 and cannot be squeezed"
        )));
    }
    let out = (0..dims.len())
        .filter(|k| !axes.contains(k))
        .map(|k| dims[k])
        .collect();
    Ok(vec![reshaped(ctx, data, out)?])
}

pub fn unsqueeze(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let data = n.required(0)?;
    let dims = ctx.dims(data)?;
    let listed =
        axes_of(ctx, n)?.ok_or_else(|| Error::Invalid("the axes are required".to_string()))?;
    let rank = dims.len() + listed.len();
    let mut axes: Vec<usize> = listed
        .iter()
        .map(|&v| axis(v, rank))
        .collect::<Result<_>>()?;
    axes.sort_unstable();
    let mut rest = dims.iter();
    let out = (0..rank)
        .map(|k| {
            if axes.contains(&k) {
                1
            } else {
                *rest.next().unwrap_or(&1)
            }
        })
        .collect();
    Ok(vec![reshaped(ctx, data, out)?])
}

/// The dims of the input as an INT64 constant, `start..end` of them.
pub fn shape(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let dims = ctx.dims(n.required(0)?)?;
    let rank = dims.len() as i64;
    let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
    let (start, end) = (clamp(n.int("start", 0)?), clamp(n.int("end", rank)?));
    let picked: Vec<i64> = dims[start..end.max(start)]
        .iter()
        .map(|&d| d as i64)
        .collect();
    Ok(vec![Value::Const(Constant::i64(
        vec![picked.len()],
        picked,
    ))])
}

/// Gather on constants (indexing into a shape); on a computed tensor it is not supported.
pub fn gather(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let data = ctx.constant(n.required(0)?, "the data")?.clone();
    let indices = ctx.constant(n.required(1)?, "the indices")?;
    let a = axis(n.int("axis", 0)?, data.dims.len())?;
    let len = data.dims[a] as i64;
    let picked = indices
        .ints("the indices")?
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + len } else { i };
            if (0..len).contains(&j) {
                Ok(j as usize)
            } else {
                Err(Error::Invalid(format!(
                    "index {i} is out of range for an axis of {len}"
                )))
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(vec![Value::Const(fold::take(
        &data,
        &picked,
        &indices.dims.clone(),
        a,
    ))])
}

/// Along any axis: on the GPU, or folded when every input is a constant.
pub fn concat(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let names: Vec<&str> = n.proto.input.iter().map(String::as_str).collect();
    if names.is_empty() {
        return Err(Error::Invalid("no inputs".to_string()));
    }
    let rank = ctx.dims(names[0])?.len();
    let a = axis(
        n.int("axis", i64::MIN).and_then(|v| {
            if v == i64::MIN {
                Err(Error::Invalid("attribute `axis` is required".to_string()))
            } else {
                Ok(v)
            }
        })?,
        rank,
    )?;
    let constants: Vec<&Constant> = names
        .iter()
        .filter_map(|name| match ctx.value(name) {
            Ok(Value::Const(c)) => Some(c),
            _ => None,
        })
        .collect();
    if constants.len() == names.len() {
        return Ok(vec![Value::Const(fold::concat(&constants, a)?)]);
    }
    let ids = names
        .iter()
        .map(|name| ctx.tensor(name))
        .collect::<Result<Vec<_>>>()?;
    node(ctx.graph.concat(&ids, a as isize)?)
}

/// One axis of a slice: (start, step, count) in ONNX's clamping rules. A step longer than the
/// axis picks one element, so it comes back as the axis length (same sign): the same slice, with
/// no arithmetic near the ends of i64.
fn slice_range(start: i64, end: i64, step: i64, len: usize) -> Result<(usize, i64, usize)> {
    if step == 0 {
        return Err(Error::Invalid("a step of 0".to_string()));
    }
    let len = len as i64;
    let step = step.clamp(-len, len);
    let norm = |v: i64| if v < 0 { v.saturating_add(len) } else { v };
    let (start, end) = if step > 0 {
        (norm(start).clamp(0, len), norm(end).clamp(0, len))
    } else {
        (norm(start).clamp(-1, len - 1), norm(end).clamp(-1, len - 1))
    };
    let count = if step > 0 {
        (end - start + step - 1).div_euclid(step).max(0)
    } else {
        (start - end - step - 1).div_euclid(-step).max(0)
    };
    if count == 0 {
        return Err(Error::Invalid(
            "the slice is empty; empty tensors are not supported".to_string(),
        ));
    }
    Ok((start.max(0) as usize, step, count as usize))
}

/// Along any axes with any steps, on the GPU or folded for a constant.
pub fn slice(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let data = n.required(0)?;
    let dims = ctx.dims(data)?;
    let ints = |ctx: &Ctx<'_>, i: usize, what: &str| -> Result<Option<Vec<i64>>> {
        match n.input(i) {
            Some(name) => Ok(Some(ctx.constant(name, what)?.ints(what)?.to_vec())),
            None => Ok(None),
        }
    };
    let starts = ints(ctx, 1, "the starts")?
        .ok_or_else(|| Error::Invalid("the starts are required".to_string()))?;
    let ends = ints(ctx, 2, "the ends")?
        .ok_or_else(|| Error::Invalid("the ends are required".to_string()))?;
    let axes = ints(ctx, 3, "the axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = ints(ctx, 4, "the steps")?.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(Error::Invalid(format!(
            "starts {starts:?}, ends {ends:?}, axes {axes:?} and steps {steps:?} differ in length"
        )));
    }
    let mut ranges: Vec<(usize, i64, usize)> = dims.iter().map(|&d| (0, 1, d)).collect();
    let mut listed = Vec::with_capacity(starts.len());
    for k in 0..starts.len() {
        let a = axis(axes[k], dims.len())?;
        if listed.iter().any(|s: &SliceAxis| s.axis == a as isize) {
            return Err(Error::Invalid(format!("axis {a} is listed twice")));
        }
        ranges[a] = slice_range(starts[k], ends[k], steps[k], dims[a])?;
        listed.push(SliceAxis::new(a as isize, starts[k], ends[k], ranges[a].1));
    }
    if let Value::Const(c) = ctx.value(data)? {
        return Ok(vec![Value::Const(fold::slice(c, &ranges))]);
    }
    let x = ctx.tensor(data)?;
    node(ctx.graph.slice(x, &listed)?)
}

/// Along any axis, on the GPU or folded for a constant; the sizes come from the `split` input
/// or attribute, or `num_outputs` (or the node's output count) equal parts.
pub fn split(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let data = n.required(0)?;
    let dims = ctx.dims(data)?;
    let a = axis(n.int("axis", 0)?, dims.len())?;
    let sizes: Vec<i64> = match (n.ints("split")?, n.input(1)) {
        (Some(s), _) => s,
        (None, Some(name)) => ctx.constant(name, "the split")?.ints("the split")?.to_vec(),
        (None, None) => {
            let parts = n.int("num_outputs", n.output_count() as i64)?.max(1) as usize;
            let part = dims[a].div_ceil(parts);
            (0..parts)
                .map(|k| (dims[a].min(part * (k + 1)) - (part * k).min(dims[a])) as i64)
                .collect()
        }
    };
    if sizes.iter().any(|&s| s < 1) || sizes.iter().sum::<i64>() != dims[a] as i64 {
        return Err(Error::Invalid(format!(
            "split sizes {sizes:?} must be positive and add up to axis {a}'s {}",
            dims[a]
        )));
    }
    let constant = match ctx.value(data)? {
        Value::Const(c) => Some(c.clone()),
        Value::Node(_) => None,
    };
    let mut outputs = Vec::with_capacity(sizes.len());
    let mut start = 0usize;
    for &size in &sizes {
        let size = size as usize;
        outputs.push(match &constant {
            Some(c) => {
                let mut ranges: Vec<(usize, i64, usize)> =
                    dims.iter().map(|&d| (0, 1, d)).collect();
                ranges[a] = (start, 1, size);
                Value::Const(fold::slice(c, &ranges))
            }
            None => {
                let x = ctx.tensor(data)?;
                Value::Node(ctx.graph.slice_range(x, a, start, size)?)
            }
        });
        start += size;
    }
    Ok(outputs)
}

pub fn identity(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    Ok(vec![ctx.value(n.required(0)?)?.clone()])
}

/// Inference: the identity. A `training_mode` input must be a constant false; the mask output
/// is refused.
pub fn dropout(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    if let Some(name) = n.input(2) {
        let training = ctx.constant(name, "training_mode")?;
        if training.floats().iter().any(|&v| v != 0.0) {
            return Err(Error::Invalid(
                "training_mode = true is not supported; only inference (the identity)".to_string(),
            ));
        }
    }
    Ok(vec![ctx.value(n.required(0)?)?.clone()])
}

pub fn constant(_ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let c = if let Some(t) = n.tensor("value")? {
        t
    } else if n.has("value_float") {
        Constant::f32(vec![], vec![n.float("value_float", 0.0)?])
    } else if let Some(v) = n.floats("value_floats")? {
        Constant::f32(vec![v.len()], v)
    } else if n.has("value_int") {
        Constant::i64(vec![], vec![n.int("value_int", 0)?])
    } else if let Some(v) = n.ints("value_ints")? {
        Constant::i64(vec![v.len()], v)
    } else {
        return Err(Error::Invalid("no value attribute".to_string()));
    };
    Ok(vec![Value::Const(c)])
}

/// Between FLOAT, INT64 and INT32 on constants; a computed tensor only to its own type: FLOAT,
/// or INT64 for MaxPool's indices.
pub fn cast(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let to = n.int("to", 0)? as i32;
    let x = n.required(0)?;
    if ctx.is_indices(x)? {
        return match to {
            data_type::INT64 => node(ctx.indices(x, "the input")?),
            other => Err(Error::Invalid(format!(
                "casting MaxPool's indices (`{x}`) to {} is not supported; only to INT64",
                data_type::name(other)
            ))),
        };
    }
    match ctx.value(x)?.clone() {
        Value::Node(id) if to == data_type::FLOAT => node(id),
        Value::Node(_) => Err(Error::Invalid(format!(
            "casting a computed tensor to {} is not supported; only to FLOAT",
            data_type::name(to)
        ))),
        Value::Const(c) => {
            let data = match to {
                data_type::FLOAT => Data::F32(c.floats()),
                data_type::INT64 | data_type::INT32 => match &c.data {
                    Data::I64(v) => Data::I64(v.clone()),
                    Data::F32(v) => Data::I64(v.iter().map(|&f| f as i64).collect()),
                },
                other => {
                    return Err(Error::Invalid(format!(
                        "casting to {} is not supported",
                        data_type::name(other)
                    )))
                }
            };
            Ok(vec![Value::Const(Constant { dims: c.dims, data })])
        }
    }
}

/// The axes permuted by `perm` (default: reversed), on the GPU or folded for a constant.
pub fn transpose(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let data = n.required(0)?;
    let rank = ctx.dims(data)?.len();
    let perm: Vec<usize> = match n.ints("perm")? {
        Some(p) => {
            let resolved: Vec<usize> = p
                .iter()
                .map(|&v| usize::try_from(v).ok().filter(|&a| a < rank))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    Error::Invalid(format!("perm {p:?} is not a permutation of 0..{rank}"))
                })?;
            let mut sorted = resolved.clone();
            sorted.sort_unstable();
            if sorted != (0..rank).collect::<Vec<_>>() {
                return Err(Error::Invalid(format!(
                    "perm {p:?} is not a permutation of 0..{rank}"
                )));
            }
            resolved
        }
        None => (0..rank).rev().collect(),
    };
    if let Value::Const(c) = ctx.value(data)? {
        return Ok(vec![Value::Const(fold::transpose(c, &perm))]);
    }
    let x = ctx.tensor(data)?;
    node(ctx.graph.transpose(x, &perm)?)
}

#[cfg(test)]
mod tests {
    use super::slice_range;

    #[test]
    fn slice_ranges_follow_onnx_clamping_even_at_the_ends_of_i64() {
        assert_eq!(slice_range(-2, 1000, 1, 4).unwrap(), (2, 1, 2));
        assert_eq!(slice_range(-1, -1000, -2, 5).unwrap(), (4, -2, 3));
        assert_eq!(slice_range(0, i64::MAX, i64::MAX, 5).unwrap(), (0, 5, 1));
        assert_eq!(
            slice_range(i64::MAX, i64::MIN, i64::MIN, 5).unwrap(),
            (4, -5, 1)
        );
        assert_eq!(slice_range(i64::MIN, i64::MAX, 2, 5).unwrap(), (0, 2, 3));
        assert!(slice_range(3, 3, 1, 4)
            .unwrap_err()
            .to_string()
            .contains("empty"));
        assert!(slice_range(0, 4, 0, 4)
            .unwrap_err()
            .to_string()
            .contains("step of 0"));
    }
}
