//! The report of a study directory, as a list of sections: the answer, how it was measured,
//! the curves, test accuracy, the 1998 paper's figures (for its network), the 2x2 design, tuning, time to target, the best model's
//! predictions, the data, the original study's claims, and how to reproduce every run.

use std::path::Path;

use super::digit_figures::{distortions_figure, prediction_figures, samples_figure};
use super::figures::{
    curve_figures, interaction_figure, lr_figure, test_accuracy_figure, time_figure,
};
use super::instruments::instrument_figures;
use super::load::{
    Run, median_run, predict, predict_with, representative, run_with_seed, runs_by_config,
};
use super::numbers::{self, pct, pct_ci};
use super::original;
use super::tables::{
    CONFIG_HEADER, config_row, effects_table, pairs_table, streams_table, summary_table,
    tuning_table,
};
use super::text;
use super::{ReportError, Written, write};
use crate::data::{DataCache, Dataset, DatasetImages};
use crate::doc::Doc;
use crate::format::thousands;
use crate::study::execute::STUDY_FILE;
use crate::study::summary::{StudySummary, summarize};
use crate::study::{Chosen, Phase, RunSpec, StudyFile, describe_point, finished};
use crate::train::TrainError;
use crate::train::metrics::Status;

/// What every section of a study's report reads.
struct Study<'a> {
    dir: &'a Path,
    file: StudyFile,
    summary: StudySummary,
    chosen: Chosen,
    tuning: Vec<RunSpec>,
    finals: Vec<RunSpec>,
    /// Each configuration's finished final runs, with its colour.
    runs: Vec<(String, usize, Vec<Run>)>,
    data: &'a DatasetImages,
}

impl Study<'_> {
    /// A configuration's colour: its place in the study file.
    fn color_of(&self, name: &str) -> usize {
        self.file
            .configs
            .iter()
            .position(|c| c.name == name)
            .unwrap_or(0)
    }
}

/// The report of a study directory.
pub fn study_report(dir: &Path, library: &DataCache) -> Result<Written, ReportError> {
    let file = StudyFile::load(&dir.join(STUDY_FILE))?;
    let summary = summarize(&file, dir)?;
    let plan = crate::study::tune::tuning_plan(&file, dir)?;
    let chosen = plan.chosen.unwrap_or_default();
    let finals = file.final_runs(&chosen, summary.seeds)?;
    let tuning = plan.runs;
    let runs = runs_by_config(&file, dir, &finals)?;
    let mut datasets: Vec<Dataset> = finals.iter().map(|f| f.train.data.dataset).collect();
    datasets.sort();
    datasets.dedup();
    let get = |d: Dataset| library.get(d).map_err(TrainError::from);
    let data = get(datasets.first().copied().unwrap_or_default())?;
    let s = Study {
        dir,
        file,
        summary,
        chosen,
        tuning,
        finals,
        runs,
        data,
    };
    let mut doc = Doc::new(format!("Study `{}`", s.file.name));
    if !s.file.description.is_empty() {
        doc.paragraph(s.file.description.clone());
    }
    answer_section(&s, &mut doc);
    curves_section(&s, &mut doc)?;
    test_accuracy_section(&s, &mut doc)?;
    super::lecun1998::paper_section(&s.summary, &s.finals, &s.runs, &mut doc)?;
    factorial_section(&s, &mut doc)?;
    streams_section(&s, &mut doc);
    tuning_section(&s, &mut doc)?;
    doc.heading(2, "Time to target");
    time_figure(&s.summary, &|n: &str| s.color_of(n), &mut doc)?;
    if let Some((who, model)) = representative(&s.summary, &s.runs) {
        let best = s.finals.iter().find(|f| f.config == s.summary.best);
        let dataset = best.map_or(data.dataset, |f| f.train.data.dataset);
        let data = get(dataset)?;
        // One load of the model for its predictions and its layer figure.
        let (mut net, _, preprocess, _) = crate::train::load_model(&model)?;
        let predictions = predict_with(&mut net, preprocess, data);
        doc.heading(2, "Predictions of the best configuration");
        prediction_figures(&mut doc, &predictions, &who, data)?;
        super::run::layers_section(&mut doc, &mut net, preprocess, data)?;
        images_section(&s, dataset, data, &predictions, &mut doc)?;
    }
    doc.heading(2, "Data");
    for &d in &datasets {
        samples_figure(&mut doc, get(d)?, datasets.len() > 1)?;
    }
    if datasets.is_empty() {
        samples_figure(&mut doc, data, false)?;
    }
    if let Some(f) = s.finals.iter().find(|f| f.train.data.distort) {
        distortions_figure(&mut doc, get(f.train.data.dataset)?)?;
    }
    claims_section(&s.summary, &s.file, &s.finals, &mut doc);
    reproduce_section(&s, &mut doc)?;
    write(dir, &doc)
}

/// The conclusions, and how they were measured.
fn answer_section(s: &Study, doc: &mut Doc) {
    doc.heading(2, "The answer");
    let dataset = s
        .finals
        .first()
        .map_or(Dataset::default(), |f| f.train.data.dataset);
    if let Some(line) = text::headline(&s.summary, dataset.title()) {
        doc.paragraph(format!("**{line}**"));
    }
    doc.list(text::conclusions(&s.summary, &s.file.targets));
    if let Some(a) = &s.summary.adaptive {
        a.write(doc, &s.summary.configs);
    }
    let tuned = if s.file.tuning.is_some() {
        "each configuration's hyperparameters were chosen on the validation split (one short \
         run per grid point), then "
    } else {
        ""
    };
    let Some(first) = s.finals.first() else {
        return;
    };
    let valid = first.train.data.valid_size;
    let (train, test) = (s.data.train.len(), s.data.test.len());
    doc.paragraph(format!(
        "How it was measured: {tuned}every configuration was trained with {} seeds on {} \
         of the {} training images; the other {valid} (a split fixed by its own seed, the \
         same for every run) are the validation set, and the {} test images were used only \
         for the final numbers. Intervals are 95% Student-t confidence intervals over \
         seeds (accuracy intervals clipped to 0-100%); each configuration is compared with \
         the best by a paired t-test over the seeds both ran (runs of one seed start from the \
         same weights), Holm-corrected over those comparisons, and every pair also by Welch's \
         t-test, Holm-corrected over all pairs.",
        s.summary.seeds,
        thousands(train.saturating_sub(valid)),
        thousands(train),
        thousands(test),
        valid = thousands(valid)
    ));
    let best = s.summary.configs.iter().find(|c| c.name == s.summary.best);
    if let Some(e) = best.and_then(|c| c.test_accuracy) {
        let correct = (e.mean * test as f64).round() as u64;
        if let Some((low, high)) = crate::stats::wilson_interval(correct, test as u64) {
            doc.paragraph(format!(
                "The intervals over seeds hold the {} test images fixed. The test set's own \
                 sampling error is another source of noise: an accuracy of {} on {} images has \
                 a 95% Wilson interval of {} to {} ({} to {}), whatever the seeds.",
                thousands(test),
                pct(e.mean),
                thousands(test),
                pct(low),
                pct(high),
                numbers::points(low - e.mean),
                numbers::points(high - e.mean)
            ));
        }
    }
}

/// Loss and accuracy curves of every configuration's finished runs.
fn curves_section(s: &Study, doc: &mut Doc) -> Result<(), ReportError> {
    doc.heading(2, "Training curves");
    let groups: Vec<(String, usize, Vec<&Run>)> = (s.runs.iter())
        .map(|(n, c, runs)| {
            let ok = runs.iter().filter(|r| r.summary.status == Status::Finished);
            (n.clone(), *c, ok.collect())
        })
        .collect();
    curve_figures(&groups, doc)?;
    instrument_figures(&groups, doc)
}

fn test_accuracy_section(s: &Study, doc: &mut Doc) -> Result<(), ReportError> {
    doc.heading(2, "Test accuracy");
    test_accuracy_figure(&s.summary, &|n: &str| s.color_of(n), doc)?;
    summary_table(&s.summary, &s.file, doc);
    pairs_table(&s.summary, doc);
    Ok(())
}

fn factorial_section(s: &Study, doc: &mut Doc) -> Result<(), ReportError> {
    let Some(f) = &s.summary.factorial else {
        return Ok(());
    };
    doc.heading(2, "The 2x2 design");
    interaction_figure(&s.summary, &s.file, doc)?;
    effects_table(f, doc);
    Ok(())
}

/// Where the variance comes from, when configurations vary one random stream each.
fn streams_section(s: &Study, doc: &mut Doc) {
    if s.summary.streams.is_empty() {
        return;
    }
    doc.heading(2, "Where the variance comes from");
    let shares: Vec<String> = (s.summary.streams.iter())
        .filter_map(|r| {
            let share = r.share?;
            Some(format!(
                "{} {:.0}% (sd {:.3} points, 95% CI {:.3} to {:.3})",
                r.stream.as_deref().unwrap_or("all"),
                100.0 * share,
                100.0 * r.sd,
                100.0 * r.sd_low,
                100.0 * r.sd_high
            ))
        })
        .collect();
    doc.paragraph(format!(
        "Each configuration below varies one random stream with its seed (init: the initial \
         weights; order: the order of the training images; dropout: its masks) and holds the \
         others fixed, so its spread over seeds is that source's alone. Of the varied streams' \
         summed variance of test accuracy: {}.",
        shares.join("; ")
    ));
    streams_table(&s.summary, doc);
}

fn tuning_section(s: &Study, doc: &mut Doc) -> Result<(), ReportError> {
    if s.tuning.is_empty() {
        return Ok(());
    }
    doc.heading(2, "Tuning");
    let color_of = |n: &str| s.color_of(n);
    lr_figure(&s.file, s.dir, &s.tuning, &s.chosen, &color_of, doc)?;
    tuning_table(&s.summary, doc);
    Ok(())
}

/// The best configuration's median-seed model (its `predictions`, as [`representative`]
/// picks it) against each other configuration's model of the same seed, over the same test
/// images: McNemar's exact test of the images only one of the two gets right. It compares two
/// models, a second source of noise beside the seeds'.
fn images_section(
    s: &Study,
    dataset: Dataset,
    data: &DatasetImages,
    predictions: &[(u8, f32)],
    doc: &mut Doc,
) -> Result<(), ReportError> {
    let Some(best) = median_run(&s.runs, &s.summary.best) else {
        return Ok(());
    };
    let seed = best.spec_seed;
    let same_data =
        |name: &str| (s.finals.iter()).any(|f| f.config == name && f.train.data.dataset == dataset);
    let labels = &data.test.labels;
    let correct = |predictions: &[(u8, f32)]| -> Vec<bool> {
        (predictions.iter().zip(labels))
            .map(|((p, _), l)| p == l)
            .collect()
    };
    let best_right = correct(predictions);
    let mut rows = Vec::new();
    for c in s
        .summary
        .configs
        .iter()
        .filter(|c| c.name != s.summary.best)
    {
        let Some(other) = run_with_seed(&s.runs, &c.name, seed).filter(|_| same_data(&c.name))
        else {
            continue;
        };
        let other_right = correct(&predict(&other.dir.join(crate::train::run::MODEL), data)?);
        let pairs = best_right.iter().zip(&other_right);
        let only_best = pairs.clone().filter(|(b, o)| **b && !**o).count() as u64;
        let only_other = pairs.filter(|(b, o)| !**b && **o).count() as u64;
        rows.push(vec![
            format!("`{}`", c.name),
            pct(other.summary.test_accuracy.unwrap_or(0.0)),
            only_best.to_string(),
            only_other.to_string(),
            numbers::p_cell(crate::stats::mcnemar(only_best, only_other)),
        ]);
    }
    if rows.is_empty() {
        return Ok(());
    }
    doc.paragraph(format!(
        "The same test images, model against model: `{}`'s run of seed {seed} ({} test \
         accuracy) against each configuration's run of the same seed, with McNemar's exact test \
         of the images only one of the two gets right. This compares two trained models on \
         these {} images (the tests over seeds above compare the configurations):",
        s.summary.best,
        pct(best.summary.test_accuracy.unwrap_or(0.0)),
        thousands(labels.len())
    ));
    let header = [
        "configuration (same seed)",
        "its test accuracy",
        "images only the best gets right",
        "images only it gets right",
        "McNemar p",
    ];
    doc.table(&header, rows);
    Ok(())
}

/// How to rerun the study, and every run with its settings and outcome.
fn reproduce_section(s: &Study, doc: &mut Doc) -> Result<(), ReportError> {
    doc.heading(2, "Reproduce");
    doc.paragraph(format!(
        "`lenet study run {0}` with this study file reruns every run below (a run's ID is the \
         first 16 hex digits of the SHA-256 of its resolved configuration, so finished runs are \
         never recomputed), then `lenet report` on the output directory. The study file:",
        STUDY_FILE
    ));
    doc.code(std::fs::read_to_string(s.dir.join(STUDY_FILE)).unwrap_or_default());
    let mut rows = Vec::new();
    for spec in s.tuning.iter().chain(&s.finals) {
        let outcome = match finished(s.dir, &spec.id)? {
            None => "not finished".to_string(),
            Some(r) => match (r.status, spec.phase) {
                (Status::Diverged { epoch }, _) => format!("diverged (epoch {epoch})"),
                (_, Phase::Tune) => {
                    (r.final_valid_accuracy).map_or("-".into(), |v| format!("valid {}", pct(v)))
                }
                (_, Phase::Final) => {
                    (r.test_accuracy).map_or("-".into(), |v| format!("test {}", pct(v)))
                }
            },
        };
        let phase = match spec.phase {
            Phase::Tune => format!("tuning {}", describe_point(&spec.point)),
            Phase::Final => "final".into(),
        };
        let extra = [spec.config.clone(), phase, outcome];
        rows.push(config_row(&spec.id, &spec.train, &extra));
    }
    let mut header = CONFIG_HEADER.to_vec();
    header.extend(["configuration", "phase", "result"]);
    doc.paragraph(
        "Every run with its resolved settings (the full configuration of each is \
         `runs/ID/config.json`; schedule, optimizer constants and data split as in the study \
         file's defaults):",
    );
    doc.table(&header, rows);
    Ok(())
}

fn claims_section(summary: &StudySummary, study: &StudyFile, finals: &[RunSpec], doc: &mut Doc) {
    // Claims apply only to their own dataset, model and protocol: a study of the same
    // question on other data or another network says why they are not set against it.
    let mut elsewhere: Vec<String> = Vec::new();
    let mut only_on_protocol =
        |rows: Vec<original::OriginalRow>, protocol, what: &str| match claims_protocol(
            finals, protocol,
        ) {
            Ok(()) => rows,
            Err(why) => {
                if !rows.is_empty() {
                    elsewhere.push(format!(
                        "Those about {what} are not set against these runs: {why}."
                    ));
                }
                Vec::new()
            }
        };
    let (rows, ranking) = optimizer_rows(summary, finals);
    let rows = only_on_protocol(rows, None, "optimizers");
    let ranking = ranking.filter(|_| !rows.is_empty());
    let cells = regularization_rows(summary, study);
    let cells = only_on_protocol(
        cells,
        Some(REGULARIZATION_PROTOCOL),
        "dropout and batch normalization",
    );
    if rows.is_empty() && cells.is_empty() && elsewhere.is_empty() {
        return;
    }
    doc.heading(2, "The original study's claims");
    if !elsewhere.is_empty() {
        doc.paragraph(format!(
            "The original study's claims apply only to their own dataset, model and protocol. \
             {}",
            elsewhere.join(" ")
        ));
    }
    if rows.is_empty() && cells.is_empty() {
        return;
    }
    doc.paragraph(
        "The original study ran each configuration once, with untuned rates, and read its \
         numbers off that single run (for the optimizers: 25,000 iterations of batch 64; for \
         the 2x2: Adam, lr 1e-3, batch 64, 15 epochs), on MNIST with its LeNet-5. Here each \
         claim, one run's number, is set beside the measured mean over seeds and the 95% \
         prediction interval of one run (mean ± t s sqrt(1 + 1/n)); a claim outside that \
         interval is not what one run of this protocol gives.",
    );
    if !rows.is_empty() {
        claims_table(&rows, doc);
        if let Some(r) = ranking {
            doc.paragraph(r);
        }
    }
    if !cells.is_empty() {
        claims_table(&cells, doc);
        if let Some(answer) = best_variant(summary) {
            doc.paragraph(answer);
        }
    }
}

/// The original 2x2's protocol: Adam at lr 1e-3, batch 64, 15 epochs.
const REGULARIZATION_PROTOCOL: (&str, f64, usize, usize) = ("adam", 1e-3, 64, 15);

/// Whether every final run follows the protocol the original study's claims were made under:
/// MNIST, the study's LeNet-5 (ReLU, max pooling) and, for the 2x2 (`two_by_two`), its
/// optimizer, rate, batch and epochs. The error says what differs.
fn claims_protocol(
    finals: &[RunSpec],
    two_by_two: Option<(&str, f64, usize, usize)>,
) -> Result<(), String> {
    use crate::nn::activation::ActivationKind;
    use crate::nn::{Arch, Pooling};
    for spec in finals {
        let t = &spec.train;
        let m = &t.model;
        if t.data.dataset != Dataset::Mnist {
            return Err(format!(
                "they were made on MNIST, and `{}` trains on {}",
                spec.config,
                t.data.dataset.title()
            ));
        }
        if m.arch != Arch::Lenet5
            || m.activation != ActivationKind::Relu
            || m.pooling != Pooling::Max
        {
            return Err(format!(
                "they were made with the study's LeNet-5 (ReLU, max pooling), and `{}` trains \
                 another network",
                spec.config
            ));
        }
        if let Some((optimizer, lr, batch, epochs)) = two_by_two {
            let same = t.optimizer.name.as_str() == optimizer
                && (t.optimizer.lr - lr).abs() <= 1e-12 * lr
                && t.batch_size == batch
                && t.epochs == epochs;
            if !same {
                return Err(format!(
                    "they were made with {optimizer} at lr {lr}, batch {batch}, {epochs} epochs, \
                     and `{}` runs {} at lr {}, batch {}, {} epochs",
                    spec.config,
                    t.optimizer.name.as_str(),
                    t.optimizer.lr,
                    t.batch_size,
                    t.epochs
                ));
            }
        }
    }
    Ok(())
}

/// The study's claims about the optimizers, where this study compares two or more, and the
/// ranking sentence.
fn optimizer_rows(
    summary: &StudySummary,
    finals: &[RunSpec],
) -> (Vec<original::OriginalRow>, Option<String>) {
    let optimizer_of = |name: &str| {
        (finals.iter().find(|s| s.config == name))
            .map(|s| s.train.optimizer.name.as_str().to_string())
    };
    let mut optimizers: Vec<String> = (finals.iter())
        .map(|s| s.train.optimizer.name.as_str().to_string())
        .collect();
    optimizers.sort();
    optimizers.dedup();
    if optimizers.len() < 2 {
        return (Vec::new(), None);
    }
    // Full-batch gradient descent is another method than the study's "gradient descent",
    // which took 25,000 steps of 64 images.
    let note_of = |name: &str| {
        let spec = finals.iter().find(|s| s.config == name)?;
        (spec.train.batch_size == 0).then(|| {
            format!(
                "`{name}` takes one step per pass over the training split, {} steps in \
                 all; the study's 25,000 steps of 64 images are mini-batch steps, so the \
                 two are different methods.",
                spec.train.epochs
            )
        })
    };
    original::optimizer_rows(summary, optimizer_of, note_of)
}

/// The study's claims about dropout and batch normalization, where this study is their 2x2.
fn regularization_rows(summary: &StudySummary, study: &StudyFile) -> Vec<original::OriginalRow> {
    let factors_match = study.factors.len() == 2
        && study.factors.iter().any(|f| f.contains("dropout"))
        && study.factors.iter().any(|f| f.contains("batch"));
    if !factors_match {
        return Vec::new();
    }
    let dropout_first = study.factors[0].contains("dropout");
    let cell_of = |name: &str| study.configs.iter().find(|c| c.name == name)?.cell;
    original::regularization_rows(summary, cell_of, dropout_first)
}

/// Claims beside their measurements, and a sentence each.
fn claims_table(rows: &[original::OriginalRow], doc: &mut Doc) {
    let header = [
        "the study's",
        "it claimed (one run)",
        "lenet's configuration",
        "measured test accuracy (mean, 95% CI)",
        "where one run falls (95%)",
    ];
    let cells = rows.iter().map(|r| {
        vec![
            r.original.to_string(),
            r.claimed.clone(),
            format!("`{}`", r.config),
            pct_ci(&r.measured),
            numbers::pct_prediction(&r.measured),
        ]
    });
    doc.table(&header, cells.collect());
    doc.list(rows.iter().map(|r| r.line.clone()).collect());
}

/// The measured answer to the study's question which variant is best.
fn best_variant(summary: &StudySummary) -> Option<String> {
    let best = summary.configs.iter().find(|c| c.name == summary.best)?;
    let tied: Vec<String> = (summary.configs.iter())
        .filter(|c| c.tied_with_best && c.name != best.name)
        .map(|c| format!("`{}`", c.name))
        .collect();
    Some(format!(
        "The study asked which variant is best. Measured: `{}` has the highest mean{}.",
        best.name,
        if tied.is_empty() {
            ", significantly above the others".to_string()
        } else {
            format!(", not shown different from {}", tied.join(", "))
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The final runs of a 2x2 study of dropout and batch normalization with `defaults`.
    fn finals(defaults: &str) -> Vec<RunSpec> {
        let text = format!(
            "name = \"t\"\nseeds = 2\nfactors = [\"dropout\", \"batch normalization\"]\n\
             [defaults]\n{defaults}\n\
             [[config]]\nname = \"neither\"\ncell = [0, 0]\n\
             [[config]]\nname = \"bn\"\ncell = [0, 1]\noptions = {{ batch_norm = \"first\" }}\n\
             [[config]]\nname = \"dropout\"\ncell = [1, 0]\noptions = {{ dropout = 0.4 }}\n\
             [[config]]\nname = \"both\"\ncell = [1, 1]\n\
             options = {{ dropout = 0.4, batch_norm = \"first\" }}\n"
        );
        let study = StudyFile::parse(&text, "t.toml").unwrap();
        study.final_runs(&Chosen::new(), 2).unwrap()
    }

    /// The original claims are set against a study only on their own dataset, model and
    /// protocol; otherwise the reason names what differs.
    #[test]
    fn claims_apply_only_to_their_own_protocol() {
        let original = "optimizer = \"adam\"\nlr = 0.001\nbatch_size = 64\nepochs = 15";
        let protocol = Some(REGULARIZATION_PROTOCOL);
        assert_eq!(claims_protocol(&finals(original), protocol), Ok(()));
        let fashion = claims_protocol(
            &finals(&format!("{original}\ndataset = \"fashion-mnist\"")),
            protocol,
        );
        assert!(
            fashion.as_ref().unwrap_err().contains("Fashion-MNIST"),
            "{fashion:?}"
        );
        assert!(
            claims_protocol(
                &finals(&format!("{original}\ndataset = \"fashion-mnist\"")),
                None
            )
            .is_err()
        );
        let short = claims_protocol(&finals(&original.replace("15", "2")), protocol);
        assert!(
            short.as_ref().unwrap_err().contains("2 epochs"),
            "{short:?}"
        );
        assert_eq!(
            claims_protocol(&finals(&original.replace("15", "2")), None),
            Ok(())
        );
        let tanh = claims_protocol(&finals(&format!("{original}\nactivation = \"tanh\"")), None);
        assert!(
            tanh.as_ref().unwrap_err().contains("another network"),
            "{tanh:?}"
        );
    }
}
