//! A training run in its directory: fresh, resumed, or already finished.

use std::path::Path;
use std::time::Instant;

use super::checkpoint::{self, CheckpointFiles};
use super::instruments::INSTRUMENTS;
use super::metrics::{self, Status, Summary};
use super::{Observer, TrainConfig, TrainError, Trainer, evaluate, write_atomically};
use crate::data::{DatasetImages, Split};

pub const CONFIG: &str = "config.json";
pub const METRICS: &str = "metrics.csv";
pub const SUMMARY: &str = "summary.json";
pub const MODEL: &str = "model.safetensors";
pub const OPTIMIZER: &str = "optimizer.safetensors";
/// What the run trains and tests on ([`DataRecord`]).
pub const DATA: &str = "data.json";

/// The data a run started on: a resume, or a study continued, on other data is refused
/// (a run whose epochs saw two datasets, or that is tested on another test set, is no result).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DataRecord {
    pub dataset: String,
    pub train_images: usize,
    pub test_images: usize,
    /// [`DatasetImages::fingerprint`].
    pub fingerprint: String,
}

impl DataRecord {
    pub fn of(data: &DatasetImages) -> DataRecord {
        DataRecord {
            dataset: data.dataset.as_str().to_string(),
            train_images: data.train.len(),
            test_images: data.test.len(),
            fingerprint: data.fingerprint().to_string(),
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} with {} training and {} test images (fingerprint {})",
            self.dataset, self.train_images, self.test_images, self.fingerprint
        )
    }

    /// Checks `data` against the record in `path` (`what` names the run or study), or writes
    /// the record when there is none yet (work begun before lenet recorded its data).
    pub fn check_or_write(path: &Path, data: &DatasetImages, what: &str) -> Result<(), TrainError> {
        let now = DataRecord::of(data);
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let was: DataRecord = serde_json::from_str(&text)
                    .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", path.display())))?;
                if was != now {
                    return Err(TrainError::OtherData(format!(
                        "{what} started on {}, but the data given now is {}: continue it with \
                         the data directory it started with (--data-dir or LENET_DATA)",
                        was.describe(),
                        now.describe()
                    )));
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(io(parent))?;
                }
                write_json(path, &now)
            }
            Err(e) => Err(io(path)(e)),
        }
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    let mut text = serde_json::to_string_pretty(value).expect("serialisable");
    text.push('\n');
    write_atomically(path, text.as_bytes())
}

/// Reads the configuration of the run in `dir`.
pub fn read_config(dir: &Path) -> Result<TrainConfig, TrainError> {
    let path = dir.join(CONFIG);
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    serde_json::from_str(&text).map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))
}

/// Reads `summary.json` of a finished run.
/// The record of the data the run in `dir` trained on.
pub fn read_data_info(dir: &Path) -> Result<DataRecord, TrainError> {
    let path = dir.join(DATA);
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    serde_json::from_str(&text)
        .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", path.display())))
}

pub fn read_summary(dir: &Path) -> Result<Summary, TrainError> {
    let path = dir.join(SUMMARY);
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    serde_json::from_str(&text)
        .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", path.display())))
}

/// Reads `metrics.csv` of the run in `dir`; an unreadable file is an error naming it.
pub fn read_metrics(dir: &Path) -> Result<Vec<metrics::EpochMetrics>, TrainError> {
    let path = dir.join(METRICS);
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    metrics::from_csv(&text).map_err(|e| TrainError::Checkpoint(format!("{}: {e}", path.display())))
}

/// Checks that the run in `dir` is finished and whole, and returns its summary: the summary,
/// `metrics.csv` (one row per epoch the summary counts, numbered from 1), and, once an epoch
/// is done, the model (of the architecture `config.json` describes) and the optimizer state
/// of that same epoch, all present and readable. A run that is not finished yet, or whose
/// files disagree (edited, or written by two processes at once), is an error naming the file.
pub fn verify(dir: &Path) -> Result<Summary, TrainError> {
    let config = read_config(dir)?;
    let summary = read_summary(dir)?;
    let bad = |name: &str, what: String| {
        TrainError::Checkpoint(format!("{}: {what}", dir.join(name).display()))
    };
    let rows = read_metrics(dir)?;
    if rows.len() != summary.epochs {
        return Err(bad(
            METRICS,
            format!(
                "{} epochs, but summary.json says {}",
                rows.len(),
                summary.epochs
            ),
        ));
    }
    if let Some((i, m)) = rows.iter().enumerate().find(|(i, m)| m.epoch != i + 1) {
        return Err(bad(METRICS, format!("row {} is epoch {}", i + 1, m.epoch)));
    }
    if summary.epochs == 0 {
        return Ok(summary);
    }
    let mut trainer = Trainer::new(config)?;
    checkpoint::restore(&mut trainer, &checkpoint_files(dir))?;
    if trainer.epoch != summary.epochs {
        return Err(bad(
            OPTIMIZER,
            format!(
                "holds epoch {}, but summary.json says {}",
                trainer.epoch, summary.epochs
            ),
        ));
    }
    Ok(summary)
}

/// How a call to [`start`] or [`resume`] ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Finished(Summary),
    /// Stopped on request after this epoch, checkpoint written; `resume` continues it.
    Paused {
        epoch: usize,
    },
}

/// Starts a new run in `dir`, which must not hold one already. With `stop_after`, training
/// pauses once that many epochs are done.
pub fn start(
    config: TrainConfig,
    data: &DatasetImages,
    dir: &Path,
    observer: &mut dyn Observer,
    stop_after: Option<usize>,
) -> Result<Outcome, TrainError> {
    config.validate()?;
    if dir.join(CONFIG).exists() {
        return Err(TrainError::Config(format!(
            "{} already holds a run; continue it with --resume {0} or choose another --out",
            dir.display()
        )));
    }
    // Everything that can refuse the run is checked before its directory is made, so a
    // refused run leaves nothing that would block the next try.
    let c = &config.data;
    Split::new(data.train.len(), c.valid_size, c.split_seed)?;
    let trainer = Trainer::new(config)?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    write_json(&dir.join(DATA), &DataRecord::of(data))?;
    write_json(&dir.join(CONFIG), &trainer.config)?;
    drive(trainer, data, dir, observer, 0.0, stop_after)
}

/// Continues the run in `dir` from its last finished epoch; a finished run is left as it is.
pub fn resume(
    data: &DatasetImages,
    dir: &Path,
    observer: &mut dyn Observer,
    stop_after: Option<usize>,
) -> Result<Outcome, TrainError> {
    let config = read_config(dir)?;
    if let Ok(summary) = read_summary(dir) {
        return Ok(Outcome::Finished(summary));
    }
    let what = format!("the run in {}", dir.display());
    DataRecord::check_or_write(&dir.join(DATA), data, &what)?;
    crate::atomic_file::remove_stale(dir).map_err(io(dir))?;
    let mut trainer = Trainer::new(config)?;
    let files = checkpoint_files(dir);
    checkpoint::commit(&files)?;
    let mut wall = 0.0;
    if files.model.exists() && files.optimizer.exists() {
        wall = checkpoint::restore(&mut trainer, &files)?;
        let mut rows = read_metrics(dir)?;
        if rows.len() < trainer.epoch {
            return Err(TrainError::Checkpoint(format!(
                "{} has {} epochs but the checkpoint is at epoch {}",
                dir.join(METRICS).display(),
                rows.len(),
                trainer.epoch
            )));
        }
        rows.truncate(trainer.epoch);
        trainer.history = rows;
        if let Some(recorder) = &mut trainer.instruments {
            let path = dir.join(INSTRUMENTS);
            let csv = std::fs::read_to_string(&path).map_err(io(&path))?;
            recorder
                .restore(&csv, trainer.epoch)
                .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", path.display())))?;
        }
    }
    drive(trainer, data, dir, observer, wall, stop_after)
}

/// The checkpoint set of the run in `dir`.
fn checkpoint_files(dir: &Path) -> CheckpointFiles {
    CheckpointFiles {
        model: dir.join(MODEL),
        optimizer: dir.join(OPTIMIZER),
        metrics: dir.join(METRICS),
    }
}

/// Trains to the configured number of epochs, checkpointing after each, then tests.
fn drive(
    mut trainer: Trainer,
    data: &DatasetImages,
    dir: &Path,
    observer: &mut dyn Observer,
    wall_before: f64,
    stop_after: Option<usize>,
) -> Result<Outcome, TrainError> {
    let start = Instant::now();
    let c = &trainer.config.data;
    let split = Split::new(data.train.len(), c.valid_size, c.split_seed)?;
    while trainer.epoch < trainer.config.epochs {
        match trainer.run_epoch(data, &split, observer) {
            Ok(_) => {}
            Err(TrainError::Diverged { epoch, loss }) => {
                let summary = summarize(
                    &trainer,
                    None,
                    Status::Diverged { epoch },
                    wall_before + start.elapsed().as_secs_f64(),
                );
                write_atomically(
                    &dir.join(METRICS),
                    metrics::to_csv(&trainer.history).as_bytes(),
                )?;
                write_events(dir, &trainer)?;
                write_json(&dir.join(SUMMARY), &summary)?;
                return Err(TrainError::Diverged { epoch, loss });
            }
            Err(e) => return Err(e),
        }
        let wall = wall_before + start.elapsed().as_secs_f64();
        // Before the checkpoint: a run killed between the two resumes from the previous
        // epoch, and drops the rows this one wrote ahead of it.
        write_events(dir, &trainer)?;
        checkpoint::save(&trainer, &checkpoint_files(dir), wall)?;
        if stop_after.is_some_and(|s| trainer.epoch >= s) && trainer.epoch < trainer.config.epochs {
            return Ok(Outcome::Paused {
                epoch: trainer.epoch,
            });
        }
    }
    let all: Vec<u32> = (0..data.test.len() as u32).collect();
    let test = evaluate(
        &mut trainer.net,
        trainer.config.data.preprocess,
        &data.test,
        &all,
    );
    let summary = summarize(
        &trainer,
        Some(test),
        Status::Finished,
        wall_before + start.elapsed().as_secs_f64(),
    );
    write_json(&dir.join(SUMMARY), &summary)?;
    Ok(Outcome::Finished(summary))
}

/// Rewrites the run's TensorBoard event file from its epochs so far, and its instruments'
/// file when it records them.
fn write_events(dir: &Path, trainer: &Trainer) -> Result<(), TrainError> {
    let events = super::tensorboard::events(&trainer.history, trainer.instruments.as_ref());
    write_atomically(&dir.join(super::tensorboard::EVENTS), &events)?;
    if let Some(recorder) = &trainer.instruments {
        write_atomically(&dir.join(INSTRUMENTS), recorder.to_csv().as_bytes())?;
    }
    Ok(())
}

fn summarize(
    trainer: &Trainer,
    test: Option<super::Evaluation>,
    status: Status,
    wall: f64,
) -> Summary {
    let h = &trainer.history;
    let best = h.iter().filter(|m| m.valid_accuracy.is_some()).fold(
        None::<&super::EpochMetrics>,
        |best, m| match best {
            Some(b) if b.valid_accuracy >= m.valid_accuracy => Some(b),
            _ => Some(m),
        },
    );
    Summary {
        status,
        epochs: h.len(),
        test_accuracy: test.map(|t| t.accuracy),
        test_loss: test.map(|t| t.loss),
        final_valid_accuracy: h.last().and_then(|m| m.valid_accuracy),
        final_valid_loss: h.last().and_then(|m| m.valid_loss),
        best_valid_accuracy: best.and_then(|m| m.valid_accuracy),
        best_valid_epoch: best.map(|m| m.epoch),
        train_seconds: h.iter().map(|m| m.train_seconds).sum(),
        wall_seconds: wall,
        parameters: trainer.net.param_count(),
    }
}
