"""Loaders for QTL tables (STUDIES.md §1.1, §1.8).

Every loader returns ``(frame, drops)``: a polars DataFrame with a unique ``row_id``,
``source_file``, ``source_row`` and normalised columns, and a
:class:`~agval.drops.DropLog` of the rows it dropped (stage ``load``).

Coordinates are reported in the build of the file and labelled (``build`` column or
``hg19_*`` column names); nothing here lifts over or looks alleles up. Duplicated SNPs
(one SNP, several peaks or genes) stay separate rows with their own ``row_id`` (P9).

Value policy (see :mod:`agval.io._common`): a missing required value (empty, ``NA``,
``.``) is a counted drop; a malformed value (text where a number belongs) raises
:class:`~agval.errors.InputError` naming file, column and row.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import polars as pl

from agval.coords import Build
from agval.drops import DropLog
from agval.alleles.guards import check_not_pvalues
from agval.errors import GuardError, InputError, MissingColumnError
from agval.io._common import (add_row_ids, chrom_expr, clean_text, dataset_name, fill_null,
                              drop_non_finite, match_footnoted, parse_float, parse_int, read_text_table,
                              resolve_columns, rsid_expr, split_drops,
                              strip_gene_version_expr)

__all__ = ["load_gse86886_caqtl", "load_gse86886_eqtl", "load_gse116193_hqtl",
           "load_gtex_signif_pairs", "load_generic_qtl", "check_slope_not_pvalues",
           "HQTL_MARK_COLUMNS"]

# ----------------------------------------------------------------------------- GSE86886

_SNP_RE = r"^(?:chr)?([0-9A-Za-z]+):(\d+)(?:_(.*))?$"
_PEAK_RE = r"^(?:chr)?([0-9A-Za-z]+):(\d+)-(\d+)$"


def _load_gse86886(path: str | Path, *, dataset: str, trait_kind: str) -> tuple[pl.DataFrame, DropLog]:
    path = Path(path)
    raw = read_text_table(path)
    cols = raw.columns
    for c in ("SNP", "gene"):
        if c not in cols:
            raise MissingColumnError(c, file=path, available=cols)
    beta_col = "beta" if "beta" in cols else ("Beta" if "Beta" in cols else None)
    if beta_col is None:
        raise MissingColumnError("beta", file=path, available=cols)
    df = add_row_ids(raw, dataset=dataset, file=path)
    drops = DropLog()
    beta = parse_float(df, beta_col, file=path)
    snp = clean_text(df, "SNP")
    gene = clean_text(df, "gene")
    df = df.with_columns(snp.alias("snp"), gene.alias("trait_id"), beta.alias("beta"))
    parts = pl.col("snp").str.extract_groups(_SNP_RE)
    df = df.with_columns(
        chrom_expr(parts.struct.field("1")).alias("hg19_chrom"),
        parts.struct.field("2").cast(pl.Int64, strict=False).alias("hg19_pos"),
        rsid_expr(parts.struct.field("3")).alias("rsid"),
    )
    df = split_drops(df, pl.col("snp").is_null(), drops, "missing_snp", detail="SNP is empty")
    df = split_drops(df, pl.col("hg19_pos").is_null(), drops, "malformed_snp",
                     detail=pl.lit("SNP ") + pl.col("snp") + pl.lit(" is not chr:pos_rsID"))
    df = split_drops(df, pl.col("trait_id").is_null(), drops, "missing_trait",
                     detail="gene/peak is empty")
    df = drop_non_finite(df, ["beta"], drops)
    df = split_drops(df, pl.col("beta").is_null(), drops, "missing_beta", detail=f"{beta_col} is missing")
    if trait_kind == "peak":
        pk = pl.col("trait_id").str.extract_groups(_PEAK_RE)
        df = df.with_columns(
            pl.when(pk.struct.field("2").is_not_null()).then(pl.col("trait_id")).otherwise(None).alias("peak_id"),
            chrom_expr(pk.struct.field("1")).alias("peak_chrom"),
            pk.struct.field("2").cast(pl.Int64, strict=False).alias("peak_start"),
            pk.struct.field("3").cast(pl.Int64, strict=False).alias("peak_end"),
        )
        extra = ["peak_id", "peak_chrom", "peak_start", "peak_end"]
    else:
        df = df.with_columns(pl.col("trait_id").alias("gene"))
        extra = ["gene"]
    out = df.select(["row_id", "source_file", "source_row", "rsid", "hg19_chrom", "hg19_pos", *extra,
                     "trait_id", "beta", "snp"]).with_columns(
        pl.lit(None, dtype=pl.Utf8).alias("effect_allele"),
        pl.lit(Build.GRCh37.value).alias("build"),
        pl.lit(dataset).alias("dataset"),
    )
    return out, drops


def load_gse86886_caqtl(path: str | Path, *, dataset: str = "caQTL") -> tuple[pl.DataFrame, DropLog]:
    """The caQTL table of Gate et al. 2018 (GSE86886, ``ATAC-QTLs.csv``).

    Columns read by name: ``SNP`` (``chr12:9436083_rs61916194``: hg19 position and
    rsID), ``gene`` (the ATAC peak, ``chr12:9435883-9437556``, hg19) and ``beta``
    (fallback ``Beta``). Other columns are ignored.

    Output columns: ``row_id`` (``caQTL:<row>``), ``source_file``, ``source_row``,
    ``rsid`` (null when the SNP carries none), ``hg19_chrom`` (``chr12``),
    ``hg19_pos`` (1-based), ``peak_id`` (the peak string; null if it is not
    ``chr:start-end``), ``peak_chrom``, ``peak_start``, ``peak_end`` (as written, hg19),
    ``trait_id`` (= the ``gene`` value), ``beta`` (sign as published), ``snp`` (raw),
    ``effect_allele`` (always null: the study does not say which allele ``beta`` is
    for, P3), ``build`` (``hg19``), ``dataset``.

    Drops (counted): ``missing_snp``, ``malformed_snp`` (not ``chr:pos_...``),
    ``missing_trait``, ``missing_beta``. A non-numeric beta raises ``InputError``.

    Args:
        path: the ``ATAC-QTLs.csv`` file; dataset: the ``row_id`` prefix.

    Returns:
        ``(frame, drops)``: the output columns above, one row per kept input row, and the
            counted drops.

    Raises:
        InputError: a non-numeric beta; MissingColumnError: no ``SNP``/``gene``/``beta``.
    """
    return _load_gse86886(path, dataset=dataset, trait_kind="peak")


def load_gse86886_eqtl(path: str | Path, *, dataset: str = "eQTL") -> tuple[pl.DataFrame, DropLog]:
    """The eQTL table of the same study (``eQTLs.csv``, legacy only): like
    :func:`load_gse86886_caqtl` but ``gene`` is a gene symbol, output as ``gene`` and
    ``trait_id`` (no peak columns).

    Args:
        path: the ``eQTLs.csv`` file; dataset: the ``row_id`` prefix.

    Returns:
        ``(frame, drops)``: the output columns above, one row per kept input row, and the
            counted drops.

    Raises:
        InputError: a non-numeric beta; MissingColumnError: a required column is absent.
    """
    return _load_gse86886(path, dataset=dataset, trait_kind="gene")


# ----------------------------------------------------------------------------- GSE116193

#: The hQTL table's marks and their p-value headers (without footnote letters).
HQTL_MARK_COLUMNS: dict[str, str] = {"H3K27ac": "H3K27ac p-value", "H3K4me1": "H3K4me1 p-value"}
_HQTL_PVALUE_RE = re.compile(r"^(\S+) p-value\s?(?:[a-z]{1,2}|[*\u2020\u2021\u00a7\u00b6]{1,2})?$")


def load_gse116193_hqtl(path: str | Path, *, dataset: str = "hQTL",
                        one_row_per_mark: bool = True) -> tuple[pl.DataFrame, DropLog]:
    """The hQTL summary table of Pelikan et al. 2018 (GSE116193).

    Headers (footnote letters glued on are accepted **for this format only**):
    ``epiQTL rsID``, ``Chr``, ``Bp (hg19)``, ``Ref Allele<c>``, ``Alt Allele<d>``,
    ``log2 (effect size)`` and one ``<mark> p-value<b>`` column per histone mark
    (``H3K27ac``, ``H3K4me1``; any ``<mark> p-value`` column is recognised). A p-value
    of ``.`` (or empty/NA) means "not significant for that mark".

    Layout (documented choice): with ``one_row_per_mark=True`` (default) the output has
    one row per (source row, significant mark), ``row_id = "hQTL:<row>:<mark>"``, with
    ``mark`` and ``mark_p`` set; this is what mark-matched (corrected) scoring needs.
    With ``one_row_per_mark=False`` it has one row per source row,
    ``row_id = "hQTL:<row>"`` and ``mark``/``mark_p`` null. Both carry ``marks``, the
    comma-joined significant marks in column order (the seed's ``modality``:
    ``"H3K27ac"``, ``"H3K4me1"`` or ``"H3K27ac,H3K4me1"``). Duplicated rsIDs (one
    SNP in several rows) stay separate rows (P9).

    Output columns: ``row_id``, ``source_file``, ``source_row``, ``rsid`` (null unless it
    starts with ``rs``; downstream lookup counts those), ``variant_id`` (the raw id cell, so a
    ``chr1:100`` or ``esv123`` is dropped as "not an rsID" naming it), ``hg19_chrom``, ``hg19_pos``,
    ``ref``, ``alt`` (upper-case, as in the file), ``beta`` (``log2 (effect size)``,
    sign as published: orientation is decided a priori in the study, never here, P4),
    ``marks``, ``mark``, ``mark_p``, ``p_<mark>`` per mark column (null = not
    significant), ``effect_allele`` (null: the file's footnotes define it, not the
    loader), ``build`` (``hg19``), ``dataset``.

    Drops (counted): ``no_significant_mark``, ``missing_position`` (Chr or Bp empty),
    ``missing_beta``. Malformed numbers raise ``InputError``.

    Args:
        path: the hQTL summary table; dataset: the ``row_id`` prefix; one_row_per_mark: the
            layout above.

    Returns:
        ``(frame, drops)``: the output columns above, one row per kept input row, and the
            counted drops.

    Raises:
        InputError: a malformed number; MissingColumnError: a required header is absent.
    """
    path = Path(path)
    raw = read_text_table(path)
    cols = raw.columns
    wanted = {"rsid": "epiQTL rsID", "chrom": "Chr", "pos": "Bp (hg19)", "ref": "Ref Allele",
              "alt": "Alt Allele", "beta": "log2 (effect size)"}
    found: dict[str, str] = {}
    for key, header in wanted.items():
        hit = match_footnoted(cols, header)
        if hit is None:
            raise MissingColumnError(header, file=path, available=cols)
        found[key] = hit
    marks: dict[str, str] = {}
    for c in cols:
        m = _HQTL_PVALUE_RE.match(c)
        if m:
            if m.group(1) in marks:
                raise InputError(f"two p-value columns for mark {m.group(1)}: {marks[m.group(1)]!r}, {c!r}",
                                 file=path)
            marks[m.group(1)] = c
    if not marks:
        raise MissingColumnError("H3K27ac p-value", file=path, available=cols)

    df = add_row_ids(raw, dataset=dataset, file=path)
    drops = DropLog()
    pcols = {mark: f"p_{mark}" for mark in marks}
    df = df.with_columns(
        rsid_expr(pl.col(found["rsid"])).alias("rsid"),
        clean_text(df, found["rsid"]).alias("variant_id"),
        chrom_expr(pl.col(found["chrom"])).alias("hg19_chrom"),
        parse_int(df, found["pos"], file=path).alias("hg19_pos"),
        clean_text(df, found["ref"]).str.to_uppercase().alias("ref"),
        clean_text(df, found["alt"]).str.to_uppercase().alias("alt"),
        parse_float(df, found["beta"], file=path).alias("beta"),
        *[parse_float(df, col, file=path).alias(pcols[mark]) for mark, col in marks.items()],
    )
    sig = [pl.when(pl.col(pcols[m]).is_not_null()).then(pl.lit(m)) for m in marks]
    df = df.with_columns(pl.concat_list(sig).list.drop_nulls().alias("_marks"))
    df = df.with_columns(pl.col("_marks").list.join(",").alias("marks"))
    df = split_drops(df, pl.col("_marks").list.len() == 0, drops, "no_significant_mark",
                     detail="every mark p-value is '.' (not significant)")
    df = split_drops(df, pl.col("hg19_chrom").is_null() | pl.col("hg19_pos").is_null(), drops,
                     "missing_position", detail="Chr or Bp (hg19) is empty")
    df = drop_non_finite(df, ["beta"], drops)
    df = split_drops(df, pl.col("beta").is_null(), drops, "missing_beta",
                     detail=f"{found['beta']} is missing")
    if one_row_per_mark:
        df = df.explode("_marks").rename({"_marks": "mark"})
        df = df.with_columns(
            (pl.col("row_id") + pl.lit(":") + pl.col("mark")).alias("row_id"),
            pl.coalesce([pl.when(pl.col("mark") == m).then(pl.col(pcols[m])) for m in marks]).alias("mark_p"),
        )
    else:
        df = df.with_columns(pl.lit(None, dtype=pl.Utf8).alias("mark"),
                             pl.lit(None, dtype=pl.Float64).alias("mark_p"))
    out = df.select(["row_id", "source_file", "source_row", "rsid", "variant_id", "hg19_chrom", "hg19_pos", "ref",
                     "alt", "beta", "marks", "mark", "mark_p", *pcols.values()]).with_columns(
        pl.lit(None, dtype=pl.Utf8).alias("effect_allele"),
        pl.lit(Build.GRCh37.value).alias("build"),
        pl.lit(dataset).alias("dataset"),
    )
    return out, drops


# ----------------------------------------------------------------------------- GTEx v8

_GTEX_VARIANT_RE = r"^(chr[0-9A-Za-z]+)_(\d+)_([A-Za-z]+)_([A-Za-z]+)_b(\d+)$"


def check_slope_not_pvalues(values: pl.Series, *, file: str | Path | None = None,
                            column: str = "slope") -> None:
    """Guard (P1): :func:`agval.alleles.guards.check_not_pvalues` (the one p-value guard and
    threshold) with the GTEx hint: raise :class:`GuardError` if an effect column looks like
    p-values."""
    check_not_pvalues(values, column=column, file=file,
                      hint="Read 'slope' by header name, never by position (GTEx v8: col 7 pval_nominal, "
                           "col 8 slope)")


def load_gtex_signif_pairs(path: str | Path, *, tissue: str | None = None,
                           dataset: str | None = None) -> tuple[pl.DataFrame, DropLog]:
    """GTEx v8 ``*.signif_variant_gene_pairs.txt.gz`` (or the all-pairs layout).

    Read by header name (never by position, P1): required ``variant_id``
    (``chr1_13550_G_A_b38``), ``gene_id``, ``slope``; optional ``slope_se``,
    ``pval_nominal``, ``tss_distance``, ``maf``, ``ma_samples``, ``ma_count``,
    ``pval_nominal_threshold``, ``min_pval_nominal``, ``pval_beta``. The effect is
    ``slope`` (for the ALT allele of ``variant_id``), never ``pval_nominal``; if
    ``slope`` looks like p-values :func:`check_slope_not_pvalues` raises
    :class:`GuardError`.

    Output columns: ``row_id`` (``<dataset>:<row>``, dataset defaults to the file name
    up to ``.v8``/extensions), ``source_file``, ``source_row``, ``chrom``, ``pos``
    (1-based hg38), ``ref``, ``alt``, ``variant_id`` (raw), ``gene_id`` (version
    stripped), ``gene_id_versioned``, ``trait_id`` (= gene_id), ``beta`` (= slope),
    ``se`` (= slope_se), ``p`` (= pval_nominal), ``effect_allele`` (= alt),
    ``other_allele`` (= ref), the optional columns under their GTEx names,
    ``tissue``, ``build`` (``hg38``; from the ``_b38`` suffix), ``dataset``.

    Drops (counted): ``malformed_variant_id``, ``missing_slope``. A ``_b37`` variant id
    is ``malformed_variant_id`` too (this loader is for v8/hg38).

    Args:
        path: the GTEx pairs file (plain or gzip); tissue: the ``tissue`` value (default from
            the file name).

    Returns:
        ``(frame, drops)``: the output columns above, one row per kept input row, and the
            counted drops.

    Raises:
        GuardError: ``slope`` looks like p-values; MissingColumnError:
            ``variant_id``/``gene_id``/``slope`` absent; InputError: a malformed number.
    """
    path = Path(path)
    raw = read_text_table(path)
    cols = raw.columns
    for c in ("variant_id", "gene_id", "slope"):
        if c not in cols:
            raise MissingColumnError(c, file=path, available=cols)
    if dataset is None:
        dataset = Path(path).name.split(".v8.")[0] if ".v8." in Path(path).name else dataset_name(path, None)
    df = add_row_ids(raw, dataset=dataset, file=path)
    drops = DropLog()
    slope = parse_float(df, "slope", file=path)
    check_slope_not_pvalues(slope, file=path)
    if "pval_nominal" in cols:
        pv = parse_float(df, "pval_nominal", file=path)
        both = pl.DataFrame({"s": slope, "p": pv}).drop_nulls()
        if both.height >= 3 and (both["s"] == both["p"]).all():
            raise GuardError(f"{path}: column 'slope' equals 'pval_nominal' in every row; the file is mislabelled")
    else:
        pv = pl.Series("pval_nominal", [None] * df.height, dtype=pl.Float64)
    se = parse_float(df, "slope_se", file=path) if "slope_se" in cols else pl.Series([None] * df.height, dtype=pl.Float64)
    opt_float = [c for c in ("maf", "pval_nominal_threshold", "min_pval_nominal", "pval_beta") if c in cols]
    opt_int = [c for c in ("tss_distance", "ma_samples", "ma_count") if c in cols]
    df = df.with_columns(clean_text(df, "variant_id").alias("variant_id"),
                         clean_text(df, "gene_id").alias("gene_id_versioned"))
    parts = pl.col("variant_id").str.extract_groups(_GTEX_VARIANT_RE)
    df = df.with_columns(
        parts.struct.field("1").alias("chrom"),
        parts.struct.field("2").cast(pl.Int64, strict=False).alias("pos"),
        parts.struct.field("3").str.to_uppercase().alias("ref"),
        parts.struct.field("4").str.to_uppercase().alias("alt"),
        parts.struct.field("5").alias("_b"),
        strip_gene_version_expr(pl.col("gene_id_versioned")).alias("gene_id"),
        slope.alias("beta"), se.alias("se"), pv.alias("p"),
        *[parse_float(df, c, file=path).alias(c) for c in opt_float],
        *[parse_int(df, c, file=path).alias(c) for c in opt_int],
    )
    df = split_drops(df, pl.col("pos").is_null() | (pl.col("_b") != "38"), drops, "malformed_variant_id",
                     detail=pl.lit("variant_id ") + pl.col("variant_id").fill_null("<empty>")
                     + pl.lit(" is not chr_pos_ref_alt_b38"))
    df = drop_non_finite(df, ["beta"], drops)
    df = split_drops(df, pl.col("beta").is_null(), drops, "missing_slope", detail="slope is missing")
    df = split_drops(df, pl.col("gene_id").is_null(), drops, "missing_gene", detail="gene_id is empty")
    out = df.select(["row_id", "source_file", "source_row", "chrom", "pos", "ref", "alt", "variant_id",
                     "gene_id", "gene_id_versioned", pl.col("gene_id").alias("trait_id"), "beta", "se", "p",
                     pl.col("alt").alias("effect_allele"), pl.col("ref").alias("other_allele"),
                     *opt_float, *opt_int]).with_columns(
        pl.lit(tissue, dtype=pl.Utf8).alias("tissue"),
        pl.lit(Build.GRCh38.value).alias("build"),
        pl.lit(dataset).alias("dataset"),
    )
    return out, drops


# ----------------------------------------------------------------------------- generic

GENERIC_QTL_COLUMNS: dict[str, tuple[str, ...]] = {
    "rsid": ("rsid", "rs_id", "rsid_dbsnp", "snp_id", "snp", "rs"),
    "chrom": ("chrom", "chr", "chromosome", "#chrom"),
    "pos": ("pos", "position", "bp", "base_pair_location", "start"),
    "ref": ("ref", "reference_allele"),
    "alt": ("alt", "alternate_allele", "alternative_allele"),
    "effect_allele": ("effect_allele", "ea", "tested_allele", "assessed_allele"),
    "other_allele": ("other_allele", "nea", "non_effect_allele"),
    "beta": ("beta", "slope", "effect_size", "effect", "log2fc", "log2_effect_size"),
    "se": ("se", "slope_se", "standard_error", "stderr"),
    "p": ("p", "pval", "p_value", "pvalue", "pval_nominal", "p-value"),
    "trait_id": ("trait_id", "trait", "phenotype_id", "gene_id", "gene", "peak_id", "peak", "feature_id"),
    "cell_type": ("cell_type", "celltype", "cell", "tissue", "biosample", "biosample_name"),
    "build": ("build", "genome_build", "assembly", "genome_assembly"),
}


def load_generic_qtl(path: str | Path, *, build: str | Build | None = None, dataset: str | None = None,
                     columns: Mapping[str, str] | None = None, cell_type: str | None = None,
                     check_pvalues: bool = True) -> tuple[pl.DataFrame, DropLog]:
    """A generic QTL table (CSV/TSV, optionally gzipped), columns matched by name.

    Canonical columns and accepted headers (case-insensitive, first alias wins) are in
    :data:`GENERIC_QTL_COLUMNS`; ``columns`` maps a canonical name to an exact header to
    override them. Required: ``beta``, and either ``rsid`` or ``chrom`` + ``pos``.
    Coordinates need a build: a ``build`` column, else the ``build`` parameter (the
    parameter fills empty cells of the column); coordinates without any build raise
    :class:`InputError`. ``cell_type`` fills the column when the file has none.

    Output columns: ``row_id``, ``source_file``, ``source_row``, ``rsid`` (null when not
    ``rs...``), ``variant_id`` (the raw rsid cell), ``chrom`` (``chr`` prefixed), ``pos``,
    ``ref``, ``alt``, ``effect_allele``, ``other_allele`` (upper-case, null when
    absent), ``beta``, ``se``, ``p``, ``trait_id``, ``cell_type``, ``build``
    (``hg38``/``hg19``/...), ``dataset``.

    Drops (counted): ``no_identifier`` (no rsID and no chrom/pos), ``missing_beta``.
    Malformed numbers raise ``InputError``. If ``check_pvalues`` the ``beta`` column is
    checked with :func:`check_slope_not_pvalues`.

    Args:
        path: the table; build: the coordinates' build when the file has no ``build`` column;
            columns: canonical name -> exact header.

    Returns:
        ``(frame, drops)``: the output columns above, one row per kept input row, and the
            counted drops.

    Raises:
        InputError: coordinates without a build, a malformed number; MissingColumnError: no
            ``beta``, or neither ``rsid`` nor ``chrom``+``pos``; GuardError: p-values as
            effects.
    """
    path = Path(path)
    raw = read_text_table(path)
    cols = raw.columns
    res = resolve_columns(cols, GENERIC_QTL_COLUMNS, file=path, required=["beta"], overrides=columns)
    if res["rsid"] is None and (res["chrom"] is None or res["pos"] is None):
        missing = "rsid" if res["chrom"] is not None else "chrom"
        raise MissingColumnError(missing, file=path, available=cols)
    dataset = dataset_name(path, dataset)
    df = add_row_ids(raw, dataset=dataset, file=path)
    drops = DropLog()
    n = df.height

    def text(key: str, upper: bool = False) -> pl.Series:
        if res[key] is None:
            return pl.Series(key, [None] * n, dtype=pl.Utf8)
        s = clean_text(df, res[key])
        return (s.str.to_uppercase() if upper else s).alias(key)

    def num(key: str, integer: bool = False) -> pl.Series:
        if res[key] is None:
            return pl.Series(key, [None] * n, dtype=pl.Int64 if integer else pl.Float64)
        return (parse_int if integer else parse_float)(df, res[key], file=path).alias(key)

    param_build = Build.parse(build).value if build is not None else None
    build_col = text("build")
    if res["build"] is not None:
        vals = build_col.drop_nulls().unique().to_list()
        parsed = {}
        for v in vals:
            try:
                parsed[v] = Build.parse(v).value
            except InputError:
                row_idx = int((build_col == v).arg_max())
                raise InputError(f"unknown genome build {v!r}", file=path, column=res["build"],
                                 row=int(df["source_row"][row_idx])) from None
        build_col = build_col.replace_strict(parsed, default=None, return_dtype=pl.Utf8)
    if param_build is not None:
        build_col = build_col.fill_null(param_build)
    beta = num("beta")
    if check_pvalues:
        check_slope_not_pvalues(beta, file=path, column=res["beta"])
    df = df.with_columns(text("rsid").alias("variant_id"), text("chrom").alias("_chrom"))
    df = df.with_columns(
        rsid_expr(pl.col("variant_id")).alias("rsid"),
        chrom_expr(pl.col("_chrom")).alias("chrom"),
        num("pos", integer=True),
        text("ref", True), text("alt", True), text("effect_allele", True), text("other_allele", True),
        beta, num("se"), num("p"),
        text("trait_id"),
        fill_null(text("cell_type"), cell_type),
        build_col.alias("build"),
    )
    has_coord = pl.col("chrom").is_not_null() & pl.col("pos").is_not_null()
    no_build = df.filter(has_coord & pl.col("build").is_null())
    if no_build.height:
        raise InputError("coordinates need a genome build: add a 'build' column or pass build=",
                         file=path, column=res["build"] or "build", row=int(no_build["source_row"][0]))
    df = split_drops(df, pl.col("rsid").is_null() & ~has_coord, drops, "no_identifier",
                     detail="neither an rsID nor chrom+pos")
    df = drop_non_finite(df, ["beta"], drops)
    df = split_drops(df, pl.col("beta").is_null(), drops, "missing_beta", detail="beta is missing")
    out = df.select(["row_id", "source_file", "source_row", "rsid", "variant_id", "chrom", "pos", "ref", "alt",
                     "effect_allele", "other_allele", "beta", "se", "p", "trait_id", "cell_type",
                     "build"]).with_columns(pl.lit(dataset).alias("dataset"))
    return out, drops
