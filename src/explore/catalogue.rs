//! The runs a server may show: found once, at start, under the directories it was given, and
//! known by identifiers that are looked up, never joined into paths.
//!
//! A directory is a study directory (its `study.toml` says which runs are whose: each run is
//! listed by configuration and seed, tuning runs by their grid point), a run directory (from
//! `lenet train`), or a folder of either (one level down, as `studies-out/` is). A run is
//! listed once it has a saved model; an unfinished run shows its last epoch's model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::ExploreError;
use crate::study::execute::STUDY_FILE;
use crate::study::{Phase, StudyFile, describe_point, run_dir, tune};
use crate::train::metrics::Summary;
use crate::train::{TrainConfig, run};

/// One run the server shows.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    /// 12 hex digits of the SHA-256 of the run directory's canonical path: stable across
    /// restarts, and no path.
    pub id: String,
    /// The study's name, for runs of a study.
    pub study: Option<String>,
    /// The configuration's name in its study; the directory's name for a lone run.
    pub config: String,
    pub seed: u64,
    /// `final`, `tune` (a tuning run) or `run` (a lone run).
    pub phase: &'static str,
    /// A tuning run's grid point (or a final run's chosen one), as `name=value` pairs.
    pub point: String,
    /// A line that tells the run apart from the others.
    pub label: String,
    #[serde(skip)]
    pub dir: PathBuf,
    /// The directory it was found under (canonical): its files must lie inside it.
    #[serde(skip)]
    pub root: PathBuf,
}

impl Entry {
    /// The saved model, when it is still there and inside the tree the run was found under
    /// (a model file that is a link out of it is refused).
    pub fn model_file(&self) -> Result<PathBuf, ExploreError> {
        let path = self.dir.join(run::MODEL);
        match path.canonicalize() {
            Ok(real) if real.starts_with(&self.root) => Ok(real),
            Ok(_) => Err(ExploreError::Run {
                id: self.id.clone(),
                why: format!("{} leads out of {}", path.display(), self.root.display()),
            }),
            Err(e) => Err(self.gone_or(format!("{}: {e}", path.display()))),
        }
    }

    /// The run's configuration, read afresh (a removed directory is an error for this run).
    pub fn config(&self) -> Result<TrainConfig, ExploreError> {
        run::read_config(&self.dir).map_err(|e| self.gone_or(e.to_string()))
    }

    /// The run's summary, once it has finished.
    pub fn summary(&self) -> Option<Summary> {
        run::read_summary(&self.dir).ok()
    }

    /// The error for a request on this run whose files cannot be read: "removed" when the
    /// directory is gone, else `why`.
    pub fn gone_or(&self, why: String) -> ExploreError {
        if self.dir.is_dir() {
            ExploreError::Run {
                id: self.id.clone(),
                why,
            }
        } else {
            ExploreError::Gone {
                id: self.id.clone(),
                dir: self.dir.display().to_string(),
            }
        }
    }
}

/// Every run found, by identifier.
#[derive(Debug, Default)]
pub struct Catalogue {
    runs: BTreeMap<String, Entry>,
    /// Identifiers in listing order: directory by directory, configuration, phase, seed.
    order: Vec<String>,
    /// The directory being searched (canonical).
    root: PathBuf,
    /// Runs left out because their directory or model is a link out of the tree searched.
    pub outside: Vec<PathBuf>,
}

impl Catalogue {
    /// The runs under `dirs` (see the module's documentation). A directory that holds no run
    /// is an error naming it; a run given twice is listed once.
    pub fn discover(dirs: &[PathBuf]) -> Result<Catalogue, ExploreError> {
        let mut out = Catalogue::default();
        for dir in dirs {
            let before = out.order.len();
            if !dir.is_dir() {
                let why = match dir.is_file() {
                    true => {
                        "a file; expected a run or study directory (for a model file, name \
                             the run directory it is in)"
                    }
                    false => "no such directory",
                };
                return Err(ExploreError::Dir {
                    dir: dir.display().to_string(),
                    why: why.into(),
                });
            }
            out.root = dir.canonicalize().map_err(|e| ExploreError::Dir {
                dir: dir.display().to_string(),
                why: e.to_string(),
            })?;
            if !out.add_dir(dir)? {
                let mut children: Vec<PathBuf> = std::fs::read_dir(dir)
                    .map_err(|e| ExploreError::Dir {
                        dir: dir.display().to_string(),
                        why: e.to_string(),
                    })?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_dir())
                    .collect();
                children.sort();
                for child in children {
                    out.add_dir(&child)?;
                }
            }
            if out.order.len() == before && !out.holds_any_under(dir) {
                let outside: Vec<String> = (out.outside.iter())
                    .map(|p| p.display().to_string())
                    .collect();
                let left_out = match outside.is_empty() {
                    true => String::new(),
                    false => format!("; left out as links out of it: {}", outside.join(", ")),
                };
                return Err(ExploreError::Dir {
                    dir: dir.display().to_string(),
                    why: format!(
                        "no run with a saved model in it: expected a study directory (with \
                         {STUDY_FILE}), a run directory (with {} and {}), or a folder of them{left_out}",
                        run::CONFIG,
                        run::MODEL
                    ),
                });
            }
        }
        Ok(out)
    }

    /// Whether a run already listed lies under `dir` (given twice, or inside another).
    fn holds_any_under(&self, dir: &Path) -> bool {
        let Ok(dir) = dir.canonicalize() else {
            return false;
        };
        self.runs.values().any(|e| e.dir.starts_with(&dir))
    }

    /// Adds the study or run in `dir`; false when it is neither.
    fn add_dir(&mut self, dir: &Path) -> Result<bool, ExploreError> {
        if dir.join(STUDY_FILE).is_file() {
            self.add_study(dir)?;
            Ok(true)
        } else if dir.join(run::CONFIG).is_file() {
            let name = dir.file_name().map_or_else(
                || dir.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            let seed = run::read_config(dir).map_or(0, |c| c.seed);
            self.add(dir, None, name.clone(), seed, "run", String::new(), name);
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn add_study(&mut self, dir: &Path) -> Result<(), ExploreError> {
        let bad = |e: crate::study::StudyError| ExploreError::Dir {
            dir: dir.display().to_string(),
            why: e.to_string(),
        };
        let file = StudyFile::load(&dir.join(STUDY_FILE)).map_err(bad)?;
        let plan = tune::tuning_plan(&file, dir).map_err(bad)?;
        let chosen = plan.chosen.clone().unwrap_or_default();
        let finals = file.final_runs(&chosen, file.seeds.most()).map_err(bad)?;
        for spec in finals.iter().chain(&plan.runs) {
            let (phase, what) = match spec.phase {
                Phase::Final => ("final", format!("seed {}", spec.train.seed)),
                Phase::Tune => ("tune", format!("tuning {}", describe_point(&spec.point))),
            };
            let label = format!("{} / {} — {what}", file.name, spec.config);
            self.add(
                &run_dir(dir, &spec.id),
                Some(file.name.clone()),
                spec.config.clone(),
                spec.train.seed,
                phase,
                describe_point(&spec.point),
                label,
            );
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        dir: &Path,
        study: Option<String>,
        config: String,
        seed: u64,
        phase: &'static str,
        point: String,
        label: String,
    ) {
        if !dir.join(run::MODEL).is_file() {
            return;
        }
        let given = dir;
        let Ok(dir) = dir.canonicalize() else { return };
        let model = dir.join(run::MODEL).canonicalize();
        if !dir.starts_with(&self.root) || !model.is_ok_and(|m| m.starts_with(&self.root)) {
            self.outside.push(given.to_path_buf());
            return;
        }
        let digest = Sha256::digest(dir.to_string_lossy().as_bytes());
        let id: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        if self.runs.contains_key(&id) {
            return;
        }
        self.order.push(id.clone());
        let entry = Entry {
            id: id.clone(),
            study,
            config,
            seed,
            phase,
            point,
            label,
            dir,
            root: self.root.clone(),
        };
        self.runs.insert(id, entry);
    }

    /// The run `id`, when it is one of the catalogue's; anything else (a path, `..`, an
    /// unknown id) is `None`.
    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.runs.get(id)
    }

    /// Every run, in listing order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.order.iter().map(|id| &self.runs[id])
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}
