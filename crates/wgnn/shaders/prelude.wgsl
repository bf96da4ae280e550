// Prelude: prepended to every shader file by the runtime (src/gpu/kernel.rs).

// Dispatches are a flat count of workgroups spread over x, y and z so that no dimension exceeds
// the device's max_compute_workgroups_per_dimension; this recovers the flat workgroup index.
// Kernels must ignore indices at or past the count they asked for.
fn workgroup_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + nwg.x * (wid.y + nwg.y * wid.z);
}
