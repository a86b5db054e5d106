"""A structured **null** QTL/MPRA world for calibrating agval's tests (SIMULATED, not product code).

Real QTL tables share units between rows, and the null world must too, or a calibration
cannot see the anti-conservative P values that row-level tests give (pitfall P31):

* **caQTL** (:func:`null_caqtl`): LD-like blocks of 1-5 SNPs and 1-3 peaks. Each SNP is a
  QTL for one or two peaks of its block (one score, two betas: the SNP joins the peaks),
  and the SNPs of a block have similar scores (a block effect) and similar betas (a block
  effect of their own). All betas are > 0 (effect allele unknown, as GSE86886). Scores
  come in two correlated tracks (ATAC, DNase) and are drawn independently of beta.
* **hQTL** (:func:`null_hqtl`): SNPs significant for H3K27ac, H3K4me1 or both; one signed
  beta per SNP shared by its mark rows; one score per (SNP, mark), correlated across the
  SNP's marks; orientation verified; scores independent of beta.
* **MPRA** (:func:`null_mpra`): constructs grouped in loci that share one model input
  (one prediction per locus, GSE84888 V2) and a locus effect on the measured activity;
  predictions independent of activity.

Under every null the test statistic's P value must be uniform at the true unit; row-level
P values are not. Draws are vectorised numpy; each function takes a
``numpy.random.Generator``. ``effect`` > 0 plants an association (for power): the score
gains a scale ``exp(2 effect z)`` with ``z`` the standardised log beta (caQTL magnitude), the beta (hQTL) or the
locus effect (MPRA).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["NullCaQTL", "NullHQTL", "NullMPRA", "null_caqtl", "null_hqtl", "null_mpra", "HQTL_MARKS"]

HQTL_MARKS = ("H3K27ac", "H3K4me1")


@dataclass
class NullCaQTL:
    """One caQTL study, one row per (SNP, peak): ids, the two tracks' scores, beta > 0."""

    snp: np.ndarray      # (n_rows,) str
    peak: np.ndarray     # (n_rows,) str
    atac: np.ndarray     # (n_rows,) float, one value per SNP repeated on its rows
    dnase: np.ndarray    # (n_rows,) float
    beta: np.ndarray     # (n_rows,) float > 0
    chrom: np.ndarray    # (n_rows,) str, "chr1"
    pos: np.ndarray      # (n_rows,) int: SNPs of a block within 40 kb, blocks 1 Mb apart

    @property
    def n_rows(self) -> int:
        return int(self.snp.size)


@dataclass
class NullHQTL:
    """One hQTL study, one row per (SNP, significant mark): one beta per SNP."""

    snp: np.ndarray      # (n_rows,) str
    mark: np.ndarray     # (n_rows,) str, H3K27ac / H3K4me1
    score: np.ndarray    # (n_rows,) float, the row's mark-matched score
    beta: np.ndarray     # (n_rows,) float, shared by the SNP's rows

    @property
    def n_rows(self) -> int:
        return int(self.snp.size)


@dataclass
class NullMPRA:
    """One MPRA library: constructs with measured activity, a locus id and the locus'
    (shared) prediction."""

    locus: np.ndarray      # (n_rows,) str
    measured: np.ndarray   # (n_rows,) float
    predicted: np.ndarray  # (n_rows,) float, constant within a locus

    @property
    def n_rows(self) -> int:
        return int(self.locus.size)


def null_caqtl(rng: np.random.Generator, *, n_blocks: int = 60, effect: float = 0.0,
               split_blocks: bool = False) -> NullCaQTL:
    """A caQTL study of ``n_blocks`` LD blocks (about 3.5 rows per block).

    ``split_blocks``: each block has ``1 + Binomial(4, 0.7)`` peaks and every SNP is a QTL
    for exactly one of them, so no SNP joins a block's peaks: only the SNPs' positions
    (within 40 kb in a block, blocks 1 Mb apart) tell that they share LD. Units built from
    {SNP, peak} alone then split blocks and the cluster permutation is anti-conservative
    (review finding 1); the default world splits ~11% of blocks."""
    m = np.minimum(1 + rng.poisson(1.5, n_blocks), 5)                 # SNPs per block
    k = 1 + (rng.binomial(4, 0.7, n_blocks) if split_blocks else rng.binomial(2, 0.4, n_blocks))  # peaks/block
    n_snp = int(m.sum())
    snp_block = np.repeat(np.arange(n_blocks), m)
    snp_in_block = np.arange(n_snp) - np.repeat(np.cumsum(m) - m, m)
    k_snp = k[snp_block]
    first_peak = snp_in_block % k_snp
    second = (k_snp > 1) & (rng.random(n_snp) < (0.0 if split_blocks else 0.5))  # QTL for a second peak
    row_snp = np.concatenate([np.arange(n_snp), np.flatnonzero(second)])
    row_peak_local = np.concatenate([first_peak, (first_peak[second] + 1) % k_snp[second]])
    order = np.argsort(row_snp, kind="stable")
    row_snp, row_peak_local = row_snp[order], row_peak_local[order]
    row_block = snp_block[row_snp]
    # betas: block effect + SNP effect + row (peak) noise; > 0 as in GSE86886
    v = rng.normal(0.0, 1.0, n_blocks)
    w = rng.normal(0.0, 0.5, n_snp)
    log_beta = v[row_block] + w[row_snp] + rng.normal(0.0, 0.3, row_snp.size)
    beta = 0.3 * np.exp(0.6 * log_beta)
    # scores: one per SNP, a block scale and a block effect (nearby SNPs score alike)
    scale = np.exp(rng.normal(0.0, 0.5, n_blocks))
    u = rng.normal(0.0, 1.0, n_blocks)
    z_snp = u[snp_block] + 0.5 * rng.normal(0.0, 1.0, n_snp)
    snp_scale = scale[snp_block]
    if effect:
        # planted: larger |score| for larger beta (the magnitude the caQTL headline tests)
        snp_log_beta = v[snp_block] + w
        snp_scale = snp_scale * np.exp(effect * 2.0 * snp_log_beta / snp_log_beta.std())
    atac_snp = 0.05 + 0.3 * snp_scale * z_snp
    dnase_snp = 0.8 * atac_snp + 0.1 * snp_scale * rng.normal(0.0, 1.0, n_snp)
    snp_ids = np.char.add("rs", (1000 + np.arange(n_snp)).astype(str))
    peak_ids = np.char.add(np.char.add("peak", row_block.astype(str)), np.char.add("_", row_peak_local.astype(str)))
    snp_pos = 1_000_000 * (1 + snp_block) + rng.integers(0, 40_000, n_snp)
    return NullCaQTL(snp=snp_ids[row_snp].astype(object), peak=peak_ids.astype(object),
                     atac=atac_snp[row_snp], dnase=dnase_snp[row_snp], beta=beta,
                     chrom=np.full(row_snp.size, "chr1", dtype=object), pos=snp_pos[row_snp])


def null_hqtl(rng: np.random.Generator, *, n_snps: int = 300, effect: float = 0.0) -> NullHQTL:
    """An hQTL study of ``n_snps`` SNPs (about 1.55 mark rows per SNP)."""
    u = rng.random(n_snps)
    has = np.stack([u < 0.92, (u < 0.55) | (u >= 0.92)], axis=1)       # both .55, K27ac .37, K4me1 .08
    beta_snp = rng.standard_t(5, n_snps) * 0.4
    a = rng.normal(0.0, 1.0, n_snps)
    if effect:
        a = a + effect * beta_snp / beta_snp.std()
    score = 0.2 * (a[:, None] + 0.6 * rng.normal(0.0, 1.0, (n_snps, 2)))
    snp_idx, mark_idx = np.nonzero(has)
    return NullHQTL(snp=np.char.add("rs", (5000 + snp_idx).astype(str)).astype(object),
                    mark=np.asarray(HQTL_MARKS, dtype=object)[mark_idx],
                    score=score[snp_idx, mark_idx], beta=beta_snp[snp_idx])


def null_mpra(rng: np.random.Generator, *, n_loci: int = 24, effect: float = 0.0) -> NullMPRA:
    """An MPRA library of ``n_loci`` loci with 5-60 constructs each."""
    size = 5 + rng.integers(0, 56, n_loci)
    locus = np.repeat(np.arange(n_loci), size)
    mu = rng.normal(0.0, 1.0, n_loci)
    pred = rng.normal(0.0, 1.0, n_loci) + effect * mu
    measured = -1.0 + mu[locus] + rng.normal(0.0, 1.0, locus.size)
    return NullMPRA(locus=np.char.add("locus", locus.astype(str)).astype(object), measured=measured,
                    predicted=1e-3 * np.exp(0.3 * pred[locus]))
