//! Arguments several commands share.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::data::{DataCache, Dataset, DatasetImages, fetch};

#[derive(Args, Debug, Clone)]
pub(super) struct DataDirArgs {
    /// Where the data lives: MNIST's four IDX files under their usual names, raw or .gz, in
    /// DIR itself, Fashion-MNIST's in DIR/fashion-mnist. Missing files are downloaded there.
    /// [default: $LENET_DATA, else the platform's cache directory, e.g. ~/.cache/lenet]
    #[arg(long, value_name = "DIR", env = "LENET_DATA")]
    pub(super) data_dir: Option<PathBuf>,
    /// Print nothing but results and errors.
    #[arg(long, short)]
    pub(super) quiet: bool,
}

impl DataDirArgs {
    pub(super) fn dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(fetch::default_data_dir)
    }

    /// Loads `dataset`, fetching it first when files are missing.
    pub(super) fn load(&self, dataset: Dataset) -> Result<DatasetImages> {
        Ok(fetch::load(&self.dir(), dataset, self.quiet)?)
    }

    /// The datasets of the data directory, each loaded when first needed.
    pub(super) fn library(&self) -> DataCache {
        DataCache::new(&self.dir(), self.quiet)
    }
}
