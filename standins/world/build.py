"""Generation of the synthetic world (format ``agval-world`` v1). SIMULATED; not product code.

Everything is drawn from one ``numpy.random.Generator`` seeded with the world seed, in a
fixed order, and written deterministically (parquet without timestamps, gzip with
``mtime=0``, canonical JSON), so the same seed gives byte-identical files.

Coordinates: genes, exons, elements and variants are **1-based inclusive** (VCF / GTF
style); internal arrays are 0-based.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from agval.errors import InputError
from agval.schema import TableFormat, atomic_write_bytes, register, write_table
from standins import SIMULATED_DATA_SOURCE
from standins.catalogue import CATALOGUES, COLUMNS as TRACK_COLUMNS, real_catalogue_path, world_catalogue
from standins.seqmodel import BASES, PROGRAMS, ModelParams

FORMAT, VERSION = "agval-world", 1

# ----------------------------------------------------------------------------- table formats

GENES_FORMAT = register(TableFormat("agval-world.genes", 1, {
    "gene_id": pl.Utf8, "gene_name": pl.Utf8, "chrom": pl.Utf8, "start": pl.Int64, "end": pl.Int64,
    "strand": pl.Utf8, "gene_type": pl.Utf8, "tss": pl.Int64}, "world genes, 1-based inclusive"))
EXONS_FORMAT = register(TableFormat("agval-world.exons", 1, {
    "gene_id": pl.Utf8, "exon_number": pl.Int64, "chrom": pl.Utf8, "start": pl.Int64, "end": pl.Int64},
    "world exons, 1-based inclusive"))
VARIANTS_FORMAT = register(TableFormat("agval-world.variants", 1, {
    "rsid": pl.Utf8, "chrom": pl.Utf8, "pos": pl.Int64, "ref": pl.Utf8, "alt": pl.Utf8, "af": pl.Float64,
    "kind": pl.Utf8, "status": pl.Utf8, "merged_into": pl.Utf8, "hg19_chrom": pl.Utf8, "hg19_pos": pl.Int64},
    "dbSNP-like catalogue, one row per (rsid, alt), 1-based hg38"))
TRACKS_FORMAT = register(TableFormat("agval-world.tracks", 1, dict(TRACK_COLUMNS), "stand-in track catalogue"))
ELEMENTS_FORMAT = register(TableFormat("agval-world.elements", 1, {
    "element_id": pl.Utf8, "chrom": pl.Utf8, "start": pl.Int64, "end": pl.Int64, "kind": pl.Utf8,
    "program": pl.Utf8, "gene_id": pl.Utf8, "motifs": pl.Utf8},
    "planted regulatory elements (promoters, enhancers, CTCF sites), 1-based inclusive"))


@dataclass(frozen=True)
class SizeSpec:
    chrom_lengths: tuple[int, ...]
    n_variant_sites: int        # SNV sites before multi-allelic expansion (excl. indels)
    n_indels: int
    n_intergenic_enhancers: int
    n_absent: int
    catalogue: str = "demo"          # default track catalogue (see standins.catalogue.world_catalogue)
    numbered_genes: bool = False     # genes beyond the named ones get GENE<n> names (else lncRNA LINC...)


SIZES: dict[str, SizeSpec] = {
    "small": SizeSpec((1_800_000, 1_500_000, 1_200_000), 22_000, 2_200, 120, 500),
    "medium": SizeSpec((4_000_000, 3_500_000, 3_000_000, 2_500_000, 2_000_000), 70_000, 7_000, 400, 1500),
    # benchmarks at real scale: ~40 Mb, ~20 genes per Mb (an RNA_SEQ variant's 1 Mb interval
    # holds ~10-25 genes), >= 100k catalogued variants, the real track catalogue
    "large": SizeSpec((6_000_000, 5_500_000, 5_000_000, 4_500_000, 4_000_000, 4_000_000, 3_500_000, 3_000_000,
                       2_500_000, 2_000_000), 150_000, 12_000, 1_000, 3_000, catalogue="real", numbered_genes=True),
}

AF_GENES = ["PITX2", "TBX5", "SCN5A", "SCN10A", "KCNN3", "KCNH2", "GJA1", "MYH6", "NKX2-5", "CAV1",
            "PRRX1", "ZFHX3", "HCN4", "KCNJ5", "MYL4", "SYNPO2L", "NEURL1", "CAND2", "SYNE2", "TTN"]
OTHER_GENES = ["ACTB", "GAPDH", "CD4", "CD3E", "IL7R", "CCR7", "CD19", "MS4A1", "PAX5", "EBF1", "HBB", "HBG1",
               "GATA1", "TAL1", "KRT5", "KRT14", "TP63", "KLK3", "NKX3-1", "AR", "ACTA1", "DES", "MYOD1",
               "CKM", "PPARG", "ADIPOQ", "LEP", "FABP4", "SFTPC", "NKX2-1", "ACTA2", "MYH11", "CNN1", "PTPRC",
               "SPI1", "RUNX1", "RUNX3", "TCF7", "LEF1", "BCL6", "IRF4", "PRDM1", "CEBPA", "CEBPB", "JUN",
               "FOS", "EGR1", "MYC", "CTCF", "RAD21", "SMC3", "POLR2A", "TBP", "SP1", "NRF1", "YY1", "MAX",
               "ELK1", "ETS1", "FLI1", "ERG", "KLF4", "KLF5", "SOX2", "SOX9", "HNF1A", "HNF4A", "FOXA1",
               "FOXA2", "GATA2", "GATA3", "GATA4", "GATA6", "MEF2A", "MEF2C", "HAND1", "HAND2", "IRX4",
               "NPPA", "NPPB", "MYL7", "MYL2", "TNNT2", "ACTC1", "RYR2", "ATP2A2", "PLN", "KCNQ1", "KCNE1",
               "KCNJ2", "CACNA1C", "HEY2", "NOTCH1", "VEGFA", "PECAM1", "CDH5", "VWF", "COL1A1", "COL3A1",
               "FN1", "VIM", "TAGLN", "LMNA", "EMD", "SGCA", "CAPN3", "DMD", "UTRN", "SNTA1", "ANK2"]
# programs a gene's enhancers are drawn from (cardiac for the AF genes)
_GENE_PROGRAMS = ["T", "B", "myeloid", "erythroid", "cardiac", "muscle", "adipo", "epithelial", "vascular",
                  "lung", "prostate", "fibroblast"]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _unique_ints(rng: np.random.Generator, lo: int, hi: int, n: int) -> np.ndarray:
    """``n`` distinct integers in ``[lo, hi)`` in random order (deterministic in ``rng``)."""
    out: list[int] = []
    seen: set[int] = set()
    while len(out) < n:
        for x in rng.integers(lo, hi, size=(n - len(out)) * 2).tolist():
            if x not in seen and len(out) < n:
                seen.add(x)
                out.append(x)
    return np.asarray(out, dtype=np.int64)


# ----------------------------------------------------------------------------- genome

_COMP = np.array([3, 2, 1, 0], dtype=np.uint8)


def _background(rng: np.random.Generator, n: int) -> np.ndarray:
    """Codes 0..3 (ACGT), GC ~0.41 varying per 100 kb block, CpG depleted."""
    nb = (n + 99_999) // 100_000
    gc_block = np.clip(rng.normal(0.445, 0.03, nb), 0.36, 0.54)
    gc = np.repeat(gc_block, 100_000)[:n]
    u = rng.random(n)
    a = (1 - gc) / 2
    codes = np.where(u < a, 0, np.where(u < a + gc / 2, 1, np.where(u < a + gc, 2, 3))).astype(np.uint8)
    _deplete_cpg(rng, codes, 0.75)
    return codes


def _deplete_cpg(rng, codes: np.ndarray, frac: float) -> None:
    cg = np.flatnonzero((codes[:-1] == 1) & (codes[1:] == 2))
    hit = cg[rng.random(cg.size) < frac]
    flip_c = rng.random(hit.size) < 0.5
    codes[hit[flip_c]] = 3          # CpG -> TpG
    codes[hit[~flip_c] + 1] = 0     # CpG -> CpA


def _sample_instance(rng, probs: np.ndarray, strand: str) -> np.ndarray:
    """A motif instance drawn from a sharpened PWM (strong but varied sites)."""
    p = probs ** 2
    p = p / p.sum(axis=1, keepdims=True)
    cum = np.cumsum(p, axis=1)
    site = (rng.random(len(p))[:, None] > cum).sum(axis=1).astype(np.uint8)
    site = np.minimum(site, 3)
    if strand == "-":
        site = _COMP[site[::-1]]
    return site


@dataclass
class _Element:
    chrom: str
    start0: int
    end0: int
    kind: str
    program: str
    gene_id: str | None
    motifs: list[tuple[str, int, int]]  # (name, start0, end0)


class _Builder:
    def __init__(self, seed: int, size: str):
        if size not in SIZES:
            raise InputError(f"unknown world size {size!r}; choose one of {sorted(SIZES)}")
        self.seed, self.size, self.spec = int(seed), size, SIZES[size]
        self.rng = np.random.default_rng([self.seed, 0xA6A1])
        self.truth = ModelParams.random(self.seed)
        self.probs = {m.name: np.asarray(m.probs) for m in self.truth.motifs}
        self.chroms = {f"chr{i + 1}": L for i, L in enumerate(self.spec.chrom_lengths)}
        self.codes: dict[str, np.ndarray] = {}
        self.genes: list[dict] = []
        self.exons: list[dict] = []
        self.elements: list[_Element] = []

    # ---------------------------------------------------------------- planting
    def _plant(self, chrom: str, pos0: int, motif: str, strand: str) -> tuple[str, int, int] | None:
        codes = self.codes[chrom]
        site = _sample_instance(self.rng, self.probs[motif], strand)
        if pos0 < 0 or pos0 + len(site) > codes.size:
            return None
        codes[pos0:pos0 + len(site)] = site
        return (motif, pos0, pos0 + len(site))

    def _enhancer(self, chrom, start0, program, gene_id, n_sites=None, width=300):
        L = self.chroms[chrom]
        start0 = int(np.clip(start0, 100, L - width - 100))
        motifs = []
        weights = PROGRAMS[program]
        names = sorted(weights)
        p = np.array([weights[k] for k in names])
        p = p / p.sum()
        k = n_sites or int(self.rng.integers(2, 6))
        for _ in range(k):
            name = names[int(self.rng.choice(len(names), p=p))]
            off = int(self.rng.integers(10, width - 22))
            strand = "+" if self.rng.random() < 0.5 else "-"
            m = self._plant(chrom, start0 + off, name, strand)
            if m:
                motifs.append(m)
        self.elements.append(_Element(chrom, start0, start0 + width, "enhancer", program, gene_id, motifs))

    def _promoter(self, chrom, tss0, strand, program, gene_id, cpg: bool):
        L = self.chroms[chrom]
        codes = self.codes[chrom]
        a, b = max(tss0 - 500, 0), min(tss0 + 300, L)
        if cpg:  # CpG island: GC-rich, not CpG depleted
            u = self.rng.random(b - a)
            gc = 0.66
            codes[a:b] = np.where(u < (1 - gc) / 2, 0, np.where(u < 0.5, 1, np.where(u < 0.5 + gc / 2, 2, 3)))
        motifs = []
        up = -1 if strand == "+" else 1  # upstream direction
        for _ in range(int(self.rng.integers(2, 4))):
            name = "SP1" if self.rng.random() < 0.6 else "NRF1"
            d = int(self.rng.integers(30, 220))
            pos0 = tss0 + up * d
            m = self._plant(chrom, pos0, name, strand)
            if m:
                motifs.append(m)
        if program != "ubiquitous" and self.rng.random() < 0.6:
            weights = PROGRAMS[program]
            name = max(weights, key=weights.get)
            m = self._plant(chrom, tss0 + up * int(self.rng.integers(230, 400)), name,
                            "+" if self.rng.random() < 0.5 else "-")
            if m:
                motifs.append(m)
        lo = min(x[1] for x in motifs) if motifs else tss0 - 250
        hi = max(x[2] for x in motifs) if motifs else tss0 + 50
        self.elements.append(_Element(chrom, min(lo, tss0 - 50), max(hi, tss0 + 50), "promoter", program,
                                      gene_id, motifs))

    # ---------------------------------------------------------------- genes
    def build_genome_and_genes(self):
        rng = self.rng
        for chrom, L in self.chroms.items():
            self.codes[chrom] = _background(rng, L)
        names_af = list(AF_GENES)
        names_other = list(OTHER_GENES)
        rng.shuffle(names_other)
        gene_slots: list[tuple[str, int, int, str]] = []
        for chrom, L in self.chroms.items():
            cur = 30_000
            while True:
                glen = int(np.clip(rng.lognormal(np.log(15_000), 0.8), 2_000, 120_000))
                if cur + glen > L - 30_000:
                    break
                strand = "+" if rng.random() < 0.5 else "-"
                gene_slots.append((chrom, cur, cur + glen, strand))
                cur += glen + int(rng.exponential(22_000)) + 3_000
        n = len(gene_slots)
        af_idx = set(rng.choice(n, size=min(len(names_af), n // 3), replace=False).tolist())
        gid_nums = _unique_ints(rng, 10_000, 99_999_999, n)
        af_iter, other_iter, linc = iter(names_af), iter(names_other), 0
        for i, (chrom, s0, e0, strand) in enumerate(gene_slots):
            if i in af_idx:
                name, program, gtype = next(af_iter), "cardiac", "protein_coding"
            else:
                name = next(other_iter, None)
                gtype = "protein_coding"
                if name is None and self.spec.numbered_genes:
                    name = f"GENE{i + 1:05d}"
                if name is None or rng.random() < 0.12:
                    if name is not None:
                        names_other.append(name)
                    linc += 1
                    name, gtype = f"LINC{int(rng.integers(100, 3000)):05d}-{linc}", "lncRNA"
                program = _GENE_PROGRAMS[int(rng.integers(len(_GENE_PROGRAMS)))] if rng.random() < 0.8 else "ubiquitous"
            gid = f"ENSG009{int(gid_nums[i]):08d}.{int(rng.integers(1, 20))}"
            tss0 = s0 if strand == "+" else e0 - 1
            self.genes.append(dict(gene_id=gid, gene_name=name, chrom=chrom, start=s0 + 1, end=e0, strand=strand,
                                   gene_type=gtype, tss=tss0 + 1, _program=program))
            # exons (0-based half-open internally)
            glen = e0 - s0
            n_ex = 1 if rng.random() < 0.05 else int(np.clip(rng.integers(2, 13), 2, max(2, glen // 1500)))
            first = int(rng.integers(100, 400))
            last = int(min(rng.integers(500, 2000), glen // 3))
            blocks = []
            if n_ex == 1:
                blocks = [(s0, e0)] if glen < 5000 else [(s0, s0 + 2000)] if strand == "+" else [(e0 - 2000, e0)]
            else:
                if strand == "+":
                    blocks.append((s0, s0 + first))
                    blocks.append((e0 - last, e0))
                else:
                    blocks.append((e0 - first, e0))
                    blocks.append((s0, s0 + last))
                inner_lo, inner_hi = min(b[1] for b in blocks) + 200, max(b[0] for b in blocks) - 200
                if n_ex > 2 and inner_hi - inner_lo > 400:
                    starts = np.sort(rng.choice(np.arange(inner_lo, inner_hi - 300, 1), size=n_ex - 2, replace=False))
                    prev_end = inner_lo
                    for st in starts.tolist():
                        st = max(st, prev_end + 80)
                        ln = int(rng.integers(50, 300))
                        if st + ln < inner_hi:
                            blocks.append((st, st + ln))
                            prev_end = st + ln
            blocks = sorted(blocks, reverse=(strand == "-"))
            for k, (a, b) in enumerate(blocks, 1):
                self.exons.append(dict(gene_id=gid, exon_number=k, chrom=chrom, start=a + 1, end=b))
            # regulatory elements: promoter + proximal (affect RNA) + distal enhancers
            self._promoter(chrom, tss0, strand, program, gid, cpg=rng.random() < 0.6)
            prog = program if program != "ubiquitous" else _GENE_PROGRAMS[int(rng.integers(len(_GENE_PROGRAMS)))]
            for _ in range(int(rng.integers(1, 4))):
                d = int(rng.integers(500, 2300)) * (1 if rng.random() < 0.5 else -1)
                self._enhancer(chrom, tss0 + d - 150, prog, gid)
            for _ in range(int(rng.integers(0, 3))):
                d = int(rng.integers(3_000, 40_000)) * (1 if rng.random() < 0.5 else -1)
                self._enhancer(chrom, tss0 + d, prog, gid)
        # intergenic enhancers and CTCF sites
        chroms = list(self.chroms)
        for _ in range(self.spec.n_intergenic_enhancers):
            chrom = chroms[int(rng.integers(len(chroms)))]
            prog = _GENE_PROGRAMS[int(rng.integers(len(_GENE_PROGRAMS)))]
            self._enhancer(chrom, int(rng.integers(1_000, self.chroms[chrom] - 1_000)), prog, None)
        for chrom, L in self.chroms.items():
            for _ in range(L // 40_000):
                p0 = int(rng.integers(1_000, L - 1_000))
                m = self._plant(chrom, p0, "CTCF", "+" if rng.random() < 0.5 else "-")
                if m:
                    self.elements.append(_Element(chrom, m[1], m[2], "ctcf", "ubiquitous", None, [m]))

    # ---------------------------------------------------------------- variants
    def build_variants(self) -> tuple[pl.DataFrame, list[str]]:
        rng = self.rng
        spec = self.spec
        chroms = list(self.chroms)
        sites: dict[tuple[str, int], None] = {}  # (chrom, pos0) -> insertion ordered

        def add(chrom, pos0):
            if 50 <= pos0 < self.chroms[chrom] - 50:
                sites.setdefault((chrom, int(pos0)), None)

        target = spec.n_variant_sites
        # 1) inside planted motifs (strong effects)
        for el in self.elements:
            for (_, a, b) in el.motifs:
                if rng.random() < 0.55:
                    add(el.chrom, int(rng.integers(a, b)))
            for _ in range(int(rng.poisson(5 if el.kind != "ctcf" else 1))):
                add(el.chrom, int(rng.integers(el.start0 - 100, el.end0 + 100)))
        # 2) around genes (exons and +-10 kb of the TSS)
        for g in self.genes:
            for _ in range(int(rng.poisson(40))):
                add(g["chrom"], int(g["tss"] - 1 + rng.integers(-10_000, 10_000)))
            for _ in range(int(rng.poisson(15))):
                add(g["chrom"], int(rng.integers(g["start"] - 1, g["end"])))
        # 3) background
        lengths = np.array([self.chroms[c] for c in chroms], dtype=float)
        while len(sites) < target:
            need = target - len(sites)
            ci = rng.choice(len(chroms), size=need, p=lengths / lengths.sum())
            ps = rng.random(need)
            for c, u in zip(ci.tolist(), ps.tolist()):
                add(chroms[c], int(u * self.chroms[chroms[c]]))
        snv_sites = list(sites)
        # indels at fresh positions
        taken = set(snv_sites)
        indel_sites = []
        while len(indel_sites) < spec.n_indels:
            c = chroms[int(rng.choice(len(chroms), p=lengths / lengths.sum()))]
            p0 = int(rng.integers(100, self.chroms[c] - 100))
            if all((c, p0 + d) not in taken for d in range(-15, 16)):
                taken.add((c, p0))
                indel_sites.append((c, p0))

        rows = []  # (chrom, pos1, ref, alt, af)
        transition = {0: 2, 2: 0, 1: 3, 3: 1}
        for chrom, p0 in snv_sites:
            ref = int(self.codes[chrom][p0])
            u = rng.random()
            n_alt = 3 if u < 0.01 else 2 if u < 0.05 else 1
            others = [b for b in range(4) if b != ref]
            if n_alt == 1:
                alts = [transition[ref]] if rng.random() < 0.62 else [others[int(rng.integers(3))]]
            else:
                alts = [others[i] for i in sorted(rng.choice(3, size=n_alt, replace=False).tolist())]
            afs = self._afs(n_alt)
            for a, f in zip(alts, afs):
                rows.append((chrom, p0 + 1, BASES[ref], BASES[a], f))
        for chrom, p0 in indel_sites:
            codes = self.codes[chrom]
            anchor = BASES[int(codes[p0])]
            if rng.random() < 0.55:  # deletion
                dl = int(min(rng.geometric(0.35), 12))
                ref = "".join(BASES[int(x)] for x in codes[p0:p0 + 1 + dl])
                alt = anchor
            else:
                il = int(min(rng.geometric(0.35), 10))
                if rng.random() < 0.5:  # tandem duplication of the following bases
                    ins = "".join(BASES[int(x)] for x in codes[p0 + 1:p0 + 1 + il])
                else:
                    ins = "".join(BASES[int(x)] for x in rng.integers(0, 4, il))
                ref, alt = anchor, anchor + ins
            rows.append((chrom, p0 + 1, ref, alt, self._afs(1)[0]))

        # rsIDs: one per site (multi-allelic rows share it)
        site_keys = sorted({(r[0], r[1]) for r in rows}, key=lambda k: (chroms.index(k[0]), k[1]))
        n_sites = len(site_keys)
        n_merged = max(1, n_sites // 100)
        n_nohg38 = max(1, n_sites // 120)
        pool = _unique_ints(rng, 1_000, 1_600_000_000, n_sites + n_merged + spec.n_absent)
        site_rsid = {k: f"rs{int(pool[i])}" for i, k in enumerate(site_keys)}
        merged_ids = [f"rs{int(x)}" for x in pool[n_sites:n_sites + n_merged]]
        absent = [f"rs{int(x)}" for x in pool[n_sites + n_merged:]]
        hg19_delta = {c: int(rng.integers(5_000, 400_000)) for c in chroms}

        df = pl.DataFrame(rows, schema={"chrom": pl.Utf8, "pos": pl.Int64, "ref": pl.Utf8, "alt": pl.Utf8,
                                         "af": pl.Float64}, orient="row")
        df = df.with_columns(
            rsid=pl.struct("chrom", "pos").map_elements(lambda s: site_rsid[(s["chrom"], s["pos"])],
                                                        return_dtype=pl.Utf8),
            kind=pl.when((pl.col("ref").str.len_chars() == 1) & (pl.col("alt").str.len_chars() == 1))
            .then(pl.lit("snv")).otherwise(pl.lit("indel")),
            status=pl.lit("ok"), merged_into=pl.lit(None, dtype=pl.Utf8),
            hg19_chrom=pl.col("chrom"),
            hg19_pos=pl.col("pos") + pl.col("chrom").replace_strict(hg19_delta, return_dtype=pl.Int64),
        )
        # no_hg38: single-alt SNV sites whose rsID has no GRCh38 mapping (hg19 only)
        single = df.group_by("rsid").len().filter(pl.col("len") == 1)["rsid"].sort()
        pick = rng.choice(single.len(), size=n_nohg38 + n_merged, replace=False)
        no_hg38 = set(single.gather(np.sort(pick[:n_nohg38])).to_list())
        merge_targets = single.gather(np.sort(pick[n_nohg38:])).to_list()
        df = df.with_columns(
            status=pl.when(pl.col("rsid").is_in(list(no_hg38))).then(pl.lit("no_hg38")).otherwise(pl.col("status")),
            chrom=pl.when(pl.col("rsid").is_in(list(no_hg38))).then(None).otherwise(pl.col("chrom")),
            pos=pl.when(pl.col("rsid").is_in(list(no_hg38))).then(None).otherwise(pl.col("pos")),
        )
        merged = (df.filter(pl.col("rsid").is_in(merge_targets))
                  .with_columns(merged_into=pl.col("rsid"))
                  .sort("rsid"))
        merged = merged.with_columns(rsid=pl.Series(merged_ids[:merged.height]), status=pl.lit("merged"))
        df = pl.concat([df, merged.select(df.columns)])
        order = {c: i for i, c in enumerate(chroms)}
        df = (df.with_columns(_c=pl.col("hg19_chrom").replace_strict(order, return_dtype=pl.Int64),
                              _p=pl.coalesce("pos", "hg19_pos"))
              .sort(["_c", "_p", "rsid", "alt"]).drop(["_c", "_p"]))
        cols = list(VARIANTS_FORMAT.columns)
        return df.select(cols), absent

    def _afs(self, n_alt: int) -> list[float]:
        rng = self.rng
        if rng.random() < 0.35:
            tot = float(rng.beta(0.4, 6.0)) * 0.2 + 0.0005   # rare
        else:
            tot = float(rng.uniform(0.01, 0.99))
        if n_alt == 1:
            return [round(tot, 5)]
        tot = min(tot, 0.9)
        parts = rng.dirichlet([1.0] * n_alt) * tot
        return [round(max(float(x), 0.0001), 5) for x in parts]


# ----------------------------------------------------------------------------- writers

def _write_fasta(path: Path, codes: dict[str, np.ndarray]) -> None:
    lut = np.frombuffer(b"ACGT", dtype=np.uint8)
    out = io.BytesIO()
    fai = []
    for chrom, arr in codes.items():
        header = f">{chrom}\n".encode()
        out.write(header)
        offset = out.tell()
        seq = lut[arr]
        n = seq.size
        full = n // 60
        body = np.concatenate([seq[:full * 60].reshape(full, 60), np.full((full, 1), ord("\n"), np.uint8)], axis=1)
        out.write(body.tobytes())
        if n % 60:
            out.write(seq[full * 60:].tobytes() + b"\n")
        fai.append(f"{chrom}\t{n}\t{offset}\t60\t61\n")
    atomic_write_bytes(path, out.getvalue())
    atomic_write_bytes(path.with_name(path.name + ".fai"), "".join(fai).encode())


def _vcf_bytes(variants: pl.DataFrame, chroms: dict[str, int]) -> bytes:
    ok = variants.filter(pl.col("status") == "ok")
    order = {c: i for i, c in enumerate(chroms)}
    grouped = (ok.group_by(["chrom", "pos", "rsid", "ref"], maintain_order=True)
               .agg(pl.col("alt"), pl.col("af"))
               .with_columns(_c=pl.col("chrom").replace_strict(order, return_dtype=pl.Int64))
               .sort(["_c", "pos", "rsid"]))
    lines = ["##fileformat=VCFv4.2", "##source=agval-world (SIMULATED dbSNP-like catalogue)",
             "##reference=genome.fa"]
    lines += [f"##contig=<ID={c},length={L}>" for c, L in chroms.items()]
    lines += ['##INFO=<ID=AF,Number=A,Type=Float,Description="Alternate allele frequency">',
              "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    for chrom, pos, rsid, ref, alts, afs in zip(*(grouped[c].to_list() for c in
                                                  ("chrom", "pos", "rsid", "ref", "alt", "af"))):
        lines.append(f"{chrom}\t{pos}\t{rsid}\t{ref}\t{','.join(alts)}\t.\t.\t"
                     f"AF={','.join(repr(float(a)) for a in afs)}")
    raw = ("\n".join(lines) + "\n").encode()
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as gz:
        gz.write(raw)
    return buf.getvalue()


def is_world_dir(path: Path) -> bool:
    p = Path(path) / "world.json"
    if not p.is_file():
        return False
    try:
        return json.loads(p.read_text()).get("format") == FORMAT
    except (OSError, ValueError):
        return False


def build_world(out: str | Path, seed: int = 7, size: str = "small", *, force: bool = False,
                catalogue: str | None = None, track_metadata: str | Path | None = None) -> Path:
    """Generate the world into ``out`` (created if needed) and return its path.

    ``catalogue``: the track catalogue written to ``tracks.parquet``: ``"demo"`` (the
    hand-written 182 tracks) or ``"real"`` (AlphaGenome's 5,563 real human tracks read from
    ``track_metadata`` / ``$AGVAL_TRACK_METADATA`` / ``../shared/data/...``, plus the demo
    mouse tracks); default: the size's (``demo`` for small/medium, ``real`` for large).
    The catalogue is read before anything is written, so a missing CSV fails fast.

    ``out`` must be absent, empty, or (with ``force=True``) an existing world folder,
    whose generated files are replaced (a ``studies/`` folder is removed too).
    A non-empty folder that is not a world is refused (:class:`InputError`).
    """
    out = Path(out)
    if size not in SIZES:
        raise InputError(f"unknown world size {size!r}; choose one of {sorted(SIZES)}")
    catalogue = catalogue or SIZES[size].catalogue
    if catalogue not in CATALOGUES:
        raise InputError(f"unknown track catalogue {catalogue!r}; choose one of: {', '.join(CATALOGUES)}")
    tracks = world_catalogue(catalogue, track_metadata)
    assert set(tracks["data_source"].unique()) == {SIMULATED_DATA_SOURCE}
    if out.exists() and not out.is_dir():
        raise InputError("output path exists and is not a folder", file=out)
    if out.is_dir() and any(out.iterdir()):
        if not is_world_dir(out):
            raise InputError("folder is not empty and is not an agval world (no world.json); "
                             "choose an empty or new folder", file=out)
        if not force:
            raise InputError("a world already exists here; pass --force to overwrite it", file=out)
        for child in out.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
    out.mkdir(parents=True, exist_ok=True)

    b = _Builder(seed, size)
    b.build_genome_and_genes()
    variants, absent = b.build_variants()

    _write_fasta(out / "genome.fa", b.codes)
    genes = pl.DataFrame([{k: v for k, v in g.items() if not k.startswith("_")} for g in b.genes],
                         schema=GENES_FORMAT.columns)
    write_table(genes, out / "genes.parquet", GENES_FORMAT)
    write_table(pl.DataFrame(b.exons, schema=EXONS_FORMAT.columns), out / "exons.parquet", EXONS_FORMAT)
    write_table(variants, out / "variants.parquet", VARIANTS_FORMAT)
    write_table(tracks, out / "tracks.parquet", TRACKS_FORMAT)
    els = pl.DataFrame([dict(element_id=f"E{i + 1:06d}", chrom=e.chrom, start=e.start0 + 1, end=e.end0,
                             kind=e.kind, program=e.program, gene_id=e.gene_id,
                             motifs=",".join(m[0] for m in e.motifs)) for i, e in enumerate(b.elements)],
                       schema=ELEMENTS_FORMAT.columns)
    write_table(els, out / "elements.parquet", ELEMENTS_FORMAT)
    atomic_write_bytes(out / "absent_rsids.txt", ("\n".join(absent) + "\n").encode())
    atomic_write_bytes(out / "dbsnp.vcf.gz", _vcf_bytes(variants, b.chroms))
    atomic_write_bytes(out / "truth.json", b.truth.to_json().encode())

    files = sorted(p.name for p in out.iterdir() if p.is_file() and p.name != "world.json")
    for name in files:
        (out / name).chmod(0o644)
    meta = {"format": FORMAT, "version": VERSION, "seed": b.seed, "size": size, "simulated": True,
            "build": "hg38", "chromosomes": dict(b.chroms),
            "counts": {"genes": genes.height, "exons": len(b.exons), "variants": variants.height,
                       "rsids": variants["rsid"].n_unique(), "tracks": tracks.height, "elements": els.height},
            "files": {name: _sha256(out / name) for name in files}}
    if catalogue != "demo":
        src = real_catalogue_path(track_metadata)
        meta["catalogue"] = {"kind": catalogue, "source": src.name, "source_sha256": _sha256(src)}
    atomic_write_bytes(out / "world.json", (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
    (out / "world.json").chmod(0o644)
    return out


def summary(path: str | Path) -> str:
    meta = json.loads((Path(path) / "world.json").read_text())
    c = meta.get("counts", {})
    total = sum(meta["chromosomes"].values())
    kind = (meta.get("catalogue") or {}).get("kind", "demo")
    return (f"world {path}: seed {meta['seed']}, {meta['size']}, {len(meta['chromosomes'])} chromosomes / "
            f"{total / 1e6:.1f} Mb, {c.get('genes')} genes, {c.get('variants')} variant rows "
            f"({c.get('rsids')} rsIDs), {c.get('tracks')} tracks ({kind} catalogue; scores SIMULATED)")


if __name__ == "__main__":  # pragma: no cover
    import sys
    t = time.perf_counter()
    build_world(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "small", force=True)
    print(summary(sys.argv[1]), f"{time.perf_counter() - t:.1f}s")
