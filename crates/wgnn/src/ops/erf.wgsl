// The error function and its complement in f32, accurate to a few units in the last place in
// relative terms over the whole range (erfc too, deep in its tail, where 1 - erf would have
// cancelled to nothing); WGSL has neither.
//   |z| < 1: erf from its Maclaurin series 2/sqrt(pi) sum_k (-1)^k z^(2k+1) / (k! (2k+1)),
//            k = 0..10 (the first term left out is below 1.1e-9 of the sum);
//   |z| >= 1: erfc from the Chebyshev fit of Numerical Recipes (`erfcc`, relative error below
//            1.2e-7 for every z >= 0), and erf = 1 - erfc, which cannot cancel there
//            (erfc(1) = 0.157).

const TWO_OVER_SQRT_PI: f32 = 1.1283791670955126;

fn erf_series(z: f32) -> f32 {
    let t = z * z;
    var s = 1.0 / 76204800.0;
    s = s * t - 1.0 / 6894720.0;
    s = s * t + 1.0 / 685440.0;
    s = s * t - 1.0 / 75600.0;
    s = s * t + 1.0 / 9360.0;
    s = s * t - 1.0 / 1320.0;
    s = s * t + 1.0 / 216.0;
    s = s * t - 1.0 / 42.0;
    s = s * t + 1.0 / 10.0;
    s = s * t - 1.0 / 3.0;
    s = s * t + 1.0;
    return TWO_OVER_SQRT_PI * z * s;
}

// erfc(z) for z >= 1 (any z >= 0 is accurate).
fn erfc_positive(z: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * z);
    var s = 0.17087277;
    s = s * t - 0.82215223;
    s = s * t + 1.48851587;
    s = s * t - 1.13520398;
    s = s * t + 0.27886807;
    s = s * t - 0.18628806;
    s = s * t + 0.09678418;
    s = s * t + 0.37409196;
    s = s * t + 1.00002368;
    s = s * t - 1.26551223;
    return t * exp(s - z * z);
}

fn erf(z: f32) -> f32 {
    let a = abs(z);
    if a < 1.0 {
        return erf_series(z);
    }
    return sign(z) * (1.0 - erfc_positive(a));
}

fn erfc(z: f32) -> f32 {
    if z >= 1.0 {
        return erfc_positive(z);
    }
    if z <= -1.0 {
        return 2.0 - erfc_positive(-z);
    }
    return 1.0 - erf_series(z);
}
