//! The tables of a report.

use super::numbers::power_cells;
use super::numbers::{self, pct, pct_ci};
use crate::doc::Doc;
use crate::study::StudyFile;
use crate::study::seeds::family_alpha;
use crate::study::summary::{EFFECTS, Factorial, Power, StudySummary};
use crate::train::TrainConfig;
use crate::train::metrics::EpochMetrics;

pub(crate) fn config_row(id: &str, config: &TrainConfig, extra: &[String]) -> Vec<String> {
    let m = &config.model;
    let mut row = vec![
        format!("`{id}`"),
        config.optimizer.name.as_str().to_string(),
        format!("{}", config.optimizer.lr),
        if config.batch_size == 0 {
            "all".into()
        } else {
            config.batch_size.to_string()
        },
        config.epochs.to_string(),
        config.seed.to_string(),
        if m.arch.is_lecun1998() {
            // Built as the paper describes: the study model's options do not apply.
            format!(
                "{}: scaled tanh, trainable subsampling, sparse c3",
                m.arch.as_str()
            )
        } else {
            format!(
                "{:?}, bn {:?}, dropout {}, {:?}, {:?} pool",
                m.arch, m.batch_norm, m.dropout, m.activation, m.pooling
            )
            .to_lowercase()
        },
    ];
    row.extend_from_slice(extra);
    row
}

pub(crate) const CONFIG_HEADER: [&str; 7] =
    ["run", "optimizer", "lr", "batch", "epochs", "seed", "model"];

/// The per-epoch metrics of one run as a table.
pub(crate) fn epoch_table(metrics: &[EpochMetrics], doc: &mut Doc) {
    doc.table(
        &[
            "epoch",
            "lr",
            "train loss",
            "valid loss",
            "train acc",
            "valid acc",
            "seconds",
        ],
        metrics
            .iter()
            .map(|m| {
                vec![
                    m.epoch.to_string(),
                    format!("{}", m.lr),
                    format!("{:.4}", m.train_loss),
                    m.valid_loss.map_or("n/a".into(), |l| format!("{l:.4}")),
                    pct(m.train_accuracy),
                    m.valid_accuracy.map_or("n/a".into(), pct),
                    format!("{:.1}", m.seconds),
                ]
            })
            .collect(),
    );
}

pub(crate) fn summary_table(summary: &StudySummary, study: &StudyFile, doc: &mut Doc) {
    let mut header = vec![
        "configuration",
        "chosen",
        "runs",
        "diverged",
        "test accuracy (95% CI)",
        "test loss",
        "not shown different from best",
        "seconds per run",
    ];
    let target_names: Vec<String> = study
        .targets
        .iter()
        .map(|t| format!("epochs to {}", pct(*t)))
        .collect();
    header.extend(target_names.iter().map(String::as_str));
    let rows = summary
        .configs
        .iter()
        .map(|c| {
            let mut row = vec![
                format!("`{}`", c.name),
                c.chosen.clone(),
                c.runs.to_string(),
                c.diverged.to_string(),
                c.test_accuracy.map_or("-".into(), |e| pct_ci(&e)),
                c.test_loss.map_or("-".into(), |e| format!("{:.4}", e.mean)),
                if c.tied_with_best { "yes" } else { "no" }.into(),
                c.wall_seconds
                    .map_or("-".into(), |e| format!("{:.1}", e.mean)),
            ];
            for t in &c.targets {
                row.push(match t.epochs {
                    _ if c.without_validation() => "no validation split".to_string(),
                    Some(e) => format!("{:.1} ({}/{} runs)", e.mean, t.reached, c.runs),
                    None => format!("never (0/{} runs)", c.runs),
                });
            }
            row
        })
        .collect();
    doc.table(&header, rows);
}

pub(crate) fn pairs_table(summary: &StudySummary, doc: &mut Doc) {
    if summary.pairs.is_empty() {
        return;
    }
    doc.paragraph(
        "Every pair of configurations: the difference of mean test accuracy with Welch's \
         t-test (p-values Holm-corrected over all pairs), and the paired t-test over the seeds \
         both ran (runs of one seed start from the same weights and see the same data order), \
         with the width of its 95% interval against Welch's:",
    );
    let header = [
        "a",
        "b",
        "a - b",
        "Welch 95% CI",
        "p",
        "p (Holm)",
        "significant",
        "paired 95% CI",
        "paired p",
        "paired/Welch width",
        "detectable at 80% power",
        "seeds to detect 0.1 points",
    ];
    let rows = summary.pairs.iter().map(|p| {
        let paired = p.paired;
        let mut row = vec![
            p.a.clone(),
            p.b.clone(),
            format!("{:+.3} points", 100.0 * p.difference),
            format!("±{:.3}", 100.0 * p.welch_ci95),
            numbers::p_cell(p.p),
            numbers::p_cell(p.p_holm),
            if p.significant { "yes" } else { "no" }.into(),
            paired.map_or("-".into(), |t| format!("±{:.3}", 100.0 * t.ci95)),
            paired.map_or("-".into(), |t| numbers::p_cell(t.p)),
            paired.map_or("-".into(), |t| format!("{:.2}", t.ci95 / p.welch_ci95)),
        ];
        row.extend(power_cells(p.power));
        row
    });
    doc.table(&header, rows.collect());
}

/// The effects of a 2x2 design on test accuracy.
pub(crate) fn effects_table(f: &Factorial, doc: &mut Doc) {
    let effects = [
        (format!("{} (main effect)", f.factors[0]), f.main_effects[0]),
        (format!("{} (main effect)", f.factors[1]), f.main_effects[1]),
        ("interaction".to_string(), f.interaction),
    ];
    let interval = |mean: f64, half: f64| {
        format!(
            "{:+.3} to {:+.3}",
            100.0 * (mean - half),
            100.0 * (mean + half)
        )
    };
    // One family of three: 98.33% intervals and p-values times 3 (Bonferroni).
    let alpha = family_alpha(EFFECTS);
    let rows = effects.iter().enumerate().map(|(i, (name, c))| {
        let paired = f.paired.map(|p| p[i]);
        let mut row = vec![
            name.clone(),
            format!("{:+.3} points", 100.0 * c.estimate),
            interval(c.estimate, c.half_width(alpha)),
            numbers::p_cell(c.p_bonferroni(EFFECTS)),
            paired.map_or("-".into(), |p| interval(p.mean, p.half_width(alpha))),
            paired.map_or("-".into(), |p| numbers::p_cell(p.p_bonferroni(EFFECTS))),
        ];
        row.extend(power_cells(
            paired.as_ref().and_then(|p| Power::of_paired_at(p, alpha)),
        ));
        row
    });
    let header = [
        "effect on test accuracy",
        "estimate",
        "98.33% CI (joint 95%)",
        "p (Bonferroni)",
        "paired 98.33% CI (per-seed contrasts, joint 95%)",
        "paired p (Bonferroni)",
        "detectable at 80% power",
        "seeds to detect 0.1 points",
    ];
    doc.table(&header, rows.collect());
}

/// Every tuning run's validation accuracy, and which grid point each configuration chose.
pub(crate) fn tuning_table(summary: &StudySummary, doc: &mut Doc) {
    let rows = summary.tuning.iter().map(|t| {
        vec![
            t.config.clone(),
            t.point.clone(),
            t.valid_accuracy.map_or("diverged".into(), pct),
            if t.chosen { "yes" } else { "" }.to_string(),
        ]
    });
    let header = [
        "configuration",
        "grid point",
        "validation accuracy",
        "chosen",
    ];
    doc.table(&header, rows.collect());
}

/// Each random stream varied alone: its spread of test accuracy and share of the variance.
pub(crate) fn streams_table(summary: &StudySummary, doc: &mut Doc) {
    let header = [
        "configuration",
        "stream varied",
        "seeds",
        "sd of test accuracy",
        "95% CI",
        "share of the variance",
    ];
    let rows = summary.streams.iter().map(|r| {
        vec![
            format!("`{}`", r.config),
            r.stream
                .clone()
                .unwrap_or_else(|| "all (for comparison)".into()),
            r.seeds.to_string(),
            format!("{:.3} points", 100.0 * r.sd),
            format!("{:.3} to {:.3}", 100.0 * r.sd_low, 100.0 * r.sd_high),
            r.share.map_or("-".into(), |s| format!("{:.0}%", 100.0 * s)),
        ]
    });
    doc.table(&header, rows.collect());
}
