"""Wild type vs mutant: effects as differences, merged with an asserted cardinality (P19).

The seed's V3 merged mutant and wild-type predictions on ``variant_id``
(``chrom:start-end:strand:seq16``), a key shared by every construct of a locus, and
6,963 rows became 4,798,353 (sum of n_locus²). Here every mutant construct is matched to
**its** wild type through a key that is unique on the wild-type side:

* the wild types (``modification == "wt"``) are indexed by the group key (``locus_id``
  by default) and must be unique per key;
* the mutants are joined to them with :func:`agval.frames.checked_join`
  (``validate="m:1"``, ``how="left"``), which raises
  :class:`~agval.errors.CardinalityError` if a wild type is duplicated and asserts that
  the result has exactly one row per mutant;
* mutants whose locus has no wild type are dropped and counted (``no_wild_type``).

Effects: ``<column>_delta = mutant - wild type`` for the measured activity and every
aggregate (the same input sequence for mutant and wild type gives a delta of exactly 0:
the model did not see the edit).
"""

from __future__ import annotations

from typing import Sequence

import polars as pl

from agval.drops import DropLog
from agval.errors import CardinalityError, MissingColumnError
from agval.frames import checked_join

__all__ = ["wt_mutant_effects", "effects_long"]


def wt_mutant_effects(table: pl.DataFrame, columns: Sequence[str], *, group: str = "locus_id",
                      modification: str = "modification", wt_label: str = "wt", id_col: str = "row_id",
                      drops: DropLog | None = None) -> pl.DataFrame:
    """One row per mutant construct: ``row_id``, ``wt_row_id``, ``group``, the mutant's
    ``columns``, ``<c>_wt`` and ``<c>_delta`` for each column (plus ``input_id`` /
    ``wt_input_id`` and ``same_input`` when ``input_id`` is present)."""
    for c in [group, modification, id_col, *columns]:
        if c not in table.columns:
            raise MissingColumnError(c, file="<wild type vs mutant>", available=table.columns)
    drops = drops if drops is not None else DropLog()
    has_input = "input_id" in table.columns
    keep = [id_col, group, *columns] + (["input_id"] if has_input else [])
    wt = table.filter(pl.col(modification) == wt_label).select(
        pl.col(id_col).alias(f"wt_{id_col}"), pl.col(group),
        *[pl.col(c).alias(f"{c}_wt") for c in columns],
        *([pl.col("input_id").alias("wt_input_id")] if has_input else []))
    mut = table.filter(pl.col(modification) != wt_label).select(
        *keep, *([c for c in ("tf", "strand", "chromosome", modification) if c in table.columns and c not in keep]))
    merged = checked_join(mut, wt, on=group, how="left", validate="m:1",
                          what=f"mutant x wild type on {group!r}")
    if merged.height != mut.height:  # checked_join asserts this; explicit for the reader
        raise CardinalityError(f"mutant x wild type changed the row count {mut.height} -> {merged.height}")
    orphan = merged.filter(pl.col(f"wt_{id_col}").is_null())
    if orphan.height:
        drops.add_frame(orphan.select(pl.col(id_col).alias("row_id"),
                                      pl.format("no wild type for {} {}", pl.lit(group), pl.col(group))
                                      .alias("detail")),
                        stage="effects", reason="no_wild_type")
        merged = merged.filter(pl.col(f"wt_{id_col}").is_not_null())
    merged = merged.with_columns([(pl.col(c) - pl.col(f"{c}_wt")).alias(f"{c}_delta") for c in columns])
    if has_input:
        merged = merged.with_columns((pl.col("input_id") == pl.col("wt_input_id")).alias("same_input"))
    return merged


def effects_long(effects: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    """Long form for the wild-type vs mutant figures: ``aggregate, wt, mutant``."""
    parts = [effects.select(pl.lit(c).alias("aggregate"), pl.col(f"{c}_wt").cast(pl.Float64).alias("wt"),
                            pl.col(c).cast(pl.Float64).alias("mutant")) for c in columns]
    return pl.concat(parts) if parts else pl.DataFrame(schema={"aggregate": pl.String, "wt": pl.Float64,
                                                               "mutant": pl.Float64})
