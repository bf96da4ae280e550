//! Zoom alignment's regression: the closed-form ridge fit against a plain f64 reference (the
//! normal equations in the descriptor space), recovery of an exact linear law, the zoom it
//! turns a descriptor into, and bad input.
use wgnn_reference::testing as common;

use common::assert_close;
use wgnn::rng::Rng;
use wgnn_faces::align::{fit_zooms, ZoomRegressor, FIT_ZOOM_STEP, FIT_ZOOM_STEPS};

fn random_rows(rng: &mut Rng, m: usize, d: usize) -> Vec<f32> {
    (0..m * d).map(|_| rng.range(-1.0, 1.0) as f32).collect()
}

/// Solves the ridge problem in the primal: `(Xc^T Xc + ridge * s * I) w = Xc^T (y - mean y)`,
/// `s` the mean squared norm of the centred rows, by Gaussian elimination; `b = mean y - w .
/// mean x`.
fn reference_fit(x: &[f32], d: usize, y: &[f64], ridge: f64) -> (Vec<f64>, f64) {
    let m = y.len();
    let mut mean = vec![0f64; d];
    for row in x.chunks_exact(d) {
        for (a, &v) in mean.iter_mut().zip(row) {
            *a += v as f64 / m as f64;
        }
    }
    let centred: Vec<Vec<f64>> = x
        .chunks_exact(d)
        .map(|row| row.iter().zip(&mean).map(|(&v, a)| v as f64 - a).collect())
        .collect();
    let y_mean = y.iter().sum::<f64>() / m as f64;
    let s = centred
        .iter()
        .map(|r| r.iter().map(|v| v * v).sum::<f64>())
        .sum::<f64>()
        / m as f64;
    // Augmented matrix [A | rhs].
    let mut a = vec![vec![0f64; d + 1]; d];
    for i in 0..d {
        for j in 0..d {
            a[i][j] = centred.iter().map(|r| r[i] * r[j]).sum::<f64>();
        }
        a[i][i] += ridge * s;
        a[i][d] = centred
            .iter()
            .zip(y)
            .map(|(r, t)| r[i] * (t - y_mean))
            .sum::<f64>();
    }
    for col in 0..d {
        let pivot = (col..d)
            .max_by(|&p, &q| a[p][col].abs().total_cmp(&a[q][col].abs()))
            .unwrap();
        a.swap(col, pivot);
        for row in 0..d {
            if row != col {
                let f = a[row][col] / a[col][col];
                for k in col..=d {
                    a[row][k] -= f * a[col][k];
                }
            }
        }
    }
    let w: Vec<f64> = (0..d).map(|i| a[i][d] / a[i][i]).collect();
    let b = y_mean - w.iter().zip(&mean).map(|(p, q)| p * q).sum::<f64>();
    (w, b)
}

#[test]
fn the_fit_matches_the_normal_equations() {
    let mut rng = Rng::new(41);
    // Fewer rows than columns (as in training) and more rows than columns.
    for (m, d, ridge) in [(9, 23, 0.3), (31, 7, 0.05), (17, 17, 2.0)] {
        let x = random_rows(&mut rng, m, d);
        let y: Vec<f64> = (0..m).map(|_| rng.range(-0.3, 0.3)).collect();
        let fit = ZoomRegressor::fit(&x, d, &y, ridge).unwrap();
        let (w, b) = reference_fit(&x, d, &y, ridge);
        assert_close(&format!("weight m={m} d={d}"), &fit.weight, &w, 1e-4, 1e-4);
        assert!(
            (fit.bias as f64 - b).abs() < 1e-5,
            "bias {} vs {b}",
            fit.bias
        );
        for row in x.chunks_exact(d) {
            let want = b + w.iter().zip(row).map(|(p, &q)| p * q as f64).sum::<f64>();
            assert!((fit.log_zoom(row) - want).abs() < 1e-5);
        }
    }
}

#[test]
fn a_weak_ridge_recovers_an_exact_linear_law() {
    let mut rng = Rng::new(42);
    let (m, d) = (40, 6);
    let x = random_rows(&mut rng, m, d);
    let law = [0.3, -0.2, 0.05, 0.0, 0.15, -0.1];
    let y: Vec<f64> = x
        .chunks_exact(d)
        .map(|r| 0.02 + law.iter().zip(r).map(|(a, &b)| a * b as f64).sum::<f64>())
        .collect();
    let fit = ZoomRegressor::fit(&x, d, &y, 1e-9).unwrap();
    for (got, want) in fit.weight.iter().zip(law) {
        assert!((*got as f64 - want).abs() < 1e-4, "{:?}", fit.weight);
    }
    assert!((fit.bias - 0.02).abs() < 1e-4);
}

#[test]
fn the_view_zoom_undoes_the_predicted_zoom_within_the_range() {
    let regressor = ZoomRegressor {
        weight: vec![1.0, -1.0],
        bias: 0.0,
    };
    // Predicted log zoom ln 1.1: the face looks 1.1x larger, so it is viewed at 1 / 1.1.
    let x = [1.1f64.ln() as f32, 0.0];
    assert!((regressor.view_zoom(&x, [0.8, 1.25]) - 1.0 / 1.1).abs() < 1e-6);
    assert_eq!(regressor.view_zoom(&[2.0, 0.0], [0.8, 1.25]), 0.8);
    assert_eq!(regressor.view_zoom(&[0.0, 2.0], [0.8, 1.25]), 1.25);
    assert_eq!(regressor.view_zoom(&[f32::NAN, 0.0], [0.8, 1.25]), 1.0);

    let zooms = fit_zooms();
    assert_eq!(zooms.len(), 2 * FIT_ZOOM_STEPS as usize + 1);
    assert_eq!(zooms[FIT_ZOOM_STEPS as usize], 1.0);
    assert!((zooms[0] * FIT_ZOOM_STEP.powi(FIT_ZOOM_STEPS) - 1.0).abs() < 1e-12);
}

#[test]
fn bad_input_is_an_error() {
    let x = vec![0.5f32; 12];
    assert!(
        ZoomRegressor::fit(&x, 4, &[0.0, 0.1], 1.0).is_err(),
        "rows and targets disagree"
    );
    assert!(
        ZoomRegressor::fit(&x, 4, &[0.0, 0.1, 0.2], 0.0).is_err(),
        "no ridge"
    );
    let same = ZoomRegressor::fit(&x, 4, &[0.0, 0.1, 0.2], 1.0).unwrap_err();
    assert!(same.to_string().contains("do not vary"), "{same}");
}
