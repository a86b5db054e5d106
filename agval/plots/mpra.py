"""MPRA benchmark figures (STUDIES.md §3.5).

Every plot function takes a polars DataFrame and an output path and returns the Path of
the PNG it wrote. The per-construct table is wide: a ``log2_ratio`` column (measured MPRA
log2(RNA/DNA)) and one column per prediction aggregate (``dnase_center``,
``dnase_mean``, ``rna_center``...), optionally an ``input_id`` column naming the distinct
model input of each row (so figures can show how many independent inputs there are, P17).

ROC points are computed here with numpy (:func:`roc_points`, :func:`roc_auc`); no
scikit-learn at runtime.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotnine as p9
import polars as pl

from agval.errors import GuardError
from agval.plots._common import (DEFAULT_DPI, MEAN_LINE, MEDIAN_LINE, MUTED, NEG, POINT, POS,
                                 EmptyPlotInputError, categorical, correlation_stats, fit_line,
                                 fmt_num, ordered, require, save, stats_text, theme_agval,
                                 tile_heatmap, to_pandas)

__all__ = ["median_split", "roc_points", "roc_auc", "mpra_scatter", "mpra_roc",
           "mpra_correlation_heatmap", "mpra_prediction_distributions", "mpra_tf_bars",
           "mpra_wt_vs_mutant", "mpra_delta_distributions"]

_ID_LIKE = {"row_id", "input_id", "locus", "locus_id", "element_id", "variant_id", "name",
            "chrom", "strand", "tf", "pool", "start", "end", "tags", "counts.rna",
            "counts.plasmid", "rna", "dna", "n_barcodes", "n_rows", "activity", "log2_ratio",
            "log2_ratio_sd", "pseudocount", "source_row"}


def _numeric_columns(df: pl.DataFrame, exclude: Sequence[str]) -> list[str]:
    skip = set(exclude) | _ID_LIKE
    return [c for c, t in df.schema.items() if t.is_numeric() and c not in skip]


# -- ROC --------------------------------------------------------------------------------

def median_split(activity: Any) -> tuple[np.ndarray, float]:
    """Labels ``activity > median(activity)`` (strictly greater = positive) and the median."""
    a = np.asarray(activity, dtype=float)
    thr = float(np.median(a))
    return a > thr, thr


def roc_points(labels: Any, scores: Any) -> pl.DataFrame:
    """ROC curve points (``fpr``, ``tpr``, ``threshold``) from boolean labels and scores.

    Tied scores form one step (as scikit-learn's ``roc_curve``); the first point is
    (0, 0) at threshold +inf. Needs at least one positive and one negative label.
    """
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=float)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError("roc_points: labels and scores must be 1-D of the same length")
    keep = np.isfinite(s)
    y, s = y[keep], s[keep]
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise GuardError(f"ROC needs both classes; got {n_pos} positive and {n_neg} negative rows")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_tie = np.r_[np.diff(s) != 0, True]
    tps = np.cumsum(y)[last_of_tie]
    fps = np.cumsum(~y)[last_of_tie]
    return pl.DataFrame({"fpr": np.r_[0.0, fps / n_neg], "tpr": np.r_[0.0, tps / n_pos],
                         "threshold": np.r_[np.inf, s[last_of_tie]]})


def roc_auc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve (trapezoids; ties count one half, like scikit-learn)."""
    pts = roc_points(labels, scores)
    return float(np.trapezoid(pts["tpr"].to_numpy(), pts["fpr"].to_numpy()))


# -- labels -----------------------------------------------------------------------------

_ASSAYS = {"dnase": "DNase", "atac": "ATAC", "cage": "CAGE", "rna": "RNA-seq", "rna_seq": "RNA-seq",
           "procap": "PRO-cap", "chip_histone": "histone ChIP", "chip_tf": "TF ChIP"}
_STATS = {"pearson_r": "Pearson r", "spearman_rho": "Spearman \u03c1", "auroc": "AUROC"}


def axis_label(name: str) -> str:
    """A readable axis label with units for an MPRA column name: ``log2_ratio`` ->
    ``MPRA activity, log2((RNA + pc) / (DNA + pc))``; ``dnase_center`` -> ``predicted
    DNase, centre-window mean (track units)``; ``cage_mean_plus`` -> ``predicted CAGE,
    whole-sequence mean, + strand (track units)``; statistics by their names."""
    if name in ("log2_ratio", "activity"):
        return "MPRA activity, log2((RNA + pc) / (DNA + pc))"
    if name in _STATS:
        return _STATS[name]
    m = re.fullmatch(r"(?P<assay>[a-z_]+?)_(?P<win>center|mean)(?:_(?P<strand>plus|minus|unstranded))?", name)
    if not m:
        return name.replace("_", " ")
    win = "centre-window mean" if m["win"] == "center" else "whole-sequence mean"
    strand = {"plus": ", + strand", "minus": ", \u2212 strand", "unstranded": ", unstranded"}.get(m["strand"] or "", "")
    assay = _ASSAYS.get(m["assay"], m["assay"].upper())
    return f"predicted {assay}, {win}{strand} (track units)"


# -- figures ----------------------------------------------------------------------------

def mpra_scatter(df: pl.DataFrame, path: str | Path, *, aggregate: str, activity: str = "log2_ratio",
                 input_col: str | None = "input_id", bins: int = 50, stats: dict | None = None,
                 width: float = 6.5, height: float = 5.5, dpi: int = DEFAULT_DPI) -> Path:
    """Binned (hexbin-style) scatter of MPRA activity (x) vs one prediction aggregate (y),
    with the least-squares line and n, Pearson r, Spearman ρ and p in the subtitle; with
    ``input_id`` present the number of distinct model inputs is shown too.

    ``df`` columns: ``log2_ratio`` (the ``activity`` parameter), ``<aggregate>``; optional
    ``input_id``.
    """
    df = require(df, [activity, aggregate], what="mpra_scatter", finite=[activity, aggregate])
    x = df[activity].cast(pl.Float64).to_numpy()
    y = df[aggregate].cast(pl.Float64).to_numpy()
    st = correlation_stats(x, y)
    if stats:
        st.update({k: v for k, v in stats.items() if k in st})
    sub = stats_text(st, r2=False)
    if input_col and input_col in df.columns:
        k = df[input_col].n_unique()
        sub += f"   distinct model inputs = {k:,}"
        if k * 10 <= df.height:
            sub += " (rows \u226b inputs: pseudo-replication)"
    pdf = pd.DataFrame({"x": x, "y": y})
    plot = (p9.ggplot(pdf, p9.aes("x", "y"))
            + p9.geom_bin_2d(bins=bins)
            + p9.scale_fill_cmap("YlOrRd", name="rows")
            + p9.geom_line(data=fit_line(x, st["slope"], st["intercept"]), color=NEG, size=0.9)
            + p9.labs(x=axis_label(activity), y=axis_label(aggregate),
                      title=f"MPRA vs {aggregate}", subtitle=sub)
            + theme_agval()
            + p9.theme(legend_position="right"))
    return save(plot, path, width=width, height=height, dpi=dpi)


def mpra_roc(df: pl.DataFrame, path: str | Path, *, aggregates: Sequence[str] | None = None,
             activity: str = "log2_ratio", width: float = 6.0, height: float = 5.5,
             dpi: int = DEFAULT_DPI) -> Path:
    """ROC curves of each aggregate for classifying ``log2_ratio > median(log2_ratio)``
    (strictly greater = positive), AUC in the legend, threshold and class counts in the
    subtitle. Each curve uses the rows where that aggregate is finite.

    ``df`` columns: ``log2_ratio`` (the ``activity`` parameter) and the ``aggregates``
    (default: every numeric column except the activity and id-like columns).
    """
    df = require(df, [activity], what="mpra_roc", finite=[activity])
    aggs = list(aggregates) if aggregates else _numeric_columns(df, [activity])
    if not aggs:
        raise EmptyPlotInputError("mpra_roc: no prediction columns to draw")
    require(df, aggs, what="mpra_roc")
    labels, thr = median_split(df[activity].cast(pl.Float64).to_numpy())
    curves = []
    for a in aggs:
        s = df[a].cast(pl.Float64).to_numpy()
        keep = np.isfinite(s)
        if not keep.any():
            continue
        pts = roc_points(labels[keep], s[keep])
        auc = float(np.trapezoid(pts["tpr"].to_numpy(), pts["fpr"].to_numpy()))
        frame = to_pandas(pts.select("fpr", "tpr"))
        frame["curve"] = f"{a} (AUC = {auc:.3f})"
        curves.append(frame)
    if not curves:
        raise EmptyPlotInputError(f"mpra_roc: no finite predictions in {aggs}")
    pdf = pd.concat(curves, ignore_index=True)
    pdf["curve"] = categorical(pdf["curve"], ordered(pdf["curve"]))
    plot = (p9.ggplot(pdf, p9.aes("fpr", "tpr", color="curve"))
            + p9.geom_abline(slope=1, intercept=0, linetype="dashed", color=MUTED)
            + p9.geom_step(size=0.9, direction="vh")
            + p9.coord_equal()
            + p9.labs(x="false positive rate", y="true positive rate", color="",
                      title="ROC: activity above the median",
                      subtitle=f"positive = {activity} > {fmt_num(thr, 6)} (median); "
                               f"{int(labels.sum()):,} positive / {int((~labels).sum()):,} negative")
            + theme_agval()
            + p9.theme(legend_position="right"))
    return save(plot, path, width=width, height=height, dpi=dpi)


def mpra_correlation_heatmap(df: pl.DataFrame, path: str | Path, *,
                             columns: Sequence[str] | None = None, activity: str = "log2_ratio",
                             method: str = "pearson", width: float = 7.0, height: float = 6.0,
                             dpi: int = DEFAULT_DPI) -> Path:
    """Annotated correlation matrix of MPRA activity and every aggregate (pairwise
    complete rows; constant columns give grey, undefined cells).

    ``df`` columns: ``log2_ratio`` (the ``activity`` parameter) and ``columns`` (default:
    the activity column and all numeric non-id columns).
    ``method``: ``pearson`` or ``spearman``.
    """
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
    df = require(df, [activity], what="mpra_correlation_heatmap")
    cols = list(columns) if columns else [activity] + _numeric_columns(df, [activity])
    require(df, cols, what="mpra_correlation_heatmap")
    mat = np.column_stack([df[c].cast(pl.Float64).fill_null(np.nan).to_numpy() for c in cols])
    rows = []
    for i, a in enumerate(cols):
        for j, b in enumerate(cols):
            ok = np.isfinite(mat[:, i]) & np.isfinite(mat[:, j])
            x, y = mat[ok, i], mat[ok, j]
            if method == "spearman":
                x, y = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
            v = float(np.corrcoef(x, y)[0, 1]) if ok.sum() > 2 and np.ptp(x) > 0 and np.ptp(y) > 0 else np.nan
            rows.append({"a": a, "b": b, "v": v, "cell": "" if np.isnan(v) else f"{v:.2f}"})
    pdf = pd.DataFrame(rows)
    if pdf["v"].isna().all():
        raise EmptyPlotInputError("mpra_correlation_heatmap: no defined correlation (too few finite rows)")
    plot = (tile_heatmap(pdf, x="b", y="a", fill="v", label="cell", midpoint=0.0, limits=(-1.0, 1.0),
                         x_order=cols, y_order=cols, fill_name=method)
            + p9.labs(title=f"{method.capitalize()} correlations (n = {df.height:,} rows)")
            + p9.theme(axis_text_x=p9.element_text(rotation=45, ha="right")))
    return save(plot, path, width=width, height=height, dpi=dpi)


def mpra_prediction_distributions(df: pl.DataFrame, path: str | Path, *,
                                  aggregates: Sequence[str] | None = None,
                                  activity: str = "log2_ratio", bins: int = 50, ncol: int = 3,
                                  width: float = 10.0, height: float = 6.0,
                                  dpi: int = DEFAULT_DPI) -> Path:
    """Histograms of each prediction aggregate (one free-scaled panel per aggregate).

    ``df`` columns: the ``aggregates`` (default: numeric non-id columns except the activity).
    """
    if not isinstance(df, pl.DataFrame):
        require(df, [], what="mpra_prediction_distributions")
    aggs = list(aggregates) if aggregates else _numeric_columns(df, [activity])
    if not aggs:
        raise EmptyPlotInputError("mpra_prediction_distributions: no prediction columns to draw")
    df = require(df, aggs, what="mpra_prediction_distributions")
    long = (df.select([pl.col(a).cast(pl.Float64) for a in aggs])
            .unpivot(variable_name="aggregate", value_name="value")
            .filter(pl.col("value").is_not_null() & pl.col("value").is_finite()))
    if long.height == 0:
        raise EmptyPlotInputError(f"mpra_prediction_distributions: no finite values in {aggs}")
    pdf = to_pandas(long)
    pdf["aggregate"] = categorical(pdf["aggregate"], [a for a in aggs if a in set(pdf["aggregate"])])
    plot = (p9.ggplot(pdf, p9.aes("value"))
            + p9.geom_histogram(bins=bins, fill=POINT, color="white", size=0.1)
            + p9.facet_wrap("aggregate", scales="free", ncol=ncol)
            + p9.labs(x="prediction (track units; each panel its own scale)", y="rows",
                      title="Prediction distributions")
            + theme_agval()
            + p9.theme(axis_text_x=p9.element_text(rotation=30, ha="right")))
    return save(plot, path, width=width, height=height, dpi=dpi)


def mpra_tf_bars(df: pl.DataFrame, path: str | Path, *, tf: str = "stratum", r: str = "pearson_r",
                 n: str = "n", inputs: str | None = "n_distinct_inputs",
                 low: str | None = "ci_low", high: str | None = "ci_high",
                 top: int = 30, title: str = "Correlation per TF", width: float = 7.0,
                 height: float = 6.0, dpi: int = DEFAULT_DPI) -> Path:
    """Horizontal bars of the per-TF correlation, the ``top`` TFs by r (largest on top),
    coloured by sign, n beside each bar, CI whiskers when ``ci_low``/``ci_high`` exist.

    ``df`` columns: ``stratum`` (the TF), ``pearson_r``, ``n``; optional
    ``n_distinct_inputs`` (shown beside n), ``ci_low``, ``ci_high`` - the table of
    ``agval.stats.mpra.stratified_statistics(..., by="tf")``.
    """
    df = require(df, [tf, r, n], what="mpra_tf_bars", finite=[r])
    have_ci = bool(low and high and low in df.columns and high in df.columns)
    cols = [tf, r, n] + ([low, high] if have_ci else [])
    top_df = df.sort([r, tf], descending=[True, False]).head(top)
    pdf = to_pandas(top_df, cols)
    pdf[tf] = categorical(pdf[tf].astype(str), list(reversed(pdf[tf].astype(str).tolist())))
    pdf["sign"] = np.where(pdf[r] >= 0, "positive", "negative")
    if inputs and inputs in top_df.columns:
        k_in = top_df[inputs].to_list()
        pdf["text"] = [f" n = {int(k):,}" + (f" ({int(i)} inputs) " if i is not None else " ")
                       for k, i in zip(pdf[n], k_in)]
    else:
        pdf["text"] = [f" n = {int(k):,} " for k in pdf[n]]
    pdf["ha"] = np.where(pdf[r] >= 0, "left", "right")
    # labels sit beyond the bar end (or the whisker) on the bar's side
    pdf["text_y"] = (np.where(pdf[r] >= 0, pdf[high], pdf[low]) if have_ci else pdf[r])
    plot = (p9.ggplot(pdf, p9.aes(tf, r, fill="sign"))
            + p9.geom_col(width=0.7)
            + p9.geom_hline(yintercept=0, color="black", size=0.3))
    if have_ci:
        plot = plot + p9.geom_errorbar(p9.aes(ymin=low, ymax=high), width=0.3)
    plot = (plot
            + p9.geom_text(p9.aes(y="text_y", label="text", ha="ha"), size=7)
            + p9.coord_flip()
            + p9.scale_fill_manual(values={"positive": POS, "negative": NEG})
            + p9.scale_y_continuous(expand=(0.25, 0))
            + p9.labs(x="", y=axis_label(r), fill="", title=title,
                      subtitle=f"top {len(pdf)} of {df.height} TFs by {r}")
            + theme_agval())
    return save(plot, path, width=width, height=height, dpi=dpi)


def mpra_wt_vs_mutant(df: pl.DataFrame, path: str | Path, *, aggregate: str = "aggregate",
                      wt: str = "wt", mutant: str = "mutant", bins: int = 40, ncol: int = 3,
                      width: float = 10.0, height: float = 6.0, dpi: int = DEFAULT_DPI) -> Path:
    """Wild-type vs mutant prediction, one binned-scatter panel per aggregate, with the
    identity line; the strip gives Pearson r and how many rows are unchanged (a model
    that never sees the edits puts everything on the diagonal, P17).

    ``df`` columns: ``aggregate``, ``wt``, ``mutant`` (long form; one row per mutant
    construct and aggregate, merged on a unique id upstream).
    """
    df = require(df, [aggregate, wt, mutant], what="mpra_wt_vs_mutant", finite=[wt, mutant])
    frames = []
    for a in ordered(df[aggregate].cast(pl.Utf8).to_list()):
        sub = df.filter(pl.col(aggregate).cast(pl.Utf8) == a)
        x = sub[wt].cast(pl.Float64).to_numpy()
        y = sub[mutant].cast(pl.Float64).to_numpy()
        st = correlation_stats(x, y)
        same = int(np.sum(x == y))
        frames.append(pd.DataFrame({"x": x, "y": y, "panel": f"{a}\nr = {fmt_num(st['r'])}, "
                                    f"unchanged {same:,}/{len(x):,}"}))
    pdf = pd.concat(frames, ignore_index=True)
    pdf["panel"] = categorical(pdf["panel"], ordered(pdf["panel"]))
    plot = (p9.ggplot(pdf, p9.aes("x", "y"))
            + p9.geom_bin_2d(bins=bins)
            + p9.geom_abline(slope=1, intercept=0, color=NEG, linetype="dashed")
            + p9.facet_wrap("panel", scales="free", ncol=ncol)
            + p9.scale_fill_cmap("YlOrRd", name="rows")
            + p9.labs(x="wild-type prediction (track units)", y="mutant prediction (track units)",
                      title="Wild type vs mutant", subtitle="each panel its own scale")
            + theme_agval()
            + p9.theme(legend_position="right", axis_text_x=p9.element_text(rotation=30, ha="right")))
    return save(plot, path, width=width, height=height, dpi=dpi)


def mpra_delta_distributions(df: pl.DataFrame, path: str | Path, *, aggregate: str = "aggregate",
                             wt: str = "wt", mutant: str = "mutant", bins: int = 50,
                             ncol: int = 3, width: float = 10.0, height: float = 6.0,
                             dpi: int = DEFAULT_DPI) -> Path:
    """Histograms of Δ = mutant − wild type per aggregate, mean (red dashed) and median
    (dark dotted) lines, values in the strip.

    ``df`` columns: ``aggregate``, ``wt``, ``mutant`` (long form, as for
    :func:`mpra_wt_vs_mutant`).
    """
    df = require(df, [aggregate, wt, mutant], what="mpra_delta_distributions", finite=[wt, mutant])
    frames, lines = [], []
    for a in ordered(df[aggregate].cast(pl.Utf8).to_list()):
        sub = df.filter(pl.col(aggregate).cast(pl.Utf8) == a)
        d = sub[mutant].cast(pl.Float64).to_numpy() - sub[wt].cast(pl.Float64).to_numpy()
        mean, med = float(np.mean(d)), float(np.median(d))
        strip = f"{a}\nmean \u0394 = {fmt_num(mean)}, median = {fmt_num(med)}"
        frames.append(pd.DataFrame({"delta": d, "panel": strip}))
        lines.append(pd.DataFrame({"panel": [strip, strip], "v": [mean, med],
                                   "stat": ["mean", "median"]}))
    pdf = pd.concat(frames, ignore_index=True)
    ldf = pd.concat(lines, ignore_index=True)
    panels = ordered(pdf["panel"])
    pdf["panel"] = categorical(pdf["panel"], panels)
    ldf["panel"] = categorical(ldf["panel"], panels)
    plot = (p9.ggplot(pdf, p9.aes("delta"))
            + p9.geom_histogram(bins=bins, fill=POINT, color="white", size=0.1)
            + p9.geom_vline(p9.aes(xintercept="v", linetype="stat", color="stat"), data=ldf, size=0.8)
            + p9.scale_color_manual(values={"mean": MEAN_LINE, "median": MEDIAN_LINE})
            + p9.scale_linetype_manual(values={"mean": "dashed", "median": "dotted"})
            + p9.facet_wrap("panel", scales="free", ncol=ncol)
            + p9.labs(x="\u0394 prediction, mutant \u2212 wild type (track units)", y="constructs", color="",
                      linetype="", title="Mutation effect distributions")
            + theme_agval()
            + p9.theme(axis_text_x=p9.element_text(rotation=30, ha="right")))
    return save(plot, path, width=width, height=height, dpi=dpi)
