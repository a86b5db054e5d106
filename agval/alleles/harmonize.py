"""Classify lookups and harmonize a study's variants against dbSNP records and the hg38 FASTA.

**Classification** (:func:`classify_lookup`), one class per queried rsID, first match wins:
``notfound`` (no record) > ``no_hg38`` (records, none with hg38 coordinates) > ``merged``
(the source says the rsID was merged into another) > ``multiallelic`` (more than one
candidate variant) > ``indel`` > ``ok_biallelic``.

**Effect-allele convention**, declared a priori per dataset (never inferred from results):

* ``"column:<name>"`` - positive beta refers to the allele in study column ``<name>``; an
  optional ``other_allele_col`` gives the other allele. The tested allele picks the ALT of
  multi-allelic rsIDs, may match on the opposite strand (complement) at non-palindromic
  sites, and the effect is negated where it is the reference allele;
* ``"alt"`` / ``"ref"`` - positive beta refers to the dbSNP ALT / REF allele (the study's
  allele columns, when given, only select and verify the site);
* ``"unknown"`` - the allele of beta is unknown (the caQTL table, pitfall P3): beta is
  kept as is and every row gets ``orientation_verified = False`` so later steps keep
  direction claims apart from magnitude.

**Harmonization** (:func:`harmonize`) per study row (duplicated rsIDs stay separate rows):

1. rsID malformed (``missing_rsid``/``malformed_rsid``), not found (``notfound``), without
   hg38 coordinates (``no_hg38``: other-build positions are refused, never used) - dropped
   at stage ``lookup``;
2. pick the hit whose alleles match the study's (direct strand first, then the complement
   for non-palindromic SNVs; indels compared as VCF or anchor-less alleles, ``-`` = empty);
   none: ``allele_mismatch`` / ``multiallelic_no_matching_alt``; several:
   ``multiallelic_ambiguous``;
3. palindromic A/T, C/G sites with allele-derived orientation: ``palindromic="drop"``
   drops them (``palindromic``); ``"af"`` resolves them by comparing the study's effect
   allele frequency (``eaf_col``) with dbSNP's ALT frequency (same side of 0.5 -> the
   effect allele is ALT), dropping ``palindromic_af_ambiguous`` within ``af_margin`` of 0.5
   and ``palindromic_no_af`` without frequencies;
4. REF checked against the FASTA (indels too): a substitution whose ALT matches the genome
   instead is swapped (``ref_fix``, effect negated); otherwise (and for any indel whose
   REF does not match) ``ref_mismatch``; a chromosome
   missing from the FASTA is ``chrom_not_in_reference``;
5. ``beta_alt`` = the effect oriented to the final ALT.

Steps 4-5 (and the decision code) are :func:`decide_alleles`, the per-row rule the
coordinates route (:func:`agval.qtl.harmonize.harmonize_coordinates`) shares.

Every drop goes to the :class:`~agval.drops.DropLog` with stage, reason, row_id and
detail; every row's decision is in :attr:`HarmonizeResult.decisions`.

**Input** (``study``): ``row_id`` (unique str), ``rsid``, the effect column (``beta_col``),
allele columns as named by the convention / ``other_allele_col`` (optional), optionally
``eaf_col``. A missing column raises :class:`~agval.errors.MissingColumnError` naming
the file and the column.

**Output** (:attr:`HarmonizeResult.table`, one row per kept study row, input order):

=================== ====== ========================================================
row_id              str    the study's row id
rsid                str    normalised rsID as in the study
chrom, pos          str/i64 hg38, ``chr``-prefixed, 1-based
ref, alt            str    VCF-style, REF verified against the FASTA
variant_key         str    :attr:`agval.coords.Variant.key` (``chr1:123:A>G``)
beta_alt            f64    effect oriented to ALT (as is when the convention is unknown)
harmonization       str    decision, e.g. ``alt``, ``swap``, ``flip``, ``flip_swap``,
                           ``palindromic_af_alt``, ``declared_ref``, ``unknown``; ``|ref_fix``
                           appended when REF/ALT were swapped to match the FASTA
orientation_verified bool  False when the convention is ``unknown``
lookup_class        str    see above
source_rsid         str    the record's rsID (the current id for a merged rsID)
af                  f64    dbSNP ALT frequency of the chosen record (oriented to ``alt``)
... pass-through    any    every other study column (renamed ``study_<name>`` on a clash)
=================== ====== ========================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from agval.alleles import rsid_check_expr
from agval.alleles.guards import (check_not_empty, check_not_pvalues, check_placeholder_alleles,
                                  check_single_build)
from agval.coords import Variant, complement, is_palindromic
from agval.drops import DropLog, funnel_table
from agval.errors import ConfigError, MissingColumnError
from agval.frames import assert_unique
from agval.genome import ReferenceGenome, check_ref_mismatch_share

LOOKUP_CLASSES = ("ok_biallelic", "multiallelic", "notfound", "no_hg38", "indel", "merged")

OUTPUT_COLUMNS: dict[str, pl.DataType] = {
    "row_id": pl.Utf8, "rsid": pl.Utf8, "chrom": pl.Utf8, "pos": pl.Int64, "ref": pl.Utf8, "alt": pl.Utf8,
    "variant_key": pl.Utf8, "beta_alt": pl.Float64, "harmonization": pl.Utf8,
    "orientation_verified": pl.Boolean, "lookup_class": pl.Utf8, "source_rsid": pl.Utf8, "af": pl.Float64,
}
DECISION_COLUMNS: dict[str, pl.DataType] = {
    "row_id": pl.Utf8, "rsid": pl.Utf8, "lookup_class": pl.Utf8, "kept": pl.Boolean,
    "harmonization": pl.Utf8, "stage": pl.Utf8, "reason": pl.Utf8, "detail": pl.Utf8,
}


# -- classification ------------------------------------------------------------------------
def classify_lookup(lookup: pl.DataFrame) -> pl.DataFrame:
    """Per queried rsID: ``query``, ``lookup_class``, ``n_hits`` (hg38 candidate variants)."""
    hg38 = pl.col("status").is_in(["ok", "merged"]) & pl.col("pos").is_not_null()
    is_indel = (pl.col("ref").str.len_chars() != 1) | (pl.col("alt").str.len_chars() != 1)
    g = (lookup.with_columns(_hg38=hg38, _indel=is_indel.fill_null(False),
                             _var=pl.when(hg38).then(pl.concat_str(["chrom", "pos", "ref", "alt"], separator=":")))
         .group_by("query", maintain_order=True)
         .agg(_found=(pl.col("status") != "notfound").any(),
              _any38=pl.col("_hg38").any(),
              _merged=(pl.col("status") == "merged").any(),
              n_hits=pl.col("_var").drop_nulls().n_unique(),
              _indel=(pl.col("_indel") & pl.col("_hg38")).any()))
    cls = (pl.when(~pl.col("_found")).then(pl.lit("notfound"))
           .when(~pl.col("_any38")).then(pl.lit("no_hg38"))
           .when(pl.col("_merged")).then(pl.lit("merged"))
           .when(pl.col("n_hits") > 1).then(pl.lit("multiallelic"))
           .when(pl.col("_indel")).then(pl.lit("indel"))
           .otherwise(pl.lit("ok_biallelic")))
    return g.select("query", cls.alias("lookup_class"), pl.col("n_hits").cast(pl.Int64))


# -- convention -------------------------------------------------------------------------------
@dataclass(frozen=True)
class EffectConvention:
    kind: Literal["alt", "ref", "unknown", "column"]
    column: str | None = None

    @classmethod
    def parse(cls, value: "str | EffectConvention") -> "EffectConvention":
        if isinstance(value, EffectConvention):
            return value
        v = str(value).strip()
        if v in ("alt", "ref", "unknown"):
            return cls(v)  # type: ignore[arg-type]
        if v.startswith("column:") and v[len("column:"):].strip():
            return cls("column", v[len("column:"):].strip())
        raise ConfigError(f"effect-allele convention {value!r} is not one of 'alt', 'ref', 'unknown', "
                          "'column:<name>' (declare it a priori per dataset)")

    @property
    def verified(self) -> bool:
        return self.kind != "unknown"

    def __str__(self) -> str:
        return f"column:{self.column}" if self.kind == "column" else self.kind


# -- allele matching ---------------------------------------------------------------------------
def _norm_allele(a: Any) -> str | None:
    if a is None:
        return None
    s = str(a).strip().upper()
    return "" if s in ("-", "") else s


def _same(study: str, vcf: str, anchored_indel: bool) -> bool:
    """A study allele equals a VCF allele, also when written without the indel anchor base."""
    return study == vcf or (anchored_indel and study == vcf[1:])


def _pair_fits(alleles: list[str], ref: str, alt: str, strand: bool) -> bool:
    """The study's unordered alleles (0, 1 or 2 of them) fit ref>alt (on the given strand)."""
    if not alleles:
        return not strand
    indel = len(ref) != 1 or len(alt) != 1
    if strand and (indel or is_palindromic(ref, alt)):
        return False
    anchored = indel and ref[:1] == alt[:1]
    sides = []
    for a in alleles:
        a = complement(a) if strand else a
        side = "alt" if _same(a, alt, anchored) else "ref" if _same(a, ref, anchored) else None
        if side is None:
            return False
        sides.append(side)
    return len(sides) < 2 or sides[0] != sides[1]


def effect_side(ref: str, alt: str, e: str, o: str | None, strand: bool) -> str | None:
    """'alt' / 'ref' when effect allele ``e`` (other ``o``) is the ALT / REF of ref>alt
    (``strand``: compared on the other strand; indels are never flipped; None otherwise).
    The one allele-pair match: harmonization and the TWAS weights' orientation use it."""
    indel = len(ref) != 1 or len(alt) != 1
    anchored = indel and ref[:1] == alt[:1]
    if strand:
        if indel:
            return None  # strand flips of indels are not attempted
        e = complement(e)
        o = complement(o) if o is not None else None
    if _same(e, alt, anchored) and (o is None or _same(o, ref, anchored)):
        return "alt"
    if _same(e, ref, anchored) and (o is None or _same(o, alt, anchored)):
        return "ref"
    return None


@dataclass
class HarmonizeResult:
    table: pl.DataFrame
    decisions: pl.DataFrame
    drops: DropLog
    funnel: pl.DataFrame
    convention: str
    notes: list[str] = field(default_factory=list)

    def reasons(self) -> pl.DataFrame:
        """Counts of dropped rows per (stage, reason)."""
        return (self.decisions.filter(~pl.col("kept")).group_by(["stage", "reason"]).len(name="n")
                .sort(["n", "reason"], descending=[True, False]))


def decide_alleles(rows: pl.DataFrame, genome: ReferenceGenome, *,
                   convention: str | EffectConvention) -> pl.DataFrame:
    """The per-row allele decision both harmonization routes share (vectorised).

    Each row is one study row whose site is already chosen: the lookup route's matched
    dbSNP record (:func:`harmonize`) or the table's own hg38 alleles
    (:func:`agval.qtl.harmonize.harmonize_coordinates`).

    Args:
        rows: ``chrom`` (str, as the genome names it), ``pos`` (1-based), ``ref``, ``alt``
            (upper-case VCF-style alleles of the site); optionally ``effect_is``
            (``"alt"``/``"ref"``: which of them the study's effect allele matched; null =
            neither; read only for a ``column:`` convention), ``strand`` (bool: matched on
            the opposite strand), ``palindromic_af`` (bool: a palindromic site oriented by
            allele frequency) and ``effect_allele`` (for the drop detail). Other columns
            are kept.
        genome: the hg38 FASTA; REF is checked with :meth:`ReferenceGenome.check_ref`,
            once per distinct variant.
        convention: the declared effect allele (``alt``, ``ref``, ``unknown``, ``column:<c>``).

    Returns:
        ``rows`` in input order with ``ref``/``alt`` final (swapped where the FASTA has the
        ALT: ``ref_fixed``) and ``decision`` (code: ``alt``, ``swap``, ``flip``,
        ``flip_swap``, ``palindromic_af_alt``/``_swap``, ``declared_alt``/``_ref``,
        ``unknown``, ``|flip`` for a declared convention matched on the other strand,
        ``|ref_fix`` appended), ``sign`` (f64 +1/-1: ``beta_alt = sign * beta``; +1 under
        ``unknown``), ``reason`` (drop reason, first that applies: ``invalid_alleles``,
        ``chrom_not_in_reference``, ``effect_allele_mismatch``, ``ref_mismatch``; null when
        kept; ``decision``/``sign`` are null then) and ``detail``.
    """
    conv = EffectConvention.parse(convention)
    extra = [pl.lit(False).alias(c) for c in ("strand", "palindromic_af") if c not in rows.columns]
    extra += [pl.lit(None, dtype=pl.Utf8).alias(c) for c in ("effect_is", "effect_allele") if c not in rows.columns]
    acgt = "^[ACGT]+$"
    df = (rows.with_columns(*extra, pl.col("ref").cast(pl.Utf8).fill_null(""),
                            pl.col("alt").cast(pl.Utf8).fill_null(""), pl.col("pos").cast(pl.Int64))
          .with_row_index("_row")
          .with_columns((pl.col("ref").str.contains(acgt) & pl.col("alt").str.contains(acgt)
                         & (pl.col("ref") != pl.col("alt"))).alias("_valid")))
    site = ["chrom", "pos", "ref", "alt"]
    keys = df.filter("_valid").select(site).unique(maintain_order=True)
    checks = [genome.check_ref(c, p, r, a) for c, p, r, a in keys.iter_rows()]
    keys = keys.with_columns(pl.Series("_status", [c.status for c in checks], dtype=pl.Utf8),
                             pl.Series("_genome_ref", [c.genome_ref for c in checks], dtype=pl.Utf8))
    df = df.join(keys, on=site, how="left").sort("_row")
    ori = pl.col("effect_is") if conv.kind == "column" else pl.lit("ref" if conv.kind == "ref" else "alt")
    is_alt = ori == "alt"
    if conv.kind == "column":
        base = (pl.when(pl.col("palindromic_af"))
                .then(pl.when(is_alt).then(pl.lit("palindromic_af_alt")).otherwise(pl.lit("palindromic_af_swap")))
                .when(pl.col("strand")).then(pl.when(is_alt).then(pl.lit("flip")).otherwise(pl.lit("flip_swap")))
                .otherwise(pl.when(is_alt).then(pl.lit("alt")).otherwise(pl.lit("swap"))))
    else:
        word = "unknown" if conv.kind == "unknown" else f"declared_{conv.kind}"
        base = pl.when(pl.col("strand")).then(pl.lit(word + "|flip")).otherwise(pl.lit(word))
    status = pl.col("_status")
    reason = (pl.when(~pl.col("_valid")).then(pl.lit("invalid_alleles"))
              .when(status == "missing").then(pl.lit("chrom_not_in_reference"))
              .when(ori.is_null()).then(pl.lit("effect_allele_mismatch"))
              .when(status == "mismatch").then(pl.lit("ref_mismatch")))
    ea = pl.when(pl.col("effect_allele").is_null()).then(pl.lit("None")).otherwise(
        pl.concat_str([pl.lit("'"), pl.col("effect_allele"), pl.lit("'")]))
    detail = (pl.when(pl.col("reason") == "invalid_alleles")
              .then(pl.concat_str([pl.col("ref"), pl.lit(">"), pl.col("alt"),
                                   pl.lit(" is not a VCF-style ACGT substitution/indel")]))
              .when(pl.col("reason") == "chrom_not_in_reference")
              .then(pl.concat_str([pl.col("chrom"), pl.lit(f" is not in {genome.path}")]))
              .when(pl.col("reason") == "effect_allele_mismatch")
              .then(pl.concat_str([pl.lit("effect allele "), ea, pl.lit(" is neither "), pl.col("ref"),
                                   pl.lit(" nor "), pl.col("alt")]))
              .when(pl.col("reason") == "ref_mismatch")
              .then(pl.concat_str([pl.col("chrom"), pl.lit(":"), pl.col("pos").cast(pl.Utf8), pl.lit(" REF "),
                                   pl.col("ref"), pl.lit(" but the FASTA has "), pl.col("_genome_ref"),
                                   pl.lit(" (ALT "), pl.col("alt"), pl.lit(" does not match either)")])))
    swapped = (status == "swap").fill_null(False)
    final_alt = pl.when(swapped).then(~is_alt).otherwise(is_alt)
    sign = pl.lit(1.0) if conv.kind == "unknown" else pl.when(final_alt).then(pl.lit(1.0)).otherwise(pl.lit(-1.0))
    kept = pl.col("reason").is_null()
    return (df.with_columns(reason.alias("reason"))
            .with_columns(detail.alias("detail"),
                          pl.when(kept).then(pl.concat_str([base, pl.when(swapped).then(pl.lit("|ref_fix"))
                                                            .otherwise(pl.lit(""))])).alias("decision"),
                          pl.when(kept).then(sign).alias("sign"),
                          (swapped & kept).alias("ref_fixed"),
                          pl.when(swapped & kept).then(pl.col("alt")).otherwise(pl.col("ref")).alias("ref"),
                          pl.when(swapped & kept).then(pl.col("ref")).otherwise(pl.col("alt")).alias("alt"))
            .drop("_row", "_valid", "_status", "_genome_ref"))


def harmonized_table(decided: pl.DataFrame, study: pl.DataFrame, *, verified: bool,
                     own: tuple[str, ...] = ("row_id",)) -> pl.DataFrame:
    """The harmonized table (:data:`OUTPUT_COLUMNS`, then the study's other columns, renamed
    ``study_<name>`` on a clash) of the rows :func:`decide_alleles` kept, in study order.

    ``decided`` carries ``_i`` (the row's index in ``study``), ``row_id``, ``rsid``,
    ``lookup_class``, ``source_rsid``, ``af`` (the ALT frequency before any REF fix) and
    ``_beta`` (the study's effect); ``beta_alt = sign * _beta``. ``own``: study columns
    not passed through.
    """
    ok = decided.filter(pl.col("reason").is_null())
    keys = [Variant(c, p, r, a).key for c, p, r, a in ok.select("chrom", "pos", "ref", "alt").iter_rows()]
    out = ok.select(
        "_i", "row_id", "rsid", "chrom", "pos", "ref", "alt", pl.Series("variant_key", keys, dtype=pl.Utf8),
        (pl.col("sign") * pl.col("_beta")).alias("beta_alt"), pl.col("decision").alias("harmonization"),
        pl.lit(verified).alias("orientation_verified"), "lookup_class", "source_rsid",
        pl.when(pl.col("ref_fixed")).then(1.0 - pl.col("af")).otherwise(pl.col("af")).alias("af"),
    ).cast({"_i": pl.Int64, **OUTPUT_COLUMNS})
    passthrough = [c for c in study.columns if c not in own]
    rename = {c: (f"study_{c}" if c in OUTPUT_COLUMNS else c) for c in passthrough}
    extra = (study.with_row_index("_i").with_columns(pl.col("_i").cast(pl.Int64))
             .select(["_i"] + passthrough).rename(rename))
    return out.join(extra, on="_i", how="left").sort("_i").drop("_i")


def harmonize(study: pl.DataFrame, lookup: pl.DataFrame, genome: ReferenceGenome | str | Path, *,
              convention: str | EffectConvention, beta_col: str = "beta", other_allele_col: str | None = None,
              allele_cols: tuple[str, ...] = (), palindromic: Literal["drop", "af"] = "drop",
              eaf_col: str | None = None, af_margin: float = 0.1, keep_merged: bool = True,
              drops: DropLog | None = None, source_file: str | Path | None = None,
              guards: bool = True, placeholder_min_rows: int = 10) -> HarmonizeResult:
    """Harmonize ``study`` rows to hg38 ALT-oriented variants (see the module docstring).

    ``allele_cols`` names the study's allele columns for conventions ``alt``/``ref``/
    ``unknown`` (an unordered pair used to select and verify the site). ``drops`` receives
    every dropped row (a new :class:`DropLog` when None).

    Args:
        study: ``row_id`` (unique), ``rsid``, ``beta_col`` and the allele columns the
            convention needs.
        lookup: the allele lookup table (or a ``LookupResult``): hg38 records per rsID.
        genome: the hg38 FASTA (REF of every harmonized variant checked,
            :meth:`ReferenceGenome.check_ref`).
        convention: the declared effect allele: ``alt``, ``ref``, ``unknown`` or
            ``column:<name>``.

    Returns:
        :class:`HarmonizeResult`: ``table`` (one row per kept study row: ``chrom, pos, ref,
        alt, variant_key``, ``beta_alt`` oriented to ALT), ``decisions`` (one per input row),
        ``drops``, ``funnel``.

    Raises:
        MissingColumnError: a required column is absent; ConfigError: an unknown
        ``palindromic`` policy or ``af`` without ``eaf_col``; GuardError: p-values used as
        effects, placeholder alleles, mixed builds, or a REF-mismatch share of a wrong build.
    """
    conv = EffectConvention.parse(convention)
    if not isinstance(lookup, pl.DataFrame) and hasattr(lookup, "table"):
        lookup = lookup.table  # a LookupResult
    if palindromic not in ("drop", "af"):
        raise ConfigError(f"palindromic must be 'drop' or 'af', not {palindromic!r}")
    drops = drops if drops is not None else DropLog()
    src = str(source_file) if source_file is not None else None
    effect_col = conv.column if conv.kind == "column" else None
    unordered = tuple(allele_cols) if conv.kind != "column" else ()
    required = ["row_id", "rsid", beta_col] + [c for c in (effect_col, other_allele_col, *unordered) if c]
    if palindromic == "af" and eaf_col:
        required.append(eaf_col)
    for c in required:
        if c not in study.columns:
            raise MissingColumnError(c, file=src, available=study.columns)
    if conv.kind == "column" and palindromic == "af" and not eaf_col:
        raise ConfigError("palindromic='af' needs eaf_col (the study's effect-allele frequency column)")
    study = study.with_columns(pl.col("row_id").cast(pl.Utf8))
    assert_unique(study, "row_id", what=f"study rows{f' of {src}' if src else ''}")
    if guards:
        check_not_pvalues(study[beta_col], column=beta_col, file=src)
        if effect_col:
            check_placeholder_alleles(study, effect_col, other_allele_col, what=f"study alleles of {src or 'study'}",
                                      min_rows=placeholder_min_rows)
        elif len(unordered) == 2:
            check_placeholder_alleles(study, unordered[0], unordered[1],
                                      what=f"study alleles of {src or 'study'}", min_rows=placeholder_min_rows)
        if lookup.height:
            check_single_build(lookup["assembly"], what="allele lookup coordinates")
    # the raw id as the file gave it: a loader that keeps only rs ids in ``rsid`` carries the cell
    # in ``variant_id``, so a 'chr1:100' or 'esv123' is dropped as "not an rsID", not "no rsID given"
    raw_id = (pl.coalesce(pl.col("rsid").cast(pl.Utf8), pl.col("variant_id").cast(pl.Utf8))
              if "variant_id" in study.columns else pl.col("rsid").cast(pl.Utf8))
    norm, why = rsid_check_expr(raw_id)
    work = study.with_columns(norm.alias("_rsid"), why.alias("_why"), raw_id.alias("_raw_id"),
                              pl.int_range(pl.len()).alias("_i"))
    classes = classify_lookup(lookup) if lookup.height else pl.DataFrame(
        schema={"query": pl.Utf8, "lookup_class": pl.Utf8, "n_hits": pl.Int64})
    class_of = dict(zip(classes["query"].to_list(), classes["lookup_class"].to_list()))
    hits: dict[str, list[tuple]] = {}
    usable = lookup.filter(pl.col("status").is_in(["ok", "merged"]) & pl.col("pos").is_not_null())
    for q, rs, ch, p, r, a, af in usable.select("query", "rsid", "chrom", "pos", "ref", "alt", "af").unique(
            subset=["query", "chrom", "pos", "ref", "alt"], maintain_order=True).iter_rows():
        hits.setdefault(q, []).append((rs, ch, int(p), r or "", a or "", af))
    ref_genome = genome if isinstance(genome, ReferenceGenome) else ReferenceGenome(genome)

    cols = ["row_id", "_rsid", "_why", "_raw_id", beta_col]
    e_idx = o_idx = f_idx = None
    if effect_col:
        e_idx = len(cols)
        cols.append(effect_col)
    if other_allele_col:
        o_idx = len(cols)
        cols.append(other_allele_col)
    u_idx = []
    for c in unordered:
        u_idx.append(len(cols))
        cols.append(c)
    if eaf_col:
        f_idx = len(cols)
        cols.append(eaf_col)
    sites: list[dict[str, Any]] = []  # rows whose site is chosen: decided together by decide_alleles
    decisions: list[tuple] = []  # (row index, decision row)
    drop_rows: list[tuple] = []

    i = 0

    # the file row of each study row: the loader's source_row when the study carries it (the
    # frame here may already be filtered or split per mark), else the row's position
    file_rows = (work["source_row"].cast(pl.Int64).to_list() if "source_row" in work.columns
                 else list(range(1, work.height + 1)))
    file_names = (work["source_file"].cast(pl.Utf8).to_list() if src is None and "source_file" in work.columns
                  else [src] * work.height)

    def drop(rid, rsid, lclass, stage, reason, detail, at=None):
        k = i if at is None else at
        decisions.append((k, (rid, rsid, lclass, False, None, stage, reason, detail)))
        drop_rows.append((k, (stage, reason, rid, file_names[k], file_rows[k], detail)))

    for i, row in enumerate(work.select(cols).iter_rows()):
        rid, rsid, why, raw_rsid, beta = row[0], row[1], row[2], row[3], row[4]
        if why is not None:
            detail = ("no rsID given" if why == "missing_rsid" else f"{raw_rsid!r} is not an rsID"
                      + (" (looks like a position; positions in rsID tables are not used for the lookup)"
                         if raw_rsid and ":" in str(raw_rsid) else ""))
            drop(rid, None, "invalid", "lookup", why, detail)
            continue
        lclass = class_of.get(rsid)
        if lclass is None:
            drop(rid, rsid, "not_looked_up", "lookup", "not_looked_up",
                 f"{rsid} is not in the lookup table (lookup not run for it)")
            continue
        if lclass == "notfound":
            drop(rid, rsid, lclass, "lookup", "notfound", f"{rsid} not found in the allele source")
            continue
        if lclass == "no_hg38":
            drop(rid, rsid, lclass, "lookup", "no_hg38",
                 f"{rsid} has no hg38 placement; other-build (hg19) coordinates are refused, not lifted over")
            continue
        if lclass == "merged" and not keep_merged:
            drop(rid, rsid, lclass, "lookup", "merged", f"{rsid} was merged into another rsID")
            continue
        try:
            b = None if beta is None else float(beta)
        except (TypeError, ValueError):
            b = None
        if b is None or not math.isfinite(b):
            drop(rid, rsid, lclass, "harmonize", "missing_effect", f"{beta_col}={beta!r}")
            continue
        cands = hits.get(rsid, [])
        # -- choose the hit and the orientation ---------------------------------------------------
        strand = False
        if conv.kind == "column":
            e = _norm_allele(row[e_idx])
            o = _norm_allele(row[o_idx]) if o_idx is not None else None
            if e is None or (e == "" and o is None):
                drop(rid, rsid, lclass, "harmonize", "missing_effect_allele", f"{effect_col}={row[e_idx]!r}")
                continue
            matches = []
            for h in cands:
                for s in (False, True):
                    if s and is_palindromic(h[3], h[4]):
                        continue
                    ori = effect_side(h[3], h[4], e, o, s)
                    if ori:
                        matches.append((h, ori, s))
            if any(not m[2] for m in matches):
                matches = [m for m in matches if not m[2]]
            chosen = {m[0] for m in matches}
            pair = f"{e or '-'}/{o or '?'}"
        else:
            alle = [a for a in (_norm_allele(row[k]) for k in u_idx) if a is not None]
            matches = []
            for h in cands:
                for s in (False, True):
                    if _pair_fits(alle, h[3], h[4], s):
                        matches.append((h, None, s))
                        break
            if any(not m[2] for m in matches):
                matches = [m for m in matches if not m[2]]
            chosen = {m[0] for m in matches}
            pair = "/".join(a or "-" for a in alle) or "(no study alleles)"
        if not chosen:
            avail = ", ".join(f"{h[3]}>{h[4]}" for h in cands)
            reason = "multiallelic_no_matching_alt" if len(cands) > 1 else "allele_mismatch"
            drop(rid, rsid, lclass, "harmonize", reason, f"study alleles {pair} match none of {avail}")
            continue
        if len(chosen) > 1:
            avail = ", ".join(f"{h[3]}>{h[4]}" for h in chosen)
            drop(rid, rsid, lclass, "harmonize", "multiallelic_ambiguous",
                 f"study alleles {pair} fit several records ({avail}); the tested ALT cannot be told")
            continue
        h, ori, strand = matches[0]
        src_rsid, chrom, pos, ref, alt, af = h
        pal_af = False
        if conv.kind == "column" and is_palindromic(ref, alt):
            if palindromic == "drop":
                drop(rid, rsid, lclass, "harmonize", "palindromic",
                     f"{ref}/{alt} is palindromic; the strand cannot be told from the alleles")
                continue
            eaf = row[f_idx] if f_idx is not None else None
            try:
                eaf = None if eaf is None else float(eaf)
            except (TypeError, ValueError):
                eaf = None
            if eaf is None or af is None:
                drop(rid, rsid, lclass, "harmonize", "palindromic_no_af",
                     f"{ref}/{alt} palindromic; study EAF={eaf}, dbSNP ALT AF={af}")
                continue
            if abs(eaf - 0.5) < af_margin or abs(af - 0.5) < af_margin:
                drop(rid, rsid, lclass, "harmonize", "palindromic_af_ambiguous",
                     f"{ref}/{alt} palindromic; study EAF={eaf:.3f}, ALT AF={af:.3f} too close to 0.5")
                continue
            ori, pal_af = ("alt" if (eaf > 0.5) == (af > 0.5) else "ref"), True
        sites.append({"_i": i, "row_id": rid, "rsid": rsid, "chrom": chrom, "pos": pos, "ref": ref, "alt": alt,
                      "effect_is": ori, "strand": strand, "palindromic_af": pal_af, "_beta": b,
                      "lookup_class": lclass, "source_rsid": src_rsid, "af": af})

    # -- alleles valid, REF on the FASTA, decision and sign: the rule both routes share ------------------
    site_schema = {"_i": pl.Int64, "row_id": pl.Utf8, "rsid": pl.Utf8, "chrom": pl.Utf8, "pos": pl.Int64,
                   "ref": pl.Utf8, "alt": pl.Utf8, "effect_is": pl.Utf8, "strand": pl.Boolean,
                   "palindromic_af": pl.Boolean, "_beta": pl.Float64, "lookup_class": pl.Utf8,
                   "source_rsid": pl.Utf8, "af": pl.Float64}
    decided = decide_alleles(pl.DataFrame(sites, schema=site_schema, orient="row"), ref_genome, convention=conv)
    for r in decided.filter(pl.col("reason").is_not_null()).iter_rows(named=True):
        drop(r["row_id"], r["rsid"], r["lookup_class"], "harmonize", r["reason"], r["detail"], at=r["_i"])
    ok = decided.filter(pl.col("reason").is_null())
    for k, rid, rsid, lclass, decision in ok.select("_i", "row_id", "rsid", "lookup_class", "decision").iter_rows():
        decisions.append((k, (rid, rsid, lclass, True, decision, None, None, None)))
    decisions.sort(key=lambda t: t[0])
    drop_rows.sort(key=lambda t: t[0])
    decisions = [d for _, d in decisions]
    drop_rows = [d for _, d in drop_rows]

    table = harmonized_table(decided, study, verified=conv.verified, own=("row_id", "rsid"))
    dec = pl.DataFrame(decisions, schema=DECISION_COLUMNS, orient="row")
    if drop_rows:
        from agval.drops import DROP_ROW_SCHEMA

        drops.add_frame(pl.DataFrame(drop_rows, schema=DROP_ROW_SCHEMA, orient="row"))
    n_valid = work.filter(pl.col("_why").is_null()).height
    n_found = dec.filter(pl.col("kept") | (pl.col("stage") == "harmonize")).height
    funnel = funnel_table([("input", study.height), ("valid_rsid", n_valid), ("found_hg38", n_found),
                           ("harmonized", table.height)])
    notes = []
    if guards:
        check_not_empty(dec.filter(pl.col("kept") | (pl.col("stage") == "harmonize")),
                        what=f"allele lookup of {src or 'the study'}",
                        hint="no rsID was found with hg38 coordinates; check the ids and the source")
        if table.height:
            check_placeholder_alleles(table, "ref", "alt", what="harmonized variants", min_rows=placeholder_min_rows)
        n_mis = sum(1 for r in drop_rows if r[1] == "ref_mismatch")
        check_ref_mismatch_share(table.height + n_mis, n_mis,
                                 what=f"alleles of {src or 'the study'} looked up on hg38", fasta=ref_genome.path)
    if conv.kind == "unknown":
        notes.append("effect allele unknown: beta_alt is the study's beta unchanged; direction claims are "
                     "unverified (orientation_verified=False)")
    return HarmonizeResult(table=table, decisions=dec, drops=drops, funnel=funnel, convention=str(conv),
                           notes=notes)
