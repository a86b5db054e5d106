"""Leave-one-variant-out TWAS.Z for Q1 (issue 12, pitfall P30), from eQTL weights and an
LD reference.

Q1's seed statistic compares ``sign(score)`` with ``sign(z_ALT * TWAS.Z)``. TWAS.Z
contains the variant's own eQTL weight times its own GWAS z, so agreement arises without
mediation. With the gene's eQTL weights and an LD reference, :func:`attach_loo_twas_z`
computes, for every triplet variant, TWAS.Z of the *other* weight variants conditioned on
the variant's own z (:func:`agval.stats.twas.loo_twas_z`), so ``sign(z_i * TWAS_-i)`` no
longer contains ``w_i z_i``. Genes selected on TWAS significance from the same GWAS still
carry dependence, and sign agreement is never evidence of mediation (that needs
colocalisation or Mendelian randomisation); reports say so.

Inputs (text tables, tab/comma/space separated, optionally gzipped; headers
case-insensitive):

* **weights** (:func:`load_twas_weights`): one row per (gene, tissue, SNP):
  ``gene_id`` (``gene``/``ID``), ``tissue``, ``rsid`` (``SNP``), ``a1`` (the allele the
  weight is for; ``effect_allele``), ``a2`` (``other_allele``), ``weight``. FUSION's
  ``.wgt.RDat`` holds exactly this (``wgt.matrix`` rows by SNP, ``snps`` with A1/A2);
  export one model column per gene-tissue.
* **LD** (:func:`load_ld_reference`): pairwise correlations of allele dosages,
  ``rsid_a`` (``SNP_A``), ``a1_a`` (the allele counted for A; ``allele_a``), ``rsid_b``
  (``SNP_B``), ``a1_b``, ``r`` (``R``). Pairs not listed are taken as uncorrelated; the
  diagonal is 1. (PLINK ``--r`` output with the counted alleles added.)

Orientation: everything is put on each SNP's weight allele ``a1``: the GWAS z is negated
where the GWAS effect allele is ``a2`` (a strand flip is undone except at palindromic
sites; rows matching neither are counted drops ``loo_allele_mismatch``), and an LD ``r`` is
negated once per side whose counted allele is ``a2``. ``TWAS_-i`` does not depend on which
allele of variant ``i`` is counted, so it pairs with the ALT-oriented ``z_alt`` of the
triplet as it is.

No Prefect here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import polars as pl

from agval.alleles.harmonize import effect_side
from agval.coords import is_palindromic
from agval.drops import DropLog
from agval.errors import InputError
from agval.frames import checked_join
from agval.genes import strip_gene_version_expr
from agval.io._common import (add_row_ids, clean_text, parse_float, read_text_table, resolve_columns,
                              split_drops)
from agval.stats.twas import loo_twas_z

__all__ = ["WEIGHT_COLUMNS", "LD_COLUMNS", "load_twas_weights", "load_ld_reference", "attach_loo_twas_z",
           "LOO_NOTE"]

#: canonical weight columns -> accepted headers (case-insensitive; first present wins)
WEIGHT_COLUMNS: dict[str, tuple[str, ...]] = {
    "gene_id": ("gene_id", "gene", "id"), "tissue": ("tissue",), "rsid": ("rsid", "snp", "variant"),
    "a1": ("a1", "effect_allele", "allele1"), "a2": ("a2", "other_allele", "allele2"),
    "weight": ("weight", "w", "wgt"),
}
#: canonical LD columns -> accepted headers
LD_COLUMNS: dict[str, tuple[str, ...]] = {
    "rsid_a": ("rsid_a", "snp_a"), "a1_a": ("a1_a", "allele_a"), "rsid_b": ("rsid_b", "snp_b"),
    "a1_b": ("a1_b", "allele_b"), "r": ("r", "corr"),
}

#: what a report says next to the leave-one-out statistic
LOO_NOTE = ("Leave-one-variant-out TWAS.Z (LD-conditioned) removes the variant's own weight x z from Q1's "
            "direction; genes selected on TWAS significance from the same GWAS still carry dependence, and sign "
            "agreement is not evidence of mediation: that needs colocalisation or Mendelian randomisation.")


def _alleles(s: pl.Series) -> pl.Series:
    return s.str.to_uppercase()


def _orientation(ea: str | None, oa: str | None, a1: str, a2: str) -> float | None:
    """+1 when the GWAS effect allele is the weight's ``a1``, -1 when it is ``a2`` (also on
    the other strand, except at palindromic A/T, C/G sites where a flip cannot be told from
    a swap), None when the alleles match neither (:func:`agval.alleles.harmonize.effect_side`
    with ``a1`` in the role of ALT)."""
    if ea is None or oa is None:
        return None
    for strand in (False, True):
        if strand and is_palindromic(a2, a1):
            break
        side = effect_side(a2, a1, ea, oa, strand)
        if side is not None:
            return 1.0 if side == "alt" else -1.0
    return None


def _read(path: str | Path, spec: dict[str, tuple[str, ...]], *, dataset: str) -> tuple[pl.DataFrame, dict]:
    path = Path(path)
    raw = read_text_table(path)
    res = resolve_columns(raw.columns, spec, file=path, required=list(spec))
    return add_row_ids(raw, dataset=dataset, file=path), res


def load_twas_weights(paths: str | Path | Sequence[str | Path], *, tissues: Sequence[str] | None = None,
                      drops: DropLog | None = None) -> pl.DataFrame:
    """eQTL weights of the TWAS models (module docstring for the layout).

    Args:
        paths: one file or several (e.g. one per tissue).
        tissues: keep only these tissues when given.
        drops: receives counted drops (stage ``loo``): ``missing_id`` (empty rsID, gene or
            tissue), ``missing_weight``.

    Returns:
        ``gene_id`` (version stripped), ``tissue``, ``rsid``, ``a1``, ``a2`` (upper case),
        ``weight`` (Float64); one row per (gene, tissue, rsid), the first kept.

    Raises:
        InputError: a malformed weight (naming file, column and row), a missing column.
    """
    drops = drops if drops is not None else DropLog()
    parts = []
    for p in [paths] if isinstance(paths, (str, Path)) else list(paths):
        df, res = _read(p, WEIGHT_COLUMNS, dataset="twas_weights")
        w = parse_float(df, res["weight"], file=p)
        df = df.with_columns(clean_text(df, res["gene_id"]).alias("_gene"),
                             clean_text(df, res["tissue"]).alias("tissue"),
                             clean_text(df, res["rsid"]).alias("rsid"), _alleles(clean_text(df, res["a1"])).alias("a1"),
                             _alleles(clean_text(df, res["a2"])).alias("a2"), w.alias("weight"))
        df = df.with_columns(strip_gene_version_expr(pl.col("_gene")).alias("gene_id"))
        df = split_drops(df, pl.any_horizontal(pl.col("gene_id", "tissue", "rsid", "a1", "a2").is_null()), drops,
                         "missing_id", detail="empty gene, tissue, rsID or allele", stage="loo")
        df = split_drops(df, ~pl.col("weight").is_finite().fill_null(False), drops, "missing_weight",
                         detail="weight is empty or not finite", stage="loo")
        parts.append(df.select("gene_id", "tissue", "rsid", "a1", "a2", "weight"))
    out = pl.concat(parts) if parts else pl.DataFrame(schema={"gene_id": pl.Utf8, "tissue": pl.Utf8, "rsid": pl.Utf8,
                                                              "a1": pl.Utf8, "a2": pl.Utf8, "weight": pl.Float64})
    if tissues is not None:
        out = out.filter(pl.col("tissue").is_in(list(tissues)))
    return out.unique(["gene_id", "tissue", "rsid"], keep="first", maintain_order=True)


def load_ld_reference(paths: str | Path | Sequence[str | Path], *, drops: DropLog | None = None) -> pl.DataFrame:
    """Pairwise LD (module docstring for the layout).

    Returns:
        ``rsid_a, a1_a, rsid_b, a1_b, r``; rows with an empty field or a non-finite ``r``
        are counted drops (stage ``loo``, ``missing_ld``).

    Raises:
        InputError: ``|r| > 1`` or a malformed ``r`` (naming file, column and row), a
            missing column.
    """
    drops = drops if drops is not None else DropLog()
    parts = []
    for p in [paths] if isinstance(paths, (str, Path)) else list(paths):
        df, res = _read(p, LD_COLUMNS, dataset="ld")
        r = parse_float(df, res["r"], file=p)
        bad = (r.abs() > 1 + 1e-6).fill_null(False)
        if bad.any():
            i = int(bad.arg_max())
            raise InputError(f"LD r {r[i]!r} is outside [-1, 1]", file=p, column=res["r"],
                             row=int(df["source_row"][i]))
        df = df.with_columns(clean_text(df, res["rsid_a"]).alias("rsid_a"),
                             _alleles(clean_text(df, res["a1_a"])).alias("a1_a"),
                             clean_text(df, res["rsid_b"]).alias("rsid_b"),
                             _alleles(clean_text(df, res["a1_b"])).alias("a1_b"), r.clip(-1.0, 1.0).alias("r"))
        df = split_drops(df, pl.any_horizontal(pl.col("rsid_a", "a1_a", "rsid_b", "a1_b").is_null())
                         | ~pl.col("r").is_finite().fill_null(False), drops, "missing_ld",
                         detail="empty SNP, allele or r", stage="loo")
        parts.append(df.select("rsid_a", "a1_a", "rsid_b", "a1_b", "r"))
    return pl.concat(parts) if parts else pl.DataFrame(
        schema={"rsid_a": pl.Utf8, "a1_a": pl.Utf8, "rsid_b": pl.Utf8, "a1_b": pl.Utf8, "r": pl.Float64})


def _drop_weights(rows: pl.DataFrame, drops: DropLog, reason: str, detail: pl.Expr) -> None:
    """Weight rows (``gene_id|tissue|rsid``) left out of the leave-one-out TWAS.Z, counted."""
    if rows.height:
        drops.add_frame(rows.select(pl.format("{}|{}|{}", "gene_id", "tissue", "rsid").alias("row_id"),
                                    detail.alias("detail")), stage="loo", reason=reason)


def attach_loo_twas_z(triplets: pl.DataFrame, weights: pl.DataFrame, gwas: pl.DataFrame, ld: pl.DataFrame, *,
                      drops: DropLog | None = None) -> tuple[pl.DataFrame, dict[str, float]]:
    """``(triplets + twas_z_loo, counts)``.

    Args:
        triplets: the triplet table (``rsid, gene_id, tissue, z_alt, twas_z`` ...).
        weights: :func:`load_twas_weights`.
        gwas: GWAS rows of the weight SNPs: ``rsid, z, effect_allele, other_allele``
            (:func:`agval.twas.gwas.read_gwas_for`).
        ld: :func:`load_ld_reference`.
        drops: receives, per weight row of a triplet gene-tissue (stage ``loo``),
            ``loo_no_gwas`` (no usable GWAS z for the SNP) and ``loo_allele_mismatch`` (its
            GWAS alleles match neither ``a1`` nor ``a2``).

    Returns:
        ``twas_z_loo`` (Float64) is null where the triplet's variant is not among its
        gene-tissue's weights with a GWAS z, or the conditioned variance is ~0.
        ``counts``: ``loo_gene_tissues`` (gene-tissues computed), ``loo_rows`` (triplet
        rows with a value), ``loo_twas_z_recomputed_r`` (Pearson r of the TWAS.Z
        recomputed from weights, GWAS and LD with the input's TWAS.Z over those
        gene-tissues: a check that the three inputs belong together; ~1 when they do).
    """
    drops = drops if drops is not None else DropLog()
    g = gwas.select("rsid", pl.col("z").cast(pl.Float64), _alleles(gwas["effect_allele"]).alias("ea"),
                    _alleles(gwas["other_allele"]).alias("oa")).unique("rsid", keep="first", maintain_order=True)
    need = triplets.select("gene_id", "tissue").unique()
    w = checked_join(weights.join(need, on=["gene_id", "tissue"], how="inner"), g, "rsid", how="left",
                     validate="m:1", what="TWAS weights x GWAS rows of their SNPs")
    _drop_weights(w.filter(pl.col("z").is_null() | ~pl.col("z").is_finite()), drops, "loo_no_gwas",
                  pl.format("{} has no usable GWAS z (its weight is left out of TWAS_-i)", "rsid"))
    w = w.filter(pl.col("z").is_finite().fill_null(False))
    w = w.with_columns(pl.Series("_s", [_orientation(*t) for t in zip(w["ea"], w["oa"], w["a1"], w["a2"])],
                                 dtype=pl.Float64))
    _drop_weights(w.filter(pl.col("_s").is_null()), drops, "loo_allele_mismatch",
                  pl.format("GWAS alleles {}/{} match neither weight allele {}/{}", "ea", "oa", "a1", "a2"))
    w = w.filter(pl.col("_s").is_not_null()).with_columns((pl.col("z") * pl.col("_s")).alias("z_a1"))
    # LD on the weight alleles: both orders of every pair
    a1_of = weights.select("rsid", "a1", "a2").unique("rsid", keep="first")
    l2 = pl.concat([ld, ld.select(pl.col("rsid_b").alias("rsid_a"), pl.col("a1_b").alias("a1_a"),
                                  pl.col("rsid_a").alias("rsid_b"), pl.col("a1_a").alias("a1_b"), "r")])
    l2 = (l2.join(a1_of.rename({"rsid": "rsid_a", "a1": "_a1a", "a2": "_a2a"}), on="rsid_a", how="inner")
            .join(a1_of.rename({"rsid": "rsid_b", "a1": "_a1b", "a2": "_a2b"}), on="rsid_b", how="inner")
            .with_columns((pl.when(pl.col("a1_a") == pl.col("_a1a")).then(1.0)
                           .when(pl.col("a1_a") == pl.col("_a2a")).then(-1.0).otherwise(None)
                           * pl.when(pl.col("a1_b") == pl.col("_a1b")).then(1.0)
                           .when(pl.col("a1_b") == pl.col("_a2b")).then(-1.0).otherwise(None)
                           * pl.col("r")).alias("r1"))
            .filter(pl.col("r1").is_not_null() & (pl.col("rsid_a") != pl.col("rsid_b"))))
    w = (w
          .with_columns(pl.int_range(pl.len()).over("gene_id", "tissue").alias("_i")))
    # each gene-tissue's LD pairs as (row, column) indices into its weight vector, in one join
    idx = w.select("gene_id", "tissue", "rsid", "_i")
    pairs = (l2.select("rsid_a", "rsid_b", "r1")
               .join(idx.rename({"rsid": "rsid_a", "_i": "_ia"}), on="rsid_a", how="inner")
               .join(idx.rename({"rsid": "rsid_b", "_i": "_ib"}), on=["gene_id", "tissue", "rsid_b"], how="inner")
               .partition_by(["gene_id", "tissue"], as_dict=True))
    out_rows: list[tuple[str, str, str, float]] = []
    recomputed, given = [], []
    tz = dict(zip(zip(triplets["gene_id"].to_list(), triplets["tissue"].to_list()), triplets["twas_z"].to_list()))
    for (gene, tissue), part in w.group_by(["gene_id", "tissue"], maintain_order=True):
        part = part.sort("_i")
        rs = part["rsid"].to_list()
        m = len(rs)
        R = np.eye(m)
        pp = pairs.get((gene, tissue))
        if pp is not None and pp.height:
            ia, ib = pp["_ia"].to_numpy(), pp["_ib"].to_numpy()
            R[ia, ib] = pp["r1"].to_numpy()
            R[ib, ia] = R[ia, ib]
        wv, zv = part["weight"].to_numpy(), part["z_a1"].to_numpy()
        var = float(wv @ R @ wv)
        if var > 1e-12:
            recomputed.append(float(wv @ zv) / math.sqrt(var))
            given.append(tz.get((gene, tissue), math.nan))
        loo = loo_twas_z(wv, zv, R)
        out_rows += [(gene, tissue, r_, float(v)) for r_, v in zip(rs, loo) if np.isfinite(v)]
    loo_df = pl.DataFrame(out_rows, schema={"gene_id": pl.Utf8, "tissue": pl.Utf8, "rsid": pl.Utf8,
                                            "twas_z_loo": pl.Float64}, orient="row")
    out = triplets.drop("twas_z_loo", strict=False).join(loo_df, on=["gene_id", "tissue", "rsid"], how="left")
    rg, gv = np.asarray(recomputed), np.asarray(given, dtype=float)
    ok = np.isfinite(rg) & np.isfinite(gv)
    r_check = float(np.corrcoef(rg[ok], gv[ok])[0, 1]) if ok.sum() > 2 else math.nan
    counts = {"loo_gene_tissues": int(loo_df.select("gene_id", "tissue").unique().height),
              "loo_rows": int(out["twas_z_loo"].is_not_null().sum()), "loo_twas_z_recomputed_r": r_check}
    return out, counts
