"""agval.stats.resampling: weighted statistics equal oracles on replicated rows; bootstrap
coverage; cluster vs row intervals; permutation p-values uniform under the null."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from agval.stats import resampling as R

RTOL = 1e-9


def _tied_data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(size=n), 1)
    y = np.round(x + rng.normal(size=n), 1)
    return x, y


def test_weighted_statistics_equal_oracles_on_replicated_rows():
    x, y = _tied_data()
    rng = np.random.default_rng(1)
    w = rng.integers(0, 4, size=(6, x.size)).astype(float)
    lab = (y > 0).astype(float)
    got = {name: R.STATISTICS[name](x, y if name not in ("auroc", "mean_difference") else lab, w)
           for name in R.STATISTICS}
    for b in range(w.shape[0]):
        rep = w[b].astype(int)
        xr, yr, lr = np.repeat(x, rep), np.repeat(y, rep), np.repeat(lab, rep)
        want = {
            "pearson": stats.pearsonr(xr, yr).statistic,
            "spearman": stats.spearmanr(xr, yr).statistic,
            "auroc": roc_auc_score(lr, xr),
            "auroc_median_split": roc_auc_score(yr > np.median(yr), xr),
            "mean_difference": xr[lr == 1].mean() - xr[lr == 0].mean(),
            "paired_mean_difference": np.mean(xr - yr),
        }
        for name, v in want.items():
            assert got[name][b] == pytest.approx(v, rel=RTOL, abs=1e-15), name
    # unweighted 1-D inputs give floats equal to the oracles
    assert R.weighted_spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, rel=RTOL)
    assert isinstance(R.weighted_pearson(x, y), float)


def test_weighted_ranks_equal_rankdata():
    rng = np.random.default_rng(2)
    v = rng.integers(0, 5, size=(4, 30)).astype(float)
    assert np.array_equal(R.weighted_ranks(v), stats.rankdata(v, axis=1))
    assert np.array_equal(R.weighted_ranks(v[0]), stats.rankdata(v[0]))
    w = rng.integers(0, 3, size=(3, 30)).astype(float)
    r = R.weighted_ranks(v[0], w)
    for b in range(3):
        rep = np.repeat(v[0], w[b].astype(int))
        pos = np.flatnonzero(w[b] > 0)
        ranks_rep = stats.rankdata(rep)
        first_copy = np.cumsum(w[b].astype(int)) - w[b].astype(int)
        assert np.allclose(r[b, pos], ranks_rep[first_copy[pos]])


def test_constant_replicate_is_nan_not_garbage():
    x = np.array([1.0, 1.0, 2.0, 3.0])
    w = np.array([[2.0, 2.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    r = R.weighted_pearson(x, np.array([0.1, 0.2, 0.3, 0.9]), w)
    assert math.isnan(r[0]) and np.isfinite(r[1])


def test_bootstrap_reproducible_and_shapes():
    x, y = _tied_data(60, 3)
    a = R.bootstrap_ci(x, y, "spearman", n_boot=300, seed=7, return_replicates=True)
    b = R.bootstrap_ci(x, y, "spearman", n_boot=300, seed=7, return_replicates=True)
    c = R.bootstrap_ci(x, y, "spearman", n_boot=300, seed=8)
    assert np.array_equal(a["replicates"], b["replicates"]) and a["ci_low"] != c["ci_low"]
    assert a["estimate"] == pytest.approx(stats.spearmanr(x, y).statistic, rel=RTOL)
    assert a["ci_low"] < a["estimate"] < a["ci_high"] and a["n_valid"] == 300 and a["seed"] == 7
    assert (a["ci_low"], a["ci_high"]) == pytest.approx(tuple(np.quantile(a["replicates"], [0.025, 0.975])))
    # NaN rows dropped pairwise, with cluster ids subset alongside
    x2 = x.copy()
    x2[:5] = np.nan
    cl = np.repeat(np.arange(30), 2)
    d = R.bootstrap_ci(x2, y, "pearson", clusters=cl, n_boot=50, seed=1)
    assert d["n"] == 55 and d["n_clusters"] == 28 and d["unit"] == "cluster"
    with pytest.raises(ValueError):
        R.bootstrap_ci(x, y, "nonsense", seed=1)


@pytest.mark.parametrize("statistic", ["pearson", "spearman"])
def test_bootstrap_ci_covers_planted_correlation(statistic):
    """95 % percentile CI covers the planted value in >= 85 of 100 seeds (n = 40)."""
    rho = 0.5
    truth = rho if statistic == "pearson" else 6 / math.pi * math.asin(rho / 2)
    covered = 0
    for seed in range(100):
        rng = np.random.default_rng(1000 + seed)
        x = rng.normal(size=40)
        y = rho * x + math.sqrt(1 - rho ** 2) * rng.normal(size=40)
        r = R.bootstrap_ci(x, y, statistic, n_boot=400, seed=seed)
        covered += r["ci_low"] <= truth <= r["ci_high"]
    assert covered >= 85


def _clustered(seed, n_clusters=15, per=40):
    """Rows >> clusters, cluster random effects in both x and y (no true association
    beyond the clusters' shared effect)."""
    rng = np.random.default_rng(seed)
    cx = rng.normal(size=n_clusters)
    cy = 0.5 * cx + rng.normal(size=n_clusters)
    cl = np.repeat(np.arange(n_clusters), per)
    x = cx[cl] + 0.3 * rng.normal(size=cl.size)
    y = cy[cl] + 0.3 * rng.normal(size=cl.size)
    return x, y, cl


def test_cluster_ci_wider_than_row_ci_when_rows_exceed_clusters():
    wider = 0
    for seed in range(5):
        x, y, cl = _clustered(seed)
        c = R.bootstrap_ci(x, y, "spearman", clusters=cl, n_boot=400, seed=seed)
        r = R.bootstrap_ci(x, y, "spearman", n_boot=400, seed=seed)
        wider += (c["ci_high"] - c["ci_low"]) > 2 * (r["ci_high"] - r["ci_low"])
        assert c["n_clusters"] == 15 and r["n_clusters"] == x.size
    assert wider == 5


def test_paired_bootstrap_difference():
    rng = np.random.default_rng(5)
    n = 300
    y = rng.normal(size=n)
    good = y + rng.normal(size=n)
    bad = y + 3 * rng.normal(size=n)
    cl = np.repeat(np.arange(100), 3)
    r = R.paired_bootstrap_difference(good, bad, y, "spearman", clusters=cl, n_boot=500, seed=1)
    assert r["difference"] == pytest.approx(stats.spearmanr(good, y).statistic - stats.spearmanr(bad, y).statistic,
                                            rel=1e-9)
    assert r["ci_low"] > 0 and r["p_two_sided"] < 0.01 and r["n_clusters"] == 100
    same = R.paired_bootstrap_difference(good, good, y, "pearson", n_boot=100, seed=1)
    assert same["difference"] == 0 and same["ci_low"] == 0 and same["ci_high"] == 0
    assert same["p_two_sided"] == 1.0


def test_permutation_p_formula():
    null = np.array([0.1, 0.2, 0.3, 0.4, np.nan])
    assert R.permutation_p(0.3, null) == (1 + 2) / 5
    assert R.permutation_p(0.3, null, alternative="less") == (1 + 3) / 5
    assert R.permutation_p(-0.35, null, alternative="two-sided") == 2 * (1 + 0) / 5
    assert R.permutation_p(0.25, null, alternative="two-sided") == 1.0
    assert R.permutation_p(0.3 + 1e-14, null) == (1 + 2) / 5  # rounding tolerance
    assert R.permutation_p(9.0, null) == 1 / 5
    with pytest.raises(ValueError):
        R.permutation_p(0.1, null, alternative="bigger")


def test_centred_two_sided_p_formula():
    """``two_sided="centred"``: distance from the mean of the null and observed values."""
    null = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    c = (null.sum() + 0.05) / 6  # 0.25
    d = np.abs(null - c)          # 0.15 0.05 0.05 0.15 0.25
    assert R.permutation_p(0.05, null, alternative="two-sided", two_sided="centred") == \
        pytest.approx((1 + (d >= abs(0.05 - c) - 1e-12).sum()) / 6) == pytest.approx(2 / 6)
    with pytest.raises(ValueError):
        R.permutation_p(0.05, null, alternative="two-sided", two_sided="halved")


def test_random_ties_make_a_discrete_permutation_p_exact():
    """Observed and B = 19 null values drawn i.i.d. from a discrete law (exchangeable, many
    ties): counting ties is conservative; breaking them at random gives P(p <= 0.05) = 0.05."""
    rng = np.random.default_rng(5)
    reps = 20_000
    draws = rng.binomial(8, 0.5, size=(reps, 20)).astype(float)
    counted = np.array([R.permutation_p(d[0], d[1:]) for d in draws])
    tie_rng = np.random.default_rng(6)
    random = np.array([R.permutation_p(d[0], d[1:], tie_rng=tie_rng) for d in draws])
    assert (counted <= 0.05).mean() < 0.035   # ~0.026: ties at the top count against it
    assert abs((random <= 0.05).mean() - 0.05) < 0.006   # SE 0.0015
    assert abs(random.mean() - 0.525) < 0.01              # uniform on {1/20, ..., 1}
    centred = np.array([R.permutation_p(d[0], d[1:], alternative="two-sided", two_sided="centred",
                                        tie_rng=tie_rng) for d in draws])
    assert abs((centred <= 0.05).mean() - 0.05) < 0.006


def test_two_sided_permutation_p_is_valid_for_a_shifted_null():
    """A null centred at 0.4 (e.g. Q4's score-permutation null with a mean bias): an observed 0.0
    is an extreme lower-tail result, not 'as extreme as every |null|' (p = 1)."""
    null = np.random.default_rng(0).normal(0.4, 0.05, 999)
    assert R.permutation_p(0.0, null, alternative="two-sided") == pytest.approx(2 / 1000)
    assert R.permutation_p(0.4, null, alternative="two-sided") > 0.5


def test_cluster_permutation_modes_and_power():
    x, y, cl = _clustered(1, n_clusters=12, per=30)
    # predictions constant within cluster (one model input per cluster): exact mode
    xc = np.repeat(np.random.default_rng(0).normal(size=12), 30) + 0.0
    r = R.cluster_permutation_test(xc, y, "spearman", clusters=cl, n_perm=300, seed=1, return_null=True)
    assert r["mode"] == "cluster_values" and r["n_clusters"] == 12 and r["null"].shape == (300,)
    assert r["p"] == R.permutation_p(r["estimate"], r["null"], alternative="two-sided")
    assert r["p"] == pytest.approx(min(1.0, 2 * min((1 + (r["null"] >= r["estimate"] - 1e-12).sum()) / 301,
                                                    (1 + (r["null"] <= r["estimate"] + 1e-12).sum()) / 301)))
    b = R.cluster_permutation_test(x, y, "spearman", clusters=cl, n_perm=300, seed=1)
    assert b["mode"] == "cluster_between"
    row = R.cluster_permutation_test(x, y, "spearman", n_perm=300, seed=1)
    assert row["mode"] == "row" and row["p"] == 2 / 301  # two-sided: twice the smaller tail
    # the cluster test is far less confident than the row test on 12 clusters
    assert b["p"] > row["p"]
    # a strong planted between-cluster association is still detected with 40 clusters
    rng = np.random.default_rng(3)
    c = rng.normal(size=40)
    clp = np.repeat(np.arange(40), 10)
    yp = c[clp] + 0.2 * rng.normal(size=400)
    p = R.cluster_permutation_test(c[clp], yp, "pearson", clusters=clp, n_perm=500, seed=2)
    assert p["p"] < 0.01


def test_cluster_permutation_null_uniform():
    """Row-level x independent of y across many seeds: p-values ~ U(0, 1)."""
    ps = []
    for seed in range(150):
        rng = np.random.default_rng(seed)
        cl = np.repeat(np.arange(20), 5)
        x = np.repeat(rng.normal(size=20), 5)
        y = np.repeat(rng.normal(size=20), 5) + rng.normal(size=100)
        ps.append(R.cluster_permutation_test(x, y, "pearson", clusters=cl, n_perm=199, seed=seed)["p"])
    assert stats.kstest(ps, "uniform").pvalue > 0.01


def test_within_group_permutation_indices_are_within_group_and_uniform():
    groups = np.array(["b", "a", "b", "c", "a", "b", "c", "a", "a"])
    idx = R.within_group_permutation_indices(groups, n_perm=3000, seed=4)
    assert idx.shape == (3000, 9)
    assert (groups[idx] == groups[None, :]).all()
    assert (np.sort(idx, axis=1) == np.arange(9)).all()  # each replicate is a permutation
    # the 3-element group "b" (rows 0, 2, 5): all 6 orderings about equally frequent
    code = idx[:, 0] * 100 + idx[:, 2] * 10 + idx[:, 5]
    _, counts = np.unique(code, return_counts=True)
    assert counts.size == 6
    assert stats.chisquare(counts).pvalue > 0.001
    vals = R.within_group_permute(np.arange(9.0), groups, n_perm=2, seed=4)
    assert np.array_equal(vals, idx[:2].astype(float))


def test_within_group_permutation_test_uniform_null_and_power():
    """Within-gene permutation: uniform p under the null (KS over many datasets), and a
    planted within-group association is detected."""
    ps = []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        g = np.repeat(np.arange(12), 6)
        shift = rng.normal(size=12)[g]          # group effects shared by x and y
        x = shift + rng.normal(size=g.size)
        y = shift + rng.normal(size=g.size)
        ps.append(R.within_group_permutation_test(x, y, g, "pearson", n_perm=199, seed=seed)["p"])
    assert stats.kstest(ps, "uniform").pvalue > 0.01
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(12), 6)
    x = rng.normal(size=g.size)
    y = 0.6 * x + rng.normal(size=g.size)
    r = R.within_group_permutation_test(x, y, g, "pearson", n_perm=499, seed=1)
    assert r["p"] < 0.01 and r["n_groups"] == 12
