//! Studies: a TOML file that names configurations, how many seeds each runs, and optionally a
//! learning-rate (or other hyperparameter) grid tuned on the validation split first.
//!
//! ```toml
//! name = "optimizers"
//! seeds = 5                  # final runs use seeds 0..5; or adaptive, see `seeds`:
//!                            # seeds = { min = 10, max = 40, until = 0.05 }
//! targets = [0.985, 0.99]    # validation-accuracy targets for time-to-target
//! factors = ["dropout", "batch normalization"]   # optional: a 2x2 design (see `cell`)
//!
//! [defaults]                 # training options shared by every configuration
//! epochs = 15
//! batch_size = 64
//! dataset = "mnist"          # or "fashion-mnist"; a configuration's options may differ
//!
//! [tuning]                   # how grid points are compared: a short budget, one seed
//! epochs = 2
//! seed = 1000
//! extend = 2                 # optional: a choice at its grid's edge gets up to 2 steps
//!                            # further out (see `tune`)
//!
//! [[config]]
//! name = "momentum"
//! options = { optimizer = "momentum" }
//! grid = { lr = [0.003, 0.01, 0.03, 0.1], momentum = [0.9, 0.99] }
//!
//! [[config]]
//! name = "init-only"
//! options = { vary = "init" }   # vary one random stream alone (init, order or dropout)
//! ```
//!
//! The options are those of `lenet train` by their field names (`batch_norm`, `dropout`,
//! `optimizer`, `valid_size`, `dataset`, `vary`, ...) and the optimizers' hyperparameters by
//! their declared names (`lr`, `momentum`, `amsgrad`, ...).
//!
//! Every run has an ID derived from its fully resolved configuration (the first 16 hex digits
//! of the SHA-256 of its JSON), so the same run is never computed twice, and a run directory
//! can be checked against its ID. Tuning picks, per configuration, the grid point with the
//! highest final validation accuracy (ties: the lower validation loss; diverged runs last),
//! extending a grid outward when asked to while its choice sits at an edge ([`tune`]).

pub mod claim;
pub mod execute;
pub mod plan;
pub mod seeds;
pub mod summary;
pub mod tune;

pub use tune::choose;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::optim::hyper::{HYPERS, Hyper};
use crate::train::TrainConfig;
use crate::train::metrics::{Status, Summary};
use crate::train::options::Options;
use crate::train::run;
use seeds::{Comparison, Decision, Seeds};

#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("study: {0}")]
    Invalid(String),
    #[error("inconsistent run {dir}: {why}")]
    InvalidRun { dir: String, why: String },
    #[error(transparent)]
    Train(#[from] crate::train::TrainError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn default_targets() -> Vec<f64> {
    vec![0.985, 0.99]
}

/// A study file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Final runs per configuration, with seeds 0, 1, …: a number, or adaptive
    /// ([`seeds`]).
    pub seeds: Seeds,
    /// Validation-accuracy targets for time-to-target statistics.
    #[serde(default = "default_targets")]
    pub targets: Vec<f64>,
    /// Names of the two factors of a 2x2 design; configurations then give their `cell`.
    #[serde(default)]
    pub factors: Vec<String>,
    #[serde(default, with = "crate::train::options::file")]
    pub defaults: Options,
    pub tuning: Option<Tuning>,
    #[serde(rename = "config")]
    pub configs: Vec<ConfigEntry>,
}

/// How grid points are compared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tuning {
    /// Epochs of each tuning run.
    pub epochs: usize,
    /// The seed of every tuning run (distinct from the final runs' seeds).
    pub seed: u64,
    /// Steps outward a grid may take while its choice sits at its edge ([`tune`]); 0, the
    /// default, flags such a choice only.
    #[serde(default)]
    pub extend: usize,
}

/// One configuration of a study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigEntry {
    pub name: String,
    #[serde(default, with = "crate::train::options::file")]
    pub options: Options,
    /// Hyperparameter values to tune over (their cartesian product).
    #[serde(default)]
    pub grid: BTreeMap<String, Vec<f64>>,
    /// Levels (0 or 1) of the study's two factors.
    pub cell: Option<[u8; 2]>,
}

/// A grid point: hyperparameter names and values.
pub type Point = Vec<(String, f64)>;

/// Test accuracies by configuration name and seed.
pub type BySeed = BTreeMap<String, BTreeMap<u64, f64>>;

/// The chosen point of each tuned configuration, by configuration name.
pub type Chosen = BTreeMap<String, Point>;

/// Which phase a run belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Tune,
    Final,
}

/// One planned run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSpec {
    pub id: String,
    pub config: String,
    pub phase: Phase,
    /// The grid point (tuning), or the chosen point (final), as `name=value` pairs.
    pub point: Point,
    pub train: TrainConfig,
}

pub use crate::train::identity::run_id;

/// Sets a grid's value: a numeric hyperparameter ([`crate::optim::hyper::HYPERS`]) or the
/// dropout probability.
fn set_hyper(o: &mut Options, key: &str, value: f64) -> Result<(), String> {
    if key == "dropout" {
        o.dropout = Some(value as f32);
        return Ok(());
    }
    match Hyper::find(key) {
        Some(h) if !h.is_flag() => {
            o.hypers.set(h.key, value);
            Ok(())
        }
        _ => Err(format!(
            "cannot tune '{key}'; grids take dropout or a numeric hyperparameter: {}",
            HYPERS
                .iter()
                .filter(|h| !h.is_flag())
                .map(|h| h.name)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

impl StudyFile {
    pub fn parse(text: &str, path: &str) -> Result<StudyFile, StudyError> {
        let study: StudyFile = toml::from_str(text).map_err(|e| StudyError::File {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        study.validate().map_err(|reason| StudyError::File {
            path: path.to_string(),
            reason,
        })?;
        Ok(study)
    }

    pub fn load(path: &Path) -> Result<StudyFile, StudyError> {
        let text = std::fs::read_to_string(path).map_err(|source| StudyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    fn validate(&self) -> Result<(), String> {
        if !is_plain_name(&self.name) {
            return Err(format!(
                "name '{}' is used as a directory name: expected a plain name of letters, digits, \
                 '.', '_' and '-' (not starting with '.')",
                self.name
            ));
        }
        self.seeds.validate()?;
        if let Some(t) = self.targets.iter().find(|t| !(**t > 0.0 && **t <= 1.0)) {
            return Err(format!(
                "target {t} is not an accuracy: expected targets in (0, 1], e.g. 0.99"
            ));
        }
        if self.configs.is_empty() {
            return Err("the study has no [[config]]".into());
        }
        let mut names: Vec<&str> = self.configs.iter().map(|c| c.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("two configurations are named '{}'", w[0]));
        }
        if self.configs.iter().any(|c| !c.grid.is_empty()) && self.tuning.is_none() {
            return Err("configurations have grids but the study has no [tuning] section".into());
        }
        if self.tuning.as_ref().is_some_and(|t| t.epochs == 0) {
            return Err("[tuning] epochs must be at least 1".into());
        }
        self.validate_design()?;
        self.run_count()?;
        self.validate_grids()
    }

    /// A 2x2 design names two factors and gives each of its four configurations a distinct
    /// cell; a study without factors has no cells.
    fn validate_design(&self) -> Result<(), String> {
        if self.factors.is_empty() {
            if let Some(c) = self.configs.iter().find(|c| c.cell.is_some()) {
                return Err(format!(
                    "config '{}' has a cell but the study names no factors; add factors = \
                     [\"first\", \"second\"] for a 2x2 design, or remove the cell",
                    c.name
                ));
            }
        } else {
            if self.factors.len() != 2 {
                return Err("factors names exactly two factors (a 2x2 design)".into());
            }
            let mut cells: Vec<[u8; 2]> = Vec::new();
            for c in &self.configs {
                let cell = c
                    .cell
                    .ok_or(format!("config '{}' needs a cell = [a, b]", c.name))?;
                if cell.iter().any(|&l| l > 1) || cells.contains(&cell) {
                    return Err(format!(
                        "config '{}': cells are distinct pairs of 0 and 1",
                        c.name
                    ));
                }
                cells.push(cell);
            }
            if cells.len() != 4 {
                return Err("a 2x2 design has exactly four configurations".into());
            }
        }
        Ok(())
    }

    /// Every configuration must resolve for its final runs, and every grid value on its own
    /// for tuning; two values of one grid that resolve to the same run are an error (distinct
    /// values per key make distinct points of the product). The product itself is not made
    /// here: it may be far larger than a study is allowed to be.
    fn validate_grids(&self) -> Result<(), String> {
        for c in &self.configs {
            let here = |e: String| format!("config '{}': {e}", c.name);
            let last = self.resolve(c, &[], Phase::Final, 0).map_err(here)?;
            if matches!(self.seeds, Seeds::Adaptive(_)) && last.data.valid_size == 0 {
                return Err(here(
                    "adaptive seeds are sized on the validation split (the test set chooses \
                     nothing), and valid_size = 0 leaves none"
                        .into(),
                ));
            }
            for (key, values) in &c.grid {
                if values.is_empty() {
                    return Err(here(format!("grid {key} is empty")));
                }
                let mut ids: Vec<(String, f64)> = Vec::new();
                for &v in values {
                    let point = [(key.clone(), v)];
                    let config = self.resolve(c, &point, Phase::Tune, 0).map_err(here)?;
                    if config.data.valid_size == 0 {
                        return Err(here(
                            "tuning compares grid points on the validation split, and \
                             valid_size = 0 leaves none"
                                .into(),
                        ));
                    }
                    let id = run_id(&config);
                    if let Some((_, same)) = ids.iter().find(|(other, _)| *other == id) {
                        return Err(here(format!(
                            "grid {key} = {same} and {key} = {v} resolve to the same run"
                        )));
                    }
                    ids.push((id, v));
                }
            }
        }
        Ok(())
    }

    /// How many runs the study plans: every grid point of every tuned configuration, and
    /// every configuration's seeds (an adaptive study's most). Counted with checked
    /// arithmetic, so a plan too large to count is an error rather than an overflow.
    pub fn run_count(&self) -> Result<u64, String> {
        let too_many = || "the study plans more runs than can be counted (2^64)".to_string();
        let mut total: u64 = 0;
        for c in &self.configs {
            let points = tuning_points(c).ok_or_else(too_many)?;
            total = total.checked_add(points).ok_or_else(too_many)?;
        }
        (self.configs.len() as u64)
            .checked_mul(self.seeds.most() as u64)
            .and_then(|finals| total.checked_add(finals))
            .ok_or_else(too_many)
    }

    /// Training epochs the study's runs add up to (tuning and final, an adaptive study's most
    /// seeds), for estimates.
    pub fn epoch_count(&self) -> u64 {
        let epochs = |c: &ConfigEntry| self.defaults.overridden_by(&c.options).epochs() as u64;
        let tune_epochs = self.tuning.as_ref().map_or(0, |t| t.epochs as u64);
        self.configs
            .iter()
            .map(|c| {
                let points = tuning_points(c).unwrap_or(u64::MAX);
                points.saturating_mul(tune_epochs)
                    + (self.seeds.most() as u64).saturating_mul(epochs(c))
            })
            .fold(0u64, u64::saturating_add)
    }

    /// The cartesian product of a configuration's grid (one empty point when it has none).
    pub fn grid_points(&self, c: &ConfigEntry) -> Result<Vec<Point>, String> {
        let mut points: Vec<Point> = vec![Vec::new()];
        for (key, values) in &c.grid {
            if values.is_empty() {
                return Err(format!("config '{}': grid {key} is empty", c.name));
            }
            points = points
                .into_iter()
                .flat_map(|p| {
                    values.iter().map(move |&v| {
                        let mut q = p.clone();
                        q.push((key.clone(), v));
                        q
                    })
                })
                .collect();
        }
        Ok(points)
    }

    /// The training configuration of `c` at `point`, for a phase and seed.
    pub fn resolve(
        &self,
        c: &ConfigEntry,
        point: &[(String, f64)],
        phase: Phase,
        seed: u64,
    ) -> Result<TrainConfig, String> {
        let mut options = self.defaults.overridden_by(&c.options);
        for (key, value) in point {
            set_hyper(&mut options, key, *value)?;
        }
        match phase {
            Phase::Tune => {
                let t = self.tuning.as_ref().ok_or("no [tuning] section")?;
                options.epochs = Some(t.epochs);
                options.seed = Some(t.seed);
            }
            Phase::Final => options.seed = Some(seed),
        }
        options.resolve()
    }

    /// Every tuning run, in configuration order.
    pub fn tuning_runs(&self) -> Result<Vec<RunSpec>, StudyError> {
        let mut runs = Vec::new();
        for c in self.configs.iter().filter(|c| !c.grid.is_empty()) {
            for point in self.grid_points(c).map_err(StudyError::Invalid)? {
                let train = self
                    .resolve(c, &point, Phase::Tune, 0)
                    .map_err(StudyError::Invalid)?;
                runs.push(RunSpec {
                    id: run_id(&train),
                    config: c.name.clone(),
                    phase: Phase::Tune,
                    point,
                    train,
                });
            }
        }
        Ok(runs)
    }

    /// Every final run of seeds `0..seeds`, given each tuned configuration's chosen point.
    pub fn final_runs(&self, chosen: &Chosen, seeds: usize) -> Result<Vec<RunSpec>, StudyError> {
        let mut runs = Vec::new();
        for c in &self.configs {
            let point = chosen.get(&c.name).cloned().unwrap_or_default();
            for seed in 0..seeds as u64 {
                let train = self
                    .resolve(c, &point, Phase::Final, seed)
                    .map_err(StudyError::Invalid)?;
                runs.push(RunSpec {
                    id: run_id(&train),
                    config: c.name.clone(),
                    phase: Phase::Final,
                    point: point.clone(),
                    train,
                });
            }
        }
        Ok(runs)
    }

    /// The comparisons the study makes, seed by seed, from each configuration's accuracies
    /// (test or validation) by seed: a 2x2 design's two main effects and interaction,
    /// otherwise every pair's difference (first minus second, in file order).
    pub fn comparisons(&self, by_seed: &BySeed) -> Vec<Comparison> {
        let empty = BTreeMap::new();
        let of = |name: &str| by_seed.get(name).unwrap_or(&empty);
        if let [a, b] = self.factors.as_slice() {
            let cell = |l: [u8; 2]| {
                (self.configs.iter())
                    .find(|c| c.cell == Some(l))
                    .map_or(&empty, |c| of(&c.name))
            };
            let values = seeds::contrasts([cell([0, 0]), cell([0, 1]), cell([1, 0]), cell([1, 1])]);
            return (seeds::contrast_names(a, b).into_iter().zip(values))
                .map(|(name, by_seed)| Comparison { name, by_seed })
                .collect();
        }
        let mut out = Vec::new();
        for (i, a) in self.configs.iter().enumerate() {
            for b in &self.configs[i + 1..] {
                out.push(Comparison {
                    name: format!("{} − {}", a.name, b.name),
                    by_seed: seeds::difference(of(&a.name), of(&b.name)),
                });
            }
        }
        out
    }
}

/// The validation accuracy (final weights) of every finished final run of seeds `0..seeds`,
/// by configuration and seed (a diverged run has none), or None while one of them is
/// unfinished: what sizes an adaptive study.
fn valid_accuracies_by_seed(
    study: &StudyFile,
    dir: &Path,
    chosen: &Chosen,
    seeds: usize,
) -> Result<Option<BySeed>, StudyError> {
    let mut out = BySeed::new();
    for spec in study.final_runs(chosen, seeds)? {
        let Some(summary) = finished(dir, &spec.id)? else {
            return Ok(None);
        };
        let entry = out.entry(spec.config.clone()).or_default();
        if let (Status::Finished, Some(a)) = (&summary.status, summary.final_valid_accuracy) {
            entry.insert(spec.train.seed, a);
        }
    }
    Ok(Some(out))
}

/// How many seeds the final runs use: a fixed study's number, or an adaptive study's decision
/// from its first stage's validation accuracies once every first-stage run is finished (None
/// before).
pub fn final_seeds(
    study: &StudyFile,
    dir: &Path,
    chosen: &Chosen,
) -> Result<Option<(usize, Option<Decision>)>, StudyError> {
    match study.seeds {
        Seeds::Fixed(n) => Ok(Some((n, None))),
        Seeds::Adaptive(rule) => {
            let Some(first) = valid_accuracies_by_seed(study, dir, chosen, rule.min)? else {
                return Ok(None);
            };
            let decision = seeds::decide(rule, &study.comparisons(&first));
            Ok(Some((decision.seeds, Some(decision))))
        }
    }
}

/// How many tuning runs configuration `c` plans: its grid's points (none without a grid), or
/// `None` when they are too many to count.
fn tuning_points(c: &ConfigEntry) -> Option<u64> {
    if c.grid.is_empty() {
        return Some(0);
    }
    (c.grid.values()).try_fold(1u64, |n, values| n.checked_mul(values.len() as u64))
}

/// Whether `name` can be a directory's name without going anywhere else: letters, digits,
/// '.', '_' and '-', not starting with '.'.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The directory of run `id` inside a study directory.
pub fn run_dir(study_dir: &Path, id: &str) -> std::path::PathBuf {
    study_dir.join("runs").join(id)
}

/// The finished result of run `id`, or `None` while it has none (a diverged run is finished
/// too). A finished run is checked first ([`run::verify`], and its configuration must hash to
/// its ID): an edited or inconsistent run is an error naming it, never a result.
pub fn finished(study_dir: &Path, id: &str) -> Result<Option<Summary>, StudyError> {
    let dir = run_dir(study_dir, id);
    if !dir.join(run::SUMMARY).exists() {
        return Ok(None);
    }
    let invalid = |why: String| StudyError::InvalidRun {
        dir: dir.display().to_string(),
        why,
    };
    let config = run::read_config(&dir).map_err(|e| invalid(e.to_string()))?;
    if run_id(&config) != id {
        return Err(invalid(format!(
            "config.json is not the configuration of run {id} (its ID would be {})",
            run_id(&config)
        )));
    }
    run::verify(&dir)
        .map(Some)
        .map_err(|e| invalid(e.to_string()))
}

/// `name=value` pairs as text.
pub fn describe_point(point: &[(String, f64)]) -> String {
    point
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a run directory holds a run of exactly this configuration.
pub fn check_run_dir(dir: &Path, spec: &RunSpec) -> Result<(), StudyError> {
    if dir.join(run::CONFIG).exists() {
        let existing = run::read_config(dir)?;
        if existing != spec.train {
            return Err(StudyError::Invalid(format!(
                "{} holds a different configuration than run {}",
                dir.display(),
                spec.id
            )));
        }
    }
    Ok(())
}
