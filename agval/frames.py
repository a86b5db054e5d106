"""Joins that assert their cardinality (pitfall P19: 6,963 rows became 4.8 M).

Every merge in agval goes through :func:`checked_join`, which states what it expects:

* ``"1:1"``  - keys unique on both sides;
* ``"m:1"``  - keys unique on the right (a lookup); the left row count is kept;
* ``"1:m"``  - keys unique on the left;
* ``"m:m"``  - allowed only with an explicit ``max_rows``.

For ``how="left"`` with ``"m:1"``/``"1:1"`` the result has exactly ``len(left)`` rows.
"""

from __future__ import annotations

from typing import Literal, Sequence

import polars as pl

from agval.errors import CardinalityError

Validate = Literal["1:1", "m:1", "1:m", "m:m"]


def assert_unique(df: pl.DataFrame, on: str | Sequence[str], *, what: str = "table") -> None:
    cols = [on] if isinstance(on, str) else list(on)
    dup = df.select(cols).is_duplicated()
    if dup.any():
        example = df.filter(dup).select(cols).head(3).to_dicts()
        raise CardinalityError(f"{what}: key {cols} is not unique ({int(dup.sum())} duplicated rows, e.g. {example})")


def checked_join(left: pl.DataFrame, right: pl.DataFrame, on: str | Sequence[str], *,
                 how: Literal["inner", "left", "full", "semi", "anti"] = "left",
                 validate: Validate = "m:1", max_rows: int | None = None,
                 what: str = "join", **kwargs) -> pl.DataFrame:
    """Join ``left`` and ``right`` and assert the declared cardinality.

    Raises :class:`~agval.errors.CardinalityError` naming the join (``what``), the key
    and an example of the duplicated keys when the data breaks the declaration.
    """
    cols = [on] if isinstance(on, str) else list(on)
    if validate in ("1:1", "1:m"):
        assert_unique(left, cols, what=f"{what} (left side)")
    if validate in ("1:1", "m:1"):
        assert_unique(right, cols, what=f"{what} (right side)")
    if validate == "m:m" and max_rows is None:
        raise CardinalityError(f"{what}: a many-to-many join needs an explicit max_rows")
    out = left.join(right, on=cols, how=how, **kwargs)
    if how == "left" and validate in ("1:1", "m:1") and out.height != left.height:
        raise CardinalityError(f"{what}: left join changed the row count {left.height} -> {out.height}")
    if max_rows is not None and out.height > max_rows:
        raise CardinalityError(f"{what}: produced {out.height} rows, more than the allowed {max_rows}")
    return out
