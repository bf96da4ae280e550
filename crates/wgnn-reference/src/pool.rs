//! Pooling in float64 for 1, 2 or 3 spatial dims, written from PyTorch's and ONNX's
//! definitions: a window of dilated taps per output position, padding before and after each axis
//! (ONNX's automatic modes computed here from their formula), padding as -inf (max) or zeros that
//! count in the divisor or not (average). Backward passes scatter from each window (the GPU
//! gathers, or scatters by classes of windows), so the two are independent.

use wgnn::ops::padding::AutoPad;
use wgnn::ops::pool::PoolParams;

/// (begin, end) padding per axis for an input of spatial size `input`.
pub fn pads(input: &[usize], p: &PoolParams) -> (Vec<usize>, Vec<usize>) {
    let Some(mode) = p.auto_pad else {
        return (p.pads.begin.clone(), p.pads.end.clone());
    };
    let mut begin = vec![0; input.len()];
    let mut end = vec![0; input.len()];
    if mode == AutoPad::Valid {
        return (begin, end);
    }
    for k in 0..input.len() {
        // ONNX: pad = (ceil(in / stride) - 1) * stride + span - in, the odd one at the end for
        // SAME_UPPER and at the beginning for SAME_LOWER.
        let out = (input[k] as f64 / p.stride[k] as f64).ceil() as i64;
        let span = ((p.kernel[k] - 1) * p.dilation[k] + 1) as i64;
        let total = ((out - 1) * p.stride[k] as i64 + span - input[k] as i64).max(0) as usize;
        let (small, large) = (total / 2, total - total / 2);
        (begin[k], end[k]) = match mode {
            AutoPad::SameUpper => (small, large),
            _ => (large, small),
        };
    }
    (begin, end)
}

/// Output spatial sizes: ONNX's formula (rounded up in ceil mode, dropping a window that starts
/// in the end padding as PyTorch does); ceil mode does not apply with automatic padding.
pub fn output_size(input: &[usize], p: &PoolParams) -> Vec<usize> {
    let (begin, end) = pads(input, p);
    let ceil = p.ceil_mode && p.auto_pad.is_none();
    (0..input.len())
        .map(|k| {
            let span = ((p.kernel[k] - 1) * p.dilation[k] + 1) as f64;
            let steps = (input[k] as f64 + (begin[k] + end[k]) as f64 - span) / p.stride[k] as f64;
            let mut out = if ceil { steps.ceil() } else { steps.floor() } as usize + 1;
            if ceil && (out - 1) * p.stride[k] >= input[k] + begin[k] {
                out -= 1;
            }
            out
        })
        .collect()
}

fn flat(index: &[usize], dims: &[usize]) -> usize {
    index.iter().zip(dims).fold(0, |acc, (&i, &d)| acc * d + i)
}

/// One window: the flat (within-plane) input indices of its real elements in row-major window
/// order, and its average-pooling divisor: the taps inside the padded input (count_include_pad)
/// or on real elements.
fn window(o: &[usize], input: &[usize], p: &PoolParams) -> (Vec<usize>, f64) {
    let (begin, end) = pads(input, p);
    let mut elements = Vec::new();
    let mut padded = 0;
    for t in super::multi_indices(&p.kernel) {
        let pos: Vec<i64> = (0..o.len())
            .map(|k| (o[k] * p.stride[k]) as i64 - begin[k] as i64 + (t[k] * p.dilation[k]) as i64)
            .collect();
        if pos.iter().zip(input).all(|(&q, &n)| q >= 0 && q < n as i64) {
            let pos: Vec<usize> = pos.iter().map(|&q| q as usize).collect();
            elements.push(flat(&pos, input));
        }
        if (0..o.len()).all(|k| pos[k] < (input[k] + end[k]) as i64) {
            padded += 1;
        }
    }
    let divisor = if p.count_include_pad {
        padded as f64
    } else {
        elements.len() as f64
    };
    (elements, divisor)
}

/// (N * C planes, input spatial dims, output spatial dims).
fn geometry(shape: &[usize], p: &PoolParams) -> (usize, Vec<usize>, Vec<usize>) {
    let input = shape[2..].to_vec();
    let output = output_size(&input, p);
    (shape[0] * shape[1], input, output)
}

/// Per output element: (plane, window elements, divisor).
fn windows(shape: &[usize], p: &PoolParams) -> Vec<(usize, Vec<usize>, f64)> {
    let (planes, input, output) = geometry(shape, p);
    let mut all = Vec::new();
    for plane in 0..planes {
        for o in super::multi_indices(&output) {
            let (elements, divisor) = window(&o, &input, p);
            all.push((plane, elements, divisor));
        }
    }
    all
}

fn plane_size(shape: &[usize]) -> usize {
    shape[2..].iter().product()
}

/// The first maximal element of a window (input index within the whole tensor).
fn argmax(x: &[f64], base: usize, elements: &[usize]) -> usize {
    let mut best = base + elements[0];
    for &e in &elements[1..] {
        if x[base + e] > x[best] {
            best = base + e;
        }
    }
    best
}

/// Returns (y, output shape).
pub fn max_pool(x: &[f64], shape: &[usize], p: &PoolParams) -> (Vec<f64>, Vec<usize>) {
    let size = plane_size(shape);
    let y = windows(shape, p)
        .iter()
        .map(|(plane, elements, _)| x[argmax(x, plane * size, elements)])
        .collect();
    (y, output_shape(shape, p))
}

/// The index of each window's first maximal element, within its plane (`whole_tensor` false,
/// PyTorch) or within the whole tensor (ONNX).
pub fn max_pool_indices(
    x: &[f64],
    shape: &[usize],
    p: &PoolParams,
    whole_tensor: bool,
) -> Vec<u32> {
    let size = plane_size(shape);
    windows(shape, p)
        .iter()
        .map(|(plane, elements, _)| {
            let at = argmax(x, plane * size, elements);
            (if whole_tensor { at } else { at - plane * size }) as u32
        })
        .collect()
}

/// dx: each dy goes to the first maximal element of its window.
pub fn max_pool_backward(x: &[f64], shape: &[usize], p: &PoolParams, dy: &[f64]) -> Vec<f64> {
    let size = plane_size(shape);
    let mut dx = vec![0.0; x.len()];
    for ((plane, elements, _), &g) in windows(shape, p).iter().zip(dy) {
        dx[argmax(x, plane * size, elements)] += g;
    }
    dx
}

pub fn avg_pool(x: &[f64], shape: &[usize], p: &PoolParams) -> (Vec<f64>, Vec<usize>) {
    let size = plane_size(shape);
    let y = windows(shape, p)
        .iter()
        .map(|(plane, elements, divisor)| {
            elements.iter().map(|&e| x[plane * size + e]).sum::<f64>() / divisor
        })
        .collect();
    (y, output_shape(shape, p))
}

pub fn avg_pool_backward(shape: &[usize], p: &PoolParams, dy: &[f64]) -> Vec<f64> {
    let size = plane_size(shape);
    let mut dx = vec![0.0; shape.iter().product()];
    for ((plane, elements, divisor), &g) in windows(shape, p).iter().zip(dy) {
        for &e in elements {
            dx[plane * size + e] += g / divisor;
        }
    }
    dx
}

pub fn output_shape(shape: &[usize], p: &PoolParams) -> Vec<usize> {
    let (_, _, output) = geometry(shape, p);
    let mut out = shape[..2].to_vec();
    out.extend(output);
    out
}

/// Max-unpooling: `values` ([N, C, pooled...]) placed at `indices` in a zero tensor of shape
/// `out_shape`; indices within each plane or over the whole tensor; out-of-range ones skipped.
/// Later elements overwrite earlier ones (callers avoid conflicting duplicates).
pub fn max_unpool(
    values: &[f64],
    indices: &[u32],
    shape: &[usize],
    out_shape: &[usize],
    whole_tensor: bool,
) -> Vec<f64> {
    let (in_plane, out_plane) = (plane_size(shape), plane_size(out_shape));
    let total: usize = out_shape.iter().product();
    let mut y = vec![0.0; total];
    for (i, (&v, &index)) in values.iter().zip(indices).enumerate() {
        if let Some(at) =
            unpool_position(i, index as usize, in_plane, out_plane, total, whole_tensor)
        {
            y[at] = v;
        }
    }
    y
}

/// d values of max-unpooling: dy read at each index (0 outside).
pub fn max_unpool_backward(
    dy: &[f64],
    indices: &[u32],
    shape: &[usize],
    out_shape: &[usize],
    whole_tensor: bool,
) -> Vec<f64> {
    let (in_plane, out_plane) = (plane_size(shape), plane_size(out_shape));
    indices
        .iter()
        .enumerate()
        .map(|(i, &index)| {
            unpool_position(
                i,
                index as usize,
                in_plane,
                out_plane,
                dy.len(),
                whole_tensor,
            )
            .map_or(0.0, |at| dy[at])
        })
        .collect()
}

fn unpool_position(
    i: usize,
    index: usize,
    in_plane: usize,
    out_plane: usize,
    total: usize,
    whole_tensor: bool,
) -> Option<usize> {
    if whole_tensor {
        (index < total).then_some(index)
    } else {
        (index < out_plane).then_some(i / in_plane * out_plane + index)
    }
}

/// [N, C, spatial...] -> [N, C] means.
pub fn global_avg_pool(x: &[f64], shape: &[usize]) -> Vec<f64> {
    let size = plane_size(shape);
    x.chunks(size)
        .map(|row| row.iter().sum::<f64>() / size as f64)
        .collect()
}

pub fn global_avg_pool_backward(shape: &[usize], dy: &[f64]) -> Vec<f64> {
    let size = plane_size(shape);
    dy.iter()
        .flat_map(|&g| std::iter::repeat_n(g / size as f64, size))
        .collect()
}
