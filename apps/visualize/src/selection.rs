//! Which units of a layer to show, and which images to show for each: a unit's top patches
//! come from different images (its strongest position in each), so nine patches are not nine
//! neighbours in one photo.

use wgnn::{Error, Result};

use crate::maxima::LayerMaxima;

/// The `count` units whose per-image maxima vary most across the images (largest variance;
/// the lower unit index first on ties), in decreasing order of variance. A unit that responds
/// to everything alike, or to nothing, tells little; one that fires for some images and not
/// others shows what it detects.
pub fn most_variable_units(maxima: &LayerMaxima, count: usize) -> Vec<usize> {
    let n = maxima.images as f64;
    let mut scored: Vec<(f64, usize)> = (0..maxima.units)
        .map(|unit| {
            let values = (0..maxima.images).map(|i| maxima.value(i, unit) as f64);
            let mean = values.clone().sum::<f64>() / n;
            let variance = values.map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
            (variance, unit)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored
        .into_iter()
        .take(count)
        .map(|(_, unit)| unit)
        .collect()
}

/// Checks units asked for by index against the layer's channel count.
pub fn check_units(maxima: &LayerMaxima, units: &[usize]) -> Result<()> {
    match units.iter().find(|&&u| u >= maxima.units) {
        Some(u) => Err(Error::Invalid(format!(
            "unit {u} is out of range for layer `{}`: it has units 0 to {}",
            maxima.layer,
            maxima.units - 1
        ))),
        None => Ok(()),
    }
}

/// The `k` images in which `unit` reaches its largest activations, largest first (the lower
/// image index first on ties); fewer when fewer images excite it at all (an activation of 0
/// or less, a unit that stays off after its ReLU, shows nothing it detects).
pub fn top_images(maxima: &LayerMaxima, unit: usize, k: usize) -> Vec<usize> {
    let mut images: Vec<usize> = (0..maxima.images)
        .filter(|&i| maxima.value(i, unit) > 0.0)
        .collect();
    images.sort_by(|&a, &b| {
        maxima
            .value(b, unit)
            .total_cmp(&maxima.value(a, unit))
            .then(a.cmp(&b))
    });
    images.truncate(k);
    images
}
