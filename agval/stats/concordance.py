"""Sign concordance: does the prediction point the same way as the measurement?

Inputs ``x`` (prediction) and ``y`` (measured effect, or any signed expectation) are
1-D array-likes of equal length. A row is **excluded** (and counted) when either value
is missing (NaN/None/inf: ``n_excluded_missing``) or exactly zero
(``n_excluded_zero``; a zero has no sign). On the remaining ``n`` rows,
``k = #{sign(x) == sign(y)}``.

Tests are exact binomial tests against ``p0 = 0.5`` (``scipy.stats.binomtest``): the
two-sided P and the one-sided P for ``alternative="greater"`` (more concordance than
chance, the TWAS Q1 convention that reproduces the published values) are both
reported. The confidence interval for ``k / n`` is the Wilson score interval.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special, stats

from agval.stats.correlation import as_float_array

__all__ = ["binomial_p", "wilson_interval", "sign_concordance"]


def binomial_p(k: int, n: int, p0: float = 0.5, alternative: str = "two-sided") -> float:
    """Exact binomial test P of ``k`` successes in ``n`` trials (``scipy.stats.binomtest``).

    ``alternative`` is ``"two-sided"``, ``"greater"`` or ``"less"``. NaN when ``n == 0``.
    Example (TWAS Q1, Prostate RNA): ``binomial_p(244, 408, alternative="greater")``
    = 4.4e-5.
    """
    if n <= 0:
        return math.nan
    return float(stats.binomtest(int(k), int(n), p0, alternative=alternative).pvalue)


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``k / n`` at level ``confidence``.

    ``centre = (k + z^2/2) / (n + z^2)``, ``half = z / (n + z^2) * sqrt(k (n-k) / n + z^2/4)``
    with ``z`` the ``1 - (1-confidence)/2`` normal quantile (statsmodels'
    ``proportion_confint(method="wilson")``). ``(nan, nan)`` when ``n == 0``.
    """
    if n <= 0:
        return (math.nan, math.nan)
    z = float(special.ndtri(1.0 - (1.0 - confidence) / 2.0))
    z2 = z * z
    centre = (k + z2 / 2.0) / (n + z2)
    half = z / (n + z2) * math.sqrt(k * (n - k) / n + z2 / 4.0)
    return (max(0.0, centre - half), min(1.0, centre + half))


def sign_concordance(x: Any, y: Any, *, confidence: float = 0.95) -> dict[str, float | int]:
    """Sign agreement between ``x`` and ``y`` with exact binomial tests and a Wilson CI.

    Returns ``{"n_total", "n_excluded_missing", "n_excluded_zero", "n", "k", "fraction",
    "p_two_sided", "p_greater", "ci_low", "ci_high"}`` where ``n_total`` is the input
    length, ``fraction = k / n`` (NaN when ``n == 0``) and ``p_greater`` is the one-sided
    P for "more agreement than 0.5".
    """
    xa, ya = as_float_array(x), as_float_array(y)
    if xa.shape != ya.shape:
        raise ValueError(f"x and y have different lengths: {xa.shape[0]} vs {ya.shape[0]}")
    finite = np.isfinite(xa) & np.isfinite(ya)
    nonzero = finite & (xa != 0) & (ya != 0)
    n = int(nonzero.sum())
    k = int((np.sign(xa[nonzero]) == np.sign(ya[nonzero])).sum())
    lo, hi = wilson_interval(k, n, confidence)
    return {
        "n_total": int(xa.size),
        "n_excluded_missing": int((~finite).sum()),
        "n_excluded_zero": int((finite & ~nonzero).sum()),
        "n": n,
        "k": k,
        "fraction": k / n if n else math.nan,
        "p_two_sided": binomial_p(k, n, alternative="two-sided"),
        "p_greater": binomial_p(k, n, alternative="greater"),
        "ci_low": lo,
        "ci_high": hi,
    }
