//! The committed results say only what their numbers say: every study's report headline is
//! the sentence lenet makes from that study's `summary.json` now, and every headline that
//! `results/README.md` quotes is, word for word, its study's.

use std::path::{Path, PathBuf};

use lenet::study::summary::StudySummary;

fn results_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("results")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The headline of a report: the bold line under "## The answer", without its stars.
fn report_headline(report: &str) -> Option<String> {
    let answer = report.split("## The answer").nth(1)?;
    let line = answer.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(line.strip_prefix("**")?.strip_suffix("**")?.to_string())
}

/// Every committed study: its name and directory.
fn studies() -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(results_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("summary.json").exists())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    out.sort();
    out
}

#[test]
fn every_report_headline_is_made_from_its_numbers() {
    let studies = studies();
    assert!(studies.len() >= 7, "{studies:?}");
    for (name, dir) in studies {
        let report = read(&dir.join("report.md"));
        let written = report_headline(&report).unwrap_or_else(|| panic!("{name}: no headline"));
        let summary: StudySummary = serde_json::from_str(&read(&dir.join("summary.json")))
            .unwrap_or_else(|e| panic!("{name}: summary.json is not this build's: {e}"));
        // The dataset's name as the sentence opens ("On MNIST, ...").
        let dataset = written
            .strip_prefix("On ")
            .and_then(|r| r.split(',').next())
            .unwrap_or_else(|| panic!("{name}: {written}"));
        let made = lenet::report::text::headline(&summary, dataset)
            .unwrap_or_else(|| panic!("{name}: no headline from its summary"));
        assert_eq!(
            written, made,
            "{name}: report.md's headline is not its numbers'"
        );
    }
}

#[test]
fn the_results_readme_quotes_each_headline_word_for_word() {
    let readme = read(&results_dir().join("README.md"));
    let mut quoted = 0;
    for line in readme.lines() {
        // "- `NAME`: **HEADLINE**"
        let Some(rest) = line.strip_prefix("- `") else {
            continue;
        };
        let Some((name, sentence)) = rest.split_once("`: **") else {
            continue;
        };
        let sentence = sentence.strip_suffix("**").expect("closed in bold");
        let report = read(&results_dir().join(name).join("report.md"));
        assert_eq!(
            report_headline(&report).as_deref(),
            Some(sentence),
            "results/README.md quotes {name}'s headline otherwise"
        );
        quoted += 1;
    }
    assert_eq!(quoted, studies().len(), "one headline per committed study");
}
