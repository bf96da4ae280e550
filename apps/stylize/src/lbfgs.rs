//! L-BFGS for the image, on the CPU: the GPU evaluates J and dJ/dx, the two-loop recursion over
//! the last `history` steps proposes a direction, and a backtracking line search on the box
//! [0, 1] accepts a step only if J decreases (Armijo condition), so J never increases.

use std::collections::VecDeque;

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

pub struct Lbfgs {
    history: usize,
    steps: VecDeque<(Vec<f32>, Vec<f32>, f64)>, // (s, y, 1 / y.s)
}

/// What one line search did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LineSearch {
    /// Accepted a step of this length; J went down.
    Accepted(f64),
    /// No step decreased J: the image is (locally) optimal at this resolution.
    Stalled,
}

impl Lbfgs {
    pub fn new(history: usize) -> Self {
        Self {
            history: history.max(1),
            steps: VecDeque::new(),
        }
    }

    /// The quasi-Newton direction -H g (two-loop recursion), or -g without history.
    pub fn direction(&self, grad: &[f32]) -> Vec<f32> {
        let mut q: Vec<f64> = grad.iter().map(|&v| v as f64).collect();
        let mut alphas = Vec::with_capacity(self.steps.len());
        for (s, y, rho) in self.steps.iter().rev() {
            let a = rho
                * s.iter()
                    .zip(&q)
                    .map(|(si, qi)| *si as f64 * qi)
                    .sum::<f64>();
            for (qi, yi) in q.iter_mut().zip(y) {
                *qi -= a * *yi as f64;
            }
            alphas.push(a);
        }
        if let Some((s, y, _)) = self.steps.back() {
            let gamma = dot(s, y) / dot(y, y).max(f64::MIN_POSITIVE);
            q.iter_mut().for_each(|v| *v *= gamma);
        }
        for ((s, y, rho), a) in self.steps.iter().zip(alphas.into_iter().rev()) {
            let b = rho
                * y.iter()
                    .zip(&q)
                    .map(|(yi, qi)| *yi as f64 * qi)
                    .sum::<f64>();
            for (qi, si) in q.iter_mut().zip(s) {
                *qi += (a - b) * *si as f64;
            }
        }
        q.into_iter().map(|v| -v as f32).collect()
    }

    /// Remembers a step s = x_new - x and y = g_new - g when the curvature is positive.
    pub fn remember(&mut self, s: Vec<f32>, y: Vec<f32>) {
        let sy = dot(&s, &y);
        if sy > 1e-10 {
            if self.steps.len() == self.history {
                self.steps.pop_front();
            }
            self.steps.push_back((s, y, 1.0 / sy));
        }
    }

    pub fn reset(&mut self) {
        self.steps.clear();
    }

    pub fn has_history(&self) -> bool {
        !self.steps.is_empty()
    }
}

/// x + t d projected on [0, 1].
pub fn projected_step(x: &[f32], d: &[f32], t: f64) -> Vec<f32> {
    x.iter()
        .zip(d)
        .map(|(xi, di)| (*xi as f64 + t * *di as f64).clamp(0.0, 1.0) as f32)
        .collect()
}

/// Backtracking line search: tries t, t/2, t/4, ... (at most `tries`) and accepts the first
/// projected step with f(x_new) <= f(x) + 1e-4 g.(x_new - x) and f(x_new) < f(x).
/// `evaluate` sets the image and returns J there.
pub fn line_search(
    x: &[f32],
    f: f64,
    grad: &[f32],
    d: &[f32],
    initial: f64,
    tries: usize,
    evaluate: &mut dyn FnMut(&[f32]) -> wgnn::Result<f64>,
) -> wgnn::Result<(LineSearch, Vec<f32>, f64)> {
    let mut t = initial;
    for _ in 0..tries {
        let candidate = projected_step(x, d, t);
        let moved: Vec<f32> = candidate.iter().zip(x).map(|(a, b)| a - b).collect();
        let decrease = dot(grad, &moved);
        let value = evaluate(&candidate)?;
        if value.is_finite() && value < f && value <= f + 1e-4 * decrease {
            return Ok((LineSearch::Accepted(t), candidate, value));
        }
        t *= 0.5;
    }
    evaluate(x)?;
    Ok((LineSearch::Stalled, x.to_vec(), f))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A badly scaled quadratic with its minimum inside the box: L-BFGS must reach it, and J
    /// must never increase along the way.
    #[test]
    fn minimises_a_quadratic_monotonically() {
        let n = 20;
        let target: Vec<f32> = (0..n).map(|i| 0.1 + 0.8 * i as f32 / n as f32).collect();
        let scale: Vec<f32> = (0..n).map(|i| 1.0 + 50.0 * i as f32 / n as f32).collect();
        let f = |x: &[f32]| -> f64 {
            x.iter()
                .zip(&target)
                .zip(&scale)
                .map(|((a, b), s)| (*s * (a - b) * (a - b)) as f64)
                .sum()
        };
        let g = |x: &[f32]| -> Vec<f32> {
            x.iter()
                .zip(&target)
                .zip(&scale)
                .map(|((a, b), s)| 2.0 * s * (a - b))
                .collect()
        };
        let mut x = vec![0.5f32; n];
        let mut value = f(&x);
        let mut grad = g(&x);
        let mut opt = Lbfgs::new(10);
        for _ in 0..50 {
            let d = opt.direction(&grad);
            let mut eval = |c: &[f32]| Ok(f(c));
            let (result, x_new, v_new) =
                line_search(&x, value, &grad, &d, 1.0, 30, &mut eval).unwrap();
            assert!(v_new <= value, "J increased: {v_new} > {value}");
            if result == LineSearch::Stalled {
                break;
            }
            let g_new = g(&x_new);
            opt.remember(
                x_new.iter().zip(&x).map(|(a, b)| a - b).collect(),
                g_new.iter().zip(&grad).map(|(a, b)| a - b).collect(),
            );
            x = x_new;
            value = v_new;
            grad = g_new;
        }
        assert!(value < 1e-8, "did not converge: {value}");
    }
}
