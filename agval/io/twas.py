"""Loaders for the TWAS / fine-mapping study inputs (STUDIES.md §2.1, §2.3).

* :func:`scan_gwas_sumstats` / :func:`load_gwas_sumstats`: GWAS summary statistics
  (GWAS-SSF, GWAS Catalog harmonised ``hm_*`` columns, and common layouts), plain or
  gzipped, scanned lazily so files of tens of millions of rows stream.
* :func:`load_susie`: SuSiE fine-mapping results per gene-tissue.
* :func:`load_fusion_dat`: FUSION ``.dat`` TWAS output plus tissue and gene id.
* :func:`load_tissue_map` / :data:`DEFAULT_TISSUE_MAP`: GTEx tissue -> AlphaGenome
  ontology terms per assay.

Loaders return ``(frame, drops)`` like :mod:`agval.io.qtl`; the value policy is the one
of :mod:`agval.io._common` (missing required value -> counted drop, malformed value ->
:class:`~agval.errors.InputError` naming file, column and row) unless a docstring says
otherwise.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import polars as pl

from agval.coords import Build
from agval.drops import DropLog
from agval.errors import InputError, MissingColumnError, bounded
from agval.io._common import (NA_STRINGS, add_row_ids, check_gzip, check_unique_header, chrom_expr, chrom_expr_fast,
                              clean_header, clean_text, dataset_name, drop_non_finite, fill_null,
                              raw_header_names, head_lines, parse_float, parse_int, read_text_table,
                              record_drops, resolve_columns, rsid_expr, sniff_separator, split_drops,
                              strip_gene_version_expr)

__all__ = ["GWAS_COLUMNS", "scan_gwas_sumstats", "load_gwas_sumstats", "gwas_column_map",
           "load_susie", "FUSION_COLUMNS", "load_fusion_dat",
           "ASSAYS", "DEFAULT_TISSUE_MAP", "TissueMap", "UnknownTissueError", "load_tissue_map"]

# ============================================================================ GWAS

#: Canonical GWAS columns and accepted headers (case-insensitive; the first present wins).
#: ``hm_*`` (GWAS Catalog harmonised) names come first when ``prefer_harmonised``.
#: Allele convention: ``A1``/``Allele1``/``effect_allele`` is the allele ``beta``/``z``
#: refers to, ``A2``/``Allele2``/``other_allele`` the other one (PLINK/METAL/GWAS-SSF).
#: Layouts that code it the other way round (e.g. SAIGE's Allele2) need ``columns=``.
GWAS_COLUMNS: dict[str, tuple[str, ...]] = {
    "rsid": ("hm_rsid", "rsid", "rs_id", "rsids", "snp", "snpid", "snp_id", "markername", "marker", "id"),
    "variant_id": ("hm_variant_id", "variant_id"),
    "chrom": ("hm_chrom", "chromosome", "chrom", "chr", "#chrom", "#chr", "chr_name"),
    "pos": ("hm_pos", "base_pair_location", "pos", "bp", "position", "genpos", "chr_position"),
    "effect_allele": ("hm_effect_allele", "effect_allele", "a1", "allele1", "ea", "alt_allele"),
    "other_allele": ("hm_other_allele", "other_allele", "a2", "allele2", "nea", "ref_allele", "allele0"),
    "beta": ("hm_beta", "beta", "b", "effect", "log_odds", "logor"),
    "odds_ratio": ("hm_odds_ratio", "odds_ratio", "or"),
    "se": ("standard_error", "se", "stderr", "sebeta", "se_beta", "log_odds_se"),
    "z": ("z", "zscore", "z_score", "z_stat", "zstat"),
    "p": ("p_value", "p", "pval", "p-value", "pvalue", "p_bolt_lmm", "p_bolt_lmm_inf"),
    "neg_log10_p": ("neg_log_10_p_value", "log10p", "mlog10p", "neglog10p", "log10_p"),
    "n": ("n", "n_total", "sample_size", "neff", "n_eff", "obs_ct"),
    "eaf": ("hm_effect_allele_frequency", "effect_allele_frequency", "eaf", "freq1", "a1freq", "af",
            "a1_freq", "freq"),
}

_GWAS_FLOAT = ("beta", "odds_ratio", "se", "z", "p", "neg_log10_p", "n", "eaf")
_GWAS_OUT = ["row_id", "source_file", "source_row", "rsid", "variant_id", "chrom", "pos", "effect_allele",
             "other_allele", "beta", "se", "z", "p", "n", "eaf", "build"]


def gwas_column_map(path: str | Path, *, columns: Mapping[str, str] | None = None,
                    prefer_harmonised: bool = True) -> tuple[str, dict[str, str | None]]:
    """``(separator, {canonical: header or None})`` for a GWAS file, from its header only.

    Raises :class:`InputError` when the file has neither a z column nor beta (or odds
    ratio) and standard error, and :class:`MissingColumnError` when it has neither an
    rsID nor chromosome + position, or lacks the effect/other allele.
    """
    path = Path(path)
    header = head_lines(path, 1)
    if not header or not header[0].strip():
        raise InputError("file is empty (no header line)", file=path)
    sep = sniff_separator(header[0])
    if sep == " ":
        raise InputError("space-separated GWAS files are not supported for streaming; convert to tab-separated "
                         "(e.g. `tr -s ' ' '\\t'`)", file=path)
    names = [clean_header(c) for c in header[0].split(sep)]
    check_unique_header(raw_header_names(header[0], sep), file=path)
    spec = dict(GWAS_COLUMNS)
    if not prefer_harmonised:
        spec = {k: tuple([a for a in v if not a.startswith("hm_")] + [a for a in v if a.startswith("hm_")])
                for k, v in spec.items()}
    res = resolve_columns(names, spec, file=path, overrides=columns,
                          required=["effect_allele", "other_allele"])
    if res["rsid"] is None and res["variant_id"] is None and (res["chrom"] is None or res["pos"] is None):
        raise MissingColumnError("rsid", file=path, available=names)
    has_beta = res["beta"] is not None or res["odds_ratio"] is not None
    if res["z"] is None and not (has_beta and res["se"] is not None):
        have = [c for c in ("beta", "odds_ratio", "se") if res[c]]
        raise InputError(
            "a GWAS file needs a z-score column (z, zscore) or an effect (beta, or odds_ratio) together with "
            f"its standard error (se, standard_error); found only {have or 'neither'} "
            f"(columns present: {', '.join(names)})", file=path, column="z")
    return sep, res


def scan_gwas_sumstats(path: str | Path, *, build: str | Build, dataset: str | None = None,
                       columns: Mapping[str, str] | None = None,
                       prefer_harmonised: bool = True) -> pl.LazyFrame:
    """A lazy scan of a GWAS summary-statistics file (nothing is read until collect).

    Every row of the file is kept, with a ``drop_reason`` column (null for usable rows;
    ``unparseable:<header>`` for a malformed number, ``missing_z``, ``no_identifier``,
    ``missing_allele``). :func:`load_gwas_sumstats` turns those into a DropLog (and
    raises on ``unparseable``); a streaming caller can filter them itself, e.g.
    ``scan_gwas_sumstats(p, build="hg19").filter(pl.col("rsid").is_in(wanted)).collect(engine="streaming")``.

    Output columns (see :data:`GWAS_COLUMNS` for the headers accepted): ``row_id``
    (``<dataset>:<row>``), ``source_file``, ``source_row`` (1-based data row),
    ``rsid`` (only lower-case ``rs\\d+`` values; else from ``variant_id``; else null),
    ``variant_id`` (raw identifier), ``chrom`` (``chr``-prefixed; 23 -> X), ``pos``,
    ``effect_allele``, ``other_allele`` (upper-case), ``beta`` (from ``odds_ratio`` as
    ln(OR) when there is no beta), ``se``, ``z`` (the file's z, else beta/se), ``p``
    (from ``neg_log_10_p_value`` when there is no p), ``n``, ``eaf``, ``build`` (the
    declared ``build``; required, the loader never guesses), ``drop_reason``.

    Args:
        path: the GWAS file (plain or gzip); build: the positions' build (required).

    Returns:
        A :class:`polars.LazyFrame` with the output columns above and ``drop_reason``.

    Raises:
        MissingColumnError: no z (nor beta+se), no identifier or no allele column; InputError:
            the file cannot be read.
    """
    path = Path(path)
    build_v = Build.parse(build).value
    sep, res = gwas_column_map(path, columns=columns, prefer_harmonised=prefer_harmonised)
    dataset = dataset_name(path, dataset)
    used = sorted({h for h in res.values() if h is not None})
    # Missing tokens (NA, ., empty, ...) become null in the reader itself: per-value
    # string work is what costs time on 10 M rows, so values are not stripped here.
    check_gzip(path)  # a truncated .gz is named at once (polars says only "unexpected end of file")
    try:
        lf = pl.scan_csv(path, separator=sep, infer_schema=False, has_header=True, quote_char='"',
                         null_values=list(NA_STRINGS), row_index_name="source_row", row_index_offset=1,
                         with_column_names=lambda cs: [clean_header(c) for c in cs])
    except (pl.exceptions.PolarsError, OSError) as exc:
        msg = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"cannot read the GWAS table: {bounded(msg, 300)}", file=path) from None
    lf = lf.select([pl.col("source_row").cast(pl.Int64)] + [pl.col(h) for h in used])

    def raw(key: str) -> pl.Expr:
        h = res[key]
        return pl.lit(None, dtype=pl.Utf8) if h is None else pl.col(h)

    def rs_only(e: pl.Expr) -> pl.Expr:
        return pl.when(e.str.contains(r"^rs\d+$")).then(e).otherwise(None)

    num = {k: raw(k).cast(pl.Float64, strict=False) for k in _GWAS_FLOAT}
    bad_checks = [(res[k], raw(k).is_not_null() & num[k].is_null()) for k in _GWAS_FLOAT if res[k]]
    pos_raw = raw("pos")
    pos = pos_raw.cast(pl.Int64, strict=False)
    if res["pos"]:
        bad_checks.insert(0, (res["pos"], pos_raw.is_not_null() & pos.is_null()))

    beta = num["beta"]
    if res["beta"] is None and res["odds_ratio"] is not None:
        beta = pl.when(num["odds_ratio"] > 0).then(num["odds_ratio"].log()).otherwise(None)
    se = num["se"]
    z_calc = pl.when(se > 0).then(beta / se).otherwise(None)
    z = pl.coalesce([num["z"], z_calc]) if res["z"] else z_calc
    z = pl.when(z.is_finite()).then(z).otherwise(None)
    p = num["p"]
    if res["p"] is None and res["neg_log10_p"] is not None:
        p = pl.lit(10.0) ** (-num["neg_log10_p"])
    vid = raw("variant_id") if res["variant_id"] else raw("rsid")
    rsid = rs_only(raw("rsid")) if res["rsid"] else pl.lit(None, dtype=pl.Utf8)
    rsid = pl.coalesce([rsid, rs_only(raw("variant_id"))]) if res["variant_id"] else rsid

    lf = lf.with_columns(
        (pl.lit(f"{dataset}:") + pl.col("source_row").cast(pl.Utf8)).alias("row_id"),
        pl.lit(str(path)).alias("source_file"),
        rsid.alias("rsid"),
        vid.alias("variant_id"),
        chrom_expr_fast(raw("chrom")).alias("chrom"),
        pos.alias("pos"),
        raw("effect_allele").str.to_uppercase().alias("effect_allele"),
        raw("other_allele").str.to_uppercase().alias("other_allele"),
        beta.alias("beta"), se.alias("se"), z.alias("z"), p.alias("p"),
        num["n"].alias("n"), num["eaf"].alias("eaf"),
        pl.lit(build_v).alias("build"),
        _drop_reason(bad_checks).alias("_bad"),
    )
    reason = (pl.when(pl.col("_bad").is_not_null()).then(pl.col("_bad"))
              .when(pl.col("z").is_null() & _non_finite(num, res)).then(pl.lit("non_finite_z"))
              .when(pl.col("z").is_null()).then(pl.lit("missing_z"))
              .when(pl.col("rsid").is_null() & (pl.col("chrom").is_null() | pl.col("pos").is_null()))
              .then(pl.lit("no_identifier"))
              .when(pl.col("effect_allele").is_null() | pl.col("other_allele").is_null())
              .then(pl.lit("missing_allele"))
              .otherwise(None))
    return lf.with_columns(reason.alias("drop_reason")).select(_GWAS_OUT + ["drop_reason"])


def _non_finite(num: dict[str, pl.Expr], res: Mapping[str, str | None]) -> pl.Expr:
    """True where a number the z comes from (z, beta, se, odds ratio) is inf/-inf/NaN."""
    out = pl.lit(False)
    for k in ("z", "beta", "se", "odds_ratio"):
        if res.get(k):
            out = out | (num[k].is_not_null() & ~num[k].is_finite())
    return out


def _drop_reason(checks: list[tuple[str, pl.Expr]]) -> pl.Expr:
    if not checks:
        return pl.lit(None, dtype=pl.Utf8)
    expr = pl.when(checks[0][1]).then(pl.lit(f"unparseable:{checks[0][0]}"))
    for header, cond in checks[1:]:
        expr = expr.when(cond).then(pl.lit(f"unparseable:{header}"))
    return expr.otherwise(None)


def load_gwas_sumstats(path: str | Path, *, build: str | Build, dataset: str | None = None,
                       columns: Mapping[str, str] | None = None, rsids: Iterable[str] | None = None,
                       prefer_harmonised: bool = True, strict: bool = True,
                       ) -> tuple[pl.DataFrame, DropLog]:
    """Collect :func:`scan_gwas_sumstats` (streaming engine) into ``(frame, drops)``.

    ``rsids`` restricts the result to those rsIDs before collecting, so a 10-million-row
    file is filtered while it streams (only the kept rows, and the dropped rows among
    the requested rsIDs, are materialised). With ``strict`` (default) a malformed number
    raises :class:`InputError` naming file, column and the first such row; otherwise
    such rows are counted drops (``unparseable``). Other drops (``missing_z``,
    ``no_identifier``, ``missing_allele``) are counted with stage ``load``.
    Output columns: those of :func:`scan_gwas_sumstats` without ``drop_reason``.

    Args:
        path, build: as :func:`scan_gwas_sumstats`; rsids: keep only these; strict: a malformed
            number is an error.

    Returns:
        ``(frame, drops)``: the output columns above, one row per kept input row, and the
            counted drops.

    Raises:
        InputError: a malformed number (``strict``); MissingColumnError: as
            :func:`scan_gwas_sumstats`.
    """
    lf = scan_gwas_sumstats(path, build=build, dataset=dataset, columns=columns,
                            prefer_harmonised=prefer_harmonised)
    if rsids is not None:
        wanted = pl.Series("rsid", list(rsids), dtype=pl.Utf8)
        lf = lf.filter(pl.col("rsid").is_in(wanted.implode()))
    try:
        df = lf.collect(engine="streaming")
    except (pl.exceptions.PolarsError, OSError) as exc:
        msg = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"cannot read the GWAS table: {bounded(msg, 300)}", file=path) from None
    drops = DropLog()
    bad = df.filter(pl.col("drop_reason").is_not_null())
    if bad.height:
        unp = bad.filter(pl.col("drop_reason").str.starts_with("unparseable:"))
        if strict and unp.height:
            first = unp.sort("source_row").row(0, named=True)
            col = first["drop_reason"].split(":", 1)[1]
            raise InputError(f"cannot parse a number ({unp.height} malformed row(s)); pass strict=False to "
                             "count them as drops instead", file=path, column=col, row=first["source_row"])
        for reason, part in bad.with_columns(
                pl.col("drop_reason").str.replace(r":.*$", "").alias("_r")).partition_by("_r", as_dict=True).items():
            record_drops(drops, part, reason[0],
                         detail=pl.col("drop_reason").str.replace(r"^unparseable:", "malformed value in column "))
    return df.filter(pl.col("drop_reason").is_null()).drop("drop_reason"), drops


# ============================================================================ SuSiE

SUSIE_COLUMNS: dict[str, tuple[str, ...]] = {
    "rsid": ("rsid", "rs_id", "snp", "variant_id", "variant", "id", "snp_id"),
    "pip": ("pip", "posterior_inclusion_probability", "pip_susie"),
    "cs": ("cs", "cs_id", "cs_index", "credible_set", "cs95"),
    "cs_size": ("cs_size", "credible_set_size", "cs_n"),
    "gene_id": ("gene_id", "gene", "ensg", "molecular_trait_id", "phenotype_id"),
    "tissue": ("tissue", "gtex_tissue"),
}


def load_susie(path: str | Path, *, gene_id: str | None = None, tissue: str | None = None,
               dataset: str | None = None, columns: Mapping[str, str] | None = None,
               pip_tolerance: float = 1e-9) -> tuple[pl.DataFrame, DropLog]:
    """SuSiE results (one file per gene-tissue, or one file with gene and tissue columns).

    Required: an rsID/variant column, ``pip``, ``cs`` (integer credible-set index;
    **-1 means no credible set**; empty/NA is read as -1), and a gene id and tissue,
    from columns or from the ``gene_id`` / ``tissue`` parameters (which fill empty
    cells). Optional ``cs_size``.

    Errors (not drops, since a bad PIP invalidates the fine-mapping): a PIP outside
    [0, 1] (beyond ``pip_tolerance``, values within it are clipped) or a missing or
    malformed PIP raises :class:`InputError` naming file, column and row; a malformed
    ``cs`` too.

    Output columns: ``row_id``, ``source_file``, ``source_row``, ``gene_id`` (version
    stripped), ``tissue``, ``rsid`` (null when the identifier is not ``rs...``),
    ``variant_id`` (raw identifier), ``pip``, ``cs`` (Int64, -1 = none), ``cs_size``
    (Int64 or null), ``in_cs`` (``cs >= 0``).

    Drops (counted): ``missing_id``, ``missing_gene`` / ``missing_tissue`` (empty cell
    and no parameter).

    Args:
        path: a SuSiE file; gene_id, tissue: fill the columns when the file has none.

    Returns:
        ``(frame, drops)``: the output columns above, one row per kept input row, and the
            counted drops.

    Raises:
        InputError: a PIP outside [0, 1], a missing or malformed PIP or ``cs``;
            MissingColumnError: a required column is absent.
    """
    path = Path(path)
    raw = read_text_table(path)
    cols = raw.columns
    res = resolve_columns(cols, SUSIE_COLUMNS, file=path, required=["rsid", "pip", "cs"], overrides=columns)
    if res["gene_id"] is None and gene_id is None:
        raise MissingColumnError("gene_id", file=path, available=cols)
    if res["tissue"] is None and tissue is None:
        raise MissingColumnError("tissue", file=path, available=cols)
    dataset = dataset_name(path, dataset)
    df = add_row_ids(raw, dataset=dataset, file=path)
    drops = DropLog()
    n = df.height
    pip = parse_float(df, res["pip"], file=path)
    missing = pip.is_null() | pip.is_nan()
    if missing.any():
        i = int(missing.arg_max())
        raise InputError("PIP is missing", file=path, column=res["pip"], row=int(df["source_row"][i]))
    out_of_range = (pip < -pip_tolerance) | (pip > 1 + pip_tolerance)
    if out_of_range.any():
        i = int(out_of_range.arg_max())
        raise InputError(f"PIP {pip[i]!r} is outside [0, 1] ({int(out_of_range.sum())} such rows)",
                         file=path, column=res["pip"], row=int(df["source_row"][i]))
    cs = parse_int(df, res["cs"], file=path).fill_null(-1)
    cs_size = (parse_int(df, res["cs_size"], file=path) if res["cs_size"]
               else pl.Series([None] * n, dtype=pl.Int64))
    gene = clean_text(df, res["gene_id"]) if res["gene_id"] else pl.Series([None] * n, dtype=pl.Utf8)
    tis = clean_text(df, res["tissue"]) if res["tissue"] else pl.Series([None] * n, dtype=pl.Utf8)
    df = df.with_columns(
        pip.clip(0.0, 1.0).alias("pip"),
        cs.alias("cs"),
        cs_size.alias("cs_size"),
        fill_null(gene, gene_id).alias("_gene"),
        fill_null(tis, tissue).alias("tissue"),
        clean_text(df, res["rsid"]).alias("variant_id"),
    ).with_columns(
        strip_gene_version_expr(pl.col("_gene")).alias("gene_id"),
        rsid_expr(pl.col("variant_id")).alias("rsid"),
        (pl.col("cs") >= 0).alias("in_cs"),
    )
    df = split_drops(df, pl.col("variant_id").is_null(), drops, "missing_id", detail="variant id is empty")
    df = split_drops(df, pl.col("gene_id").is_null(), drops, "missing_gene", detail="gene id is empty")
    df = split_drops(df, pl.col("tissue").is_null(), drops, "missing_tissue", detail="tissue is empty")
    out = df.select(["row_id", "source_file", "source_row", "gene_id", "tissue", "rsid", "variant_id", "pip",
                     "cs", "cs_size", "in_cs"])
    return out, drops


# ============================================================================ FUSION

#: FUSION ``.dat`` output columns (exact headers) -> output names, and their types.
FUSION_COLUMNS: dict[str, tuple[str, pl.DataType]] = {
    "FILE": ("file", pl.Utf8), "ID": ("id", pl.Utf8), "CHR": ("chrom", pl.Utf8),
    "P0": ("p0", pl.Int64), "P1": ("p1", pl.Int64), "HSQ": ("hsq", pl.Float64),
    "BEST.GWAS.ID": ("best_gwas_id", pl.Utf8), "BEST.GWAS.Z": ("best_gwas_z", pl.Float64),
    "EQTL.ID": ("eqtl_id", pl.Utf8), "EQTL.R2": ("eqtl_r2", pl.Float64), "EQTL.Z": ("eqtl_z", pl.Float64),
    "EQTL.GWAS.Z": ("eqtl_gwas_z", pl.Float64), "NSNP": ("nsnp", pl.Int64), "NWGT": ("nwgt", pl.Int64),
    "MODEL": ("model", pl.Utf8), "MODELCV.R2": ("modelcv_r2", pl.Float64),
    "MODELCV.PV": ("modelcv_pv", pl.Float64), "TWAS.Z": ("twas_z", pl.Float64), "TWAS.P": ("twas_p", pl.Float64),
}
FUSION_REQUIRED = ("ID", "CHR", "P0", "P1", "TWAS.Z", "TWAS.P")
_ENSG_RE = r"(ENS[A-Z]*G\d+(?:\.\d+)?)"


def load_fusion_dat(path: str | Path, *, tissue: str | None = None, dataset: str | None = None,
                    ) -> tuple[pl.DataFrame, DropLog]:
    """FUSION ``.dat`` TWAS output (``FUSION.assoc_test.R``), tab-separated.

    Headers are matched exactly (FUSION writes them): required ``ID, CHR, P0, P1, TWAS.Z,
    TWAS.P``; the other columns of :data:`FUSION_COLUMNS` are read when present and null
    otherwise. ``tissue``: a ``tissue`` column, else the parameter (which also fills
    empty cells). ``gene_id``: a ``gene_id`` column, else the Ensembl id found in
    ``ID``, else in ``FILE``; versions are stripped. With neither a column nor any
    Ensembl id in ID/FILE, :class:`MissingColumnError` (``gene_id``).

    Header lines repeated inside the data (``cat *.dat``) are dropped and counted
    (``repeated_header``). ``NA`` values are null; a row with no TWAS.Z or TWAS.P is a
    counted drop (``missing_twas``, FUSION writes NA when a model failed); a row
    without a gene id is a counted drop (``no_gene_id``). Malformed numbers raise
    :class:`InputError`.

    Output columns: ``row_id``, ``source_file``, ``source_row``, the snake_case names of
    :data:`FUSION_COLUMNS` (``file, id, chrom`` (``chr``-prefixed), ``p0, p1, hsq,
    best_gwas_id, best_gwas_z, eqtl_id, eqtl_r2, eqtl_z, eqtl_gwas_z, nsnp, nwgt,
    model, modelcv_r2, modelcv_pv, twas_z, twas_p``), ``tissue``, ``gene_id``.

    Args:
        path: a FUSION ``.dat`` file; tissue: fills the ``tissue`` column.

    Returns:
        ``(frame, drops)``: the output columns above, one row per kept input row, and the
            counted drops.

    Raises:
        MissingColumnError: a required header, or no gene id anywhere; InputError: a malformed
            number.
    """
    path = Path(path)
    raw = read_text_table(path)
    cols = raw.columns
    for c in FUSION_REQUIRED:
        if c not in cols:
            raise MissingColumnError(c, file=path, available=cols)
    if "tissue" not in cols and tissue is None:
        raise MissingColumnError("tissue", file=path, available=cols)
    dataset = dataset_name(path, dataset)
    df = add_row_ids(raw, dataset=dataset, file=path)
    drops = DropLog()
    df = split_drops(df, pl.col("ID").str.strip_chars() == "ID", drops, "repeated_header",
                     detail="a header line inside the data")
    n = df.height
    parsed = {}
    for header, (name, dtype) in FUSION_COLUMNS.items():
        if header not in cols:
            parsed[name] = pl.Series(name, [None] * n, dtype=dtype)
        elif dtype == pl.Float64:
            parsed[name] = parse_float(df, header, file=path).alias(name)
        elif dtype == pl.Int64:
            parsed[name] = parse_int(df, header, file=path).alias(name)
        else:
            parsed[name] = clean_text(df, header).alias(name)
    tis = clean_text(df, "tissue") if "tissue" in cols else pl.Series([None] * n, dtype=pl.Utf8)
    gcol = clean_text(df, "gene_id") if "gene_id" in cols else pl.Series([None] * n, dtype=pl.Utf8)
    df = df.with_columns(*parsed.values(), fill_null(tis, tissue).alias("tissue"), gcol.alias("_gene"))
    df = df.with_columns(chrom_expr(pl.col("chrom")).alias("chrom"))
    if "gene_id" not in cols:
        found = pl.coalesce([pl.col("id").str.extract(_ENSG_RE, 1), pl.col("file").str.extract(_ENSG_RE, 1)])
        df = df.with_columns(found.alias("_gene"))
        if df.height and df["_gene"].null_count() == df.height:
            raise MissingColumnError("gene_id", file=path, available=cols)
    df = df.with_columns(strip_gene_version_expr(pl.col("_gene")).alias("gene_id"))
    df = drop_non_finite(df, ["twas_z", "twas_p"], drops)
    df = split_drops(df, pl.col("twas_z").is_null() | pl.col("twas_p").is_null(), drops, "missing_twas",
                     detail="TWAS.Z or TWAS.P is NA (model failed)")
    df = split_drops(df, pl.col("gene_id").is_null(), drops, "no_gene_id",
                     detail="no gene_id column and no Ensembl id in ID or FILE")
    df = split_drops(df, pl.col("tissue").is_null(), drops, "missing_tissue", detail="tissue is empty")
    names = [name for name, _ in FUSION_COLUMNS.values()]
    return df.select(["row_id", "source_file", "source_row", *names, "tissue", "gene_id"]), drops


# ============================================================================ tissue map

#: Assays the tissue map covers (AlphaGenome output types).
ASSAYS: tuple[str, ...] = ("RNA_SEQ", "DNASE", "ATAC", "CAGE")
_ASSAY_ALIASES = {"RNA": "RNA_SEQ", "RNASEQ": "RNA_SEQ", "RNA-SEQ": "RNA_SEQ", "DNASE-SEQ": "DNASE",
                  "DNASE_SEQ": "DNASE", "ATAC-SEQ": "ATAC", "ATAC_SEQ": "ATAC"}

#: STUDIES.md §2.3 defaults (⚑): exact GTEx UBERON term first, else organ-level terms;
#: an empty tuple means the catalogue has no track at tissue level for that assay
#: (Whole_Blood DNASE/ATAC: immune CL terms only; Prostate/Skin ATAC: none).
#: RNA_SEQ tracks are also matched on ``gtex_tissue`` == the tissue name.
#: Verified against ``shared/data/alphagenome/human_track_metadata_parsed.csv``.
#: The write-up's three unnamed tissues are not included (add them through an override).
DEFAULT_TISSUE_MAP: dict[str, dict[str, tuple[str, ...]]] = {
    "Heart_Atrial_Appendage": {"RNA_SEQ": ("UBERON:0006631",), "DNASE": ("UBERON:0006631",),
                               "ATAC": ("UBERON:0002078", "UBERON:0002079"),
                               "CAGE": ("UBERON:0002079", "UBERON:0000948")},
    "Heart_Left_Ventricle": {"RNA_SEQ": ("UBERON:0006566",), "DNASE": ("UBERON:0002084",),
                             "ATAC": ("UBERON:0002084",), "CAGE": ("UBERON:0002084",)},
    "Whole_Blood": {"RNA_SEQ": ("UBERON:0013756",), "DNASE": (), "ATAC": (), "CAGE": ("UBERON:0000178",)},
    "Prostate": {"RNA_SEQ": ("UBERON:0002367",), "DNASE": ("UBERON:0002367",), "ATAC": (),
                 "CAGE": ("UBERON:0002367",)},
    "Esophagus_Mucosa": {"RNA_SEQ": ("UBERON:0006920",), "DNASE": ("CL:0002252",), "ATAC": ("UBERON:0002469",),
                         "CAGE": ("UBERON:0001043",)},
    "Skin_Sun_Exposed_Lower_leg": {"RNA_SEQ": ("UBERON:0004264",), "DNASE": ("UBERON:0004264",), "ATAC": (),
                                   "CAGE": ("UBERON:0000014",)},
    "Muscle_Skeletal": {"RNA_SEQ": ("UBERON:0011907",), "DNASE": ("UBERON:0011907",),
                        "ATAC": ("UBERON:0011907",), "CAGE": ("UBERON:0001134",)},
}

#: Immune-cell terms a study may choose for Whole_Blood DNASE/ATAC (not the default).
WHOLE_BLOOD_IMMUNE_TERMS: tuple[str, ...] = ("CL:0000624", "CL:0000236", "CL:0001054")


class UnknownTissueError(InputError):
    """A tissue is not in the tissue -> ontology map. The message lists the known tissues."""


def _norm_assay(a: str, *, file=None) -> str:
    u = str(a).strip().upper()
    u = _ASSAY_ALIASES.get(u, u)
    if u not in ASSAYS:
        raise InputError(f"unknown assay {a!r}; known: {', '.join(ASSAYS)}", file=file)
    return u


@dataclass(frozen=True)
class TissueMap:
    """GTEx tissue -> {assay: ontology terms}. Build with :func:`load_tissue_map`."""

    entries: dict[str, dict[str, tuple[str, ...]]]
    source: str = "default"
    overridden: tuple[str, ...] = field(default=())

    @property
    def tissues(self) -> list[str]:
        return sorted(self.entries)

    def __contains__(self, tissue: str) -> bool:
        return tissue in self.entries

    def require(self, tissues: Iterable[str], *, file: str | Path | None = None) -> None:
        """Raise :class:`UnknownTissueError` listing every unknown tissue and the known ones."""
        unknown = sorted({t for t in tissues if t not in self.entries})
        if unknown:
            raise UnknownTissueError(
                f"tissue(s) {unknown} are not in the tissue map ({self.source}); known tissues: "
                f"{', '.join(self.tissues)}. Add them through a tissue-map override (TOML or CSV)", file=file)

    def terms(self, tissue: str, assay: str) -> tuple[str, ...]:
        """The ontology terms of ``tissue`` for ``assay`` (may be empty: no such tracks)."""
        self.require([tissue])
        return self.entries[tissue].get(_norm_assay(assay), ())

    def to_frame(self) -> pl.DataFrame:
        """Long table ``tissue, assay, ontology_curie`` (one row per term) for the manifest."""
        rows = [{"tissue": t, "assay": a, "ontology_curie": c}
                for t in self.tissues for a in ASSAYS for c in self.entries[t].get(a, ())]
        return pl.DataFrame(rows, schema={"tissue": pl.Utf8, "assay": pl.Utf8, "ontology_curie": pl.Utf8})

    def to_dict(self) -> dict[str, dict[str, list[str]]]:
        """JSON-ready copy (persist it with the run: the exact mapping used)."""
        return {t: {a: list(self.entries[t].get(a, ())) for a in ASSAYS} for t in self.tissues}


def _read_override(path: Path) -> dict[str, dict[str, tuple[str, ...]]]:
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    if path.suffix.lower() == ".toml":
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"invalid TOML: {exc}", file=path) from exc
        data = data.get("tissues", data)
        for tissue, assays in data.items():
            if not isinstance(assays, dict):
                raise InputError(f"tissue {tissue!r} must be a table of assay = [terms]", file=path)
            entry: dict[str, tuple[str, ...]] = {}
            for a, terms in assays.items():
                if isinstance(terms, str):
                    terms = [terms]
                if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
                    raise InputError(f"{tissue}.{a} must be a list of ontology terms", file=path)
                entry[_norm_assay(a, file=path)] = tuple(t.strip() for t in terms if t.strip())
            out[str(tissue)] = entry
        return out
    # CSV/TSV: long (tissue, assay, ontology_curie) or wide (tissue, RNA_SEQ, DNASE, ...; ';'-separated)
    df = read_text_table(path)
    cols = df.columns
    if "tissue" not in cols:
        raise MissingColumnError("tissue", file=path, available=cols)
    df = add_row_ids(df, dataset="tissue_map", file=path)
    if "assay" in cols:
        if "ontology_curie" not in cols:
            raise MissingColumnError("ontology_curie", file=path, available=cols)
        for r in df.iter_rows(named=True):
            t = (r["tissue"] or "").strip()
            if not t:
                raise InputError("tissue is empty", file=path, column="tissue", row=r["source_row"])
            a = _norm_assay(r["assay"] or "", file=path)
            entry = out.setdefault(t, {})
            term = (r["ontology_curie"] or "").strip()
            entry[a] = entry.get(a, ()) + ((term,) if term and term not in NA_STRINGS else ())
        return out
    assay_cols = {c: _norm_assay(c, file=path) for c in cols
                  if c not in ("tissue", "row_id", "source_file", "source_row")}
    if not assay_cols:
        raise MissingColumnError("assay", file=path, available=cols)
    for r in df.iter_rows(named=True):
        t = (r["tissue"] or "").strip()
        if not t:
            raise InputError("tissue is empty", file=path, column="tissue", row=r["source_row"])
        out[t] = {a: tuple(x.strip() for x in (r[c] or "").split(";") if x.strip() and x.strip() not in NA_STRINGS)
                  for c, a in assay_cols.items()}
    return out


def load_tissue_map(path: str | Path | None = None, *, overrides: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
                    base: Mapping[str, Mapping[str, Sequence[str]]] | None = None, replace: bool = False,
                    tissues: Iterable[str] | None = None) -> TissueMap:
    """The tissue -> ontology map: :data:`DEFAULT_TISSUE_MAP` with overrides applied.

    ``path``: a TOML file (``[Heart_Atrial_Appendage]`` tables of ``DNASE = ["UBERON:..."]``,
    optionally under a top-level ``[tissues]``), or a CSV/TSV, either long
    (``tissue, assay, ontology_curie``) or wide (``tissue`` plus one column per assay,
    terms separated by ``;``). ``overrides``: the same as a dict. Overrides replace the
    (tissue, assay) entries they name and add new tissues; with ``replace=True`` they
    replace the whole map. An empty list for an assay means "no tracks".
    ``tissues``: check these are all known (:class:`UnknownTissueError` listing the
    known tissues otherwise).

    Args:
        path: a TOML or CSV/TSV map (None: the defaults); overrides: the same as a dict;
            replace: overrides replace the whole map; tissues: tissues that must be known.

    Returns:
        A :class:`TissueMap` (``terms(tissue, output_type)``, ``source``, ``overridden``).

    Raises:
        UnknownTissueError: a tissue of ``tissues`` is not in the map; InputError: the file
            cannot be parsed.
    """
    base_map = DEFAULT_TISSUE_MAP if base is None else base
    entries: dict[str, dict[str, tuple[str, ...]]] = {} if replace else {
        t: {a: tuple(v) for a, v in m.items()} for t, m in base_map.items()}
    sources, changed = ["default" if base is None and not replace else "custom"], []
    layers = []
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise InputError("tissue map file not found", file=p)
        layers.append(_read_override(p))
        sources.append(str(p))
    if overrides:
        layers.append({t: {_norm_assay(a): tuple(v if not isinstance(v, str) else [v]) for a, v in m.items()}
                       for t, m in overrides.items()})
        sources.append("overrides")
    for layer in layers:
        for t, m in layer.items():
            entries.setdefault(t, {}).update(m)
            changed.append(t)
    tm = TissueMap(entries=entries, source=" + ".join(sources), overridden=tuple(dict.fromkeys(changed)))
    if tissues is not None:
        tm.require(tissues, file=path)
    return tm
