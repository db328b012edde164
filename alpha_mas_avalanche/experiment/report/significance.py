"""Tests over seeds that survive review: Holm's step-down adjustment within a family of tests,
paired equivalence by two one-sided tests (TOST), the smallest difference a paired t-test
detects at 80 % power, the seeds a comparison would need, and one verdict per comparison.

A comparison is ``method - baseline`` on paired seeds. Its verdict, at level
:data:`ALPHA` after Holm's adjustment within the family the page reports:
- "better" / "worse": the two-sided paired t-test rejects "no difference" (sign read with the
  metric's direction: higher final accuracy is better, lower forgetting is better);
- "equivalent": the TOST rejects "|difference| >= margin" (both one-sided tests);
- "inconclusive": neither; ``seeds_to_decide`` says how many seeds would give 80 % power to
  one of the two, at the observed mean and spread of the differences.
Within a family of m tests the smallest detectable difference and the seeds to decide are
given at level ``ALPHA / m`` (Holm's first step): a p-value below it is rejected by Holm
whatever the family's other tests show.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import optimize, stats

#: family-wise error rate of every verdict
ALPHA = 0.05
#: power at which the minimal detectable difference and the seeds to decide are given
POWER = 0.8
#: the most seeds :func:`seeds_to_decide` looks at
MAX_SEEDS = 1000


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (None stays None and is not counted): the k-th
    smallest of m is multiplied by m - k + 1, made monotone, capped at 1."""
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(present)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for k, (p, i) in enumerate(present):
        running = max(running, min(1.0, (m - k) * p))
        adjusted[i] = running
    return adjusted


def tost_paired(differences: np.ndarray, margin: float) -> float | None:
    """p of the paired TOST for ``|mean difference| < margin``: the larger of the one-sided
    t-tests of ``mean > -margin`` and ``mean < margin`` (None for fewer than 2 pairs or
    identical differences)."""
    d = np.asarray(differences, dtype=float)
    if d.size < 2 or np.ptp(d) == 0:
        return None
    lower = stats.ttest_1samp(d, -margin, alternative="greater").pvalue
    upper = stats.ttest_1samp(d, margin, alternative="less").pvalue
    return float(max(lower, upper))


def _power_two_sided(effect: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided one-sample t-test at standardised effect ``effect`` (mean /
    sd of the differences) with ``n`` pairs (noncentral t)."""
    df = n - 1
    critical = stats.t.ppf(1 - alpha / 2, df)
    noncentrality = effect * math.sqrt(n)
    upper = stats.nct.sf(critical, df, noncentrality)
    lower = stats.nct.cdf(-critical, df, noncentrality)  # NaN far in the tail: it is 0 there
    return float(np.nan_to_num(upper, nan=1.0) + np.nan_to_num(lower, nan=0.0))


def _power_tost(mean: float, sd: float, n: int, margin: float, alpha: float = ALPHA) -> float:
    """Power of the paired TOST at a true mean difference ``mean`` (noncentral t; the two
    one-sided rejections are treated as independent, a close lower bound for n >= 5)."""
    df = n - 1
    critical = stats.t.ppf(1 - alpha, df)
    scale = math.sqrt(n) / sd
    lower = np.nan_to_num(stats.nct.sf(critical, df, (mean + margin) * scale), nan=1.0)
    upper = np.nan_to_num(stats.nct.cdf(-critical, df, (mean - margin) * scale), nan=1.0)
    return float(max(0.0, lower + upper - 1.0))


def minimal_detectable_difference(sd: float, n: int, power: float = POWER,
                                  alpha: float = ALPHA) -> float | None:
    """The smallest true mean difference the two-sided paired t-test (level ``alpha``)
    detects with probability ``power``, for differences with standard deviation ``sd`` over
    ``n`` seeds (None for n < 2, sd = 0, or an effect beyond 500,000 standard deviations)."""
    if n < 2 or not sd > 0:
        return None
    for upper in (50.0, 5e3, 5e5):  # few seeds at a strict level need a large effect
        if _power_two_sided(upper, n, alpha) >= power:
            effect = optimize.brentq(lambda e: _power_two_sided(e, n, alpha) - power, 1e-9, upper)
            return float(effect * sd)
    return None


def seeds_to_decide(mean: float, sd: float, margin: float, power: float = POWER,
                    alpha: float = ALPHA) -> int | None:
    """The fewest seeds giving ``power`` to a verdict at the observed ``mean`` and ``sd`` of
    the differences: to the t-test where ``|mean| >= margin``, else to the TOST (None where
    no number up to :data:`MAX_SEEDS` does, e.g. a mean on the margin)."""
    if not sd > 0:
        return None

    def enough(n: int) -> bool:  # power grows with n: a bisection finds the first n
        achieved = (_power_two_sided(abs(mean) / sd, n, alpha) if abs(mean) >= margin
                    else _power_tost(mean, sd, n, margin, alpha))
        return achieved >= power

    low, high = 2, MAX_SEEDS
    if not enough(high):
        return None
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return high


def verdict(difference: float | None, p_holm: float | None, p_tost_holm: float | None,
            higher_is_better: bool) -> str:
    """"better", "worse", "equivalent" or "inconclusive" (module docstring)."""
    if difference is not None and p_holm is not None and p_holm < ALPHA:
        return "better" if (difference > 0) == higher_is_better else "worse"
    if p_tost_holm is not None and p_tost_holm < ALPHA:
        return "equivalent"
    return "inconclusive"


def adjust_family(comparisons: list[dict[str, Any]], family: str) -> list[dict[str, Any]]:
    """The comparisons with ``family`` (what the page's tests are), ``family_size``, the
    Holm-adjusted ``p_holm`` (two-sided tests) and ``p_tost_holm`` (equivalence tests), and
    ``verdict``. Each comparison holds ``p_value``, ``p_tost``, ``mean_difference`` and
    ``higher_is_better``, and ``sd_difference``, ``n_seeds`` and ``margin`` size it:
    ``mde_80`` and ``seeds_to_decide`` at the family's ``decision_level`` (module docstring),
    None where the differences have no spread."""
    p_holm = holm([c["p_value"] for c in comparisons])
    p_tost_holm = holm([c["p_tost"] for c in comparisons])
    level = ALPHA / max(1, sum(c["p_value"] is not None for c in comparisons))
    out = []
    for c, ph, pt in zip(comparisons, p_holm, p_tost_holm):
        sd, n = c.get("sd_difference"), c.get("n_seeds")
        sized = ({"mde_80": minimal_detectable_difference(sd, n, alpha=level),
                  "seeds_to_decide": seeds_to_decide(c["mean_difference"], sd, c["margin"],
                                                     alpha=level)}
                 if sd and n else {"mde_80": None, "seeds_to_decide": None})
        out.append({**c, **sized, "family": family, "family_size": len(comparisons),
                    "decision_level": level, "p_holm": ph, "p_tost_holm": pt,
                    "verdict": verdict(c["mean_difference"], ph, pt, c["higher_is_better"])})
    return out


def compare_paired(a: np.ndarray, b: np.ndarray, margin: float) -> dict[str, Any]:
    """``a - b`` over paired seeds: ``n_seeds``, ``mean_difference``, ``sd_difference``, the
    two-sided paired t-test (``t_statistic``, ``p_value``), the TOST's ``p_tost`` at
    ``margin``. Its power (``mde_80``, ``seeds_to_decide``) depends on the family it is
    reported in: :func:`adjust_family` adds it."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    n = int(d.size)
    mean = float(d.mean()) if n else None
    sd = float(d.std(ddof=1)) if n >= 2 else None
    if n >= 2 and sd > 0:
        test = stats.ttest_1samp(d, 0.0)
        statistic, p_value = float(test.statistic), float(test.pvalue)
    else:
        statistic = p_value = None
    return {"n_seeds": n, "mean_difference": mean, "sd_difference": sd,
            "test": "paired t-test (two-sided)", "t_statistic": statistic, "p_value": p_value,
            "margin": margin, "p_tost": tost_paired(d, margin)}
