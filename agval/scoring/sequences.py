"""Sequence prediction (MPRA-style inputs): :func:`predict_sequences`.

One ``predict_sequence`` call per distinct sequence with all requested outputs, cached by
sequence hash (:class:`SequenceCache`, one ``.npz`` per sequence); only the model's
supported lengths (``agval.sdk.SUPPORTED_SEQUENCE_LENGTHS``); N-padding refused
(:func:`check_sequence`). Variant scoring lives in :mod:`agval.scoring.engine`; this
module shares its progress bar and fingerprint rule.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import polars as pl

from agval import schema
from agval.errors import InputError, MissingColumnError, UnsupportedSequenceError
from agval.sdk import SUPPORTED_SEQUENCE_LENGTHS as SUPPORTED_LENGTHS  # the SDK's, read in one place
from agval.scoring.backend import TRACK_COLUMNS, RetryPolicy, ScoringBackend, normalize_organism
from agval.scoring.engine import Progress, fingerprint_of

_ACGT = frozenset("ACGT")


def sequence_sha(seq: str) -> str:
    return hashlib.sha256(seq.encode()).hexdigest()


def check_sequence(seq: str, *, seq_id: str | None = None) -> str:
    """Upper-cased ``seq`` if it can be sent to the model, else :class:`UnsupportedSequenceError`."""
    where = f"sequence {seq_id!r}" if seq_id is not None else "sequence"
    s = seq.upper()
    if len(s) not in SUPPORTED_LENGTHS:
        raise UnsupportedSequenceError(
            f"{where} has length {len(s)}; supported lengths are {list(SUPPORTED_LENGTHS)} "
            "(embed the insert in a real flanking context of a supported length)")
    letters = set(s)
    if "N" in letters:
        raise UnsupportedSequenceError(
            f"{where} contains N (N-padding is refused: the model never saw N-padded inputs; "
            "pad with the real reporter or genomic flank instead)")
    bad = letters - _ACGT
    if bad:
        raise UnsupportedSequenceError(f"{where} contains letters other than ACGT: {sorted(bad)}")
    return s


@dataclass
class SequenceRun:
    """What :func:`predict_sequences` returns.

    ``predictions[(sha, output_type)]`` is ``float32 [n_bins, n_tracks]`` binned at
    ``bin_size`` bp (sum of the model's signal per bin); ``tracks[output_type]`` the
    track metadata in column order; ``sequences`` maps ``seq_id`` to ``sha``.
    """

    sequences: pl.DataFrame  # seq_id, sequence_sha256, length
    predictions: dict[tuple[str, str], np.ndarray]
    tracks: dict[str, pl.DataFrame]
    bin_size: int
    failures: pl.DataFrame  # seq_id, sequence_sha256, error_code, message, attempts
    summary_stats: dict[str, Any] = field(default_factory=dict)
    backend: dict[str, Any] = field(default_factory=dict)

    def summary(self, *, window: tuple[int, int] | None = None, stat: str = "sum") -> pl.DataFrame:
        """Long table: ``seq_id, output_type`` + track columns + ``value`` = ``stat`` of the
        signal over ``window`` (0-based half-open bp, rounded out to whole bins;
        whole sequence when None)."""
        frames = []
        for r in self.sequences.iter_rows(named=True):
            for ot, meta in self.tracks.items():
                arr = self.predictions.get((r["sequence_sha256"], ot))
                if arr is None:
                    continue
                a = arr
                if window is not None:
                    b0 = window[0] // self.bin_size
                    b1 = -(-window[1] // self.bin_size)
                    a = arr[b0:b1]
                if stat == "sum":
                    v = a.sum(axis=0)
                elif stat == "mean":
                    v = a.sum(axis=0) / max(1, a.shape[0] * self.bin_size)
                elif stat == "max":
                    v = a.max(axis=0)
                else:
                    raise InputError(f"unknown stat {stat!r}; use sum, mean or max")
                frames.append(meta.with_columns(pl.lit(r["seq_id"]).alias("seq_id"),
                                                pl.lit(ot).alias("output_type"),
                                                pl.Series("value", np.asarray(v, dtype=np.float64))))
        if not frames:
            return pl.DataFrame(schema={"seq_id": pl.String, "output_type": pl.String, **TRACK_COLUMNS,
                                        "value": pl.Float64})
        return pl.concat(frames, how="diagonal_relaxed").select(
            "seq_id", "output_type", *TRACK_COLUMNS, "value")


def _bin(values: np.ndarray, resolution: int, bin_size: int) -> np.ndarray:
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2:
        raise UnsupportedSequenceError("only 1-D track outputs can be binned (not contact maps/junctions)")
    if bin_size <= resolution:
        return values
    f = bin_size // resolution
    n = values.shape[0] // f
    return values[: n * f].reshape(n, f, values.shape[1]).sum(axis=1, dtype=np.float32)


class SequenceCache:
    """Per-sequence ``.npz`` files keyed by sequence sha256 + outputs + ontology terms +
    organism + model fingerprint + bin size. Written atomically."""

    def __init__(self, root: str | Path | None = None, *, simulated: bool):
        from agval.paths import cache_dir

        self.root = Path(root) if root else cache_dir("sequences", simulated)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, ctx_key: str, sha: str) -> Path:
        return self.root / ctx_key / sha[:2] / f"{sha}.npz"

    def get(self, ctx_key: str, sha: str) -> tuple[dict[str, np.ndarray], dict[str, pl.DataFrame]] | None:
        p = self.path(ctx_key, sha)
        if not p.exists():
            return None
        with np.load(p, allow_pickle=False) as z:
            meta = json.loads(bytes(z["__meta__"]).decode())
            arrays = {ot: z[f"v_{ot}"] for ot in meta}
        tracks = {ot: pl.DataFrame(rows, schema=TRACK_COLUMNS, orient="row") for ot, rows in meta.items()}
        return arrays, tracks

    def put(self, ctx_key: str, sha: str, arrays: dict[str, np.ndarray], tracks: dict[str, pl.DataFrame]) -> None:
        buf = io.BytesIO()
        meta = {ot: [list(r) for r in tracks[ot].select(list(TRACK_COLUMNS)).iter_rows()] for ot in arrays}
        np.savez_compressed(buf, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
                            **{f"v_{ot}": a for ot, a in arrays.items()})
        schema.atomic_write_bytes(self.path(ctx_key, sha), buf.getvalue())


def predict_sequences(sequences: pl.DataFrame | Sequence[str], outputs: Sequence[str], *,
                      backend: ScoringBackend, ontology_terms: Sequence[str] | None = None,
                      organism: str = "human", bin_size: int = 32, cache="default", concurrency: int = 4,
                      policy: RetryPolicy | None = None, limiter=None, fingerprint=None,
                      progress: bool | None | Callable[[int, int], None] = None) -> SequenceRun:
    """Predict every distinct sequence once with all ``outputs`` (e.g. ``["DNASE", "CAGE"]``).

    ``sequences``: a frame with ``seq_id, sequence`` or a list of strings (ids ``s0, s1...``).
    Sequences of an unsupported length or containing N raise
    :class:`~agval.errors.UnsupportedSequenceError` before any call is made.
    """
    t0 = time.monotonic()
    organism = normalize_organism(organism)
    if not isinstance(sequences, pl.DataFrame):
        sequences = pl.DataFrame({"seq_id": [f"s{i}" for i in range(len(sequences))],
                                  "sequence": list(sequences)})
    for c in ("seq_id", "sequence"):
        if c not in sequences.columns:
            raise MissingColumnError(c, available=sequences.columns)
    outputs = [str(getattr(o, "name", o)).upper() for o in dict.fromkeys(outputs)]
    seqs: dict[str, str] = {}
    rows = []
    for sid, s in sequences.select(pl.col("seq_id").cast(pl.String), "sequence").iter_rows():
        s = check_sequence(str(s or ""), seq_id=sid)
        sha = sequence_sha(s)
        seqs.setdefault(sha, s)
        rows.append((sid, sha, len(s)))
    seq_table = pl.DataFrame(rows, schema={"seq_id": pl.String, "sequence_sha256": pl.String,
                                           "length": pl.Int64}, orient="row")
    fp = fingerprint_of(backend, fingerprint)
    ctx_key = hashlib.sha256(json.dumps([outputs, sorted(ontology_terms or []) if ontology_terms else None,
                                         organism, backend.model_version_name, fp["digest"], bin_size]
                                        ).encode()).hexdigest()[:24]
    store = None
    if cache not in (None, False):
        store = cache if isinstance(cache, SequenceCache) else SequenceCache(
            None if cache in ("default", True) else cache, simulated=backend.simulated)
    predictions: dict[tuple[str, str], np.ndarray] = {}
    tracks: dict[str, pl.DataFrame] = {}
    todo = []
    hits = 0
    for sha in seqs:
        got = store.get(ctx_key, sha) if store is not None else None
        if got is None:
            todo.append(sha)
            continue
        hits += 1
        arrays, tr = got
        for ot, a in arrays.items():
            predictions[(sha, ot)] = a
        for ot, t in tr.items():
            tracks.setdefault(ot, t)
    prog = Progress(len(todo), progress, desc="predicting")
    lock = threading.Lock()

    def on_result(i: int, out) -> None:
        sha = todo[i]
        if out.error is None:
            arrays = {p.output_type: _bin(p.values, p.resolution, bin_size) for p in out.value}
            tr = {p.output_type: p.tracks.select(list(TRACK_COLUMNS)) for p in out.value}
            if store is not None:
                store.put(ctx_key, sha, arrays, tr)
            with lock:
                for ot, a in arrays.items():
                    predictions[(sha, ot)] = a
                for ot, t in tr.items():
                    tracks.setdefault(ot, t)
        prog.update(1)

    outs = backend.predict_sequences([seqs[s] for s in todo], requested_outputs=outputs,
                                     ontology_terms=ontology_terms, organism=organism,
                                     concurrency=concurrency, policy=policy, limiter=limiter,
                                     on_result=on_result) if todo else []
    prog.close()
    sha_to_ids: dict[str, list[str]] = {}
    for sid, sha, _ in rows:
        sha_to_ids.setdefault(sha, []).append(sid)
    fails = []
    for sha, out in zip(todo, outs):
        if out.error is not None:
            for sid in sha_to_ids[sha]:
                fails.append({"seq_id": sid, "sequence_sha256": sha, "error_code": out.error[0],
                              "message": out.error[1], "attempts": out.attempts})
    fail_schema = {"seq_id": pl.String, "sequence_sha256": pl.String, "error_code": pl.String,
                   "message": pl.String, "attempts": pl.Int64}
    secs = time.monotonic() - t0
    stats = {"input_rows": sequences.height, "unique_sequences": len(seqs), "cache_hits": hits,
             "calls": sum(o.attempts for o in outs), "retries": sum(max(0, o.attempts - 1) for o in outs),
             "failures": sum(1 for o in outs if o.error is not None), "seconds": round(secs, 3)}
    return SequenceRun(seq_table, predictions, tracks, bin_size,
                       pl.DataFrame(fails, schema=fail_schema) if fails else pl.DataFrame(schema=fail_schema),
                       stats, backend.describe())
