//! Statistics for comparing configurations over seeds: means with Student-t confidence
//! intervals, Welch's t-test with Holm's correction for many pairs, and linear contrasts
//! (main effects and interaction of a 2x2 design) with Welch–Satterthwaite degrees of freedom.
//! Pure maths: numbers in, numbers out (`crate::study::summary` applies them to a study's
//! results).

pub mod dist;
pub mod stein;

use serde::{Deserialize, Serialize};

use dist::{binomial_half_two_sided_p, t_quantile, t_two_sided_p};

/// Mean, standard deviation and 95% confidence interval of a sample.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n - 1 in the denominator); 0 for one value.
    pub sd: f64,
    /// 95% CI half-width, mean ± t(0.975, n - 1) sd / sqrt(n); NaN for fewer than 2 values
    /// (written as null in JSON, which has no NaN, and read back as NaN).
    #[serde(deserialize_with = "nan_if_null")]
    pub ci95: f64,
}

/// Reads a number that JSON may hold as null (serde_json writes NaN so) as NaN.
pub fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

impl Estimate {
    pub fn of(values: &[f64]) -> Option<Estimate> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        let sd = var.sqrt();
        let ci95 = if n > 1 {
            t_quantile(0.975, (n - 1) as f64) * sd / (n as f64).sqrt()
        } else {
            f64::NAN
        };
        Some(Estimate { n, mean, sd, ci95 })
    }

    /// The 95% prediction interval of one more value ([`prediction_interval`]); None for
    /// fewer than two values.
    pub fn prediction(&self) -> Option<(f64, f64)> {
        if self.n < 2 {
            return None;
        }
        let t = t_quantile(0.975, (self.n - 1) as f64);
        let half = t * self.sd * (1.0 + 1.0 / self.n as f64).sqrt();
        Some((self.mean - half, self.mean + half))
    }

    pub fn low(&self) -> f64 {
        self.mean - self.ci95
    }

    pub fn high(&self) -> f64 {
        self.mean + self.ci95
    }
}

/// Compact letter display for `n` configurations sorted by mean, best first: two
/// configurations that share a letter are not significantly different (`different(i, j)`
/// says whether they are). Each letter is a maximal run of consecutive configurations that
/// are pairwise not different, so a configuration may carry several letters.
pub fn letter_groups(n: usize, different: impl Fn(usize, usize) -> bool) -> Vec<String> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for start in 0..n {
        let mut end = start;
        while end + 1 < n && (start..=end).all(|k| !different(k, end + 1)) {
            end += 1;
        }
        if runs.last().is_none_or(|&(_, e)| end > e) {
            runs.push((start, end));
        }
    }
    let mut letters = vec![String::new(); n];
    for (g, &(s, e)) in runs.iter().enumerate() {
        let letter = char::from(b'a' + (g % 26) as u8);
        for l in &mut letters[s..=e] {
            l.push(letter);
        }
    }
    letters
}

/// Welch's unequal-variance t-test of two samples' means.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Welch {
    pub t: f64,
    pub df: f64,
    /// Two-sided p-value.
    pub p: f64,
    /// Standard error of the difference of means, sqrt(s_a^2/n_a + s_b^2/n_b).
    #[serde(default)]
    pub se: f64,
}

pub fn welch(a: &[f64], b: &[f64]) -> Option<Welch> {
    welch_of(&Estimate::of(a)?, &Estimate::of(b)?)
}

/// [`welch`] from the two samples' estimates (size, mean and standard deviation).
pub fn welch_of(ea: &Estimate, eb: &Estimate) -> Option<Welch> {
    let (ea, eb) = (*ea, *eb);
    if ea.n < 2 || eb.n < 2 {
        return None;
    }
    let (va, vb) = (ea.sd.powi(2) / ea.n as f64, eb.sd.powi(2) / eb.n as f64);
    let se2 = va + vb;
    if se2 == 0.0 {
        // Identical constant samples: no evidence of a difference; different constants: certain.
        let p = if ea.mean == eb.mean { 1.0 } else { 0.0 };
        let t = if p == 1.0 {
            0.0
        } else {
            f64::INFINITY.copysign(ea.mean - eb.mean)
        };
        return Some(Welch {
            t,
            df: f64::NAN,
            p,
            se: 0.0,
        });
    }
    let t = (ea.mean - eb.mean) / se2.sqrt();
    let df = se2.powi(2) / (va.powi(2) / (ea.n - 1) as f64 + vb.powi(2) / (eb.n - 1) as f64);
    Some(Welch {
        t,
        df,
        p: t_two_sided_p(t, df),
        se: se2.sqrt(),
    })
}

/// Holm's step-down adjustment of p-values (controls the family-wise error rate).
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

/// A linear contrast sum_i c_i mean_i of independent groups, with a 95% CI from Welch–
/// Satterthwaite degrees of freedom.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Contrast {
    pub estimate: f64,
    pub se: f64,
    pub df: f64,
    pub ci95: f64,
    /// Two-sided p-value of estimate = 0.
    pub p: f64,
}

impl Contrast {
    /// The half-width of its two-sided interval at level 1 - `alpha`: t(1 - alpha/2, df) se.
    pub fn half_width(&self, alpha: f64) -> f64 {
        t_quantile(1.0 - alpha / 2.0, self.df) * self.se
    }

    /// The two-sided p-value multiplied by the `k` comparisons of its family (Bonferroni),
    /// at most 1.
    pub fn p_bonferroni(&self, k: usize) -> f64 {
        (self.p * k as f64).min(1.0)
    }
}

pub fn contrast(groups: &[(&[f64], f64)]) -> Option<Contrast> {
    let mut estimate = 0.0;
    let (mut var, mut denom) = (0.0, 0.0);
    for (values, c) in groups {
        let e = Estimate::of(values)?;
        if e.n < 2 {
            return None;
        }
        estimate += c * e.mean;
        let v = c * c * e.sd.powi(2) / e.n as f64;
        var += v;
        denom += v * v / (e.n - 1) as f64;
    }
    let se = var.sqrt();
    if se == 0.0 {
        return Some(Contrast {
            estimate,
            se,
            df: f64::NAN,
            ci95: 0.0,
            p: if estimate == 0.0 { 1.0 } else { 0.0 },
        });
    }
    let df = var * var / denom;
    let ci95 = t_quantile(0.975, df) * se;
    let p = t_two_sided_p(estimate / se, df);
    Some(Contrast {
        estimate,
        se,
        df,
        ci95,
        p,
    })
}

/// The paired t-test of two samples measured on the same units (here: the same seeds), as
/// SciPy's `ttest_rel`: the differences' mean, its 95% interval, and the test of mean 0.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    pub n: usize,
    /// Mean of a - b.
    pub mean: f64,
    /// Half-width of the 95% interval of the mean difference.
    pub ci95: f64,
    pub t: f64,
    /// Degrees of freedom, n - 1.
    pub df: f64,
    /// Two-sided p-value.
    pub p: f64,
    /// Standard deviation of the differences.
    #[serde(default)]
    pub sd: f64,
}

impl Paired {
    /// Whether a and b were equal on every unit: no difference and no spread to test.
    pub fn identical(&self) -> bool {
        self.sd == 0.0 && self.mean == 0.0
    }

    /// The half-width of the mean difference's two-sided interval at level 1 - `alpha`:
    /// t(1 - alpha/2, n - 1) sd / sqrt(n). With `alpha` = 0.05 / k for each of k comparisons
    /// (Bonferroni), the k intervals hold together with probability at least 95%.
    pub fn half_width(&self, alpha: f64) -> f64 {
        t_quantile(1.0 - alpha / 2.0, self.df) * self.sd / (self.n as f64).sqrt()
    }

    /// The two-sided p-value multiplied by the `k` comparisons of its family (Bonferroni),
    /// at most 1: below 0.05 exactly when [`Paired::half_width`]`(0.05 / k)` excludes 0.
    pub fn p_bonferroni(&self, k: usize) -> f64 {
        (self.p * k as f64).min(1.0)
    }
}

/// [`Paired`] for `a[i]` against `b[i]`; None for unequal lengths or fewer than two pairs.
pub fn paired(a: &[f64], b: &[f64]) -> Option<Paired> {
    if a.len() != b.len() {
        return None;
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    paired_differences(&d)
}

/// [`Paired`] from the differences `d[i]` = a[i] - b[i] themselves (per-seed contrasts, say);
/// None for fewer than two.
pub fn paired_differences(d: &[f64]) -> Option<Paired> {
    let e = Estimate::of(d)?;
    if e.n < 2 {
        return None;
    }
    let df = (e.n - 1) as f64;
    let se = e.sd / (e.n as f64).sqrt();
    let (t, p) = if se == 0.0 {
        let p = if e.mean == 0.0 { 1.0 } else { 0.0 };
        (
            if p == 1.0 {
                0.0
            } else {
                f64::INFINITY.copysign(e.mean)
            },
            p,
        )
    } else {
        let t = e.mean / se;
        (t, t_two_sided_p(t, df))
    };
    Some(Paired {
        n: e.n,
        mean: e.mean,
        ci95: e.ci95,
        t,
        df,
        p,
        sd: e.sd,
    })
}

/// The 95% prediction interval of one more value drawn like `values`: mean ± t(0.975, n - 1)
/// s sqrt(1 + 1/n). The interval to set a single run against (not the interval of the mean,
/// which narrows with every seed); None for fewer than two values.
pub fn prediction_interval(values: &[f64]) -> Option<(f64, f64)> {
    Estimate::of(values)?.prediction()
}

/// The power of a two-sided t-test at 5% with `df` degrees of freedom when the true
/// difference is `ncp` standard errors: P(|T| > t(0.975, df)) for T noncentral t with
/// noncentrality `ncp` (exact, as statsmodels' `TTestPower`).
pub fn power(df: f64, ncp: f64) -> f64 {
    power_at(df, ncp, 0.05)
}

/// [`power`] of a two-sided test at level `alpha` (0.05 / k for one of a Bonferroni family of
/// k comparisons).
pub fn power_at(df: f64, ncp: f64, alpha: f64) -> f64 {
    let crit = t_quantile(1.0 - alpha / 2.0, df);
    (1.0 - dist::nct_cdf(crit, df, ncp)) + dist::nct_cdf(-crit, df, ncp)
}

/// The smallest true difference that a two-sided t-test at 5% detects with 80% power, for
/// an estimate with standard error `se` and `df` degrees of freedom: `se` times the
/// noncentrality at which [`power`] is 0.8, found by bisection to 1e-10. Exact for a paired
/// comparison over seeds (statsmodels' `TTestPower`, `tests/stats.rs`); for Welch's test,
/// whose statistic is only approximately t, it uses Welch's degrees of freedom.
pub fn min_detectable(se: f64, df: f64) -> f64 {
    min_detectable_at(se, df, 0.05)
}

/// [`min_detectable`] for a two-sided test at level `alpha`.
pub fn min_detectable_at(se: f64, df: f64, alpha: f64) -> f64 {
    if se.is_nan() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    // Power rises with the noncentrality: 0 gives 5%, 40 standard errors gives 1 to double
    // precision for any df >= 1.
    let (mut lo, mut hi) = (0.0f64, 40.0f64);
    while power_at(df, hi, alpha) < 0.8 && hi < 1e6 {
        hi *= 2.0;
    }
    while hi - lo > 1e-10 * hi {
        let mid = 0.5 * (lo + hi);
        if power_at(df, mid, alpha) < 0.8 {
            lo = mid
        } else {
            hi = mid
        }
    }
    hi * se
}

/// The seeds a paired comparison needs to detect a true difference `delta` with 80% power at
/// 5% (two-sided), when its per-seed differences have standard deviation `sd`: the smallest
/// n >= 2 whose exact [`power`] (n - 1 degrees of freedom, noncentrality delta sqrt(n) / sd)
/// reaches 0.8. None when it takes more than 100,000, or when `sd` is 0 or not a finite
/// number (a comparison whose per-seed differences never vary has no power figure: see
/// [`Paired::identical`]).
pub fn seeds_needed(sd: f64, delta: f64) -> Option<usize> {
    seeds_needed_at(sd, delta, 0.05)
}

/// [`seeds_needed`] for a two-sided test at level `alpha`.
pub fn seeds_needed_at(sd: f64, delta: f64, alpha: f64) -> Option<usize> {
    if !sd.is_finite() || sd <= 0.0 || delta.is_nan() || delta <= 0.0 {
        return None;
    }
    let enough = |n: usize| power_at((n - 1) as f64, delta * (n as f64).sqrt() / sd, alpha) >= 0.8;
    // Doubling, then bisection: the power rises with n.
    let mut hi = 2;
    while !enough(hi) {
        hi *= 2;
        if hi > 100_000 {
            return None;
        }
    }
    let mut lo = hi / 2;
    if lo < 2 {
        return Some(2);
    }
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if enough(mid) { hi = mid } else { lo = mid }
    }
    Some(hi)
}

/// The 95% interval of a standard deviation `sd` measured from `n` values of a normal
/// distribution: sqrt((n - 1) s^2 / chi2(0.975, n - 1)) to sqrt((n - 1) s^2 / chi2(0.025,
/// n - 1)). None for fewer than two values.
pub fn sd_interval(sd: f64, n: usize) -> Option<(f64, f64)> {
    if n < 2 || !sd.is_finite() {
        return None;
    }
    let k = (n - 1) as f64;
    let ss = k * sd * sd;
    let (upper, lower) = (dist::chi2_quantile(0.975, k), dist::chi2_quantile(0.025, k));
    Some(((ss / upper).sqrt(), (ss / lower).sqrt()))
}

/// McNemar's exact test of two classifiers on the same items: `only_a` items only the first
/// got right, `only_b` only the second; the two-sided binomial p-value of that split against
/// an even one (statsmodels' `mcnemar(exact=True)`).
pub fn mcnemar(only_a: u64, only_b: u64) -> f64 {
    binomial_half_two_sided_p(only_a, only_a + only_b)
}

/// Wilson's 95% score interval of a proportion, `correct` of `n` (statsmodels'
/// `proportion_confint(method="wilson")`): the test set's own sampling error of an accuracy.
pub fn wilson_interval(correct: u64, n: u64) -> Option<(f64, f64)> {
    if n == 0 || correct > n {
        return None;
    }
    let z = 1.959_963_984_540_054; // the 0.975 quantile of the standard normal
    let (n, p) = (n as f64, correct as f64 / n as f64);
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z / (1.0 + z * z / n) * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    Some((centre - half, centre + half))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [f64; 5] = [0.9912, 0.9905, 0.9921, 0.9899, 0.9915];
    const B: [f64; 5] = [0.9887, 0.9893, 0.9901, 0.9879, 0.9890];

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} vs {b}");
    }

    #[test]
    fn confidence_interval_matches_scipy() {
        // SciPy 1.17.1: m = a.mean(); h = a.std(ddof=1)/sqrt(5) * stats.t.ppf(0.975, 4)
        //   -> (0.9899733246231803, 0.9921066753768195)
        let e = Estimate::of(&A).unwrap();
        close(e.low(), 0.9899733246231803, 1e-12);
        close(e.high(), 0.9921066753768195, 1e-12);
    }

    #[test]
    fn welch_matches_scipy() {
        // SciPy 1.17.1: stats.ttest_ind(a, b, equal_var=False)
        //   -> statistic 3.871867051805859, pvalue 0.0047653694095795614, df 7.967971677433757
        let w = welch(&A, &B).unwrap();
        close(w.t, 3.871867051805859, 1e-10);
        close(w.df, 7.967971677433757, 1e-10);
        close(w.p, 0.0047653694095795614, 1e-10);
    }

    #[test]
    fn holm_matches_the_step_down_rule() {
        // statsmodels multipletests([0.01, 0.04, 0.03, 0.005], method="holm")[1]
        //   -> [0.03, 0.06, 0.06, 0.02]
        let adj = holm(&[0.01, 0.04, 0.03, 0.005]);
        for (a, b) in adj.iter().zip([0.03, 0.06, 0.06, 0.02]) {
            close(*a, b, 1e-15);
        }
    }

    #[test]
    fn two_group_contrast_is_welch() {
        let c = contrast(&[(&A, 1.0), (&B, -1.0)]).unwrap();
        let w = welch(&A, &B).unwrap();
        close(c.estimate / c.se, w.t, 1e-12);
        close(c.df, w.df, 1e-9);
        close(c.p, w.p, 1e-12);
    }

    #[test]
    fn letter_groups_overlap_where_differences_are_not_significant() {
        // 0 and 1 tie, 1 and 2 tie, 0 and 2 differ; 3 differs from all.
        let differ = |i: usize, j: usize| {
            let (a, b) = (i.min(j), i.max(j));
            !matches!((a, b), (0, 1) | (1, 2))
        };
        assert_eq!(letter_groups(4, differ), ["a", "ab", "b", "c"]);
        assert_eq!(letter_groups(3, |_, _| false), ["a", "a", "a"]);
        assert!(letter_groups(0, |_, _| true).is_empty());
    }
}
