//! The benchmarks live in `kernels/`: `cargo bench --bench kernels`.
