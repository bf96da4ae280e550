// The flat index of a workgroup. Dispatches are a flat count of workgroups spread over x, y and z
// (Gpu::split_workgroups) so that no dimension exceeds the device's
// max_compute_workgroups_per_dimension; kernels must ignore indices at or past the count they
// asked for.
fn workgroup_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + nwg.x * (wid.y + nwg.y * wid.z);
}
