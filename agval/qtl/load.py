"""Step 1: load the study table with the loader of its format and add what the analysis needs.

:func:`load_study_table` returns a :class:`LoadedTable`: the loader's frame plus

* ``beta`` (as published) - unchanged;
* ``cluster_id`` - the bootstrap resampling unit (STUDIES.md §1.4: peaks/loci, not
  variants): caQTL the ATAC peak (``peak_id``, else the trait), hQTL the locus (hg19
  ``chr:pos`` of the SNP, so one SNP's rows for two marks resample together), eQTL the
  gene, generic the trait (else the variant);
* ``mark`` (hQTL; one row per significant mark) and ``gene_id`` (eQTL) as the loaders
  give them.

Rows dropped by the loader are in :attr:`LoadedTable.drops` (stage ``load``); rows of
marks outside ``study.marks`` are dropped with reason ``mark_not_selected``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from agval.drops import DropLog
from agval.errors import ConfigError, InputError
from agval.io._common import split_drops
from agval.io.qtl import (load_generic_qtl, load_gse86886_caqtl, load_gse116193_hqtl,
                          load_gtex_signif_pairs)
from agval.qtl.study import QTLStudy

__all__ = ["LoadedTable", "load_study_table", "resolve_route"]


@dataclass
class LoadedTable:
    frame: pl.DataFrame
    drops: DropLog
    route: str                       # lookup | coordinates | precomputed
    n_input_rows: int                # data rows in the file
    notes: list[str] = field(default_factory=list)


def _count_rows(frame: pl.DataFrame, drops: DropLog) -> int:
    """Data rows of the file: the union of the source rows kept and dropped (an hQTL file row
    split per mark can be kept for one mark and dropped for the other; it counts once)."""
    kept = set(frame["source_row"].drop_nulls().to_list()) if frame.height else set()
    dropped = set(drops.frame()["source_row"].drop_nulls().to_list()) if len(drops) else set()
    return len(kept | dropped)


def resolve_route(study: QTLStudy, frame: pl.DataFrame) -> str:
    """``study.route`` with ``auto`` decided from the table (no rsIDs at all -> coordinates)."""
    if study.predictions:
        return "precomputed"
    if study.allele_route != "auto":
        return study.allele_route
    if study.format == "gtex":
        return "coordinates"
    if "rsid" in frame.columns and frame["rsid"].drop_nulls().len() > 0:
        return "lookup"
    return "coordinates"


def load_study_table(study: QTLStudy) -> LoadedTable:
    """Load ``study.table`` with the loader of ``study.format`` (see the module docstring)."""
    path = Path(study.table)
    if not path.is_file():
        raise InputError("study table not found", file=path)
    fmt = study.format
    notes: list[str] = []
    if fmt == "gse86886":
        df, drops = load_gse86886_caqtl(path, dataset=study.dataset or "caQTL")
        df = df.with_columns(pl.coalesce("peak_id", "trait_id").alias("cluster_id"))
    elif fmt == "gse116193":
        df, drops = load_gse116193_hqtl(path, dataset=study.dataset or "hQTL", one_row_per_mark=True)
        df = df.with_columns(pl.format("{}:{}", "hg19_chrom", "hg19_pos").alias("cluster_id"))
        if study.marks:
            keep = [m.lower() for m in study.marks]
            df = split_drops(df, ~pl.col("mark").str.to_lowercase().is_in(keep), drops, "mark_not_selected",
                             detail=pl.format("mark {} is not among {}", "mark", pl.lit(", ".join(study.marks))))
    elif fmt == "gtex":
        df, drops = load_gtex_signif_pairs(path, tissue=study.gtex_tissue, dataset=study.dataset)
        df = df.with_columns(pl.col("gene_id").alias("cluster_id"))
    elif fmt == "generic":
        df, drops = load_generic_qtl(path, build=study.build, dataset=study.dataset, columns=study.columns)
        variant = pl.coalesce(pl.col("rsid"), pl.format("{}:{}", "chrom", "pos"))
        df = df.with_columns(pl.coalesce(pl.col("trait_id"), variant).alias("cluster_id"))
        if "gene_id" not in df.columns:
            df = df.with_columns(pl.col("trait_id").alias("gene_id"))
    else:  # pragma: no cover - the model restricts it
        raise ConfigError(f"unknown QTL table format {fmt!r}")
    if study.kind == "hqtl" and "mark" not in df.columns:
        raise ConfigError(f"kind 'hqtl' needs per-mark rows (format gse116193), not format {fmt!r}")
    route = resolve_route(study, df)
    n_input = _count_rows(df, drops)
    return LoadedTable(df, drops, route, n_input, notes)
