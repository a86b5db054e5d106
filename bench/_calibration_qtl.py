"""Calibration of agval's QTL and MPRA tests in a structured null world (issue 12).

:func:`calibrate` simulates ``n_studies`` null studies of each kind with
:mod:`standins.null_qtl` (caQTL LD blocks split into 1-5 peaks that share no SNP, hQTL SNPs
with one beta for two marks, MPRA loci sharing one model input) and runs every corrected
test **through agval's own functions**: the units come from
:func:`agval.stats.qtl.qtl_clusters` (with the 250 kb LD window), the statistics from
:func:`agval.stats.qtl.qtl_statistics` (cluster permutation P values),
:func:`agval.stats.qtl.unit_means` (hQTL per SNP) and
:func:`agval.stats.mpra.mpra_statistics`. It returns the rejection rate at alpha = 0.05:

* ``"type1"``: every corrected test (each must lie in [0.03, 0.07]);
* ``"original"``: the row-level P values of the same statistics, for information (they
  ignore the shared units and are anti-conservative here);
* ``"power"``: the same corrected headline tests in a world with a planted association.

With ``n_studies`` null studies a calibrated test's rate has binomial SE
``sqrt(0.05 * 0.95 / n_studies)``: 0.015 at 200 (so a perfectly calibrated test leaves
[0.03, 0.07] with probability ~0.2), 0.0069 at 1,000. Use >= 1,000 for a verdict.

Run: ``python bench/_calibration_qtl.py [--studies 1000] [--seed 0]`` (prints one line per test).
Imported by ``bench/calibration.py``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from agval.stats.mpra import mpra_statistics
from agval.stats.qtl import DEFAULT_UNIT_WINDOW, qtl_clusters, qtl_statistics, unit_means
from standins.null_qtl import HQTL_MARKS, null_caqtl, null_hqtl, null_mpra

__all__ = ["calibrate", "study_p_values", "ALPHA", "N_PERM"]

ALPHA = 0.05
#: permutations per test: (1 + count) / (B + 1) then rejects at 0.05 exactly when count <= 9
N_PERM = 199


def _qtl(x: np.ndarray, y: np.ndarray, clusters: Any, seed: int, verified: bool = False) -> dict[str, Any]:
    return qtl_statistics(x, y, clusters=clusters, orientation_verified=np.full(x.size, verified),
                          n_boot=0, n_perm=N_PERM, seed=seed)


def study_p_values(rng: np.random.Generator, *, effect: float = 0.0, mpra: bool = True,
                   split_blocks: bool = True) -> dict[str, dict[str, float]]:
    """P values of one simulated study of each kind: ``{"corrected": {test: p}, "original": {test: p}}``.

    ``split_blocks``: the caQTL world's LD blocks hold 1-5 peaks with no SNP shared between
    them (:func:`standins.null_qtl.null_caqtl`), so only positions join a block."""
    seed = int(rng.integers(0, 2**31 - 1))
    cor: dict[str, float] = {}
    orig: dict[str, float] = {}
    # caQTL: unit = connected component of {peak, SNP, variants within the LD window};
    # effect allele unknown -> magnitude leads
    ca = null_caqtl(rng, effect=effect, split_blocks=split_blocks)
    units = qtl_clusters(ca.snp, ca.peak, chrom=ca.chrom, pos=ca.pos, window=DEFAULT_UNIT_WINDOW)
    ids_only = _qtl(ca.atac, ca.beta, qtl_clusters(ca.snp, ca.peak), seed)
    orig["caqtl_atac_magnitude_cluster_perm_ids_only"] = ids_only["magnitude_perm_p"]
    for name, x in (("atac", ca.atac), ("dnase", ca.dnase), ("pooled", (ca.atac + ca.dnase) / 2.0)):
        st = _qtl(x, ca.beta, units, seed)
        cor[f"caqtl_{name}_magnitude_cluster_perm"] = st["magnitude_perm_p"]
        if name == "atac":
            cor["caqtl_atac_spearman_cluster_perm"] = st["spearman_perm_p"]
            cor["caqtl_atac_pearson_cluster_perm"] = st["pearson_perm_p"]
            orig["caqtl_atac_spearman_row"] = st["spearman_p"]
            orig["caqtl_atac_magnitude_row"] = st["magnitude_spearman_p"]
            orig["caqtl_atac_pearson_row"] = st["pearson_p"]
    # hQTL: per mark (one row per SNP), per SNP (mean over its marks), pooled (SNP clusters)
    hq = null_hqtl(rng, effect=effect)
    for mark in HQTL_MARKS:
        m = hq.mark == mark
        st = _qtl(hq.score[m], hq.beta[m], qtl_clusters(hq.snp[m]), seed, verified=True)
        cor[f"hqtl_{mark}_spearman_cluster_perm"] = st["spearman_perm_p"]
        cor[f"hqtl_{mark}_sign_cluster_perm"] = st["sign_perm_p"]
        if mark == "H3K27ac":
            cor["hqtl_H3K27ac_pearson_cluster_perm"] = st["pearson_perm_p"]
    xs, ys, snps = unit_means(hq.score, hq.beta, hq.snp)
    st = _qtl(xs, ys, qtl_clusters(snps), seed, verified=True)
    cor["hqtl_per_snp_spearman_cluster_perm"] = st["spearman_perm_p"]
    cor["hqtl_per_snp_pearson_cluster_perm"] = st["pearson_perm_p"]
    st = _qtl(hq.score, hq.beta, qtl_clusters(hq.snp), seed, verified=True)
    cor["hqtl_pooled_spearman_cluster_perm"] = st["spearman_perm_p"]
    cor["hqtl_pooled_sign_cluster_perm"] = st["sign_perm_p"]
    orig["hqtl_pooled_spearman_row"] = st["spearman_p"]
    orig["hqtl_pooled_sign_binomial_row"] = st["sign_p_two_sided"]
    orig["hqtl_pooled_sign_independence_row"] = st["sign_p_independence"]
    if mpra:
        mp = null_mpra(rng, effect=effect)
        st = mpra_statistics(mp.measured, mp.predicted, inputs=mp.locus, clusters=mp.locus, n_boot=0,
                             n_perm=N_PERM, seed=seed)
        for k in ("pearson", "spearman", "auroc"):
            cor[f"mpra_{k}_cluster_perm"] = st[f"{k}_perm_p"]
        orig["mpra_pearson_row"] = st["pearson_p"]
        orig["mpra_spearman_row"] = st["spearman_p"]
    return {"corrected": cor, "original": orig}


def _rates(ps: list[dict[str, float]]) -> dict[str, float]:
    keys = ps[0].keys()
    return {k: float(np.mean([p[k] <= ALPHA for p in ps if np.isfinite(p[k])])) for k in keys}


#: tests whose power is reported (the headline of each study kind)
POWER_TESTS = ("caqtl_atac_magnitude_cluster_perm", "hqtl_H3K27ac_spearman_cluster_perm",
               "hqtl_per_snp_spearman_cluster_perm", "mpra_pearson_cluster_perm")


def calibrate(n_studies: int, seed: int, *, n_power_studies: int | None = None,
              power_effect: float = 0.35, split_blocks: bool = True) -> dict[str, Any]:
    """Rejection rates at alpha = 0.05 over ``n_studies`` null studies (seeded).

    Returns ``{"type1": {test: rate}, "original": {test: rate}, "power": {test: rate},
    "n_studies": n, "n_power_studies": m, "alpha": 0.05, "n_perm": 199, "seconds": t}``;
    ``power`` uses ``n_power_studies`` (default ``max(50, n_studies // 10)``) studies with a
    planted association of strength ``power_effect``. ``split_blocks`` (default): the caQTL
    LD blocks are split into several peaks (units must come from positions); ``original``
    then also holds ``caqtl_atac_magnitude_cluster_perm_ids_only`` (units from {SNP, peak}
    alone, review finding 1: ~0.15).
    """
    t0 = time.perf_counter()
    ss = np.random.SeedSequence(int(seed))
    null_seq, power_seq = ss.spawn(2)
    null = [study_p_values(np.random.default_rng(s), split_blocks=split_blocks)
            for s in null_seq.spawn(int(n_studies))]
    m = int(n_power_studies if n_power_studies is not None else max(50, n_studies // 10))
    power_ps = [study_p_values(np.random.default_rng(s), effect=power_effect, mpra=True,
                               split_blocks=split_blocks)["corrected"]
                for s in power_seq.spawn(m)]
    cor = _rates([p["corrected"] for p in null])
    orig = _rates([p["original"] for p in null])
    pw = _rates(power_ps) if power_ps else {}
    return {"type1": cor, "original": orig, "power": {k: pw[k] for k in POWER_TESTS if k in pw},
            "n_studies": int(n_studies), "n_power_studies": m, "alpha": ALPHA, "n_perm": N_PERM,
            "seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-split-blocks", action="store_true", help="caQTL world of the seed review (few split blocks)")
    a = ap.parse_args(argv)
    res = calibrate(a.studies, a.seed, split_blocks=not a.no_split_blocks)
    for group in ("type1", "original", "power"):
        for k, v in res[group].items():
            flag = "" if group != "type1" else ("  ok" if 0.03 <= v <= 0.07 else "  OUTSIDE [0.03, 0.07]")
            print(f"{group:8s} {k:42s} {v:.4f}{flag}")
    t1 = list(res["type1"].values())
    print(f"RESULT_QTL worst_type1={max(t1):.4f} best_type1={min(t1):.4f} n_tests={len(t1)} "
          f"n_studies={res['n_studies']} seconds={res['seconds']:.1f}")


if __name__ == "__main__":
    main()
