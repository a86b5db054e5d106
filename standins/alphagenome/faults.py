"""Fault injection for the stand-in AlphaGenome service (SIMULATED).

Faults are chosen per call through gRPC metadata headers (``DnaClient(metadata=[...])``
attaches its metadata to every call) or server-wide through :class:`StandinConfig`.

Headers (all optional; values are decimal integers unless stated):

``x-fake-latency-ms``
    delay before answering (overrides the server-wide ``latency_ms`` for this call).
``x-fake-fail-first``
    how many attempts of each distinct request (fingerprint) are *faulty*; later attempts
    of the same request succeed. Without it, every attempt is faulty when a fault kind
    below is given.
``x-fake-fail-code``
    the status a faulty attempt fails with: ``RESOURCE_EXHAUSTED``, ``UNAVAILABLE``
    (default), ``DEADLINE_EXCEEDED`` or ``INTERNAL`` (any ``grpc.StatusCode`` name works).
``x-fake-fail-midstream``
    ``k`` > 0: a faulty attempt sends its first ``k`` stream messages, then fails with the
    fail code (the client has already started decoding). Unary RPCs fail up front.
``x-fake-hang-ms``
    a faulty attempt sleeps this long and then answers normally; a client deadline shorter
    than this fires first (the server notices the cancellation and stops waiting).

A request is faulty only if at least one of fail-first / fail-code / fail-midstream /
hang-ms is present. All waits use ``threading.Event.wait`` (never ``time.sleep``), so
tests can patch ``time.sleep`` to skip the SDK's retry backoff without skipping server
latency.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Iterable

import grpc

HEADER_LATENCY = "x-fake-latency-ms"
HEADER_FAIL_FIRST = "x-fake-fail-first"
HEADER_FAIL_CODE = "x-fake-fail-code"
HEADER_FAIL_MIDSTREAM = "x-fake-fail-midstream"
HEADER_HANG = "x-fake-hang-ms"
FAULT_HEADERS = (HEADER_LATENCY, HEADER_FAIL_FIRST, HEADER_FAIL_CODE, HEADER_FAIL_MIDSTREAM, HEADER_HANG)

DEFAULT_FAIL_CODE = grpc.StatusCode.UNAVAILABLE


class Abort(Exception):
    """Raised inside a handler to end the call with ``code`` and ``details``.

    ``injected`` marks faults the stand-in injected on purpose (as opposed to
    validation errors a real service would also raise).
    """

    def __init__(self, code: grpc.StatusCode, details: str, *, injected: bool = False):
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details
        self.injected = injected


@dataclasses.dataclass(frozen=True)
class FaultSpec:
    """The faults requested for one call (parsed from its metadata)."""

    latency_ms: float | None = None
    fail_first: int | None = None
    fail_code: grpc.StatusCode | None = None
    fail_midstream: int = 0
    hang_ms: float = 0.0

    @property
    def any_fault(self) -> bool:
        return (self.fail_first is not None or self.fail_code is not None
                or self.fail_midstream > 0 or self.hang_ms > 0)

    @property
    def code(self) -> grpc.StatusCode:
        return self.fail_code or DEFAULT_FAIL_CODE

    def key(self) -> tuple:
        """Identity of the fault recipe (attempt counters are kept per request *and* recipe)."""
        return (self.fail_first, self.fail_code.name if self.fail_code else None,
                self.fail_midstream, self.hang_ms)

    def is_faulty(self, attempt: int) -> bool:
        """Whether the ``attempt``-th (1-based) attempt of a request gets the fault."""
        if not self.any_fault:
            return False
        return self.fail_first is None or attempt <= self.fail_first


def _int_header(name: str, value: str) -> int:
    try:
        return int(float(value))
    except ValueError:
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                    f"stand-in fault header {name}={value!r} is not a number") from None


def parse_status_code(value: str) -> grpc.StatusCode:
    """``'RESOURCE_EXHAUSTED'`` (or ``'resource-exhausted'``, ``'8'``) -> ``grpc.StatusCode``."""
    v = value.strip().upper().replace("-", "_")
    if v.startswith("STATUS_CODE_"):
        v = v[len("STATUS_CODE_"):]
    for code in grpc.StatusCode:
        if code.name == v or str(code.value[0]) == v:
            if code is grpc.StatusCode.OK:
                break
            return code
    raise ValueError(f"unknown gRPC status code {value!r}")


def parse_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> FaultSpec:
    """Read the ``x-fake-*`` headers of one call."""
    h: dict[str, str] = {}
    for k, v in metadata or ():
        k = k.lower()
        if k in FAULT_HEADERS:
            h[k] = v.decode() if isinstance(v, bytes) else str(v)
    if not h:
        return FaultSpec()
    code = None
    if HEADER_FAIL_CODE in h:
        try:
            code = parse_status_code(h[HEADER_FAIL_CODE])
        except ValueError as e:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"stand-in fault header {HEADER_FAIL_CODE}: {e}") from None
    return FaultSpec(
        latency_ms=float(h[HEADER_LATENCY]) if HEADER_LATENCY in h else None,
        fail_first=_int_header(HEADER_FAIL_FIRST, h[HEADER_FAIL_FIRST]) if HEADER_FAIL_FIRST in h else None,
        fail_code=code,
        fail_midstream=_int_header(HEADER_FAIL_MIDSTREAM, h[HEADER_FAIL_MIDSTREAM]) if HEADER_FAIL_MIDSTREAM in h else 0,
        hang_ms=float(h[HEADER_HANG]) if HEADER_HANG in h else 0.0,
    )


def fingerprint(method: str, request) -> str:
    """Stable identity of a request: sha256 of the method and the deterministic proto bytes."""
    h = hashlib.sha256(method.encode())
    h.update(b"\0")
    h.update(request.SerializeToString(deterministic=True))
    return h.hexdigest()[:20]


class AttemptCounter:
    """Counts attempts per (method, fingerprint, fault recipe); thread-safe."""

    def __init__(self, max_keys: int = 500_000) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple, int] = {}
        self._max_keys = max_keys

    def next(self, key: tuple) -> int:
        with self._lock:
            if key not in self._counts and len(self._counts) >= self._max_keys:
                self._counts.clear()  # bound memory in a long-lived server
            n = self._counts.get(key, 0) + 1
            self._counts[key] = n
            return n

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()


def wait(seconds: float, *events: threading.Event, context: grpc.ServicerContext | None = None) -> bool:
    """Wait ``seconds`` (monotonic, via ``Event.wait``); return False if woken early.

    Wakes early when any of ``events`` is set (server stopping) or when the call ends
    (client cancelled or its deadline fired), so a stopping server never waits out a hang.
    """
    if seconds <= 0:
        return True
    ev = threading.Event()
    if context is not None:
        try:
            if not context.add_callback(ev.set):  # the RPC has already terminated
                return False
        except Exception:  # noqa: BLE001 - some contexts do not support callbacks
            pass
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        if ev.wait(min(left, 0.05)):
            return False
        if any(e.is_set() for e in events):
            return False
        if context is not None and not context.is_active():
            return False
