"""MPRA benchmark statistics over the analysis table (STUDIES.md §3.4, corrected).

The analysis table has one row per construct: ``log2_ratio`` (measured), the aggregate
columns, ``input_id`` (distinct model input) and a cluster column (``locus_id`` or
``input_id``). Everything here wraps :mod:`agval.stats.mpra`:

* :func:`aggregate_statistics`: per aggregate, :func:`agval.stats.mpra.mpra_statistics`
  (Pearson, Spearman, AUROC with the median split, cluster-aware bootstrap CIs and
  permutation p-values, the naive row-bootstrap CIs for comparison, the
  pseudo-replication check) plus the **within-cluster** Pearson r (both variables
  centred on their cluster means; undefined, NaN, when predictions are constant within
  every cluster, the V2 situation);
* :func:`light_statistics`: row-level statistics and a cluster-bootstrap CI of Pearson r
  (used for the per-strand aggregates);
* :func:`strata_tables`: per stratum (strand, TF tokens, chromosome, ...) with a minimum
  size, row-level statistics (:func:`agval.stats.mpra.stratified_statistics`) plus a
  cluster-bootstrap CI of Pearson r, its cluster permutation P (``perm_p``) and the
  Benjamini-Hochberg q over **every** stratum of every table (``q_bh``, one family);
* :func:`track_statistics`: the same per individual track and window;
* :func:`effect_statistics`: wild type vs mutant deltas (measured delta vs predicted
  delta), clusters = loci;
* :func:`robustness`: the primary aggregate under stricter count filters (P26).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import polars as pl

from agval.frames import checked_join
from agval.stats.correlation import pearson, spearman
from agval.stats.mpra import DEFAULT_WARN_RATIO, auroc_median_split, mpra_statistics, stratified_statistics
from agval.stats.pvalues import bh_adjust, format_p
from agval.stats.resampling import bootstrap_ci, cluster_permutation_test

__all__ = ["within_cluster_pearson", "aggregate_statistics", "light_statistics", "strata_tables", "track_statistics",
           "effect_statistics", "robustness", "headline"]


def within_cluster_pearson(measured: Any, predicted: Any, clusters: Any) -> dict[str, Any]:
    """Pearson r of cluster-centred values; ``n_informative_clusters`` counts clusters with
    more than one row and a prediction that varies (r is NaN when there are none)."""
    df = pl.DataFrame({"m": np.asarray(measured, dtype=float), "p": np.asarray(predicted, dtype=float),
                       "c": pl.Series(np.asarray(clusters).astype(str))})
    df = df.filter(pl.col("m").is_finite() & pl.col("p").is_finite())
    if df.height == 0:
        return {"within_pearson_r": math.nan, "n_informative_clusters": 0}
    g = df.with_columns((pl.col("m") - pl.col("m").mean().over("c")).alias("mc"),
                        (pl.col("p") - pl.col("p").mean().over("c")).alias("pc"),
                        (pl.col("p").max().over("c") > pl.col("p").min().over("c")).alias("varies"))
    informative = g.filter(pl.col("varies"))
    n_inf = int(informative["c"].n_unique()) if informative.height else 0
    if n_inf == 0:
        return {"within_pearson_r": math.nan, "n_informative_clusters": 0}
    r = pearson(informative["pc"].to_numpy(), informative["mc"].to_numpy())["r"]
    return {"within_pearson_r": r, "n_informative_clusters": n_inf}


def aggregate_statistics(frame: pl.DataFrame, aggregates: Sequence[str], *, measured: str = "log2_ratio",
                         input_col: str = "input_id", cluster_col: str | None = None, n_boot: int = 2000,
                         n_perm: int = 1000, seed: int = 0, warn_ratio: float = DEFAULT_WARN_RATIO,
                         confidence: float = 0.95) -> dict[str, dict[str, Any]]:
    """``{aggregate: statistics}`` (the ``aggregates`` block of ``metrics.json``).

    Each aggregate uses the same ``seed``, so every aggregate sees the same bootstrap
    draws of clusters and the results do not depend on the order of the aggregates.

    Multiplicity: ``{pearson,spearman,auroc}_perm_q`` are the Benjamini-Hochberg adjusted
    cluster permutation P values over the aggregates given (the per-metric grid is one
    family); the pre-specified primary aggregate is read unadjusted from ``*_perm_p``."""
    cl_col = cluster_col or input_col
    out = {}
    m = frame[measured].cast(pl.Float64).to_numpy()
    inputs = frame[input_col].cast(pl.String).to_numpy()
    clusters = frame[cl_col].cast(pl.String).to_numpy()
    for a in aggregates:
        p = frame[a].cast(pl.Float64).fill_null(np.nan).to_numpy()
        st = mpra_statistics(m, p, inputs=inputs, clusters=clusters, n_boot=n_boot, n_perm=n_perm,
                             confidence=confidence, seed=int(seed), warn_ratio=warn_ratio, include_naive=True)
        st["cluster_column"] = cl_col
        st.update(within_cluster_pearson(m, p, clusters))
        st["prediction_constant"] = bool(np.nanmax(p) == np.nanmin(p)) if np.isfinite(p).any() else True
        out[a] = st
    for stat in ("pearson", "spearman", "auroc"):
        qs = bh_adjust([out[a].get(f"{stat}_perm_p") for a in out])
        for a, q in zip(out, qs):
            out[a][f"{stat}_perm_q"] = float(q)
    return out


def light_statistics(frame: pl.DataFrame, aggregates: Sequence[str], *, measured: str = "log2_ratio",
                     input_col: str = "input_id", cluster_col: str | None = None, n_boot: int = 500,
                     seed: int = 0, confidence: float = 0.95) -> dict[str, dict[str, Any]]:
    """Row-level statistics plus a cluster-bootstrap CI of Pearson r only (the per-strand
    aggregates; cheaper than :func:`aggregate_statistics` on large libraries). Keys:
    ``n, n_distinct_inputs, n_clusters, pearson_r, pearson_p, spearman_rho, spearman_p,
    auroc, threshold, n_positive, n_negative, pearson_ci_low, pearson_ci_high, cluster_column``."""
    cl_col = cluster_col or input_col
    out = {}
    for a in aggregates:
        f = frame.filter(pl.col(a).is_not_null() & pl.col(a).cast(pl.Float64).is_finite()
                         & pl.col(measured).cast(pl.Float64).is_finite())
        m = f[measured].cast(pl.Float64).to_numpy()
        p = f[a].cast(pl.Float64).to_numpy()
        pe, sp, au = pearson(p, m), spearman(p, m), auroc_median_split(m, p)
        b = bootstrap_ci(p, m, "pearson", clusters=f[cl_col].cast(pl.String).to_numpy(), n_boot=n_boot,
                         confidence=confidence, seed=int(seed))
        out[a] = {"n": f.height, "n_distinct_inputs": int(f[input_col].n_unique()), "n_clusters": b["n_clusters"],
                  "pearson_r": pe["r"], "pearson_p": pe["p"], "spearman_rho": sp["rho"], "spearman_p": sp["p"],
                  "auroc": au["auroc"], "threshold": au["threshold"], "n_positive": au["n_positive"],
                  "n_negative": au["n_negative"], "pearson_ci_low": b["ci_low"], "pearson_ci_high": b["ci_high"],
                  "cluster_column": cl_col}
    return out


def _list_or_scalar(frame: pl.DataFrame, by: str) -> pl.DataFrame:
    return frame.explode(by) if isinstance(frame.schema[by], pl.List) else frame


def strata_tables(frame: pl.DataFrame, aggregate: str, strata: Sequence[str], *, measured: str = "log2_ratio",
                  input_col: str = "input_id", cluster_col: str | None = None, min_size: int = 10,
                  n_boot: int = 500, n_perm: int = 1000, seed: int = 0) -> dict[str, pl.DataFrame]:
    """``{stratum column: table}`` for the strata columns present in ``frame``; each table
    is :func:`agval.stats.mpra.stratified_statistics` plus ``ci_low``/``ci_high`` (cluster
    bootstrap of Pearson r), ``n_clusters``, ``perm_p`` (two-sided cluster permutation P
    of Pearson r, predictions moved across clusters) and ``q_bh`` (Benjamini-Hochberg over
    every stratum row of every returned table: one family)."""
    cl_col = cluster_col or input_col
    out: dict[str, pl.DataFrame] = {}
    for by in strata:
        if by not in frame.columns:
            continue
        t = stratified_statistics(frame, measured_col=measured, predicted_col=aggregate, by=by, min_size=min_size,
                                  input_col=input_col)
        if t.height == 0:
            out[by] = t.with_columns(pl.lit(None, dtype=pl.Float64).alias("ci_low"),
                                     pl.lit(None, dtype=pl.Float64).alias("ci_high"),
                                     pl.lit(None, dtype=pl.Int64).alias("n_clusters"),
                                     pl.lit(None, dtype=pl.Float64).alias("perm_p"))
            continue
        ex = _list_or_scalar(frame, by).with_columns(pl.col(by).cast(pl.String))
        lows, highs, ncl, perm = [], [], [], []
        for s in t["stratum"].to_list():
            part = ex.filter(pl.col(by) == s)
            pred = part[aggregate].cast(pl.Float64).fill_null(np.nan).to_numpy()
            meas = part[measured].cast(pl.Float64).to_numpy()
            cl = part[cl_col].cast(pl.String).to_numpy()
            b = bootstrap_ci(pred, meas, "pearson", clusters=cl, n_boot=n_boot, seed=int(seed))
            lows.append(b["ci_low"])
            highs.append(b["ci_high"])
            ncl.append(b["n_clusters"])
            perm.append(cluster_permutation_test(pred, meas, "pearson", clusters=cl, n_perm=n_perm,
                                                 seed=int(seed))["p"] if n_perm > 0 else math.nan)
        out[by] = t.with_columns(pl.Series("ci_low", lows, dtype=pl.Float64),
                                 pl.Series("ci_high", highs, dtype=pl.Float64),
                                 pl.Series("n_clusters", ncl, dtype=pl.Int64),
                                 pl.Series("perm_p", perm, dtype=pl.Float64))
    # one family: every stratum of every table
    keys = list(out)
    allp = np.concatenate([out[k]["perm_p"].cast(pl.Float64).to_numpy() for k in keys]) if keys else np.array([])
    q = bh_adjust(allp)
    i = 0
    for k in keys:
        h = out[k].height
        out[k] = out[k].with_columns(pl.Series("q_bh", q[i:i + h], dtype=pl.Float64))
        i += h
    return out


def track_statistics(frame: pl.DataFrame, per_track: pl.DataFrame, *, measured: str = "log2_ratio",
                     input_col: str = "input_id", cluster_col: str | None = None, n_boot: int = 500,
                     seed: int = 0) -> pl.DataFrame:
    """Per track and window: ``output_type, track_name, track_strand, ontology_curie,
    window, n, n_distinct_inputs, pearson_r, pearson_p, spearman_rho, spearman_p, auroc,
    ci_low, ci_high`` (cluster bootstrap of Pearson r)."""
    cl_col = cluster_col or input_col
    rows = []
    base = frame.select(pl.col(input_col).alias("input_id"), pl.col(measured).alias("_m"),
                        pl.col(cl_col).cast(pl.String).alias("_c"))
    keys = ["output_type", "track_index", "track_name", "track_strand", "ontology_curie", "window"]
    for key, part in per_track.group_by(keys, maintain_order=True):
        vals = part.select("input_id", "value")
        j = checked_join(base, vals, on="input_id", how="inner", validate="m:1", what="rows x track values")
        m, p = j["_m"].to_numpy(), j["value"].to_numpy()
        pe, sp, au = pearson(p, m), spearman(p, m), auroc_median_split(m, p)
        b = bootstrap_ci(p, m, "pearson", clusters=j["_c"].to_numpy(), n_boot=n_boot, seed=int(seed))
        rows.append({**dict(zip(keys, key)), "n": j.height, "n_distinct_inputs": j["input_id"].n_unique(),
                     "pearson_r": pe["r"], "pearson_p": pe["p"], "spearman_rho": sp["rho"], "spearman_p": sp["p"],
                     "auroc": au["auroc"], "ci_low": b["ci_low"], "ci_high": b["ci_high"]})
    schema = {"output_type": pl.String, "track_index": pl.Int64, "track_name": pl.String,
              "track_strand": pl.String, "ontology_curie": pl.String, "window": pl.String, "n": pl.Int64,
              "n_distinct_inputs": pl.Int64, "pearson_r": pl.Float64, "pearson_p": pl.Float64,
              "spearman_rho": pl.Float64, "spearman_p": pl.Float64, "auroc": pl.Float64,
              "ci_low": pl.Float64, "ci_high": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


def effect_statistics(effects: pl.DataFrame, aggregates: Sequence[str], *, measured: str = "log2_ratio",
                      cluster_col: str = "locus_id", n_boot: int = 2000, n_perm: int = 1000,
                      seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per aggregate: predicted delta vs measured delta (mutant - wild type), with
    cluster-aware CIs (clusters = ``cluster_col``), ``n_mutants``, ``n_same_input`` (the
    mutant's input equals its wild type's: the model could not see the edit) and the
    mean deltas."""
    out = {}
    if effects.height == 0:
        return out
    md = effects[f"{measured}_delta"].cast(pl.Float64).to_numpy()
    inputs = effects["input_id"].cast(pl.String).to_numpy() if "input_id" in effects.columns else None
    clusters = effects[cluster_col].cast(pl.String).to_numpy()
    same = int(effects["same_input"].sum()) if "same_input" in effects.columns else None
    for a in aggregates:
        pdl = effects[f"{a}_delta"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        st = mpra_statistics(md, pdl, inputs=inputs, clusters=clusters, n_boot=n_boot, n_perm=n_perm,
                             seed=int(seed), include_naive=True)
        fin = pdl[np.isfinite(pdl)]
        st.update(n_mutants=int(effects.height), n_same_input=same,
                  mean_predicted_delta=float(fin.mean()) if fin.size else math.nan,
                  mean_measured_delta=float(np.nanmean(md)) if md.size else math.nan,
                  cluster_column=cluster_col)
        out[a] = st
    return out


def robustness(frame: pl.DataFrame, aggregate: str, *, min_dna: Sequence[float] = (0, 10, 100),
               min_tags: Sequence[int] = (0,), measured: str = "log2_ratio",
               input_col: str = "input_id") -> pl.DataFrame:
    """Row-level statistics of ``aggregate`` under stricter DNA-count / barcode filters."""
    rows = []
    for d in min_dna:
        for t in min_tags:
            f = frame
            if "dna" in f.columns:
                f = f.filter(pl.col("dna").cast(pl.Float64) >= d)
            if t and "tags" in f.columns:
                f = f.filter(pl.col("tags") >= t)
            m = f[measured].cast(pl.Float64).to_numpy()
            p = f[aggregate].cast(pl.Float64).fill_null(np.nan).to_numpy()
            pe, sp = pearson(p, m), spearman(p, m)
            rows.append({"min_dna": float(d), "min_tags": int(t), "n": f.height,
                         "n_distinct_inputs": f[input_col].n_unique() if f.height else 0,
                         "pearson_r": pe["r"], "spearman_rho": sp["rho"]})
    return pl.DataFrame(rows, schema={"min_dna": pl.Float64, "min_tags": pl.Int64, "n": pl.Int64,
                                      "n_distinct_inputs": pl.Int64, "pearson_r": pl.Float64,
                                      "spearman_rho": pl.Float64})


def _f(v: Any, digits: int = 3) -> str:
    try:
        return "nan" if v is None or not math.isfinite(float(v)) else f"{float(v):.{digits}f}"
    except (TypeError, ValueError):
        return str(v)


def headline(aggregate: str, st: dict[str, Any]) -> str:
    """One line: ``dnase_center: r = 0.41 [0.22, 0.57] (cluster bootstrap), rho = ..., AUROC = ...``."""
    return (f"{aggregate}: r = {_f(st.get('pearson_r'))} [{_f(st.get('pearson_ci_low'))}, "
            f"{_f(st.get('pearson_ci_high'))}], rho = {_f(st.get('spearman_rho'))} "
            f"[{_f(st.get('spearman_ci_low'))}, {_f(st.get('spearman_ci_high'))}], AUROC = {_f(st.get('auroc'))} "
            f"(n = {st.get('n')} rows, {st.get('n_distinct_inputs')} distinct inputs, "
            f"{st.get('n_clusters')} clusters; cluster permutation P = {format_p(st.get('pearson_perm_p'))}, "
            f"row-level P = {format_p(st.get('pearson_p'))})")
