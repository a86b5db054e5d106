"""Seeded, vectorised resampling: cluster bootstrap, paired bootstrap, permutation tests.

Why clusters: rows that share a model input, a peak, a locus or a gene are not
independent (pitfall P17, P22). Resampling **clusters** (all rows of a cluster enter or
leave together) gives honest intervals; resampling rows gives intervals that are too
narrow when rows >> clusters.

How it is vectorised
--------------------
A bootstrap replicate is represented by a **weight** per row: the number of times its
cluster was drawn. A statistic evaluated with integer weights ``w`` equals the statistic
evaluated on the data with every row repeated ``w`` times (ranks and ties included), so
``B`` replicates are one ``(B, n)`` weight matrix and one array computation, no Python
loop over replicates. Large ``B x n`` problems are processed in blocks of replicates
(``_CHUNK_ELEMENTS`` elements at a time) to bound memory; blocks are a fixed function
of ``n``, so results are reproducible for a seed.

Statistic convention (the "paired statistic")
---------------------------------------------
``statistic(x, y, w) -> value`` where ``x`` is the prediction (shape ``(n,)`` or
``(B, n)``), ``y`` the measurement (``(n,)`` or ``(B, n)``) and ``w`` non-negative
weights (``None``, ``(n,)`` or ``(B, n)``). It returns a float when every input is 1-D,
else shape ``(B,)``. Built in (:data:`STATISTICS`, pass the name):

=========================  ======================================================  ==========
name                       meaning                                                 null value
=========================  ======================================================  ==========
``pearson``                Pearson r(x, y)                                         0
``spearman``               Spearman rho(x, y), average ranks for ties              0
``auroc``                  AUROC of score ``x`` for binary labels ``y`` (1 = pos)  0.5
``auroc_median_split``     AUROC of ``x`` for labels ``y > median(y)`` (strict);   0.5
                           the median is recomputed in every replicate
``mean_difference``        mean(x | y = 1) - mean(x | y = 0), ``y`` binary group   0
``paired_mean_difference`` mean(x - y)                                             0
=========================  ======================================================  ==========

A custom callable following the same convention may be passed (null value 0 unless
wrapped in :class:`Statistic`).

Randomness: every function takes ``seed`` (an ``int`` for ``numpy.random.default_rng``
or a ``numpy.random.Generator``); it is required, and echoed in the result when an int.

Missing values: rows where ``x`` or ``y`` is not finite are dropped pairwise before
resampling; ``n`` in the result counts the rows used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import polars as pl

from agval.stats.correlation import as_float_array

__all__ = [
    "Statistic",
    "STATISTICS",
    "resolve_statistic",
    "weighted_ranks",
    "weighted_pearson",
    "weighted_spearman",
    "weighted_auroc",
    "weighted_auroc_median_split",
    "weighted_mean_difference",
    "weighted_paired_mean_difference",
    "cluster_codes",
    "cluster_bootstrap_weights",
    "bootstrap_ci",
    "paired_bootstrap_difference",
    "cluster_permutation_test",
    "within_group_permutation_indices",
    "within_group_permute",
    "within_group_permutation_test",
    "permutation_p",
    "connected_loci",
    "UnitPermuter",
    "locus_bootstrap_weights",
]

#: Upper bound on the elements of one (replicates x rows) block.
_CHUNK_ELEMENTS = 4_000_000

SeedLike = int | np.random.Generator


def _rng(seed: SeedLike) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        raise ValueError("an explicit seed is required")
    return np.random.default_rng(int(seed))


def _seed_value(seed: SeedLike) -> int | None:
    return None if isinstance(seed, np.random.Generator) else int(seed)


def _block_sizes(total: int, n: int) -> Iterator[int]:
    per = max(1, _CHUNK_ELEMENTS // max(1, n))
    done = 0
    while done < total:
        b = min(per, total - done)
        yield b
        done += b


# --------------------------------------------------------------------------------------
# weighted statistics
# --------------------------------------------------------------------------------------

def _prep(*arrays: np.ndarray | None) -> tuple[list[np.ndarray | None], bool]:
    """Make every array 2-D ``(rows, n)``; report whether the output is a scalar."""
    out: list[np.ndarray | None] = []
    scalar = True
    for a in arrays:
        if a is None:
            out.append(None)
            continue
        a = np.asarray(a, dtype=np.float64)
        if a.ndim == 2:
            scalar = False
        elif a.ndim != 1:
            raise ValueError(f"expected 1-D or 2-D arrays, got shape {a.shape}")
        out.append(np.atleast_2d(a))
    return out, scalar


def _finish(v: np.ndarray, scalar: bool) -> float | np.ndarray:
    return float(v[0]) if scalar else v


def _ranks_2d(v: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """Average ranks of each row of ``v`` ((1|B, n)) in the multiset weighted by ``w``."""
    n = v.shape[1]
    idx = np.arange(n)
    if w is None:
        w = np.ones((1, n))
    if v.shape[0] == 1:
        order = np.argsort(v[0], kind="stable")
        vs = v[0, order]
        ws = w[:, order]
        new = np.empty(n, dtype=bool)
        new[:1] = True
        new[1:] = vs[1:] != vs[:-1]
        is_end = np.empty(n, dtype=bool)
        is_end[-1:] = True
        is_end[:-1] = new[1:]
        start = np.maximum.accumulate(np.where(new, idx, 0))
        end = np.minimum.accumulate(np.where(is_end, idx, n - 1)[::-1])[::-1]
        csum = np.cumsum(ws, axis=1)
        less = csum[:, start] - ws[:, start]
        eq = csum[:, end] - less
        rs = less + (eq + 1.0) / 2.0
        ranks = np.empty_like(rs)
        ranks[:, order] = rs
        return ranks
    order = np.argsort(v, axis=1, kind="stable")
    vs = np.take_along_axis(v, order, axis=1)
    ws = np.take_along_axis(np.broadcast_to(w, v.shape), order, axis=1)
    new = np.empty(vs.shape, dtype=bool)
    new[:, :1] = True
    new[:, 1:] = vs[:, 1:] != vs[:, :-1]
    is_end = np.empty(vs.shape, dtype=bool)
    is_end[:, -1:] = True
    is_end[:, :-1] = new[:, 1:]
    start = np.maximum.accumulate(np.where(new, idx, 0), axis=1)
    end = np.minimum.accumulate(np.where(is_end, idx, n - 1)[:, ::-1], axis=1)[:, ::-1]
    csum = np.cumsum(ws, axis=1)
    less = np.take_along_axis(csum - ws, start, axis=1)
    eq = np.take_along_axis(csum, end, axis=1) - less
    rs = less + (eq + 1.0) / 2.0
    ranks = np.empty_like(rs)
    np.put_along_axis(ranks, order, rs, axis=1)
    return ranks


def weighted_ranks(v: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Average ranks (ties share the mean rank) of ``v`` in the multiset where row ``i``
    appears ``w[i]`` times. ``v`` is ``(n,)`` or ``(B, n)`` (ranked along the last axis),
    ``w`` ``None``, ``(n,)`` or ``(B, n)``. With ``w=None`` this is
    ``scipy.stats.rankdata(v, axis=-1)``. Output ``(n,)`` if both inputs are 1-D, else
    ``(B, n)``.
    """
    (v2, w2), scalar = _prep(v, w)
    r = _ranks_2d(v2, w2)
    return r[0] if scalar else r


def _masked_constant(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """True per row when ``a`` is constant over the rows with positive weight."""
    pos = w > 0
    hi = np.where(pos, a, -np.inf).max(axis=1)
    lo = np.where(pos, a, np.inf).min(axis=1)
    return ~(hi > lo)


def _wpearson_2d(x: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    if w is None:
        w = np.ones((1, x.shape[1]))
    sw = w.sum(axis=1)
    mx = (w * x).sum(axis=1) / sw
    my = (w * y).sum(axis=1) / sw
    dx = x - mx[:, None]
    dy = y - my[:, None]
    wdx = w * dx
    sxy = (wdx * dy).sum(axis=1)
    sxx = (wdx * dx).sum(axis=1)
    syy = (w * dy * dy).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = sxy / np.sqrt(sxx * syy)
    const = _masked_constant(np.broadcast_to(x, np.broadcast_shapes(x.shape, w.shape)), w) | \
        _masked_constant(np.broadcast_to(y, np.broadcast_shapes(y.shape, w.shape)), w)
    r = np.where(const | (sw <= 0), np.nan, np.clip(r, -1.0, 1.0))
    return r


def weighted_pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float | np.ndarray:
    """Pearson r of ``x`` and ``y`` with frequency weights ``w`` (see module doc for shapes).
    NaN for a replicate where ``x`` or ``y`` is constant."""
    (x2, y2, w2), scalar = _prep(x, y, w)
    return _finish(_wpearson_2d(x2, y2, w2), scalar)


def weighted_spearman(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float | np.ndarray:
    """Spearman rho (Pearson of weighted average ranks); equals ``scipy.stats.spearmanr``
    on the data with rows repeated ``w`` times."""
    (x2, y2, w2), scalar = _prep(x, y, w)
    rx = _ranks_2d(x2, w2)
    ry = _ranks_2d(y2, w2)
    return _finish(_wpearson_2d(rx, ry, w2), scalar)


def _wauroc_2d(score: np.ndarray, labels: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    if w is None:
        w = np.ones((1, score.shape[1]))
    ranks = _ranks_2d(score, w)
    lab = labels > 0.5
    wpos = np.where(lab, w, 0.0)
    n_pos = wpos.sum(axis=1)
    n_neg = np.broadcast_to(w, np.broadcast_shapes(w.shape, lab.shape)).sum(axis=1) - n_pos
    r_pos = (wpos * ranks).sum(axis=1)
    u = r_pos - n_pos * (n_pos + 1.0) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = u / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def weighted_auroc(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float | np.ndarray:
    """AUROC of score ``x`` for binary labels ``y`` (``y > 0.5`` is positive), via the
    Mann-Whitney rank formula ``(R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg)`` with
    average ranks, so ties count 1/2 (= ``sklearn.metrics.roc_auc_score``). NaN when a
    class is empty."""
    (x2, y2, w2), scalar = _prep(x, y, w)
    return _finish(_wauroc_2d(x2, y2, w2), scalar)


def _wmedian_2d(y: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """Median of each row of ``y`` in the multiset weighted by integer ``w`` (np.median)."""
    if w is None:
        return np.median(y, axis=1)
    B = max(y.shape[0], w.shape[0])
    if y.shape[0] == 1:
        order = np.argsort(y[0], kind="stable")
        ys = np.broadcast_to(y[0, order], (B, y.shape[1]))
        ws = np.broadcast_to(w[:, order], (B, y.shape[1]))
    else:
        order = np.argsort(y, axis=1, kind="stable")
        ys = np.take_along_axis(y, order, axis=1)
        ws = np.take_along_axis(np.broadcast_to(w, y.shape), order, axis=1)
    c = np.cumsum(ws, axis=1)
    total = c[:, -1]
    lo = np.floor((total + 1.0) / 2.0)
    hi = np.floor(total / 2.0) + 1.0
    i_lo = np.minimum((c < lo[:, None]).sum(axis=1), y.shape[1] - 1)
    i_hi = np.minimum((c < hi[:, None]).sum(axis=1), y.shape[1] - 1)
    rows = np.arange(B)
    med = (ys[rows, i_lo] + ys[rows, i_hi]) / 2.0
    return np.where(total > 0, med, np.nan)


def weighted_auroc_median_split(x: np.ndarray, y: np.ndarray,
                                w: np.ndarray | None = None) -> float | np.ndarray:
    """AUROC of prediction ``x`` for the labels ``y > median(y)`` (strictly greater is
    positive; the median is that of the (re)sampled ``y``, as ``np.median``)."""
    (x2, y2, w2), scalar = _prep(x, y, w)
    thr = _wmedian_2d(y2, w2)
    labels = (y2 > thr[:, None]).astype(np.float64)
    return _finish(_wauroc_2d(x2, labels, w2), scalar)


def weighted_mean_difference(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float | np.ndarray:
    """``mean(x | y = 1) - mean(x | y = 0)`` (``y > 0.5`` is group 1). NaN when a group is
    empty."""
    (x2, y2, w2), scalar = _prep(x, y, w)
    if w2 is None:
        w2 = np.ones((1, x2.shape[1]))
    g = y2 > 0.5
    w1 = np.where(g, w2, 0.0)
    w0 = np.where(g, 0.0, w2)
    s1, s0 = w1.sum(axis=1), w0.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (w1 * x2).sum(axis=1) / s1 - (w0 * x2).sum(axis=1) / s0
    return _finish(np.where((s1 > 0) & (s0 > 0), d, np.nan), scalar)


def weighted_paired_mean_difference(x: np.ndarray, y: np.ndarray,
                                    w: np.ndarray | None = None) -> float | np.ndarray:
    """``mean(x - y)`` with weights."""
    (x2, y2, w2), scalar = _prep(x, y, w)
    if w2 is None:
        w2 = np.ones((1, x2.shape[1]))
    sw = w2.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (w2 * (x2 - y2)).sum(axis=1) / sw
    return _finish(np.where(sw > 0, d, np.nan), scalar)


@dataclass(frozen=True)
class Statistic:
    """A paired statistic ``fn(x, y, w)`` with its value under the null.

    ``two_sided``: how a two-sided permutation P is formed (:func:`permutation_p`):
    ``"doubled"`` (twice the smaller tail; valid whatever the null's shape) or
    ``"centred"`` (distance from the centre of the permutation distribution, for a
    near-symmetric null). ``ties``: ``"count"`` (a null value equal to the observed one
    counts as at least as extreme: valid, conservative for a discrete statistic) or
    ``"random"`` (the observed value's rank among equal values drawn uniformly: an
    exact-size test for a discrete statistic such as sign agreement)."""
    name: str
    fn: Callable[..., Any]
    null_value: float = 0.0
    two_sided: str = "doubled"
    ties: str = "count"

    def __call__(self, x, y, w=None):
        return self.fn(x, y, w)


STATISTICS: dict[str, Statistic] = {
    "pearson": Statistic("pearson", weighted_pearson, 0.0),
    "spearman": Statistic("spearman", weighted_spearman, 0.0),
    "auroc": Statistic("auroc", weighted_auroc, 0.5),
    "auroc_median_split": Statistic("auroc_median_split", weighted_auroc_median_split, 0.5),
    "mean_difference": Statistic("mean_difference", weighted_mean_difference, 0.0),
    "paired_mean_difference": Statistic("paired_mean_difference", weighted_paired_mean_difference, 0.0),
}


def resolve_statistic(statistic: str | Statistic | Callable[..., Any]) -> Statistic:
    """A :class:`Statistic` from a name in :data:`STATISTICS`, a Statistic, or a callable."""
    if isinstance(statistic, Statistic):
        return statistic
    if isinstance(statistic, str):
        try:
            return STATISTICS[statistic]
        except KeyError:
            raise ValueError(f"unknown statistic {statistic!r}; known: {sorted(STATISTICS)}") from None
    if callable(statistic):
        return Statistic(getattr(statistic, "__name__", "custom"), statistic, 0.0)
    raise TypeError(f"not a statistic: {statistic!r}")


# --------------------------------------------------------------------------------------
# clusters and draws
# --------------------------------------------------------------------------------------

def cluster_codes(clusters: Any, n: int) -> tuple[np.ndarray, int]:
    """Integer codes ``0..C-1`` (in sorted order of the ids) and ``C`` for cluster ids.

    ``clusters`` is ``None`` (every row its own cluster) or a 1-D array-like of hashable,
    sortable ids (strings, ints, a polars Series) of length ``n``. Missing ids raise
    ``ValueError``.
    """
    if clusters is None:
        return np.arange(n), n
    if isinstance(clusters, pl.Series):
        if clusters.null_count():
            raise ValueError("cluster ids contain nulls")
        clusters = clusters.to_numpy()
    arr = np.asarray(clusters)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"clusters must be 1-D of length {n}, got shape {arr.shape}")
    if arr.dtype == object and any(v is None for v in arr):
        raise ValueError("cluster ids contain None")
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise ValueError("cluster ids contain NaN")
    uniq, codes = np.unique(arr, return_inverse=True)
    return codes.reshape(-1), int(uniq.size)


def cluster_bootstrap_weights(codes: np.ndarray, n_clusters: int, n_boot: int,
                              rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, n)`` row weights: each replicate draws ``n_clusters`` clusters with
    replacement; a row's weight is how often its cluster was drawn."""
    draws = rng.integers(0, n_clusters, size=(n_boot, n_clusters))
    flat = (np.arange(n_boot)[:, None] * n_clusters + draws).ravel()
    counts = np.bincount(flat, minlength=n_boot * n_clusters).reshape(n_boot, n_clusters)
    return counts[:, codes].astype(np.float64)


def _complete(*arrays: Any) -> tuple[list[np.ndarray], np.ndarray]:
    arrs = [as_float_array(a) for a in arrays]
    n = arrs[0].size
    for a in arrs[1:]:
        if a.size != n:
            raise ValueError("inputs have different lengths")
    keep = np.ones(n, dtype=bool)
    for a in arrs:
        keep &= np.isfinite(a)
    return [a[keep] for a in arrs], keep


def _subset_clusters(clusters: Any, keep: np.ndarray) -> Any:
    if clusters is None:
        return None
    if isinstance(clusters, pl.Series):
        return clusters.filter(pl.Series(keep))
    return np.asarray(clusters)[keep]


def _percentile_ci(values: np.ndarray, confidence: float) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return (math.nan, math.nan)
    a = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(v, [a, 1.0 - a])
    return float(lo), float(hi)


# --------------------------------------------------------------------------------------
# bootstrap
# --------------------------------------------------------------------------------------

def bootstrap_ci(x: Any, y: Any, statistic: str | Statistic | Callable[..., Any] = "spearman", *,
                 clusters: Any = None, n_boot: int = 2000, confidence: float = 0.95,
                 seed: SeedLike, return_replicates: bool = False) -> dict[str, Any]:
    """Percentile bootstrap CI of a paired statistic, resampling **clusters**.

    ``x`` (prediction) and ``y`` (measurement) are 1-D, length ``n_rows``; ``clusters``
    (optional, length ``n_rows``) are the resampling units (peak, locus, distinct model
    input); ``None`` resamples rows. Non-finite pairs are dropped first.

    Returns ``{"statistic", "estimate", "ci_low", "ci_high", "confidence", "se", "n",
    "n_clusters", "n_boot", "n_valid", "unit", "method", "seed"}`` where ``estimate`` is
    the statistic on the data, ``se`` the standard deviation of the replicates,
    ``n_valid`` the replicates with a finite value (a replicate of constant data gives
    NaN), ``unit`` is ``"cluster"`` or ``"row"``, ``method`` is ``"percentile"``.
    With ``return_replicates=True`` the key ``"replicates"`` holds the ``(n_boot,)`` array.
    """
    stat = resolve_statistic(statistic)
    (xk, yk), keep = _complete(x, y)
    codes, n_clusters = cluster_codes(_subset_clusters(clusters, keep), xk.size)
    rng = _rng(seed)
    estimate = float(stat(xk, yk, None)) if xk.size else math.nan
    reps = np.full(n_boot, np.nan)
    if xk.size and n_boot > 0:
        done = 0
        for b in _block_sizes(n_boot, xk.size):
            w = cluster_bootstrap_weights(codes, n_clusters, b, rng)
            reps[done:done + b] = stat(xk, yk, w)
            done += b
    lo, hi = _percentile_ci(reps, confidence)
    finite = reps[np.isfinite(reps)]
    out: dict[str, Any] = {
        "statistic": stat.name, "estimate": estimate, "ci_low": lo, "ci_high": hi,
        "confidence": confidence, "se": float(finite.std(ddof=1)) if finite.size > 1 else math.nan,
        "n": int(xk.size), "n_clusters": n_clusters, "n_boot": n_boot, "n_valid": int(finite.size),
        "unit": "row" if clusters is None else "cluster", "method": "percentile",
        "seed": _seed_value(seed),
    }
    if return_replicates:
        out["replicates"] = reps
    return out


def paired_bootstrap_difference(x1: Any, x2: Any, y: Any,
                                statistic: str | Statistic | Callable[..., Any] = "spearman", *,
                                clusters: Any = None, n_boot: int = 2000, confidence: float = 0.95,
                                seed: SeedLike) -> dict[str, Any]:
    """Bootstrap of ``stat(x1, y) - stat(x2, y)``: two predictors scored on the **same**
    rows, resampled together (same cluster draws for both), so their correlation is kept.

    ``x1``, ``x2``, ``y`` and ``clusters`` are 1-D of one length; rows where any of
    ``x1, x2, y`` is non-finite are dropped. Returns ``{"statistic", "estimate_1",
    "estimate_2", "difference", "ci_low", "ci_high", "confidence", "p_two_sided", "n",
    "n_clusters", "n_boot", "n_valid", "unit", "seed"}``; ``p_two_sided`` is
    ``min(1, 2 * min(1 + #{d* <= 0}, 1 + #{d* >= 0}) / (n_valid + 1))`` over the replicate
    differences ``d*``.
    """
    stat = resolve_statistic(statistic)
    (a, b_, yk), keep = _complete(x1, x2, y)
    codes, n_clusters = cluster_codes(_subset_clusters(clusters, keep), yk.size)
    rng = _rng(seed)
    e1 = float(stat(a, yk, None)) if yk.size else math.nan
    e2 = float(stat(b_, yk, None)) if yk.size else math.nan
    diffs = np.full(n_boot, np.nan)
    if yk.size and n_boot > 0:
        done = 0
        for b in _block_sizes(n_boot, yk.size):
            w = cluster_bootstrap_weights(codes, n_clusters, b, rng)
            diffs[done:done + b] = np.asarray(stat(a, yk, w)) - np.asarray(stat(b_, yk, w))
            done += b
    lo, hi = _percentile_ci(diffs, confidence)
    d = diffs[np.isfinite(diffs)]
    if d.size:
        p = min(1.0, 2.0 * min(1 + int((d <= 0).sum()), 1 + int((d >= 0).sum())) / (d.size + 1))
    else:
        p = math.nan
    return {"statistic": stat.name, "estimate_1": e1, "estimate_2": e2, "difference": e1 - e2,
            "ci_low": lo, "ci_high": hi, "confidence": confidence, "p_two_sided": p,
            "n": int(yk.size), "n_clusters": n_clusters, "n_boot": n_boot, "n_valid": int(d.size),
            "unit": "row" if clusters is None else "cluster", "seed": _seed_value(seed)}


# --------------------------------------------------------------------------------------
# permutation
# --------------------------------------------------------------------------------------

def permutation_p(observed: float, null: np.ndarray, *, alternative: str = "greater",
                  null_value: float = 0.0, two_sided: str = "doubled",
                  tie_rng: np.random.Generator | None = None) -> float:
    """``p = (1 + #{null at least as extreme as observed}) / (B + 1)`` over the finite
    null values (``B`` of them).

    ``alternative``: ``"greater"`` (null >= observed), ``"less"`` (null <= observed) or
    ``"two-sided"``. Two-sided with ``two_sided="doubled"`` (default): twice the smaller
    one-sided p, capped at 1. Doubling the smaller tail
    stays valid when the null is not centred on ``null_value`` (the Q4 score-permutation
    null keeps the scores' mean bias; a cluster-between null keeps within-cluster
    association), where ``|null - null_value| >= |observed - null_value|`` would call an
    extreme lower-tail result unremarkable. ``null_value`` is kept for callers' symmetry.
    With ``two_sided="centred"``: ``(1 + #{|null - c| >= |observed - c|}) / (B + 1)`` where
    ``c`` is the mean of the null values and the observed one. Under the null the B + 1
    values are exchangeable and ``c`` is a symmetric function of them, so this P is
    exactly valid.

    ``tie_rng``: when given, null values *equal* to the observed one (within the
    tolerance; ``E`` of them) count ``K ~ Uniform{0, ..., E}`` instead of ``E``: the
    observed value's rank among the ``B + 1`` exchangeable values is then uniform, so
    ``P(p <= alpha) = alpha`` exactly when ``alpha (B + 1)`` is an integer. Without it a
    discrete statistic is conservative: the hQTL sign-agreement test (about 190 rows,
    B = 199) rejected 0.037-0.041 of 3 x 1,000 null studies at 0.05 with doubled tails,
    0.035-0.039 centred, and 0.046-0.051 centred with random ties. Deterministic for a
    seeded ``tie_rng``.
    Comparisons allow a relative tolerance of 1e-10 so that a permutation reproducing the
    observed value counts as "as extreme" despite rounding.
    """
    null = np.asarray(null, dtype=np.float64)
    null = null[np.isfinite(null)]
    if not np.isfinite(observed) or null.size == 0:
        return math.nan
    if two_sided not in ("doubled", "centred"):
        raise ValueError(f"two_sided must be 'doubled' or 'centred', got {two_sided!r}")
    if alternative == "greater":
        t, t_obs = null, observed
    elif alternative == "less":
        t, t_obs = -null, -observed
    elif alternative == "two-sided" and two_sided == "centred":
        c = float((null.sum() + observed) / (null.size + 1.0))
        t, t_obs = np.abs(null - c), abs(observed - c)
    elif alternative == "two-sided":
        p_greater = permutation_p(observed, null, alternative="greater", tie_rng=tie_rng)
        p_less = permutation_p(observed, null, alternative="less", tie_rng=tie_rng)
        return min(1.0, 2.0 * min(p_greater, p_less))
    else:
        raise ValueError(f"alternative must be 'greater', 'less' or 'two-sided', got {alternative!r}")
    tol = 1e-10 * max(1.0, abs(observed), abs(t_obs))
    above = int((t > t_obs + tol).sum())
    equal = int((np.abs(t - t_obs) <= tol).sum())
    count = above + (int(tie_rng.integers(0, equal + 1)) if tie_rng is not None else equal)
    return (1.0 + count) / (null.size + 1.0)



def _permutation_result(stat: "Statistic", estimate: float, null: np.ndarray, *, alternative: str, n: int,
                        seed: SeedLike, return_null: bool, rng: np.random.Generator,
                        **extra: Any) -> dict[str, Any]:
    """The result dict every permutation test returns (``extra`` adds design-specific keys).
    ``rng``: the test's generator after its permutations (breaks ties when ``stat.ties``
    is ``"random"``)."""
    fin = null[np.isfinite(null)]
    out: dict[str, Any] = {
        "statistic": stat.name, "estimate": estimate,
        "p": permutation_p(estimate, null, alternative=alternative, null_value=stat.null_value,
                           two_sided=stat.two_sided, tie_rng=rng if stat.ties == "random" else None),
        "alternative": alternative, "n_perm": int(null.size), "n_valid": int(fin.size), "n": int(n),
        **extra,
        "null_mean": float(fin.mean()) if fin.size else math.nan,
        "null_sd": float(fin.std(ddof=1)) if fin.size > 1 else math.nan,
        "seed": _seed_value(seed),
    }
    if return_null:
        out["null"] = null
    return out

def cluster_permutation_test(x: Any, y: Any, statistic: str | Statistic | Callable[..., Any] = "spearman", *,
                             clusters: Any = None, n_perm: int = 1000, seed: SeedLike,
                             alternative: str = "two-sided",
                             return_null: bool = False) -> dict[str, Any]:
    """Permutation test of a paired statistic that permutes the predictions ``x`` across
    **clusters** (whole clusters move together; ``y`` stays in place).

    ``x``, ``y``, ``clusters``: 1-D, length ``n_rows``; non-finite pairs dropped. Modes:

    * ``"row"`` (``clusters=None``): ordinary permutation of ``x`` across rows.
    * ``"cluster_values"``: ``x`` is constant within each cluster (e.g. one model input per
      cluster, MPRA pitfall P17); the cluster values are permuted among clusters. Exact.
    * ``"cluster_between"``: ``x`` varies within clusters; the cluster means of ``x`` are
      permuted among clusters and each row keeps its deviation from its cluster mean
      (``x*_i = mean_x[pi(c_i)] + (x_i - mean_x[c_i])``). This tests the between-cluster
      association; any within-cluster association is present in both the observed and the
      null values.

    Returns ``{"statistic", "estimate", "p", "alternative", "n_perm", "n_valid", "n",
    "n_clusters", "mode", "null_mean", "null_sd", "seed"}`` (+ ``"null"`` with
    ``return_null=True``). ``p`` follows :func:`permutation_p`.
    """
    stat = resolve_statistic(statistic)
    (xk, yk), keep = _complete(x, y)
    n = xk.size
    codes, n_clusters = cluster_codes(_subset_clusters(clusters, keep), n)
    rng = _rng(seed)
    estimate = float(stat(xk, yk, None)) if n else math.nan
    counts = np.bincount(codes, minlength=n_clusters).astype(np.float64)
    cmean = np.bincount(codes, weights=xk, minlength=n_clusters) / np.maximum(counts, 1)
    if clusters is None:
        mode = "row"
    else:
        cmin = np.full(n_clusters, np.inf)
        cmax = np.full(n_clusters, -np.inf)
        np.minimum.at(cmin, codes, xk)
        np.maximum.at(cmax, codes, xk)
        mode = "cluster_values" if np.all(cmin == cmax) else "cluster_between"
    resid = xk - cmean[codes] if mode == "cluster_between" else None
    null = np.full(n_perm, np.nan)
    if n and n_perm > 0:
        done = 0
        for b in _block_sizes(n_perm, n):
            perm = np.argsort(rng.random((b, n_clusters)), axis=1)
            if mode == "row":
                xp = xk[perm]
            elif mode == "cluster_values":
                xp = cmean[perm][:, codes]
            else:
                xp = cmean[perm][:, codes] + resid
            null[done:done + b] = stat(xp, yk, None)
            done += b
    return _permutation_result(stat, estimate, null, alternative=alternative, n=n, seed=seed,
                               return_null=return_null, rng=rng, n_clusters=n_clusters, mode=mode)


def _sorted_groups(groups: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(order, codes_sorted)``: a stable order putting each group's rows together."""
    codes, _ = cluster_codes(groups, n)
    order = np.argsort(codes, kind="stable")
    return order, codes[order]


def _within_group_sorted_perm(codes_sorted: np.ndarray, b: int, rng: np.random.Generator) -> np.ndarray:
    """``(b, n)`` permutations of sorted positions that only move rows within their group.

    ``codes_sorted``: non-decreasing integer group codes (each group one contiguous block).
    The argsort of keys ``group_code * 2^40 + U`` (``U`` uniform on 40-bit integers; integer
    keys sort about twice as fast as float keys) keeps every block in place and shuffles
    inside it. Ties need two equal 40-bit draws in one group (probability ~ m^2 / 2^41 for
    a group of size m) and are broken by position, a negligible bias. More than 2^23 groups falls back to float keys
    ``group_code + U(0, 1)``.
    """
    n = codes_sorted.size
    if n and int(codes_sorted[-1]) < (1 << 23):
        keys = rng.integers(0, 1 << 40, size=(b, n), dtype=np.uint64)
        keys |= codes_sorted.astype(np.uint64)[None, :] << np.uint64(40)
    else:
        keys = codes_sorted[None, :] + rng.random((b, n))
    # stable sort (timsort) exploits the already ordered blocks: ~2x faster than quicksort
    return np.argsort(keys, axis=1, kind="stable")


def within_group_permutation_indices(groups: Any, *, n_perm: int, seed: SeedLike) -> np.ndarray:
    """``(n_perm, n)`` int index ``idx``: ``values[idx[b]]`` is permutation ``b`` of
    ``values`` with every row receiving the value of a row of the **same group**.

    ``groups``: 1-D group ids of length ``n`` (e.g. ``gene_id + tissue``). All permutations
    come from one vectorised argsort of random keys (blocks of replicates for large
    problems). Memory: ``8 * n_perm * n`` bytes for the result.
    """
    if isinstance(groups, pl.Series):
        n = groups.len()
    else:
        n = len(groups)
    order, cs = _sorted_groups(groups, n)
    rng = _rng(seed)
    out = np.empty((n_perm, n), dtype=np.int64)
    done = 0
    for b in _block_sizes(n_perm, n):
        p = _within_group_sorted_perm(cs, b, rng)
        out[done:done + b][:, order] = order[p]
        done += b
    return out


def within_group_permute(values: Any, groups: Any, *, n_perm: int, seed: SeedLike) -> np.ndarray:
    """``(n_perm, n)`` array of ``values`` permuted within ``groups`` (rows in input order)."""
    v = as_float_array(values)
    idx = within_group_permutation_indices(groups, n_perm=n_perm, seed=seed)
    return v[idx]


def within_group_permutation_test(x: Any, y: Any, groups: Any,
                                  statistic: str | Statistic | Callable[..., Any] = "spearman", *,
                                  n_perm: int = 1000, seed: SeedLike, alternative: str = "greater",
                                  return_null: bool = False) -> dict[str, Any]:
    """Permutation test where ``x`` is permuted **within groups** (``y`` fixed).

    ``x``, ``y``, ``groups``: 1-D of length ``n_rows``; non-finite pairs dropped (the
    permutation is among a group's remaining rows). Returns ``{"statistic", "estimate",
    "p", "alternative", "n_perm", "n_valid", "n", "n_groups", "null_mean", "null_sd",
    "seed"}`` (+ ``"null"``). ``p = (1 + #{null >= observed}) / (B + 1)`` for
    ``"greater"`` (see :func:`permutation_p`).
    """
    stat = resolve_statistic(statistic)
    (xk, yk), keep = _complete(x, y)
    n = xk.size
    order, cs = _sorted_groups(_subset_clusters(groups, keep), n)
    xs, ys = xk[order], yk[order]
    rng = _rng(seed)
    estimate = float(stat(xs, ys, None)) if n else math.nan
    null = np.full(n_perm, np.nan)
    if n and n_perm > 0:
        done = 0
        for b in _block_sizes(n_perm, n):
            p = _within_group_sorted_perm(cs, b, rng)
            null[done:done + b] = stat(xs[p], ys, None)
            done += b
    return _permutation_result(stat, estimate, null, alternative=alternative, n=n, seed=seed,
                               return_null=return_null, rng=rng, n_groups=int(np.unique(cs).size) if n else 0)


# --------------------------------------------------------------------------------------
# shared units: loci and unit-level permutation (pitfall P31)
# --------------------------------------------------------------------------------------

def connected_loci(genes: Any, variants: Any) -> np.ndarray:
    """Locus code per row: connected components of the bipartite graph gene -- variant.

    ``genes`` and ``variants``: 1-D ids of one length ``n`` (one row per (variant, gene,
    ...) occurrence; repeated pairs are fine). Two genes are in one locus when they share a
    variant, directly or through a chain of genes. Returns int codes ``0..K-1`` of shape
    ``(n,)``, numbered in order of each locus's first gene in sorted gene order (so the
    numbering does not depend on row order).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    g_codes, n_g = cluster_codes(genes, len(genes))
    v_codes, n_v = cluster_codes(variants, len(variants))
    if g_codes.size == 0:
        return np.zeros(0, dtype=np.int64)
    adj = coo_matrix((np.ones(g_codes.size), (g_codes, n_g + v_codes)), shape=(n_g + n_v, n_g + n_v))
    _, labels = connected_components(adj, directed=False)
    gene_label = labels[:n_g]
    # renumber by first gene (sorted) -> stable numbering
    _, first = np.unique(gene_label, return_index=True)
    order = np.argsort(first, kind="stable")
    remap = np.empty(order.size, dtype=np.int64)
    remap[np.unique(gene_label)[order]] = np.arange(order.size)
    return remap[gene_label[g_codes]]


class UnitPermuter:
    """Permutations of a **unit -> value vector** map within loci, applied to every row.

    A unit is what carries one model score: a variant for a gene-independent chromatin
    score, a (variant, gene) for an RNA score. Each unit has one value per *slot* (tissue);
    a row is ``(unit, slot)``. A permutation ``pi`` (drawn within each locus) gives row
    ``(u, t)`` the value of ``(pi(u), t)``, so every row of one unit moves together and
    a value shared by several rows stays shared (pitfall P31).

    Units need not have a value in every slot (a gene is significant in some tissues
    only). With ``match_slots=True`` (default) units are exchanged only with units of the
    same locus **that have values in the same slots**: every source then has the value a
    row needs, and the test is an exact conditional permutation test (strata = locus x
    slot pattern, both fixed by the design, not by the scores); a unit alone in its
    stratum keeps its values. With ``match_slots=False`` units move across patterns within
    the locus and a missing source value is lent from the source's first slot that has one
    (``fill_missing=True``; approximate: copies make the null slightly conservative) or is
    NaN (``fill_missing=False``; callers drop it).

    Parameters: ``unit`` (n,) ids, ``slot`` (n,) ids, ``locus`` (n,) locus ids (constant
    within a unit), ``values`` (n,) floats (one value per (unit, slot); duplicates must
    agree, the first is kept).
    """

    def __init__(self, unit: Any, slot: Any, locus: Any, values: np.ndarray, *, match_slots: bool = True,
                 fill_missing: bool = True):
        n = len(values)
        u_codes, n_u = cluster_codes(unit, n)
        s_codes, n_s = cluster_codes(slot, n)
        l_codes, _ = cluster_codes(locus, n)
        unit_locus = np.zeros(n_u, dtype=np.int64)
        unit_locus[u_codes] = l_codes
        mat = np.full((n_u, max(n_s, 1)), np.nan)
        mat[u_codes[::-1], s_codes[::-1]] = np.asarray(values, dtype=np.float64)[::-1]
        group = unit_locus
        if match_slots and n_u:
            pattern = np.unique(~np.isnan(mat), axis=0, return_inverse=True)[1].reshape(-1)
            group = np.unique(np.stack([unit_locus, pattern], axis=1), axis=0, return_inverse=True)[1].reshape(-1)
        # units sorted by stratum: a unit's position in that order is its index
        order = np.argsort(group, kind="stable")
        pos = np.empty(n_u, dtype=np.int64)
        pos[order] = np.arange(n_u)
        self.row_unit = pos[u_codes] if n else np.zeros(0, np.int64)
        self.row_slot = s_codes
        self.group_sorted = group[order]
        self.n_units = n_u
        self.n_strata = int(np.unique(group).size) if n_u else 0
        mat = mat[order]
        if fill_missing and not match_slots:
            miss = np.isnan(mat)
            has = ~miss.all(axis=1)
            first = np.argmax(~miss, axis=1)
            fill = mat[np.arange(n_u), first]
            mat = np.where(miss & has[:, None], fill[:, None], mat)
        self.matrix = mat
        self._flat = mat.ravel()
        self._ns = mat.shape[1]

    def draw(self, b: int, rng: np.random.Generator) -> np.ndarray:
        """``(b, n)`` permuted row values (a block of ``b`` replicates)."""
        if self.n_units == 0:
            return np.zeros((b, 0))
        perm = _within_group_sorted_perm(self.group_sorted, b, rng)
        src = perm[:, self.row_unit]
        return self._flat[src * self._ns + self.row_slot[None, :]]


def locus_bootstrap_weights(locus_codes: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, n)`` weights resampling loci (:func:`cluster_bootstrap_weights` on codes
    ``0..K-1``)."""
    codes = np.asarray(locus_codes, dtype=np.int64)
    k = int(codes.max()) + 1 if codes.size else 0
    if k == 0:
        return np.zeros((n_boot, 0))
    return cluster_bootstrap_weights(codes, k, n_boot, rng)
