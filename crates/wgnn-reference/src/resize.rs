//! Nearest and linear resizing of [N, C, spatial...] tensors in float64, written from ONNX
//! `Resize`'s definition: each spatial axis maps an output index to an input coordinate by the
//! coordinate mode; nearest rounds it and clamps the index to the axis; linear weighs the two
//! indices around it, indices past an edge reading the edge.

use crate::multi_indices;
use crate::view::flat_index;
use wgnn::ops::resize::{
    CoordinateTransform, NearestRounding, ResizeMode, ResizeParams, ResizeTarget,
};

/// The output's dims for an input of `dims`.
pub fn output_dims(dims: &[usize], params: &ResizeParams) -> Vec<usize> {
    let mut out = dims[..2].to_vec();
    for (k, &d) in dims[2..].iter().enumerate() {
        out.push(match &params.target {
            ResizeTarget::Scales(s) => (d as f64 * s[k]).floor() as usize,
            ResizeTarget::Sizes(s) => s[k],
        });
    }
    out
}

/// (input index, weight) pairs that output index `x` reads along an axis of `input` -> `output`
/// elements, spatial axis `k`.
fn axis_taps(
    params: &ResizeParams,
    k: usize,
    input: usize,
    output: usize,
    x: usize,
) -> Vec<(usize, f64)> {
    let scale = match &params.target {
        ResizeTarget::Scales(s) => s[k],
        ResizeTarget::Sizes(s) => s[k] as f64 / input as f64,
    };
    let x = x as f64;
    let coordinate = match params.coordinates {
        CoordinateTransform::HalfPixel => (x + 0.5) / scale - 0.5,
        CoordinateTransform::PytorchHalfPixel => {
            if output > 1 {
                (x + 0.5) / scale - 0.5
            } else {
                0.0
            }
        }
        CoordinateTransform::AlignCorners => {
            if output > 1 {
                x * (input as f64 - 1.0) / (output as f64 - 1.0)
            } else {
                0.0
            }
        }
        CoordinateTransform::Asymmetric => x / scale,
        CoordinateTransform::TfHalfPixelForNn => (x + 0.5) / scale,
    };
    let clamp = |i: f64| i.max(0.0).min(input as f64 - 1.0) as usize;
    match params.mode {
        ResizeMode::Nearest(rounding) => {
            let frac = coordinate - coordinate.floor();
            let index = match rounding {
                NearestRounding::Floor => coordinate.floor(),
                NearestRounding::Ceil => coordinate.ceil(),
                NearestRounding::RoundPreferFloor if frac == 0.5 => coordinate.floor(),
                NearestRounding::RoundPreferCeil if frac == 0.5 => coordinate.ceil(),
                _ if frac < 0.5 => coordinate.floor(),
                _ => coordinate.ceil(),
            };
            vec![(clamp(index), 1.0)]
        }
        ResizeMode::Linear => {
            let low = coordinate.floor();
            let frac = coordinate - low;
            vec![(clamp(low), 1.0 - frac), (clamp(low + 1.0), frac)]
        }
    }
}

/// For each output element (row-major), the (flat input index, weight) pairs it sums.
fn contributions(dims: &[usize], params: &ResizeParams) -> Vec<Vec<(usize, f64)>> {
    let out_dims = output_dims(dims, params);
    multi_indices(&out_dims)
        .iter()
        .map(|index| {
            let mut terms = vec![(index[..2].to_vec(), 1.0)];
            for k in 0..dims.len() - 2 {
                let taps = axis_taps(params, k, dims[k + 2], out_dims[k + 2], index[k + 2]);
                terms = terms
                    .into_iter()
                    .flat_map(|(source, w)| {
                        taps.iter().map(move |&(i, tw)| {
                            let mut source = source.clone();
                            source.push(i);
                            (source, w * tw)
                        })
                    })
                    .collect();
            }
            terms
                .into_iter()
                .map(|(source, w)| (flat_index(&source, dims), w))
                .collect()
        })
        .collect()
}

pub fn forward(x: &[f64], dims: &[usize], params: &ResizeParams) -> Vec<f64> {
    contributions(dims, params)
        .iter()
        .map(|terms| terms.iter().map(|&(i, w)| w * x[i]).sum())
        .collect()
}

/// dx for the upstream gradient dy: each output's gradient spread back with its weights.
pub fn backward(dy: &[f64], dims: &[usize], params: &ResizeParams) -> Vec<f64> {
    let mut dx = vec![0.0; dims.iter().product()];
    for (terms, &g) in contributions(dims, params).iter().zip(dy) {
        for &(i, w) in terms {
            dx[i] += w * g;
        }
    }
    dx
}
