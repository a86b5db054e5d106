"""Figures: every plot function writes a real PNG of the requested size, refuses empty
input clearly, and the data preparation behind the figures is right (P15: top variants
by ABSOLUTE value; ROC/AUC against an oracle). Tiny data and a low dpi keep it fast."""

from __future__ import annotations

import struct

import numpy as np
import polars as pl
import pytest

from agval.errors import GuardError, MissingColumnError
from agval.plots import mpra as M
from agval.plots import qtl as Q
from agval.plots import twas as T
from agval.plots._common import EmptyPlotInputError, correlation_stats, save

DPI = 60
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TISSUES = ["Heart_Atrial_Appendage", "Heart_Left_Ventricle", "Whole_Blood", "Prostate"]
ASSAYS = ["RNA", "ATAC", "DNASE", "CAGE"]
AGGS = ["dnase_center", "dnase_mean", "rna_center"]


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


# -- tiny data ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def qtl_df() -> pl.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.4, 60)
    return pl.DataFrame({"variant_id": [f"chr1:{1000 + i}:A>G" for i in range(60)],
                         "score": x, "beta": 0.5 * x + rng.normal(0, 0.3, 60)})


@pytest.fixture(scope="module")
def triplets() -> pl.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for gi, g in enumerate(["PITX2", "TBX5", "SCN5A", "KCNN3", "G1", "G2"]):
        for t in TISSUES[: 2 + gi % 3]:
            for v in range(6):
                pip = float(rng.uniform(0, 1) ** 3)
                rows.append({"gene_id": f"ENSG{gi:05d}", "gene_name": g, "tissue": t,
                             "variant_key": f"chr1:{gi * 10_000 + v * 100}:A>G",
                             "pos": gi * 10_000 + v * 100, "pip": pip, "cs": 0 if pip > 0.2 else -1})
    return pl.DataFrame(rows)


@pytest.fixture(scope="module")
def long_scores(triplets) -> pl.DataFrame:
    rng = np.random.default_rng(2)
    return pl.concat([triplets.with_columns(pl.lit(a).alias("assay"),
                                            pl.Series("score", rng.normal(0, 0.05, triplets.height)),
                                            (pl.col("cs") >= 0).alias("in_cs")) for a in ASSAYS])


@pytest.fixture(scope="module")
def grid() -> pl.DataFrame:
    rng = np.random.default_rng(3)
    # the column names of agval.stats.twas's Q1 and Q4 tables
    return pl.DataFrame([{"tissue": t, "assay": a, "accuracy": float(rng.uniform(0.45, 0.6)),
                          "n": int(rng.integers(50, 500)), "perm_p": float(rng.uniform(0, 0.2)),
                          "spearman_rho": float(rng.uniform(-0.4, 0.4)), "n_genes": 40,
                          "perm_p_two_sided": float(rng.uniform(0, 1))}
                         for t in TISSUES for a in ASSAYS])


@pytest.fixture(scope="module")
def gene_tissue() -> pl.DataFrame:
    rng = np.random.default_rng(4)
    rows = [{"gene_name": f"G{g}", "tissue": t, "twas_z": float(rng.normal(0, 6))}
            for g in range(8) for t in TISSUES if (g + len(t)) % 3]
    df = pl.DataFrame(rows)
    return df.with_columns((pl.col("twas_z") * 0.01 + pl.Series(rng.normal(0, 0.05, df.height))).alias("ag_g"))


@pytest.fixture(scope="module")
def mpra_df() -> pl.DataFrame:
    rng = np.random.default_rng(5)
    loc = rng.integers(0, 6, 80)
    base = rng.normal(0.5, 0.1, 6)
    d = {"input_id": [f"L{i}" for i in loc], "log2_ratio": rng.normal(-1, 1.5, 80) + base[loc]}
    for a in AGGS:
        d[a] = base[loc] + rng.normal(0, 0.05, 80)
    return pl.DataFrame(d)


@pytest.fixture(scope="module")
def wt_mut(mpra_df) -> pl.DataFrame:
    rng = np.random.default_rng(6)
    return pl.concat([pl.DataFrame({"aggregate": a, "wt": mpra_df[a],
                                    "mutant": mpra_df[a] + rng.normal(0, 0.02, mpra_df.height)})
                      for a in AGGS])


# Each case: (name, width, height, call(data, path, size_kwargs)).
CASES = [
    ("qtl_scatter", 5, 4, lambda d, p, k: Q.qtl_scatter(d["qtl"], p, **k)),
    ("qtl_distributions", 8, 6, lambda d, p, k: Q.qtl_distributions(d["qtl"], p, bins=15, **k)),
    ("qtl_residuals", 8, 4, lambda d, p, k: Q.qtl_residuals(d["qtl"], p, bins=15, **k)),
    ("qtl_top_variants", 9, 5, lambda d, p, k: Q.qtl_top_variants(d["qtl"], p, n=10, **k)),
    ("qtl_forest", 6, 4, lambda d, p, k: Q.qtl_forest(pl.DataFrame(
        {"track": ["ATAC", "DNASE", "H3K27ac"], "spearman_rho": [0.4, 0.3, -0.1], "ci_low": [0.3, 0.2, -0.2],
         "ci_high": [0.5, 0.4, 0.0], "n": [60, 60, 40]}), p, **k)),
    ("qtl_mode_comparison", 8, 4, lambda d, p, k: Q.qtl_mode_comparison(pl.concat(
        [d["qtl"].with_columns(pl.lit("original").alias("mode")),
         d["qtl"].with_columns(pl.lit("corrected").alias("mode"), pl.col("score") * 3)]), p, **k)),
    ("twas_data_overview", 8, 6, lambda d, p, k: T.twas_data_overview(d["trip"], p, **k)),
    ("twas_pip_manhattan", 8, 5, lambda d, p, k: T.twas_pip_manhattan(
        d["trip"], p, genes=["PITX2", "TBX5", "SCN5A", "KCNN3"], **k)),
    ("twas_concordance_heatmap", 6, 5, lambda d, p, k: T.twas_concordance_heatmap(d["grid"], p, **k)),
    ("twas_permutation_null", 5, 4, lambda d, p, k: T.twas_permutation_null(
        np.random.default_rng(0).normal(0.5, 0.02, 200), 0.55, p, **k)),
    ("twas_cs_enrichment", 8, 3.5, lambda d, p, k: T.twas_cs_enrichment(pl.DataFrame(
        {"assay": ASSAYS, "mean_abs_cs": [0.0015, 0.028, 0.053, 0.017],
         "mean_abs_noncs": [0.0013, 0.024, 0.047, 0.015], "fold": [1.1, 1.18, 1.14, 1.14],
         "mwu_p": [0.3, 2.3e-9, 8.5e-5, 4.5e-8]}), p, **k)),
    ("twas_score_distributions", 8, 3.5, lambda d, p, k: T.twas_score_distributions(d["long"], p, **k)),
    ("twas_pip_vs_score", 7, 6, lambda d, p, k: T.twas_pip_vs_score(d["long"], p, **k)),
    ("twas_tissue_accuracy", 6, 4, lambda d, p, k: T.twas_tissue_accuracy(
        d["grid"].filter(pl.col("assay") == "RNA"), p, **k)),
    ("twas_heart_vs_other", 8, 3.5, lambda d, p, k: T.twas_heart_vs_other(d["long"], p, **k)),
    ("twas_z_heatmap", 6, 6, lambda d, p, k: T.twas_z_heatmap(d["gt"], p, **k)),
    ("ag_heatmap", 6, 6, lambda d, p, k: T.ag_heatmap(d["gt"], p, **k)),
    ("twas_specificity_bars", 5, 4, lambda d, p, k: T.twas_specificity_bars(pl.DataFrame(
        {"assay": ASSAYS, "spearman_rho": [0.136, 0.317, 0.296, -0.155], "n_genes": [183, 156, 183, 183],
         "spearman_p": [0.066, 5.6e-5, 4.6e-5, 0.037]}), p, **k)),
    ("twas_kendall_violins", 6, 4, lambda d, p, k: T.twas_kendall_violins(pl.DataFrame(
        {"assay": np.repeat(ASSAYS, 12), "tau": np.random.default_rng(1).uniform(-1, 1, 48),
         "p": np.random.default_rng(2).uniform(0, 1, 48)}), p, **k)),
    ("twas_gene_rho_heatmap", 6, 5, lambda d, p, k: T.twas_gene_rho_heatmap(d["grid"], p, **k)),
    ("twas_gene_score_scatter", 8, 4, lambda d, p, k: T.twas_gene_score_scatter(
        d["gt"], p, tissues=["Prostate", "Whole_Blood"], **k)),
    ("mpra_scatter", 5, 4.5, lambda d, p, k: M.mpra_scatter(d["mpra"], p, aggregate="dnase_center",
                                                            bins=15, **k)),
    ("mpra_roc", 5, 4.5, lambda d, p, k: M.mpra_roc(d["mpra"], p, aggregates=AGGS, **k)),
    ("mpra_correlation_heatmap", 6, 5, lambda d, p, k: M.mpra_correlation_heatmap(d["mpra"], p, **k)),
    ("mpra_prediction_distributions", 8, 4, lambda d, p, k: M.mpra_prediction_distributions(
        d["mpra"], p, bins=15, **k)),
    ("mpra_tf_bars", 6, 4, lambda d, p, k: M.mpra_tf_bars(pl.DataFrame(
        {"stratum": ["hlf", "cebp", "lxr", "pparg", "rar"], "pearson_r": [0.19, 0.1, 0.08, -0.24, -0.15],
         "n": [212, 917, 644, 329, 212], "n_distinct_inputs": [3, 8, 5, 2, 2], "ci_low": [0.1, 0.05, 0.0, -0.3, -0.25],
         "ci_high": [0.3, 0.15, 0.15, -0.15, -0.05]}), p, **k)),
    ("mpra_wt_vs_mutant", 8, 4, lambda d, p, k: M.mpra_wt_vs_mutant(d["wm"], p, bins=10, **k)),
    ("mpra_delta_distributions", 8, 4, lambda d, p, k: M.mpra_delta_distributions(d["wm"], p,
                                                                                    bins=15, **k)),
]


@pytest.fixture(scope="module")
def data(qtl_df, triplets, long_scores, grid, gene_tissue, mpra_df, wt_mut):
    return {"qtl": qtl_df, "trip": triplets, "long": long_scores, "grid": grid,
            "gt": gene_tissue, "mpra": mpra_df, "wm": wt_mut}


@pytest.mark.parametrize("name,width,height,call", CASES, ids=[c[0] for c in CASES])
def test_plot_writes_png_of_requested_size(name, width, height, call, data, tmp_path):
    out = call(data, tmp_path / "sub" / f"{name}.png", {"width": width, "height": height, "dpi": DPI})
    assert out == tmp_path / "sub" / f"{name}.png"
    assert out.exists()
    assert png_size(out) == (round(width * DPI), round(height * DPI))
    assert out.stat().st_size > 4_000, "suspiciously small: an empty canvas?"
    assert not list(out.parent.glob(".*.tmp.png")), "temporary file left behind"


def test_every_public_plot_function_is_exercised():
    names = {c[0] for c in CASES}
    public = set()
    for mod in (Q, T, M):
        public |= {n for n in mod.__all__ if callable(getattr(mod, n)) and n not in
                   ("top_variants", "median_split", "roc_points", "roc_auc", "gene_tissue_heatmap")}
    assert public <= names, f"untested plot functions: {sorted(public - names)}"


# -- empty / bad input ------------------------------------------------------------------

EMPTY_CASES = [
    (Q.qtl_scatter, {"score": [], "beta": []}, {}),
    (Q.qtl_distributions, {"score": [], "beta": []}, {}),
    (Q.qtl_residuals, {"score": [], "beta": []}, {}),
    (Q.qtl_top_variants, {"variant_id": [], "score": [], "beta": []}, {}),
    (Q.qtl_forest, {"track": [], "spearman_rho": [], "ci_low": [], "ci_high": []}, {}),
    (Q.qtl_mode_comparison, {"mode": [], "score": [], "beta": []}, {}),
    (T.twas_data_overview, {"gene_id": [], "tissue": [], "variant_key": [], "pip": [], "cs": []}, {}),
    (T.twas_pip_manhattan, {"gene_name": [], "pos": [], "pip": [], "cs": []}, {}),
    (T.twas_concordance_heatmap, {"tissue": [], "assay": [], "accuracy": [], "n": []}, {}),
    (T.twas_cs_enrichment, {"assay": [], "mean_abs_cs": [], "mean_abs_noncs": [], "fold": []}, {}),
    (T.twas_score_distributions, {"assay": [], "score": [], "in_cs": []}, {}),
    (T.twas_pip_vs_score, {"assay": [], "pip": [], "score": []}, {}),
    (T.twas_tissue_accuracy, {"tissue": [], "accuracy": [], "n": []}, {}),
    (T.twas_heart_vs_other, {"tissue": [], "assay": [], "score": []}, {}),
    (T.twas_z_heatmap, {"gene_name": [], "tissue": [], "twas_z": []}, {}),
    (T.ag_heatmap, {"gene_name": [], "tissue": [], "ag_g": []}, {}),
    (T.twas_specificity_bars, {"assay": [], "spearman_rho": [], "n_genes": []}, {}),
    (T.twas_kendall_violins, {"assay": [], "tau": []}, {}),
    (T.twas_gene_rho_heatmap, {"tissue": [], "assay": [], "spearman_rho": [], "n_genes": []}, {}),
    (T.twas_gene_score_scatter, {"tissue": [], "ag_g": [], "twas_z": []}, {}),
    (M.mpra_scatter, {"log2_ratio": [], "dnase_center": []}, {"aggregate": "dnase_center"}),
    (M.mpra_roc, {"log2_ratio": [], "dnase_center": []}, {}),
    (M.mpra_correlation_heatmap, {"log2_ratio": [], "dnase_center": []}, {}),
    (M.mpra_prediction_distributions, {"log2_ratio": [], "dnase_center": []}, {}),
    (M.mpra_tf_bars, {"stratum": [], "pearson_r": [], "n": []}, {}),
    (M.mpra_wt_vs_mutant, {"aggregate": [], "wt": [], "mutant": []}, {}),
    (M.mpra_delta_distributions, {"aggregate": [], "wt": [], "mutant": []}, {}),
]


@pytest.mark.parametrize("fn,cols,kw", EMPTY_CASES, ids=[c[0].__name__ for c in EMPTY_CASES])
def test_empty_input_is_refused_clearly(fn, cols, kw, tmp_path):
    df = pl.DataFrame({c: pl.Series(c, [], dtype=pl.Float64) for c in cols})
    out = tmp_path / "x.png"
    with pytest.raises(EmptyPlotInputError, match="nothing to plot") as ei:
        fn(df, out, **kw)
    assert fn.__name__ in str(ei.value) or "input table is empty" in str(ei.value)
    assert isinstance(ei.value, GuardError)
    assert not out.exists()


def test_all_nan_rows_count_as_empty(tmp_path):
    df = pl.DataFrame({"score": [float("nan"), 1.0], "beta": [1.0, None]})
    with pytest.raises(EmptyPlotInputError, match="no rows with finite values in score, beta"):
        Q.qtl_scatter(df, tmp_path / "x.png")


def test_empty_permutation_null_and_missing_observed(tmp_path):
    with pytest.raises(EmptyPlotInputError, match="twas_permutation_null"):
        T.twas_permutation_null([], 0.5, tmp_path / "x.png")
    with pytest.raises(EmptyPlotInputError, match="observed"):
        T.twas_permutation_null([0.1, 0.2], float("nan"), tmp_path / "x.png")


def test_manhattan_with_no_named_gene_present(triplets, tmp_path):
    with pytest.raises(EmptyPlotInputError, match="NOTAGENE"):
        T.twas_pip_manhattan(triplets, tmp_path / "x.png", genes=["NOTAGENE"])


def test_gene_heatmap_needs_one_assay(gene_tissue, tmp_path):
    two = pl.concat([gene_tissue.rename({"gene_name": "gene_id"}).with_columns(pl.lit(a).alias("assay"))
                     for a in ("RNA", "ATAC")])
    with pytest.raises(GuardError, match="assay="):
        T.ag_heatmap(two, tmp_path / "x.png")
    with pytest.raises(EmptyPlotInputError, match="'CAGE'"):
        T.ag_heatmap(two, tmp_path / "x.png", assay="CAGE")
    out = T.ag_heatmap(two, tmp_path / "x.png", assay="RNA", width=4, height=4, dpi=DPI)  # gene_id fallback
    assert png_size(out) == (240, 240)


def test_missing_column_names_the_column(tmp_path):
    with pytest.raises(MissingColumnError, match="'beta'"):
        Q.qtl_scatter(pl.DataFrame({"score": [1.0, 2.0]}), tmp_path / "x.png")


def test_non_dataframe_and_non_png_are_refused(qtl_df, tmp_path):
    with pytest.raises(TypeError, match="polars DataFrame"):
        Q.qtl_scatter([1, 2, 3], tmp_path / "x.png")
    with pytest.raises(ValueError, match="PNG"):
        save(None, tmp_path / "x.pdf", width=1, height=1)


def test_figures_are_deterministic_and_leave_no_open_figures(qtl_df, tmp_path):
    import matplotlib.pyplot as plt

    a = Q.qtl_scatter(qtl_df, tmp_path / "a.png", width=4, height=3, dpi=DPI)
    b = Q.qtl_scatter(qtl_df, tmp_path / "b.png", width=4, height=3, dpi=DPI)
    assert a.read_bytes() == b.read_bytes()
    assert plt.get_fignums() == []


# -- data preparation -------------------------------------------------------------------

def test_top_variants_sorted_by_absolute_value_not_signed():
    df = pl.DataFrame({"variant_id": ["a", "b", "c", "d", "e", "f"],
                       "score": [0.1, -0.9, 0.5, -0.2, 0.8, None]})
    top = Q.top_variants(df, by="score", n=3)
    assert top["variant_id"].to_list() == ["b", "e", "c"]   # signed nlargest would give e, c, a
    assert top["score"].to_list() == [-0.9, 0.8, 0.5]        # sign kept for the bars
    assert top["rank"].to_list() == [1, 2, 3]
    assert top["abs_value"].to_list() == [0.9, 0.8, 0.5]
    everything = Q.top_variants(df, by="score", n=100)
    assert everything.height == 5                            # the null row is ignored
    assert everything["abs_value"].is_sorted(descending=True)


def test_top_variants_ties_are_deterministic_and_duplicates_kept():
    df = pl.DataFrame({"variant_id": ["z", "y", "x", "x"], "beta": [-0.5, 0.5, 0.5, -0.5]})
    top = Q.top_variants(df, by="beta", n=4)
    assert top["variant_id"].to_list() == ["x", "x", "y", "z"]


def test_correlation_stats_match_scipy():
    from scipy import stats

    rng = np.random.default_rng(9)
    x = rng.normal(size=50)
    y = x + rng.normal(size=50)
    st = correlation_stats(x, y)
    rho, r = stats.spearmanr(x, y), stats.pearsonr(x, y)
    assert st["n"] == 50
    assert st["rho"] == pytest.approx(rho.statistic, abs=1e-12)
    assert st["rho_p"] == pytest.approx(rho.pvalue, rel=1e-9)
    assert st["r"] == pytest.approx(r.statistic, abs=1e-12)
    assert st["r2"] == pytest.approx(stats.linregress(x, y).rvalue ** 2, abs=1e-12)
    assert np.isnan(correlation_stats(np.ones(5), y[:5])["rho"])  # constant input: no warning, NaN


def test_roc_points_and_auc_handle_ties():
    y = [True, False, True, False, True, False]
    s = [0.9, 0.9, 0.5, 0.3, 0.3, 0.1]
    pts = M.roc_points(y, s)
    assert pts["fpr"].to_list() == pytest.approx([0, 1 / 3, 1 / 3, 2 / 3, 1])
    assert pts["tpr"].to_list() == pytest.approx([0, 1 / 3, 2 / 3, 1, 1])
    # Mann-Whitney form, pairs (pos, neg): wins + 0.5 ties = (2.5 + 2 + 1.5) / 9
    assert M.roc_auc(y, s) == pytest.approx(6 / 9)
    with pytest.raises(GuardError, match="both classes"):
        M.roc_points([True, True], [0.1, 0.2])


def test_roc_auc_matches_sklearn_oracle():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(11)
    act = rng.normal(size=300)
    pred = np.round(act + rng.normal(size=300), 1)  # rounded: many ties
    labels, thr = M.median_split(act)
    assert thr == np.median(act) and labels.sum() == 150
    assert M.roc_auc(labels, pred) == pytest.approx(sk.roc_auc_score(labels, pred), abs=1e-12)
    fpr, tpr, _ = sk.roc_curve(labels, pred, drop_intermediate=False)
    pts = M.roc_points(labels, pred)
    assert np.allclose(pts["fpr"].to_numpy(), fpr) and np.allclose(pts["tpr"].to_numpy(), tpr)


def test_median_split_is_strictly_greater():
    labels, thr = M.median_split([1.0, 2.0, 2.0, 2.0, 3.0])
    assert thr == 2.0
    assert labels.tolist() == [False, False, False, False, True]
