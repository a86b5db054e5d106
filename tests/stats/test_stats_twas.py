"""agval.stats.twas (Q1-Q4) against brute-force computations, scipy oracles and planted truth."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats

from agval.errors import InputError, MissingColumnError
from agval.stats import twas as T

ASSAYS = ("RNA", "ATAC")


def make_triplets(*, n_tissues=6, n_genes=40, pairs_per_tissue=15, mean_variants=6, effect=0.0,
                  bias=0.0, seed=0, assays=ASSAYS, z_positive=False, tissue_prefix="Tissue"):
    """Synthetic long triplet table. Tissues 0 and 1 are heart tissues.

    score = bias + effect * sign(z_alt * twas_z) + N(0, 1) (planted mediation when effect > 0).
    """
    rng = np.random.default_rng(seed)
    tissues = [f"Heart_{i}" if i < 2 else f"{tissue_prefix}_{i}" for i in range(n_tissues)]
    rows = []
    for ti, tissue in enumerate(tissues):
        genes = rng.choice(n_genes, size=pairs_per_tissue, replace=False)
        for g in genes:
            m = 1 + rng.poisson(mean_variants - 1)
            tz = rng.choice([-1, 1]) * (4.6 + rng.exponential(2))
            z = rng.normal(0, 3, m)
            if z_positive:
                z = np.abs(z) + 0.1
            pip = rng.beta(0.4, 2, m)
            cs = np.where(pip > 0.25, rng.integers(0, 2, m), -1)
            for j in range(m):
                rows.append((f"chr1:{1000 * g + j}:A>G", f"ENSG{g:05d}", tissue, float(pip[j]), int(cs[j]),
                             float(z[j]), float(tz)))
    base = pl.DataFrame(rows, schema=["variant_key", "gene_id", "tissue", "pip", "cs", "z_alt", "twas_z"],
                        orient="row")
    frames = []
    for a in assays:
        e = np.sign(base["z_alt"].to_numpy() * base["twas_z"].to_numpy())
        score = bias + effect * e + rng.normal(size=base.height)
        frames.append(base.with_columns(pl.lit(a).alias("assay"), pl.Series("score", score)))
    return pl.concat(frames)


# ----------------------------------------------------------------------------- Q1

def test_q1_counts_equal_brute_force():
    df = make_triplets(seed=1, effect=0.2)
    # inject exclusions: zeros and missing values
    score = df["score"].to_numpy().copy()
    score[[0, 5, 9]] = 0.0
    score[[1, 2]] = np.nan
    z = df["z_alt"].to_numpy().copy()
    z[3] = 0.0
    df = df.with_columns(pl.Series("score", score), pl.Series("z_alt", z))
    df = df.with_columns(pl.when(pl.int_range(pl.len()) == 4).then(None).otherwise(pl.col("pip")).alias("pip"))
    res = T.q1_sign_concordance(df, n_permutations=200, seed=3)
    tab = res["table"]
    assert tab.height == len(ASSAYS) * 7 and res["seed"] == 3
    for assay in ASSAYS:
        sub = df.filter(pl.col("assay") == assay)
        for tissue in sorted(sub["tissue"].unique()) + ["pooled"]:
            part = sub if tissue == "pooled" else sub.filter(pl.col("tissue") == tissue)
            s, zz, tz, pip = (part[c].cast(pl.Float64).to_numpy() for c in ("score", "z_alt", "twas_z", "pip"))
            miss = ~(np.isfinite(s) & np.isfinite(zz) & np.isfinite(tz) & np.isfinite(pip))
            zero = ~miss & ((s == 0) | (zz == 0) | (tz == 0))
            ok = ~miss & ~zero
            c = np.sign(s[ok]) == np.sign(zz[ok] * tz[ok])
            row = tab.filter((pl.col("assay") == assay) & (pl.col("tissue") == tissue)).row(0, named=True)
            assert row["n"] == ok.sum() and row["k"] == c.sum()
            assert row["n_excluded_missing"] == miss.sum() and row["n_excluded_zero"] == zero.sum()
            assert row["accuracy"] == pytest.approx(c.mean(), rel=1e-12)
            assert row["accuracy_weighted"] == pytest.approx((pip[ok] * c).sum() / pip[ok].sum(), rel=1e-12)
            assert row["binom_p_greater"] == pytest.approx(
                stats.binomtest(int(c.sum()), int(ok.sum()), 0.5, alternative="greater").pvalue, rel=1e-9)
            assert row["pooled"] == (tissue == "pooled")
            assert 1 / 201 <= row["perm_p"] <= 1 and 1 / 201 <= row["perm_p_weighted"] <= 1
    # reproducible for a seed
    again = T.q1_sign_concordance(df, n_permutations=200, seed=3)["table"]
    assert again.equals(tab)


def test_q1_permutation_null_mean_matches_exact_expectation():
    """Under within-gene permutation E[c_g] = sum_i P(sign of a random group member == e_i)."""
    df = make_triplets(seed=2, effect=0.3, assays=("RNA",))
    B = 2000
    res = T.q1_sign_concordance(df, n_permutations=B, seed=5, return_null=True)
    pooled = res["table"].filter(pl.col("tissue") == "pooled").row(0, named=True)
    g = df.with_columns(s=pl.col("score").sign(), e=(pl.col("z_alt") * pl.col("twas_z")).sign())
    per = g.group_by("gene_id", "tissue").agg(
        n=pl.len(), m=(pl.col("s") > 0).sum(), ep=(pl.col("e") > 0).sum())
    n, m, ep = (per[c].cast(pl.Float64).to_numpy() for c in ("n", "m", "ep"))
    expected = ((ep * m / n) + (n - ep) * (n - m) / n).sum() / n.sum()
    null = res["null"].filter(pl.col("tissue") == "pooled")["accuracy"].to_numpy()
    assert null.size == B
    assert pooled["perm_null_mean"] == pytest.approx(expected, abs=4 * null.std() / math.sqrt(B))
    assert res["null"].height == B * 7


def test_q1_permutation_uniform_under_null_and_detects_planted_effect():
    # 150 independent "tissues" under the null in one call: per-tissue p-values are independent
    null_df = make_triplets(n_tissues=150, n_genes=60, pairs_per_tissue=8, mean_variants=6,
                            seed=7, assays=("RNA",), tissue_prefix="T")
    tab = T.q1_sign_concordance(null_df, n_permutations=399, seed=11)["table"].filter(~pl.col("pooled"))
    pw = tab["perm_p_weighted"].to_numpy()
    assert stats.kstest(pw, "uniform").pvalue > 0.01
    pu = tab["perm_p"].to_numpy()  # discrete statistic: conservative, never liberal
    assert (pu <= 0.05).mean() <= 0.09 and (pu <= 0.2).mean() <= 0.27
    planted = make_triplets(seed=8, effect=0.4, assays=("RNA",))
    t2 = T.q1_sign_concordance(planted, n_permutations=399, seed=1)["table"]
    pooled = t2.filter(pl.col("pooled")).row(0, named=True)
    assert pooled["accuracy"] > 0.55 and pooled["perm_p"] == 1 / 400 and pooled["binom_p_greater"] < 1e-4


def test_q1_between_gene_concordance_is_not_confirmed_by_permutation():
    """P22: when agreement comes only from gene-level signs (all z_alt > 0, score follows
    the sign of TWAS.Z), the binomial is tiny but the within-gene permutation is not."""
    df = make_triplets(seed=9, z_positive=True, assays=("RNA",))
    df = df.with_columns((pl.col("twas_z").sign() * 0.5 + pl.col("score")).alias("score"))
    pooled = T.q1_sign_concordance(df, n_permutations=199, seed=2)["table"].filter(pl.col("pooled")).row(0, named=True)
    assert pooled["binom_p_greater"] < 1e-6
    assert pooled["perm_p"] > 0.2


def test_heart_vs_nonheart_equals_oracles():
    df = make_triplets(seed=4, effect=0.1)
    res = T.q1_sign_concordance(df, n_permutations=10, seed=0)
    assert res["heart_tissues"] == ["Heart_0", "Heart_1"]
    for assay in ASSAYS:
        sub = df.filter(pl.col("assay") == assay)
        heart = sub["tissue"].str.starts_with("Heart").to_numpy()
        s, z, tz = (sub[c].to_numpy() for c in ("score", "z_alt", "twas_z"))
        c = np.sign(s) == np.sign(z * tz)
        k1, n1, k2, n2 = int(c[heart].sum()), int(heart.sum()), int(c[~heart].sum()), int((~heart).sum())
        row = res["heart_vs_nonheart"].filter(pl.col("assay") == assay).row(0, named=True)
        assert (row["k_heart"], row["n_heart"], row["k_nonheart"], row["n_nonheart"]) == (k1, n1, k2, n2)
        f = stats.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]])
        assert row["fisher_p"] == pytest.approx(f.pvalue, rel=1e-9)
        assert row["fisher_odds_ratio"] == pytest.approx(f.statistic, rel=1e-9)
        mw = stats.mannwhitneyu(np.abs(s[heart]), np.abs(s[~heart]), alternative="two-sided")
        assert row["mwu_u"] == mw.statistic and row["mwu_p"] == pytest.approx(mw.pvalue, rel=1e-9)
        sm = pytest.importorskip("statsmodels.stats.proportion")
        zst, zp = sm.proportions_ztest([k1, k2], [n1, n2])
        assert row["z"] == pytest.approx(zst, rel=1e-9) and row["z_p"] == pytest.approx(zp, rel=1e-9)
    custom = T.q1_sign_concordance(df, n_permutations=0, seed=0, heart_tissues=["Heart_0"])
    assert custom["heart_tissues"] == ["Heart_0"]
    assert math.isnan(custom["table"]["perm_p"][0])


# ----------------------------------------------------------------------------- Q2

def test_q2_equals_oracles():
    df = make_triplets(seed=5)
    df = df.with_columns(pl.when(pl.col("cs") >= 0).then(pl.col("score") * 1.5).otherwise(pl.col("score")).alias("score"))
    df = df.with_columns(pl.when(pl.int_range(pl.len()) < 3).then(None).otherwise(pl.col("score")).alias("score"))
    tab = T.q2_credible_set_enrichment(df)
    for assay in ASSAYS:
        sub = df.filter((pl.col("assay") == assay) & pl.col("score").is_not_null())
        a = sub["score"].abs().to_numpy()
        cs = sub["cs"].to_numpy() >= 0
        row = tab.filter(pl.col("assay") == assay).row(0, named=True)
        mw = stats.mannwhitneyu(a[cs], a[~cs], alternative="two-sided")
        sp = stats.spearmanr(sub["pip"].to_numpy(), a)
        assert row["n"] == sub.height and row["n_cs"] == cs.sum()
        assert row["fold"] == pytest.approx(a[cs].mean() / a[~cs].mean(), rel=1e-12)
        assert row["mwu_u"] == mw.statistic and row["mwu_p"] == pytest.approx(mw.pvalue, rel=1e-9)
        assert row["spearman_rho"] == pytest.approx(sp.statistic, rel=1e-9)
        assert row["spearman_p"] == pytest.approx(sp.pvalue, rel=1e-9)
    rna = tab.filter(pl.col("assay") == "RNA").row(0, named=True)
    assert rna["n_excluded_missing"] == 3 and rna["fold"] > 1.2 and rna["mwu_p"] < 1e-3


# ----------------------------------------------------------------------------- AG_G, Q3, Q4

def test_gene_level_scores_and_input_errors():
    df = make_triplets(seed=6)
    gs = T.gene_level_scores(df)
    one = gs.row(0, named=True)
    sub = df.filter((pl.col("assay") == one["assay"]) & (pl.col("gene_id") == one["gene_id"])
                    & (pl.col("tissue") == one["tissue"]))
    assert one["ag_g"] == pytest.approx(float((sub["pip"] * sub["score"] * sub["z_alt"]).sum()), rel=1e-12)
    assert one["sum_pip_z"] == pytest.approx(float((sub["pip"] * sub["z_alt"]).sum()), rel=1e-12)
    assert one["n_variants"] == sub.height
    with pytest.raises(MissingColumnError):
        T.gene_level_scores(df.drop("twas_z"))
    with pytest.raises(InputError, match="twas_z differs"):
        T.gene_level_scores(df.with_columns(pl.col("twas_z") + pl.int_range(pl.len()).cast(pl.Float64)))
    with pytest.raises(InputError, match="outside"):
        T.q1_sign_concordance(df.with_columns(pl.col("pip") * 2), seed=1, n_permutations=5)
    # twas_p filters to significant gene-tissues when present
    gsp = T.gene_level_scores(df.with_columns(twas_p=pl.when(pl.col("gene_id") == one["gene_id"])
                                              .then(0.01).otherwise(1e-8)))
    assert one["gene_id"] not in gsp["gene_id"].to_list() and "twas_p" in gsp.columns


def test_q3_equals_manual_computation():
    df = make_triplets(n_tissues=6, n_genes=25, pairs_per_tissue=15, seed=12, effect=0.3)
    gs = T.gene_level_scores(df)
    res = T.q3_tissue_specificity(gs)
    for assay in ASSAYS:
        sub = gs.filter(pl.col("assay") == assay)
        s_ag, s_tw, taus, ps = {}, {}, [], []
        for gene in sorted(sub["gene_id"].unique()):
            part = sub.filter(pl.col("gene_id") == gene).sort("tissue")
            if part.height < 2:
                continue
            ag, tw = part["ag_g"].to_numpy(), part["twas_z"].to_numpy()
            s_ag[gene] = np.mean(np.abs(ag - ag.mean()))
            s_tw[gene] = np.mean(np.abs(tw - tw.mean()))
            if part.height >= 3:
                kt = stats.kendalltau(ag, tw)
                taus.append(kt.statistic)
                ps.append(kt.pvalue)
        genes = sorted(s_ag)
        sp = stats.spearmanr([s_ag[g] for g in genes], [s_tw[g] for g in genes])
        row = res["summary"].filter(pl.col("assay") == assay).row(0, named=True)
        assert row["n_genes"] == len(genes) and row["n_genes_kendall"] == len(taus)
        assert row["spearman_rho"] == pytest.approx(sp.statistic, rel=1e-9)
        assert row["spearman_p"] == pytest.approx(sp.pvalue, rel=1e-9)
        assert row["mean_tau"] == pytest.approx(np.mean(taus), rel=1e-9)
        assert row["n_tau_p_lt_0_05"] == sum(p < 0.05 for p in ps)
        k = res["kendall"].filter(pl.col("assay") == assay).sort("gene_id")
        assert k["tau"].to_numpy() == pytest.approx(np.array(taus), rel=1e-9)
        g = res["genes"].filter(pl.col("assay") == assay)
        assert g["s_ag"].to_numpy() == pytest.approx(np.array([s_ag[x] for x in genes]), rel=1e-12)
    assert len(genes) > 10 and len(taus) > 3
    sd = T.q3_tissue_specificity(gs, deviation="sd")["genes"]
    assert (sd["s_twas"] >= res["genes"]["s_twas"] - 1e-12).all()  # RMS >= mean abs


def test_q4_equals_scipy_and_permutation_null_handles_p21_bias():
    # P21: scores with a mean bias but no variant-level signal; TWAS.Z driven by sum pip*z
    rng = np.random.default_rng(0)
    df = make_triplets(n_tissues=3, n_genes=80, pairs_per_tissue=60, seed=13, bias=1.0, effect=0.0,
                       assays=("RNA",))
    gz = df.group_by("gene_id", "tissue").agg(spz=(pl.col("pip") * pl.col("z_alt")).sum())
    gz = gz.with_columns(twas_new=pl.col("spz") * 3 + pl.Series(rng.normal(size=gz.height)))
    df = df.join(gz, on=["gene_id", "tissue"]).with_columns(pl.col("twas_new").alias("twas_z")).drop("spz", "twas_new")
    res = T.q4_synthetic_twas(df, n_permutations=300, seed=4, return_null=True)
    tab = res["table"]
    gs = res["gene_scores"]
    for row in tab.iter_rows(named=True):
        part = gs.filter((pl.col("tissue") == row["tissue"]) & (pl.col("assay") == row["assay"]))
        sp = stats.spearmanr(part["ag_g"], part["twas_z"])
        assert row["n_genes"] == part.height
        assert row["spearman_rho"] == pytest.approx(sp.statistic, rel=1e-9)
        assert row["spearman_p"] == pytest.approx(sp.pvalue, rel=1e-9)
        # the naive test is fooled, the within-gene permutation null is not
        assert row["spearman_p"] < 1e-4 and row["rho_sum_pip_z"] > 0.5
        assert row["null_mean"] > 0.3 and row["perm_p_greater"] > 0.01
    assert res["null"].height == 300 * tab.height
    # planted variant-level mediation is detected by the permutation test
    planted = make_triplets(n_tissues=3, n_genes=80, pairs_per_tissue=60, seed=14, effect=1.5, assays=("RNA",))
    t2 = T.q4_synthetic_twas(planted, n_permutations=300, seed=4)["table"]
    assert (t2["perm_p_greater"] < 0.01).all() and (t2["spearman_rho"] > 0.3).all()


def test_q4_min_genes_and_reproducible():
    df = make_triplets(seed=15)
    a = T.q4_synthetic_twas(df, n_permutations=50, seed=9)["table"]
    b = T.q4_synthetic_twas(df, n_permutations=50, seed=9)["table"]
    assert a.equals(b) and a.height == len(ASSAYS) * 6
    assert T.q4_synthetic_twas(df, n_permutations=5, seed=9, min_genes=100)["table"].height == 0


def test_q2_spearman_uses_the_rows_of_the_mann_whitney_test():
    """A row with no credible-set information (cs null) is in neither CS group, so it must not
    enter Spearman(PIP, |score|) either (found in review: spearman_n exceeded n)."""
    import polars as pl
    from scipy import stats as st

    from agval.stats.twas import q2_credible_set_enrichment

    pip = [0.9, 0.5, 0.2, 0.05, 0.01, 0.99]
    score = [0.3, -0.2, 0.1, 0.05, -0.01, 5.0]
    cs = [1, 1, -1, -1, -1, None]
    df = pl.DataFrame({"variant_key": [f"v{i}" for i in range(6)], "gene_id": "G", "tissue": "T", "assay": "ATAC",
                       "pip": pip, "cs": cs, "z_alt": 1.0, "twas_z": 5.0, "score": score},
                      schema_overrides={"cs": pl.Int64})
    r = q2_credible_set_enrichment(df).row(0, named=True)
    assert r["n"] == 5 and r["spearman_n"] == 5
    assert r["spearman_rho"] == pytest.approx(st.spearmanr(pip[:5], [abs(s) for s in score[:5]])[0], abs=1e-12)
