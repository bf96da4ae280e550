//! CPU evaluation of operators whose inputs are all known at import time (shape arithmetic,
//! and constants reshaped or sliced before they become parameters). Plain row-major loops.

use wgnn::error::{Error, Result};

use crate::constant::{Constant, Data};

/// Row-major strides of `dims`.
fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for k in (0..dims.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1] * dims[k + 1];
    }
    s
}

/// The row-major multi-index of flat position `flat` in `dims`.
fn unravel(mut flat: usize, dims: &[usize]) -> Vec<usize> {
    let mut index = vec![0; dims.len()];
    for k in (0..dims.len()).rev() {
        index[k] = flat % dims[k];
        flat /= dims[k];
    }
    index
}

#[derive(Clone, Copy, Debug)]
pub enum Arith {
    Add,
    Sub,
    Mul,
    Div,
}

/// a (op) b with numpy broadcasting; both integer or both float.
pub fn binary(op: Arith, a: &Constant, b: &Constant) -> Result<Constant> {
    let rank = a.dims.len().max(b.dims.len());
    let pad = |d: &[usize]| {
        let mut v = vec![1; rank - d.len()];
        v.extend_from_slice(d);
        v
    };
    let (da, db) = (pad(&a.dims), pad(&b.dims));
    let mut dims = Vec::with_capacity(rank);
    for k in 0..rank {
        dims.push(match (da[k], db[k]) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(Error::Invalid(format!(
                    "constants of dims {:?} and {:?} do not broadcast",
                    a.dims, b.dims
                )))
            }
        });
    }
    let (sa, sb) = (strides(&da), strides(&db));
    let count: usize = dims.iter().product();
    let pick = |flat: usize, d: &[usize], s: &[usize]| {
        unravel(flat, &dims)
            .iter()
            .enumerate()
            .map(|(k, &i)| if d[k] == 1 { 0 } else { i * s[k] })
            .sum::<usize>()
    };
    let data = match (&a.data, &b.data) {
        (Data::I64(x), Data::I64(y)) => {
            let mut out = Vec::with_capacity(count);
            for flat in 0..count {
                let (p, q) = (x[pick(flat, &da, &sa)], y[pick(flat, &db, &sb)]);
                out.push(match op {
                    Arith::Add => p.wrapping_add(q),
                    Arith::Sub => p.wrapping_sub(q),
                    Arith::Mul => p.wrapping_mul(q),
                    Arith::Div if q == 0 => {
                        return Err(Error::Invalid("integer division by zero".to_string()))
                    }
                    // Truncation towards zero, as ONNX's reference computes it.
                    Arith::Div => p.wrapping_div(q),
                });
            }
            Data::I64(out)
        }
        (Data::F32(x), Data::F32(y)) => Data::F32(
            (0..count)
                .map(|flat| {
                    let (p, q) = (x[pick(flat, &da, &sa)], y[pick(flat, &db, &sb)]);
                    match op {
                        Arith::Add => p + q,
                        Arith::Sub => p - q,
                        Arith::Mul => p * q,
                        Arith::Div => p / q,
                    }
                })
                .collect(),
        ),
        _ => {
            return Err(Error::Invalid(
                "the two inputs differ in type (integer and float)".to_string(),
            ))
        }
    };
    Ok(Constant { dims, data })
}

/// Concatenation along `axis` (already resolved).
pub fn concat(parts: &[&Constant], axis: usize) -> Result<Constant> {
    let first = parts[0];
    let mut dims = first.dims.clone();
    dims[axis] = 0;
    for p in parts {
        let same = p.dims.len() == first.dims.len()
            && p.dims
                .iter()
                .zip(&first.dims)
                .enumerate()
                .all(|(k, (a, b))| k == axis || a == b);
        if !same {
            return Err(Error::Invalid(format!(
                "constants of dims {:?} and {:?} do not concatenate along axis {axis}",
                first.dims, p.dims
            )));
        }
        dims[axis] += p.dims[axis];
    }
    let outer: usize = dims[..axis].iter().product();
    let inner: usize = dims[axis + 1..].iter().product();
    let mut indices: Vec<(usize, usize)> = Vec::new();
    for o in 0..outer {
        for (part, p) in parts.iter().enumerate() {
            let block = p.dims[axis] * inner;
            indices.extend((0..block).map(|i| (part, o * block + i)));
        }
    }
    let data = match first.data {
        Data::F32(_) => {
            let mut out = Vec::with_capacity(indices.len());
            for &(part, i) in &indices {
                match &parts[part].data {
                    Data::F32(v) => out.push(v[i]),
                    Data::I64(_) => return Err(mixed()),
                }
            }
            Data::F32(out)
        }
        Data::I64(_) => {
            let mut out = Vec::with_capacity(indices.len());
            for &(part, i) in &indices {
                match &parts[part].data {
                    Data::I64(v) => out.push(v[i]),
                    Data::F32(_) => return Err(mixed()),
                }
            }
            Data::I64(out)
        }
    };
    Ok(Constant { dims, data })
}

fn mixed() -> Error {
    Error::Invalid("the inputs differ in type (integer and float)".to_string())
}

/// Elements `start + step * i` along each axis (`ranges`: per axis, start, step, count).
pub fn slice(c: &Constant, ranges: &[(usize, i64, usize)]) -> Constant {
    let dims: Vec<usize> = ranges.iter().map(|r| r.2).collect();
    let s = strides(&c.dims);
    let count: usize = dims.iter().product();
    let indices: Vec<usize> = (0..count)
        .map(|flat| {
            unravel(flat, &dims)
                .iter()
                .enumerate()
                .map(|(k, &i)| (ranges[k].0 as i64 + ranges[k].1 * i as i64) as usize * s[k])
                .sum()
        })
        .collect();
    c.gather(dims, &indices)
}

/// The axes of `c` permuted: the result's axis k is `c`'s axis `perm[k]` (a permutation).
pub fn transpose(c: &Constant, perm: &[usize]) -> Constant {
    let dims: Vec<usize> = perm.iter().map(|&a| c.dims[a]).collect();
    let s = strides(&c.dims);
    let count: usize = dims.iter().product();
    let indices: Vec<usize> = (0..count)
        .map(|flat| {
            unravel(flat, &dims)
                .iter()
                .zip(perm)
                .map(|(&i, &a)| i * s[a])
                .sum()
        })
        .collect();
    c.gather(dims, &indices)
}

/// numpy's `take(data, indices, axis)`: indices already made non-negative and checked.
pub fn take(c: &Constant, indices: &[usize], index_dims: &[usize], axis: usize) -> Constant {
    let outer: usize = c.dims[..axis].iter().product();
    let inner: usize = c.dims[axis + 1..].iter().product();
    let len = c.dims[axis];
    let mut picked = Vec::with_capacity(outer * indices.len() * inner);
    for o in 0..outer {
        for &i in indices {
            picked.extend((0..inner).map(|k| (o * len + i) * inner + k));
        }
    }
    let mut dims = c.dims[..axis].to_vec();
    dims.extend_from_slice(index_dims);
    dims.extend_from_slice(&c.dims[axis + 1..]);
    c.gather(dims, &picked)
}
