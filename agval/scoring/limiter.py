"""Quota-aware pacing: an adaptive AIMD rate limiter.

The live API meters a per-minute token quota and answers RESOURCE_EXHAUSTED when it is
spent. :class:`AdaptiveLimiter` paces calls so a long run sits just under the quota:

* **unlimited until told otherwise**: no pacing until the first RESOURCE_EXHAUSTED (or
  start at ``initial_rate``);
* **multiplicative decrease**: on RESOURCE_EXHAUSTED the rate becomes
  ``decrease x`` the rate at which calls were actually succeeding over the last second
  (what the quota let through), or half the sending rate when nothing succeeded. At most
  one cut per round trip: a rejection of a call sent *before* the last cut says nothing
  new;
* **cool down instead of collapsing**: when cuts in quick succession do not lower the
  fraction of calls rejected (a service that throttles regardless of the pace, e.g. every
  first attempt, or a transient overload), cutting further would only starve the run:
  the limiter restores the rate it had before that streak of cuts and holds it for
  ``cooldown_s`` seconds; the retry backoff of each throttled call is the cool-down;
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
imported here. ``slots``: an optional object with ``acquire()`` / ``release()`` around
every call (a cross-process concurrency slot, e.g. a Prefect global concurrency limit);
``max_concurrency`` bounds in-flight calls within one process.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable


class AdaptiveLimiter:
    def __init__(self, *, initial_rate: float | None = None, min_rate: float = 0.05,
                 max_rate: float | None = None, increase: float = 0.03, additive: float = 0.5,
                 decrease: float = 0.85, cooldown_s: float = 10.0, streak_s: float = 2.0,
                 max_concurrency: int | None = None, hook: Callable[[float], None] | None = None,
                 slots=None,
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
        self.slots = slots
        self.cooldown_s = cooldown_s
        self.streak_s = streak_s
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = clock()
        self._last_cut = -1e18
        self._last_raise = clock()
        self._last_bind = -1e18
        self._sent: deque[tuple[float, float]] = deque()  # (time, cost) over the last second
        self._ok: deque[tuple[float, float]] = deque()  # (time, cost) of successes over the last second
        # did the last cut help? outcomes of calls sent since the last cut / in the epoch before it
        self._epoch = [0, 0, 0, 0]  # done, rejected, ok, sent (calls sent since the last cut)
        self._epoch_t = clock()
        self._prev: tuple[float, float, float] | None = None  # the last epoch's (rejected share, send, ok rate)
        self._streak = 0
        self._streak_rate: float | None = None
        self._hold_until = -1e18
        self._last_throttle = -1e18
        self.min_samples = 12
        self._sema = threading.BoundedSemaphore(max_concurrency) if max_concurrency else None
        self._local = threading.local()
        # statistics
        self.calls = 0
        self.throttled = 0
        self.cuts = 0
        self.cooldowns = 0
        self.waited_s = 0.0

    # -- the calling side -------------------------------------------------------------
    def acquire(self, cost: float = 1.0) -> float:
        """Block until a call of ``cost`` may be sent; returns the send time."""
        if self._sema is not None:
            self._sema.acquire()
        if self.slots is not None:
            self.slots.acquire()
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
            self._epoch[3] += 1
            self._sent.append((t, cost))
            while self._sent and self._sent[0][0] < t - 1.0:
                self._sent.popleft()
        self._local.sent_at = t
        self._local.cost = cost
        return t

    def release(self, code: str | None, sent_at: float | None = None) -> None:
        """Report how the call ended (``None`` = OK, else a status name)."""
        if self.slots is not None:
            try:
                self.slots.release()
            except Exception:  # noqa: BLE001 - a slot lost with its lease is not our failure
                pass
        if self._sema is not None:
            try:
                self._sema.release()
            except ValueError:
                pass
        if sent_at is None:
            sent_at = getattr(self._local, "sent_at", self._clock())
        cost = getattr(self._local, "cost", 1.0)
        throttled = code == "RESOURCE_EXHAUSTED"
        with self._lock:
            now = self._clock()
            if sent_at >= self._last_cut:
                self._epoch[0] += 1
                self._epoch[1] += throttled
                self._epoch[2] += code is None
            if not throttled:
                if code is None:
                    self._ok.append((now, cost))
                    while self._ok and self._ok[0][0] < now - 1.0:
                        self._ok.popleft()
                return
            self.throttled += 1
            if now - self._last_throttle > self.streak_s:  # after a quiet spell: a new streak of cuts
                self._streak, self._streak_rate, self._prev = 0, self.rate, None
            self._last_throttle = now
            if sent_at < self._last_cut or now < self._hold_until:
                return  # sent before the last cut (old news), or cooling down
            done, rej, ok_n, sent_n = self._epoch
            if self._streak and done < self.min_samples:
                return  # too few outcomes since the last cut to judge it
            frac = rej / done if done else 1.0
            dur = max(1e-3, now - self._epoch_t)
            send_rate, ok_rate = sent_n / dur, ok_n / dur
            if self._streak >= 2 and self._prev is not None and self._pace_is_not_the_cause(frac, send_rate, ok_rate):
                # the last cut slowed us down, a large share is still throttled and the successes
                # fell with the pace: throttling does not answer to the pace (a quota would have
                # kept the successes flat): restore the rate and let the retry backoff cool down
                self.rate = self._streak_rate
                self._hold_until = now + self.cooldown_s
                self._streak, self._prev = 0, None
                self._new_epoch(now)
                self.cooldowns += 1
                return
            ok = self._window_rate(self._ok, now)
            sending = self._window_rate(self._sent, now)
            observed = ok if ok > 0 else 0.5 * sending
            base = observed if self.rate is None else min(self.rate, max(observed, self.min_rate))
            self.rate = max(self.min_rate, base * self.decrease)
            self._prev = (frac, send_rate, ok_rate)
            self._new_epoch(now)
            self._streak += 1
            self._last_cut = now
            self._last_raise = now
            self._next = max(self._next, now)
            self.cuts += 1

    def _pace_is_not_the_cause(self, frac: float, send_rate: float, ok_rate: float) -> bool:
        _, psend, pok = self._prev
        if psend <= 0 or pok <= 0:
            return False
        slowed = send_rate < 0.8 * psend  # the last cut really slowed the sending down...
        followed = ok_rate / pok <= 1.1 * send_rate / psend  # ...and the successes fell as much
        # a small rejected share is what pacing just under a quota looks like: never a reason
        if frac >= 0.35 and self._streak >= 4:
            return True  # four cuts (each to what succeeded) and still a third throttled: not a quota
        return frac >= 0.2 and slowed and followed

    def _new_epoch(self, now: float) -> None:
        self._epoch = [0, 0, 0, 0]
        self._epoch_t = now

    # -- internals --------------------------------------------------------------------
    def _window_rate(self, events, now: float) -> float:
        """Cost per second of ``events`` (time, cost) over the last second (0 if none)."""
        cutoff = now - 1.0
        window = [(t, c) for t, c in events if t >= cutoff]
        if not window:
            return 0.0
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
        d["_ok"] = deque()
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
        self._last_cut = self._last_bind = self._hold_until = self._last_throttle = -1e18
        self._epoch_t = self._clock()

    def stats(self) -> dict:
        return {"rate": self.rate, "calls": self.calls, "throttled": self.throttled,
                "cuts": self.cuts, "cooldowns": self.cooldowns, "waited_s": round(self.waited_s, 3)}

    def to_dict(self) -> dict:
        return {"kind": "aimd", "increase": self.increase, "additive": self.additive, "decrease": self.decrease,
                "min_rate": self.min_rate, "max_rate": self.max_rate, "cooldown_s": self.cooldown_s}
