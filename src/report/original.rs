//! The original study's numbers, its claims, set beside what lenet measured: its optimizer
//! accuracies and ranking, its 2x2's logs and text. (Claims here are the original study's
//! statements; a run's lock file is a claim of [`crate::study::claim`].)

use super::numbers::{pct, pct_ci, points};
use super::text::code;
use crate::stats::Estimate;
use crate::study::summary::StudySummary;

/// One configuration as the study ran it and as lenet measured it.
pub struct OriginalRow {
    pub original: &'static str,
    pub config: String,
    pub claimed: String,
    pub measured: Estimate,
    /// One sentence on the difference.
    pub line: String,
}

/// The original study's optimizer results: (its name, lenet's optimizer, its test accuracy).
pub const ORIGINAL_OPTIMIZERS: [(&str, &str, f64); 6] = [
    ("gradient descent", "gd", 0.8804),
    ("SGD", "minibatch-sgd", 0.9593),
    ("SGD with momentum", "momentum", 0.9819),
    ("AdaGrad", "adagrad", 0.9391),
    ("RMSprop", "rmsprop", 0.9891),
    ("Adam", "adam", 0.9875),
];
/// Its ranking, best first.
pub const ORIGINAL_RANKING: &str = "Adam, RMSprop, AdaGrad, SGD, GD";

/// The original 2x2: (cell as [dropout, batch norm], its name, the validation accuracy its log
/// ends at, the accuracy its text claims).
pub const ORIGINAL_REGULARIZATION: [([u8; 2], &str, f64, f64); 4] = [
    ([0, 0], "neither", 0.9875, 0.98),
    ([0, 1], "batch normalization", 0.9895, 0.97),
    ([1, 0], "dropout", 0.9885, 0.78),
    ([1, 1], "both", 0.9885, 0.983),
];

/// Where one run's number (`claim`: the original study ran each configuration once) lies
/// against the 95% prediction interval of one run, mean ± t s sqrt(1 + 1/n), which is what a
/// single run is expected to fall in; the interval of the mean, which narrows with every
/// seed, is not.
fn position(claim: f64, e: &Estimate) -> String {
    let diff = points(claim - e.mean);
    match e.prediction() {
        None => format!("{diff} from the single measured run"),
        Some((low, _)) if claim < low => {
            format!("below the interval a single run falls in ({diff} from the mean)")
        }
        Some((_, high)) if claim > high => {
            format!("above the interval a single run falls in ({diff} from the mean)")
        }
        Some(_) => format!("inside the interval a single run falls in ({diff} from the mean)"),
    }
}

/// The optimizer claims, for the configurations whose optimizer matches (`optimizer_of`
/// gives a configuration's optimizer name). Also returns the ranking sentence.
pub fn optimizer_rows(
    s: &StudySummary,
    optimizer_of: impl Fn(&str) -> Option<String>,
    note_of: impl Fn(&str) -> Option<String>,
) -> (Vec<OriginalRow>, Option<String>) {
    let mut rows = Vec::new();
    for (original, optimizer, claimed) in ORIGINAL_OPTIMIZERS {
        let Some(c) = s
            .configs
            .iter()
            .find(|c| optimizer_of(&c.name).as_deref() == Some(optimizer))
        else {
            continue;
        };
        let Some(e) = c.test_accuracy else { continue };
        rows.push(OriginalRow {
            original,
            config: c.name.clone(),
            claimed: pct(claimed),
            measured: e,
            line: format!(
                "{original}: the study reported {} from one untuned run; {} measured {}. The \
                 claim is {}.{}",
                pct(claimed),
                code(&c.name),
                pct_ci(&e),
                position(claimed, &e),
                note_of(&c.name).map_or(String::new(), |n| format!(" {n}"))
            ),
        });
    }
    if rows.len() < 2 {
        return (rows, None);
    }
    let mut ranked: Vec<&OriginalRow> = rows.iter().collect();
    ranked.sort_by(|a, b| b.measured.mean.total_cmp(&a.measured.mean));
    let tied = |name: &str| s.configs.iter().any(|c| c.name == name && c.tied_with_best);
    let order: Vec<String> = ranked
        .iter()
        .map(|r| {
            let mark = if tied(&r.config) {
                " (not shown different from the best)"
            } else {
                ""
            };
            format!("{}{mark}", r.original)
        })
        .collect();
    let ranking = format!(
        "The study ranked the optimizers {ORIGINAL_RANKING}. Measured, by mean test accuracy: \
         {}. Where configurations are not shown different from the best, their order is within \
         the noise.",
        order.join(" > ")
    );
    (rows, Some(ranking))
}

/// The 2x2 claims, when the study's factors are dropout and batch normalization. `cell_of`
/// gives a configuration's cell in the study's factor order; `dropout_first` says whether
/// dropout is the first factor.
pub fn regularization_rows(
    s: &StudySummary,
    cell_of: impl Fn(&str) -> Option<[u8; 2]>,
    dropout_first: bool,
) -> Vec<OriginalRow> {
    let mut rows = Vec::new();
    for (cell, original, logged, text) in ORIGINAL_REGULARIZATION {
        let want = if dropout_first {
            cell
        } else {
            [cell[1], cell[0]]
        };
        let Some(c) = s.configs.iter().find(|c| cell_of(&c.name) == Some(want)) else {
            continue;
        };
        let Some(e) = c.test_accuracy else { continue };
        let contradiction = if (logged - text).abs() >= 0.005 {
            format!(
                " The text contradicts the study's own log by {}.",
                points(text - logged)
            )
        } else {
            String::new()
        };
        let copied = if cell == [1, 1] {
            " Its log for this cell is a copy of the dropout log, so the study has no \
             measurement of it."
        } else {
            ""
        };
        rows.push(OriginalRow {
            original,
            config: c.name.clone(),
            claimed: format!("log {}, text {}", pct(logged), pct(text)),
            measured: e,
            line: format!(
                "{original}: the study's log ends at {} validation accuracy and its text claims {}; \
                 {} measured {} test accuracy. The log is {}; the text is {}.{contradiction}\
                 {copied}",
                pct(logged),
                pct(text),
                code(&c.name),
                pct_ci(&e),
                position(logged, &e),
                position(text, &e)
            ),
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estimate(mean: f64, ci95: f64) -> Estimate {
        Estimate {
            n: 5,
            mean,
            sd: ci95,
            ci95,
        }
    }

    #[test]
    fn a_claim_is_placed_against_the_interval() {
        let e = estimate(0.99, 0.001);
        // The prediction interval of one run: 0.99 ± 2.776 x 0.001 x sqrt(1.2) = ± 0.0030.
        assert!(position(0.986, &e).starts_with("below"));
        assert!(position(0.994, &e).starts_with("above"));
        // Outside the interval of the mean (± 0.001) but where a single run falls.
        assert!(position(0.9925, &e).starts_with("inside"));
        assert_eq!(points(0.0123), "+1.23 points");
    }
}
