"""Guards that fail loudly on known failure modes of allele handling.

Each raises :class:`~agval.errors.GuardError` (or :class:`~agval.errors.BuildMismatchError`)
with what was seen and what to do, never a warning that scrolls by:

* :func:`check_placeholder_alleles` - every variant has the same REF/ALT pair (the
  qtl-benchmark's A>G / C>T placeholders, pitfall P12: rho 0.03 instead of 0.40);
* :func:`check_single_build` - a mix of genome builds, or a build other than hg38 (P2, P8);
* :func:`check_not_pvalues` - an "effect" column that is really p-values: all values in
  (0, 1] and spanning many orders of magnitude (P1: GTEx "slope" was pval_nominal);
* :func:`check_not_empty` - nothing left after a step (e.g. every rsID unfound).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import polars as pl

from agval.coords import Build, require_build
from agval.errors import BuildMismatchError, GuardError


def check_placeholder_alleles(df: pl.DataFrame, ref_col: str, alt_col: str | None = None, *,
                              what: str = "table", min_rows: int = 10) -> None:
    """GuardError when >= ``min_rows`` rows all carry one and the same allele pair."""
    cols = [c for c in (ref_col, alt_col) if c]
    sub = df.select(cols).drop_nulls()
    if sub.height < min_rows:
        return
    pairs = sub.unique()
    if pairs.height == 1:
        pair = ">".join(str(v) for v in pairs.row(0))
        raise GuardError(
            f"{what}: all {sub.height} variants have the same alleles ({pair} in {cols}); these look like "
            "placeholder alleles, not real ones (pitfall P12). Take alleles from the study or from dbSNP.")


def check_single_build(builds: Iterable[str | None] | pl.Series, *, expected: str = "hg38",
                       what: str = "coordinates") -> None:
    """BuildMismatchError on more than one build, or on a single build other than ``expected``."""
    vals = builds.drop_nulls().unique().to_list() if isinstance(builds, pl.Series) else \
        sorted({b for b in builds if b is not None})
    parsed = sorted({Build.parse(b).value for b in vals})
    if len(parsed) > 1:
        raise BuildMismatchError(f"{what} mix genome builds {parsed}; every coordinate must be on {expected} "
                                 "(liftover is never done implicitly)")
    if parsed:
        require_build(parsed[0], expected, what=what)


#: The one threshold of the p-values-as-effects guard: at least this many values, all in
#: (0, 1], spanning at least this many orders of magnitude.
PVALUE_GUARD_MIN_ROWS = 3
PVALUE_GUARD_MIN_DECADES = 4.0


def check_not_pvalues(values: pl.Series | Iterable[float], *, column: str = "beta",
                      file: str | Path | None = None, min_rows: int = PVALUE_GUARD_MIN_ROWS,
                      min_decades: float = PVALUE_GUARD_MIN_DECADES,
                      hint: str = "Parse the effect column by its header name (pitfall P1).") -> None:
    """GuardError when every value is in (0, 1] and they span >= ``min_decades`` orders of magnitude.

    Effect sizes are signed and rarely span 10,000-fold within (0, 1]; p-values do
    (2.5e-151 .. 8.6e-4 in pitfall P1). An all-positive effect column that does not
    look like p-values (the caQTL betas, P3) passes. Nulls, NaN and infinities are
    ignored; fewer than ``min_rows`` finite values pass. ``hint`` ends the message.
    This is the only p-value guard (the loaders call it too).
    """
    s = values if isinstance(values, pl.Series) else pl.Series(list(values), dtype=pl.Float64)
    s = s.cast(pl.Float64, strict=False).drop_nulls()
    s = s.filter(s.is_finite())
    if s.len() < min_rows:
        return
    lo, hi = float(s.min()), float(s.max())
    if lo > 0 and hi <= 1:
        decades = math.log10(hi / lo)
        if decades >= min_decades:
            where = f"{file}: " if file else ""
            raise GuardError(
                f"{where}column {column!r} looks like p-values, not effect sizes: all {s.len()} values are in "
                f"(0, 1] and span {decades:.0f} orders of magnitude ({lo:.3g} .. {hi:.3g}). " + hint)


def check_not_empty(df: pl.DataFrame, *, what: str, hint: str = "") -> None:
    if df.height == 0:
        raise GuardError(f"{what}: no rows left{'; ' + hint if hint else ''}")
