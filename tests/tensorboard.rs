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
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1])
acc.Reload()
print(json.dumps({tag: [(e.step, e.value) for e in acc.Scalars(tag)]
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
}
