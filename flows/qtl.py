"""QTL validation flow: AlphaGenome variant scores vs QTL effect sizes (STUDIES.md §1).

Methods, in the order the flow runs them:

1. **Load** the QTL table with its format's loader (GSE86886 caQTL, GSE116193 hQTL, GTEx
   v8 pairs, generic); every dropped row is counted with its reason.
2. **Look up alleles** of the rsIDs (myvariant.info or a dbSNP VCF; hg38 only, never the
   file's hg19 positions) - or use the table's own hg38 coordinates (GTEx).
3. **Harmonize**: pick the record matching the study's alleles, check REF on the hg38
   FASTA, swap/flip, orient beta to ALT by the convention declared a priori
   (``effect_allele``); ``beta_seed`` keeps the seed's sign (hQTL negated).
4. **Score** every distinct variant once with the scorers the modes need (deduplicated,
   ordered) over a 1 Mb interval - or read a precomputed predictions table.
5. **Select tracks** per analysis (as data): ``original`` = mean quantile over every track
   of the modality for the seed's biosample; ``corrected`` = raw scores of the matched
   tracks (caQTL ATAC/DNASE, hQTL the row's mark on GM12878 with CL:0000236 as
   sensitivity, eQTL the tissue's RNA_SEQ for the row's gene).
6. **Statistics** at the true unit (connected components of {peak, SNP}; the SNP for
   hQTL): Spearman/Pearson with row-level and cluster permutation P values, cluster
   bootstrap CIs (seeded), sign concordance on orientation-verified rows, magnitude
   correlation (the caQTL headline: effect allele unknown), R^2; cells (caQTL ATAC primary,
   DNase secondary, pooled sensitivity; hQTL per mark, per SNP, pooled sensitivity) with
   Benjamini-Hochberg q values and the study's pre-specified primary cell reported apart;
   per-track table (BH over every track), corrected-vs-original difference.
7. **Plots** and 8. **report** (``report.html``, ``metrics.json``, Prefect artifacts).

``STUDY_MODEL`` / ``FLOW`` are what :mod:`flows.registry` runs for ``agval run qtl FILE``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import polars as pl
from prefect import flow, get_run_logger

from agval.config import BackendConfig, LookupConfig
from agval.drops import failure_drops
from agval.qtl.harmonize import lookup_ids
from agval.qtl.modality import plan_analyses, scorers_for
from agval.qtl.pipeline import (analysis_rows, build_metrics, genome_path, report_parts, scoring_selection,
                                table_marks)
from agval.qtl.study import QTLStudy
from agval.scoring.precomputed import table_provenance
from agval.serving import results_url
from agval.stats.pvalues import format_p
from flows._common import RESULT_STORAGE, backend_session, keep, lookup_session, run_name, start_run
from flows.runners import task_runner_from_env
from tasks.alleles import lookup_alleles
from tasks.qtl import (harmonize_qtl, load_qtl_predictions, load_qtl_table, prepare_causality, qtl_plots,
                       qtl_statistics_task, select_qtl_tracks)
from tasks.report import publish_report
from tasks.scoring import score_variants

__all__ = ["STUDY_MODEL", "FLOW", "qtl_validation", "QTLStudy"]

STUDY_MODEL = QTLStudy
_MAX_HASHED_INPUT = 256 << 20  # inputs larger than this (a real hg38 FASTA) are recorded by path and size


def _simulated_without_backend(backend: BackendConfig) -> bool:
    return backend.kind == "standin" or bool(backend.standin_world)


def _inputs(study: QTLStudy) -> dict[str, str | None]:
    out = {"qtl_table": study.table, "predictions": study.predictions}
    if study.reference_fasta and Path(study.reference_fasta).is_file() \
            and Path(study.reference_fasta).stat().st_size <= _MAX_HASHED_INPUT:
        out["reference_fasta"] = study.reference_fasta
    return out


@flow(name="qtl-validation", flow_run_name=run_name("qtl"),
      log_prints=True, persist_result=True, result_storage=RESULT_STORAGE,
      task_runner=task_runner_from_env())
def qtl_validation(study: QTLStudy, backend: BackendConfig = BackendConfig(),
                   lookup: LookupConfig = LookupConfig()) -> dict[str, Any]:
    """Validate AlphaGenome scores against one QTL study, ``original`` and ``corrected``
    side by side (the methods are the module docstring).

    Args:
        study: the ``[study]`` section (:class:`agval.qtl.study.QTLStudy`); backend: the scoring
            backend (unused with ``study.predictions``); lookup: the allele source for rsIDs.
    Returns:
        ``run_folder``, ``simulated``, ``metrics`` (``docs/metrics-qtl.md``), ``headline``.
    Raises:
        InputError: an input is missing or malformed; GuardError: nothing left to analyse.
    """
    log = get_run_logger()
    if study.benchmark == "causality":
        return _causality_benchmark(study, backend, log)
    with _session(study, backend) as (spec, simulated, provenance):
        params = {k: v.model_dump(mode="json") for k, v in (("study", study), ("backend", backend), ("lookup", lookup))}
        rec = start_run(study.name, "qtl-validation", params,
                        simulated=simulated, seed=study.seed, inputs=_inputs(study))
        with rec:
            rec.note("reference_fasta", study.reference_fasta)
            # 1. load
            loaded = keep(rec, load_qtl_table(study))
            rec.note("route", loaded.route)
            predictions = pcols = scored = scoring_info = None
            if loaded.route == "precomputed":
                # 2-3. no lookup: orient beta by the declared convention on the table's own alleles
                h = keep(rec, harmonize_qtl(study, loaded, None, lookup=None))
                predictions, pcols = load_qtl_predictions(study)
                rec.set_backend({"backend": "precomputed", "table": study.predictions, "simulated": simulated,
                                 "provenance": provenance["provenance"],
                                 "provenance_evidence": provenance["evidence"]})
            else:
                genome = genome_path(study, backend.standin_world)
                looked = None
                if loaded.route == "lookup":
                    # 2. allele lookup (hg38 only)
                    with lookup_session(lookup, backend, simulated) as (source, described):
                        rec.note("allele_source", described)
                        looked = lookup_alleles(lookup_ids(loaded.frame), source, simulated=simulated,
                                                key=study.name)
                    rec.write_table("lookup", looked.table)
                # 3. harmonize, 4. score
                h = keep(rec, harmonize_qtl(study, loaded, genome, lookup=looked.table if looked else None,
                                            palindromic=lookup.palindromic))
                scored, scoring_info = _score(study, h, spec, backend, rec)
            rec.write_table("rows", h.table)
            # 5. select tracks (from the scores on disk: each analysis collects only its tracks)
            lazy = scored.scan() if scored is not None else None
            analyses, selected, notes = keep(rec, select_qtl_tracks(study, h.table, scores=lazy,
                                                                    predictions=predictions, prediction_columns=pcols))
            rec.note("analyses", [a.to_dict() for a in analyses])
            # 6. statistics
            result = qtl_statistics_task(study, analyses, selected, simulated=simulated, notes=notes)
            rec.write_table("per_track", result.per_track)
            rec.write_table("analysis_rows", analysis_rows(result))
            # 7. plots
            figures = qtl_plots(study, result, rec.plots_dir)
            counts = {"input_rows": loaded.n_input_rows, "loaded_rows": loaded.frame.height, **h.counts(),
                      "analysed_rows": result.headline.get("n"), "dropped_rows": rec.drops.frame()["row_id"].drop_nulls().n_unique(),
                      "drop_events": len(rec.drops)}
            metrics = build_metrics(result, counts=counts, route=h.route, convention=h.convention,
                                    scoring=scoring_info)
            if provenance is not None:
                metrics["predictions_provenance"] = provenance
            rec.add_metrics(metrics)
            sections, warnings, tables = report_parts(result, counts=counts, route=h.route, harmonize_notes=h.notes)
        # 8. report, once the run record is complete (its provenance says "completed")
        hl = result.headline
        summary_md = "\n".join(f"* **{k}**: {v}" for k, v in hl.items())
        publish_report(rec, kind="qtl", title=f"QTL validation: {study.name}", key=study.name, figures=figures,
                       tables=tables, sections=sections, warnings=warnings, summary_md=summary_md)
    _log_headline(log, study, hl, rec.folder / "report.html")
    return {"run_folder": str(rec.folder), "simulated": simulated, "metrics": metrics, "headline": hl}


@contextlib.contextmanager
def _session(study: QTLStudy, backend: BackendConfig):
    """``(spec, simulated, provenance)``: the backend decides whether the run is simulated
    (the stand-in label in its metadata); a predictions table's provenance comes from the
    table itself (``spec`` None)."""
    if study.predictions:
        provenance = table_provenance(study.predictions)
        yield None, _simulated_without_backend(backend) or provenance["provenance"] == "simulated", provenance
        return
    with backend_session(backend) as (b, spec):
        yield spec, bool(b.simulated), None


def _log_headline(log, study: QTLStudy, hl: dict[str, Any], report: Path) -> None:
    log.info("%s: %s %s = %.3f [%.3f, %.3f] (n = %s, %s clusters; cluster permutation P = %s), report %s",
             study.name, hl.get("analysis"), hl.get("headline_statistic", "spearman_rho"),
             *(float("nan") if hl.get(k) is None else hl[k] for k in ("estimate", "estimate_ci_low", "estimate_ci_high")),
             hl.get("n"), hl.get("n_clusters"), format_p(hl.get("estimate_perm_p")), results_url(report))


def _score(study: QTLStudy, h, spec: dict[str, Any], backend: BackendConfig, rec) -> tuple[Any, dict]:
    """Step 4: every distinct variant once with the scorers the analyses need (their track
    selections declared up front); failed rows are dropped with the service's error code.
    Returns the :class:`~agval.scoring.engine.ScoreRun` (its rows stay in parquet parts on
    disk, deleted with it: the caller keeps it while it reads ``scan()``) and the scoring info."""
    analyses = plan_analyses(study, marks=table_marks(h.table))
    variants = h.table.select("row_id", "chrom", "pos", "ref", "alt")
    run = score_variants(variants, scorers_for(analyses), backend=spec, interval_width=study.interval_width,
                         chunk_size=backend.chunk_size, concurrency=backend.max_workers,
                         artifact_key=f"{study.name}-scoring", selection=scoring_selection(analyses))
    run.record(rec)
    failed = run.failed_rows(variants)
    if failed.height:  # with the service's error code and attempts
        rec.drops.add_frame(failure_drops(failed, run.failures, reason="score_failed"),
                            stage="score", reason="score_failed", source_file=study.table)
    return run, {"scorers": run.scorers, "interval_width": run.interval_width, "summary": run.summary}


def _causality_benchmark(study: QTLStudy, backend: BackendConfig, log) -> dict[str, Any]:
    """``benchmark = "causality"`` (agval.qtl.causality): causal QTL variants vs matched
    controls (auPRC of |score| beside the AP of a random ranking) and direction (Pearson over the
    positives), per split and model, locus-level bootstrap SEs, paired differences."""
    from agval.qtl import causality as cz

    live = study.causality.live_model
    with contextlib.ExitStack() as stack:
        if live:
            b, spec = stack.enter_context(backend_session(backend))
            simulated = bool(b.simulated)
        else:
            spec = None
            provenance = table_provenance(study.table)
            simulated = _simulated_without_backend(backend) or provenance["provenance"] == "simulated"
        params = {k: v.model_dump(mode="json") for k, v in (("study", study), ("backend", backend))}
        rec = start_run(study.name, "qtl-validation", params, simulated=simulated, seed=study.seed,
                        inputs=_inputs(study))
        with rec:
            genome = study.reference_fasta or (str(Path(backend.standin_world) / "genome.fa")
                                               if backend.standin_world else None)
            rec.note("reference_fasta", genome)
            frame, baselines = keep(rec, prepare_causality(study, genome))
            n_input = cz.load_causality_table(study.table, baseline_columns=baselines)[0].height
            scoring_info = None
            if live:
                variants = frame.select("row_id", "chrom", "pos", "ref", "alt")
                run = score_variants(variants, cz_scorers(study), backend=spec, interval_width=study.interval_width,
                                     chunk_size=backend.chunk_size, concurrency=backend.max_workers,
                                     artifact_key=f"{study.name}-scoring")
                run.record(rec)
                frame = cz.attach_live_scores(frame, run.scores, study)
                scoring_info = {"scorers": run.scorers, "interval_width": run.interval_width, "summary": run.summary}
            else:
                rec.set_backend({"backend": "none", "models": baselines, "simulated": simulated})
            models = cz.models_of(study, baselines)
            res = cz.benchmark(frame, models, study.causality, n_boot=study.n_boot, seed=study.seed,
                               confidence=study.confidence)
            counts = cz.causality_counts(frame, n_input)
            metrics = cz.build_metrics(study, res, counts=counts, simulated=simulated, scoring=scoring_info)
            rec.write_table("rows", frame)
            rec.write_table("causality", cz.results_table(res))
            sections, warnings, tables = cz.report_parts(study, res, counts=counts, simulated=simulated)
            rec.add_metrics(metrics)
        hl = metrics["headline"]
        summary_md = "\n".join(f"* **{k}**: {v}" for k, v in hl.items())
        publish_report(rec, kind="qtl", title=f"QTL causality benchmark: {study.name}", key=study.name,
                       tables=tables, sections=sections, warnings=warnings, summary_md=summary_md)
    log.info("%s: %s auPRC = %.3f (random %.3f), direction r = %.3f, report %s", study.name, hl["model"],
             hl["auprc"], hl["random_auprc"], hl["direction_r"], results_url(rec.folder / "report.html"))
    return {"run_folder": str(rec.folder), "simulated": simulated, "metrics": metrics, "headline": hl}


def cz_scorers(study: QTLStudy) -> list[str]:
    """The scorers of the causality benchmark's live model."""
    from agval.qtl.causality import live_analysis

    return scorers_for([live_analysis(study)])


FLOW = qtl_validation
