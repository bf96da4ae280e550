// Optimisers: in-place parameter updates at the end of a training step, with PyTorch's
// semantics (torch.optim.SGD with dampening 0, torch.optim.Adam / AdamW).
//
// What changes from step to step lives in a 16-byte storage buffer, `Schedule`, so that nothing
// is re-created per step: the step count, the learning rate (written by the CPU with
// queue.write_buffer for learning-rate schedules) and Adam's bias corrections. Each step runs
//   advance        one invocation: step += 1, then step_size = lr / (1 - beta1^step) and
//                  bias_correction2_sqrt = sqrt(1 - beta2^step) (SGD passes betas of 0, so both
//                  corrections are 1), each 1 - beta^step accurate to a few roundings per bit
//                  of step (see one_minus_power);
//   sgd, sgd_momentum, adam
//                  one invocation per element of one parameter tensor (flat, any layout), 256
//                  per workgroup, reading the schedule that `advance` wrote.
// Every element is updated by one invocation with a fixed sequence of operations: results are
// bit-identical from run to run.

#include "gpu/workgroup_index.wgsl"

struct Params {
    n: u32,             // elements of this parameter
    flags: u32,         // bit 0: Nesterov momentum (SGD); bit 1: decoupled weight decay (AdamW)
    momentum: f32,      // SGD
    weight_decay: f32,
    beta1: f32,         // Adam (advance: 0 for SGD)
    beta2: f32,
    eps: f32,
    _pad: u32,
}

struct Schedule {
    step: u32,                   // steps taken, including the current one once advanced
    lr: f32,
    step_size: f32,              // lr / (1 - beta1^step)
    bias_correction2_sqrt: f32,  // sqrt(1 - beta2^step)
}

const NESTEROV: u32 = 1u;
const DECOUPLED: u32 = 2u;

@group(0) @binding(0) var<uniform> p: Params;
// advance: the schedule, read-write
@group(0) @binding(1) var<storage, read_write> schedule_rw: Schedule;
// updates: schedule, gradient, then the parameter and its state buffers (read-write)
@group(0) @binding(1) var<storage, read> schedule: Schedule;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> param: array<f32>;
@group(0) @binding(4) var<storage, read_write> state1: array<f32>;  // momentum buffer / exp_avg
@group(0) @binding(5) var<storage, read_write> state2: array<f32>;  // exp_avg_sq

const WG: u32 = 256u;

// 1 - b^e, without the cancellation of subtracting b^e from 1 (for beta2 = 0.999 and small e
// that would cost about half the digits). Square-and-multiply from the top bit on the pair
// (p, c) = (b^k, 1 - b^k), using only sums and products of positive terms:
//   1 - b^2k     = (1 - b^k)(1 + b^k)
//   1 - b^(k+1)  = (1 - b^k) + b^k (1 - b)
// so the relative error stays within a few roundings per bit.
fn one_minus_power(b: f32, e: u32) -> f32 {
    let d = 1.0 - b;
    var p = 1.0;
    var c = 0.0;
    for (var bit = 31i; bit >= 0i; bit--) {
        c = c * (1.0 + p);
        p = p * p;
        if ((e >> u32(bit)) & 1u) == 1u {
            c = c + p * d;
            p = p * b;
        }
    }
    return c;
}

@compute @workgroup_size(1)
fn advance() {
    let step = schedule_rw.step + 1u;
    schedule_rw.step = step;
    let lr = schedule_rw.lr;
    schedule_rw.step_size = lr / one_minus_power(p.beta1, step);
    schedule_rw.bias_correction2_sqrt = sqrt(one_minus_power(p.beta2, step));
}

// g = grad + wd * param (skipped when wd is 0, as PyTorch does).
fn decayed_grad(i: u32) -> f32 {
    if p.weight_decay != 0.0 {
        return grad[i] + p.weight_decay * param[i];
    }
    return grad[i];
}

// param -= lr * g.
@compute @workgroup_size(WG)
fn sgd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i >= p.n {
        return;
    }
    param[i] = param[i] - schedule.lr * decayed_grad(i);
}

// v = momentum * v + g; param -= lr * (Nesterov ? g + momentum * v : v). state1 = v.
@compute @workgroup_size(WG)
fn sgd_momentum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i >= p.n {
        return;
    }
    let g = decayed_grad(i);
    let v = p.momentum * state1[i] + g;
    state1[i] = v;
    var direction = v;
    if (p.flags & NESTEROV) != 0u {
        direction = g + p.momentum * v;
    }
    param[i] = param[i] - schedule.lr * direction;
}

// AdamW: param *= 1 - lr * wd; Adam: g += wd * param. Then
//   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
//   param -= step_size * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// state1 = m (exp_avg), state2 = v (exp_avg_sq).
@compute @workgroup_size(WG)
fn adam(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = workgroup_index(wid, nwg) * WG + lid;
    if i >= p.n {
        return;
    }
    var w = param[i];
    var g = grad[i];
    if p.weight_decay != 0.0 {
        if (p.flags & DECOUPLED) != 0u {
            w = w * (1.0 - schedule.lr * p.weight_decay);
        } else {
            g = g + p.weight_decay * w;
        }
    }
    let m = p.beta1 * state1[i] + (1.0 - p.beta1) * g;
    let v = p.beta2 * state2[i] + (1.0 - p.beta2) * g * g;
    state1[i] = m;
    state2[i] = v;
    let denom = sqrt(v) / schedule.bias_correction2_sqrt + p.eps;
    param[i] = w - schedule.step_size * (m / denom);
}
