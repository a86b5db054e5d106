"""The scoring backend seam: one abstract interface for every model agval can score with.

Like the SDK's own ``DnaModel`` seam, a :class:`ScoringBackend` answers two questions:

* **variant scoring**: :meth:`ScoringBackend.score_variants` takes variants and scorers
  and returns one :class:`VariantOutcome` per variant: its score rows (a polars frame with
  the :data:`SCORE_COLUMNS` schema, tidy-scores semantics) or its failure (error code,
  message, attempts). One bad variant never discards the others;
* **sequence prediction**: :meth:`ScoringBackend.predict_sequences` (optional) returns
  per-track signal for whole sequences of a supported length.

Implementations: :class:`agval.scoring.alphagenome.AlphaGenomeBackend` (live SDK client
to the real service, the stand-in or a self-hosted model),
:class:`agval.scoring.atlas.AtlasBackend` (precomputed SNV scores, indels fall back to
live) and :class:`agval.scoring.precomputed.PrecomputedBackend` (any model's scores from
a parquet/CSV table).

A backend implements one attempt of one variant in :meth:`ScoringBackend.score_one`;
this module adds the per-variant isolation, the retries (RESOURCE_EXHAUSTED, UNAVAILABLE,
DEADLINE_EXCEEDED, and INTERNAL a bounded number of times; exponential backoff with
jitter; ``max_attempts`` attempts at most) and the pacing
through an optional :class:`agval.scoring.limiter.AdaptiveLimiter`.

Nothing here imports Prefect.
"""

from __future__ import annotations

import abc
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import polars as pl

from agval.coords import Variant
from agval.errors import ScoringError

from agval.provenance import SIMULATED_DATA_SOURCE  # the label the stand-in puts in every track's data_source

# ----------------------------------------------------------------------------------
# The per-variant score table (what a backend returns for one variant).
# ----------------------------------------------------------------------------------

#: Track metadata columns, in order (tidy_scores names, ``Assay title`` -> ``assay``).
TRACK_COLUMNS: dict[str, pl.DataType] = {
    "track_name": pl.String,
    "track_strand": pl.String,
    "assay": pl.String,
    "ontology_curie": pl.String,
    "biosample_name": pl.String,
    "biosample_type": pl.String,
    "histone_mark": pl.String,
    "transcription_factor": pl.String,
    "gtex_tissue": pl.String,
    "data_source": pl.String,
}

#: Gene columns (null for variant-centric scorers). ``gene_id`` has its version stripped.
GENE_COLUMNS: dict[str, pl.DataType] = {
    "gene_id": pl.String,
    "gene_name": pl.String,
    "gene_type": pl.String,
    "gene_strand": pl.String,
    "junction_start": pl.Int64,
    "junction_end": pl.Int64,
}

#: One row per (variant, scorer, track, gene): the unit every backend returns.
SCORE_COLUMNS: dict[str, pl.DataType] = {
    "variant_key": pl.String,
    "scorer": pl.String,
    "output_type": pl.String,
    **GENE_COLUMNS,
    **TRACK_COLUMNS,
    "raw_score": pl.Float32,
    "quantile_score": pl.Float32,
}

#: Identifies one score row within a variant's result (the tidy "long" key).
ROW_KEY = ["variant_key", "scorer", "gene_id", "junction_start", "junction_end", "track_name", "track_strand"]


def empty_scores() -> pl.DataFrame:
    return pl.DataFrame(schema=SCORE_COLUMNS)


def conform_scores(df: pl.DataFrame) -> pl.DataFrame:
    """Cast/order ``df`` to :data:`SCORE_COLUMNS`; absent optional columns become null."""
    exprs = []
    for c, t in SCORE_COLUMNS.items():
        if c in df.columns:
            exprs.append(pl.col(c).cast(t, strict=False))
        else:
            exprs.append(pl.lit(None, dtype=t).alias(c))
    return df.select(exprs)


# ----------------------------------------------------------------------------------
# Scorers and organisms.
# ----------------------------------------------------------------------------------

def scorer_id(scorer: Any) -> str:
    """The scorer's full repr (``CenterMaskScorer(requested_output=DNASE, width=501, ...)``),
    or the string itself for a named scorer of another model."""
    return scorer if isinstance(scorer, str) else str(scorer)


def resolve_scorers(scorers: Iterable[Any] | Any) -> list[Any]:
    """SDK scorer objects stay; a ``RECOMMENDED_VARIANT_SCORERS`` key (``"DNASE"``) becomes
    its object; any other string stays a plain named scorer (precomputed models)."""
    if isinstance(scorers, str) or not isinstance(scorers, Iterable):
        scorers = [scorers]
    out: list[Any] = []
    try:
        from alphagenome.models import variant_scorers as vs

        rec = dict(vs.RECOMMENDED_VARIANT_SCORERS)
    except Exception:  # pragma: no cover
        rec = {}
    for s in scorers:
        if isinstance(s, str) and s.upper() in rec:
            s = rec[s.upper()]
        out.append(s)
    ids = [scorer_id(s) for s in out]
    if len(set(ids)) != len(ids):
        raise ScoringError(f"duplicate scorers requested: {ids}")
    if not out:
        raise ScoringError("no scorers requested")
    return out


_ORGANISMS = {
    "human": "HOMO_SAPIENS", "hs": "HOMO_SAPIENS", "homo_sapiens": "HOMO_SAPIENS", "hg38": "HOMO_SAPIENS",
    "mouse": "MUS_MUSCULUS", "mm": "MUS_MUSCULUS", "mus_musculus": "MUS_MUSCULUS", "mm10": "MUS_MUSCULUS",
}


def normalize_organism(organism: Any) -> str:
    """``'human'`` / ``Organism.HOMO_SAPIENS`` / ``'HOMO_SAPIENS'`` -> ``'HOMO_SAPIENS'``."""
    name = getattr(organism, "name", organism)
    key = str(name).strip().lower()
    if key in _ORGANISMS:
        return _ORGANISMS[key]
    if key.upper() in ("HOMO_SAPIENS", "MUS_MUSCULUS"):
        return key.upper()
    raise ScoringError(f"unknown organism {organism!r}; use 'human' or 'mouse'")


def sdk_organism(organism: Any):
    from alphagenome.models import dna_client

    return dna_client.Organism[normalize_organism(organism)]


# ----------------------------------------------------------------------------------
# Errors, retry policy, outcomes.
# ----------------------------------------------------------------------------------

TRANSIENT_CODES = frozenset({"RESOURCE_EXHAUSTED", "UNAVAILABLE", "DEADLINE_EXCEEDED"})
#: What a call is retried on: the transient codes, plus INTERNAL (the live service reports
#: its transient "bad machine" outages as INTERNAL) for a bounded number of attempts.
RETRY_CODES = TRANSIENT_CODES | {"INTERNAL"}


class BackendCallError(ScoringError):
    """One call to a backend failed; ``code`` is a gRPC status name (or a local code)."""

    def __init__(self, code: str, message: str):
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")

    @property
    def transient(self) -> bool:
        return self.code in TRANSIENT_CODES


class TransientScoringError(ScoringError):
    """Every variant of a chunk failed with a transient error after all attempts: the
    service is down or throttling hard. Orchestration may retry the whole chunk later."""


def classify_error(exc: BaseException) -> tuple[str, str]:
    """``(code, message)`` for an exception raised while scoring one variant.

    gRPC errors give their status name; :class:`TimeoutError` is DEADLINE_EXCEEDED;
    the SDK's local validation (``ValueError``) is INVALID_ARGUMENT; anything else is
    reported under its exception type name (never retried).
    """
    from agval.secrets import redact

    if isinstance(exc, BackendCallError):
        return exc.code, redact(exc.message)
    code_fn = getattr(exc, "code", None)
    if callable(code_fn):
        try:
            code = code_fn()
            name = getattr(code, "name", None) or str(code)
            details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
            return str(name), redact(str(details or ""))
        except Exception:
            pass
    if isinstance(exc, TimeoutError):
        return "DEADLINE_EXCEEDED", redact(str(exc))
    if isinstance(exc, ValueError):
        return "INVALID_ARGUMENT", redact(str(exc))
    if isinstance(exc, PermissionError):
        return "PERMISSION_DENIED", redact(str(exc))
    return type(exc).__name__, redact(str(exc))


@dataclass
class RetryPolicy:
    """Exponential backoff with jitter, retrying only transient status codes.

    ``max_attempts`` counts every attempt of one call (``[backend] max_attempts``; 1 =
    never retry). ``INTERNAL`` is retried too, but at most ``internal_max_attempts``
    attempts in all (a deterministic server bug must not burn the whole budget).
    ``sleep`` is injectable so tests run instantly. The delay before retry ``n``
    (1-based) is ``min(max_backoff, initial * multiplier**(n-1))`` scaled by a uniform
    factor in ``[1 - jitter, 1 + jitter]``.
    """

    max_attempts: int = 5
    initial_backoff: float = 0.5
    multiplier: float = 2.0
    max_backoff: float = 20.0
    jitter: float = 0.25
    retry_codes: frozenset[str] = RETRY_CODES
    internal_max_attempts: int = 2
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    seed: int | None = None

    def __post_init__(self):
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def __getstate__(self):  # picklable for Dask workers (locks are not)
        d = self.__dict__.copy()
        d.pop("_lock", None)
        return d

    def __setstate__(self, d):
        self.__dict__.update(d)
        self._lock = threading.Lock()

    def should_retry(self, code: str, attempt: int) -> bool:
        if code not in self.retry_codes or attempt >= self.max_attempts:
            return False
        return code != "INTERNAL" or attempt < self.internal_max_attempts

    def delay(self, attempt: int) -> float:
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** max(0, attempt - 1))
        with self._lock:
            f = 1.0 + self._rng.uniform(-self.jitter, self.jitter)
        return max(0.0, base * f)

    def to_dict(self) -> dict:
        return {"max_attempts": self.max_attempts, "initial_backoff": self.initial_backoff,
                "multiplier": self.multiplier, "max_backoff": self.max_backoff,
                "jitter": self.jitter, "retry_codes": sorted(self.retry_codes),
                "internal_max_attempts": self.internal_max_attempts}


@dataclass
class VariantOutcome:
    """The result of scoring one variant with a set of scorers."""

    variant: Variant
    scorers: list[str]
    scores: Any = None  # long rows (pl.DataFrame) or whole answers (answers.VariantAnswers)
    error_code: str | None = None
    message: str | None = None
    attempts: int = 0
    throttled: int = 0

    @property
    def ok(self) -> bool:
        return self.error_code is None

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)


@dataclass
class SequencePrediction:
    """Per-track signal for one sequence and one output type.

    ``values`` is ``float32 [n_bins, n_tracks]`` at ``resolution`` bp per bin; ``tracks``
    is the track metadata (:data:`TRACK_COLUMNS`) in column order.
    """

    output_type: str
    values: Any  # numpy array
    tracks: pl.DataFrame
    resolution: int = 1


# ----------------------------------------------------------------------------------
# The abstract backend.
# ----------------------------------------------------------------------------------

class ScoringBackend(abc.ABC):
    """Abstract scoring backend. Subclasses implement :meth:`score_one` and :meth:`describe`."""

    #: short backend name recorded in manifests ("alphagenome", "atlas", "precomputed", ...)
    name: str = "backend"
    #: the retry policy used when a caller passes none (``make_backend`` sets it from the
    #: spec's ``max_attempts``, i.e. ``[backend] max_attempts``)
    default_policy: "RetryPolicy | None" = None

    # -- what subclasses implement ------------------------------------------------
    @abc.abstractmethod
    def score_one(self, variant: Variant, scorers: Sequence[Any], *, interval_width: int,
                  organism: str) -> pl.DataFrame:
        """One attempt at scoring one variant: a frame with :data:`SCORE_COLUMNS`.

        Raise on failure (a ``grpc.RpcError``, :class:`BackendCallError`, ...); do not
        retry here. An empty frame means "scored, nothing to report" (e.g. no gene in
        reach of a gene scorer) and is cached as such.
        """

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """Backend name, address kind (live / standin / self-hosted / atlas /
        precomputed), model version, simulated flag. Never the API key."""

    @property
    def model_version_name(self) -> str:
        """The model version name used for cache keys ("ALL_FOLDS", "enformer", ...)."""
        return "default"

    def output_metadata(self, organism: str = "HOMO_SAPIENS") -> pl.DataFrame | None:
        """The served track catalogue (``output_type`` + :data:`TRACK_COLUMNS`), if known."""
        return None

    @property
    def simulated(self) -> bool:
        """True when the served metadata's ``data_source`` carries the stand-in label."""
        cached = getattr(self, "_simulated_cache", None)
        if cached is None:
            cached = metadata_is_simulated(self.output_metadata("HOMO_SAPIENS"))
            self._simulated_cache = cached
        return cached

    def validate(self, scorers: Sequence[Any], *, interval_width: int, organism: str) -> None:
        """Refuse, before any call, a request this backend can never serve (raise
        :class:`~agval.errors.ScoringError`). Default: accept everything."""

    def supports(self, variant: Variant, scorers: Sequence[Any]) -> bool:
        """Whether this backend can score ``variant`` with ``scorers`` at all."""
        return True

    def fingerprint(self, **kwargs) -> dict[str, Any]:
        """The model fingerprint (see :mod:`agval.scoring.fingerprint`); memoised. The
        backend's own options (``_fp_options``: e.g. the canary panel and the stand-in world)
        apply unless ``kwargs`` override them."""
        from agval.scoring.fingerprint import compute_fingerprint

        opts = {k: v for k, v in getattr(self, "_fp_options", {}).items() if v is not None}
        kwargs = {**opts, **kwargs}
        key = repr(sorted(kwargs.items()))
        memo = self.__dict__.setdefault("_fingerprints", {})
        if key not in memo:
            memo[key] = compute_fingerprint(self, **kwargs)
        return memo[key]

    def score_answers(self, variant: Variant, scorers: Sequence[Any], *, interval_width: int,
                      organism: str):
        """One attempt at one variant as whole, compact answers
        (:class:`agval.scoring.answers.VariantAnswers`), or None when this backend has no
        compact form (then :meth:`score_one` is used)."""
        return None

    def predict_one(self, sequence: str, *, requested_outputs: Sequence[str],
                    ontology_terms: Sequence[str] | None, organism: str) -> list[SequencePrediction]:
        """One attempt at predicting one sequence (all requested outputs in one call)."""
        raise NotImplementedError(f"{self.name} does not predict sequences")

    def close(self) -> None:
        """Release channels and threads."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- isolation + retries (shared by every backend) ---------------------------
    def score_variants(self, variants: Sequence[Variant], scorers: Sequence[Any], *,
                       interval_width: int, organism: str = "HOMO_SAPIENS", concurrency: int = 8,
                       policy: RetryPolicy | None = None, limiter=None,
                       on_result: Callable[[VariantOutcome], None] | None = None,
                       compact: bool = False) -> list[VariantOutcome]:
        """Score each variant on its own (one call per variant, in a thread pool).

        Returns one :class:`VariantOutcome` per input variant, in input order. Transient
        errors are retried per :class:`RetryPolicy`; anything else (a poison variant) is
        recorded on that variant's outcome and the others carry on. ``on_result`` is
        called from worker threads as each variant finishes (the cache journals there).
        ``compact``: outcomes carry whole answers (:meth:`score_answers`) when the backend
        has a compact form, long rows otherwise.
        """
        policy = policy or self.default_policy or RetryPolicy()
        organism = normalize_organism(organism)
        scorers = list(scorers)
        ids = [scorer_id(s) for s in scorers]

        def attempt(v: Variant):
            if compact:
                got = self.score_answers(v, scorers, interval_width=interval_width, organism=organism)
                if got is not None:
                    return got
            return self.score_one(v, scorers, interval_width=interval_width, organism=organism)

        def one(v: Variant) -> VariantOutcome:
            out = call_with_retries(lambda: attempt(v), policy=policy, limiter=limiter)
            res = VariantOutcome(v, ids, attempts=out.attempts, throttled=out.throttled)
            if out.error is None:
                res.scores = out.value
            else:
                res.error_code, res.message = out.error
            if on_result is not None:
                on_result(res)
            return res

        if concurrency <= 1 or len(variants) <= 1:
            return [one(v) for v in variants]
        with ThreadPoolExecutor(max_workers=min(concurrency, len(variants)),
                                thread_name_prefix=f"agval-{self.name}") as pool:
            return list(pool.map(one, variants))

    def predict_sequences(self, sequences: Sequence[str], *, requested_outputs: Sequence[str],
                          ontology_terms: Sequence[str] | None = None, organism: str = "HOMO_SAPIENS",
                          concurrency: int = 4, policy: RetryPolicy | None = None, limiter=None,
                          on_result: Callable[[int, "CallOutcome"], None] | None = None) -> list["CallOutcome"]:
        """Predict each sequence (one call each, isolated and retried like variants)."""
        policy = policy or self.default_policy or RetryPolicy()
        organism = normalize_organism(organism)

        def one(i: int) -> CallOutcome:
            out = call_with_retries(lambda: self.predict_one(sequences[i], requested_outputs=requested_outputs,
                                                             ontology_terms=ontology_terms, organism=organism),
                                    policy=policy, limiter=limiter)
            if on_result is not None:
                on_result(i, out)
            return out

        idx = range(len(sequences))
        if concurrency <= 1 or len(sequences) <= 1:
            return [one(i) for i in idx]
        with ThreadPoolExecutor(max_workers=min(concurrency, len(sequences))) as pool:
            return list(pool.map(one, idx))


@dataclass
class CallOutcome:
    value: Any = None
    error: tuple[str, str] | None = None
    attempts: int = 0
    throttled: int = 0


def call_with_retries(fn: Callable[[], Any], *, policy: RetryPolicy, limiter=None) -> CallOutcome:
    """Run ``fn`` until it succeeds, fails permanently or runs out of attempts.

    The limiter (if any) paces every attempt and hears back about throttling
    (RESOURCE_EXHAUSTED) and successes, so it can back off and climb again.
    """
    attempt = 0
    throttled = 0
    while True:
        attempt += 1
        if limiter is not None:
            limiter.acquire()
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 - classified below
            code, msg = classify_error(exc)
            if limiter is not None:
                limiter.release(code)
            if code == "RESOURCE_EXHAUSTED":
                throttled += 1
            if policy.should_retry(code, attempt):
                policy.sleep(policy.delay(attempt))
                continue
            return CallOutcome(None, (code, msg), attempt, throttled)
        if limiter is not None:
            limiter.release(None)
        return CallOutcome(value, None, attempt, throttled)


def metadata_is_simulated(meta: pl.DataFrame | None) -> bool:
    """True if any track of ``meta`` has ``data_source`` containing the stand-in label."""
    if meta is None or "data_source" not in meta.columns or meta.height == 0:
        return False
    return bool(meta.select(pl.col("data_source").cast(pl.String)
                            .str.contains(SIMULATED_DATA_SOURCE, literal=True).fill_null(False).any()).item())
