//! Channel concatenation and slicing in float64 on [N, C, inner...] tensors.

/// Concatenates (values, shape) pairs along dim 1.
pub fn concat_channels(inputs: &[(&[f64], &[usize])]) -> Vec<f64> {
    let batch = inputs[0].1[0];
    let mut out = Vec::new();
    for n in 0..batch {
        for (values, shape) in inputs {
            let per_batch: usize = shape[1..].iter().product();
            out.extend_from_slice(&values[n * per_batch..(n + 1) * per_batch]);
        }
    }
    out
}

/// Channels start..start + len of x.
pub fn slice_channels(x: &[f64], shape: &[usize], start: usize, len: usize) -> Vec<f64> {
    let inner: usize = shape[2..].iter().product();
    let mut out = Vec::new();
    for n in 0..shape[0] {
        for c in start..start + len {
            let at = (n * shape[1] + c) * inner;
            out.extend_from_slice(&x[at..at + inner]);
        }
    }
    out
}
