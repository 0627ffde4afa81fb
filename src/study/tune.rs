//! Tuning: which grid point each configuration keeps, and, when the study asks for it
//! (`[tuning] extend = N`), grids extended outward while the choice sits at their edge.
//!
//! A tuned value at the largest (or smallest) value of its grid says only that the best value
//! may lie beyond it. With `extend = N`, such a value gets one more tuning run one step further
//! out — the other hyperparameters at their chosen values — and the choice is made again over
//! every run, up to N steps per hyperparameter. The step continues the grid's spacing at that
//! edge: geometric for positive values (lr 1e-3, 3e-3 → 9e-3), geometric in 1 - v upward for
//! decay factors and fractions (momentum 0.9, 0.95 → 0.975), arithmetic otherwise. A value the
//! hyperparameter cannot take ends the extension there, and the summary says so. Every
//! extension depends only on the finished tuning runs, so every shard plans the same ones.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Chosen, ConfigEntry, Phase, Point, RunSpec, StudyError, StudyFile, finished, run_id};
use crate::optim::hyper::{Hyper, Range};
use crate::train::metrics::{Status, Summary};

/// The tuning runs planned so far, and the choice once they are all finished and no grid
/// needs extending.
#[derive(Clone, Debug, Default)]
pub struct TuningPlan {
    /// The grids' runs, then every extension planned, in order.
    pub runs: Vec<RunSpec>,
    /// None while a planned run is unfinished.
    pub chosen: Option<Chosen>,
    /// Per configuration, its chosen values that sit at an edge of the values tried (for grids
    /// of three values or more), in words: `lr = 0.009 (the largest tried, after 1 extension)`.
    pub edges: BTreeMap<String, Vec<String>>,
    /// The finished tuning runs' results, by run ID: each run is read (and checked) once per
    /// plan, however many rounds of extensions the plan takes.
    pub results: BTreeMap<String, Summary>,
}

/// The values one hyperparameter of one configuration has been tried at.
#[derive(Clone, Debug)]
struct Tried {
    values: Vec<f64>,
    extensions: usize,
    /// Why it cannot be extended further, when a step outward is not a value it can take.
    blocked: Option<String>,
}

/// Which edge of a grid.
#[derive(Clone, Copy, PartialEq)]
enum Edge {
    Low,
    High,
}

/// The range of values a grid key may take: a hyperparameter's, or dropout's probability.
fn range_of(key: &str) -> Range {
    if key == "dropout" {
        return Range::Decay;
    }
    Hyper::find(key).map_or(Range::NonNegative, |h| h.range)
}

/// The next value outward from `edge` of `values` (three or more, distinct), continuing the
/// spacing of the two outermost values there.
fn outward(key: &str, values: &[f64], edge: Edge) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let (inner, outer) = match edge {
        Edge::High => (v[n - 2], v[n - 1]),
        Edge::Low => (v[1], v[0]),
    };
    let unit = matches!(range_of(key), Range::Decay | Range::Fraction);
    if edge == Edge::High && unit && outer < 1.0 {
        let (gi, go) = (1.0 - inner, 1.0 - outer);
        // 1 - gap, written with the gap's three significant digits: 0.9667, not 0.96666...7.
        let gap = round_significant(go * go / gi);
        let decimals = (2.0 - gap.log10().floor()).max(0.0) as usize;
        format!("{:.*}", decimals, 1.0 - gap)
            .parse()
            .unwrap_or(f64::NAN)
    } else if v[0] > 0.0 {
        round_significant(outer * outer / inner)
    } else {
        round_significant(outer + (outer - inner))
    }
}

/// `x` to three significant digits, so that extended grids read like typed ones (0.009, not
/// 0.009000000000000001).
fn round_significant(x: f64) -> f64 {
    format!("{x:.2e}").parse().unwrap_or(x)
}

/// Ranks finished tuning runs: higher final validation accuracy first, then lower validation
/// loss; diverged runs last. Returns, per tuned configuration, the chosen point, or None while
/// one of `specs` is unfinished. Runs not in `results` yet are read and added to it.
fn best_points(
    specs: &[RunSpec],
    dir: &Path,
    results: &mut BTreeMap<String, Summary>,
) -> Result<Option<Chosen>, StudyError> {
    let mut best: BTreeMap<String, (Point, f64, f64)> = BTreeMap::new();
    for spec in specs {
        if !results.contains_key(&spec.id) {
            let Some(summary) = finished(dir, &spec.id)? else {
                return Ok(None);
            };
            results.insert(spec.id.clone(), summary);
        }
        let summary = &results[&spec.id];
        let (acc, loss) = match summary.status {
            Status::Finished => (
                summary.final_valid_accuracy.unwrap_or(f64::NEG_INFINITY),
                summary.final_valid_loss.unwrap_or(f64::INFINITY),
            ),
            Status::Diverged { .. } => (f64::NEG_INFINITY, f64::INFINITY),
        };
        let better = match best.get(&spec.config) {
            None => true,
            Some((_, a, l)) => acc > *a || (acc == *a && loss < *l),
        };
        if better {
            best.insert(spec.config.clone(), (spec.point.clone(), acc, loss));
        }
    }
    Ok(Some(
        best.into_iter().map(|(k, (p, _, _))| (k, p)).collect(),
    ))
}

/// The edge of `tried` that `value` sits at, for grids of three values or more.
fn edge_of(tried: &[f64], value: f64) -> Option<Edge> {
    if tried.len() < 3 {
        return None;
    }
    let lowest = tried.iter().copied().fold(f64::INFINITY, f64::min);
    let highest = tried.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if value == highest {
        Some(Edge::High)
    } else if value == lowest {
        Some(Edge::Low)
    } else {
        None
    }
}

/// The tuning plan of the study in `dir`, from its finished runs.
pub fn tuning_plan(study: &StudyFile, dir: &Path) -> Result<TuningPlan, StudyError> {
    let mut runs = study.tuning_runs()?;
    let extend = study.tuning.as_ref().map_or(0, |t| t.extend);
    let mut tried: BTreeMap<(String, String), Tried> = BTreeMap::new();
    for c in &study.configs {
        for (key, values) in &c.grid {
            let t = Tried {
                values: values.clone(),
                extensions: 0,
                blocked: None,
            };
            tried.insert((c.name.clone(), key.clone()), t);
        }
    }
    let mut results = BTreeMap::new();
    loop {
        let Some(chosen) = best_points(&runs, dir, &mut results)? else {
            return Ok(TuningPlan {
                runs,
                results,
                ..TuningPlan::default()
            });
        };
        let mut added = false;
        for c in study.configs.iter().filter(|c| !c.grid.is_empty()) {
            let Some(point) = chosen.get(&c.name) else {
                continue;
            };
            for (key, value) in point {
                let t = tried
                    .get_mut(&(c.name.clone(), key.clone()))
                    .expect("every grid key is tracked");
                let Some(edge) = edge_of(&t.values, *value) else {
                    continue;
                };
                if t.extensions >= extend || t.blocked.is_some() {
                    continue;
                }
                let next = outward(key, &t.values, edge);
                if let Some(spec) = extension(study, c, point, key, next, t)
                    && !runs.iter().any(|r| r.id == spec.id)
                {
                    runs.push(spec);
                    added = true;
                }
            }
        }
        if !added {
            let edges = edges(&chosen, &tried, extend);
            return Ok(TuningPlan {
                runs,
                chosen: Some(chosen),
                edges,
                results,
            });
        }
    }
}

/// The tuning run of `point` with `key` moved out to `next`, recorded in `t`; None (with the
/// reason in `t`) when `key` cannot take that value.
fn extension(
    study: &StudyFile,
    c: &ConfigEntry,
    point: &Point,
    key: &str,
    next: f64,
    t: &mut Tried,
) -> Option<RunSpec> {
    let mut moved = point.clone();
    for (k, v) in moved.iter_mut() {
        if k == key {
            *v = next;
        }
    }
    let range = range_of(key);
    let train = if next.is_finite() && range.contains(next) {
        study.resolve(c, &moved, Phase::Tune, 0)
    } else {
        Err(format!("{key} takes {}", range.describe()))
    };
    match train {
        Ok(train) => {
            t.values.push(next);
            t.extensions += 1;
            Some(RunSpec {
                id: run_id(&train),
                config: c.name.clone(),
                phase: Phase::Tune,
                point: moved,
                train,
            })
        }
        Err(why) => {
            t.blocked = Some(format!("the next step, {next}, is not possible: {why}"));
            None
        }
    }
}

/// Every chosen value at an edge of the values tried, in words, by configuration.
fn edges(
    chosen: &Chosen,
    tried: &BTreeMap<(String, String), Tried>,
    extend: usize,
) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (config, point) in chosen {
        for (key, value) in point {
            let Some(t) = tried.get(&(config.clone(), key.clone())) else {
                continue;
            };
            let Some(edge) = edge_of(&t.values, *value) else {
                continue;
            };
            let side = match edge {
                Edge::High => "the largest tried",
                Edge::Low => "the smallest tried",
            };
            let how = match (&t.blocked, t.extensions) {
                (Some(why), _) => format!("; {why}"),
                (None, 0) if extend == 0 => String::new(),
                (None, n) => format!(
                    ", after {n} extension{} of its grid, the most asked for",
                    if n == 1 { "" } else { "s" }
                ),
            };
            out.entry(config.clone())
                .or_default()
                .push(format!("{key} = {value} ({side}{how})"));
        }
    }
    out
}

/// The chosen point of every tuned configuration, or None while tuning (extensions
/// included) is unfinished.
pub fn choose(study: &StudyFile, dir: &Path) -> Result<Option<Chosen>, StudyError> {
    Ok(tuning_plan(study, dir)?.chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tuned value at either end of a grid of three or more is flagged, an interior one is
    /// not, and a grid of two flags nothing (every choice is an end); the flag says how the
    /// extension ended.
    #[test]
    fn tuned_values_at_a_grids_edge_are_flagged() {
        let tried = |values: &[f64], extensions, blocked: Option<&str>| Tried {
            values: values.to_vec(),
            extensions,
            blocked: blocked.map(String::from),
        };
        let key = |k: &str| ("c".to_string(), k.to_string());
        let at = |lr: f64, extend, blocked| {
            let t = BTreeMap::from([
                (key("lr"), tried(&[0.001, 0.003, 0.01], extend, blocked)),
                (key("momentum"), tried(&[0.9, 0.95], 0, None)),
            ]);
            let point = vec![("lr".to_string(), lr), ("momentum".to_string(), 0.95)];
            let chosen = BTreeMap::from([("c".to_string(), point)]);
            edges(&chosen, &t, extend).remove("c").unwrap_or_default()
        };
        assert_eq!(at(0.01, 0, None), ["lr = 0.01 (the largest tried)"]);
        assert_eq!(at(0.001, 0, None), ["lr = 0.001 (the smallest tried)"]);
        assert!(at(0.003, 0, None).is_empty());
        assert_eq!(
            at(0.01, 2, None),
            ["lr = 0.01 (the largest tried, after 2 extensions of its grid, the most asked for)"]
        );
        assert_eq!(
            at(0.01, 1, Some("no")),
            ["lr = 0.01 (the largest tried; no)"]
        );
    }

    #[test]
    fn steps_outward_continue_the_grids_spacing() {
        let lr = [1e-4, 3e-4, 1e-3, 3e-3];
        assert_eq!(outward("lr", &lr, Edge::High), 9e-3);
        assert_eq!(outward("lr", &lr, Edge::Low), 3.33e-5);
        let momentum = [0.5, 0.9, 0.95];
        assert_eq!(outward("momentum", &momentum, Edge::High), 0.975);
        assert_eq!(outward("momentum", &momentum, Edge::Low), 0.278);
        assert_eq!(outward("momentum", &[0.5, 0.7, 0.9], Edge::High), 0.9667);
        assert_eq!(outward("lr", &[1e-4, 3e-4, 1e-3], Edge::High), 0.00333);
        let decay = [0.0, 0.1, 0.2];
        assert_eq!(outward("weight_decay", &decay, Edge::Low), -0.1);
        assert_eq!(outward("weight_decay", &decay, Edge::High), 0.3);
    }
}
