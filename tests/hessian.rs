//! Hessian-vector products and the extreme eigenvalues (`nn::hessian`) against what they
//! estimate: the exact Hessian of a softmax regression, and the eigenvalues of the dense
//! Hessian of a tiny network; and the network left exactly as it was.

use lenet::nn::activation::{Activation, ActivationKind};
use lenet::nn::batchnorm::BatchNorm;
use lenet::nn::dropout::Dropout;
use lenet::nn::hessian::{Batch, Passes, extreme_eigenvalues, hessian_vector_product};
use lenet::nn::layer::Buffer;
use lenet::nn::linear::Linear;
use lenet::nn::{Arch, Layer, Mode, ModelConfig, Network};
use lenet::rng::Rng;
use lenet::tensor::Tensor;

const TRAIN: Passes = Passes {
    mode: Mode::Train,
    seed: 7,
};

fn random(shape: &[usize], rng: &mut Rng) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(
        shape,
        (0..n).map(|_| rng.uniform_range(-1.0, 1.0)).collect(),
    )
}

fn network(layers: Vec<(&str, Box<dyn Layer>)>, input: &[usize]) -> Network {
    let layers = (layers.into_iter())
        .map(|(n, l)| (n.to_string(), l))
        .collect();
    Network::new(input, layers)
}

/// Writes samples `from..to` of `x` (samples along the first axis) into `input`.
fn rows_of(x: &Tensor) -> impl Fn(usize, usize, &mut Tensor) + '_ {
    |from, to, input| {
        let per = x.len() / x.shape[0];
        let mut shape = x.shape.clone();
        shape[0] = to - from;
        input.resize(&shape);
        input.data.copy_from_slice(&x.data[from * per..to * per]);
    }
}

/// Parameters, buffers and gradients, for comparing a network before and after.
fn everything(net: &Network) -> Vec<(String, Vec<f32>)> {
    let mut out: Vec<(String, Vec<f32>)> = (net.state_dict().into_iter())
        .map(|(k, b)| match b {
            Buffer::F32(t) => (k, t.data),
            Buffer::I64(i) => (k, vec![i as f32]),
        })
        .collect();
    for (name, p) in net.params() {
        out.push((format!("{name}.grad"), p.grad.data.clone()));
    }
    out
}

/// Softmax regression z = W x + b with the mean cross-entropy: its Hessian is
/// (1/N) sum_n (diag(p_n) - p_n p_n^T) ⊗ [x_n, 1][x_n, 1]^T, so Hv is known exactly.
#[test]
fn a_product_matches_the_exact_hessian_of_softmax_regression() {
    let (n, d, c) = (5, 4, 3);
    let mut rng = Rng::new(3);
    let x = random(&[n, d], &mut rng);
    let labels = [0u8, 2, 1, 1, 0];
    let fc = Linear::new(d, c, &mut rng);
    let (w, b) = (fc.weight.value.clone(), fc.bias.value.clone());
    let mut net = network(vec![("fc", Box::new(fc))], &[d]);
    let v: Vec<f32> = (0..c * d + c)
        .map(|_| rng.uniform_range(-1.0, 1.0))
        .collect();
    // In pieces of 2 samples, as training takes a batch larger than its chunk.
    let fill = rows_of(&x);
    let batch = Batch {
        labels: &labels,
        piece: 2,
        fill: &fill,
    };
    let hv = hessian_vector_product(&mut net, &batch, TRAIN, &v);

    // v as a [c, d + 1] matrix: the weight's rows, then the bias as a last column.
    let v_at = |k: usize, j: usize| if j < d { v[k * d + j] } else { v[c * d + k] } as f64;
    let mut exact = vec![0.0f64; c * d + c];
    for s in 0..n {
        let xs: Vec<f64> = (0..=d)
            .map(|j| if j < d { x.data[s * d + j] as f64 } else { 1.0 })
            .collect();
        let z: Vec<f64> = (0..c)
            .map(|k| {
                (0..d)
                    .map(|j| w.data[k * d + j] as f64 * xs[j])
                    .sum::<f64>()
                    + b.data[k] as f64
            })
            .collect();
        let top = z.iter().cloned().fold(f64::MIN, f64::max);
        let e: Vec<f64> = z.iter().map(|z| (z - top).exp()).collect();
        let total: f64 = e.iter().sum();
        let p: Vec<f64> = e.iter().map(|e| e / total).collect();
        let u: Vec<f64> = (0..c)
            .map(|k| (0..=d).map(|j| v_at(k, j) * xs[j]).sum())
            .collect();
        let pu: f64 = (0..c).map(|k| p[k] * u[k]).sum();
        for k in 0..c {
            let a_u = p[k] * u[k] - p[k] * pu;
            for (j, &xj) in xs.iter().enumerate() {
                let at = if j < d { k * d + j } else { c * d + k };
                exact[at] += a_u * xj / n as f64;
            }
        }
    }
    let scale = exact.iter().map(|e| e.abs()).fold(0.0, f64::max);
    for (i, (&got, want)) in hv.iter().zip(&exact).enumerate() {
        assert!(
            (got as f64 - want).abs() <= 1e-3 * scale,
            "Hv[{i}]: {got} against the exact {want} (largest entry {scale})"
        );
    }
}

/// The eigenvalues of a symmetric matrix (cyclic Jacobi rotations, f64).
fn eigenvalues(mut a: Vec<Vec<f64>>) -> Vec<f64> {
    let n = a.len();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        if off < 1e-24 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                if a[p][q].abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let (cos, sin) = (1.0 / (t * t + 1.0).sqrt(), t / (t * t + 1.0).sqrt());
                // A = J^T A J with J the rotation in the (p, q) plane: columns, then rows.
                for row in a.iter_mut() {
                    let (akp, akq) = (row[p], row[q]);
                    row[p] = cos * akp - sin * akq;
                    row[q] = sin * akp + cos * akq;
                }
                let (row_p, row_q) = (a[p].clone(), a[q].clone());
                for (k, (apk, aqk)) in row_p.into_iter().zip(row_q).enumerate() {
                    a[p][k] = cos * apk - sin * aqk;
                    a[q][k] = sin * apk + cos * aqk;
                }
            }
        }
    }
    (0..n).map(|i| a[i][i]).collect()
}

/// A tiny network with batch normalization, tanh and dropout, trained-mode passes: the
/// Lanczos method finds the dense Hessian's largest and smallest eigenvalues (the dense
/// Hessian built column by column from products with the unit vectors, symmetrised) to 1e-3
/// of the largest's magnitude, with fewer products than the Hessian has columns; and the
/// network, its gradients and batch normalization's running statistics come back bit for bit.
#[test]
fn lanczos_finds_the_dense_hessians_extreme_eigenvalues_and_leaves_the_network_as_it_was() {
    let mut rng = Rng::new(5);
    let (n, d) = (8, 3);
    let x = random(&[n, d], &mut rng);
    let labels = [0u8, 1, 2, 1, 0, 2, 2, 1];
    let layers: Vec<(&str, Box<dyn Layer>)> = vec![
        ("fc1", Box::new(Linear::new(d, 4, &mut rng))),
        ("bn", Box::new(BatchNorm::new(4, false))),
        (
            "act",
            Box::new(Activation {
                kind: ActivationKind::Tanh,
            }),
        ),
        ("drop", Box::new(Dropout::new(0.25))),
        ("fc2", Box::new(Linear::new(4, 3, &mut rng))),
    ];
    let mut net = network(layers, &[d]);
    let fill = rows_of(&x);
    let batch = Batch {
        labels: &labels,
        piece: n,
        fill: &fill,
    };
    // Gradients that are not zero, to see that they come back.
    net.for_each_param(&mut |_, p| p.grad.data.iter_mut().for_each(|g| *g = 0.25));
    let before = everything(&net);

    let found = extreme_eigenvalues(&mut net, &batch, TRAIN, None, 100, 1e-5);
    assert_eq!(everything(&net), before, "the estimate changed the network");

    let values: usize = net.params().iter().map(|(_, p)| p.value.len()).sum();
    let columns: Vec<Vec<f32>> = (0..values)
        .map(|i| {
            let mut e = vec![0.0; values];
            e[i] = 1.0;
            hessian_vector_product(&mut net, &batch, TRAIN, &e)
        })
        .collect();
    assert_eq!(everything(&net), before, "a product changed the network");
    let dense: Vec<Vec<f64>> = (0..values)
        .map(|i| {
            (0..values)
                .map(|j| 0.5 * (columns[i][j] as f64 + columns[j][i] as f64))
                .collect()
        })
        .collect();
    let asymmetry = (0..values)
        .flat_map(|i| (0..values).map(move |j| (i, j)))
        .map(|(i, j)| (columns[i][j] - columns[j][i]).abs())
        .fold(0.0f32, f32::max);
    let lambdas = eigenvalues(dense);
    let largest = lambdas.iter().cloned().fold(f64::MIN, f64::max);
    let smallest = lambdas.iter().cloned().fold(f64::MAX, f64::min);
    assert!(smallest < 0.0 && largest > 0.0, "{lambdas:?}");
    assert!(asymmetry < 1e-3 * largest as f32, "asymmetry {asymmetry}");
    for (what, got, want) in [
        ("largest", found.largest, largest),
        ("smallest", found.smallest, smallest),
    ] {
        assert!(
            (got - want).abs() <= 1e-3 * largest,
            "{what}: Lanczos {got} ({} products) against the dense Hessian's {want} (all: \
             {lambdas:?})",
            found.products
        );
    }
    assert!(found.products < values, "{} products", found.products);
}

/// On the 1998 network (C3's sparse table): the entries fixed at zero stay zero and the
/// network comes back as it was; the estimates are finite.
#[test]
fn the_estimate_keeps_a_sparse_tables_zeros() {
    let config = ModelConfig {
        arch: Arch::Lecun1998Softmax,
        ..ModelConfig::default()
    };
    let mut rng = Rng::new(2);
    let mut net = config.build(&mut rng);
    let x = random(&[2, 1, 32, 32], &mut rng);
    let fill = rows_of(&x);
    let batch = Batch {
        labels: &[3, 8],
        piece: 2,
        fill: &fill,
    };
    let before = everything(&net);
    let found = extreme_eigenvalues(&mut net, &batch, TRAIN, None, 3, 0.0);
    assert_eq!(everything(&net), before);
    assert_eq!(found.products, 3);
    assert!(
        found.largest.is_finite() && found.smallest <= found.largest,
        "{found:?}"
    );
    let frozen: Vec<bool> = (net.params().iter())
        .flat_map(|(_, p)| match &p.frozen_zero {
            Some(mask) => mask.clone(),
            None => vec![false; p.value.len()],
        })
        .collect();
    assert!(frozen.iter().any(|&f| f), "C3 has entries fixed at zero");
    for (i, (&f, &v)) in frozen.iter().zip(&found.vector).enumerate() {
        assert!(
            !f || v == 0.0,
            "entry {i} is fixed at zero, the eigenvector has {v}"
        );
    }
}

/// The Gauss–Newton trace against its definition, (1/N) sum_n sum_{k,k'} H_n[k,k'] J_nk . J_nk',
/// with every score's gradient J_nk taken by a batch-1 backward pass and H_n = diag(q) - q q^T
/// from the scores' softmax (with the rubbish class's constant score for the MAP criterion):
/// the study's model and the 1998 network with its RBF output.
#[test]
fn the_gauss_newton_trace_is_the_sum_of_the_exact_diagonal() {
    use lenet::nn::hessian::gauss_newton_trace;
    for arch in [Arch::Lenet5, Arch::Lecun1998] {
        let mut rng = Rng::new(9);
        let config = ModelConfig {
            arch,
            ..ModelConfig::default()
        };
        let mut net = config.build(&mut rng);
        let n = 4;
        let mut shape = vec![n];
        shape.extend_from_slice(net.input_shape());
        let x = random(&shape, &mut rng);
        let labels = [3u8, 1, 4, 1];
        let before = everything(&net);
        let fill = rows_of(&x);
        let batch = Batch {
            labels: &labels,
            piece: 3,
            fill: &fill,
        };
        let trace = gauss_newton_trace(&mut net, &batch, TRAIN).unwrap();
        assert_eq!(
            everything(&net),
            before,
            "{arch:?}: the network comes back as it was"
        );

        let extra = match net.criterion() {
            lenet::nn::loss::Criterion::Map { j } => Some(-j as f64),
            lenet::nn::loss::Criterion::CrossEntropy => None,
        };
        let mut exact = 0.0;
        for s in 0..n {
            let mut one = net.duplicate();
            fill(s, s + 1, one.input_mut());
            let mut drop = Rng::new(0);
            let scores: Vec<f64> = (one.forward(&mut lenet::nn::Context {
                mode: Mode::Train,
                rng: &mut drop,
            }))
            .data
            .iter()
            .map(|&v| v as f64)
            .collect();
            let k = scores.len();
            let z: f64 = scores.iter().map(|v| v.exp()).sum::<f64>() + extra.map_or(0.0, f64::exp);
            let q: Vec<f64> = scores.iter().map(|v| v.exp() / z).collect();
            let jacobian: Vec<Vec<f64>> = (0..k)
                .map(|c| {
                    one.zero_grad();
                    let (_, d) = one.output_and_grad_mut();
                    d.data
                        .iter_mut()
                        .enumerate()
                        .for_each(|(i, v)| *v = f32::from(u8::from(i == c)));
                    one.backward(false);
                    (one.params().iter())
                        .flat_map(|(_, p)| p.grad.data.iter().map(|&g| g as f64))
                        .collect()
                })
                .collect();
            for a in 0..k {
                for b in 0..k {
                    let h = if a == b { q[a] } else { 0.0 } - q[a] * q[b];
                    let jj: f64 = jacobian[a]
                        .iter()
                        .zip(&jacobian[b])
                        .map(|(u, v)| u * v)
                        .sum();
                    exact += h * jj / n as f64;
                }
            }
        }
        assert!(
            (trace - exact).abs() <= 1e-4 * exact,
            "{arch:?}: {trace} against {exact}"
        );
    }
}
