"""Prefect tasks for allele lookup and harmonization (thin wrappers over :mod:`agval.alleles`).

* :func:`lookup_alleles` (task ``allele-lookup``): :func:`agval.alleles.cache.lookup_rsids`
  with task-level retries (on top of the client's own per-request retries) that skip
  errors retrying cannot fix (HTTP 4xx other than 429, bad input, guards, build
  mismatches); a progress artifact (``<key>-lookup-progress``) updated as batches
  complete; fails loudly when nothing was found on hg38.
* :func:`harmonize_alleles` (task ``allele-harmonize``): :func:`agval.alleles.harmonize.harmonize`
  plus a drop-funnel table artifact (``<key>-drop-funnel``): input -> valid rsID ->
  found on hg38 -> harmonized, then the count of every (stage, reason).

Sources are described by a plain dict (so a flow's parameters can carry them):
``{"kind": "myvariant", "base_url": ..., "pace": 1.0, ...client options}`` or
``{"kind": "vcf", "path": ...}``; see :func:`source_from_spec`.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import polars as pl
from prefect import task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from agval import progress
from agval.alleles import AlleleSource
from agval.alleles.cache import LookupCache, LookupResult, lookup_rsids
from agval.alleles.guards import check_not_empty
from agval.alleles.harmonize import HarmonizeResult, harmonize
from agval.alleles.myvariant import MyVariantClient, MyVariantError
from agval.alleles.vcf import VcfSource
from agval.drops import DropLog
from agval.errors import ConfigError, GuardError, InputError

_KEY = re.compile(r"[^a-z0-9-]+")


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes."""
    return _KEY.sub("-", "-".join(p for p in parts if p).lower()).strip("-")


def source_from_spec(spec: dict[str, Any] | AlleleSource) -> AlleleSource:
    if not isinstance(spec, dict):
        return spec
    opts = dict(spec)
    kind = opts.pop("kind", None)
    if kind == "myvariant":
        return MyVariantClient(opts.pop("base_url", None), **opts)
    if kind == "vcf":
        return VcfSource(opts.pop("path"), **opts)
    raise ConfigError(f"unknown allele source kind {kind!r}; use 'myvariant' or 'vcf'")


def _retryable(task, task_run, state) -> bool:
    exc = state.data if isinstance(getattr(state, "data", None), BaseException) else None
    if isinstance(exc, MyVariantError) and exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
        return False
    # local file-system errors (the state folder is a file, no permission, ...) recur on retry
    local = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, FileExistsError)
    return not isinstance(exc, (InputError, GuardError, ConfigError, *local))


class _Progress:
    """Throttled progress artifact updates (at most one per ``every`` seconds, plus the last)."""

    def __init__(self, key: str, description: str, every: float = 1.0):
        self.id = create_progress_artifact(progress=0.0, key=key, description=description)
        self.every = every
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        progress.emit("lookup", done, total, unit="ids")  # the terminal's bar (agval run)
        now = time.monotonic()
        if done >= total or now - self.last >= self.every:
            self.last = now
            update_progress_artifact(self.id, progress=round(100.0 * done / max(total, 1), 1))


@task(name="allele-lookup", task_run_name="allele-lookup-{key}", retries=2, retry_delay_seconds=[10, 60],
      retry_condition_fn=_retryable, cache_policy=NO_CACHE)
def lookup_alleles(rsids: list[str | None], source: dict[str, Any] | AlleleSource, *, simulated: bool,
                   cache_root: str | Path | None = None, use_cache: bool = True, refresh_version: bool = False,
                   key: str = "alleles", require_found: bool = True) -> LookupResult:
    """Look up rsIDs (cached) with a progress artifact ``<key>-lookup-progress``.

    ``require_found``: raise :class:`~agval.errors.GuardError` when no rsID was found with
    hg38 coordinates (an empty result after lookup is a failure, not an empty study).
    """
    src = source_from_spec(source)
    cache = LookupCache(cache_root, simulated=simulated) if use_cache else None
    progress = _Progress(artifact_key(key, "lookup-progress"),
                         f"allele lookup of {len(rsids)} ids via {src.name} ({src.identity()})")
    try:
        res = lookup_rsids(rsids, src, cache=cache, refresh_version=refresh_version, progress=progress)
    finally:
        if isinstance(source, dict) and hasattr(src, "close"):
            src.close()  # we made it, we close it
    if require_found:
        check_not_empty(res.table.filter(pl.col("status").is_in(["ok", "merged"]) & pl.col("pos").is_not_null()),
                        what=f"allele lookup of {res.n_input} ids via {res.source}",
                        hint="no rsID was found with hg38 coordinates; check the ids, the source and its build")
    update_progress_artifact(progress.id, progress=100.0,
                             description=f"{res.n_unique} ids: {res.n_cached} cached, {res.n_fetched} fetched "
                                         f"in {res.requests} requests ({res.source} {res.source_version})")
    return res


def funnel_rows(result: HarmonizeResult) -> list[dict[str, Any]]:
    """The drop-funnel table: steps with losses, then the count of every (stage, reason)."""
    rows = [{"step": r["step"], "stage": "", "reason": "", "n": r["n"], "lost": r["lost"]}
            for r in result.funnel.to_dicts()]
    rows += [{"step": "dropped", "stage": r["stage"], "reason": r["reason"], "n": r["n"], "lost": None}
             for r in result.reasons().to_dicts()]
    return rows


@task(name="allele-harmonize", task_run_name="allele-harmonize-{key}", cache_policy=NO_CACHE)
def harmonize_alleles(study: pl.DataFrame, lookup: pl.DataFrame, genome: str | Path, *, convention: str,
                      drops: DropLog | None = None, key: str = "alleles",
                      **options: Any) -> HarmonizeResult:
    """Harmonize with a drop-funnel table artifact ``<key>-drop-funnel``."""
    res = harmonize(study, lookup, genome, convention=convention, drops=drops, **options)
    f = {r["step"]: r["n"] for r in res.funnel.to_dicts()}
    create_table_artifact(
        table=funnel_rows(res), key=artifact_key(key, "drop-funnel"),
        description=(f"Allele harmonization ({res.convention}): {f.get('input')} rows -> "
                     f"{f.get('valid_rsid')} valid rsIDs -> {f.get('found_hg38')} found on hg38 -> "
                     f"{f.get('harmonized')} harmonized"))
    return res
