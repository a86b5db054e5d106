"""Variant scoring and sequence prediction, model-agnostic.

The public surface a study flow needs::

    from agval.scoring import (score, predict_sequences, TrackSelection, Aggregation,
                               aggregate, alphagenome_backend, PrecomputedBackend)

    backend = alphagenome_backend(address="127.0.0.1:50051")   # or live with the API key
    run = score(variants_df, ["DNASE", "RNA_SEQ"], backend=backend)  # ScoreRun
    per_track, pooled = aggregate(run.scores, TrackSelection(output_types=["DNASE"]))
    run.record(run_record)                                      # manifest + tables

Modules: ``backend`` (the ABC), ``alphagenome`` / ``atlas`` / ``precomputed``
(implementations), ``answers`` (whole answers kept compactly, :class:`Selection`, bulk
expansion into rows), ``cache``, ``fingerprint``, ``limiter``, ``tracks``, ``engine`` (variant scoring),
``sequences`` (sequence prediction).
"""

from agval.scoring.backend import (SCORE_COLUMNS, RetryPolicy, ScoringBackend, VariantOutcome,
                                   resolve_scorers, scorer_id)
from agval.scoring.cache import ScoreCache
from agval.scoring.answers import Selection
from agval.scoring.engine import SCORES_FORMAT, DryRunComplete, QuotaBudgetError, ScoreRun, score
from agval.scoring.sequences import SequenceRun, predict_sequences
from agval.scoring.limiter import AdaptiveLimiter
from agval.scoring.tracks import Aggregation, TrackSelection, aggregate, match_genes, per_track, pooled


def alphagenome_backend(*args, **kwargs):
    """:class:`agval.scoring.alphagenome.AlphaGenomeBackend` (imports the SDK lazily)."""
    from agval.scoring.alphagenome import AlphaGenomeBackend

    return AlphaGenomeBackend(*args, **kwargs)


_BACKENDS: dict[str, "ScoringBackend"] = {}
#: spec keys about the run, not the backend (read by ``tasks.scoring.score_variants``)
RUN_KEYS = ("max_new_calls", "dry_run")


def make_backend(spec: dict) -> ScoringBackend:
    """Build (once per process) a backend from a plain spec dict, e.g. for Dask workers::

        {"kind": "alphagenome", "address": "127.0.0.1:50051", "model_version": "FOLD_1",
         "deadline_s": 120, "metadata": [["x-fake-latency-ms", "50"]], "world_dir": "..."}
        {"kind": "atlas", "address": ..., "fallback": {"kind": "alphagenome", ...}}
        {"kind": "precomputed", "table": "scores.parquet", "model": "enformer"}
        {"kind": "alphagenome", ..., "isolation": "process", "isolation_workers": 2}

    ``isolation="process"``: scoring calls and their decoding run in child processes
    (:mod:`agval.scoring.isolation`), so a crash costs one variant, not the run.

    The API key is never part of a spec (it is read in the worker). ``max_attempts``
    (any kind) sets the backend's default :class:`RetryPolicy`.
    """
    import json

    spec = {k: v for k, v in spec.items() if k not in RUN_KEYS}
    key = json.dumps(spec, sort_keys=True, default=str)
    b = _BACKENDS.get(key)
    if b is not None and not getattr(b, "closed", False):
        return b
    b = _BACKENDS[key] = build_backend(spec)
    return b


def build_backend(spec: dict) -> ScoringBackend:
    """A new backend from a plain spec dict (:func:`make_backend` without its per-process
    cache: the model watch needs a fresh one per check). Prefer
    :class:`agval.scoring.spec.BackendSpec`, which writes the spec."""
    kw = {k: v for k, v in spec.items() if k not in RUN_KEYS}
    isolation = kw.pop("isolation", None) or "none"
    workers = int(kw.pop("isolation_workers", None) or 2)
    if isolation != "none":  # [backend] isolation = "process"
        if isolation != "process":
            raise ValueError(f"unknown isolation {isolation!r}; use none or process")
        import functools

        from agval.scoring.isolation import ProcessIsolatedBackend

        return ProcessIsolatedBackend(make_backend(kw), functools.partial(make_backend, kw), workers=workers)
    kind = kw.pop("kind")
    max_attempts = kw.pop("max_attempts", None)
    if "metadata" in kw:
        kw["metadata"] = [tuple(x) for x in kw["metadata"]]
    if kind == "alphagenome":
        from agval.scoring.alphagenome import AlphaGenomeBackend

        b = AlphaGenomeBackend(**kw)
    elif kind == "atlas":
        from agval.scoring.atlas import AtlasBackend

        fb = kw.pop("fallback", None)
        b = AtlasBackend(**kw, fallback=build_backend(fb) if fb else None)
    elif kind == "precomputed":
        from agval.scoring.precomputed import PrecomputedBackend

        b = PrecomputedBackend(kw.pop("table"), **kw)
    else:
        raise ValueError(f"unknown backend kind {kind!r}; use alphagenome, atlas or precomputed")
    if max_attempts is not None:
        b.default_policy = RetryPolicy(max_attempts=int(max_attempts))
    return b


def __getattr__(name):
    if name == "PrecomputedBackend":
        from agval.scoring.precomputed import PrecomputedBackend

        return PrecomputedBackend
    if name == "AtlasBackend":
        from agval.scoring.atlas import AtlasBackend

        return AtlasBackend
    if name == "AlphaGenomeBackend":
        from agval.scoring.alphagenome import AlphaGenomeBackend

        return AlphaGenomeBackend
    raise AttributeError(name)


__all__ = ["build_backend", "Selection", "DryRunComplete", "QuotaBudgetError", "score", "predict_sequences", "ScoreRun", "SequenceRun", "ScoringBackend", "RetryPolicy",
           "VariantOutcome", "ScoreCache", "AdaptiveLimiter", "TrackSelection", "Aggregation", "aggregate",
           "per_track", "pooled", "match_genes", "alphagenome_backend", "PrecomputedBackend", "AtlasBackend",
           "AlphaGenomeBackend", "make_backend", "SCORE_COLUMNS", "SCORES_FORMAT", "resolve_scorers", "scorer_id"]
