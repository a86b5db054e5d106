"""The precomputed path: re-check a published MPRA benchmark from its files.

A predictions table (CSV/TSV/parquet) maps an id to aggregate columns::

    locus_id                                   dnase_center  dnase_mean  rna_center ...
    chr5:51987228-51987244:-:AGTAGGGGAAAGAGTA  0.00061       0.00052     2.1e-06

* The key column is ``key`` or the first of :data:`KEY_COLUMNS` present. It is joined to
  the measured activity with an asserted **m:1** cardinality (a key repeated in the
  predictions table is a :class:`~agval.errors.CardinalityError`, never a silent
  explosion, P19): ``element_id``/``name`` -> the construct, ``locus_id``/``variant_id``
  (``chrom:start-end:strand:seq16``, the seed's ``variant_id``) -> the locus,
  ``row_id`` -> the row, any other name -> the same-named measured column.
* Aggregate (prediction) columns: ``columns`` (explicit), or by **one naming rule**
  (:func:`is_prediction_column`): a column whose name is ``<assay>_<aggregate>`` with
  ``<assay>`` one of agval's assay names (``dnase``, ``atac``, ``cage``, ``rna``,
  ``procap``, ``histone``, ``chiptf``; :data:`agval.mpra.aggregates.ASSAY_NAMES`), e.g.
  ``dnase_center``, ``cage_mean_plus`` (what agval itself writes), or one starting with
  ``pred_`` / ``prediction_`` (``pred_enformer``). Nothing else is taken: counts, lengths,
  ``n``, GC content and other numeric columns are never predictions unless named.
* ``measured_column``: the table carries the measured activity too (e.g. the seed's
  ``mpra_log2_ratio``); then no count files are needed and every row is a construct.

Distinct inputs: rows sharing a key share a prediction, so ``input_id`` is the key
(``input_column`` overrides it, e.g. a sequence hash column).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import polars as pl

from agval.drops import DropLog
from agval.errors import InputError, MissingColumnError
from agval.frames import checked_join
from agval.io._common import add_row_ids, dataset_name, parse_float, read_text_table

__all__ = ["KEY_COLUMNS", "load_predictions", "attach_predictions", "JOIN_TARGET", "is_prediction_column",
           "PREDICTION_PREFIXES"]

#: name prefixes that mark a column as a prediction (besides ``<assay>_``)
PREDICTION_PREFIXES = ("pred_", "prediction_")


def is_prediction_column(name: str) -> bool:
    """The naming rule of auto-detected prediction columns (module docstring):
    ``<assay>_<aggregate>`` with an agval assay name, or a ``pred_`` / ``prediction_``
    prefix (case-insensitive)."""
    from agval.mpra.aggregates import ASSAY_NAMES

    n = name.strip().lower()
    if n.startswith(PREDICTION_PREFIXES) and len(n) > len(n.split("_", 1)[0]) + 1:
        return True
    return any(n.startswith(a + "_") and len(n) > len(a) + 1 for a in ASSAY_NAMES.values())

KEY_COLUMNS = ("element_id", "name", "locus_id", "variant_id", "row_id", "id")
JOIN_TARGET = {"element_id": "element_id", "name": "element_id", "locus_id": "locus_id",
               "variant_id": "locus_id", "row_id": "row_id", "id": "element_id"}
_NOT_AGGREGATES = {"row_id", "source_row", "source_file", "start", "end", "pos", "tags", "rna", "dna",
                   "counts.rna", "counts.plasmid", "log2_ratio", "activity", "mpra_log2_ratio", "mpra_activity",
                   "n_rows", "index", "input_id", "pool", "chromosome", "chrom", "strand"}


def load_predictions(path: str | Path, *, key: str | None = None, columns: Sequence[str] | None = None,
                     measured_column: str | None = None) -> tuple[pl.DataFrame, str, list[str]]:
    """Read a predictions table; returns ``(frame, key, aggregate_columns)``.

    The frame has ``row_id``, ``source_file``, ``source_row``, the key (as text), the
    aggregate columns (Float64) and, with ``measured_column``, ``log2_ratio`` (Float64).
    A value that is not a number raises :class:`~agval.errors.InputError` naming the row.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("predictions table not found", file=p)
    if p.suffix.lower() in (".parquet", ".pq"):
        raw = pl.read_parquet(p)
        raw = raw.with_columns([pl.col(c).cast(pl.String) for c, t in raw.schema.items() if t != pl.String])
    else:
        raw = read_text_table(p)
    key = key or next((k for k in KEY_COLUMNS if k in raw.columns), None)
    if key is None or key not in raw.columns:
        raise MissingColumnError(key or KEY_COLUMNS[0], file=p, available=raw.columns)
    df = add_row_ids(raw, dataset=dataset_name(p, None), file=p)
    if measured_column is not None and measured_column not in raw.columns:
        raise MissingColumnError(measured_column, file=p, available=raw.columns)
    if columns:
        aggs = list(columns)
        for c in aggs:
            if c not in raw.columns:
                raise MissingColumnError(c, file=p, available=raw.columns)
    else:
        skip = _NOT_AGGREGATES | set(KEY_COLUMNS) | {key, measured_column}
        aggs = [c for c in raw.columns if c not in skip and is_prediction_column(c)]
        if not aggs:
            raise InputError("no prediction column found: auto-detection takes only columns named "
                             "<assay>_<aggregate> (dnase_center, cage_mean, ...) or pred_<name>; name the "
                             f"others with prediction_columns (columns: {', '.join(raw.columns)})", file=p)
    out = [pl.col("row_id"), pl.col("source_file"), pl.col("source_row"), pl.col(key).str.strip_chars().alias(key)]
    parsed = {c: parse_float(df, c, file=p).alias(c) for c in aggs}
    if measured_column is not None:
        parsed["log2_ratio"] = parse_float(df, measured_column, file=p).alias("log2_ratio")
    frame = df.select(out).with_columns(list(parsed.values()))
    if measured_column is not None:
        extra = [c for c in ("locus_id", "strand", "chromosome", "chrom", "tf", "modification") if c in raw.columns
                 and c not in frame.columns and c != key]
        frame = frame.with_columns([df[c] for c in extra])
    return frame, key, aggs


def attach_predictions(measured: pl.DataFrame, predictions: pl.DataFrame, *, key: str, aggregates: Sequence[str],
                       drops: DropLog | None = None, input_column: str | None = None) -> pl.DataFrame:
    """Join the predictions to the measured rows (m:1 on the key, row count asserted).

    Rows without a prediction are dropped (stage ``predict``, reason ``no_prediction``).
    Adds ``input_id`` (the key, or ``input_column`` of the predictions table)."""
    drops = drops if drops is not None else DropLog()
    target = JOIN_TARGET.get(key, key)
    if target not in measured.columns:
        raise MissingColumnError(target, file="<measured activity>", available=measured.columns)
    cols = [key, *aggregates] + ([input_column] if input_column and input_column != key else [])
    right = predictions.select(cols).rename({key: "_pred_key"})
    if input_column and input_column != key:
        right = right.rename({input_column: "_input"})
    left = measured.with_columns(pl.col(target).cast(pl.String).alias("_pred_key"))
    clash = [c for c in aggregates if c in left.columns]
    if clash:
        left = left.drop(clash)
    joined = checked_join(left, right, on="_pred_key", how="left", validate="m:1",
                          what=f"measured activity x predictions on {key!r}")
    if joined.height != measured.height:  # checked_join asserts it; kept explicit for readers
        raise InputError(f"the predictions join changed the row count {measured.height} -> {joined.height}")
    has = pl.any_horizontal([pl.col(c).is_not_null() for c in aggregates])
    missing = joined.filter(~has)
    if missing.height:
        drops.add_frame(missing.select("row_id", *(c for c in ("source_file", "source_row") if c in joined.columns),
                                       pl.format("no prediction for {} {}", pl.lit(key), "_pred_key").alias("detail")),
                        stage="predict", reason="no_prediction")
    joined = joined.filter(has)
    inp = pl.col("_input").cast(pl.String) if input_column and input_column != key else pl.col("_pred_key")
    joined = joined.with_columns(inp.alias("input_id"))
    return joined.drop([c for c in ("_pred_key", "_input") if c in joined.columns])


def describe(aggregates: Sequence[str], key: str) -> dict[str, Any]:
    return {"key": key, "join_target": JOIN_TARGET.get(key, key), "aggregates": list(aggregates)}


def measured_from_predictions(frame: pl.DataFrame, *, key: str, input_column: str | None = None) -> pl.DataFrame:
    """The rows of a predictions table that carries its own measurement (``log2_ratio``)
    as the analysis table: ``input_id`` = the key (or ``input_column``); ``locus_id`` is
    the key when the key is a locus id (``locus_id``/``variant_id``) and absent otherwise."""
    if "log2_ratio" not in frame.columns:
        raise MissingColumnError("log2_ratio", file="<predictions>", available=frame.columns)
    inp = input_column or key
    if inp not in frame.columns:
        raise MissingColumnError(inp, file="<predictions>", available=frame.columns)
    out = frame.with_columns(pl.col(inp).cast(pl.String).alias("input_id"))
    if JOIN_TARGET.get(key) == "locus_id" and "locus_id" not in out.columns:
        out = out.with_columns(pl.col(key).cast(pl.String).alias("locus_id"))
    if "element_id" not in out.columns:
        out = out.with_columns(pl.col("row_id").alias("element_id"))
    return out
