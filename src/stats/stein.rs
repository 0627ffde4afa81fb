//! Stein's two-stage sizing (C. Stein, "A two-sample test for a linear hypothesis whose power
//! is independent of the variance", Ann. Math. Statist. 16, 1945): how many observations give
//! a two-sided interval of a chosen half-width when the variance is unknown.
//!
//! A first stage of `n0` observations estimates the standard deviation `s0`; the total is then
//! n = max(n0, ceil((t(1 - alpha/2, n0 - 1) s0 / h)^2)) for a half-width `h`, capped at a
//! maximum by the caller.
//!
//! Stein paired this total with the interval mean ± t(1 - alpha/2, n0 - 1) s0 / sqrt(n), which
//! covers exactly 1 - alpha for normal observations because n depends on s0 alone. lenet uses
//! the total only (see [`crate::study::seeds`] for why): with per-seed values that are not
//! normal (heavy tails, a few seeds that land low) the first stage's s0 is often too small,
//! and Stein's interval, built on it, covers less than it says. Why a two-stage total and not
//! "add observations until the interval is narrow enough": that rule stops when the sample
//! standard deviation happens to be small, and the interval then covers less than it says.

use super::dist::t_quantile;

/// The total number of observations Stein's rule asks for at level 1 - `alpha`: max(n0,
/// ceil((t(1 - alpha/2, n0 - 1) s0 / half_width)^2)), saturating at `usize::MAX` (an `s0`
/// that is not finite asks for that too). `n0` must be at least 2.
pub fn total(n0: usize, s0: f64, half_width: f64, alpha: f64) -> usize {
    assert!(
        n0 >= 2,
        "Stein's first stage needs at least two observations"
    );
    if !s0.is_finite() || half_width.is_nan() || half_width <= 0.0 {
        return usize::MAX;
    }
    let t = t_quantile(1.0 - alpha / 2.0, (n0 - 1) as f64);
    let n = (t * s0 / half_width).powi(2).ceil();
    if n >= usize::MAX as f64 {
        usize::MAX
    } else {
        (n as usize).max(n0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The half-width the first stage's spread predicts for `n` observations.
    fn predicted(n0: usize, s0: f64, n: usize, alpha: f64) -> f64 {
        t_quantile(1.0 - alpha / 2.0, (n0 - 1) as f64) * s0 / (n as f64).sqrt()
    }

    #[test]
    fn the_total_reaches_the_asked_half_width_and_never_falls_below_the_first_stage() {
        let (n0, s0, h) = (5, 0.137, 0.05);
        for alpha in [0.05, 0.05 / 3.0] {
            let n = total(n0, s0, h, alpha);
            assert!(predicted(n0, s0, n, alpha) <= h, "{n} observations");
            assert!(predicted(n0, s0, n - 1, alpha) > h, "{n} is the smallest");
        }
        assert!(total(n0, s0, h, 0.05 / 3.0) > total(n0, s0, h, 0.05));
        assert_eq!(total(n0, 1e-6, h, 0.05), n0);
        assert_eq!(total(n0, f64::INFINITY, h, 0.05), usize::MAX);
        assert_eq!(total(n0, s0, 0.0, 0.05), usize::MAX);
    }
}
