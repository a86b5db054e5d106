"""agval.stats.mpra: AUROC (sklearn incl. ties), median split, strata, pseudo-replication,
cluster-aware inference."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from agval.stats import mpra as M


def test_auroc_equals_sklearn_including_ties():
    rng = np.random.default_rng(0)
    for n, levels in [(20, 3), (200, 5), (1000, 1000), (57, 2)]:
        labels = rng.random(n) < 0.4
        score = rng.integers(0, levels, n).astype(float) + labels * 0.5 * rng.random(n).round(0)
        assert M.auroc(labels, score) == pytest.approx(roc_auc_score(labels, score), rel=1e-12, abs=1e-15)
    # all scores tied -> 0.5; one class only -> NaN; missing values dropped pairwise
    assert M.auroc([0, 1, 1, 0], [2, 2, 2, 2]) == 0.5
    assert math.isnan(M.auroc([1, 1], [0.1, 0.2]))
    assert M.auroc([0, 1, None, 1], [0.1, 0.9, 0.5, np.nan]) == 1.0


def test_auroc_median_split_matches_seed_definition():
    rng = np.random.default_rng(1)
    measured = np.round(rng.normal(size=301), 1)  # ties at the median
    predicted = measured + rng.normal(size=301)
    r = M.auroc_median_split(measured, predicted)
    thr = np.median(measured)
    y = measured > thr
    assert r["threshold"] == thr and r["n_positive"] == y.sum() and r["n_negative"] == (~y).sum()
    assert r["auroc"] == pytest.approx(roc_auc_score(y, predicted), rel=1e-12)
    assert r["n_positive"] < 151  # strictly greater: ties at the median are negative
    even = M.auroc_median_split([1.0, 2.0, 3.0, 4.0], [0.1, 0.2, 0.3, 0.4])
    assert even["threshold"] == 2.5 and (even["n_positive"], even["n_negative"]) == (2, 2)


def _library(seed=0, n_inputs=18, per_input=60, slope=0.0):
    """Rows >> distinct inputs: one prediction per input, many constructs per input."""
    rng = np.random.default_rng(seed)
    pred_in = rng.normal(size=n_inputs)
    locus_effect = slope * pred_in + rng.normal(size=n_inputs)
    inputs = np.repeat([f"seq{i}" for i in range(n_inputs)], per_input)
    code = np.repeat(np.arange(n_inputs), per_input)
    measured = locus_effect[code] + 0.5 * rng.normal(size=code.size)
    return measured, pred_in[code], inputs


def test_pseudo_replication_warning():
    _, _, inputs = _library()
    r = M.pseudo_replication_check(inputs)
    assert r["warning"] and r["n_rows"] == 1080 and r["n_distinct_inputs"] == 18 and r["ratio"] == 60
    assert "pseudo-replication" in r["message"]
    ok = M.pseudo_replication_check(pl.Series([f"s{i}" for i in range(100)]))
    assert not ok["warning"] and ok["ratio"] == 1.0
    assert M.pseudo_replication_check(["a", "a", "b", "b"], warn_ratio=1.5)["warning"]


def test_mpra_statistics_bundle_and_cluster_aware_intervals():
    measured, predicted, inputs = _library(seed=3)
    measured[0] = np.nan
    r = M.mpra_statistics(measured, predicted, inputs=inputs, n_boot=300, n_perm=300, seed=2,
                          include_naive=True)
    keep = np.isfinite(measured)
    m, p = measured[keep], predicted[keep]
    assert r["n"] == 1079 and r["n_dropped"] == 1 and r["n_distinct_inputs"] == 18
    assert r["pseudo_replication_warning"] and r["n_clusters"] == 18 and r["cluster_unit"] == "cluster"
    assert r["pearson_r"] == pytest.approx(stats.pearsonr(p, m).statistic, rel=1e-9)
    assert r["pearson_p"] == pytest.approx(stats.pearsonr(p, m).pvalue, rel=1e-9)
    assert r["spearman_rho"] == pytest.approx(stats.spearmanr(p, m).statistic, rel=1e-9)
    assert r["spearman_p"] == pytest.approx(stats.spearmanr(p, m).pvalue, rel=1e-9)
    assert r["auroc"] == pytest.approx(roc_auc_score(m > np.median(m), p), rel=1e-12)
    assert r["permutation_mode"] == "cluster_values"
    for name in ("pearson", "spearman", "auroc"):
        cluster_w = r[f"{name}_ci_high"] - r[f"{name}_ci_low"]
        naive_w = r[f"{name}_ci_high_naive"] - r[f"{name}_ci_low_naive"]
        assert cluster_w > 2 * naive_w, name
    # 18 inputs and no planted effect: the cluster permutation p is honest (not tiny),
    # while the row-level p treats 1,079 rows as independent
    assert r["spearman_perm_p"] > 0.05
    again = M.mpra_statistics(measured, predicted, inputs=inputs, n_boot=300, n_perm=300, seed=2,
                              include_naive=True)
    assert again == r


def test_mpra_planted_activity_recovered_across_inputs():
    rng = np.random.default_rng(5)
    n = 400
    pred = rng.normal(size=n)
    measured = 0.6 * pred + rng.normal(size=n)
    r = M.mpra_statistics(measured, pred, inputs=[f"s{i}" for i in range(n)], n_boot=300, n_perm=300, seed=1)
    assert not r["pseudo_replication_warning"]
    assert r["spearman_ci_low"] > 0.3 and r["auroc_ci_low"] > 0.6 and r["pearson_perm_p"] == 2 / 301
    covered = r["pearson_ci_low"] <= 0.6 / math.sqrt(1.36) <= r["pearson_ci_high"]
    assert covered


def test_stratified_statistics():
    rng = np.random.default_rng(7)
    n = 300
    df = pl.DataFrame({
        "mpra": rng.normal(size=n),
        "pred": rng.normal(size=n),
        "strand": rng.choice(["+", "-"], n),
        "chrom": np.where(np.arange(n) < 295, "chr1", "chr2"),
        "tf": [["cebp", "pparg"] if i % 3 == 0 else ["cebp"] for i in range(n)],
        "locus": np.repeat(np.arange(30), 10),
    })
    df = df.with_columns(pl.when(pl.col("strand") == "-").then(1.0).otherwise(pl.col("pred")).alias("pred_const"))
    s = M.stratified_statistics(df, measured_col="mpra", predicted_col="pred", by="strand", input_col="locus")
    assert s["stratum"].to_list() == ["+", "-"]
    plus = df.filter(pl.col("strand") == "+")
    assert s["pearson_r"][0] == pytest.approx(stats.pearsonr(plus["pred"], plus["mpra"]).statistic, rel=1e-9)
    assert s["spearman_p"][0] == pytest.approx(stats.spearmanr(plus["pred"], plus["mpra"]).pvalue, rel=1e-9)
    assert s["n_distinct_inputs"][0] == plus["locus"].n_unique()
    chrom = M.stratified_statistics(df, measured_col="mpra", predicted_col="pred", by="chrom", min_size=10)
    assert chrom["stratum"].to_list() == ["chr1"]  # chr2 has 5 rows < min_size
    tf = M.stratified_statistics(df, measured_col="mpra", predicted_col="pred", by="tf")
    assert dict(zip(tf["stratum"], tf["n"])) == {"cebp": 300, "pparg": 100}
    const = M.stratified_statistics(df, measured_col="mpra", predicted_col="pred_const", by="strand")
    row = const.filter(pl.col("stratum") == "-").row(0, named=True)
    assert row["constant_prediction"] and math.isnan(row["pearson_r"])
    with pytest.raises(Exception, match="missing"):
        M.stratified_statistics(df, measured_col="mpra", predicted_col="nope", by="strand")
