"""P values that say what they mean: log-space tails, one printed form, and multiplicity.

* :func:`correlation_log10_p` - ``log10`` of the two-sided t-approximation P of a
  correlation (the P of :func:`agval.stats.correlation.correlation_p_value`), computed
  from ``scipy.stats.t.logsf`` so that it stays finite where the P itself underflows to
  0 (|rho| = 0.99 on 10,000 pairs has P ~ 1e-8000, printed honestly, never as 0).
* :func:`format_p` - the one printed form of a P value for reports and figure labels:
  three significant digits, scientific below 1e-3, ``"< 1e-300"`` for an underflowed P
  without a log value, ``"1.2e-8123"`` from ``log10_p`` when it is given.
* :func:`bh_adjust` - Benjamini-Hochberg adjusted P values (q values) over one family
  (``scipy.stats.false_discovery_control``), NaN-aware: missing P values stay missing and
  do not count in the family size.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special, stats

__all__ = ["correlation_log10_p", "format_p", "bh_adjust", "P_FLOOR"]

#: below this a double P is shown as an upper bound (``"< 1e-300"``) when no log10 value is known
P_FLOOR = 1e-300


def correlation_log10_p(r: float, n: int) -> float:
    """``log10`` of the two-sided P of a correlation ``r`` on ``n`` pairs
    (``t = r sqrt((n-2) / (1-r^2))``, ``P = 2 T_{n-2}.sf(|t|)``), via ``t.logsf``.

    NaN when ``n < 3`` or ``r`` is NaN; ``-inf`` when ``|r| = 1`` (P = 0 exactly).
    Equals ``log10(scipy.stats.spearmanr(...).pvalue)`` wherever that P is representable.
    """
    if n is None or n < 3 or r is None or not math.isfinite(r):
        return math.nan
    rc = min(1.0, max(-1.0, float(r)))
    if abs(rc) >= 1.0:
        return -math.inf
    dof = n - 2.0
    t = abs(rc) * math.sqrt(dof / ((1.0 - rc) * (1.0 + rc)))
    lp = float(stats.t.logsf(t, dof)) + math.log(2.0)
    if not math.isfinite(lp) or lp < -600.0:
        lp = _log_two_sided_beta(rc, dof)
    return min(0.0, lp / math.log(10.0))


def _log_two_sided_beta(r: float, dof: float) -> float:
    """``ln P`` with ``P = I_x(dof/2, 1/2)``, ``x = 1 - r^2`` (the two-sided t tail), from
    ``I_x(a, b) = x^a (1-x)^b / (a B(a, b)) 2F1(a+b, 1; a+1; x)``; the series has terms
    below ``x^k`` and is summed until they fall under 1e-17 of the total."""
    a, b = dof / 2.0, 0.5
    x = (1.0 - r) * (1.0 + r)
    if x <= 0.0:
        return -math.inf
    n_terms = int(min(2_000_000, math.ceil(-39.0 / math.log(x)) + 10)) if x < 1.0 else 2_000_000
    k = np.arange(n_terms, dtype=np.float64)
    terms = np.cumprod(np.concatenate([[1.0], (a + b + k[:-1]) / (a + 1.0 + k[:-1]) * x]))
    log_f = math.log(float(terms.sum()))
    log_beta = float(special.betaln(a, b))
    return a * math.log(x) + b * math.log1p(-x) - math.log(a) - log_beta + log_f


def format_p(p: Any, log10_p: Any = None, *, digits: int = 3) -> str:
    """A P value as printed in reports: ``"0.0312"``, ``"4.41e-05"``, ``"< 1e-300"``.

    ``p``: the P value (float, None or NaN -> ``"n/a"``). ``log10_p`` (optional): its
    ``log10`` from a log-space computation, used when ``p`` is below :data:`P_FLOOR` or
    has underflowed to 0, giving e.g. ``"3.2e-812"``. A P of exactly 0 without a log value
    is printed ``"< 1e-300"``, never ``"0"``.
    """
    lp = None
    if log10_p is not None:
        try:
            lp = float(log10_p)
        except (TypeError, ValueError):
            lp = None
        if lp is not None and math.isnan(lp):
            lp = None
    if p is None:
        if lp is None:
            return "n/a"
        p = 10.0 ** lp if lp > -300 else 0.0
    try:
        p = float(p)
    except (TypeError, ValueError):
        return "n/a"
    if math.isnan(p):
        return "n/a"
    if p < P_FLOOR:
        if lp is not None and math.isfinite(lp):
            exp = math.floor(lp)
            mant = 10.0 ** (lp - exp)
            if round(mant, digits - 1) >= 10.0:
                mant, exp = mant / 10.0, exp + 1
            return f"{mant:.{digits - 1}f}e{exp}"
        if lp is not None and lp == -math.inf:
            return "0 (exact)"
        return f"< {P_FLOOR:.0e}"
    if p < 1e-3:
        return f"{p:.{digits - 1}e}"
    return f"{p:.{digits}g}" if p < 1 else "1"


def bh_adjust(p_values: Any) -> np.ndarray:
    """Benjamini-Hochberg adjusted P values of one family (``scipy.stats.false_discovery_control``,
    ``method="bh"``), shape of the input (1-D).

    Entries that are None/NaN stay NaN and are not counted in the family size. Returns
    an empty array for an empty input.
    """
    arr = np.asarray([np.nan if v is None else v for v in np.ravel(np.asarray(p_values, dtype=object))],
                     dtype=np.float64)
    out = np.full(arr.shape, np.nan)
    ok = np.isfinite(arr)
    if ok.any():
        if np.any((arr[ok] < 0) | (arr[ok] > 1)):
            raise ValueError("P values must lie in [0, 1]")
        out[ok] = stats.false_discovery_control(arr[ok], method="bh")
    return out
