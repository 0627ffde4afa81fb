//! Centred finite-difference checks of every layer's backward pass, including the 1998
//! model's layers that PyTorch has no module for (trainable subsampling, the sparse C3
//! connection table, the scaled tanh, the Euclidean RBF output) and its MAP criterion.
//!
//! For a random upstream gradient dout, the loss is L = sum(out * dout) (cs231n's
//! `gradient_check.py`), so dL/dx is exactly what backward computes. Each checked entry must
//! satisfy |a - n| / (|a| + |n|) < 1e-2, with n = (L(x + h) - L(x - h)) / 2h; the layers
//! compute in float32, so h is 1e-2 and L is summed in float64.

use lenet::nn::activation::{Activation, ActivationKind};
use lenet::nn::batchnorm::BatchNorm;
use lenet::nn::conv2d::{Conv2d, ConvGeometry, conv2d_backward_direct, conv2d_forward_direct};
use lenet::nn::dropout::Dropout;
use lenet::nn::linear::Linear;
use lenet::nn::loss::{Criterion, MAP_J};
use lenet::nn::model::C3_TABLE;
use lenet::nn::pool::{Pool2d, PoolKind};
use lenet::nn::rbf::{Prototypes, Rbf};
use lenet::nn::subsample::Subsample;
use lenet::nn::{Arch, Context, Layer, Mode, ModelConfig};
use lenet::rng::Rng;
use lenet::tensor::Tensor;

const H: f32 = 1e-2;
const TOL: f64 = 1e-2;

fn random(shape: &[usize], rng: &mut Rng) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(
        shape,
        (0..n).map(|_| rng.uniform_range(-1.0, 1.0)).collect(),
    )
}

/// L = sum(layer(x) * dout), with a fresh dropout stream so every evaluation draws the same
/// mask.
fn loss(layer: &mut dyn Layer, x: &Tensor, dout: &Tensor, mode: Mode) -> f64 {
    let mut y = Tensor::zeros(&layer.output_shape(&x.shape));
    layer.forward(
        x,
        &mut y,
        &mut Context {
            mode,
            rng: &mut Rng::new(99),
        },
    );
    y.data
        .iter()
        .zip(&dout.data)
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum()
}

fn rel_error(a: f64, n: f64) -> f64 {
    if a == 0.0 && n == 0.0 {
        0.0
    } else {
        (a - n).abs() / (a.abs() + n.abs())
    }
}

fn assert_grad(what: &str, analytic: f32, numeric: f64) {
    let e = rel_error(analytic as f64, numeric);
    // Entries whose true gradient is ~0 are compared absolutely.
    assert!(
        e < TOL || (analytic as f64 - numeric).abs() < 1e-3,
        "{what}: analytic {analytic}, numeric {numeric}, relative error {e:e}"
    );
}

/// Checks dx and every parameter gradient of `layer` at `x`, on up to 40 entries each.
fn gradcheck(name: &str, layer: &mut dyn Layer, x: Tensor, mode: Mode) {
    let mut rng = Rng::new(7);
    let dout = random(&layer.output_shape(&x.shape), &mut rng);
    let mut y = Tensor::zeros(&layer.output_shape(&x.shape));
    for p in layer.params_mut() {
        p.grad.fill(0.0);
    }
    layer.forward(
        &x,
        &mut y,
        &mut Context {
            mode,
            rng: &mut Rng::new(99),
        },
    );
    let mut dx = Tensor::zeros(&x.shape);
    layer.backward(&x, &y, &dout, Some(&mut dx));
    let step = (x.len() / 40).max(1);
    for i in (0..x.len()).step_by(step) {
        let mut xp = x.clone();
        xp.data[i] += H;
        let lp = loss(layer, &xp, &dout, mode);
        xp.data[i] -= 2.0 * H;
        let lm = loss(layer, &xp, &dout, mode);
        assert_grad(
            &format!("{name} dx[{i}]"),
            dx.data[i],
            (lp - lm) / (2.0 * H as f64),
        );
    }
    let grads: Vec<Vec<f32>> = layer.params().iter().map(|p| p.grad.data.clone()).collect();
    for (pi, grad) in grads.iter().enumerate() {
        let step = (grad.len() / 40).max(1);
        for i in (0..grad.len()).step_by(step) {
            if layer.params()[pi]
                .frozen_zero
                .as_ref()
                .is_some_and(|f| f[i])
            {
                assert_eq!(grad[i], 0.0, "{name}: frozen weight {i} has a gradient");
                continue;
            }
            let mut eval = |delta: f32| {
                layer.params_mut()[pi].value.data[i] += delta;
                let l = loss(layer, &x, &dout, mode);
                layer.params_mut()[pi].value.data[i] -= delta;
                l
            };
            let numeric = (eval(H) - eval(-H)) / (2.0 * H as f64);
            let pname = layer.params()[pi].name;
            assert_grad(&format!("{name} d{pname}[{i}]"), grad[i], numeric);
        }
    }
}

fn geometry(
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> ConvGeometry {
    ConvGeometry {
        c_in,
        c_out,
        kernel,
        stride,
        padding,
    }
}

#[test]
fn conv2d_gradients() {
    let mut rng = Rng::new(1);
    for g in [
        geometry(2, 3, 3, 1, 0),
        geometry(2, 3, 3, 2, 1),
        geometry(3, 4, 5, 1, 0),
    ] {
        let side = if g.kernel == 5 { 5 } else { 7 }; // 5: the dense (1x1 output) path
        let mut conv = Conv2d::new(g, &mut rng);
        gradcheck(
            &format!("{g:?}"),
            &mut conv,
            random(&[2, g.c_in, side, side], &mut rng),
            Mode::Train,
        );
    }
}

#[test]
fn fast_convolution_matches_the_direct_loops() {
    let mut rng = Rng::new(2);
    for (g, side, n) in [
        (geometry(1, 6, 5, 1, 0), 32, 5),
        // One input channel off LeNet's shape: 7 output channels and 3x3 taps (weight
        // gradient blocks of 6 and 1 channels, 4, 4 and 1 taps), rows of 10.
        (geometry(1, 7, 3, 1, 0), 12, 3),
        (geometry(6, 16, 5, 1, 0), 14, 7),
        // Narrow shapes off LeNet's: more than 16 output channels and a 3x3 kernel (weight
        // gradient row by row), 7 input channels in rows of 16 (input-gradient tiles of 6 + 1).
        (geometry(4, 20, 3, 1, 0), 12, 5),
        (geometry(7, 5, 5, 1, 0), 16, 3),
        (geometry(16, 120, 5, 1, 0), 5, 20),
        (geometry(3, 4, 3, 2, 1), 9, 3),
    ] {
        let mut conv = Conv2d::new(g, &mut rng);
        let x = random(&[n, g.c_in, side, side], &mut rng);
        let y = conv_forward(&mut conv, &x);
        let want = conv2d_forward_direct(&x, &conv.weight.value.data, &conv.bias.value.data, g);
        let scale = want.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for (a, b) in y.data.iter().zip(&want.data) {
            assert!((a - b).abs() <= 1e-5 * scale, "{g:?} forward: {a} vs {b}");
        }
        let dy = random(&y.shape, &mut rng);
        backward_matches_the_direct_loops(&format!("{g:?}"), &mut conv, &x, &y, &dy);
    }
}

/// The layer's forward pass in training mode.
fn conv_forward(conv: &mut Conv2d, x: &Tensor) -> Tensor {
    let mut y = Tensor::zeros(&conv.output_shape(&x.shape));
    let mut ctx = Context {
        mode: Mode::Train,
        rng: &mut Rng::new(0),
    };
    conv.forward(x, &mut y, &mut ctx);
    y
}

/// Runs the layer's backward and compares dx, dw and db with the plain loops.
fn backward_matches_the_direct_loops(
    what: &str,
    conv: &mut Conv2d,
    x: &Tensor,
    y: &Tensor,
    dy: &Tensor,
) {
    let g = conv.geometry;
    let mut dx = Tensor::zeros(&x.shape);
    conv.weight.grad.fill(0.0);
    conv.bias.grad.fill(0.0);
    conv.backward(x, y, dy, Some(&mut dx));
    let (want_dx, want_dw, want_db) = conv2d_backward_direct(x, &conv.weight.value.data, dy, g);
    for (grad, got, want) in [
        ("dx", &dx.data, &want_dx.data),
        ("dw", &conv.weight.grad.data, &want_dw),
        ("db", &conv.bias.grad.data, &want_db),
    ] {
        let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(scale > 0.0, "{what} {grad}: all zero");
        for (a, b) in got.iter().zip(want.iter()) {
            assert!((a - b).abs() <= 1e-5 * scale, "{what} {grad}: {a} vs {b}");
        }
    }
}

/// Output gradients as ReLU and 2x2 max pooling leave them (at most one nonzero value per
/// window, none in some windows) and scattered at random take the sparse backward kernels
/// on LeNet's conv2 shape; a gradient a third nonzero sits at the density limit, and odd
/// output sides always take the dense kernels.
#[test]
fn sparse_output_gradients_match_the_direct_loops() {
    let mut rng = Rng::new(4);
    for (g, side, n) in [
        (geometry(6, 16, 5, 1, 0), 14, 9),
        (geometry(3, 10, 5, 1, 0), 12, 5),
        (geometry(6, 16, 5, 1, 0), 13, 2),
    ] {
        let mut conv = Conv2d::new(g, &mut rng);
        let x = random(&[n, g.c_in, side, side], &mut rng);
        // The forward pass first: the portable path's backward reuses its column matrix.
        let y = conv_forward(&mut conv, &x);
        let (oh, ow) = (y.shape[2], y.shape[3]);
        let dense = random(&y.shape, &mut rng);
        // One position per 2x2 window, a third of the windows empty.
        let mut pooled = Tensor::zeros(&y.shape);
        for plane in 0..n * g.c_out {
            for wi in 0..oh / 2 {
                for wj in 0..ow / 2 {
                    if rng.below(3) == 0 {
                        continue;
                    }
                    let (i, j) = (2 * wi + rng.below(2), 2 * wj + rng.below(2));
                    let at = plane * oh * ow + i * ow + j;
                    pooled.data[at] = dense.data[at];
                }
            }
        }
        let mut scattered = dense.clone();
        let mut at_limit = dense.clone();
        for (i, v) in scattered.data.iter_mut().enumerate() {
            if rng.below(10) >= 2 {
                *v = 0.0;
            }
            if i % 3 != 0 {
                at_limit.data[i] = 0.0;
            }
        }
        at_limit.data[1] = 1.0;
        for (pattern, dy) in [
            ("pooled", &pooled),
            ("scattered", &scattered),
            ("a third", &at_limit),
        ] {
            let what = format!("{g:?} side {side}, {pattern}");
            backward_matches_the_direct_loops(&what, &mut conv, &x, &y, dy);
        }
    }
}

#[test]
fn sparse_connection_table_gradients() {
    let mut rng = Rng::new(3);
    let table: Vec<Vec<bool>> = C3_TABLE
        .iter()
        .map(|inputs| (0..6).map(|c| inputs.contains(&c)).collect())
        .collect();
    let mut c3 = Conv2d::new(geometry(6, 16, 5, 1, 0), &mut rng).with_connection_table(&table);
    gradcheck("c3", &mut c3, random(&[2, 6, 7, 7], &mut rng), Mode::Train);
}

#[test]
fn linear_gradients() {
    let mut rng = Rng::new(4);
    let mut l = Linear::new(7, 5, &mut rng);
    gradcheck("linear", &mut l, random(&[3, 7], &mut rng), Mode::Train);
}

#[test]
fn pooling_gradients() {
    let mut rng = Rng::new(5);
    // Well-separated values, so no window's maximum changes within +-h. Sides 6 (the windows
    // tile the plane) and 7 (the last row and column belong to no window).
    let mut separated = |side: usize| {
        let mut x = Tensor::zeros(&[2, 3, side, side]);
        let mut order: Vec<usize> = (0..x.len()).collect();
        rng.shuffle(&mut order);
        for (i, &o) in order.iter().enumerate() {
            x.data[o] = i as f32 * 0.1;
        }
        x
    };
    let (x, odd) = (separated(6), separated(7));
    for x in [x.clone(), odd] {
        gradcheck(
            "maxpool",
            &mut Pool2d::new(PoolKind::Max, 2),
            x,
            Mode::Train,
        );
    }
    gradcheck(
        "avgpool",
        &mut Pool2d::new(PoolKind::Avg, 2),
        x,
        Mode::Train,
    );
}

#[test]
fn activation_gradients() {
    let mut rng = Rng::new(6);
    for kind in [
        ActivationKind::Relu,
        ActivationKind::Tanh,
        ActivationKind::ScaledTanh,
    ] {
        let mut x = random(&[2, 3, 4, 4], &mut rng);
        // Keep ReLU inputs away from the kink at 0.
        x.data.iter_mut().for_each(|v| {
            if v.abs() < 0.05 {
                *v += 0.1
            }
        });
        gradcheck(
            &format!("{kind:?}"),
            &mut Activation { kind },
            x,
            Mode::Train,
        );
    }
}

#[test]
fn subsampling_gradients() {
    let mut rng = Rng::new(7);
    let mut s = Subsample::new(3, &mut rng);
    gradcheck(
        "subsample",
        &mut s,
        random(&[2, 3, 6, 6], &mut rng),
        Mode::Train,
    );
}

#[test]
fn batchnorm_gradients_in_both_modes_and_shapes() {
    let mut rng = Rng::new(8);
    for (spatial, shape) in [(true, vec![4, 3, 3, 3]), (false, vec![6, 5])] {
        for mode in [Mode::Train, Mode::Eval] {
            let c = shape[1];
            let mut bn = BatchNorm::new(c, spatial);
            bn.weight.value = random(&[c], &mut rng);
            bn.bias.value = random(&[c], &mut rng);
            bn.running_var.data.iter_mut().for_each(|v| *v = 0.5);
            gradcheck(
                &format!("bn {shape:?} {mode:?}"),
                &mut bn,
                random(&shape, &mut rng),
                mode,
            );
        }
    }
}

#[test]
fn dropout_gradients_and_expectation() {
    let mut rng = Rng::new(9);
    gradcheck(
        "dropout",
        &mut Dropout::new(0.4),
        random(&[4, 10], &mut rng),
        Mode::Train,
    );
    gradcheck(
        "dropout eval",
        &mut Dropout::new(0.4),
        random(&[4, 10], &mut rng),
        Mode::Eval,
    );
    // Inverted dropout keeps the mean: E[y] = x.
    let x = Tensor::from_vec(&[1, 100_000], vec![1.0; 100_000]);
    let mut y = Tensor::zeros(&x.shape);
    let mut d = Dropout::new(0.4);
    d.forward(
        &x,
        &mut y,
        &mut Context {
            mode: Mode::Train,
            rng: &mut rng,
        },
    );
    let mean = y.data.iter().map(|&v| v as f64).sum::<f64>() / y.len() as f64;
    let kept = y.data.iter().filter(|&&v| v != 0.0).count() as f64 / y.len() as f64;
    assert!((mean - 1.0).abs() < 0.01, "mean {mean}");
    assert!((kept - 0.6).abs() < 0.01, "kept {kept}");
}

#[test]
fn rbf_output_gradients() {
    let mut rng = Rng::new(12);
    // Inputs in the squashing function's range, around the prototypes' ±1.
    let x = Tensor::from_vec(
        &[3, 84],
        (0..3 * 84).map(|_| rng.uniform_range(-1.7, 1.7)).collect(),
    );
    gradcheck("rbf", &mut Rbf::lenet5(Prototypes::Plain), x, Mode::Train);
}

/// The MAP criterion's gradient with respect to the scores, by centred differences, and its
/// value against the paper's formula y_D + log(e^-j + sum_i e^-y_i) computed in float64.
#[test]
fn map_criterion_gradient_and_value() {
    let mut rng = Rng::new(13);
    // Scores are minus squared distances: 0 to about -40 here.
    let scores = Tensor::from_vec(
        &[4, 10],
        (0..40)
            .map(|_| -20.0 * (1.0 + rng.uniform_range(-1.0, 1.0)))
            .collect(),
    );
    let labels = [0u8, 3, 9, 5];
    let map = Criterion::Map { j: MAP_J };
    let mut grad = Tensor::zeros(&scores.shape);
    let total = map.apply(&scores, &labels, Some((&mut grad, 1.0))).loss_sum;
    let paper: f64 = (scores.data.chunks_exact(10).zip(labels))
        .map(|(z, d)| {
            let y = |i: usize| -z[i] as f64;
            let sum: f64 = (0..10).map(|i| (-y(i)).exp()).sum();
            y(d as usize) + ((-MAP_J as f64).exp() + sum).ln()
        })
        .sum();
    assert!(
        (total - paper).abs() < 1e-4 * paper.abs(),
        "{total} vs {paper}"
    );
    for i in 0..scores.len() {
        let at = |delta: f32| {
            let mut s = scores.clone();
            s.data[i] += delta;
            map.apply(&s, &labels, None).loss_sum
        };
        let numeric = (at(H) - at(-H)) / (2.0 * H as f64);
        assert_grad(&format!("map dscore[{i}]"), grad.data[i], numeric);
    }
}

#[test]
fn whole_networks_input_gradient() {
    // The input gradient of every architecture through its own criterion.
    for arch in [Arch::Lenet5, Arch::Lecun1998, Arch::Lecun1998Softmax] {
        let config = ModelConfig {
            arch,
            ..Default::default()
        };
        let mut rng = Rng::new(10);
        let mut net = config.build(&mut rng);
        let criterion = net.criterion();
        let x = random(&[2, 1, 32, 32], &mut rng);
        let labels = [3u8, 7];
        let eval_loss = |net: &mut lenet::nn::Network, x: &Tensor| {
            *net.input_mut() = x.clone();
            let logits = net.forward(&mut Context {
                mode: Mode::Train,
                rng: &mut Rng::new(0),
            });
            criterion.apply(logits, &labels, None).loss_sum
        };
        *net.input_mut() = x.clone();
        net.forward(&mut Context {
            mode: Mode::Train,
            rng: &mut Rng::new(0),
        });
        let (logits, dlogits) = net.output_and_grad_mut();
        criterion.apply(logits, &labels, Some((dlogits, 1.0)));
        net.backward(true);
        let dx = net.input_grad().clone();
        for i in (0..x.len()).step_by(37) {
            let mut xp = x.clone();
            xp.data[i] += H;
            let lp = eval_loss(&mut net, &xp);
            xp.data[i] -= 2.0 * H;
            let lm = eval_loss(&mut net, &xp);
            assert_grad(
                &format!("{arch:?} dx[{i}]"),
                dx.data[i],
                (lp - lm) / (2.0 * H as f64),
            );
        }
    }
}
