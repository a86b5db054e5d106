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
from agval.qtl.study import QTLStudy

__all__ = ["QTLResult", "scoring_selection", "analyse", "select_all", "evaluate_all", "build_metrics", "report_parts", "run_plain", "comparison_table",
           "table_marks", "analysis_rows", "genome_path", "ANALYSIS_KEYS"]

#: statistics shown side by side in the report's comparison table
ANALYSIS_KEYS = ("n", "n_clusters", "n_tracks", "spearman_rho", "spearman_ci_low", "spearman_ci_high",
                 "spearman_p", "pearson_r", "pearson_p", "r2", "magnitude_spearman_rho",
                 "magnitude_spearman_ci_low", "magnitude_spearman_ci_high", "n_orientation_verified", "sign_n",
                 "sign_fraction", "sign_ci_low", "sign_ci_high", "sign_p_two_sided",
                 "same_sign_fraction_unverified", "score_mean", "score_sd", "beta_mean")


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


def select_all(study: QTLStudy, rows: pl.DataFrame, *, scores: pl.DataFrame | None = None,
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
    """``statistic`` x analyses (one column per analysis), for the report."""
    names = list(result.stats)
    rows = []
    for k in ANALYSIS_KEYS:
        rows.append({"statistic": k, **{n: _num(result.stats[n].get(k)) for n in names}})
    return pl.DataFrame(rows, schema={"statistic": pl.Utf8, **{n: pl.Float64 for n in names}})


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
        "seed": study.seed, "n_boot": study.n_boot, "confidence": study.confidence,
        "simulated": result.simulated,
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
    return m


def report_parts(result: QTLResult, *, counts: dict[str, Any], route: str,
                 harmonize_notes: list[str] = ()) -> tuple[list[tuple[str, str]], list[str], dict[str, pl.DataFrame]]:
    """``(sections, warnings, tables)`` for :func:`agval.report.render_report`."""
    study = result.study
    h = result.headline
    fmt = lambda v: "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"  # noqa: E731
    summary = [f"{study.name}: {study.kind} study, {counts.get('input_rows')} input rows, "
               f"{counts.get('harmonized_rows')} harmonized ({route} route), {h.get('n')} rows in the "
               f"{h.get('analysis')} analysis."]
    summary.append(f"{h.get('analysis')}: Spearman rho = {fmt(h.get('spearman_rho'))} "
                   f"(95% CI {fmt(h.get('spearman_ci_low'))} to {fmt(h.get('spearman_ci_high'))}), Pearson r = "
                   f"{fmt(h.get('pearson_r'))}; magnitude |score| vs |beta| rho = "
                   f"{fmt(h.get('magnitude_spearman_rho'))}.")
    if "original_spearman_rho" in h:
        summary.append(f"original (the seed's choices): Spearman rho = {fmt(h['original_spearman_rho'])}; "
                       f"|rho| corrected - |rho| original = {fmt(h.get('abs_rho_difference'))} "
                       f"(CI {fmt(h.get('abs_rho_difference_ci_low'))} to {fmt(h.get('abs_rho_difference_ci_high'))}).")
    if h.get("sign_n"):
        summary.append(f"Sign concordance on {h['sign_n']} orientation-verified rows: {fmt(h.get('sign_fraction'))} "
                       f"(binomial p = {h.get('sign_p_two_sided'):.3g}).")
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
    methods.append(f"Statistics: Spearman and Pearson (two-sided), R^2 of beta ~ score; {study.n_boot} cluster "
                   f"bootstrap replicates resampling {'peaks' if study.kind == 'caqtl' else 'loci' if study.kind == 'hqtl' else 'clusters'} "
                   f"(seed {study.seed}); sign concordance with an exact binomial test and a Wilson interval on "
                   "orientation-verified rows only; magnitude correlation reported apart from direction.")
    sections = [("Summary", "\n\n".join(summary)), ("Methods", "\n\n".join(methods))]
    if harmonize_notes or result.notes:
        sections.append(("Notes", "\n\n".join([*harmonize_notes, *result.notes])))
    warnings = []
    if not h.get("sign_n"):
        warnings.append("Direction is unverified for every row (effect allele unknown): the same-sign fraction "
                        "is reported for reproduction only and is not a test.")
    tables = {"Original vs corrected": comparison_table(result)}
    if result.per_track.height:
        tables["Per-track correlations"] = result.per_track.select(
            "analysis", "track", "n", "spearman_rho", "ci_low", "ci_high", "spearman_p", "pearson_r", "n_clusters")
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
        scores = run.scores
        scoring_info = {"scorers": run.scorers, "interval_width": run.interval_width, "summary": run.summary}
        failed = run.failed_rows(h.table.select("row_id", "chrom", "pos", "ref", "alt"))
        if failed.height:
            drops.add_frame(failed.select("row_id", pl.format("variant {} failed to score", "variant_key")
                                          .alias("detail")), stage="score", reason="score_failed")
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

