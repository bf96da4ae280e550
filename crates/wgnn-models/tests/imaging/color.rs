use wgnn::rng::Rng;
use wgnn_models::imaging::color::{
    preserve_colors, rgb_to_yuv, yuv_to_rgb, RGB_FROM_YUV, YUV_FROM_RGB,
};
use wgnn_models::imaging::RgbImage;

use crate::random_image;

#[test]
fn inverse_matrix_is_exact() {
    for (i, row) in RGB_FROM_YUV.iter().enumerate() {
        for j in 0..3 {
            let product: f64 = row.iter().zip(&YUV_FROM_RGB).map(|(r, m)| r * m[j]).sum();
            let identity = if i == j { 1.0 } else { 0.0 };
            assert!((product - identity).abs() < 1e-12, "[{i}][{j}] = {product}");
        }
    }
    // Torch's `image.yuv2rgb` rounds the same inverse to five decimals.
    let torch = [
        [1.0, 0.0, 1.13983],
        [1.0, -0.39465, -0.58060],
        [1.0, 2.03211, 0.0],
    ];
    for (i, (ours, torch)) in RGB_FROM_YUV.iter().zip(torch).enumerate() {
        for (j, (a, b)) in ours.iter().zip(torch).enumerate() {
            assert!((a - b).abs() < 1e-4, "[{i}][{j}]");
        }
    }
}

#[test]
fn rgb_yuv_round_trip_is_identity() {
    let mut rng = Rng::new(5);
    let image = random_image(&mut rng, 9, 6, 0.0, 1.0);
    let back = yuv_to_rgb(&rgb_to_yuv(&image));
    for (i, (&a, &b)) in back.data.iter().zip(&image.data).enumerate() {
        assert!((a - b).abs() < 1e-6, "[{i}]: {a} vs {b}");
    }
    // White has luminance 1; grey has (almost) no chrominance.
    let white = rgb_to_yuv(&RgbImage::filled(1, 1, [1.0; 3]).unwrap());
    assert!((white.data[0] - 1.0).abs() < 1e-6);
    let grey = rgb_to_yuv(&RgbImage::filled(1, 1, [0.5; 3]).unwrap());
    assert!(grey.data[1].abs() < 1e-4 && grey.data[2].abs() < 1e-4);
}

#[test]
fn preserved_colors_have_generated_luminance_and_content_chrominance() {
    let mut rng = Rng::new(6);
    // Mid-range samples, so the recombined colours stay inside the RGB cube (no clamping).
    let content = random_image(&mut rng, 8, 5, 0.4, 0.6);
    let generated = random_image(&mut rng, 8, 5, 0.4, 0.6);
    let result = preserve_colors(&content, &generated).unwrap();
    let (r, c, g) = (
        rgb_to_yuv(&result),
        rgb_to_yuv(&content),
        rgb_to_yuv(&generated),
    );
    let plane = content.plane();
    for i in 0..plane {
        assert!((r.data[i] - g.data[i]).abs() < 1e-6, "Y [{i}]");
        for ch in 1..3 {
            let k = ch * plane + i;
            assert!((r.data[k] - c.data[k]).abs() < 1e-6, "U/V [{k}]");
        }
    }
    // It is not a trivial copy of either input.
    assert!(result != content && result != generated);
}

#[test]
fn preserved_colors_stay_in_range_and_sizes_must_match() {
    let mut rng = Rng::new(7);
    let content = random_image(&mut rng, 6, 4, 0.0, 1.0);
    let generated = random_image(&mut rng, 6, 4, 0.0, 1.0);
    let result = preserve_colors(&content, &generated).unwrap();
    assert!(result.data.iter().all(|v| (0.0..=1.0).contains(v)));

    let other = random_image(&mut rng, 4, 6, 0.0, 1.0);
    assert!(preserve_colors(&content, &other).is_err());
}
