"""Prefect tasks of the TWAS concordance flow: thin wrappers over :mod:`agval.twas` (one named
task per methods step; artifacts for what a reader checks first).

Allele lookup and harmonization use :mod:`tasks.alleles`; scoring uses
:func:`tasks.scoring.score_variants`; the report :func:`tasks.report.publish_report`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import polars as pl
from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from agval import progress
from agval.drops import DropLog
from agval.io.twas import TissueMap
from agval.twas import analysis, figures, gwas, inputs, triplets
from tasks.alleles import artifact_key


@task(name="twas-load-inputs", cache_policy=NO_CACHE)
def load_inputs(susie: str | list[str], twas: str | list[str], *, tissue_map: str | None,
                unmapped_tissues: str, tissues: Sequence[str] | None, pip_threshold: float,
                keep_credible_sets: bool, twas_p_threshold: float, drops: DropLog, key: str) -> dict[str, Any]:
    """SuSiE + FUSION files, the tissue map and its check, retention and significance."""
    tmap: TissueMap = inputs.resolve_tissue_map(tissue_map)
    sus = inputs.load_susie_files(susie, drops=drops)
    tw = inputs.load_twas_files(twas, drops=drops)
    if tissues:
        sus = sus.filter(pl.col("tissue").is_in(list(tissues)))
        tw = tw.filter(pl.col("tissue").is_in(list(tissues)))
    checked = inputs.check_tissues({"susie": sus, "twas": tw}, tmap, policy=unmapped_tissues, drops=drops)
    sus, tw = checked["susie"], checked["twas"]
    tw = inputs.dedupe_twas_pairs(tw, drops=drops)
    retained = inputs.retain_susie(sus, pip_threshold=pip_threshold, keep_credible_sets=keep_credible_sets)
    pairs = inputs.significant_pairs(tw, twas_p_threshold)
    retained_sig = retained.join(pairs.select("gene_id", "tissue"), on=["gene_id", "tissue"], how="semi")
    counts = {"susie_files": int(sus["source_file"].n_unique()), "susie_rows": sus.height,
              "susie_rows_retained": retained.height, "twas_rows": tw.height,
              "twas_significant_pairs": pairs.height,
              "twas_significant_pairs_without_susie": pairs.join(sus.select("gene_id", "tissue").unique(),
                                                                 on=["gene_id", "tissue"], how="anti").height}
    create_table_artifact(key=artifact_key(key, "inputs"), table=[{"item": k, "n": v} for k, v in counts.items()],
                          description="TWAS study inputs: SuSiE rows retained (cs >= 0 or pip > threshold), "
                                      "FUSION rows and significant pairs")
    return {"tissue_map": tmap, "susie": sus, "twas": tw, "retained": retained_sig, "pairs": pairs,
            "counts": counts, "tissues": sorted(set(tw["tissue"].unique().to_list()))}


@task(name="twas-read-gwas", cache_policy=NO_CACHE)
def read_gwas(path: str, rsids: list[str], *, build: str, columns: dict[str, str] | None, strict: bool,
              drops: DropLog) -> pl.DataFrame:
    """The GWAS rows of the retained SuSiE rsIDs, streamed from the (gzip) file."""
    return gwas.read_gwas_for(path, rsids, build=build, columns=columns, strict=strict, drops=drops)


@task(name="twas-orient-gwas", cache_policy=NO_CACHE)
def orient_gwas(harmonized: pl.DataFrame, *, drops: DropLog, source_file: str) -> pl.DataFrame:
    """One ALT-oriented GWAS z per rsID (ambiguous multi-ALT rsIDs dropped and counted)."""
    return gwas.one_row_per_rsid(harmonized, drops=drops, source_file=source_file)


@task(name="twas-build-triplets", cache_policy=NO_CACHE)
def build_triplets(retained: pl.DataFrame, pairs: pl.DataFrame, oriented: pl.DataFrame, *,
                   drops: DropLog, key: str) -> tuple[pl.DataFrame, dict[str, int]]:
    trip, counts = triplets.build_triplets(retained, pairs, oriented, drops=drops)
    create_table_artifact(key=artifact_key(key, "triplets"), table=[{"item": k, "n": v} for k, v in counts.items()],
                          description="(variant, gene, tissue) triplets of TWAS-significant pairs")
    return trip, counts


@task(name="twas-reduce-scores", cache_policy=NO_CACHE)
def reduce_scores(scores: pl.DataFrame, *, tissue_map: TissueMap, tissues: Sequence[str], assays: Sequence[str],
                  score_column: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A (batch of the) long score table -> per (variant, [gene,] tissue, assay) values on the
    tissue's tracks, and the tracks used (so a large run never holds every score row)."""
    return triplets.assay_scores(scores, tissue_map, tissues, assays, score_column=score_column)


@task(name="twas-attach-scores", cache_policy=NO_CACHE)
def attach_scores(trip: pl.DataFrame, values: pl.DataFrame, tracks: pl.DataFrame, *, tissues: Sequence[str],
                  assays: Sequence[str], key: str) -> dict[str, pl.DataFrame]:
    """The long triplet table (one row per triplet x assay) + the tracks-per-tissue table."""
    long = triplets.attach_scores(trip, values, assays)
    cov = triplets.track_coverage(tracks, tissues, assays)
    create_table_artifact(key=artifact_key(key, "track-coverage"), table=cov.to_dicts(),
                          description="AlphaGenome tracks per tissue x assay (0 = no tracks: no score)")
    return {"long": long, "tracks": tracks, "coverage": cov}


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


@task(name="twas-plots", cache_policy=NO_CACHE)
def plots(out_dir: str | Path, **kw: Any):
    """Every §2.8 figure the data allows: ``(figures, warnings)``."""
    return figures.make_figures(out_dir, **kw)


@task(name="twas-load-eqtl", cache_policy=NO_CACHE)
def load_eqtl(spec: str | list[str], *, tissues: Sequence[str], drops: DropLog) -> pl.DataFrame:
    """GTEx signif-pairs files -> ``variant_key, gene_id, tissue, eqtl_slope`` (ALT slope)."""
    return inputs.load_eqtl_slopes(spec, tissues=tissues, drops=drops)


@task(name="twas-attach-eqtl", cache_policy=NO_CACHE)
def attach_eqtl(long: pl.DataFrame, eqtl: pl.DataFrame | None) -> pl.DataFrame:
    return inputs.attach_eqtl(long, eqtl)


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
