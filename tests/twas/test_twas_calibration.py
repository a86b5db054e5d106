"""Calibration of the TWAS statistics on generated triplets (SIMULATED, no world, no services).

The triplets come from the demo generator's own model (:func:`standins.world.studies.twas.
simulated_triplets`: LD blocks, eQTL z, SuSiE, GWAS z, TWAS.Z = w'z / sqrt(w'Rw)), run
over many seeds directly through :mod:`agval.stats.twas`.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from agval.stats import twas as st
from standins.world.studies.twas import simulated_triplets

N_SEEDS = 120
B = 99


def _pooled(q1: dict) -> dict:
    return q1["table"].filter(pl.col("pooled")).row(0, named=True)


def _check_uniform(p: np.ndarray, what: str) -> None:
    """Discrete permutation P-values (multiples of 1 / (B + 1)) are valid: P(p <= a) <= a, and
    here (an exchangeable null) close to a."""
    n = p.size
    for a in (0.1, 0.25, 0.5):
        k = int((p <= a + 1e-12).sum())
        lo, hi = stats.binom.ppf([0.0005, 0.9995], n, a)
        assert lo <= k <= hi, f"{what}: {k}/{n} P-values <= {a} (expected about {a * n:.0f})"
    assert stats.kstest(p, "uniform").pvalue > 1e-3, f"{what}: P-values are not uniform"


@pytest.fixture(scope="module")
def null_runs():
    """Null world (no mediation) with a predictor that carries no variant-level information."""
    q1p, q1w, q4p, accs = [], [], [], []
    for seed in range(N_SEEDS):
        df = simulated_triplets(seed, null=True, predictor="null", n_genes=12, n_variants=8)
        r = _pooled(st.q1_sign_concordance(df, n_permutations=B, seed=seed, twas_p_threshold=None))
        q1p.append(r["perm_p"])
        q1w.append(r["perm_p_weighted"])
        accs.append(r["accuracy"])
        q4 = st.q4_synthetic_twas(df, n_permutations=B, seed=seed + 10_000, twas_p_threshold=None)["table"]
        q4 = q4.sort("n_genes", "tissue", descending=[True, False])
        q4p.append(q4["perm_p_greater"][0])
    return {"q1": np.array(q1p), "q1_weighted": np.array(q1w), "q4": np.array(q4p), "acc": np.array(accs)}


def test_permutation_p_values_are_uniform_under_the_null_world(null_runs):
    assert abs(null_runs["acc"].mean() - 0.5) < 0.02
    _check_uniform(null_runs["q1"], "Q1 pooled within-gene permutation P")
    _check_uniform(null_runs["q1_weighted"], "Q1 PIP-weighted permutation P")
    _check_uniform(null_runs["q4"], "Q4 within-gene score-permutation P")


def test_planted_mediation_is_detected():
    """Planted world (mediation through expression) and a predictor that knows the effects:
    Q1 concordance and Q2 credible-set enrichment are detected in (nearly) every seed."""
    hits1 = hits2 = 0
    for seed in range(10):
        df = simulated_triplets(seed, null=False, predictor="truth", n_genes=12, n_variants=8)
        r = _pooled(st.q1_sign_concordance(df, n_permutations=B, seed=seed, twas_p_threshold=None))
        hits1 += r["accuracy"] > 0.6 and r["perm_p"] <= 0.05 and r["binom_p_greater"] < 0.05
        q2 = st.q2_credible_set_enrichment(df, twas_p_threshold=None).row(0, named=True)
        hits2 += q2["fold"] > 1.5 and q2["mwu_p"] < 0.05
    assert hits1 >= 9 and hits2 >= 9


def test_self_inclusion_makes_q1_concord_without_mediation():
    """Finding (documented in docs/metrics-twas.md): TWAS.Z contains each variant's own eQTL
    weight times its own GWAS z, so sign(z_ALT * TWAS.Z) follows the variant's eQTL direction
    even in a world without mediation; a predictor of eQTL directions then 'concords' and the
    within-gene permutation (which breaks the score-weight link) rejects far above its level."""
    rejections, accs = 0, []
    for seed in range(20):
        df = simulated_triplets(seed, null=True, predictor="truth", n_genes=12, n_variants=8)
        r = _pooled(st.q1_sign_concordance(df, n_permutations=B, seed=seed, twas_p_threshold=None))
        rejections += r["perm_p"] <= 0.05
        accs.append(r["accuracy"])
    assert np.mean(accs) > 0.58
    assert rejections >= 10  # a calibrated test would reject about once in 20
