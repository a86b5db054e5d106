"""Published reference numbers of the seed studies, shown beside every re-run.

The numbers live in versioned data files shipped with the package (format
``agval-published`` v1, :data:`REGISTRY_FILES`): ``seeds-v1.toml`` (the seed studies'
numbers, from ../shared/docs/STUDIES.md) and ``benchmarks-v1.toml`` (standard benchmarks,
kind ``qtl-causality``; it holds **no set yet**: none of the AlphaGenome paper's QTL
benchmark numbers could be traced to ../shared/docs or the SDK's documentation, see the
file's header). This module reads them and compares a run's own statistics with them;
set ids are unique across the files.

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

import tomllib
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping

from agval.errors import ConfigError
from agval.runs import finite_or_none

__all__ = ["PublishedRow", "PublishedSet", "Comparison", "published_sets", "published_set",
           "default_set_id", "compare", "comparison_records", "REGISTRY_FILE", "REGISTRY_VERSION",
           "resolve_set_id", "checked_set_field", "qtl_observed", "mpra_observed", "twas_observed", "published_block",
           "published_table", "published_title", "SIMULATED_LABEL", "REGISTRY_FILES", "causality_observed",
           "CAUSALITY_KIND"]

REGISTRY_FILE = "seeds-v1.toml"
#: every registry file, read in this order (set ids must be unique across them)
REGISTRY_FILES = (REGISTRY_FILE, "benchmarks-v1.toml")
REGISTRY_VERSION = 1
#: the kind of a causality benchmark's published set (used only by ``benchmark = "causality"`` studies)
CAUSALITY_KIND = "qtl-causality"


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
    """Every published set in the shipped registry files (:data:`REGISTRY_FILES`), by id."""
    out: dict[str, PublishedSet] = {}
    for name in REGISTRY_FILES:
        out.update(_read_registry(name, resources.files(__package__).joinpath(name).read_text(encoding="utf-8"),
                                  known=set(out)))
    return out


def _read_registry(name: str, text: str, *, known: set[str] = frozenset()) -> dict[str, PublishedSet]:
    """The sets of one registry file's text; :class:`ConfigError` on a wrong format, a
    repeated key within a set or a set id already in ``known``."""
    data = tomllib.loads(text)
    if data.get("format") != "agval-published" or data.get("version") != REGISTRY_VERSION:
        raise ConfigError(f"{name}: expected format agval-published v{REGISTRY_VERSION}")
    out: dict[str, PublishedSet] = {}
    for s in data.get("set", []):
        rows = tuple(PublishedRow(key=r["key"], label=r["label"], value=float(r["value"]),
                                  tolerance=float(r["tolerance"]), n=r.get("n"), p=r.get("p"))
                     for r in s["rows"])
        keys = [r.key for r in rows]
        if len(set(keys)) != len(keys):
            raise ConfigError(f"{name}: set {s['id']!r} repeats a key")
        if s["id"] in known or s["id"] in out:
            raise ConfigError(f"{name}: set id {s['id']!r} is already defined")
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




def compare(published: PublishedSet | str, observed: Mapping[str, Any]) -> list[Comparison]:
    """Compare a run's statistics (``key -> value``) with a published set, row by row."""
    ps = published_set(published) if isinstance(published, str) else published
    out = []
    for r in ps.rows:
        obs = finite_or_none(observed.get(r.key))
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


# ----------------------------------------------------------------------------------
# Wiring into runs: which set a study uses, the run's observed mapping, the metrics block
# ----------------------------------------------------------------------------------

#: label of the published table in a simulated run's report
SIMULATED_LABEL = "simulated data: differences are expected"


def resolve_set_id(requested: str | None, kind: str, sub_kind: str | None = None, *,
                   seed_layout: bool = True) -> str | None:
    """The published set a study is compared with.

    ``requested`` is the study file's ``published`` value: a set id (checked against the
    registry, :class:`ConfigError` otherwise), ``"none"`` (no comparison) or ``None`` (the
    default of ``(kind, sub_kind)`` from :func:`default_set_id`, but only when the study
    reads the seed's own layout, ``seed_layout``: a caQTL table in another format is not
    Gate et al.'s table, and its numbers would not be comparable).
    """
    if requested is not None:
        if requested.strip().lower() == "none":
            return None
        return published_set(requested).id
    return default_set_id(kind, sub_kind) if seed_layout else None


def checked_set_field(value: str | None) -> str | None:
    """A study file's ``published`` field, checked when the file is read: ``None`` and
    ``"none"`` pass through, a set id must be in the registry (``ValueError`` naming the
    known ids otherwise, so pydantic reports it against the field)."""
    if value is None or value.strip().lower() == "none":
        return value
    try:
        return published_set(value).id
    except ConfigError as e:
        raise ValueError(str(e)) from None


def _put(out: dict[str, float], key: str, value: Any) -> None:
    v = finite_or_none(value)
    if v is not None:
        out[key] = v


def qtl_observed(stats: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """A QTL run's statistics with the registry's keys: for every analysis ``a``
    (``original``, ``corrected``, ...), ``a.spearman_rho``, ``a.pearson_r``, ``a.r_squared``
    (``r2``, the linregress R^2 of beta ~ score) and ``a.same_sign`` (the fraction of rows
    whose score and beta have the same sign, as the seeds computed it: the unverified
    same-sign fraction, else the verified sign concordance).

    ``stats``: ``analysis -> statistics`` as in ``metrics.json["analyses"]``.
    """
    out: dict[str, float] = {}
    for name, st in stats.items():
        _put(out, f"{name}.spearman_rho", st.get("spearman_rho"))
        _put(out, f"{name}.pearson_r", st.get("pearson_r"))
        _put(out, f"{name}.r_squared", st.get("r2"))
        same = st.get("same_sign_fraction_unverified")
        _put(out, f"{name}.same_sign", same if finite_or_none(same) is not None else st.get("sign_fraction"))
    return out


def mpra_observed(aggregates: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """An MPRA run's statistics with the registry's keys: ``<aggregate>.pearson_r``,
    ``<aggregate>.spearman_rho``, ``<aggregate>.auroc`` for every aggregate
    (``dnase_center``, ``cage_mean``, ...; ``metrics.json["aggregates"]``)."""
    out: dict[str, float] = {}
    for agg, st in aggregates.items():
        for k in ("pearson_r", "spearman_rho", "auroc"):
            _put(out, f"{agg}.{k}", st.get(k))
    return out


def causality_observed(result: Mapping[str, Any]) -> dict[str, float]:
    """A causality benchmark's statistics with the registry's keys:
    ``<split>.<model>.auprc``, ``<split>.<model>.direction_r`` and
    ``<split>.<model>.random_auprc`` for every split and model of
    :func:`agval.qtl.causality.benchmark`'s result (``metrics.json["causality"]``)."""
    out: dict[str, float] = {}
    for split, e in (result.get("splits") or {}).items():
        for model, st in (e.get("models") or {}).items():
            for k in ("auprc", "direction_r", "random_auprc"):
                _put(out, f"{split}.{model}.{k}", st.get(k))
    return out


def _records(table: Any) -> list[dict[str, Any]]:
    if table is None:
        return []
    if hasattr(table, "to_dicts"):
        return table.to_dicts()
    return list(table)


def _first(rec: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    for n in names:
        if n in rec and rec[n] is not None:
            return rec[n]
    return None


def twas_observed(q1_table: Any = None, q2_table: Any = None, q3_table: Any = None,
                  q4_table: Any = None) -> dict[str, float]:
    """A TWAS run's Q1-Q4 results with the registry's keys.

    Each table is a polars DataFrame or a list of dicts, one row per cell:

    * ``q1_table``: ``output_type, tissue, accuracy`` -> ``q1.<output_type>.<tissue>.accuracy``
      (tissue as GTEx names it, spaces and punctuation already ``_``-joined, e.g.
      ``Heart_Left_Ventricle``);
    * ``q2_table``: ``output_type, fold, spearman_rho`` -> ``q2.<output_type>.fold`` and
      ``q2.<output_type>.spearman_rho`` (credible-set vs other mean |score|; Spearman of
      PIP with |score|);
    * ``q3_table``: ``output_type, spearman_rho`` -> ``q3.<output_type>.spearman_rho``;
    * ``q4_table``: ``output_type, tissue, spearman_rho`` -> ``q4.<output_type>.<tissue>.spearman_rho``.

    ``rho`` is accepted for ``spearman_rho`` and ``fold_change`` for ``fold``; a missing or
    non-finite value is left out (:func:`compare` then reports it as missing).
    """
    out: dict[str, float] = {}
    rho = ("spearman_rho", "rho")
    for r in _records(q1_table):
        _put(out, f"q1.{r['output_type']}.{_tissue(r['tissue'])}.accuracy", r.get("accuracy"))
    for r in _records(q2_table):
        _put(out, f"q2.{r['output_type']}.fold", _first(r, ("fold", "fold_change")))
        _put(out, f"q2.{r['output_type']}.spearman_rho", _first(r, rho))
    for r in _records(q3_table):
        _put(out, f"q3.{r['output_type']}.spearman_rho", _first(r, rho))
    for r in _records(q4_table):
        _put(out, f"q4.{r['output_type']}.{_tissue(r['tissue'])}.spearman_rho", _first(r, rho))
    return out


def _tissue(name: str) -> str:
    """GTEx tissue name as a key part: ``Heart - Left Ventricle`` -> ``Heart_Left_Ventricle``."""
    parts = [p for p in "".join(c if c.isalnum() else " " for c in str(name)).split()]
    return "_".join(parts)


def published_block(set_id: str | None, observed: Mapping[str, Any], *,
                    simulated: bool = False) -> dict[str, Any] | None:
    """The ``metrics.json["published"]`` block of a run: ``{"set", "title", "source", "note",
    "simulated", "label", "n_reproduced", "n_compared", "rows": comparison_records(...)}``;
    ``None`` when the study is compared with no set. ``label`` is :data:`SIMULATED_LABEL`
    for a simulated run (its differences from a real study's numbers are expected)."""
    if set_id is None:
        return None
    ps = published_set(set_id)
    rows = comparison_records(compare(ps, observed))
    compared = [r for r in rows if r["observed"] is not None]
    return {"set": ps.id, "title": ps.title, "source": ps.source, "note": ps.note, "simulated": bool(simulated),
            "label": SIMULATED_LABEL if simulated else "", "n_compared": len(compared),
            "n_reproduced": sum(bool(r["reproduced"]) for r in compared), "rows": rows}


def published_title(block: Mapping[str, Any]) -> str:
    """The report table's title for a published block (labelled when simulated)."""
    t = f"Published reference: {block['title']}"
    return f"{t} ({SIMULATED_LABEL})" if block.get("simulated") else t


def published_table(block: Mapping[str, Any]):
    """The report table of a published block: ``statistic, published, agval, difference,
    sign_agrees, reproduced, tolerance, published_n`` (a polars DataFrame)."""
    import polars as pl

    rows = [{"statistic": r["label"], "key": r["key"], "published": r["published"], "agval": r["observed"],
             "difference": r["difference"], "sign_agrees": r["sign_agrees"], "reproduced": r["reproduced"],
             "tolerance": r["tolerance"], "published_n": r["published_n"]} for r in block["rows"]]
    schema = {"statistic": pl.Utf8, "key": pl.Utf8, "published": pl.Float64, "agval": pl.Float64,
              "difference": pl.Float64, "sign_agrees": pl.Boolean, "reproduced": pl.Boolean,
              "tolerance": pl.Float64, "published_n": pl.Int64}
    return pl.DataFrame(rows, schema=schema)
