"""agval.stats.concordance: exact binomial tests, Wilson interval, exclusions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from agval.stats.concordance import binomial_p, sign_concordance, wilson_interval


@pytest.mark.parametrize("k,n", [(0, 1), (3, 10), (7, 10), (50, 100), (244, 408), (10, 1000)])
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_binomial_equals_scipy(k, n, alternative):
    want = stats.binomtest(k, n, 0.5, alternative=alternative).pvalue
    assert binomial_p(k, n, alternative=alternative) == pytest.approx(want, rel=1e-9, abs=0)
    assert math.isnan(binomial_p(0, 0))


@pytest.mark.parametrize("tissue,k,n,published", [
    ("Prostate", 244, 408, 4.4e-5),
    ("Whole Blood", 344, 612, 1.2e-3),
    ("Esophagus Mucosa", 715, 1284, 2.6e-5),
    ("Skin", 376, 701, 0.029),
    ("Heart LV", 851, 1621, 0.023),
])
def test_published_q1_binomial_p_one_sided(tissue, k, n, published):
    """STUDIES.md 2.9: the published Q1 P-values are the one-sided ('greater') binomial."""
    p = binomial_p(k, n, alternative="greater")
    assert float(f"{p:.1e}") == published, (tissue, p)
    # and the two-sided test would not reproduce them
    assert float(f"{binomial_p(k, n):.1e}") != published


def test_wilson_by_hand_and_statsmodels():
    # hand computation, k = 8, n = 10, 95 %
    z = 1.959963984540054
    centre = (8 + z * z / 2) / (10 + z * z)
    half = z / (10 + z * z) * math.sqrt(8 * 2 / 10 + z * z / 4)
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(centre - half, rel=1e-12) and hi == pytest.approx(centre + half, rel=1e-12)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    sm = pytest.importorskip("statsmodels.stats.proportion")
    for k, n, conf in [(8, 10, 0.95), (244, 408, 0.95), (1, 50, 0.9), (0, 7, 0.99), (851, 1621, 0.95)]:
        want = sm.proportion_confint(k, n, alpha=1 - conf, method="wilson")
        got = wilson_interval(k, n, conf)
        assert got == pytest.approx(want, rel=1e-9)


def test_sign_concordance_counts_exclusions():
    x = np.array([1.0, -2.0, 0.5, 0.0, np.nan, 3.0, -1.0, 2.0, 4.0])
    y = np.array([2.0, -1.0, -1.0, 1.0, 1.0, 0.0, -5.0, np.inf, 1.0])
    r = sign_concordance(x, y)
    assert r["n_total"] == 9
    assert r["n_excluded_missing"] == 2 and r["n_excluded_zero"] == 2
    assert r["n"] == 5 and r["k"] == 4 and r["fraction"] == 0.8
    assert r["p_greater"] == pytest.approx(stats.binomtest(4, 5, 0.5, alternative="greater").pvalue, rel=1e-12)
    assert r["p_two_sided"] == pytest.approx(stats.binomtest(4, 5, 0.5).pvalue, rel=1e-12)
    assert (r["ci_low"], r["ci_high"]) == wilson_interval(4, 5)
    # lists with None work too
    assert sign_concordance([1, None, -1], [1, 1, 1])["n_excluded_missing"] == 1
    empty = sign_concordance([0.0], [1.0])
    assert empty["n"] == 0 and math.isnan(empty["fraction"]) and math.isnan(empty["p_greater"])


def test_planted_concordance_detected():
    rng = np.random.default_rng(0)
    y = rng.normal(size=2000)
    x = np.where(rng.random(2000) < 0.56, np.sign(y), -np.sign(y)) * rng.exponential(size=2000)
    r = sign_concordance(x, y)
    assert r["p_greater"] < 1e-4 and r["ci_low"] > 0.5
