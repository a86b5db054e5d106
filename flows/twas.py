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

import contextlib
from pathlib import Path
from typing import Any, Literal

import polars as pl
from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field, field_validator

from agval.config import BackendConfig, LookupConfig
from agval.errors import InputError
from agval.genes import strip_gene_version_expr
from agval.twas.analysis import MEDIATION_NOTE
from agval.twas.figures import DEFAULT_LOCI, DEFAULT_SCATTER_TISSUES
from agval.twas.inputs import DEFAULT_PIP_THRESHOLD, expand_paths
from agval.twas.triplets import assay_label, output_type_of, variants_to_score
from flows._common import RESULT_STORAGE, backend_session, lookup_session, run_name, start_run
from flows.runners import task_runner_from_env

DEFAULT_TWAS_P = 4.7e-6
#: variants scored per batch before their score rows are reduced to the triplets' values
SCORE_BATCH = 1000
SELF_INCLUSION_NOTE = (
    "Q1 reads sign(z_ALT * TWAS.Z) as the mediation-predicted direction, but TWAS.Z = w'z / sqrt(w'Rw) "
    "contains the variant's own eQTL weight times its own z: for a variant that dominates the weights, "
    "sign(z_ALT * TWAS.Z) follows the sign of its eQTL effect even without mediation. A model that predicts "
    "eQTL directions then 'concords' in a world without mediation, and the within-gene permutation (which "
    "breaks the score-weight link) does not remove it. Read Q1 as agreement with the TWAS-weighted eQTL "
    "direction, not as evidence of mediation.")


class TWASStudy(BaseModel):
    """The ``[study]`` section of a TWAS study file (paths relative to the file)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("twas", description="study name (run folder and report title)")
    # -- inputs
    gwas: str = Field(..., description="GWAS summary statistics (GWAS-SSF or common layouts; plain or gzip)")
    gwas_build: str = Field("hg38", description="build of the GWAS positions (rsIDs are looked up on hg38)")
    gwas_columns: dict[str, str] | None = Field(None, description="header overrides, e.g. {z = 'Zscore'}")
    gwas_strict: bool = Field(True, description="a malformed number in the GWAS is an error (else a counted drop)")
    susie: str | list[str] = Field(..., description="SuSiE files: a file, a folder, a glob, or a list")
    twas: str | list[str] = Field(..., description="FUSION .dat files: a file, a folder, a glob, or a list")
    tissue_map: str | None = Field(None, description="tissue -> ontology override (TOML or CSV) on the defaults")
    unmapped_tissues: Literal["error", "drop"] = Field("error", description="tissues missing from the map")
    tissues: list[str] | None = Field(None, description="only these tissues (default: every tissue of the TWAS)")
    reference_fasta: str = Field(..., description="hg38 FASTA (REF check of every harmonized variant)")
    # -- triplets and scores
    assays: list[str] = Field(default_factory=lambda: ["RNA_SEQ", "ATAC", "DNASE", "CAGE"])
    pip_threshold: float = Field(DEFAULT_PIP_THRESHOLD, ge=0, le=1, description="retain pip > this (or cs >= 0)")
    keep_credible_sets: bool = Field(True, description="retain every 95 % credible-set member (cs >= 0)")
    twas_p_threshold: float = Field(DEFAULT_TWAS_P, gt=0, le=1, description="significant pairs: TWAS.P < this")
    score_column: Literal["raw_score", "quantile_score"] = Field(
        "raw_score", description="raw scores (default; the seed's scale) or per-track quantiles")
    predictions: str | None = Field(None, description="precomputed long score table (tidy_scores-like); "
                                                      "no model is called")
    predictions_simulated: bool = Field(False, description="the predictions table came from a stand-in")
    eqtl: str | list[str] | None = Field(
        None, description="GTEx v8 <Tissue>.v8.signif_variant_gene_pairs files (file, folder, glob or list): the "
                          "marginal eQTL slopes (ALT) of Q1's primary estimand; without them only the seed's Q1")
    # -- statistics
    n_permutations: int = Field(1000, ge=0, description="permutations (Q1-Q4, original and corrected mode)")
    n_boot: int = Field(1000, ge=0, description="locus-bootstrap replicates (intervals, corrected mode)")
    primary_cell: str = Field("Heart_Atrial_Appendage/DNASE",
                              description="pre-specified 'tissue/assay' cell, reported apart and unadjusted")
    seed: int = 0
    published: str | None = Field(
        None, description="published reference set shown beside the run (agval.published): a set id, 'none', "
                          "or unset for the AF TWAS write-up's numbers")
    heart_tissues: list[str] = Field(default_factory=lambda: ["Heart_Atrial_Appendage", "Heart_Left_Ventricle"])
    q3_min_tissues: int = Field(2, ge=2)
    q3_min_tissues_kendall: int = Field(3, ge=2)
    q3_deviation: Literal["mean_abs", "sd", "max_abs"] = "mean_abs"
    q4_min_genes: int = Field(3, ge=3)
    # -- figures
    loci: list[str] = Field(default_factory=lambda: list(DEFAULT_LOCI), description="PIP 'Manhattan' genes")
    scatter_tissues: list[str] = Field(default_factory=lambda: list(DEFAULT_SCATTER_TISSUES))
    null_cell: list[str] = Field(default_factory=lambda: ["Heart_Atrial_Appendage", "DNASE"],
                                 description="[tissue, assay] whose permutation null is drawn")
    plots: bool = True

    @field_validator("assays")
    @classmethod
    def _assays(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one assay")
        return list(dict.fromkeys(output_type_of(a) for a in v))

    @field_validator("primary_cell")
    @classmethod
    def _primary_cell(cls, v: str) -> str:
        from agval.twas.analysis import parse_primary_cell

        t, a = parse_primary_cell(v)
        return f"{t}/{a}"

    @field_validator("published")
    @classmethod
    def _published_set(cls, v: str | None) -> str | None:
        from agval.published import checked_set_field

        return checked_set_field(v)

    @field_validator("null_cell")
    @classmethod
    def _null_cell(cls, v: list[str]) -> list[str]:
        if len(v) != 2:
            raise ValueError("null_cell is [tissue, assay]")
        return [v[0], assay_label(v[1])]


STUDY_MODEL = TWASStudy


def _read_predictions(path: str) -> pl.DataFrame:
    """A precomputed long score table: ``variant_key`` (or tidy_scores' ``variant_id``
    ``chr1:123:A>G``), ``output_type``, ``gene_id``, ``ontology_curie``, ``gtex_tissue``,
    ``track_name``, ``raw_score`` (and/or ``quantile_score``)."""
    p = Path(path)
    if not p.is_file():
        raise InputError("predictions table not found", file=p)
    if p.suffix == ".parquet":
        df = pl.read_parquet(p)
    else:
        from agval.io._common import read_text_table

        df = read_text_table(p)
        for c in ("raw_score", "quantile_score"):
            if c in df.columns:
                df = df.with_columns(pl.col(c).cast(pl.Float64, strict=False))
    if "variant_key" not in df.columns:
        if "variant_id" not in df.columns:
            from agval.errors import MissingColumnError

            raise MissingColumnError("variant_key", file=p, available=df.columns)
        from agval.coords import Variant

        df = df.with_columns(pl.col("variant_id").map_elements(lambda s: Variant.parse(s).key,
                                                               return_dtype=pl.Utf8).alias("variant_key"))
    for c in ("gene_id", "ontology_curie", "gtex_tissue", "track_name", "track_strand", "data_source"):
        if c not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=pl.Utf8).alias(c))
    return df.with_columns(strip_gene_version_expr(pl.col("gene_id")))


def _loci_frame(rows: pl.DataFrame, lookup_table: pl.DataFrame) -> pl.DataFrame:
    """SuSiE rows of the named loci with their hg38 position from the allele lookup (first hit),
    maximum PIP over tissues: ``gene_name, rsid, pos, pip, cs``."""
    pos = (lookup_table.filter(pl.col("status").is_in(["ok", "merged"]) & pl.col("pos").is_not_null())
           .group_by("query", maintain_order=True).agg(pl.col("pos").first()).rename({"query": "rsid"}))
    return (rows.join(pos, on="rsid", how="inner")
            .group_by("gene_name", "rsid").agg(pl.col("pos").first(), pl.col("pip").max(), pl.col("cs").max())
            .sort("gene_name", "pos"))


@flow(name="twas-concordance", flow_run_name=run_name("twas"),
      log_prints=True, persist_result=True, result_storage=RESULT_STORAGE,
      task_runner=task_runner_from_env())
def twas_concordance(study: TWASStudy, backend: BackendConfig = BackendConfig(),
                     lookup: LookupConfig = LookupConfig()) -> dict[str, Any]:
    """AlphaGenome vs TWAS / fine-mapping, Q1-Q4 (see the module docstring)."""
    from agval.report import df_to_markdown
    from agval.twas import analysis
    from tasks import twas as T
    from tasks.alleles import harmonize_alleles, lookup_alleles
    from tasks.report import publish_report
    from tasks.scoring import score_variants

    log = get_run_logger()
    key = f"twas-{study.name}"
    labels = [assay_label(a) for a in study.assays]
    seeds = analysis.QuestionSeeds(study.seed)
    session = contextlib.nullcontext((None, None)) if study.predictions else backend_session(backend)
    with session as (model, spec):
        from agval.scoring.precomputed import table_provenance  # provenance from the table itself

        provenance = table_provenance(study.predictions) if study.predictions and model is None else None
        simulated = (bool(study.predictions_simulated) or (provenance or {}).get("provenance") == "simulated"
                     if model is None else bool(model.simulated))
        inputs: dict[str, Any] = {"gwas": study.gwas, "reference_fasta": study.reference_fasta,
                                  "tissue_map": study.tissue_map, "predictions": study.predictions}
        if study.eqtl:
            for i, f in enumerate(expand_paths(study.eqtl, what="eQTL")):
                inputs[f"eqtl:{i}"] = f
        for role, spec_paths in (("susie", study.susie), ("twas", study.twas)):
            for i, f in enumerate(expand_paths(spec_paths, what=role)):
                inputs[f"{role}:{i}"] = f
        rec = start_run(study.name, "twas-concordance",
                        {"study": study.model_dump(mode="json"), "backend": backend.model_dump(mode="json"),
                         "lookup": lookup.model_dump(mode="json")},
                        simulated=simulated, seed=study.seed, inputs=inputs)
        with rec:
            if provenance is not None:
                rec.note("predictions_provenance", provenance)
            if model is not None:
                rec.set_backend(model.describe())
            rec.note("seeds", seeds.to_dict())
            notes = [SELF_INCLUSION_NOTE, analysis.MEDIATION_NOTE]

            # 1. load -----------------------------------------------------------------
            ld = T.load_inputs(study.susie, study.twas, tissue_map=study.tissue_map,
                               unmapped_tissues=study.unmapped_tissues, tissues=study.tissues,
                               pip_threshold=study.pip_threshold, keep_credible_sets=study.keep_credible_sets,
                               twas_p_threshold=study.twas_p_threshold, drops=rec.drops, key=key)
            tmap = ld["tissue_map"]
            rec.note("tissue_map", {"source": tmap.source, "overridden": list(tmap.overridden),
                                    "map": tmap.to_dict()})
            tissues = ld["tissues"]
            rsids = ld["retained"]["rsid"].drop_nulls().unique().sort().to_list()
            log.info("%d significant gene-tissue pairs, %d retained SuSiE rows, %d rsIDs",
                     ld["pairs"].height, ld["retained"].height, len(rsids))
            if not rsids:
                raise InputError("no retained SuSiE variant (cs >= 0 or pip > "
                                 f"{study.pip_threshold}) in a TWAS-significant pair (TWAS.P < "
                                 f"{study.twas_p_threshold}); nothing to analyse")

            # 2. look up --------------------------------------------------------------
            gwas_rows = T.read_gwas(study.gwas, rsids, build=study.gwas_build, columns=study.gwas_columns,
                                    strict=study.gwas_strict, drops=rec.drops)
            if gwas_rows.height == 0:
                raise InputError(f"none of the {len(rsids)} retained SuSiE rsIDs (e.g. {rsids[:3]}) has a usable "
                                 "row in the GWAS file", file=study.gwas)
            # the named loci's SuSiE variants are looked up too: their hg38 positions draw the PIP figure
            loci_genes = ld["twas"].filter(pl.col("id").is_in(study.loci)).select(
                "gene_id", pl.col("id").alias("gene_name")).unique("gene_id")
            loci_rows = ld["susie"].join(loci_genes, on="gene_id", how="inner") if study.plots else ld["susie"].clear()
            to_look_up = set(gwas_rows["rsid"].to_list()) | set(loci_rows["rsid"].drop_nulls().to_list())
            with lookup_session(lookup, backend, simulated) as (source, _described):
                lk = lookup_alleles(sorted(to_look_up), source, simulated=simulated, key=key)
            rec.note("allele_lookup", lk.summary())

            # 3. harmonize ------------------------------------------------------------
            harm = harmonize_alleles(gwas_rows.select("row_id", "rsid", "z", "effect_allele", "other_allele", "eaf"),
                                     lk.table, study.reference_fasta, convention="column:effect_allele",
                                     beta_col="z", other_allele_col="other_allele", palindromic=lookup.palindromic,
                                     eaf_col="eaf" if lookup.palindromic == "af" else None, drops=rec.drops,
                                     key=key, source_file=study.gwas)
            oriented = T.orient_gwas(harm.table, drops=rec.drops, source_file=study.gwas)
            rec.note("harmonization", {"convention": harm.convention, "funnel": harm.funnel.to_dicts(),
                                       "reasons": harm.reasons().to_dicts()})

            # 4. triplets -------------------------------------------------------------
            trip, tcounts = T.build_triplets(ld["retained"], ld["pairs"], oriented, drops=rec.drops, key=key)
            if trip.height == 0:
                raise InputError("no (variant, gene, tissue) triplet left after harmonization; see dropped.parquet")
            variants = variants_to_score(trip)

            # 5. score ----------------------------------------------------------------
            red = {"tissue_map": tmap, "tissues": tissues, "assays": study.assays, "score_column": study.score_column}
            parts: list[tuple[pl.DataFrame, pl.DataFrame]] = []
            failures = 0
            if study.predictions:
                scores = _read_predictions(study.predictions)
                rec.note("predictions", {"table": study.predictions, "rows": scores.height})
                parts.append(T.reduce_scores(scores, **red))
            else:
                # batches of variants, each reduced at once to the triplets' values: a large
                # study never holds every (variant, gene, track) score row in memory
                summaries = []
                for b, start in enumerate(range(0, variants.height, SCORE_BATCH)):
                    run = score_variants(variants.slice(start, SCORE_BATCH), list(study.assays), backend=spec,
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
                        rec.drops.add_frame(run.failures.select(
                            pl.col("variant_key").alias("row_id"), pl.col("error_code").alias("reason"),
                            pl.format("{} ({} attempts): {}", pl.col("scorer"), pl.col("attempts"),
                                      pl.col("message")).alias("detail"), "error_code", "attempts"), stage="score")
                    parts.append(T.reduce_scores(run.scores, **red))
                    del run
                rec.note("scoring_batches", summaries)
            values = pl.concat([p[0] for p in parts])
            tracks = pl.concat([p[1] for p in parts]).unique().sort("tissue", "assay", "track_name", nulls_last=True)
            at = T.attach_scores(trip, values, tracks, tissues=tissues, assays=study.assays, key=key)
            long = at["long"]
            eqtl = T.load_eqtl(study.eqtl, tissues=tissues, drops=rec.drops) if study.eqtl else None
            long = T.attach_eqtl(long, eqtl)
            if eqtl is None:
                notes.append("No eQTL table ([study] eqtl): Q1's primary estimand (agreement with the marginal "
                             "eQTL effect) is not computed; only the seed's statistic is.")
            rec.note("tracks_used", at["tracks"].to_dicts())

            # 6. Q1-Q4 ----------------------------------------------------------------
            thr = study.twas_p_threshold
            r1 = T.q1(long, n_permutations=study.n_permutations, seed=seeds.q1, heart_tissues=study.heart_tissues,
                      twas_p_threshold=thr, key=key)
            r2 = T.q2(long, twas_p_threshold=thr)
            r3 = T.q3(long, twas_p_threshold=thr, min_tissues=study.q3_min_tissues,
                      min_tissues_kendall=study.q3_min_tissues_kendall, deviation=study.q3_deviation)
            r4 = T.q4(long, n_permutations=study.n_permutations, seed=seeds.q4, twas_p_threshold=thr,
                      min_genes=study.q4_min_genes)
            rc = T.corrected(long, n_permutations=study.n_permutations, n_boot=study.n_boot, seed=seeds.corrected,
                             heart_tissues=study.heart_tissues, twas_p_threshold=thr,
                             min_tissues=study.q3_min_tissues, min_tissues_kendall=study.q3_min_tissues_kendall,
                             deviation=study.q3_deviation, min_genes=study.q4_min_genes, key=key)

            # 7. plots, tables, report ---------------------------------------------------
            figs, fig_warnings = ([], [])
            if study.plots:
                figs, fig_warnings = T.plots(
                    rec.plots_dir, triplets=long, pairs=ld["pairs"].with_columns(
                        pl.when(pl.col("id").str.contains(r"^ENS[A-Z]*G\d+").fill_null(True))
                        .then(pl.col("gene_id")).otherwise(pl.col("id")).alias("gene_name")),
                    q1=r1, q2=r2, q3=r3, q4=r4, heart_tissues=study.heart_tissues, loci=study.loci,
                    scatter_tissues=study.scatter_tissues, null_cell=tuple(study.null_cell),
                    loci_frame=_loci_frame(loci_rows, lk.table))
            data = analysis.data_summary(
                trip, susie_rows=ld["counts"]["susie_rows"], retained_rows=ld["counts"]["susie_rows_retained"],
                twas_rows=ld["counts"]["twas_rows"], significant_pairs=ld["counts"]["twas_significant_pairs"],
                gwas_rows=gwas_rows.height, oriented_rsids=oriented.height, variants_scored=variants.height,
                score_failures=failures,
                counts={"twas_significant_pairs_without_susie":
                        ld["counts"]["twas_significant_pairs_without_susie"],
                        "susie_rows_in_significant_pairs": tcounts["susie_rows_in_significant_pairs"]})
            settings = {"assays": labels, "pip_threshold": study.pip_threshold,
                        "keep_credible_sets": study.keep_credible_sets, "twas_p_threshold": thr,
                        "score_column": study.score_column, "n_permutations": study.n_permutations,
                        "n_boot": study.n_boot, "primary_cell": study.primary_cell, "eqtl": bool(study.eqtl),
                        "seeds": seeds.to_dict(), "heart_tissues": study.heart_tissues,
                        "q3_deviation": study.q3_deviation, "q3_min_tissues": study.q3_min_tissues,
                        "q3_min_tissues_kendall": study.q3_min_tissues_kendall,
                        "gwas_convention": "column:effect_allele", "palindromic": lookup.palindromic,
                        "tissue_map_source": tmap.source}
            metrics = analysis.build_metrics(data=data, q1=r1, q2=r2, q3=r3, q4=r4, settings=settings,
                                             coverage=at["coverage"], funnel=rec.drops.funnel(), assays=labels,
                                             notes=notes, corrected=rc, primary_cell=study.primary_cell)
            metrics["simulated"] = simulated
            published = _published(study, r1, r2, r3, r4, simulated)
            if published is not None:
                metrics["published"] = published
            tables_out = {
                "triplets": long, "twas_pairs": ld["pairs"], "oriented_gwas": oriented, "q1": r1["table"],
                "q1_heart_vs_nonheart": r1["heart_vs_nonheart"], "q1_null": r1["null"], "q2": r2,
                "q3_summary": r3["summary"], "q3_genes": r3["genes"], "q3_kendall": r3["kendall"],
                "gene_scores": r3["gene_scores"], "q4": r4["table"], "q4_null": r4["null"],
                "track_coverage": at["coverage"], "tracks_used": at["tracks"],
                "q1_twas_corrected": rc["q1_twas"]["table"],
                "q1_twas_corrected_heart_vs_nonheart": rc["q1_twas"]["heart_vs_nonheart"],
                "q2_corrected": rc["q2"], "q3_corrected": rc["q3"], "q4_corrected": rc["q4"]["table"],
            }
            if rc["q1_eqtl"] is not None:
                tables_out["q1_eqtl"] = rc["q1_eqtl"]["table"]
                tables_out["q1_eqtl_heart_vs_nonheart"] = rc["q1_eqtl"]["heart_vs_nonheart"]
            for name, df in tables_out.items():
                rec.write_table(name, df)
            head = metrics["headline"]
            sections = _sections(study, metrics, tmap.source)
            report_tables: dict[str, pl.DataFrame] = {}
            pc = metrics["primary_cell"]
            report_tables[f"Pre-specified cell {pc['cell']} (unadjusted)"] = _primary_cell_table(pc)
            if rc["q1_eqtl"] is not None:
                report_tables["Q1 primary: RNA score vs marginal eQTL effect (locus permutation P, locus-bootstrap "
                              "95% CI, BH q)"] = rc["q1_eqtl"]["table"].select(
                    "tissue", "n", "k", "accuracy", "ci_low", "ci_high", "perm_p", "bh_q", "n_loci")
            report_tables.update({
                "Q1 corrected: agreement with the TWAS-weighted eQTL direction (seed replication; locus "
                "permutation P, 95% CI, BH q)": rc["q1_twas"]["table"].select(
                    "assay", "tissue", "n", "accuracy", "ci_low", "ci_high", "perm_p", "bh_q", "n_loci"),
                "Q1 corrected heart vs non-heart (locus bootstrap)": rc["q1_twas"]["heart_vs_nonheart"],
                "Q2 corrected (one row per distinct score; locus permutation, 95% CI)": rc["q2"].select(
                    "assay", "n_scores", "n_rows", "fold", "fold_ci_low", "fold_ci_high", "auroc", "mwu_perm_p",
                    "spearman_rho", "spearman_perm_p", "n_loci"),
                "Q3 corrected (permutation null of rho and mean tau)": rc["q3"],
                "Q4 corrected (locus permutation, 95% CI, BH q)": rc["q4"]["table"].select(
                    "assay", "tissue", "n_genes", "spearman_rho", "rho_ci_low", "rho_ci_high", "perm_p_greater",
                    "null_mean", "bh_q"),
            })
            if published is not None:
                from agval.published import published_table, published_title

                report_tables[published_title(published)] = published_table(published)
            report_tables.update({
                "Original (seed) Q1 sign concordance (tissue x assay, pooled)": r1["table"].select(
                    "assay", "tissue", "n", "k", "accuracy", "accuracy_weighted", "binom_p_greater", "perm_p",
                    "perm_p_weighted"),
                "Original (seed) Q1 heart vs non-heart": r1["heart_vs_nonheart"],
                "Original (seed) Q2 credible-set enrichment": r2,
                "Original (seed) Q3 tissue specificity": r3["summary"],
                "Original (seed) Q4 synthetic TWAS (Spearman AG_G vs TWAS.Z per tissue)": r4["table"],
                "Tracks per tissue x assay": at["coverage"],
            })
            publish_report(rec, kind="twas", title=f"TWAS concordance: {study.name}", key=key, metrics=metrics, figures=figs,
                           tables=report_tables, sections=sections,
                           warnings=[SELF_INCLUSION_NOTE, analysis.MEDIATION_NOTE, *fig_warnings],
                           summary_md=f"**{head['summary']}**\n\n"
                                      + df_to_markdown(r1["table"].filter(pl.col("pooled")).select(
                                          "assay", "n", "accuracy", "binom_p_greater", "perm_p").join(
                                          rc["q1_twas"]["table"].filter(pl.col("pooled")).select(
                                              "assay", "ci_low", "ci_high", pl.col("perm_p").alias("locus_perm_p")),
                                          on="assay", how="left")))
            log.info(head["summary"])
    return {"run_folder": str(rec.folder), "simulated": simulated, "metrics": metrics, "headline": head}


def _published(study: TWASStudy, r1: dict[str, Any], r2: pl.DataFrame, r3: dict[str, Any], r4: dict[str, Any],
               simulated: bool) -> dict[str, Any] | None:
    """``metrics["published"]``: the seed's (original-mode) Q1-Q4 beside the write-up's numbers."""
    from agval.published import published_block, resolve_set_id, twas_observed

    set_id = resolve_set_id(study.published, "twas")
    if set_id is None:
        return None

    def by_output_type(df: pl.DataFrame) -> pl.DataFrame:
        return df.with_columns(pl.col("assay").map_elements(output_type_of, return_dtype=pl.Utf8)
                               .alias("output_type"))

    observed = twas_observed(by_output_type(r1["table"].filter(~pl.col("pooled"))), by_output_type(r2),
                             by_output_type(r3["summary"]), by_output_type(r4["table"]))
    return published_block(set_id, observed, simulated=simulated)


def _primary_cell_table(pc: dict[str, Any]) -> pl.DataFrame:
    """The pre-specified cell's rows as one small table (statistic, estimate, interval, P)."""
    rows = []
    for label, r, est, lo, hi, p in (
            ("Q1 TWAS-weighted eQTL direction (corrected)", pc.get("q1_twas"), "accuracy", "ci_low", "ci_high",
             "perm_p"),
            ("Q1 marginal eQTL effect, RNA (primary)", pc.get("q1_eqtl_rna"), "accuracy", "ci_low", "ci_high",
             "perm_p"),
            ("Q4 Spearman AG_G vs TWAS.Z (corrected)", pc.get("q4"), "spearman_rho", "rho_ci_low", "rho_ci_high",
             "perm_p_greater")):
        if r:
            rows.append({"statistic": label, "estimate": r[est], "ci_low": r[lo], "ci_high": r[hi],
                         "p_unadjusted": r[p]})
    return pl.DataFrame(rows, schema={"statistic": pl.Utf8, "estimate": pl.Float64, "ci_low": pl.Float64,
                                      "ci_high": pl.Float64, "p_unadjusted": pl.Float64})


def _sections(study: TWASStudy, metrics: dict[str, Any], map_source: str) -> list[tuple[str, str]]:
    d = metrics["data"]
    return [
        ("Data",
         f"{d['gene_tissue_pairs']} TWAS-significant gene-tissue pairs (TWAS.P < {study.twas_p_threshold:g}) of "
         f"{d['genes']} genes in {d['tissues']} tissues; {d['triplets']} (variant, gene, tissue) triplets of "
         f"{d['variants']} distinct variants (SuSiE cs >= 0 or PIP > {study.pip_threshold:g}); "
         f"{d['multi_tissue_genes']} genes significant in >= 2 tissues. {d['gwas_rsids_oriented']} rsIDs have a "
         f"GWAS z oriented to the scored ALT allele."),
        ("Scores",
         f"{', '.join(study.assays)} scored once per variant ({'precomputed table' if study.predictions else 'model'}; "
         f"{study.score_column}). RNA: the gene-mask score of the triplet's gene on the tissue's GTEx RNA_SEQ "
         f"track; ATAC/DNASE/CAGE: centre-mask scores averaged over the tissue's ontology terms "
         f"(tissue map: {map_source}; exact terms in the manifest and tables/tracks_used.parquet). A tissue "
         f"without tracks for an assay has no score there (see 'Tracks per tissue x assay')."),
        ("Statistics",
         f"Q1: e = sign(z_ALT * TWAS.Z), c = 1[sign(score) = e], rows with a zero or missing value excluded; "
         f"accuracy and PIP-weighted accuracy; one-sided exact binomial P (the seed's test; anti-conservative "
         f"because triplets share variants and LD, P22) and the within-gene permutation P with "
         f"B = {study.n_permutations} (primary; p = (1 + #null >= observed) / (B + 1)); heart vs non-heart "
         f"by a two-proportion z-test, Fisher's exact test and Mann-Whitney on |score|. Q2: mean |score| in vs "
         f"out of credible sets, fold, two-sided Mann-Whitney U, Spearman(PIP, |score|). Q3: genes significant "
         f"in >= {study.q3_min_tissues} tissues, S_X = {study.q3_deviation} deviation from the gene's mean, "
         f"Spearman(S_AG, S_TWAS) and within-gene Kendall tau (>= {study.q3_min_tissues_kendall} tissues). "
         f"Q4: AG_G = sum PIP * score * z_ALT, Spearman with TWAS.Z per tissue, plus the within-gene "
         f"score-permutation null (AG_G shares z_ALT with TWAS.Z, P21). Seeds: "
         f"{metrics['settings']['seeds']}."),
        ("Corrected statistics",
         f"The seed's tests above permute each gene-tissue on its own and count rows as independent, but one "
         f"chromatin score serves every gene near the variant and one RNA score is near-identical across "
         f"tissues (P31). Corrected mode: loci are connected components of genes sharing retained variants; "
         f"P values permute each unit's score (variant for ATAC/DNASE/CAGE, variant-gene for RNA, all tissues "
         f"together) within its locus ({study.n_permutations} permutations); intervals are percentile locus "
         f"bootstraps ({study.n_boot} replicates); Benjamini-Hochberg q values across the Q1 and Q4 tissue x "
         f"assay grids; the pre-specified cell {study.primary_cell} is reported apart, unadjusted. Q1's primary "
         f"estimand is the sign agreement of the RNA score with the variant's marginal eQTL effect in that "
         f"tissue ({'GTEx slopes given' if study.eqtl else 'not computed: no [study] eqtl table'}); the seed's "
         f"statistic is agreement with the TWAS-weighted eQTL direction. Q2 counts each distinct score once "
         f"(in a credible set if in any gene's). Q3's rho and mean Kendall tau are compared with their "
         f"permutation null (S_AG and S_TWAS share the gene's GWAS strength, P32). {MEDIATION_NOTE}"),
    ]


FLOW = twas_concordance
