// Activations: elementwise over a flat array of `n` f32 values (any layout).
//   forward:  y[i] = f(x[i])
//   backward: dx[i] = dy[i] * f'(x[i]), with f' taken from x for every kind so that one rule
//             serves all (sigmoid and tanh recompute an exponential; cheaper than a second
//             read of y).
// One invocation per element, 256 per workgroup; the dispatch is split over x/y/z by the
// runtime for large n.
// KIND: 0 ReLU, 1 LeakyReLU(alpha), 2 Sigmoid, 3 Tanh, 4 ELU(alpha), 5 SiLU, 6 GELU (with erf),
// 7 GELU (tanh approximation), 8 hard-swish, 9 hard-sigmoid clamp(alpha v + beta, 0, 1),
// 10 clamp(v, alpha, beta), 11 erf.
// Where a derivative is 0 or 1 on either side of a kink (ReLU, hard-swish, hard-sigmoid,
// clamp), the kink takes PyTorch's side: ReLU' (0) = 0, hard-swish' (+-3) = the inner formula,
// hard-sigmoid' = 0 at its corners, clamp' = 1 at its bounds.

#include "gpu/workgroup_index.wgsl"
#include "ops/sigmoid.wgsl"
#include "ops/erf.wgsl"

struct Params {
    n: u32,
    alpha: f32,
    beta: f32,
}

// The kind as a pipeline constant: each kind compiles to its own pipeline, whose switch below
// folds to one case. A switch on a uniform runs every case on lavapipe, which cannot tell that
// all lanes agree (ReLU's backward ran 6x slower through it).
override KIND: u32 = 0u;

@group(0) @binding(0) var<uniform> p: Params;
// forward bindings
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
// backward bindings: x at 1 as above, then dy, dx
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

const WG: u32 = 256u;

fn tanh_stable(v: f32) -> f32 {
    // tanh(v) = sign(v) * (1 - e) / (1 + e) with e = exp(-2|v|): no overflow, no cancellation.
    let e = exp(-2.0 * abs(v));
    return sign(v) * (1.0 - e) / (1.0 + e);
}

const FRAC_1_SQRT_2: f32 = 0.7071067811865476;
const FRAC_1_SQRT_2PI: f32 = 0.3989422804014327;
const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const GELU_CUBIC: f32 = 0.044715;

// The argument 2u of GELU's tanh approximation 0.5 v (1 + tanh(u)) = v sigmoid(2u), written so
// that nothing cancels where tanh(u) is near -1.
fn gelu_tanh_argument(v: f32) -> f32 {
    return 2.0 * SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v);
}

fn activate(v: f32) -> f32 {
    switch KIND {
        case 0u: { return max(v, 0.0); }
        case 1u: { return select(p.alpha * v, v, v > 0.0); }
        case 2u: { return sigmoid(v); }
        case 3u: { return tanh_stable(v); }
        case 4u: { return select(p.alpha * (exp(v) - 1.0), v, v > 0.0); }
        case 5u: { return v * sigmoid(v); }
        // v Phi(v) with Phi(v) = erfc(-v / sqrt 2) / 2: relative accuracy in the left tail too.
        case 6u: { return 0.5 * v * erfc(-v * FRAC_1_SQRT_2); }
        case 7u: { return v * sigmoid(gelu_tanh_argument(v)); }
        case 8u: { return v * clamp(v + 3.0, 0.0, 6.0) / 6.0; }
        case 9u: { return clamp(p.alpha * v + p.beta, 0.0, 1.0); }
        case 10u: { return min(max(v, p.alpha), p.beta); }
        default: { return erf(v); }
    }
}

// sigmoid(v) (1 - sigmoid(v)) as e / (1 + e)^2 with e = exp(-|v|): nothing subtracts.
fn sigmoid_slope(v: f32) -> f32 {
    let e = exp(-abs(v));
    let s = 1.0 + e;
    return e / (s * s);
}

fn derivative(v: f32) -> f32 {
    switch KIND {
        case 0u: { return select(0.0, 1.0, v > 0.0); }
        case 1u: { return select(p.alpha, 1.0, v > 0.0); }
        // s (1 - s) and 1 - t^2 cancel where the curve saturates (relative errors of 1.4e-4
        // for |v| < 4 on an H200, 3e-2 at |v| = 7 on lavapipe); in e = exp(-|v|) nothing
        // subtracts:
        // sigmoid' = e / (1 + e)^2, tanh' = 4 e^2 / (1 + e^2)^2.
        case 2u: { return sigmoid_slope(v); }
        case 3u: { let e = exp(-2.0 * abs(v)); let s = 1.0 + e; return 4.0 * e / (s * s); }
        case 4u: { return select(p.alpha * exp(v), 1.0, v > 0.0); }
        case 5u: { return sigmoid(v) + v * sigmoid_slope(v); }
        case 6u: {
            return 0.5 * erfc(-v * FRAC_1_SQRT_2) + v * FRAC_1_SQRT_2PI * exp(-0.5 * v * v);
        }
        case 7u: {
            // Past |v| = 20 the slope is 0 or 1 to f32 precision; clamping keeps v^3 and
            // v * 0 from turning into inf * 0 for huge inputs.
            let w = clamp(v, -20.0, 20.0);
            let a = gelu_tanh_argument(w);
            let da = 2.0 * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_CUBIC * w * w);
            return sigmoid(a) + w * da * sigmoid_slope(a);
        }
        case 8u: { return select(select((2.0 * v + 3.0) / 6.0, 1.0, v > 3.0), 0.0, v < -3.0); }
        case 9u: {
            let u = p.alpha * v + p.beta;
            return select(0.0, p.alpha, u > 0.0 && u < 1.0);
        }
        case 10u: { return select(0.0, 1.0, v >= p.alpha && v <= p.beta); }
        default: { return TWO_OVER_SQRT_PI * exp(-v * v); }
    }
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i < p.n {
        y[i] = activate(x[i]);
    }
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i < p.n {
        dx[i] = dy[i] * derivative(x[i]);
    }
}

// forward and backward for n a multiple of 4, as vec4s (p.n counts vec4s): lavapipe turns each
// load or store into a loop over the SIMD lanes, and one loop moving 4 components costs far less
// than 4 loops (the style step's ReLU gradients ran 2x faster).
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> dx4: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn forward4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i < p.n {
        let v = x4[i];
        y4[i] = vec4(activate(v.x), activate(v.y), activate(v.z), activate(v.w));
    }
}

@compute @workgroup_size(WG)
fn backward4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i < p.n {
        let v = x4[i];
        dx4[i] = dy4[i] * vec4(derivative(v.x), derivative(v.y), derivative(v.z),
                               derivative(v.w));
    }
}
