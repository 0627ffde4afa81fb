//! The per-step instruments of a run or a study (`instruments.csv`), drawn over training:
//! one panel per quantity, two panels a figure, each configuration's median over its seeds
//! with a band from the lowest to the highest seed, as the epoch curves.
//!
//! Runs of different optimizers take different numbers of steps an epoch (one for full-batch
//! gradient descent, one per image for per-sample SGD), so the horizontal axis is the epoch,
//! fractional: step s of a run with S steps an epoch is at s / S. Each run's rows are averaged
//! in [`BINS`] equal spans of that axis before the seeds are compared, so a configuration that
//! records thousands of steps is drawn as legibly as one that records three. The gradient
//! noise scale of a span is the ratio of its means, mean tr(Sigma) / mean |G|^2 (unbiased),
//! as McCandlish et al. (2018) average it, not the mean of the noisy per-step ratios.

use std::path::Path;

use super::ReportError;
use super::draw::{Axis, Curve, Curves, render};
use super::load::Run;
use super::numbers::three_digits;
use crate::doc::Doc;
use crate::optim::OptimizerName;
use crate::train::instruments::INSTRUMENTS;
use crate::train::run;

/// Spans of the horizontal axis each run's rows are averaged over.
pub const BINS: usize = 60;

/// One run's instruments: its columns, and its rows with the fractional epoch in front; its
/// optimizer and batch size (0: the whole training set).
struct Recorded {
    header: Vec<String>,
    rows: Vec<(f64, Vec<f64>)>,
    optimizer: OptimizerName,
    batch: usize,
}

impl Recorded {
    /// Column `name`'s values with their rows' fractional epochs and epochs, where finite.
    fn column(&self, name: &str) -> Vec<(f64, usize, f64)> {
        let Some(c) = self.header.iter().position(|h| h == name) else {
            return Vec::new();
        };
        (self.rows.iter())
            .filter(|(_, r)| r[c].is_finite())
            .map(|(x, r)| (*x, r[0] as usize, r[c]))
            .collect()
    }
}

/// Reads `instruments.csv` of the run in `dir`, if it recorded one.
fn read(dir: &Path) -> Result<Option<Recorded>, ReportError> {
    let path = dir.join(INSTRUMENTS);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let bad = |why: String| ReportError::Invalid(format!("{}: {why}", path.display()));
    let config = run::read_config(dir)?;
    let images = run::read_data_info(dir)
        .map_err(|e| bad(e.to_string()))?
        .train_images;
    let train = images.saturating_sub(config.data.valid_size).max(1);
    // Batch size 0 is the whole training set (full-batch gradient descent): a step an epoch.
    let steps = match config.batch_size {
        0 => 1.0,
        b => train.div_ceil(b) as f64,
    };
    let mut lines = text.lines();
    let header: Vec<String> = (lines.next().unwrap_or(""))
        .split(',')
        .map(String::from)
        .collect();
    let mut rows = Vec::new();
    for line in lines {
        let row: Vec<f64> = (line.split(',').map(str::parse))
            .collect::<Result<_, _>>()
            .map_err(|e| bad(format!("{e} in '{line}'")))?;
        if row.len() != header.len() || row.len() < 2 {
            return Err(bad(format!(
                "a row of {} values under {} columns",
                row.len(),
                header.len()
            )));
        }
        rows.push((row[1] / steps, row));
    }
    Ok(Some(Recorded {
        header,
        rows,
        optimizer: config.optimizer.name,
        batch: config.batch_size,
    }))
}

/// What a panel draws: its title, axis and how a span's value is made from its rows.
struct Quantity {
    title: &'static str,
    desc: &'static str,
    log: bool,
    value: Value,
}

enum Value {
    /// The mean of a column.
    Column(&'static str),
    /// The mean of one column over the mean of another.
    Ratio(&'static str, &'static str),
    /// lr times the sharpness over 2: 1 is the edge of stability.
    Stability,
    /// The mean over the columns named with this prefix (one per layer).
    Layers(&'static str),
}

impl Value {
    /// The positions in `header` of the columns the value is made of, if it has them all.
    fn columns(&self, header: &[String]) -> Option<Vec<usize>> {
        let at = |c: &str| header.iter().position(|h| h == c);
        match self {
            Value::Column(c) => Some(vec![at(c)?]),
            Value::Ratio(a, b) => Some(vec![at(a)?, at(b)?]),
            Value::Stability => Some(vec![at("lr")?, at("sharpness")?]),
            Value::Layers(prefix) => {
                let found: Vec<usize> = (header.iter().enumerate())
                    .filter(|(_, h)| h.starts_with(prefix))
                    .map(|(i, _)| i)
                    .collect();
                (!found.is_empty()).then_some(found)
            }
        }
    }

    /// The span's value from the means of its rows' columns (in [`Value::columns`]' order).
    fn of(&self, means: &[f64]) -> f64 {
        match self {
            Value::Column(_) => means[0],
            Value::Ratio(..) => means[0] / means[1],
            Value::Stability => means[0] * means[1] / 2.0,
            Value::Layers(_) => means.iter().sum::<f64>() / means.len() as f64,
        }
    }
}

/// The figures: pairs of quantities, each drawn where the runs recorded it.
fn figures() -> Vec<(&'static str, &'static str, [Quantity; 2])> {
    let q = |title, desc, log, value| Quantity {
        title,
        desc,
        log,
        value,
    };
    vec![
        (
            "instruments-gradient",
            "The mini-batch loss and the norm of its gradient at each recorded step",
            [
                q(
                    "mini-batch loss",
                    "loss (log scale)",
                    true,
                    Value::Column("loss"),
                ),
                q(
                    "gradient norm",
                    "|G| (log scale)",
                    true,
                    Value::Column("grad_norm"),
                ),
            ],
        ),
        (
            "instruments-weights",
            "How far the weights have moved from their initial values, and how long the \
             weight vector is",
            [
                q(
                    "distance from the initial weights",
                    "|w - w0| (log scale)",
                    true,
                    Value::Column("distance_from_init"),
                ),
                q("parameter norm", "|w|", false, Value::Column("param_norm")),
            ],
        ),
        (
            "instruments-units",
            "The update-to-weight ratio |w_after - w_before| / |w_before| and the fraction of \
             ReLU units zero for every sample of the batch (dead for it), each the mean over \
             the network's layers",
            [
                q(
                    "update-to-weight ratio",
                    "mean over layers (log scale)",
                    true,
                    Value::Layers("update_ratio/"),
                ),
                q(
                    "dead ReLU units",
                    "fraction, mean over ReLU layers",
                    false,
                    Value::Layers("dead/"),
                ),
            ],
        ),
        (
            "instruments-noise",
            "The gradient noise scale tr(Sigma) / |G|^2 (McCandlish et al. 2018: the batch size \
             above which larger batches stop paying; each span's ratio of means), and the \
             signal-to-noise test of Byrd et al. (2012): the norm test's theta, below 1 where the \
             batch's gradient points in a descent direction with high probability",
            [
                q(
                    "gradient noise scale",
                    "samples (log scale)",
                    true,
                    Value::Ratio("trace_covariance", "true_grad_sq"),
                ),
                q(
                    "norm test",
                    "theta (log scale)",
                    true,
                    Value::Column("norm_test"),
                ),
            ],
        ),
        (
            "instruments-samples",
            "The mean norm of the per-sample gradients, against the variance of the mini-batch \
             gradient tr(Sigma) / B",
            [
                q(
                    "per-sample gradient norm",
                    "mean |g_n| (log scale)",
                    true,
                    Value::Column("sample_grad_norm"),
                ),
                q(
                    "mini-batch gradient variance",
                    "tr(Sigma) / B (log scale)",
                    true,
                    Value::Column("grad_variance"),
                ),
            ],
        ),
        (
            "instruments-gauss-newton",
            "The trace of the Gauss–Newton matrix (the sum of its eigenvalues; exact, one backward \
             pass per class), and the sharpness's share of it: near 1 where one direction holds \
             nearly all the curvature",
            [
                q(
                    "Gauss–Newton trace",
                    "trace (log scale)",
                    true,
                    Value::Column("gauss_newton_trace"),
                ),
                q(
                    "sharpness / Gauss–Newton trace",
                    "ratio (log scale)",
                    true,
                    Value::Ratio("sharpness", "gauss_newton_trace"),
                ),
            ],
        ),
        (
            "instruments-curvature",
            "The sharpness (the largest eigenvalue of the mini-batch loss's Hessian) and lr x \
             sharpness / 2: plain gradient descent's step is stable along the sharpest direction \
             only below 1, the edge of stability of Cohen et al. (2021). For momentum the \
             threshold is higher ((2 + 2 momentum) / lr), and for the adaptive methods (AdaGrad, \
             AdaDelta, RMSprop, Adam) the step is divided per weight, so their raw lr x \
             sharpness / 2 is not their threshold; per-sample SGD's batch is one sample",
            [
                q(
                    "sharpness",
                    "largest eigenvalue (log scale)",
                    true,
                    Value::Column("sharpness"),
                ),
                q(
                    "lr x sharpness / 2",
                    "(log scale; 1 = edge of stability)",
                    true,
                    Value::Stability,
                ),
            ],
        ),
    ]
}

/// One run's spans for `value`: (centre, value) where the span has rows with finite values
/// (and, on a log axis, a positive value: the noise scale's estimate is negative where the
/// batch cannot tell the gradient from its noise).
fn spans(r: &Recorded, value: &Value, end: f64, log: bool) -> Option<Vec<(f64, f64)>> {
    let columns = value.columns(&r.header)?;
    let mut sums = vec![(vec![0.0; columns.len()], 0usize); BINS];
    for (x, row) in &r.rows {
        let values: Vec<f64> = columns.iter().map(|&c| row[c]).collect();
        if values.iter().any(|v| !v.is_finite()) {
            continue;
        }
        let bin = ((x / end * BINS as f64).ceil() as usize).clamp(1, BINS) - 1;
        for (s, v) in sums[bin].0.iter_mut().zip(&values) {
            *s += v;
        }
        sums[bin].1 += 1;
    }
    let out: Vec<(f64, f64)> = (sums.iter().enumerate())
        .filter(|(_, (_, n))| *n > 0)
        .map(|(b, (s, n))| {
            let means: Vec<f64> = s.iter().map(|v| v / *n as f64).collect();
            ((b as f64 + 0.5) * end / BINS as f64, value.of(&means))
        })
        .filter(|(_, v)| !log || *v > 0.0)
        .collect();
    (!out.is_empty()).then_some(out)
}

/// A configuration's curve of `value`: at each span all its seeds recorded, the median over
/// them and the lowest and highest.
fn curve(name: &str, color: usize, runs: &[&Recorded], q: &Quantity, end: f64) -> Option<Curve> {
    let spans = |r: &&Recorded| spans(r, &q.value, end, q.log);
    let per_run: Vec<Vec<(f64, f64)>> = runs.iter().filter_map(spans).collect();
    if per_run.is_empty() {
        return None;
    }
    let mut c = Curve::new(name, color);
    for &(x, _) in &per_run[0] {
        let at: Vec<f64> = (per_run.iter())
            .filter_map(|r| r.iter().find(|(rx, _)| *rx == x).map(|p| p.1))
            .collect();
        if at.len() < per_run.len() {
            continue;
        }
        c.epochs.push(x);
        c.low.push(at.iter().copied().fold(f64::INFINITY, f64::min));
        c.high
            .push(at.iter().copied().fold(f64::NEG_INFINITY, f64::max));
        c.mean.push(median(at).expect("a value per seed"));
    }
    (!c.epochs.is_empty()).then_some(c)
}

/// A range covering every curve's band (positive values on a log axis).
fn range(curves: &[Curve], log: bool) -> (f64, f64) {
    let values = || {
        (curves.iter())
            .flat_map(|c| c.low.iter().chain(&c.high).copied())
            .filter(|v| v.is_finite() && (!log || *v > 0.0))
    };
    let lo = values().fold(f64::INFINITY, f64::min);
    let hi = values().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return if log { (0.1, 10.0) } else { (0.0, 1.0) };
    }
    if log {
        // At most five decades: far smaller values (one sample's curvature) sit on the floor.
        let (lo, hi) = (lo * 0.8, hi * 1.25);
        (lo.min(hi / 10.0).max(hi / 1e5), hi)
    } else {
        let pad = ((hi - lo) * 0.08).max(1e-9);
        (lo - pad, hi + pad)
    }
}

/// The instruments section of a report: the figures of the groups of runs (name, colour,
/// runs) that recorded instruments. Writes nothing where none did.
pub(crate) fn instrument_figures(
    groups: &[(String, usize, Vec<&Run>)],
    doc: &mut Doc,
) -> Result<(), ReportError> {
    let mut recorded: Vec<(&str, usize, Vec<Recorded>)> = Vec::new();
    for (name, color, runs) in groups {
        let mut rs = Vec::new();
        for r in runs {
            if let Some(rec) = read(&r.dir)? {
                rs.push(rec);
            }
        }
        if !rs.is_empty() {
            recorded.push((name, *color, rs));
        }
    }
    if recorded.is_empty() {
        return Ok(());
    }
    let end = (recorded.iter())
        .flat_map(|(_, _, rs)| rs.iter().flat_map(|r| r.rows.last().map(|(x, _)| x.ceil())))
        .fold(1.0f64, f64::max);
    let seeds = recorded.iter().map(|g| g.2.len()).max().unwrap_or(1);
    let over = if seeds > 1 {
        "median over seeds, bands from the lowest to the highest seed"
    } else {
        "one seed"
    };
    doc.heading(2, "Instruments");
    doc.paragraph(format!(
        "Per-step instruments (`instruments.csv`), recorded every K steps, drawn against the \
         epoch (step / steps an epoch), each run's rows averaged over {BINS} equal spans of \
         training; {over}. On a log axis, spans whose value is not positive are left out."
    ));
    findings(&recorded, doc);
    for (file, caption, quantities) in figures() {
        let panels: Vec<Vec<Curve>> = (quantities.iter())
            .map(|q| {
                (recorded.iter())
                    .filter_map(|(n, c, rs)| {
                        let runs: Vec<&Recorded> = rs.iter().collect();
                        curve(n, *c, &runs, q, end)
                    })
                    .collect()
            })
            .collect();
        if panels.iter().all(Vec::is_empty) {
            continue;
        }
        let missing: Vec<&str> = (quantities.iter().zip(&panels))
            .filter(|(_, p)| p.is_empty())
            .map(|(q, _)| q.title)
            .collect();
        let missing = if missing.is_empty() {
            String::new()
        } else {
            format!(
                " Not recorded by these runs, so not drawn: {}.",
                missing.join(", ")
            )
        };
        let axes = [0, 1].map(|i| Axis {
            desc: quantities[i].desc.into(),
            range: range(&panels[i], quantities[i].log),
            log: quantities[i].log,
        });
        let [left, right]: [Vec<Curve>; 2] = panels.try_into().expect("two panels");
        let figure = Curves {
            titles: [quantities[0].title.into(), quantities[1].title.into()],
            axes,
            panels: [left, right],
            x_desc: "epoch",
            legend_low: false,
        };
        doc.figure(render(
            file,
            format!("{caption}; {over}.{missing}"),
            &figure,
        )?);
    }
    Ok(())
}

/// The median of `v`, if it has values.
fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// What the recorded instruments show, in sentences computed from them: the gradient noise
/// scale over training against the batch size; for plain gradient steps, whether lr x
/// sharpness / 2 reaches the edge of stability and what it does after; the sharpness's spread
/// at the end.
fn findings(recorded: &[(&str, usize, Vec<Recorded>)], doc: &mut Doc) {
    let mut said = Vec::new();
    // The noise scale, each epoch's ratio of means, median over seeds.
    let epochs = (recorded.iter())
        .flat_map(|(_, _, rs)| {
            rs.iter()
                .flat_map(|r| r.rows.last().map(|(_, row)| row[0] as usize))
        })
        .max()
        .unwrap_or(0);
    let noise_at = |rs: &[Recorded], epoch: usize| -> Option<f64> {
        let per_run = rs.iter().filter_map(|r| {
            let (t, g) = (r.column("trace_covariance"), r.column("true_grad_sq"));
            let at = |c: &[(f64, usize, f64)]| -> f64 {
                c.iter().filter(|(_, e, _)| *e == epoch).map(|p| p.2).sum()
            };
            let ratio = at(&t) / at(&g);
            (ratio.is_finite() && ratio > 0.0).then_some(ratio)
        });
        median(per_run.collect())
    };
    let batches: Vec<usize> = (recorded.iter())
        .filter(|(_, _, rs)| noise_at(rs, 1).is_some())
        .map(|(_, _, rs)| rs[0].batch)
        .collect();
    if epochs > 1 && !batches.is_empty() {
        let spread = |epoch: usize| {
            let v: Vec<f64> = (recorded.iter())
                .filter_map(|(_, _, rs)| noise_at(rs, epoch))
                .collect();
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (lo, hi)
        };
        let ((lo1, hi1), (lo, hi)) = (spread(1), spread(epochs));
        let batch = batches.iter().copied().max().unwrap_or(0);
        let same = batches.iter().all(|&b| b == batch);
        let against = if same && lo1 > batch as f64 {
            format!(
                ", every one above the batch of {batch} from the first epoch on: in McCandlish \
                 et al.'s model, below the noise scale a batch twice as large needs nearly half \
                 the steps, so at {batch} the steps are limited by the gradient's noise"
            )
        } else if same {
            format!(", against batches of {batch}")
        } else {
            String::new()
        };
        said.push(format!(
            "The gradient noise scale tr(Sigma) / |G|^2 (each epoch's ratio of means, median \
             over seeds) went from {}–{} samples in the first epoch to {}–{} in epoch {epochs} \
             across the {} configurations with more than one sample a batch{against}.",
            three_digits(lo1),
            three_digits(hi1),
            three_digits(lo),
            three_digits(hi),
            batches.len()
        ));
    }
    // The edge of stability, for plain gradient steps (no momentum, no per-weight scaling).
    for (name, _, rs) in recorded {
        if !matches!(
            rs[0].optimizer,
            OptimizerName::Gd | OptimizerName::MinibatchSgd
        ) {
            continue;
        }
        let mut first = Vec::new();
        let mut after = Vec::new();
        let mut largest: f64 = 0.0;
        for r in rs {
            let stability: Vec<(f64, f64)> = (Value::Stability.columns(&r.header))
                .map(|at| {
                    (r.rows.iter())
                        .map(|(x, row)| (*x, Value::Stability.of(&[row[at[0]], row[at[1]]])))
                        .filter(|p| p.1.is_finite())
                        .collect()
                })
                .unwrap_or_default();
            largest = stability.iter().map(|p| p.1).fold(largest, f64::max);
            if let Some(i) = stability.iter().position(|p| p.1 >= 1.0) {
                first.push(stability[i].0);
                after.extend(stability[i..].iter().map(|p| p.1));
            }
        }
        if stability_missing(rs) {
            continue;
        }
        let what = match rs[0].optimizer {
            OptimizerName::Gd => "full-batch gradient descent",
            _ => "mini-batch SGD",
        };
        if first.len() < rs.len() {
            said.push(format!(
                "`{name}` ({what}): lr x sharpness / 2 stayed below 1 in {} of its {} runs \
                 (largest {}): stable along its sharpest direction.",
                rs.len() - first.len(),
                rs.len(),
                three_digits(largest)
            ));
            continue;
        }
        let at_or_above = after.iter().filter(|&&v| v >= 1.0).count() as f64 / after.len() as f64;
        let mid = median(after).unwrap_or(f64::NAN);
        let first = median(first).unwrap_or(f64::NAN);
        let verdict = if mid >= 0.5 {
            "it hovers at the edge of stability instead of staying below it"
        } else {
            "then falls far below it: the sharpness collapsed"
        };
        said.push(format!(
            "`{name}` ({what}): lr x sharpness / 2 first reached 1 at epoch {} (median over \
             seeds), and from there its median was {} with {:.0}% of recorded steps at or above \
             1: {verdict}.",
            three_digits(first),
            three_digits(mid),
            100.0 * at_or_above
        ));
    }
    // The sharpness and the dead units at the end, among configurations with more than one
    // sample a step (one sample's loss has a curvature of its own, and a unit silent for one
    // sample is not dead).
    let spreads = [
        (
            Value::Column("sharpness"),
            "the sharpness (median of the epoch's recorded steps, then over seeds)",
        ),
        (
            Value::Layers("dead/"),
            "the fraction of ReLU units zero for a whole batch (mean over layers; median of the \
             epoch's recorded steps, then over seeds)",
        ),
    ];
    for (value, what) in spreads {
        let last: Vec<(&str, f64)> = (recorded.iter())
            .filter(|(_, _, rs)| rs[0].batch != 1)
            .filter_map(|(name, _, rs)| {
                let per_run = rs.iter().filter_map(|r| {
                    let at = value.columns(&r.header)?;
                    let v: Vec<f64> = (r.rows.iter())
                        .filter(|(_, row)| row[0] as usize == epochs)
                        .map(|(_, row)| value.of(&at.iter().map(|&c| row[c]).collect::<Vec<_>>()))
                        .filter(|v| v.is_finite())
                        .collect();
                    median(v)
                });
                Some((*name, median(per_run.collect())?))
            })
            .collect();
        if last.len() > 1 {
            let lo = last.iter().min_by(|a, b| a.1.total_cmp(&b.1)).expect("two");
            let hi = last.iter().max_by(|a, b| a.1.total_cmp(&b.1)).expect("two");
            said.push(format!(
                "In epoch {epochs} {what} ranged from {} (`{}`) to {} (`{}`) among the \
                 configurations with more than one sample a step.",
                three_digits(lo.1),
                lo.0,
                three_digits(hi.1),
                hi.0
            ));
        }
    }
    if !said.is_empty() {
        doc.paragraph(said.join(" "));
    }
}

/// Whether no run of `rs` recorded the sharpness.
fn stability_missing(rs: &[Recorded]) -> bool {
    rs.iter().all(|r| r.column("sharpness").is_empty())
}
