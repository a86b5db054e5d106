"""Prefect tasks of the QTL flow: thin wrappers over :mod:`agval.qtl` with artifacts.

* ``qtl-load`` (:func:`load_qtl_table`): the study table with its loader; a table artifact
  of the rows loaded and dropped.
* ``qtl-harmonize`` (:func:`harmonize_qtl`): lookup / coordinates / precomputed route,
  ``beta_alt`` and ``beta_seed``, guards; a drop-funnel table artifact.
* ``qtl-predictions`` (:func:`load_qtl_predictions`): the precomputed path's table.
* ``qtl-select-tracks`` (:func:`select_qtl_tracks`): every analysis' tracks, pooled per row;
  a table artifact of the analyses, their track selections and track counts.
* ``qtl-statistics`` (:func:`qtl_statistics_task`): statistics, per-track table,
  comparison, headline; a markdown artifact with the headline.
* ``qtl-plots`` (:func:`qtl_plots`): the figures into the run's plots folder.

Allele lookup and scoring use the shared tasks (:func:`tasks.alleles.lookup_alleles`,
:func:`tasks.scoring.score_variants`); the report uses :func:`tasks.report.publish_report`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from agval import progress
from agval.drops import DropLog, Dropped
from agval.qtl.harmonize import (Harmonized, finalize, harmonize_coordinates, harmonize_lookup,
                                 orient_in_place)
from agval.qtl.load import LoadedTable, load_study_table
from agval.qtl.pipeline import QTLResult, evaluate_all, select_all
from agval.qtl.precomputed import load_predictions, resolve_prediction_columns
from agval.qtl.study import QTLStudy
from agval.report import df_to_markdown
from tasks.alleles import artifact_key

__all__ = ["load_qtl_table", "harmonize_qtl", "load_qtl_predictions", "select_qtl_tracks", "qtl_statistics_task",
           "prepare_causality", "qtl_plots"]


@task(name="qtl-load", task_run_name="qtl-load-{study.name}", cache_policy=NO_CACHE)
def load_qtl_table(study: QTLStudy) -> LoadedTable:
    """Load the study table (:func:`agval.qtl.load.load_study_table`)."""
    loaded = load_study_table(study)
    funnel = loaded.drops.funnel()
    rows = [{"what": "data rows in the file", "n": loaded.n_input_rows},
            {"what": f"rows loaded ({'one per significant mark' if study.kind == 'hqtl' else 'one per row'})",
             "n": loaded.frame.height}]
    rows += [{"what": f"dropped at load: {r['reason']}", "n": r["n"]} for r in funnel.to_dicts()]
    create_table_artifact(key=artifact_key(study.name, "load"), table=rows,
                          description=f"{study.table} ({study.format}): route {loaded.route}")
    return loaded


@task(name="qtl-harmonize", task_run_name="qtl-harmonize-{study.name}", cache_policy=NO_CACHE)
def harmonize_qtl(study: QTLStudy, loaded: LoadedTable, genome: str | None, *, lookup: pl.DataFrame | None,
                  palindromic: str = "drop") -> Dropped[Harmonized]:
    """Alleles and orientation on the loaded route; fails loudly on an empty result. Returns
    the harmonized rows and the rows dropped on the way."""
    drops = DropLog()
    if loaded.route == "precomputed":
        h = orient_in_place(study, loaded.frame)
    elif loaded.route == "lookup":
        h = harmonize_lookup(study, loaded.frame, lookup, genome, drops=drops, palindromic=palindromic)
    else:
        h = harmonize_coordinates(study, loaded.frame, genome, drops=drops)
    h = finalize(study, h)
    rows = [{"step": r["step"], "reason": "", "n": r["n"], "lost": r["lost"]} for r in h.funnel.to_dicts()]
    seen = DropLog()  # the funnel so far: the load's drops and this step's
    seen.extend(loaded.drops)
    seen.extend(drops)
    rows += [{"step": f"dropped ({r['stage']})", "reason": r["reason"], "n": r["n"], "lost": None}
             for r in seen.funnel().to_dicts()]
    c = h.counts()
    create_table_artifact(key=artifact_key(study.name, "drop-funnel"), table=rows,
                          description=(f"{study.name}: {loaded.n_input_rows} file rows -> {c['harmonized_rows']} "
                                       f"harmonized rows ({h.route} route, effect allele {h.convention}, "
                                       f"{c['orientation_verified_rows']} orientation-verified)"))
    return Dropped(h, drops)


@task(name="qtl-predictions", task_run_name="qtl-predictions-{study.name}", cache_policy=NO_CACHE)
def load_qtl_predictions(study: QTLStudy) -> tuple[pl.DataFrame, dict[str, str]]:
    """The precomputed path's predictions table and its analysis -> column map."""
    preds = load_predictions(study.predictions)
    return preds, resolve_prediction_columns(study, preds)


@task(name="qtl-select-tracks", task_run_name="qtl-select-tracks-{study.name}", cache_policy=NO_CACHE)
def select_qtl_tracks(study: QTLStudy, rows: pl.DataFrame, *, scores: pl.DataFrame | pl.LazyFrame | None = None,
                      predictions: pl.DataFrame | None = None, prediction_columns: dict[str, str] | None = None):
    """:func:`agval.qtl.pipeline.select_all` with an artifact listing each analysis' tracks
    (``scores`` may be lazy: each analysis collects only its tracks).
    Returns ``(analyses, selected, notes)`` and the rows dropped (:class:`~agval.drops.Dropped`)."""
    drops = DropLog()
    analyses, selected, notes = select_all(study, rows, scores=scores, predictions=predictions,
                                           prediction_columns=prediction_columns, drops=drops)
    table = [{"analysis": a.name, "mode": a.mode, "score": a.score_col, "beta": a.beta_col,
              "selection": str(a.selection.to_dict()), "match": a.match or "",
              "tracks": len(selected[a.name].tracks) if a.name in selected else 0,
              "rows": selected[a.name].frame.height if a.name in selected else 0} for a in analyses]
    create_table_artifact(key=artifact_key(study.name, "track-selection"), table=table,
                          description=f"{study.name}: the tracks of every analysis (selection as data)")
    return Dropped((analyses, selected, notes), drops)


@task(name="qtl-statistics", task_run_name="qtl-statistics-{study.name}", cache_policy=NO_CACHE)
def qtl_statistics_task(study: QTLStudy, analyses, selected, *, simulated: bool,
                        notes: list[str] | None = None) -> QTLResult:
    """:func:`agval.qtl.pipeline.evaluate_all` with a markdown artifact of the headline."""
    progress.emit("statistics")
    result = evaluate_all(study, analyses, selected, simulated=simulated, notes=notes)
    h = result.headline
    tbl = pl.DataFrame([{"metric": k, "value": str(v)} for k, v in h.items()])
    create_markdown_artifact(key=artifact_key(study.name, "headline"), markdown=(
        f"# {study.name}: headline{' (SIMULATED)' if simulated else ''}\n\n{df_to_markdown(tbl)}\n"),
        description="the primary analysis in a few numbers")
    return result


@task(name="qtl-causality-prepare", task_run_name="qtl-causality-prepare-{study.name}", cache_policy=NO_CACHE)
def prepare_causality(study: QTLStudy, genome: str | None) -> Dropped[tuple[pl.DataFrame, list[str]]]:
    """The causality benchmark's table after the significance gap and the REF check
    (:func:`agval.qtl.causality.prepare`): ``(frame, baseline columns)`` and the rows dropped."""
    from agval.qtl.causality import prepare

    drops = DropLog()
    return Dropped(prepare(study, genome_path=genome, drops=drops), drops)


@task(name="qtl-plots", task_run_name="qtl-plots-{study.name}", cache_policy=NO_CACHE)
def qtl_plots(study: QTLStudy, result: QTLResult, plots_dir: str | Path) -> list[Any]:
    """Every figure (:func:`agval.qtl.plots.make_figures`)."""
    from agval.qtl.plots import make_figures

    return make_figures(result, plots_dir)
