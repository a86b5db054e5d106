"""Structured null and mediation worlds for calibrating the TWAS statistics (SIMULATED).

:func:`simulate_study` draws one TWAS / fine-mapping study directly as the long triplet
table :mod:`agval.stats.twas` consumes (no files, no world, no services), vectorised over
loci with numpy. It has the structure that makes row-level resampling wrong (pitfalls
P30-P32), so that a calibration in it can fail:

* **loci**: ``genes_per_locus`` genes share ``variants_per_locus`` variants in LD
  (blocks of ``ld_block`` variants, within-block correlation ``ld_r``, random phase per
  variant: ``R_l = D_l R D_l``);
* **eQTL**: each gene has one causal variant (the locus's lead variant with probability
  ``shared_lead`` (default 0.6), so genes share eQTLs; a second causal variant with probability 0.3), an effect
  shared across tissues with a tissue factor in [0.5, 1.2]; eQTL z
  ``ez = E * R_l b + L_l e`` per (gene, tissue) (``E ~ U(3, 6)``); the **marginal eQTL
  slope** ``ez / sqrt(500)`` (ALT-oriented) is given where ``|ez| > 2.5`` (GTEx lists
  significant pairs only), else null;
* **GWAS z** for ALT: ``z = L_l e`` (null world: no association); mediation world:
  ``z = E_gwas * R_l a + L_l e`` with ``a = sum_g gamma_g m_g b_g`` over the mediated genes
  (70 %; ``gamma = +-1``, ``m ~ U(0.6, 1)``);
* **TWAS.Z** = ``w'z / sqrt(w'R_l w)`` with ``w = ez`` (FUSION), ``twas_p`` two-sided
  normal; a gene-tissue is tested when ``max |ez| > 3.5`` and **significant** when
  ``twas_p < twas_p_threshold`` (called from the same GWAS);
* **SuSiE**: single-effect regression on ``ez`` (prior variance 25 in z units), PIP =
  alpha, 95 % credible set ``cs = 0`` (``-1`` outside); retained: ``cs >= 0`` or
  ``pip > 0.01``;
* **model scores**: chromatin (ATAC, DNASE, CAGE) one per (variant, tissue), shared by
  every gene, correlated across tissues (``0.8 u_v + 0.6 e_vt``) with a mean bias 0.3;
  ATAC has no track in the 4th tissue (null scores there); RNA one per (variant, gene,
  tissue), near-identical across tissues (``0.95 u_vg + 0.31 e``) with bias 0.2. In the
  **null** world every score is independent of eQTL, GWAS and fine-mapping. In the
  **mediation** world the RNA score tracks the true eQTL effect:
  ``rna = 2.5 * b_vgt / max|b| + noise``. The **eqtl_aware** world is the null GWAS
  of the null world with the mediation world's RNA scores: a model that knows eQTL
  directions but no mediation (Q1's seed statistic rejects there; P30).
* ``twas_z_loo``: leave-one-variant-out TWAS.Z of the gene-tissue, conditioned on the
  variant's own z (:func:`agval.stats.twas.loo_twas_z`, in closed form).

Rows: one per (variant, gene, tissue, assay) of a significant gene-tissue's retained
variants, columns ``variant_key, gene_id, tissue, assay, pip, cs, z_alt, twas_z, twas_p,
score, eqtl_slope, twas_z_loo, sim_locus`` (``sim_locus`` is the simulated locus, for checks only; the
statistics find loci themselves).
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from scipy import special

from agval.stats.twas import loo_twas_z

__all__ = ["TISSUES", "ASSAYS", "simulate_study"]

TISSUES = ("Heart_Atrial_Appendage", "Heart_Left_Ventricle", "Whole_Blood", "Lung", "Muscle_Skeletal",
           "Artery_Tibial")
ASSAYS = ("RNA", "ATAC", "DNASE", "CAGE")
_PRIOR_W = 25.0
_EQTL_N = 500.0


def _ld(V: int, block: int, r: float) -> np.ndarray:
    R = np.eye(V)
    for s in range(0, V, block):
        e = min(V, s + block)
        R[s:e, s:e] = r
    np.fill_diagonal(R, 1.0)
    return R


def simulate_study(rng: np.random.Generator | int, *, world: str = "null", n_loci: int = 100,
                   genes_per_locus: int = 3, variants_per_locus: int = 12, ld_block: int = 4, ld_r: float = 0.9,
                   tissues: tuple[str, ...] = TISSUES, twas_p_threshold: float = 0.2,
                   assays: tuple[str, ...] = ASSAYS, shared_sign: float = 0.0,
                   shared_lead: float = 0.6) -> pl.DataFrame:
    """One simulated study as a long triplet table (see the module docstring).

    ``world``: ``"null"`` (scores carry no information; GWAS without association) or
    ``"mediation"`` (GWAS effects through expression; RNA scores track the true eQTL
    direction). ``rng``: a Generator or an int seed. ``shared_sign``: probability that a
    gene's eQTL effects have the direction of the locus's first gene (0: independent signs;
    1: genes sharing a variant also share its direction, so their TWAS.Z agree in sign and
    the rows of a shared score are copies - the stress case for row-level resampling).
    ``shared_lead``: probability that a gene's first causal variant is the locus's lead
    variant (genes sharing eQTLs; real AF loci have several genes on one signal).
    """
    if world not in ("null", "mediation", "eqtl_aware"):
        raise ValueError(f"world must be 'null', 'mediation' or 'eqtl_aware', got {world!r}")
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    Lc, G, V, T = n_loci, genes_per_locus, variants_per_locus, len(tissues)
    R = _ld(V, ld_block, ld_r)
    chol = np.linalg.cholesky(R)
    phase = rng.choice([-1.0, 1.0], size=(Lc, V))
    Lp = phase[:, :, None] * chol[None, :, :]                       # (L, V, V): cov = D R D
    Rp = phase[:, :, None] * R[None] * phase[:, None, :]            # (L, V, V)

    # eQTL effects b (L, G, V, T)
    causal = np.zeros((Lc, G, V))
    first = rng.integers(0, V, size=(Lc, G))
    lead = rng.integers(0, V, size=(Lc, 1))
    first = np.where(rng.random((Lc, G)) < shared_lead, lead, first)      # genes of a locus often share the lead eQTL
    np.put_along_axis(causal, first[..., None], 1.0, axis=2)
    second = rng.integers(0, V, size=(Lc, G))
    add2 = rng.random((Lc, G)) < 0.3
    sec = np.zeros((Lc, G, V))
    np.put_along_axis(sec, second[..., None], 1.0, axis=2)
    causal = np.maximum(causal, sec * add2[..., None])
    signs = rng.choice([-1.0, 1.0], (Lc, G, V))
    same = rng.random((Lc, G, 1)) < shared_sign
    signs = np.where(same, signs[:, :1, :], signs)                   # same direction as the locus's first gene
    eff = causal * rng.uniform(0.5, 1.0, (Lc, G, V)) * signs
    tf = rng.uniform(0.5, 1.2, (Lc, G, 1, T))
    b = eff[..., None] * tf                                          # (L, G, V, T)
    E = rng.uniform(3.0, 6.0, (Lc, G, 1, 1))
    mean_ez = E * np.einsum("lvw,lgwt->lgvt", Rp, b)
    noise = np.einsum("lvw,lgwt->lgvt", Lp, rng.standard_normal((Lc, G, V, T)))
    ez = mean_ez + noise                                             # (L, G, V, T)

    # GWAS z (L, V)
    zn = np.einsum("lvw,lw->lv", Lp, rng.standard_normal((Lc, V)))
    if world == "mediation":
        mediated = rng.random((Lc, G)) < 0.7
        gamma = rng.choice([-1.0, 1.0], (Lc, G)) * rng.uniform(0.6, 1.0, (Lc, G)) * mediated
        a = np.einsum("lg,lgv->lv", gamma, b.mean(axis=3))
        z = 5.0 * np.einsum("lvw,lw->lv", Rp, a) + zn
    else:
        z = zn

    # TWAS.Z (L, G, T)
    wz = np.einsum("lgvt,lv->lgt", ez, z)
    wRw = np.einsum("lgvt,lvw,lgwt->lgt", ez, Rp, ez)
    twas_z = wz / np.sqrt(wRw)
    # leave-one-variant-out TWAS.Z conditioned on the variant's own z, (L, G, V, T)
    twas_z_loo = loo_twas_z(np.moveaxis(ez, 2, 3), z[:, None, None, :], Rp[:, None, None]).transpose(0, 1, 3, 2)
    twas_p = 2.0 * special.ndtr(-np.abs(twas_z))
    tested = np.abs(ez).max(axis=2) > 3.5
    sig = tested & (twas_p < twas_p_threshold)                       # (L, G, T)

    # SuSiE single-effect regression on ez
    r = _PRIOR_W / (_PRIOR_W + 1.0)
    lbf = 0.5 * r * ez ** 2
    lbf -= lbf.max(axis=2, keepdims=True)
    alpha = np.exp(lbf)
    alpha /= alpha.sum(axis=2, keepdims=True)
    order = np.argsort(-alpha, axis=2)
    a_sorted = np.take_along_axis(alpha, order, axis=2)
    before = np.cumsum(a_sorted, axis=2) - a_sorted
    in_cs_sorted = before < 0.95
    in_cs = np.zeros_like(in_cs_sorted)
    np.put_along_axis(in_cs, order, in_cs_sorted, axis=2)
    retained = (in_cs | (alpha > 0.01)) & sig[:, :, None, :]

    # model scores
    u_c = rng.standard_normal((Lc, V, 1))
    chrom = {a_: 0.3 + 0.8 * u_c + 0.6 * rng.standard_normal((Lc, V, T)) for a_ in assays if a_ != "RNA"}
    if "ATAC" in chrom and T > 3:
        chrom["ATAC"][:, :, 3] = np.nan
    if world in ("mediation", "eqtl_aware"):
        scale = np.abs(b).max(axis=(2, 3), keepdims=True)
        rna = 2.5 * b / np.where(scale > 0, scale, 1.0) + 0.2 + 0.5 * rng.standard_normal((Lc, G, V, T))
    else:
        rna = 0.2 + 0.95 * rng.standard_normal((Lc, G, V, 1)) + 0.31 * rng.standard_normal((Lc, G, V, T))
    slope = np.where(np.abs(ez) > 2.5, ez / math.sqrt(_EQTL_N), np.nan)

    li, gi, vi, ti = np.nonzero(retained)
    base = pl.DataFrame({
        "variant_key": (li * V + vi).astype(np.int64), "gene_id": (li * G + gi).astype(np.int64),
        "tissue": ti.astype(np.int64), "pip": alpha[li, gi, vi, ti],
        "cs": np.where(in_cs[li, gi, vi, ti], 0, -1).astype(np.int64), "z_alt": z[li, vi],
        "twas_z": twas_z[li, gi, ti], "twas_p": twas_p[li, gi, ti], "eqtl_slope": slope[li, gi, vi, ti],
        "twas_z_loo": twas_z_loo[li, gi, vi, ti],
        "sim_locus": li.astype(np.int64),
    })
    parts = []
    for a_ in assays:
        s = rna[li, gi, vi, ti] if a_ == "RNA" else chrom[a_][li, vi, ti]
        parts.append(base.with_columns(pl.lit(a_).alias("assay"), pl.Series("score", s, dtype=pl.Float64)))
    out = pl.concat(parts)
    return out.with_columns(
        pl.format("v{}", pl.col("variant_key")).alias("variant_key"),
        pl.format("G{}", pl.col("gene_id")).alias("gene_id"),
        pl.col("tissue").replace_strict(list(range(T)), list(tissues), return_dtype=pl.Utf8).alias("tissue"),
        pl.col("score").fill_nan(None), pl.col("eqtl_slope").fill_nan(None), pl.col("twas_z_loo").fill_nan(None),
    ).select("variant_key", "gene_id", "tissue", "assay", "pip", "cs", "z_alt", "twas_z", "twas_p", "score",
             "eqtl_slope", "twas_z_loo", "sim_locus")
