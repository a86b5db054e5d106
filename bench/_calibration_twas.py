"""TWAS part of the calibration benchmark (``bench/calibration.py`` runs it).

Every study is drawn in the structured worlds of :mod:`standins.null_twas` and analysed by
agval's own functions (:mod:`agval.stats.twas`), exactly as the flow calls them (the
TWAS significance filter is applied by the world, so ``twas_p_threshold=None`` here).

* type-I error at alpha = 0.05 of every corrected-mode test in the **null** world (model
  scores independent of eQTL, GWAS and fine-mapping; a GWAS without association; genes
  sharing variants; chromatin scores shared across genes; RNA scores near-identical across
  tissues);
* the seed's original tests in the same world, reported apart ("original (known
  miscalibrated)"): within-(gene, tissue) permutations and row-level tests;
* power of the primary Q1 estimand (RNA score vs the marginal eQTL slope, pooled over
  tissues, locus permutation) in the **mediation** world.

Interface: :func:`calibrate` ``(n_studies, seed) -> {"type1": {name: rate}, "power":
{name: rate}, "original": {name: rate}}``.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from agval.stats import twas as st
from standins.null_twas import simulate_study

ALPHA = 0.05
B = 199          # permutations per test (P values in multiples of 1/200)
NB = 199         # bootstrap replicates (heart vs non-heart tests)
CELL = "Heart_Atrial_Appendage"
ASSAYS = ("RNA", "DNASE")


def _row(df: pl.DataFrame, **eq) -> dict:
    for k, v in eq.items():
        df = df.filter(pl.col(k) == v)
    return df.row(0, named=True) if df.height else {}


def null_study_pvalues(seed: int) -> tuple[dict[str, float], dict[str, float]]:
    """``(corrected, original)`` P values of one null study."""
    df = simulate_study(np.random.default_rng([seed, 12]), world="null").filter(pl.col("assay").is_in(ASSAYS))
    rng = np.random.default_rng([seed, 13])
    c: dict[str, float] = {}
    o: dict[str, float] = {}
    q1e = st.q1_direction_agreement(df, direction="eqtl", n_permutations=B, n_boot=0, seed=rng,
                                    twas_p_threshold=None)["table"]
    c["q1_eqtl_RNA_pooled"] = _row(q1e, pooled=True).get("perm_p")
    c[f"q1_eqtl_RNA_{CELL}"] = _row(q1e, tissue=CELL).get("perm_p")
    q1t = st.q1_direction_agreement(df, direction="twas", n_permutations=B, n_boot=NB, seed=rng,
                                    twas_p_threshold=None)
    t = q1t["table"]
    for a in ASSAYS:
        c[f"q1_twas_{a}_pooled"] = _row(t, assay=a, pooled=True).get("perm_p")
    c[f"q1_twas_DNASE_{CELL}"] = _row(t, assay="DNASE", tissue=CELL).get("perm_p")
    h = q1t["heart_vs_nonheart"]
    c["q1_heart_vs_nonheart_accuracy_DNASE"] = _row(h, assay="DNASE").get("boot_p")
    c["q1_heart_vs_nonheart_abs_score_DNASE"] = _row(h, assay="DNASE").get("mean_abs_boot_p")
    q2 = st.q2_credible_set_enrichment_corrected(df, n_permutations=B, n_boot=0, seed=rng, twas_p_threshold=None)
    for a in ASSAYS:
        c[f"q2_mwu_{a}"] = _row(q2, assay=a).get("mwu_perm_p")
    c["q2_spearman_DNASE"] = _row(q2, assay="DNASE").get("spearman_perm_p")
    q3 = st.q3_tissue_specificity_corrected(df, n_permutations=B, n_boot=0, seed=rng, twas_p_threshold=None)
    for a in ASSAYS:
        c[f"q3_rho_{a}"] = _row(q3, assay=a).get("rho_perm_p")
    c["q3_mean_tau_DNASE"] = _row(q3, assay="DNASE").get("mean_tau_perm_p")
    q4 = st.q4_synthetic_twas_corrected(df, n_permutations=B, n_boot=0, seed=rng, twas_p_threshold=None)["table"]
    for a in ASSAYS:
        c[f"q4_{a}_{CELL}"] = _row(q4, assay=a, tissue=CELL).get("perm_p_greater")

    # the seed's tests (original mode)
    r1 = st.q1_sign_concordance(df, n_permutations=B, seed=rng, twas_p_threshold=None)
    for a in ASSAYS:
        o[f"q1_twas_{a}_pooled (within-gene permutation)"] = _row(r1["table"], assay=a, pooled=True).get("perm_p")
    o["q1_twas_DNASE_pooled (binomial)"] = _row(r1["table"], assay="DNASE", pooled=True).get("binom_p_greater")
    o[f"q1_twas_DNASE_{CELL} (within-gene permutation)"] = _row(r1["table"], assay="DNASE",
                                                                 tissue=CELL).get("perm_p")
    o["q1_heart_vs_nonheart_DNASE (Fisher)"] = _row(r1["heart_vs_nonheart"], assay="DNASE").get("fisher_p")
    r2 = st.q2_credible_set_enrichment(df, twas_p_threshold=None)
    o["q2_mwu_DNASE (rows)"] = _row(r2, assay="DNASE").get("mwu_p")
    o["q2_spearman_DNASE (rows)"] = _row(r2, assay="DNASE").get("spearman_p")
    r3 = st.q3_tissue_specificity(st.gene_level_scores(df, twas_p_threshold=None), twas_p_threshold=None)
    s3 = _row(r3["summary"], assay="DNASE")
    o["q3_rho_DNASE (Spearman P, no null)"] = (s3.get("spearman_p") if s3.get("spearman_rho", 0) > 0
                                               else 1.0) if s3 else None  # one-sided, like the corrected test
    r4 = st.q4_synthetic_twas(df, n_permutations=B, seed=rng, twas_p_threshold=None)["table"]
    o[f"q4_DNASE_{CELL} (within-gene permutation)"] = _row(r4, assay="DNASE", tissue=CELL).get("perm_p_greater")
    return c, o


def mediation_study_pvalues(seed: int) -> dict[str, float]:
    df = simulate_study(np.random.default_rng([seed, 22]), world="mediation").filter(pl.col("assay") == "RNA")
    q1e = st.q1_direction_agreement(df, direction="eqtl", n_permutations=B, n_boot=0,
                                    seed=np.random.default_rng([seed, 23]), twas_p_threshold=None)["table"]
    return {"q1_eqtl": _row(q1e, pooled=True).get("perm_p")}


def _rates(rows: list[dict[str, float]]) -> dict[str, float]:
    names = list(dict.fromkeys(k for r in rows for k in r))
    out = {}
    for n in names:
        p = np.array([r.get(n) if r.get(n) is not None else np.nan for r in rows], dtype=float)
        p = p[np.isfinite(p)]
        out[n] = float(np.mean(p <= ALPHA)) if p.size else float("nan")
    return out


def calibrate(n_studies: int, seed: int) -> dict:
    """Type-I error (null world) and power (mediation world) over ``n_studies`` studies each."""
    corr, orig, power = [], [], []
    for i in range(n_studies):
        c, o = null_study_pvalues(seed * 1_000_003 + i)
        corr.append(c)
        orig.append(o)
        power.append(mediation_study_pvalues(seed * 1_000_003 + i))
    return {"type1": _rates(corr), "original": _rates(orig), "power": _rates(power),
            "n_studies": n_studies, "alpha": ALPHA, "n_permutations": B}
