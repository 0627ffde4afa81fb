//! End-to-end guards on the committed MNIST subset (2,000 training images, 500 test images,
//! 500 of the training images held out for validation), as tinygrad's beautiful_mnist
//! asserts a target accuracy.

mod common;

use lenet::data::{DatasetImages, Split};
use lenet::optim::hyper::Hypers;
use lenet::optim::{OptimizerConfig, OptimizerName};
use lenet::train::{DataConfig, Silent, TrainConfig, Trainer, evaluate};

fn config(name: OptimizerName, lr: f64, epochs: usize) -> TrainConfig {
    let mut hypers = Hypers::default();
    hypers.set(lenet::optim::hyper::HyperKey::Lr, lr);
    let optimizer = OptimizerConfig::resolve(name, &hypers).unwrap();
    TrainConfig {
        model: Default::default(),
        optimizer,
        schedule: Default::default(),
        batch_size: match name {
            OptimizerName::Gd => 0,
            OptimizerName::Sgd | OptimizerName::Sdlm => 1,
            _ => 64,
        },
        epochs,
        seed: 1,
        data: DataConfig {
            valid_size: 500,
            ..Default::default()
        },
        vary: None,
        instruments: Default::default(),
        instruments_every: 1,
    }
}

#[test]
fn adam_reaches_90_percent_on_the_subset() {
    let data = DatasetImages::load(&common::subset_dir()).unwrap();
    let split = Split::new(data.train.len(), 500, 0).unwrap();
    let mut trainer = Trainer::new(config(OptimizerName::Adam, 2e-3, 8)).unwrap();
    for _ in 0..8 {
        trainer.run_epoch(&data, &split, &mut Silent).unwrap();
    }
    let all: Vec<u32> = (0..data.test.len() as u32).collect();
    let test = evaluate(&mut trainer.net, Default::default(), &data.test, &all);
    assert!(test.accuracy >= 0.90, "test accuracy {:.3}", test.accuracy);
}

/// The test accuracy of LeCun's 1998 network, RBF output and MAP criterion, after two passes
/// over the subset's 1,500 training images with `name` at `lr` and `schedule`.
fn train_1998(name: OptimizerName, lr: f64, schedule: lenet::optim::Schedule) -> f64 {
    let data = DatasetImages::load(&common::subset_dir()).unwrap();
    let split = Split::new(data.train.len(), 500, 0).unwrap();
    let mut c = config(name, lr, 2);
    c.model.arch = lenet::nn::Arch::Lecun1998;
    c.data.preprocess = lenet::data::Preprocess::Lecun;
    c.schedule.schedule = schedule;
    let mut trainer = Trainer::new(c).unwrap();
    assert!(matches!(
        trainer.net.criterion(),
        lenet::nn::loss::Criterion::Map { .. }
    ));
    for _ in 0..2 {
        trainer.run_epoch(&data, &split, &mut Silent).unwrap();
    }
    let all: Vec<u32> = (0..data.test.len() as u32).collect();
    let preprocess = lenet::data::Preprocess::Lecun;
    evaluate(&mut trainer.net, preprocess, &data.test, &all).accuracy
}

/// The 1998 network learns through its RBF output: per-sample SGD at lr 1e-3, its
/// nearest-prototype predictions well above chance on the test images.
#[test]
fn the_1998_network_learns_through_its_rbf_output() {
    let accuracy = train_1998(OptimizerName::Sgd, 1e-3, Default::default());
    assert!(accuracy >= 0.7, "test accuracy {accuracy:.3}");
}

/// The paper's own training of it: sdlm with its schedule (the base rate below the paper's
/// 5e-4, which sends this network to chance: see `studies/lecun1998.toml`), well above
/// chance (79.8% when written, on the subset's 500 test images).
#[test]
fn the_1998_network_learns_with_sdlm() {
    let schedule = lenet::optim::Schedule::Lecun1998;
    let accuracy = train_1998(OptimizerName::Sdlm, 2e-5, schedule);
    assert!(accuracy >= 0.7, "test accuracy {accuracy:.3}");
}

#[test]
fn every_optimizer_lowers_the_training_loss() {
    let data = DatasetImages::load(&common::subset_dir()).unwrap();
    let split = Split::new(data.train.len(), 500, 0).unwrap();
    // Learning rates that suit each rule on this small set, away from the edge of stability
    // (minibatch-sgd at 0.2 oscillated on one code path and not the other); gd takes one step
    // per epoch, so it gets more epochs.
    let cases = [
        (OptimizerName::Gd, 0.5, 20),
        (OptimizerName::Sgd, 0.01, 1),
        (OptimizerName::MinibatchSgd, 0.1, 6),
        (OptimizerName::Momentum, 0.02, 4),
        (OptimizerName::Nesterov, 0.02, 4),
        (OptimizerName::Adagrad, 0.01, 2),
        (OptimizerName::Adadelta, 1.0, 2),
        (OptimizerName::Rmsprop, 1e-3, 2),
        (OptimizerName::Adam, 1e-3, 2),
        (OptimizerName::Adamw, 1e-3, 2),
        // The study's ReLU network: the second derivatives through ReLU (slope 0 or 1),
        // max pooling and softmax cross-entropy.
        (OptimizerName::Sdlm, 2e-4, 1),
    ];
    for (name, lr, epochs) in cases {
        let mut trainer = Trainer::new(config(name, lr, epochs)).unwrap();
        let before = evaluate(
            &mut trainer.net,
            Default::default(),
            &data.train,
            &split.train,
        );
        for _ in 0..epochs {
            trainer.run_epoch(&data, &split, &mut Silent).unwrap();
        }
        let after = evaluate(
            &mut trainer.net,
            Default::default(),
            &data.train,
            &split.train,
        );
        assert!(
            after.loss < before.loss * 0.95,
            "{}: training loss {:.4} -> {:.4}",
            name.as_str(),
            before.loss,
            after.loss
        );
    }
}

/// Evaluation spreads whole chunks of the test set over the threads (each on a replica of
/// the network): with one thread and with two it hands every chunk's logits to `visit` in
/// order, and its loss and accuracy are the same bits as the network's own forward passes
/// over the chunks one after the other, with the chunks' losses added up in order.
#[test]
fn evaluation_is_the_same_bits_with_one_thread_and_two() {
    use lenet::nn::loss::cross_entropy;
    use lenet::nn::{Context, Mode, ModelConfig};
    use lenet::rng::Rng;
    use lenet::train::{MAX_CHUNK, evaluate_with};

    let data = DatasetImages::load(&common::subset_dir()).unwrap();
    let all: Vec<u32> = (0..data.test.len() as u32).collect();
    assert!(
        all.len() > 2 * MAX_CHUNK - 50,
        "the subset's test set spans chunks"
    );
    let preprocess = lenet::data::Preprocess::default();
    let mut net = ModelConfig::default().build(&mut Rng::new(3));
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();

    let (mut logits, mut loss_sum, mut correct) = (Vec::new(), 0.0f64, 0);
    for chunk in all.chunks(MAX_CHUNK) {
        preprocess.fill_batch(&data.test.images, chunk, net.input_mut());
        let mode = Mode::Eval;
        let out = net.forward(&mut Context {
            mode,
            rng: &mut Rng::new(0),
        });
        let labels: Vec<u8> = chunk
            .iter()
            .map(|&i| data.test.labels[i as usize])
            .collect();
        let r = cross_entropy(out, &labels, None);
        (loss_sum, correct) = (loss_sum + r.loss_sum, correct + r.correct);
        logits.push(bits(&out.data));
    }
    let n = all.len() as f64;

    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut seen = Vec::new();
        let e = pool.install(|| {
            evaluate_with(&mut net, preprocess, &data.test, &all, |first, out| {
                seen.push((first, bits(&out.data)));
            })
        });
        let firsts: Vec<usize> = (0..logits.len()).map(|c| c * MAX_CHUNK).collect();
        assert_eq!(
            seen.iter().map(|s| s.0).collect::<Vec<_>>(),
            firsts,
            "{threads} threads"
        );
        assert!(
            seen.iter().map(|s| &s.1).eq(&logits),
            "{threads} threads: logits"
        );
        assert_eq!(
            e.loss.to_bits(),
            (loss_sum / n).to_bits(),
            "{threads} threads: loss"
        );
        assert_eq!(
            e.accuracy.to_bits(),
            (correct as f64 / n).to_bits(),
            "{threads} threads"
        );
    }
}

/// Paired seeds: configurations that differ in the optimizer, dropout or batch normalization
/// but share a seed start from the same weights, bit for bit, in every convolution and fully
/// connected layer (batch norm adds layers that draw nothing; dropout draws from a stream of
/// its own), so their runs differ only by what the configurations change. A different seed
/// starts elsewhere.
#[test]
fn configurations_that_share_a_seed_start_from_the_same_weights() {
    use lenet::nn::BatchNormAt;
    let weights = |config: TrainConfig| -> Vec<Vec<u32>> {
        let trainer = Trainer::new(config).unwrap();
        let layers: Vec<String> = (trainer.net.summary().into_iter())
            .filter(|l| l.layer.starts_with("Conv2d") || l.layer.starts_with("Linear"))
            .map(|l| l.name)
            .collect();
        (trainer.net.params().into_iter())
            .filter(|(name, _)| layers.iter().any(|l| name.starts_with(&format!("{l}."))))
            .map(|(_, p)| p.value.data.iter().map(|v| v.to_bits()).collect())
            .collect()
    };
    let base = config(OptimizerName::Adam, 1e-3, 1);
    let mut variants = Vec::new();
    for (dropout, batch_norm) in [
        (0.4, BatchNormAt::None),
        (0.0, BatchNormAt::First),
        (0.4, BatchNormAt::First),
        (0.0, BatchNormAt::All),
    ] {
        let mut c = base.clone();
        c.model.dropout = dropout;
        c.model.batch_norm = batch_norm;
        variants.push(c);
    }
    variants.push(config(OptimizerName::Momentum, 1e-2, 1));
    let reference = weights(base.clone());
    assert_eq!(reference.len(), 10, "5 weights and 5 biases");
    for v in variants {
        assert_eq!(weights(v.clone()), reference, "{:?}", v.model);
    }
    let mut other_seed = base;
    other_seed.seed += 1;
    assert_ne!(weights(other_seed), reference);
}
