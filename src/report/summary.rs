//! A study's summary as Markdown and CSV (`lenet study summary`, `summary.md`,
//! `summary.csv`): the rendering of [`StudySummary`]'s numbers, which `study::summary`
//! computes.

use std::fmt::Write as _;
use std::path::Path;

use super::numbers::{interval_cell, num_cell, pct_cell, power_cells, yes_no};
use crate::doc::Doc;
use crate::format::thousands;
use crate::stats::Estimate;
use crate::study::StudyError;
use crate::study::plan::human_seconds;
use crate::study::seeds;
use crate::study::summary::{AdaptiveSummary, ConfigSummary, EFFECTS, Power, StudySummary};

impl AdaptiveSummary {
    /// When the maximum stopped the study: the seeds, runs and time that deciding every
    /// comparison takes, at the mean seconds per run of the finished runs.
    fn cost_of_the_rest(&self, configs: &[ConfigSummary]) -> Option<String> {
        let d = &self.decision;
        if d.stopped != seeds::Stop::Max {
            return None;
        }
        let (needed, name) = (d.comparisons.iter())
            .filter_map(|m| m.needed.map(|n| (n, m.name.as_str())))
            .max()?;
        let done: usize = configs.iter().map(|c| c.runs).sum();
        let more = (needed * configs.len()).saturating_sub(done);
        let timed: Vec<f64> = (configs.iter())
            .filter_map(|c| c.wall_seconds.as_ref().map(|w| w.mean))
            .collect();
        let time = if timed.is_empty() {
            String::new()
        } else {
            let per_run = timed.iter().sum::<f64>() / timed.len() as f64;
            let total = per_run * more as f64;
            format!(
                "; at the {per_run:.0} s a run measured here (the mean over the finished \
                 runs, each timed as it ran), about {} of runs, {} with two at a time",
                human_seconds(total),
                human_seconds(total / 2.0)
            )
        };
        Some(format!(
            "What deciding the rest costs: {name} needs {needed} seeds of each of the {} \
             configurations, {} runs more than the {} finished here{time}. A study with the \
             maximum raised to at least {needed} continues from these runs: a run's ID does not \
             depend on the study, so copying `runs/` into its directory reuses them.",
            configs.len(),
            thousands(more),
            thousands(done)
        ))
    }

    /// The rule and its decision in words, what deciding the rest would cost when the
    /// maximum stopped it (from `configs`' measured seconds per run), and each monitored
    /// comparison's interval.
    pub fn write(&self, doc: &mut Doc, configs: &[ConfigSummary]) {
        doc.paragraph(self.decision.describe());
        if let Some(cost) = self.cost_of_the_rest(configs) {
            doc.paragraph(cost);
        }
        let level = format!(
            "{:.2}% CI (joint 95%)",
            100.0 * (1.0 - seeds::family_alpha(self.decision.family))
        );
        let header = [
            "comparison",
            "first-stage validation sd (points)",
            "seeds needed",
            "seeds run",
            "estimate (points)",
            level.as_str(),
            "p (Bonferroni)",
            "answer",
        ];
        let rows = (self.intervals.iter())
            .map(|i| {
                let sd = (self.decision.comparisons.iter())
                    .find(|m| m.name == i.name)
                    .map_or(f64::NAN, |m| m.first_valid_sd);
                vec![
                    i.name.clone(),
                    format!("{:.3}", 100.0 * sd),
                    i.needed.map_or("uncountable".into(), |n| n.to_string()),
                    i.seeds.to_string(),
                    format!("{:+.3}", 100.0 * i.mean),
                    interval_cell(i.mean, i.half_width),
                    format!("{:.4}", i.p_bonferroni),
                    i.answer(self.decision.rule.until),
                ]
            })
            .collect();
        doc.table(&header, rows);
    }
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
             test accuracy of the final weights. {} seeds per configuration{}.{missing} \
             \"Not shown different from best\": the comparison with the best configuration \
             (the paired t-test over shared seeds, else Welch's) is not significant at 5% after \
             Holm's adjustment over the {} comparisons with the best.",
            self.seeds,
            if self.adaptive.is_some() {
                " (adaptive: see below)"
            } else {
                ""
            },
            self.configs.len().saturating_sub(1)
        ));
        self.configs_table(&mut doc);
        self.adaptive_section(&mut doc);
        self.pairs_section(&mut doc);
        self.factorial_section(&mut doc);
        self.tuning_section(&mut doc);
        self.streams_section(&mut doc);
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
        header.extend(["seconds per run", "not shown different from best"]);
        let mut order: Vec<&ConfigSummary> = self.configs.iter().collect();
        order.sort_by(|a, b| {
            let m = |c: &ConfigSummary| c.test_accuracy.map_or(f64::NEG_INFINITY, |e| e.mean);
            m(b).total_cmp(&m(a))
        });
        let rows = order.into_iter().map(|c| {
            let mut chosen = if c.chosen.is_empty() {
                "–".to_string()
            } else {
                c.chosen.clone()
            };
            if !c.grid_edges.is_empty() {
                chosen += " (at its grid's edge)";
            }
            let mut row = vec![
                c.name.clone(),
                chosen,
                c.runs.to_string(),
                c.diverged.to_string(),
                pct_cell(&c.test_accuracy),
                num_cell(&c.test_loss, 4),
                pct_cell(&c.best_valid_accuracy),
            ];
            // Runs trained without a validation split have no validation accuracy to reach
            // a target with: not measured, rather than never reached.
            row.extend((c.targets.iter()).map(|t| {
                if c.without_validation() {
                    "no validation split".to_string()
                } else {
                    format!("{} ({}/{})", num_cell(&t.epochs, 1), t.reached, c.runs)
                }
            }));
            row.push(num_cell(&c.wall_seconds, 1));
            row.push(if c.collapsed.is_empty() {
                yes_no(c.tied_with_best)
            } else {
                "unstable".into()
            });
            row
        });
        doc.table(&header, rows.collect());
    }

    /// An adaptive study's decision, and each monitored comparison's Stein interval.
    fn adaptive_section(&self, doc: &mut Doc) {
        let Some(a) = &self.adaptive else { return };
        doc.heading(2, "Adaptive seeds");
        a.write(doc, &self.configs);
    }

    fn pairs_section(&self, doc: &mut Doc) {
        if self.pairs.is_empty() {
            return;
        }
        doc.heading(2, "Pairwise comparisons of test accuracy");
        doc.paragraph(format!(
            "Welch's t-test for each pair, p-values adjusted for {} comparisons with Holm's \
             method; significant at 5% after adjustment. Beside it, the paired t-test over the \
             seeds both ran (runs of one seed start from the same weights and see the same data \
             order) and the width of its 95% interval against Welch's.",
            self.pairs.len()
        ));
        let header = [
            "a",
            "b",
            "a − b (points)",
            "Welch 95% CI",
            "p",
            "p (Holm)",
            "significant",
            "paired 95% CI",
            "paired p",
            "width paired/Welch",
            "detectable at 80% power",
            "seeds to detect 0.1 points",
        ];
        let rows = self.pairs.iter().map(|p| {
            let (paired_ci, paired_p, ratio) = match p.paired {
                Some(t) => (
                    format!("±{:.3}", 100.0 * t.ci95),
                    format!("{:.4}", t.p),
                    format!("{:.2}", t.ci95 / p.welch_ci95),
                ),
                None => ("–".into(), "–".into(), "–".into()),
            };
            let mut row = vec![
                p.a.clone(),
                p.b.clone(),
                format!("{:+.3}", 100.0 * p.difference),
                format!("±{:.3}", 100.0 * p.welch_ci95),
                format!("{:.4}", p.p),
                format!("{:.4}", p.p_holm),
                yes_no(p.significant),
                paired_ci,
                paired_p,
                ratio,
            ];
            row.extend(power_cells(p.power));
            row
        });
        doc.table(&header, rows.collect());
    }

    fn factorial_section(&self, doc: &mut Doc) {
        let Some(f) = &self.factorial else { return };
        doc.heading(2, "2x2 design: effects on test accuracy");
        doc.paragraph(
            "The two main effects and the interaction are one family of three comparisons: \
             every interval here is at level 98.33% and every p-value multiplied by 3 \
             (Bonferroni), so the three intervals hold together with probability at least 95% \
             and an effect is called exactly when its interval excludes 0. Each effect is a \
             contrast of the four cell means, its interval from its standard error with \
             Welch–Satterthwaite degrees of freedom. Paired: the same contrast seed by seed \
             (the four cells of a seed start from the same weights), with a t-interval over \
             the seeds. Power at the family's level, 5% / 3.",
        );
        let alpha = seeds::family_alpha(EFFECTS);
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
        let rows = effects.into_iter().enumerate().map(|(i, (name, c))| {
            let paired = f.paired.map(|p| p[i]);
            let cells_half = c.half_width(alpha);
            let mut row = vec![
                name,
                format!("{:+.3}", 100.0 * c.estimate),
                interval_cell(c.estimate, cells_half),
                format!("{:.4}", c.p_bonferroni(EFFECTS)),
                paired.map_or("–".into(), |p| interval_cell(p.mean, p.half_width(alpha))),
                paired.map_or("–".into(), |p| format!("{:.4}", p.p_bonferroni(EFFECTS))),
                paired.map_or("–".into(), |p| {
                    format!("{:.2}", p.half_width(alpha) / cells_half)
                }),
            ];
            row.extend(power_cells(
                paired.as_ref().and_then(|p| Power::of_paired_at(p, alpha)),
            ));
            row
        });
        let header = [
            "effect",
            "estimate (points)",
            "98.33% CI (joint 95%)",
            "p (Bonferroni)",
            "paired 98.33% CI (joint 95%)",
            "paired p (Bonferroni)",
            "width paired/unpaired",
            "detectable at 80% power",
            "seeds to detect 0.1 points",
        ];
        doc.table(&header, rows.collect());
    }

    fn streams_section(&self, doc: &mut Doc) {
        if self.streams.is_empty() {
            return;
        }
        doc.heading(2, "Where the variance comes from");
        doc.paragraph(
            "Each configuration varies one random stream with its seed and holds the others \
             fixed; its spread of test accuracy over seeds is that source's. 95% intervals of \
             the standard deviation from the chi-square distribution; shares are of the varied \
             streams' summed variance.",
        );
        let header = [
            "configuration",
            "stream varied",
            "seeds",
            "sd (points)",
            "95% CI",
            "share",
        ];
        let rows = self.streams.iter().map(|r| {
            vec![
                r.config.clone(),
                r.stream.clone().unwrap_or_else(|| "all".into()),
                r.seeds.to_string(),
                format!("{:.3}", 100.0 * r.sd),
                format!("{:.3} to {:.3}", 100.0 * r.sd_low, 100.0 * r.sd_high),
                r.share.map_or("–".into(), |s| format!("{:.0}%", 100.0 * s)),
            ]
        });
        doc.table(&header, rows.collect());
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
                // Empty, not 0, for runs without a validation split: nothing was measured.
                let reached = if c.without_validation() {
                    String::new()
                } else {
                    t.reached.to_string()
                };
                let _ = write!(s, ",{reached},{}", f(&t.epochs, |e| e.mean));
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
