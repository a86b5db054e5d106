"""Correlations between a prediction ``x`` and a measurement ``y``.

Conventions shared by every function here:

* ``x`` and ``y`` are 1-D array-likes of the same length ``n_rows`` (lists, numpy
  arrays, polars Series). Values that are NaN, +-inf or None are *missing*.
* Missing values are dropped **pairwise**: a row is used only when both ``x`` and ``y``
  are finite. Every result reports ``n`` (rows used) and ``n_dropped`` (rows dropped).
* p-values are two-sided and use the t-approximation that scipy uses,
  ``t = r * sqrt((n - 2) / (1 - r**2))`` with ``n - 2`` degrees of freedom. For Pearson
  scipy evaluates the same quantity as the beta distribution of r (identical in exact
  arithmetic, stabler as |r| -> 1); we do the same, so both match scipy to 1e-9. With ``n < 3`` or a constant
  input the coefficient and p-value are NaN (scipy returns NaN too); ``|r| = 1`` gives p = 0.
* Spearman ranks use average ranks for ties (``scipy.stats.rankdata(method="average")``).
* Results are plain ``dict`` s of Python floats/ints, ready for ``metrics.json``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl
from scipy import special, stats

__all__ = [
    "as_float_array",
    "pairwise_complete",
    "correlation_p_value",
    "pearson",
    "spearman",
    "linear_fit",
    "magnitude_spearman",
    "correlation_summary",
]


def as_float_array(values: Any) -> np.ndarray:
    """1-D float64 copy of ``values`` (list, numpy array, polars Series); None/null -> NaN."""
    if isinstance(values, pl.Series):
        values = values.cast(pl.Float64).to_numpy()
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D array, got shape {arr.shape}")
    return arr


def pairwise_complete(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(x_kept, y_kept, keep_mask)`` keeping rows where both are finite.

    ``keep_mask`` has the input length; ``n_dropped = len(keep_mask) - keep_mask.sum()``.
    Raises ``ValueError`` when the lengths differ.
    """
    xa, ya = as_float_array(x), as_float_array(y)
    if xa.shape != ya.shape:
        raise ValueError(f"x and y have different lengths: {xa.shape[0]} vs {ya.shape[0]}")
    keep = np.isfinite(xa) & np.isfinite(ya)
    return xa[keep], ya[keep], keep


def correlation_p_value(r: float | np.ndarray, n: int | np.ndarray) -> float | np.ndarray:
    """Two-sided p-value of a correlation coefficient ``r`` on ``n`` pairs.

    The t-approximation scipy uses for ``spearmanr`` (and, equivalently, ``pearsonr``):
    ``t = r * sqrt((n-2) / ((1-r)(1+r)))``, ``p = 2 * T_{n-2}.sf(|t|)``. Vectorised over
    ``r`` and ``n``; ``n < 3`` or NaN ``r`` gives NaN; ``|r| = 1`` gives 0.

    This reproduces published p-values from ``(r, n)`` alone, e.g. the caQTL
    headline rho = 0.4032, n = 3,271 -> p ~ 3.7e-128.
    """
    r_arr = np.asarray(r, dtype=np.float64)
    n_arr = np.asarray(n, dtype=np.float64)
    dof = n_arr - 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        rc = np.clip(r_arr, -1.0, 1.0)
        t = rc * np.sqrt(dof / ((1.0 - rc) * (1.0 + rc)))
        p = 2.0 * special.stdtr(dof, -np.abs(t))
    p = np.where(np.abs(rc) >= 1.0, 0.0, p)
    p = np.where((n_arr < 3) | ~np.isfinite(r_arr), np.nan, p)
    p = np.minimum(p, 1.0)
    return float(p) if p.ndim == 0 else p


def _is_constant(a: np.ndarray) -> bool:
    return a.size == 0 or bool(np.all(a == a[0]))


def _pearson_r(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r computed in the same order of operations as ``scipy.stats.pearsonr``."""
    if x.size < 2 or _is_constant(x) or _is_constant(y):
        return math.nan
    xm = x - x.mean()
    ym = y - y.mean()
    xmax = np.max(np.abs(xm))
    ymax = np.max(np.abs(ym))
    normxm = xmax * np.linalg.norm(xm / xmax)
    normym = ymax * np.linalg.norm(ym / ymax)
    if normxm == 0 or normym == 0:
        return math.nan
    r = float(np.dot(xm / normxm, ym / normym))
    return max(-1.0, min(1.0, r))


def _pearson_p(r: float, n: int) -> float:
    """scipy's exact p for Pearson r: r ~ Beta(n/2-1, n/2-1) on (-1, 1) under the null.
    Identical in exact arithmetic to the t-approximation of :func:`correlation_p_value`,
    but numerically stable as |r| -> 1."""
    if n < 3 or math.isnan(r):
        return math.nan
    a = n / 2.0 - 1.0
    return float(min(1.0, 2.0 * special.betaincc(a, a, (abs(r) + 1.0) / 2.0)))


def pearson(x: Any, y: Any) -> dict[str, float | int]:
    """Pearson correlation with a two-sided p-value.

    Returns ``{"n", "n_dropped", "r", "p"}``.
    """
    xk, yk, keep = pairwise_complete(x, y)
    r = _pearson_r(xk, yk)
    n = int(xk.size)
    return {"n": n, "n_dropped": int(keep.size - n), "r": r, "p": _pearson_p(r, n)}


def spearman(x: Any, y: Any) -> dict[str, float | int]:
    """Spearman rank correlation (average ranks for ties) with a two-sided p-value.

    Returns ``{"n", "n_dropped", "rho", "p"}``; equals ``scipy.stats.spearmanr``.
    """
    xk, yk, keep = pairwise_complete(x, y)
    n = int(xk.size)
    if n < 2 or _is_constant(xk) or _is_constant(yk):
        rho = math.nan
    else:
        # np.corrcoef on the ranks, exactly as scipy.stats.spearmanr
        rho = float(np.clip(np.corrcoef(stats.rankdata(xk), stats.rankdata(yk))[0, 1], -1.0, 1.0))
    return {"n": n, "n_dropped": int(keep.size - n), "rho": rho,
            "p": float(correlation_p_value(rho, n)) if not math.isnan(rho) else math.nan}


def linear_fit(x: Any, y: Any) -> dict[str, float | int]:
    """Least-squares line ``y = slope * x + intercept`` (as ``scipy.stats.linregress``).

    Returns ``{"n", "n_dropped", "slope", "intercept", "r", "r2", "p", "slope_stderr",
    "intercept_stderr"}``. ``p`` tests slope = 0 (two-sided). NaN when ``x`` is constant
    or ``n < 3``.
    """
    xk, yk, keep = pairwise_complete(x, y)
    n = int(xk.size)
    out: dict[str, float | int] = {"n": n, "n_dropped": int(keep.size - n)}
    nan = dict(slope=math.nan, intercept=math.nan, r=math.nan, r2=math.nan, p=math.nan,
               slope_stderr=math.nan, intercept_stderr=math.nan)
    if n < 3 or _is_constant(xk):
        out.update(nan)
        return out
    xm, ym = xk.mean(), yk.mean()
    dx, dy = xk - xm, yk - ym
    ssxm = float(np.dot(dx, dx)) / n
    ssym = float(np.dot(dy, dy)) / n
    ssxym = float(np.dot(dx, dy)) / n
    slope = ssxym / ssxm
    intercept = ym - slope * xm
    r = 0.0 if ssym == 0 else max(-1.0, min(1.0, ssxym / math.sqrt(ssxm * ssym)))
    dof = n - 2
    slope_stderr = math.sqrt((1 - r * r) * ssym / ssxm / dof)
    intercept_stderr = slope_stderr * math.sqrt(ssxm + xm * xm)
    p = float(correlation_p_value(r, n))
    out.update(slope=slope, intercept=float(intercept), r=r, r2=r * r, p=p,
               slope_stderr=slope_stderr, intercept_stderr=intercept_stderr)
    return out


def magnitude_spearman(x: Any, y: Any) -> dict[str, float | int]:
    """Spearman correlation of ``|x|`` with ``|y|`` (magnitude agreement, sign ignored).

    Used when the direction of ``y`` is not verified (e.g. caQTL betas that are all > 0,
    pitfall P3). Returns the keys of :func:`spearman`.
    """
    return spearman(np.abs(as_float_array(x)), np.abs(as_float_array(y)))


def correlation_summary(x: Any, y: Any) -> dict[str, float | int]:
    """Spearman, Pearson and the linear fit of ``y`` on ``x`` in one flat dict.

    Keys: ``n, n_dropped, spearman_rho, spearman_p, pearson_r, pearson_p, r2, slope,
    intercept``.
    """
    s = spearman(x, y)
    p = pearson(x, y)
    f = linear_fit(x, y)
    return {"n": s["n"], "n_dropped": s["n_dropped"], "spearman_rho": s["rho"],
            "spearman_p": s["p"], "pearson_r": p["r"], "pearson_p": p["p"],
            "r2": f["r2"], "slope": f["slope"], "intercept": f["intercept"]}
