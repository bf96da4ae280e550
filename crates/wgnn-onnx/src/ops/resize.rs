//! Resize (opset 11 on) in modes nearest and linear over the spatial axes of [N, C, 1 to 3
//! spatial dims], to constant `scales` or `sizes` (all axes, or those of `axes`), with every
//! coordinate transformation and nearest rounding that `wgnn::ops::resize` covers. Refused:
//! cubic, antialiasing, `exclude_outside`, tf_crop_and_resize and half_pixel_symmetric, resizing
//! N or C, and a `keep_aspect_ratio_policy` other than stretch.

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
    Scales(Vec<f32>),
    Sizes(Vec<i64>),
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
            let mut full = vec![1.0f32; rank];
            for (&a, &v) in given_axes.iter().zip(&s) {
                full[a] = v;
            }
            Full::Scales(full)
        }
        (None, Some(s)) => {
            let s = s.ints("the sizes")?.to_vec();
            if s.len() != given_axes.len() {
                return Err(count_mismatch("sizes", s.len()));
            }
            let policy = n.string("keep_aspect_ratio_policy")?;
            if let Some(p) = policy.filter(|p| p != "stretch") {
                return Err(unsupported(format!("keep_aspect_ratio_policy = `{p}`")));
            }
            let mut full: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
            for (&a, &v) in given_axes.iter().zip(&s) {
                full[a] = v;
            }
            Full::Sizes(full)
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
        Full::Scales(s) => ResizeTarget::Scales(s[2..].iter().map(|&v| v as f64).collect()),
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
