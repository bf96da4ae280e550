// The logistic function 1 / (1 + exp(-v)), split by sign so that exp never overflows.
fn sigmoid(v: f32) -> f32 {
    if v >= 0.0 {
        return 1.0 / (1.0 + exp(-v));
    }
    let e = exp(v);
    return e / (1.0 + e);
}
