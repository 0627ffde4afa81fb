//! Per-epoch metrics, evaluations and the run summary, with their CSV and JSON forms.

use serde::{Deserialize, Serialize};

/// Loss and accuracy of a model on a set of images.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction classified correctly, in [0, 1].
    pub accuracy: f64,
    pub count: usize,
}

/// One row of `metrics.csv`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    /// Learning rate used during the epoch.
    pub lr: f64,
    /// Mean loss and accuracy over the epoch's training batches, measured before each update.
    pub train_loss: f64,
    pub train_accuracy: f64,
    /// On the validation split, in evaluation mode, after the epoch; `None` (an empty field
    /// in the CSV) when the run has no validation split (`--valid-size 0`).
    pub valid_loss: Option<f64>,
    pub valid_accuracy: Option<f64>,
    /// Wall seconds of the training pass, and of the whole epoch with validation.
    pub train_seconds: f64,
    pub seconds: f64,
}

pub const CSV_HEADER: &str =
    "epoch,lr,train_loss,train_accuracy,valid_loss,valid_accuracy,train_seconds,seconds";

impl EpochMetrics {
    /// One CSV line. Numbers are written in their shortest exact form, so reading them back
    /// gives the same bits.
    pub fn csv_row(&self) -> String {
        format!(
            "{},{},{},{},{},{},{:.3},{:.3}",
            self.epoch,
            self.lr,
            self.train_loss,
            self.train_accuracy,
            optional(self.valid_loss),
            optional(self.valid_accuracy),
            self.train_seconds,
            self.seconds
        )
    }

    pub fn parse_csv_row(line: &str) -> Result<Self, String> {
        let f: Vec<&str> = line.trim().split(',').collect();
        if f.len() != 8 {
            return Err(format!(
                "expected 8 fields ({CSV_HEADER}), found {}",
                f.len()
            ));
        }
        let num = |i: usize| -> Result<f64, String> {
            f[i].parse::<f64>()
                .map_err(|e| format!("field {i} '{}': {e}", f[i]))
        };
        let maybe = |i: usize| (!f[i].is_empty()).then(|| num(i)).transpose();
        Ok(EpochMetrics {
            epoch: f[0].parse().map_err(|e| format!("epoch '{}': {e}", f[0]))?,
            lr: f[1].parse().map_err(|e| format!("lr '{}': {e}", f[1]))?,
            train_loss: num(2)?,
            train_accuracy: num(3)?,
            valid_loss: maybe(4)?,
            valid_accuracy: maybe(5)?,
            train_seconds: num(6)?,
            seconds: num(7)?,
        })
    }
}

/// A value that may be absent, as a CSV field: empty when absent.
fn optional(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| v.to_string())
}

/// Writes a whole `metrics.csv`.
pub fn to_csv(rows: &[EpochMetrics]) -> String {
    let mut s = String::from(CSV_HEADER);
    s.push('\n');
    for r in rows {
        s += &r.csv_row();
        s.push('\n');
    }
    s
}

/// Reads a `metrics.csv` written by [`to_csv`].
pub fn from_csv(text: &str) -> Result<Vec<EpochMetrics>, String> {
    let mut lines = text.lines();
    match lines.next() {
        Some(h) if h.trim() == CSV_HEADER => {}
        other => {
            return Err(format!(
                "expected the header '{CSV_HEADER}', found {other:?}"
            ));
        }
    }
    lines
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| EpochMetrics::parse_csv_row(l).map_err(|e| format!("row {}: {e}", i + 1)))
        .collect()
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Finished,
    /// The loss became NaN or infinite during the given epoch.
    Diverged {
        epoch: usize,
    },
}

/// `summary.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub status: Status,
    pub epochs: usize,
    /// On the test set, with the final weights; absent for a diverged run.
    pub test_accuracy: Option<f64>,
    pub test_loss: Option<f64>,
    pub final_valid_accuracy: Option<f64>,
    pub final_valid_loss: Option<f64>,
    pub best_valid_accuracy: Option<f64>,
    pub best_valid_epoch: Option<usize>,
    /// Seconds spent in training passes, summed over epochs.
    pub train_seconds: f64,
    /// Wall seconds of the whole run (including evaluation and checkpoints; summed over
    /// resumed sessions).
    pub wall_seconds: f64,
    pub parameters: usize,
}
