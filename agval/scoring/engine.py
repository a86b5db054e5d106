"""The scoring engine: dedup, cache, chunks, isolation, retries, pacing, progress.

Study flows call :func:`score` (or, under Prefect, ``tasks.scoring.score_variants``,
which runs the same three steps with one task per chunk, through a bounded window)::

    run = score(variants_df, ["DNASE", "RNA_SEQ"], backend=backend,
                selection=[TrackSelection(output_types=["DNASE"], ontology_curies=["CL:0000236"])])
    run.scores    # long table, one row per row_id x scorer x selected track x gene (SCORES_FORMAT)
    run.failures  # variant_key, scorer, error_code, message, attempts
    run.summary   # calls, retries, throttled, failures, cache hits, variants/s ...

Steps:

1. :func:`plan_scoring`: validates ``row_id, chrom, pos, ref, alt``; deduplicates
   variants (the same variant in several rows or studies is scored once); looks each
   (variant, scorer) up in the content-addressed cache; splits what is missing into
   chunks of ``chunk_size`` variants;
2. :func:`score_chunk`: claims its variants in the cache (a concurrent run scoring the
   same variants waits and reads instead of paying twice), then one call per variant
   (all missing scorers in one request) in a thread pool of ``concurrency``; transient
   errors (and INTERNAL, bounded) retried with exponential backoff and jitter; a poison
   variant is recorded as failed, the rest kept; every whole answer is journaled to the
   cache as it arrives (a killed run loses nothing) and only the selected rows are kept;
3. :func:`assemble`: adds the selected rows of entries cached earlier (one pass over the
   cache files) and joins them to every input row through ``variant_key`` (and to each
   row's own gene with ``Selection(row_gene=...)``).

Sequence prediction (MPRA-style inputs) is :mod:`agval.scoring.sequences`.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import polars as pl

from agval import schema
from agval.coords import Variant, normalize_chrom
from agval.errors import AgvalError, InputError, MissingColumnError, ScoringError
from agval.scoring.backend import (SCORE_COLUMNS, TRANSIENT_CODES, RetryPolicy, ScoringBackend,
                                   TransientScoringError, VariantOutcome, conform_scores,
                                   normalize_organism, resolve_scorers, scorer_id)
from agval.scoring.answers import Selection, VariantAnswers, as_selection, expand, filter_long, genes_by_row
from agval.scoring.cache import CacheContext, ScoreCache

REQUIRED_COLUMNS = ["row_id", "chrom", "pos", "ref", "alt"]
MAX_SCORERS_PER_CALL = 20  # the SDK's limit per ScoreVariant request


class QuotaBudgetError(ScoringError):
    """The run would make more new calls than ``[backend] max_new_calls`` allows."""


class DryRunComplete(AgvalError):
    """Raised by a dry run once it knows what the run would cost (``info``); nothing was scored."""

    def __init__(self, info: dict[str, Any]):
        self.info = info
        super().__init__(f"dry run: {info['new_calls']} new calls for {info['to_score']} variants "
                         f"({info['cache_hit_variants']} of {info['unique_variants']} already cached)")
DEFAULT_INTERVAL_WIDTH = 2 ** 20  # the model's full 1 Mb context (recommended for variant scoring)

#: The long score table every study flow consumes.
SCORES_FORMAT = schema.register(schema.TableFormat(
    name="agval-variant-scores", version=1,
    columns={"row_id": pl.String, **{k: (pl.Float64 if k in ("raw_score", "quantile_score") else v)
                                     for k, v in SCORE_COLUMNS.items()}},
    description="one row per input row x scorer x track x gene: raw (primary) and quantile scores"))

FAILURE_COLUMNS: dict[str, pl.DataType] = {
    "variant_key": pl.String, "scorer": pl.String, "error_code": pl.String,
    "message": pl.String, "attempts": pl.Int64,
}
FAILURES_FORMAT = schema.register(schema.TableFormat(
    name="agval-score-failures", version=1, columns=FAILURE_COLUMNS,
    description="variants a backend could not score, with the reason"))


# ----------------------------------------------------------------------------------
# Results.
# ----------------------------------------------------------------------------------

class ScoreParts:
    """The selected score rows of a run, on disk: parquet parts of unique-variant rows
    (:data:`SCORE_COLUMNS`, one part per scored chunk and per cache file read) plus the
    input rows they join to. Nothing here holds the rows in memory.

    :meth:`scan` is the long score table (:data:`SCORES_FORMAT`: ``row_id`` +
    :data:`SCORE_COLUMNS`, raw/quantile as Float64) as a polars ``LazyFrame``: one copy of a
    variant's rows per input row, ordered by input row, then scorer (request order), then
    the backend's own row order. Filters and column selections on it are pushed down to the
    parquet scan, so a study that reads one tissue never materializes the others.

    ``folder`` is removed when the owning :class:`ScoreRun` is garbage-collected
    (``owns_folder``); collect what you need from :meth:`scan` while the run is alive.
    """

    def __init__(self, folder: Path, parts: Sequence[Path], variant_table: pl.DataFrame, scorer_ids: Sequence[str],
                 row_genes: pl.DataFrame | None = None, *, owns_folder: bool = True):
        self.folder = Path(folder)
        self.parts = [Path(x) for x in parts]
        self.variant_table = variant_table.select("row_id", "variant_key", "_ord")
        self.scorer_ids = list(scorer_ids)
        self.row_genes = row_genes
        self.owns_folder = owns_folder

    def _rows(self) -> pl.LazyFrame:
        if not self.parts:
            return pl.LazyFrame(schema=SCORE_COLUMNS)
        return pl.scan_parquet(self.parts, schema=SCORE_COLUMNS)

    def scan(self) -> pl.LazyFrame:
        """The long score table, lazily (see the class docstring)."""
        sc = pl.LazyFrame({"scorer": self.scorer_ids, "_sc": list(range(len(self.scorer_ids)))},
                          schema={"scorer": pl.String, "_sc": pl.Int64})
        rows = self._rows().with_row_index("_i")  # the parts' own order (backend order within a variant)
        out = (self.variant_table.lazy().join(rows, on="variant_key", how="inner")
               .join(sc, on="scorer", how="inner"))  # rows of scorers not asked for are dropped
        if self.row_genes is not None:  # each row's own gene (variant-centric scorer rows are kept)
            out = (out.join(self.row_genes.lazy(), on="row_id", how="left")
                   .filter((pl.col("gene_id").is_null() | (pl.col("gene_id") == pl.col("_row_gene"))).fill_null(False)))
        f64 = ("raw_score", "quantile_score")
        return out.sort("_ord", "_sc", "_i").select(
            "row_id", *[pl.col(c).cast(pl.Float64) if c in f64 else pl.col(c) for c in SCORE_COLUMNS])

    def count(self) -> int:
        """Rows of :meth:`scan` (streamed; no row is held)."""
        return int(self.scan().select(pl.len()).collect(engine="streaming").item())

    def batches(self, rows_per_batch: int = 20_000):
        """The long table in input order, ``rows_per_batch`` input rows at a time (DataFrames)."""
        vt = self.variant_table
        for lo in range(0, max(1, vt.height), rows_per_batch):
            part = ScoreParts(self.folder, self.parts, vt.slice(lo, rows_per_batch), self.scorer_ids,
                              self.row_genes, owns_folder=False)
            yield part.scan().collect()


@dataclass
class ScoreRun:
    """What :func:`score` returns. The selected rows stay on disk (:class:`ScoreParts`):
    :meth:`scan` reads them lazily; :attr:`scores` materializes the whole long table
    (convenient for small studies; flows at scale use :meth:`scan`)."""

    source: ScoreParts
    failures: pl.DataFrame
    summary: dict[str, Any]
    backend: dict[str, Any]
    model: dict[str, Any]
    scorers: list[str]
    interval_width: int
    organism: str

    def __post_init__(self):
        if self.source.owns_folder:
            import shutil
            import weakref

            weakref.finalize(self, shutil.rmtree, str(self.source.folder), True)

    def scan(self) -> pl.LazyFrame:
        """The long score table (:data:`SCORES_FORMAT`) as a LazyFrame over the parts on disk."""
        return self.source.scan()

    @property
    def scores(self) -> pl.DataFrame:
        """The whole long table in memory (one row per row_id x scorer x selected track x gene),
        read from the parts at each access (not kept: hold the frame yourself, or use :meth:`scan`)."""
        return self.source.scan().collect()

    @property
    def cost(self) -> dict[str, Any]:
        """What this run spent: calls, calls per scored variant, variants/s, retries, throttles."""
        s = self.summary
        lim = s.get("limiter") or {}
        return {"calls": s.get("calls"), "calls_per_variant": s.get("calls_per_variant"),
                "variants_per_s": s.get("variants_per_s"), "retries": s.get("retries"),
                "throttled": s.get("throttled"), "scored_variants": s.get("scored"),
                "cache_hit_variants": s.get("cache_hit_variants"), "seconds": s.get("seconds"),
                "limiter_cuts": lim.get("cuts"), "limiter_cooldowns": lim.get("cooldowns")}

    def failed_rows(self, variants: pl.DataFrame) -> pl.DataFrame:
        """Input rows whose variant failed for at least one scorer (row_id, variant_key, ...)."""
        keys = self.failures.select("variant_key").unique()
        vt = variant_keys(variants)
        return vt.join(keys, on="variant_key", how="semi")

    def record(self, run, *, name: str = "scores") -> None:
        """Attach to a :class:`agval.runs.RunRecord`: backend, model, summary, tables (the
        score table is written in batches of input rows, never whole in memory)."""
        run.set_backend(self.backend)
        run.set_model(self.model)
        run.note("scoring", {"scorers": self.scorers, "interval_width": self.interval_width,
                             "organism": self.organism, "summary": self.summary})
        run.note("scoring_cost", self.cost)
        schema.write_table_batches(self.source.batches(), run.table_path(name), SCORES_FORMAT.name)
        run.write_table(f"{name}_failures", self.failures, FAILURES_FORMAT.name)


@dataclass
class Chunk:
    index: int
    variants: list[Variant]
    scorers: list[Any]


@dataclass
class ScoringPlan:
    variant_table: pl.DataFrame  # row_id, variant_key, _ord
    variants: dict[str, Variant]
    scorers: list[Any]
    scorer_ids: list[str]
    ctx: CacheContext
    chunks: list[Chunk]
    cache_hits: int
    cache_hit_variants: int
    input_rows: int
    fingerprint: dict[str, Any]
    selection: Any = None  # answers.Selection | None
    row_genes: pl.DataFrame | None = None  # row_id, _row_gene (selection.row_gene)

    @property
    def n_to_score(self) -> int:
        return sum(len(c.variants) for c in self.chunks)

    @property
    def n_new_calls(self) -> int:
        """Calls the run would make at least (one per variant and 20 scorers), after the cache."""
        return sum(len(c.variants) * -(-len(c.scorers) // MAX_SCORERS_PER_CALL) for c in self.chunks)


@dataclass
class ChunkResult:
    index: int
    failures: list[dict]
    calls: int = 0
    retries: int = 0
    throttled: int = 0
    scored: int = 0
    failed: int = 0
    seconds: float = 0.0
    scores: pl.DataFrame | None = None  # the selected long rows of the variants this chunk scored
    part: str | None = None  # ... or the parquet part they were written to (``parts_dir``; scores is then None)
    covered: list[str] = field(default_factory=list)  # variant keys whose rows are in ``scores``
    waited: int = 0  # variants another run was scoring (claimed), read from the cache after it finished
    limiter: dict | None = None  # what this chunk's limiter copy did (aggregated across Dask workers)

    def stats(self) -> dict:
        return {"calls": self.calls, "retries": self.retries, "throttled": self.throttled,
                "scored": self.scored, "failed": self.failed, "seconds": round(self.seconds, 3)}


# ----------------------------------------------------------------------------------
# Step 1: plan.
# ----------------------------------------------------------------------------------

def variant_keys(variants: pl.DataFrame, *, file: str | None = None) -> pl.DataFrame:
    """``row_id, variant_key`` for an input table with ``row_id, chrom, pos, ref, alt``.

    Raises :class:`~agval.errors.InputError` naming the row for an invalid variant.
    """
    for c in REQUIRED_COLUMNS:
        if c not in variants.columns:
            raise MissingColumnError(c, file=file, available=variants.columns)
    df = variants.select(pl.col("row_id").cast(pl.String), pl.col("chrom").cast(pl.String),
                         pl.col("pos"), pl.col("ref").cast(pl.String), pl.col("alt").cast(pl.String))
    if df["row_id"].is_duplicated().any():
        dup = df.filter(df["row_id"].is_duplicated())["row_id"].head(3).to_list()
        raise InputError(f"row_id is not unique (e.g. {dup})", file=file, column="row_id")
    keys: list[str] = []
    memo: dict[tuple, str] = {}
    for i, (chrom, pos, ref, alt) in enumerate(df.select("chrom", "pos", "ref", "alt").iter_rows(), start=1):
        t = (chrom, pos, ref, alt)
        k = memo.get(t)
        if k is None:
            try:
                if pos is None or chrom is None:
                    raise InputError("missing chrom or pos")
                k = Variant(normalize_chrom(chrom), int(pos), str(ref or "").upper(), str(alt or "").upper()).key
            except InputError as e:
                raise InputError(e.reason, file=file, row=i) from None
            except (TypeError, ValueError) as e:
                raise InputError(f"invalid variant: {e}", file=file, row=i) from None
            memo[t] = k
        keys.append(k)
    return pl.DataFrame({"row_id": df["row_id"], "variant_key": pl.Series(keys, dtype=pl.String)})


def fingerprint_of(backend: ScoringBackend, fingerprint) -> dict[str, Any]:
    """The model fingerprint a cache key uses: ``backend.fingerprint()`` when ``fingerprint``
    is None, ``{"digest": fingerprint, "model_version": ...}`` for a string, else a copy of
    the given dict (shared by :func:`score` and :func:`agval.scoring.sequences.predict_sequences`)."""
    if fingerprint is None:
        return backend.fingerprint()
    if isinstance(fingerprint, str):
        return {"digest": fingerprint, "model_version": backend.model_version_name}
    return dict(fingerprint)


def open_cache(cache, backend: ScoringBackend) -> ScoreCache | None:
    """``"default"`` -> the shared cache of the backend's world (simulated or real)."""
    if cache is None or cache is False:
        return None
    from agval.errors import SimulatedResultsError
    from agval.paths import cache_dir

    def refuse(which: str):
        raise SimulatedResultsError(f"a {'simulated' if backend.simulated else 'real'} backend may not use the "
                                    f"{which} score cache")

    if isinstance(cache, ScoreCache):
        if cache.simulated is not None and cache.simulated != backend.simulated:
            refuse("simulated" if cache.simulated else "real")
        store = cache
    elif cache == "default" or cache is True:
        return ScoreCache(simulated=backend.simulated)
    else:
        store = ScoreCache(Path(cache), simulated=backend.simulated)
    # an explicit root must not lie in the other world's default tree
    other = cache_dir("scores", not backend.simulated).resolve()
    root = store.root.resolve()
    if root == other or other in root.parents:
        refuse("real" if backend.simulated else "simulated")
    return store


def plan_scoring(variants: pl.DataFrame, scorers, *, backend: ScoringBackend, cache: ScoreCache | None,
                 interval_width: int = DEFAULT_INTERVAL_WIDTH, organism: str = "human",
                 chunk_size: int = 256, fingerprint=None, selection=None) -> ScoringPlan:
    organism = normalize_organism(organism)
    selection = as_selection(selection)
    row_genes = genes_by_row(variants, selection.row_gene) if selection and selection.row_gene else None
    scorers = resolve_scorers(scorers)
    backend.validate(scorers, interval_width=interval_width, organism=organism)
    ids = [scorer_id(s) for s in scorers]
    vt = variant_keys(variants).with_row_index("_ord")
    uniq = vt["variant_key"].unique(maintain_order=True).to_list()
    vmap = {k: Variant.parse(k) for k in uniq}
    fp = fingerprint_of(backend, fingerprint)
    ctx = CacheContext(interval_width=interval_width, organism=organism,
                       model_version=backend.model_version_name, fingerprint=fp["digest"])
    # which (variant, scorer) entries are missing
    missing: dict[str, list[int]] = {k: [] for k in uniq}
    hits = 0
    if cache is not None:
        for j, sid in enumerate(ids):
            keys = ctx.keys(uniq, sid)
            have = cache.contains(ctx, keys)
            hits += len(have)
            for k, ck in zip(uniq, keys):
                if ck not in have:
                    missing[k].append(j)
    else:
        for k in uniq:
            missing[k] = list(range(len(ids)))
    groups: dict[tuple[int, ...], list[Variant]] = {}
    for k in uniq:
        if missing[k]:
            groups.setdefault(tuple(missing[k]), []).append(vmap[k])
    chunks: list[Chunk] = []
    for sc_idx, vs in groups.items():
        size = -(-len(vs) // -(-len(vs) // max(1, chunk_size)))  # as few chunks, of even sizes (<= chunk_size)
        for i in range(0, len(vs), size):
            chunks.append(Chunk(len(chunks), vs[i:i + size], [scorers[j] for j in sc_idx]))
    hit_variants = sum(1 for k in uniq if not missing[k])
    return ScoringPlan(vt, vmap, scorers, ids, ctx, chunks, hits, hit_variants, variants.height, fp,
                       selection, row_genes)


def plan_info(plan: ScoringPlan) -> dict[str, Any]:
    """What a run would cost after the cache (``--dry-run``)."""
    return {"unique_variants": len(plan.variants), "scorers": len(plan.scorer_ids),
            "cache_hit_variants": plan.cache_hit_variants, "to_score": plan.n_to_score,
            "new_calls": plan.n_new_calls}


def check_budget(plan: ScoringPlan, *, max_new_calls: int | None = None, dry_run: bool = False) -> None:
    """Stop before spending: :class:`DryRunComplete` for a dry run, :class:`QuotaBudgetError`
    when the plan needs more than ``max_new_calls`` new calls (retries not counted)."""
    info = plan_info(plan)
    if dry_run:
        raise DryRunComplete(info)
    if max_new_calls is not None and info["new_calls"] > max_new_calls:
        raise QuotaBudgetError(
            f"this run needs {info['new_calls']} new calls ({info['to_score']} variants x "
            f"{info['scorers']} scorers not in the cache) but [backend] max_new_calls = {max_new_calls}; "
            "raise it, score fewer variants, or run with --dry-run to see the cost first")


# ----------------------------------------------------------------------------------
# Step 2: score chunks.
# ----------------------------------------------------------------------------------

class Progress:
    """A terminal progress bar (tqdm; auto-off when stderr is not a terminal) and/or a
    callback ``fn(done, total)``. Thread-safe."""

    def __init__(self, total: int, progress: bool | None | Callable[[int, int], None] = None,
                 desc: str = "scoring"):
        self.total = total
        self.done = 0
        self._lock = threading.Lock()
        self._cb = progress if callable(progress) else None
        self._bar = None
        if progress is not False and not callable(progress) and total > 0:
            try:
                from tqdm import tqdm

                disable = None if progress is None else False
                if progress is True and not sys.stderr.isatty():
                    disable = False
                self._bar = tqdm(total=total, desc=desc, unit="var", file=sys.stderr,
                                 disable=disable, mininterval=0.5, dynamic_ncols=True)
            except Exception:  # pragma: no cover
                self._bar = None

    def update(self, n: int = 1) -> None:
        with self._lock:
            self.done += n
            if self._bar is not None:
                self._bar.update(n)
            if self._cb is not None:
                self._cb(self.done, self.total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def quota_cost(n_scorers: int, interval_width: int) -> float:
    """Estimated quota cost of one call (scorers x width / 1 Mb)."""
    return max(1, n_scorers) * interval_width / 2 ** 20


class _CostLimiter:
    """Adapts a limiter to a fixed per-call cost."""

    def __init__(self, limiter, cost: float):
        self.limiter, self.cost = limiter, cost

    def acquire(self):
        return self.limiter.acquire(self.cost)

    def release(self, code, sent_at=None):
        return self.limiter.release(code, sent_at)


def score_chunk(chunk: Chunk, *, backend: ScoringBackend, cache: ScoreCache | None, ctx: CacheContext,
                concurrency: int = 16, policy: RetryPolicy | None = None, limiter=None,
                progress: Progress | None = None, raise_if_all_transient: bool = False,
                selection=None, parts_dir: str | Path | None = None) -> ChunkResult:
    """Score one chunk; every finished variant is journaled to the cache immediately.

    With ``parts_dir`` the chunk's selected rows are written there as one parquet part
    (``ChunkResult.part``) and not returned in memory (``ChunkResult.scores`` is None), so a
    run's memory does not grow with its number of chunks.

    Answers are kept whole in the cache; the result carries only the long rows of
    ``selection`` (every track when None) for the variants scored here. With a cache,
    each variant is claimed first (:meth:`ScoreCache.claim`): a variant another run is
    scoring at the same time is not scored twice but read from the cache once that run
    has stored it.

    Two phases, :func:`fetch_chunk` (the calls, journal, cache shard) then
    :func:`chunk_rows` (the selected long rows, CPU only); :func:`score` overlaps the
    second with the next chunk's calls.
    """
    return chunk_rows(fetch_chunk(chunk, backend=backend, cache=cache, ctx=ctx, concurrency=concurrency,
                                  policy=policy, limiter=limiter, progress=progress,
                                  raise_if_all_transient=raise_if_all_transient, selection=selection),
                      parts_dir=parts_dir)


@dataclass
class FetchedChunk:
    """A chunk whose calls are done and whose answers are in the cache (:func:`fetch_chunk`),
    its long rows not built yet: ``outcomes`` in chunk order, ``kept`` (variant key -> whole
    answers or long rows) and ``extra`` (selected rows of variants another run scored)."""

    result: ChunkResult
    outcomes: list
    kept: dict
    extra: list
    selection: Any


def fetch_chunk(chunk: Chunk, *, backend: ScoringBackend, cache: ScoreCache | None, ctx: CacheContext,
                concurrency: int = 16, policy: RetryPolicy | None = None, limiter=None,
                progress: Progress | None = None, raise_if_all_transient: bool = False,
                selection=None) -> FetchedChunk:
    """Phase 1 of :func:`score_chunk`: claim, call (bounded by ``concurrency``), journal,
    write the chunk's answers shard and release the claims; no long row is built."""
    t0 = time.monotonic()
    selection = as_selection(selection)
    ids = [scorer_id(s) for s in chunk.scorers]
    writer = cache.writer(ctx) if cache is not None else None
    kept: dict[str, Any] = {}
    extra: list[pl.DataFrame] = []
    lim = _CostLimiter(limiter, quota_cost(len(ids), ctx.interval_width)) if limiter is not None else None
    lim_before = limiter.stats() if limiter is not None and hasattr(limiter, "stats") else None
    claims = cache.claim(ctx, [v.key for v in chunk.variants], ids) if cache is not None else None
    mine = [v for v in chunk.variants if claims is None or v.key in claims.held]
    others = [v for v in chunk.variants if claims is not None and v.key not in claims.held]
    if claims is not None and mine and len(mine) < len(chunk.variants):
        # another run is at work here: what it finished since we planned is not scored again
        have = cache.contains(ctx, [ctx.key(v.key, sid) for v in mine for sid in ids])
        stored = {v.key for v in mine if all(ctx.key(v.key, sid) in have for sid in ids)}
        if stored:
            others += [v for v in mine if v.key in stored]
            mine = [v for v in mine if v.key not in stored]

    def on_result(o: VariantOutcome) -> None:
        if o.ok:
            if writer is not None:
                writer.add(o.variant.key, o.scores, ids)
            kept[o.variant.key] = o.scores
        if progress is not None:
            progress.update(1)

    outcomes: list[VariantOutcome] = []
    try:
        outcomes = backend.score_variants(mine, chunk.scorers, interval_width=ctx.interval_width,
                                          organism=ctx.organism, concurrency=concurrency, policy=policy,
                                          limiter=lim, on_result=on_result, **_compact_kw(backend)) if mine else []
    finally:
        if writer is not None:
            writer.flush()
        if claims is not None:
            claims.release()
    res = ChunkResult(chunk.index, [])
    for o in outcomes:
        res.calls += o.attempts
        res.retries += o.retries
        res.throttled += o.throttled
        if o.ok:
            res.scored += 1
        else:
            res.failed += 1
            for sid in ids:
                res.failures.append({"variant_key": o.variant.key, "scorer": sid, "error_code": o.error_code,
                                     "message": o.message, "attempts": o.attempts})
    res.covered = [o.variant.key for o in outcomes if o.ok]
    if others:  # scored meanwhile by another run: wait for it, then read what it stored
        claims.wait_for(others)
        have = cache.contains(ctx, [ctx.key(v.key, sid) for v in others for sid in ids])
        done = [v for v in others if all(ctx.key(v.key, sid) in have for sid in ids)]
        if done:
            extra.append(cache.lookup(ctx, [ctx.key(v.key, sid) for v in done for sid in ids],
                                      columns=list(SCORE_COLUMNS), selection=selection))
            res.covered += [v.key for v in done]
            res.waited += len(done)
            if progress is not None:
                progress.update(len(done))
        rest = [v for v in others if v not in done]
        if rest:  # the other run failed on them (or died): score them here
            sub = score_chunk(Chunk(chunk.index, rest, chunk.scorers), backend=backend, cache=cache, ctx=ctx,
                              concurrency=concurrency, policy=policy, limiter=limiter, progress=progress,
                              selection=selection)
            for k in ("calls", "retries", "throttled", "scored", "failed", "waited"):
                setattr(res, k, getattr(res, k) + getattr(sub, k))
            res.failures += sub.failures
            extra.append(sub.scores)
            res.covered += sub.covered
    res.seconds = time.monotonic() - t0
    if lim_before is not None:
        after = limiter.stats()
        res.limiter = {k: (after[k] - lim_before.get(k, 0) if k != "rate" else after[k]) for k in after
                       if isinstance(after[k], (int, float)) or after[k] is None}
    if raise_if_all_transient and outcomes and res.scored == 0 and not res.waited and all(
            (o.error_code in TRANSIENT_CODES) for o in outcomes):
        raise TransientScoringError(
            f"chunk {chunk.index}: all {len(outcomes)} variants failed with transient errors "
            f"(e.g. {outcomes[0].error_code}: {outcomes[0].message})")
    return FetchedChunk(res, outcomes, kept, extra, selection)


def chunk_rows(fetched: FetchedChunk, *, parts_dir: str | Path | None = None) -> ChunkResult:
    """Phase 2 of :func:`score_chunk`: the selected long rows of a fetched chunk (chunk
    order, then the rows read for other runs' variants), in memory or as a part in
    ``parts_dir``. CPU only: no call, no cache write."""
    res = fetched.result
    t0 = time.monotonic()
    scores = _selected_rows(fetched.outcomes, fetched.kept, fetched.selection)
    extra = [f for f in fetched.extra if f is not None and f.height]
    res.scores = pl.concat([scores, *extra], how="vertical") if extra else scores
    fetched.kept.clear()
    if parts_dir is not None:
        res.part = write_part(res.scores, parts_dir, f"chunk-{res.index:06d}")
        res.scores = None
    res.seconds += time.monotonic() - t0
    return res


def new_parts_dir() -> Path:
    """A fresh folder for a run's score parts (under ``$AGVAL_HOME/tmp/score-parts``)."""
    import uuid

    from agval.paths import state_dir

    d = state_dir() / "tmp" / "score-parts" / uuid.uuid4().hex
    d.mkdir(parents=True, exist_ok=True)
    return d


def write_part(rows: pl.DataFrame | None, parts_dir: str | Path, stem: str) -> str | None:
    """Write selected long rows (:data:`SCORE_COLUMNS`) as one parquet part; None when empty."""
    if rows is None or not rows.height:
        return None
    import uuid

    path = Path(parts_dir) / f"{stem}-{uuid.uuid4().hex[:8]}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    rows.select([pl.col(c).cast(t) for c, t in SCORE_COLUMNS.items()]).write_parquet(tmp, compression="lz4")
    tmp.replace(path)
    return str(path)


def _compact_kw(backend) -> dict:
    """``compact=True`` for backends whose ``score_variants`` takes it (overrides may not)."""
    import inspect

    try:
        ok = "compact" in inspect.signature(backend.score_variants).parameters
    except (TypeError, ValueError):
        ok = False
    return {"compact": True} if ok else {}


def _selected_rows(outcomes, kept, selection) -> pl.DataFrame:
    """Long rows of the selection for a chunk's kept results (answers expanded in bulk)."""
    parts = []
    records, blocks = [], {}  # whole answers are expanded in bulk, from their plain records
    for o in outcomes:
        a = kept.get(o.variant.key)
        if isinstance(a, VariantAnswers):
            records.extend(a.records)
            blocks.update(a.blocks)
        elif a is not None and a.height:
            if records:
                parts.append(expand(records, blocks.__getitem__, selection))
                records = []
            parts.append(filter_long(conform_scores(a), selection))
    if records:
        parts.append(expand(records, blocks.__getitem__, selection))
    parts = [p for p in parts if p.height]
    return pl.concat(parts, how="vertical") if parts else pl.DataFrame(schema=SCORE_COLUMNS)


# ----------------------------------------------------------------------------------
# Step 3: assemble.
# ----------------------------------------------------------------------------------

def assemble(plan: ScoringPlan, results: Sequence[ChunkResult], *, cache: ScoreCache | None,
             backend: ScoringBackend, seconds: float, limiter=None, parts_dir: str | Path | None = None) -> ScoreRun:
    """Step 3: the selected rows of this run's chunks (their parts in ``parts_dir``, or
    in-memory ``ChunkResult.scores``, written there now) plus, from the cache (one pass over
    its files, one part per file), those of entries scored earlier -> a :class:`ScoreRun`
    whose rows stay on disk (:class:`ScoreParts`; joined to every input row, and to each
    row's own gene when the selection asks for it, lazily)."""
    failures = [f for r in results for f in r.failures]
    fail_df = pl.DataFrame(failures, schema=FAILURE_COLUMNS) if failures else pl.DataFrame(schema=FAILURE_COLUMNS)
    uniq = list(plan.variants)
    cols = list(SCORE_COLUMNS)
    parts_dir = Path(parts_dir) if parts_dir is not None else new_parts_dir()
    parts: list[str] = []
    if cache is not None:
        by_index = {c.index: [scorer_id(x) for x in c.scorers] for c in plan.chunks}
        fresh = {(vk, sid) for r in results for vk in r.covered for sid in by_index.get(r.index, [])}
        keys = [plan.ctx.key(vk, sid) for sid in plan.scorer_ids for vk in uniq if (vk, sid) not in fresh]
        if keys:
            for i, frame in enumerate(cache.iter_lookup(plan.ctx, keys, columns=cols, selection=plan.selection)):
                parts.append(write_part(frame, parts_dir, f"cached-{i:06d}"))
                del frame
    for r in results:
        if r.scores is not None:  # in memory (plain score() or an old caller): moved to a part
            r.part = write_part(r.scores, parts_dir, f"chunk-{r.index:06d}")
            r.scores = None
        parts.append(r.part)
    source = ScoreParts(parts_dir, [x for x in parts if x], plan.variant_table, plan.scorer_ids, plan.row_genes)
    n_rows = source.count()
    scored = sum(r.scored for r in results)
    summary = {
        "input_rows": plan.input_rows,
        "unique_variants": len(uniq),
        "scorers": len(plan.scorer_ids),
        "cache_hits": plan.cache_hits,
        "cache_hit_variants": plan.cache_hit_variants,
        "to_score": plan.n_to_score,
        "scored": scored,
        "failed_variants": sum(r.failed for r in results),
        "failures": fail_df.height,
        "calls": sum(r.calls for r in results),
        "retries": sum(r.retries for r in results),
        "throttled": sum(r.throttled for r in results),
        "chunks": len(results),
        "waited_for_other_runs": sum(r.waited for r in results),
        "score_rows": n_rows,
        "rows_per_variant": round(n_rows / max(1, plan.input_rows), 3),
        "seconds": round(seconds, 3),
        "variants_per_s": round(len(uniq) / seconds, 1) if seconds > 0 else None,
        "scored_per_s": round(scored / seconds, 1) if seconds > 0 and scored else None,
    }
    summary["calls_per_variant"] = round(summary["calls"] / scored, 3) if scored else None
    if plan.selection is not None:
        summary["selection"] = plan.selection.to_dict()
    if limiter is not None:
        summary["limiter"] = limiter_summary(limiter, results)
    from agval.scoring.fingerprint import summarize

    model = {"model_version": backend.model_version_name, "fingerprint": summarize(plan.fingerprint),
             "fingerprint_digest": plan.fingerprint.get("digest")}
    return ScoreRun(source, fail_df, summary, backend.describe(), model, plan.scorer_ids,
                    plan.ctx.interval_width, plan.ctx.organism)


def limiter_summary(limiter, results: Sequence[ChunkResult]) -> dict:
    """The limiter's statistics: its own when the chunks shared it (threads), else the sum
    of what each chunk's copy did (Dask worker processes get copies; the flow's is idle)."""
    own = limiter.stats()
    parts = [r.limiter for r in results if r.limiter]
    if own.get("calls") or not parts:
        return {**own, "source": "shared"}
    agg: dict[str, Any] = {"source": f"{len(parts)} chunk copies"}
    for k in own:
        if k == "rate":
            rates = [p.get("rate") for p in parts if p.get("rate") is not None]
            agg["rate"] = min(rates) if rates else None
        else:
            agg[k] = round(sum(p.get(k) or 0 for p in parts), 3)
    return agg


# ----------------------------------------------------------------------------------
# The one-call entry point.
# ----------------------------------------------------------------------------------

def score(variants: pl.DataFrame, scorers, *, backend: ScoringBackend, cache="default",
          interval_width: int = DEFAULT_INTERVAL_WIDTH, organism: str = "human", chunk_size: int = 256,
          concurrency: int = 16, policy: RetryPolicy | None = None, limiter="auto",
          progress: bool | None | Callable[[int, int], None] = None, fingerprint=None,
          selection=None, max_new_calls: int | None = None, dry_run: bool = False) -> ScoreRun:
    """Score ``variants`` (``row_id, chrom, pos, ref, alt``) with ``scorers``.

    ``scorers``: SDK scorer objects, ``RECOMMENDED_VARIANT_SCORERS`` keys (``"DNASE"``) or
    named scorers of a precomputed model. ``cache``: ``"default"`` (the shared cache,
    simulated or real according to the backend), a :class:`ScoreCache`, a folder, or
    ``None``. ``fingerprint``: a fingerprint dict or digest (computed from the backend
    when omitted). ``limiter``: ``"auto"`` (an :class:`AdaptiveLimiter` that does nothing
    until the service answers RESOURCE_EXHAUSTED, then paces just under the quota), a
    limiter object (share one across calls to keep what it learnt) or ``None``.

    ``selection``: what the study reads, declared before any row exists - a
    :class:`~agval.scoring.tracks.TrackSelection`, a list of them (their union) or an
    :class:`~agval.scoring.answers.Selection` (adds ``row_gene``: a column of ``variants``
    naming each row's own gene). Only those rows are built; the cache keeps whole answers,
    so a new selection over scored variants makes no call. ``max_new_calls``: raise
    :class:`QuotaBudgetError` before any call if the run needs more; ``dry_run``: raise
    :class:`DryRunComplete` with the cost (:func:`plan_info`) instead of scoring.

    Args:
        variants: one row per study row (``row_id`` unique; 1-based hg38 ``pos``).
        scorers: as above; each distinct variant is scored once with all of them.
        backend: a :class:`ScoringBackend` (``BackendSpec(...).build()``).

    Returns:
        :class:`ScoreRun`: ``scores`` (long table, ``SCORES_FORMAT``, one row per variant x
        scorer x track [x gene]), ``failures`` (``variant_key, scorer, error_code, message,
        attempts``), ``summary`` and ``failed_rows(variants)``.

    Raises:
        QuotaBudgetError: ``max_new_calls`` would be exceeded; DryRunComplete: ``dry_run``;
        InputError: ``variants`` lacks a column or has malformed alleles.
    """
    t0 = time.monotonic()
    if limiter == "auto":
        from agval.scoring.limiter import AdaptiveLimiter

        limiter = AdaptiveLimiter()
    store = open_cache(cache, backend)
    plan = plan_scoring(variants, scorers, backend=backend, cache=store, interval_width=interval_width,
                        organism=organism, chunk_size=chunk_size, fingerprint=fingerprint, selection=selection)
    check_budget(plan, max_new_calls=max_new_calls, dry_run=dry_run)
    prog = Progress(plan.n_to_score, progress)
    results = []
    parts_dir = new_parts_dir()
    # A chunk's long rows are built on one helper thread while the next chunk's calls run
    # (at most one chunk waits for its rows, so memory stays one chunk deep; the calls in
    # flight stay bounded by ``concurrency``).
    from concurrent.futures import ThreadPoolExecutor

    try:
        with ThreadPoolExecutor(1, thread_name_prefix="agval-rows") as rows_pool:
            pending = None
            for ch in plan.chunks:
                fetched = fetch_chunk(ch, backend=backend, cache=store, ctx=plan.ctx, concurrency=concurrency,
                                      policy=policy, limiter=limiter, progress=prog, selection=plan.selection)
                if pending is not None:
                    results.append(pending.result())
                pending = rows_pool.submit(chunk_rows, fetched, parts_dir=parts_dir)
            if pending is not None:
                results.append(pending.result())
    finally:
        prog.close()
    return assemble(plan, results, cache=store, backend=backend, seconds=time.monotonic() - t0,
                    limiter=limiter, parts_dir=parts_dir)
