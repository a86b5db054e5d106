"""The (variant, gene, tissue) triplets and their AlphaGenome scores (STUDIES.md §2.1-§2.3).

* :func:`build_triplets`: retained SuSiE variants of TWAS-significant gene-tissue pairs,
  joined to the ALT-oriented GWAS z by rsID; one row per (variant, gene, tissue).
* :func:`variants_to_score`: the distinct variants (each scored once for every scorer).
* :func:`assay_scores`: per (variant, [gene,] tissue, assay) raw (default) scores from the
  long score table: ``RNA`` = RNA_SEQ gene-mask rows of the triplet's gene (version
  stripped) on the tissue's GTEx track(s) (``gtex_tissue == tissue``; when the catalogue
  has none for a tissue, the map's RNA_SEQ ontology terms); ``ATAC``/``DNASE``/``CAGE`` =
  centre-mask rows whose ``ontology_curie`` is among the tissue's terms in the tissue map,
  averaged over those tracks (both strands). No tracks -> null score.
* :func:`attach_scores`: the long triplet table the statistics take
  (:data:`agval.stats.twas.TRIPLET_COLUMNS` + ``twas_p``, ``n_tracks`` ...).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import polars as pl

from agval.drops import DropLog
from agval.errors import InputError
from agval.frames import checked_join
from agval.io.twas import TissueMap
from agval.twas.inputs import dedupe_twas_pairs

__all__ = ["ASSAY_LABELS", "OUTPUT_TYPES", "assay_label", "output_type_of", "build_triplets",
           "variants_to_score", "assay_scores", "attach_scores", "TRIPLET_TABLE_COLUMNS", "track_coverage"]

#: AlphaGenome output type -> assay label in the triplet table and the figures.
ASSAY_LABELS: dict[str, str] = {"RNA_SEQ": "RNA", "ATAC": "ATAC", "DNASE": "DNASE", "CAGE": "CAGE"}
OUTPUT_TYPES: dict[str, str] = {v: k for k, v in ASSAY_LABELS.items()}
_CENTER = ("ATAC", "DNASE", "CAGE")

TRIPLET_TABLE_COLUMNS: dict[str, pl.DataType] = {
    "variant_key": pl.Utf8, "rsid": pl.Utf8, "chrom": pl.Utf8, "pos": pl.Int64, "gene_id": pl.Utf8,
    "gene_name": pl.Utf8, "tissue": pl.Utf8, "pip": pl.Float64, "cs": pl.Int64, "in_cs": pl.Boolean,
    "z_alt": pl.Float64, "twas_z": pl.Float64, "twas_p": pl.Float64, "susie_row_id": pl.Utf8,
}


def assay_label(output_type: str) -> str:
    u = str(output_type).strip().upper()
    u = {"RNA": "RNA_SEQ"}.get(u, u)
    if u not in ASSAY_LABELS:
        raise InputError(f"unknown assay {output_type!r}; use one of {', '.join(ASSAY_LABELS)}")
    return ASSAY_LABELS[u]


def output_type_of(assay: str) -> str:
    return OUTPUT_TYPES[assay_label(assay)]


def _gene_name_expr() -> pl.Expr:
    """FUSION's ID when it is a name (not an Ensembl id), else the gene id."""
    ident = pl.col("id").cast(pl.Utf8)
    is_ens = ident.str.contains(r"^ENS[A-Z]*G\d+").fill_null(True)
    return pl.when(ident.is_null() | is_ens).then(pl.col("gene_id")).otherwise(ident)


def build_triplets(retained: pl.DataFrame, pairs: pl.DataFrame, oriented: pl.DataFrame, *,
                   drops: DropLog | None = None) -> tuple[pl.DataFrame, dict[str, int]]:
    """``(triplets, counts)``.

    ``retained``: retained SuSiE rows (``row_id, gene_id, tissue, rsid, variant_id, pip, cs``);
    ``pairs``: the TWAS-significant FUSION rows (``gene_id, tissue, twas_z, twas_p, id``);
    ``oriented``: one GWAS row per rsID (:func:`agval.twas.gwas.orient_gwas`).

    SuSiE rows of significant pairs lost on the way are counted drops (stage ``triplets``):
    ``susie_no_rsid`` (identifier is not an rsID), ``no_oriented_gwas`` (the rsID has no
    usable, harmonized GWAS row; the GWAS row's own drop says why), ``duplicate_triplet``
    (two SuSiE rows for one variant-gene-tissue, e.g. a merged rsID: the larger PIP kept).
    Columns: :data:`TRIPLET_TABLE_COLUMNS`, one row per (variant_key, gene_id, tissue).
    """
    drops = drops if drops is not None else DropLog()
    pairs = dedupe_twas_pairs(pairs, drops=drops)
    p = pairs.select("gene_id", "tissue", "twas_z", "twas_p", _gene_name_expr().alias("gene_name"))
    sk = checked_join(retained, p, ["gene_id", "tissue"], how="inner", validate="m:1",
                      what="retained SuSiE variants x significant TWAS pairs")
    counts = {"susie_rows_in_significant_pairs": sk.height}
    no_rs = sk.filter(pl.col("rsid").is_null())
    if no_rs.height:
        drops.add_frame(no_rs.select("row_id", "source_file", "source_row",
                                     pl.format("identifier {} is not an rsID", pl.col("variant_id")).alias("detail")),
                        stage="triplets", reason="susie_no_rsid")
    sk = sk.filter(pl.col("rsid").is_not_null())
    j = checked_join(sk, oriented, "rsid", how="left", validate="m:1", what="SuSiE variants x oriented GWAS")
    lost = j.filter(pl.col("variant_key").is_null())
    if lost.height:
        drops.add_frame(lost.select("row_id", "source_file", "source_row",
                                    pl.format("{} has no usable harmonized GWAS row (see the GWAS drops)",
                                              pl.col("rsid")).alias("detail")),
                        stage="triplets", reason="no_oriented_gwas")
    j = j.filter(pl.col("variant_key").is_not_null())
    j = j.with_columns(pl.col("pip").rank("ordinal", descending=True).over("variant_key", "gene_id", "tissue")
                       .alias("_r"))
    dup = j.filter(pl.col("_r") > 1)
    if dup.height:
        drops.add_frame(dup.select("row_id", "source_file", "source_row",
                                   pl.format("{} is the same variant as another SuSiE row of {} / {}",
                                             pl.col("rsid"), pl.col("gene_id"), pl.col("tissue")).alias("detail")),
                        stage="triplets", reason="duplicate_triplet")
    j = j.filter(pl.col("_r") == 1)
    out = j.select(
        "variant_key", "rsid", "chrom", "pos", "gene_id", "gene_name", "tissue",
        pl.col("pip").cast(pl.Float64), pl.col("cs").cast(pl.Int64), (pl.col("cs") >= 0).alias("in_cs"),
        pl.col("z_alt").cast(pl.Float64), pl.col("twas_z").cast(pl.Float64), pl.col("twas_p").cast(pl.Float64),
        pl.col("row_id").alias("susie_row_id"),
    ).sort("tissue", "gene_id", "variant_key")
    counts["triplets"] = out.height
    return out, counts


def variants_to_score(triplets: pl.DataFrame) -> pl.DataFrame:
    """Distinct variants as the scoring engine's input: ``row_id`` (= variant_key), ``chrom,
    pos, ref, alt``."""
    keys = triplets["variant_key"].unique().sort()
    parts = keys.str.split_exact(":", 2).struct.unnest()
    alleles = parts["field_2"].str.split_exact(">", 1).struct.unnest()
    return pl.DataFrame({"row_id": keys, "chrom": parts["field_0"], "pos": parts["field_1"].cast(pl.Int64),
                         "ref": alleles["field_0"], "alt": alleles["field_1"]})


def _map_frame(tissue_map: TissueMap, tissues: Iterable[str], output_type: str) -> pl.DataFrame:
    rows = [{"tissue": t, "ontology_curie": c} for t in tissues for c in tissue_map.terms(t, output_type)]
    return pl.DataFrame(rows, schema={"tissue": pl.Utf8, "ontology_curie": pl.Utf8})



def _one_scorer_per_output_type(scores: pl.DataFrame) -> pl.DataFrame:
    """Keep one scorer per output type before tracks are averaged.

    A ``tidy_scores`` table from ``score_variant`` without a scorer list holds several
    scorers per output type (DNASE: DIFF_LOG2_SUM and the never-negative ACTIVE_SUM;
    RNA_SEQ: gene-mask LFC, gene-mask active and polyadenylation). Averaging them would
    push signs positive and mix scales, so the recommended (signed) scorer is kept; a
    table with several scorers and not the recommended one is refused.
    """
    col = next((c for c in ("scorer", "variant_scorer") if c in scores.columns), None)
    if col is None:
        return scores
    from alphagenome.models import variant_scorers as vs

    keep = []
    for ot in scores["output_type"].unique().drop_nulls().to_list():
        found = set(scores.filter(pl.col("output_type") == ot)[col].cast(pl.Utf8).unique().drop_nulls().to_list())
        if len(found) <= 1:
            keep += list(found)
            continue
        rec = vs.RECOMMENDED_VARIANT_SCORERS.get(ot)
        if rec is not None and str(rec) in found:
            keep.append(str(rec))
        else:
            raise InputError(f"the score table has {len(found)} scorers for {ot} ({sorted(found)}); averaging "
                             "them would mix signed and unsigned scores. Keep one scorer per output type",
                             column=col)
    return scores.filter(pl.col(col).cast(pl.Utf8).is_in(keep) | pl.col(col).is_null())

def assay_scores(scores: pl.DataFrame, tissue_map: TissueMap, tissues: Sequence[str], assays: Sequence[str], *,
                 score_column: str = "raw_score") -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(values, tracks)`` from a long score table (``agval.scoring`` format; ``variant_key``
    or ``row_id`` = variant key, ``output_type, gene_id, ontology_curie, gtex_tissue,
    track_name`` and ``score_column``).

    ``values``: ``variant_key, gene_id`` (null for centre-mask assays), ``tissue, assay, score,
    n_tracks``. ``tracks``: the tracks used, ``tissue, assay, match, track_name,
    ontology_curie, track_strand`` (persist it: it is the exact mapping applied).
    """
    if score_column not in scores.columns:
        raise InputError(f"the score table has no {score_column!r} column", column=score_column)
    vk = "variant_key" if "variant_key" in scores.columns else "row_id"
    scores = _one_scorer_per_output_type(scores)
    s = scores.select(pl.col(vk).alias("variant_key"), "output_type", "gene_id", "ontology_curie", "gtex_tissue",
                      "track_name", pl.col("track_strand") if "track_strand" in scores.columns
                      else pl.lit(None, dtype=pl.Utf8).alias("track_strand"),
                      pl.col(score_column).cast(pl.Float64).alias("_v"))
    tissues = list(tissues)
    vals, tracks = [], []
    for assay in assays:
        ot = output_type_of(assay)
        label = ASSAY_LABELS[ot]
        sub = s.filter(pl.col("output_type") == ot)
        if ot == "RNA_SEQ":
            by_gtex = sub.filter(pl.col("gtex_tissue").is_in(tissues))
            have = set(by_gtex["gtex_tissue"].unique().to_list())
            parts = [by_gtex.with_columns(pl.col("gtex_tissue").alias("tissue"), pl.lit("gtex_tissue").alias("match"))]
            other = [t for t in tissues if t not in have]
            if other:
                m = _map_frame(tissue_map, other, ot)
                if m.height:
                    hit = checked_join(sub.filter(pl.col("gtex_tissue").is_null()), m, "ontology_curie", how="inner",
                                       validate="m:m", max_rows=max(1, sub.height * max(1, m.height)),
                                       what="RNA_SEQ scores x tissue-map terms")
                    parts.append(hit.with_columns(pl.lit("ontology_curie").alias("match")))
            sel = pl.concat([p.select(*s.columns, "tissue", "match") for p in parts])
            sel = sel.filter(pl.col("gene_id").is_not_null())
            keys = ["variant_key", "gene_id", "tissue"]
        else:
            m = _map_frame(tissue_map, tissues, ot)
            sel = checked_join(sub, m, "ontology_curie", how="inner", validate="m:m",
                               max_rows=max(1, sub.height * max(1, m.height)),
                               what=f"{ot} scores x tissue-map terms").with_columns(
                pl.lit("ontology_curie").alias("match"))
            keys = ["variant_key", "tissue"]
        agg = (sel.group_by(keys).agg(pl.col("_v").mean().alias("score"),
                                      pl.col("track_name").n_unique().cast(pl.Int64).alias("n_tracks"))
               .with_columns(pl.lit(label).alias("assay")))
        if "gene_id" not in agg.columns:
            agg = agg.with_columns(pl.lit(None, dtype=pl.Utf8).alias("gene_id"))
        vals.append(agg.select("variant_key", "gene_id", "tissue", "assay", "score", "n_tracks"))
        tracks.append(sel.select("tissue", pl.lit(label).alias("assay"), "match", "track_name", "ontology_curie",
                                 "track_strand").unique())
    values = pl.concat(vals) if vals else pl.DataFrame(
        schema={"variant_key": pl.Utf8, "gene_id": pl.Utf8, "tissue": pl.Utf8, "assay": pl.Utf8,
                "score": pl.Float64, "n_tracks": pl.Int64})
    used = (pl.concat(tracks).sort("tissue", "assay", "track_name", "track_strand", nulls_last=True)
            if tracks else pl.DataFrame(schema={"tissue": pl.Utf8, "assay": pl.Utf8, "match": pl.Utf8,
                                                "track_name": pl.Utf8, "ontology_curie": pl.Utf8,
                                                "track_strand": pl.Utf8}))
    return values, used


def attach_scores(triplets: pl.DataFrame, values: pl.DataFrame, assays: Sequence[str]) -> pl.DataFrame:
    """The long triplet table: one row per triplet x assay with ``score`` (null when the tissue
    has no track for the assay or the variant was not scored) and ``n_tracks``."""
    out = []
    for assay in assays:
        label = assay_label(assay)
        v = values.filter(pl.col("assay") == label)
        if label == "RNA":
            j = checked_join(triplets, v.select("variant_key", "gene_id", "tissue", "score", "n_tracks"),
                             ["variant_key", "gene_id", "tissue"], how="left", validate="m:1",
                             what="triplets x RNA scores")
        else:
            j = checked_join(triplets, v.select("variant_key", "tissue", "score", "n_tracks"),
                             ["variant_key", "tissue"], how="left", validate="m:1", what=f"triplets x {label} scores")
        out.append(j.with_columns(pl.lit(label).alias("assay"), pl.col("n_tracks").fill_null(0)))
    return pl.concat(out).select(*TRIPLET_TABLE_COLUMNS, "assay", "score", "n_tracks")


def track_coverage(tracks: pl.DataFrame, tissues: Sequence[str], assays: Sequence[str]) -> pl.DataFrame:
    """Tracks used per tissue x assay (0 = no tracks: scores are missing there)."""
    grid = pl.DataFrame({"tissue": list(tissues)}).join(
        pl.DataFrame({"assay": [assay_label(a) for a in assays]}), how="cross")
    n = tracks.group_by("tissue", "assay").agg(pl.col("track_name").n_unique().cast(pl.Int64).alias("n_tracks"),
                                               pl.col("ontology_curie").unique().sort().str.join(";")
                                               .alias("ontology_curies"))
    return (checked_join(grid, n, ["tissue", "assay"], how="left", validate="1:1", what="track coverage")
            .with_columns(pl.col("n_tracks").fill_null(0)).sort("tissue", "assay"))
