//! `lenet data`: fetch a dataset, or write a small subset of it.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

use super::args::DataDirArgs;
use crate::data::{self, Dataset, DatasetImages, fetch};

#[derive(Subcommand, Debug)]
pub(super) enum DataCommand {
    /// Download a dataset's four files into the data directory and verify their SHA-256;
    /// files already there are verified too (once, then again only when they change).
    /// Fashion-MNIST is read from Debian's package where it is installed
    /// (`apt-get install dataset-fashion-mnist`).
    Fetch {
        #[command(flatten)]
        data: DataDirArgs,
        #[arg(long, value_enum, default_value_t = Dataset::Mnist)]
        dataset: Dataset,
        /// Mirror to try instead of the defaults (repeatable, tried in order): the base
        /// address of the four .gz files, or the address of a .tar.gz archive holding them.
        #[arg(long = "mirror", value_name = "URL")]
        mirrors: Vec<String>,
    },
    /// Write the first N training and test images as IDX .gz files (for quick experiments).
    Subset {
        #[command(flatten)]
        data: DataDirArgs,
        #[arg(long, value_enum, default_value_t = Dataset::Mnist)]
        dataset: Dataset,
        #[arg(long, default_value_t = 2000)]
        train: usize,
        #[arg(long, default_value_t = 500)]
        test: usize,
        /// Directory for the subset's four files.
        #[arg(long)]
        out: PathBuf,
    },
}

pub(super) fn run(command: DataCommand) -> Result<()> {
    match command {
        DataCommand::Fetch {
            data,
            dataset,
            mirrors,
        } => {
            let mirrors = if mirrors.is_empty() {
                fetch::mirrors_of(dataset)
            } else {
                mirrors
            };
            let dir = fetch::locate(&data.dir(), dataset);
            fetch::verify_present(&dir, dataset)?;
            fetch::ensure(&dir, dataset, &mirrors, data.quiet)?;
            let m = DatasetImages::load_as(&dir, dataset)?;
            say!(
                "{} in {}: {} training and {} test images",
                dataset.title(),
                dir.display(),
                m.train.len(),
                m.test.len()
            );
            Ok(())
        }
        DataCommand::Subset {
            data,
            dataset,
            train,
            test,
            out,
        } => {
            let m = data.load(dataset)?;
            data::write_subset(&m, train, test, &out)?;
            say!(
                "wrote {train} training and {test} test images to {}",
                out.display()
            );
            Ok(())
        }
    }
}
