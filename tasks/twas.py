"""Prefect tasks of the TWAS concordance flow: thin wrappers over :mod:`agval.twas` (one named
task per methods step; artifacts for what a reader checks first).

Tasks return their results, rows dropped included (never writing into a caller's log), so
any of them can run on a Dask worker process. Allele lookup and harmonization use
:mod:`tasks.alleles`; scoring :func:`tasks.scoring.score_variants`; the report
:func:`tasks.report.publish_report`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import polars as pl
from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from agval import progress
from agval.drops import DropLog, Dropped
from agval.io.twas import TissueMap
from agval.twas import analysis, figures, gwas, inputs, pipeline, triplets
from agval.twas.pipeline import LoadedInputs, Questions, ScoredTriplets, Triplets
from agval.twas.study import TWASStudy
from tasks.alleles import artifact_key


@task(name="twas-load-inputs", cache_policy=NO_CACHE)
def load_inputs(study: TWASStudy, *, key: str) -> LoadedInputs:
    """SuSiE + FUSION files, the tissue map and its check, retention and significance
    (:func:`agval.twas.pipeline.load_study_inputs`)."""
    ld = pipeline.load_study_inputs(study)
    create_table_artifact(key=artifact_key(key, "inputs"), table=[{"item": k, "n": v} for k, v in ld.counts.items()],
                          description="TWAS study inputs: SuSiE rows retained (cs >= 0 or pip > threshold), "
                                      "FUSION rows and significant pairs")
    return ld


@task(name="twas-read-gwas", cache_policy=NO_CACHE)
def read_gwas(study: TWASStudy, rsids: list[str]) -> Dropped[pl.DataFrame]:
    """The GWAS rows of the retained SuSiE rsIDs, streamed from the (gzip) file.

    Raises:
        InputError: none of the rsIDs has a usable GWAS row."""
    from agval.errors import InputError

    drops = DropLog()
    rows = gwas.read_gwas_for(study.gwas, rsids, build=study.gwas_build, columns=study.gwas_columns,
                              strict=study.gwas_strict, drops=drops)
    if rows.height == 0:
        raise InputError(f"none of the {len(rsids)} retained SuSiE rsIDs (e.g. {rsids[:3]}) has a usable "
                         "row in the GWAS file", file=study.gwas)
    return Dropped(rows, drops)


@task(name="twas-orient-gwas", cache_policy=NO_CACHE)
def orient_gwas(harmonized: pl.DataFrame, *, source_file: str) -> Dropped[pl.DataFrame]:
    """One ALT-oriented GWAS z per rsID (ambiguous multi-ALT rsIDs dropped and counted)."""
    drops = DropLog()
    return Dropped(gwas.one_row_per_rsid(harmonized, drops=drops, source_file=source_file), drops)


@task(name="twas-build-triplets", cache_policy=NO_CACHE)
def build_triplets(loaded: LoadedInputs, oriented: pl.DataFrame, *, key: str) -> Triplets:
    """(variant, gene, tissue) triplets of the significant pairs (:func:`agval.twas.pipeline.triplets_of`)."""
    trip = pipeline.triplets_of(loaded, oriented)
    create_table_artifact(key=artifact_key(key, "triplets"),
                          table=[{"item": k, "n": v} for k, v in trip.counts.items()],
                          description="(variant, gene, tissue) triplets of TWAS-significant pairs")
    return trip


@task(name="twas-reduce-scores", cache_policy=NO_CACHE)
def reduce_scores(scores: pl.DataFrame, *, tissue_map: TissueMap, tissues: Sequence[str], assays: Sequence[str],
                  score_column: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A (batch of the) long score table -> per (variant, [gene,] tissue, assay) values on the
    tissue's tracks, and the tracks used (so a large run never holds every score row)."""
    return triplets.assay_scores(scores, tissue_map, tissues, assays, score_column=score_column)


@task(name="twas-attach-scores", cache_policy=NO_CACHE)
def attach_scores(trip: pl.DataFrame, parts: list[tuple[pl.DataFrame, pl.DataFrame]], *, tissues: Sequence[str],
                  assays: Sequence[str], failures: int, key: str) -> ScoredTriplets:
    """The long triplet table (one row per triplet x assay) + the tracks-per-tissue table, from
    the reduced score batches ``parts`` (``[(values, tracks)]``)."""
    values = pl.concat([p[0] for p in parts])
    tracks = pl.concat([p[1] for p in parts]).unique().sort("tissue", "assay", "track_name", nulls_last=True)
    long = triplets.attach_scores(trip, values, assays)
    cov = triplets.track_coverage(tracks, tissues, assays)
    create_table_artifact(key=artifact_key(key, "track-coverage"), table=cov.to_dicts(),
                          description="AlphaGenome tracks per tissue x assay (0 = no tracks: no score)")
    return ScoredTriplets(long=long, tracks=tracks, coverage=cov, failures=failures)


@task(name="twas-q1-sign-concordance", cache_policy=NO_CACHE)
def q1(long: pl.DataFrame, *, n_permutations: int, seed: int, heart_tissues: Sequence[str] | None,
       twas_p_threshold: float | None, key: str) -> dict[str, Any]:
    progress.emit("statistics")
    res = analysis.run_q1(long, n_permutations=n_permutations, seed=seed, heart_tissues=heart_tissues,
                          twas_p_threshold=twas_p_threshold)
    create_table_artifact(key=artifact_key(key, "q1"), table=res["table"].filter(pl.col("pooled")).to_dicts(),
                          description="Q1 pooled sign concordance per assay (perm_p = within-gene permutation, "
                                      "primary; binom_p_greater = the seed's one-sided binomial)")
    return res


@task(name="twas-q2-credible-set-enrichment", cache_policy=NO_CACHE)
def q2(long: pl.DataFrame, *, twas_p_threshold: float | None) -> pl.DataFrame:
    return analysis.run_q2(long, twas_p_threshold=twas_p_threshold)


@task(name="twas-q3-tissue-specificity", cache_policy=NO_CACHE)
def q3(long: pl.DataFrame, *, twas_p_threshold: float | None, min_tissues: int, min_tissues_kendall: int,
       deviation: str) -> dict[str, pl.DataFrame]:
    return analysis.run_q3(long, twas_p_threshold=twas_p_threshold, min_tissues=min_tissues,
                           min_tissues_kendall=min_tissues_kendall, deviation=deviation)


@task(name="twas-q4-synthetic-twas", cache_policy=NO_CACHE)
def q4(long: pl.DataFrame, *, n_permutations: int, seed: int, twas_p_threshold: float | None,
       min_genes: int) -> dict[str, Any]:
    return analysis.run_q4(long, n_permutations=n_permutations, seed=seed, twas_p_threshold=twas_p_threshold,
                           min_genes=min_genes)


@task(name="twas-corrected-statistics", cache_policy=NO_CACHE)
def corrected(long: pl.DataFrame, *, n_permutations: int, n_boot: int, seed: int,
              heart_tissues: Sequence[str] | None, twas_p_threshold: float | None, min_tissues: int,
              min_tissues_kendall: int, deviation: str, min_genes: int, key: str) -> dict[str, Any]:
    """Q1-Q4 in corrected mode (locus permutations, locus bootstrap, BH; P30-P32)."""
    res = analysis.run_corrected(long, n_permutations=n_permutations, n_boot=n_boot, seed=seed,
                                 heart_tissues=heart_tissues, twas_p_threshold=twas_p_threshold,
                                 min_tissues=min_tissues, min_tissues_kendall=min_tissues_kendall,
                                 deviation=deviation, min_genes=min_genes)
    tab = res["q1_eqtl"]["table"] if res["q1_eqtl"] is not None else res["q1_twas"]["table"]
    create_table_artifact(key=artifact_key(key, "q1-corrected"), table=tab.filter(pl.col("pooled")).to_dicts(),
                          description="Q1 corrected (pooled): locus-permutation P and locus-bootstrap interval")
    return res


def questions(long: pl.DataFrame, study: TWASStudy, *, key: str) -> Questions:
    """Q1-Q4 and the corrected mode, one named task each, with the study's seeds."""
    seeds, thr = analysis.QuestionSeeds(study.seed), study.twas_p_threshold
    r1 = q1(long, n_permutations=study.n_permutations, seed=seeds.q1, heart_tissues=study.heart_tissues,
            twas_p_threshold=thr, key=key)
    r2 = q2(long, twas_p_threshold=thr)
    r3 = q3(long, twas_p_threshold=thr, min_tissues=study.q3_min_tissues,
            min_tissues_kendall=study.q3_min_tissues_kendall, deviation=study.q3_deviation)
    r4 = q4(long, n_permutations=study.n_permutations, seed=seeds.q4, twas_p_threshold=thr,
            min_genes=study.q4_min_genes)
    rc = corrected(long, n_permutations=study.n_permutations, n_boot=study.n_boot, seed=seeds.corrected,
                   heart_tissues=study.heart_tissues, twas_p_threshold=thr,
                   min_tissues=study.q3_min_tissues, min_tissues_kendall=study.q3_min_tissues_kendall,
                   deviation=study.q3_deviation, min_genes=study.q4_min_genes, key=key)
    return Questions(r1, r2, r3, r4, rc)


@task(name="twas-plots", cache_policy=NO_CACHE)
def plots(out_dir: str | Path, **kw: Any):
    """Every §2.8 figure the data allows: ``(figures, warnings)``."""
    return figures.make_figures(out_dir, **kw)


@task(name="twas-load-eqtl", cache_policy=NO_CACHE)
def load_eqtl(spec: str | list[str], *, tissues: Sequence[str]) -> Dropped[pl.DataFrame]:
    """GTEx signif-pairs files -> ``variant_key, gene_id, tissue, eqtl_slope`` (ALT slope)."""
    drops = DropLog()
    return Dropped(inputs.load_eqtl_slopes(spec, tissues=tissues, drops=drops), drops)


@task(name="twas-attach-loo", cache_policy=NO_CACHE)
def attach_loo(scored: ScoredTriplets, study: TWASStudy, *, tissues: Sequence[str]) -> Dropped[ScoredTriplets]:
    """The long triplet table with ``twas_z_loo``: the leave-one-variant-out TWAS.Z from the
    models' weights, the GWAS rows of their SNPs and the LD reference
    (:func:`agval.twas.pipeline.leave_one_out`)."""
    drops = DropLog()
    return Dropped(pipeline.leave_one_out(scored, study, tissues=tissues, drops=drops), drops)


@task(name="twas-attach-eqtl", cache_policy=NO_CACHE)
def attach_eqtl(scored: ScoredTriplets, eqtl: pl.DataFrame | None) -> ScoredTriplets:
    """The long triplet table with the variant-gene-tissue's marginal eQTL slope (ALT)."""
    from dataclasses import replace

    return replace(scored, long=inputs.attach_eqtl(scored.long, eqtl))
