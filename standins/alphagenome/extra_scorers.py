"""The stand-in's splicing, polyadenylation, active-allele and contact-map scorers (SIMULATED).

Together with the centre-mask and gene-mask LFC scorers of
:mod:`standins.alphagenome.servicer` they make the SDK's 19
``RECOMMENDED_VARIANT_SCORERS``. Everything is computed from the synthetic world (its
genome, its genes' exons and the stand-in's own motif weights), never from a study's
answers. Output shapes follow the SDK (``ScoreVariant``: values ``[2, n_obs, n_tracks]``):

* ``GeneMaskActiveScorer(RNA_SEQ)``: one row per gene with an exon in the interval;
  ``max(mean ALT, mean REF)`` of the gene's exon signal per RNA_SEQ track (unsigned).
* ``GeneMaskSplicingScorer(SPLICE_SITES | SPLICE_SITE_USAGE, width)``: one row per gene
  with an exon in the interval; the largest ``|ALT - REF|`` splice-site probability over
  the gene's donor/acceptor sites (within ``width // 2`` of the variant when a width is
  given). SPLICE_SITES tracks are ``donor``/``acceptor`` per strand; SPLICE_SITE_USAGE
  tracks scale the change per biosample (unsigned).
* ``SpliceJunctionScorer``: one row per (gene, junction) of the genes whose body holds
  the variant (``junction_start``/``junction_end`` = the intron, 0-based half-open);
  ``|log2 ratio|`` of the junction's ALT/REF strength (donor x acceptor probability) per
  junction track (unstranded; unsigned).
* ``PolyadenylationScorer`` (human only): one row per gene with an exon in the interval;
  ``|log2 ratio|`` of ALT/REF polyadenylation-signal hexamers (AATAAA, ATTAAA) in the 40
  bases before the gene's 3' end, per RNA_SEQ track (unsigned).
* ``ContactMapScorer``: one row; ``sum |ALT - REF|`` motif occupancy within 40 bp of the
  variant, scaled per contact-map track (unsigned).

Splice-site probabilities are a logistic score of a fixed consensus (donor
``MAG|GTRAGT``, acceptor ``(Y)10 NCAG|G``) read on the gene's strand. Gene-strand rules
are the SDK's: cells of a stranded track on the other strand than the gene are NaN (the
server merges them away with ``merge_stranded_gene_tracks``).
"""

from __future__ import annotations

import hashlib

import numpy as np

from agval.coords import Variant

#: extra ScorerSpec kinds (``standins.alphagenome.servicer.ScorerSpec.kind``)
GENE_KINDS = frozenset({"gene_mask_lfc", "gene_mask_active", "gene_mask_splicing", "pa_qtl", "splice_junction"})
NEW_KINDS = frozenset({"gene_mask_active", "gene_mask_splicing", "pa_qtl", "splice_junction", "contact_map"})

_COMP = str.maketrans("ACGTN", "TGCAN")
#: consensus per position (sets of allowed bases) and weight; donor = 3 exon + 6 intron
#: bases, acceptor = 14 intron + 1 exon base
_DONOR = [("AC", .6), ("A", .7), ("G", .9), ("G", 3.), ("T", 3.), ("AG", .8), ("A", .7), ("G", .9), ("T", .5)]
_ACCEPTOR = [("CT", .35)] * 10 + [("ACGT", 0.), ("C", .6), ("A", 3.), ("G", 3.), ("G", .7)]
_PAS = ("AATAAA", "ATTAAA")
PAS_WINDOW = 40
SITE_REACH = 20  # sites whose window is farther than this from the variant are unchanged


def _revcomp(s: str) -> str:
    return s.translate(_COMP)[::-1]


def _unit(*parts) -> float:
    """A deterministic number in [0, 1) from ``parts``."""
    h = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=4).digest()
    return int.from_bytes(h, "little") / 2 ** 32


def _site_prob(seq: str, pwm) -> float:
    score = sum(w for (ok, w), b in zip(pwm, seq) if b in ok)
    full = sum(w for _, w in pwm)
    return float(1.0 / (1.0 + np.exp(-(score - 0.5 * full))))


class _Haplotypes:
    """REF and ALT sequence of windows given in REF coordinates (0-based half-open):
    positions right of the variant are shifted by the indel length in ALT."""

    def __init__(self, fetch, variant: Variant):
        self.fetch = fetch
        self.v = variant
        self.d = len(variant.alt) - len(variant.ref)

    def ref(self, chrom: str, a: int, b: int) -> str:
        return self.fetch(chrom, a, b)

    def alt(self, chrom: str, a: int, b: int) -> str:
        v = self.v
        v0, v1 = v.start0, v.start0 + len(v.ref)
        if b <= v0:
            return self.fetch(chrom, a, b)
        if a >= v1:  # right of the variant: the window moves with its site, same bases
            return self.fetch(chrom, a, b)
        lo, hi = min(a, v0) - 1, max(b, v1) + abs(self.d) + 1
        local = self.fetch(chrom, lo, hi)
        alt_local = local[:v0 - lo] + v.alt + local[v1 - lo:]
        return alt_local[a - lo:b - lo]

    def near(self, a: int, b: int) -> bool:
        v0, v1 = self.v.start0, self.v.start0 + len(self.v.ref)
        return a - SITE_REACH < v1 and b + SITE_REACH > v0


def _sites(blocks: np.ndarray, strand: str) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    """Donor and acceptor windows ``(boundary, a, b)`` (genomic, 0-based half-open) of merged exon
    ``blocks`` ``[B, 2]`` sorted by start; the window is read on the gene's strand."""
    donors, acceptors = [], []
    n = len(blocks)
    for i, (s, e) in enumerate(blocks.tolist()):
        if strand == "+":
            if i < n - 1:
                donors.append((e, e - 3, e + 6))
            if i > 0:
                acceptors.append((s, s - 14, s + 1))
        else:
            if i > 0:
                donors.append((s, s - 6, s + 3))
            if i < n - 1:
                acceptors.append((e, e - 1, e + 14))
    return donors, acceptors


def _probs(h: _Haplotypes, chrom: str, a: int, b: int, strand: str, pwm) -> tuple[float, float]:
    r, x = h.ref(chrom, a, b), h.alt(chrom, a, b)
    if strand == "-":
        r, x = _revcomp(r), _revcomp(x)
    return _site_prob(r, pwm), _site_prob(x, pwm)


def splice_site_deltas(core, variant: Variant, gids: list[str], width: int | None) -> np.ndarray:
    """``[G, 2]`` largest ``|ALT - REF|`` donor and acceptor probability per gene."""
    h = _Haplotypes(core.genome.fetch, variant)
    out = np.zeros((len(gids), 2))
    half = None if width is None else width // 2
    for gi, gid in enumerate(gids):
        blocks = core._exon_blocks.get(gid)
        if blocks is None or len(blocks) < 2:
            continue
        strand = core._gene_info[gid]["strand"]
        donors, acceptors = _sites(np.sort(blocks, axis=0), strand)
        for k, (sites, pwm) in enumerate(((donors, _DONOR), (acceptors, _ACCEPTOR))):
            for bnd, a, b in sites:
                if not h.near(a, b) or (half is not None and abs(bnd - variant.start0) > half):
                    continue
                pr, pa = _probs(h, variant.chrom, a, b, strand, pwm)
                out[gi, k] = max(out[gi, k], abs(pa - pr))
    return out


def _strand_mask(values: np.ndarray, gene_strands: list[str], track_strands: list[str]) -> np.ndarray:
    gs = np.array(gene_strands, dtype=object)[:, None]
    ts = np.array(track_strands, dtype=object)[None, :]
    return np.where((ts == ".") | (ts == gs), values, np.nan)


def _tracks(core, organism: str, output_type: str):
    df = core.tracks(organism, output_type)
    return df["name"].to_list(), df["strand"].to_list(), df["ontology_curie"].to_list()


def score_splicing(core, organism: str, variant: Variant, interval, spec) -> tuple[np.ndarray, list]:
    _, start, end = interval
    gids = core.genes_in(variant.chrom, start, end)
    names, tstrands, curies = _tracks(core, organism, spec.output_type)
    if not gids:
        return np.zeros((0, len(names))), []
    deltas = splice_site_deltas(core, variant, gids, spec.width)  # [G, 2]
    if spec.output_type == "SPLICE_SITES":
        col = np.array([1 if "acceptor" in n.lower() else 0 for n in names])
        vals = deltas[:, col]
    else:
        f = np.array([[0.3 + 0.7 * _unit("usage", c, g) for c in curies] for g in gids])
        vals = deltas.max(axis=1, keepdims=True) * f
    return _strand_mask(vals, [core._gene_info[g]["strand"] for g in gids], tstrands), gids


def score_junctions(core, organism: str, variant: Variant, interval, spec) -> tuple[np.ndarray, list]:
    _, start, end = interval
    names, _, curies = _tracks(core, organism, "SPLICE_JUNCTIONS")
    h = _Haplotypes(core.genome.fetch, variant)
    obs, rows = [], []
    for gid in core.genes_in(variant.chrom, start, end):
        blocks = core._exon_blocks.get(gid)
        if blocks is None or len(blocks) < 2:
            continue
        blocks = np.sort(blocks, axis=0)
        if not (blocks[0, 0] <= variant.start0 < blocks[-1, 1]):
            continue
        strand = core._gene_info[gid]["strand"]
        donors, acceptors = _sites(blocks, strand)
        # intron i joins exon i and exon i + 1 (genomic order)
        left = donors if strand == "+" else acceptors
        right = acceptors if strand == "+" else donors
        for (b0, a0, e0), (b1, a1, e1) in zip(left, right):
            if b0 < start or b1 > end:
                continue
            lfc = 0.0
            if h.near(a0, e0) or h.near(a1, e1):
                pw0 = _DONOR if strand == "+" else _ACCEPTOR
                pw1 = _ACCEPTOR if strand == "+" else _DONOR
                r0, x0 = _probs(h, variant.chrom, a0, e0, strand, pw0)
                r1, x1 = _probs(h, variant.chrom, a1, e1, strand, pw1)
                lfc = abs(np.log2((x0 * x1 + 0.01) / (r0 * r1 + 0.01)))
            obs.append((gid, int(b0), int(b1)))
            rows.append([lfc * (0.5 + _unit("junction", c, gid, b0)) for c in curies])
    if not obs:
        return np.zeros((0, len(names))), []
    return np.asarray(rows, dtype=np.float64), obs


def score_polyadenylation(core, organism: str, variant: Variant, interval, spec) -> tuple[np.ndarray, list]:
    _, start, end = interval
    gids = core.genes_in(variant.chrom, start, end)
    names, tstrands, curies = _tracks(core, organism, "RNA_SEQ")
    if not gids:
        return np.zeros((0, len(names))), []
    h = _Haplotypes(core.genome.fetch, variant)
    base = np.zeros(len(gids))
    for gi, gid in enumerate(gids):
        blocks = core._exon_blocks.get(gid)
        strand = core._gene_info[gid]["strand"]
        a, b = ((int(blocks[:, 1].max()) - PAS_WINDOW, int(blocks[:, 1].max())) if strand == "+"
                else (int(blocks[:, 0].min()), int(blocks[:, 0].min()) + PAS_WINDOW))
        if not h.near(a, b):
            continue
        r, x = h.ref(variant.chrom, a, b), h.alt(variant.chrom, a, b)
        if strand == "-":
            r, x = _revcomp(r), _revcomp(x)
        cr = sum(r.count(m) for m in _PAS)
        cx = sum(x.count(m) for m in _PAS)
        base[gi] = abs(np.log2((cx + 0.25) / (cr + 0.25)))
    f = np.array([0.5 + _unit("pas", c, n) for c, n in zip(curies, names)])[None, :]
    return _strand_mask(base[:, None] * f, [core._gene_info[g]["strand"] for g in gids], tstrands), gids


def score_contact_map(core, organism: str, variant: Variant, interval, spec, version: str) -> np.ndarray:
    names, _, curies = _tracks(core, organism, "CONTACT_MAPS")
    if not names:
        return np.zeros((1, 0))
    _, start, end = interval
    h = _Haplotypes(core.genome.within(start, end).fetch, variant)
    a, b = variant.start0 - 40, variant.start0 + len(variant.ref) + 40
    bm = core.batch_model(version)
    ref = bm.occupancies(h.ref(variant.chrom, a, b))[2].sum(axis=1)
    alt_seq = core.genome.fetch(variant.chrom, a, variant.start0) + variant.alt + \
        core.genome.fetch(variant.chrom, variant.start0 + len(variant.ref), b)
    alt = bm.occupancies(alt_seq)[2].sum(axis=1)
    d = float(np.abs(alt - ref).sum())
    return np.array([[d * (0.05 + 0.1 * _unit("contact", n, c)) for n, c in zip(names, curies)]])


def score_active(core, version: str, organism: str, variant: Variant, interval, spec) -> tuple[np.ndarray, list]:
    """``max(mean ALT, mean REF)`` exon signal ``[G, n_tracks]`` of RNA_SEQ tracks (the
    gene-mask LFC's own sums; strand-mismatched cells NaN)."""
    _, start, end = interval
    ctxs = core.contexts(organism, "RNA_SEQ")
    gids = core.genes_in(variant.chrom, start, end)
    if not gids or not ctxs:
        return np.zeros((len(gids), len(ctxs))), gids
    core.model(version)
    eng = core._engines[version]
    model = core.model(version)
    gain = model.params.output_gains.get("RNA_SEQ", 1.0)
    curies = tuple(dict.fromkeys(c.curie for c in ctxs))
    col = np.array([curies.index(c.curie) for c in ctxs])
    use_p = np.array([c.strand in "+." for c in ctxs])[None, :]
    use_m = np.array([c.strand in "-." for c in ctxs])[None, :]
    refs = [eng.ref_sums(variant.chrom, g, start, end, curies) for g in gids]
    sp = np.stack([r[0] for r in refs])[:, col]
    sm = np.stack([r[1] for r in refs])[:, col]
    n = np.maximum(np.array([r[2] for r in refs], dtype=np.float64), 1.0)[:, None]
    ref_s = np.where(use_p, sp, 0.0) + np.where(use_m, sm, 0.0)
    mean_ref = gain * (ref_s / n + 0.001)
    # ALT: the LFC scorer's answer gives ALT / REF of the same exon means
    _, lfc = core._gene_scores(version, variant, core.unique_contexts(organism, "RNA_SEQ")[0], start, end)
    uinv = core.unique_contexts(organism, "RNA_SEQ")[1]
    lfc = lfc[:, uinv]
    mean_alt = np.exp(lfc) * (mean_ref + 0.001) - 0.001
    vals = np.maximum(mean_ref, mean_alt)
    return _strand_mask(vals, [core._gene_info[g]["strand"] for g in gids], [c.strand for c in ctxs]), gids
