"""agval.mpra: aggregates (centred window, per strand), wild type vs mutant merge, statistics
against scipy/sklearn, pseudo-replication, precomputed predictions, the real GSE84888 counts."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from agval.drops import DropLog
from agval.errors import CardinalityError
from agval.mpra.aggregates import aggregate_run, center_bounds, choose_bin_size
from agval.mpra.analysis import aggregate_statistics, strata_tables, within_cluster_pearson
from agval.mpra.effects import wt_mutant_effects
from agval.mpra.measurements import load_measurements, tf_tokens
from agval.mpra.predictions import attach_predictions, load_predictions
from agval.scoring.sequences import SequenceRun

L = 16_384


def _meta(strands):
    n = len(strands)
    return pl.DataFrame({"track_name": [f"t{i}" for i in range(n)], "track_strand": strands,
                         "ontology_curie": ["CL:0000136"] * n})


def _run(per_base: dict[str, dict[str, np.ndarray]], strands: dict[str, list[str]], bin_size: int):
    preds = {}
    for sid, outs in per_base.items():
        for ot, a in outs.items():
            preds[(sid + "-sha", ot)] = a.reshape(L // bin_size, bin_size, a.shape[1]).sum(axis=1).astype(np.float32)
    seqs = pl.DataFrame({"seq_id": list(per_base), "sequence_sha256": [s + "-sha" for s in per_base],
                         "length": [L] * len(per_base)})
    return SequenceRun(seqs, preds, {ot: _meta(s) for ot, s in strands.items()}, bin_size,
                       pl.DataFrame(schema={"seq_id": pl.String}))


def test_centred_window_and_pooled_per_strand_aggregates():
    assert center_bounds(L, 200) == (8092, 8292)          # not the seed's [900:1100]-style offset (P25)
    assert choose_bin_size(L, 200) == 4 and choose_bin_size(L, 201) == 1
    rng = np.random.default_rng(0)
    dn = rng.random((L, 1)).astype(np.float32)
    cage = rng.random((L, 2)).astype(np.float32) * np.array([1.0, 5.0], dtype=np.float32)
    run = _run({"in1": {"DNASE": dn, "CAGE": cage}}, {"DNASE": ["."], "CAGE": ["+", "-"]}, bin_size=4)
    per_track, wide = aggregate_run(run, length=L, center_window=200, outputs=["DNASE", "CAGE"])
    row = wide.row(0, named=True)
    lo, hi = 8092, 8292
    assert row["dnase_center"] == pytest.approx(dn[lo:hi].mean(), rel=1e-5)
    assert row["dnase_mean"] == pytest.approx(dn.mean(), rel=1e-5)
    assert row["cage_center_plus"] == pytest.approx(cage[lo:hi, 0].mean(), rel=1e-5)
    assert row["cage_center_minus"] == pytest.approx(cage[lo:hi, 1].mean(), rel=1e-5)
    assert row["cage_center"] == pytest.approx(cage[lo:hi].mean(), rel=1e-5)      # pooled over tracks
    assert "dnase_center_plus" not in wide.columns                                 # unstranded: no split
    assert per_track.height == 2 * 3 and set(per_track["window"]) == {"center", "mean"}
    # a window whose edges are not on bin edges still averages the right bases at bin size 1
    run1 = _run({"in1": {"DNASE": dn}}, {"DNASE": ["."]}, bin_size=1)
    _, w1 = aggregate_run(run1, length=L, center_window=201, outputs=["DNASE"])
    assert w1["dnase_center"][0] == pytest.approx(dn[8092:8293].mean(), rel=1e-5)


def test_mutants_merge_to_their_own_wild_type_and_explosions_fail():
    t = pl.DataFrame({"row_id": [f"r{i}" for i in range(6)], "locus_id": ["A", "A", "A", "B", "B", "C"],
                      "modification": ["wt", "x_1_2_mut1", "y_3_4_gata", "wt", "x_1_2_mut1", "z_1_2_mut1"],
                      "log2_ratio": [1.0, 0.5, 2.0, -1.0, -1.5, 0.0],
                      "dnase_center": [3.0, 1.0, 3.5, 2.0, 2.0, 1.0],
                      "input_id": ["i0", "i1", "i2", "i3", "i3", "i5"]})
    drops = DropLog()
    eff = wt_mutant_effects(t, ["log2_ratio", "dnase_center"], drops=drops)
    assert eff.height == 3                              # one row per mutant with a wild type
    assert eff["log2_ratio_delta"].to_list() == [-0.5, 1.0, -0.5]
    assert eff["dnase_center_delta"].to_list() == [-2.0, 0.5, 0.0]
    assert eff["same_input"].to_list() == [False, False, True]
    assert drops.frame().select("row_id", "reason").rows() == [("r5", "no_wild_type")]
    # two wild types for one locus (the seed's non-unique variant_id, P19): refused, not exploded
    dup = pl.concat([t, t.filter(pl.col("row_id") == "r0").with_columns(pl.lit("r9").alias("row_id"))])
    with pytest.raises(CardinalityError, match=r"mutant x wild type.*not unique"):
        wt_mutant_effects(dup, ["log2_ratio"])


def _library(seed=0, n_inputs=18, per_input=40, slope=0.5):
    rng = np.random.default_rng(seed)
    pred = rng.normal(size=n_inputs)
    locus = slope * pred + rng.normal(size=n_inputs)
    code = np.repeat(np.arange(n_inputs), per_input)
    return pl.DataFrame({"log2_ratio": locus[code] + 0.3 * rng.normal(size=code.size), "dnase_center": pred[code],
                         "input_id": [f"s{c}" for c in code], "locus_id": [f"L{c}" for c in code],
                         "strand": np.where(code % 2 == 0, "+", "-"),
                         "tf": [["wt"] if c % 3 else ["pparg", "cebp"] for c in code]})


def test_statistics_match_scipy_and_sklearn():
    rng = np.random.default_rng(3)
    n = 150
    pred = rng.normal(size=n)
    df = pl.DataFrame({"log2_ratio": pred + rng.normal(size=n), "dnase_center": pred,
                       "input_id": [f"s{i}" for i in range(n)]})
    st = aggregate_statistics(df, ["dnase_center"], n_boot=200, n_perm=200, seed=1)["dnase_center"]
    m, p = df["log2_ratio"].to_numpy(), df["dnase_center"].to_numpy()
    r, rp = stats.pearsonr(p, m)
    rho, sp = stats.spearmanr(p, m)
    y = m > np.median(m)
    assert st["pearson_r"] == pytest.approx(r, rel=1e-10) and st["pearson_p"] == pytest.approx(rp, rel=1e-6)
    assert st["spearman_rho"] == pytest.approx(rho, rel=1e-10) and st["spearman_p"] == pytest.approx(sp, rel=1e-6)
    assert st["auroc"] == pytest.approx(roc_auc_score(y, p), rel=1e-12)
    assert (st["threshold"], st["n_positive"], st["n_negative"]) == (np.median(m), int(y.sum()), int((~y).sum()))
    assert st["n"] == n and st["n_distinct_inputs"] == n and not st["pseudo_replication_warning"]
    assert st["pearson_ci_low"] < r < st["pearson_ci_high"]


def test_pseudo_replicated_library_warns_and_cluster_ci_is_wider():
    df = _library()
    st = aggregate_statistics(df, ["dnase_center"], cluster_col="locus_id", n_boot=400, n_perm=400,
                              seed=2)["dnase_center"]
    assert st["pseudo_replication_warning"] and st["n_distinct_inputs"] == 18 and st["n"] == 720
    assert "pseudo-replication" in st["pseudo_replication_message"]
    cluster = st["pearson_ci_high"] - st["pearson_ci_low"]
    naive = st["pearson_ci_high_naive"] - st["pearson_ci_low_naive"]
    assert cluster > 2 * naive
    assert st["n_clusters"] == 18 and st["permutation_mode"] == "cluster_values"
    # predictions constant within loci: the within-locus correlation is undefined (V2)
    assert np.isnan(st["within_pearson_r"]) and st["n_informative_clusters"] == 0
    w = within_cluster_pearson([1, 2, 3, 4], [1.0, 2.0, 5.0, 6.0], ["a", "a", "b", "b"])
    assert w["within_pearson_r"] == pytest.approx(1.0) and w["n_informative_clusters"] == 2


def test_strata_and_tf_tokens():
    assert tf_tokens("wt") == ["wt"] and tf_tokens("lxr_cebp_2_3") == ["lxr", "cebp"]
    assert tf_tokens("ap1_49_57_ap1") == [] and tf_tokens("cebp_32_43_cebp") == ["cebp"]
    df = _library()
    tabs = strata_tables(df, "dnase_center", ["strand", "tf", "chromosome"], cluster_col="locus_id", min_size=10,
                         n_boot=100)
    assert set(tabs) == {"strand", "tf"}                   # absent columns are skipped
    assert tabs["strand"]["stratum"].to_list() == ["+", "-"] and tabs["strand"]["n"].sum() == 720
    tf = tabs["tf"]
    assert set(tf["stratum"]) == {"wt", "pparg", "cebp"}
    assert tf.filter(pl.col("stratum") == "pparg")["n_clusters"][0] == 6
    assert (tf["ci_low"] <= tf["pearson_r"]).all()


def test_precomputed_predictions_join_is_checked(tmp_path):
    measured = pl.DataFrame({"row_id": ["a", "b", "c", "d"], "element_id": ["e1", "e2", "e3", "e4"],
                             "locus_id": ["L1", "L1", "L2", "L3"], "log2_ratio": [0.1, 0.2, 0.3, 0.4]})
    p = tmp_path / "preds.tsv"
    p.write_text("variant_id\tdnase_center\tnote\nL1\t1.5\tx\nL2\t2.5\ty\n")
    preds, key, aggs = load_predictions(p)
    assert key == "variant_id" and aggs == ["dnase_center"]
    drops = DropLog()
    out = attach_predictions(measured, preds, key=key, aggregates=aggs, drops=drops)
    assert out["row_id"].to_list() == ["a", "b", "c"] and out["input_id"].to_list() == ["L1", "L1", "L2"]
    assert drops.frame().select("row_id", "reason").rows() == [("d", "no_prediction")]
    p.write_text("variant_id\tdnase_center\nL1\t1.5\nL1\t1.6\nL2\t2.5\n")
    preds, key, aggs = load_predictions(p)
    with pytest.raises(CardinalityError, match="not unique"):
        attach_predictions(measured, preds, key=key, aggregates=aggs)


def test_real_gse84888_activity(shared_data):
    files = sorted((shared_data / "mpra").glob("GSE84888_Pool*_MPRA.txt"))
    if len(files) != 2:
        pytest.skip("GSE84888 count files are absent")
    m = load_measurements(files)
    s = m.summary
    assert s["n_constructs"] == 6963 and s["by_pool"] == {"Pool6": 3720, "Pool7": 3243} and s["n_loci"] == 18
    assert s["log2_ratio_mean"] == pytest.approx(-1.075012, abs=5e-7)
    assert s["log2_ratio_median"] == pytest.approx(-1.0011223, abs=5e-8)
    assert s["by_strand"] == {"+": 3885, "-": 3078} and s["n_zero_rna"] == 180
    strict = load_measurements(files, min_dna=100)
    assert strict.summary["filters"]["dropped"]["min_dna"] > 0
    assert strict.summary["n_constructs"] == 6963 - strict.summary["filters"]["dropped"]["min_dna"]


def test_published_table_with_its_own_measurement(tmp_path):
    """The seed's per-row CSV (variant_id not unique, mpra_log2_ratio beside the predictions)."""
    from agval.mpra.predictions import measured_from_predictions

    p = tmp_path / "v2.csv"
    p.write_text("variant_id,mpra_log2_ratio,dnase_center,dnase_mean\n"
                 "chr5:1-17:-:A,0.5,0.001,0.002\nchr5:1-17:-:A,0.7,0.001,0.002\nchr3:5-21:+:C,-1.0,0.003,0.001\n")
    preds, key, aggs = load_predictions(p, measured_column="mpra_log2_ratio")
    assert key == "variant_id" and aggs == ["dnase_center", "dnase_mean"]
    frame = measured_from_predictions(preds, key=key)
    assert frame["log2_ratio"].to_list() == [0.5, 0.7, -1.0]
    assert frame["input_id"].n_unique() == 2 and frame["locus_id"].to_list() == frame["variant_id"].to_list()


def test_generic_per_barcode_count_table(tmp_path):
    p = tmp_path / "barcodes.tsv"
    p.write_text("element\tbarcode\trna\tdna\n" + "".join(
        f"e{i // 3}\tbc{i}\t{10 + i}\t{20 + i}\n" for i in range(9)))
    m = load_measurements([p], count_format="table")
    t = m.table.sort("element_id")
    assert t["element_id"].to_list() == ["e0", "e1", "e2"] and t["n_rows"].to_list() == [3, 3, 3]
    assert t["log2_ratio"][0] == pytest.approx(np.log2((10 + 11 + 12 + 1) / (20 + 21 + 22 + 1)))
    assert m.summary["filters"]["aggregate"] == "sum" and m.summary["n_constructs"] == 3


def test_strata_and_aggregate_grid_carry_cluster_p_and_bh():
    """BH over every stratum of every strata table (one family) and over the aggregate grid;
    each stratum's P is the cluster permutation of its own rows."""
    from agval.stats.resampling import cluster_permutation_test

    df = _library(seed=4).with_columns((pl.col("dnase_center") * 0.5 + 0.1).alias("cage_center"))
    tabs = strata_tables(df, "dnase_center", ["strand", "tf"], cluster_col="locus_id", min_size=10, n_boot=50,
                         n_perm=150, seed=3)
    allp = np.concatenate([tabs[k]["perm_p"].to_numpy() for k in ("strand", "tf")])
    allq = np.concatenate([tabs[k]["q_bh"].to_numpy() for k in ("strand", "tf")])
    np.testing.assert_allclose(allq, stats.false_discovery_control(allp), atol=1e-15)
    plus = df.filter(pl.col("strand") == "+")
    ref = cluster_permutation_test(plus["dnase_center"].to_numpy(), plus["log2_ratio"].to_numpy(), "pearson",
                                   clusters=plus["locus_id"].to_numpy(), n_perm=150, seed=3)
    assert tabs["strand"].filter(pl.col("stratum") == "+")["perm_p"][0] == ref["p"]
    st = aggregate_statistics(df, ["dnase_center", "cage_center"], cluster_col="locus_id", n_boot=50, n_perm=150,
                              seed=3)
    for k in ("pearson", "spearman", "auroc"):
        p = [st[a][f"{k}_perm_p"] for a in st]
        np.testing.assert_allclose([st[a][f"{k}_perm_q"] for a in st], stats.false_discovery_control(p),
                                   atol=1e-15)
