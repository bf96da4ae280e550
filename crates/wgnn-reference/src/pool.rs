//! Pooling in float64 for 1, 2 or 3 spatial dims, written as PyTorch defines it: a window per
//! output position, padding as -inf (max) or counted zeros (average, count_include_pad=True).
//! Backward passes scatter from each window (the GPU gathers), so the two are independent.

use wgnn::ops::pool::PoolParams;

/// Output spatial sizes (PyTorch's formula, ceil mode dropping a window that starts in the right
/// padding).
pub fn output_size(input: &[usize], p: &PoolParams) -> Vec<usize> {
    (0..input.len())
        .map(|k| {
            let span = (input[k] + 2 * p.padding[k] - p.kernel[k]) as f64 / p.stride[k] as f64;
            let mut out = if p.ceil_mode {
                span.ceil()
            } else {
                span.floor()
            } as usize
                + 1;
            if p.ceil_mode && (out - 1) * p.stride[k] >= input[k] + p.padding[k] {
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
/// order, and its average-pooling divisor (the window clipped to the padded input).
fn window(o: &[usize], input: &[usize], p: &PoolParams) -> (Vec<usize>, f64) {
    let mut elements = Vec::new();
    for t in super::multi_indices(&p.kernel) {
        let pos: Vec<i64> = (0..o.len())
            .map(|k| (o[k] * p.stride[k]) as i64 - p.padding[k] as i64 + t[k] as i64)
            .collect();
        if pos.iter().zip(input).all(|(&q, &n)| q >= 0 && q < n as i64) {
            let pos: Vec<usize> = pos.iter().map(|&q| q as usize).collect();
            elements.push(flat(&pos, input));
        }
    }
    let divisor = (0..o.len())
        .map(|k| {
            let start = (o[k] * p.stride[k]) as i64 - p.padding[k] as i64;
            let end = (start + p.kernel[k] as i64).min((input[k] + p.padding[k]) as i64);
            (end - start) as f64
        })
        .product();
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
