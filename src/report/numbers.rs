//! Numbers as the report and the summary write them: percentages, points, intervals,
//! p-values and power, one formatter each (counts with thousands separators are
//! [`crate::format::thousands`]).

use crate::stats::Estimate;
use crate::study::summary::Power;

/// A number with about three significant digits (percentages, seconds, the instruments'
/// values): no decimal from 100 up, one from 10, two below.
pub fn three_digits(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A fraction as a percentage with two decimals.
pub fn pct(v: f64) -> String {
    format!("{:.2}%", 100.0 * v)
}

/// A mean accuracy with its 95% confidence interval, as percentages. The t-interval of a
/// bounded quantity can reach past 0 or 100% with few seeds; it is shown clipped.
pub fn pct_ci(e: &Estimate) -> String {
    if e.ci95.is_finite() {
        format!(
            "{} (95% CI {} to {}, {} seeds)",
            pct(e.mean),
            pct(e.low().max(0.0)),
            pct(e.high().min(1.0)),
            e.n
        )
    } else {
        format!("{} ({} seed, no interval)", pct(e.mean), e.n)
    }
}

/// A difference of fractions in percentage points, signed.
pub fn points(v: f64) -> String {
    format!("{:+.2} points", 100.0 * v)
}

/// [`points`] with three decimals where an interval's half-width `half` is below 0.1 points,
/// so that narrow intervals keep their digits.
pub fn points_within(v: f64, half: f64) -> String {
    let digits = if half < 0.001 { 3 } else { 2 };
    format!("{:+.*} points", digits, 100.0 * v)
}

/// A p-value as a comparison: "= 0.026", or "< 0.001".
pub fn p_value(p: f64) -> String {
    match p_cell(p) {
        cell if p < 0.001 => cell,
        cell => format!("= {cell}"),
    }
}

/// A p-value for a table cell: three decimals, or "< 0.001".
pub fn p_cell(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".into()
    } else {
        format!("{p:.3}")
    }
}

/// A 95% prediction interval of one run, as percentages.
pub fn pct_prediction(e: &Estimate) -> String {
    match e.prediction() {
        Some((low, high)) => format!("{} to {}", pct(low.max(0.0)), pct(high.min(1.0))),
        None => "-".into(),
    }
}

/// A mean accuracy ± its 95% half-width for a table cell, or "–" without runs.
pub fn pct_cell(e: &Option<Estimate>) -> String {
    match e {
        Some(e) if e.n > 1 => format!("{:.2}% ± {:.2}", 100.0 * e.mean, 100.0 * e.ci95),
        Some(e) => format!("{:.2}%", 100.0 * e.mean),
        None => "–".into(),
    }
}

/// A mean ± its 95% half-width with `digits` decimals for a table cell, or "–".
pub fn num_cell(e: &Option<Estimate>, digits: usize) -> String {
    match e {
        Some(e) if e.n > 1 => format!("{:.*} ± {:.*}", digits, e.mean, digits, e.ci95),
        Some(e) => format!("{:.*}", digits, e.mean),
        None => "–".into(),
    }
}

/// An interval `mean` ± `half` (fractions) as a table cell in points: `[-0.140, +0.200]`.
pub fn interval_cell(mean: f64, half: f64) -> String {
    format!(
        "[{:+.3}, {:+.3}]",
        100.0 * (mean - half),
        100.0 * (mean + half)
    )
}

/// A power figure's two cells: the detectable difference in points, and the seeds needed.
pub fn power_cells(power: Option<Power>) -> [String; 2] {
    match power {
        Some(p) if p.identical => ["identical on every seed".into(), "–".into()],
        Some(p) => [
            format!("{:.3} points", 100.0 * p.detectable),
            p.seeds_needed
                .map_or("over 100,000".into(), |n| n.to_string()),
        ],
        None => ["–".into(), "–".into()],
    }
}

/// "yes" or "no".
pub fn yes_no(yes: bool) -> String {
    if yes { "yes" } else { "no" }.to_string()
}
