"""Quantile backgrounds of the stand-in AlphaGenome service (SIMULATED).

Like the real service (AlphaGenome FAQ), a quantile score ranks a raw score against the
raw scores of **common variants** (here: the world catalogue's variants with
``af > 0.01``) for the same scorer and track:

* signed scorers: ``q = 2 F(x) - 1`` in ``[-1, 1]``; unsigned scorers: ``q = F(x)``;
* ``F`` is the mid-rank empirical CDF (ties count half), so ``q`` is a non-decreasing
  function of the raw score within a track and a raw score equal to the background's
  median maps to 0 (signed);
* ``|q|`` is capped at ``0.99999``.

Backgrounds are computed lazily, once per (scorer, organism, model version), and cached
in memory; concurrent first requests wait for one computation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable

import numpy as np

QUANTILE_CAP = 0.99999


class Background:
    """Per-track sorted raw scores of the background variants."""

    def __init__(self, columns: list[np.ndarray], signed: bool, n_variants: int = 0):
        self.columns = [np.sort(np.asarray(c, dtype=np.float64)[~np.isnan(c)]) for c in columns]
        self.signed = signed
        self.n_variants = n_variants

    @classmethod
    def from_rows(cls, rows: np.ndarray, signed: bool, n_variants: int = 0) -> "Background":
        """``rows``: ``[n_background_observations, n_tracks]`` (NaN = no observation)."""
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2:
            raise ValueError(f"background rows must be 2-D, got shape {rows.shape}")
        return cls([rows[:, j] for j in range(rows.shape[1])], signed, n_variants)

    @property
    def n_tracks(self) -> int:
        return len(self.columns)

    def quantiles(self, raw: np.ndarray, columns=None) -> np.ndarray:
        """Quantile scores for ``raw`` ``[n_obs, n_tracks]`` (NaN stays NaN); with
        ``columns`` (track indices), ``raw`` holds only those tracks' columns."""
        raw = np.asarray(raw, dtype=np.float64)
        cols = range(len(self.columns)) if columns is None else [int(c) for c in columns]
        lo = np.zeros(raw.shape)
        hi = np.zeros(raw.shape)
        size = np.zeros(raw.shape[1])
        for i, j in enumerate(cols):
            bg = self.columns[j]
            if bg.size:
                lo[:, i] = bg.searchsorted(raw[:, i], side="left")
                hi[:, i] = bg.searchsorted(raw[:, i], side="right")
                size[i] = bg.size
        with np.errstate(invalid="ignore", divide="ignore"):
            f = (lo + hi) / (2.0 * size)
        q = 2.0 * f - 1.0 if self.signed else f
        np.clip(q, -QUANTILE_CAP if self.signed else 0.0, QUANTILE_CAP, out=q)
        q[np.isnan(raw) | (size == 0)[None, :]] = np.nan
        return q


class BackgroundCache:
    """Lazily computed :class:`Background` objects, one per key; thread-safe.

    ``compute(key) -> Background`` runs at most once per key (other callers wait).
    """

    def __init__(self, compute: Callable[[Hashable], Background]):
        self._compute = compute
        self._lock = threading.Lock()
        self._locks: dict[Hashable, threading.Lock] = {}
        self._cache: dict[Hashable, Background] = {}
        self.seconds: dict[Hashable, float] = {}

    def get(self, key: Hashable) -> Background:
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        with self._lock:
            lk = self._locks.setdefault(key, threading.Lock())
        with lk:
            hit = self._cache.get(key)
            if hit is None:
                import time

                t0 = time.perf_counter()
                hit = self._compute(key)
                self.seconds[key] = time.perf_counter() - t0
                self._cache[key] = hit
        return hit

    def keys(self) -> list:
        return list(self._cache)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
            self.seconds.clear()
