//! Stein's two-stage procedure (C. Stein, "A two-sample test for a linear hypothesis whose
//! power is independent of the variance", Ann. Math. Statist. 16, 1945): how many
//! observations give a 95% confidence interval of a chosen half-width when the variance is
//! unknown, and the interval that then covers at its stated level.
//!
//! A first stage of `n0` observations estimates the standard deviation `s0`; the total is then
//! n = max(n0, ceil((t(0.975, n0 - 1) s0 / h)^2)) for a half-width `h`, capped at a maximum;
//! the interval is the mean of all n observations ± t(0.975, n0 - 1) s0 / sqrt(n).
//!
//! Why this rule and not "add observations until the interval is narrow enough": that rule
//! stops when the sample standard deviation happens to be small, and the ordinary interval
//! then covers less than it says. Here n depends on the first stage's standard deviation
//! alone, which for normal observations is independent of every stage's mean; given s0, the
//! mean of the n observations is normal with variance sigma^2 / n, so
//! (mean - mu) / (s0 / sqrt(n)) has Student's t with n0 - 1 degrees of freedom, and the interval
//! covers exactly 95%, whatever n turned out to be, the cap included (the cap is a function of
//! s0 too: it only makes the interval wider than `h`). For several comparisons measured on the
//! same units (per-seed contrasts of the same runs), n is the largest any of them needs: the
//! sample means are independent of the whole sample covariance, so each comparison's interval
//! still covers 95%. `tests/adaptive_seeds.rs` checks the coverage by simulation.

use super::dist::t_quantile;

/// The total number of observations Stein's rule asks for: max(n0, ceil((t(0.975, n0 - 1) s0 /
/// half_width)^2)), saturating at `usize::MAX` (an `s0` that is not finite asks for that too).
/// `n0` must be at least 2.
pub fn total(n0: usize, s0: f64, half_width: f64) -> usize {
    assert!(
        n0 >= 2,
        "Stein's first stage needs at least two observations"
    );
    if !s0.is_finite() || half_width.is_nan() || half_width <= 0.0 {
        return usize::MAX;
    }
    let t = t_quantile(0.975, (n0 - 1) as f64);
    let n = (t * s0 / half_width).powi(2).ceil();
    if n >= usize::MAX as f64 {
        usize::MAX
    } else {
        (n as usize).max(n0)
    }
}

/// The half-width of Stein's 95% interval from a first stage of `n0` observations with standard
/// deviation `s0`, when `n` observations were made in all: t(0.975, n0 - 1) s0 / sqrt(n).
pub fn half_width(n0: usize, s0: f64, n: usize) -> f64 {
    t_quantile(0.975, (n0 - 1) as f64) * s0 / (n as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_reaches_the_asked_half_width_and_never_falls_below_the_first_stage() {
        let (n0, s0, h) = (5, 0.137, 0.05);
        let n = total(n0, s0, h);
        assert!(half_width(n0, s0, n) <= h, "{n} observations");
        assert!(half_width(n0, s0, n - 1) > h, "{n} is the smallest");
        assert_eq!(total(n0, 1e-6, h), n0);
        assert_eq!(total(n0, f64::INFINITY, h), usize::MAX);
        assert_eq!(total(n0, s0, 0.0), usize::MAX);
    }
}
