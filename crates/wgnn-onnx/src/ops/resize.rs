//! Resize (opset 11 on) in modes nearest and linear over the spatial axes of [N, C, 1 to 3
//! spatial dims], to constant `scales` or `sizes` (all axes, or those of `axes`), with every
//! coordinate transformation and nearest rounding that `wgnn::ops::resize` covers. Refused:
//! cubic, antialiasing, `exclude_outside`, tf_crop_and_resize and half_pixel_symmetric, resizing
//! N or C, and a `keep_aspect_ratio_policy` whose rounded lengths the engine's scale factors do
//! not give.

use wgnn::error::{Error, Result};
use wgnn::ops::resize::{
    CoordinateTransform, NearestRounding, ResizeMode, ResizeParams, ResizeTarget,
};

use super::{axis, node};
use crate::import::{Ctx, NodeView, Value};

fn unsupported(what: String) -> Error {
    Error::Invalid(format!("{what} is not supported"))
}

/// The target along every axis of the input.
enum Full {
    Scales(Vec<f64>),
    Sizes(Vec<i64>),
}

/// `sizes` under keep_aspect_ratio_policy not_larger (not_smaller): one scale, the smallest
/// (largest) ratio of size to length over the listed axes, for every listed axis, as ONNX's
/// scales. ONNX rounds scale x length half up for the output and the engine rounds it down, so
/// a length with a fractional part of a half or more is refused.
fn keep_aspect_ratio(
    policy: &str,
    dims: &[usize],
    axes: &[usize],
    sizes: &[i64],
) -> Result<Vec<f64>> {
    let ratios = axes
        .iter()
        .zip(sizes)
        .map(|(&a, &v)| v as f64 / dims[a] as f64);
    let scale = if policy == "not_larger" {
        ratios.fold(f64::INFINITY, f64::min)
    } else {
        ratios.fold(f64::NEG_INFINITY, f64::max)
    };
    let mut full = vec![1.0; dims.len()];
    for &a in axes {
        let exact = scale * dims[a] as f64;
        if exact.floor() != (exact + 0.5).floor() {
            return Err(unsupported(format!(
                "keep_aspect_ratio_policy = `{policy}` here: axis {a} becomes {exact} long, which ONNX rounds up and the engine's scale factors round down"
            )));
        }
        full[a] = scale;
    }
    Ok(full)
}

pub fn resize(ctx: &mut Ctx<'_>, n: &NodeView<'_>) -> Result<Vec<Value>> {
    let x_name = n.required(0)?;
    let dims = ctx.dims(x_name)?;
    let rank = dims.len();
    let mode = match n.string("mode")?.as_deref().unwrap_or("nearest") {
        "linear" => ResizeMode::Linear,
        "nearest" => ResizeMode::Nearest(
            match n
                .string("nearest_mode")?
                .as_deref()
                .unwrap_or("round_prefer_floor")
            {
                "round_prefer_floor" => NearestRounding::RoundPreferFloor,
                "round_prefer_ceil" => NearestRounding::RoundPreferCeil,
                "floor" => NearestRounding::Floor,
                "ceil" => NearestRounding::Ceil,
                other => return Err(unsupported(format!("nearest_mode = `{other}`"))),
            },
        ),
        other => {
            return Err(Error::Invalid(format!(
                "mode = `{other}` is not supported; only `nearest` and `linear` are"
            )))
        }
    };
    let coordinates = match n
        .string("coordinate_transformation_mode")?
        .as_deref()
        .unwrap_or("half_pixel")
    {
        "half_pixel" => CoordinateTransform::HalfPixel,
        "pytorch_half_pixel" => CoordinateTransform::PytorchHalfPixel,
        "align_corners" => CoordinateTransform::AlignCorners,
        "asymmetric" => CoordinateTransform::Asymmetric,
        "tf_half_pixel_for_nn" => CoordinateTransform::TfHalfPixelForNn,
        other => {
            return Err(unsupported(format!(
                "coordinate_transformation_mode = `{other}`"
            )))
        }
    };
    for flag in ["antialias", "exclude_outside"] {
        let v = n.int(flag, 0)?;
        if v != 0 {
            return Err(unsupported(format!("{flag} = {v}")));
        }
    }
    // cubic_coeff_a (cubic) and extrapolation_value (tf_crop_and_resize) belong to refused modes
    // and change nothing here; the roi input is read by tf_crop_and_resize only.
    let given_axes: Vec<usize> = match n.ints("axes")? {
        Some(a) => a.iter().map(|&v| axis(v, rank)).collect::<Result<_>>()?,
        None => (0..rank).collect(),
    };
    if let Some(a) = (1..given_axes.len()).find(|&k| given_axes[..k].contains(&given_axes[k])) {
        return Err(Error::Invalid(format!(
            "axis {} is listed twice in `axes`",
            given_axes[a]
        )));
    }
    let nonempty = |ctx: &Ctx<'_>, i: usize, what: &str| -> Result<Option<_>> {
        match n.input(i) {
            Some(name) => {
                let c = ctx.constant(name, what)?;
                Ok((c.len() > 0).then(|| c.clone()))
            }
            None => Ok(None),
        }
    };
    let scales = nonempty(ctx, 2, "the scales")?;
    let sizes = nonempty(ctx, 3, "the sizes")?;
    let count_mismatch = |what: &str, found: usize| {
        Error::Invalid(format!(
            "{found} {what} given for {} axes",
            given_axes.len()
        ))
    };
    // Per axis of the input: the scale, or the output length.
    let full = match (scales, sizes) {
        (Some(s), None) => {
            let s = s.floats();
            if s.len() != given_axes.len() {
                return Err(count_mismatch("scales", s.len()));
            }
            let mut full = vec![1.0f64; rank];
            for (&a, &v) in given_axes.iter().zip(&s) {
                full[a] = v as f64;
            }
            Full::Scales(full)
        }
        (None, Some(s)) => {
            let s = s.ints("the sizes")?.to_vec();
            if s.len() != given_axes.len() {
                return Err(count_mismatch("sizes", s.len()));
            }
            match n.string("keep_aspect_ratio_policy")?.as_deref() {
                None | Some("stretch") => {
                    let mut full: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
                    for (&a, &v) in given_axes.iter().zip(&s) {
                        full[a] = v;
                    }
                    Full::Sizes(full)
                }
                Some(policy @ ("not_larger" | "not_smaller")) => {
                    Full::Scales(keep_aspect_ratio(policy, &dims, &given_axes, &s)?)
                }
                Some(other) => {
                    return Err(unsupported(format!("keep_aspect_ratio_policy = `{other}`")))
                }
            }
        }
        (Some(_), Some(_)) => {
            return Err(Error::Invalid(
                "both scales and sizes are given; ONNX allows one".to_string(),
            ))
        }
        (None, None) => {
            return Err(Error::Invalid(
                "neither scales nor sizes is given".to_string(),
            ))
        }
    };
    for a in 0..rank.min(2) {
        let changed = match &full {
            Full::Scales(s) => s[a] != 1.0,
            Full::Sizes(s) => s[a] != dims[a] as i64,
        };
        if changed {
            return Err(unsupported(format!(
                "resizing axis {a} ({}) of dims {dims:?}; only the spatial axes (2 and on) are resized",
                ["N", "C"][a]
            )));
        }
    }
    if !(3..=5).contains(&rank) {
        return Err(unsupported(format!(
            "resizing a rank-{rank} tensor ({dims:?}); only [N, C, 1 to 3 spatial dims] is"
        )));
    }
    let target = match full {
        Full::Scales(s) => ResizeTarget::Scales(s[2..].to_vec()),
        Full::Sizes(s) => ResizeTarget::Sizes(
            s[2..]
                .iter()
                .map(|&v| {
                    usize::try_from(v)
                        .ok()
                        .filter(|&v| v > 0)
                        .ok_or_else(|| Error::Invalid(format!("size {v} is not positive")))
                })
                .collect::<Result<_>>()?,
        ),
    };
    let x = ctx.tensor(x_name)?;
    node(ctx.graph.resize(
        x,
        &ResizeParams {
            target,
            mode,
            coordinates,
        },
    )?)
}
