"""TWAS / fine-mapping concordance figures (STUDIES.md §2.8, Q1–Q4).

Every function takes polars DataFrames (or plain values for the permutation null) and an
output path and returns the Path of the PNG it wrote. Column names are parameters with
the defaults given in each docstring. Tissue names are GTEx names
(``Heart_Atrial_Appendage``...), assays are ``RNA``/``ATAC``/``DNASE``/``CAGE`` or whatever
the table holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotnine as p9
import polars as pl

from agval.errors import GuardError
from agval.stats.resampling import permutation_p
from agval.plots._common import (DEFAULT_DPI, FIT, HIGHLIGHT, MEDIAN_LINE, MUTED, POINT, POS,
                                 EmptyPlotInputError, categorical,
                                 correlation_stats, fit_line, fmt_num, fmt_p, jitter, ordered,
                                 require, require_values, save, theme_agval, tile_heatmap,
                                 to_pandas)

__all__ = [
    "HEART_TISSUES", "twas_data_overview", "twas_pip_manhattan", "twas_concordance_heatmap",
    "twas_permutation_null", "twas_cs_enrichment", "twas_score_distributions",
    "twas_pip_vs_score", "twas_tissue_accuracy", "twas_heart_vs_other",
    "gene_tissue_heatmap", "twas_z_heatmap", "ag_heatmap", "twas_specificity_bars",
    "twas_kendall_violins", "twas_gene_rho_heatmap", "twas_gene_score_scatter",
]

#: Tissues highlighted as "heart" by default.
HEART_TISSUES: tuple[str, ...] = ("Heart_Atrial_Appendage", "Heart_Left_Ventricle")

_CS_COLOURS = {"in credible set": POS, "not in credible set": MUTED}


def _stars(p: Any) -> str:
    if p is None or not np.isfinite(p):
        return ""
    return "***" if p < 1e-3 else "**" if p < 1e-2 else "*" if p < 0.05 else ""


# -- 1. data overview -------------------------------------------------------------------

def twas_data_overview(triplets: pl.DataFrame, path: str | Path, *, gene: str = "gene_id",
                       tissue: str = "tissue", variant: str = "variant_key", pip: str = "pip",
                       cs: str = "cs", width: float = 11.0, height: float = 8.0,
                       dpi: int = DEFAULT_DPI) -> Path:
    """2×2 overview: genes per tissue, SNPs per gene–tissue pair, PIP histogram and
    credible-set sizes.

    ``triplets`` columns: ``gene_id``, ``tissue``, ``variant_key``, ``pip``, ``cs`` (int,
    −1 = in no credible set), one row per (variant, gene, tissue).
    """
    df = require(triplets, [gene, tissue, variant, pip, cs], what="twas_data_overview")
    per_tissue = to_pandas(df.group_by(tissue).agg(pl.col(gene).n_unique().alias("genes"))
                           .sort(["genes", tissue]))
    per_tissue[tissue] = categorical(per_tissue[tissue].astype(str), per_tissue[tissue].astype(str).tolist())
    a = (p9.ggplot(per_tissue, p9.aes(tissue, "genes"))
         + p9.geom_col(fill=POINT, width=0.7)
         + p9.geom_text(p9.aes(label="genes"), ha="left", nudge_y=0.5, size=8)
         + p9.coord_flip()
         + p9.scale_y_continuous(expand=(0, 0, 0.15, 0))
         + p9.labs(x="", y="genes", title=f"Genes per tissue ({df[gene].n_unique():,} genes)")
         + theme_agval(9))
    per_pair = to_pandas(df.group_by([gene, tissue]).agg(pl.col(variant).n_unique().alias("snps")))
    b = (p9.ggplot(per_pair, p9.aes("snps"))
         + p9.geom_histogram(bins=30, fill=POINT, color="white", size=0.1)
         + p9.labs(x="SNPs per gene–tissue pair", y="pairs",
                   title=f"SNPs per gene ({len(per_pair):,} pairs, median {np.median(per_pair['snps']):g})")
         + theme_agval(9))
    pips = df.filter(pl.col(pip).is_not_null() & pl.col(pip).is_finite())
    c = (p9.ggplot(to_pandas(pips, [pip]), p9.aes(pip))
         + p9.geom_histogram(bins=40, fill=POINT, color="white", size=0.1)
         + p9.scale_y_sqrt()
         + p9.labs(x="PIP", y="variants (sqrt scale)", title=f"PIP ({pips.height:,} triplets)")
         + theme_agval(9))
    sizes = (df.filter(pl.col(cs) >= 0).group_by([gene, tissue, cs])
             .agg(pl.col(variant).n_unique().alias("size")))
    if sizes.height:
        d = (p9.ggplot(to_pandas(sizes), p9.aes("size"))
             + p9.geom_histogram(binwidth=1, fill=POS, color="white", size=0.1)
             + p9.labs(x="variants in the credible set", y="credible sets",
                       title=f"Credible-set sizes ({sizes.height:,} sets)")
             + theme_agval(9))
    else:
        d = (p9.ggplot(pd.DataFrame({"x": [0], "y": [0], "t": ["no credible sets"]}), p9.aes("x", "y"))
             + p9.geom_text(p9.aes(label="t"))
             + p9.labs(x="", y="", title="Credible-set sizes") + theme_agval(9))
    return save((a | b) / (c | d), path, width=width, height=height, dpi=dpi)


# -- 2. PIP "Manhattan" -----------------------------------------------------------------

def twas_pip_manhattan(df: pl.DataFrame, path: str | Path, *, genes: Sequence[str] | None = None,
                       gene: str = "gene_name", pos: str = "pos", pip: str = "pip", cs: str = "cs",
                       tissue: str | None = None, tissue_col: str = "tissue", ncol: int = 3,
                       width: float = 11.0, height: float = 6.0, dpi: int = DEFAULT_DPI) -> Path:
    """Position (Mb) vs PIP, one panel per gene, credible-set members in red.

    ``df`` columns: ``gene_name``, ``pos`` (1-based), ``pip``, ``cs`` (−1 = none); plus
    ``tissue`` when ``tissue=`` selects one tissue. ``genes`` keeps the named loci (e.g.
    ``["PITX2", "TBX5", "SCN5A", "SCN10A", "KCNN3"]``) in that order.
    """
    df = require(df, [gene, pos, pip, cs], what="twas_pip_manhattan", finite=[pos, pip])
    if tissue is not None:
        require(df, [tissue_col], what="twas_pip_manhattan")
        df = df.filter(pl.col(tissue_col).cast(pl.Utf8) == tissue)
    if genes:
        df = df.filter(pl.col(gene).cast(pl.Utf8).is_in([str(g) for g in genes]))
    if df.height == 0:
        raise EmptyPlotInputError(
            f"twas_pip_manhattan: no rows for genes {list(genes or [])} "
            f"{'in tissue ' + tissue if tissue else ''}; there is nothing to plot")
    pdf = to_pandas(df, [gene, pos, pip, cs])
    pdf["Mb"] = pdf[pos] / 1e6
    pdf["set"] = np.where(pdf[cs] >= 0, "in credible set", "not in credible set")
    present = ordered(pdf[gene].astype(str))
    order = [g for g in (genes or present) if g in set(present)]
    pdf[gene] = categorical(pdf[gene].astype(str), order)
    plot = (p9.ggplot(pdf.sort_values("set", ascending=False), p9.aes("Mb", pip, color="set"))
            + p9.geom_point(size=1.6, alpha=0.8)
            + p9.facet_wrap(gene, scales="free_x", ncol=ncol)
            + p9.scale_color_manual(values=_CS_COLOURS)
            + p9.scale_y_continuous(limits=(0, 1))
            + p9.labs(x="position (Mb, hg38)", y="SuSiE PIP", color="",
                      title="Fine-mapping PIP at named loci" + (f" ({tissue})" if tissue else ""))
            + theme_agval())
    return save(plot, path, width=width, height=height, dpi=dpi)


# -- 3. sign concordance ----------------------------------------------------------------

def twas_concordance_heatmap(grid: pl.DataFrame, path: str | Path, *, row: str = "tissue",
                             col: str = "assay", value: str = "accuracy", n: str = "n",
                             p: str | None = "perm_p", title: str = "Sign concordance (Q1)",
                             row_order: Sequence[str] | None = None,
                             col_order: Sequence[str] | None = None, width: float = 7.0,
                             height: float = 6.0, dpi: int = DEFAULT_DPI) -> Path:
    """Tissue × assay heatmap of sign accuracy (0.5 = chance, white), annotated
    ``59.8%`` / ``n = 408`` and stars for ``p`` < 0.05 / 0.01 / 0.001.

    ``grid`` columns: ``tissue``, ``assay``, ``accuracy`` (fraction in [0, 1]), ``n``;
    optional ``perm_p`` (set ``p=None`` to skip, or e.g. ``p="binom_p_greater"``) - the
    table of ``agval.stats.twas.q1_sign_concordance``. Use ``value="accuracy_weighted",
    p="perm_p_weighted"`` for the PIP-weighted grid.
    """
    have_p = p is not None and p in grid.columns if isinstance(grid, pl.DataFrame) else False
    cols = [row, col, value, n] + ([p] if have_p else [])
    df = require(grid, cols, what="twas_concordance_heatmap")
    pdf = to_pandas(df, cols)
    pdf["cell"] = [
        (f"{100 * a:.1f}%{_stars(pp) if have_p else ''}\nn = {int(k):,}" if pd.notna(a) else "")
        for a, k, pp in zip(pdf[value], pdf[n], pdf[p] if have_p else [None] * len(pdf))]
    dev = float(np.nanmax(np.abs(pdf[value].astype(float) - 0.5))) if pdf[value].notna().any() else 0.0
    half = max(dev, 0.05)  # symmetric around chance so equal distances get equal colours
    plot = (tile_heatmap(pdf, x=col, y=row, fill=value, label="cell", midpoint=0.5,
                         limits=(0.5 - half, 0.5 + half), x_order=col_order, y_order=row_order,
                         fill_name=value)
            + p9.labs(title=title,
                      subtitle=f"stars: {p} < 0.05 / 0.01 / 0.001" if have_p else None))
    return save(plot, path, width=width, height=height, dpi=dpi)


def twas_permutation_null(null: Any, observed: float, path: str | Path, *,
                          p_value: float | None = None, label: str = "accuracy",
                          title: str = "Within-gene permutation null", bins: int = 40,
                          width: float = 6.0, height: float = 4.5, dpi: int = DEFAULT_DPI) -> Path:
    """Histogram of the permutation null for one cell with the observed value as a line.

    ``null``: the B permuted statistics (list, numpy array or polars Series, e.g. the
    ``accuracy`` column of Q1's null table filtered to one tissue and assay);
    ``observed``: the observed statistic; ``p_value``: shown in the subtitle when given,
    else computed as (1 + #{null ≥ observed}) / (B + 1).
    """
    arr = require_values(null, what="twas_permutation_null")
    if observed is None or not np.isfinite(observed):
        raise EmptyPlotInputError("twas_permutation_null: the observed statistic is missing")
    if p_value is None:
        p_value = permutation_p(float(observed), arr, alternative="greater")
    plot = (p9.ggplot(pd.DataFrame({"v": arr}), p9.aes("v"))
            + p9.geom_histogram(bins=bins, fill=MUTED, color="white", size=0.1)
            + p9.geom_vline(xintercept=float(observed), color=POS, size=1.1)
            + p9.labs(x=label, y="permutations", title=title,
                      subtitle=f"observed = {fmt_num(observed)}   permutation p = {fmt_p(p_value)}"
                               f"   B = {arr.size:,}")
            + theme_agval())
    return save(plot, path, width=width, height=height, dpi=dpi)


# -- 5. credible-set enrichment ---------------------------------------------------------

def twas_cs_enrichment(summary: pl.DataFrame, path: str | Path, *, assay: str = "assay",
                       mean_cs: str = "mean_abs_cs", mean_noncs: str = "mean_abs_noncs",
                       fold: str = "fold", p: str | None = "mwu_p", width: float = 10.0,
                       height: float = 4.0, dpi: int = DEFAULT_DPI) -> Path:
    """Mean |score| in vs out of credible sets, one panel per assay (free y: RNA scores
    are ~50× smaller than chromatin), fold and Mann–Whitney P in the strip.

    ``summary`` columns: ``assay``, ``mean_abs_cs``, ``mean_abs_noncs``, ``fold``; optional
    ``mwu_p`` (the table of ``agval.stats.twas.q2_credible_set_enrichment``).
    """
    have_p = p is not None and isinstance(summary, pl.DataFrame) and p in summary.columns
    cols = [assay, mean_cs, mean_noncs, fold] + ([p] if have_p else [])
    df = require(summary, cols, what="twas_cs_enrichment")
    rows = []
    for rec in df.iter_rows(named=True):
        strip = f"{rec[assay]}\n{fmt_num(rec[fold])}×" + (f", P = {fmt_p(rec[p])}" if have_p else "")
        rows.append({"panel": strip, "set": "in credible set", "mean": rec[mean_cs]})
        rows.append({"panel": strip, "set": "not in credible set", "mean": rec[mean_noncs]})
    pdf = pd.DataFrame(rows)
    pdf["panel"] = categorical(pdf["panel"], ordered(pdf["panel"]))
    pdf["set"] = categorical(pdf["set"], list(_CS_COLOURS))
    plot = (p9.ggplot(pdf, p9.aes("set", "mean", fill="set"))
            + p9.geom_col(width=0.65)
            + p9.facet_wrap("panel", scales="free_y", nrow=1)
            + p9.scale_fill_manual(values=_CS_COLOURS)
            + p9.labs(x="", y="mean |score|", fill="", title="Credible-set enrichment (Q2)")
            + theme_agval()
            + p9.theme(axis_text_x=p9.element_blank(), axis_ticks_major_x=p9.element_blank()))
    return save(plot, path, width=width, height=height, dpi=dpi)


def twas_score_distributions(df: pl.DataFrame, path: str | Path, *, assay: str = "assay",
                             score: str = "score", in_cs: str = "in_cs", width: float = 10.0,
                             height: float = 4.0, dpi: int = DEFAULT_DPI) -> Path:
    """|score| by credible-set membership, a box per group, one panel per assay.

    ``df`` columns: ``assay``, ``score`` (signed; its absolute value is drawn), ``in_cs``
    (bool), long form: one row per triplet and assay.
    """
    df = require(df, [assay, score, in_cs], what="twas_score_distributions", finite=[score])
    pdf = to_pandas(df, [assay, score, in_cs])
    pdf["abs"] = pdf[score].abs()
    pdf["set"] = categorical(pd.Series(np.where(pdf[in_cs].astype(bool), "in credible set",
                                                "not in credible set")), list(_CS_COLOURS))
    pdf[assay] = categorical(pdf[assay].astype(str), ordered(pdf[assay].astype(str)))
    plot = (p9.ggplot(pdf, p9.aes("set", "abs", fill="set"))
            + p9.geom_boxplot(outlier_size=0.4, outlier_alpha=0.4, width=0.6)
            + p9.facet_wrap(assay, scales="free_y", nrow=1)
            + p9.scale_fill_manual(values=_CS_COLOURS)
            + p9.labs(x="", y="|score|", fill="", title="|score| distributions by assay")
            + theme_agval()
            + p9.theme(axis_text_x=p9.element_blank(), axis_ticks_major_x=p9.element_blank()))
    return save(plot, path, width=width, height=height, dpi=dpi)


def twas_pip_vs_score(df: pl.DataFrame, path: str | Path, *, assay: str = "assay", pip: str = "pip",
                      score: str = "score", ncol: int = 2, width: float = 9.0, height: float = 7.0,
                      dpi: int = DEFAULT_DPI) -> Path:
    """PIP vs |score| scatter, one panel per assay, Spearman(PIP, |score|) in each strip.

    ``df`` columns: ``assay``, ``pip``, ``score`` (signed; |score| is drawn), long form.
    """
    df = require(df, [assay, pip, score], what="twas_pip_vs_score", finite=[pip, score])
    frames = []
    for a in ordered(df[assay].cast(pl.Utf8).to_list()):
        sub = df.filter(pl.col(assay).cast(pl.Utf8) == a)
        x = sub[pip].cast(pl.Float64).to_numpy()
        y = np.abs(sub[score].cast(pl.Float64).to_numpy())
        st = correlation_stats(x, y)
        frames.append(pd.DataFrame({"pip": x, "abs": y, "panel":
                                    f"{a}: \u03c1 = {fmt_num(st['rho'])} (p = {fmt_p(st['rho_p'])}, "
                                    f"n = {st['n']:,})"}))
    pdf = pd.concat(frames, ignore_index=True)
    pdf["panel"] = categorical(pdf["panel"], ordered(pdf["panel"]))
    plot = (p9.ggplot(pdf, p9.aes("pip", "abs"))
            + p9.geom_point(color=POINT, alpha=0.4, size=1, stroke=0)
            + p9.facet_wrap("panel", scales="free_y", ncol=ncol)
            + p9.labs(x="PIP", y="|score|", title="PIP vs |score|")
            + theme_agval())
    return save(plot, path, width=width, height=height, dpi=dpi)


# -- 7. per-tissue accuracy -------------------------------------------------------------

def twas_tissue_accuracy(df: pl.DataFrame, path: str | Path, *, tissue: str = "tissue",
                         accuracy: str = "accuracy", n: str = "n", p: str | None = "perm_p",
                         low: str | None = "ci_low", high: str | None = "ci_high",
                         highlight: Sequence[str] = HEART_TISSUES,
                         title: str = "Sign accuracy per tissue (RNA)", width: float = 8.0,
                         height: float = 5.0, dpi: int = DEFAULT_DPI) -> Path:
    """Horizontal bars of sign accuracy per tissue, heart tissues highlighted, a line at
    chance (0.5); ``n`` (and stars for ``p``) beside each bar; CI whiskers if present.

    ``df`` columns: ``tissue``, ``accuracy`` (fraction), ``n``; optional ``perm_p``,
    ``ci_low``, ``ci_high`` (used when present). Q1's table filtered to one assay fits.
    """
    df = require(df, [tissue, accuracy, n], what="twas_tissue_accuracy", finite=[accuracy])
    have = {k: (c is not None and c in df.columns) for k, c in (("p", p), ("low", low), ("high", high))}
    cols = [tissue, accuracy, n] + [c for k, c in (("p", p), ("low", low), ("high", high)) if have[k]]
    pdf = to_pandas(df, cols).sort_values(accuracy)
    pdf[tissue] = categorical(pdf[tissue].astype(str), pdf[tissue].astype(str).tolist())
    pdf["group"] = np.where(pdf[tissue].astype(str).isin(list(highlight)), "heart", "other")
    pdf["text"] = [f"{100 * a:.1f}% (n = {int(k):,}){_stars(q) if have['p'] else ''}"
                   for a, k, q in zip(pdf[accuracy], pdf[n], pdf[p] if have["p"] else [None] * len(pdf))]
    plot = (p9.ggplot(pdf, p9.aes(tissue, accuracy, fill="group"))
            + p9.geom_col(width=0.7)
            + p9.geom_hline(yintercept=0.5, linetype="dashed", color=MEDIAN_LINE))
    if have["low"] and have["high"]:
        plot = plot + p9.geom_errorbar(p9.aes(ymin=low, ymax=high), width=0.25, color="black")
    plot = (plot
            + p9.geom_text(p9.aes(y=0.01, label="text"), ha="left", size=7, color="white")
            + p9.coord_flip()
            + p9.scale_fill_manual(values={"heart": HIGHLIGHT, "other": POINT})
            + p9.scale_y_continuous(limits=(0, max(1.0, float(pdf[accuracy].max()))), expand=(0, 0))
            + p9.labs(x="", y="sign accuracy", fill="", title=title)
            + theme_agval())
    return save(plot, path, width=width, height=height, dpi=dpi)


def twas_heart_vs_other(df: pl.DataFrame, path: str | Path, *, tissue: str = "tissue",
                        assay: str = "assay", score: str = "score",
                        heart: Sequence[str] = HEART_TISSUES, width: float = 10.0,
                        height: float = 4.0, dpi: int = DEFAULT_DPI) -> Path:
    """Boxplots of |score| in heart vs non-heart tissues, one panel per assay.

    ``df`` columns: ``tissue``, ``assay``, ``score`` (signed; |score| is drawn).
    """
    df = require(df, [tissue, assay, score], what="twas_heart_vs_other", finite=[score])
    pdf = to_pandas(df, [tissue, assay, score])
    pdf["abs"] = pdf[score].abs()
    pdf["group"] = categorical(pd.Series(np.where(pdf[tissue].astype(str).isin(list(heart)),
                                                  "heart", "non-heart")), ["heart", "non-heart"])
    pdf[assay] = categorical(pdf[assay].astype(str), ordered(pdf[assay].astype(str)))
    plot = (p9.ggplot(pdf, p9.aes("group", "abs", fill="group"))
            + p9.geom_boxplot(outlier_size=0.4, outlier_alpha=0.4, width=0.6, show_legend=False)
            + p9.facet_wrap(assay, scales="free_y", nrow=1)
            + p9.scale_fill_manual(values={"heart": HIGHLIGHT, "non-heart": POINT})
            + p9.labs(x="", y="|score|", title="|score| in heart vs other tissues")
            + theme_agval())
    return save(plot, path, width=width, height=height, dpi=dpi)


# -- 8. tissue specificity --------------------------------------------------------------

def _select_assay(df: pl.DataFrame, assay: str | None, assay_col: str, what: str) -> pl.DataFrame:
    if assay is None:
        return df
    df = require(df, [assay_col], what=what)
    df = df.filter(pl.col(assay_col).cast(pl.Utf8) == assay)
    if df.height == 0:
        raise EmptyPlotInputError(f"{what}: no rows for assay {assay!r}; there is nothing to plot")
    return df


def gene_tissue_heatmap(df: pl.DataFrame, path: str | Path, *, value: str, gene: str | None = None,
                        tissue: str = "tissue", assay: str | None = None, assay_col: str = "assay",
                        title: str | None = None, max_genes: int = 60, width: float = 8.0,
                        height: float = 10.0, dpi: int = DEFAULT_DPI) -> Path:
    """Gene × tissue heatmap of ``value`` (diverging around 0; missing pairs grey).

    ``df`` columns: ``gene_name`` (or ``gene_id`` when there is no ``gene_name``; or
    ``gene=``), ``tissue``, ``value``; one row per gene–tissue pair. With an ``assay``
    column (e.g. ``agval.stats.twas.gene_level_scores``), pass ``assay="RNA"`` to pick one;
    duplicated gene–tissue pairs are refused. With more than ``max_genes`` genes, those
    with the largest max |value| are kept; genes are grouped by the tissue of their
    largest |value|.
    """
    what = "gene_tissue_heatmap"
    if gene is None:
        gene = "gene_name" if isinstance(df, pl.DataFrame) and "gene_name" in df.columns else "gene_id"
    df = require(df, [gene, tissue, value], what=what, finite=[value])
    df = _select_assay(df, assay, assay_col, what)
    dup = df.group_by([gene, tissue]).len().filter(pl.col("len") > 1)
    if dup.height:
        raise GuardError(f"{what}: {dup.height} gene–tissue pairs occur more than once (e.g. "
                         f"{dup[gene][0]} / {dup[tissue][0]}); select one assay with assay=...")
    df = df.select(pl.col(gene).cast(pl.Utf8), pl.col(tissue).cast(pl.Utf8),
                   pl.col(value).cast(pl.Float64))
    best = (df.with_columns(pl.col(value).abs().alias("_abs"))
            .sort(["_abs", gene, tissue], descending=[True, False, False])
            .group_by(gene, maintain_order=True).first())
    n_genes = best.height
    best = best.head(max_genes)
    tissues = sorted(df[tissue].unique().to_list())
    best = best.with_columns(pl.col(tissue).replace_strict(tissues, list(range(len(tissues))))
                             .alias("_t")).sort(["_t", "_abs"], descending=[False, True])
    genes = best[gene].to_list()
    full = (pl.DataFrame({gene: genes}).join(pl.DataFrame({tissue: tissues}), how="cross")
            .join(df.filter(pl.col(gene).is_in(genes)), on=[gene, tissue], how="left"))
    pdf = to_pandas(full)
    pdf["cell"] = ""
    lim = float(np.nanmax(np.abs(pdf[value]))) or 1.0
    text_y = 8 if len(genes) <= 30 else 6 if len(genes) <= 60 else 4
    plot = (tile_heatmap(pdf, x=tissue, y=gene, fill=value, label="cell", midpoint=0.0,
                         limits=(-lim, lim), x_order=tissues, y_order=genes, fill_name=value)
            + p9.labs(title=title or f"{value} (gene × tissue)",
                      subtitle=(f"top {len(genes)} of {n_genes} genes by max |{value}|"
                                if n_genes > len(genes) else f"{n_genes} genes"))
            + p9.theme(axis_text_x=p9.element_text(rotation=45, ha="right"),
                       axis_text_y=p9.element_text(size=text_y)))
    return save(plot, path, width=width, height=height, dpi=dpi)


def twas_z_heatmap(df: pl.DataFrame, path: str | Path, *, value: str = "twas_z", **kw: Any) -> Path:
    """TWAS Z gene × tissue heatmap; ``df`` columns ``gene_name`` (or ``gene_id``),
    ``tissue``, ``twas_z``; keywords as :func:`gene_tissue_heatmap`."""
    kw.setdefault("title", "TWAS Z (gene × tissue)")
    return gene_tissue_heatmap(df, path, value=value, **kw)


def ag_heatmap(df: pl.DataFrame, path: str | Path, *, value: str = "ag_g", **kw: Any) -> Path:
    """AlphaGenome gene-level score heatmap; ``df`` columns ``gene_name`` (or ``gene_id``),
    ``tissue``, ``ag_g``; keywords as :func:`gene_tissue_heatmap` (e.g. ``assay="RNA"``)."""
    kw.setdefault("title", "AlphaGenome gene score AG_G (gene × tissue)")
    return gene_tissue_heatmap(df, path, value=value, **kw)


def twas_specificity_bars(df: pl.DataFrame, path: str | Path, *, assay: str = "assay",
                          rho: str = "spearman_rho", n: str = "n_genes", p: str | None = "spearman_p",
                          width: float = 6.0,
                          height: float = 4.0, dpi: int = DEFAULT_DPI) -> Path:
    """Bars of Spearman ρ(S_AG, S_TWAS) per assay with n and P above each bar (Q3).

    ``df`` columns: ``assay``, ``spearman_rho``, ``n_genes``; optional ``spearman_p`` (the
    Q3 ``summary`` table).
    """
    df = require(df, [assay, rho, n], what="twas_specificity_bars", finite=[rho])
    have_p = p is not None and p in df.columns
    pdf = to_pandas(df, [assay, rho, n] + ([p] if have_p else []))
    pdf[assay] = categorical(pdf[assay].astype(str), ordered(pdf[assay].astype(str)))
    pdf["text"] = [f"n = {int(k):,}" + (f"\nP = {fmt_p(q)}" if have_p else "")
                   for k, q in zip(pdf[n], pdf[p] if have_p else [None] * len(pdf))]
    pdf["vj"] = np.where(pdf[rho] >= 0, "bottom", "top")
    plot = (p9.ggplot(pdf, p9.aes(assay, rho))
            + p9.geom_col(fill=POINT, width=0.6)
            + p9.geom_hline(yintercept=0, color="black", size=0.3)
            + p9.geom_text(p9.aes(label="text", va="vj"), size=7)
            + p9.scale_y_continuous(expand=(0.15, 0))
            + p9.labs(x="", y="Spearman \u03c1(S_AG, S_TWAS)", title="Tissue specificity (Q3)")
            + theme_agval())
    return save(plot, path, width=width, height=height, dpi=dpi)


def twas_kendall_violins(df: pl.DataFrame, path: str | Path, *, assay: str = "assay",
                         tau: str = "tau", p: str | None = "p", seed: int = 0, width: float = 7.0,
                         height: float = 4.5, dpi: int = DEFAULT_DPI) -> Path:
    """Violins of within-gene Kendall τ per assay, seeded jittered points (genes with
    ``p`` < 0.05 in red), the mean as a diamond; axis labels give mean τ and k/n.

    ``df`` columns: ``assay``, ``tau`` (one row per gene and assay); optional ``p`` (the
    Q3 ``kendall`` table).
    """
    df = require(df, [assay, tau], what="twas_kendall_violins", finite=[tau])
    have_p = p is not None and p in df.columns
    pdf = to_pandas(df, [assay, tau] + ([p] if have_p else []))
    levels = ordered(pdf[assay].astype(str))
    labels = {}
    for a in levels:
        sub = pdf[pdf[assay].astype(str) == a]
        extra = f"\n{int((sub[p] < 0.05).sum())}/{len(sub)} p < 0.05" if have_p else f"\nn = {len(sub)}"
        labels[a] = f"{a}\nmean \u03c4 = {fmt_num(sub[tau].mean())}{extra}"
    pdf["x"] = categorical(pdf[assay].astype(str).map(labels), [labels[a] for a in levels])
    pdf["xpos"] = pdf["x"].cat.codes + 1 + jitter(len(pdf), 0.12, seed)
    pdf["sig"] = np.where((pdf[p] < 0.05) if have_p else False, "p < 0.05", "p \u2265 0.05")
    means = pdf.groupby("x", observed=True)[tau].mean().reset_index()
    plot = (p9.ggplot(pdf, p9.aes("x", tau))
            + p9.geom_hline(yintercept=0, color=MUTED, linetype="dashed")
            + p9.geom_violin(fill="#dbe5f0", color=POINT, scale="width", width=0.8)
            + p9.geom_point(p9.aes(x="xpos", color="sig"), size=1.2, alpha=0.7, stroke=0)
            + p9.geom_point(data=means, shape="D", size=3, color="black", fill="white")
            + p9.scale_color_manual(values={"p < 0.05": POS, "p \u2265 0.05": MUTED})
            + p9.labs(x="", y="Kendall \u03c4 (AG vs TWAS, within gene)", color="",
                      title="Within-gene tissue ranking (Q3)")
            + theme_agval())
    return save(plot, path, width=width, height=height, dpi=dpi)


# -- 9. gene-level score ----------------------------------------------------------------

def twas_gene_rho_heatmap(df: pl.DataFrame, path: str | Path, *, row: str = "tissue",
                          col: str = "assay", rho: str = "spearman_rho", n: str = "n_genes",
                          p: str | None = "perm_p_two_sided",
                          title: str = "Spearman \u03c1(AG_G, TWAS.Z) per tissue (Q4)",
                          width: float = 7.0, height: float = 6.0, dpi: int = DEFAULT_DPI) -> Path:
    """Tissue × assay heatmap of the gene-level Spearman ρ (−1..1, white at 0), annotated
    with ρ, stars for ``p`` and n.

    ``df`` columns: ``tissue``, ``assay``, ``spearman_rho``, ``n_genes``; optional
    ``perm_p_two_sided`` (the Q4 table; the within-gene permutation P is the honest one,
    P21; pass ``p="spearman_p"`` for the seed's t-approximation).
    """
    have_p = p is not None and isinstance(df, pl.DataFrame) and p in df.columns
    cols = [row, col, rho, n] + ([p] if have_p else [])
    d = require(df, cols, what="twas_gene_rho_heatmap")
    pdf = to_pandas(d, cols)
    pdf["cell"] = [(f"{r:.2f}{_stars(q) if have_p else ''}\nn = {int(k):,}" if pd.notna(r) else "")
                   for r, k, q in zip(pdf[rho], pdf[n], pdf[p] if have_p else [None] * len(pdf))]
    plot = (tile_heatmap(pdf, x=col, y=row, fill=rho, label="cell", midpoint=0.0,
                         limits=(-1.0, 1.0), fill_name="\u03c1")
            + p9.labs(title=title, subtitle=f"stars: {p} < 0.05 / 0.01 / 0.001" if have_p else None))
    return save(plot, path, width=width, height=height, dpi=dpi)


def twas_gene_score_scatter(df: pl.DataFrame, path: str | Path, *, tissue: str = "tissue",
                            ag: str = "ag_g", twas_z: str = "twas_z",
                            tissues: Sequence[str] | None = None, assay: str | None = None,
                            assay_col: str = "assay", ncol: int = 2,
                            width: float = 10.0, height: float = 4.5, dpi: int = DEFAULT_DPI) -> Path:
    """AG_G vs TWAS.Z, one panel per tissue (e.g. ``["Prostate", "Whole_Blood"]``), with
    the least-squares line and Spearman ρ in the strip.

    ``df`` columns: ``tissue``, ``ag_g``, ``twas_z`` (one row per gene–tissue pair); with
    an ``assay`` column (``agval.stats.twas.gene_level_scores``) pass ``assay="RNA"``.
    """
    df = require(df, [tissue, ag, twas_z], what="twas_gene_score_scatter", finite=[ag, twas_z])
    df = _select_assay(df, assay, assay_col, "twas_gene_score_scatter")
    order = list(tissues) if tissues else ordered(df[tissue].cast(pl.Utf8).to_list())
    pts, lines = [], []
    for t in order:
        sub = df.filter(pl.col(tissue).cast(pl.Utf8) == str(t))
        if sub.height == 0:
            continue
        x = sub[ag].cast(pl.Float64).to_numpy()
        y = sub[twas_z].cast(pl.Float64).to_numpy()
        st = correlation_stats(x, y)
        strip = f"{t}\n\u03c1 = {fmt_num(st['rho'])} (p = {fmt_p(st['rho_p'])}, n = {st['n']})"
        pts.append(pd.DataFrame({"x": x, "y": y, "panel": strip}))
        fl = fit_line(x, st["slope"], st["intercept"])
        fl["panel"] = strip
        lines.append(fl)
    if not pts:
        raise EmptyPlotInputError(f"twas_gene_score_scatter: no rows for tissues {order}")
    pdf = pd.concat(pts, ignore_index=True)
    ldf = pd.concat(lines, ignore_index=True)
    panels = ordered(pdf["panel"])
    pdf["panel"] = categorical(pdf["panel"], panels)
    ldf["panel"] = categorical(ldf["panel"], panels)
    plot = (p9.ggplot(pdf, p9.aes("x", "y"))
            + p9.geom_hline(yintercept=0, color=MUTED, size=0.3)
            + p9.geom_vline(xintercept=0, color=MUTED, size=0.3)
            + p9.geom_point(color=POINT, alpha=0.7, size=1.8, stroke=0)
            + p9.geom_line(data=ldf, color=FIT, size=0.9)
            + p9.facet_wrap("panel", scales="free", ncol=ncol)
            + p9.labs(x="AG_G = \u03a3 PIP \u00b7 score \u00b7 z_ALT", y="TWAS Z",
                      title="Synthetic TWAS vs TWAS (Q4)" + (f", {assay}" if assay else ""))
            + theme_agval())
    return save(plot, path, width=width, height=height, dpi=dpi)
