"""Prefect tasks for variant scoring: one task per chunk, artifacts for progress and summary.

Inside a flow::

    from tasks.scoring import score_variants
    run = score_variants(variants_df, ["DNASE"], backend=backend)   # a ScoreRun

* :func:`score_variants` plans in the flow (dedup + cache lookups), submits
  :data:`score_chunk_task` once per chunk through the flow's task runner
  (``ThreadPoolTaskRunner`` by default; a ``DaskTaskRunner`` works too when ``backend``
  is a spec dict, see :func:`agval.scoring.make_backend`), updates a progress artifact
  as chunks finish, assembles the result and publishes a summary table artifact.
* :data:`score_chunk_task` retries a chunk only when every variant of it failed with a
  transient error (RESOURCE_EXHAUSTED / UNAVAILABLE / DEADLINE_EXCEEDED after all
  per-variant attempts: the service is down or throttling hard) - ``retry_condition_fn``
  says no to everything else. Per-variant retries and isolation happen inside the task.
* **One concurrency budget**: ``concurrency`` (``[backend] max_workers``) bounds the calls in
  flight, the scoring threads and the submitted chunk tasks together, whatever the study
  size and task runner: at most ``window`` (2) chunk tasks are submitted at a time (the
  next one when one finishes), each with ``ceil(concurrency / window)`` threads. Opt-in
  (``inflight_limit_name=True`` or a name, or ``$AGVAL_INFLIGHT_LIMIT`` = a name): with a
  Prefect server (``PREFECT_API_URL``), each chunk also holds that many slots of a global
  concurrency limit (``agval-scoring-inflight`` for True; created on demand with
  ``concurrency`` slots), so concurrent flow runs share one budget too. It is off by
  default because a process that had used a concurrency limit on one Prefect server was
  seen to hang for good acquiring slots on another (Prefect 3.8.8's lease service).
* A Prefect global concurrency limit can pace calls across workers:
  ``rate_limit_name="alphagenome-quota"`` calls ``prefect.concurrency.sync.rate_limit``
  before every call (create the limit with a slot decay first:
  ``prefect gcl create alphagenome-quota --limit 60 --slot-decay-per-second 1``).
"""

from __future__ import annotations

import time
from typing import Any

from prefect import task
from prefect.cache_policies import NONE
from prefect.tasks import exponential_backoff

from agval.scoring.backend import TRANSIENT_CODES, BackendCallError, TransientScoringError


def transient_only(task, task_run, state) -> bool:
    """``retry_condition_fn``: retry the chunk only for transient failures."""
    try:
        state.result()
    except TransientScoringError:
        return True
    except BackendCallError as e:
        return e.transient
    except Exception as e:  # noqa: BLE001
        code = getattr(e, "code", None)
        if callable(code):
            try:
                return getattr(code(), "name", "") in TRANSIENT_CODES
            except Exception:  # noqa: BLE001
                return False
        return False
    return False


def prefect_rate_limit_hook(name: str):
    """A limiter hook taking ``occupy`` slots of a Prefect global concurrency limit."""
    from prefect.concurrency.sync import rate_limit

    def hook(cost: float) -> None:
        rate_limit(name, occupy=max(1, int(round(cost))))

    return hook


def _resolve_backend(backend):
    if isinstance(backend, dict):
        from agval.scoring import make_backend

        return make_backend(backend)
    return backend


@task(name="score-chunk", retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=10),
      retry_jitter_factor=0.5, retry_condition_fn=transient_only, cache_policy=NONE, persist_result=False,
      task_run_name="score-chunk-{chunk.index}")
def score_chunk_task(chunk, backend, ctx, *, cache_root: str | None, simulated: bool, concurrency: int = 16,
                     policy=None, limiter=None, rate_limit_name: str | None = None,
                     inflight_limit_name: str | None = None, selection=None, on_progress=None,
                     parts_dir: str | None = None):
    """Score one chunk (see :func:`agval.scoring.engine.score_chunk`); answers go to the cache,
    the selected rows to one parquet part in ``parts_dir``: the task's result is a small
    :class:`~agval.scoring.engine.ChunkResult` (counts, failures, the part's path), never
    the rows, so nothing Prefect keeps of finished tasks grows with the study.
    ``on_progress``: the engine's per-variant ``fn(done, total)`` hook (the terminal's bar).

    ``inflight_limit_name``: hold ``concurrency`` slots of that Prefect global concurrency
    limit while the chunk runs (the cross-process share of the concurrency budget)."""
    if inflight_limit_name:
        from prefect.concurrency.sync import concurrency as gcl

        with gcl(inflight_limit_name, occupy=concurrency):
            return _score_chunk(chunk, backend, ctx, cache_root=cache_root, simulated=simulated,
                                concurrency=concurrency, policy=policy, limiter=limiter,
                                rate_limit_name=rate_limit_name, selection=selection, on_progress=on_progress,
                                parts_dir=parts_dir)
    return _score_chunk(chunk, backend, ctx, cache_root=cache_root, simulated=simulated, concurrency=concurrency,
                        policy=policy, limiter=limiter, rate_limit_name=rate_limit_name, selection=selection,
                        on_progress=on_progress, parts_dir=parts_dir)


def _score_chunk(chunk, backend, ctx, *, cache_root, simulated, concurrency, policy, limiter, rate_limit_name,
                 selection, on_progress=None, parts_dir=None):
    from agval.scoring import engine
    from agval.scoring.cache import ScoreCache
    from agval.scoring.limiter import AdaptiveLimiter

    b = _resolve_backend(backend)
    cache = ScoreCache(cache_root, simulated=simulated) if cache_root else None
    if rate_limit_name:
        if limiter is None:
            limiter = AdaptiveLimiter()
        if limiter.hook is None:
            limiter.hook = prefect_rate_limit_hook(rate_limit_name)
    return engine.score_chunk(chunk, backend=b, cache=cache, ctx=ctx, concurrency=concurrency, policy=policy,
                              limiter=limiter, raise_if_all_transient=True, selection=selection,
                              progress=engine.Progress(0, on_progress) if on_progress else None,
                              parts_dir=parts_dir)


INFLIGHT_LIMIT = "agval-scoring-inflight"


def ensure_inflight_limit(name: str, limit: int) -> tuple[str, int] | None:
    """Create the global concurrency limit ``name`` with ``limit`` slots unless it exists
    (a server must be configured); returns ``(name, its slots)``, or None without a server."""
    import os

    if not os.environ.get("PREFECT_API_URL"):
        try:
            from prefect.settings import PREFECT_API_URL

            if not PREFECT_API_URL.value():
                return None
        except Exception:  # noqa: BLE001
            return None
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    with get_client(sync_client=True) as client:
        try:
            got = client.read_global_concurrency_limit_by_name(name)
        except Exception:  # noqa: BLE001 - absent: create it (a concurrent creator may win the race)
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=int(limit)))
            except Exception:  # noqa: BLE001
                pass
            got = client.read_global_concurrency_limit_by_name(name)  # raises if it really is not there
    return name, int(got.limit)


def score_variants(variants, scorers, *, backend, cache: Any = "default", interval_width: int | None = None,
                   organism: str = "human", chunk_size: int = 256, concurrency: int = 16, policy=None,
                   limiter="auto", fingerprint=None, rate_limit_name: str | None = None,
                   artifact_key: str = "scoring", selection=None, window: int = 2,
                   inflight_limit_name: str | bool | None = None, max_new_calls: int | None = None,
                   dry_run: bool = False):
    """Score inside a flow: plan, chunk tasks through a bounded window, progress + summary
    artifacts -> ScoreRun.

    ``rate_limit_name`` defaults to ``$AGVAL_RATE_LIMIT_NAME`` (set by ``agval serve`` when the
    deployment config declares a ``[quota]``), so served study flows share the quota.
    ``selection``, ``max_new_calls``, ``dry_run``: as :func:`agval.scoring.score`.
    """
    import math
    import os

    rate_limit_name = rate_limit_name or os.environ.get("AGVAL_RATE_LIMIT_NAME") or None
    from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
    from prefect.futures import as_completed

    from agval import progress
    from agval.scoring import engine

    t0 = time.monotonic()
    if limiter == "auto":  # one limiter for every chunk (threads share it; Dask workers get a copy)
        from agval.scoring.limiter import AdaptiveLimiter

        limiter = AdaptiveLimiter()
    if isinstance(backend, dict):  # [backend] max_new_calls / dry_run travel in the spec
        max_new_calls = max_new_calls if max_new_calls is not None else backend.get("max_new_calls")
        dry_run = dry_run or bool(backend.get("dry_run"))
    b = _resolve_backend(backend)
    store = engine.open_cache(cache, b)
    width = interval_width or engine.DEFAULT_INTERVAL_WIDTH
    plan = engine.plan_scoring(variants, scorers, backend=b, cache=store, interval_width=width,
                               organism=organism, chunk_size=chunk_size, fingerprint=fingerprint,
                               selection=selection)
    engine.check_budget(plan, max_new_calls=max_new_calls, dry_run=dry_run)
    key = "".join(ch if ch.isalnum() else "-" for ch in artifact_key.lower()).strip("-") or "scoring"
    progress_id = create_progress_artifact(progress=0.0 if plan.chunks else 100.0, key=f"{key}-progress",
                                           description=f"{plan.n_to_score} variants to score in "
                                                       f"{len(plan.chunks)} chunks")
    counter = progress.Counter("scoring", plan.n_to_score, unit="variants")
    counter.at_least(0)
    task_backend = backend if isinstance(backend, dict) else b
    window = max(1, int(window))
    per_chunk = max(1, math.ceil(concurrency / window))
    gcl = None
    if inflight_limit_name is None:  # opt-in (see the module docstring): $AGVAL_INFLIGHT_LIMIT names the limit
        import os

        inflight_limit_name = os.environ.get("AGVAL_INFLIGHT_LIMIT") or False
    if plan.chunks and inflight_limit_name is not False:
        gcl = ensure_inflight_limit(INFLIGHT_LIMIT if inflight_limit_name in (None, True) else inflight_limit_name,
                                    concurrency)
    inflight_limit_name = gcl[0] if gcl else None
    if gcl:  # a chunk can never need more slots than the (possibly older, smaller) limit has
        per_chunk = max(1, min(per_chunk, gcl[1]))

    parts_dir = engine.new_parts_dir()  # each chunk writes its selected rows here; the run reads them lazily

    def submit(ch):
        return score_chunk_task.submit(ch, task_backend, plan.ctx, cache_root=str(store.root) if store else None,
                                       simulated=b.simulated, concurrency=per_chunk, policy=policy,
                                       limiter=limiter, rate_limit_name=rate_limit_name,
                                       inflight_limit_name=inflight_limit_name, selection=plan.selection,
                                       on_progress=counter.part(), parts_dir=str(parts_dir))

    results = []
    done_variants = 0
    pending = list(reversed(plan.chunks))  # popped from the end: a planned chunk is dropped once submitted
    running = [submit(pending.pop()) for _ in range(min(window, len(pending)))]
    while running:
        gen = as_completed(running)
        fut = next(gen)
        gen.close()
        running.remove(fut)
        res = fut.result()
        del fut  # the window advances: nothing here keeps a finished task's future
        results.append(res)
        done_variants += res.scored + res.failed
        pct = 100.0 * done_variants / max(1, plan.n_to_score)
        update_progress_artifact(progress_id, min(100.0, pct))
        counter.at_least(done_variants)
        if pending:
            running.append(submit(pending.pop()))
    run = engine.assemble(plan, sorted(results, key=lambda r: r.index), cache=store, backend=b,
                          seconds=time.monotonic() - t0, limiter=limiter, parts_dir=parts_dir)
    table = [{"metric": k, "value": str(v)} for k, v in run.summary.items()]
    table.append({"metric": "model_fingerprint", "value": str(run.model.get("fingerprint_digest"))[:16]})
    table.append({"metric": "backend", "value": f"{run.backend.get('backend')} ({run.backend.get('address_kind')})"})
    create_table_artifact(key=f"{key}-summary", table=table,
                          description="calls, retries, failures and cache hits of this scoring run")
    if run.failures.height:
        create_table_artifact(key=f"{key}-failures", table=run.failures.head(200).to_dicts(),
                              description=f"{run.failures.height} failed (variant, scorer) pairs (first 200)")
    return run
