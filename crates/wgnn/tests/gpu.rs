//! The GPU context: adapter errors, listing, dispatch splitting, validation errors as values.
use wgnn_reference::testing as common;

use common::*;
use wgnn::gpu::{split_workgroups, KernelCall};
use wgnn::ops::activation::{Activation, ActivationForward, SHADER};
use wgnn::rng::Rng;

#[test]
fn adapters_are_listed() {
    let adapters = wgnn::gpu::list_adapters();
    assert!(!adapters.is_empty(), "no adapter listed");
    assert!(adapters.iter().any(|a| a.name == gpu().adapter.name));
}

#[test]
fn an_unknown_adapter_name_is_an_error_not_a_panic() {
    let mut choice = wgnn::gpu::AdapterChoice::from_env();
    choice.name = Some("no-such-adapter-xyz".into());
    let result = wgnn::Gpu::with_choice(&choice);
    let message = result
        .err()
        .expect("an unknown adapter must fail")
        .to_string();
    assert!(message.contains("no-such-adapter-xyz"), "{message}");
    assert!(message.contains("no GPU adapter"), "{message}");
}

#[test]
fn workgroups_split_over_dimensions() {
    for (total, max) in [
        (1u32, 7u32),
        (7, 7),
        (8, 7),
        (49, 7),
        (50, 7),
        (343, 7),
        (65535 * 3, 65535),
    ] {
        let [x, y, z] = split_workgroups(total, max).unwrap();
        assert!(x <= max && y <= max && z <= max, "{total}: {x} {y} {z}");
        assert!(
            (x * y * z) >= total && (x * y * z) - total < x * y,
            "{total}: {x} {y} {z}"
        );
    }
    assert!(split_workgroups(344, 7).is_err());
}

#[test]
fn a_dispatch_larger_than_one_dimension_allows_is_split_and_complete() {
    let gpu = gpu();
    let max = gpu.limits.max_compute_workgroups_per_dimension as usize;
    // More workgroups of 256 than one dimension allows.
    let n = (max + 123) * 256 + 7;
    assert!(
        4 * n as u64 <= gpu.limits.max_storage_buffer_binding_size,
        "device binds too little for this test"
    );
    let mut rng = Rng::new(9);
    let x = rng.vec_f32(n, -1.0, 1.0);
    let tx = wgnn::Tensor::from_f32(gpu, [n], &x).unwrap();
    let y = eval(&ActivationForward(Activation::Relu), &[&tx]);
    let wrong = y.iter().zip(&x).filter(|(a, b)| **a != b.max(0.0)).count();
    assert_eq!(wrong, 0, "{wrong} of {n} elements wrong or unwritten");
}

#[test]
fn validation_errors_come_back_with_the_kernel_name() {
    let gpu = gpu();
    let x = gpu.upload("x", &[1.0f32; 4]).unwrap();
    // The forward kernel writes binding 2; binding nothing there is a layout mismatch.
    let result = gpu.prepare(KernelCall {
        shader: &SHADER,
        entry: "forward",
        constants: &[],
        params: &[0; 16],
        reads: &[&x],
        writes: &[],
        workgroups: 1,
    });
    let message = result
        .expect_err("a bad binding layout must fail")
        .to_string();
    assert!(message.contains("activation::forward"), "{message}");
}

#[test]
fn oversized_buffers_are_refused_with_the_limit() {
    let gpu = gpu();
    let too_big = gpu.limits.max_storage_buffer_binding_size + 4;
    let message = gpu
        .storage_buffer("huge", too_big)
        .expect_err("must fail")
        .to_string();
    assert!(
        message.contains("huge") && message.contains("at most"),
        "{message}"
    );
}
