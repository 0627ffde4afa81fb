//! End-to-end guards on the committed MNIST subset (2,000 training images, 500 test images,
//! 500 of the training images held out for validation), as tinygrad's beautiful_mnist
//! asserts a target accuracy.

mod common;

use lenet::data::{Mnist, Split};
use lenet::optim::config::Overrides;
use lenet::optim::{OptimizerConfig, OptimizerName};
use lenet::train::{DataConfig, Silent, TrainConfig, Trainer, evaluate};

fn config(name: OptimizerName, lr: f64, epochs: usize) -> TrainConfig {
    let optimizer = OptimizerConfig::resolve(
        name,
        &Overrides {
            lr: Some(lr),
            ..Default::default()
        },
    )
    .unwrap();
    TrainConfig {
        model: Default::default(),
        optimizer,
        schedule: Default::default(),
        batch_size: match name {
            OptimizerName::Gd => 0,
            OptimizerName::Sgd => 1,
            _ => 64,
        },
        epochs,
        seed: 1,
        data: DataConfig {
            valid_size: 500,
            ..Default::default()
        },
    }
}

#[test]
fn adam_reaches_90_percent_on_the_subset() {
    let data = Mnist::load(&common::subset_dir()).unwrap();
    let split = Split::new(data.train.len(), 500, 0).unwrap();
    let mut trainer = Trainer::new(config(OptimizerName::Adam, 2e-3, 8)).unwrap();
    for _ in 0..8 {
        trainer.run_epoch(&data, &split, &mut Silent).unwrap();
    }
    let all: Vec<u32> = (0..data.test.len() as u32).collect();
    let test = evaluate(&mut trainer.net, Default::default(), &data.test, &all);
    assert!(test.accuracy >= 0.90, "test accuracy {:.3}", test.accuracy);
}

#[test]
fn every_optimizer_lowers_the_training_loss() {
    let data = Mnist::load(&common::subset_dir()).unwrap();
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
