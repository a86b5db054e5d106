"""Quota-aware pacing: an adaptive AIMD rate limiter.

The live API meters a per-minute token quota and answers RESOURCE_EXHAUSTED when it is
spent. :class:`AdaptiveLimiter` paces calls so a long run sits just under the quota:

* **unlimited until told otherwise**: no pacing until the first RESOURCE_EXHAUSTED (or
  start at ``initial_rate``);
* **multiplicative decrease**: on RESOURCE_EXHAUSTED the rate becomes
  ``decrease x`` the rate at which calls were actually being sent. At most one cut per
  round trip: a rejection of a call sent *before* the last cut says nothing new;
* **additive increase**: while the limit is binding (callers are being delayed) and no
  rejection arrives, the rate climbs by ``max(increase x rate, additive)`` per second
  (3 % of the rate, at least 0.5 calls/s, per second).

Against a token bucket this converges within a second from any overshoot, and the
sawtooth below the quota banks tokens that the next climb spends, so the quota is used
almost fully with few rejections (``bench/scoring.py`` measures both).

Costs: :meth:`acquire` takes a ``cost`` (default 1 call); the engine passes the
estimated quota cost of a call (scorers x interval width / 1 Mb), so the rate is in
quota units per second.

``hook``: an optional callable run before every call (``tasks/`` plugs in a Prefect
global concurrency ``rate_limit`` there to share one quota across workers); it is never
imported here.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable


class AdaptiveLimiter:
    def __init__(self, *, initial_rate: float | None = None, min_rate: float = 0.05,
                 max_rate: float | None = None, increase: float = 0.03, additive: float = 0.5,
                 decrease: float = 0.85,
                 max_concurrency: int | None = None, hook: Callable[[float], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        if not 0 < decrease < 1:
            raise ValueError("decrease must be in (0, 1)")
        self.rate: float | None = initial_rate
        self.min_rate = min_rate
        self.max_rate = max_rate
        self.increase = increase
        self.additive = additive
        self.decrease = decrease
        self.hook = hook
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = clock()
        self._last_cut = -1e18
        self._last_raise = clock()
        self._last_bind = -1e18
        self._sent: deque[tuple[float, float]] = deque()  # (time, cost) over the last second
        self._sema = threading.BoundedSemaphore(max_concurrency) if max_concurrency else None
        self._local = threading.local()
        # statistics
        self.calls = 0
        self.throttled = 0
        self.cuts = 0
        self.waited_s = 0.0

    # -- the calling side -------------------------------------------------------------
    def acquire(self, cost: float = 1.0) -> float:
        """Block until a call of ``cost`` may be sent; returns the send time."""
        if self._sema is not None:
            self._sema.acquire()
        if self.hook is not None:
            self.hook(cost)
        with self._lock:
            now = self._clock()
            self._grow(now)
            wait = 0.0
            if self.rate is not None:
                start = max(now, self._next)
                self._next = start + cost / self.rate
                wait = start - now
                if wait > 0:
                    self._last_bind = now
            self.calls += 1
        if wait > 0:
            self.waited_s += wait
            self._sleep(wait)
        t = self._clock()
        with self._lock:
            self._sent.append((t, cost))
            while self._sent and self._sent[0][0] < t - 1.0:
                self._sent.popleft()
        self._local.sent_at = t
        return t

    def release(self, code: str | None, sent_at: float | None = None) -> None:
        """Report how the call ended (``None`` = OK, else a status name)."""
        if self._sema is not None:
            try:
                self._sema.release()
            except ValueError:
                pass
        if sent_at is None:
            sent_at = getattr(self._local, "sent_at", self._clock())
        if code != "RESOURCE_EXHAUSTED":
            return
        with self._lock:
            self.throttled += 1
            if sent_at < self._last_cut:
                return  # sent before the last cut: old news
            now = self._clock()
            sending = self._send_rate(now)
            base = sending if self.rate is None else min(self.rate, max(sending, self.min_rate))
            self.rate = max(self.min_rate, base * self.decrease)
            self._last_cut = now
            self._last_raise = now
            self._next = max(self._next, now)
            self.cuts += 1

    # -- internals --------------------------------------------------------------------
    def _send_rate(self, now: float) -> float:
        cutoff = now - 1.0
        window = [(t, c) for t, c in self._sent if t >= cutoff]
        if not window:
            return self.min_rate
        span = max(0.05, now - window[0][0])
        return sum(c for _, c in window) / span

    def _grow(self, now: float) -> None:
        if self.rate is None:
            self._last_raise = now
            return
        dt = now - self._last_raise
        if dt <= 0:
            return
        if now - self._last_bind <= 1.0:  # only climb while the limit is what holds us back
            self.rate += max(self.increase * self.rate, self.additive) * dt
            if self.max_rate is not None:
                self.rate = min(self.rate, self.max_rate)
        self._last_raise = now

    # picklable (a Dask worker gets its own copy that keeps the learnt rate)
    def __getstate__(self):
        d = self.__dict__.copy()
        for k in ("_lock", "_sema", "_local", "_clock", "_sleep"):
            d.pop(k, None)
        d["_max_concurrency"] = getattr(self._sema, "_initial_value", None) if self._sema else None
        d["_sent"] = deque()
        return d

    def __setstate__(self, d):
        mc = d.pop("_max_concurrency", None)
        self.__dict__.update(d)
        self._lock = threading.Lock()
        self._sema = threading.BoundedSemaphore(mc) if mc else None
        self._local = threading.local()
        self._clock = time.monotonic
        self._sleep = time.sleep
        self._next = self._last_raise = self._clock()
        self._last_cut = self._last_bind = -1e18

    def stats(self) -> dict:
        return {"rate": self.rate, "calls": self.calls, "throttled": self.throttled,
                "cuts": self.cuts, "waited_s": round(self.waited_s, 3)}

    def to_dict(self) -> dict:
        return {"kind": "aimd", "increase": self.increase, "additive": self.additive, "decrease": self.decrease,
                "min_rate": self.min_rate, "max_rate": self.max_rate}
