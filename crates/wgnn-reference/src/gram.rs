//! Gram matrices in float64: G[n] = F F^T / (C * HW), F the C x HW matrix of x[n].

/// x is [N, C, HW] (spatial dims flattened); returns [N, C, C].
pub fn gram(x: &[f64], n: usize, c: usize, hw: usize) -> Vec<f64> {
    let scale = 1.0 / (c * hw) as f64;
    let mut g = vec![0.0; n * c * c];
    for b in 0..n {
        let f = &x[b * c * hw..(b + 1) * c * hw];
        for i in 0..c {
            for j in 0..c {
                let dot: f64 = (0..hw).map(|k| f[i * hw + k] * f[j * hw + k]).sum();
                g[(b * c + i) * c + j] = dot * scale;
            }
        }
    }
    g
}

/// dF = (dG + dG^T) F / (C * HW).
pub fn gram_backward(x: &[f64], n: usize, c: usize, hw: usize, dg: &[f64]) -> Vec<f64> {
    let scale = 1.0 / (c * hw) as f64;
    let mut df = vec![0.0; x.len()];
    for b in 0..n {
        let f = &x[b * c * hw..(b + 1) * c * hw];
        let g = &dg[b * c * c..(b + 1) * c * c];
        for i in 0..c {
            for k in 0..hw {
                let sum: f64 = (0..c)
                    .map(|j| (g[i * c + j] + g[j * c + i]) * f[j * hw + k])
                    .sum();
                df[(b * c + i) * hw + k] = sum * scale;
            }
        }
    }
    df
}
