//! The statistics of a finished study: per configuration (over seeds), between
//! configurations (pairwise Welch tests, Holm-corrected, and who is tied with the best), and
//! for a 2x2 design the main effects and the interaction. Written as Markdown, CSV and JSON.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::seeds::{self, Decision, FamilyInterval};
use super::tune::tuning_plan;
use super::{
    BySeed, RunSpec, StudyError, StudyFile, describe_point, final_seeds, finished, run_dir,
};
use crate::stats::dist::t_quantile;
use crate::stats::{
    Contrast, Estimate, Paired, Welch, contrast, holm, min_detectable, min_detectable_at,
    paired_differences, seeds_needed, seeds_needed_at, welch,
};
use crate::train::metrics::Status;
use crate::train::run;

/// Reaching a validation-accuracy target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetReach {
    pub target: f64,
    /// Runs that reached it (out of all runs, diverged included).
    pub reached: usize,
    /// Epochs and seconds to the first epoch at or above the target, over the runs that got
    /// there.
    pub epochs: Option<Estimate>,
    pub seconds: Option<Estimate>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfigSummary {
    pub name: String,
    /// The tuned hyperparameters, if any.
    pub chosen: String,
    pub runs: usize,
    pub diverged: usize,
    pub test_accuracy: Option<Estimate>,
    pub test_loss: Option<Estimate>,
    pub best_valid_accuracy: Option<Estimate>,
    pub targets: Vec<TargetReach>,
    pub wall_seconds: Option<Estimate>,
    /// Not shown different from the best configuration's test accuracy: its comparison with
    /// the best is not significant at 5% after Holm's adjustment over the k - 1 comparisons
    /// with the best (the best itself is). The file's name for it is historical.
    pub tied_with_best: bool,
    /// The comparison with the best configuration (None for the best itself).
    #[serde(default)]
    pub vs_best: Option<VsBest>,
    /// Tuned values at an edge of their grid, e.g. `lr = 0.003 (the largest tried)`: the
    /// best value may lie beyond it.
    #[serde(default)]
    pub grid_edges: Vec<String>,
    /// Each finished seed's test accuracy, by seed.
    #[serde(default)]
    pub per_seed: Vec<(u64, f64)>,
    /// Seeds whose test accuracy collapsed: more than [`COLLAPSE`] below the median of the
    /// configuration's seeds. A configuration with one is unstable: its mean and interval
    /// describe neither kind of run, and it is not compared with the best.
    #[serde(default)]
    pub collapsed: Vec<u64>,
}

impl ConfigSummary {
    /// Whether its runs trained without a validation split (on every training image): their
    /// validation accuracy, and so its targets, were not measured, which is not "never
    /// reached".
    pub fn without_validation(&self) -> bool {
        self.runs > 0 && self.best_valid_accuracy.is_none()
    }
}

/// How far below the median of its seeds a seed's test accuracy must fall to count as
/// collapsed: 10 points.
pub const COLLAPSE: f64 = 0.10;

/// One configuration against the best: the test the comparison used (paired over the seeds
/// both ran, where they share at least two; else Welch's), Holm-adjusted over the k - 1
/// comparisons with the best.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VsBest {
    /// Mean test accuracy of this configuration minus the best's.
    pub difference: f64,
    pub p: f64,
    pub p_holm: f64,
    pub paired: bool,
}

/// A comparison of two configurations' test accuracies: Welch's test over their seeds, and the
/// paired test over the seeds they share.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    pub a: String,
    pub b: String,
    /// Mean test accuracy of a minus b.
    pub difference: f64,
    pub t: f64,
    pub df: f64,
    pub p: f64,
    pub p_holm: f64,
    pub significant: bool,
    /// Half-width of Welch's 95% interval of the difference.
    #[serde(default)]
    pub welch_ci95: f64,
    /// The paired t-test over the seeds both configurations ran (configurations that share a
    /// seed start from the same weights, where their layers are the same, and see the same
    /// data order), where they share at least two.
    #[serde(default)]
    pub paired: Option<Paired>,
    /// Power: the smallest true difference the comparison (paired where it is, else Welch's)
    /// detects with 80% power at 5% with the seeds run, and the seeds (per configuration) it
    /// would need to detect a difference of [`DETECT`], from the variance measured.
    #[serde(default)]
    pub power: Option<Power>,
}

/// The difference the power figures are stated for: 0.1 points of accuracy.
pub const DETECT: f64 = 0.001;

/// What a comparison can detect: see [`Pair::power`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Power {
    /// The smallest difference detected with 80% power at 5% with the seeds run.
    pub detectable: f64,
    /// Seeds needed to detect [`DETECT`] (None: more than 100,000, or identical).
    pub seeds_needed: Option<usize>,
    /// The two sides were equal on every seed: there is no spread to size a test with, so
    /// there is no power figure (shown as "identical on every seed").
    #[serde(default)]
    pub identical: bool,
}

/// The comparisons of a 2x2 design's family: two main effects and the interaction.
pub const EFFECTS: usize = 3;

impl Power {
    /// Two sides equal on every seed: no power figure.
    const IDENTICAL: Power = Power {
        detectable: 0.0,
        seeds_needed: None,
        identical: true,
    };

    /// For a paired comparison or contrast over seeds, tested at 5%.
    pub fn of_paired(p: &Paired) -> Option<Power> {
        Self::of_paired_at(p, 0.05)
    }

    /// For a paired comparison or contrast over seeds, tested at level `alpha` (a 2x2
    /// effect: 0.05 / 3, its family's Bonferroni level).
    pub fn of_paired_at(p: &Paired, alpha: f64) -> Option<Power> {
        if p.n < 2 || !p.sd.is_finite() {
            return None;
        }
        if p.identical() {
            return Some(Power::IDENTICAL);
        }
        Some(Power {
            detectable: min_detectable_at(p.sd / (p.n as f64).sqrt(), p.df, alpha),
            seeds_needed: seeds_needed_at(p.sd, DETECT, alpha),
            identical: false,
        })
    }

    /// For Welch's comparison of two samples (the seeds needed: per configuration, with the
    /// variance of one difference the two samples' variances added).
    fn of_welch(a: &[f64], b: &[f64], w: &Welch) -> Option<Power> {
        if a.len() < 2 || b.len() < 2 || !w.df.is_finite() {
            return None;
        }
        let (ea, eb) = (Estimate::of(a)?, Estimate::of(b)?);
        let sd = (ea.sd.powi(2) + eb.sd.powi(2)).sqrt();
        if sd == 0.0 && ea.mean == eb.mean {
            return Some(Power::IDENTICAL);
        }
        Some(Power {
            detectable: min_detectable(w.se, w.df),
            seeds_needed: seeds_needed(sd, DETECT),
            identical: false,
        })
    }
}

/// Main effects and interaction of a 2x2 design on test accuracy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Factorial {
    pub factors: [String; 2],
    /// Mean over the other factor's levels of (level 1 - level 0).
    pub main_effects: [Contrast; 2],
    /// (b1 - b0 at a1) - (b1 - b0 at a0).
    pub interaction: Contrast,
    /// The same three contrasts computed seed by seed over the seeds all four cells ran (the
    /// paired analysis: each seed's contrast, then a t-interval over seeds); the first two
    /// are the main effects.
    #[serde(default)]
    pub paired: Option<[Paired; 3]>,
}

/// One random stream varied alone (a configuration with `vary`): how much its seeds spread the
/// test accuracy, and its share of the streams' summed variance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamShare {
    pub config: String,
    /// The stream varied: `init`, `order` or `dropout`; None for a configuration that varies
    /// every stream (shown beside them for comparison).
    pub stream: Option<String>,
    pub seeds: usize,
    /// Standard deviation of test accuracy over the seeds, with its 95% interval (chi-square).
    pub sd: f64,
    pub sd_low: f64,
    pub sd_high: f64,
    /// This stream's variance over the sum of the varied streams' variances (None for the
    /// every-stream configuration).
    pub share: Option<f64>,
}

/// One tuning run's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TuningRow {
    pub config: String,
    pub point: String,
    pub valid_accuracy: Option<f64>,
    pub valid_loss: Option<f64>,
    pub chosen: bool,
}

/// An adaptive study's seeds: the first stage's decision, and each comparison it monitored
/// with its family-level interval over every seed run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveSummary {
    pub decision: Decision,
    pub intervals: Vec<FamilyInterval>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudySummary {
    pub study: String,
    /// Seeds per configuration: the study's number, or its adaptive decision (the first
    /// stage's seeds while that is unfinished).
    pub seeds: usize,
    /// For an adaptive study whose first stage is finished.
    #[serde(default)]
    pub adaptive: Option<AdaptiveSummary>,
    pub configs: Vec<ConfigSummary>,
    pub best: String,
    pub pairs: Vec<Pair>,
    pub factorial: Option<Factorial>,
    pub tuning: Vec<TuningRow>,
    /// Configurations and runs still missing; statistics cover what is finished.
    pub missing_runs: usize,
    /// Where the variance comes from, when configurations vary one random stream each.
    #[serde(default)]
    pub streams: Vec<StreamShare>,
}

/// The epoch and seconds at which a finished run first reached `target` validation
/// accuracy, or `None` when it never did. An unreadable `metrics.csv` is an error, never
/// "not reached".
fn to_target(dir: &Path, spec: &RunSpec, target: f64) -> Result<Option<(f64, f64)>, StudyError> {
    let run = run_dir(dir, &spec.id);
    let rows = run::read_metrics(&run).map_err(|e| StudyError::InvalidRun {
        dir: run.display().to_string(),
        why: e.to_string(),
    })?;
    let mut seconds = 0.0;
    for r in rows {
        seconds += r.seconds;
        if r.valid_accuracy.is_some_and(|a| a >= target) {
            return Ok(Some((r.epoch as f64, seconds)));
        }
    }
    Ok(None)
}

/// The folder of a study directory where TensorBoard sees its final runs by name:
/// `tensorboard --logdir DIR/tensorboard` shows each as `CONFIG/seed-N`.
pub const TENSORBOARD: &str = "tensorboard";

/// Names the final runs' TensorBoard event files by configuration and seed: for each
/// finished final run of `summary` (its seeds, as the report takes them),
/// `tensorboard/CONFIG/seed-N/` holds a link to its event file (a copy
/// where links are not available), so that TensorBoard, which names runs by folder, groups
/// them. Remade from scratch at each call.
pub fn name_event_files(
    study: &StudyFile,
    summary: &StudySummary,
    dir: &Path,
) -> Result<(), StudyError> {
    let Some(chosen) = tuning_plan(study, dir)?.chosen else {
        return Ok(());
    };
    let view = dir.join(TENSORBOARD);
    let io = |path: &Path, e: std::io::Error| StudyError::Io {
        path: path.display().to_string(),
        source: e,
    };
    if view.exists() {
        std::fs::remove_dir_all(&view).map_err(|e| io(&view, e))?;
    }
    for spec in study.final_runs(&chosen, summary.seeds)? {
        let events = run_dir(dir, &spec.id).join(crate::train::tensorboard::EVENTS);
        if !events.is_file() {
            continue;
        }
        let named = view
            .join(&spec.config)
            .join(format!("seed-{}", spec.train.seed));
        std::fs::create_dir_all(&named).map_err(|e| io(&named, e))?;
        let link = named.join(crate::train::tensorboard::EVENTS);
        #[cfg(unix)]
        let made = std::os::unix::fs::symlink(
            Path::new("../../..").join(events.strip_prefix(dir).expect("inside the study")),
            &link,
        );
        #[cfg(not(unix))]
        let made = std::fs::copy(&events, &link).map(|_| ());
        made.map_err(|e| io(&link, e))?;
    }
    Ok(())
}

/// Computes the summary of the study in `dir` from its run directories.
pub fn summarize(study: &StudyFile, dir: &Path) -> Result<StudySummary, StudyError> {
    let plan = tuning_plan(study, dir)?;
    let chosen = plan.chosen.clone().ok_or_else(|| {
        StudyError::Invalid(
            "tuning is not finished; run `lenet study run` (all shards) first".into(),
        )
    })?;
    let decided = final_seeds(study, dir, &chosen)?;
    let seed_count = decided.as_ref().map_or(study.seeds.first(), |d| d.0);
    let finals = study.final_runs(&chosen, seed_count)?;
    let mut missing_runs = 0;
    let mut by_seed = BySeed::new();
    let mut configs = Vec::new();
    for c in &study.configs {
        let specs: Vec<&RunSpec> = finals.iter().filter(|s| s.config == c.name).collect();
        let point = chosen.get(&c.name).map(Vec::as_slice).unwrap_or(&[]);
        let (mut summary, seeds, missing) = config_summary(study, dir, &c.name, point, &specs)?;
        summary.grid_edges = plan.edges.get(&c.name).cloned().unwrap_or_default();
        summary.per_seed = seeds.iter().map(|(&s, &a)| (s, a)).collect();
        summary.collapsed = collapsed(&seeds);
        configs.push(summary);
        by_seed.insert(c.name.clone(), seeds);
        missing_runs += missing;
    }
    // The best configuration by mean test accuracy, then all pairs.
    let best = configs
        .iter()
        .filter_map(|c| c.test_accuracy.map(|e| (c.name.clone(), e.mean)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(n, _)| n)
        .unwrap_or_default();
    let pairs = pairwise(study, &by_seed);
    compare_with_best(&mut configs, &best, &pairs);
    let mut tuning = Vec::new();
    for spec in &plan.runs {
        // Tuning is finished (`chosen` is known), so the plan has read every run.
        let ok = plan
            .results
            .get(&spec.id)
            .filter(|s| s.status == Status::Finished);
        tuning.push(TuningRow {
            config: spec.config.clone(),
            point: describe_point(&spec.point),
            valid_accuracy: ok.and_then(|s| s.final_valid_accuracy),
            valid_loss: ok.and_then(|s| s.final_valid_loss),
            chosen: chosen.get(&spec.config) == Some(&spec.point),
        });
    }
    let streams = stream_shares(&configs, &finals);
    let adaptive = decided.and_then(|(_, d)| d).map(|decision| {
        let comparisons = study.comparisons(&by_seed);
        let intervals = (decision.comparisons.iter())
            .filter_map(|m| {
                let c = comparisons.iter().find(|c| c.name == m.name)?;
                FamilyInterval::of(m, decision.family, &c.by_seed)
            })
            .collect();
        AdaptiveSummary {
            decision,
            intervals,
        }
    });
    Ok(StudySummary {
        streams,
        adaptive,
        study: study.name.clone(),
        seeds: seed_count,
        factorial: factorial(study, &by_seed),
        configs,
        best,
        pairs,
        tuning,
        missing_runs,
    })
}

/// One configuration's statistics over its finished final runs (`specs`, tuned at `point`),
/// with its test accuracies (for the comparisons) and the number of runs not finished yet.
fn config_summary(
    study: &StudyFile,
    dir: &Path,
    name: &str,
    point: &[(String, f64)],
    specs: &[&RunSpec],
) -> Result<(ConfigSummary, BTreeMap<u64, f64>, usize), StudyError> {
    let (mut loss, mut best, mut wall) = (vec![], vec![], vec![]);
    let mut seeds = BTreeMap::new();
    let (mut diverged, mut missing) = (0, 0);
    let mut done: Vec<&RunSpec> = Vec::new();
    for spec in specs {
        let Some(s) = finished(dir, &spec.id)? else {
            missing += 1;
            continue;
        };
        done.push(spec);
        wall.push(s.wall_seconds);
        match s.status {
            Status::Finished => {
                if let Some(a) = s.test_accuracy {
                    seeds.insert(spec.train.seed, a);
                }
                loss.extend(s.test_loss);
                best.extend(s.best_valid_accuracy);
            }
            Status::Diverged { .. } => diverged += 1,
        }
    }
    let targets = (study.targets.iter())
        .map(|&target| {
            let mut hits: Vec<(f64, f64)> = Vec::new();
            for s in &done {
                hits.extend(to_target(dir, s, target)?);
            }
            Ok(TargetReach {
                target,
                reached: hits.len(),
                epochs: Estimate::of(&hits.iter().map(|h| h.0).collect::<Vec<_>>()),
                seconds: Estimate::of(&hits.iter().map(|h| h.1).collect::<Vec<_>>()),
            })
        })
        .collect::<Result<_, StudyError>>()?;
    let summary = ConfigSummary {
        name: name.to_string(),
        chosen: describe_point(point),
        runs: done.len(),
        diverged,
        test_accuracy: Estimate::of(&seeds.values().copied().collect::<Vec<_>>()),
        test_loss: Estimate::of(&loss),
        best_valid_accuracy: Estimate::of(&best),
        targets,
        wall_seconds: Estimate::of(&wall),
        tied_with_best: false,
        vs_best: None,
        grid_edges: Vec::new(),
        per_seed: Vec::new(),
        collapsed: Vec::new(),
    };
    Ok((summary, seeds, missing))
}

/// Every pair of configurations: Welch's t-test of test accuracy (Holm-adjusted over all
/// pairs), and the paired t-test over the seeds both ran (accuracies by seed).
fn pairwise(study: &StudyFile, by_seed: &BySeed) -> Vec<Pair> {
    let mut pairs = Vec::new();
    for (i, a) in study.configs.iter().enumerate() {
        for b in &study.configs[i + 1..] {
            let (sa, sb) = (&by_seed[&a.name], &by_seed[&b.name]);
            let (xa, xb): (Vec<f64>, Vec<f64>) = (
                sa.values().copied().collect(),
                sb.values().copied().collect(),
            );
            let Some(w) = welch(&xa, &xb) else { continue };
            let d: Vec<f64> = seeds::difference(sa, sb).into_values().collect();
            let by_seed = paired_differences(&d);
            pairs.push(Pair {
                a: a.name.clone(),
                b: b.name.clone(),
                difference: mean(&xa) - mean(&xb),
                t: w.t,
                df: w.df,
                p: w.p,
                p_holm: f64::NAN,
                significant: false,
                welch_ci95: if w.df.is_nan() {
                    0.0
                } else {
                    t_quantile(0.975, w.df) * w.se
                },
                power: match &by_seed {
                    Some(p) => Power::of_paired(p),
                    None => Power::of_welch(&xa, &xb, &w),
                },
                paired: by_seed,
            });
        }
    }
    let adjusted = holm(&pairs.iter().map(|p| p.p).collect::<Vec<_>>());
    for (p, adj) in pairs.iter_mut().zip(adjusted) {
        p.p_holm = adj;
        p.significant = adj < 0.05;
    }
    pairs
}

/// The comparison of every configuration with the best (`best`): the paired test where the
/// two share seeds, else Welch's, Holm-adjusted over these k - 1 comparisons; a
/// configuration is not shown different from the best when that is not significant at 5%.
fn compare_with_best(configs: &mut [ConfigSummary], best: &str, pairs: &[Pair]) {
    let mut family: Vec<(usize, VsBest)> = Vec::new();
    for (i, c) in configs.iter().enumerate() {
        let Some(p) = (pairs.iter())
            .find(|p| (p.a == best && p.b == c.name) || (p.b == best && p.a == c.name))
        else {
            continue;
        };
        let sign = if p.a == best { -1.0 } else { 1.0 };
        let (p_value, is_paired) = match p.paired {
            Some(t) => (t.p, true),
            None => (p.p, false),
        };
        let vs = VsBest {
            difference: sign * p.difference,
            p: p_value,
            p_holm: f64::NAN,
            paired: is_paired,
        };
        family.push((i, vs));
    }
    let adjusted = holm(&family.iter().map(|(_, v)| v.p).collect::<Vec<_>>());
    for ((i, mut vs), adj) in family.into_iter().zip(adjusted) {
        vs.p_holm = adj;
        // An unstable configuration is reported with its seeds, never as like the best.
        configs[i].tied_with_best = adj >= 0.05 && configs[i].collapsed.is_empty();
        configs[i].vs_best = Some(vs);
    }
    for c in configs.iter_mut().filter(|c| c.name == best) {
        c.tied_with_best = c.test_accuracy.is_some();
    }
}

/// The spread of each configuration that varies one random stream alone (and of one that
/// varies them all, beside them), when the study has such configurations.
fn stream_shares(configs: &[ConfigSummary], finals: &[RunSpec]) -> Vec<StreamShare> {
    let vary_of = |name: &str| {
        finals
            .iter()
            .find(|f| f.config == name)
            .map(|f| f.train.vary)
    };
    if !configs.iter().any(|c| vary_of(&c.name).flatten().is_some()) {
        return Vec::new();
    }
    let mut rows: Vec<StreamShare> = Vec::new();
    for c in configs {
        let (Some(vary), Some(e)) = (vary_of(&c.name), c.test_accuracy) else {
            continue;
        };
        let Some((sd_low, sd_high)) = crate::stats::sd_interval(e.sd, e.n) else {
            continue;
        };
        rows.push(StreamShare {
            config: c.name.clone(),
            stream: vary.map(|v| v.as_str().to_string()),
            seeds: e.n,
            sd: e.sd,
            sd_low,
            sd_high,
            share: None,
        });
    }
    let total: f64 = (rows.iter().filter(|r| r.stream.is_some()))
        .map(|r| r.sd * r.sd)
        .sum();
    for r in rows.iter_mut().filter(|r| r.stream.is_some()) {
        r.share = (total > 0.0).then(|| r.sd * r.sd / total);
    }
    rows
}

/// The seeds whose accuracy lies more than [`COLLAPSE`] below the median of all seeds.
fn collapsed(seeds: &BTreeMap<u64, f64>) -> Vec<u64> {
    let mut values: Vec<f64> = seeds.values().copied().collect();
    if values.len() < 3 {
        return Vec::new();
    }
    values.sort_by(f64::total_cmp);
    let median = values[values.len() / 2];
    (seeds.iter())
        .filter(|(_, a)| **a < median - COLLAPSE)
        .map(|(s, _)| *s)
        .collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn factorial(study: &StudyFile, by_seed: &BySeed) -> Option<Factorial> {
    if study.factors.len() != 2 {
        return None;
    }
    let name = |a: u8, b: u8| -> Option<&str> {
        let c = study.configs.iter().find(|c| c.cell == Some([a, b]))?;
        Some(c.name.as_str())
    };
    let names = [name(0, 0)?, name(0, 1)?, name(1, 0)?, name(1, 1)?];
    let [c00, c01, c10, c11] =
        names.map(|n| (by_seed.get(n)).map(|seeds| seeds.values().copied().collect::<Vec<f64>>()));
    let (c00, c01, c10, c11) = (c00?, c01?, c10?, c11?);
    let (c00, c01, c10, c11) = (&c00[..], &c01[..], &c10[..], &c11[..]);
    let main_a = contrast(&[(c10, 0.5), (c11, 0.5), (c00, -0.5), (c01, -0.5)])?;
    let main_b = contrast(&[(c01, 0.5), (c11, 0.5), (c00, -0.5), (c10, -0.5)])?;
    let interaction = contrast(&[(c11, 1.0), (c10, -1.0), (c01, -1.0), (c00, 1.0)])?;
    Some(Factorial {
        factors: [study.factors[0].clone(), study.factors[1].clone()],
        main_effects: [main_a, main_b],
        interaction,
        paired: paired_contrasts(names, by_seed),
    })
}

/// The 2x2 contrasts seed by seed (cells in the order 00, 01, 10, 11), over the seeds all
/// four ran, each with its t-interval over seeds: main effect of a, of b, the interaction.
fn paired_contrasts(cells: [&str; 4], by_seed: &BySeed) -> Option<[Paired; 3]> {
    let maps = cells.map(|c| by_seed.get(c));
    let [a, b, ab] = seeds::contrasts([maps[0]?, maps[1]?, maps[2]?, maps[3]?]);
    let test = |c: BTreeMap<u64, f64>| paired_differences(&c.into_values().collect::<Vec<_>>());
    Some([test(a)?, test(b)?, test(ab)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seed more than 10 points below the median of its configuration's seeds collapsed
    /// (RMSprop at chance among seeds near 98%); spread within that is not a collapse.
    #[test]
    fn a_seed_far_below_the_others_collapsed() {
        let seeds = |v: &[f64]| -> BTreeMap<u64, f64> {
            v.iter().enumerate().map(|(i, &a)| (i as u64, a)).collect()
        };
        assert_eq!(collapsed(&seeds(&[0.981, 0.979, 0.098, 0.983, 0.98])), [2]);
        assert!(collapsed(&seeds(&[0.981, 0.95, 0.97, 0.983, 0.98])).is_empty());
        assert!(
            collapsed(&seeds(&[0.98, 0.1])).is_empty(),
            "too few seeds to say"
        );
    }
}
