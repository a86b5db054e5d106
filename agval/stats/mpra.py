"""MPRA benchmark statistics (STUDIES.md section 3.4, corrected).

Per aggregate (e.g. ``dnase_center``), the inputs are 1-D arrays of one length
``n_rows`` (one row per construct):

* ``measured``: MPRA activity, e.g. ``log2((RNA + 1) / (DNA + 1))``;
* ``predicted``: the model aggregate for the construct's input sequence;
* ``inputs``: the id of the distinct model input (e.g. a sequence hash). Rows sharing an
  input share a prediction; many rows per input is pseudo-replication (pitfall P17);
* ``clusters``: the resampling unit for cluster-aware inference (locus or distinct input;
  defaults to ``inputs``).

Rows with a missing ``measured`` or ``predicted`` are dropped pairwise (``n_dropped``).

AUROC uses a median split of ``measured``: ``threshold = median(measured)`` over the
complete rows, positive = ``measured > threshold`` (strictly greater), computed with the
Mann-Whitney rank formula (ties count 1/2, as ``sklearn.metrics.roc_auc_score``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from agval.errors import MissingColumnError
from agval.stats.correlation import as_float_array, pairwise_complete, pearson, spearman
from agval.stats.resampling import (
    SeedLike,
    bootstrap_ci,
    cluster_codes,
    cluster_permutation_test,
    weighted_auroc,
)

__all__ = [
    "DEFAULT_WARN_RATIO",
    "auroc",
    "auroc_median_split",
    "pseudo_replication_check",
    "mpra_statistics",
    "stratified_statistics",
]

#: rows / distinct inputs above which the pseudo-replication warning fires.
DEFAULT_WARN_RATIO = 2.0


def auroc(labels: Any, score: Any) -> float:
    """AUROC of ``score`` for binary ``labels`` (truthy / ``> 0.5`` = positive).

    ``U / (n_pos * n_neg)`` with ``U = R_pos - n_pos (n_pos + 1) / 2`` from average ranks, so
    tied scores count 1/2 (= ``sklearn.metrics.roc_auc_score``). Rows where either value
    is missing are dropped. NaN when a class is empty.
    """
    lab, sc, _ = pairwise_complete(labels, score)
    if lab.size == 0:
        return math.nan
    return float(weighted_auroc(sc, (lab > 0.5).astype(np.float64), None))


def auroc_median_split(measured: Any, predicted: Any) -> dict[str, Any]:
    """AUROC of ``predicted`` for the labels ``measured > median(measured)``.

    Returns ``{"n", "n_dropped", "auroc", "threshold", "n_positive", "n_negative"}``;
    ``threshold`` is ``np.median`` of ``measured`` over the complete rows.
    """
    m, p, keep = pairwise_complete(measured, predicted)
    n = int(m.size)
    if n == 0:
        return {"n": 0, "n_dropped": int(keep.size), "auroc": math.nan, "threshold": math.nan,
                "n_positive": 0, "n_negative": 0}
    thr = float(np.median(m))
    lab = m > thr
    return {"n": n, "n_dropped": int(keep.size - n),
            "auroc": float(weighted_auroc(p, lab.astype(np.float64), None)),
            "threshold": thr, "n_positive": int(lab.sum()), "n_negative": int(n - lab.sum())}


def pseudo_replication_check(inputs: Any, *, warn_ratio: float = DEFAULT_WARN_RATIO) -> dict[str, Any]:
    """Rows vs distinct model inputs.

    ``inputs``: 1-D ids of the model input of each row. Returns ``{"n_rows",
    "n_distinct_inputs", "ratio", "warning", "message"}``; ``warning`` is True when
    ``ratio = n_rows / n_distinct_inputs > warn_ratio`` (e.g. GSE84888 V2: 6,963 rows, 18
    inputs, ratio 387): row-level p-values then treat copies of one prediction as
    independent evidence.
    """
    n = inputs.len() if isinstance(inputs, pl.Series) else len(inputs)
    _, k = cluster_codes(inputs, n)
    ratio = n / k if k else math.nan
    warn = bool(k and ratio > warn_ratio)
    msg = (f"pseudo-replication: {n} rows but only {k} distinct model inputs (ratio {ratio:.1f} > "
           f"{warn_ratio:g}); row-level p-values are anti-conservative, use the cluster-aware "
           f"intervals and permutation p-values" if warn else
           f"{n} rows, {k} distinct model inputs (ratio {ratio:.2f})")
    return {"n_rows": int(n), "n_distinct_inputs": int(k), "ratio": ratio, "warning": warn, "message": msg}


def mpra_statistics(measured: Any, predicted: Any, *, inputs: Any = None, clusters: Any = None,
                    n_boot: int = 2000, n_perm: int = 1000, confidence: float = 0.95,
                    seed: SeedLike, warn_ratio: float = DEFAULT_WARN_RATIO,
                    include_naive: bool = False) -> dict[str, Any]:
    """All statistics for one aggregate, as a flat dict (the ``metrics.json`` entry).

    ``measured``, ``predicted``, ``inputs`` (distinct model input id; ``None`` = every row
    its own input) and ``clusters`` (resampling unit; ``None`` = ``inputs``): 1-D, one
    length. Keys:

    * ``n, n_dropped, n_distinct_inputs, pseudo_replication_ratio,
      pseudo_replication_warning, pseudo_replication_message``;
    * ``pearson_r, pearson_p, spearman_rho, spearman_p`` (row-level, scipy);
    * ``auroc, threshold, n_positive, n_negative`` (median split, strictly greater);
    * ``{pearson,spearman,auroc}_ci_low/_ci_high``: percentile bootstrap resampling
      ``clusters`` (the AUROC threshold is recomputed in each replicate);
    * ``{pearson,spearman,auroc}_perm_p``: two-sided permutation p moving predictions
      across clusters (:func:`agval.stats.resampling.cluster_permutation_test`);
    * ``n_clusters, cluster_unit`` (``"cluster"``/``"row"``), ``permutation_mode``,
      ``confidence, n_boot, n_perm, seed``;
    * with ``include_naive=True`` also ``{pearson,spearman,auroc}_ci_low_naive/_ci_high_naive``
      from a row bootstrap, for comparison.
    """
    m_all, p_all = as_float_array(measured), as_float_array(predicted)
    if m_all.shape != p_all.shape:
        raise ValueError(f"measured and predicted have different lengths: {m_all.size} vs {p_all.size}")
    keep = np.isfinite(m_all) & np.isfinite(p_all)
    m, p = m_all[keep], p_all[keep]

    def _sub(ids: Any) -> np.ndarray | None:
        if ids is None:
            return None
        arr = ids.to_numpy() if isinstance(ids, pl.Series) else np.asarray(ids)
        if arr.shape != keep.shape:
            raise ValueError(f"ids must have length {keep.size}, got shape {arr.shape}")
        return arr[keep]

    inp = _sub(inputs)
    cl = _sub(clusters) if clusters is not None else inp
    pr = pseudo_replication_check(inp if inp is not None else np.arange(m.size), warn_ratio=warn_ratio)
    out: dict[str, Any] = {"n": int(m.size), "n_dropped": int(keep.size - m.size),
                           "n_distinct_inputs": pr["n_distinct_inputs"],
                           "pseudo_replication_ratio": pr["ratio"],
                           "pseudo_replication_warning": pr["warning"],
                           "pseudo_replication_message": pr["message"]}
    pe, sp, au = pearson(p, m), spearman(p, m), auroc_median_split(m, p)
    out.update(pearson_r=pe["r"], pearson_p=pe["p"], spearman_rho=sp["rho"], spearman_p=sp["p"],
               auroc=au["auroc"], threshold=au["threshold"], n_positive=au["n_positive"],
               n_negative=au["n_negative"])
    # one generator for the whole bundle, consumed in a fixed order
    rng = np.random.default_rng(seed) if not isinstance(seed, np.random.Generator) else seed
    unit, n_clusters, mode = "row", int(m.size), "row"
    for name, stat in (("pearson", "pearson"), ("spearman", "spearman"), ("auroc", "auroc_median_split")):
        b = bootstrap_ci(p, m, stat, clusters=cl, n_boot=n_boot, confidence=confidence, seed=rng)
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = b["ci_low"], b["ci_high"]
        unit, n_clusters = b["unit"], b["n_clusters"]
        t = cluster_permutation_test(p, m, stat, clusters=cl, n_perm=n_perm, seed=rng,
                                     alternative="two-sided")
        out[f"{name}_perm_p"] = t["p"]
        mode = t["mode"]
        if include_naive:
            nb = bootstrap_ci(p, m, stat, clusters=None, n_boot=n_boot, confidence=confidence, seed=rng)
            out[f"{name}_ci_low_naive"], out[f"{name}_ci_high_naive"] = nb["ci_low"], nb["ci_high"]
    out.update(n_clusters=n_clusters, cluster_unit=unit, permutation_mode=mode, confidence=confidence,
               n_boot=n_boot, n_perm=n_perm,
               seed=None if isinstance(seed, np.random.Generator) else int(seed))
    return out


_STRATA_SCHEMA = {
    "stratum": pl.Utf8, "n": pl.Int64, "n_distinct_inputs": pl.Int64, "pearson_r": pl.Float64,
    "pearson_p": pl.Float64, "spearman_rho": pl.Float64, "spearman_p": pl.Float64,
    "auroc": pl.Float64, "threshold": pl.Float64, "n_positive": pl.Int64, "n_negative": pl.Int64,
    "constant_prediction": pl.Boolean,
}


def stratified_statistics(frame: pl.DataFrame, *, measured_col: str, predicted_col: str, by: str,
                          min_size: int = 10, input_col: str | None = None) -> pl.DataFrame:
    """Row-level statistics per stratum (strand, TF, chromosome, ...).

    ``frame``: one row per construct with ``measured_col`` and ``predicted_col`` (float),
    ``by`` (the stratum; a ``List`` column, e.g. the TF tokens of a construct, is exploded
    so a row counts in every stratum it names) and optionally ``input_col`` (distinct
    model input id). Strata with fewer than ``min_size`` complete rows are left out.

    Returns one row per stratum (sorted by ``stratum``, cast to str): ``stratum, n,
    n_distinct_inputs`` (null without ``input_col``), ``pearson_r, pearson_p,
    spearman_rho, spearman_p, auroc, threshold, n_positive, n_negative`` (median split
    within the stratum), ``constant_prediction`` (True when the prediction does not vary,
    e.g. a single-locus chromosome: the correlations are then NaN, pitfall P17).
    """
    for c in [measured_col, predicted_col, by] + ([input_col] if input_col else []):
        if c not in frame.columns:
            raise MissingColumnError(c, available=list(frame.columns))
    df = frame
    if isinstance(df.schema[by], pl.List):
        df = df.explode(by)
    df = df.filter(pl.col(by).is_not_null()
                   & pl.col(measured_col).cast(pl.Float64).is_finite()
                   & pl.col(predicted_col).cast(pl.Float64).is_finite())
    rows = []
    for (key,), part in df.group_by([by], maintain_order=False):
        if part.height < min_size:
            continue
        m = as_float_array(part[measured_col])
        p = as_float_array(part[predicted_col])
        pe, sp, au = pearson(p, m), spearman(p, m), auroc_median_split(m, p)
        rows.append({"stratum": str(key), "n": part.height,
                     "n_distinct_inputs": part[input_col].n_unique() if input_col else None,
                     "pearson_r": pe["r"], "pearson_p": pe["p"], "spearman_rho": sp["rho"],
                     "spearman_p": sp["p"], "auroc": au["auroc"], "threshold": au["threshold"],
                     "n_positive": au["n_positive"], "n_negative": au["n_negative"],
                     "constant_prediction": bool(np.all(p == p[0]))})
    return pl.DataFrame(rows, schema=_STRATA_SCHEMA).sort("stratum")
