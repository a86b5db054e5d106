"""Steps 5-6: select each analysis' tracks, pool them per row, and test score vs beta.

* :func:`select_tracks` - the long score table (``agval.scoring`` ``SCORES_FORMAT``) ->
  ``(long, pooled)`` for one :class:`~agval.qtl.modality.Analysis`: ``long`` has one row per
  (row_id, track) with ``score`` (the analysis' score column), ``raw_score``,
  ``quantile_score``; ``pooled`` one row per row_id with the mean over the selected tracks
  (``score``, ``raw_score``, ``quantile_score``, ``n_tracks``). Pooling averages raw
  scores in the corrected mode, never quantiles (P7).
* :func:`select_precomputed` - the same from a predictions table (``row_id`` -> columns).
* :func:`analysis_frame` - the rows of an analysis: ``row_id, rsid, variant_key,
  cluster_id, unit, orientation_verified, x`` (pooled score), ``y`` (beta of the analysis),
  ``x_quantile``; joined on ``row_id`` with asserted cardinality (P9, P19). ``unit`` is the
  resampling unit (:func:`agval.stats.qtl.qtl_clusters` of {variant, cluster_id}: caQTL
  peaks joined by shared SNPs, hQTL the SNP; plus variants within ``study.unit_window``
  bp on one chromosome, a stand-in for LD).
* :func:`analysis_cells` - the cells of an analysis: caQTL/generic corrected per output
  type (ATAC primary, DNase secondary) with the pool as a sensitivity row; hQTL corrected
  per mark, per SNP (one row per SNP, its marks' scores averaged: one beta is one unit),
  and the pool of mark rows as a sensitivity row; otherwise the pool alone.
* :func:`analysis_statistics` - :func:`agval.stats.qtl.qtl_statistics` of the pool (the
  top-level keys) and of every cell (``cells``), with Benjamini-Hochberg q values over the
  cells (the pre-specified primary cell is named and reported unadjusted).
* :func:`per_track_statistics` - :func:`agval.stats.qtl.per_track_table` per analysis.
* :func:`compare_analyses` - corrected vs original on their common rows: ``|rho_c| -
  |rho_o|`` with a paired cluster bootstrap CI (same draws for both).
* :func:`headline` - the few numbers a reader wants first.

Every random draw uses ``study.seed``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from agval.drops import DropLog
from agval.errors import MissingColumnError
from agval.frames import checked_join
from agval.qtl.modality import Analysis
from agval.qtl.study import QTLStudy
from agval.scoring import match_genes
from agval.stats import bootstrap_ci, spearman
from agval.stats.pvalues import bh_adjust
from agval.stats.qtl import DEFAULT_UNIT_WINDOW, per_track_table, qtl_clusters, qtl_statistics, unit_means
from agval.stats.resampling import weighted_spearman

__all__ = ["Selected", "select_tracks", "select_precomputed", "analysis_frame", "analysis_statistics",
           "analysis_cells", "per_track_statistics", "compare_analyses", "headline", "track_label",
           "ROW_COLUMNS", "headline_key"]

#: columns of the harmonized rows an analysis carries along
ROW_COLUMNS = ("row_id", "rsid", "variant_key", "cluster_id", "orientation_verified", "beta", "beta_alt",
               "beta_seed", "mark", "gene_id", "trait_id")

_LONG_SCHEMA = {"row_id": pl.Utf8, "track": pl.Utf8, "output_type": pl.Utf8, "histone_mark": pl.Utf8,
                "ontology_curie": pl.Utf8, "score": pl.Float64, "raw_score": pl.Float64,
                "quantile_score": pl.Float64}


@dataclass
class Selected:
    """One analysis after track selection: its rows with x and y."""

    analysis: Analysis
    long: pl.DataFrame       # row_id, track, output_type, histone_mark, ontology_curie, score, raw/quantile
    pooled: pl.DataFrame     # row_id, score, raw_score, quantile_score, n_tracks
    frame: pl.DataFrame      # row_id, rsid, variant_key, cluster_id, orientation_verified, x, y, x_quantile

    @property
    def tracks(self) -> list[str]:
        return sorted(self.long["track"].unique().drop_nulls().to_list())


def track_label() -> pl.Expr:
    """A readable, unique track label: the track name, plus the strand of stranded tracks
    and the histone mark when the name does not already carry it."""
    name = pl.col("track_name").cast(pl.Utf8).fill_null(pl.col("output_type"))
    mark = pl.col("histone_mark").cast(pl.Utf8)
    with_mark = (pl.when(mark.is_not_null() & ~name.str.contains(mark.fill_null("\u0000"), literal=True))
                 .then(name + pl.lit(" ") + mark).otherwise(name))
    strand = pl.col("track_strand").cast(pl.Utf8)
    return (pl.when(strand.is_in(["+", "-"])).then(with_mark + pl.lit(" (") + strand + pl.lit(")"))
            .otherwise(with_mark)).alias("track")


def _pool(long: pl.DataFrame) -> pl.DataFrame:
    return (long.group_by("row_id", maintain_order=True)
            .agg(pl.col("score").mean(), pl.col("raw_score").mean(), pl.col("quantile_score").mean(),
                 pl.col("track").n_unique().alias("n_tracks")))


#: The score-table columns :func:`select_tracks` reads (a lazy table is projected to these).
_READ_COLUMNS = ["row_id", "output_type", "gene_id", "track_name", "track_strand", "histone_mark",
                 "ontology_curie", "raw_score", "quantile_score"]


def select_tracks(scores: pl.DataFrame | pl.LazyFrame, rows: pl.DataFrame,
                  analysis: Analysis) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(long, pooled)`` for ``analysis`` (see the module docstring).

    ``scores``: the long score table, in memory or lazy (``ScoreRun.scan()``: the
    analysis' track filter and the columns it reads are pushed down to the parquet parts,
    so only the selected rows are ever materialized)."""
    sel = analysis.selection.apply(scores)
    if isinstance(sel, pl.LazyFrame):
        sel = sel.select(_READ_COLUMNS).collect().rechunk()  # one chunk, as a filtered in-memory table
    if analysis.match == "mark":
        if "mark" not in rows.columns:
            raise MissingColumnError("mark", available=rows.columns)
        marks = rows.select(pl.col("row_id").cast(pl.Utf8), pl.col("mark").alias("_row_mark"))
        sel = checked_join(sel, marks, "row_id", how="inner", validate="m:1", what="scores x row marks")
        sel = sel.filter(pl.col("histone_mark").str.to_lowercase() == pl.col("_row_mark").str.to_lowercase())
    elif analysis.match == "gene":
        if "gene_id" not in rows.columns:
            raise MissingColumnError("gene_id", available=rows.columns)
        sel = match_genes(sel, rows.select("row_id", "gene_id"), keep_non_gene=False)
    long = (sel.with_columns(track_label(), pl.col(analysis.score_col).cast(pl.Float64).alias("score"))
            # several genes of one track (RNA_SEQ without gene matching) -> their mean per track
            .group_by(["row_id", "track"], maintain_order=True)
            .agg(pl.col("output_type").first(), pl.col("histone_mark").first(), pl.col("ontology_curie").first(),
                 pl.col("score").mean(), pl.col("raw_score").cast(pl.Float64).mean(),
                 pl.col("quantile_score").cast(pl.Float64).mean()))
    long = long.select([pl.col(c).cast(t) for c, t in _LONG_SCHEMA.items()])
    return long, _pool(long)


def select_precomputed(predictions: pl.DataFrame, analysis: Analysis) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(long, pooled)`` from a predictions table (``row_id`` + the analysis' column)."""
    col = analysis.column
    if col not in predictions.columns:
        raise MissingColumnError(col, available=predictions.columns)
    long = predictions.select(
        pl.col("row_id").cast(pl.Utf8), pl.lit(col).alias("track"), pl.lit(None, dtype=pl.Utf8).alias("output_type"),
        pl.lit(None, dtype=pl.Utf8).alias("histone_mark"), pl.lit(None, dtype=pl.Utf8).alias("ontology_curie"),
        pl.col(col).cast(pl.Float64).alias("score"), pl.col(col).cast(pl.Float64).alias("raw_score"),
        pl.lit(None, dtype=pl.Float64).alias("quantile_score"),
    ).filter(pl.col("score").is_not_null() & pl.col("score").is_finite())
    return long, _pool(long)


def analysis_frame(rows: pl.DataFrame, pooled: pl.DataFrame, analysis: Analysis, *,
                   drops: DropLog | None = None, source_file: str | None = None) -> pl.DataFrame:
    """The analysis' rows: harmonized rows joined 1:1 to the pooled score.

    Rows without any selected track (e.g. a mark the biosample lacks, a failed variant)
    are dropped (stage ``analyse``, reason ``no_selected_track``) when ``drops`` is given.
    With ``analysis.one_row_per`` only the first row per value of that column is kept
    (hQTL original: one row per SNP of the file, not one per mark).
    """
    keep = [c for c in ROW_COLUMNS if c in rows.columns]
    base = rows
    if analysis.one_row_per and analysis.one_row_per in rows.columns:
        base = base.unique(analysis.one_row_per, keep="first", maintain_order=True)
        if drops is not None and base.height < rows.height:
            dup = rows.join(base.select("row_id"), on="row_id", how="anti")
            drops.add_frame(dup.select(pl.col("row_id").cast(pl.Utf8), pl.lit(
                f"{analysis.name}: one row per {analysis.one_row_per}; another row of the same "
                f"{analysis.one_row_per} represents it").alias("detail")),
                stage="analyse", reason=f"one_row_per_{analysis.one_row_per}", source_file=source_file)
    base = base.select(keep).with_columns(pl.col("row_id").cast(pl.Utf8))
    j = checked_join(base, pooled.select("row_id", pl.col("score").alias("x"),
                                         pl.col("quantile_score").alias("x_quantile"), "n_tracks"),
                     "row_id", how="left", validate="1:1", what=f"rows x pooled scores ({analysis.name})")
    missing = j.filter(pl.col("x").is_null() | ~pl.col("x").is_finite().fill_null(False))
    if drops is not None and missing.height:
        drops.add_frame(missing.select("row_id", pl.lit(f"{analysis.name}: no selected track "
                                                         f"({analysis.selection.to_dict()})").alias("detail")),
                        stage="analyse", reason="no_selected_track", source_file=source_file)
    out = j.filter(pl.col("x").is_not_null() & pl.col("x").is_finite())
    out = out.with_columns(pl.col(analysis.beta_col).cast(pl.Float64).alias("y"))
    return out.with_columns(pl.Series("unit", _units(out, window=analysis.unit_window), dtype=pl.Utf8))


def _units(f: pl.DataFrame, *, window: int = DEFAULT_UNIT_WINDOW) -> np.ndarray:
    """The resampling unit of each row: connected components of {variant, cluster_id},
    joined further by LD: variants within ``window`` bp on one chromosome (positions parsed
    from ``variant_key`` ``chrom:pos:ref>alt``; rows keyed by rsID alone join by ids only)."""
    if f.height == 0:
        return np.array([], dtype=object)
    snp = _snp_key(f)
    peak = f["cluster_id"].cast(pl.Utf8) if "cluster_id" in f.columns else None
    return qtl_clusters(snp, peak, chrom="from_snp", window=window)


def _snp_key(f: pl.DataFrame) -> pl.Series:
    """The variant of each row: ``variant_key``, else ``rsid``, else the row itself."""
    snp = next((f[c] for c in ("variant_key", "rsid") if c in f.columns and f[c].null_count() < f.height),
               f["row_id"])
    return snp.cast(pl.Utf8).fill_null(f["row_id"].cast(pl.Utf8))


def _arr(s: pl.Series) -> np.ndarray:
    return s.cast(pl.Float64).fill_null(float("nan")).to_numpy()


def headline_key(st: dict[str, Any]) -> str:
    """The statistic a cell leads with: ``magnitude_spearman_rho`` when no row's effect
    allele is verified (caQTL: only magnitude is valid, pitfall P3), else ``spearman_rho``."""
    return "spearman_rho" if st.get("n_orientation_verified") else "magnitude_spearman_rho"


_PERM_KEY = {"spearman_rho": "spearman_perm_p", "magnitude_spearman_rho": "magnitude_perm_p"}
_ROW_P_KEY = {"spearman_rho": "spearman_p", "magnitude_spearman_rho": "magnitude_spearman_p"}
_CI_KEYS = {"spearman_rho": ("spearman_ci_low", "spearman_ci_high"),
            "magnitude_spearman_rho": ("magnitude_spearman_ci_low", "magnitude_spearman_ci_high")}


def analysis_cells(sel: Selected, study: QTLStudy) -> list[tuple[str, str, pl.DataFrame]]:
    """``[(cell, role, frame)]`` of an analysis; ``frame`` has ``x, y, unit,
    orientation_verified`` (see the module docstring). Roles: ``primary`` (the study's
    ``primary_cell``), ``secondary``, ``sensitivity`` (pools that count one unit several
    times or mix assays), ``all`` (the only cell of a single-selection analysis)."""
    f = sel.frame
    a = sel.analysis
    cols = ["row_id", "x", "y", "unit", "orientation_verified"]
    primary = study.primary_cell or "pooled"
    cells: list[tuple[str, str, pl.DataFrame]] = []
    if a.mode == "corrected" and a.match == "mark" and "mark" in f.columns:
        marks = sorted(f["mark"].drop_nulls().unique().to_list())
        for m in marks:
            cells.append((m, "primary" if m.lower() == primary.lower() else "secondary",
                          f.filter(pl.col("mark") == m).select(cols)))
        # one row per SNP (its marks' scores averaged); the unit stays the SNP's LD unit
        fs = f.with_columns(_snp_key(f).alias("_snp"))
        x, y, s = unit_means(fs["x"], fs["y"], fs["_snp"])
        ver = fs.group_by("_snp", maintain_order=True).agg(
            pl.col("orientation_verified").fill_null(False).all(), pl.col("unit").first())
        per_snp = checked_join(pl.DataFrame({"_snp": s.astype(str), "x": x, "y": y}), ver, "_snp", how="left",
                               validate="1:1", what="per-SNP means x verified")
        cells.append(("per_snp", "primary" if primary == "per_snp" else "secondary",
                      per_snp.with_columns(pl.col("_snp").alias("row_id")).select(cols)))
        cells.append(("pooled", "primary" if primary == "pooled" else "sensitivity", f.select(cols)))
        return cells
    types = sorted(sel.long["output_type"].drop_nulls().unique().to_list()) if sel.long.height else []
    if a.mode == "corrected" and len(types) > 1:
        order = sorted(types, key=lambda t: (t.upper() != primary.upper(), t))
        for t in order:
            per = (sel.long.filter(pl.col("output_type") == t).group_by("row_id")
                   .agg(pl.col("score").mean().alias("_xt")))
            j = checked_join(f.select([c for c in cols if c != "x"]), per, "row_id", how="inner",
                             validate="1:1", what=f"rows x {t} scores")
            cells.append((t, "primary" if t.upper() == primary.upper() else "secondary",
                          j.rename({"_xt": "x"}).select(cols)))
        cells.append(("pooled", "primary" if primary == "pooled" else "sensitivity", f.select(cols)))
        return cells
    if a.mode == "corrected" and len(types) == 1 and types[0].upper() == primary.upper():
        return [(types[0], "primary", f.select(cols))]   # one output type: the pool is that track type
    return [("pooled", "all", f.select(cols))]


def _cell_stats(frame: pl.DataFrame, study: QTLStudy) -> dict[str, Any]:
    return qtl_statistics(_arr(frame["x"]), _arr(frame["y"]), clusters=frame["unit"].to_numpy(),
                          orientation_verified=frame["orientation_verified"].fill_null(False),
                          n_boot=study.n_boot, n_perm=study.n_perm, confidence=study.confidence, seed=study.seed)


def analysis_statistics(sel: Selected, study: QTLStudy) -> dict[str, Any]:
    """Statistics of one analysis (keys documented in ``docs/metrics-qtl.md``).

    Top-level keys: :func:`agval.stats.qtl.qtl_statistics` over every row of the analysis
    (resampling ``unit``). ``cells``: ``{cell: {"role", "headline_statistic", "estimate",
    "estimate_ci_low", "estimate_ci_high", "estimate_p", "estimate_perm_p", "q_bh", ...the
    qtl_statistics keys}}`` for :func:`analysis_cells`; ``q_bh`` is the Benjamini-Hochberg
    adjusted cluster permutation P over the cells of this analysis (the family).
    ``primary_cell`` names the pre-specified cell (None when the analysis has only one).
    """
    f = sel.frame
    a = sel.analysis
    st = _cell_stats(f, study)
    if a.mode == "corrected" and f["x_quantile"].drop_nulls().len() > 2:
        q = spearman(_arr(f["x_quantile"]), _arr(f["y"]))
        st["quantile_spearman_rho"], st["quantile_spearman_p"] = q["rho"], q["p"]
    cells: dict[str, dict[str, Any]] = {}
    cell_list = analysis_cells(sel, study)
    for name, role, frame in cell_list:
        if frame.height < 3:
            continue
        # the pool (and a lone cell, which is the pool) reuses the analysis' statistics
        cst = st if (name == "pooled" or len(cell_list) == 1) else _cell_stats(frame, study)
        key = headline_key(cst)
        lo, hi = _CI_KEYS[key]
        cells[name] = {"role": role, "headline_statistic": key, "estimate": cst[key], "estimate_ci_low": cst[lo],
                       "estimate_ci_high": cst[hi], "estimate_p": cst[_ROW_P_KEY[key]],
                       "estimate_perm_p": cst[_PERM_KEY[key]],
                       **{k: v for k, v in cst.items() if k != "cells"}}
    qs = bh_adjust([c["estimate_perm_p"] for c in cells.values()])
    for c, q in zip(cells.values(), qs):
        c["q_bh"] = float(q)
    st["cells"] = cells
    prim = [n for n, c in cells.items() if c["role"] == "primary"]
    st["primary_cell"] = prim[0] if prim else None
    st["n_tracks"] = len(sel.tracks)
    st["tracks"] = sel.tracks
    st["mean_tracks_per_row"] = float(f["n_tracks"].mean()) if f.height else math.nan
    st.update({"mode": a.mode, "biosample": a.biosample, "score": a.score_col, "beta": a.beta_col,
               "match": a.match, "sensitivity": a.sensitivity, "description": a.description})
    return st


def per_track_statistics(sel: Selected, study: QTLStudy) -> pl.DataFrame:
    """:func:`agval.stats.qtl.per_track_table` of one analysis, with ``analysis`` and
    ``mode`` columns (the forest plot's input)."""
    ycl = sel.frame.select("row_id", "y", "unit")
    long = checked_join(sel.long.select("row_id", "track", "score"), ycl, "row_id", how="inner", validate="m:1",
                        what=f"per-track scores x rows ({sel.analysis.name})")
    tbl = per_track_table(long, score_col="score", beta_col="y", track_col="track", cluster_col="unit",
                          n_boot=study.n_boot, n_perm=study.n_perm, confidence=study.confidence, seed=study.seed)
    return tbl.with_columns(pl.lit(sel.analysis.name).alias("analysis"), pl.lit(sel.analysis.mode).alias("mode"))


def compare_analyses(first: Selected, second: Selected, study: QTLStudy) -> dict[str, Any]:
    """``|rho(first)| - |rho(second)|`` on the rows both analyses scored, with a paired
    cluster bootstrap (the same cluster draws for both; ``study.seed``).

    The two analyses may orient beta differently (corrected: ``beta_alt``; original: the
    seed's ``beta_seed``), so each keeps its own x and y; absolute values compare strength.
    """
    a = first.frame.select("row_id", "unit", pl.col("x").alias("x1"), pl.col("y").alias("y1"))
    b = second.frame.select("row_id", pl.col("x").alias("x2"), pl.col("y").alias("y2"))
    j = checked_join(a, b, "row_id", how="inner", validate="1:1", what="analysis comparison")
    x1, y1, x2, y2 = (_arr(j[c]) for c in ("x1", "y1", "x2", "y2"))
    cl = j["unit"].cast(pl.Utf8).fill_null(j["row_id"]).to_numpy()

    def diff(_x, _y, w):
        return np.abs(weighted_spearman(x1, y1, w)) - np.abs(weighted_spearman(x2, y2, w))

    boot = bootstrap_ci(np.zeros(j.height), np.zeros(j.height), diff, clusters=cl, n_boot=study.n_boot,
                        confidence=study.confidence, seed=study.seed)
    r1, r2 = spearman(x1, y1)["rho"], spearman(x2, y2)["rho"]
    return {"first": first.analysis.name, "second": second.analysis.name, "n_common": int(j.height),
            "spearman_rho_first": r1, "spearman_rho_second": r2,
            "abs_rho_difference": abs(r1) - abs(r2) if j.height else math.nan,
            "abs_rho_difference_ci_low": boot["ci_low"], "abs_rho_difference_ci_high": boot["ci_high"],
            "n_clusters": boot["n_clusters"], "bootstrap_n": study.n_boot, "seed": study.seed}


#: keys of a cell copied into the headline
_HEADLINE_KEYS = ("n", "n_clusters", "spearman_rho", "spearman_p", "spearman_log10_p", "spearman_perm_p",
                  "spearman_ci_low", "spearman_ci_high", "pearson_r", "pearson_p", "pearson_log10_p",
                  "pearson_perm_p", "pearson_ci_low", "pearson_ci_high", "magnitude_spearman_rho",
                  "magnitude_spearman_p", "magnitude_spearman_log10_p", "magnitude_perm_p",
                  "magnitude_spearman_ci_low", "magnitude_spearman_ci_high", "sign_n", "sign_fraction",
                  "sign_ci_low", "sign_ci_high", "sign_p_two_sided", "sign_chance", "sign_p_independence",
                  "sign_perm_p", "permutation_unit",
                  "n_perm", "bootstrap_unit")


def headline(study: QTLStudy, stats: dict[str, dict[str, Any]], comparison: dict[str, Any] | None) -> dict[str, Any]:
    """The primary analysis (``corrected`` if run, else the first) in a few numbers: its
    pre-specified primary cell (``study.primary_cell``; unadjusted), the statistic it
    leads with (magnitude when the effect allele is unknown), intervals and cluster
    permutation P values, the pooled sensitivity row, plus the planted-value check for
    simulated studies."""
    primary = "corrected" if "corrected" in stats else next(iter(stats), None)
    if primary is None:
        return {}
    top = stats[primary]
    cells = top.get("cells") or {}
    cell = top.get("primary_cell")
    available = cell is not None or study.primary_cell in (None, "pooled")
    if cell is None:
        cell = next((n for n, c in cells.items() if c["role"] == "all"), None) or "pooled"
    s = cells.get(cell, top)
    key = headline_key(s)
    lo, hi = _CI_KEYS[key]
    h: dict[str, Any] = {"analysis": primary, "primary_cell": cell,
                         "primary_cell_requested": study.primary_cell,
                         "primary_cell_available": available,
                         "headline_statistic": key, "estimate": s[key], "estimate_ci_low": s[lo],
                         "estimate_ci_high": s[hi], "estimate_p": s[_ROW_P_KEY[key]],
                         "estimate_perm_p": s[_PERM_KEY[key]],
                         "direction": "verified" if s.get("n_orientation_verified") else "unverified"}
    h.update({k: s.get(k) for k in _HEADLINE_KEYS})
    h["direction_claims"] = "verified rows only" if s.get("sign_n") else "none (orientation unverified)"
    if key == "magnitude_spearman_rho":
        h["spearman_rho_label"] = ("direction unverified: the signed rho is the seed's replication, not a test "
                                   "of direction (effect allele unknown, P3)")
    if cell != "pooled" and "pooled" in cells:
        pooled = cells["pooled"]
        h["pooled"] = {"role": pooled["role"], "estimate": pooled["estimate"],
                       "estimate_ci_low": pooled["estimate_ci_low"], "estimate_ci_high": pooled["estimate_ci_high"],
                       "estimate_perm_p": pooled["estimate_perm_p"], "q_bh": pooled["q_bh"], "n": pooled["n"]}
    h["cells_q_bh"] = {n: c["q_bh"] for n, c in cells.items()}
    if "original" in stats and primary != "original":
        h["original_spearman_rho"] = stats["original"]["spearman_rho"]
        h["original_pearson_r"] = stats["original"]["pearson_r"]
    if comparison:
        h["abs_rho_difference"] = comparison["abs_rho_difference"]
        h["abs_rho_difference_ci_low"] = comparison["abs_rho_difference_ci_low"]
        h["abs_rho_difference_ci_high"] = comparison["abs_rho_difference_ci_high"]
    if study.planted_spearman is not None:
        stat = study.planted_statistic or "spearman_rho"
        plo, phi = _CI_KEYS[stat]
        lo_v, hi_v = s[plo], s[phi]
        h["planted_statistic"] = stat
        h["planted_value"] = study.planted_spearman
        h["recovered_value"] = s[stat]
        h["planted_in_ci"] = bool(lo_v <= study.planted_spearman <= hi_v) if np.isfinite([lo_v, hi_v]).all() else False
    return h
