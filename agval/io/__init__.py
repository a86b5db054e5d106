"""Loaders for every study input format, and MPRA activity from counts.

Every loader returns ``(frame, drops)``: a polars DataFrame whose rows carry a unique,
stable ``row_id`` (``"<dataset>:<1-based source row>"``), ``source_file`` and
``source_row``, plus a :class:`~agval.drops.DropLog` of the rows it dropped (stage
``load``, with a reason). Columns are matched by header name, never by position.
Missing columns raise :class:`~agval.errors.MissingColumnError` naming the file and the
column; malformed values raise :class:`~agval.errors.InputError` naming file, column and
row; missing required values are counted drops (see :mod:`agval.io._common`).

* QTL (:mod:`agval.io.qtl`): :func:`load_gse86886_caqtl`, :func:`load_gse86886_eqtl`,
  :func:`load_gse116193_hqtl`, :func:`load_gtex_signif_pairs`, :func:`load_generic_qtl`.
* TWAS (:mod:`agval.io.twas`): :func:`scan_gwas_sumstats` (lazy), :func:`load_gwas_sumstats`,
  :func:`load_susie`, :func:`load_fusion_dat`, :func:`load_tissue_map`,
  :data:`DEFAULT_TISSUE_MAP`.
* MPRA (:mod:`agval.io.mpra`): :func:`load_gse84888_counts`, :func:`load_count_table`,
  :func:`load_element_sequences`, :func:`compute_activity`.
"""

from agval.io.mpra import (ActivityResult, compute_activity, load_count_table, load_element_sequences,
                           load_gse84888_counts, parse_gse84888_name)
from agval.io.qtl import (check_slope_not_pvalues, load_generic_qtl, load_gse86886_caqtl, load_gse86886_eqtl,
                          load_gse116193_hqtl, load_gtex_signif_pairs)
from agval.io.twas import (ASSAYS, DEFAULT_TISSUE_MAP, TissueMap, UnknownTissueError, load_fusion_dat,
                           load_gwas_sumstats, load_susie, load_tissue_map, scan_gwas_sumstats)

__all__ = [
    "load_gse86886_caqtl", "load_gse86886_eqtl", "load_gse116193_hqtl", "load_gtex_signif_pairs",
    "load_generic_qtl", "check_slope_not_pvalues",
    "scan_gwas_sumstats", "load_gwas_sumstats", "load_susie", "load_fusion_dat", "load_tissue_map",
    "TissueMap", "UnknownTissueError", "DEFAULT_TISSUE_MAP", "ASSAYS",
    "load_gse84888_counts", "parse_gse84888_name", "load_count_table", "load_element_sequences",
    "compute_activity", "ActivityResult",
]
