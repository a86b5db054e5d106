"""Tokens-per-minute quota of the stand-in AlphaGenome service (SIMULATED).

Cost of a call = (sequence length / ``QUOTA_UNIT_BP``) x number of outputs, where the
outputs are the variant scorers of a ScoreVariant request or the requested output types
of a PredictSequence request. With ``QUOTA_UNIT_BP = 1,048,576``, scoring one variant
on a 1 Mb interval with one scorer costs 1 token; with 3 scorers, 3 tokens; a 16 kb
PredictSequence with 2 outputs costs 2/64 token. GetMetadata and Atlas calls are free.

A token bucket refills continuously at ``tokens_per_minute / 60`` per second and holds
at most ``burst_tokens`` (default: 10 seconds' worth, but never less than one 1 Mb x
20-scorer call). A call the bucket cannot pay for is answered RESOURCE_EXHAUSTED and
costs nothing.
"""

from __future__ import annotations

import threading
import time

QUOTA_UNIT_BP = 1_048_576
DEFAULT_BURST_SECONDS = 10.0


def call_cost(sequence_length: int, n_outputs: int) -> float:
    """Tokens one call costs (see the module docstring)."""
    return max(0, sequence_length) / QUOTA_UNIT_BP * max(1, n_outputs)


class TokenBucket:
    """A thread-safe token bucket driven by ``time.monotonic``."""

    def __init__(self, tokens_per_minute: float, burst_tokens: float | None = None,
                 clock=time.monotonic):
        if tokens_per_minute <= 0:
            raise ValueError("tokens_per_minute must be > 0")
        self.tokens_per_minute = float(tokens_per_minute)
        self.rate = self.tokens_per_minute / 60.0
        if burst_tokens is None:
            burst_tokens = max(self.rate * DEFAULT_BURST_SECONDS, 20.0)
        self.capacity = float(burst_tokens)
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = self.capacity
        self._t = clock()
        self.granted = 0.0
        self.granted_calls = 0
        self.rejected_calls = 0

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._t) * self.rate)
        self._t = now

    def try_take(self, cost: float) -> tuple[bool, float]:
        """Take ``cost`` tokens if available. Returns (granted, seconds until it would be).

        A cost larger than the whole bucket is granted when the bucket is full (the
        balance goes negative), so no single call is impossible.
        """
        with self._lock:
            self._refill()
            if self._tokens >= cost or (cost > self.capacity and self._tokens >= self.capacity):
                self._tokens -= cost
                self.granted += cost
                self.granted_calls += 1
                return True, 0.0
            self.rejected_calls += 1
            need = min(cost, self.capacity) - self._tokens
            return False, need / self.rate

    @property
    def available(self) -> float:
        with self._lock:
            self._refill()
            return self._tokens

    def stats(self) -> dict:
        with self._lock:
            return {"tokens_per_minute": self.tokens_per_minute, "capacity": self.capacity,
                    "granted_tokens": self.granted, "granted_calls": self.granted_calls,
                    "rejected_calls": self.rejected_calls}
