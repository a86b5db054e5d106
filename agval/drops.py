"""Every dropped row is counted with its stage and reason; nothing is lost silently.

A :class:`DropLog` collects drops from every step of a run; the run record saves it
as ``dropped.parquet`` beside the results, and :meth:`DropLog.funnel` gives the
counts per stage and reason for reports.
"""

from __future__ import annotations

import threading
from typing import Iterable

import polars as pl

from agval import schema

DROPPED = schema.register(schema.TableFormat(
    name="dropped", version=1,
    description="One row per input row dropped anywhere in a run.",
    columns={
        "stage": pl.Utf8,        # e.g. load, lookup, harmonize, score, analyse
        "reason": pl.Utf8,       # short machine-readable reason, e.g. notfound, ref_mismatch
        "row_id": pl.Utf8,       # the unique row id carried end to end (may be null at load)
        "source_file": pl.Utf8,
        "source_row": pl.Int64,  # 1-based data row in source_file
        "detail": pl.Utf8,       # human-readable detail
    },
))


class DropLog:
    """Thread-safe accumulator of dropped rows."""

    def __init__(self):
        self._parts: list[pl.DataFrame] = []
        self._lock = threading.Lock()

    def add(self, stage: str, reason: str, *, row_id: str | None = None, source_file: str | None = None,
            source_row: int | None = None, detail: str | None = None) -> None:
        self.add_frame(pl.DataFrame([{ "stage": stage, "reason": reason, "row_id": row_id,
                                       "source_file": source_file, "source_row": source_row,
                                       "detail": detail}], schema=DROPPED.columns))

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
        part = df.select(cols)
        if part["stage"].null_count() or part["reason"].null_count():
            raise ValueError("every drop needs a stage and a reason")
        with self._lock:
            self._parts.append(part)

    def extend(self, other: "DropLog") -> None:
        with self._lock:
            self._parts.extend(other._parts)

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


def funnel_table(steps: Iterable[tuple[str, int]]) -> pl.DataFrame:
    """A drop funnel ``input -> found -> harmonized -> scored`` as a table with losses."""
    rows, prev = [], None
    for name, n in steps:
        rows.append({"step": name, "n": int(n), "lost": None if prev is None else int(prev - n)})
        prev = n
    return pl.DataFrame(rows, schema={"step": pl.Utf8, "n": pl.Int64, "lost": pl.Int64})
