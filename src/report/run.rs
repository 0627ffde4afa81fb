//! The report of one run directory: its result, curves, predictions and configuration.

use std::path::Path;

use super::digit_figures::{distortions_figure, prediction_figures, samples_figure};
use super::figures::curve_figures;
use super::instruments::instrument_figures;
use super::load::{load_run, predict_with};
use super::numbers::pct;
use super::tables::{CONFIG_HEADER, config_row, epoch_table};
use super::{ReportError, Written, write};
use crate::data::DataCache;
use crate::doc::Doc;
use crate::train::metrics::Status;
use crate::train::{TrainError, run};

/// The report of one run directory: its curves, predictions and configuration.
pub fn run_report(dir: &Path, data: &DataCache) -> Result<Written, ReportError> {
    let config = run::read_config(dir)?;
    let data = data.get(config.data.dataset).map_err(TrainError::from)?;
    let Some(r) = load_run(dir, config.seed)? else {
        return Err(ReportError::Invalid(format!(
            "{} has no summary.json: the run is not finished (`lenet train --resume` continues it)",
            dir.display()
        )));
    };
    let name = dir
        .file_name()
        .map_or("run".into(), |n| n.to_string_lossy().to_string());
    let mut doc = Doc::new(format!("Run {name}"));
    let s = &r.summary;
    doc.heading(2, "Result");
    let result = match (s.status, s.test_accuracy, s.test_loss) {
        (Status::Diverged { epoch }, _, _) => {
            format!("The run diverged in epoch {epoch} (loss not finite or above 100).")
        }
        (_, Some(acc), Some(loss)) => format!(
            "Test accuracy **{}**, test loss {loss:.4}, after {} epochs ({:.1} s of training, \
             {:.1} s in all; {} parameters). Best validation accuracy {} in epoch {}.",
            pct(acc),
            s.epochs,
            s.train_seconds,
            s.wall_seconds,
            s.parameters,
            s.best_valid_accuracy.map_or("-".into(), pct),
            s.best_valid_epoch.map_or("-".into(), |e| e.to_string())
        ),
        _ => "The run has no test result.".into(),
    };
    doc.paragraph(result);
    doc.heading(2, "Training curves");
    curve_figures(&[(name.clone(), 0, vec![&r])], &mut doc)?;
    if !r.metrics.is_empty() {
        epoch_table(&r.metrics, &mut doc);
    }
    instrument_figures(&[(name.clone(), 0, vec![&r])], &mut doc)?;
    let model = dir.join(run::MODEL);
    if s.status == Status::Finished && model.is_file() {
        doc.heading(2, "Predictions");
        // One load of the model for its predictions and its layer figure.
        let (mut net, _, preprocess, _) = crate::train::checkpoint::load_model(&model)?;
        let predictions = predict_with(&mut net, preprocess, data);
        prediction_figures(&mut doc, &predictions, "this run", data)?;
        layers_section(&mut doc, &mut net, preprocess, data)?;
    }
    doc.heading(2, "Data");
    samples_figure(&mut doc, data, false)?;
    if config.data.distort {
        distortions_figure(&mut doc, data)?;
    }
    doc.heading(2, "Configuration");
    doc.table(&CONFIG_HEADER, vec![config_row(&name, &config, &[])]);
    doc.code(serde_json::to_string_pretty(&config).expect("serialisable"));
    write(dir, &doc)
}

/// Test image 0 of `data` through every layer of `net` (`lenet show` draws others).
pub(crate) fn layers_section(
    doc: &mut Doc,
    net: &mut crate::nn::Network,
    preprocess: crate::data::Preprocess,
    data: &crate::data::DatasetImages,
) -> Result<(), ReportError> {
    let names = data.dataset.class_names();
    let figure = super::layers::layer_figure(net, preprocess, &data.test, 0, names);
    doc.figure(super::layers::render_layers(&figure, 0)?);
    Ok(())
}
