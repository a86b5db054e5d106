"""Step 7: the study's figures (plotnine PNGs via :mod:`agval.plots.qtl`).

:func:`make_figures` writes into ``plots_dir`` and returns :class:`agval.report.Figure`
objects for the report, in this order:

1. ``<name>_modes.png`` - original vs corrected side by side (when both ran);
2. ``<name>_correlation.png`` - the primary analysis: scatter, fit line, statistics;
3. ``<name>_magnitude.png`` - ``|score|`` vs ``|beta|`` (when beta's allele is unverified,
   the only valid test, P3);
4. ``<name>_distributions.png`` - score and beta histograms, magnitudes, sign split;
5. ``<name>_residuals.png`` - residuals vs fitted and their histogram;
6. ``<name>_top_variants.png`` - top 20 by ``|score|`` and by ``|beta|`` (absolute, P15);
7. ``<name>_forest.png`` - per-track Spearman rho with bootstrap CIs, every analysis.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from agval.plots.qtl import (qtl_distributions, qtl_forest, qtl_mode_comparison, qtl_residuals, qtl_scatter,
                             qtl_top_variants)
from agval.report import Figure

if TYPE_CHECKING:  # pragma: no cover
    from agval.qtl.pipeline import QTLResult

__all__ = ["make_figures"]


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", s).strip("-") or "study"


def _labels(result: "QTLResult", name: str) -> tuple[str, str]:
    a = result.selected[name].analysis
    st = result.stats[name]
    where = a.biosample or result.study.gtex_tissue or ""
    if a.column:
        x = f"{a.column} (precomputed)"
    elif a.score_col == "quantile_score":
        x = f"mean quantile score, {st['n_tracks']} tracks {where}"
    else:
        x = f"raw score (log2 ALT/REF), {'mark-matched' if a.match == 'mark' else 'mean of'} " \
            f"{'/'.join(a.outputs)} {where}"
    if a.beta_col == "beta_seed":
        y = "beta [inverted, as the seed]" if result.study.seed_negate_beta else "beta (as published)"
    else:
        y = "beta (ALT allele)" if st.get("n_orientation_verified") else "beta (allele unverified)"
    return x, y


def _plot_frame(result: "QTLResult", name: str) -> pl.DataFrame:
    f = result.selected[name].frame
    ident = pl.coalesce(pl.col("rsid"), pl.col("row_id")) if "rsid" in f.columns else pl.col("row_id")
    return f.select(ident.alias("variant_id"), pl.col("x").alias("score"), pl.col("y").alias("beta"))


def make_figures(result: "QTLResult", plots_dir: str | Path, *, dpi: int = 150) -> list[Figure]:
    """Write every figure of ``result`` (see the module docstring) and return them."""
    out = Path(plots_dir)
    out.mkdir(parents=True, exist_ok=True)
    study = result.study
    stem = _slug(study.name)
    figs: list[Figure] = []
    primary = result.headline.get("analysis") or next(iter(result.selected))
    sim = " [SIMULATED]" if result.simulated else ""
    if "original" in result.selected and "corrected" in result.selected:
        frames = []
        for m in ("original", "corrected"):
            frames.append(_plot_frame(result, m).with_columns(pl.lit(m).alias("mode")))
        p = qtl_mode_comparison(pl.concat(frames), out / f"{stem}_modes.png", modes=["original", "corrected"],
                                dpi=dpi)
        figs.append(Figure(p, "Original (the seed's choices: mean quantile over every track of the modality, "
                              "seed's beta) vs corrected (raw scores of the matched tracks, beta oriented a "
                              f"priori). Each panel has its own fit and statistics.{sim}",
                           "Original vs corrected"))
    df = _plot_frame(result, primary)
    st = result.stats[primary]
    x_lab, y_lab = _labels(result, primary)
    stats = {"n": st["n"], "rho": st["spearman_rho"], "rho_p": st["spearman_p"], "r": st["pearson_r"],
             "r_p": st["pearson_p"], "r2": st["r2"]}
    p = qtl_scatter(df, out / f"{stem}_correlation.png", x_label=x_lab, y_label=y_lab, stats=stats, dpi=dpi,
                    title=f"{study.name}: {primary}{sim}")
    figs.append(Figure(p, f"{primary}: score vs beta with the least-squares line; Spearman rho 95% CI "
                          f"[{st['spearman_ci_low']:.3f}, {st['spearman_ci_high']:.3f}] (bootstrap over "
                          f"{st['n_clusters']} {st['bootstrap_unit']}s).", "Correlation"))
    if not st.get("n_orientation_verified"):
        mag = df.with_columns(pl.col("score").abs(), pl.col("beta").abs())
        p = qtl_scatter(mag, out / f"{stem}_magnitude.png", x_label=f"|{x_lab}|", y_label=f"|{y_lab}|", dpi=dpi,
                        title=f"{study.name}: magnitude only{sim}")
        figs.append(Figure(p, "|score| vs |beta|: the effect allele of beta is unknown, so only the magnitude can be "
                              f"tested (rho = {st['magnitude_spearman_rho']:.3f}, 95% CI "
                              f"[{st['magnitude_spearman_ci_low']:.3f}, {st['magnitude_spearman_ci_high']:.3f}]).",
                           "Magnitude"))
    p = qtl_distributions(df, out / f"{stem}_distributions.png", dpi=dpi)
    figs.append(Figure(p, f"{primary}: score and beta distributions, magnitudes and the sign split"
                          + ("" if st.get("n_orientation_verified") else
                             " (the sign split is not a direction test: the effect allele is unknown)") + ".",
                       "Distributions"))
    p = qtl_residuals(df, out / f"{stem}_residuals.png", dpi=dpi)
    figs.append(Figure(p, f"{primary}: residuals of beta ~ score.", "Residuals"))
    p = qtl_top_variants(df, out / f"{stem}_top_variants.png", dpi=dpi)
    figs.append(Figure(p, f"{primary}: the 20 rows with the largest |score| and |beta| (sorted by absolute "
                          "value, P15).", "Top variants"))
    pt = result.per_track.filter(pl.col("spearman_rho").is_not_nan() & pl.col("spearman_rho").is_not_null())
    if pt.height:
        pt = pt.with_columns(pl.col("ci_low").fill_nan(None).fill_null(pl.col("spearman_rho")),
                             pl.col("ci_high").fill_nan(None).fill_null(pl.col("spearman_rho")))
        height = max(4.0, min(14.0, 1.2 + 0.32 * pt.height))
        p = qtl_forest(pt, out / f"{stem}_forest.png", group="analysis", height=height, dpi=dpi,
                       title=f"Per-track Spearman \u03c1 with {int(study.confidence * 100)}% CI{sim}")
        figs.append(Figure(p, "Per-track Spearman rho of every analysis with cluster-bootstrap CIs (original: "
                              "quantile scores per track, including opposing marks; corrected: raw scores).",
                           "Per-track forest"))
    return figs
