"""The fixed neutral backbone that MPRA elements are embedded in (pitfall P16: never N).

When an element's genomic flanks are unknown (a synthetic oligo, a library without a
reference), it is placed in the middle of a **neutral backbone**: a fixed, documented,
deterministic DNA sequence with no strong transcription-factor sites, so that the model
sees a realistic-looking context and the element is the only regulatory signal.

How the backbone is made (``agval-neutral`` version 1, :func:`neutral_backbone`):

1. ``numpy.random.default_rng([seed, 0xBACB0E])`` (``seed`` defaults to
   :data:`BACKBONE_SEED` = 20170213, the GSE84888 paper's publication date) draws
   i.i.d. bases with a mouse-genome-like composition, GC = 42 %
   (A = T = 0.29, C = G = 0.21; about 39 % after step 2);
2. CpG depletion, as in bulk mammalian DNA (observed/expected CpG ≈ 0.2-0.25, so the
   backbone does not look like a CpG-island promoter): each ``CG`` is rewritten to
   ``CA`` or ``TG`` (the deamination products) with probability 0.8;
3. motif scrubbing, on both strands: every match of the consensus sites in
   :data:`AVOID_MOTIFS` (AP-1, CRE, E-box, GC box, NRF1, CTCF, nuclear-receptor
   half-site, GATA, C/EBP, RUNX, ETS/PU.1, MEF2, EBF, T-box, NKX2-5, NF-kB, TATA box,
   polyadenylation signal) gets one base changed to another random base, repeated
   until no match is left (a few passes). The same draw of the same generator always
   gives the same sequence, byte for byte.

The result depends only on ``(length, seed)``; :func:`backbone_info` gives the version,
seed, GC content, CpG o/e and sha256 for the run manifest. A longer backbone is not an
extension of a shorter one (each length is its own draw); a construct of length ``L``
always uses the ``L``-bp backbone.
"""

from __future__ import annotations

import functools
import hashlib
import re

import numpy as np

__all__ = ["BACKBONE_SEED", "BACKBONE_VERSION", "AVOID_MOTIFS", "neutral_backbone", "backbone_info",
           "motif_hits"]

#: Default seed of the neutral backbone (GSE84888 / Grossman et al. 2017 publication date).
BACKBONE_SEED = 20170213
BACKBONE_VERSION = "agval-neutral-v1"

#: IUPAC consensus sites removed from the backbone (both strands), name -> consensus.
AVOID_MOTIFS: dict[str, str] = {
    "AP-1": "TGASTCA",
    "CRE": "TGACGTCA",
    "E-box": "CACGTG",
    "GC-box (SP/KLF)": "GGGGCGGGG",
    "NRF1": "GCGCATGCGC",
    "CTCF": "CCGCGNGGNGGC",
    "NR half-site (PPAR/RXR/RAR)": "AGGTCA",
    "GATA": "WGATAR",
    "C/EBP": "TTGCGCAA",
    "RUNX": "TGTGGTT",
    "ETS/PU.1": "AGAGGAAGT",
    "MEF2": "CTAWWWWTAG",
    "EBF": "TCCCNNGGGA",
    "T-box": "AGGTGTGA",
    "NKX2-5": "TTAAGTG",
    "NF-kB": "GGGRNTTTCC",
    "TATA box": "TATAAA",
    "polyA signal": "AATAAA",
}

_IUPAC = {"A": "A", "C": "C", "G": "G", "T": "T", "R": "[AG]", "Y": "[CT]", "S": "[CG]", "W": "[AT]",
          "K": "[GT]", "M": "[AC]", "N": "[ACGT]"}
_COMP = {"A": "T", "C": "G", "G": "C", "T": "A", "R": "Y", "Y": "R", "S": "S", "W": "W", "K": "M", "M": "K",
         "N": "N"}
_BASES = np.frombuffer(b"ACGT", dtype=np.uint8)
_COMPOSITION = (0.29, 0.21, 0.21, 0.29)
_CPG_KEEP = 0.2
_MAX_PASSES = 200


def _iupac_revcomp(cons: str) -> str:
    return "".join(_COMP[c] for c in reversed(cons))


def _pattern() -> re.Pattern:
    alts = []
    for cons in AVOID_MOTIFS.values():
        for c in {cons, _iupac_revcomp(cons)}:
            alts.append("".join(_IUPAC[ch] for ch in c))
    # zero-width lookahead: overlapping matches are all found
    return re.compile("(?=(" + "|".join(sorted(set(alts))) + "))")


_PATTERN = _pattern()


def motif_hits(seq: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every :data:`AVOID_MOTIFS` match in ``seq`` (both strands,
    overlapping matches included)."""
    return [(m.start(), m.start() + len(m.group(1))) for m in _PATTERN.finditer(seq.upper())]


@functools.lru_cache(maxsize=8)
def neutral_backbone(length: int = 16_384, seed: int = BACKBONE_SEED) -> str:
    """The neutral backbone of ``length`` bp for ``seed`` (see the module docstring)."""
    if length <= 0:
        raise ValueError(f"backbone length must be positive, got {length}")
    rng = np.random.default_rng([int(seed), 0xBACB0E])
    codes = rng.choice(4, size=length, p=_COMPOSITION).astype(np.uint8)
    # CpG depletion: C(1) followed by G(2)
    cg = np.flatnonzero((codes[:-1] == 1) & (codes[1:] == 2))
    rewrite = cg[rng.random(cg.size) >= _CPG_KEEP]
    to_ca = rng.random(rewrite.size) < 0.5
    codes[rewrite[to_ca] + 1] = 0      # CG -> CA
    codes[rewrite[~to_ca]] = 3         # CG -> TG
    seq = bytearray(_BASES[codes].tobytes())
    for _ in range(_MAX_PASSES):
        hits = motif_hits(seq.decode())
        if not hits:
            break
        for a, b in hits:
            i = a + int(rng.integers(0, b - a))
            choices = [x for x in b"ACGT" if x != seq[i]]
            seq[i] = choices[int(rng.integers(0, 3))]
    else:  # pragma: no cover - the scrub converges in a handful of passes
        raise RuntimeError("neutral backbone: motif scrubbing did not converge")
    return seq.decode()


def backbone_info(length: int = 16_384, seed: int = BACKBONE_SEED) -> dict:
    """Version, seed, length, GC fraction, CpG observed/expected and sha256 of a backbone."""
    s = neutral_backbone(length, seed)
    gc = (s.count("G") + s.count("C")) / len(s)
    c, g = s.count("C") / len(s), s.count("G") / len(s)
    cpg = s.count("CG") / max(1, len(s) - 1)
    return {"version": BACKBONE_VERSION, "seed": int(seed), "length": int(length), "gc": round(gc, 4),
            "cpg_obs_exp": round(cpg / (c * g), 4) if c * g else None,
            "sha256": hashlib.sha256(s.encode()).hexdigest(), "avoided_motifs": sorted(AVOID_MOTIFS)}
