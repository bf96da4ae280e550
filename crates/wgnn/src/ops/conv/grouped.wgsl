// Grouped convolution (groups > 1: depthwise and the like) as direct loops, for every device:
// grouped_forward, grouped_backward_input and grouped_backward_weight; and the weight gradient
// of ungrouped convolutions of few input channels (few_channels_backward_weight, at the end).
// Layout and bindings are common.wgsl's; the weight is w [O, C / groups, KD, KH, KW], and
// output channel o reads the input channels of its group, g * c_group .. (g + 1) * c_group for
// g = o / o_group.
//
// Why not the GEMMs: a group's GEMM has o_group rows and c_group * taps terms, for depthwise
// 1 row and 9 terms (3 x 3), where the GEMM tiles hold 8 to 64 rows: at least 7 of 8 of their
// work would be wasted. A direct loop does exactly the multiply-adds of the definition. On
// lavapipe a depthwise 3 x 3 of 128 channels at 56 x 56 ran its forward 1.6x and its dx + dw
// 8x faster than the same work as a dense convolution of 128 single-channel images on the
// subgroup GEMMs. With many channels per group the GEMMs win (2 groups of 64 channels ran 22x
// slower here than a dense convolution of the same work): Graph::conv splits those into one
// ungrouped convolution per group.
//
// forward and backward_input: one invocation per 4 outputs adjacent along W (of one batch
// element, channel, z and y), workgroups of WG = 64 over them in row-major order, so a
// workgroup reads one channel's weights (the same for all invocations, a broadcast in the
// cache) and neighbouring inputs. backward_weight: one workgroup per weight, its invocations
// summing strided terms of the reduction over batch and output positions, then a fixed tree in
// workgroup memory (256 B). Each output is summed in one fixed order: deterministic.

#include "gpu/workgroup_index.wgsl"
#include "ops/conv/common.wgsl"

// Splits the flat index of an invocation over [batch, channel, rows (z, y), blocks of 4 along
// W] of a box of `channels` channels, `rows` rows and `width` positions.
struct Block {
    batch: u32,
    channel: u32,
    z: u32,
    y: u32,
    x: vec4<u32>,  // the 4 positions along W
    valid: bool,   // inside the batch (the dispatch rounds up)
}

fn block_of(flat: u32, channels: u32, depth: u32, height: u32, width: u32) -> Block {
    let blocks = (width + 3u) / 4u;
    let row = (flat / blocks) % (depth * height);
    let plane = flat / (blocks * depth * height);
    return Block(plane / channels, plane % channels, row / height, row % height,
                 (flat % blocks) * 4u + LANES, plane / channels < p.n);
}

// ---- forward ----

@compute @workgroup_size(WG)
fn grouped_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let b = block_of(workgroup_index(wid, nwg) * WG + lid, p.o, p.out_d, p.out_h, p.out_w);
    if !b.valid {
        return;
    }
    let iz0 = i32(b.z * p.stride_d) - i32(p.pad_d);
    let iy0 = i32(b.y * p.stride_h) - i32(p.pad_h);
    let ix0 = vec4<i32>(b.x * p.stride_w) - i32(p.pad_w);
    let first_c = (b.channel / p.o_group) * p.c_group;
    var acc = vec4(0.0);
    for (var cg = 0u; cg < p.c_group; cg++) {
        let x_plane = i32((b.batch * p.c + first_c + cg) * p.in_spatial);
        let w_first = b.channel * p.k_group + cg * p.k_vol;
        for (var kz = 0u; kz < p.k_d; kz++) {
            let iz = iz0 + i32(kz * p.dil_d);
            if u32(iz) >= p.in_d {
                continue;
            }
            for (var ky = 0u; ky < p.k_h; ky++) {
                let iy = iy0 + i32(ky * p.dil_h);
                if u32(iy) >= p.in_h {
                    continue;
                }
                let x_row = x_plane + (iz * i32(p.in_h) + iy) * i32(p.in_w);
                let w_row = w_first + (kz * p.k_h + ky) * p.k_w;
                if p.stride_w == 1u && p.dil_w == 1u {
                    // Tap kx reads x[ix0 + kx ..][0..4]: a window that slides by one position
                    // per tap, so each tap after the first loads one value, not four (about
                    // 1.2x on the depthwise benchmark, lavapipe).
                    var window = load_x4(vec4(x_row) + ix0, vec4<u32>(ix0) < vec4(p.in_w));
                    for (var kx = 0u; kx < p.k_w; kx++) {
                        acc = fma(window, vec4(w[w_row + kx]), acc);
                        let next = ix0.w + i32(kx) + 1;
                        let v = load_x4(vec4(x_row + next), vec4(u32(next) < p.in_w));
                        window = vec4(window.yzw, v.x);
                    }
                } else {
                    for (var kx = 0u; kx < p.k_w; kx++) {
                        let ix = ix0 + i32(kx * p.dil_w);
                        let xv = load_x4(vec4(x_row) + ix, vec4<u32>(ix) < vec4(p.in_w));
                        acc = fma(xv, vec4(w[w_row + kx]), acc);
                    }
                }
            }
        }
    }
    if p.has_bias != 0u {
        acc += bias[b.channel];
    }
    let v = forward_output(acc);
    let first = ((b.batch * p.o + b.channel) * p.out_d + b.z) * p.out_h * p.out_w
        + b.y * p.out_w;
    for (var j = 0u; j < 4u; j++) {
        if b.x[j] < p.out_w {
            y[first + b.x[j]] = v[j];
        }
    }
}

// ---- backward_input ----

// dx[batch, c, i] = sum over the o of c's group and the taps t with (i + pad - t * dil) a whole
// multiple of the stride landing inside the output, of dy[batch, o, that / stride] *
// w[o, c % c_group, t].
@compute @workgroup_size(WG)
fn grouped_backward_input(@builtin(workgroup_id) wid: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
    let b = block_of(workgroup_index(wid, nwg) * WG + lid, p.c, p.in_d, p.in_h, p.in_w);
    if !b.valid {
        return;
    }
    let reach_z = i32(b.z + p.pad_d);
    let reach_y = i32(b.y + p.pad_h);
    let reach_x = vec4<i32>(b.x + p.pad_w);
    let group = b.channel / p.c_group;
    let cg = b.channel % p.c_group;
    var acc = vec4(0.0);
    for (var og = 0u; og < p.o_group; og++) {
        let o = group * p.o_group + og;
        let dy_plane = i32((b.batch * p.o + o) * p.out_spatial);
        let w_first = o * p.k_group + cg * p.k_vol;
        for (var kz = 0u; kz < p.k_d; kz++) {
            let tz = reach_z - i32(kz * p.dil_d);
            let oz = tz / i32(p.stride_d);
            if tz < 0 || oz * i32(p.stride_d) != tz || u32(oz) >= p.out_d {
                continue;
            }
            for (var ky = 0u; ky < p.k_h; ky++) {
                let ty = reach_y - i32(ky * p.dil_h);
                let oy = ty / i32(p.stride_h);
                if ty < 0 || oy * i32(p.stride_h) != ty || u32(oy) >= p.out_h {
                    continue;
                }
                let dy_row = dy_plane + (oz * i32(p.out_h) + oy) * i32(p.out_w);
                let w_row = w_first + (kz * p.k_h + ky) * p.k_w;
                if p.stride_w == 1u && p.dil_w == 1u {
                    // Tap kx reads dy[reach_x - kx][0..4]: a window sliding back by one position
                    // per tap, one new load per tap as in the forward.
                    var window = load_dy4(vec4(dy_row) + reach_x,
                                          vec4<u32>(reach_x) < vec4(p.out_w));
                    for (var kx = 0u; kx < p.k_w; kx++) {
                        acc = fma(window, vec4(w[w_row + kx]), acc);
                        let next = reach_x.x - i32(kx) - 1;
                        let v = load_dy4(vec4(dy_row + next), vec4(u32(next) < p.out_w));
                        window = vec4(v.x, window.xyz);
                    }
                } else {
                    for (var kx = 0u; kx < p.k_w; kx++) {
                        let tx = reach_x - i32(kx * p.dil_w);
                        let ox = exact_quotient(tx, i32(p.stride_w));
                        let ok = ox * i32(p.stride_w) == tx & vec4<u32>(ox) < vec4(p.out_w);
                        acc = fma(load_dy4(vec4(dy_row) + ox, ok), vec4(w[w_row + kx]), acc);
                    }
                }
            }
        }
    }
    let first = ((b.batch * p.c + b.channel) * p.in_d + b.z) * p.in_h * p.in_w + b.y * p.in_w;
    for (var j = 0u; j < 4u; j++) {
        if b.x[j] < p.in_w {
            dx[first + b.x[j]] = acc[j];
        }
    }
}

// ---- backward_weight ----

var<workgroup> partial_sums: array<f32, WG>;

// dw[o, cg, t] = sum over batch and output positions q of dy[batch, o, q] *
// x[batch, g * c_group + cg, q * stride - pad + t * dil] (inside the input).
@compute @workgroup_size(WG)
fn grouped_backward_weight(@builtin(workgroup_id) wid: vec3<u32>,
                           @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lid: u32) {
    let weight = workgroup_index(wid, nwg);
    if weight >= p.o * p.k_group {
        return;  // the whole workgroup: the barriers below stay uniform
    }
    let o = weight / p.k_group;
    let cg = (weight % p.k_group) / p.k_vol;
    let tap = split_index(weight % p.k_vol, kernel_radix());
    let c = (o / p.o_group) * p.c_group + cg;
    let offset_z = i32(tap.z * p.dil_d) - i32(p.pad_d);
    let offset_y = i32(tap.y * p.dil_h) - i32(p.pad_h);
    let offset_x = i32(tap.x * p.dil_w) - i32(p.pad_w);
    // Term k = batch * out positions + q; each invocation takes k = lid, lid + WG, ..., its
    // digits (batch, oz, oy, ox) carried from term to term by addition (no divisions).
    var at = split_index(lid, out_radix());
    let step = split_index(WG, out_radix());
    var total = 0.0;
    for (var k = lid; k < p.n * p.out_spatial; k += WG) {
        let iz = i32(at.z * p.stride_d) + offset_z;
        let iy = i32(at.y * p.stride_h) + offset_y;
        let ix = i32(at.x * p.stride_w) + offset_x;
        if u32(iz) < p.in_d && u32(iy) < p.in_h && u32(ix) < p.in_w {
            let x_plane = i32((at.outer * p.c + c) * p.in_spatial);
            let xv = x[x_plane + (iz * i32(p.in_h) + iy) * i32(p.in_w) + ix];
            let q = (at.z * p.out_h + at.y) * p.out_w + at.x;
            total = fma(dy_w[(at.outer * p.o + o) * p.out_spatial + q], xv, total);
        }
        at = add_digits(at, step, out_radix());
    }
    partial_sums[lid] = total;
    for (var half = WG / 2u; half > 0u; half /= 2u) {
        workgroupBarrier();
        if lid < half {
            partial_sums[lid] += partial_sums[lid + half];
        }
    }
    if lid == 0u {
        dw[weight] = partial_sums[0];
    }
}

// ---- few_channels_backward_weight ----

// dw of an ungrouped convolution of few input channels (an image's first layer), whose GEMM has
// C * taps columns (9 for a grey 3 x 3) where the GEMM tiles hold 128 to 256: most of their work
// would be wasted. Invocation (slice s, block of FEW_O output channels, input channel c, chunk
// of FEW_TAPS taps) sums the terms k = s, s + splits, ... of batch * out positions, so that
// neighbouring invocations read neighbouring positions; each term loads FEW_O values of dy and
// FEW_TAPS of x for FEW_O * FEW_TAPS multiply-adds. Slice s writes its sums at
// dw[s * O * C * taps + (o * C + c) * taps + t] (the partial sums when splits > 1, which
// conv_reduce's weight_reduce then adds in order): deterministic.
const FEW_O: u32 = 8u;
const FEW_TAPS: u32 = 9u;

@compute @workgroup_size(WG)
fn few_channels_backward_weight(@builtin(workgroup_id) wid: vec3<u32>,
                                @builtin(num_workgroups) nwg: vec3<u32>,
                                @builtin(local_invocation_index) lid: u32) {
    let flat = workgroup_index(wid, nwg) * WG + lid;
    let slice = flat % p.splits;
    let chunks = (p.k_vol + FEW_TAPS - 1u) / FEW_TAPS;
    let chunk = (flat / p.splits) % chunks;
    let c = (flat / (p.splits * chunks)) % p.c;
    let o0 = (flat / (p.splits * chunks * p.c)) * FEW_O;
    if o0 >= p.o {
        return;
    }
    let t0 = chunk * FEW_TAPS;
    var offset_z: array<i32, FEW_TAPS>;
    var offset_y: array<i32, FEW_TAPS>;
    var offset_x: array<i32, FEW_TAPS>;
    for (var i = 0u; i < FEW_TAPS; i++) {
        // Taps past the kernel get an offset that no position brings inside.
        let tap = split_index(min(t0 + i, p.k_vol - 1u), kernel_radix());
        offset_z[i] = select(OUTSIDE, i32(tap.z * p.dil_d) - i32(p.pad_d), t0 + i < p.k_vol);
        offset_y[i] = i32(tap.y * p.dil_h) - i32(p.pad_h);
        offset_x[i] = i32(tap.x * p.dil_w) - i32(p.pad_w);
    }
    var acc: array<f32, 72>;  // FEW_O * FEW_TAPS, output channel major
    for (var i = 0u; i < FEW_O * FEW_TAPS; i++) {
        acc[i] = 0.0;
    }
    var at = split_index(slice, out_radix());
    let step = split_index(p.splits, out_radix());
    for (var k = slice; k < p.n * p.out_spatial; k += p.splits) {
        let q = (at.z * p.out_h + at.y) * p.out_w + at.x;
        let dy_first = (at.outer * p.o + o0) * p.out_spatial + q;
        var d: array<f32, FEW_O>;
        for (var j = 0u; j < FEW_O; j++) {
            // Channels past O read channel O - 1 and are never stored.
            d[j] = dy_w[dy_first + min(j, p.o - 1u - o0) * p.out_spatial];
        }
        let x_plane = i32((at.outer * p.c + c) * p.in_spatial);
        let base_z = i32(at.z * p.stride_d);
        let base_y = i32(at.y * p.stride_h);
        let base_x = i32(at.x * p.stride_w);
        for (var i = 0u; i < FEW_TAPS; i++) {
            let iz = base_z + offset_z[i];
            let iy = base_y + offset_y[i];
            let ix = base_x + offset_x[i];
            let inside = u32(iz) < p.in_d && u32(iy) < p.in_h && u32(ix) < p.in_w;
            let at_x = select(0, x_plane + (iz * i32(p.in_h) + iy) * i32(p.in_w) + ix, inside);
            let xv = select(0.0, x[at_x], inside);
            for (var j = 0u; j < FEW_O; j++) {
                acc[j * FEW_TAPS + i] = fma(d[j], xv, acc[j * FEW_TAPS + i]);
            }
        }
        at = add_digits(at, step, out_radix());
    }
    let first = slice * p.o * p.c * p.k_vol;
    for (var j = 0u; j < FEW_O; j++) {
        let o = o0 + j;
        for (var i = 0u; i < FEW_TAPS; i++) {
            if o < p.o && t0 + i < p.k_vol {
                dw[first + (o * p.c + c) * p.k_vol + t0 + i] = acc[j * FEW_TAPS + i];
            }
        }
    }
}
