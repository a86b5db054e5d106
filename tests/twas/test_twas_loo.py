"""Leave-one-variant-out TWAS.Z for Q1 (issue 12 item 4, pitfall P30): the closed form
against the conditional-normal definition, the allele orientation of weights / GWAS / LD
read from files, and the estimand in a world where the model knows eQTL directions but
nothing is mediated."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from agval.drops import DropLog
from agval.errors import InputError
from agval.stats.twas import loo_twas_z, q1_direction_agreement
from agval.twas.loo import attach_loo_twas_z, load_ld_reference, load_twas_weights
from standins.null_twas import simulate_study


def _definition(w: np.ndarray, z: np.ndarray, R: np.ndarray) -> np.ndarray:
    """TWAS.Z of the other variants with their z conditioned on z_i, written out."""
    m = w.size
    out = np.full(m, np.nan)
    for i in range(m):
        o = np.arange(m) != i
        r = R[o, i]
        zc = z[o] - r * z[i]
        S = R[np.ix_(o, o)] - np.outer(r, r)
        out[i] = w[o] @ zc / math.sqrt(w[o] @ S @ w[o])
    return out


def _ld(rng: np.random.Generator, m: int) -> np.ndarray:
    g = rng.normal(size=(200, m)) + rng.normal(size=(200, 1))
    return np.corrcoef(g, rowvar=False)


def test_closed_form_equals_the_conditional_definition_and_batches():
    rng = np.random.default_rng(0)
    ws, zs, Rs = [], [], []
    for _ in range(3):
        R = _ld(rng, 7)
        w, z = rng.normal(size=7), rng.multivariate_normal(np.zeros(7), R)
        np.testing.assert_allclose(loo_twas_z(w, z, R), _definition(w, z, R), rtol=1e-9, atol=1e-12)
        ws.append(w), zs.append(z), Rs.append(R)
    batch = loo_twas_z(np.stack(ws), np.stack(zs), np.stack(Rs))
    np.testing.assert_allclose(batch, np.stack([_definition(*a) for a in zip(ws, zs, Rs)]), rtol=1e-9)
    # counting the other allele of variant 2 (its weight, z and LD row negated) changes nothing
    w, z, R = ws[0].copy(), zs[0].copy(), Rs[0].copy()
    d = np.ones(7)
    d[2] = -1
    np.testing.assert_allclose(loo_twas_z(w * d, z * d, R * np.outer(d, d)), loo_twas_z(w, z, R), rtol=1e-9)
    assert np.isnan(loo_twas_z([1.0], [2.0], [[1.0]])).all()
    with pytest.raises(ValueError):
        loo_twas_z(w, z[:3], R)


def test_attach_from_files_orients_gwas_and_ld_on_the_weight_allele(tmp_path):
    rng = np.random.default_rng(3)
    m = 6
    R = _ld(rng, m)
    w = rng.normal(size=m)
    z = rng.multivariate_normal(np.zeros(m), R) + 2 * (R @ w) / np.sqrt(w @ R @ w)
    rs = [f"rs{100 + i}" for i in range(m)]
    a1, a2 = ["A", "C", "G", "T", "A", "C"], ["G", "T", "A", "C", "C", "G"]
    # weights for a1; gene id with a version
    # plus a SNP the GWAS lacks (counted, left out) and another gene's model (not a triplet gene: ignored)
    pl.DataFrame({"ID": ["ENSG1.4"] * (m + 1) + ["ENSG2"], "tissue": ["Lung"] * (m + 2),
                  "SNP": rs + ["rs200", "rs100"], "A1": a1 + ["A", "A"], "A2": a2 + ["G", "G"],
                  "weight": list(w) + [0.7, 0.3]}).write_csv(tmp_path / "w.tsv", separator="\t")
    # GWAS: SNP 1 reported for a2 (z negated), SNP 5's alleles match neither
    ea = [a2[i] if i == 1 else a1[i] for i in range(m)]
    oa = [a1[i] if i == 1 else a2[i] for i in range(m)]
    zg = [-z[i] if i == 1 else z[i] for i in range(m)]
    ea[5], oa[5] = "T", "G"
    gwas = pl.DataFrame({"rsid": rs, "z": zg, "effect_allele": ea, "other_allele": oa})
    # LD: upper triangle; pairs with SNP 3 listed on its a2 (r negated)
    rows = []
    for i in range(m):
        for j in range(i + 1, m):
            ai = a2[i] if i == 3 else a1[i]
            aj = a2[j] if j == 3 else a1[j]
            sgn = -1.0 if (i == 3) != (j == 3) else 1.0
            rows.append((rs[i], ai, rs[j], aj, sgn * R[i, j]))
    pl.DataFrame(rows, schema=["SNP_A", "allele_a", "SNP_B", "allele_b", "R"], orient="row").write_csv(
        tmp_path / "ld.csv")
    weights = load_twas_weights(tmp_path / "w.tsv")
    ld = load_ld_reference(tmp_path / "ld.csv")
    assert sorted(weights["gene_id"].unique().to_list()) == ["ENSG1", "ENSG2"]  # version stripped
    triplets = pl.DataFrame({"rsid": rs[:3] + ["rs999"], "gene_id": ["ENSG1"] * 4, "tissue": ["Lung"] * 4,
                             "z_alt": [1.0] * 4, "twas_z": [float(w @ z / np.sqrt(w @ R @ w))] * 4})
    drops = DropLog()
    out, counts = attach_loo_twas_z(triplets, weights, gwas, ld, drops=drops)
    keep = np.arange(5)          # SNP 5 dropped (alleles mismatch)
    expect = loo_twas_z(w[keep], z[keep], R[np.ix_(keep, keep)])
    np.testing.assert_allclose(out["twas_z_loo"].to_numpy()[:3], expect[:3], rtol=1e-9)
    assert out["twas_z_loo"][3] is None                         # not among the weights
    assert counts["loo_gene_tissues"] == 1 and counts["loo_rows"] == 3
    d = drops.frame()
    assert d.sort("reason")["row_id"].to_list() == ["ENSG1|Lung|rs105", "ENSG1|Lung|rs200"]
    assert sorted(d["reason"].to_list()) == ["loo_allele_mismatch", "loo_no_gwas"]


def test_loaders_name_file_column_and_row(tmp_path):
    (tmp_path / "ld.tsv").write_text("SNP_A\tallele_a\tSNP_B\tallele_b\tR\nrs1\tA\trs2\tC\t0.5\nrs1\tA\trs3\tG\t1.7\n")
    with pytest.raises(InputError) as e:
        load_ld_reference(tmp_path / "ld.tsv")
    assert e.value.column == "R" and e.value.row == 2 and "ld.tsv" in str(e.value.file)  # data row 2
    (tmp_path / "w.tsv").write_text("gene\ttissue\tsnp\ta1\ta2\tweight\nG\tLung\trs1\tA\tG\tabc\n")
    with pytest.raises(InputError) as e:
        load_twas_weights(tmp_path / "w.tsv")
    assert e.value.column == "weight" and e.value.row == 1


def test_loo_direction_removes_own_weight_agreement_in_an_eqtl_aware_null():
    """The model knows eQTL directions, the GWAS has no association, genes are not selected
    on the GWAS: the seed's Q1 direction agrees far above chance (P30), the leave-one-out
    direction does not (measured: 0.85 vs 0.025 of 40 studies at 0.05)."""
    rej = {"twas": 0, "twas_loo": 0}
    for s in range(10):
        df = simulate_study(s, world="eqtl_aware", n_loci=60, twas_p_threshold=1.0, assays=("RNA",))
        for d in rej:
            t = q1_direction_agreement(df, direction=d, seed=s, n_permutations=199, n_boot=0,
                                       twas_p_threshold=None, assays=["RNA"])["table"]
            rej[d] += float(t.filter(pl.col("tissue") == "pooled")["perm_p"][0]) <= 0.05
    assert rej["twas"] >= 6, rej
    assert rej["twas_loo"] <= 2, rej     # P(>= 3 of 10 | 0.05) = 0.012
