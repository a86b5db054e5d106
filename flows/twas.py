"""TWAS / fine-mapping concordance (STUDIES.md §2): does AlphaGenome agree with TWAS?

Methods, as the flow runs them (one named task each):

1. **load** (``twas-load-inputs``): SuSiE results per gene-tissue, FUSION ``.dat`` TWAS
   results, the tissue -> ontology map (the spec's defaults plus the study's override;
   saved in the manifest). Tissues missing from the map are an error (or counted drops with
   ``unmapped_tissues = "drop"``); a PIP outside [0, 1] is an error. SuSiE variants are
   retained when in a 95 % credible set (``cs >= 0``) or with ``pip > pip_threshold``
   (0.01); gene-tissue pairs are significant when ``TWAS.P < twas_p_threshold`` (4.7e-6).
2. **look up** (``allele-lookup``): the retained rsIDs -> hg38 alleles (myvariant.info or a
   dbSNP VCF), after streaming the GWAS file for those rsIDs (``twas-read-gwas``).
3. **harmonize** (``allele-harmonize``, ``twas-orient-gwas``): GWAS z oriented to the ALT
   allele through the declared effect allele (multi-allelic ALT picked by the alleles,
   strand flips undone, palindromic sites dropped or resolved by frequency, REF checked
   on the FASTA; alleles matching neither REF nor ALT are counted drops).
4. **triplets** (``twas-build-triplets``): (variant, gene, tissue) for the retained
   variants of significant pairs, with PIP, CS, z_ALT, TWAS.Z.
5. **score** (``score-chunk`` tasks): each distinct variant once with every scorer
   (RNA_SEQ gene-mask, ATAC / DNASE / CAGE centre-mask), or a precomputed table;
   ``twas-attach-scores`` picks the gene's RNA_SEQ score on the tissue's GTEx track and
   the centre-mask scores on the tissue's ontology terms (raw scores by default).
6. **Q1-Q4** (``twas-q1-...`` to ``twas-q4-...``): sign concordance with the one-sided
   binomial and the within-gene permutation P (primary, P22), heart vs non-heart;
   credible-set enrichment; tissue specificity; the synthetic-TWAS gene score with its
   within-gene permutation null (P21).
7. **plots** (``twas-plots``) and **report** (``publish-report``): ``report.html``,
   ``metrics.json`` (keys: ``docs/metrics-twas.md``), tables, ``dropped.parquet``.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from prefect import flow, get_run_logger

from agval.config import BackendConfig, LookupConfig
from agval.twas.analysis import QuestionSeeds
from agval.twas.pipeline import build_report, figure_pairs, loci_frame, loci_rows, read_predictions, \
    score_failure_drops
from agval.twas.study import TWASStudy, study_inputs
from agval.twas.triplets import variants_to_score
from flows._common import (RESULT_STORAGE, PredictionSession, keep, lookup_session, prediction_session, run_name,
                           start_run)
from flows.runners import task_runner_from_env
from tasks import twas as T
from tasks.alleles import harmonize_alleles, lookup_alleles
from tasks.report import publish_report
from tasks.scoring import score_variants

__all__ = ["STUDY_MODEL", "FLOW", "twas_concordance", "TWASStudy"]

STUDY_MODEL = TWASStudy
#: variants scored per batch before their score rows are reduced to the triplets' values
SCORE_BATCH = 1000


@flow(name="twas-concordance", flow_run_name=run_name("twas"),
      log_prints=True, persist_result=True, result_storage=RESULT_STORAGE,
      task_runner=task_runner_from_env())
def twas_concordance(study: TWASStudy, backend: BackendConfig = BackendConfig(),
                     lookup: LookupConfig = LookupConfig()) -> dict[str, Any]:
    """AlphaGenome vs TWAS / fine-mapping, Q1-Q4 (the methods are the module docstring).

    Args:
        study: the ``[study]`` section (:class:`agval.twas.study.TWASStudy`).
        backend: the scoring backend (unused with ``study.predictions``).
        lookup: the allele source for the retained rsIDs.

    Returns:
        ``run_folder``, ``simulated``, ``metrics`` (``docs/metrics-twas.md``), ``headline``.

    Raises:
        InputError: an input is missing or malformed, or nothing is left to analyse.
        ConfigError: the backend or lookup configuration is incomplete.
    """
    log = get_run_logger()
    key = f"twas-{study.name}"
    with prediction_session(backend, study.predictions, study.predictions_simulated) as s:
        params = {k: v.model_dump(mode="json") for k, v in (("study", study), ("backend", backend),
                                                              ("lookup", lookup))}
        rec = start_run(study.name, "twas-concordance", params, simulated=s.simulated, seed=study.seed,
                        inputs=study_inputs(study))
        with rec:
            if s.provenance is not None:
                rec.note("predictions_provenance", s.provenance)
            if s.model is not None:
                rec.set_backend(s.model.describe())
            rec.note("seeds", QuestionSeeds(study.seed).to_dict())
            # 1. load
            ld = keep(rec, T.load_inputs(study, key=key))
            rec.note("tissue_map", ld.tissue_map_note())
            log.info("%d significant gene-tissue pairs, %d retained SuSiE rows, %d rsIDs",
                     ld.pairs.height, ld.retained.height, len(ld.rsids))
            # 2. look up (the named loci's SuSiE variants too: their hg38 positions draw the PIP figure)
            gwas_rows = keep(rec, T.read_gwas(study, ld.rsids))
            loci = loci_rows(study, ld)
            with lookup_session(lookup, backend, s.simulated) as (source, _described):
                wanted = set(gwas_rows["rsid"].to_list()) | set(loci["rsid"].drop_nulls().to_list())
                lk = lookup_alleles(sorted(wanted), source, simulated=s.simulated, key=key)
            rec.note("allele_lookup", lk.summary())
            # 3. harmonize
            harm = keep(rec, harmonize_alleles(
                gwas_rows.select("row_id", "rsid", "z", "effect_allele", "other_allele", "eaf"), lk.table,
                study.reference_fasta, convention="column:effect_allele", beta_col="z",
                other_allele_col="other_allele", palindromic=lookup.palindromic,
                eaf_col="eaf" if lookup.palindromic == "af" else None, key=key, source_file=study.gwas))
            oriented = keep(rec, T.orient_gwas(harm.table, source_file=study.gwas))
            rec.note("harmonization", {"convention": harm.convention, "funnel": harm.funnel.to_dicts(),
                                       "reasons": harm.reasons().to_dicts()})
            # 4. triplets, 5. score
            trip = keep(rec, T.build_triplets(ld, oriented, key=key))
            scored = _score(study, backend, s, ld, trip.table, rec, key)
            eqtl = keep(rec, T.load_eqtl(study.eqtl, tissues=ld.tissues)) if study.eqtl else None
            scored = T.attach_eqtl(scored, eqtl)
            if study.twas_weights:  # Q1 against the leave-one-variant-out TWAS.Z too
                scored = keep(rec, T.attach_loo(scored, study, tissues=ld.tissues))
            rec.note("tracks_used", scored.tracks.to_dicts())
            # 6. Q1-Q4, 7. plots and report
            q = T.questions(scored.long, study, key=key)
            figs, fig_warnings = T.plots(
                rec.plots_dir, triplets=scored.long, pairs=figure_pairs(ld.pairs), q1=q.q1, q2=q.q2, q3=q.q3,
                q4=q.q4, heart_tissues=study.heart_tissues, loci=study.loci, scatter_tissues=study.scatter_tissues,
                null_cell=tuple(study.null_cell), loci_frame=loci_frame(loci, lk.table)) if study.plots else ([], [])
            out = build_report(study, palindromic=lookup.palindromic, loaded=ld, gwas_rows=gwas_rows.height,
                               oriented=oriented, triplets=trip, scored=scored, questions=q,
                               funnel=rec.drops.funnel(), simulated=s.simulated, figure_warnings=fig_warnings)
            for name, df in out.tables.items():
                rec.write_table(name, df)
            publish_report(rec, kind="twas", title=f"TWAS concordance: {study.name}", key=key, metrics=out.metrics,
                           figures=figs, tables=out.report_tables, sections=out.sections, warnings=out.warnings,
                           summary_md=out.summary_md)
            log.info(out.headline["summary"])
    return {"run_folder": str(rec.folder), "simulated": s.simulated, "metrics": out.metrics,
            "headline": out.headline}


def _score(study: TWASStudy, backend: BackendConfig, s: PredictionSession, ld, trip: pl.DataFrame, rec,
           key: str):
    """Step 5: every distinct variant scored once (in batches of :data:`SCORE_BATCH`, each
    reduced at once to the triplets' values: a large study never holds every score row), or
    the precomputed table; failed variants are dropped per SuSiE row."""
    red = {"tissue_map": ld.tissue_map, "tissues": ld.tissues, "assays": study.assays,
           "score_column": study.score_column}
    parts, failures, variants = [], 0, variants_to_score(trip)
    if study.predictions:
        scores = read_predictions(study.predictions)
        rec.note("predictions", {"table": study.predictions, "rows": scores.height})
        parts.append(T.reduce_scores(scores, **red))
    else:
        summaries = []
        for b, start in enumerate(range(0, variants.height, SCORE_BATCH)):
            run = score_variants(variants.slice(start, SCORE_BATCH), list(study.assays), backend=s.spec,
                                 chunk_size=backend.chunk_size, concurrency=backend.max_workers,
                                 artifact_key=f"{key}-scoring-{b}")
            if b == 0:
                rec.set_backend(run.backend)
                rec.set_model(run.model)
            summaries.append(run.summary)
            if variants.height <= SCORE_BATCH:
                run.record(rec)  # small study: the full score table is kept too
            if run.failures.height:
                failures += run.failures.height
                if variants.height > SCORE_BATCH:
                    rec.write_table(f"scores_failures_{b}", run.failures)
                rec.drops.add_frame(score_failure_drops(trip, ld.susie, run.failures), stage="score",
                                    reason="score_failed")
            parts.append(T.reduce_scores(run.scores, **red))
            del run
        rec.note("scoring_batches", summaries)
    return T.attach_scores(trip, parts, tissues=ld.tissues, assays=study.assays, failures=failures, key=key)


FLOW = twas_concordance
