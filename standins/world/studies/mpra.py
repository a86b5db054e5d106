"""The demo MPRA library (SIMULATED): a GSE84888-like reporter assay planted from the
synthetic world's ground truth. Not product code.

What :func:`generate` writes into ``out_dir``:

* ``mpra-demo.toml``: the main study (oligos from the FASTA, each centred in the neutral
  backbone, mouse adipocyte tracks, plus a named K562 sensitivity run);
* ``mpra-demo-locus16.toml``: the same counts scored the V2 way, the locus 16-mer in its
  reference flanks: every construct of a locus is the same model input, so rows far
  outnumber distinct inputs and the pseudo-replication warning fires (P17);
* ``DEMO_Pool1_MPRA.txt``, ``DEMO_Pool2_MPRA.txt``: counts in the GSE84888 format
  (``name, tags, counts.rna, counts.plasmid``, CRLF, tab-separated);
* ``DEMO_elements.fa``: one oligo per construct name;
* ``DEMO_planted.parquet``: the truth per construct (for checking recovery).

The library (``OLIGO_LENGTH`` = 150 bp oligos):

1. **Loci**: the strongest PPARG sites of the world genome (truth PWM, both strands,
   scanned with the truth model's log-odds), at least :data:`MARGIN` bp from chromosome
   ends; if the genome has too few, random positions with a planted PPARG consensus.
   A locus is the 16-mer ``seq16`` = oligo ``[67, 83)`` that holds the PPARG site at
   ``[69, 81)``; its name coordinates are 0-based half-open genomic ``[start, end)`` of
   those 16 bases, and the oligo is the genomic 150-mer around it **on the site's
   strand** (reverse-complemented for ``-`` loci; ``seq16`` is written in that
   orientation, so ``element_orientation = "strand"``).
2. **Wild type**: the genomic oligo plus 1-4 **motif edits at known positions**: truth
   motif consensus sites (JUND, PPARG, SP1, GATA1, MEF2A, NRF1) written into fixed
   slots of the oligo (:data:`SLOTS`).
3. **Mutants** (GSE84888 grammar ``<tf>_<start>_<end>_<replacement>``, 0-based half-open
   oligo positions): for every site (the core included) a knockout (``_mut1``: the site's
   bases shuffled; the digit keeps ``mut1`` out of the TF strata) and a swap
   (``_<other tf>``: another TF's consensus in its place). TF short names contain no
   digits (``jun``, ``pparg``, ``sp``, ``gata``, ``mef``, ``nrf``), so the per-TF strata
   (alphabetic tokens) find them. The name's ``seq16`` is the locus's wild-type 16-mer for
   every construct of the locus, as in GSE84888.
4. **Truth activity**: the oligo centred in a 4,096-bp plasmid context (the neutral
   backbone generator with seed :data:`PLASMID_SEED`, not the flow's backbone),
   ``score = log2(mean truth DNASE signal over the oligo +- 25 bp + 0.02)`` for the mouse
   adipocyte track (CL:0000136, ``TruthOracle.sequence_activity``).
5. **Counts**: ``z`` = the standardised score; expected
   ``log2(RNA/DNA) = -1.0 + effect * z + N(0, 0.3)`` per construct; ``tags`` ~ 1 +
   Poisson(60); DNA ~ NB(mean 30 x tags, size 15) (2 % of constructs under-represented,
   mean x 0.002, so a ``min_dna = 10`` filter has something to drop); RNA ~ NB(mean
   (DNA + 1) x 2^expected, size 8).

Large libraries: with ``n_designs`` < ``n_constructs`` the designs are repeated as
barcoded replicate blocks (prefix ``PPREsyn_<locus>r<k>``), each with fresh counts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from agval.coords import revcomp
from agval.mpra.backbone import neutral_backbone

OLIGO_LENGTH = 150
CORE = (67, 83)          # seq16 in the oligo
CORE_SITE = (69, 81)     # the PPARG site inside it
#: slots (0-based half-open in the oligo) for flank motif edits; the core is [67, 83)
SLOTS = ((6, 18), (24, 36), (42, 54), (90, 102), (108, 120), (128, 140))
FLANK_TFS = ("JUND", "PPARG", "SP1", "GATA1", "MEF2A", "NRF1")
SWAP_TFS = ("GATA1", "JUND", "SP1", "MEF2A", "PPARG")
SHORT = {"PPARG": "pparg", "JUND": "jun", "SP1": "sp", "NRF1": "nrf", "GATA1": "gata", "MEF2A": "mef",
         "CTCF": "ctcf", "SPI1": "pu", "RUNX3": "runx", "EBF1": "ebf", "TBX5": "tbx", "NKX2-5": "nkx"}
MARGIN = 70_000          # loci keep reference flanks for inputs up to 131 kb
PLASMID_SEED = 84888
PLASMID_LENGTH = 4096
CONTEXT = "CL:0000136"   # mouse adipocyte
BASE_LOG2 = -1.0

_CODE = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate(b"ACGT"):
    _CODE[_b] = _i


def _scan(seq: str, lo: np.ndarray) -> np.ndarray:
    """PWM log-odds score at every start position (windows touching N get -inf)."""
    codes = _CODE[np.frombuffer(seq.encode(), dtype=np.uint8)]
    n, k = codes.size, lo.shape[0]
    if n < k:
        return np.full(0, -np.inf)
    ext = np.concatenate([lo, np.full((k, 1), -np.inf)], axis=1)  # column 4 = N
    score = np.zeros(n - k + 1)
    for j in range(k):
        score += ext[j, codes[j:n - k + 1 + j]]
    return score


def _pparg_sites(world, n_wanted: int, rng) -> list[tuple[str, int, str, float]]:
    """Strongest PPARG sites (chrom, site start0, strand, score), spaced >= 2 kb apart."""
    motif = next(m for m in world.truth.motifs if m.name == "PPARG")
    lo = motif.log_odds(world.truth.background)
    lo_rc = lo[::-1, ::-1]
    best = float(lo.max(axis=1).sum())
    hits = []
    for chrom, length in world.meta["chromosomes"].items():
        seq = world.genome.fetch(chrom, 0, int(length))
        for strand, mat in (("+", lo), ("-", lo_rc)):
            s = _scan(seq, mat)
            idx = np.flatnonzero(s >= 0.6 * best)
            hits += [(chrom, int(i), strand, float(s[i])) for i in idx
                     if MARGIN <= i <= int(length) - MARGIN - OLIGO_LENGTH]
    hits.sort(key=lambda h: -h[3])
    chosen: list[tuple[str, int, str, float]] = []
    for h in hits:
        if all(h[0] != c[0] or abs(h[1] - c[1]) >= 2000 for c in chosen):
            chosen.append(h)
        if len(chosen) >= n_wanted:
            break
    return chosen


def _locus_oligo(world, site: tuple[str, int, str, float] | None, rng, consensus: dict[str, str]):
    """(chrom, oligo genomic start0, strand, genomic oligo in strand orientation, planted_core)."""
    if site is not None:
        chrom, s0, strand, _ = site
        k = len(consensus["PPARG"])
        # the site occupies oligo [69, 81) in strand orientation
        if strand == "+":
            g0 = s0 - CORE_SITE[0]
        else:
            g0 = s0 + k - (OLIGO_LENGTH - CORE_SITE[0])
        raw = world.genome.fetch(chrom, g0, g0 + OLIGO_LENGTH)
        return chrom, g0, strand, raw if strand == "+" else revcomp(raw), False
    chroms = list(world.meta["chromosomes"].items())
    while True:
        chrom, length = chroms[int(rng.integers(0, len(chroms)))]
        g0 = int(rng.integers(MARGIN, int(length) - MARGIN - OLIGO_LENGTH))
        raw = world.genome.fetch(chrom, g0, g0 + OLIGO_LENGTH)
        if "N" not in raw:
            break
    strand = "+" if rng.random() < 0.55 else "-"
    oligo = raw if strand == "+" else revcomp(raw)
    a, b = CORE_SITE
    return chrom, g0, strand, oligo[:a] + consensus["PPARG"] + oligo[b:], True


def _put(seq: str, a: int, site: str) -> str:
    return seq[:a] + site + seq[a + len(site):]


def _fit(site: str, width: int, filler: str) -> str:
    """``site`` cut or padded (with the original bases) to ``width``."""
    return site[:width] if len(site) >= width else site + filler[len(site):width]


def _designs(world, n_constructs: int, rng) -> list[dict[str, Any]]:
    """Loci with their wild type and mutants, until ``n_constructs`` designs exist."""
    consensus = {m.name: m.consensus() for m in world.truth.motifs}
    mean_per_locus = 1 + 2 * 3.5
    n_loci_guess = max(4, int(np.ceil(n_constructs / mean_per_locus)) + 4)
    sites = _pparg_sites(world, n_loci_guess, rng)
    designs: list[dict[str, Any]] = []
    k = 0
    while len(designs) < n_constructs:
        site = sites[k] if k < len(sites) else None
        chrom, g0, strand, oligo, planted_core = _locus_oligo(world, site, rng, consensus)
        # flank motif edits at known positions
        n_sites = int(rng.integers(1, 5))
        slots = sorted(rng.choice(len(SLOTS), size=n_sites, replace=False).tolist())
        edits = [("PPARG", *CORE_SITE)]
        wt = oligo
        for si in slots:
            tf = FLANK_TFS[int(rng.integers(0, len(FLANK_TFS)))]
            a, b = SLOTS[si]
            cons = consensus[tf][: b - a]
            wt = _put(wt, a, cons)
            edits.append((tf, a, a + len(cons)))
        seq16 = wt[CORE[0]:CORE[1]]
        # genomic 0-based half-open coordinates of seq16
        if strand == "+":
            start = g0 + CORE[0]
        else:
            start = g0 + OLIGO_LENGTH - CORE[1]
        locus = {"locus_index": k, "chromosome": chrom, "start": start, "end": start + 16, "strand": strand,
                 "seq16": seq16, "planted_core": planted_core, "oligo_start0": g0}
        designs.append({**locus, "modification": "wt", "oligo": wt, "edited_tf": None})
        for tf, a, b in edits:
            if len(designs) >= n_constructs:
                break
            site_bases = wt[a:b]
            shuffled = "".join(rng.permutation(list(site_bases)))
            if shuffled == site_bases:
                shuffled = site_bases[::-1]
            designs.append({**locus, "modification": f"{SHORT[tf]}_{a}_{b}_mut1", "oligo": _put(wt, a, shuffled),
                            "edited_tf": tf})
            if len(designs) >= n_constructs:
                break
            others = [t for t in SWAP_TFS if t != tf]
            other = others[int(rng.integers(0, len(others)))]
            designs.append({**locus, "modification": f"{SHORT[tf]}_{a}_{b}_{SHORT[other]}",
                            "oligo": _put(wt, a, _fit(consensus[other], b - a, site_bases)), "edited_tf": tf})
        k += 1
    return designs[:n_constructs]


def _truth_scores(world, oligos: list[str]) -> np.ndarray:
    from standins.world.truth import TruthOracle

    oracle = TruthOracle(world)
    tracks = world.tracks.filter((pl.col("organism").cast(pl.String).str.contains("(?i)mus"))
                                 & (pl.col("ontology_curie") == CONTEXT) & (pl.col("output_type") == "DNASE"))
    plasmid = neutral_backbone(PLASMID_LENGTH, PLASMID_SEED)
    a = PLASMID_LENGTH // 2 - OLIGO_LENGTH // 2
    win = (a - 25, a + OLIGO_LENGTH + 25)
    memo: dict[str, float] = {}
    out = np.empty(len(oligos))
    for i, o in enumerate(oligos):
        v = memo.get(o)
        if v is None:
            seq = plasmid[:a] + o + plasmid[a + OLIGO_LENGTH:]
            v = float(np.log2(np.mean(oracle.sequence_activity(seq, tracks, win)) + 0.02))
            memo[o] = v
        out[i] = v
    return out


def _nb(rng, mean: np.ndarray, size: float) -> np.ndarray:
    mean = np.maximum(mean, 1e-9)
    return rng.negative_binomial(size, size / (size + mean))


def generate(world_dir: str | Path, out_dir: str | Path, *, seed: int = 0, n_constructs: int = 300,
             n_designs: int | None = None, effect: float = 0.9, sensitivity: bool = True,
             n_boot: int = 1000, n_perm: int = 1000) -> list[Path]:
    """Write the demo MPRA library and its study files; returns
    ``[mpra-demo.toml, mpra-demo-locus16.toml, pool files..., elements FASTA, planted table]``.

    ``n_constructs``: rows of the count files; ``n_designs``: distinct oligos (default
    ``n_constructs``; fewer -> barcoded replicate blocks); ``effect``: log2 ratio per SD
    of the truth score; ``sensitivity``: add the K562 sensitivity run to the main study.
    """
    from standins.world import World

    world_dir = Path(world_dir).absolute()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([int(seed), 0x84888])
    world = World.load(world_dir)
    n_designs = min(n_designs or n_constructs, n_constructs)
    designs = _designs(world, n_designs, rng)
    scores = _truth_scores(world, [d["oligo"] for d in designs])
    z = (scores - scores.mean()) / (scores.std() or 1.0)
    for d, s, zz in zip(designs, scores, z):
        d["truth_score"], d["truth_z"] = float(s), float(zz)

    rows = []
    n_blocks = int(np.ceil(n_constructs / len(designs)))
    for r in range(n_blocks):
        for d in designs:
            if len(rows) >= n_constructs:
                break
            prefix = f"PPREsyn_{d['locus_index']}" + (f"r{r}" if n_blocks > 1 else "")
            parts = [prefix, d["chromosome"], str(d["start"]), str(d["end"]), d["strand"], d["seq16"]]
            if d["modification"] != "wt":
                parts.append(d["modification"])
            rows.append({**d, "name": "_".join(parts), "block": r,
                         "pool": "Pool1" if d["locus_index"] % 2 == 0 else "Pool2"})
    n = len(rows)
    zz = np.array([r["truth_z"] for r in rows])
    expected = BASE_LOG2 + effect * zz + rng.normal(0.0, 0.3, n)
    tags = 1 + rng.poisson(60, n)
    dna_mean = 30.0 * tags * np.where(rng.random(n) < 0.02, 0.002, 1.0)
    dna = _nb(rng, dna_mean, 15.0)
    rna = _nb(rng, (dna + 1) * np.exp2(expected), 8.0)
    for r, t, d_, r_, e in zip(rows, tags, dna, rna, expected):
        r.update(tags=int(t), dna=int(d_), rna=int(r_), expected_log2=float(e))

    paths: list[Path] = []
    pool_files = []
    for pool in ("Pool1", "Pool2"):
        p = out / f"DEMO_{pool}_MPRA.txt"
        lines = ["name\ttags\tcounts.rna\tcounts.plasmid"]
        lines += [f"{r['name']}\t{r['tags']}\t{r['rna']}\t{r['dna']}" for r in rows if r["pool"] == pool]
        p.write_bytes(("\r\n".join(lines) + "\r\n").encode())
        pool_files.append(p)
    fasta = out / "DEMO_elements.fa"
    with open(fasta, "w") as fh:
        for r in rows:
            fh.write(f">{r['name']}\n{r['oligo'][:75]}\n{r['oligo'][75:]}\n")
    planted = out / "DEMO_planted.parquet"
    pl.DataFrame([{k: r[k] for k in ("name", "pool", "locus_index", "chromosome", "start", "end", "strand",
                                     "seq16", "modification", "edited_tf", "planted_core", "oligo", "block",
                                     "truth_score", "truth_z", "expected_log2", "tags", "dna", "rna")}
                  for r in rows]).write_parquet(planted)

    # absolute: agval.config resolves relative paths of single-path keys only, not of lists
    counts = json.dumps([str(p.absolute()) for p in pool_files])
    common = (f'counts = {counts}\ncount_format = "gse84888"\norganism = "MUS_MUSCULUS"\n'
              f'ontology_terms = ["{CONTEXT}"]\noutputs = ["DNASE", "CAGE", "RNA_SEQ"]\n'
              f"sequence_length = 16384\ncenter_window = 200\npseudocount = 1.0\nmin_dna = 10\n"
              f"n_boot = {n_boot}\nn_perm = {n_perm}\nseed = {int(seed)}\n")
    backend = f'\n[backend]\nkind = "standin"\nstandin_world = {json.dumps(str(world_dir))}\n'
    main = out / "mpra-demo.toml"
    sens = 'sensitivity_ontology_terms = ["EFO:0002067"]\nsensitivity_organism = "HOMO_SAPIENS"\n' \
        if sensitivity else ""
    main.write_text(
        "# SIMULATED demo MPRA study (agval standins.world.studies.mpra): oligos from the FASTA,\n"
        "# each centred in the neutral backbone, scored with mouse adipocyte tracks.\n"
        f'[study]\nname = "mpra-demo"\n{common}sequences = "{fasta.name}"\nbackbone = "neutral"\n'
        f'element_source = "sequences"\n{sens}{backend}')
    locus = out / "mpra-demo-locus16.toml"
    locus.write_text(
        "# SIMULATED: the same counts scored the V2 way (the locus 16-mer in its reference flanks):\n"
        "# every construct of a locus is one model input -> pseudo-replication warning (P17).\n"
        f'[study]\nname = "mpra-demo-locus16"\n{common}element_source = "seq16"\nbackbone = "reference"\n'
        f'reference_fasta = {json.dumps(str(world_dir / "genome.fa"))}\nelement_orientation = "strand"\n'
        f"coordinate_base = 0\n{backend}")
    paths += [main, locus, *pool_files, fasta, planted]
    return paths
