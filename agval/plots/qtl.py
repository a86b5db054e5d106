"""QTL study figures (STUDIES.md §1.5, with P15 fixed: top variants by ABSOLUTE value).

Every function takes a polars DataFrame and an output path and returns the Path of
the PNG it wrote. Column names are parameters (defaults shown in each docstring), so
the same figures serve the ``original`` mode (mean quantile score) and the
``corrected`` mode (raw score of a matched track).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import plotnine as p9
import polars as pl

from agval.plots._common import (DEFAULT_DPI, FIT, MEAN_LINE, MUTED, NEG, POINT, POS,
                                 EmptyPlotInputError, categorical, correlation_stats, fit_line,
                                 fmt_num, fmt_p, ordered, require, save, stats_text, theme_agval, to_pandas)

__all__ = ["qtl_scatter", "qtl_distributions", "qtl_residuals", "top_variants",
           "qtl_top_variants", "qtl_forest", "qtl_mode_comparison"]


def _alpha(n: int) -> float:
    return 0.8 if n < 200 else 0.5 if n < 2000 else 0.3


def qtl_scatter(df: pl.DataFrame, path: str | Path, *, score: str = "score", beta: str = "beta",
                x_label: str | None = None, y_label: str | None = None, title: str | None = None,
                stats: dict | None = None, width: float = 6.0, height: float = 5.0,
                dpi: int = DEFAULT_DPI) -> Path:
    """Score vs effect size with the least-squares line and a statistics subtitle.

    ``df`` columns: ``score`` (AlphaGenome score, x) and ``beta`` (QTL effect, y); the
    names are parameters. The subtitle gives n, Spearman ρ (p), Pearson r (p) and R²,
    computed here with scipy; ``stats`` (keys ``n, rho, rho_p, r, r_p, r2``) overrides
    them, e.g. to show the flow's own numbers.
    """
    df = require(df, [score, beta], what="qtl_scatter", finite=[score, beta])
    x = df[score].cast(pl.Float64).to_numpy()
    y = df[beta].cast(pl.Float64).to_numpy()
    st = correlation_stats(x, y)
    if stats:
        st.update({k: v for k, v in stats.items() if k in st})
    pdf = pd.DataFrame({"x": x, "y": y})
    plot = (p9.ggplot(pdf, p9.aes("x", "y"))
            + p9.geom_hline(yintercept=0, color=MUTED, size=0.3)
            + p9.geom_vline(xintercept=0, color=MUTED, size=0.3)
            + p9.geom_point(color=POINT, alpha=_alpha(len(pdf)), size=1.2, stroke=0)
            + p9.geom_line(p9.aes("x", "y"), data=fit_line(x, st["slope"], st["intercept"]),
                           color=FIT, size=0.9)
            + p9.labs(x=x_label or score, y=y_label or beta,
                      title=title or f"{score} vs {beta} (n = {len(pdf):,} variants)",
                      subtitle=stats_text(st))
            + theme_agval())
    return save(plot, path, width=width, height=height, dpi=dpi)


def _sign_counts(x: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    sx, sy = np.sign(x), np.sign(y)
    kinds = np.where((sx == 0) | (sy == 0), "zero", np.where(sx == sy, "same sign", "opposite sign"))
    cats = ["same sign", "opposite sign"] + (["zero"] if (kinds == "zero").any() else [])
    counts = pd.DataFrame({"kind": cats, "n": [int((kinds == c).sum()) for c in cats]})
    counts["pct"] = 100.0 * counts["n"] / max(1, len(kinds))
    counts["label"] = [f"{n:,}\n({p:.1f}%)" for n, p in zip(counts["n"], counts["pct"])]
    counts["kind"] = categorical(counts["kind"], cats)
    return counts


def qtl_distributions(df: pl.DataFrame, path: str | Path, *, score: str = "score",
                      beta: str = "beta", bins: int = 50, width: float = 10.0,
                      height: float = 8.0, dpi: int = DEFAULT_DPI) -> Path:
    """2×2 panel: score histogram, beta histogram (each with its mean line), |score| and
    |beta| side by side (each on its own axis: they are different scales), and a bar of
    same- vs opposite-sign counts ("% same sign" title).

    ``df`` columns: ``score``, ``beta`` (names are parameters).
    """
    df = require(df, [score, beta], what="qtl_distributions", finite=[score, beta])
    x = df[score].cast(pl.Float64).to_numpy()
    y = df[beta].cast(pl.Float64).to_numpy()

    def hist(v: np.ndarray, name: str, fill: str) -> p9.ggplot:
        m = float(np.mean(v))
        return (p9.ggplot(pd.DataFrame({"v": v}), p9.aes("v"))
                + p9.geom_histogram(bins=bins, fill=fill, color="white", size=0.1)
                + p9.geom_vline(xintercept=m, color=MEAN_LINE, linetype="dashed")
                + p9.labs(x=name, y="count", title=f"{name}: mean = {fmt_num(m)}, sd = "
                          f"{fmt_num(float(np.std(v, ddof=1)) if v.size > 1 else float('nan'))}")
                + theme_agval())

    mags = pd.DataFrame({"value": np.concatenate([np.abs(x), np.abs(y)]),
                         "what": [f"|{score}|"] * x.size + [f"|{beta}|"] * y.size})
    mags["what"] = categorical(mags["what"], [f"|{score}|", f"|{beta}|"])
    # score and beta are on different scales: one panel each, never one shared axis
    overlay = (p9.ggplot(mags, p9.aes("value", fill="what"))
               + p9.geom_histogram(bins=bins, color="white", size=0.1, show_legend=False)
               + p9.facet_wrap("what", scales="free", nrow=1)
               + p9.scale_fill_manual(values={f"|{score}|": POINT, f"|{beta}|": "#e67e22"})
               + p9.labs(x="magnitude (each panel its own scale)", y="count", title="Magnitudes")
               + theme_agval())
    counts = _sign_counts(x, y)
    same_pct = float(counts.loc[counts["kind"] == "same sign", "pct"].iloc[0])
    bars = (p9.ggplot(counts, p9.aes("kind", "n", fill="kind"))
            + p9.geom_col(width=0.6, show_legend=False)
            + p9.geom_text(p9.aes(label="label"), va="bottom", size=8)
            + p9.scale_fill_manual(values=[POS, NEG, MUTED][: len(counts)])
            + p9.scale_y_continuous(expand=(0, 0, 0.2, 0))
            + p9.labs(x="", y="variants", title=f"{same_pct:.1f}% same sign")
            + theme_agval())
    plot = (hist(x, score, POINT) | hist(y, beta, "#e67e22")) / (overlay | bars)
    return save(plot, path, width=width, height=height, dpi=dpi)


def qtl_residuals(df: pl.DataFrame, path: str | Path, *, score: str = "score", beta: str = "beta",
                  bins: int = 50, width: float = 10.0, height: float = 4.5,
                  dpi: int = DEFAULT_DPI) -> Path:
    """1×2 panel: residual (beta − fitted) vs fitted, and the residual histogram with mean
    and sd in the title. The fit is the least-squares line of beta on score.

    ``df`` columns: ``score``, ``beta`` (names are parameters).
    """
    df = require(df, [score, beta], what="qtl_residuals", finite=[score, beta])
    x = df[score].cast(pl.Float64).to_numpy()
    y = df[beta].cast(pl.Float64).to_numpy()
    st = correlation_stats(x, y)
    slope = st["slope"] if np.isfinite(st["slope"]) else 0.0
    intercept = st["intercept"] if np.isfinite(st["intercept"]) else float(np.mean(y))
    fitted = intercept + slope * x
    resid = y - fitted
    pdf = pd.DataFrame({"fitted": fitted, "resid": resid})
    left = (p9.ggplot(pdf, p9.aes("fitted", "resid"))
            + p9.geom_hline(yintercept=0, color=FIT, linetype="dashed")
            + p9.geom_point(color=POINT, alpha=_alpha(len(pdf)), size=1.2, stroke=0)
            + p9.labs(x=f"fitted {beta}", y="residual", title="Residuals vs fitted")
            + theme_agval())
    sd = float(np.std(resid, ddof=1)) if resid.size > 1 else float("nan")
    right = (p9.ggplot(pdf, p9.aes("resid"))
             + p9.geom_histogram(bins=bins, fill=POINT, color="white", size=0.1)
             + p9.geom_vline(xintercept=float(np.mean(resid)), color=MEAN_LINE, linetype="dashed")
             + p9.labs(x="residual", y="count",
                       title=f"Residuals: mean = {fmt_num(float(np.mean(resid)))}, sd = {fmt_num(sd)}")
             + theme_agval())
    return save(left | right, path, width=width, height=height, dpi=dpi)


def top_variants(df: pl.DataFrame, *, by: str, n: int = 20, id_col: str = "variant_id") -> pl.DataFrame:
    """The ``n`` rows with the largest ABSOLUTE ``by`` (P15: never signed ``nlargest``).

    Ties are broken by ``id_col`` so the choice is deterministic. Returns ``id_col``,
    ``by``, ``abs_value`` and ``rank`` (1 = largest |value|), largest first. Rows with a
    missing or non-finite ``by`` are ignored.
    """
    df = require(df, [id_col, by], what="top_variants", finite=[by])
    return (df.select(pl.col(id_col), pl.col(by).cast(pl.Float64))
            .with_columns(pl.col(by).abs().alias("abs_value"))
            .sort(["abs_value", id_col], descending=[True, False])
            .head(n)
            .with_row_index("rank", offset=1)
            .select(id_col, by, "abs_value", pl.col("rank").cast(pl.Int64)))


def _unique_labels(ids: Sequence[str]) -> list[str]:
    """Duplicated ids (one SNP, several peaks: P9) get ``#2``, ``#3`` suffixes."""
    seen: dict[str, int] = {}
    out = []
    for i in ids:
        k = str(i)
        seen[k] = seen.get(k, 0) + 1
        out.append(k if seen[k] == 1 else f"{k} #{seen[k]}")
    return out


def _top_bars(top: pl.DataFrame, id_col: str, by: str, title: str) -> p9.ggplot:
    pdf = to_pandas(top)
    labels = _unique_labels(pdf[id_col].tolist())
    pdf["label"] = categorical(pd.Series(labels), list(reversed(labels)))  # rank 1 at the top
    pdf["sign"] = np.where(pdf[by] >= 0, "positive", "negative")
    return (p9.ggplot(pdf, p9.aes("label", by, fill="sign"))
            + p9.geom_col(width=0.75)
            + p9.geom_hline(yintercept=0, color="black", size=0.3)
            + p9.coord_flip()
            + p9.scale_fill_manual(values={"positive": POS, "negative": NEG})
            + p9.labs(x="", y=by, fill="", title=title)
            + theme_agval(9))


def qtl_top_variants(df: pl.DataFrame, path: str | Path, *, score: str = "score", beta: str = "beta",
                     id_col: str = "variant_id", n: int = 20, width: float = 11.0,
                     height: float = 6.0, dpi: int = DEFAULT_DPI) -> Path:
    """1×2 horizontal bars: the top ``n`` variants by |score| and by |beta| (sorted by
    absolute value, largest on top; bars keep their sign and are coloured by it).

    ``df`` columns: ``id_col`` (default ``variant_id``), ``score``, ``beta``.
    """
    require(df, [id_col, score, beta], what="qtl_top_variants")
    left = _top_bars(top_variants(df, by=score, n=n, id_col=id_col), id_col, score,
                     f"Top {n} by |{score}|")
    right = _top_bars(top_variants(df, by=beta, n=n, id_col=id_col), id_col, beta,
                      f"Top {n} by |{beta}|")
    return save(left | right, path, width=width, height=height, dpi=dpi)


def qtl_forest(per_track: pl.DataFrame, path: str | Path, *, label: str = "track",
               estimate: str = "spearman_rho", low: str = "ci_low", high: str = "ci_high",
               group: str | None = None, n_col: str | None = "n",
               title: str = "Per-track Spearman \u03c1 with 95% CI", width: float = 7.0,
               height: float = 5.0, dpi: int = DEFAULT_DPI) -> Path:
    """Forest plot: one row per track with its ρ and confidence interval, a zero line.

    ``per_track`` columns: ``track`` (label), ``spearman_rho``, ``ci_low``, ``ci_high``
    (the output of ``agval.stats.qtl.per_track_table``); optional ``n`` (appended to the
    label when no ``group``) and a ``group`` column (e.g. mode or biosample) coloured and
    dodged. Tracks are ordered by their mean estimate.
    """
    cols = [label, estimate, low, high] + ([group] if group else [])
    df = require(per_track, cols, what="qtl_forest", finite=[estimate])
    pdf = to_pandas(df, cols + ([n_col] if n_col and n_col in df.columns and not group else []))
    if n_col and n_col in pdf.columns:
        pdf["ylabel"] = [f"{t} (n = {int(k):,})" if pd.notna(k) else str(t)
                         for t, k in zip(pdf[label], pdf[n_col])]
    else:
        pdf["ylabel"] = pdf[label].astype(str)
    order = pdf.groupby("ylabel", sort=False)[estimate].mean().sort_values().index.tolist()
    pdf["ylabel"] = categorical(pdf["ylabel"], order)
    aes = p9.aes(x="ylabel", y=estimate, ymin=low, ymax=high)
    if group:
        pdf[group] = pdf[group].astype(str)
        pdf[group] = categorical(pdf[group], ordered(pdf[group]))
        aes = p9.aes(x="ylabel", y=estimate, ymin=low, ymax=high, color=group)
    dodge = p9.position_dodge(width=0.5)
    plot = (p9.ggplot(pdf, aes)
            + p9.geom_hline(yintercept=0, color=MUTED, linetype="dashed")
            + p9.geom_linerange(position=dodge, size=0.8)
            + p9.geom_point(position=dodge, size=2.5)
            + p9.coord_flip()
            + p9.labs(x="", y="Spearman \u03c1" if estimate == "spearman_rho" else estimate,
                      title=title, color="")
            + theme_agval())
    return save(plot, path, width=width, height=height, dpi=dpi)


def qtl_mode_comparison(df: pl.DataFrame, path: str | Path, *, mode: str = "mode",
                        score: str = "score", beta: str = "beta",
                        modes: Sequence[str] | None = None, width: float = 11.0,
                        height: float = 5.0, dpi: int = DEFAULT_DPI) -> Path:
    """'original' vs 'corrected' side by side: one scatter panel per mode with its own
    fit line and statistics (in the panel strip); x scales are free (quantile vs raw).

    ``df`` columns: ``mode`` (e.g. ``original`` / ``corrected``), ``score``, ``beta`` in
    long form, one row per variant and mode. ``modes`` fixes the panel order.
    """
    df = require(df, [mode, score, beta], what="qtl_mode_comparison", finite=[score, beta])
    order = list(modes) if modes else ordered(df[mode].cast(pl.Utf8).to_list())
    pts, lines, strips = [], [], {}
    for m in order:
        sub = df.filter(pl.col(mode).cast(pl.Utf8) == str(m))
        if sub.height == 0:
            continue
        x = sub[score].cast(pl.Float64).to_numpy()
        y = sub[beta].cast(pl.Float64).to_numpy()
        st = correlation_stats(x, y)
        strips[m] = (f"{m}\nn = {st['n']:,}   \u03c1 = {fmt_num(st['rho'])} (p = {fmt_p(st['rho_p'])})\n"
                     f"r = {fmt_num(st['r'])} (p = {fmt_p(st['r_p'])})   R\u00b2 = {fmt_num(st['r2'])}")
        pts.append(pd.DataFrame({"x": x, "y": y, "panel": strips[m]}))
        fl = fit_line(x, st["slope"], st["intercept"])
        fl["panel"] = strips[m]
        lines.append(fl)
    if not pts:
        raise EmptyPlotInputError(f"qtl_mode_comparison: no rows for the modes {order}")
    pdf = pd.concat(pts, ignore_index=True)
    ldf = pd.concat(lines, ignore_index=True)
    panels = list(strips.values())
    pdf["panel"] = categorical(pdf["panel"], panels)
    ldf["panel"] = categorical(ldf["panel"], panels)
    plot = (p9.ggplot(pdf, p9.aes("x", "y"))
            + p9.geom_hline(yintercept=0, color=MUTED, size=0.3)
            + p9.geom_point(color=POINT, alpha=_alpha(len(pdf) // max(1, len(panels))), size=1.2,
                            stroke=0)
            + p9.geom_line(data=ldf, color=FIT, size=0.9)
            + p9.facet_wrap("panel", scales="free_x", nrow=1)
            + p9.labs(x=score, y=beta, title="Original vs corrected")
            + theme_agval())
    return save(plot, path, width=width, height=height, dpi=dpi)
