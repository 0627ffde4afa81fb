#!/usr/bin/env python3
"""Reference values for lenet's statistics (tests/stats.rs), from SciPy and statsmodels.

    pip install scipy statsmodels
    python3 scripts/scipy_reference.py > tests/fixtures/scipy/stats.json

The output records the library versions and every input, so the file can be remade and
checked. lenet does not depend on these libraries; they only make the fixture.
"""

import json
import sys

import numpy as np
import scipy
import statsmodels
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.power import TTestPower
from statsmodels.stats.proportion import proportion_confint


def t_cases():
    """Two-sided p-values and quantiles of Student's t over the whole range lenet meets."""
    out = []
    for df in [1, 2, 3, 4, 7.5, 9, 19, 38.2, 100, 1000]:
        for t in [0.0, 0.1, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1e3]:
            p = 2 * stats.t.sf(t, df)
            out.append({"t": t, "df": df, "p": p})
    return out


def quantile_cases():
    out = []
    for df in [1, 2, 4, 9, 19, 38.2, 100, 1000]:
        for q in [0.5, 0.8, 0.9, 0.95, 0.975, 0.99, 0.999]:
            out.append({"q": q, "df": df, "x": stats.t.ppf(q, df)})
    return out


def samples():
    rng = np.random.default_rng(20261201)
    cases = []
    for n in [2, 3, 5, 10, 40]:
        a = 0.99 + 0.001 * rng.standard_normal(n)
        b = a - 0.0004 + 0.0005 * rng.standard_normal(n)
        cases.append((a.tolist(), b.tolist()))
    # Far into the tail: a difference of many standard errors.
    a = [0.9901, 0.9903, 0.9902, 0.9904, 0.9902, 0.9903]
    b = [0.9801, 0.9802, 0.9803, 0.9801, 0.9802, 0.9800]
    cases.append((a, b))
    return cases


def main():
    welch, paired, predict = [], [], []
    for a, b in samples():
        w = stats.ttest_ind(a, b, equal_var=False)
        welch.append({"a": a, "b": b, "t": w.statistic, "p": w.pvalue, "df": w.df})
        r = stats.ttest_rel(a, b)
        ci = r.confidence_interval(0.95)
        paired.append({"a": a, "b": b, "t": r.statistic, "p": r.pvalue,
                       "low": ci.low, "high": ci.high})
        n, m, s = len(a), np.mean(a), np.std(a, ddof=1)
        half = stats.t.ppf(0.975, n - 1) * s * np.sqrt(1 + 1 / n)
        predict.append({"values": a, "low": m - half, "high": m + half})
    mc = []
    for only_a, only_b in [(0, 0), (1, 0), (3, 7), (10, 10), (12, 30), (40, 70), (0, 60),
                           (150, 90)]:
        r = mcnemar([[0, only_a], [only_b, 0]], exact=True)
        mc.append({"only_a": only_a, "only_b": only_b, "p": r.pvalue})
    wilson = []
    for correct, n in [(9887, 10000), (9000, 10000), (10000, 10000), (0, 500), (440, 500),
                       (1, 3)]:
        low, high = proportion_confint(correct, n, alpha=0.05, method="wilson")
        wilson.append({"correct": correct, "n": n, "low": low, "high": high})
    power = []
    for n in [3, 5, 10, 20, 40, 80]:
        es = TTestPower().solve_power(nobs=n, alpha=0.05, power=0.8, alternative="two-sided")
        power.append({"seeds": n, "detectable_in_sd": es})
    seeds = []
    for d in [0.2, 0.3, 0.5, 1.0, 2.0]:
        n = TTestPower().solve_power(effect_size=d, alpha=0.05, power=0.8,
                                     alternative="two-sided")
        seeds.append({"effect_in_sd": d, "seeds": n})
    for d in [0.05, 0.1, 0.15]:
        n = TTestPower().solve_power(effect_size=d, alpha=0.05, power=0.8,
                                     alternative="two-sided")
        seeds.append({"effect_in_sd": d, "seeds": n})
    power_values = []
    for n in [2, 3, 5, 10, 40, 86]:
        for d in [0.1, 0.5, 1.0, 2.5]:
            pw = TTestPower().power(effect_size=d, nobs=n, alpha=0.05, alternative="two-sided")
            if not np.isfinite(pw):
                continue  # statsmodels gives NaN where the power is 1 to double precision
            power_values.append({"seeds": n, "effect_in_sd": d, "power": pw})
    nct = []
    for df in [1, 4, 9, 39, 100]:
        for ncp in [-3.0, 0.0, 0.5, 2.0, 8.0]:
            for t in [-2.5, 0.0, 1.0, 2.262, 6.0]:
                cdf = stats.nct.cdf(t, df, ncp)
                if np.isfinite(cdf):  # SciPy gives NaN far in some tails
                    nct.append({"t": t, "df": df, "ncp": ncp, "cdf": cdf})
    chi2 = []
    for k in [1, 2, 4, 9, 19, 39, 99]:
        for q in [0.025, 0.5, 0.975]:
            chi2.append({"q": q, "k": k, "x": stats.chi2.ppf(q, k)})
    json.dump({
        "made_by": "scripts/scipy_reference.py",
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "statsmodels": statsmodels.__version__,
        "t_two_sided": t_cases(),
        "t_quantile": quantile_cases(),
        "welch": welch,
        "paired": paired,
        "prediction": predict,
        "mcnemar": mc,
        "wilson": wilson,
        "power_detectable": power,
        "power_seeds": seeds,
        "power_values": power_values,
        "nct_cdf": nct,
        "chi2_quantile": chi2,
    }, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
