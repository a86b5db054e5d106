"""Crash isolation: scoring calls and their decoding in child processes (``[backend] isolation = "process"``).

A segfault while decoding one variant's answer has been seen on the live service; in the
scoring process it would end the whole run. :class:`ProcessIsolatedBackend` runs every
``score_one`` / ``score_answers`` (the SDK call *and* the decode) in a small pool of
worker processes (``spawn``: no inherited gRPC state). Each worker handles one variant
at a time, so when a worker dies (segfault, ``os._exit``, OOM kill) the variant it was
working on is known exactly: that call raises
``BackendCallError("SCORING_CRASHED", ...)`` (never retried; the engine records it as a
failure and the study flows count it as a drop with reason ``scoring_crashed``), the
worker is replaced, and every other variant is scored as usual, with the same numbers
as without isolation.

Everything else (metadata, fingerprint, description, validation, sequences) runs on an
ordinary backend in the calling process. The workers rebuild their backend from the same
plain spec (:func:`agval.scoring.make_backend`), so the API key is read in each worker
and never sent through a pipe. Cost: one pickled answer per variant through a pipe
(whole answers are compact), and a process start (~1-2 s) per worker on first use.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import threading
from typing import Any, Callable, Sequence

from agval.drops import SCORING_CRASHED as CRASHED  # error code of a variant whose worker died
from agval.drops import SCORING_CRASHED_REASON as CRASHED_REASON  # noqa: F401  (its drop reason)
from agval.scoring.backend import BackendCallError, ScoringBackend


def _worker_main(conn, factory: Callable[[], ScoringBackend]) -> None:  # pragma: no cover - child process
    from agval.scoring.backend import classify_error

    backend = factory()
    try:
        while True:
            try:
                msg = conn.recv()
            except EOFError:
                return
            if msg is None:
                return
            method, args, kwargs = msg
            try:
                conn.send(("ok", getattr(backend, method)(*args, **kwargs)))
            except Exception as exc:  # noqa: BLE001 - sent back as (code, message)
                conn.send(("err",) + classify_error(exc))
    finally:
        try:
            backend.close()
        except Exception:  # noqa: BLE001
            pass


class _Worker:
    def __init__(self, ctx, factory):
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child, factory), daemon=True,
                                name="agval-scoring-worker")
        self.proc.start()
        child.close()

    def call(self, method: str, args: tuple, kwargs: dict):
        """``("ok", value)`` / ``("err", code, message)``; raises EOFError/OSError if the worker died."""
        self.conn.send((method, args, kwargs))
        return self.conn.recv()

    def stop(self, timeout: float = 2.0) -> None:
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(timeout)
        self.conn.close()


class WorkerPool:
    """``workers`` child processes (started on first use), one call at a time each; a
    worker that dies is replaced. Thread-safe: callers block until a worker is free."""

    def __init__(self, factory: Callable[[], ScoringBackend], workers: int = 2, start_method: str = "spawn"):
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self._factory = factory
        self._ctx = mp.get_context(start_method)
        self._size = workers
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._lock = threading.Lock()
        self._started = 0
        self._all: set[_Worker] = set()
        self.crashes = 0
        self.closed = False

    def _take(self) -> _Worker:
        with self._lock:
            if self.closed:
                raise RuntimeError("the worker pool is closed")
            if self._idle.empty() and self._started < self._size:
                self._started += 1
                w = _Worker(self._ctx, self._factory)
                self._all.add(w)
                return w
        return self._idle.get()

    def call(self, method: str, *args, **kwargs):
        w = self._take()
        try:
            out = w.call(method, args, kwargs)
        except (EOFError, OSError, BrokenPipeError):
            w.proc.join(5.0)
            code = w.proc.exitcode
            with self._lock:
                self.crashes += 1
                self._started -= 1  # a replacement starts on the next call
                self._all.discard(w)
            try:
                w.conn.close()
            except OSError:
                pass
            how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            raise BackendCallError(CRASHED, f"the scoring worker process died ({how}) while scoring this "
                                            "variant; the variant is dropped, the run goes on") from None
        self._idle.put(w)
        if out[0] == "ok":
            return out[1]
        raise BackendCallError(out[1], out[2])

    def close(self) -> None:
        with self._lock:
            self.closed = True
            workers = list(self._all)
            self._all.clear()
        for w in workers:
            w.stop()


class ProcessIsolatedBackend(ScoringBackend):
    """``inner`` for everything, except that scoring calls run in :class:`WorkerPool` workers
    built by ``factory`` (a picklable callable returning an equivalent backend)."""

    def __init__(self, inner: ScoringBackend, factory: Callable[[], ScoringBackend], workers: int = 2):
        self.inner = inner
        self.name = inner.name
        self.pool = WorkerPool(factory, workers)
        self.default_policy = getattr(inner, "default_policy", None)

    @property
    def model_version_name(self) -> str:
        return self.inner.model_version_name

    def __getattr__(self, name: str) -> Any:  # metadata, fingerprint, predict_one, ...
        if name in ("inner", "pool"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "isolation": "process", "isolation_workers": self.pool._size}

    # what the base class defines is delegated explicitly (``__getattr__`` never sees it)
    def output_metadata(self, organism: str = "HOMO_SAPIENS"):
        return self.inner.output_metadata(organism)

    @property
    def simulated(self) -> bool:
        return self.inner.simulated

    def supports(self, variant, scorers) -> bool:
        return self.inner.supports(variant, scorers)

    def predict_one(self, sequence: str, **kwargs):
        return self.inner.predict_one(sequence, **kwargs)

    def fingerprint(self, **kwargs):
        return self.inner.fingerprint(**kwargs)

    def validate(self, scorers: Sequence[Any], *, interval_width: int, organism: str) -> None:
        return self.inner.validate(scorers, interval_width=interval_width, organism=organism)

    def score_one(self, variant, scorers, *, interval_width: int, organism: str):
        return self.pool.call("score_one", variant, list(scorers), interval_width=interval_width, organism=organism)

    def score_answers(self, variant, scorers, *, interval_width: int, organism: str):
        return self.pool.call("score_answers", variant, list(scorers), interval_width=interval_width,
                              organism=organism)

    def close(self) -> None:
        self.closed = True
        self.pool.close()
        self.inner.close()
