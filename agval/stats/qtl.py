"""The QTL statistics bundle (STUDIES.md section 1.4, corrected additions).

Inputs, per variant row (all 1-D, one length ``n_rows``):

* ``x``: the AlphaGenome score (raw log2 ratio in ``corrected`` mode, mean quantile in
  ``original`` mode).
* ``y``: the QTL effect size ``beta``, oriented to the scored ALT allele.
* ``clusters``: the resampling unit of the bootstrap (peak / locus id). ``None`` means each
  row is its own unit.
* ``orientation_verified``: boolean, True where the effect allele of ``beta`` is known to
  be the scored ALT. Direction claims (sign concordance) use **only** these rows
  (pitfall P3). ``None`` means no row is verified.

Rows where ``x`` or ``y`` is missing are dropped pairwise (``n_dropped``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from agval.errors import MissingColumnError
from agval.stats.concordance import sign_concordance
from agval.stats.correlation import as_float_array, correlation_summary, magnitude_spearman
from agval.stats.resampling import SeedLike, bootstrap_ci

__all__ = ["qtl_statistics", "per_track_table"]


def _as_bool(mask: Any, n: int) -> np.ndarray:
    if mask is None:
        return np.zeros(n, dtype=bool)
    if isinstance(mask, pl.Series):
        mask = mask.fill_null(False).to_numpy()
    arr = np.asarray(mask)
    if arr.shape != (n,):
        raise ValueError(f"orientation_verified must have length {n}, got shape {arr.shape}")
    if arr.dtype == object:
        arr = np.array([bool(v) if v is not None else False for v in arr])
    return arr.astype(bool)


def qtl_statistics(x: Any, y: Any, *, clusters: Any = None, orientation_verified: Any = None,
                   n_boot: int = 2000, confidence: float = 0.95, seed: SeedLike) -> dict[str, Any]:
    """All QTL metrics for one score column against ``beta``, as a flat dict.

    Keys:

    * ``n_total`` (input rows), ``n`` (pairwise-complete rows), ``n_dropped``;
    * ``spearman_rho, spearman_p, pearson_r, pearson_p, r2, slope, intercept`` (two-sided,
      scipy t-approximation; ``r2``/``slope``/``intercept`` of the least-squares fit
      ``beta ~ score``);
    * ``spearman_ci_low, spearman_ci_high, ci_confidence, bootstrap_n, bootstrap_unit``
      (``"cluster"``/``"row"``), ``n_clusters``, ``seed``: percentile bootstrap CI of rho
      resampling clusters;
    * ``n_orientation_verified`` and, on those rows only, ``sign_n, sign_k,
      sign_fraction, sign_p_two_sided, sign_p_greater, sign_ci_low, sign_ci_high``
      (Wilson), ``sign_n_excluded_zero``;
    * ``magnitude_spearman_rho, magnitude_spearman_p``: Spearman(|score|, |beta|);
    * ``score_mean, score_sd`` (ddof = 1), ``score_min, score_max, score_mean_abs``,
      ``beta_mean, beta_fraction_positive``;
    * ``same_sign_fraction_unverified``: the seed's ``mean(sign(score) == sign(beta))`` over
      all rows, orientation ignored (reported for reproduction only; with all betas > 0 it
      is just the fraction of positive scores).
    """
    xa, ya = as_float_array(x), as_float_array(y)
    if xa.shape != ya.shape:
        raise ValueError(f"x and y have different lengths: {xa.size} vs {ya.size}")
    n_total = xa.size
    verified = _as_bool(orientation_verified, n_total)
    keep = np.isfinite(xa) & np.isfinite(ya)
    xk, yk = xa[keep], ya[keep]
    cl = None
    if clusters is not None:
        cl = clusters.to_numpy() if isinstance(clusters, pl.Series) else np.asarray(clusters)
        if cl.shape != (n_total,):
            raise ValueError(f"clusters must have length {n_total}, got shape {cl.shape}")
        cl = cl[keep]
    out: dict[str, Any] = {"n_total": int(n_total)}
    summ = correlation_summary(xk, yk)
    out.update(n=summ["n"], n_dropped=int(n_total - summ["n"]))
    for k in ("spearman_rho", "spearman_p", "pearson_r", "pearson_p", "r2", "slope", "intercept"):
        out[k] = summ[k]
    boot = bootstrap_ci(xk, yk, "spearman", clusters=cl, n_boot=n_boot, confidence=confidence, seed=seed)
    out.update(spearman_ci_low=boot["ci_low"], spearman_ci_high=boot["ci_high"],
               ci_confidence=confidence, bootstrap_n=n_boot, bootstrap_unit=boot["unit"],
               n_clusters=boot["n_clusters"], seed=boot["seed"])
    vk = verified[keep]
    sc = sign_concordance(xk[vk], yk[vk], confidence=confidence)
    out.update(n_orientation_verified=int(vk.sum()), sign_n=sc["n"], sign_k=sc["k"],
               sign_fraction=sc["fraction"], sign_p_two_sided=sc["p_two_sided"],
               sign_p_greater=sc["p_greater"], sign_ci_low=sc["ci_low"], sign_ci_high=sc["ci_high"],
               sign_n_excluded_zero=sc["n_excluded_zero"])
    mag = magnitude_spearman(xk, yk)
    out.update(magnitude_spearman_rho=mag["rho"], magnitude_spearman_p=mag["p"])
    if xk.size:
        out.update(score_mean=float(xk.mean()),
                   score_sd=float(xk.std(ddof=1)) if xk.size > 1 else math.nan,
                   score_min=float(xk.min()), score_max=float(xk.max()),
                   score_mean_abs=float(np.abs(xk).mean()), beta_mean=float(yk.mean()),
                   beta_fraction_positive=float((yk > 0).mean()),
                   same_sign_fraction_unverified=float((np.sign(xk) == np.sign(yk)).mean()))
    else:
        for k in ("score_mean", "score_sd", "score_min", "score_max", "score_mean_abs", "beta_mean",
                  "beta_fraction_positive", "same_sign_fraction_unverified"):
            out[k] = math.nan
    return out


def per_track_table(frame: pl.DataFrame, *, score_col: str = "score", beta_col: str = "beta",
                    track_col: str = "track", cluster_col: str | None = None,
                    n_boot: int = 1000, confidence: float = 0.95, seed: SeedLike) -> pl.DataFrame:
    """Per-track correlation table (for the forest plot).

    ``frame``: long table, one row per (variant row, track), with columns ``track_col``
    (str), ``score_col`` and ``beta_col`` (float) and optionally ``cluster_col`` (bootstrap
    unit). Every track uses the same ``seed``.

    Returns one row per track (sorted by track) with columns ``track, n, spearman_rho,
    spearman_p, ci_low, ci_high, pearson_r, pearson_p, r2, n_clusters``.
    """
    need = [track_col, score_col, beta_col] + ([cluster_col] if cluster_col else [])
    for c in need:
        if c not in frame.columns:
            raise MissingColumnError(c, available=frame.columns)
    rows = []
    for track in sorted(frame[track_col].unique().drop_nulls().to_list()):
        sub = frame.filter(pl.col(track_col) == track)
        x = as_float_array(sub[score_col])
        y = as_float_array(sub[beta_col])
        keep = np.isfinite(x) & np.isfinite(y)
        cl = sub[cluster_col].to_numpy()[keep] if cluster_col else None
        s = correlation_summary(x[keep], y[keep])
        b = bootstrap_ci(x[keep], y[keep], "spearman", clusters=cl, n_boot=n_boot,
                         confidence=confidence, seed=seed)
        rows.append({"track": str(track), "n": s["n"], "spearman_rho": s["spearman_rho"],
                     "spearman_p": s["spearman_p"], "ci_low": b["ci_low"], "ci_high": b["ci_high"],
                     "pearson_r": s["pearson_r"], "pearson_p": s["pearson_p"], "r2": s["r2"],
                     "n_clusters": b["n_clusters"]})
    schema = {"track": pl.Utf8, "n": pl.Int64, "spearman_rho": pl.Float64, "spearman_p": pl.Float64,
              "ci_low": pl.Float64, "ci_high": pl.Float64, "pearson_r": pl.Float64,
              "pearson_p": pl.Float64, "r2": pl.Float64, "n_clusters": pl.Int64}
    return pl.DataFrame(rows, schema=schema)
