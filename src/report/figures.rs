//! Every figure of a report: the data each shows, made from the results, and its caption;
//! [`super::draw`] draws them.

use std::path::Path;

use super::ReportError;
use super::draw::{Axis, Curve, Curves, DotPanel, DotPlot, Interval, Lines, Series, render};
use super::load::Run;
use super::numbers::pct;
use crate::doc::{Doc, Figure};
use crate::stats::{Estimate, letter_groups};
use crate::study::summary::StudySummary;
use crate::study::{Chosen, RunSpec, StudyFile, finished};
use crate::train::metrics::{EpochMetrics, Status};

/// Mean, min and max over runs of one metric, epoch by epoch (over the epochs every run has).
pub(crate) fn curve(
    name: &str,
    color: usize,
    runs: &[&Run],
    metric: fn(&EpochMetrics) -> f64,
) -> Curve {
    let epochs = runs.iter().map(|r| r.metrics.len()).min().unwrap_or(0);
    let mut c = Curve::new(name, color);
    for e in 0..epochs {
        let values: Vec<f64> = runs.iter().map(|r| metric(&r.metrics[e])).collect();
        c.epochs.push(runs[0].metrics[e].epoch as f64);
        c.mean
            .push(values.iter().sum::<f64>() / values.len() as f64);
        c.low
            .push(values.iter().copied().fold(f64::INFINITY, f64::min));
        c.high
            .push(values.iter().copied().fold(f64::NEG_INFINITY, f64::max));
    }
    c
}

/// Loss and accuracy figures for a set of named groups of runs. Groups whose final
/// validation accuracy is far below the others' are left out of the accuracy axis (and named
/// in the caption) so they do not flatten everyone else's curves.
pub(crate) fn curve_figures(
    groups: &[(String, usize, Vec<&Run>)],
    doc: &mut Doc,
) -> Result<(), ReportError> {
    // Groups with at least one finished epoch in every run (a run that diverged in its first
    // epoch has none).
    let groups: Vec<&(String, usize, Vec<&Run>)> = groups
        .iter()
        .filter(|g| !g.2.is_empty() && g.2.iter().all(|r| !r.metrics.is_empty()))
        .collect();
    if groups.is_empty() {
        doc.paragraph("No epoch finished, so there are no curves to draw.");
        return Ok(());
    }
    let validated = |r: &&Run| r.metrics.iter().all(|m| m.valid_loss.is_some());
    let (groups, unvalidated): (Vec<_>, Vec<_>) =
        (groups.into_iter()).partition(|g| g.2.iter().all(validated));
    if groups.is_empty() {
        doc.paragraph(
            "These runs have no validation split (`--valid-size 0`), so there are no \
             validation curves; metrics.csv has the training loss and accuracy per epoch.",
        );
        return Ok(());
    }
    if !unvalidated.is_empty() {
        let names: Vec<String> = unvalidated.iter().map(|g| format!("`{}`", g.0)).collect();
        doc.paragraph(format!(
            "Not drawn below, trained without a validation split (`valid_size = 0`): {}; \
             their metrics.csv has the training loss and accuracy per epoch.",
            names.join(", ")
        ));
    }
    let seeds = groups.iter().map(|g| g.2.len()).max().unwrap_or(1);
    let band = if seeds > 1 {
        "; bands span the lowest to the highest seed"
    } else {
        ""
    };
    doc.figure(loss_figure(&groups, band)?);
    doc.figure(accuracy_figure(&groups, band)?);
    Ok(())
}

type Group<'a> = (String, usize, Vec<&'a Run>);

/// Training and validation loss per epoch, on a log scale.
fn loss_figure(groups: &[&Group], band: &str) -> Result<Figure, ReportError> {
    let loss = |m: fn(&EpochMetrics) -> f64| -> Vec<Curve> {
        (groups.iter())
            .map(|(n, c, runs)| curve(n, *c, runs, m))
            .collect()
    };
    // Every run has validation figures (checked by the caller).
    let (train_loss, valid_loss) = (
        loss(|m| m.train_loss),
        loss(|m| m.valid_loss.unwrap_or(f64::NAN)),
    );
    let all = train_loss.iter().chain(&valid_loss);
    let lowest = (all.clone())
        .flat_map(|c| c.low.iter().copied())
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let highest = all
        .flat_map(|c| c.high.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let loss_fig = Curves::shared(
        ["training loss".into(), "validation loss".into()],
        Axis {
            desc: "cross-entropy (log scale)".into(),
            range: log_range(lowest, highest),
            log: true,
        },
        [train_loss, valid_loss],
        false,
    );
    render(
        "loss",
        format!(
            "Loss per epoch: training (mean over the epoch's batches, before each update) and \
             validation (after the epoch), mean over seeds{band}."
        ),
        &loss_fig,
    )
}

/// Training and validation accuracy per epoch. Groups whose final validation accuracy is
/// more than 10 points below the median group's are left out (and named in the caption).
fn accuracy_figure(groups: &[&Group], band: &str) -> Result<Figure, ReportError> {
    let percent = |m: fn(&EpochMetrics) -> f64| -> Vec<Curve> {
        (groups.iter())
            .map(|(n, c, runs)| {
                let mut cu = curve(n, *c, runs, m);
                for v in cu.mean.iter_mut().chain(&mut cu.low).chain(&mut cu.high) {
                    *v *= 100.0;
                }
                cu
            })
            .collect()
    };
    let (train_acc, valid_acc) = (
        percent(|m| m.train_accuracy),
        percent(|m| m.valid_accuracy.unwrap_or(f64::NAN)),
    );
    let finals: Vec<f64> = (valid_acc.iter())
        .map(|c| c.mean.last().copied().unwrap_or(0.0))
        .collect();
    let mut sorted = finals.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let keep: Vec<bool> = finals.iter().map(|&f| f >= median - 10.0).collect();
    let left_out: Vec<String> = (valid_acc.iter().zip(&keep))
        .filter(|(_, k)| !**k)
        .map(|(c, _)| {
            let last = c.mean.last().unwrap_or(&0.0);
            format!("{} ({last:.1}% final validation accuracy)", c.name)
        })
        .collect();
    let pick = |curves: Vec<Curve>| -> Vec<Curve> {
        (curves.into_iter().zip(&keep))
            .filter(|(_, k)| **k)
            .map(|(c, _)| c)
            .collect()
    };
    let (train_acc, valid_acc) = (pick(train_acc), pick(valid_acc));
    let lowest = (train_acc.iter().chain(&valid_acc))
        .flat_map(|c| c.low.iter().copied())
        .fold(100.0f64, f64::min);
    let acc_fig = Curves::shared(
        ["training accuracy".into(), "validation accuracy".into()],
        Axis {
            desc: "accuracy (%)".into(),
            range: ((lowest - 0.5).floor().max(0.0), 100.0),
            log: false,
        },
        [train_acc, valid_acc],
        true,
    );
    let mut caption = format!("Accuracy per epoch, mean over seeds{band}.");
    if !left_out.is_empty() {
        caption += &format!(" Off this scale and not drawn: {}.", left_out.join(", "));
    }
    render("accuracy", caption, &acc_fig)
}

/// A log-scale loss axis covering `lowest ..= highest` (finite, positive), capped at 3 (above
/// chance level, ln 10 = 2.3, curves are off the chart anyway).
pub(crate) fn log_range(lowest: f64, highest: f64) -> (f64, f64) {
    let hi = if highest.is_finite() {
        (highest * 1.25).clamp(0.05, 3.0)
    } else {
        3.0
    };
    let lo = if lowest.is_finite() {
        (lowest * 0.8).max(1e-4)
    } else {
        1e-2
    };
    (lo.min(hi / 10.0), hi)
}

/// An axis range for intervals, leaving out far-below outliers (drawn as "off scale").
pub(crate) fn interval_range(rows: &[Interval]) -> (f64, f64) {
    let mut means: Vec<f64> = rows
        .iter()
        .map(|r| r.mean)
        .filter(|m| m.is_finite())
        .collect();
    if means.is_empty() {
        return (0.0, 1.0);
    }
    means.sort_by(f64::total_cmp);
    let median = means[means.len() / 2];
    let spread = (means[means.len() - 1] - median).abs().max(1e-9);
    let kept: Vec<&Interval> = rows
        .iter()
        .filter(|r| r.mean.is_finite() && r.mean >= median - 10.0 * spread.max(0.5))
        .collect();
    let lo = kept
        .iter()
        .map(|r| r.low.min(r.mean))
        .fold(f64::INFINITY, f64::min);
    let hi = kept
        .iter()
        .map(|r| r.high.max(r.mean))
        .fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.08).max(0.05);
    (lo - pad, hi + pad)
}

pub(crate) fn test_accuracy_figure(
    summary: &StudySummary,
    color_of: &impl Fn(&str) -> usize,
    doc: &mut Doc,
) -> Result<(), ReportError> {
    let mut with: Vec<(&str, Estimate, bool)> = summary
        .configs
        .iter()
        .filter_map(|c| Some((c.name.as_str(), c.test_accuracy?, c.tied_with_best)))
        .collect();
    if with.is_empty() {
        return Ok(());
    }
    with.sort_by(|a, b| b.1.mean.total_cmp(&a.1.mean));
    let significant = |a: &str, b: &str| {
        summary
            .pairs
            .iter()
            .any(|p| ((p.a == a && p.b == b) || (p.a == b && p.b == a)) && p.significant)
    };
    let letters = letter_groups(with.len(), |i, j| significant(with[i].0, with[j].0));
    let rows: Vec<Interval> = with
        .iter()
        .zip(&letters)
        .map(|((name, e, tied), letters)| Interval {
            name: name.to_string(),
            mean: 100.0 * e.mean,
            low: 100.0 * if e.ci95.is_finite() { e.low() } else { e.mean },
            high: 100.0 * if e.ci95.is_finite() { e.high() } else { e.mean },
            highlight: *tied,
            color: color_of(name),
            note: letters.clone(),
        })
        .collect();
    let x_range = interval_range(&rows);
    doc.figure(render(
        "test-accuracy",
        format!(
            "Final test accuracy per configuration: mean over seeds with its 95% confidence \
             interval, best on top. Filled, coloured points are not shown different from the best \
             ({}: the comparisons with the best, paired over shared seeds, Holm-corrected, 5%); \
             configurations that share a letter are not significantly different from each other \
             (Welch, Holm-corrected over all pairs, 5%).",
            summary.best
        ),
        &DotPlot {
            panels: vec![DotPanel {
                title: "test accuracy".into(),
                x_desc: "test accuracy (%)".into(),
                rows,
                x_range,
            }],
        },
    )?);
    Ok(())
}

pub(crate) fn interaction_figure(
    summary: &StudySummary,
    study: &StudyFile,
    doc: &mut Doc,
) -> Result<(), ReportError> {
    let Some(f) = &summary.factorial else {
        return Ok(());
    };
    let cell_estimate = |cell: [u8; 2]| {
        let c = study.configs.iter().find(|c| c.cell == Some(cell))?;
        summary
            .configs
            .iter()
            .find(|s| s.name == c.name)?
            .test_accuracy
    };
    let mut series = Vec::new();
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for b in 0..2u8 {
        let mut points = Vec::new();
        for a in 0..2u8 {
            if let Some(e) = cell_estimate([a, b]) {
                let ci = e
                    .ci95
                    .is_finite()
                    .then(|| (100.0 * e.low(), 100.0 * e.high()));
                let (l, h) = ci.unwrap_or((100.0 * e.mean, 100.0 * e.mean));
                lo = lo.min(l);
                hi = hi.max(h);
                points.push((a as f64, 100.0 * e.mean, ci));
            }
        }
        series.push(Series {
            name: format!(
                "{} {}",
                if b == 1 { "with" } else { "without" },
                f.factors[1]
            ),
            color: if b == 1 { 1 } else { 0 },
            points,
            marked: None,
        });
    }
    if !lo.is_finite() {
        return Ok(());
    }
    let pad = ((hi - lo) * 0.15).max(0.05);
    doc.figure(render(
        "interaction",
        format!(
            "Interaction plot: mean test accuracy with 95% CI of each cell. Parallel lines mean \
             the effects of {} and {} add up; crossing or diverging lines mean they interact.",
            f.factors[0], f.factors[1]
        ),
        &Lines {
            title: format!("{} x {}", f.factors[0], f.factors[1]),
            x_desc: f.factors[0].clone(),
            y_desc: "test accuracy (%)".into(),
            series,
            x_range: (-0.25, 1.25),
            y_range: (lo - pad, hi + pad),
            log_x: false,
            x_names: Some([
                format!("without {}", f.factors[0]),
                format!("with {}", f.factors[0]),
            ]),
        },
    )?);
    Ok(())
}

pub(crate) fn lr_figure(
    study: &StudyFile,
    dir: &Path,
    tuning: &[RunSpec],
    chosen: &Chosen,
    color_of: &impl Fn(&str) -> usize,
    doc: &mut Doc,
) -> Result<(), ReportError> {
    let mut series = Vec::new();
    let mut diverged = 0;
    for c in &study.configs {
        let (mut by_lr, failed) = lr_points(dir, tuning, &c.name)?;
        diverged += failed;
        if by_lr.is_empty() {
            continue;
        }
        by_lr.sort_by(|a, b| a.0.total_cmp(&b.0));
        let marked = chosen
            .get(&c.name)
            .and_then(|p| p.iter().find(|(k, _)| k == "lr"))
            .and_then(|(_, lr)| by_lr.iter().find(|(l, _)| l == lr).copied());
        series.push(Series {
            name: c.name.clone(),
            color: color_of(&c.name),
            points: by_lr.iter().map(|&(x, y)| (x, y, None)).collect(),
            marked,
        });
    }
    if series.is_empty() {
        return Ok(());
    }
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (x0, x1) = xs.fold((f64::INFINITY, 0.0f64), |(a, b), x| (a.min(x), b.max(x)));
    let mut ys: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .collect();
    ys.sort_by(f64::total_cmp);
    // The lower quarter of the points sets the floor, so one failed rate does not flatten
    // the rest; lower points are drawn at the bottom edge.
    let floor = ys[ys.len() / 4].min(ys[ys.len() - 1] - 1.0);
    let lo = (floor - 1.0).floor().max(0.0);
    for s in &mut series {
        for p in &mut s.points {
            p.1 = p.1.max(lo);
        }
        if let Some(m) = &mut s.marked {
            m.1 = m.1.max(lo);
        }
    }
    let note = if diverged > 0 {
        format!(" {diverged} grid points diverged and are not drawn.")
    } else {
        String::new()
    };
    doc.figure(render(
        "lr-sensitivity",
        format!(
            "Learning-rate sensitivity from the tuning runs: validation accuracy at the end of \
             tuning against the learning rate (best over the other tuned hyperparameters), one \
             curve per configuration; the chosen rate is ringed. Points below {lo:.0}% are drawn \
             on the bottom edge.{note}"
        ),
        &Lines {
            title: "learning-rate sensitivity (validation split)".into(),
            x_desc: "learning rate (log scale)".into(),
            y_desc: "validation accuracy (%)".into(),
            series,
            x_range: (x0 / 1.5, x1 * 1.5),
            y_range: (lo, 100.0),
            log_x: true,
            x_names: None,
        },
    )?);
    Ok(())
}

/// A configuration's best validation accuracy (%) at each tuned learning rate, over the other
/// hyperparameters, and how many of its tuning runs diverged.
fn lr_points(
    dir: &Path,
    tuning: &[RunSpec],
    config: &str,
) -> Result<(Vec<(f64, f64)>, usize), ReportError> {
    let (mut by_lr, mut diverged): (Vec<(f64, f64)>, usize) = (Vec::new(), 0);
    for spec in tuning.iter().filter(|s| s.config == config) {
        let Some(lr) = spec.point.iter().find(|(k, _)| k == "lr").map(|p| p.1) else {
            continue;
        };
        let Some(s) = finished(dir, &spec.id)? else {
            continue;
        };
        let Some(acc) = (s.final_valid_accuracy).filter(|_| s.status == Status::Finished) else {
            diverged += 1;
            continue;
        };
        match by_lr.iter_mut().find(|(l, _)| *l == lr) {
            Some(entry) => entry.1 = entry.1.max(100.0 * acc),
            None => by_lr.push((lr, 100.0 * acc)),
        }
    }
    Ok((by_lr, diverged))
}

pub(crate) fn time_figure(
    summary: &StudySummary,
    color_of: &impl Fn(&str) -> usize,
    doc: &mut Doc,
) -> Result<(), ReportError> {
    let targets = summary.configs.first().map_or(0, |c| c.targets.len());
    let mut panels = Vec::new();
    for t in 0..targets {
        let target = summary.configs[0].targets[t].target;
        let mut rows: Vec<Interval> = summary
            .configs
            .iter()
            .map(|c| {
                let r = &c.targets[t];
                let e = r.seconds;
                Interval {
                    name: c.name.clone(),
                    mean: e.map_or(f64::NAN, |e| e.mean),
                    low: e.map_or(
                        f64::NAN,
                        |e| if e.ci95.is_finite() { e.low() } else { e.mean },
                    ),
                    high: e.map_or(
                        f64::NAN,
                        |e| if e.ci95.is_finite() { e.high() } else { e.mean },
                    ),
                    highlight: r.reached > 0,
                    color: color_of(&c.name),
                    note: if c.without_validation() {
                        "no validation".to_string()
                    } else {
                        format!("{}/{}", r.reached, c.runs)
                    },
                }
            })
            .collect();
        rows.sort_by(|a, b| match (a.mean.is_nan(), b.mean.is_nan()) {
            (false, false) => a.mean.total_cmp(&b.mean),
            (a, b) => a.cmp(&b),
        });
        let hi = rows
            .iter()
            .filter(|r| r.high.is_finite())
            .map(|r| r.high)
            .fold(0.0f64, f64::max);
        panels.push(DotPanel {
            title: format!("to {} validation accuracy", pct(target)),
            x_desc: "seconds of training (incl. validation)".into(),
            rows,
            x_range: (0.0, (hi * 1.1).max(1.0)),
        });
    }
    if panels.is_empty() {
        return Ok(());
    }
    doc.figure(render(
        "time-to-target",
        "Wall seconds until the validation accuracy first reached each target: mean with 95% CI \
         over the runs that reached it; the note gives how many runs did. Configurations that \
         never reached a target have no point. Seconds are of this machine; the epochs are in \
         the table above."
            .into(),
        &DotPlot { panels },
    )?);
    Ok(())
}
