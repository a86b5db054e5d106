"""Published reference numbers of the seed studies, shown beside every re-run.

The numbers live in a versioned data file shipped with the package
(``agval/published/seeds-v1.toml``, format ``agval-published`` v1); this module reads
it and compares a run's own statistics with it.

A *set* is one published analysis (``gate2018-caqtl-seed``, ``grossman2017-mpra-v2``,
...): its study kind, the agval mode that re-runs it (``original``) and its rows. A
*row* is one published statistic with a ``key`` naming the same statistic in a run
(``original.spearman_rho``, ``dnase_center.auroc``, ``q1.RNA_SEQ.Prostate.accuracy``),
the published value, optional n and P, and an absolute ``tolerance`` within which a
re-run on the same data counts as "reproduced".

:func:`compare` takes a flat mapping ``key -> observed value`` and returns one
:class:`Comparison` per row: published, observed, difference (observed - published),
whether the signs agree and whether it reproduced. A statistic the run did not compute
is reported as missing, never dropped.

Example::

    >>> rows = published_set("gate2018-caqtl-seed")
    >>> [c.reproduced for c in compare(rows, {"original.spearman_rho": 0.4030})][:1]
    [True]
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping

from agval.errors import ConfigError

__all__ = ["PublishedRow", "PublishedSet", "Comparison", "published_sets", "published_set",
           "default_set_id", "compare", "comparison_records", "REGISTRY_FILE", "REGISTRY_VERSION"]

REGISTRY_FILE = "seeds-v1.toml"
REGISTRY_VERSION = 1


@dataclass(frozen=True)
class PublishedRow:
    """One published statistic. ``key`` names the same statistic in a run's results."""

    key: str
    label: str
    value: float
    tolerance: float
    n: int | None = None
    p: float | None = None


@dataclass(frozen=True)
class PublishedSet:
    """One published analysis: where it comes from and its rows."""

    id: str
    kind: str
    title: str
    source: str
    mode: str
    rows: tuple[PublishedRow, ...]
    qtl_kind: str | None = None
    note: str = ""


@dataclass(frozen=True)
class Comparison:
    """A run's statistic beside the published one.

    ``difference`` is observed - published; ``sign_agrees`` compares the signs of the two
    values (``None`` when either is missing or zero); ``reproduced`` is
    ``|difference| <= tolerance`` (``None`` when the run has no value).
    """

    set_id: str
    key: str
    label: str
    published: float
    observed: float | None
    difference: float | None
    sign_agrees: bool | None
    reproduced: bool | None
    tolerance: float
    published_n: int | None
    published_p: float | None


@lru_cache(maxsize=1)
def published_sets() -> dict[str, PublishedSet]:
    """Every published set in the shipped registry, by id."""
    text = resources.files(__package__).joinpath(REGISTRY_FILE).read_text(encoding="utf-8")
    data = tomllib.loads(text)
    if data.get("format") != "agval-published" or data.get("version") != REGISTRY_VERSION:
        raise ConfigError(f"{REGISTRY_FILE}: expected format agval-published v{REGISTRY_VERSION}")
    out: dict[str, PublishedSet] = {}
    for s in data.get("set", []):
        rows = tuple(PublishedRow(key=r["key"], label=r["label"], value=float(r["value"]),
                                  tolerance=float(r["tolerance"]), n=r.get("n"), p=r.get("p"))
                     for r in s["rows"])
        keys = [r.key for r in rows]
        if len(set(keys)) != len(keys):
            raise ConfigError(f"{REGISTRY_FILE}: set {s['id']!r} repeats a key")
        out[s["id"]] = PublishedSet(id=s["id"], kind=s["kind"], title=s["title"], source=s["source"],
                                    mode=s.get("mode", "original"), rows=rows, qtl_kind=s.get("qtl_kind"),
                                    note=s.get("note", ""))
    return out


def published_set(set_id: str) -> PublishedSet:
    """The published set ``set_id``; :class:`ConfigError` naming the known ids otherwise."""
    sets = published_sets()
    if set_id not in sets:
        raise ConfigError(f"unknown published reference set {set_id!r}; known: {', '.join(sorted(sets))}")
    return sets[set_id]


#: the default set of each (study kind, sub-kind) a study file need not name
_DEFAULTS = {("qtl", "caqtl"): "gate2018-caqtl-seed", ("qtl", "hqtl"): "pelikan2018-hqtl-seed",
             ("twas", None): "af-twas-writeup", ("mpra", None): "grossman2017-mpra-v2"}


def default_set_id(kind: str, sub_kind: str | None = None) -> str | None:
    """The published set a study of this kind is compared with by default (``None``: none)."""
    return _DEFAULTS.get((kind, sub_kind))


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def compare(published: PublishedSet | str, observed: Mapping[str, Any]) -> list[Comparison]:
    """Compare a run's statistics (``key -> value``) with a published set, row by row."""
    ps = published_set(published) if isinstance(published, str) else published
    out = []
    for r in ps.rows:
        obs = _finite(observed.get(r.key))
        diff = None if obs is None else obs - r.value
        sign = None if obs is None or obs == 0 or r.value == 0 else (obs > 0) == (r.value > 0)
        out.append(Comparison(set_id=ps.id, key=r.key, label=r.label, published=r.value, observed=obs,
                              difference=diff, sign_agrees=sign,
                              reproduced=None if diff is None else abs(diff) <= r.tolerance + 1e-12,
                              tolerance=r.tolerance, published_n=r.n, published_p=r.p))
    return out


def comparison_records(comparisons: list[Comparison]) -> list[dict[str, Any]]:
    """Plain dicts (metrics.json, report tables)."""
    return [asdict(c) for c in comparisons]
