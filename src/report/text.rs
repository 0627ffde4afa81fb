//! Sentences generated from a study's statistics: the conclusions, and the original study's
//! claims set beside what was measured. Nothing here is written for a particular result; every
//! number and every verdict comes from the summary.

use super::numbers::{p_value, pct, pct_ci, points, points_within};
use crate::format::thousands;
use crate::stats::Estimate;
use crate::study::seeds::{contrast_names, family_alpha, within};
use crate::study::summary::{ConfigSummary, EFFECTS, Factorial, Power, StudySummary};

fn join(names: &[String]) -> String {
    match names.len() {
        0 => String::new(),
        1 => names[0].clone(),
        n => format!("{} and {}", names[..n - 1].join(", "), names[n - 1]),
    }
}

/// A configuration's name as code: `` `name` ``.
pub(super) fn code(name: &str) -> String {
    format!("`{name}`")
}

/// Where zero lies relative to an effect's interval, `estimate` ± `half`.
fn verdict(estimate: f64, half: f64, up: &str, down: &str) -> String {
    if !half.is_finite() {
        "too few seeds to say".into()
    } else if estimate - half > 0.0 {
        up.into()
    } else if estimate + half < 0.0 {
        down.into()
    } else {
        "not distinguishable from no effect at this number of seeds".into()
    }
}

/// The answer to the study's question, as sentences.
pub fn conclusions(s: &StudySummary, targets: &[f64]) -> Vec<String> {
    let mut out = Vec::new();
    let Some(best) = s.configs.iter().find(|c| c.name == s.best) else {
        out.push(
            "No configuration has a finished run yet, so there is nothing to conclude.".into(),
        );
        return out;
    };
    ranking(s, best, &mut out);
    for c in s.configs.iter().filter(|c| c.diverged > 0) {
        out.push(format!(
            "{} diverged in {} of its {} runs (loss not finite or above 100); its statistics cover \
             the {} that finished.",
            code(&c.name),
            c.diverged,
            c.runs,
            c.runs - c.diverged
        ));
    }
    if let Some(f) = &s.factorial {
        effects(s, f, &mut out);
    }
    for (t, &target) in targets.iter().enumerate() {
        out.extend(fastest_to(s, t, target));
    }
    for c in s.configs.iter().filter(|c| !c.collapsed.is_empty()) {
        let is_bad = |seed: &u64| c.collapsed.contains(seed);
        let bad: Vec<String> = (c.per_seed.iter())
            .filter(|(seed, _)| is_bad(seed))
            .map(|(seed, a)| format!("seed {seed} ended at {}", pct(*a)))
            .collect();
        let good: Vec<f64> = (c.per_seed.iter())
            .filter(|(seed, _)| !is_bad(seed))
            .map(|(_, a)| *a)
            .collect();
        let (lo, hi) = (good.iter()).fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), a| {
            (l.min(*a), h.max(*a))
        });
        out.push(format!(
            "{} is unstable: {}, the other {} seeds at {} to {}. Its mean and interval describe \
             neither kind of run, so it is not compared with the best.",
            code(&c.name),
            join(&bad),
            good.len(),
            pct(lo),
            pct(hi)
        ));
    }
    for c in s.configs.iter().filter(|c| !c.grid_edges.is_empty()) {
        out.push(format!(
            "{}'s tuned {} at the edge of its grid: a better value may lie beyond it, so its \
             result is a lower bound of what tuning could give.",
            code(&c.name),
            if c.grid_edges.len() == 1 {
                format!("{} is", c.grid_edges[0])
            } else {
                format!("{} are", join(&c.grid_edges))
            }
        ));
    }
    if s.missing_runs > 0 {
        out.push(format!(
            "{} runs are not finished yet; everything above covers the finished ones.",
            s.missing_runs
        ));
    }
    out
}

/// One effect for the headline: its name, estimate, 95% half-width, and what deciding it would
/// take (an adaptive study's seeds needed, and the half-width it asked for).
struct Effect {
    name: String,
    mean: f64,
    half: f64,
    needed: Option<(Option<usize>, f64)>,
    /// The interaction (a difference of effects), not a factor's effect on accuracy.
    interaction: bool,
}

impl Effect {
    /// "dropout raises test accuracy, by 0.010 to 0.090 points", "... changes test accuracy
    /// by less than 0.040 points", or the interval with the cost of deciding it.
    fn phrase(&self) -> String {
        let (low, high) = (self.mean - self.half, self.mean + self.half);
        let bound = low.abs().max(high.abs());
        let p = |v: f64| format!("{:.3}", 100.0 * v);
        if !self.half.is_finite() {
            return format!("{} cannot be measured with one seed", self.name);
        }
        if low > 0.0 || high < 0.0 {
            let sign = if low > 0.0 { "positive" } else { "negative" };
            let (near, far) = (p(low.abs().min(high.abs())), p(bound));
            return if self.interaction {
                format!(
                    "{} is {sign}, {near} to {far} points (together the two factors give {} \
                     than their separate effects add up to)",
                    self.name,
                    if low > 0.0 { "more" } else { "less" }
                )
            } else {
                let verb = if low > 0.0 { "raises" } else { "lowers" };
                format!(
                    "{} {verb} test accuracy, by {near} to {far} points",
                    self.name
                )
            };
        }
        match self.needed {
            Some((_, until)) if within(self.half, until) => {
                let what = if self.interaction {
                    "is smaller than"
                } else {
                    "changes test accuracy by less than"
                };
                format!("{} {what} {} points", self.name, p(bound))
            }
            Some((needed, until)) => format!(
                "{} is not decided (between {} and {}; ±{until} points would take {} seeds)",
                self.name,
                points_within(low, self.half),
                points_within(high, self.half),
                needed.map_or("more than can be counted".into(), thousands)
            ),
            None => format!(
                "{} is not distinguishable from no effect (between {} and {})",
                self.name,
                points(low),
                points(high)
            ),
        }
    }
}

/// The study's answer in one sentence (on `dataset`): for a study of the random streams,
/// each stream's share of the variance; for a 2x2 design what each factor and their
/// interaction do to test accuracy, from an adaptive study's intervals or else the
/// paired intervals over seeds; otherwise the best configuration, those not shown different
/// from it and those shown below it.
pub fn headline(s: &StudySummary, dataset: &str) -> Option<String> {
    if s.streams.iter().any(|r| r.share.is_some()) {
        let mut rows: Vec<_> = s.streams.iter().filter(|r| r.share.is_some()).collect();
        rows.sort_by(|a, b| b.share.unwrap_or(0.0).total_cmp(&a.share.unwrap_or(0.0)));
        let name = |stream: &str| -> String {
            match stream {
                "init" => "the initial weights".into(),
                "order" => "the order of the training images".into(),
                "dropout" => "dropout's masks".into(),
                other => other.into(),
            }
        };
        let parts: Vec<String> = (rows.iter())
            .map(|r| {
                format!(
                    "{} {:.0}% (sd {:.3} points, 95% CI {:.3} to {:.3})",
                    name(r.stream.as_deref().unwrap_or_default()),
                    100.0 * r.share.unwrap_or_default(),
                    100.0 * r.sd,
                    100.0 * r.sd_low,
                    100.0 * r.sd_high
                )
            })
            .collect();
        return Some(format!(
            "On {dataset}, of the seed-to-seed variance of test accuracy from the random streams \
             varied one at a time, {}.",
            join(&parts)
        ));
    }
    if let Some(f) = &s.factorial {
        let names = [
            f.factors[0].clone(),
            f.factors[1].clone(),
            "their interaction".to_string(),
        ];
        // An adaptive study's intervals, else the paired ones; none from cell means.
        let want = if s.adaptive.is_some() {
            Source::Adaptive
        } else {
            Source::Paired
        };
        let intervals = effect_intervals(s, f);
        if intervals.iter().any(|i| i.source != want) {
            return None;
        }
        let effects: Vec<Effect> = (names.iter().zip(intervals))
            .enumerate()
            .map(|(k, (name, i))| Effect {
                name: name.clone(),
                mean: i.mean,
                half: i.half,
                needed: i.needed,
                interaction: k == 2,
            })
            .collect();
        let how = format!(
            "paired intervals over {} seeds that hold jointly at 95%: 98.33% each, Bonferroni \
             over the three",
            s.seeds
        );
        return Some(format!(
            "On {dataset}, {}; {}; and {} ({how}).",
            effects[0].phrase(),
            effects[1].phrase(),
            effects[2].phrase()
        ));
    }
    let best = s.configs.iter().find(|c| c.name == s.best)?;
    let acc = best.test_accuracy?;
    let others = |f: &dyn Fn(&ConfigSummary) -> bool| -> Vec<String> {
        (s.configs.iter())
            .filter(|c| c.name != best.name && c.test_accuracy.is_some() && f(c))
            .map(|c| code(&c.name))
            .collect()
    };
    let tied = others(&|c| c.tied_with_best);
    let below = others(&|c| !c.tied_with_best && c.collapsed.is_empty());
    let unstable = others(&|c| !c.collapsed.is_empty());
    let mut parts = vec![format!(
        "On {dataset}, {} is best at {} ± {:.2} points",
        code(&best.name),
        pct(acc.mean),
        100.0 * acc.ci95
    )];
    if !tied.is_empty() {
        parts.push(format!("{} not shown different from it", join(&tied)));
    }
    if !below.is_empty() {
        parts.push(format!("{} shown below it", join(&below)));
    }
    if !unstable.is_empty() {
        parts.push(format!("{} unstable", join(&unstable)));
    }
    Some(format!(
        "{} ({} seeds; paired t-tests with the best, Holm-corrected, 5%).",
        parts.join("; "),
        s.seeds
    ))
}

/// The best configuration, those not shown different from it and those shown below it (the
/// k - 1 comparisons with the best, paired over shared seeds, Holm-corrected).
fn ranking(s: &StudySummary, best: &ConfigSummary, out: &mut Vec<String>) {
    let best_acc = best.test_accuracy.expect("the best has an accuracy");
    out.push(format!(
        "{} has the highest mean test accuracy: {}.",
        code(&best.name),
        pct_ci(&best_acc)
    ));
    let with_acc: Vec<&ConfigSummary> = s
        .configs
        .iter()
        .filter(|c| c.name != best.name && c.test_accuracy.is_some() && c.collapsed.is_empty())
        .collect();
    let tied: Vec<String> = with_acc
        .iter()
        .filter(|c| c.tied_with_best)
        .map(|c| code(&c.name))
        .collect();
    let worse: Vec<&&ConfigSummary> = with_acc.iter().filter(|c| !c.tied_with_best).collect();
    let family = format!(
        "the {} comparisons with the best, paired t-tests over the seeds they share, \
         Holm-corrected, 5%",
        with_acc.len()
    );
    if !with_acc.is_empty() && worse.is_empty() {
        out.push(format!(
            "No other configuration is shown to be worse ({family}): {} {} not shown different \
             from it, so these runs cannot rank them.",
            join(&tied),
            if tied.len() == 1 { "is" } else { "are" }
        ));
    } else if !with_acc.is_empty() {
        if !tied.is_empty() {
            out.push(format!(
                "Not shown different from it ({family}): {}.",
                join(&tied)
            ));
        }
        let list: Vec<String> = worse
            .iter()
            .map(|c| {
                let e = c.test_accuracy.expect("filtered");
                let p = (c.vs_best.as_ref())
                    .map_or(String::new(), |v| format!(", Holm p {}", p_value(v.p_holm)));
                format!("{} ({}{p})", code(&c.name), points(e.mean - best_acc.mean))
            })
            .collect();
        out.push(format!("Shown below it: {}.", join(&list)));
    }
}

/// The main effects and the interaction of a 2x2 design.
fn effects(s: &StudySummary, f: &Factorial, out: &mut Vec<String>) {
    effect_sentences(s, f, out);
    if let Some(paired) = f.paired {
        let names = [
            capitalize(&f.factors[0]),
            capitalize(&f.factors[1]),
            "The interaction".to_string(),
        ];
        let costs: Vec<String> = (names.iter().zip(paired))
            .filter_map(|(name, p)| {
                let power = Power::of_paired_at(&p, family_alpha(EFFECTS))?;
                if power.identical {
                    return Some(format!("{name}: identical on every seed"));
                }
                let seeds = power
                    .seeds_needed
                    .map_or("over 100,000".to_string(), |n| n.to_string());
                Some(format!(
                    "{name}: {} at 80% power with these {} seeds; 0.1 points would take {seeds}",
                    points(power.detectable).trim_start_matches('+'),
                    p.n
                ))
            })
            .collect();
        if !costs.is_empty() {
            out.push(format!(
                "The smallest effects these runs detect (paired over seeds, at the family's level \
                 5% / 3): {}.",
                costs.join("; ")
            ));
        }
    }
}

/// Where an effect's interval comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Source {
    /// An adaptive study's interval over every seed run.
    Adaptive,
    /// The t-interval of the per-seed contrasts.
    Paired,
    /// The contrast of cell means (Welch–Satterthwaite).
    Cells,
}

/// One 2x2 effect's interval, and what deciding it would take (an adaptive study's seeds
/// needed, and the half-width in points it asked for).
struct EffectInterval {
    mean: f64,
    half: f64,
    how: String,
    source: Source,
    needed: Option<(Option<usize>, f64)>,
}

/// The main effects' and the interaction's intervals, each the one the design supports best:
/// an adaptive study's (found by the contrast's name), else the paired one over seeds, else
/// the contrast of cell means. The three are one family: each interval is at level 98.33%
/// (Bonferroni), so that together they hold at 95%.
fn effect_intervals(s: &StudySummary, f: &Factorial) -> Vec<EffectInterval> {
    let contrasts = [&f.main_effects[0], &f.main_effects[1], &f.interaction];
    let names = contrast_names(&f.factors[0], &f.factors[1]);
    let alpha = family_alpha(EFFECTS);
    (0..3)
        .map(|k| {
            let adaptive = (s.adaptive.as_ref()).and_then(|a| {
                let i = a.intervals.iter().find(|i| i.name == names[k])?;
                Some((i, a.decision.rule.until))
            });
            if let Some((i, until)) = adaptive {
                EffectInterval {
                    mean: i.mean,
                    half: i.half_width,
                    how: format!(
                        "98.33% CI over {} paired seeds, joint 95% with the other two",
                        i.seeds
                    ),
                    source: Source::Adaptive,
                    needed: Some((i.needed, until)),
                }
            } else if let Some(p) = f.paired.as_ref().map(|p| p[k]) {
                EffectInterval {
                    mean: p.mean,
                    half: p.half_width(alpha),
                    how: format!(
                        "98.33% CI paired over {} seeds, joint 95% with the other two",
                        p.n
                    ),
                    source: Source::Paired,
                    needed: None,
                }
            } else {
                let c = contrasts[k];
                EffectInterval {
                    mean: c.estimate,
                    half: c.half_width(alpha),
                    how: "98.33% CI, joint 95% with the other two".into(),
                    source: Source::Cells,
                    needed: None,
                }
            }
        })
        .collect()
}

/// The main effects' and the interaction's sentences, each with the interval the design
/// supports best ([`effect_intervals`]).
fn effect_sentences(s: &StudySummary, f: &Factorial, out: &mut Vec<String>) {
    let intervals: Vec<(f64, f64, String)> = (effect_intervals(s, f).into_iter())
        .map(|i| (i.mean, i.half, i.how))
        .collect();
    let range = |&(e, h, _): &(f64, f64, String)| {
        format!("{} to {}", points_within(e - h, h), points_within(e + h, h))
    };
    // An adaptive study's precision: an interval that reaches it and holds 0 bounds the effect.
    let until = s.adaptive.as_ref().map(|a| a.decision.rule.until);
    let judge = |&(e, h, _): &(f64, f64, String), up: &str, down: &str| match until {
        Some(u) if (e - h) <= 0.0 && (e + h) >= 0.0 && within(h, u) => format!(
            "smaller than {:.3} points either way, within the ±{u} points the study asked for",
            100.0 * (e.abs() + h)
        ),
        _ => verdict(e, h, up, down),
    };
    for (factor, effect) in f.factors.iter().zip(&intervals) {
        out.push(format!(
            "{}: {} of test accuracy on average over the levels of the other factor ({}: {}): \
             {}.",
            capitalize(factor),
            points_within(effect.0, effect.1),
            effect.2,
            range(effect),
            judge(effect, "it helps", "it hurts")
        ));
    }
    let i = &intervals[2];
    out.push(format!(
        "Interaction (the effect of {} with {} minus its effect without): {} ({}: {}): {}.",
        f.factors[1],
        f.factors[0],
        points_within(i.0, i.1),
        i.2,
        range(i),
        judge(
            i,
            "the two help more together than their separate effects add up to",
            "together they give less than their separate effects add up to"
        )
    ));
}

/// Which configuration reached validation-accuracy target `t` (`target`) first in every run,
/// when Welch's test of its seconds against the next fastest's says so (5%); otherwise that
/// the two are not distinguishable.
fn fastest_to(s: &StudySummary, t: usize, target: f64) -> Option<String> {
    let mut reached: Vec<(&ConfigSummary, Estimate)> = (s.configs.iter())
        .filter_map(|c| {
            let r = c.targets.get(t)?;
            (r.reached == c.runs && c.runs > 0).then_some((c, r.seconds?))
        })
        .collect();
    reached.sort_by(|a, b| a.1.mean.total_cmp(&b.1.mean));
    // A configuration trained without a validation split has no validation accuracy: not
    // measured, which is not "never reached".
    let (unmeasured, measured): (Vec<&ConfigSummary>, Vec<&ConfigSummary>) =
        (s.configs.iter()).partition(|c| c.without_validation());
    let never: Vec<String> = (measured.into_iter())
        .filter(|c| c.targets.get(t).is_some_and(|r| r.reached == 0))
        .map(|c| code(&c.name))
        .collect();
    let unmeasured: Vec<String> = unmeasured.iter().map(|c| code(&c.name)).collect();
    let mut never = if never.is_empty() {
        String::new()
    } else {
        format!(" Never reached it: {}.", join(&never))
    };
    if !unmeasured.is_empty() {
        never.push_str(&format!(
            " Not measured (trained without a validation split): {}.",
            join(&unmeasured)
        ));
    }
    let Some(&(c, e)) = reached.first() else {
        return (!s.configs.is_empty()).then(|| {
            format!(
                "No configuration reached {} validation accuracy in every run.",
                pct(target)
            )
        });
    };
    let epochs = (c.targets[t].epochs).map_or(String::new(), |e| format!(", {:.1} epochs", e.mean));
    let test = reached
        .get(1)
        .map(|&(d, f)| (d, f, crate::stats::welch_of(&e, &f)));
    Some(match test {
        Some((d, f, Some(w))) if w.p >= 0.05 => format!(
            "To {} validation accuracy, {} ({:.1} s on average on this machine{epochs}) and {} \
             ({:.1} s) are not distinguishable (Welch's t-test, p {}).{never}",
            pct(target),
            code(&c.name),
            e.mean,
            code(&d.name),
            f.mean,
            p_value(w.p)
        ),
        Some((d, _, Some(w))) => format!(
            "Fastest to {} validation accuracy in every run: {}, {:.1} s on average on this \
             machine{epochs}, faster than the next, {} (Welch's t-test, p {}).{never}",
            pct(target),
            code(&c.name),
            e.mean,
            code(&d.name),
            p_value(w.p)
        ),
        other => format!(
            "Fastest to {} validation accuracy in every run: {}, {:.1} s on average on this \
             machine{epochs} ({}).{never}",
            pct(target),
            code(&c.name),
            e.mean,
            if other.is_none() {
                "no other configuration reached it in every run"
            } else {
                "too few runs to test it against the next"
            }
        ),
    })
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The headline's phrases: a sign when the interval excludes 0, a bound when it reached
    /// the precision asked, else the cost of deciding; an interaction is a difference of
    /// effects, not a change of accuracy.
    #[test]
    fn headline_phrases_follow_the_interval_and_the_precision_asked() {
        let effect = |mean, half, interaction| Effect {
            name: "x".into(),
            mean,
            half,
            needed: Some((Some(86), 0.05)),
            interaction,
        };
        assert_eq!(
            effect(0.0006, 0.00045, false).phrase(),
            "x raises test accuracy, by 0.015 to 0.105 points"
        );
        assert_eq!(
            effect(0.00025, 0.00028, false).phrase(),
            "x changes test accuracy by less than 0.053 points"
        );
        assert_eq!(
            effect(-0.0006, 0.00073, true).phrase(),
            "x is not decided (between -0.133 points and +0.013 points; ±0.05 points would take \
             86 seeds)"
        );
        assert!(
            effect(0.002, 0.0016, true)
                .phrase()
                .starts_with("x is positive, 0.040 to 0.360 points (together")
        );
    }

    #[test]
    fn verdict_follows_the_interval() {
        assert_eq!(verdict(0.01, 0.005, "up", "down"), "up");
        assert_eq!(verdict(-0.01, 0.005, "up", "down"), "down");
        assert!(verdict(0.01, 0.02, "up", "down").starts_with("not distinguishable"));
        assert_eq!(
            verdict(0.01, f64::NAN, "up", "down"),
            "too few seeds to say"
        );
    }
}
