"""The QTL analysis after scoring, and a Prefect-free runner of the whole pipeline.

* :func:`analyse` - harmonized rows + scores (or predictions) -> :class:`QTLResult`:
  every analysis' selected tracks and rows, its statistics, the per-track table, the
  original-vs-corrected comparison and the headline.
* :func:`build_metrics` - the ``metrics.json`` dict (keys in ``docs/metrics-qtl.md``).
* :func:`report_parts` - narrative sections, warnings and tables for ``report.html``.
* :func:`run_plain` - load -> look up -> harmonize -> score -> analyse -> plots -> report
  with plain functions (what the flow does, without Prefect; used by tests and by
  ``bench/qtl_flow.py`` to measure Prefect's overhead).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from agval.drops import DropLog
from agval.errors import GuardError
from agval.qtl.analysis import (Selected, analysis_frame, analysis_statistics, compare_analyses, headline,
                                per_track_statistics, select_precomputed, select_tracks)
from agval.qtl.modality import Analysis, plan_analyses, scorers_for
from agval.qtl.study import KIND_DEFAULTS, QTLStudy
from agval.stats.pvalues import bh_adjust, correlation_log10_p, format_p

__all__ = ["QTLResult", "scoring_selection", "analyse", "select_all", "evaluate_all", "build_metrics", "report_parts",
           "run_plain", "comparison_table", "cells_table", "published_for",
           "table_marks", "analysis_rows", "genome_path", "ANALYSIS_KEYS"]

#: statistics shown side by side in the report's comparison table
ANALYSIS_KEYS = ("n", "n_clusters", "n_tracks", "spearman_rho", "spearman_ci_low", "spearman_ci_high",
                 "spearman_p", "spearman_perm_p", "pearson_r", "pearson_ci_low", "pearson_ci_high", "pearson_p",
                 "pearson_perm_p", "r2", "magnitude_spearman_rho", "magnitude_spearman_ci_low",
                 "magnitude_spearman_ci_high", "magnitude_spearman_p", "magnitude_perm_p", "n_orientation_verified",
                 "sign_n", "sign_fraction", "sign_ci_low", "sign_ci_high", "sign_p_two_sided", "sign_perm_p",
                 "same_sign_fraction_unverified", "score_mean", "score_sd", "beta_mean")

#: columns of the report's cells table
CELL_COLUMNS = ("analysis", "cell", "role", "statistic", "n", "units", "estimate", "ci_low", "ci_high",
                "row_p", "cluster_perm_p", "q_bh")


@dataclass
class QTLResult:
    study: QTLStudy
    analyses: list[Analysis]
    selected: dict[str, Selected]
    stats: dict[str, dict[str, Any]]
    per_track: pl.DataFrame
    comparison: dict[str, Any] | None
    headline: dict[str, Any]
    simulated: bool = False
    notes: list[str] = field(default_factory=list)


def table_marks(rows: pl.DataFrame) -> list[str] | None:
    """The histone marks present in an hQTL table (None for other kinds)."""
    if "mark" not in rows.columns:
        return None
    return sorted(rows["mark"].drop_nulls().unique().to_list()) or None


def scoring_selection(analyses: list[Analysis]):
    """What the analyses read, declared to the scoring engine before rows exist: the union
    of their track selections (each analysis still applies its own afterwards)."""
    from agval.scoring.answers import Selection

    return Selection([a.selection for a in analyses])


def select_all(study: QTLStudy, rows: pl.DataFrame, *, scores: pl.DataFrame | pl.LazyFrame | None = None,
               predictions: pl.DataFrame | None = None, prediction_columns: dict[str, str] | None = None,
               drops: DropLog | None = None,
               analyses: list[Analysis] | None = None) -> tuple[list[Analysis], dict[str, Selected], list[str]]:
    """Step 5: every analysis' tracks, pooled per row and joined to the rows. Exactly one of
    ``scores`` (long score table) and ``predictions`` (row_id -> columns) is given.

    A primary analysis with fewer than 3 scored rows raises :class:`GuardError` naming its
    track selection; such a sensitivity analysis is skipped with a note.
    """
    if (scores is None) == (predictions is None):
        raise ValueError("give exactly one of scores= and predictions=")
    analyses = analyses or plan_analyses(study, marks=table_marks(rows), prediction_columns=prediction_columns)
    selected: dict[str, Selected] = {}
    notes: list[str] = []
    for a in analyses:
        long, pooled = (select_precomputed(predictions, a) if predictions is not None
                        else select_tracks(scores, rows, a))
        frame = analysis_frame(rows, pooled, a, drops=drops, source_file=study.table)
        if frame.height < 3:
            msg = (f"{study.name}: analysis {a.name!r} has {frame.height} scored rows; no track matched "
                   f"{a.selection.to_dict()} (check the biosample CURIE and the output types)")
            if a.sensitivity:
                notes.append(msg + "; skipped")
                continue
            raise GuardError(msg)
        selected[a.name] = Selected(a, long, pooled, frame)
    return analyses, selected, notes


def evaluate_all(study: QTLStudy, analyses: list[Analysis], selected: dict[str, Selected], *,
             simulated: bool = False, notes: list[str] | None = None) -> QTLResult:
    """Step 6: statistics of every analysis, the per-track table, the comparison, the headline."""
    stats = {name: analysis_statistics(sel, study) for name, sel in selected.items()}
    parts = [per_track_statistics(sel, study) for sel in selected.values()]
    per_track = pl.concat(parts, how="vertical_relaxed") if parts else pl.DataFrame()
    if per_track.height:
        # one family: every track of every analysis (Benjamini-Hochberg over the cluster permutation P)
        per_track = per_track.with_columns(pl.Series("q_bh", bh_adjust(per_track["perm_p"].to_numpy()),
                                                     dtype=pl.Float64))
    comparison = (compare_analyses(selected["corrected"], selected["original"], study)
                  if "corrected" in selected and "original" in selected else None)
    return QTLResult(study, analyses, selected, stats, per_track, comparison,
                     headline(study, stats, comparison), simulated, list(notes or []))


def analyse(study: QTLStudy, rows: pl.DataFrame, *, scores: pl.DataFrame | None = None,
            predictions: pl.DataFrame | None = None, prediction_columns: dict[str, str] | None = None,
            drops: DropLog | None = None, simulated: bool = False,
            analyses: list[Analysis] | None = None) -> QTLResult:
    """:func:`select_all` then :func:`evaluate_all`."""
    analyses, selected, notes = select_all(study, rows, scores=scores, predictions=predictions,
                                           prediction_columns=prediction_columns, drops=drops, analyses=analyses)
    return evaluate_all(study, analyses, selected, simulated=simulated, notes=notes)


def comparison_table(result: QTLResult) -> pl.DataFrame:
    """``statistic`` x analyses (one column per analysis), for the report: numbers as
    printed strings, P values through :func:`agval.stats.pvalues.format_p` (an underflowed P
    is never shown as 0; the row-level P uses its log10 value)."""
    from agval.report import format_value

    names = list(result.stats)
    rows = []
    for k in ANALYSIS_KEYS:
        row: dict[str, str | None] = {"statistic": k}
        for n in names:
            st = result.stats[n]
            v = st.get(k)
            if k.endswith("_p") or k.endswith("_perm_p") or k == "sign_p_two_sided":
                lk = {"spearman_p": "spearman_log10_p", "pearson_p": "pearson_log10_p",
                      "magnitude_spearman_p": "magnitude_spearman_log10_p"}.get(k)
                row[n] = format_p(v, st.get(lk) if lk else None)
            else:
                row[n] = format_value(v) if v is not None else None
        rows.append(row)
    return pl.DataFrame(rows, schema={"statistic": pl.Utf8, **{n: pl.Utf8 for n in names}})


def _log10(h: dict[str, Any]) -> Any:
    return h.get("magnitude_spearman_log10_p" if h.get("headline_statistic", "").startswith("magnitude")
                 else "spearman_log10_p")


def cells_table(result: QTLResult) -> pl.DataFrame:
    """One row per (analysis, cell): role, the statistic the cell leads with, its estimate
    and cluster bootstrap interval, row-level P, cluster permutation P and the
    Benjamini-Hochberg q over the analysis' cells (P values as printed strings)."""
    rows = []
    for name, st in result.stats.items():
        for cell, c in (st.get("cells") or {}).items():
            rows.append({"analysis": name, "cell": cell, "role": c["role"], "statistic": c["headline_statistic"],
                         "n": c["n"], "units": c["n_clusters"], "estimate": _num(c["estimate"]),
                         "ci_low": _num(c["estimate_ci_low"]), "ci_high": _num(c["estimate_ci_high"]),
                         "row_p": format_p(c["estimate_p"], c.get("magnitude_spearman_log10_p"
                                                                  if c["headline_statistic"].startswith("magnitude")
                                                                  else "spearman_log10_p")),
                         "cluster_perm_p": format_p(c["estimate_perm_p"]), "q_bh": format_p(c["q_bh"])})
    schema = {"analysis": pl.Utf8, "cell": pl.Utf8, "role": pl.Utf8, "statistic": pl.Utf8, "n": pl.Int64,
              "units": pl.Int64, "estimate": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64,
              "row_p": pl.Utf8, "cluster_perm_p": pl.Utf8, "q_bh": pl.Utf8}
    return pl.DataFrame(rows, schema=schema)


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f


def build_metrics(result: QTLResult, *, counts: dict[str, Any], route: str, convention: str,
                  scoring: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``metrics.json`` dict (documented key by key in ``docs/metrics-qtl.md``)."""
    study = result.study
    m: dict[str, Any] = {
        "study": study.name, "kind": study.kind, "format": study.format, "route": route,
        "effect_allele": convention, "orientation_verified": bool(counts.get("orientation_verified_rows")),
        "seed": study.seed, "n_boot": study.n_boot, "n_perm": study.n_perm, "confidence": study.confidence,
        "simulated": result.simulated,
        "primary_cell": study.primary_cell,
        "multiplicity": {"method": "benjamini-hochberg", "families": [
            "the cells of each analysis (analyses.<name>.cells.<cell>.q_bh, over estimate_perm_p)",
            "every row of per_track (per_track[].q_bh, over perm_p)"],
            "primary_cell": "reported unadjusted in headline (pre-specified in the study file)"},
        "headline": result.headline,
        "counts": counts,
        "analyses": {name: {k: v for k, v in st.items()} for name, st in result.stats.items()},
        "per_track": result.per_track.to_dicts() if result.per_track.height else [],
    }
    if result.comparison:
        m["comparison"] = result.comparison
    if scoring:
        m["scoring"] = scoring
    if study.planted_spearman is not None:
        h = result.headline
        m["planted"] = {"statistic": h.get("planted_statistic"), "value": h.get("planted_value"),
                        "recovered": h.get("recovered_value"), "in_ci": h.get("planted_in_ci")}
    if result.notes:
        m["notes"] = result.notes
    pub = published_for(result)
    if pub is not None:
        m["published"] = pub
    return m


def published_for(result: QTLResult) -> dict[str, Any] | None:
    """The run's published reference block (``metrics.json["published"]``, see
    :func:`agval.published.published_block`): the study's ``published`` set, or by default
    the seed's set when a caQTL/hQTL study reads the seed's own table format."""
    from agval.published import published_block, qtl_observed, resolve_set_id

    study = result.study
    set_id = resolve_set_id(study.published, "qtl", study.kind,
                            seed_layout=study.format == KIND_DEFAULTS[study.kind][0])
    return published_block(set_id, qtl_observed(result.stats), simulated=result.simulated)


def report_parts(result: QTLResult, *, counts: dict[str, Any], route: str,
                 harmonize_notes: list[str] = ()) -> tuple[list[tuple[str, str]], list[str], dict[str, pl.DataFrame]]:
    """``(sections, warnings, tables)`` for :func:`agval.report.render_report`."""
    study = result.study
    h = result.headline
    fmt = lambda v: "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"  # noqa: E731
    summary = [f"{study.name}: {study.kind} study, {counts.get('input_rows')} input rows, "
               f"{counts.get('harmonized_rows')} harmonized ({route} route), {h.get('n')} rows in the "
               f"{h.get('analysis')} analysis."]
    stat_name = {"magnitude_spearman_rho": "magnitude rho(|score|, |beta|)", "spearman_rho": "Spearman rho"}
    summary.append(
        f"{h.get('analysis')}, pre-specified primary cell {h.get('primary_cell')!r} "
        f"(unadjusted): {stat_name.get(h.get('headline_statistic'), h.get('headline_statistic'))} = "
        f"{fmt(h.get('estimate'))} (95% CI {fmt(h.get('estimate_ci_low'))} to {fmt(h.get('estimate_ci_high'))}, "
        f"resampling {h.get('n_clusters')} units; cluster permutation P = {format_p(h.get('estimate_perm_p'))}, "
        f"row-level P = {format_p(h.get('estimate_p'), _log10(h))}); Pearson r = {fmt(h.get('pearson_r'))} "
        f"(CI {fmt(h.get('pearson_ci_low'))} to {fmt(h.get('pearson_ci_high'))}).")
    if h.get("headline_statistic") == "magnitude_spearman_rho":
        summary.append(f"Signed Spearman rho = {fmt(h.get('spearman_rho'))} (CI {fmt(h.get('spearman_ci_low'))} to "
                       f"{fmt(h.get('spearman_ci_high'))}): the seed's replication, direction unverified "
                       "(effect allele unknown, pitfall P3).")
    if not h.get("primary_cell_available", True):
        summary.append(f"The pre-specified primary cell {h.get('primary_cell_requested')!r} is not available in "
                       f"this run; the headline shows {h.get('primary_cell')!r} instead.")
    if h.get("pooled"):
        p = h["pooled"]
        summary.append(f"Pooled {p['role']} row: {fmt(p['estimate'])} (CI {fmt(p['estimate_ci_low'])} to "
                       f"{fmt(p['estimate_ci_high'])}, cluster permutation P = {format_p(p['estimate_perm_p'])}, "
                       f"BH q = {format_p(p['q_bh'])}).")
    if "original_spearman_rho" in h:
        summary.append(f"original (the seed's choices): Spearman rho = {fmt(h['original_spearman_rho'])}; "
                       f"|rho| corrected - |rho| original = {fmt(h.get('abs_rho_difference'))} "
                       f"(CI {fmt(h.get('abs_rho_difference_ci_low'))} to {fmt(h.get('abs_rho_difference_ci_high'))}).")
    if h.get("sign_n"):
        summary.append(f"Sign concordance on {h['sign_n']} orientation-verified rows: {fmt(h.get('sign_fraction'))} "
                       f"(CI {fmt(h.get('sign_ci_low'))} to {fmt(h.get('sign_ci_high'))}; cluster permutation P = "
                       f"{format_p(h.get('sign_perm_p'))}; row-level binomial P against the agreement expected "
                       f"under independence ({fmt(h.get('sign_chance'))}) = {format_p(h.get('sign_p_independence'))}).")
    else:
        summary.append("No direction claim: the effect allele of beta is not known (effect_allele = "
                       f"{study.effect_allele}); only the magnitude is tested (pitfall P3).")
    if "planted_value" in h:
        summary.append(f"SIMULATED study: planted {h['planted_statistic']} = {h['planted_value']}, recovered "
                       f"{fmt(h['recovered_value'])}, planted value inside the CI: {h['planted_in_ci']}. The "
                       "planted value is what a perfect model would reach; a model that differs from the "
                       "truth lands below it.")
    methods = []
    for a in result.analyses:
        methods.append(f"{a.name}: {a.description}.")
    unit = {"caqtl": "connected components of {peak, SNP} (a SNP in two peaks joins them)",
            "hqtl": "SNPs (one beta shared by two marks is one unit)"}.get(study.kind, "connected components of "
                                                                          "{trait, SNP}")
    methods.append(f"Statistics: Spearman and Pearson (two-sided), R^2 of beta ~ score. The resampling unit is "
                   f"{unit}: {study.n_boot} cluster bootstrap replicates for every interval and {study.n_perm} "
                   f"cluster permutations (scores move between units) for every P value beside the row-level P "
                   f"(seed {study.seed}). Sign concordance (exact binomial, Wilson interval, cluster permutation) "
                   "on orientation-verified rows only; magnitude correlation reported apart from direction and "
                   "leading the headline when the effect allele is unknown. Benjamini-Hochberg q values over the "
                   "cells of each analysis and over the per-track table; the pre-specified primary cell "
                   f"({study.primary_cell}) is reported unadjusted.")
    sections = [("Summary", "\n\n".join(summary)), ("Methods", "\n\n".join(methods))]
    if harmonize_notes or result.notes:
        sections.append(("Notes", "\n\n".join([*harmonize_notes, *result.notes])))
    warnings = []
    if not h.get("sign_n"):
        warnings.append("Direction is unverified for every row (effect allele unknown): the same-sign fraction "
                        "is reported for reproduction only and is not a test.")
    tables = {"Cells (primary, secondary, sensitivity)": cells_table(result),
              "Original vs corrected": comparison_table(result)}
    pub = published_for(result)
    if pub is not None:
        from agval.published import published_table, published_title

        tables[published_title(pub)] = published_table(pub)
        if pub["simulated"]:
            warnings.append(f"The published reference rows come from the real study; this run is simulated "
                            f"({pub['label']}).")
    if result.per_track.height:
        pt = result.per_track
        tables["Per-track correlations (BH over every track)"] = pt.select(
            "analysis", "track", "n", "n_clusters", "spearman_rho", "ci_low", "ci_high",
            pl.struct("spearman_p", "spearman_rho", "n").map_elements(
                lambda r: format_p(r["spearman_p"], correlation_log10_p(r["spearman_rho"], r["n"])),
                return_dtype=pl.Utf8).alias("row_p"),
            pl.col("perm_p").map_elements(format_p, return_dtype=pl.Utf8).alias("cluster_perm_p"),
            pl.col("q_bh").map_elements(format_p, return_dtype=pl.Utf8).alias("q_bh"), "pearson_r")
    return sections, warnings, tables


# ----------------------------------------------------------------------------------
# The whole pipeline without Prefect.
# ----------------------------------------------------------------------------------

def genome_path(study: QTLStudy, standin_world: str | None) -> str:
    if study.reference_fasta:
        return study.reference_fasta
    if standin_world:
        return str(Path(standin_world) / "genome.fa")
    raise GuardError(f"{study.name}: no reference_fasta given; the reference-allele check (P11) needs the hg38 "
                     "FASTA")


def run_plain(study: QTLStudy, *, backend=None, lookup_source=None, record=None, standin_world: str | None = None,
              cache: Any = "default", simulated: bool | None = None, palindromic: str = "drop",
              figures: bool = True) -> dict[str, Any]:
    """The pipeline with plain functions. ``backend``: a scoring backend (not needed on the
    precomputed path); ``lookup_source``: an :class:`agval.alleles.AlleleSource` (lookup
    route); ``record``: an open :class:`agval.runs.RunRecord` to write tables, plots,
    metrics and the report into (optional).

    Returns ``{"result", "metrics", "rows", "timings"}``.
    """
    import time

    from agval.alleles.cache import LookupCache, lookup_rsids
    from agval.qtl.harmonize import (finalize, harmonize_coordinates, harmonize_lookup, lookup_ids,
                                     orient_in_place)
    from agval.qtl.load import load_study_table
    from agval.qtl.precomputed import load_predictions, resolve_prediction_columns

    t: dict[str, float] = {}
    t0 = time.perf_counter()
    drops = record.drops if record is not None else DropLog()
    sim = bool(simulated if simulated is not None else getattr(backend, "simulated", False))
    provenance = None
    if study.predictions:
        from agval.scoring.precomputed import table_provenance

        # the predictions table says where it came from; a stand-in table is simulated whatever the caller says
        provenance = table_provenance(study.predictions)
        sim = sim or provenance["provenance"] == "simulated"
    loaded = load_study_table(study)
    drops.extend(loaded.drops)
    t["load"] = time.perf_counter() - t0
    scores = predictions = pcols = None
    scoring_info = None
    if loaded.route == "precomputed":
        h = finalize(study, orient_in_place(study, loaded.frame))
        predictions = load_predictions(study.predictions)
        pcols = resolve_prediction_columns(study, predictions)
        t["harmonize"] = time.perf_counter() - t0 - sum(t.values())
    else:
        genome = genome_path(study, standin_world)
        if loaded.route == "lookup":
            cache_obj = LookupCache(simulated=sim) if cache else None
            looked = lookup_rsids(lookup_ids(loaded.frame), lookup_source, cache=cache_obj)
            t["lookup"] = time.perf_counter() - t0 - sum(t.values())
            h = harmonize_lookup(study, loaded.frame, looked.table, genome, drops=drops, palindromic=palindromic)
        else:
            h = harmonize_coordinates(study, loaded.frame, genome, drops=drops)
        h = finalize(study, h)
        t["harmonize"] = time.perf_counter() - t0 - sum(t.values())
        from agval.scoring import score

        analyses = plan_analyses(study, marks=table_marks(h.table))
        run = score(h.table.select("row_id", "chrom", "pos", "ref", "alt"), scorers_for(analyses), backend=backend,
                    cache=cache, interval_width=study.interval_width, progress=False,
                    selection=scoring_selection(analyses))
        scores = run.scan()  # lazy (parts on disk); each analysis collects only its tracks
        scoring_info = {"scorers": run.scorers, "interval_width": run.interval_width, "summary": run.summary}
        failed = run.failed_rows(h.table.select("row_id", "chrom", "pos", "ref", "alt"))
        if failed.height:
            from agval.drops import failure_drops

            drops.add_frame(failure_drops(failed, run.failures, reason="score_failed"), stage="score",
                            reason="score_failed")
        if record is not None:
            run.record(record)
        t["score"] = time.perf_counter() - t0 - sum(t.values())
    result = analyse(study, h.table, scores=scores, predictions=predictions, prediction_columns=pcols,
                     drops=drops, simulated=sim)
    t["analyse"] = time.perf_counter() - t0 - sum(t.values())
    counts = {"input_rows": loaded.n_input_rows, "loaded_rows": loaded.frame.height, **h.counts(),
              "analysed_rows": result.headline.get("n"), "dropped_rows": drops.frame()["row_id"].drop_nulls().n_unique(),
              "drop_events": len(drops)}
    metrics = build_metrics(result, counts=counts, route=h.route, convention=h.convention, scoring=scoring_info)
    if provenance is not None:
        metrics["predictions_provenance"] = provenance
    if record is not None:
        record.write_table("rows", h.table)
        record.write_table("per_track", result.per_track)
        record.write_table("analysis_rows", analysis_rows(result))
        from agval.qtl.plots import make_figures

        figs = make_figures(result, record.plots_dir) if figures else []
        t["plots"] = time.perf_counter() - t0 - sum(t.values())
        from agval.report import render_report

        record.add_metrics(metrics)
        sections, warnings, tables = report_parts(result, counts=counts, route=h.route, harmonize_notes=h.notes)
        record.write_report(render_report(f"QTL validation: {study.name}", provenance=record.manifest,
                                          sections=sections, metrics=record.metrics,
                                          drop_funnel=drops.funnel(), figures=figs, tables=tables,
                                          warnings=warnings))
        t["report"] = time.perf_counter() - t0 - sum(t.values())
    return {"result": result, "metrics": metrics, "rows": h.table, "timings": t}


def analysis_rows(result: QTLResult) -> pl.DataFrame:
    """Every analysis' rows in one long table: ``analysis, row_id, rsid, cluster_id, x, y,
    x_quantile, n_tracks, orientation_verified``."""
    parts = []
    for name, sel in result.selected.items():
        f = sel.frame
        parts.append(f.select(pl.lit(name).alias("analysis"), "row_id",
                              *[c for c in ("rsid", "variant_key", "cluster_id") if c in f.columns],
                              "x", "y", "x_quantile", "n_tracks", "orientation_verified"))
    return pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()

