//! The LeNet-5 variants: the study's model and LeCun's 1998 original.
//!
//! The study's model (input 32x32, PyTorch module names in brackets):
//!
//! ```text
//! feature_extractor: conv1 Conv2d(1, 6, 5) -> act -> pool 2      [6, 14, 14]
//!                    [BatchNorm2d(6)            when batch_norm = first or all]
//!                    conv2 Conv2d(6, 16, 5) -> act -> pool 2     [16, 5, 5]
//!                    [BatchNorm2d(16)           when batch_norm = all]
//!                    conv3 Conv2d(16, 120, 5) -> act             [120, 1, 1]
//!                    [BatchNorm2d(120)          when batch_norm = all]
//! classifier:        fc1 Linear(120, 84) -> act [-> Dropout(p)] -> fc2 Linear(84, 10)
//! ```
//!
//! 61,706 parameters without batch normalization. Tensor names follow PyTorch's `state_dict`
//! of `nn.Sequential` blocks named `feature_extractor` and `classifier`, so PyTorch loads the
//! weights lenet saves.
//!
//! LeCun et al. (1998): C1 conv 1→6 5x5 (156), S2 subsampling (12), C3 conv 6→16 5x5 through
//! the paper's sparse connection table (1,516), S4 subsampling (32), C5 conv 16→120 5x5
//! (48,120), F6 linear 120→84 (10,164), each followed by the scaled tanh 1.7159 tanh(2a/3),
//! and the output: ten Euclidean RBF units against fixed 7x12 prototypes ([`super::rbf`]),
//! trained by the paper's MAP criterion — 60,000 trainable parameters and 340,908 connections,
//! the paper's counts. `lecun1998-softmax` is the same network with a trainable linear 84→10
//! output read through softmax cross-entropy instead (60,850 parameters). Weights start
//! uniform in ±2.4/fan_in, as the paper's appendix C, with one difference: the paper's fan-in
//! of a C3 map is 75, 100 or 150 (3, 4 or 6 connected S2 maps of 25 inputs each), and lenet
//! gives all sixteen maps the bound of the mean, 93 (25 x 60 connections / 16 maps, rounded
//! down).

use serde::{Deserialize, Serialize};

use super::Layer;
use super::activation::{Activation as ActLayer, ActivationKind};
use super::batchnorm::BatchNorm;
use super::conv2d::{Conv2d, ConvGeometry};
use super::dropout::Dropout;
use super::init::Init;
use super::linear::Linear;
use super::loss::{Criterion, MAP_J};
use super::network::Network;
use super::pool::{Pool2d, PoolKind};
use super::rbf::{Prototypes, Rbf};
use super::subsample::Subsample;
use crate::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// The study's LeNet-5: ReLU, max pooling, conv3 as a 5x5 convolution, 61,706 parameters.
    Lenet5,
    /// LeCun et al. (1998): scaled tanh, trainable subsampling, sparse C3, Euclidean RBF
    /// output against fixed digit prototypes, MAP criterion; 60,000 parameters.
    Lecun1998,
    /// The same with a linear output and softmax cross-entropy (60,850 parameters).
    Lecun1998Softmax,
}

impl Arch {
    /// The name the command line and study files use: `lenet5`, `lecun1998`,
    /// `lecun1998-softmax`.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Lenet5 => "lenet5",
            Arch::Lecun1998 => "lecun1998",
            Arch::Lecun1998Softmax => "lecun1998-softmax",
        }
    }

    /// Whether this is one of the 1998 networks.
    pub fn is_lecun1998(self) -> bool {
        matches!(self, Arch::Lecun1998 | Arch::Lecun1998Softmax)
    }
}

/// Where batch normalization goes in the study's model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BatchNormAt {
    #[default]
    None,
    /// After the first conv block (conv1, activation, pool), as the study did.
    First,
    /// After every conv block.
    All,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Pooling {
    #[default]
    Max,
    Avg,
}

/// Everything that defines a model's architecture. In `config.json` a 1998 network records
/// what it is built of — `"activation": "scaled-tanh", "pooling": "subsample"` — rather than
/// the study model's options it ignores (`relu`, `max`, which its files before said).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "ModelRecord", try_from = "ModelRecord")]
pub struct ModelConfig {
    pub arch: Arch,
    /// Study model only.
    pub batch_norm: BatchNormAt,
    /// Dropout probability on the fully connected hidden layer (study model only; 0 = none).
    pub dropout: f32,
    /// Study model only: `relu` or `tanh`.
    pub activation: ActivationKind,
    /// Study model only.
    pub pooling: Pooling,
    /// How the weights are drawn (other than the default: the 1998 networks only).
    pub init: Init,
    /// The MAP criterion's rubbish-class constant j (the 1998 RBF network only).
    pub map_j: f32,
    /// The RBF output's drawing of the digits (the 1998 RBF network only).
    pub prototypes: Prototypes,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            arch: Arch::Lenet5,
            batch_norm: BatchNormAt::None,
            dropout: 0.0,
            activation: ActivationKind::Relu,
            pooling: Pooling::Max,
            init: Init::Default,
            map_j: MAP_J,
            prototypes: Prototypes::Plain,
        }
    }
}

/// Pooling as a run's file records it: the study model's two kinds, or the 1998 network's
/// trainable subsampling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum PoolingRecord {
    Max,
    Avg,
    /// Average of 2x2 times a trainable coefficient plus a trainable bias (LeCun et al. 1998).
    Subsample,
}

/// [`ModelConfig`] as `config.json` holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct ModelRecord {
    arch: Arch,
    batch_norm: BatchNormAt,
    dropout: f32,
    activation: ActivationKind,
    pooling: PoolingRecord,
    /// Absent from files written before it was a setting: the default.
    #[serde(default)]
    init: Init,
    #[serde(default = "map_j_default")]
    map_j: f32,
    #[serde(default)]
    prototypes: Prototypes,
}

/// [`MAP_J`], for files written before j was a setting.
fn map_j_default() -> f32 {
    MAP_J
}

impl From<ModelConfig> for ModelRecord {
    fn from(m: ModelConfig) -> Self {
        let (activation, pooling) = if m.arch.is_lecun1998() {
            (ActivationKind::ScaledTanh, PoolingRecord::Subsample)
        } else {
            let pooling = match m.pooling {
                Pooling::Max => PoolingRecord::Max,
                Pooling::Avg => PoolingRecord::Avg,
            };
            (m.activation, pooling)
        };
        ModelRecord {
            arch: m.arch,
            batch_norm: m.batch_norm,
            dropout: m.dropout,
            activation,
            pooling,
            init: m.init,
            map_j: m.map_j,
            prototypes: m.prototypes,
        }
    }
}

impl TryFrom<ModelRecord> for ModelConfig {
    type Error = String;

    fn try_from(r: ModelRecord) -> Result<Self, String> {
        let model = |activation, pooling| ModelConfig {
            arch: r.arch,
            batch_norm: r.batch_norm,
            dropout: r.dropout,
            activation,
            pooling,
            init: r.init,
            map_j: r.map_j,
            prototypes: r.prototypes,
        };
        match (r.arch.is_lecun1998(), r.activation, r.pooling) {
            // The 1998 network as recorded now, or as files before recorded it.
            (true, ActivationKind::ScaledTanh, PoolingRecord::Subsample)
            | (true, ActivationKind::Relu, PoolingRecord::Max) => {
                Ok(model(ActivationKind::Relu, Pooling::Max))
            }
            (true, a, p) => Err(format!(
                "a {} network is built of scaled tanh and subsampling, not {a:?} and {p:?}",
                r.arch.as_str()
            )),
            (false, ActivationKind::ScaledTanh, _) | (false, _, PoolingRecord::Subsample) => {
                Err(format!(
                    "scaled tanh and subsampling belong to the 1998 networks, not {}",
                    r.arch.as_str()
                ))
            }
            (false, a, PoolingRecord::Max) => Ok(model(a, Pooling::Max)),
            (false, a, PoolingRecord::Avg) => Ok(model(a, Pooling::Avg)),
        }
    }
}

/// LeCun et al. (1998), Table I: which S2 maps (columns 0-5) feed each C3 map (rows 0-15).
pub const C3_TABLE: [&[usize]; 16] = [
    &[0, 1, 2],
    &[1, 2, 3],
    &[2, 3, 4],
    &[3, 4, 5],
    &[4, 5, 0],
    &[5, 0, 1],
    &[0, 1, 2, 3],
    &[1, 2, 3, 4],
    &[2, 3, 4, 5],
    &[3, 4, 5, 0],
    &[4, 5, 0, 1],
    &[5, 0, 1, 2],
    &[0, 1, 3, 4],
    &[1, 2, 4, 5],
    &[0, 2, 3, 5],
    &[0, 1, 2, 3, 4, 5],
];

impl ModelConfig {
    /// Checks the options against the architecture.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!(
                "dropout probability {} is not in [0, 1)",
                self.dropout
            ));
        }
        if self.arch.is_lecun1998() {
            let study_only = self.batch_norm != BatchNormAt::None
                || self.dropout != 0.0
                || self.activation != ActivationKind::Relu
                || self.pooling != Pooling::Max;
            if study_only {
                return Err(
                    "--batch-norm, --dropout, --activation and --pooling apply to the study's \
                     model (--arch lenet5) only; lecun1998 is built as the paper describes"
                        .into(),
                );
            }
        }
        if self.arch == Arch::Lenet5 && self.init != Init::Default {
            return Err(format!(
                "--init {} applies to the 1998 networks; the study's model starts as PyTorch's \
                 does (--init default)",
                self.init.as_str()
            ));
        }
        if !self.map_j.is_finite() {
            return Err(format!(
                "the MAP constant j must be a finite number, not {}",
                self.map_j
            ));
        }
        if self.arch != Arch::Lecun1998 && self.map_j != MAP_J {
            return Err(format!(
                "--map-j is the MAP criterion's constant of the 1998 RBF network (--arch \
                 lecun1998), not of {}",
                self.arch.as_str()
            ));
        }
        if self.arch != Arch::Lecun1998 && self.prototypes != Prototypes::Plain {
            return Err(format!(
                "--prototypes is the drawing of the 1998 RBF network's output (--arch \
                 lecun1998), not of {}",
                self.arch.as_str()
            ));
        }
        if self.arch == Arch::Lenet5 && self.activation == ActivationKind::ScaledTanh {
            return Err("the study's model takes --activation relu or tanh".into());
        }
        Ok(())
    }

    /// Builds the network with freshly initialised parameters drawn from `rng`.
    pub fn build(&self, rng: &mut Rng) -> Network {
        match self.arch {
            Arch::Lenet5 => self.build_study(rng),
            Arch::Lecun1998 => build_lecun1998(rng, self.init, Some((self.prototypes, self.map_j))),
            Arch::Lecun1998Softmax => build_lecun1998(rng, self.init, None),
        }
    }

    fn build_study(&self, rng: &mut Rng) -> Network {
        let act = || -> Box<dyn Layer> {
            Box::new(ActLayer {
                kind: self.activation,
            })
        };
        let pool = || -> Box<dyn Layer> {
            Box::new(Pool2d::new(
                match self.pooling {
                    Pooling::Max => PoolKind::Max,
                    Pooling::Avg => PoolKind::Avg,
                },
                2,
            ))
        };
        let conv = |c_in, c_out, rng: &mut Rng| -> Box<dyn Layer> {
            Box::new(Conv2d::new(ConvGeometry::unpadded(c_in, c_out, 5), rng))
        };
        let bn = |c| -> Box<dyn Layer> { Box::new(BatchNorm::new(c, true)) };
        let mut features: Vec<Box<dyn Layer>> = vec![conv(1, 6, rng), act(), pool()];
        if self.batch_norm != BatchNormAt::None {
            features.push(bn(6));
        }
        features.extend([conv(6, 16, rng), act(), pool()]);
        if self.batch_norm == BatchNormAt::All {
            features.push(bn(16));
        }
        features.extend([conv(16, 120, rng), act()]);
        if self.batch_norm == BatchNormAt::All {
            features.push(bn(120));
        }
        let mut classifier: Vec<Box<dyn Layer>> = vec![Box::new(Linear::new(120, 84, rng)), act()];
        if self.dropout > 0.0 {
            classifier.push(Box::new(Dropout::new(self.dropout)));
        }
        classifier.push(Box::new(Linear::new(84, 10, rng)));
        let named = |block: &str, layers: Vec<Box<dyn Layer>>| {
            layers
                .into_iter()
                .enumerate()
                .map(|(i, l)| (format!("{block}.{i}"), l))
                .collect::<Vec<_>>()
        };
        let mut layers = named("feature_extractor", features);
        layers.extend(named("classifier", classifier));
        Network::new(&[1, 32, 32], layers)
    }
}

/// The 1998 network, its weights drawn by `init`; with `rbf` = (prototypes, j), the paper's
/// RBF output against those prototypes and the MAP criterion of constant j, else a linear
/// output and softmax cross-entropy.
fn build_lecun1998(rng: &mut Rng, init: Init, rbf: Option<(Prototypes, f32)>) -> Network {
    let squash = || -> Box<dyn Layer> {
        Box::new(ActLayer {
            kind: ActivationKind::ScaledTanh,
        })
    };
    let conv = |c_in, c_out, rng: &mut Rng, fan_in: usize| {
        let b = init.lecun1998_bound(fan_in);
        Conv2d::with_init(ConvGeometry::unpadded(c_in, c_out, 5), rng, b, b)
    };
    let table: Vec<Vec<bool>> = C3_TABLE
        .iter()
        .map(|inputs| (0..6).map(|c| inputs.contains(&c)).collect())
        .collect();
    // A C3 unit sees 25 inputs from each connected map. By default every map's bound is that
    // of the mean connection count (60 connections / 16 maps); the other rules draw the same
    // numbers and rescale each map's weights and bias to its own fan-in's bound.
    let mean_fan_in = 25 * 60 / 16;
    let mut c3 = conv(6, 16, rng, mean_fan_in).with_connection_table(&table);
    if init != Init::Default {
        let per_map = c3.weight.value.len() / 16;
        for (m, inputs) in C3_TABLE.iter().enumerate() {
            let ratio = init.lecun1998_bound(25 * inputs.len()) / init.lecun1998_bound(mean_fan_in);
            (c3.weight.value.data[m * per_map..(m + 1) * per_map].iter_mut())
                .for_each(|w| *w *= ratio);
            c3.bias.value.data[m] *= ratio;
        }
    }
    let linear = |i, o, rng: &mut Rng| {
        let b = init.lecun1998_bound(i);
        Linear::with_init(i, o, rng, b, b)
    };
    let layers: Vec<(&str, Box<dyn Layer>)> = vec![
        ("c1", Box::new(conv(1, 6, rng, 25))),
        ("c1_squash", squash()),
        ("s2", Box::new(Subsample::with_init(6, rng, init))),
        ("s2_squash", squash()),
        ("c3", Box::new(c3)),
        ("c3_squash", squash()),
        ("s4", Box::new(Subsample::with_init(16, rng, init))),
        ("s4_squash", squash()),
        ("c5", Box::new(conv(16, 120, rng, 400))),
        ("c5_squash", squash()),
        ("f6", Box::new(linear(120, 84, rng))),
        ("f6_squash", squash()),
    ];
    let (output, criterion): (Box<dyn Layer>, Criterion) = match rbf {
        Some((set, j)) => (Box::new(Rbf::lenet5(set)), Criterion::Map { j }),
        None => (Box::new(linear(84, 10, rng)), Criterion::CrossEntropy),
    };
    let layers = (layers.into_iter())
        .chain([("output", output)])
        .map(|(n, l)| (n.to_string(), l))
        .collect();
    Network::new(&[1, 32, 32], layers).with_criterion(criterion)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 1998 networks' settings are refused on the study's model, and j on the softmax
    /// network (nothing would read them).
    #[test]
    fn settings_of_the_1998_networks_are_refused_elsewhere() {
        let study = ModelConfig {
            init: Init::SqrtFanIn,
            ..ModelConfig::default()
        };
        assert!(study.validate().unwrap_err().contains("--init sqrt-fan-in"));
        let softmax = ModelConfig {
            arch: Arch::Lecun1998Softmax,
            map_j: 2.0,
            ..ModelConfig::default()
        };
        assert!(softmax.validate().unwrap_err().contains("--map-j"));
        let bold_softmax = ModelConfig {
            arch: Arch::Lecun1998Softmax,
            prototypes: Prototypes::Bold,
            ..ModelConfig::default()
        };
        assert!(
            bold_softmax
                .validate()
                .unwrap_err()
                .contains("--prototypes")
        );
        let rbf = ModelConfig {
            arch: Arch::Lecun1998,
            map_j: 2.0,
            init: Init::PerMapFanIn,
            prototypes: Prototypes::Bold,
            ..ModelConfig::default()
        };
        assert!(rbf.validate().is_ok());
        let nan = ModelConfig {
            map_j: f32::NAN,
            ..rbf
        };
        assert!(nan.validate().is_err());
    }

    /// A 1998 network's config.json says what it is built of; files written before (with the
    /// study model's relu and max it ignores) still read as the same network; the 1998
    /// network's parts on the study model, or other parts on the 1998 network, are refused.
    #[test]
    fn config_json_records_what_the_1998_network_is() {
        let m = ModelConfig {
            arch: Arch::Lecun1998,
            ..ModelConfig::default()
        };
        let text = serde_json::to_string(&m).unwrap();
        assert!(
            text.contains(r#""activation":"scaled-tanh","pooling":"subsample""#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<ModelConfig>(&text).unwrap(), m);
        let before = text
            .replace("scaled-tanh", "relu")
            .replace("subsample", "max");
        assert_eq!(serde_json::from_str::<ModelConfig>(&before).unwrap(), m);
        assert!(serde_json::from_str::<ModelConfig>(&text.replace("subsample", "avg")).is_err());
        let study = serde_json::to_string(&ModelConfig::default()).unwrap();
        assert!(
            study.contains(r#""activation":"relu","pooling":"max""#),
            "{study}"
        );
        let subsampled = study.replace(r#""max""#, r#""subsample""#);
        assert!(serde_json::from_str::<ModelConfig>(&subsampled).is_err());
    }
}
