//! The noise instruments (`--instruments noise`) against brute force: each layer's per-sample
//! gradient terms against batch-1 backward passes, and the recorded quantities (gradient
//! variance, noise scale, the norm, inner-product and orthogonality tests, the signal-to-noise
//! ratio) against their definitions computed from those per-sample gradients.

use lenet::nn::batchnorm::BatchNorm;
use lenet::nn::{Arch, BatchNormAt, Context, Mode, ModelConfig, Network, Pooling};
use lenet::rng::Rng;
use lenet::tensor::Tensor;
use lenet::train::instruments::{InstrumentSet, NOISE_COLUMNS, Recorder};

/// A batch of `n` random inputs for `net` and random labels.
fn batch(net: &Network, n: usize, rng: &mut Rng) -> (Tensor, Vec<u8>) {
    let mut shape = vec![n];
    shape.extend_from_slice(net.input_shape());
    let len = shape.iter().product();
    let x = (0..len).map(|_| rng.uniform_range(-1.0, 1.0)).collect();
    let labels = (0..n)
        .map(|_| (rng.uniform_range(0.0, 10.0) as u8).min(9))
        .collect();
    (Tensor::from_vec(&shape, x), labels)
}

/// Forward and backward of the mean loss over samples `from..to` of `x` (gradients added to
/// what the parameters hold), with `scale` the mean's 1/N.
fn pass(net: &mut Network, x: &Tensor, labels: &[u8], (from, to): (usize, usize), scale: f32) {
    let per = x.len() / x.shape[0];
    let mut shape = x.shape.clone();
    shape[0] = to - from;
    let input = net.input_mut();
    input.resize(&shape);
    input.data.copy_from_slice(&x.data[from * per..to * per]);
    let mut rng = Rng::new(0);
    net.forward(&mut Context {
        mode: Mode::Train,
        rng: &mut rng,
    });
    let criterion = net.criterion();
    let (logits, dlogits) = net.output_and_grad_mut();
    criterion.apply(logits, &labels[from..to], Some((dlogits, scale)));
    net.backward(false);
}

/// Every parameter's gradient, grouped by layer (module), flattened.
fn layer_grads(net: &Network) -> Vec<Vec<f64>> {
    let mut out: Vec<(String, Vec<f64>)> = Vec::new();
    for (name, p) in net.params() {
        let module = name.rsplit_once('.').unwrap().0.to_string();
        if out.last().map(|(m, _)| m) != Some(&module) {
            out.push((module, Vec::new()));
        }
        let grads = p.grad.data.iter().map(|&g| g as f64);
        out.last_mut().unwrap().1.extend(grads);
    }
    out.into_iter().map(|(_, g)| g).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn close(a: f64, b: f64, rel: f64, what: &str) {
    let tol = rel * a.abs().max(b.abs()).max(1e-12);
    assert!((a - b).abs() <= tol, "{what}: {a} against {b}");
}

/// Per-sample gradients by brute force: sample n alone through a copy of `net`, its own loss.
fn per_sample_grads(net: &Network, x: &Tensor, labels: &[u8]) -> Vec<Vec<Vec<f64>>> {
    (0..x.shape[0])
        .map(|n| {
            let mut one = net.duplicate();
            one.zero_grad();
            pass(&mut one, x, labels, (n, n + 1), 1.0);
            layer_grads(&one)
        })
        .collect()
}

fn models() -> Vec<(&'static str, ModelConfig)> {
    let study = ModelConfig::default();
    vec![
        ("study (dense conv3)", study.clone()),
        (
            "study, tanh, average pooling",
            ModelConfig {
                activation: lenet::nn::activation::ActivationKind::Tanh,
                pooling: Pooling::Avg,
                ..study.clone()
            },
        ),
        (
            "1998 (C3's table, subsampling, RBF)",
            ModelConfig {
                arch: Arch::Lecun1998,
                ..study.clone()
            },
        ),
        (
            "1998 with softmax",
            ModelConfig {
                arch: Arch::Lecun1998Softmax,
                ..study
            },
        ),
    ]
}

/// Each layer's per-sample terms, scaled to each sample's own gradient, have the norms and
/// the inner products with the batch's gradient that batch-1 backward passes give: from
/// every layer's input and output gradient (folding off), and from what the layers keep
/// with folding on (a convolution run with its ReLU and pooling in one pass, whose kernels
/// keep each sample's change to their sums; samples split 4 + 2 across their chunks).
#[test]
fn per_sample_terms_match_batch_one_passes() {
    for ((name, config), fold) in models()
        .into_iter()
        .flat_map(|m| [(m.clone(), false), (m, true)])
    {
        let mut rng = Rng::new(11);
        let mut net = config.build(&mut rng);
        net.set_fold_relu(fold);
        net.keep_sample_grads(fold);
        let name = format!("{name}, folded {fold}");
        let b = 6;
        let (x, labels) = batch(&net, b, &mut rng);
        net.zero_grad();
        pass(&mut net, &x, &labels, (0, b), 1.0 / b as f32);
        let terms = net.sample_terms(true).unwrap();
        let mean = layer_grads(&net);
        let each = per_sample_grads(&net, &x, &labels);
        assert_eq!(
            terms.len(),
            mean.len(),
            "{name}: a term per layer with parameters"
        );
        let bf = b as f64;
        for (l, t) in terms.iter().enumerate() {
            for (n, sample) in each.iter().enumerate() {
                let g = &sample[l];
                let what = format!("{name}, layer {l}, sample {n}");
                close(
                    bf * bf * t.sq[n],
                    dot(g, g),
                    1e-4,
                    &format!("{what}: |g|^2"),
                );
                let (measured, exact) = (bf * t.dot[n], dot(g, &mean[l]));
                let scale = dot(g, g).sqrt() * dot(&mean[l], &mean[l]).sqrt();
                assert!(
                    (measured - exact).abs() <= 1e-4 * scale.max(1e-12),
                    "{what}: g.G {measured} against {exact}"
                );
            }
        }
    }
}

/// With batch normalization in training the samples are coupled, so there is no batch-1
/// pass to compare with; its terms still add up to the gradient: the sum over the samples of
/// each term's inner product with the gradient is the gradient's squared norm, in every
/// layer.
#[test]
fn batch_norm_terms_add_up_to_the_gradient() {
    for at in [BatchNormAt::First, BatchNormAt::All] {
        let config = ModelConfig {
            batch_norm: at,
            ..ModelConfig::default()
        };
        let mut rng = Rng::new(5);
        let mut net = config.build(&mut rng);
        net.set_fold_relu(false);
        let b = 6;
        let (x, labels) = batch(&net, b, &mut rng);
        net.zero_grad();
        pass(&mut net, &x, &labels, (0, b), 1.0 / b as f32);
        let terms = net.sample_terms(true).unwrap();
        let grads = layer_grads(&net);
        for (l, (t, g)) in terms.iter().zip(&grads).enumerate() {
            close(
                t.dot.iter().sum(),
                dot(g, g),
                1e-4,
                &format!("{at:?}, layer {l}"),
            );
        }
        let bn = (net.layer_names().iter().enumerate())
            .filter(|(i, _)| net.summary()[*i].kind == lenet::nn::LayerKind::BatchNorm)
            .count();
        assert!(bn > 0, "{at:?}: the model has batch normalization");
    }
    // BatchNorm is used above through the model; name it so the import says what is tested.
    let _ = std::any::type_name::<BatchNorm>();
}

/// The recorded noise columns are their definitions computed from brute-force per-sample
/// gradients g_n and their mean G: tr(Sigma) = sum |g_n - G|^2 / (B - 1), and so on; a step
/// taken in chunks gives the same values but for the two tests that need the whole batch.
#[test]
fn the_noise_columns_are_their_definitions() {
    for fold in [false, true] {
        noise_columns_are_their_definitions(fold);
    }
}

/// [`the_noise_columns_are_their_definitions`] with folding off, or on with the layers
/// keeping their per-sample terms (as a training step recording the noise set runs).
fn noise_columns_are_their_definitions(fold: bool) {
    let mut rng = Rng::new(2);
    let mut net = ModelConfig::default().build(&mut rng);
    net.set_fold_relu(false);
    let b = 8;
    let (x, labels) = batch(&net, b, &mut rng);
    let each = per_sample_grads(&net, &x, &labels);
    let layers = each[0].len();
    let flat = |g: &Vec<Vec<f64>>| g.concat();
    let g_all: Vec<Vec<f64>> = each.iter().map(flat).collect();
    let mean: Vec<f64> = (0..g_all[0].len())
        .map(|k| g_all.iter().map(|g| g[k]).sum::<f64>() / b as f64)
        .collect();
    let bf = b as f64;
    let g2 = dot(&mean, &mean);
    let trace: f64 = g_all
        .iter()
        .map(|g| {
            g.iter()
                .zip(&mean)
                .map(|(a, m)| (a - m) * (a - m))
                .sum::<f64>()
        })
        .sum::<f64>()
        / (bf - 1.0);
    let projections: Vec<f64> = g_all.iter().map(|g| dot(g, &mean)).collect();
    let proj_var = projections.iter().map(|p| (p - g2) * (p - g2)).sum::<f64>() / (bf - 1.0);
    let orth_var = g_all
        .iter()
        .zip(&projections)
        .map(|(g, p)| {
            (g.iter().zip(&mean))
                .map(|(a, m)| (a - p / g2 * m).powi(2))
                .sum::<f64>()
        })
        .sum::<f64>()
        / (bf - 1.0);
    let norms: Vec<f64> = g_all.iter().map(|g| dot(g, g).sqrt()).collect();
    let expected = [
        ("sample_grad_norm", norms.iter().sum::<f64>() / bf),
        (
            "sample_grad_norm_max",
            norms.iter().cloned().fold(0.0, f64::max),
        ),
        ("trace_covariance", trace),
        ("grad_variance", trace / bf),
        ("true_grad_sq", g2 - trace / bf),
        ("noise_scale", trace / (g2 - trace / bf)),
        ("norm_test", (trace / bf / g2).sqrt()),
        ("inner_product_test", (proj_var / bf / (g2 * g2)).sqrt()),
        ("orthogonality_test", (orth_var / bf / g2).sqrt()),
    ];
    // Per layer: |G_l|^2 over tr(Sigma_l) / B.
    let snr: Vec<f64> = (0..layers)
        .map(|l| {
            let m: Vec<f64> = (0..each[0][l].len())
                .map(|k| each.iter().map(|g| g[l][k]).sum::<f64>() / bf)
                .collect();
            let t = each
                .iter()
                .map(|g| {
                    g[l].iter()
                        .zip(&m)
                        .map(|(a, c)| (a - c).powi(2))
                        .sum::<f64>()
                })
                .sum::<f64>()
                / (bf - 1.0);
            dot(&m, &m) / (t / bf)
        })
        .collect();

    net.set_fold_relu(fold);
    net.keep_sample_grads(fold);
    for chunks in [1, 2] {
        let mut recorder = Recorder::new(&net, InstrumentSet::Noise, 1);
        net.zero_grad();
        recorder.begin_noise(b, chunks == 1);
        let per = b / chunks;
        for c in 0..chunks {
            pass(
                &mut net,
                &x,
                &labels,
                (c * per, (c + 1) * per),
                1.0 / bf as f32,
            );
            recorder.add_sample_terms(&net).unwrap();
        }
        recorder.before_update(&net);
        recorder.after_update(&net, 1, 1, 0.0, 0.1);
        let header: Vec<String> = recorder.header().split(',').map(String::from).collect();
        let row = &recorder.rows[0];
        let value = |name: &str| row[header.iter().position(|h| h == name).unwrap()];
        for (name, exact) in expected {
            let needs_whole = name == "inner_product_test" || name == "orthogonality_test";
            if chunks > 1 && needs_whole {
                assert!(value(name).is_nan(), "{name} in chunks");
            } else {
                close(
                    value(name),
                    exact,
                    1e-3,
                    &format!("{name}, {chunks} chunks, folded {fold}"),
                );
            }
        }
        let snr_cols: Vec<&String> = header.iter().filter(|h| h.starts_with("snr/")).collect();
        assert_eq!(snr_cols.len(), layers);
        for (col, exact) in snr_cols.iter().zip(&snr) {
            close(value(col), *exact, 1e-3, col);
        }
        assert_eq!(
            header
                .iter()
                .filter(|h| NOISE_COLUMNS.contains(&h.as_str()))
                .count(),
            NOISE_COLUMNS.len()
        );
    }
}

/// What the units did, against the activations themselves: a ReLU layer's units zero for
/// every sample, a tanh layer's outputs within 1% of its bound, and batch normalization's
/// statistics, the mean and standard deviation of its input per channel.
#[test]
fn unit_statistics_are_what_they_say() {
    use lenet::nn::network::{UnitKind, UnitStats};
    for config in [
        ModelConfig::default(),
        ModelConfig {
            batch_norm: BatchNormAt::All,
            ..ModelConfig::default()
        },
        ModelConfig {
            arch: Arch::Lecun1998,
            ..ModelConfig::default()
        },
    ] {
        let mut rng = Rng::new(4);
        let mut net = config.build(&mut rng);
        net.set_fold_relu(false);
        let b = 6;
        let (x, labels) = batch(&net, b, &mut rng);
        pass(&mut net, &x, &labels, (0, b), 1.0 / b as f32);
        let layers = net.unit_layers();
        let stats = net.unit_stats();
        // The same with folding on, from what the layers keep: the convolution's marks of
        // the ReLU units its one pass never writes, the pooling's input.
        let mut folded = net.duplicate();
        folded.set_fold_relu(true);
        folded.keep_sample_grads(true);
        pass(&mut folded, &x, &labels, (0, b), 1.0 / b as f32);
        assert_eq!(folded.unit_stats(), stats, "{:?}", config.arch);
        assert_eq!(layers.len(), stats.len());
        assert!(!layers.is_empty());
        for ((name, kind), stat) in layers.iter().zip(&stats) {
            let i = net.layer_names().iter().position(|n| n == name).unwrap();
            let (input, output) = (
                if i == 0 {
                    net.input()
                } else {
                    net.activation(i - 1)
                },
                net.activation(i),
            );
            let per = output.len() / b;
            match (kind, stat) {
                (UnitKind::Relu, UnitStats::Relu { silent }) => {
                    for (u, &s) in silent.iter().enumerate() {
                        let zero = (0..b).all(|n| output.data[n * per + u] == 0.0);
                        assert_eq!(s, zero, "{name}, unit {u}");
                    }
                }
                (UnitKind::Tanh { bound }, UnitStats::Tanh { saturated, outputs }) => {
                    let count = output
                        .data
                        .iter()
                        .filter(|v| v.abs() >= 0.99 * bound)
                        .count();
                    assert_eq!((*saturated, *outputs), (count, output.len()), "{name}");
                }
                (UnitKind::BatchNorm, UnitStats::BatchNorm { mean_abs, std }) => {
                    let c = input.shape[1];
                    let hw = input.len() / (b * c);
                    let (mut m_sum, mut s_sum) = (0.0, 0.0);
                    for ci in 0..c {
                        let v: Vec<f64> = (0..b)
                            .flat_map(|n| (0..hw).map(move |p| (n, p)))
                            .map(|(n, p)| input.data[(n * c + ci) * hw + p] as f64)
                            .collect();
                        let mean = v.iter().sum::<f64>() / v.len() as f64;
                        let var =
                            v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
                        m_sum += mean.abs();
                        s_sum += (var + 1e-5).sqrt();
                    }
                    close(*mean_abs, m_sum / c as f64, 1e-4, &format!("{name}: mean"));
                    close(*std, s_sum / c as f64, 1e-4, &format!("{name}: std"));
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }
}
