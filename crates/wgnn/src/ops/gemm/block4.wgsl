// 4 x 4 blocks of a GEMM's output held in registers, shared by its tiled and subgroup kernels.
// A block is a mat4x4 value, never an array indexed by a loop counter: on CPU drivers such as
// lavapipe a dynamically indexed private array lives in memory, which cost more than all the
// arithmetic (conv's tiled kernels ran 2.2x slower with one).

// Offsets of the 4 lanes of a vec4 that holds 4 adjacent rows or columns.
const LANES: vec4<u32> = vec4(0u, 1u, 2u, 3u);

// acc + outer(a, b): acc[i] += a[i] * b.
fn fma_outer(acc: mat4x4<f32>, a: vec4<f32>, b: vec4<f32>) -> mat4x4<f32> {
    return mat4x4(fma(vec4(a.x), b, acc[0]), fma(vec4(a.y), b, acc[1]),
                  fma(vec4(a.z), b, acc[2]), fma(vec4(a.w), b, acc[3]));
}
