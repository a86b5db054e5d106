"""Variant-scoring arithmetic shared by the stand-in AlphaGenome service and the truth
oracle (SIMULATED world; not product code).

Conventions
-----------
* Variants are :class:`agval.coords.Variant` (1-based ``pos``, VCF alleles).
  ``v0 = pos - 1`` is the 0-based index of the first REF base.
* Signals are arrays ``[L, n_tracks]`` over a 0-based half-open genome slice.
* **Indel alignment** (AlphaGenome's documented behaviour): the ALT prediction is
  mapped back onto REF coordinates before any mask is applied. With ``k = min(len(ref),
  len(alt))`` the first ``k - 1`` allele bases map one to one; for an insertion the
  REF base ``v0 + k - 1`` receives the **maximum** of ALT over the inserted segment
  (``ALT[v0 + k - 1 : v0 + len(alt))``); for a deletion the deleted REF bases
  ``[v0 + k, v0 + len(ref))`` get **zero** ALT signal; bases after the allele are
  shifted by ``len(alt) - len(ref)``. See :func:`align_alt_to_ref`.
* **Centre mask** of width ``w`` around a variant at array index ``c`` (= ``v0`` minus
  the slice start): ``[c - w // 2, c - w // 2 + w)`` (501 -> 250 bases either side of
  the first REF base). DIFF_LOG2_SUM = ``log2((sum ALT + 1) / (sum REF + 1))``.
* **Gene mask** LFC = ``ln(mean ALT over exon bases + 0.001) - ln(mean REF + 0.001)``
  (natural log), exon bases = union of the gene's exons clipped to the scored interval.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np
import polars as pl

from agval.coords import Variant
from standins.seqmodel import SequenceModel, TrackContext

#: center-mask widths of AlphaGenome's recommended scorers
CENTER_WIDTHS: dict[str, int] = {"ATAC": 501, "DNASE": 501, "CAGE": 501, "PROCAP": 501,
                                 "CHIP_TF": 501, "CHIP_HISTONE": 2001}
#: output types scored with the gene-mask LFC scorer
GENE_MASK_TYPES = ("RNA_SEQ",)
SEQUENCE_LENGTH_1MB = 1 << 20


def _fetcher(genome) -> Callable[[str, int, int], str]:
    return genome.fetch if hasattr(genome, "fetch") else genome


# --------------------------------------------------------------------------- pure math

def align_alt_to_ref(alt_sig: np.ndarray, var_index: int, ref_len: int, alt_len: int) -> np.ndarray:
    """Map an ALT signal ``[L_ref - ref_len + alt_len, T]`` onto REF coordinates ``[L_ref, T]``.

    ``var_index``: 0-based index of the variant's first REF base in the REF array (the
    ALT array has the ALT allele at the same index). Rules in the module docstring.
    """
    alt_sig = np.asarray(alt_sig)
    if ref_len == alt_len:
        return alt_sig
    L_ref = alt_sig.shape[0] - alt_len + ref_len
    out = np.zeros((L_ref,) + alt_sig.shape[1:], dtype=np.result_type(alt_sig.dtype, np.float32))
    i, k = var_index, min(ref_len, alt_len)
    out[:i + k - 1] = alt_sig[:i + k - 1]
    if alt_len > ref_len:
        out[i + k - 1] = alt_sig[i + k - 1:i + alt_len].max(axis=0)
    else:
        out[i + k - 1] = alt_sig[i + k - 1]
        out[i + k:i + ref_len] = 0
    out[i + ref_len:] = alt_sig[i + alt_len:]
    return out


def center_window(center: int, width: int, length: int | None = None) -> tuple[int, int]:
    """0-based half-open ``[center - width // 2, center - width // 2 + width)``,
    clipped to ``[0, length)`` when ``length`` is given."""
    a = center - width // 2
    b = a + width
    if length is not None:
        a, b = max(a, 0), min(b, length)
    return a, b


def center_mask_diff_log2_sum(ref_sig: np.ndarray, alt_sig: np.ndarray, width: int, *,
                              center: int | None = None,
                              allele_lengths: tuple[int, int] | None = None) -> np.ndarray:
    """DIFF_LOG2_SUM per track: ``log2((sum ALT + 1) / (sum REF + 1))`` over the centre mask.

    ``ref_sig``: ``[L, T]`` (or ``[L]``). ``alt_sig``: same shape when already aligned to
    REF coordinates; for an indel pass the raw ALT signal together with
    ``allele_lengths=(len(ref), len(alt))`` and it is aligned with
    :func:`align_alt_to_ref`. ``center``: array index of the first REF base (default
    ``L // 2``). Returns float64 ``[T]`` (or a scalar for 1-D input).
    """
    ref_sig = np.asarray(ref_sig, dtype=np.float64)
    alt_sig = np.asarray(alt_sig, dtype=np.float64)
    c = ref_sig.shape[0] // 2 if center is None else int(center)
    if alt_sig.shape[0] != ref_sig.shape[0]:
        if allele_lengths is None:
            raise ValueError("ALT and REF signals differ in length: pass allele_lengths=(len(ref), len(alt))")
        alt_sig = align_alt_to_ref(alt_sig, c, *allele_lengths)
    a, b = center_window(c, width, ref_sig.shape[0])
    return np.log2((alt_sig[a:b].sum(axis=0) + 1.0) / (ref_sig[a:b].sum(axis=0) + 1.0))


def gene_mask_lfc(ref_sig: np.ndarray, alt_sig: np.ndarray, exon_mask: np.ndarray) -> np.ndarray:
    """``ln(mean ALT + 0.001) - ln(mean REF + 0.001)`` over the masked bases.

    ``ref_sig``/``alt_sig``: ``[L, T]`` aligned to the same (REF) coordinates.
    ``exon_mask``: bool ``[L]`` (one gene) -> ``[T]``, or ``[G, L]`` -> ``[G, T]``.
    A gene with no masked base gives NaN.
    """
    ref = np.asarray(ref_sig, dtype=np.float64)
    alt = np.asarray(alt_sig, dtype=np.float64)
    mask = np.asarray(exon_mask, dtype=np.float64)
    n = mask.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mr = (mask @ ref) / n[..., None] if mask.ndim == 2 else (mask @ ref) / n
        ma = (mask @ alt) / n[..., None] if mask.ndim == 2 else (mask @ alt) / n
        return np.log(ma + 0.001) - np.log(mr + 0.001)


def default_interval(variant: Variant, width: int = SEQUENCE_LENGTH_1MB) -> tuple[int, int]:
    """The SDK's ``variant.reference_interval.resize(width)`` as 0-based ``(start, end)``."""
    start, end = variant.pos - 1, variant.pos - 1 + len(variant.ref)
    center = (start + end) // 2
    return center - (width + 1) // 2, center + width // 2


# --------------------------------------------------------------------------- local-window scoring

@dataclass
class VariantScores:
    """Raw scores of one variant.

    * ``center``: float64 ``[n_tracks]`` DIFF_LOG2_SUM for centre-mask tracks (NaN for
      gene-mask tracks, i.e. RNA_SEQ);
    * ``gene_ids``: genes with at least one exon base in the scored interval;
    * ``gene_lfc``: float64 ``[n_genes, n_tracks]`` gene-mask LFC (NaN columns for
      non-RNA tracks). Strand matching (NaN where track and gene strands differ) is
      the caller's business.
    """

    center: np.ndarray
    gene_ids: list[str]
    gene_lfc: np.ndarray


class LocalScorer:
    """Scores variants with a :class:`SequenceModel` on local windows only.

    A window of ``width + 2 * reach`` (plus the allele) around the variant gives
    **exactly** the values a 1 Mb prediction would (the model's locality is exact), so
    no 1 Mb array per track is ever built. Gene-mask REF exon sums are computed once per
    (gene, clipped interval, track contexts) and cached; ALT differs from REF only
    within ``reach`` of the variant, so only that stretch is recomputed.

    ``genome``: anything with ``fetch(chrom, start0, end0) -> str`` (N outside the
    chromosome). ``genes``/``exons``: the world's frames (needed for gene-mask scores).
    Thread-safe.
    """

    def __init__(self, model: SequenceModel, genome, genes: pl.DataFrame | None = None,
                 exons: pl.DataFrame | None = None, tracks_fn: Callable | None = None):
        self.model = model
        #: ``(seq, contexts) -> float32 [len(seq), n]``; default the model's own (one context
        #: at a time); the stand-in passes ``standins.fastmodel.BatchModel.tracks``
        self._tracks = tracks_fn or model.tracks_for_contexts
        self._fetch = _fetcher(genome)
        self.genes = genes
        self._exons_by_gene: dict[str, np.ndarray] = {}
        self._genes_by_chrom: dict[str, pl.DataFrame] = {}
        if genes is not None and exons is not None:
            for (gid,), sub in exons.sort(["gene_id", "start"]).group_by(["gene_id"], maintain_order=True):
                self._exons_by_gene[gid] = np.stack([sub["start"].to_numpy() - 1, sub["end"].to_numpy()], axis=1)
            for (chrom,), sub in genes.sort("start").group_by(["chrom"], maintain_order=True):
                self._genes_by_chrom[chrom] = sub
        self._ref_cache: dict[tuple, tuple[np.ndarray, int]] = {}
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- core
    def ref_alt(self, variant: Variant, contexts: list[TrackContext], lo: int, hi: int,
                reach: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """REF signal and REF-aligned ALT signal over REF coordinates ``[lo, hi)``
        (0-based half-open), each float64 ``[hi - lo, T]``; exact."""
        R = self.model.reach if reach is None else reach
        lr, la = len(variant.ref), len(variant.alt)
        pad = max(lr, la) + 1
        L0, L1 = lo - R - pad, hi + R + pad
        v0 = variant.pos - 1
        if not (L0 <= v0 and v0 + lr <= L1):
            raise ValueError("variant outside the local window")
        seq = self._fetch(variant.chrom, L0, L1)
        i = v0 - L0
        alt_seq = seq[:i] + variant.alt + seq[i + lr:]
        ref_sig = self._tracks(seq, contexts).astype(np.float64)
        alt_sig = self._tracks(alt_seq, contexts).astype(np.float64)
        alt_al = align_alt_to_ref(alt_sig, i, lr, la)
        return ref_sig[lo - L0:hi - L0], alt_al[lo - L0:hi - L0]

    def center_scores(self, variant: Variant, tracks: pl.DataFrame | list[TrackContext],
                      widths: dict[str, int] | None = None) -> np.ndarray:
        """DIFF_LOG2_SUM per track, float64 ``[n_tracks]``; NaN for gene-mask types.

        ``widths``: output type -> centre width (default :data:`CENTER_WIDTHS`; types
        without a width, other than RNA_SEQ, use 501)."""
        ctxs = tracks if isinstance(tracks, list) else self.model.contexts_of(tracks)
        widths = {**CENTER_WIDTHS, **(widths or {})}
        out = np.full(len(ctxs), np.nan)
        v0 = variant.pos - 1
        by_width: dict[int, list[int]] = {}
        for j, c in enumerate(ctxs):
            if c.output_type not in GENE_MASK_TYPES:
                by_width.setdefault(widths.get(c.output_type, 501), []).append(j)
        for w, idx in sorted(by_width.items()):
            sub = [ctxs[j] for j in idx]
            R = self.model.reach_for({c.output_type for c in sub})
            a, b = center_window(v0, w)
            ref, alt = self.ref_alt(variant, sub, a, b, reach=R)
            out[idx] = np.log2((alt.sum(axis=0) + 1.0) / (ref.sum(axis=0) + 1.0))
        return out

    def genes_in(self, chrom: str, start0: int, end0: int) -> list[str]:
        """Gene ids with at least one exon base in ``[start0, end0)`` (genome order)."""
        g = self._genes_by_chrom.get(chrom)
        if g is None:
            return []
        g = g.filter((pl.col("start") - 1 < end0) & (pl.col("end") > start0))
        out = []
        for gid in g["gene_id"].to_list():
            ex = self._exons_by_gene.get(gid)
            if ex is not None and np.any((ex[:, 0] < end0) & (ex[:, 1] > start0)):
                out.append(gid)
        return out

    def _blocks(self, gid: str, start0: int, end0: int) -> np.ndarray:
        """Merged exon blocks of a gene clipped to ``[start0, end0)``: int ``[B, 2]``."""
        ex = self._exons_by_gene[gid]
        ex = np.stack([np.maximum(ex[:, 0], start0), np.minimum(ex[:, 1], end0)], axis=1)
        ex = ex[ex[:, 1] > ex[:, 0]]
        ex = ex[np.argsort(ex[:, 0], kind="stable")]
        merged: list[list[int]] = []
        for s, e in ex.tolist():
            if merged and s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        return np.asarray(merged, dtype=np.int64).reshape(-1, 2)

    def _gene_block_sums(self, chrom: str, gid: str, ctxs: list[TrackContext], key_ctx: tuple,
                         R: int) -> dict[tuple[int, int], np.ndarray]:
        """REF signal summed over each merged (unclipped) exon block of a gene, cached;
        one model call per run of blocks closer than ``2R`` (usually one per gene)."""
        key = (gid, key_ctx)
        with self._lock:
            hit = self._ref_cache.get(key)
        if hit is not None:
            return hit
        blocks = self._blocks(gid, -(1 << 62), 1 << 62)
        sums: dict[tuple[int, int], np.ndarray] = {}
        groups: list[list[list[int]]] = []
        for s, e in blocks.tolist():
            if groups and s - groups[-1][-1][1] <= 2 * R:
                groups[-1].append([s, e])
            else:
                groups.append([[s, e]])
        for grp in groups:
            a, b = grp[0][0], grp[-1][1]
            sig = self._tracks(self._fetch(chrom, a - R, b + R), ctxs)
            for s, e in grp:
                sums[(s, e)] = sig[s - a + R:e - a + R].sum(axis=0, dtype=np.float64)
        with self._lock:
            self._ref_cache[key] = sums
        return sums

    def _ref_exon_sum(self, chrom: str, gid: str, blocks: np.ndarray, ctxs: list[TrackContext],
                      key_ctx: tuple, R: int) -> tuple[np.ndarray, int]:
        """(sum of REF signal over the exon bases in ``blocks``, number of bases)."""
        sums = self._gene_block_sums(chrom, gid, ctxs, key_ctx, R)
        total = np.zeros(len(ctxs))
        n = 0
        for s, e in blocks.tolist():
            v = sums.get((s, e))
            if v is None:  # a block clipped by the interval edge
                ck = (gid, key_ctx, s, e)
                with self._lock:
                    v = self._ref_cache.get(ck)
                if v is None:
                    sig = self._tracks(self._fetch(chrom, s - R, e + R), ctxs)
                    v = sig[R:R + e - s].sum(axis=0, dtype=np.float64)
                    with self._lock:
                        self._ref_cache[ck] = v
            total += v
            n += e - s
        return total, n

    def gene_scores(self, variant: Variant, tracks: pl.DataFrame | list[TrackContext],
                    interval: tuple[int, int] | None = None) -> tuple[list[str], np.ndarray]:
        """Gene-mask LFC for every gene with exons in ``interval`` (0-based half-open on
        the variant's chromosome; default the 1 Mb SDK interval around the variant).

        Returns ``(gene_ids, lfc [n_genes, n_tracks])``; columns of non-RNA tracks are NaN.
        """
        if not self._exons_by_gene:
            raise ValueError("LocalScorer needs genes and exons for gene-mask scores")
        ctxs = tracks if isinstance(tracks, list) else self.model.contexts_of(tracks)
        start0, end0 = interval if interval is not None else default_interval(variant)
        gids = self.genes_in(variant.chrom, start0, end0)
        out = np.full((len(gids), len(ctxs)), np.nan)
        cols = [j for j, c in enumerate(ctxs) if c.output_type in GENE_MASK_TYPES]
        if not gids or not cols:
            return gids, out
        sub = [ctxs[j] for j in cols]
        local: dict = {}
        for gi, gid in enumerate(gids):
            out[gi, cols] = self._lfc(variant, gid, sub, start0, end0, local)
        return gids, out

    def gene_lfc(self, variant: Variant, gene_id: str, tracks: pl.DataFrame | list[TrackContext],
                 interval: tuple[int, int] | None = None) -> np.ndarray:
        """Gene-mask LFC of one gene for **every** given track (any output type),
        float64 ``[n_tracks]``. ``interval`` clips the exons (default: none, all exons)."""
        if gene_id not in self._exons_by_gene:
            raise KeyError(f"unknown gene {gene_id!r}")
        ctxs = tracks if isinstance(tracks, list) else self.model.contexts_of(tracks)
        start0, end0 = interval if interval is not None else (-(1 << 62), 1 << 62)
        return self._lfc(variant, gene_id, ctxs, start0, end0, {})

    def _lfc(self, variant: Variant, gid: str, ctxs: list[TrackContext], start0: int, end0: int,
             local: dict) -> np.ndarray:
        """LFC of gene ``gid`` over its exons clipped to ``[start0, end0)``, ``[len(ctxs)]``.

        mean ALT = mean REF + (sum over exon bases near the variant of ALT - REF) / n, since
        the REF-aligned ALT signal equals REF farther than ``reach`` from the allele."""
        R = self.model.reach_for({c.output_type for c in ctxs})
        blocks = self._blocks(gid, start0, end0)
        if blocks.size == 0:
            return np.full(len(ctxs), np.nan)
        v0, lr = variant.pos - 1, len(variant.ref)
        lo, hi = max(v0 - R, start0), min(v0 + lr + R, end0)  # ALT can differ only here
        near = blocks[(blocks[:, 0] < hi) & (blocks[:, 1] > lo)]
        if not len(near) or hi <= lo:
            return np.zeros(len(ctxs))  # ALT == REF on every exon base: LFC exactly 0
        tot, n = self._ref_exon_sum(variant.chrom, gid, blocks, ctxs, tuple(ctxs), R)
        mean_ref = tot / n
        key = (lo, hi, tuple(ctxs))
        if key not in local:
            local[key] = self.ref_alt(variant, ctxs, lo, hi, reach=R)
        ref, alt = local[key]
        mask = np.zeros(hi - lo, dtype=bool)
        for s, e in near.tolist():
            mask[max(s, lo) - lo:min(e, hi) - lo] = True
        delta = (alt[mask] - ref[mask]).sum(axis=0)
        mean_alt = mean_ref + delta / n
        return np.log(mean_alt + 0.001) - np.log(mean_ref + 0.001)

    def score(self, variant: Variant, tracks: pl.DataFrame | list[TrackContext],
              interval: tuple[int, int] | None = None,
              widths: dict[str, int] | None = None) -> VariantScores:
        """Centre-mask scores for all tracks plus gene-mask LFCs (when genes are known)."""
        ctxs = tracks if isinstance(tracks, list) else self.model.contexts_of(tracks)
        center = self.center_scores(variant, ctxs, widths)
        if self._exons_by_gene and any(c.output_type in GENE_MASK_TYPES for c in ctxs):
            gids, lfc = self.gene_scores(variant, ctxs, interval)
        else:
            gids, lfc = [], np.zeros((0, len(ctxs)))
        return VariantScores(center, gids, lfc)


def score_variant(model: SequenceModel, genome, variant: Variant, tracks: pl.DataFrame, *,
                  genes: pl.DataFrame | None = None, exons: pl.DataFrame | None = None,
                  interval: tuple[int, int] | None = None) -> VariantScores:
    """One-shot convenience wrapper around :class:`LocalScorer` (no cache reuse)."""
    return LocalScorer(model, genome, genes, exons).score(variant, tracks, interval)
