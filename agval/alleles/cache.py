"""Parquet lookup cache and :func:`lookup_rsids`, the one entry point for allele lookup.

Cache layout (under ``agval.paths.cache_dir("alleles", simulated)`` by default; simulated
and real caches are separate trees)::

    <root>/<source>-<hash of the source identity>-<assembly>.parquet   format ``allele_lookup`` v1
    <root>/versions.json   {identity: {"version", "checked_at", "source", "previous"}}

Rows are the lookup table of :mod:`agval.alleles` (``notfound`` rows included, so a re-run
asks nothing again), keyed by ``query`` (rsID) + ``assembly`` + ``source`` (+ identity,
through the file name) + ``source_version``. Only rows of the current source version are
served; when the source reports a new version, the old rows are no longer used (and are
pruned on the next write), the change is logged and reported in
:attr:`LookupResult.version_changed`.

Asking a remote source for its version costs a request, so the answer is remembered for
``version_ttl`` seconds (the source's ``version_ttl`` attribute: one hour for myvariant,
0 for a local VCF, whose fingerprint is cheap). Within it, a re-run makes **no** request
at all; ``refresh_version=True`` checks now.

Writes are atomic (:func:`agval.schema.write_table`); two processes writing the same
cache file at once may lose each other's new rows (never corrupt the file): those ids
are simply asked again next time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import polars as pl

from agval import schema
from agval.alleles import LOOKUP_COLUMNS, AlleleSource, Progress, conform_lookup, normalize_rsids
from agval.paths import cache_dir

log = logging.getLogger(__name__)

LOOKUP_FORMAT = schema.register(schema.TableFormat(
    name="allele_lookup", version=1,
    description="rsID lookup results (one row per queried rsID and hit; notfound rows included), "
                "keyed by query + assembly + source + source_version.",
    columns=dict(LOOKUP_COLUMNS),
))

_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock(path: Path) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(path, threading.Lock())


class LookupCache:
    """Read and write cached lookup rows for one cache root."""

    def __init__(self, root: str | Path | None = None, *, simulated: bool = False):
        self.root = Path(root) if root is not None else cache_dir("alleles", simulated)
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, source: str, identity: str, assembly: str) -> Path:
        h = hashlib.sha256(identity.encode()).hexdigest()[:10]
        return self.root / f"{source}-{h}-{assembly}.parquet"

    # -- version records ------------------------------------------------------------
    @property
    def _versions_path(self) -> Path:
        return self.root / "versions.json"

    def version_record(self, identity: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._versions_path.read_text()).get(identity)
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def set_version_record(self, identity: str, record: dict[str, Any]) -> None:
        with _lock(self._versions_path):
            try:
                data = json.loads(self._versions_path.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                data = {}
            data[identity] = record
            schema.atomic_write_json(self._versions_path, data)

    # -- rows -------------------------------------------------------------------------
    def read(self, path: Path) -> pl.DataFrame:
        if not path.exists():
            return pl.DataFrame(schema=LOOKUP_COLUMNS)
        return schema.read_table(path, LOOKUP_FORMAT).select(list(LOOKUP_COLUMNS))

    def get(self, path: Path, version: str, rsids: Iterable[str]) -> tuple[pl.DataFrame, int]:
        """(cached rows of ``version`` for ``rsids``, number of those rsIDs cached under another version)."""
        df = self.read(path)
        want = pl.DataFrame({"query": list(rsids)}, schema={"query": pl.Utf8})
        if df.height == 0:
            return df, 0
        cur = df.filter(pl.col("source_version") == version)
        hits = cur.join(want, on="query", how="semi")
        stale = (df.filter(pl.col("source_version") != version).join(want, on="query", how="semi")
                 .join(hits.select("query").unique(), on="query", how="anti")["query"].n_unique())
        return hits, stale

    def put(self, path: Path, rows: pl.DataFrame, version: str) -> None:
        """Add rows of ``version`` (replacing rows of the same ids) and prune other versions."""
        if rows.height == 0:
            return
        with _lock(path):
            old = self.read(path)
            keep = (old.filter(pl.col("source_version") == version)
                    .join(rows.select("query").unique(), on="query", how="anti"))
            schema.write_table(pl.concat([keep, conform_lookup(rows)]), path, LOOKUP_FORMAT)


@dataclass
class LookupResult:
    """What :func:`lookup_rsids` returns.

    ``table``: the lookup table for every valid, unique rsID (input order).
    ``invalid``: one row per distinct malformed input id: ``raw``, ``reason``
    (``missing_rsid`` / ``malformed_rsid``), ``detail``, ``n`` (occurrences).
    """

    table: pl.DataFrame
    invalid: pl.DataFrame
    n_input: int
    n_unique: int
    n_cached: int
    n_fetched: int
    requests: int          # every request to the source (version check included)
    lookup_requests: int   # requests for lookups only (not the /v1/metadata version check)
    source: str
    source_version: str
    version_changed: bool = False
    previous_version: str | None = None
    n_stale: int = 0
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        st = self.table.group_by("status").len().to_dicts() if self.table.height else []
        return {"input": self.n_input, "unique_valid": self.n_unique, "invalid": int(self.invalid["n"].sum() or 0),
                "cached": self.n_cached, "fetched": self.n_fetched, "requests": self.requests,
                "lookup_requests": self.lookup_requests,
                "source": self.source, "source_version": self.source_version,
                "version_changed": self.version_changed, "previous_version": self.previous_version,
                "status_rows": {d["status"]: d["len"] for d in st}, "wall_s": round(self.wall_s, 3)}


def _current_version(source: AlleleSource, cache: LookupCache | None, ttl: float, refresh: bool,
                     clock) -> tuple[str, str | None]:
    """(version, previous version if it changed)."""
    identity = source.identity()
    rec = cache.version_record(identity) if cache else None
    now = clock()
    if rec and not refresh and now - float(rec.get("checked_at", 0)) < ttl:
        return str(rec["version"]), None
    version = source.data_version()
    prev = str(rec["version"]) if rec and str(rec.get("version")) != version else None
    if cache:
        cache.set_version_record(identity, {"version": version, "checked_at": now, "source": source.name,
                                            "previous": prev or (rec or {}).get("previous")})
    return version, prev


def lookup_rsids(rsids: Iterable[str | None] | pl.Series, source: AlleleSource, *,
                 cache: LookupCache | None = None, version_ttl: float | None = None,
                 refresh_version: bool = False, progress: Progress | None = None,
                 clock=time.time) -> LookupResult:
    """Validate ``rsids``, serve cached rows, ask ``source`` for the rest, cache the answer.

    Malformed ids never reach the source (they are returned in ``invalid``). The returned
    ``table`` covers every valid id exactly once as ``query`` (hits, ``no_hg38`` or
    ``notfound`` rows).
    """
    t0 = time.perf_counter()
    checked = normalize_rsids(rsids if isinstance(rsids, pl.Series) else list(rsids))
    invalid = (checked.filter(pl.col("reason").is_not_null())
               .group_by(["raw", "reason", "detail"], maintain_order=True).len(name="n"))
    ids = checked.filter(pl.col("rsid").is_not_null())["rsid"].unique(maintain_order=True).to_list()
    req0 = getattr(source, "requests_made", 0)
    ttl = float(version_ttl if version_ttl is not None else getattr(source, "version_ttl", 0.0))
    version, prev = _current_version(source, cache, ttl, refresh_version, clock)
    req1 = getattr(source, "requests_made", 0)
    notes = []
    if prev is not None:
        msg = f"{source.name} data version changed: {prev} -> {version}; cached rows of {prev} are not used"
        log.warning(msg)
        notes.append(msg)
    cached = pl.DataFrame(schema=LOOKUP_COLUMNS)
    stale = 0
    path = cache.path_for(source.name, source.identity(), source.assembly) if cache else None
    if cache and ids:
        cached, stale = cache.get(path, version, ids)
    have = set(cached["query"].unique().to_list())
    todo = [r for r in ids if r not in have]
    fetched = pl.DataFrame(schema=LOOKUP_COLUMNS)
    if todo:
        fetched = conform_lookup(source.lookup(todo, progress=progress, source_version=version)
                                 .with_columns(source_version=pl.lit(version)))
        got = set(fetched["query"].unique().to_list())
        lost = [r for r in todo if r not in got]
        if lost:  # a source must answer every id (hit or notfound); never lose one silently
            raise RuntimeError(f"{source.name} returned nothing for {len(lost)} ids, e.g. {lost[:3]}")
        if cache:
            cache.put(path, fetched, version)
    elif progress:
        progress(len(ids), len(ids))
    order = pl.DataFrame({"query": ids, "_o": range(len(ids))}, schema={"query": pl.Utf8, "_o": pl.Int64})
    table = (pl.concat([cached, fetched]).join(order, on="query", how="left")
             .sort("_o", maintain_order=True).drop("_o"))
    return LookupResult(
        table=table, invalid=invalid, n_input=checked.height, n_unique=len(ids), n_cached=len(have),
        n_fetched=len(todo), requests=getattr(source, "requests_made", 0) - req0,
        lookup_requests=getattr(source, "requests_made", 0) - req1, source=source.name,
        source_version=version, version_changed=prev is not None, previous_version=prev, n_stale=stale,
        wall_s=time.perf_counter() - t0, notes=notes)
