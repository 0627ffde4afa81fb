//! Parameter initialisation.
//!
//! PyTorch initialises `Conv2d` and `Linear` weights with `kaiming_uniform_(a=sqrt(5))`, whose
//! bound gain * sqrt(3 / fan_in) with gain = sqrt(2 / (1 + a^2)) simplifies to 1/sqrt(fan_in),
//! and their biases uniformly in the same ±1/sqrt(fan_in). LeCun et al. (1998, appendix C)
//! draw every weight uniformly in ±2.4/fan_in.

use crate::rng::Rng;
use crate::tensor::Tensor;

/// PyTorch's default bound for `Conv2d` and `Linear`: 1/sqrt(fan_in).
pub fn pytorch_bound(fan_in: usize) -> f32 {
    1.0 / (fan_in as f32).sqrt()
}

/// How a 1998 network draws its weights. The paper's appendix C says "uniformly distributed
/// between -2.4/F_i and 2.4/F_i, where F_i is the number of inputs (fan-in) of the unit";
/// the study model always starts as PyTorch does and takes only the default.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Init {
    /// Each architecture's own: PyTorch's ±1/sqrt(fan_in) for lenet5; ±2.4/fan_in for the
    /// 1998 networks, C3's sixteen maps at their mean fan-in (93).
    #[default]
    Default,
    /// ±2.4/fan_in with each C3 map's own fan-in (75, 100 or 150): the appendix word for word.
    PerMapFanIn,
    /// ±2.4/sqrt(fan_in), each C3 map's own fan-in: the bound that keeps a unit's weighted sum
    /// at about unit variance, where the squashing function is steep.
    SqrtFanIn,
}

impl Init {
    /// The name the command line and study files use.
    pub fn as_str(self) -> &'static str {
        match self {
            Init::Default => "default",
            Init::PerMapFanIn => "per-map-fan-in",
            Init::SqrtFanIn => "sqrt-fan-in",
        }
    }

    /// A 1998 network's bound for a unit of `fan_in` inputs.
    pub fn lecun1998_bound(self, fan_in: usize) -> f32 {
        match self {
            Init::Default | Init::PerMapFanIn => 2.4 / fan_in as f32,
            Init::SqrtFanIn => 2.4 / (fan_in as f32).sqrt(),
        }
    }
}

/// A tensor with entries uniform in [-bound, bound).
pub fn uniform(shape: &[usize], bound: f32, rng: &mut Rng) -> Tensor {
    let n = shape.iter().product();
    let data = (0..n).map(|_| rng.uniform_range(-bound, bound)).collect();
    Tensor::from_vec(shape, data)
}
