"""Every dropped row is counted with its stage and reason; nothing is lost silently.

A :class:`DropLog` collects drops from every step of a run; the run record saves it
as ``dropped.parquet`` beside the results, and :meth:`DropLog.funnel` gives the
counts per stage and reason for reports.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Generic, Iterable, TypeVar

import polars as pl

from agval import schema

DROPPED = schema.register(schema.TableFormat(
    name="dropped", version=2,
    description="One row per input row dropped anywhere in a run.",
    columns={
        "stage": pl.Utf8,        # e.g. load, lookup, harmonize, score, analyse
        "reason": pl.Utf8,       # short machine-readable reason, e.g. notfound, ref_mismatch
        "row_id": pl.Utf8,       # the unique row id carried end to end (may be null at load)
        "source_file": pl.Utf8,
        "source_row": pl.Int64,  # 1-based data row in source_file
        "detail": pl.Utf8,       # human-readable detail
        "error_code": pl.Utf8,   # scoring failures: the service's status code(s), e.g. UNAVAILABLE
        "attempts": pl.Int64,    # scoring failures: calls made before giving up
    },
    upgraders={1: lambda df: df.with_columns(pl.lit(None, dtype=pl.Utf8).alias("error_code"),
                                             pl.lit(None, dtype=pl.Int64).alias("attempts"))},
))

#: the six columns of a drop given as a tuple ``(stage, reason, row_id, source_file,
#: source_row, detail)`` (``pl.DataFrame(rows, schema=DROP_ROW_SCHEMA, orient="row")``)
DROP_ROW_SCHEMA: dict[str, pl.DataType] = dict(list(DROPPED.columns.items())[:6])

#: the longest ``detail`` kept per drop (a 10 MB cell must not become a 10 MB drop log)
MAX_DETAIL = 500


#: error code of a variant whose scoring worker process died (agval.scoring.isolation)
SCORING_CRASHED = "SCORING_CRASHED"
#: its drop reason
SCORING_CRASHED_REASON = "scoring_crashed"


def failure_drops(rows: pl.DataFrame, failures: pl.DataFrame, *, key: str = "variant_key",
                  reason: str | None = None) -> pl.DataFrame:
    """One drop row per row of ``rows`` whose ``key`` failed, with the service's
    ``error_code`` (several scorers' distinct codes joined by ``|``), the largest number of
    ``attempts`` and a ``detail`` naming scorer, code, attempts and message.

    ``rows``: ``row_id``, ``key`` (plus ``source_file``/``source_row`` when known);
    ``failures``: ``key``, ``error_code``, ``message``, ``attempts`` (and ``scorer``), as in
    ``agval-score-failures``. Add the result with :meth:`DropLog.add_frame`. ``reason``: also
    give each row a ``reason`` column: ``reason``, or ``scoring_crashed`` for a variant whose
    scoring worker process died (``[backend] isolation = "process"``)."""
    if rows.height == 0 or failures.height == 0:
        return pl.DataFrame(schema={"row_id": pl.Utf8, "detail": pl.Utf8, "error_code": pl.Utf8,
                                    "attempts": pl.Int64})
    who = pl.col("scorer") if "scorer" in failures.columns else pl.lit("model")
    per = (failures.with_columns(
                pl.format("{} {} ({} attempts): {}", who, pl.col("error_code"), pl.col("attempts"),
                          pl.col("message").fill_null("").str.slice(0, 200)).alias("_d"))
           .group_by(key, maintain_order=True)
           .agg(pl.col("error_code").drop_nulls().unique().sort().str.join("|").alias("error_code"),
                pl.col("attempts").max().alias("attempts"),
                pl.col("_d").str.join("; ").str.slice(0, MAX_DETAIL).alias("detail")))
    keep = [c for c in ("row_id", "source_file", "source_row") if c in rows.columns]
    out = rows.select(*keep, key).join(per, on=key, how="inner")
    out = out.with_columns(pl.format("{} failed to score: {}", pl.col(key), pl.col("detail"))
                           .str.slice(0, MAX_DETAIL).alias("detail")).drop(key)
    if reason is not None:  # a variant whose scoring process crashed is its own drop reason
        out = out.with_columns(pl.when(pl.col("error_code").str.contains(SCORING_CRASHED, literal=True))
                               .then(pl.lit(SCORING_CRASHED_REASON)).otherwise(pl.lit(reason)).alias("reason"))
    return out


class DropLog:
    """Thread-safe accumulator of dropped rows."""

    def __init__(self):
        self._parts: list[pl.DataFrame] = []
        self._lock = threading.Lock()

    def add(self, stage: str, reason: str, *, row_id: str | None = None, source_file: str | None = None,
            source_row: int | None = None, detail: str | None = None, error_code: str | None = None,
            attempts: int | None = None) -> None:
        self.add_frame(pl.DataFrame([{ "stage": stage, "reason": reason, "row_id": row_id,
                                       "source_file": source_file, "source_row": source_row,
                                       "detail": detail, "error_code": error_code, "attempts": attempts}],
                                    schema=DROPPED.columns))

    def add_frame(self, df: pl.DataFrame, *, stage: str | None = None, reason: str | None = None,
                  source_file: str | None = None) -> None:
        """Add many drops at once. Missing columns are filled from the keyword defaults."""
        if df.height == 0:
            return
        fill = {"stage": stage, "reason": reason, "source_file": source_file}
        cols = []
        for c, t in DROPPED.columns.items():
            if c in df.columns:
                cols.append(pl.col(c).cast(t))
            else:
                cols.append(pl.lit(fill.get(c), dtype=t).alias(c))
        part = df.select(cols).with_columns(pl.col("detail").str.slice(0, MAX_DETAIL))
        if part["stage"].null_count() or part["reason"].null_count():
            raise ValueError("every drop needs a stage and a reason")
        with self._lock:
            self._parts.append(part)

    def extend(self, other: "DropLog") -> None:
        with self._lock:
            self._parts.extend(other._parts)

    def __getstate__(self) -> dict:
        """Picklable (the lock is not): a step's drops travel back from a worker process."""
        with self._lock:
            return {"_parts": list(self._parts)}

    def __setstate__(self, state: dict) -> None:
        self._parts = state["_parts"]
        self._lock = threading.Lock()

    def frame(self) -> pl.DataFrame:
        with self._lock:
            parts = list(self._parts)
        return pl.concat(parts) if parts else DROPPED.empty()

    def __len__(self) -> int:
        return sum(p.height for p in self._parts)

    def funnel(self) -> pl.DataFrame:
        """Counts per (stage, reason), largest first."""
        return (self.frame().group_by(["stage", "reason"]).len(name="n")
                .sort(["n", "stage", "reason"], descending=[True, False, False]))


T = TypeVar("T")


@dataclass(frozen=True)
class Dropped(Generic[T]):
    """A step's result (``value``) and the rows it dropped (``drops``).

    Steps return their drops instead of writing into a caller's :class:`DropLog`, so they can
    run on another process; the flow adds them to the run's log (``flows._common.keep``)."""

    value: T
    drops: DropLog


def funnel_table(steps: Iterable[tuple[str, int]]) -> pl.DataFrame:
    """A drop funnel ``input -> found -> harmonized -> scored`` as a table with losses."""
    rows, prev = [], None
    for name, n in steps:
        rows.append({"step": name, "n": int(n), "lost": None if prev is None else int(prev - n)})
        prev = n
    return pl.DataFrame(rows, schema={"step": pl.Utf8, "n": pl.Int64, "lost": pl.Int64})
