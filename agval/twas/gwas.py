"""GWAS summary statistics oriented to the AlphaGenome ALT allele (STUDIES.md §2.2, pitfall P23).

1. :func:`read_gwas_for` streams the GWAS file (polars, lazily; tens of millions of rows)
   and keeps the rows of the rsIDs the study needs (the retained SuSiE variants);
2. the rsIDs are looked up (``agval.alleles.cache.lookup_rsids``, or the Prefect task);
3. :func:`orient_gwas` harmonizes the rows against the lookup and the hg38 FASTA with
   :func:`agval.alleles.harmonize.harmonize` under the declared convention "the z refers
   to the file's effect allele" (``column:effect_allele``): the ALT of a multi-allelic
   rsID is picked by the alleles, a strand flip is undone at non-palindromic sites, z is
   negated where the effect allele is REF, palindromic A/T, C/G sites are dropped or
   resolved by allele frequency (``palindromic``), REF is checked against the FASTA.
   Rows whose alleles match neither REF nor ALT are counted drops (``allele_mismatch``).
   The result has one row per rsID: ``rsid, variant_key, chrom, pos, ref, alt, z_alt,
   harmonization, gwas_row_id``.

No Prefect here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Literal, Mapping

import polars as pl

from agval.alleles.harmonize import HarmonizeResult, harmonize
from agval.drops import DropLog
from agval.genome import ReferenceGenome
from agval.io.twas import load_gwas_sumstats

__all__ = ["read_gwas_for", "orient_gwas", "GWAS_CONVENTION", "harmonize_gwas_rows", "one_row_per_rsid"]

#: The GWAS z (or beta) refers to the file's effect allele (GWAS-SSF, PLINK A1, METAL Allele1).
GWAS_CONVENTION = "column:effect_allele"

ORIENTED_COLUMNS = {"rsid": pl.Utf8, "variant_key": pl.Utf8, "chrom": pl.Utf8, "pos": pl.Int64,
                    "ref": pl.Utf8, "alt": pl.Utf8, "z_alt": pl.Float64, "harmonization": pl.Utf8,
                    "gwas_row_id": pl.Utf8}


def read_gwas_for(path: str | Path, rsids: Iterable[str], *, build: str, columns: Mapping[str, str] | None = None,
                  strict: bool = True, drops: DropLog | None = None) -> pl.DataFrame:
    """The GWAS rows of ``rsids`` (streamed; the file is never held whole in memory).

    A file with neither a z column nor beta (or odds ratio) with its standard error raises
    :class:`~agval.errors.InputError` before anything is read; rows without a usable z,
    identifier or allele are counted drops (stage ``load``) - only those among ``rsids``
    are materialised and counted.
    """
    df, d = load_gwas_sumstats(path, build=build, columns=columns, rsids=rsids, strict=strict)
    if drops is not None:
        drops.extend(d)
    return df


def harmonize_gwas_rows(gwas: pl.DataFrame, lookup: pl.DataFrame, genome: ReferenceGenome | str | Path, *,
                        palindromic: Literal["drop", "af"] = "drop", drops: DropLog | None = None,
                        source_file: str | Path | None = None) -> HarmonizeResult:
    """:func:`agval.alleles.harmonize.harmonize` of GWAS rows (``row_id, rsid, z,
    effect_allele, other_allele, eaf``) with the z as the effect: ``beta_alt`` = z_ALT."""
    study = gwas.select("row_id", "rsid", "z", "effect_allele", "other_allele", "eaf")
    return harmonize(study, lookup, genome, convention=GWAS_CONVENTION, beta_col="z",
                     other_allele_col="other_allele", palindromic=palindromic,
                     eaf_col="eaf" if palindromic == "af" else None, drops=drops, source_file=source_file)


def one_row_per_rsid(table: pl.DataFrame, *, drops: DropLog | None = None,
                     source_file: str | Path | None = None) -> pl.DataFrame:
    """One oriented GWAS row per rsID from a harmonized table (``row_id, rsid, variant_key, ...,
    beta_alt``).

    Several GWAS rows of one rsID that land on **different** variants (one row per ALT of a
    multi-allelic site) make the rsID ambiguous for a SuSiE result given by rsID: all its
    rows are dropped (``gwas_rsid_ambiguous``). Repeated rows of the same variant keep the
    first (others: ``gwas_duplicate_row``).
    """
    drops = drops if drops is not None else DropLog()
    t = table.with_columns(pl.col("variant_key").n_unique().over("rsid").alias("_nv"),
                           pl.int_range(pl.len()).over("rsid").alias("_k"))
    amb = t.filter(pl.col("_nv") > 1)
    src = str(source_file) if source_file else None
    if amb.height:
        part = amb.select("row_id", pl.lit(src, dtype=pl.Utf8).alias("source_file"),
                          pl.format("{} has GWAS rows for several ALT alleles; the SuSiE rsID does not say which",
                                    pl.col("rsid")).alias("detail"))
        drops.add_frame(part, stage="harmonize", reason="gwas_rsid_ambiguous")
    dup = t.filter((pl.col("_nv") == 1) & (pl.col("_k") > 0))
    if dup.height:
        part = dup.select("row_id", pl.lit(src, dtype=pl.Utf8).alias("source_file"),
                          pl.format("{} appears more than once in the GWAS; the first row is used",
                                    pl.col("rsid")).alias("detail"))
        drops.add_frame(part, stage="harmonize", reason="gwas_duplicate_row")
    kept = t.filter((pl.col("_nv") == 1) & (pl.col("_k") == 0))
    return kept.select(pl.col("rsid"), "variant_key", "chrom", "pos", "ref", "alt",
                       pl.col("beta_alt").alias("z_alt"), "harmonization", pl.col("row_id").alias("gwas_row_id"))


def orient_gwas(gwas: pl.DataFrame, lookup: pl.DataFrame, genome: ReferenceGenome | str | Path, *,
                palindromic: Literal["drop", "af"] = "drop", drops: DropLog | None = None,
                source_file: str | Path | None = None) -> tuple[pl.DataFrame, HarmonizeResult]:
    """``(oriented, harmonize_result)``: GWAS z oriented to ALT, one row per rsID (module
    docstring). ``drops`` receives every dropped GWAS row (stages ``lookup``/``harmonize``)."""
    drops = drops if drops is not None else DropLog()
    res = harmonize_gwas_rows(gwas, lookup, genome, palindromic=palindromic, drops=drops, source_file=source_file)
    if res.table.height == 0:
        return pl.DataFrame(schema=ORIENTED_COLUMNS), res
    return one_row_per_rsid(res.table, drops=drops, source_file=source_file), res

