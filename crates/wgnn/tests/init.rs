//! Parameter initialisation: fans from PyTorch layouts, statistics of every initialiser on a
//! large tensor, and reproducibility from the seed.
use wgnn_reference::testing as common;

use common::gpu;
use wgnn::nn::init::fans;
use wgnn::nn::{FanMode, Init, Nonlinearity, ParamStore};
use wgnn::rng::Rng;
use wgnn::Shape;

#[test]
fn fans_follow_pytorch_layouts() {
    assert_eq!(fans(&Shape::from([10, 20])).unwrap(), (20, 10)); // linear [out, in]
    assert_eq!(fans(&Shape::from([8, 3, 5, 5])).unwrap(), (75, 200)); // conv2d
    assert_eq!(fans(&Shape::from([4, 2, 3, 3, 3])).unwrap(), (54, 108)); // conv3d
    assert_eq!(fans(&Shape::from([6, 4, 7])).unwrap(), (28, 42)); // conv1d
    assert!(fans(&Shape::from([10])).is_err());
    assert!(Init::kaiming_normal()
        .values(&Shape::from([10]), &mut Rng::new(0))
        .is_err());
}

#[test]
fn gains_follow_pytorch() {
    assert_eq!(Nonlinearity::Linear.gain(), 1.0);
    assert_eq!(Nonlinearity::Relu.gain(), 2f64.sqrt());
    assert!((Nonlinearity::Tanh.gain() - 5.0 / 3.0).abs() < 1e-15);
    assert!((Nonlinearity::LeakyRelu(0.2).gain() - (2.0 / 1.04f64).sqrt()).abs() < 1e-15);
    assert_eq!(
        Nonlinearity::LeakyRelu(0.0).gain(),
        Nonlinearity::Relu.gain()
    );
}

fn mean_std(values: &[f32]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = values
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, var.sqrt())
}

#[test]
fn statistics_match_the_definitions() {
    // A conv weight [64, 32, 3, 3]: fan_in 288, fan_out 576; 18432 values.
    let shape = Shape::from([64, 32, 3, 3]);
    let n = shape.numel() as f64;
    let (fan_in, fan_out) = (288.0f64, 576.0f64);
    let relu = Nonlinearity::Relu;
    let cases: Vec<(Init, f64, Option<f64>)> = vec![
        // (init, expected std, uniform bound)
        (Init::kaiming_normal(), (2.0 / fan_in).sqrt(), None),
        (
            Init::KaimingNormal {
                mode: FanMode::FanOut,
                nonlinearity: relu,
            },
            (2.0 / fan_out).sqrt(),
            None,
        ),
        (
            Init::kaiming_uniform(),
            (2.0 / fan_in).sqrt(),
            Some((6.0 / fan_in).sqrt()),
        ),
        (
            Init::KaimingUniform {
                mode: FanMode::FanIn,
                nonlinearity: Nonlinearity::LeakyRelu(0.1),
            },
            (2.0 / 1.01 / fan_in).sqrt(),
            Some((6.0 / 1.01 / fan_in).sqrt()),
        ),
        (
            Init::xavier_normal(),
            (2.0 / (fan_in + fan_out)).sqrt(),
            None,
        ),
        (
            Init::XavierUniform { gain: 5.0 / 3.0 },
            5.0 / 3.0 * (2.0 / (fan_in + fan_out)).sqrt(),
            Some(5.0 / 3.0 * (6.0 / (fan_in + fan_out)).sqrt()),
        ),
        (
            Init::Normal {
                mean: 0.5,
                std: 0.02,
            },
            0.02,
            None,
        ),
        (
            Init::Uniform {
                low: -0.3,
                high: 0.1,
            },
            0.4 / 12f64.sqrt(),
            None,
        ),
    ];
    let mut rng = Rng::new(11);
    for (init, std, bound) in cases {
        assert!(
            (init.std(&shape).unwrap() - std).abs() < 1e-12 * std,
            "{init:?}: std"
        );
        let values = init.values(&shape, &mut rng).unwrap();
        assert_eq!(values.len(), shape.numel());
        let expected_mean = match init {
            Init::Normal { mean, .. } => mean,
            Init::Uniform { low, high } => (low + high) / 2.0,
            _ => 0.0,
        };
        let (mean, sd) = mean_std(&values);
        // The sample mean is within 5 standard errors; the sample std within 3 %.
        assert!(
            (mean - expected_mean).abs() < 5.0 * std / n.sqrt(),
            "{init:?}: mean {mean} vs {expected_mean}"
        );
        assert!((sd / std - 1.0).abs() < 0.03, "{init:?}: std {sd} vs {std}");
        if let Some(b) = bound {
            let max = values.iter().fold(0.0f64, |m, &v| m.max((v as f64).abs()));
            assert!(
                max <= b * (1.0 + 1e-6),
                "{init:?}: |value| {max} beyond bound {b}"
            );
            assert!(
                max > 0.99 * b,
                "{init:?}: |value| reaches only {max} of bound {b}"
            );
        }
    }
    let zeros = Init::Zeros.values(&shape, &mut rng).unwrap();
    assert!(zeros.iter().all(|&v| v == 0.0));
    let constant = Init::Constant(0.25).values(&shape, &mut rng).unwrap();
    assert!(constant.iter().all(|&v| v == 0.25));
    assert!(Init::Normal {
        mean: 0.0,
        std: -1.0
    }
    .values(&shape, &mut rng)
    .is_err());
    assert!(Init::Uniform {
        low: 1.0,
        high: 0.0
    }
    .values(&shape, &mut rng)
    .is_err());
}

#[test]
fn same_seed_same_values_different_seed_different_values() {
    let shape = Shape::from([16, 8, 3, 3]);
    for init in [
        Init::kaiming_normal(),
        Init::kaiming_uniform(),
        Init::xavier_normal(),
        Init::xavier_uniform(),
    ] {
        let a = init.values(&shape, &mut Rng::new(5)).unwrap();
        let b = init.values(&shape, &mut Rng::new(5)).unwrap();
        let c = init.values(&shape, &mut Rng::new(6)).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b), "{init:?}: same seed");
        let same = a.iter().zip(&c).filter(|(x, y)| x == y).count();
        assert!(
            same < a.len() / 100,
            "{init:?}: {same} equal values across seeds"
        );
    }
}

#[test]
fn param_store_creates_initialised_parameters() {
    let gpu = gpu();
    let mut params = ParamStore::new();
    let mut rng = Rng::new(3);
    params
        .insert_weight_and_bias(
            gpu,
            "features.0",
            [8, 3, 3, 3],
            Init::kaiming_normal(),
            &mut rng,
        )
        .unwrap();
    params
        .insert_init(
            gpu,
            "classifier.weight",
            [10, 8],
            Init::xavier_uniform(),
            &mut rng,
        )
        .unwrap();
    let names: Vec<&str> = params.iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["classifier.weight", "features.0.bias", "features.0.weight"]
    );

    let mut expected_rng = Rng::new(3);
    let weight = Init::kaiming_normal()
        .values(&Shape::from([8, 3, 3, 3]), &mut expected_rng)
        .unwrap();
    let classifier = Init::xavier_uniform()
        .values(&Shape::from([10, 8]), &mut expected_rng)
        .unwrap();
    let read = |name: &str| params.get(name).unwrap().to_vec(gpu).unwrap();
    assert_eq!(read("features.0.weight"), weight);
    assert_eq!(read("features.0.bias"), vec![0.0; 8]);
    assert_eq!(
        params.get("features.0.bias").unwrap().shape,
        Shape::from([8])
    );
    assert_eq!(read("classifier.weight"), classifier);

    let err = params
        .insert_init(gpu, "bias", [4], Init::kaiming_uniform(), &mut rng)
        .expect_err("kaiming needs rank >= 2");
    assert!(err.to_string().contains("`bias`"), "{err}");
    assert!(params
        .insert_weight_and_bias(gpu, "fc", [4], Init::Zeros, &mut rng)
        .is_err());
}
