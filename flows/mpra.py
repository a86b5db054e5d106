"""MPRA benchmark: reporter activity vs sequence predictions (STUDIES.md §3, corrected).

``agval run mpra STUDY_FILE`` or ``mpra_benchmark(study, backend)``. Methods, in order:

1. **Activity.** Load the counts (GSE84888 ``name, tags, counts.rna, counts.plasmid`` or
   a generic count table); activity = ``log2((RNA + pc) / (DNA + pc))`` per construct;
   minimum-DNA and minimum-barcode filters, each filter's drops reported (P26).
2. **Model inputs.** The element (the synthesised oligo from ``sequences``, the locus
   16-mer of the construct name, or the reference bases) centred in a supported length
   (16,384 bp by default) inside its reference flanks or the fixed neutral backbone,
   genomic + orientation; N-padding and unsupported lengths refused (P16, P18). Every
   distinct input is identified by its sequence hash.
3. **Predictions.** One ``predict_sequence`` call per distinct input with all requested
   outputs, through the scoring engine's cache, with the study's organism and ontology
   (mouse adipocyte tracks for GSE84888; P24). The number of distinct inputs is
   reported; a pseudo-replication warning fires when rows far outnumber them (P17). A
   cross-species run (K562) happens only as the named sensitivity run. Or, the
   **precomputed path**: a table of predictions (element or locus id -> aggregate
   columns) joined m:1 to the measured activity.
4. **Aggregates.** Per track and pooled per output type: the correctly centred window
   mean and the whole-sequence mean, per strand for stranded tracks (P25).
5. **Statistics.** Pearson, Spearman, AUROC of the median split (strictly greater =
   positive; threshold and class counts stated); cluster-aware bootstrap CIs and
   permutation tests resampling loci or distinct inputs; the naive row-bootstrap CIs
   beside them; within-cluster correlations; strata by strand, TF and chromosome with a
   minimum size; per track; wild type vs mutant deltas merged with an asserted
   cardinality (P19); robustness to stricter count filters.
6. **Figures and report.** Run record (manifest, tables, figures, ``metrics.json``,
   ``dropped.parquet``), ``report.html``, Prefect artifacts.

``metrics.json`` keys: ``docs/metrics-mpra.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from prefect import flow, get_run_logger

from agval.config import BackendConfig
from agval.mpra.pipeline import Predicted, build_report, combine, select_tracks
from agval.mpra.study import OUTPUT_TYPES, STRAND_SUFFIXES, MPRAStudy, check_study, study_inputs
from agval.report import Figure
from flows._common import RESULT_STORAGE, keep, prediction_session, record_model, run_name, start_run
from flows.runners import task_runner_from_env
from tasks import mpra as T
from tasks.report import publish_report

__all__ = ["STUDY_MODEL", "FLOW", "mpra_benchmark", "MPRAStudy", "check_study", "OUTPUT_TYPES", "STRAND_SUFFIXES"]

STUDY_MODEL = MPRAStudy


@flow(name="mpra-benchmark", flow_run_name=run_name("mpra"),
      log_prints=True, persist_result=True, result_storage=RESULT_STORAGE,
      task_runner=task_runner_from_env())
def mpra_benchmark(study: MPRAStudy, backend: BackendConfig = BackendConfig()) -> dict[str, Any]:
    """Benchmark sequence predictions against MPRA activity (the methods are the module docstring).

    Args:
        study: the ``[study]`` section (:class:`agval.mpra.study.MPRAStudy`).
        backend: the model backend (unused with ``study.predictions``).

    Returns:
        ``run_folder``, ``simulated``, ``metrics`` (``docs/metrics-mpra.md``), ``headline``,
        ``warnings``.

    Raises:
        ConfigError: the study is refused before any call (length, window, element source,
            tracks of the organism / ontology terms).
        InputError: an input file is missing or malformed.
        GuardError: fewer than 3 constructs have a measurement and a prediction.
    """
    log = get_run_logger()
    plan = check_study(study)                      # refusals before any call
    key = f"mpra-{study.name}"
    with prediction_session(backend, study.predictions, study.predictions_simulated) as s:
        params = {"study": study.model_dump(mode="json"), "backend": backend.model_dump(mode="json")}
        rec = start_run(study.name, "mpra-benchmark", params, simulated=s.simulated, seed=study.seed,
                        inputs=study_inputs(study))
        with rec:
            if s.model is not None:
                record_model(rec, s.model)
            if s.provenance is not None:
                rec.note("predictions_provenance", s.provenance)
            # 1. measured activity
            meas = None
            if study.counts:
                meas = keep(rec, T.load_activity(
                    study.counts, count_format=study.count_format, pools=study.pools, build=study.build,
                    pseudocount=study.pseudocount, min_dna=study.min_dna, min_tags=study.min_tags,
                    aggregate=study.aggregate, key=key))
                log.info("activity: %s constructs after filters %s", meas.table.height,
                         meas.summary["filters"]["dropped"])
            # 2-4. model inputs, predictions, aggregates
            if plan["precomputed"]:
                pred = keep(rec, T.attach_precomputed(study, meas.table if meas else None))
            else:
                pred = _predict(study, plan, s.model, meas.table, rec, key)
            # 5. statistics
            res = keep(rec, T.statistics(study, plan, pred))
            for w in res.warnings:
                log.warning(w)
            # 6. tables, figures, report
            figs = []
            if study.figures != "none":
                figs = T.figures(pred.frame, str(rec.plots_dir), aggregates=res.pooled, primary=res.primary,
                                 stats=res.stats, tf_table=res.strata.get("tf"), effects_long=res.effects_long,
                                 scatter=res.pooled if study.figures == "all" else [res.primary],
                                 distributions=study.figures == "all")
            out = build_report(study, plan, simulated=s.simulated, provenance=s.provenance,
                               activity=meas.summary if meas else None, pred=pred, res=res)
            for name, df in out.tables.items():
                rec.write_table(name, df)
            publish_report(rec, kind="mpra", title=f"MPRA benchmark: {study.name}", key=key, metrics=out.metrics,
                           figures=[Figure(path=Path(p), caption=c) for p, c in figs],
                           tables=out.report_tables, sections=out.sections, warnings=res.warnings,
                           summary_md=out.summary_md)
            log.info(out.headline)
    return {"run_folder": str(rec.folder), "simulated": s.simulated, "metrics": out.metrics,
            "headline": out.headline, "warnings": res.warnings}


def _predict(study: MPRAStudy, plan: dict[str, Any], model, measured: pl.DataFrame, rec, key: str):
    """Steps 2-4 on the model path: build the distinct inputs, predict them once (primary
    tracks, and the named sensitivity tracks when asked), aggregate, attach to the constructs."""
    from agval.frames import checked_join

    built = keep(rec, T.build_inputs(measured, study, source=plan["source"], key=key))
    rows = checked_join(measured, built.table, on="row_id", how="inner", validate="1:1",
                        what="constructs x model inputs")
    rec.note("model_inputs", {**built.summary, "element_source": plan["source"]})

    def block(organism: str, terms: list[str], label: str) -> Predicted:
        tracks = select_tracks(model, organism, plan["outputs"], terms)
        run = T.predict_inputs(built.inputs, plan["outputs"], backend=model, ontology_terms=terms, organism=organism,
                               bin_size=plan["bin_size"], concurrency=study.concurrency, key=f"{key}-{label}")
        return keep(rec, T.aggregate_predictions(rows, run, tracks, study=study, organism=organism, terms=terms,
                                                 outputs=plan["outputs"], label=label))

    primary = block(study.organism, study.ontology_terms, "primary")
    rec.note("predictions", {k: v for k, v in primary.summary.items() if k != "tracks"})
    sens = block(study.sensitivity_organism, study.sensitivity_ontology_terms, "sensitivity") \
        if study.sensitivity_ontology_terms else None
    return combine(built, primary, sens, source=plan["source"])


FLOW = mpra_benchmark
