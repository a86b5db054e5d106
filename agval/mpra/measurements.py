"""Measured MPRA activity from count files (STUDIES.md §3.1; pitfall P26).

:func:`load_measurements` loads GSE84888-format count files or a generic count table
(:mod:`agval.io.mpra`), computes ``log2((RNA + pc) / (DNA + pc))`` with the minimum-DNA
and minimum-barcode filters (each filter's effect is counted and reported), and adds
what the analysis needs:

* ``tf``: the construct's TF tokens, from the GSE84888 ``modification``: the
  ``_``-separated tokens that are purely alphabetic (``cebp_32_43_tr4`` -> ``[cebp]``,
  ``lxr_cebp_2_3`` -> ``[lxr, cebp]``; ``ap1`` has a digit and is not a token; ``wt``
  -> ``[wt]``), as in the seed's corrected parser (d7e2994);
* ``locus_id`` (GSE84888 only): ``chrom:start-end:strand:seq16``, the locus a construct
  belongs to (18 loci in the real data). It is a **grouping** key (clusters, wild-type
  lookup), never a row key (P19).

The summary (``Measurements.summary``) is the activity block of ``metrics.json``:
filters and their drops, rows per pool, distinct loci, mean / median / sd of the
log2 ratio, zero-count rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import polars as pl

from agval.drops import DropLog
from agval.errors import InputError
from agval.io.mpra import compute_activity, load_count_table, load_gse84888_counts

__all__ = ["tf_tokens", "Measurements", "load_measurements", "activity_summary"]

CountFormat = Literal["gse84888", "table"]
Aggregate = Literal["auto", "none", "mean", "median", "sum"]


def tf_tokens(modification: str | None) -> list[str]:
    """Alphabetic ``_``-tokens of a GSE84888 modification (``"wt"`` -> ``["wt"]``; may be empty)."""
    if not modification or modification == "wt":
        return ["wt"]
    return list(dict.fromkeys(t.lower() for t in modification.split("_") if t.isalpha()))


@dataclass
class Measurements:
    """One row per construct (``row_id`` unique) with ``log2_ratio``; ``summary`` for metrics."""

    table: pl.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)
    drops: DropLog = field(default_factory=DropLog)


def activity_summary(table: pl.DataFrame, *, value: str = "log2_ratio") -> dict[str, Any]:
    """Rows, rows per pool, distinct loci and the distribution of ``value``."""
    v = table[value].cast(pl.Float64).to_numpy() if table.height else np.array([])
    v = v[np.isfinite(v)]
    out: dict[str, Any] = {"n_constructs": int(table.height)}
    if "pool" in table.columns:
        out["by_pool"] = {str(k): int(n) for k, n in table.group_by("pool").len().sort("pool").iter_rows()}
    if "locus_id" in table.columns:
        out["n_loci"] = int(table["locus_id"].n_unique())
    if "strand" in table.columns:
        out["by_strand"] = {str(k): int(n) for k, n in table.group_by("strand").len().sort("strand").iter_rows()}
    out.update({f"{value}_mean": float(np.mean(v)) if v.size else None,
                f"{value}_median": float(np.median(v)) if v.size else None,
                f"{value}_sd": float(np.std(v, ddof=1)) if v.size > 1 else None})
    for c, name in (("rna", "n_zero_rna"), ("dna", "n_zero_dna")):
        if c in table.columns:
            out[name] = int((table[c].cast(pl.Float64) == 0).sum())
    return out


def load_measurements(counts: Sequence[str | Path], *, count_format: CountFormat = "gse84888",
                      pools: Sequence[str] | None = None, build: str = "mm9", pseudocount: float = 1.0,
                      min_dna: float = 0, min_tags: int = 0, aggregate: Aggregate = "auto",
                      drops: DropLog | None = None) -> Measurements:
    """Counts -> per-construct activity (see the module docstring).

    ``count_format="gse84888"``: ``name, tags, counts.rna, counts.plasmid`` files, one
    row per construct. ``"table"``: a generic per-barcode or per-element table; with
    ``aggregate="auto"`` per-barcode rows are summed per element (``"sum"``), per-element
    rows are kept. ``mean``/``median`` average the per-barcode log2 ratios instead.
    """
    drops = drops if drops is not None else DropLog()
    if not counts:
        raise InputError("no count files given")
    if count_format == "gse84888":
        raw, d = load_gse84888_counts(*counts, build=build, pools=pools)
        agg = None if aggregate in ("auto", "none") else aggregate
        if agg is not None:
            raise InputError("GSE84888 files have one row per construct already; use aggregate='auto' or 'none'")
    elif count_format == "table":
        parts, d = [], DropLog()
        for i, p in enumerate(counts):
            t, di = load_count_table(p, dataset=pools[i] if pools else None)
            parts.append(t.with_columns(pl.lit(pools[i] if pools else Path(p).stem).alias("pool")))
            d.extend(di)
        raw = pl.concat(parts, how="vertical_relaxed")
        per_barcode = raw["barcode"].null_count() < raw.height
        agg = ("sum" if per_barcode else None) if aggregate == "auto" else (None if aggregate == "none"
                                                                             else aggregate)
        if agg is None and raw["element_id"].is_duplicated().any():
            raise InputError("the count table has several rows per element; aggregate them "
                             "(aggregate='sum', 'mean' or 'median')", file=str(counts[0]), column="element_id")
    else:
        raise InputError(f"unknown count format {count_format!r}; use gse84888 or table")
    drops.extend(d)
    n_loaded = raw.height
    res = compute_activity(raw, pseudocount=pseudocount, min_dna=min_dna, min_tags=min_tags, aggregate=agg,
                           by="element_id", keep=["pool"] if agg else (), drops=drops)
    table = res.table
    if agg is not None:
        table = table.drop("row_ids")
    if count_format == "gse84888":
        table = table.with_columns(pl.col("modification").map_elements(tf_tokens, return_dtype=pl.List(pl.String))
                                   .alias("tf"))
    summary = {"count_format": count_format, "n_loaded": n_loaded, "n_load_dropped": len(d),
               "filters": res.summary(), **activity_summary(table)}
    return Measurements(table, summary, drops)
