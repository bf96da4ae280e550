//! Transposes, slices and concatenation along any axis in float64, on row-major tensors.

use crate::multi_indices;

/// The flat row-major index of `index` in `dims`.
pub fn flat_index(index: &[usize], dims: &[usize]) -> usize {
    index.iter().zip(dims).fold(0, |acc, (&i, &d)| acc * d + i)
}

/// y[i_0, .., i_r] = x[j] with j[perm[k]] = i_k: y's axis k is x's axis perm[k].
pub fn transpose(x: &[f64], dims: &[usize], perm: &[usize]) -> Vec<f64> {
    let out_dims: Vec<usize> = perm.iter().map(|&a| dims[a]).collect();
    multi_indices(&out_dims)
        .iter()
        .map(|index| {
            let mut source = vec![0; dims.len()];
            for (k, &a) in perm.iter().enumerate() {
                source[a] = index[k];
            }
            x[flat_index(&source, dims)]
        })
        .collect()
}

/// The indices that ONNX `Slice` takes from an axis of size `dim`, in order: walk from start in
/// steps until end is reached or passed, after the rules of the operator (negative start and end
/// count from the end, then start and end are clamped to the axis).
pub fn slice_indices(dim: usize, start: i64, end: i64, step: i64) -> Vec<usize> {
    let dim = dim as i64;
    let (mut start, mut end) = (start, end);
    if start < 0 {
        start += dim;
    }
    if end < 0 {
        end += dim;
    }
    let mut indices = Vec::new();
    if step > 0 {
        let (start, end) = (start.clamp(0, dim), end.clamp(0, dim));
        let mut i = start;
        while i < end {
            indices.push(i as usize);
            i += step;
        }
    } else {
        let (start, end) = (start.clamp(0, dim - 1), end.clamp(-1, dim - 1));
        let mut i = start;
        while i > end {
            indices.push(i as usize);
            i += step;
        }
    }
    indices
}

/// The elements of x at `indices[k]` along each axis k (the slice's output, row-major).
pub fn gather(x: &[f64], dims: &[usize], indices: &[Vec<usize>]) -> Vec<f64> {
    let out_dims: Vec<usize> = indices.iter().map(|v| v.len()).collect();
    multi_indices(&out_dims)
        .iter()
        .map(|index| {
            let source: Vec<usize> = index.iter().zip(indices).map(|(&i, v)| v[i]).collect();
            x[flat_index(&source, dims)]
        })
        .collect()
}

/// The gradient of `gather`: dy added at the positions it was read from, zero elsewhere.
pub fn gather_backward(dy: &[f64], dims: &[usize], indices: &[Vec<usize>]) -> Vec<f64> {
    let out_dims: Vec<usize> = indices.iter().map(|v| v.len()).collect();
    let mut dx = vec![0.0; dims.iter().product()];
    for (i, index) in multi_indices(&out_dims).iter().enumerate() {
        let source: Vec<usize> = index.iter().zip(indices).map(|(&i, v)| v[i]).collect();
        dx[flat_index(&source, dims)] += dy[i];
    }
    dx
}

/// Concatenates (values, dims) pairs along `axis`.
pub fn concat(inputs: &[(&[f64], &[usize])], axis: usize) -> Vec<f64> {
    let mut out_dims = inputs[0].1.to_vec();
    out_dims[axis] = inputs.iter().map(|(_, d)| d[axis]).sum();
    multi_indices(&out_dims)
        .iter()
        .map(|index| {
            let mut at = index[axis];
            for (values, dims) in inputs {
                if at < dims[axis] {
                    let mut source = index.clone();
                    source[axis] = at;
                    return values[flat_index(&source, dims)];
                }
                at -= dims[axis];
            }
            unreachable!("index past the concatenation")
        })
        .collect()
}
