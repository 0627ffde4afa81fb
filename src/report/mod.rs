//! Reports: a study's (or a single run's) results turned into `report.md`, a self-contained
//! `report.html` and every figure as SVG and PNG under `figures/`.
//!
//! The report reads result files only (run directories, `study.toml`, saved models) and the
//! MNIST images it shows ([`load`]); the conclusions are sentences generated from the
//! statistics in [`crate::study::summary`] ([`text`]). Each figure's data is made in
//! [`figures`] and drawn by [`draw`]; [`tables`] has the tables. The two outlines, a list of
//! sections each, are [`study`] and [`run`].

pub mod digit_figures;
pub mod draw;
pub mod draw_digits;
pub mod figures;
pub mod instruments;
pub mod layers;
pub mod lecun1998;
pub mod load;
pub mod numbers;
pub mod original;
pub mod run;
pub mod study;
pub mod summary;
pub mod tables;
pub mod text;

pub use run::run_report;
pub use study::study_report;

use std::path::{Path, PathBuf};

use crate::doc::Doc;
use crate::study::StudyError;
use crate::study::execute::STUDY_FILE;
use crate::train::TrainError;
use crate::train::run::{self as run_files, METRICS};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Study(#[from] StudyError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error("figure {name}: {reason}")]
    Figure { name: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// What `lenet report` wrote.
pub struct Written {
    pub markdown: PathBuf,
    pub html: PathBuf,
    pub figures: usize,
}

/// Whether `dir` is a study directory (else it may be a run directory).
pub fn is_study_dir(dir: &Path) -> bool {
    dir.join(STUDY_FILE).is_file()
}

/// Whether `dir` is a finished run directory.
pub fn is_run_dir(dir: &Path) -> bool {
    dir.join(run_files::CONFIG).is_file() && dir.join(METRICS).is_file()
}

/// Writes the report files into `dir`.
pub(crate) fn write(dir: &Path, doc: &Doc) -> Result<Written, ReportError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ReportError::Io { path, source }
    };
    let figures = dir.join("figures");
    std::fs::create_dir_all(&figures).map_err(io(&figures))?;
    let put =
        |path: PathBuf, bytes: &[u8]| crate::atomic_file::write(&path, bytes).map_err(io(&path));
    for f in &doc.figures {
        put(figures.join(format!("{}.svg", f.name)), f.svg.as_bytes())?;
        put(figures.join(format!("{}.png", f.name)), &f.png)?;
    }
    let (markdown, html) = (dir.join("report.md"), dir.join("report.html"));
    put(markdown.clone(), doc.markdown().as_bytes())?;
    put(html.clone(), doc.html().as_bytes())?;
    Ok(Written {
        markdown,
        html,
        figures: doc.figures.len(),
    })
}
