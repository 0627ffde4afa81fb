//! What a report reads: finished runs (configuration, outcome, per-epoch metrics) and the
//! predictions of a saved model.

use std::path::{Path, PathBuf};

use super::ReportError;
use super::numbers::pct;
use crate::data::DatasetImages;
use crate::study::summary::StudySummary;
use crate::study::{RunSpec, StudyFile, run_dir};
use crate::train::metrics::{EpochMetrics, Summary};
use crate::train::run;

/// A finished run: its configuration, outcome and per-epoch metrics.
pub(crate) struct Run {
    pub spec_seed: u64,
    pub dir: PathBuf,
    pub summary: Summary,
    pub metrics: Vec<EpochMetrics>,
}

pub(crate) fn load_run(dir: &Path, seed: u64) -> Result<Option<Run>, ReportError> {
    let Ok(summary) = run::read_summary(dir) else {
        return Ok(None);
    };
    Ok(Some(Run {
        spec_seed: seed,
        dir: dir.to_path_buf(),
        summary,
        metrics: run::read_metrics(dir)?,
    }))
}

/// Softmax outputs of a saved model on the whole test set: (predicted label, confidence).
pub(crate) fn predict(model: &Path, data: &DatasetImages) -> Result<Vec<(u8, f32)>, ReportError> {
    let (mut net, _, preprocess, _) = crate::train::load_model(model)?;
    Ok(predict_with(&mut net, preprocess, data))
}

/// [`predict`] with a network already loaded.
pub(crate) fn predict_with(
    net: &mut crate::nn::Network,
    preprocess: crate::data::Preprocess,
    data: &DatasetImages,
) -> Vec<(u8, f32)> {
    let all: Vec<u32> = (0..data.test.len() as u32).collect();
    let mut out = vec![(0u8, 0.0f32); all.len()];
    crate::train::evaluate_with(net, preprocess, &data.test, &all, |first, logits| {
        for (i, row) in logits.data.chunks_exact(10).enumerate() {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
            let (best, &top) = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .expect("10 classes");
            out[first + i] = (best as u8, 1.0 / sum * (top - max).exp());
        }
    });
    out
}

/// The best configuration's run with the median test accuracy over its seeds, as
/// (description, model file).
pub(crate) fn representative(
    summary: &StudySummary,
    runs: &[(String, usize, Vec<Run>)],
) -> Option<(String, PathBuf)> {
    let r = median_run(runs, &summary.best)?;
    Some((
        format!(
            "`{}` (seed {}, the median of its seeds: {} test accuracy)",
            summary.best,
            r.spec_seed,
            pct(r.summary.test_accuracy.unwrap_or(0.0))
        ),
        r.dir.join(run::MODEL),
    ))
}

/// Each configuration of a study (with its colour, its place in the study file) and its
/// final runs that have a summary.
pub(crate) fn runs_by_config(
    study: &StudyFile,
    dir: &Path,
    finals: &[RunSpec],
) -> Result<Vec<(String, usize, Vec<Run>)>, ReportError> {
    let mut out = Vec::new();
    for (color, c) in study.configs.iter().enumerate() {
        let mut runs = Vec::new();
        for spec in finals.iter().filter(|s| s.config == c.name) {
            runs.extend(load_run(&run_dir(dir, &spec.id), spec.train.seed)?);
        }
        out.push((c.name.clone(), color, runs));
    }
    Ok(out)
}

/// The run of configuration `name` with the median test accuracy over its seeds (of those
/// with a saved model).
pub(crate) fn median_run<'a>(runs: &'a [(String, usize, Vec<Run>)], name: &str) -> Option<&'a Run> {
    let (_, _, of) = runs.iter().find(|(n, _, _)| n == name)?;
    let mut ok: Vec<&Run> = (of.iter())
        .filter(|r| r.summary.test_accuracy.is_some() && r.dir.join(run::MODEL).is_file())
        .collect();
    ok.sort_by(|a, b| {
        let acc = |r: &Run| r.summary.test_accuracy.unwrap_or(0.0);
        acc(a).total_cmp(&acc(b))
    });
    ok.get(ok.len().checked_sub(1)? / 2).copied()
}

/// The run of configuration `name` with seed `seed` and a saved model, if it finished.
pub(crate) fn run_with_seed<'a>(
    runs: &'a [(String, usize, Vec<Run>)],
    name: &str,
    seed: u64,
) -> Option<&'a Run> {
    let (_, _, of) = runs.iter().find(|(n, _, _)| n == name)?;
    (of.iter()).find(|r| {
        r.spec_seed == seed && r.summary.test_accuracy.is_some() && r.dir.join(run::MODEL).is_file()
    })
}
