"""Stand-in myvariant.info (SIMULATED): serves a synthetic world's ``variants.parquet``.

* :func:`serve` (in :mod:`standins.myvariant.server`) starts the HTTP service in-process;
  ``agval standin myvariant --world DIR`` runs it as a process (:mod:`.cli`).
* :func:`build_mini_world` writes a tiny world folder (``genome.fa`` + ``variants.parquet``
  + ``dbsnp.vcf.gz`` + ``absent_rsids.txt``, in the ``agval-world`` v1 formats of
  ``docs/ARCHITECTURE.md``) for tests and benchmarks that do not need the full world.
* :func:`synthetic_catalogue` / :func:`write_dbsnp_vcf` make a dbSNP-like catalogue of any
  size (the benchmark's 1,000,000-record VCF).

Nothing here is ever a source of real results.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import polars as pl

__all__ = ["serve", "MyVariantConfig", "MyVariantHandle", "RequestRecord", "build_mini_world",
           "synthetic_catalogue", "write_dbsnp_vcf", "VARIANT_COLUMNS"]

VARIANT_COLUMNS: dict[str, pl.DataType] = {
    "rsid": pl.Utf8, "chrom": pl.Utf8, "pos": pl.Int64, "ref": pl.Utf8, "alt": pl.Utf8,
    "af": pl.Float64, "kind": pl.Utf8, "status": pl.Utf8, "merged_into": pl.Utf8,
    "hg19_chrom": pl.Utf8, "hg19_pos": pl.Int64,
}

_BASES = np.array(list("ACGT"))
_COMP = {"A": "T", "C": "G", "G": "C", "T": "A"}
_TRANSITION = {"A": "G", "G": "A", "C": "T", "T": "C"}


def _snv_alt(ref: str, draw: int) -> str:
    """Transitions twice as often as transversions (draw 1..3); a transversion is A/T-C/G
    palindromic half the time, as in real catalogues (~1/6 of SNVs)."""
    if draw <= 2:
        return _TRANSITION[ref]
    return [b for b in "ACGT" if b != ref and b != _TRANSITION[ref]][draw % 2]


def __getattr__(name):  # lazy: keep ``import standins.myvariant`` light
    if name in ("serve", "MyVariantConfig", "MyVariantHandle", "RequestRecord"):
        from standins.myvariant import server

        return getattr(server, name)
    raise AttributeError(name)


def random_genome(lengths: dict[str, int], seed: int) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    return {c: "".join(_BASES[rng.integers(0, 4, n)]) for c, n in lengths.items()}


def write_fasta(genome: dict[str, str], path: Path, width: int = 60) -> Path:
    with open(path, "w") as fh:
        for name, seq in genome.items():
            fh.write(f">{name}\n")
            for i in range(0, len(seq), width):
                fh.write(seq[i:i + width] + "\n")
    return path


def synthetic_catalogue(n_sites: int, seed: int, genome: dict[str, str] | None = None,
                        *, n_chrom: int = 2, first_rsid: int = 1_000_001,
                        frac_multi: float = 0.08, frac_indel: float = 0.10, frac_palin: float = 0.08,
                        frac_no_hg38: float = 0.02, frac_merged: float = 0.02) -> pl.DataFrame:
    """A dbSNP-like catalogue, one row per (rsid, alt), in the ``variants.parquet`` format.

    Sites are spread over the genome's chromosomes (or ``n_chrom`` virtual chromosomes of
    ``50 * n_sites / n_chrom`` bp when ``genome`` is None, REF then random). Kinds:
    bi-allelic SNVs (some A/T, C/G palindromic), multi-allelic SNVs (2-3 ALTs),
    insertions and deletions (VCF-anchored), ``no_hg38`` records (hg19 position only)
    and ``merged`` rsIDs (retired ids pointing at another site's rsid).
    """
    rng = np.random.default_rng(seed)
    if genome is None:
        per = max(1000, 50 * n_sites // n_chrom)
        chroms = {f"chr{i + 1}": per for i in range(n_chrom)}
        seqs = None
    else:
        chroms = {c: len(s) for c, s in genome.items()}
        seqs = genome
    names = list(chroms)
    # positions: distinct, at least 30 bp apart, away from the ends
    cap = {c: max(0, (n - 200) // 30) for c, n in chroms.items()}
    total_slots = sum(cap.values())
    if total_slots < n_sites:
        raise ValueError(f"genome too small for {n_sites} sites ({total_slots} slots)")
    slots = np.sort(rng.choice(total_slots, size=n_sites, replace=False))
    offsets = np.cumsum([0] + [cap[c] for c in names])
    kind_draw = rng.random(n_sites)
    ins_len = rng.integers(1, 6, n_sites)
    alt_draw = rng.integers(1, 4, (n_sites, 3))
    af_draw = rng.uniform(0.02, 0.6, (n_sites, 3))
    rs_gap = rng.integers(1, 4, n_sites)
    rsids = first_rsid + np.cumsum(rs_gap)
    perm = rng.permutation(n_sites)  # rsid numbers not in position order
    rsids = rsids[perm]
    rand_ref = _BASES[rng.integers(0, 4, (n_sites, 8))]
    cols: dict[str, list] = {k: [] for k in VARIANT_COLUMNS}
    t_multi = frac_multi
    t_indel = t_multi + frac_indel
    t_palin = t_indel + frac_palin
    t_nohg38 = t_palin + frac_no_hg38
    ok_rsids: list[str] = []

    chrom_h: str | None = None
    pos_h: int | None = None

    def emit(rsid, chrom, pos, ref, alt, af, kind, status="ok", merged=None):
        cols["rsid"].append(rsid)
        cols["chrom"].append(chrom)
        cols["pos"].append(pos)
        cols["ref"].append(ref)
        cols["alt"].append(alt)
        cols["af"].append(af)
        cols["kind"].append(kind)
        cols["status"].append(status)
        cols["merged_into"].append(merged)
        cols["hg19_chrom"].append(chrom_h)
        cols["hg19_pos"].append(pos_h)

    for i in range(n_sites):
        s = int(slots[i])
        ci = int(np.searchsorted(offsets, s, side="right") - 1)
        chrom = names[ci]
        pos = 100 + (s - int(offsets[ci])) * 30 + (i % 17)
        if seqs is not None:
            ctx = seqs[chrom][pos - 1:pos + 7]
        else:
            ctx = "".join(rand_ref[i])
        ref = ctx[0]
        rsid = f"rs{int(rsids[i])}"
        k = kind_draw[i]
        chrom_h, pos_h = chrom, max(1, pos + 10_000 - (i % 7) * 3_000)
        others = [b for b in "ACGT" if b != ref]
        if k < t_multi:
            n_alt = 2 + int(alt_draw[i, 0] == 3)
            alts = [others[(int(alt_draw[i, 1]) + j) % 3] for j in range(n_alt)]
            for j, a in enumerate(alts):
                emit(rsid, chrom, pos, ref, a, round(float(af_draw[i, j]) / n_alt, 4), "snv")
            ok_rsids.append(rsid)
        elif k < t_indel:
            if i % 2 == 0:  # deletion of L bases after the anchor
                L = int(ins_len[i])
                emit(rsid, chrom, pos, ctx[:L + 1], ref, round(float(af_draw[i, 0]), 4), "indel")
            else:
                ins = "".join(_BASES[rng.integers(0, 4, int(ins_len[i]))])
                emit(rsid, chrom, pos, ref, ref + ins, round(float(af_draw[i, 0]), 4), "indel")
            ok_rsids.append(rsid)
        elif k < t_palin:
            emit(rsid, chrom, pos, ref, _COMP[ref], round(float(af_draw[i, 0]), 4), "snv")
            ok_rsids.append(rsid)
        elif k < t_nohg38:
            alt = _snv_alt(ref, int(alt_draw[i, 0]))
            emit(rsid, None, None, ref, alt, round(float(af_draw[i, 0]), 4), "snv", status="no_hg38")
        else:
            alt = _snv_alt(ref, int(alt_draw[i, 0]) if i % 2 else int(alt_draw[i, 2]))
            emit(rsid, chrom, pos, ref, alt, round(float(af_draw[i, 0]), 4), "snv")
            ok_rsids.append(rsid)
    # merged (retired) rsIDs: point at an existing current rsid, same site
    n_merged = int(round(frac_merged * n_sites))
    if n_merged and ok_rsids:
        df0 = pl.DataFrame(cols, schema=VARIANT_COLUMNS)
        targets = rng.choice(len(ok_rsids), size=min(n_merged, len(ok_rsids)), replace=False)
        base = int(rsids.max()) + 10
        picked = sorted(int(x) for x in targets)
        mapping = pl.DataFrame({"rsid": [ok_rsids[t] for t in picked],
                                "_new": [f"rs{base + 2 * j}" for j in range(len(picked))]})
        extra = [df0.join(mapping, on="rsid", how="inner", maintain_order="right").with_columns(
            merged_into=pl.col("rsid"), status=pl.lit("merged")).with_columns(
            rsid=pl.col("_new")).drop("_new").select(list(VARIANT_COLUMNS))]
        df = pl.concat([df0, *extra])
    else:
        df = pl.DataFrame(cols, schema=VARIANT_COLUMNS)
    return df


def write_dbsnp_vcf(catalogue: pl.DataFrame, path: Path, *, build_id: str = "156-standin",
                    reference: str = "GRCh38") -> Path:
    """Write the catalogue's hg38 placements as a dbSNP-style VCF 4.2 (gzip when ``.gz``).

    Multi-allelic ALTs are comma-joined with ``INFO`` ``AF=`` as a comma list; retired
    (merged) and ``no_hg38`` rsIDs are not in the VCF (as in dbSNP's own VCF).
    """
    path = Path(path)
    cur = catalogue.filter(pl.col("status") == "ok")
    sites = (cur.group_by(["chrom", "pos", "rsid", "ref"], maintain_order=True)
             .agg(pl.col("alt").str.join(","), pl.col("af").cast(pl.Utf8).str.join(","),
                  pl.col("kind").first()))
    order = {c: i for i, c in enumerate(sorted(sites["chrom"].unique().to_list(),
                                               key=lambda c: (len(c), c)))}
    sites = (sites.with_columns(pl.col("chrom").replace_strict(order, return_dtype=pl.Int64).alias("_o"))
             .sort(["_o", "pos"]))
    body = sites.select(
        pl.col("chrom").alias("#CHROM"), pl.col("pos").alias("POS"), pl.col("rsid").alias("ID"),
        pl.col("ref").alias("REF"), pl.col("alt").alias("ALT"), pl.lit(".").alias("QUAL"),
        pl.lit(".").alias("FILTER"),
        (pl.lit("AF=") + pl.col("af") + pl.lit(";VC=") + pl.col("kind").str.to_uppercase()).alias("INFO"))
    header = ("##fileformat=VCFv4.2\n"
              f"##dbSNP_BUILD_ID={build_id}\n"
              f"##reference={reference}\n"
              "##source=agval-standin (SIMULATED)\n"
              '##INFO=<ID=AF,Number=A,Type=Float,Description="ALT allele frequency">\n'
              '##INFO=<ID=VC,Number=1,Type=String,Description="Variation class">\n')
    text = header + body.write_csv(separator="\t", quote_style="never")
    data = text.encode()
    if path.suffix == ".gz":
        with gzip.open(path, "wb", compresslevel=3) as fh:
            fh.write(data)
    else:
        path.write_bytes(data)
    return path


def build_mini_world(out: str | Path, *, n_sites: int = 300, seed: int = 11,
                     chrom_lengths: dict[str, int] | None = None, n_absent: int = 10) -> Path:
    """A tiny world folder for tests and benchmarks (see the module docstring)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if chrom_lengths is None:
        per = max(5_000, (n_sites * 40) // 2 + 400)
        chrom_lengths = {"chr1": per, "chr2": per}
    genome = random_genome(chrom_lengths, seed)
    write_fasta(genome, out / "genome.fa")
    cat = synthetic_catalogue(n_sites, seed, genome)
    cat.write_parquet(out / "variants.parquet")
    write_dbsnp_vcf(cat, out / "dbsnp.vcf.gz")
    top = max(int(r[2:]) for r in cat["rsid"].to_list())
    (out / "absent_rsids.txt").write_text("".join(f"rs{top + 1000 + 7 * i}\n" for i in range(n_absent)))
    return out
