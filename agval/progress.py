"""Progress events: the library and its task wrappers say how far a run has got; whoever
listens (the ``agval run`` progress bars) shows it. No Prefect, no terminal code here.

A run goes through these stages (:data:`STAGES`), each reported by :func:`emit`:

* ``lookup``: rsIDs looked up, ``done``/``total`` ids;
* ``scoring``: variants (or MPRA sequences) scored, ``done``/``total`` of those that needed
  a call (cached ones are not counted);
* ``statistics``: the statistics started (no counts);
* ``report``: the report is written (``detail`` = its URL).

Listeners are called synchronously in the emitting thread (scoring chunks finish on worker
threads), so they must be quick and thread-safe; an exception in a listener is swallowed
(progress never breaks a run). With no listener, :func:`emit` costs a lock and a list check.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Callable, Iterator

STAGES = ("lookup", "scoring", "statistics", "report")


@dataclass(frozen=True)
class ProgressEvent:
    """``stage`` in :data:`STAGES`; ``done``/``total`` counts (None when the stage has none);
    ``unit`` what is counted (``ids``, ``variants``, ``sequences``); ``detail`` free text."""

    stage: str
    done: int | None = None
    total: int | None = None
    unit: str = ""
    detail: str = ""


Listener = Callable[[ProgressEvent], None]

_lock = threading.Lock()
_listeners: list[Listener] = []


def emit(stage: str, done: int | None = None, total: int | None = None, *, unit: str = "",
         detail: str = "") -> None:
    """Tell every listener that ``stage`` reached ``done`` of ``total``."""
    if stage not in STAGES:
        raise ValueError(f"unknown progress stage {stage!r}; one of {STAGES}")
    with _lock:
        listeners = list(_listeners)
    if not listeners:
        return
    ev = ProgressEvent(stage, done, total, unit, detail)
    for fn in listeners:
        try:
            fn(ev)
        except Exception:  # noqa: BLE001 - a display problem must not fail the run
            pass


def callback(stage: str, unit: str = "") -> Callable[[int, int], None]:
    """A ``fn(done, total)`` for the library's existing progress hooks (allele lookup,
    :func:`agval.scoring.predict_sequences`) that emits ``stage`` events."""

    def fn(done: int, total: int) -> None:
        emit(stage, int(done), int(total), unit=unit)

    return fn


@contextlib.contextmanager
def listening(fn: Listener) -> Iterator[Listener]:
    """Call ``fn`` with every event emitted (from any thread) inside the block."""
    with _lock:
        _listeners.append(fn)
    try:
        yield fn
    finally:
        with _lock:
            _listeners.remove(fn)


class Counter:
    """A running count for one stage across concurrent parts (scoring chunks on threads):
    :meth:`part` gives each part a ``fn(done, total)`` hook (the engine's per-variant
    progress callback) whose increments are summed and emitted as ``done`` of ``total``;
    :meth:`at_least` raises the count when a part reports its final tally. The count never
    exceeds ``total`` (a retried part counts again). Picklable: a copy in another process
    (a Dask worker) counts there, where nobody listens."""

    def __init__(self, stage: str, total: int, unit: str = ""):
        self.stage, self.total, self.unit = stage, int(total), unit
        self.done = 0
        self._lock = threading.Lock()

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _set(self, fn) -> None:
        with self._lock:
            self.done = min(self.total, fn(self.done))
            done = self.done
        emit(self.stage, done, self.total, unit=self.unit)

    def add(self, n: int) -> None:
        self._set(lambda d: d + max(0, int(n)))

    def at_least(self, n: int) -> None:
        self._set(lambda d: max(d, int(n)))

    def part(self) -> "_Part":
        return _Part(self)


class _Part:
    """One part's ``fn(done, total)`` hook: forwards the increase of ``done``."""

    def __init__(self, counter: Counter):
        self.counter, self.last = counter, 0

    def __call__(self, done: int, total: int | None = None) -> None:
        self.counter.add(int(done) - self.last)
        self.last = int(done)
