//! The readings of the 1998 paper's protocol that lenet can run (issue "settle what is still
//! open"): how the weights are drawn (`--init`), the MAP criterion's constant (`--map-j`) and
//! how often sdlm re-estimates its second derivatives (`--curvature-every`).

mod common;

use lenet::data::{DatasetImages, Preprocess, Split};
use lenet::nn::init::Init;
use lenet::nn::loss::Criterion;
use lenet::nn::rbf::Prototypes;
use lenet::nn::{Arch, ModelConfig, Network};
use lenet::optim::hyper::{HyperKey, Hypers};
use lenet::optim::{OptimizerConfig, OptimizerName, Schedule};
use lenet::rng::Rng;
use lenet::train::{DataConfig, Silent, TrainConfig, Trainer, load_model, model_file};

fn network(init: Init) -> Network {
    let model = ModelConfig {
        arch: Arch::Lecun1998,
        init,
        ..ModelConfig::default()
    };
    model.validate().unwrap();
    model.build(&mut Rng::new(7))
}

/// The values of parameter `name` of `net`.
fn values(net: &Network, name: &str) -> Vec<f32> {
    let params = net.params();
    let (_, p) = params.iter().find(|(n, _)| n == name).expect(name);
    p.value.data.clone()
}

/// The largest magnitude among `v`.
fn largest(v: &[f32]) -> f32 {
    v.iter().fold(0.0f32, |m, x| m.max(x.abs()))
}

/// Each rule draws every layer's weights within its bound, close to it (so the bound is the
/// one used, not a smaller one), from the same random numbers: the rules differ only by a
/// factor per layer (per C3 map).
#[test]
fn the_three_rules_draw_the_same_numbers_within_their_bounds() {
    let rules = [Init::Default, Init::PerMapFanIn, Init::SqrtFanIn];
    let nets: Vec<Network> = rules.iter().map(|&r| network(r)).collect();
    let bound = |rule: Init, fan_in: usize| rule.lecun1998_bound(fan_in);
    for (layer, fan_in) in [("c1", 25), ("s2", 4), ("s4", 4), ("c5", 400), ("f6", 120)] {
        let name = format!("{layer}.weight");
        let plain = values(&nets[0], &name);
        for (rule, net) in rules.iter().zip(&nets) {
            let w = values(net, &name);
            let (b, top) = (bound(*rule, fan_in), largest(&w));
            assert!(
                top <= b && top >= 0.6 * b,
                "{name} {rule:?}: {top} against {b}"
            );
            let ratio = b / bound(Init::Default, fan_in);
            for (x, y) in w.iter().zip(&plain) {
                assert!(
                    (x - ratio * y).abs() <= 1e-6 * b,
                    "{name} {rule:?}: {x} vs {y}"
                );
            }
        }
    }
    // C3: by default every map at the mean fan-in, 93; the others at each map's own.
    let table = lenet::nn::model::C3_TABLE;
    for (rule, net) in rules.iter().zip(&nets) {
        let w = values(net, "c3.weight");
        for (m, inputs) in table.iter().enumerate() {
            let map = &w[m * 150..(m + 1) * 150];
            let fan_in = match rule {
                Init::Default => 93,
                _ => 25 * inputs.len(),
            };
            let (b, top) = (bound(*rule, fan_in), largest(map));
            assert!(
                top <= b * (1.0 + 1e-6),
                "C3 map {m} {rule:?}: {top} against {b}"
            );
            assert!(top >= 0.6 * b, "C3 map {m} {rule:?}: {top} against {b}");
            let unconnected = (0..6).filter(|c| !inputs.contains(c));
            for c in unconnected {
                assert!(map[c * 25..(c + 1) * 25].iter().all(|&x| x == 0.0));
            }
        }
    }
}

/// A model file records a constant j other than the paper-less default (and the rule its
/// weights were drawn by, and the prototypes' drawing), and loads back with them; at the
/// defaults it records none, as files did before they were settings.
#[test]
fn a_model_file_records_j_and_the_rule_only_when_they_are_not_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = TrainConfig {
        model: ModelConfig {
            arch: Arch::Lecun1998,
            ..ModelConfig::default()
        },
        ..lenet::train::options::Options::default().resolve().unwrap()
    };
    config.data.preprocess = Preprocess::Lecun;
    let net = config.model.build(&mut Rng::new(1));
    let plain = model_file(&net, &config);
    let meta = plain.metadata.clone().unwrap();
    assert!(
        !meta.contains("map_j") && !meta.contains("init") && !meta.contains("prototypes"),
        "{meta}"
    );
    assert_eq!(net.prototypes(), Some(&Prototypes::Plain.tensor()));

    config.model.map_j = 3.0;
    config.model.init = Init::SqrtFanIn;
    config.model.prototypes = Prototypes::Bold;
    let net = config.model.build(&mut Rng::new(1));
    let file = model_file(&net, &config);
    let meta = file.metadata.clone().unwrap();
    assert!(
        meta.contains("\"map_j\":3.0")
            && meta.contains("sqrt-fan-in")
            && meta.contains("\"prototypes\":\"bold\""),
        "{meta}"
    );
    let path = dir.path().join("model.safetensors");
    file.save(&path).unwrap();
    let (loaded, model, _, _) = load_model(&path).unwrap();
    assert_eq!(model.map_j, 3.0);
    assert_eq!(loaded.criterion(), Criterion::Map { j: 3.0 });
    // The loaded network compares F6 with the bold drawing, which every reader of the
    // prototypes (the report's layer figure, `lenet model`, explore) takes from it.
    assert_eq!(model.prototypes, Prototypes::Bold);
    assert_eq!(loaded.prototypes(), Some(&Prototypes::Bold.tensor()));
}

/// sdlm on the subset's 1,500 training images, two passes, re-estimating every `every` steps.
fn sdlm_weights(every: f64) -> Vec<f32> {
    let data = DatasetImages::load(&common::subset_dir()).unwrap();
    let split = Split::new(data.train.len(), 500, 0).unwrap();
    let mut hypers = Hypers::default();
    hypers.set(HyperKey::Lr, 2e-5);
    hypers.set(HyperKey::CurvatureSamples, 100.0);
    hypers.set(HyperKey::CurvatureEvery, every);
    let config = TrainConfig {
        model: ModelConfig {
            arch: Arch::Lecun1998,
            ..ModelConfig::default()
        },
        optimizer: OptimizerConfig::resolve(OptimizerName::Sdlm, &hypers).unwrap(),
        batch_size: 1,
        epochs: 2,
        data: DataConfig {
            valid_size: 500,
            preprocess: Preprocess::Lecun,
            ..Default::default()
        },
        ..lenet::train::options::Options::default().resolve().unwrap()
    };
    let mut config = config;
    config.schedule.schedule = Schedule::Lecun1998;
    let mut trainer = Trainer::new(config).unwrap();
    for _ in 0..2 {
        trainer.run_epoch(&data, &split, &mut Silent).unwrap();
    }
    values(&trainer.net, "c5.weight")
}

/// Re-estimating every K steps changes training when a pass has more than K steps, and is
/// exactly the once-per-pass rule when it has fewer (1,500 steps a pass here).
#[test]
fn curvature_every_re_estimates_within_a_pass_only() {
    let once = sdlm_weights(0.0);
    assert_eq!(sdlm_weights(1_500.0), once);
    let often = sdlm_weights(300.0);
    assert_ne!(often, once);
    assert!(often.iter().all(|w| w.is_finite()));
}
