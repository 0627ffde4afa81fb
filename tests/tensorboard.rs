//! A run's TensorBoard event file, read back by TensorBoard's own reader
//! (`EventAccumulator`, from `pip install tensorboard`; `scripts/test.sh` installs it): every
//! scalar equals the run's `metrics.csv`, to float32.

mod common;

use common::{lenet, subset_dir, succeeded};

/// TensorBoard's Python package, or why this test skips (never under CI).
fn tensorboard_missing() -> bool {
    let found = std::process::Command::new("python3")
        .args(["-c", "import tensorboard"])
        .status()
        .is_ok_and(|s| s.success());
    if !found && std::env::var_os("CI").is_none() {
        eprintln!(
            "skipped: TensorBoard's reader is not installed (pip install tensorboard; \
             scripts/test.sh does)"
        );
        return true;
    }
    assert!(
        found,
        "python3 -c 'import tensorboard' failed: pip install tensorboard"
    );
    false
}

const READ: &str = r#"
import json, math, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
print(json.dumps({tag: [(e.step, None if math.isnan(e.value) else e.value)
                        for e in acc.Scalars(tag)]
                  for tag in acc.Tags()["scalars"]}))
"#;

#[test]
fn tensorboard_reads_every_epoch_of_a_run() {
    if tensorboard_missing() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    succeeded(
        lenet()
            .args([
                "train",
                "-q",
                "--epochs",
                "3",
                "--valid-size",
                "500",
                "--data-dir",
            ])
            .arg(subset_dir())
            .args(["--instruments", "noise", "--instruments-every", "5"])
            .arg("--out")
            .arg(&run),
    );
    let out = std::process::Command::new("python3")
        .args(["-c", READ])
        .arg(&run)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let scalars: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let rows: Vec<Vec<f64>> = metrics
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 3);
    for (tag, column) in [
        ("learning_rate", 1),
        ("loss/train", 2),
        ("accuracy/train", 3),
        ("loss/valid", 4),
        ("accuracy/valid", 5),
    ] {
        let read = scalars[tag]
            .as_array()
            .unwrap_or_else(|| panic!("{tag}: {scalars}"));
        assert_eq!(read.len(), rows.len(), "{tag}");
        for (r, row) in read.iter().zip(&rows) {
            assert_eq!(r[0].as_f64().unwrap(), row[0], "{tag}: step");
            // TensorBoard's simple_value is a float32.
            assert_eq!(r[1].as_f64().unwrap() as f32, row[column] as f32, "{tag}");
        }
    }
    // Every recorded step's instruments, at its global step.
    let text = std::fs::read_to_string(run.join("instruments.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert!(rows.len() > 3);
    assert!(header.contains(&"noise_scale"));
    for (c, column) in header.iter().enumerate().skip(2) {
        let tag = format!("instruments/{column}");
        let read = scalars[&tag]
            .as_array()
            .unwrap_or_else(|| panic!("{tag}: {scalars}"));
        assert_eq!(read.len(), rows.len(), "{tag}");
        for (r, row) in read.iter().zip(&rows) {
            assert_eq!(r[0].as_f64().unwrap(), row[1], "{tag}: step");
            let (got, want) = (r[1].as_f64().map(|v| v as f32), row[c] as f32);
            // JSON has no NaN: TensorBoard's NaN reads back as null.
            assert!(
                got == Some(want) || (got.is_none() && want.is_nan()),
                "{tag}: {r} against {want}"
            );
        }
    }
}

const RUNS: &str = r#"
import json, sys
from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
m = EventMultiplexer()
m.AddRunsFromDirectory(sys.argv[1])
m.Reload()
print(json.dumps({run: len(m.Tensors(run, "loss/train")) if "loss/train" in tags["tensors"] else 0
                  for run, tags in m.Runs().items()}))
"#;

/// A study's `tensorboard/` folder shows its final runs by configuration and seed, each with
/// its epochs (read by the multiplexer TensorBoard's server uses; the diverged configuration's
/// runs are there, with no epoch).
#[test]
fn a_study_names_its_runs_by_configuration_and_seed() {
    if tensorboard_missing() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("tiny");
    common::run_study(&common::study_file("tiny.toml"), &out, &[]);
    let read = std::process::Command::new("python3")
        .args(["-c", RUNS])
        .arg(out.join("tensorboard"))
        .output()
        .unwrap();
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let runs: std::collections::BTreeMap<String, usize> =
        serde_json::from_slice(&read.stdout).unwrap();
    for config in ["adam", "momentum"] {
        let seeds: Vec<(&String, &usize)> = runs
            .iter()
            .filter(|(r, _)| r.starts_with(&format!("{config}/seed-")))
            .collect();
        assert_eq!(seeds.len(), 2, "{config}: {runs:?}");
        assert!(
            seeds.iter().all(|(_, epochs)| **epochs == 2),
            "{config}: {runs:?}"
        );
    }
}
