//! Shared helpers for the integration tests: PyTorch fixtures and tolerance checks.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use lenet::tensor::Tensor;
use serde_json::Value;

pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Reads one of the PyTorch golden-value files (see tests/fixtures/torch/README.md), from
/// `$LENET_TORCH_FIXTURES` when set (a set made by `scripts/torch_golden.py`).
pub fn torch_fixture(name: &str) -> Value {
    let dir = std::env::var_os("LENET_TORCH_FIXTURES")
        .map_or_else(|| fixture_dir().join("torch"), PathBuf::from);
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

/// A `{"shape": [...], "data": [...]}` tensor, converted to float32.
pub fn tensor(v: &Value) -> Tensor {
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .unwrap_or_else(|| panic!("not a tensor: {v}"))
        .iter()
        .map(|d| d.as_u64().expect("dimension") as usize)
        .collect();
    Tensor::from_vec(
        &shape,
        f64s(&v["data"]).into_iter().map(|x| x as f32).collect(),
    )
}

pub fn f64s(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(f64s).collect(),
        Value::Number(n) => vec![n.as_f64().expect("number")],
        Value::Object(_) => f64s(&v["data"]),
        _ => panic!("not numbers: {v}"),
    }
}

/// Asserts `|got - want| <= rel * max|want|` elementwise (the fixtures' tolerance rule).
pub fn assert_close(what: &str, got: &[f32], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
    let (worst, at) = got
        .iter()
        .zip(want)
        .enumerate()
        .map(|(i, (&g, &w))| ((g as f64 - w).abs(), i))
        .fold((0.0, 0), |a, b| if b.0 > a.0 { b } else { a });
    assert!(
        worst <= rel * scale,
        "{what}: |got - want| = {worst:e} at {at} (got {}, want {}) exceeds {rel:e} x max|want| = {:e}",
        got[at],
        want[at],
        rel * scale
    );
}

pub fn assert_tensor_close(what: &str, got: &Tensor, want: &Value, rel: f64) {
    let w = tensor(want);
    assert_eq!(got.shape, w.shape, "{what}: shape");
    assert_close(what, &got.data, &f64s(want), rel);
}

/// The fixtures' tolerance for layers, LeNet-5 and fixed-gradient optimizers.
pub const REL: f64 = 1e-5;

/// The committed MNIST subset (2,000 training and 500 test images).
pub fn subset_dir() -> PathBuf {
    fixture_dir().join("mnist-subset")
}

/// The `lenet` binary, with the data directory variable cleared so tests never touch the
/// user's cache or the network by accident.
pub fn lenet() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("lenet").expect("binary built");
    cmd.env_remove("LENET_DATA").env("RUST_BACKTRACE", "0");
    cmd
}

/// A study file of `tests/fixtures/studies`.
pub fn study_file(name: &str) -> PathBuf {
    fixture_dir().join("studies").join(name)
}

/// Runs `lenet study run FILE --out OUT` on the subset (plus `extra` arguments), asserts that
/// it succeeded and returns its output.
pub fn run_study_output(file: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut output = lenet();
    output
        .args(["study", "run"])
        .arg(file)
        .arg("--out")
        .arg(out)
        .arg("--data-dir")
        .arg(subset_dir())
        .args(extra);
    succeeded(&mut output)
}

/// Runs `command`, asserts that it succeeded (showing its standard error if not) and returns
/// its output.
pub fn succeeded(command: &mut assert_cmd::Command) -> std::process::Output {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// [`run_study_output`]'s standard output.
pub fn run_study(file: &Path, out: &Path, extra: &[&str]) -> String {
    String::from_utf8(run_study_output(file, out, extra).stdout).unwrap()
}

/// Copies the subset into a fresh directory, uncompressed, so tests can damage files.
pub fn subset_copy() -> tempfile::TempDir {
    use std::io::Read;
    let dir = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(subset_dir()).expect("subset") {
        let path = entry.expect("entry").path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(raw) = name.strip_suffix(".gz") {
            let mut bytes = Vec::new();
            flate2::read::GzDecoder::new(std::fs::File::open(&path).expect("open"))
                .read_to_end(&mut bytes)
                .expect("gunzip");
            std::fs::write(dir.path().join(raw), bytes).expect("write");
        }
    }
    dir
}

/// Chromium from Debian's `chromium` package (`scripts/test.sh` installs it), or
/// $LENET_CHROMIUM.
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("LENET_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::var("PATH").unwrap_or_default().split(':') {
            let path = Path::new(dir).join(name);
            if path.is_file() {
                return Some(path);
            }
        }
    }
    None
}

const INSTALL_CHROMIUM: &str = "install it (Debian: apt-get install chromium; scripts/test.sh \
                                does) or point LENET_CHROMIUM at a Chromium binary";

/// The Chromium binary; this test's failure when there is none.
pub fn chromium() -> PathBuf {
    find_chromium().unwrap_or_else(|| {
        panic!("this test opens a page in headless Chromium: {INSTALL_CHROMIUM}")
    })
}

/// Whether a browser test should skip: no Chromium here and `CI` unset, said in one line.
/// Under CI a missing Chromium is the test's failure, never a skip.
pub fn skip_without_chromium(test: &str) -> bool {
    if find_chromium().is_some() || std::env::var_os("CI").is_some() {
        return false;
    }
    eprintln!("skipped {test}: no headless Chromium; {INSTALL_CHROMIUM}");
    true
}
