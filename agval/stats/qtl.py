"""The QTL statistics bundle (STUDIES.md section 1.4, corrected additions).

Inputs, per variant row (all 1-D, one length ``n_rows``):

* ``x``: the AlphaGenome score (raw log2 ratio in ``corrected`` mode, mean quantile in
  ``original`` mode).
* ``y``: the QTL effect size ``beta``, oriented to the scored ALT allele.
* ``clusters``: the resampling unit of every bootstrap **and** permutation (the true
  unit, :func:`qtl_clusters`: caQTL connected components of {peak, SNP}, hQTL the SNP).
  ``None`` means each row is its own unit.
* ``orientation_verified``: boolean, True where the effect allele of ``beta`` is known to
  be the scored ALT. Direction claims (sign concordance) use **only** these rows
  (pitfall P3). ``None`` means no row is verified.

Rows where ``x`` or ``y`` is missing are dropped pairwise (``n_dropped``).

Why clusters: one caQTL SNP can be a QTL for two peaks (one score, two betas) and SNPs of
one peak are in LD (similar scores, similar betas); one hQTL SNP has one beta for two marks.
Row-level P values then count copies of one unit as independent evidence and are
anti-conservative (``bench/_calibration_qtl.py`` measures it). Every headline statistic
therefore carries a **cluster permutation P** (the predictions move across clusters,
:func:`agval.stats.resampling.cluster_permutation_test`) beside the row-level P, and a
cluster bootstrap interval.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import polars as pl

from agval.errors import MissingColumnError
from agval.stats.concordance import binomial_p, sign_concordance
from agval.stats.correlation import as_float_array, correlation_summary, magnitude_spearman
from agval.stats.pvalues import bh_adjust, correlation_log10_p
from agval.stats.resampling import SeedLike, Statistic, bootstrap_ci, cluster_permutation_test

__all__ = ["qtl_statistics", "per_track_table", "qtl_clusters", "DEFAULT_UNIT_WINDOW", "unit_means", "cluster_p_values",
           "SIGN_AGREEMENT", "DEFAULT_N_PERM"]

#: default permutations of the cluster permutation P values
DEFAULT_N_PERM = 1000


#: default LD window (bp) of :func:`qtl_clusters`: variants this close on one chromosome are one unit
DEFAULT_UNIT_WINDOW = 250_000


def _variant_positions(v: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(chrom, pos)`` of ``chrom:pos...`` variant keys (``""`` / -1 where a key does not parse)."""
    arr = v.cast(pl.Utf8).to_numpy() if isinstance(v, pl.Series) else np.asarray(v, dtype=object)
    ch = np.full(n, "", dtype=object)
    ps = np.full(n, -1, dtype=np.int64)
    for i, a in enumerate(arr):
        m = _KEY_RE.match(a) if isinstance(a, str) else None
        if m:
            ch[i], ps[i] = m.group(1), int(m.group(2))
    return ch, ps


_KEY_RE = re.compile(r"^([^:\s]+):(\d+)(?::|$)")


def qtl_clusters(snp: Any, peak: Any = None, *, chrom: Any = None, pos: Any = None,
                 window: int = 0) -> np.ndarray:
    """The resampling unit of QTL rows: connected components of the graph {SNP, peak} (an
    edge per row) plus, with ``chrom``/``pos`` and ``window`` > 0, an edge between variants
    within ``window`` bp on one chromosome (single linkage over sorted positions, as
    :func:`agval.qtl.causality.locus_ids`), as string labels ``"u<k>"`` (``k`` numbered in
    order of first appearance).

    The window stands in for LD: two SNPs in LD that are QTLs for *different* peaks (one LD
    block split into several peaks) are not exchangeable, and treating them as separate
    units makes the cluster permutation anti-conservative (type-I 0.15-0.19 at alpha 0.05
    when blocks hold 1-5 peaks; docs/metrics-qtl.md). ``chrom``: 1-D chromosome names,
    ``pos``: 1-D int positions (``None``, "", negative: no position, joined by ids only);
    or pass ``chrom="from_snp"`` to parse ``chrom:pos:...`` variant keys in ``snp``.

    ``snp``: 1-D ids of the variant of each row (rsID or variant key); ``peak``: 1-D ids of
    the row's peak / trait (caQTL), or ``None`` (hQTL, eQTL: the unit is the SNP, so two
    rows of one SNP - two marks sharing one beta - are one unit). A SNP that is a QTL for
    two peaks joins them; two SNPs of one peak are joined through it. Missing ids (None,
    NaN, "") make the row its own unit.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    def _ids(v: Any) -> np.ndarray:
        arr = v.cast(pl.Utf8).to_numpy() if isinstance(v, pl.Series) else np.asarray(v, dtype=object)
        return np.array(["" if (a is None or (isinstance(a, float) and math.isnan(a))) else str(a)
                         for a in arr], dtype=object)

    s = _ids(snp)
    n = s.size
    if n == 0:
        return np.array([], dtype=object)
    missing = s == ""
    s = np.where(missing, np.array([f"\x00row{i}" for i in range(n)], dtype=object), s)
    _, s_code = np.unique(s, return_inverse=True)
    n_s = int(s_code.max()) + 1
    if peak is None:
        n_nodes, rows, cols = n_s, s_code, s_code
    else:
        p = _ids(peak)
        if p.size != n:
            raise ValueError(f"peak must have length {n}, got {p.size}")
        p = np.where(p == "", np.array([f"\x00row{i}" for i in range(n)], dtype=object), p)
        _, p_code = np.unique(p, return_inverse=True)
        n_nodes, rows, cols = n_s + int(p_code.max()) + 1, s_code, n_s + p_code
    if window > 0 and chrom is not None:
        if isinstance(chrom, str) and chrom == "from_snp":
            ch, ps = _variant_positions(snp, n)
        else:
            ch = _ids(chrom)
            pa = pos.cast(pl.Float64).fill_null(-1).to_numpy() if isinstance(pos, pl.Series) \
                else np.asarray(pos, dtype=float)
            if ch.size != n or pa.shape != (n,):
                raise ValueError(f"chrom and pos must have length {n}")
            ps = np.where(np.isfinite(pa), pa, -1).astype(np.int64)
        ok = np.flatnonzero((ch != "") & (ps >= 0))
        if ok.size > 1:
            o = ok[np.lexsort((ps[ok], ch[ok].astype(str)))]
            link = (ch[o[1:]] == ch[o[:-1]]) & (ps[o[1:]] - ps[o[:-1]] <= window)
            rows = np.concatenate([rows, s_code[o[:-1]][link]])
            cols = np.concatenate([cols, s_code[o[1:]][link]])
    g = coo_matrix((np.ones(rows.size), (rows, cols)), shape=(n_nodes, n_nodes))
    _, comp = connected_components(g, directed=False)
    row_comp = comp[s_code]
    # number components in order of first appearance (stable labels)
    _, first = np.unique(row_comp, return_index=True)
    order = np.argsort(np.argsort(first))
    lut = dict(zip(np.unique(row_comp), order))
    return np.array([f"u{lut[c]}" for c in row_comp], dtype=object)


def unit_means(x: Any, y: Any, unit: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One row per unit: ``(x_mean, y_mean, unit_ids)`` over the finite pairs of each unit.

    Used for the hQTL per-SNP statistic: a SNP's two mark rows share one beta, so the
    SNP's unit row is the mean of its marks' scores with that beta. Units keep the order of
    their first row.
    """
    xa, ya = as_float_array(x), as_float_array(y)
    u = unit.cast(pl.Utf8).to_numpy() if isinstance(unit, pl.Series) else np.asarray(unit)
    keep = np.isfinite(xa) & np.isfinite(ya)
    df = pl.DataFrame({"u": pl.Series(u[keep].astype(str)), "x": xa[keep], "y": ya[keep]})
    g = df.group_by("u", maintain_order=True).agg(pl.col("x").mean(), pl.col("y").mean())
    return g["x"].to_numpy(), g["y"].to_numpy(), g["u"].to_numpy()


def _sign_agreement(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> Any:
    """Weighted fraction of rows with ``sign(x) == sign(y)`` among rows where both are non-zero."""
    x2, y2 = np.atleast_2d(x), np.atleast_2d(y)
    scalar = np.ndim(x) == 1 and np.ndim(y) == 1 and (w is None or np.ndim(w) == 1)
    ww = np.ones_like(x2 if x2.shape[0] >= y2.shape[0] else y2) if w is None else np.atleast_2d(w)
    ok = (x2 != 0) & (y2 != 0)
    agree = (np.sign(x2) == np.sign(y2)) & ok
    with np.errstate(divide="ignore", invalid="ignore"):
        v = (ww * agree).sum(axis=1) / (ww * ok).sum(axis=1)
    return float(v[0]) if scalar else v


#: sign agreement as a paired statistic for :mod:`agval.stats.resampling` (null value 0.5).
#: A count over rows, so discrete with a near-symmetric permutation null: its two-sided P
#: is by distance from the null's centre with ties at the observed value broken at random
#: (an exact-size test; doubling the smaller tail and counting ties was conservative,
#: type-I 0.027-0.041 at 0.05 in the calibration benchmark).
SIGN_AGREEMENT = Statistic("sign_agreement", _sign_agreement, 0.5, two_sided="centred", ties="random")


def cluster_p_values(x: Any, y: Any, *, clusters: Any = None, n_perm: int = DEFAULT_N_PERM,
                     seed: SeedLike, statistics: tuple[str, ...] = ("spearman", "pearson", "magnitude")
                     ) -> dict[str, Any]:
    """Two-sided cluster permutation P values of the QTL statistics.

    ``x`` (score), ``y`` (beta) and ``clusters`` (unit, :func:`qtl_clusters`) are 1-D of one
    length; non-finite pairs dropped. ``statistics`` among ``spearman`` (rho(x, y)),
    ``pearson`` (r(x, y)), ``magnitude`` (rho(|x|, |y|)) and ``sign`` (fraction of equal
    signs). Each uses :func:`agval.stats.resampling.cluster_permutation_test` with the same
    ``seed`` (so the same cluster permutations). Returns ``{"<stat>_perm_p"}`` plus
    ``permutation_mode`` (``row`` / ``cluster_values`` / ``cluster_between``),
    ``permutation_unit`` (``cluster`` / ``row``), ``n_perm``.
    """
    xa, ya = as_float_array(x), as_float_array(y)
    out: dict[str, Any] = {}
    mode = "row"
    for name in statistics:
        if name == "magnitude":
            xs, ys, stat = np.abs(xa), np.abs(ya), "spearman"
        elif name == "sign":
            xs, ys, stat = xa, ya, SIGN_AGREEMENT
        else:
            xs, ys, stat = xa, ya, name
        if n_perm <= 0:
            out[f"{name}_perm_p"] = math.nan
            continue
        t = cluster_permutation_test(xs, ys, stat, clusters=clusters, n_perm=n_perm, seed=seed,
                                     alternative="two-sided")
        out[f"{name}_perm_p"] = t["p"]
        mode = t["mode"]
    out.update(permutation_mode=mode, permutation_unit="row" if clusters is None else "cluster",
               n_perm=int(n_perm))
    return out


def _as_bool(mask: Any, n: int) -> np.ndarray:
    if mask is None:
        return np.zeros(n, dtype=bool)
    if isinstance(mask, pl.Series):
        mask = mask.fill_null(False).to_numpy()
    arr = np.asarray(mask)
    if arr.shape != (n,):
        raise ValueError(f"orientation_verified must have length {n}, got shape {arr.shape}")
    if arr.dtype == object:
        arr = np.array([bool(v) if v is not None else False for v in arr])
    return arr.astype(bool)


def qtl_statistics(x: Any, y: Any, *, clusters: Any = None, orientation_verified: Any = None,
                   n_boot: int = 2000, n_perm: int = DEFAULT_N_PERM, confidence: float = 0.95,
                   seed: SeedLike) -> dict[str, Any]:
    """All QTL metrics for one score column against ``beta``, as a flat dict.

    Keys:

    * ``n_total`` (input rows), ``n`` (pairwise-complete rows), ``n_dropped``;
    * ``spearman_rho, spearman_p, pearson_r, pearson_p, r2, slope, intercept`` (two-sided,
      scipy t-approximation; ``r2``/``slope``/``intercept`` of the least-squares fit
      ``beta ~ score``);
    * ``spearman_log10_p, pearson_log10_p``: log10 of the row-level P values from the t
      tail in log space (finite where the P underflows to 0);
    * ``spearman_ci_low, spearman_ci_high, ci_confidence, bootstrap_n, bootstrap_unit``
      (``"cluster"``/``"row"``), ``n_clusters``, ``seed``: percentile bootstrap CI of rho
      resampling clusters; ``pearson_ci_low, pearson_ci_high`` and
      ``magnitude_spearman_ci_low, magnitude_spearman_ci_high`` the same for r and for
      rho(|score|, |beta|) (same cluster draws);
    * ``spearman_perm_p, pearson_perm_p, magnitude_perm_p``: two-sided **cluster
      permutation** P values (:func:`cluster_p_values`), ``permutation_mode``,
      ``permutation_unit``, ``n_perm``; ``sign_perm_p`` the same for the sign agreement of
      the orientation-verified rows (NaN without them);
    * ``n_orientation_verified`` and, on those rows only, ``sign_n, sign_k,
      sign_fraction, sign_p_two_sided, sign_p_greater, sign_ci_low, sign_ci_high``
      (Wilson), ``sign_n_excluded_zero``; ``sign_p_two_sided``/``sign_p_greater`` test
      agreement = 0.5, which is **not** independence when the signs are unbalanced;
      ``sign_chance`` = ``p_x p_y + (1 - p_x)(1 - p_y)`` (``p_x``, ``p_y`` the shares of
      positive x and y on those rows: the agreement expected under independence) and
      ``sign_p_independence`` the two-sided exact binomial P of ``sign_k`` against it
      (row-level: it ignores shared units, so ``sign_perm_p`` is the test to read);
    * ``magnitude_spearman_rho, magnitude_spearman_p, magnitude_spearman_log10_p``:
      Spearman(|score|, |beta|) with its row-level P;
    * ``score_mean, score_sd`` (ddof = 1), ``score_min, score_max, score_mean_abs``,
      ``beta_mean, beta_fraction_positive``;
    * ``same_sign_fraction_unverified``: the seed's ``mean(sign(score) == sign(beta))`` over
      all rows, orientation ignored (reported for reproduction only; with all betas > 0 it
      is just the fraction of positive scores).
    """
    xa, ya = as_float_array(x), as_float_array(y)
    if xa.shape != ya.shape:
        raise ValueError(f"x and y have different lengths: {xa.size} vs {ya.size}")
    n_total = xa.size
    verified = _as_bool(orientation_verified, n_total)
    keep = np.isfinite(xa) & np.isfinite(ya)
    xk, yk = xa[keep], ya[keep]
    cl = None
    if clusters is not None:
        cl = clusters.to_numpy() if isinstance(clusters, pl.Series) else np.asarray(clusters)
        if cl.shape != (n_total,):
            raise ValueError(f"clusters must have length {n_total}, got shape {cl.shape}")
        cl = cl[keep]
    out: dict[str, Any] = {"n_total": int(n_total)}
    summ = correlation_summary(xk, yk)
    out.update(n=summ["n"], n_dropped=int(n_total - summ["n"]))
    for k in ("spearman_rho", "spearman_p", "pearson_r", "pearson_p", "r2", "slope", "intercept"):
        out[k] = summ[k]
    out["spearman_log10_p"] = correlation_log10_p(summ["spearman_rho"], summ["n"])
    out["pearson_log10_p"] = correlation_log10_p(summ["pearson_r"], summ["n"])
    boot = bootstrap_ci(xk, yk, "spearman", clusters=cl, n_boot=n_boot, confidence=confidence, seed=seed)
    out.update(spearman_ci_low=boot["ci_low"], spearman_ci_high=boot["ci_high"],
               ci_confidence=confidence, bootstrap_n=n_boot, bootstrap_unit=boot["unit"],
               n_clusters=boot["n_clusters"], seed=boot["seed"])
    pb = bootstrap_ci(xk, yk, "pearson", clusters=cl, n_boot=n_boot, confidence=confidence, seed=seed)
    out.update(pearson_ci_low=pb["ci_low"], pearson_ci_high=pb["ci_high"])
    mb = bootstrap_ci(np.abs(xk), np.abs(yk), "spearman", clusters=cl, n_boot=n_boot, confidence=confidence,
                      seed=seed)
    out.update(magnitude_spearman_ci_low=mb["ci_low"], magnitude_spearman_ci_high=mb["ci_high"])
    out.update(cluster_p_values(xk, yk, clusters=cl, n_perm=n_perm, seed=seed))
    vk = verified[keep]
    sc = sign_concordance(xk[vk], yk[vk], confidence=confidence)
    out.update(n_orientation_verified=int(vk.sum()), sign_n=sc["n"], sign_k=sc["k"],
               sign_fraction=sc["fraction"], sign_p_two_sided=sc["p_two_sided"],
               sign_p_greater=sc["p_greater"], sign_ci_low=sc["ci_low"], sign_ci_high=sc["ci_high"],
               sign_n_excluded_zero=sc["n_excluded_zero"])
    out.update(_sign_independence(xk[vk], yk[vk], sc["k"], sc["n"]))
    if sc["n"] >= 3:
        out["sign_perm_p"] = cluster_p_values(xk[vk], yk[vk], clusters=cl[vk] if cl is not None else None,
                                              n_perm=n_perm, seed=seed, statistics=("sign",))["sign_perm_p"]
    else:
        out["sign_perm_p"] = math.nan
    mag = magnitude_spearman(xk, yk)
    out.update(magnitude_spearman_rho=mag["rho"], magnitude_spearman_p=mag["p"],
               magnitude_spearman_log10_p=correlation_log10_p(mag["rho"], mag["n"]))
    if xk.size:
        out.update(score_mean=float(xk.mean()),
                   score_sd=float(xk.std(ddof=1)) if xk.size > 1 else math.nan,
                   score_min=float(xk.min()), score_max=float(xk.max()),
                   score_mean_abs=float(np.abs(xk).mean()), beta_mean=float(yk.mean()),
                   beta_fraction_positive=float((yk > 0).mean()),
                   same_sign_fraction_unverified=float((np.sign(xk) == np.sign(yk)).mean()))
    else:
        for k in ("score_mean", "score_sd", "score_min", "score_max", "score_mean_abs", "beta_mean",
                  "beta_fraction_positive", "same_sign_fraction_unverified"):
            out[k] = math.nan
    return out


def _sign_independence(x: np.ndarray, y: np.ndarray, k: int, n: int) -> dict[str, float]:
    """Sign agreement expected under independence on the rows with x != 0 and y != 0, and the
    two-sided binomial P of ``k`` of ``n`` agreeing rows against it (NaN when ``n == 0``)."""
    ok = (x != 0) & (y != 0) & np.isfinite(x) & np.isfinite(y)
    if n == 0 or not ok.any():
        return {"sign_chance": math.nan, "sign_p_independence": math.nan}
    px, py = float((x[ok] > 0).mean()), float((y[ok] > 0).mean())
    chance = px * py + (1.0 - px) * (1.0 - py)
    return {"sign_chance": chance, "sign_p_independence": binomial_p(k, n, chance)}


def per_track_table(frame: pl.DataFrame, *, score_col: str = "score", beta_col: str = "beta",
                    track_col: str = "track", cluster_col: str | None = None,
                    n_boot: int = 1000, n_perm: int = DEFAULT_N_PERM, confidence: float = 0.95,
                    seed: SeedLike) -> pl.DataFrame:
    """Per-track correlation table (for the forest plot), with multiplicity control.

    ``frame``: long table, one row per (variant row, track), with columns ``track_col``
    (str), ``score_col`` and ``beta_col`` (float) and optionally ``cluster_col`` (the
    resampling unit of bootstrap and permutation). Every track uses the same ``seed``.

    Returns one row per track (sorted by track) with columns ``track, n, spearman_rho,
    spearman_p, ci_low, ci_high, pearson_r, pearson_p, r2, n_clusters, perm_p, q_bh``:
    ``perm_p`` is the two-sided cluster permutation P of rho and ``q_bh`` its
    Benjamini-Hochberg adjusted value over the tracks of this table (the family).
    """
    need = [track_col, score_col, beta_col] + ([cluster_col] if cluster_col else [])
    for c in need:
        if c not in frame.columns:
            raise MissingColumnError(c, available=frame.columns)
    rows = []
    for track in sorted(frame[track_col].unique().drop_nulls().to_list()):
        sub = frame.filter(pl.col(track_col) == track)
        x = as_float_array(sub[score_col])
        y = as_float_array(sub[beta_col])
        keep = np.isfinite(x) & np.isfinite(y)
        cl = sub[cluster_col].to_numpy()[keep] if cluster_col else None
        s = correlation_summary(x[keep], y[keep])
        b = bootstrap_ci(x[keep], y[keep], "spearman", clusters=cl, n_boot=n_boot,
                         confidence=confidence, seed=seed)
        pp = cluster_p_values(x[keep], y[keep], clusters=cl, n_perm=n_perm, seed=seed,
                              statistics=("spearman",))
        rows.append({"track": str(track), "n": s["n"], "spearman_rho": s["spearman_rho"],
                     "spearman_p": s["spearman_p"], "ci_low": b["ci_low"], "ci_high": b["ci_high"],
                     "pearson_r": s["pearson_r"], "pearson_p": s["pearson_p"], "r2": s["r2"],
                     "n_clusters": b["n_clusters"], "perm_p": pp["spearman_perm_p"]})
    schema = {"track": pl.Utf8, "n": pl.Int64, "spearman_rho": pl.Float64, "spearman_p": pl.Float64,
              "ci_low": pl.Float64, "ci_high": pl.Float64, "pearson_r": pl.Float64,
              "pearson_p": pl.Float64, "r2": pl.Float64, "n_clusters": pl.Int64, "perm_p": pl.Float64}
    tbl = pl.DataFrame(rows, schema=schema)
    return tbl.with_columns(pl.Series("q_bh", bh_adjust(tbl["perm_p"].to_numpy()), dtype=pl.Float64))
