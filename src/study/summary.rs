//! The statistics of a finished study: per configuration (over seeds), between
//! configurations (pairwise Welch tests, Holm-corrected, and who is tied with the best), and
//! for a 2x2 design the main effects and the interaction. Written as Markdown, CSV and JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{RunSpec, StudyError, StudyFile, choose, describe_point, finished, run_dir};
use crate::doc::Doc;
use crate::stats::{Contrast, Estimate, contrast, holm, welch};
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
    /// Not significantly different from the best configuration's test accuracy (Holm, 5%).
    pub tied_with_best: bool,
}

/// A Welch test between two configurations' test accuracies.
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
}

/// Main effects and interaction of a 2x2 design on test accuracy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Factorial {
    pub factors: [String; 2],
    /// Mean over the other factor's levels of (level 1 - level 0).
    pub main_effects: [Contrast; 2],
    /// (b1 - b0 at a1) - (b1 - b0 at a0).
    pub interaction: Contrast,
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudySummary {
    pub study: String,
    pub seeds: usize,
    pub configs: Vec<ConfigSummary>,
    pub best: String,
    pub pairs: Vec<Pair>,
    pub factorial: Option<Factorial>,
    pub tuning: Vec<TuningRow>,
    /// Configurations and runs still missing; statistics cover what is finished.
    pub missing_runs: usize,
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

/// Computes the summary of the study in `dir` from its run directories.
pub fn summarize(study: &StudyFile, dir: &Path) -> Result<StudySummary, StudyError> {
    let chosen = choose(study, dir)?.ok_or_else(|| {
        StudyError::Invalid(
            "tuning is not finished; run `lenet study run` (all shards) first".into(),
        )
    })?;
    let finals = study.final_runs(&chosen)?;
    let mut missing_runs = 0;
    let mut accuracies: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut configs = Vec::new();
    for c in &study.configs {
        let specs: Vec<&RunSpec> = finals.iter().filter(|s| s.config == c.name).collect();
        let point = chosen.get(&c.name).map(Vec::as_slice).unwrap_or(&[]);
        let (summary, acc, missing) = config_summary(study, dir, &c.name, point, &specs)?;
        configs.push(summary);
        accuracies.insert(c.name.clone(), acc);
        missing_runs += missing;
    }
    // The best configuration by mean test accuracy, then all pairs.
    let best = configs
        .iter()
        .filter_map(|c| c.test_accuracy.map(|e| (c.name.clone(), e.mean)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(n, _)| n)
        .unwrap_or_default();
    let pairs = pairwise(study, &accuracies);
    for c in configs.iter_mut() {
        c.tied_with_best = c.test_accuracy.is_some()
            && (c.name == best
                || pairs.iter().any(|p| {
                    ((p.a == best && p.b == c.name) || (p.b == best && p.a == c.name))
                        && !p.significant
                }));
    }
    let mut tuning = Vec::new();
    for spec in study.tuning_runs()? {
        let s = finished(dir, &spec.id)?;
        let ok = s.as_ref().filter(|s| s.status == Status::Finished);
        tuning.push(TuningRow {
            config: spec.config.clone(),
            point: describe_point(&spec.point),
            valid_accuracy: ok.and_then(|s| s.final_valid_accuracy),
            valid_loss: ok.and_then(|s| s.final_valid_loss),
            chosen: chosen.get(&spec.config) == Some(&spec.point),
        });
    }
    Ok(StudySummary {
        study: study.name.clone(),
        seeds: study.seeds,
        factorial: factorial(study, &accuracies),
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
) -> Result<(ConfigSummary, Vec<f64>, usize), StudyError> {
    let (mut acc, mut loss, mut best, mut wall) = (vec![], vec![], vec![], vec![]);
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
                acc.extend(s.test_accuracy);
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
        test_accuracy: Estimate::of(&acc),
        test_loss: Estimate::of(&loss),
        best_valid_accuracy: Estimate::of(&best),
        targets,
        wall_seconds: Estimate::of(&wall),
        tied_with_best: false,
    };
    Ok((summary, acc, missing))
}

/// Welch's t-test of test accuracy for every pair of configurations, Holm-adjusted.
fn pairwise(study: &StudyFile, accuracies: &BTreeMap<String, Vec<f64>>) -> Vec<Pair> {
    let mut pairs = Vec::new();
    for (i, a) in study.configs.iter().enumerate() {
        for b in &study.configs[i + 1..] {
            let (xa, xb) = (&accuracies[&a.name], &accuracies[&b.name]);
            if let Some(w) = welch(xa, xb) {
                pairs.push(Pair {
                    a: a.name.clone(),
                    b: b.name.clone(),
                    difference: mean(xa) - mean(xb),
                    t: w.t,
                    df: w.df,
                    p: w.p,
                    p_holm: f64::NAN,
                    significant: false,
                });
            }
        }
    }
    let adjusted = holm(&pairs.iter().map(|p| p.p).collect::<Vec<_>>());
    for (p, adj) in pairs.iter_mut().zip(adjusted) {
        p.p_holm = adj;
        p.significant = adj < 0.05;
    }
    pairs
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn factorial(study: &StudyFile, acc: &BTreeMap<String, Vec<f64>>) -> Option<Factorial> {
    if study.factors.len() != 2 {
        return None;
    }
    let cell = |a: u8, b: u8| -> Option<&[f64]> {
        let c = study.configs.iter().find(|c| c.cell == Some([a, b]))?;
        acc.get(&c.name).map(Vec::as_slice)
    };
    let (c00, c01, c10, c11) = (cell(0, 0)?, cell(0, 1)?, cell(1, 0)?, cell(1, 1)?);
    let main_a = contrast(&[(c10, 0.5), (c11, 0.5), (c00, -0.5), (c01, -0.5)])?;
    let main_b = contrast(&[(c01, 0.5), (c11, 0.5), (c00, -0.5), (c10, -0.5)])?;
    let interaction = contrast(&[(c11, 1.0), (c10, -1.0), (c01, -1.0), (c00, 1.0)])?;
    Some(Factorial {
        factors: [study.factors[0].clone(), study.factors[1].clone()],
        main_effects: [main_a, main_b],
        interaction,
    })
}

fn pct(e: &Option<Estimate>) -> String {
    match e {
        Some(e) if e.n > 1 => format!("{:.2}% ± {:.2}", 100.0 * e.mean, 100.0 * e.ci95),
        Some(e) => format!("{:.2}%", 100.0 * e.mean),
        None => "–".into(),
    }
}

fn num(e: &Option<Estimate>, digits: usize) -> String {
    match e {
        Some(e) if e.n > 1 => format!("{:.*} ± {:.*}", digits, e.mean, digits, e.ci95),
        Some(e) => format!("{:.*}", digits, e.mean),
        None => "–".into(),
    }
}

fn yes_no(yes: bool) -> String {
    if yes { "yes" } else { "no" }.to_string()
}

impl StudySummary {
    /// The summary as Markdown tables.
    pub fn markdown(&self) -> String {
        let mut doc = Doc::new(format!("Study `{}`: summary", self.study));
        let missing = if self.missing_runs > 0 {
            format!(
                " **{} runs are not finished yet; statistics cover the finished ones.**",
                self.missing_runs
            )
        } else {
            String::new()
        };
        doc.paragraph(format!(
            "Means over seeds with 95% confidence intervals (Student t, n - 1 degrees of freedom); \
             test accuracy of the final weights. {} seeds per configuration.{missing}",
            self.seeds
        ));
        self.configs_table(&mut doc);
        self.pairs_section(&mut doc);
        self.factorial_section(&mut doc);
        self.tuning_section(&mut doc);
        doc.markdown()
    }

    /// Every configuration, best test accuracy first.
    fn configs_table(&self, doc: &mut Doc) {
        let targets = self.configs.first().map_or(vec![], |c| {
            (c.targets.iter())
                .map(|t| format!("epochs to {:.1}% (reached)", 100.0 * t.target))
                .collect()
        });
        let mut header = vec![
            "configuration",
            "tuned",
            "runs",
            "diverged",
            "test accuracy",
            "test loss",
            "best valid accuracy",
        ];
        header.extend(targets.iter().map(String::as_str));
        header.extend(["seconds per run", "tied with best"]);
        let mut order: Vec<&ConfigSummary> = self.configs.iter().collect();
        order.sort_by(|a, b| {
            let m = |c: &ConfigSummary| c.test_accuracy.map_or(f64::NEG_INFINITY, |e| e.mean);
            m(b).total_cmp(&m(a))
        });
        let rows = order.into_iter().map(|c| {
            let chosen = if c.chosen.is_empty() {
                "–"
            } else {
                &c.chosen
            };
            let mut row = vec![
                c.name.clone(),
                chosen.to_string(),
                c.runs.to_string(),
                c.diverged.to_string(),
                pct(&c.test_accuracy),
                num(&c.test_loss, 4),
                pct(&c.best_valid_accuracy),
            ];
            row.extend(
                (c.targets.iter())
                    .map(|t| format!("{} ({}/{})", num(&t.epochs, 1), t.reached, c.runs)),
            );
            row.push(num(&c.wall_seconds, 1));
            row.push(yes_no(c.tied_with_best));
            row
        });
        doc.table(&header, rows.collect());
    }

    fn pairs_section(&self, doc: &mut Doc) {
        if self.pairs.is_empty() {
            return;
        }
        doc.heading(2, "Pairwise comparisons of test accuracy");
        doc.paragraph(format!(
            "Welch's t-test for each pair, p-values adjusted for {} comparisons with Holm's \
             method; significant at 5% after adjustment.",
            self.pairs.len()
        ));
        let header = [
            "a",
            "b",
            "a − b (points)",
            "t",
            "df",
            "p",
            "p (Holm)",
            "significant",
        ];
        let rows = self.pairs.iter().map(|p| {
            vec![
                p.a.clone(),
                p.b.clone(),
                format!("{:+.3}", 100.0 * p.difference),
                format!("{:.2}", p.t),
                format!("{:.1}", p.df),
                format!("{:.4}", p.p),
                format!("{:.4}", p.p_holm),
                yes_no(p.significant),
            ]
        });
        doc.table(&header, rows.collect());
    }

    fn factorial_section(&self, doc: &mut Doc) {
        let Some(f) = &self.factorial else { return };
        doc.heading(2, "2x2 design: effects on test accuracy");
        doc.paragraph(
            "Each effect is a contrast of the four cell means; 95% CI from its standard error \
             with Welch–Satterthwaite degrees of freedom.",
        );
        let effects = [
            (
                format!("main effect of {}", f.factors[0]),
                &f.main_effects[0],
            ),
            (
                format!("main effect of {}", f.factors[1]),
                &f.main_effects[1],
            ),
            (
                format!("interaction {} x {}", f.factors[0], f.factors[1]),
                &f.interaction,
            ),
        ];
        let rows = effects.into_iter().map(|(name, c)| {
            vec![
                name,
                format!("{:+.3}", 100.0 * c.estimate),
                format!(
                    "[{:+.3}, {:+.3}]",
                    100.0 * (c.estimate - c.ci95),
                    100.0 * (c.estimate + c.ci95)
                ),
                format!("{:.4}", c.p),
            ]
        });
        doc.table(
            &["effect", "estimate (points)", "95% CI", "p"],
            rows.collect(),
        );
    }

    fn tuning_section(&self, doc: &mut Doc) {
        if self.tuning.is_empty() {
            return;
        }
        doc.heading(2, "Tuning on the validation split");
        let rows = self.tuning.iter().map(|t| {
            vec![
                t.config.clone(),
                t.point.clone(),
                (t.valid_accuracy).map_or("diverged".into(), |a| format!("{:.2}%", 100.0 * a)),
                t.valid_loss.map_or("–".into(), |l| format!("{l:.4}")),
                if t.chosen { "✓" } else { "" }.to_string(),
            ]
        });
        let header = [
            "configuration",
            "setting",
            "valid accuracy",
            "valid loss",
            "chosen",
        ];
        doc.table(&header, rows.collect());
    }

    /// One CSV row per configuration.
    pub fn csv(&self) -> String {
        let mut s = String::from(
            "config,tuned,runs,diverged,test_accuracy_mean,test_accuracy_sd,test_accuracy_ci95,\
             test_loss_mean,test_loss_ci95,best_valid_accuracy_mean,wall_seconds_mean,tied_with_best",
        );
        let targets = self.configs.first().map_or(0, |c| c.targets.len());
        for i in 0..targets {
            let t = self.configs[0].targets[i].target;
            let _ = write!(s, ",reached_{t},epochs_to_{t}_mean");
        }
        s.push('\n');
        let f = |e: &Option<Estimate>, g: fn(&Estimate) -> f64| {
            e.map_or(String::new(), |e| g(&e).to_string())
        };
        for c in &self.configs {
            let _ = write!(
                s,
                "{},\"{}\",{},{},{},{},{},{},{},{},{},{}",
                c.name,
                c.chosen,
                c.runs,
                c.diverged,
                f(&c.test_accuracy, |e| e.mean),
                f(&c.test_accuracy, |e| e.sd),
                f(&c.test_accuracy, |e| e.ci95),
                f(&c.test_loss, |e| e.mean),
                f(&c.test_loss, |e| e.ci95),
                f(&c.best_valid_accuracy, |e| e.mean),
                f(&c.wall_seconds, |e| e.mean),
                c.tied_with_best
            );
            for t in &c.targets {
                let _ = write!(s, ",{},{}", t.reached, f(&t.epochs, |e| e.mean));
            }
            s.push('\n');
        }
        s
    }

    /// Writes summary.md, summary.csv and summary.json into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), StudyError> {
        let w = |name: &str, text: String| {
            crate::train::write_atomically(&dir.join(name), text.as_bytes())
        };
        w("summary.md", self.markdown())?;
        w("summary.csv", self.csv())?;
        w(
            "summary.json",
            serde_json::to_string_pretty(self).expect("serialisable") + "\n",
        )?;
        Ok(())
    }
}
