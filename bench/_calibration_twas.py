"""TWAS part of the calibration benchmark (``bench/calibration.py`` runs it).

Every study is drawn in the structured worlds of :mod:`standins.null_twas` (with real sharing,
:data:`WORLD`: several genes per locus on one eQTL signal, their eQTL directions shared, so one
chromatin score feeds several rows; about 2.6 genes per connected locus after the TWAS filter,
47 loci, 1,063 DNASE rows for 789 distinct scores) and analysed by
agval's own functions (:mod:`agval.stats.twas`), exactly as the flow calls them (the
TWAS significance filter is applied by the world, so ``twas_p_threshold=None`` here).

* type-I error at alpha = 0.05 of every corrected-mode test in the **null** world (model
  scores independent of eQTL, GWAS and fine-mapping; a GWAS without association; genes
  sharing variants; chromatin scores shared across genes; RNA scores near-identical across
  tissues);
* the seed's original tests in the same world, reported apart ("original (known
  miscalibrated)"): within-(gene, tissue) permutations and row-level tests;
* power of the primary Q1 estimand (RNA score vs the marginal eQTL slope, pooled over
  tissues, locus permutation) in the **mediation** world;
* information (not counted): rejection rates of Q1's seed direction and its
  leave-one-variant-out version in the **eqtl_aware** world (the model knows eQTL
  directions, nothing is mediated), with and without selecting genes on the same GWAS.

Interface: :func:`calibrate` ``(n_studies, seed) -> {"type1": {name: rate}, "power":
{name: rate}, "original": {name: rate}, "seed_counterpart": {corrected name: (seed name, rate,
label)}}``: for each corrected test the seed's test of the same question in the same world;
``label`` is ``"fails (> 0.07)"`` where the world exercises the structure the correction is for,
``"structure not exercised"`` where the seed's test stays <= 0.07, ``"no seed counterpart"``.
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
#: the null world: 5 genes per locus, 90 % on the locus's lead eQTL, eQTL directions shared
#: (rows of a shared score are copies), 8 variants per locus, a loose TWAS filter so that
#: several genes of a locus pass it
WORLD = dict(n_loci=60, genes_per_locus=5, variants_per_locus=8, shared_sign=1.0, shared_lead=0.9,
             twas_p_threshold=0.5)
#: corrected test -> the seed's test of the same question (original mode)
COUNTERPART = {
    "q1_twas_RNA_pooled": "q1_twas_RNA_pooled (within-gene permutation)",
    "q1_twas_DNASE_pooled": "q1_twas_DNASE_pooled (within-gene permutation)",
    f"q1_twas_DNASE_{CELL}": f"q1_twas_DNASE_{CELL} (within-gene permutation)",
    "q1_heart_vs_nonheart_accuracy_DNASE": "q1_heart_vs_nonheart_DNASE (Fisher)",
    "q1_heart_vs_nonheart_abs_score_DNASE": "q1_heart_vs_nonheart_abs_score_DNASE (Mann-Whitney rows)",
    "q2_mwu_RNA": "q2_mwu_RNA (rows)",
    "q2_mwu_DNASE": "q2_mwu_DNASE (rows)",
    "q2_spearman_DNASE": "q2_spearman_DNASE (rows)",
    "q3_rho_RNA": "q3_rho_RNA (Spearman P, no null)",
    "q3_rho_DNASE": "q3_rho_DNASE (Spearman P, no null)",
    f"q4_RNA_{CELL}": f"q4_RNA_{CELL} (within-gene permutation)",
    f"q4_DNASE_{CELL}": f"q4_DNASE_{CELL} (within-gene permutation)",
}


def _row(df: pl.DataFrame, **eq) -> dict:
    for k, v in eq.items():
        df = df.filter(pl.col(k) == v)
    return df.row(0, named=True) if df.height else {}


def null_study_pvalues(seed: int) -> tuple[dict[str, float], dict[str, float]]:
    """``(corrected, original)`` P values of one null study."""
    df = simulate_study(np.random.default_rng([seed, 12]), world="null", **WORLD).filter(pl.col("assay").is_in(ASSAYS))
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
    c["q1_heart_vs_nonheart_abs_score_DNASE"] = _row(h, assay="DNASE").get("mean_abs_p")
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
    o["q1_heart_vs_nonheart_abs_score_DNASE (Mann-Whitney rows)"] = _row(r1["heart_vs_nonheart"],
                                                                         assay="DNASE").get("mwu_p")
    r2 = st.q2_credible_set_enrichment(df, twas_p_threshold=None)
    for a in ASSAYS:
        o[f"q2_mwu_{a} (rows)"] = _row(r2, assay=a).get("mwu_p")
    o["q2_spearman_DNASE (rows)"] = _row(r2, assay="DNASE").get("spearman_p")
    r3 = st.q3_tissue_specificity(st.gene_level_scores(df, twas_p_threshold=None), twas_p_threshold=None)
    r4 = st.q4_synthetic_twas(df, n_permutations=B, seed=rng, twas_p_threshold=None)["table"]
    for a in ASSAYS:
        s3 = _row(r3["summary"], assay=a)
        o[f"q3_rho_{a} (Spearman P, no null)"] = (s3.get("spearman_p") if s3.get("spearman_rho", 0) > 0
                                                  else 1.0) if s3 else None  # one-sided, like the corrected test
        o[f"q4_{a}_{CELL} (within-gene permutation)"] = _row(r4, assay=a, tissue=CELL).get("perm_p_greater")
    return c, o


def mediation_study_pvalues(seed: int) -> dict[str, float]:
    df = simulate_study(np.random.default_rng([seed, 22]), world="mediation").filter(pl.col("assay") == "RNA")
    q1e = st.q1_direction_agreement(df, direction="eqtl", n_permutations=B, n_boot=0,
                                    seed=np.random.default_rng([seed, 23]), twas_p_threshold=None)["table"]
    return {"q1_eqtl": _row(q1e, pooled=True).get("perm_p")}


#: studies of the eQTL-aware information rows (not counted in RESULT)
N_INFO = 200


def eqtl_aware_study_pvalues(seed: int) -> dict[str, float]:
    """Q1's TWAS directions where the model knows eQTL directions and nothing is mediated
    (null GWAS): the seed's ``sign(z_ALT * TWAS.Z)`` and the leave-one-variant-out
    ``sign(z_ALT * TWAS_-i)``, without selection on the GWAS and with the world's TWAS
    filter (P30: selection brings dependence back). Information, not a calibrated test."""
    out = {}
    for label, thr in (("no selection", 1.0), ("TWAS-selected", WORLD["twas_p_threshold"])):
        df = simulate_study(np.random.default_rng([seed, 31]), world="eqtl_aware",
                            **{**WORLD, "twas_p_threshold": thr}, assays=("RNA",))
        for d in ("twas", "twas_loo"):
            t = st.q1_direction_agreement(df, direction=d, n_permutations=B, n_boot=0, assays=["RNA"],
                                          seed=np.random.default_rng([seed, 32]), twas_p_threshold=None)["table"]
            out[f"q1_{d}_RNA_pooled (eQTL-aware model, {label})"] = _row(t, pooled=True).get("perm_p")
    return out


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
    info = [eqtl_aware_study_pvalues(seed * 1_000_003 + i) for i in range(min(n_studies, N_INFO))]
    type1, original = _rates(corr), _rates(orig)
    return {"type1": type1, "original": original, "power": _rates(power), "information": _rates(info),
            "n_information": min(n_studies, N_INFO),
            "seed_counterpart": seed_counterparts(type1, original),
            "n_studies": n_studies, "alpha": ALPHA, "n_permutations": B}


def seed_counterparts(type1: dict[str, float], original: dict[str, float]) -> dict[str, tuple]:
    """``{corrected name: (seed name, seed rate, label)}`` for every corrected test (see the
    module docstring); a corrected test proves something only where its counterpart fails."""
    out = {}
    for name in type1:
        o = COUNTERPART.get(name)
        if o is None or o not in original:
            out[name] = (None, float("nan"), "no seed counterpart")
        else:
            r = original[o]
            out[name] = (o, r, "fails (> 0.07)" if r > 0.07 else "structure not exercised")
    return out
