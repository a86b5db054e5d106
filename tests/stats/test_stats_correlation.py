"""agval.stats.correlation and agval.stats.qtl against scipy and the seed's published numbers."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats

from agval.stats import correlation as C
from agval.stats.qtl import per_track_table, qtl_statistics

RTOL = 1e-9


def close(a, b, rtol=RTOL, atol=1e-300):
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b) or (np.isnan(b))
    return abs(a - b) <= atol + rtol * abs(b)


def datasets():
    rng = np.random.default_rng(11)
    out = []
    for n, rho in [(3, 0.5), (10, 0.0), (57, 0.6), (400, -0.3), (3271, 0.4)]:
        x = rng.normal(size=n)
        y = rho * x + math.sqrt(1 - rho * rho) * rng.normal(size=n)
        out.append((x, y))
    # heavy ties (quantised scores and betas)
    x = np.round(rng.normal(size=300), 1)
    out.append((x, np.round(x + rng.normal(size=300), 0)))
    # all-positive betas, like the caQTL table
    x = rng.normal(size=200)
    out.append((x, np.exp(0.3 * x + rng.normal(size=200))))
    return out


@pytest.mark.parametrize("i", range(7))
def test_equal_scipy(i):
    x, y = datasets()[i]
    s, p, f = C.spearman(x, y), C.pearson(x, y), C.linear_fit(x, y)
    so, po, fo = stats.spearmanr(x, y), stats.pearsonr(x, y), stats.linregress(x, y)
    assert s["n"] == p["n"] == f["n"] == len(x)
    assert close(s["rho"], so.statistic) and close(s["p"], so.pvalue)
    assert close(p["r"], po.statistic) and close(p["p"], po.pvalue)
    assert close(f["slope"], fo.slope) and close(f["intercept"], fo.intercept, atol=1e-15)
    assert close(f["r2"], fo.rvalue ** 2) and close(f["p"], fo.pvalue)
    assert close(f["slope_stderr"], fo.stderr) and close(f["intercept_stderr"], fo.intercept_stderr)
    m = C.magnitude_spearman(x, y)
    assert close(m["rho"], stats.spearmanr(np.abs(x), np.abs(y)).statistic)
    assert close(m["p"], stats.spearmanr(np.abs(x), np.abs(y)).pvalue)


def test_pairwise_complete_drop_reports_n():
    rng = np.random.default_rng(3)
    x = rng.normal(size=100)
    y = x + rng.normal(size=100)
    x[[1, 5, 7]] = np.nan
    y[[5, 9]] = np.inf
    xl = [None if i == 20 else v for i, v in enumerate(x.tolist())]  # None in a list too
    keep = np.isfinite(x) & np.isfinite(y)
    keep[20] = False
    s = C.spearman(xl, y)
    assert s["n"] == 95 and s["n_dropped"] == 5
    assert close(s["rho"], stats.spearmanr(x[keep], y[keep]).statistic)
    ps = C.pearson(pl.Series(xl), pl.Series(y))
    assert ps["n"] == 95 and close(ps["r"], stats.pearsonr(x[keep], y[keep]).statistic)
    summ = C.correlation_summary(x, y)
    assert summ["n"] == 96 and summ["n_dropped"] == 4
    with pytest.raises(ValueError):
        C.spearman([1, 2, 3], [1, 2])


def test_degenerate_inputs_give_nan():
    assert math.isnan(C.spearman([1, 1, 1, 1], [1, 2, 3, 4])["rho"])
    assert math.isnan(C.pearson([1, 2, 3, 4], [5, 5, 5, 5])["p"])
    assert math.isnan(C.pearson([1, 2], [3, 4])["p"])  # n < 3
    assert math.isnan(C.linear_fit([2, 2, 2], [1, 2, 3])["slope"])
    r = C.spearman([1, 2, 3, 4], [2, 4, 6, 8])
    assert r["rho"] == 1.0 and r["p"] == 0.0


def _published_interval_contains(r, n, published):
    """The published p lies within the p-values of the rounding interval of r
    (r given to d decimals -> r +- 0.5e-d) widened by half a unit of the published digits."""
    txt = repr(abs(r))
    h = 0.5 * 10 ** -(len(txt.split(".")[1]))
    a = C.correlation_p_value(abs(r) + h, n)
    b = C.correlation_p_value(abs(r) - h, n)
    mant = f"{published:.6e}".split("e")[0].rstrip("0").rstrip(".")
    sig = len(mant.replace(".", "").lstrip("0")) or 1
    rel = 0.5 * 10 ** -(sig - 1) / float(mant)
    return min(a, b) * (1 - rel) <= published <= max(a, b) * (1 + rel)


@pytest.mark.parametrize("r,n,published", [
    (0.4032, 3271, 3.68e-128),   # caQTL Spearman
    (0.4089, 3271, 4.44e-132),   # caQTL Pearson
    (0.1717, 6258, 1.30e-42),    # hQTL Spearman
    (0.1761, 6258, 9.00e-45),    # hQTL Pearson
    (0.4652, 99, 1.23e-6),       # dev history "first 100 caQTLs": reproduced with n = 99, not 100
    (0.5369, 99, 1.01e-8),
    (0.384, 44, 0.010),          # TWAS Q4 Prostate
    (0.317, 156, 5.6e-5),        # TWAS Q3 ATAC
    (0.296, 183, 4.6e-5),        # TWAS Q3 DNase
    (-0.6248, 18, 0.0056),       # MPRA V1 DNase centre
    (-0.6698, 18, 0.0024),
])
def test_published_p_values_from_r_and_n(r, n, published):
    assert _published_interval_contains(r, n, published)


def test_correlation_p_value_vectorised():
    assert math.isnan(C.correlation_p_value(0.5, 2)) and C.correlation_p_value(-1.0, 10) == 0.0
    # vectorised, equal to scipy's spearmanr t-approximation
    rs = np.array([0.1, -0.5, 0.99])
    assert np.allclose(C.correlation_p_value(rs, 30),
                       [2 * stats.t.sf(abs(r) * math.sqrt(28 / (1 - r * r)), 28) for r in rs], rtol=1e-12)


# ---------------------------------------------------------------------------- QTL bundle

def _qtl_data(seed, n_peaks=60, per_peak=3, rho=0.4):
    rng = np.random.default_rng(seed)
    n = n_peaks * per_peak
    x = rng.normal(size=n)
    y = rho * x + math.sqrt(1 - rho * rho) * rng.normal(size=n)
    peaks = np.repeat([f"peak{i}" for i in range(n_peaks)], per_peak)
    return x, y, peaks


def test_qtl_statistics_bundle():
    x, y, peaks = _qtl_data(1)
    verified = np.zeros(x.size, dtype=bool)
    verified[::2] = True
    x[3] = np.nan
    out = qtl_statistics(x, y, clusters=peaks, orientation_verified=verified, n_boot=500, seed=5)
    keep = np.isfinite(x)
    assert out["n_total"] == 180 and out["n"] == 179 and out["n_dropped"] == 1
    assert close(out["spearman_rho"], stats.spearmanr(x[keep], y[keep]).statistic)
    assert close(out["pearson_p"], stats.pearsonr(x[keep], y[keep]).pvalue)
    assert close(out["r2"], stats.linregress(x[keep], y[keep]).rvalue ** 2)
    assert out["spearman_ci_low"] < out["spearman_rho"] < out["spearman_ci_high"]
    assert out["bootstrap_unit"] == "cluster" and out["n_clusters"] == 60 and out["seed"] == 5
    v = verified & keep
    k = int((np.sign(x[v]) == np.sign(y[v])).sum())
    assert out["n_orientation_verified"] == v.sum() and out["sign_n"] == v.sum() and out["sign_k"] == k
    assert close(out["sign_p_greater"], stats.binomtest(k, int(v.sum()), 0.5, alternative="greater").pvalue)
    assert close(out["magnitude_spearman_rho"], stats.spearmanr(np.abs(x[keep]), np.abs(y[keep])).statistic)
    assert close(out["score_sd"], float(np.std(x[keep], ddof=1)))
    assert close(out["score_mean_abs"], float(np.abs(x[keep]).mean()))
    # reproducible
    assert qtl_statistics(x, y, clusters=peaks, orientation_verified=verified, n_boot=500, seed=5) == out
    # no orientation information: no direction claim
    none = qtl_statistics(x, y, n_boot=50, seed=1)
    assert none["sign_n"] == 0 and math.isnan(none["sign_fraction"]) and none["bootstrap_unit"] == "row"


def test_qtl_all_positive_betas_same_sign_is_fraction_of_positive_scores():
    rng = np.random.default_rng(2)
    x = rng.normal(size=300)
    y = np.abs(rng.normal(size=300)) + 0.01
    out = qtl_statistics(x, y, n_boot=20, seed=0)
    assert close(out["same_sign_fraction_unverified"], float((x > 0).mean()))
    assert out["beta_fraction_positive"] == 1.0


def test_qtl_bootstrap_ci_covers_planted_rho_across_seeds():
    covered = 0
    rho_s = 6 / math.pi * math.asin(0.4 / 2)  # Spearman of a bivariate normal with r = 0.4
    for seed in range(60):
        x, y, peaks = _qtl_data(100 + seed, n_peaks=50, per_peak=2)
        out = qtl_statistics(x, y, clusters=peaks, n_boot=300, seed=seed)
        covered += out["spearman_ci_low"] <= rho_s <= out["spearman_ci_high"]
    assert covered >= 50


def test_per_track_table():
    rng = np.random.default_rng(4)
    frames = []
    for t, rho in [("ATAC", 0.5), ("DNASE", 0.2)]:
        x = rng.normal(size=80)
        frames.append(pl.DataFrame({"track": t, "score": x, "beta": rho * x + rng.normal(size=80),
                                    "peak": np.repeat(np.arange(40), 2)}))
    df = pl.concat(frames)
    tab = per_track_table(df, cluster_col="peak", n_boot=200, seed=1)
    assert tab["track"].to_list() == ["ATAC", "DNASE"]
    sub = df.filter(pl.col("track") == "DNASE")
    assert close(tab["spearman_rho"][1], stats.spearmanr(sub["score"], sub["beta"]).statistic)
    assert tab["n_clusters"].to_list() == [40, 40]
    assert (tab["ci_low"] < tab["spearman_rho"]).all() and (tab["spearman_rho"] < tab["ci_high"]).all()
