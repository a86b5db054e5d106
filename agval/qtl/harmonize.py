"""Steps 2-3: alleles and orientation. Every row ends with an hg38 variant whose REF
matches the FASTA and two effect columns:

* ``beta_alt`` - the effect oriented to the scored ALT allele by the convention declared
  a priori in the study (``effect_allele``); used by the ``corrected`` mode. With
  ``effect_allele = "unknown"`` it is the published beta unchanged and
  ``orientation_verified`` is False (no direction claims, pitfall P3);
* ``beta_seed`` - the published beta, negated when ``seed_negate_beta`` (the hQTL seed's
  post-hoc flip, P4); used by the ``original`` mode.

Three routes (:func:`agval.qtl.load.resolve_route`):

* **lookup** (rsID tables: GSE86886, GSE116193, generic with rsIDs): the rsIDs are looked
  up (myvariant.info or a dbSNP VCF; :mod:`agval.alleles`) and
  :func:`agval.alleles.harmonize.harmonize` picks the record matching the study's alleles,
  checks REF on the FASTA, swaps/flips and orients. Positions in the file (hg19) are never
  used (P8): an rsID without an hg38 placement is dropped;
* **coordinates** (GTEx ``chr_pos_ref_alt_b38``, generic chrom/pos/ref/alt):
  :func:`harmonize_coordinates` - the table's own coordinates, which must be hg38
  (:class:`~agval.errors.BuildMismatchError` otherwise: no implicit liftover); REF checked
  on the FASTA, swapped (effect negated) when the ALT is the reference base - the same
  per-row rule as the lookup route (:func:`agval.alleles.harmonize.decide_alleles`);
* **precomputed**: :func:`orient_in_place` - no lookup, the study's own alleles orient beta.

Guards (:class:`~agval.errors.GuardError`): placeholder alleles (every row the same
REF/ALT pair, P12), an effect column that is really p-values (P1), hg19 coordinates on
the coordinates route (P2/P8), and an empty table after harmonization.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from agval.alleles.guards import (check_not_empty, check_not_pvalues, check_placeholder_alleles,
                                  check_single_build)
from agval.alleles.harmonize import decide_alleles, harmonize, harmonized_table
from agval.coords import chrom_expr
from agval.drops import DROP_ROW_SCHEMA, DropLog, funnel_table
from agval.errors import GuardError, MissingColumnError
from agval.genome import ReferenceGenome, check_ref_mismatch_share
from agval.qtl.study import QTLStudy

__all__ = ["Harmonized", "lookup_ids", "harmonize_lookup", "harmonize_coordinates", "orient_in_place",
           "finalize", "harmonize_options"]


@dataclass
class Harmonized:
    """The harmonized rows (``table``) and how we got there."""

    table: pl.DataFrame
    funnel: pl.DataFrame                     # step, n, lost
    convention: str
    route: str
    notes: list[str] = field(default_factory=list)
    decisions: pl.DataFrame | None = None

    def counts(self) -> dict[str, int]:
        t = self.table
        return {"harmonized_rows": t.height,
                "orientation_verified_rows": int(t["orientation_verified"].sum()) if t.height else 0,
                "unique_variants": t["variant_key"].n_unique() if t.height else 0,
                "clusters": t["cluster_id"].n_unique() if t.height and "cluster_id" in t.columns else 0}


def lookup_ids(frame: pl.DataFrame) -> list[str | None]:
    """The rsIDs to look up (as in the table; the lookup validates and deduplicates)."""
    if "rsid" not in frame.columns:
        raise MissingColumnError("rsid", available=frame.columns)
    return frame["rsid"].to_list()


def harmonize_options(study: QTLStudy) -> dict[str, Any]:
    """Keyword arguments of :func:`agval.alleles.harmonize.harmonize` for this study."""
    conv = study.convention
    opts: dict[str, Any] = {"convention": str(conv), "beta_col": "beta"}
    cols = tuple(study.allele_columns or ())
    if conv.kind in ("alt", "ref") and len(cols) == 2:
        # 'alt'/'ref' name the table's own ordered allele columns (ref, alt), exactly as on the
        # coordinates and precomputed routes; matched as an unordered pair against dbSNP, a
        # table listing its alleles the other way round would keep the wrong sign while
        # being marked orientation-verified (found in review).
        ref_col, alt_col = cols
        effect, other = (alt_col, ref_col) if conv.kind == "alt" else (ref_col, alt_col)
        return {"convention": f"column:{effect}", "beta_col": "beta", "other_allele_col": other}
    if conv.kind == "column":
        opts["other_allele_col"] = study.other_allele
    else:
        opts["allele_cols"] = cols
    return opts


def harmonize_lookup(study: QTLStudy, frame: pl.DataFrame, lookup: pl.DataFrame,
                     genome: ReferenceGenome | str | Path, *, drops: DropLog,
                     palindromic: str = "drop") -> Harmonized:
    """The lookup route (plain-function twin of the flow's harmonize task)."""
    res = harmonize(frame, lookup, genome, drops=drops, palindromic=palindromic,
                    source_file=study.table, **harmonize_options(study))
    return Harmonized(res.table, res.funnel, res.convention, "lookup", list(res.notes), res.decisions)


def harmonize_coordinates(study: QTLStudy, frame: pl.DataFrame, genome: ReferenceGenome | str | Path, *,
                          drops: DropLog) -> Harmonized:
    """The coordinates route: the table's own hg38 ``chrom, pos, ref, alt``.

    Raises :class:`~agval.errors.BuildMismatchError` when the coordinates are not hg38
    (no implicit liftover), :class:`GuardError` on placeholder alleles or p-values as
    effects. Drops (stage ``harmonize``): ``missing_alleles``, ``invalid_alleles``,
    ``chrom_not_in_reference``, ``ref_mismatch``, ``effect_allele_mismatch``.
    """
    src = study.table
    # the build first: an hg19 table (GSE86886/GSE116193 positions) must never be scored on hg38
    builds = frame["build"] if "build" in frame.columns else pl.Series([study.build or "hg38"])
    check_single_build(builds, what=f"coordinates of {src} (allele_route 'coordinates')")
    for c in ("row_id", "chrom", "pos", "ref", "alt", "beta"):
        if c not in frame.columns:
            raise MissingColumnError(c, file=src, available=frame.columns)
    conv = study.convention
    if conv.kind == "column" and conv.column not in frame.columns:
        raise MissingColumnError(conv.column, file=src, available=frame.columns)
    check_not_pvalues(frame["beta"], column="beta", file=src)
    check_placeholder_alleles(frame, "ref", "alt", what=f"study alleles of {src}")
    ref_genome = genome if isinstance(genome, ReferenceGenome) else ReferenceGenome(genome)
    eff_col = conv.column if conv.kind == "column" else None
    cols = ["row_id", "source_row", "chrom", "pos", "ref", "alt", "beta"] + ([eff_col] if eff_col else [])
    cols = [c for c in dict.fromkeys(cols) if c in frame.columns]
    work = frame.select(cols).with_row_index("_i").with_columns(pl.col("_i").cast(pl.Int64))
    ref, alt = (pl.col(c).cast(pl.Utf8).str.to_uppercase() for c in ("ref", "alt"))
    missing = (pl.col("chrom").is_null() | pl.col("pos").is_null() | (ref.fill_null("") == "")
               | (alt.fill_null("") == "") | pl.col("beta").is_null())
    effect = (pl.col(eff_col).cast(pl.Utf8) if eff_col else pl.lit(None, dtype=pl.Utf8))
    e = effect.fill_null("").str.strip_chars().str.to_uppercase()
    sites = work.filter(~missing).select(
        "_i", "row_id", chrom_expr(pl.col("chrom")).alias("chrom"), pl.col("pos").cast(pl.Int64), ref.alias("ref"),
        alt.alias("alt"), pl.col("beta").cast(pl.Float64).alias("_beta"), effect.alias("effect_allele"),
        pl.when(e == alt).then(pl.lit("alt")).when(e == ref).then(pl.lit("ref")).alias("effect_is"),
        pl.lit(None, dtype=pl.Utf8).alias("rsid"), pl.lit("coordinates").alias("lookup_class"),
        pl.lit(None, dtype=pl.Utf8).alias("source_rsid"), pl.lit(None, dtype=pl.Float64).alias("af"))
    # alleles valid, REF on the FASTA, decision and sign: the rule both routes share
    decided = decide_alleles(sites, ref_genome, convention=conv)
    source_row = pl.col("source_row") if "source_row" in work.columns else pl.lit(None, dtype=pl.Int64)
    dropped_rows = (work.filter(missing).select("_i", "row_id", pl.lit("missing_alleles").alias("reason"),
                                                pl.lit("chrom, pos, ref, alt or beta is empty").alias("detail"))
                    .vstack(decided.filter(pl.col("reason").is_not_null()).select("_i", "row_id", "reason", "detail"))
                    .join(work.select("_i", source_row.alias("_source_row")), on="_i", how="left").sort("_i"))
    dropped = [("harmonize", reason, rid, src, srow or i + 1, detail)
               for i, rid, reason, detail, srow in dropped_rows.iter_rows()]
    table = harmonized_table(decided, frame, verified=conv.verified)
    if dropped:
        drops.add_frame(pl.DataFrame(dropped, schema=DROP_ROW_SCHEMA, orient="row"))
    n_mis = sum(1 for d in dropped if d[1] == "ref_mismatch")
    check_ref_mismatch_share(table.height + n_mis, n_mis, what=f"coordinates of {src}", fasta=ref_genome.path,
                             declared=str(study.build or "hg38"))
    if "study_rsid" in table.columns:
        table = table.with_columns(pl.coalesce("rsid", "study_rsid").alias("rsid"))
    funnel = funnel_table([("input", frame.height), ("harmonized", table.height)])
    notes = [] if conv.verified else ["effect allele unknown: beta_alt is the study's beta unchanged; direction "
                                      "claims are unverified (orientation_verified=False)"]
    return Harmonized(table, funnel, str(conv), "coordinates", notes)


def orient_in_place(study: QTLStudy, frame: pl.DataFrame) -> Harmonized:
    """Precomputed path: no lookup; ``beta_alt`` from the declared convention and the
    table's own ``ref``/``alt`` columns (predictions are taken to be for the table's ALT).

    ``column:<c>``: +beta where the row's ``<c>`` allele is its ``alt``, -beta where it is
    its ``ref`` (as written; a row matching neither keeps beta and is unverified);
    ``ref``: -beta; ``alt``: +beta; ``unknown``: beta, unverified.
    """
    conv = study.convention
    n = frame.height
    b = frame["beta"].cast(pl.Float64)
    if conv.kind == "column":
        if conv.column not in frame.columns:
            raise MissingColumnError(conv.column, file=study.table, available=frame.columns)
        eff = frame[conv.column].cast(pl.Utf8).str.to_uppercase()
        alt = frame["alt"].cast(pl.Utf8).str.to_uppercase() if "alt" in frame.columns else pl.Series([None] * n)
        ref = frame["ref"].cast(pl.Utf8).str.to_uppercase() if "ref" in frame.columns else pl.Series([None] * n)
        is_alt = (eff == alt).fill_null(False)
        is_ref = (eff == ref).fill_null(False) & ~is_alt
        sign = pl.Series([1.0 if a else (-1.0 if r else 1.0) for a, r in zip(is_alt, is_ref)])
        verified = is_alt | is_ref
        how = pl.Series(["alt" if a else ("swap" if r else "unverified") for a, r in zip(is_alt, is_ref)])
    else:
        sign = pl.Series([-1.0 if conv.kind == "ref" else 1.0] * n)
        verified = pl.Series([conv.verified] * n, dtype=pl.Boolean)
        how = pl.Series([("declared_" + conv.kind) if conv.verified else "unknown"] * n)
    table = frame.with_columns((b * sign).alias("beta_alt"), verified.alias("orientation_verified"),
                               how.alias("harmonization"), pl.lit("precomputed").alias("lookup_class"))
    if "variant_key" not in table.columns:
        table = table.with_columns(_precomputed_variant_keys(table))
    funnel = funnel_table([("input", n), ("oriented", n)])
    return Harmonized(table, funnel, str(conv), "precomputed",
                      ["precomputed predictions: no allele lookup; beta oriented by the declared convention "
                       "against the table's own alleles"])


def _precomputed_variant_keys(table: pl.DataFrame) -> pl.Series:
    """``variant_key`` of each row on the precomputed path: the variant's coordinates
    (``chrom:pos:ref>alt``, in the table's own build) when the table has them, else its
    rsID, else (neither known) the row itself. Distinct variants are counted, and rows of
    one variant resampled together, by this key - never one "variant" per row."""
    n = table.height
    have = [c for c in ("chrom", "pos", "ref", "alt") if c in table.columns]
    if len(have) < 4 and {"hg19_chrom", "hg19_pos", "ref", "alt"} <= set(table.columns):
        coords = table.select(pl.col("hg19_chrom").alias("chrom"), pl.col("hg19_pos").alias("pos"), "ref", "alt")
    elif len(have) == 4:
        coords = table.select("chrom", "pos", "ref", "alt")
    else:
        coords = None
    keys: list[str | None] = [None] * n
    if coords is not None:
        for i, (c, p, r, a) in enumerate(coords.iter_rows()):
            if c is None or p is None or r is None or a is None:
                continue
            c = str(c).strip()
            keys[i] = f"{c if c.lower().startswith('chr') else 'chr' + c}:{int(p)}:{str(r).upper()}>{str(a).upper()}"
    if "rsid" in table.columns:
        rs = table["rsid"].cast(pl.Utf8).to_list()
        keys = [k if k is not None else (r or None) for k, r in zip(keys, rs)]
    rows = table["row_id"].cast(pl.Utf8).to_list()
    return pl.Series("variant_key", [k if k is not None else r for k, r in zip(keys, rows)], dtype=pl.Utf8)


def finalize(study: QTLStudy, h: Harmonized) -> Harmonized:
    """Add ``beta_seed`` (the original mode's y), require a non-empty result."""
    check_not_empty(h.table, what=f"{study.name}: the QTL table after harmonization ({h.route} route)",
                    hint="every row was dropped; see dropped.parquet for the reasons")
    sign = -1.0 if study.seed_negate_beta else 1.0
    h.table = h.table.with_columns((pl.col("beta").cast(pl.Float64) * sign).alias("beta_seed"))
    if h.table["beta_alt"].is_nan().all() or h.table["beta_alt"].is_null().all():  # pragma: no cover
        raise GuardError(f"{study.name}: no finite effect left after harmonization")
    return h

