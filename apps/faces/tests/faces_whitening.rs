//! Learned whitening and the symmetric eigensolver behind it, against definitions.
use wgnn::rng::Rng;
use wgnn_faces::whitening::{learned_whitening, symmetric_eigen};

fn random_symmetric(rng: &mut Rng, n: usize) -> Vec<f64> {
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in i..n {
            let v = rng.range(-1.0, 1.0);
            a[i * n + j] = v;
            a[j * n + i] = v;
        }
    }
    a
}

#[test]
fn eigenpairs_satisfy_the_definition_and_are_orthonormal() {
    let mut rng = Rng::new(3);
    for n in [1, 2, 5, 17, 40] {
        let a = random_symmetric(&mut rng, n);
        let (values, vectors) = symmetric_eigen(a.clone(), n);
        for w in values.windows(2) {
            assert!(w[0] >= w[1], "not descending: {values:?}");
        }
        for j in 0..n {
            for i in 0..n {
                let av: f64 = (0..n).map(|k| a[i * n + k] * vectors[k * n + j]).sum();
                assert!(
                    (av - values[j] * vectors[i * n + j]).abs() < 1e-10,
                    "n {n}: A v != l v"
                );
            }
            for k in 0..n {
                let d: f64 = (0..n)
                    .map(|i| vectors[i * n + j] * vectors[i * n + k])
                    .sum();
                let expected = if j == k { 1.0 } else { 0.0 };
                assert!((d - expected).abs() < 1e-10, "n {n}: not orthonormal");
            }
        }
    }
}

#[test]
fn eigenvalues_of_a_known_matrix() {
    // [[2, 1], [1, 2]] has eigenvalues 3 and 1 with vectors (1, 1) / sqrt 2 and (1, -1) / sqrt 2.
    let (values, vectors) = symmetric_eigen(vec![2.0, 1.0, 1.0, 2.0], 2);
    assert!((values[0] - 3.0).abs() < 1e-12 && (values[1] - 1.0).abs() < 1e-12);
    let s = 0.5f64.sqrt();
    assert!((vectors[0] - s).abs() < 1e-12 && (vectors[2] - s).abs() < 1e-12);
}

/// Identities as tight clusters along a few directions, with large shared nuisance variation
/// along another: whitening must shrink the nuisance and separate the identities.
#[test]
fn whitening_whitens_the_within_identity_scatter() {
    let mut rng = Rng::new(5);
    let (ids, per, d) = (6usize, 8usize, 10usize);
    let mut x = Vec::new();
    let mut labels = Vec::new();
    for id in 0..ids {
        let centre: Vec<f64> = (0..d).map(|_| rng.range(-1.0, 1.0)).collect();
        for _ in 0..per {
            let nuisance = rng.range(-5.0, 5.0);
            for (k, c) in centre.iter().enumerate() {
                let mut v = c + 0.05 * rng.normal();
                if k == 0 {
                    v += nuisance;
                }
                x.push(v as f32);
            }
            labels.push(id as u32);
        }
    }
    let n = labels.len();
    let map = learned_whitening(&x, d, &labels, d, 1e-6).unwrap();
    let y: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            (0..d)
                .map(|r| {
                    (0..d)
                        .map(|c| map.weight[r * d + c] as f64 * x[i * d + c] as f64)
                        .sum::<f64>()
                        + map.bias[r] as f64
                })
                .collect()
        })
        .collect();
    // Centred: the mean output is zero.
    for r in 0..d {
        let m: f64 = y.iter().map(|v| v[r]).sum::<f64>() / n as f64;
        assert!(m.abs() < 1e-3, "output {r} has mean {m}");
    }
    // The within-identity covariance is (nearly) the identity (shrinkage 1e-6).
    let mut cov = vec![0f64; d * d];
    for id in 0..ids {
        let rows = &y[id * per..(id + 1) * per];
        let mean: Vec<f64> = (0..d)
            .map(|r| rows.iter().map(|v| v[r]).sum::<f64>() / per as f64)
            .collect();
        for v in rows {
            for a in 0..d {
                for b in 0..d {
                    cov[a * d + b] += (v[a] - mean[a]) * (v[b] - mean[b]) / n as f64;
                }
            }
        }
    }
    for a in 0..d {
        for b in 0..d {
            let expected = if a == b { 1.0 } else { 0.0 };
            assert!(
                (cov[a * d + b] - expected).abs() < 0.02,
                "cov[{a}][{b}] = {}",
                cov[a * d + b]
            );
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    assert!(learned_whitening(&[1.0, 2.0, 3.0], 2, &[0, 1], 2, 1.0).is_err());
    assert!(
        learned_whitening(&[1.0; 8], 2, &[0, 0, 1, 1], 2, 1.0).is_err(),
        "all equal"
    );
}
