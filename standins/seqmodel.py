"""A small, fast, *synthetic* regulatory sequence model (SIMULATED; not product code).

One model, two parameter sets: the synthetic world's **truth** (``truth.json``) and the
stand-in AlphaGenome service's **own** parameters (``truth.perturbed(...)``), so the
stand-in is an imperfect predictor of the truth, like a real model.

Biology encoded (deliberately simple, fully vectorised numpy):

* **Motifs.** 12 position weight matrices (lengths 7-12, ~1-1.6 bits per column) named
  after real TFs (CTCF, SP1, NRF1, SPI1, EBF1, RUNX3, GATA1, TBX5, NKX2-5, MEF2A, PPARG,
  JUND). A motif's *occupancy* at a window is ``sigmoid(beta * (log2-odds - threshold))``
  per strand; windows touching an ``N`` have occupancy 0 (N contributes nothing).
* **Contexts.** A track's context is its ``ontology_curie`` (cell type / tissue) plus
  ``output_type``, ``histone_mark``, ``transcription_factor`` and ``strand``. Each CURIE
  has motif weights (a mixture of "programs": lymphoid T, B, erythroid, cardiac, muscle,
  adipogenic, epithelial, ...). Unknown CURIEs get deterministic hash-derived weights.
* **Accessibility** (ATAC, DNASE): ``A = softplus(gain * tri150(sum_k w_k occ_k) + bias)``.
* **Promoter activity** per strand ``s``: ``TSS_s = A * tri60(sum_k p_k occ_{k,s}) *
  (1 + h * mean1500(A))`` (promoter motifs on the strand, boosted by nearby enhancers).
* **CAGE / PROCAP** follow ``TSS_s`` (stranded; ``.`` = both strands).
* **RNA_SEQ** follows transcription ``T_s``: ``TSS_s`` spread *downstream* on its strand
  over up to 6 kb (``+`` tracks spread right, ``-`` tracks left; ``.`` = sum).
* **Histone marks**: active (H3K27ac, H3K4me1) = broad mean of ``A``; promoter-ish
  (H3K4me2/3, H3K9ac, H2AFZ) = broad mean of ``A * promoter``; gene-body (H3K36me3,
  H3K79me2, H4K20me1) = broad mean of ``T_+ + T_-``; repressive (H3K27me3, H3K9me3)
  = ``1 / (1 + k * broad mean of A)`` (falls where chromatin opens).
* **CHIP_TF** follows its TF's motif occupancy times accessibility (POLR2A* follows
  promoter activity; other unknown TFs are hashed onto one of the motifs).

Locality is **exact**: every smoothing is a box filter computed with an *integer*
(fixed-point) cumulative sum, so the value at a base depends only on the sequence within
:attr:`SequenceModel.reach` bp of it, bit for bit. Scoring a variant on a local window
therefore gives exactly the numbers a 1 Mb window would.

Shapes and conventions: ``SequenceModel.tracks(seq, tracks)`` returns float32
``[len(seq), n_tracks]``; index ``i`` is the 0-based offset into ``seq``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

# --------------------------------------------------------------------------- constants

BASES = "ACGT"
_CODE = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate(BASES):
    _CODE[ord(_b)] = _i
    _CODE[ord(_b.lower())] = _i

#: name -> (IUPAC consensus, role). Roles: insulator, promoter, enhancer.
MOTIF_CONSENSUS: dict[str, tuple[str, str]] = {
    "CTCF": ("CCGCGNGGNGGC", "insulator"),
    "SP1": ("GGGGCGGGGC", "promoter"),
    "NRF1": ("GCGCATGCGC", "promoter"),
    "SPI1": ("AAAGAGGAAGTG", "enhancer"),
    "EBF1": ("TCCCNNGGGA", "enhancer"),
    "RUNX3": ("TGTGGTTT", "enhancer"),
    "GATA1": ("AGATAAGG", "enhancer"),
    "TBX5": ("AGGTGTGA", "enhancer"),
    "NKX2-5": ("TTAAGTG", "enhancer"),
    "MEF2A": ("CTAAAAATAG", "enhancer"),
    "PPARG": ("AGGTCAAAGGTC", "enhancer"),
    "JUND": ("TGACTCA", "enhancer"),
}
_IUPAC = {"A": "A", "C": "C", "G": "G", "T": "T", "N": "ACGT", "R": "AG", "Y": "CT",
          "S": "CG", "W": "AT", "K": "GT", "M": "AC"}

#: programs of motif weights (cell-type regulatory programs)
PROGRAMS: dict[str, dict[str, float]] = {
    "ubiquitous": {"CTCF": 0.6, "SP1": 0.8, "NRF1": 0.8, "JUND": 0.3},
    "T": {"RUNX3": 1.6, "SPI1": 0.3, "JUND": 0.3},
    "B": {"EBF1": 1.6, "SPI1": 1.2},
    "myeloid": {"SPI1": 1.6, "JUND": 0.4},
    "erythroid": {"GATA1": 1.8, "JUND": 0.2},
    "cardiac": {"TBX5": 1.5, "NKX2-5": 1.5, "MEF2A": 1.0, "GATA1": 0.4},
    "muscle": {"MEF2A": 1.8, "JUND": 0.3},
    "adipo": {"PPARG": 1.8, "JUND": 0.4},
    "epithelial": {"JUND": 1.5},
    "vascular": {"JUND": 0.8, "MEF2A": 0.6, "TBX5": 0.2},
    "lung": {"JUND": 0.8, "NKX2-5": 0.6},
    "prostate": {"JUND": 0.7, "NKX2-5": 0.5, "PPARG": 0.2},
    "fibroblast": {"JUND": 1.2, "MEF2A": 0.3},
}

#: CURIE -> program mixture ("ubiquitous" is always added with weight 1)
KNOWN_CONTEXTS: dict[str, dict[str, float]] = {
    # immune / blood
    "CL:0000624": {"T": 1.0},                       # CD4-positive, alpha-beta T cell
    "CL:0000236": {"B": 1.0},                       # B cell
    "EFO:0002784": {"B": 0.55, "epithelial": 0.45},  # GM12878: EBV-activated B (strong AP-1/NF-kB, JUND)
    "EFO:0002067": {"erythroid": 1.0},              # K562
    "UBERON:0013756": {"T": 0.3, "B": 0.2, "myeloid": 0.3, "erythroid": 0.2},  # venous blood
    "UBERON:0000178": {"T": 0.3, "B": 0.2, "myeloid": 0.3, "erythroid": 0.2},  # blood
    # heart
    "UBERON:0006631": {"cardiac": 1.0},             # right atrium auricular region
    "UBERON:0006566": {"cardiac": 0.9, "muscle": 0.1},  # left ventricle myocardium
    "UBERON:0002084": {"cardiac": 0.9, "muscle": 0.1},  # heart left ventricle
    "UBERON:0002078": {"cardiac": 1.0},             # right cardiac atrium
    "UBERON:0002079": {"cardiac": 1.0},             # left cardiac atrium
    "UBERON:0000948": {"cardiac": 1.0},             # heart
    # other GTEx tissues and proxies
    "UBERON:0006920": {"epithelial": 1.0},          # esophagus squamous epithelium
    "UBERON:0002469": {"epithelial": 0.9, "fibroblast": 0.1},  # esophagus mucosa
    "UBERON:0001043": {"epithelial": 0.7, "muscle": 0.3},      # esophagus
    "CL:0002252": {"epithelial": 1.0},              # epithelial cell of esophagus
    "UBERON:0004264": {"epithelial": 0.8, "fibroblast": 0.2},  # lower leg skin
    "UBERON:0000014": {"epithelial": 0.8, "fibroblast": 0.2},  # zone of skin
    "UBERON:0002367": {"prostate": 1.0},            # prostate gland
    "UBERON:0011907": {"muscle": 1.0},              # gastrocnemius medialis
    "UBERON:0001134": {"muscle": 1.0},              # skeletal muscle tissue
    "UBERON:0002190": {"adipo": 0.8, "vascular": 0.2},  # subcutaneous adipose tissue
    "UBERON:0007610": {"vascular": 1.0},            # tibial artery
    "UBERON:0008952": {"lung": 1.0},                # upper lobe of left lung
    # mouse
    "CL:0000136": {"adipo": 1.0},                   # adipocyte
    "EFO:0001084": {"adipo": 0.6, "fibroblast": 0.4},  # 3T3-L1
}

#: histone mark -> (kind, triangle radius bp, gain)
MARKS: dict[str, tuple[str, int, float]] = {
    "H3K27ac": ("active", 1000, 2.0),
    "H3K4me1": ("active", 1400, 1.6),
    "H3K4me2": ("promoter", 800, 2.0),
    "H3K4me3": ("promoter", 600, 2.4),
    "H3K9ac": ("promoter", 600, 2.0),
    "H2AFZ": ("promoter", 800, 1.5),
    "H3K79me2": ("genebody", 1000, 1.5),
    "H3K36me3": ("genebody", 2000, 1.5),
    "H4K20me1": ("genebody", 2000, 1.2),
    "H3K27me3": ("repressive", 2000, 1.5),
    "H3K9me3": ("repressive", 2000, 1.5),
}
_MARK_KINDS = ("active", "promoter", "genebody", "repressive")

#: output type -> gain
OUTPUT_GAINS: dict[str, float] = {"ATAC": 1.5, "DNASE": 1.0, "CAGE": 12.0, "PROCAP": 8.0,
                                  "RNA_SEQ": 1.0, "CHIP_TF": 2.0, "CHIP_HISTONE": 1.0}

# fixed structural radii (bp). Every smoothing is a box filter, so these bound `reach`.
R_ACC = 150          # accessibility triangle radius
R_PROM = 60          # promoter motif triangle radius
R_ENH = 1500         # enhancer neighbourhood (box mean) radius boosting promoters
R_TF = 50            # TF ChIP peak radius
RNA_STEPS = ((800, 0.5), (2500, 0.3), (6000, 0.2))  # one-sided boxes (length, weight)
_SCALE = float(1 << 24)  # fixed point for exact integer cumulative sums


def _hash_int(*parts: Any) -> int:
    h = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8)
    return int.from_bytes(h.digest(), "little")


# --------------------------------------------------------------------------- exact box filters

def _quantize(x: np.ndarray) -> np.ndarray:
    """float -> int64 fixed point (``x * 2**24`` rounded), elementwise."""
    return np.rint(np.multiply(x, _SCALE)).astype(np.int64)


def _box_sums(x: np.ndarray, spans: list[tuple[int, int]]) -> list[np.ndarray]:
    """For each ``(left, right)``: ``out[i] = sum(x[i-left : i+right+1])`` (zero outside).

    Exactly local: computed on int64 fixed point (``x * 2**24`` rounded) with one shared
    cumulative sum, so ``out[i]`` depends bit for bit only on ``x[i-left .. i+right]``.
    ``x`` is float ``[n]``; returns float64 ``[n]`` arrays.
    """
    n = x.shape[0]
    L = max(l for l, _ in spans)
    R = max(r for _, r in spans)
    cs = np.empty(n + L + R + 1, dtype=np.int64)
    cs[:L + 1] = 0
    np.cumsum(_quantize(x), out=cs[L + 1:L + 1 + n])
    cs[L + 1 + n:] = cs[L + n]
    out = []
    for left, right in spans:
        d = cs[L + right + 1:L + right + 1 + n] - cs[L - left:L - left + n]
        out.append(d * (1.0 / _SCALE))
    return out


def _box_sum(x: np.ndarray, left: int, right: int) -> np.ndarray:
    """``out[i] = sum(x[i-left : i+right+1])`` (zero outside), exactly local (see :func:`_box_sums`)."""
    return _box_sums(x, [(left, right)])[0]


def _box_mean(x: np.ndarray, r: int) -> np.ndarray:
    """Centred box mean of half-width ``r`` (divides by ``2r+1`` everywhere)."""
    if r <= 0:
        return np.asarray(x, dtype=np.float64)
    out = _box_sum(x, r, r)
    out *= 1.0 / (2 * r + 1)
    return out


def _tri_peak(x: np.ndarray, radius: int) -> np.ndarray:
    """Triangle smoothing with support ``±radius``; a unit impulse gives 1 at its centre."""
    h = max(radius // 2, 0)
    return _box_sum(_box_mean(x, h), h, h)


def _tri_mean(x: np.ndarray, radius: int) -> np.ndarray:
    """Triangle smoothing with support ``±radius`` whose weights sum to 1."""
    h = max(radius // 2, 0)
    return _box_mean(_box_mean(x, h), h)


# --------------------------------------------------------------------------- parameters

@dataclass
class Motif:
    """A PWM: ``probs`` ``[L][4]`` over A,C,G,T; occupancy threshold as a fraction of
    the maximal log2-odds score."""

    name: str
    role: str
    probs: list[list[float]]
    threshold_frac: float

    @property
    def length(self) -> int:
        return len(self.probs)

    def log_odds(self, background: list[float]) -> np.ndarray:
        """log2(p / background), shape ``[L, 4]``."""
        p = np.asarray(self.probs, dtype=np.float64)
        return np.log2(p / np.asarray(background, dtype=np.float64)[None, :])

    def information_content(self) -> float:
        """Total information content in bits (uniform background)."""
        p = np.asarray(self.probs, dtype=np.float64)
        return float(np.sum(2.0 + np.sum(p * np.log2(p), axis=1)))

    def consensus(self) -> str:
        return "".join(BASES[int(i)] for i in np.argmax(np.asarray(self.probs), axis=1))


@dataclass
class ContextWeights:
    """Per cell type / tissue: accessibility weights ``acc`` and promoter weights
    ``prom`` (one per motif, same order as ``ModelParams.motifs``) and a bias."""

    acc: list[float]
    prom: list[float]
    bias: float


@dataclass
class ModelParams:
    """All parameters of the regulatory model (JSON round-trippable)."""

    seed: int
    motifs: list[Motif]
    contexts: dict[str, ContextWeights]
    background: list[float] = field(default_factory=lambda: [0.295, 0.205, 0.205, 0.295])
    beta: float = 2.0           # occupancy slope per log2-odds unit
    acc_gain: float = 2.5
    enh_boost: float = 4.0      # promoter boost per unit of neighbourhood accessibility
    rep_k: float = 6.0          # repressive-mark fall-off with accessibility
    output_gains: dict[str, float] = field(default_factory=lambda: dict(OUTPUT_GAINS))
    mark_gains: dict[str, float] = field(default_factory=lambda: {m: g for m, (_, _, g) in MARKS.items()})
    hash_salt: str = "agval-seqmodel"
    perturbations: list[list[float]] = field(default_factory=list)  # [[seed, scale], ...]

    # ---------------------------------------------------------------- construction
    @classmethod
    def random(cls, seed: int) -> "ModelParams":
        """Deterministic parameters for ``seed``: motifs from the consensus table with
        Dirichlet noise (realistic information content) and per-CURIE weights from the
        program table with log-normal noise."""
        rng = np.random.default_rng([int(seed), 0x5EC])
        motifs = []
        for name, (cons, role) in MOTIF_CONSENSUS.items():
            rows = []
            for ch in cons:
                allowed = _IUPAC[ch]
                if len(allowed) == 4:
                    p = rng.dirichlet([3.0, 3.0, 3.0, 3.0])
                else:
                    top = rng.uniform(0.72, 0.93)
                    p = rng.dirichlet([1.0] * 4) * (1 - top)
                    for b in allowed:
                        p[BASES.index(b)] += top / len(allowed)
                p = np.clip(p, 0.01, None)
                rows.append([round(float(v), 6) for v in p / p.sum()])
            motifs.append(Motif(name, role, rows, round(float(rng.uniform(0.74, 0.80)), 6)))
        params = cls(seed=int(seed), motifs=motifs, contexts={})
        for curie in sorted(KNOWN_CONTEXTS):
            params.contexts[curie] = params._context_from_programs(KNOWN_CONTEXTS[curie], rng)
        return params

    def _context_from_programs(self, mix: dict[str, float], rng: np.random.Generator) -> ContextWeights:
        names = [m.name for m in self.motifs]
        acc = np.zeros(len(names))
        for prog, wmix in {"ubiquitous": 1.0, **mix}.items():
            for tf, w in PROGRAMS[prog].items():
                acc[names.index(tf)] += wmix * w
        acc = acc * np.exp(rng.normal(0.0, 0.15, len(names))) + np.abs(rng.normal(0.0, 0.03, len(names)))
        prom = np.array([1.0 if m.role == "promoter" else 0.25 * acc[i] for i, m in enumerate(self.motifs)])
        prom = prom * np.exp(rng.normal(0.0, 0.1, len(names)))
        bias = -3.0 + rng.normal(0.0, 0.2)
        return ContextWeights([round(float(v), 6) for v in acc], [round(float(v), 6) for v in prom],
                              round(float(bias), 6))

    def context(self, curie: str | None) -> ContextWeights:
        """Weights for a CURIE; unknown (or missing) CURIEs get deterministic weights
        derived from a hash of the CURIE (and this parameter set's perturbations)."""
        key = curie or "unknown"
        if key in self.contexts:
            return self.contexts[key]
        rng = np.random.default_rng(_hash_int(self.hash_salt, self.seed, key))
        progs = sorted(p for p in PROGRAMS if p != "ubiquitous")
        chosen = rng.choice(len(progs), size=2, replace=False)
        w = rng.dirichlet([1.0, 1.0])
        ctx = self._context_from_programs({progs[int(c)]: float(x) for c, x in zip(chosen, w)}, rng)
        for pseed, pscale in self.perturbations:
            ctx = _perturb_context(ctx, np.random.default_rng(_hash_int(int(pseed), key)), float(pscale))
        return ctx

    def perturbed(self, seed: int, scale: float = 0.1) -> "ModelParams":
        """A related parameter set: same motifs slightly altered, noisy weights and
        gains. ``scale`` ~ relative noise (0.1 = 10 %). Deterministic in ``seed``."""
        rng = np.random.default_rng([int(seed), 0x9E7])
        new = copy.deepcopy(self)
        for m in new.motifs:
            p = np.asarray(m.probs) * np.exp(rng.normal(0.0, scale, (m.length, 4)))
            p = np.clip(p / p.sum(axis=1, keepdims=True), 0.01, None)
            p = p / p.sum(axis=1, keepdims=True)
            m.probs = [[round(float(v), 6) for v in row] for row in p]
            m.threshold_frac = round(float(np.clip(m.threshold_frac * (1 + rng.normal(0, scale * 0.1)), 0.5, 0.9)), 6)
        for curie in sorted(new.contexts):
            new.contexts[curie] = _perturb_context(new.contexts[curie], rng, scale)
        new.output_gains = {k: round(float(v * math.exp(rng.normal(0, scale))), 6) for k, v in sorted(new.output_gains.items())}
        new.mark_gains = {k: round(float(v * math.exp(rng.normal(0, scale))), 6) for k, v in sorted(new.mark_gains.items())}
        new.acc_gain = round(float(new.acc_gain * math.exp(rng.normal(0, scale * 0.5))), 6)
        new.perturbations = [*new.perturbations, [int(seed), float(scale)]]
        return new

    # ---------------------------------------------------------------- serialisation
    def to_dict(self) -> dict:
        return {
            "format": "agval-seqmodel", "version": 1, "seed": self.seed,
            "background": self.background, "beta": self.beta, "acc_gain": self.acc_gain,
            "enh_boost": self.enh_boost, "rep_k": self.rep_k,
            "output_gains": dict(sorted(self.output_gains.items())),
            "mark_gains": dict(sorted(self.mark_gains.items())),
            "hash_salt": self.hash_salt, "perturbations": self.perturbations,
            "motifs": [{"name": m.name, "role": m.role, "threshold_frac": m.threshold_frac, "probs": m.probs}
                       for m in self.motifs],
            "contexts": {c: {"acc": w.acc, "prom": w.prom, "bias": w.bias} for c, w in sorted(self.contexts.items())},
        }

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no timestamps): same parameters -> same bytes."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=1) + "\n"

    @classmethod
    def from_dict(cls, d: dict) -> "ModelParams":
        if d.get("format") != "agval-seqmodel":
            raise ValueError(f"not an agval-seqmodel parameter set (format={d.get('format')!r})")
        return cls(
            seed=int(d["seed"]),
            motifs=[Motif(m["name"], m["role"], m["probs"], m["threshold_frac"]) for m in d["motifs"]],
            contexts={c: ContextWeights(w["acc"], w["prom"], w["bias"]) for c, w in d["contexts"].items()},
            background=list(d["background"]), beta=d["beta"], acc_gain=d["acc_gain"],
            enh_boost=d["enh_boost"], rep_k=d["rep_k"], output_gains=dict(d["output_gains"]),
            mark_gains=dict(d["mark_gains"]), hash_salt=d["hash_salt"],
            perturbations=[list(p) for p in d["perturbations"]])

    @classmethod
    def from_json(cls, text: str) -> "ModelParams":
        return cls.from_dict(json.loads(text))

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON (a model fingerprint)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def motif_index(self, name: str) -> int:
        for i, m in enumerate(self.motifs):
            if m.name == name:
                return i
        raise KeyError(name)


def _perturb_context(ctx: ContextWeights, rng: np.random.Generator, scale: float) -> ContextWeights:
    acc = np.asarray(ctx.acc) * np.exp(rng.normal(0, scale, len(ctx.acc))) + np.abs(rng.normal(0, scale * 0.05, len(ctx.acc)))
    prom = np.asarray(ctx.prom) * np.exp(rng.normal(0, scale, len(ctx.prom)))
    bias = ctx.bias + rng.normal(0, scale)
    return ContextWeights([round(float(v), 6) for v in acc], [round(float(v), 6) for v in prom], round(float(bias), 6))


# --------------------------------------------------------------------------- the model

def _norm(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    s = str(v).strip()
    return s or None


@dataclass(frozen=True)
class TrackContext:
    """What the model needs to know about a track."""

    curie: str | None
    output_type: str
    histone_mark: str | None
    transcription_factor: str | None
    strand: str  # '+', '-', '.'


def _strand(v) -> str:
    s = _norm(v) or "."
    return {"+": "+", "-": "-", "POSITIVE": "+", "NEGATIVE": "-"}.get(s.upper(), ".")


class SequenceModel:
    """Computes per-base track signals from DNA sequence.

    ``SequenceModel(params).tracks(seq, tracks)`` -> float32 ``[len(seq), n_tracks]``,
    non-negative, deterministic. ``tracks`` is a polars frame with (at least)
    ``output_type`` and ``ontology_curie``; optional ``histone_mark``,
    ``transcription_factor``, ``strand`` ('+', '-', '.'; missing = '.').
    """

    def __init__(self, params: ModelParams):
        self.params = params
        L_max = max(m.length for m in params.motifs)
        self._lmax = L_max
        self._motif_luts = [self._chunk_luts(m) for m in params.motifs]
        acc = L_max + R_ACC
        tss = max(acc + R_ENH, L_max + R_PROM, acc)
        rna = tss + max(n for n, _ in RNA_STEPS)
        hist_max = max(r for _, r, _ in MARKS.values())
        self._reach_by_type = {
            "ATAC": acc, "DNASE": acc,
            "CHIP_TF": max(tss + R_TF, acc),     # POLR2A follows promoter activity
            "CAGE": tss, "PROCAP": tss,
            "RNA_SEQ": rna,
            "CHIP_HISTONE": max(rna + hist_max, tss + hist_max),
        }
        #: bp beyond which a base change cannot change any track
        self.reach: int = max(self._reach_by_type.values())

    # ------------------------------------------------------------------ reach helpers
    def reach_for(self, output_types) -> int:
        """Reach (bp) sufficient for the given output types (unknown types: the global reach)."""
        types = [output_types] if isinstance(output_types, str) else list(output_types)
        if not types:
            return 0
        return max(self._reach_by_type.get(str(t), self.reach) for t in types)

    # ------------------------------------------------------------------ motif scanning
    def _chunk_luts(self, m: Motif):
        """Lookup tables for 4-mer chunks (base-5 codes, N=4 -> weight 0)."""
        lo = m.log_odds(self.params.background)  # [L, 4]
        L = lo.shape[0]
        rc = lo[::-1, ::-1]  # reverse complement: position reversed, A<->T, C<->G
        thr = m.threshold_frac * float(lo.max(axis=1).sum())
        n_chunks = (L + 3) // 4
        codes = np.arange(625)
        digits = np.stack([(codes // 5 ** (3 - t)) % 5 for t in range(4)], axis=1)  # [625, 4]
        luts = []
        for mat in (lo, rc):
            padded = np.zeros((n_chunks * 4, 5))
            padded[:L, :4] = mat
            per_chunk = []
            for c in range(n_chunks):
                block = padded[c * 4:(c + 1) * 4]  # [4, 5]
                per_chunk.append(block[np.arange(4)[None, :], digits].sum(axis=1).astype(np.float64))
            luts.append(per_chunk)
        return L, thr, luts[0], luts[1]

    def _occupancies(self, codes: np.ndarray, kmer: np.ndarray, ncs: np.ndarray):
        """Occupancy matrices ``(fwd, rev)``, float64 ``[n_motifs, n]``, each motif's value
        placed at its window centre (``start + L // 2``); 0 for windows touching N."""
        n = codes.shape[0]
        K = len(self._motif_luts)
        fwd = np.zeros((K, n))
        rev = np.zeros((K, n))
        beta = self.params.beta
        for k, (L, thr, lut_f, lut_r) in enumerate(self._motif_luts):
            m = n - L + 1
            if m <= 0:
                continue
            has_n = (ncs[L:L + m] - ncs[:m]) > 0
            for luts, dest in ((lut_f, fwd), (lut_r, rev)):
                s = np.take(luts[0], kmer[:m])
                for c in range(1, len(luts)):
                    s += np.take(luts[c], kmer[4 * c:4 * c + m])
                s -= thr
                s *= -beta
                np.exp(s, out=s)
                s += 1.0
                occ = np.reciprocal(s, out=s)
                occ[has_n] = 0.0
                dest[k, L // 2:L // 2 + m] = occ
        return fwd, rev

    @staticmethod
    def _encode(seq: str):
        raw = np.frombuffer(seq.encode("ascii", "replace"), dtype=np.uint8)
        codes = np.take(_CODE, raw)
        n = codes.shape[0]
        padded = np.concatenate([codes, np.full(16, 4, dtype=np.uint8)]).astype(np.int32)
        kmer = padded[:n + 12] * 125 + padded[1:n + 13] * 25 + padded[2:n + 14] * 5 + padded[3:n + 15]
        ncs = np.concatenate([[0], np.cumsum(codes == 4)])
        return codes, kmer, ncs

    # ------------------------------------------------------------------ public API
    @staticmethod
    def contexts_of(tracks: pl.DataFrame, curies: list | None = None) -> list[TrackContext]:
        """The model context of each track row (in row order). ``curies``: per-row context
        CURIEs replacing ``ontology_curie`` (``standins.catalogue.model_curies``)."""
        cols = tracks.columns

        def col(name):
            return tracks.get_column(name).to_list() if name in cols else [None] * tracks.height

        ot, cu, hm, tf, st = col("output_type"), col("ontology_curie"), col("histone_mark"), \
            col("transcription_factor"), col("strand")
        if curies is not None:
            if len(curies) != tracks.height:
                raise ValueError(f"{len(curies)} context curies for {tracks.height} tracks")
            cu = list(curies)
        return [TrackContext(_norm(c), str(_norm(o) or "ATAC").upper(), _norm(h), _norm(t), _strand(s))
                for o, c, h, t, s in zip(ot, cu, hm, tf, st)]

    def tracks(self, seq: str, tracks: pl.DataFrame) -> np.ndarray:
        """Per-base signal, float32 ``[len(seq), n_tracks]`` (>= 0), tracks in row order.

        ``seq``: DNA string (case-insensitive; anything but ACGT counts as N).
        """
        return self.tracks_for_contexts(seq, self.contexts_of(tracks))

    def tracks_for_contexts(self, seq: str, contexts: list[TrackContext]) -> np.ndarray:
        """Like :meth:`tracks` for already-parsed :class:`TrackContext` objects."""
        n = len(seq)
        out = np.zeros((n, len(contexts)), dtype=np.float32)
        if n == 0 or not contexts:
            return out
        st = _State(self, seq)
        cols = np.empty((len(contexts), n), dtype=np.float32)
        done: dict[TrackContext, int] = {}
        for j, ctx in enumerate(contexts):
            if ctx in done:
                cols[j] = cols[done[ctx]]
                continue
            np.maximum(st.track(ctx), 0.0, out=cols[j], casting="same_kind")
            done[ctx] = j
        out[:] = cols.T
        return out


class _State:
    """Memoised intermediate signals for one sequence (all float64 ``[n]``)."""

    def __init__(self, model: SequenceModel, seq: str):
        self.m = model
        self.p = model.params
        self.n = len(seq)
        self._seq = seq
        self._occ = None
        self._memo: dict = {}

    @property
    def occ(self):
        """(fwd, rev, both) occupancy matrices ``[n_motifs, n]``."""
        if self._occ is None:
            codes, kmer, ncs = SequenceModel._encode(self._seq)
            fwd, rev = self.m._occupancies(codes, kmer, ncs)
            self._occ = (fwd, rev, np.maximum(fwd, rev))
        return self._occ

    def _get(self, key, fn):
        v = self._memo.get(key)
        if v is None:
            v = fn()
            self._memo[key] = v
        return v

    def acc(self, curie):
        """Accessibility ``softplus(gain * tri150(occ @ w_acc) + bias)``."""
        def f():
            w = self.p.context(curie)
            lin = np.asarray(w.acc, dtype=np.float64) @ self.occ[2]
            x = _tri_peak(lin, R_ACC)
            x *= self.p.acc_gain
            x += w.bias
            return np.logaddexp(0.0, x, out=x)
        return self._get(("acc", curie), f)

    def prom(self, curie, strand):
        """Promoter motif strength on one strand ('+' or '-')."""
        def f():
            w = self.p.context(curie)
            mat = self.occ[0] if strand == "+" else self.occ[1]
            return _tri_peak(np.asarray(w.prom, dtype=np.float64) @ mat, R_PROM)
        return self._get(("prom", curie, strand), f)

    def enh(self, curie):
        return self._get(("enh", curie), lambda: _box_mean(self.acc(curie), R_ENH))

    def tss(self, curie, strand):
        """Promoter activity on a strand: accessibility x promoter motifs x enhancer boost."""
        def f():
            boost = self.enh(curie) * self.p.enh_boost
            boost += 1.0
            boost *= self.acc(curie)
            boost *= self.prom(curie, strand)
            return boost
        return self._get(("tss", curie, strand), f)

    def txn(self, curie, strand):
        """Transcription: TSS activity spread downstream on the strand (up to 6 kb)."""
        def f():
            t = self.tss(curie, strand)
            spans = [(n - 1, 0) if strand == "+" else (0, n - 1) for n, _ in RNA_STEPS]
            out = np.zeros(self.n)
            for (length, w), bs in zip(RNA_STEPS, _box_sums(t, spans)):
                out += bs * (w * 20.0 / length)
            return out
        return self._get(("txn", curie, strand), f)

    def strands(self, s):
        return ("+", "-") if s == "." else (s,)

    # dispatcher
    def track(self, c: TrackContext) -> np.ndarray:
        p = self.p
        ot = c.output_type
        g = p.output_gains.get(ot, 1.0)
        if ot in ("ATAC", "DNASE"):
            return g * self.acc(c.curie)
        if ot in ("CAGE", "PROCAP"):
            return g * (sum(self.tss(c.curie, s) for s in self.strands(c.strand)) + 0.002)
        if ot == "CHIP_TF":
            tf = (c.transcription_factor or "").upper()
            if tf.startswith("POLR2A") or tf in ("TAF1", "TBP"):
                return g * (_tri_peak(self.tss(c.curie, "+") + self.tss(c.curie, "-"), R_TF) / (R_TF + 1) + 0.01)
            names = [m.name.upper() for m in p.motifs]
            k = names.index(tf) if tf in names else _hash_int(p.hash_salt, tf) % len(names)
            return g * (self.acc(c.curie) * _tri_peak(self.occ[2][k], R_TF) + 0.01)
        if ot == "CHIP_HISTONE":
            mark = c.histone_mark or "H3K27ac"
            kind, radius, _ = MARKS.get(mark, (_MARK_KINDS[_hash_int(p.hash_salt, mark) % 3], 1000, 1.0))
            mg = p.mark_gains.get(mark, 1.0) * g
            if kind == "active":
                return mg * (_tri_mean(self.acc(c.curie), radius) + 0.02)
            if kind == "promoter":
                pr = self.prom(c.curie, "+") + self.prom(c.curie, "-")
                return mg * (_tri_mean(self.acc(c.curie) * (0.1 + pr), radius) * 2.0 + 0.01)
            if kind == "genebody":
                return mg * (_tri_mean(self.txn(c.curie, "+") + self.txn(c.curie, "-"), radius) + 0.02)
            return mg * (1.0 / (1.0 + p.rep_k * _tri_mean(self.acc(c.curie), radius)) + 0.01)
        # RNA_SEQ and any other expression-like output type
        return g * (sum(self.txn(c.curie, s) for s in self.strands(c.strand)) + 0.001)
