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
    /// 95% CI half-width, mean ± t(0.975, n - 1) sd / sqrt(n); NaN for fewer than 2 values.
    pub ci95: f64,
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

/// The smallest true difference that a two-sided t-test at 5% detects with 80% power, for
/// an estimate with standard error `se` and `df` degrees of freedom: (t(0.975, df) +
/// t(0.80, df)) se. This is the usual approximation of the noncentral t; against statsmodels'
/// exact `TTestPower` it is within 5.2% at 3 seeds, 1.2% at 5 and 0.2% from 10 on
/// (`tests/stats.rs`).
pub fn min_detectable(se: f64, df: f64) -> f64 {
    (t_quantile(0.975, df) + t_quantile(0.8, df)) * se
}

/// The seeds a paired comparison needs to detect a true difference `delta` with 80% power at
/// 5% (two-sided), when its per-seed differences have standard deviation `sd`: the smallest
/// n >= 2 with [`min_detectable`](sd / sqrt(n), n - 1) <= `delta`. None when it takes more
/// than 100,000, or `sd` is not a finite number.
pub fn seeds_needed(sd: f64, delta: f64) -> Option<usize> {
    if !sd.is_finite() || delta.is_nan() || delta <= 0.0 {
        return None;
    }
    let enough = |n: usize| min_detectable(sd / (n as f64).sqrt(), (n - 1) as f64) <= delta;
    // Doubling, then bisection: the detectable difference falls as n grows.
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
