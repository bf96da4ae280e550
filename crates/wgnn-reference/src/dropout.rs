//! Dropout's mask, from the same hash as the kernel in plain u32 arithmetic, and the forward and
//! backward in float64 for a given mask.

/// Chris Wellons' `lowbias32`.
fn lowbias32(v: u32) -> u32 {
    let mut h = v;
    h ^= h >> 16;
    h = h.wrapping_mul(0x7feb352d);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846ca68b);
    h ^= h >> 16;
    h
}

/// Whether each of `n` elements is kept: its hash of (seed, stream, index) is at least
/// floor(p * 2^32).
pub fn keep_mask(seed: u32, stream: u32, n: usize, p: f32) -> Vec<bool> {
    let threshold = (p as f64 * 4294967296.0) as u32;
    let key = lowbias32(lowbias32(stream) ^ seed);
    (0..n as u32)
        .map(|i| lowbias32(lowbias32(i ^ key).wrapping_add(key)) >= threshold)
        .collect()
}

/// x / (1 - p) where kept, 0 elsewhere.
pub fn forward(x: &[f64], keep: &[bool], p: f64) -> Vec<f64> {
    x.iter()
        .zip(keep)
        .map(|(&v, &k)| if k { v / (1.0 - p) } else { 0.0 })
        .collect()
}

/// dx for the upstream gradient `dy`: the same masking and scaling.
pub fn backward(dy: &[f64], keep: &[bool], p: f64) -> Vec<f64> {
    forward(dy, keep, p)
}
