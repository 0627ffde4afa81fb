//! The datasets ([`Dataset`]: MNIST and Fashion-MNIST): reading IDX files, fetching them, the
//! validation split and batches.
//!
//! Images stay in memory as bytes (47 MB for the training set) and are converted to float32
//! one batch at a time by [`Preprocess::fill_batch`].

pub mod dataset;
pub mod distort;
pub mod fetch;
pub mod idx;

pub use dataset::Dataset;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::parallel::{SharedMut, for_each_chunk};
use crate::rng::{Purpose, Rng};
use crate::tensor::Tensor;
use idx::IdxKind;

/// Everything that can go wrong with data files. Each error names the file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: wrong magic number 0x{found:08x}; expected {expected}")]
    BadMagic {
        path: PathBuf,
        found: u32,
        expected: &'static str,
    },
    #[error(
        "{path}: truncated or oversized: dimensions {dims:?} need {expected} bytes of data, found {found}"
    )]
    WrongLength {
        path: PathBuf,
        dims: Vec<usize>,
        expected: usize,
        found: usize,
    },
    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error("could not fetch the data: {0}")]
    Fetch(String),
}

/// A set of same-sized greyscale images, one byte per pixel.
#[derive(Clone, Debug)]
pub struct Images {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<u8>,
}

impl Images {
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.rows * self.cols;
        &self.pixels[i * n..(i + 1) * n]
    }
}

/// Images with their labels.
#[derive(Clone, Debug)]
pub struct LabelledImages {
    pub images: Images,
    pub labels: Vec<u8>,
}

impl LabelledImages {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// The training and test sets of a dataset (MNIST, or one of the same shape).
#[derive(Clone, Debug)]
pub struct DatasetImages {
    pub dataset: Dataset,
    pub train: LabelledImages,
    pub test: LabelledImages,
    /// [`DatasetImages::fingerprint`], computed when first asked for (a run's start or resume; a
    /// report or the explorer never need it).
    fingerprint: std::sync::OnceLock<String>,
}

/// The four files of MNIST under their usual names (without `.gz`).
pub const FILES: [(&str, IdxKind); 4] = [
    ("train-images-idx3-ubyte", IdxKind::Images),
    ("train-labels-idx1-ubyte", IdxKind::Labels),
    ("t10k-images-idx3-ubyte", IdxKind::Images),
    ("t10k-labels-idx1-ubyte", IdxKind::Labels),
];

/// Finds one MNIST file in `dir` under its usual names: `train-images-idx3-ubyte`, the dotted
/// variant `train-images.idx3-ubyte`, either one with `.gz`.
pub fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let dotted = name.replacen("-idx", ".idx", 1);
    [name.to_string(), dotted]
        .iter()
        .flat_map(|n| [n.clone(), format!("{n}.gz")])
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// Whether all four files are present in `dir`.
pub fn is_complete(dir: &Path) -> bool {
    FILES.iter().all(|(name, _)| find_file(dir, name).is_some())
}

fn load_array(dir: &Path, name: &str, kind: IdxKind) -> Result<idx::IdxArray, DataError> {
    let path = find_file(dir, name).ok_or_else(|| DataError::Io {
        path: dir.join(name),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"),
    })?;
    let array = idx::read(&path, kind)?;
    if kind == IdxKind::Images && array.dims.len() != 3 {
        return Err(DataError::Corrupt {
            path,
            reason: format!(
                "expected 3 dimensions [count, rows, cols], found {:?}",
                array.dims
            ),
        });
    }
    if kind == IdxKind::Images && array.dims[1..] != [IMAGE_SIDE, IMAGE_SIDE] {
        return Err(DataError::Corrupt {
            path,
            reason: format!(
                "images are {}x{}; expected {IMAGE_SIDE}x{IMAGE_SIDE}, the size of MNIST's \
                 images (the network's input is that image padded to {INPUT_SIDE}x{INPUT_SIDE})",
                array.dims[1], array.dims[2]
            ),
        });
    }
    if kind == IdxKind::Labels && array.dims.len() != 1 {
        return Err(DataError::Corrupt {
            path,
            reason: format!("expected 1 dimension [count], found {:?}", array.dims),
        });
    }
    if kind == IdxKind::Labels
        && let Some(bad) = array.values.iter().find(|&&l| l > 9)
    {
        return Err(DataError::Corrupt {
            path,
            reason: format!("label {bad} is not a digit 0-9"),
        });
    }
    Ok(array)
}

fn load_pair(dir: &Path, images: &str, labels: &str) -> Result<LabelledImages, DataError> {
    let im = load_array(dir, images, IdxKind::Images)?;
    let lb = load_array(dir, labels, IdxKind::Labels)?;
    if im.dims[0] != lb.dims[0] {
        return Err(DataError::Invalid(format!(
            "{}: {} images but {} labels in {labels}",
            dir.join(images).display(),
            im.dims[0],
            lb.dims[0]
        )));
    }
    Ok(LabelledImages {
        images: Images {
            count: im.dims[0],
            rows: im.dims[1],
            cols: im.dims[2],
            pixels: im.values,
        },
        labels: lb.values,
    })
}

impl DatasetImages {
    /// Loads MNIST from a directory holding the four IDX files (raw or `.gz`).
    pub fn load(dir: &Path) -> Result<Self, DataError> {
        Self::load_as(dir, Dataset::Mnist)
    }

    /// Loads the test set alone from a directory holding its two test files (raw or `.gz`):
    /// what evaluating a trained model needs, so a damaged training file does not stop it.
    pub fn load_test(dir: &Path) -> Result<LabelledImages, DataError> {
        let test = load_pair(dir, FILES[2].0, FILES[3].0)?;
        if test.is_empty() {
            return Err(DataError::Invalid(format!(
                "{}: holds no images; expected at least one",
                dir.join(FILES[2].0).display()
            )));
        }
        Ok(test)
    }

    /// Loads `dataset` from a directory holding its four IDX files (raw or `.gz`).
    pub fn load_as(dir: &Path, dataset: Dataset) -> Result<Self, DataError> {
        let train = load_pair(dir, FILES[0].0, FILES[1].0)?;
        let test = load_pair(dir, FILES[2].0, FILES[3].0)?;
        for (set, name) in [(&train, FILES[0].0), (&test, FILES[2].0)] {
            if set.is_empty() {
                return Err(DataError::Invalid(format!(
                    "{}: holds no images; expected at least one",
                    dir.join(name).display()
                )));
            }
        }
        if (train.images.rows, train.images.cols) != (test.images.rows, test.images.cols) {
            return Err(DataError::Invalid(format!(
                "{}: training images are {}x{} but test images are {}x{}",
                dir.display(),
                train.images.rows,
                train.images.cols,
                test.images.rows,
                test.images.cols
            )));
        }
        Ok(DatasetImages {
            dataset,
            train,
            test,
            fingerprint: Default::default(),
        })
    }

    /// What was loaded, as 16 hex digits of SHA-256 over both sets' shapes, pixels and
    /// labels: a run records it, and a resume on other data is refused.
    pub fn fingerprint(&self) -> &str {
        self.fingerprint
            .get_or_init(|| fingerprint(&[&self.train, &self.test]))
    }
}

/// 16 hex digits of SHA-256 over each set's image count, size, pixels and labels.
fn fingerprint(sets: &[&LabelledImages]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for set in sets {
        let i = &set.images;
        for n in [i.count, i.rows, i.cols, set.labels.len()] {
            h.update((n as u64).to_le_bytes());
        }
        h.update(&i.pixels);
        h.update(&set.labels);
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The datasets of one data directory, each loaded (and fetched when missing) the first time
/// it is asked for, then shared: a study whose configurations train on different datasets
/// reads each once.
pub struct DataCache {
    dir: PathBuf,
    quiet: bool,
    loaded: [std::sync::OnceLock<Result<DatasetImages, String>>; 2],
}

impl DataCache {
    /// The datasets under `dir` ([`fetch::locate`]); `quiet` silences the fetching.
    pub fn new(dir: &Path, quiet: bool) -> Self {
        DataCache {
            dir: dir.to_path_buf(),
            quiet,
            loaded: Default::default(),
        }
    }

    /// `dataset`, loaded on first use.
    pub fn get(&self, dataset: Dataset) -> Result<&DatasetImages, DataError> {
        let slot = Dataset::ALL.iter().position(|d| *d == dataset);
        let loaded = self.loaded[slot.expect("a known dataset")]
            .get_or_init(|| fetch::load(&self.dir, dataset, self.quiet).map_err(|e| e.to_string()));
        loaded.as_ref().map_err(|e| DataError::Invalid(e.clone()))
    }
}

/// Indices of the training set split into a training and a validation part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<u32>,
    pub valid: Vec<u32>,
}

impl Split {
    /// Shuffles `0..count` with the split's own seed and holds out `valid_size` images. The
    /// split depends only on `count`, `valid_size` and `seed`, never on a run's seed, so every
    /// run of a study sees the same validation images.
    pub fn new(count: usize, valid_size: usize, seed: u64) -> Result<Self, DataError> {
        if valid_size >= count {
            return Err(DataError::Invalid(format!(
                "validation size {valid_size} leaves no training images out of {count}; \
                 expected a size below {count}"
            )));
        }
        let mut order: Vec<u32> = (0..count as u32).collect();
        Rng::stream(seed, Purpose::Split).shuffle(&mut order);
        let valid = order.split_off(count - valid_size);
        Ok(Split {
            train: order,
            valid,
        })
    }
}

/// How pixels become network inputs. Every variant pads 28x28 images to 32x32 with the value
/// a blank pixel gets, as the study's `transforms.Pad(2)` before `ToTensor` does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Preprocess {
    /// Pixels scaled to [0, 1] (the study's `ToTensor`).
    #[default]
    Unit,
    /// Scaled to [0, 1], then standardised by MNIST's mean 0.1307 and standard deviation 0.3081.
    Standardize,
    /// LeCun et al. (1998): background -0.1 and ink 1.175, so inputs have mean about 0 and
    /// variance about 1.
    Lecun,
}

/// Side of a dataset's images: every file must hold 28 x 28 images.
pub const IMAGE_SIDE: usize = 28;

/// Side of the network's input images.
pub const INPUT_SIDE: usize = 32;

impl Preprocess {
    /// `(scale, offset)` such that input = scale * pixel + offset for a byte pixel.
    pub fn affine(self) -> (f32, f32) {
        match self {
            Preprocess::Unit => (1.0 / 255.0, 0.0),
            Preprocess::Standardize => (1.0 / (255.0 * 0.3081), -0.1307 / 0.3081),
            Preprocess::Lecun => (1.275 / 255.0, -0.1),
        }
    }

    /// Fills `out` with the images `indices` of `images` as a `[n, 1, 32, 32]` batch (images
    /// in parallel; each value is computed alone, so the thread count changes nothing).
    pub fn fill_batch(self, images: &Images, indices: &[u32], out: &mut Tensor) {
        self.fill(images, indices, None, out);
    }

    /// [`Preprocess::fill_batch`] with each image distorted as pass `epoch` of a run whose
    /// distortion seed is `seed` draws it ([`distort::Distortion::draw`]).
    pub fn fill_distorted(
        self,
        images: &Images,
        indices: &[u32],
        (seed, epoch): (u64, usize),
        out: &mut Tensor,
    ) {
        self.fill(images, indices, Some((seed, epoch)), out);
    }

    fn fill(
        self,
        images: &Images,
        indices: &[u32],
        distort: Option<(u64, usize)>,
        out: &mut Tensor,
    ) {
        let (scale, offset) = self.affine();
        let side = INPUT_SIDE;
        out.resize(&[indices.len(), 1, side, side]);
        let pad_r = (side - images.rows.min(side)) / 2;
        let pad_c = (side - images.cols.min(side)) / 2;
        let (rows, cols) = (images.rows.min(side), images.cols.min(side));
        let fill = |(dst, &i): (&mut [f32], &u32), warped: &mut Vec<f32>| {
            // Each value written once: the border at the background value, the image inside.
            let src = images.image(i as usize);
            if let Some((seed, epoch)) = distort {
                warped.resize(images.rows * images.cols, 0.0);
                distort::Distortion::draw(seed, epoch, i as usize).apply(
                    src,
                    images.rows,
                    images.cols,
                    warped,
                );
            }
            let (top, rest) = dst.split_at_mut(pad_r * side);
            top.fill(offset);
            let (middle, bottom) = rest.split_at_mut(rows * side);
            bottom.fill(offset);
            for (r, out) in middle.chunks_exact_mut(side).enumerate() {
                let (left, rest) = out.split_at_mut(pad_c);
                let (d, right) = rest.split_at_mut(cols);
                left.fill(offset);
                right.fill(offset);
                if distort.is_some() {
                    let row = &warped[r * images.cols..][..cols];
                    for (d, &p) in d.iter_mut().zip(row) {
                        *d = scale * p + offset;
                    }
                } else {
                    let row = &src[r * images.cols..][..cols];
                    for (d, &p) in d.iter_mut().zip(row) {
                        *d = scale * p as f32 + offset;
                    }
                }
            }
        };
        // Tasks of 16 images; while one image is converted, the next one's pixels (a random
        // place in the set, usually not in any cache) are already on their way.
        const TASK: usize = 16;
        let image_len = side * side;
        let dst = SharedMut::new(&mut out.data);
        for_each_chunk(indices.len(), TASK, |_, first, count| {
            // SAFETY: each task writes its own images.
            let dst = unsafe { dst.range(first * image_len, count * image_len) };
            let task = &indices[first..first + count];
            let mut warped = Vec::new();
            for (k, (dst, i)) in dst.chunks_exact_mut(image_len).zip(task).enumerate() {
                if let Some(&next) = task.get(k + 1) {
                    prefetch(images.image(next as usize));
                }
                fill((dst, i), &mut warped);
            }
        });
    }
}

/// Asks the processor to start loading `bytes` into its caches (a hint: nothing else
/// changes; elsewhere than x86-64 it does nothing).
fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch reads nothing architecturally and cannot fault; SSE is part of
        // x86-64.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// Writes the first `train` training and `test` test images of `mnist` to `dir` as IDX `.gz`
/// files under the usual names.
pub fn write_subset(
    mnist: &DatasetImages,
    train: usize,
    test: usize,
    dir: &Path,
) -> Result<(), DataError> {
    use std::io::Write;
    std::fs::create_dir_all(dir).map_err(|source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for (set, count, images, labels) in [
        (&mnist.train, train, FILES[0].0, FILES[1].0),
        (&mnist.test, test, FILES[2].0, FILES[3].0),
    ] {
        if count > set.len() {
            return Err(DataError::Invalid(format!(
                "asked for {count} images from a set of {}",
                set.len()
            )));
        }
        let (r, c) = (set.images.rows, set.images.cols);
        let arrays = [
            (
                images,
                idx::IdxArray {
                    dims: vec![count, r, c],
                    values: set.images.pixels[..count * r * c].to_vec(),
                },
            ),
            (
                labels,
                idx::IdxArray {
                    dims: vec![count],
                    values: set.labels[..count].to_vec(),
                },
            ),
        ];
        for (name, array) in arrays {
            let path = dir.join(format!("{name}.gz"));
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            gz.write_all(&idx::encode(&array))
                .and_then(|_| gz.finish())
                .and_then(|bytes| std::fs::write(&path, bytes))
                .map_err(|source| DataError::Io { path, source })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_disjoint_complete_and_fixed() {
        let s = Split::new(100, 10, 0).unwrap();
        assert_eq!(s.valid.len(), 10);
        assert_eq!(s.train.len(), 90);
        let mut all: Vec<u32> = s.train.iter().chain(&s.valid).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(s, Split::new(100, 10, 0).unwrap());
        assert_ne!(s, Split::new(100, 10, 1).unwrap());
        assert!(Split::new(10, 10, 0).is_err());
    }

    #[test]
    fn batches_are_padded_and_scaled() {
        let images = Images {
            count: 1,
            rows: 28,
            cols: 28,
            pixels: vec![255; 28 * 28],
        };
        let mut t = Tensor::default();
        Preprocess::Unit.fill_batch(&images, &[0], &mut t);
        assert_eq!(t.shape, vec![1, 1, 32, 32]);
        assert_eq!(t.data[0], 0.0);
        assert_eq!(t.data[2 * 32 + 2], 1.0);
        assert_eq!(t.data[29 * 32 + 29], 1.0);
        assert_eq!(t.data[30 * 32 + 30], 0.0);
        Preprocess::Lecun.fill_batch(&images, &[0], &mut t);
        assert!((t.data[0] + 0.1).abs() < 1e-7);
        assert!((t.data[2 * 32 + 2] - 1.175).abs() < 1e-6);
    }

    /// Every value of a batch is written, over whatever the buffer held: the 2-pixel border
    /// at the background value, each pixel at its place inside.
    #[test]
    fn every_value_of_a_batch_is_written() {
        let images = Images {
            count: 2,
            rows: 28,
            cols: 28,
            pixels: (0..2 * 28 * 28).map(|i| (i * 7 % 256) as u8).collect(),
        };
        let mut t = Tensor::from_vec(&[2, 1, 32, 32], vec![f32::NAN; 2 * 32 * 32]);
        Preprocess::Lecun.fill_batch(&images, &[1, 0], &mut t);
        let (scale, offset) = Preprocess::Lecun.affine();
        for (slot, image) in [1usize, 0].into_iter().enumerate() {
            for r in 0..32 {
                for c in 0..32 {
                    let inside = (2..30).contains(&r) && (2..30).contains(&c);
                    let want = if inside {
                        let p = images.pixels[image * 784 + (r - 2) * 28 + (c - 2)];
                        scale * p as f32 + offset
                    } else {
                        offset
                    };
                    assert_eq!(t.data[slot * 1024 + r * 32 + c], want, "{slot} {r} {c}");
                }
            }
        }
    }
}
