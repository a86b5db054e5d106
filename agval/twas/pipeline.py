"""The TWAS concordance steps (STUDIES.md §2) as plain functions with typed, frozen results,
and the report's parts. No Prefect: ``tasks/twas.py`` wraps each step in a named task and
``flows/twas.py`` strings them together like a methods section.

Every step that can drop rows returns them (``drops``, a :class:`~agval.drops.DropLog`)
instead of writing into the run's log, so a step can run on another process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import polars as pl

from agval.drops import DropLog, failure_drops
from agval.errors import InputError
from agval.genes import strip_gene_version_expr
from agval.io.twas import TissueMap
from agval.twas import analysis, inputs
from agval.twas.analysis import MEDIATION_NOTE
from agval.twas.study import SELF_INCLUSION_NOTE, TWASStudy
from agval.twas.triplets import assay_label, build_triplets, output_type_of

__all__ = ["LoadedInputs", "Triplets", "TWASReport", "load_study_inputs", "triplets_of", "read_predictions",
           "loci_rows", "loci_frame", "score_failure_drops", "build_report"]


@dataclass(frozen=True)
class LoadedInputs:
    """Step 1: the study's SuSiE and FUSION rows after the tissue check.

    ``retained``: retained SuSiE rows of significant pairs; ``pairs``: the significant
    FUSION rows; ``counts``: rows per input stage; ``tissues``: sorted TWAS tissues;
    ``drops``: rows dropped while loading."""

    tissue_map: TissueMap
    susie: pl.DataFrame
    twas: pl.DataFrame
    retained: pl.DataFrame
    pairs: pl.DataFrame
    counts: dict[str, int]
    tissues: list[str]
    drops: DropLog = field(default_factory=DropLog)

    @property
    def rsids(self) -> list[str]:
        """The distinct retained rsIDs, sorted."""
        return self.retained["rsid"].drop_nulls().unique().sort().to_list()

    def tissue_map_note(self) -> dict[str, Any]:
        """The tissue map as recorded in the manifest (source, overridden tissues, map)."""
        t = self.tissue_map
        return {"source": t.source, "overridden": list(t.overridden), "map": t.to_dict()}


def load_study_inputs(study: TWASStudy) -> LoadedInputs:
    """SuSiE + FUSION files, the tissue map and its check, retention and significance.

    Args:
        study: the TWAS study (``susie``, ``twas``, ``tissue_map``, ``tissues``,
            ``pip_threshold``, ``keep_credible_sets``, ``twas_p_threshold``).

    Returns:
        :class:`LoadedInputs` with the rows dropped on the way.

    Raises:
        InputError: an input file is missing or malformed, a tissue is unmapped (with
            ``unmapped_tissues = "error"``), or no retained SuSiE variant is left.
    """
    drops = DropLog()
    tmap: TissueMap = inputs.resolve_tissue_map(study.tissue_map)
    sus = inputs.load_susie_files(study.susie, drops=drops)
    tw = inputs.load_twas_files(study.twas, drops=drops)
    if study.tissues:
        sus = sus.filter(pl.col("tissue").is_in(list(study.tissues)))
        tw = tw.filter(pl.col("tissue").is_in(list(study.tissues)))
    checked = inputs.check_tissues({"susie": sus, "twas": tw}, tmap, policy=study.unmapped_tissues, drops=drops)
    sus, tw = checked["susie"], checked["twas"]
    tw = inputs.dedupe_twas_pairs(tw, drops=drops)
    retained = inputs.retain_susie(sus, pip_threshold=study.pip_threshold,
                                   keep_credible_sets=study.keep_credible_sets)
    pairs = inputs.significant_pairs(tw, study.twas_p_threshold)
    retained_sig = retained.join(pairs.select("gene_id", "tissue"), on=["gene_id", "tissue"], how="semi")
    counts = {"susie_files": int(sus["source_file"].n_unique()), "susie_rows": sus.height,
              "susie_rows_retained": retained.height, "twas_rows": tw.height,
              "twas_significant_pairs": pairs.height,
              "twas_significant_pairs_without_susie": pairs.join(sus.select("gene_id", "tissue").unique(),
                                                                 on=["gene_id", "tissue"], how="anti").height}
    out = LoadedInputs(tissue_map=tmap, susie=sus, twas=tw, retained=retained_sig, pairs=pairs, counts=counts,
                       tissues=sorted(set(tw["tissue"].unique().to_list())), drops=drops)
    if not out.rsids:
        raise InputError("no retained SuSiE variant (cs >= 0 or pip > "
                         f"{study.pip_threshold}) in a TWAS-significant pair (TWAS.P < "
                         f"{study.twas_p_threshold}); nothing to analyse")
    return out


@dataclass(frozen=True)
class Triplets:
    """Step 4: (variant, gene, tissue) triplets (:data:`~agval.twas.triplets.TRIPLET_TABLE_COLUMNS`),
    their counts, and the SuSiE rows dropped while building them."""

    table: pl.DataFrame
    counts: dict[str, int]
    drops: DropLog = field(default_factory=DropLog)


def triplets_of(loaded: LoadedInputs, oriented: pl.DataFrame) -> Triplets:
    """The triplets of the significant pairs' retained variants with an oriented GWAS z.

    Raises:
        InputError: no triplet is left (see ``dropped.parquet``)."""
    drops = DropLog()
    trip, counts = build_triplets(loaded.retained, loaded.pairs, oriented, drops=drops)
    if trip.height == 0:
        raise InputError("no (variant, gene, tissue) triplet left after harmonization; see dropped.parquet")
    return Triplets(trip, counts, drops)


def score_failure_drops(triplets: pl.DataFrame, susie: pl.DataFrame, failures: pl.DataFrame) -> pl.DataFrame:
    """One drop per SuSiE row whose variant failed to score (``row_id`` stays the SuSiE row's
    id, with its ``source_file``/``source_row``), with the service's error code and attempts
    (:func:`agval.drops.failure_drops`; add with ``stage="score", reason="score_failed"``)."""
    rows = triplets.select(pl.col("susie_row_id").alias("row_id"), "variant_key").join(
        susie.select("row_id", "source_file", "source_row"), on="row_id", how="left")
    return failure_drops(rows, failures, reason="score_failed")


def read_predictions(path: str) -> pl.DataFrame:
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


def loci_frame(rows: pl.DataFrame, lookup_table: pl.DataFrame) -> pl.DataFrame:
    """SuSiE rows of the named loci with their hg38 position from the allele lookup (first hit),
    maximum PIP over tissues: ``gene_name, rsid, pos, pip, cs``."""
    pos = (lookup_table.filter(pl.col("status").is_in(["ok", "merged"]) & pl.col("pos").is_not_null())
           .group_by("query", maintain_order=True).agg(pl.col("pos").first()).rename({"query": "rsid"}))
    return (rows.join(pos, on="rsid", how="inner")
            .group_by("gene_name", "rsid").agg(pl.col("pos").first(), pl.col("pip").max(), pl.col("cs").max())
            .sort("gene_name", "pos"))


def loci_rows(study: TWASStudy, loaded: LoadedInputs) -> pl.DataFrame:
    """SuSiE rows of the study's named loci (``study.loci``; drawn in the PIP figure, so
    looked up too); empty when the study draws no figures."""
    if not study.plots:
        return loaded.susie.clear()
    genes = loaded.twas.filter(pl.col("id").is_in(study.loci)).select(
        "gene_id", pl.col("id").alias("gene_name")).unique("gene_id")
    return loaded.susie.join(genes, on="gene_id", how="inner")


def figure_pairs(pairs: pl.DataFrame) -> pl.DataFrame:
    """The significant pairs with a display ``gene_name`` (the FUSION id unless it is an
    Ensembl id)."""
    return pairs.with_columns(pl.when(pl.col("id").str.contains(r"^ENS[A-Z]*G\d+").fill_null(True))
                              .then(pl.col("gene_id")).otherwise(pl.col("id")).alias("gene_name"))


@dataclass(frozen=True)
class Questions:
    """Step 6: Q1-Q4 in the seed's (original) mode and the corrected mode
    (:func:`agval.twas.analysis.run_q1` ... :func:`~agval.twas.analysis.run_corrected`)."""

    q1: dict[str, Any]
    q2: pl.DataFrame
    q3: dict[str, pl.DataFrame]
    q4: dict[str, Any]
    corrected: dict[str, Any]


@dataclass(frozen=True)
class ScoredTriplets:
    """Step 5: the long triplet table (one row per triplet x assay, with the eQTL slope when
    given), the tracks used and their coverage per tissue x assay, and the number of
    failed (variant, scorer) calls."""

    long: pl.DataFrame
    tracks: pl.DataFrame
    coverage: pl.DataFrame
    failures: int = 0
    loo: dict[str, Any] | None = None     # leave-one-out TWAS.Z counts when weights and LD were given


@dataclass(frozen=True)
class TWASReport:
    """What the run writes: ``metrics`` (``metrics.json``), ``tables`` (``tables/*.parquet``),
    and the report's ``report_tables``, ``sections``, ``warnings`` and ``summary_md``."""

    metrics: dict[str, Any]
    tables: dict[str, pl.DataFrame]
    report_tables: dict[str, pl.DataFrame]
    sections: list[tuple[str, str]]
    warnings: list[str]
    summary_md: str

    @property
    def headline(self) -> dict[str, Any]:
        return self.metrics["headline"]


def leave_one_out(scored: ScoredTriplets, study: TWASStudy, *, tissues: Sequence[str],
                  drops: DropLog) -> ScoredTriplets:
    """Step 5b: ``twas_z_loo`` on the long triplet table (:mod:`agval.twas.loo`).

    Reads the weights (``[study] twas_weights``, restricted to ``tissues``), the GWAS rows
    of their SNPs (streamed, the study's GWAS settings) and the LD reference
    (``[study] ld``); ``scored.loo`` records the counts. Drops (stage ``loo``) go to
    ``drops``.
    """
    from dataclasses import replace

    from agval.twas import loo
    from agval.twas.gwas import read_gwas_for

    weights = loo.load_twas_weights(inputs.expand_paths(study.twas_weights, what="TWAS weights"), tissues=tissues,
                                    drops=drops)
    ld = loo.load_ld_reference(inputs.expand_paths(study.ld, what="LD"), drops=drops)
    # the GWAS rows' own problems were counted by the study's GWAS read where they matter; a
    # weight SNP left without a usable z is counted below (loo_no_gwas), once per weight row
    rows = read_gwas_for(study.gwas, sorted(set(weights["rsid"].to_list())), build=study.gwas_build,
                         columns=study.gwas_columns, strict=study.gwas_strict, drops=DropLog())
    long, counts = loo.attach_loo_twas_z(scored.long, weights, rows, ld, drops=drops)
    counts = {"weight_rows": weights.height, "ld_pairs": ld.height, "gwas_rows": rows.height, **counts}
    return replace(scored, long=long, loo=counts)


NO_EQTL_NOTE = ("No eQTL table ([study] eqtl): Q1's primary estimand (agreement with the marginal "
                "eQTL effect) is not computed; only the seed's statistic is.")


def build_report(study: TWASStudy, *, palindromic: str, loaded: LoadedInputs, gwas_rows: int, oriented: pl.DataFrame,
                 triplets: Triplets, scored: ScoredTriplets, questions: Questions, funnel: pl.DataFrame,
                 simulated: bool, figure_warnings: Sequence[str] = ()) -> TWASReport:
    """``metrics.json`` (keys: ``docs/metrics-twas.md``), the tables and the report's parts.

    Args:
        study: the study; ``palindromic``: the lookup's palindromic-site policy.
        loaded, triplets, scored, questions: the results of steps 1, 4, 5 and 6;
        gwas_rows: GWAS rows read for the retained rsIDs; ``oriented``: one ALT-oriented
            GWAS row per rsID; ``funnel``: the run's drop counts per (stage, reason).
        simulated: the run is simulated (the published comparison says so).
    """
    from agval.report import df_to_markdown

    q, rc = questions, questions.corrected
    r1, r2, r3, r4 = q.q1, q.q2, q.q3, q.q4
    labels = [assay_label(a) for a in study.assays]
    seeds = analysis.QuestionSeeds(study.seed)
    notes = [SELF_INCLUSION_NOTE, MEDIATION_NOTE] + ([] if study.eqtl else [NO_EQTL_NOTE])
    if rc.get("q1_twas_loo") is not None:
        from agval.twas.loo import LOO_NOTE

        notes.append(LOO_NOTE)
    c = loaded.counts
    data = analysis.data_summary(
        triplets.table, susie_rows=c["susie_rows"], retained_rows=c["susie_rows_retained"],
        twas_rows=c["twas_rows"], significant_pairs=c["twas_significant_pairs"], gwas_rows=gwas_rows,
        oriented_rsids=oriented.height, variants_scored=triplets.table["variant_key"].n_unique(),
        score_failures=scored.failures,
        counts={"twas_significant_pairs_without_susie": c["twas_significant_pairs_without_susie"],
                "susie_rows_in_significant_pairs": triplets.counts["susie_rows_in_significant_pairs"]})
    thr = study.twas_p_threshold
    settings = {"assays": labels, "pip_threshold": study.pip_threshold,
                "keep_credible_sets": study.keep_credible_sets, "twas_p_threshold": thr,
                "score_column": study.score_column, "n_permutations": study.n_permutations,
                "n_boot": study.n_boot, "primary_cell": study.primary_cell, "eqtl": bool(study.eqtl),
                "seeds": seeds.to_dict(), "heart_tissues": study.heart_tissues,
                "q3_deviation": study.q3_deviation, "q3_min_tissues": study.q3_min_tissues,
                "q3_min_tissues_kendall": study.q3_min_tissues_kendall,
                "gwas_convention": "column:effect_allele", "palindromic": palindromic,
                "tissue_map_source": loaded.tissue_map.source}
    metrics = analysis.build_metrics(data=data, q1=r1, q2=r2, q3=r3, q4=r4, settings=settings,
                                     coverage=scored.coverage, funnel=funnel, assays=labels,
                                     notes=notes, corrected=rc, primary_cell=study.primary_cell)
    metrics["simulated"] = simulated
    if scored.loo is not None:
        metrics["leave_one_out"] = scored.loo
    published = _published(study, r1, r2, r3, r4, simulated)
    if published is not None:
        metrics["published"] = published
    tables_out = {
        "triplets": scored.long, "twas_pairs": loaded.pairs, "oriented_gwas": oriented, "q1": r1["table"],
        "q1_heart_vs_nonheart": r1["heart_vs_nonheart"], "q1_null": r1["null"], "q2": r2,
        "q3_summary": r3["summary"], "q3_genes": r3["genes"], "q3_kendall": r3["kendall"],
        "gene_scores": r3["gene_scores"], "q4": r4["table"], "q4_null": r4["null"],
        "track_coverage": scored.coverage, "tracks_used": scored.tracks,
        "q1_twas_corrected": rc["q1_twas"]["table"],
        "q1_twas_corrected_heart_vs_nonheart": rc["q1_twas"]["heart_vs_nonheart"],
        "q2_corrected": rc["q2"], "q3_corrected": rc["q3"], "q4_corrected": rc["q4"]["table"],
    }
    if rc.get("q1_twas_loo") is not None:
        tables_out["q1_twas_loo"] = rc["q1_twas_loo"]["table"]
    if rc["q1_eqtl"] is not None:
        tables_out["q1_eqtl"] = rc["q1_eqtl"]["table"]
        tables_out["q1_eqtl_heart_vs_nonheart"] = rc["q1_eqtl"]["heart_vs_nonheart"]
    head = metrics["headline"]
    sections = _sections(study, metrics, loaded.tissue_map.source)
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
        **({"Q1 corrected: agreement with sign(z_ALT x leave-one-variant-out TWAS.Z) (LD-conditioned; locus "
            "permutation P, 95% CI, BH q)": rc["q1_twas_loo"]["table"].select(
                "assay", "tissue", "n", "accuracy", "ci_low", "ci_high", "perm_p", "bh_q", "n_loci")}
           if rc.get("q1_twas_loo") is not None else {}),
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
        "Tracks per tissue x assay": scored.coverage,
    })
    summary_md = (f"**{head['summary']}**\n\n"
                  + df_to_markdown(r1["table"].filter(pl.col("pooled")).select(
                      "assay", "n", "accuracy", "binom_p_greater", "perm_p").join(
                      rc["q1_twas"]["table"].filter(pl.col("pooled")).select(
                          "assay", "ci_low", "ci_high", pl.col("perm_p").alias("locus_perm_p")),
                      on="assay", how="left")))
    return TWASReport(metrics=metrics, tables=tables_out, report_tables=report_tables, sections=sections,
                      warnings=[SELF_INCLUSION_NOTE, MEDIATION_NOTE, *figure_warnings], summary_md=summary_md)


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

