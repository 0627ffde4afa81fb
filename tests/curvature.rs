//! The second-order pass of stochastic diagonal Levenberg–Marquardt (LeCun et al. 1998,
//! appendix C) against brute force.
//!
//! - Every layer: its [`Layer::backward_curvature`] against the diagonal of J^T D J, with the
//!   layer's Jacobian J built row by row from its own first-order backward pass (one output's
//!   gradient set to 1 at a time; the first-order passes are checked by finite differences
//!   in `gradcheck.rs`) and D a random positive diagonal. For one layer this is what the
//!   second-order pass approximates, exactly.
//! - The criteria: their second derivatives against centred differences of their gradients;
//!   the MAP criterion over the RBF output, as a loss of F6's outputs, likewise.
//! - Whole networks (a small 1998-style one, and one with the study's ReLU, max pooling,
//!   batch normalization and dropout): [`Network::backward_curvature`] against a plain loop
//!   that applies the brute-force diagonal layer by layer from the output down.
//!
//! No golden values: every reference is computed here, from the first-order passes.

use lenet::nn::activation::{Activation, ActivationKind};
use lenet::nn::batchnorm::BatchNorm;
use lenet::nn::conv2d::{Conv2d, ConvGeometry};
use lenet::nn::dropout::Dropout;
use lenet::nn::linear::Linear;
use lenet::nn::loss::{Criterion, MAP_J};
use lenet::nn::pool::{Pool2d, PoolKind};
use lenet::nn::rbf::{Prototypes, Rbf};
use lenet::nn::subsample::Subsample;
use lenet::nn::{Context, Layer, Mode, Network};
use lenet::rng::Rng;
use lenet::tensor::Tensor;

fn random(shape: &[usize], low: f32, high: f32, rng: &mut Rng) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(
        shape,
        (0..n).map(|_| rng.uniform_range(low, high)).collect(),
    )
}

fn forward(layer: &mut dyn Layer, x: &Tensor, mode: Mode, seed: u64) -> Tensor {
    let mut y = Tensor::zeros(&layer.output_shape(&x.shape));
    let rng = &mut Rng::new(seed);
    layer.forward(x, &mut y, &mut Context { mode, rng });
    y
}

/// The brute-force diagonals of J^T diag(d2y) J for the input and every parameter of
/// `layer`, after a forward pass that gave `y` from `x`: one first-order backward pass per
/// output, with that output's gradient 1 and the others 0.
fn brute_force(
    layer: &mut dyn Layer,
    x: &Tensor,
    y: &Tensor,
    d2y: &Tensor,
) -> (Vec<f64>, Vec<Vec<f64>>) {
    let mut d2x = vec![0.0f64; x.len()];
    let mut h: Vec<Vec<f64>> = layer
        .params()
        .iter()
        .map(|p| vec![0.0; p.value.len()])
        .collect();
    let mut dy = Tensor::zeros(&y.shape);
    let mut dx = Tensor::zeros(&x.shape);
    for i in 0..y.len() {
        for p in layer.params_mut() {
            p.grad.fill(0.0);
        }
        dy.fill(0.0);
        dy.data[i] = 1.0;
        layer.backward(x, y, &dy, Some(&mut dx));
        let weight = d2y.data[i] as f64;
        for (acc, &j) in d2x.iter_mut().zip(&dx.data) {
            *acc += weight * (j as f64) * (j as f64);
        }
        for (acc, p) in h.iter_mut().zip(layer.params()) {
            for (a, &j) in acc.iter_mut().zip(&p.grad.data) {
                *a += weight * (j as f64) * (j as f64);
            }
        }
    }
    for p in layer.params_mut() {
        p.grad.fill(0.0);
    }
    (d2x, h)
}

fn assert_close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(
            err <= 1e-4 * w.abs() + 1e-5 * scale,
            "{what}[{k}]: second-order pass {g}, brute force {w}"
        );
    }
}

/// `layer`'s second-order pass at a random input (batch of 2) against brute force.
fn check_layer(name: &str, layer: &mut dyn Layer, input: &[usize], mode: Mode) {
    let mut rng = Rng::new(11);
    let x = random(input, -1.5, 1.5, &mut rng);
    let y = forward(layer, &x, mode, 5);
    let d2y = random(&y.shape, 0.1, 2.0, &mut rng);
    let (d2x_want, h_want) = brute_force(layer, &x, &y, &d2y);
    for p in layer.params_mut() {
        p.curvature.fill(0.0);
    }
    let mut d2x = Tensor::zeros(&x.shape);
    layer.backward_curvature(&x, &y, &d2y, Some(&mut d2x));
    assert_close(&format!("{name} d2x"), &d2x.data, &d2x_want);
    for (p, want) in layer.params().iter().zip(&h_want) {
        assert_close(&format!("{name} {}", p.name), &p.curvature.data, want);
    }
    // Without d2x the parameters' second derivatives are the same.
    let before: Vec<Vec<f32>> = layer
        .params()
        .iter()
        .map(|p| p.curvature.data.clone())
        .collect();
    for p in layer.params_mut() {
        p.curvature.fill(0.0);
    }
    layer.backward_curvature(&x, &y, &d2y, None);
    for (p, b) in layer.params().iter().zip(&before) {
        assert_eq!(&p.curvature.data, b, "{name} {} without d2x", p.name);
    }
}

#[test]
fn every_layer_matches_the_diagonal_of_jt_d_j() {
    let mut rng = Rng::new(3);
    let g = |c_in, c_out, k| ConvGeometry::unpadded(c_in, c_out, k);
    let mut conv = Conv2d::with_init(g(2, 3, 3), &mut rng, 0.5, 0.5);
    check_layer("conv", &mut conv, &[2, 2, 6, 6], Mode::Train);
    // A convolution through a connection table: the removed weights have no curvature.
    let table = vec![vec![true, false], vec![false, true], vec![true, true]];
    let mut sparse =
        Conv2d::with_init(g(2, 3, 3), &mut rng, 0.5, 0.5).with_connection_table(&table);
    check_layer("sparse conv", &mut sparse, &[2, 2, 6, 6], Mode::Train);
    // A kernel as large as its input: the convolution as a fully connected layer (C5).
    let mut dense = Conv2d::with_init(g(3, 4, 5), &mut rng, 0.3, 0.3);
    check_layer("dense conv", &mut dense, &[2, 3, 5, 5], Mode::Train);
    let mut sub = Subsample::new(3, &mut rng);
    check_layer("subsample", &mut sub, &[2, 3, 6, 6], Mode::Train);
    for kind in [
        ActivationKind::ScaledTanh,
        ActivationKind::Tanh,
        ActivationKind::Relu,
    ] {
        check_layer(
            &format!("{kind:?}"),
            &mut Activation { kind },
            &[2, 3, 4, 4],
            Mode::Train,
        );
    }
    check_layer(
        "max pool",
        &mut Pool2d::new(PoolKind::Max, 2),
        &[2, 3, 6, 6],
        Mode::Train,
    );
    check_layer(
        "avg pool",
        &mut Pool2d::new(PoolKind::Avg, 2),
        &[2, 3, 6, 6],
        Mode::Train,
    );
    check_layer(
        "linear",
        &mut Linear::new(12, 5, &mut rng),
        &[2, 12],
        Mode::Train,
    );
    let mut rbf = Rbf {
        prototypes: random(&[4, 6], -1.0, 1.0, &mut rng),
    };
    check_layer("rbf", &mut rbf, &[2, 6], Mode::Train);
    check_layer(
        "dropout (train)",
        &mut Dropout::new(0.4),
        &[2, 12],
        Mode::Train,
    );
    check_layer(
        "dropout (eval)",
        &mut Dropout::new(0.4),
        &[2, 12],
        Mode::Eval,
    );
    // Batch normalization with its running statistics (evaluation), where it is the affine
    // map the pass takes it for.
    let mut bn = BatchNorm::new(3, true);
    bn.running_mean = random(&[3], -0.5, 0.5, &mut rng);
    bn.running_var = random(&[3], 0.5, 2.0, &mut rng);
    bn.weight.value = random(&[3], 0.5, 1.5, &mut rng);
    check_layer("batch norm (eval)", &mut bn, &[2, 3, 4, 4], Mode::Eval);
}

/// Centred differences of `gradient` at `z`, coordinate by coordinate: the Hessian's diagonal.
fn hessian_diagonal(z: &[f32], gradient: impl Fn(&[f32]) -> Vec<f32>) -> Vec<f64> {
    let h = 1e-2f32;
    (0..z.len())
        .map(|k| {
            let (mut up, mut down) = (z.to_vec(), z.to_vec());
            up[k] += h;
            down[k] -= h;
            (gradient(&up)[k] as f64 - gradient(&down)[k] as f64) / (2.0 * h as f64)
        })
        .collect()
}

fn assert_near(what: &str, got: &[f32], want: &[f64]) {
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= 2e-3 * w.abs().max(1.0),
            "{what}[{k}]: {g} against centred differences {w}"
        );
    }
}

#[test]
fn the_criteria_second_derivatives_match_centred_differences() {
    let mut rng = Rng::new(5);
    let (n, k) = (3, 10);
    let labels = [2u8, 7, 0];
    for criterion in [Criterion::CrossEntropy, Criterion::Map { j: MAP_J }] {
        let logits = random(&[n, k], -4.0, 2.0, &mut rng);
        let scale = 0.5;
        let mut d2 = Tensor::zeros(&[n, k]);
        criterion.curvature(&logits, &mut d2, scale);
        let gradient = |z: &[f32]| {
            let mut g = Tensor::zeros(&[n, k]);
            criterion.apply(
                &Tensor::from_vec(&[n, k], z.to_vec()),
                &labels,
                Some((&mut g, scale)),
            );
            g.data
        };
        assert_near(
            &format!("{criterion:?}"),
            &d2.data,
            &hessian_diagonal(&logits.data, gradient),
        );
    }
}

/// The MAP criterion over the RBF's scores, as a function of the RBF's inputs (F6's
/// outputs): its exact second derivatives, near the prototypes and far from them.
#[test]
fn the_map_criterion_over_the_rbf_matches_centred_differences_in_f6() {
    let mut rng = Rng::new(8);
    let mut rbf = Rbf::lenet5(Prototypes::Plain);
    let labels = [3u8, 8];
    let mut near = rbf.prototypes.data[3 * 84..4 * 84].to_vec();
    near.iter_mut().for_each(|v| *v *= 0.9);
    near.extend(random(&[84], -1.7, 1.7, &mut rng).data);
    let x = Tensor::from_vec(&[2, 84], near);
    let j = MAP_J;
    let scores = forward(&mut rbf, &x, Mode::Eval, 0);
    let mut d2x = Tensor::zeros(&x.shape);
    rbf.map_curvature(&x, &scores, j, &mut d2x, 1.0);
    let gradient = |v: &[f32]| {
        let x = Tensor::from_vec(&[2, 84], v.to_vec());
        let mut rbf = Rbf::lenet5(Prototypes::Plain);
        let scores = forward(&mut rbf, &x, Mode::Eval, 0);
        let mut dscores = Tensor::zeros(&scores.shape);
        Criterion::Map { j }.apply(&scores, &labels, Some((&mut dscores, 1.0)));
        let mut dx = Tensor::zeros(&x.shape);
        rbf.backward(&x, &scores, &dscores, Some(&mut dx));
        dx.data
    };
    let want = hessian_diagonal(&x.data, gradient);
    assert_near("MAP over RBF", &d2x.data, &want);
    assert!(d2x.data.iter().all(|&v| v >= 0.0));
}

/// A network's layers with their names.
type Layers = Vec<(String, Box<dyn Layer>)>;

/// A small network of the 1998 model's layers (convolution, scaled tanh, subsampling, a
/// convolution through a connection table, fully connected, RBF output, MAP criterion).
fn small_1998(rng: &mut Rng) -> Layers {
    let squash = || -> Box<dyn Layer> {
        Box::new(Activation {
            kind: ActivationKind::ScaledTanh,
        })
    };
    let g = |c_in, c_out, k| ConvGeometry::unpadded(c_in, c_out, k);
    let table = vec![vec![true, false], vec![true, true], vec![false, true]];
    let mut prototypes = random(&[4, 6], -1.0, 1.0, rng);
    prototypes.data.iter_mut().for_each(|v| *v = v.signum());
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(Conv2d::with_init(g(1, 2, 3), rng, 0.6, 0.6)),
        squash(),
        Box::new(Subsample::new(2, rng)),
        squash(),
        Box::new(Conv2d::with_init(g(2, 3, 3), rng, 0.6, 0.6).with_connection_table(&table)),
        squash(),
        Box::new(Linear::with_init(12, 6, rng, 0.5, 0.5)),
        squash(),
        Box::new(Rbf { prototypes }),
    ];
    layers
        .into_iter()
        .enumerate()
        .map(|(i, l)| (format!("l{i}"), l))
        .collect()
}

/// A small network of the study model's layers (ReLU, max pooling, batch normalization when
/// `batch_norm`, dropout, softmax cross-entropy).
fn small_study(rng: &mut Rng, batch_norm: bool) -> Layers {
    let relu = || -> Box<dyn Layer> {
        Box::new(Activation {
            kind: ActivationKind::Relu,
        })
    };
    let mut bn = BatchNorm::new(3, true);
    bn.running_mean = random(&[3], -0.2, 0.2, rng);
    bn.running_var = random(&[3], 0.5, 1.5, rng);
    let mut layers: Vec<Box<dyn Layer>> = vec![
        Box::new(Conv2d::new(ConvGeometry::unpadded(1, 3, 3), rng)),
        relu(),
        Box::new(Pool2d::new(PoolKind::Max, 2)),
    ];
    if batch_norm {
        layers.push(Box::new(bn));
    }
    layers.extend::<[Box<dyn Layer>; 4]>([
        Box::new(Linear::new(48, 8, rng)),
        relu(),
        Box::new(Dropout::new(0.3)),
        Box::new(Linear::new(8, 5, rng)),
    ]);
    layers
        .into_iter()
        .enumerate()
        .map(|(i, l)| (format!("l{i}"), l))
        .collect()
}

/// The recursion of a whole network against the plain loop: each layer's brute-force
/// diagonal applied from the criterion's second derivatives down to the input.
fn check_network(name: &str, build: fn(&mut Rng) -> Layers, criterion: Criterion, mode: Mode) {
    let (n, side) = (3, 10);
    let x = random(&[n, 1, side, side], -0.1, 1.175, &mut Rng::new(21));
    let scale = 1.0 / n as f32;

    let mut net = Network::new(&[1, side, side], build(&mut Rng::new(1))).with_criterion(criterion);
    net.input_mut().resize(&x.shape);
    net.input_mut().data.copy_from_slice(&x.data);
    net.zero_curvature();
    net.backward_curvature(
        &mut Context {
            mode,
            rng: &mut Rng::new(4),
        },
        scale,
    );

    // The same layers, run one by one with the same dropout stream.
    let mut layers: Vec<Box<dyn Layer>> = build(&mut Rng::new(1))
        .into_iter()
        .map(|(_, l)| l)
        .collect();
    let rng = &mut Rng::new(4);
    let mut acts = vec![x];
    for layer in layers.iter_mut() {
        let input = acts.last().unwrap();
        let mut y = Tensor::zeros(&layer.output_shape(&input.shape));
        layer.forward(input, &mut y, &mut Context { mode, rng });
        acts.push(y);
    }
    let last = layers.len();
    let (mut d2, from) = match criterion {
        Criterion::Map { j } => {
            let rbf = layers[last - 1].as_any().downcast_ref::<Rbf>().unwrap();
            let mut d2 = Tensor::zeros(&acts[last - 1].shape);
            rbf.map_curvature(&acts[last - 1], &acts[last], j, &mut d2, scale);
            (d2, last - 1)
        }
        Criterion::CrossEntropy => {
            let mut d2 = Tensor::zeros(&acts[last].shape);
            criterion.curvature(&acts[last], &mut d2, scale);
            (d2, last)
        }
    };
    let mut want: Vec<Vec<Vec<f64>>> = vec![Vec::new(); last];
    for i in (0..from).rev() {
        let (d2x, h) = brute_force(layers[i].as_mut(), &acts[i], &acts[i + 1], &d2);
        want[i] = h;
        d2 = Tensor::from_vec(&acts[i].shape, d2x.iter().map(|&v| v as f32).collect());
    }
    let want: Vec<Vec<f64>> = want.into_iter().flatten().collect();
    let got = net.params();
    assert_eq!(got.len(), want.len());
    for ((pname, p), w) in got.iter().zip(&want) {
        assert_close(&format!("{name} {pname}"), &p.curvature.data, w);
        assert!(
            p.curvature.data.iter().any(|&v| v > 0.0),
            "{name} {pname} has curvature"
        );
    }
}

#[test]
fn a_whole_network_matches_the_layer_by_layer_loop() {
    check_network("1998", small_1998, Criterion::Map { j: MAP_J }, Mode::Eval);
    // Dropout's masks in training; batch normalization in evaluation, where its statistics
    // are constants (in training the pass drops their dependence on the batch, which the
    // brute force would keep).
    let dropout = |rng: &mut Rng| small_study(rng, false);
    check_network(
        "study (train)",
        dropout,
        Criterion::CrossEntropy,
        Mode::Train,
    );
    let batch_norm = |rng: &mut Rng| small_study(rng, true);
    check_network(
        "study (eval)",
        batch_norm,
        Criterion::CrossEntropy,
        Mode::Eval,
    );
}
