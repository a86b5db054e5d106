"""Benchmark of the TWAS concordance statistics (issue 6, "Done when").

Part 1 (this file's statistics part): time of the Q1 grid (10 tissues x 4 assays, plus
the pooled rows and the heart vs non-heart comparison) with 1,000 within-gene
permutations on 10,000 synthetic variant-gene-tissue triplets. Target: < 5 s.
Q2-Q4 timings are printed too (Q4 with its 1,000-permutation null).

Part 2 (GWAS harmonization of a 10,000,000-row file: time and peak memory, target < 60 s
and 3 GB) belongs to the harmonization component: see the TODO section below.

Run: ``.venv/bin/python bench/twas_stats.py [--triplets 10000] [--permutations 1000] [--seed 0]``
Everything is synthetic (no network, no world needed).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import polars as pl

from agval.stats import twas

ASSAYS = ("RNA", "ATAC", "DNASE", "CAGE")
TISSUES = ("Heart_Atrial_Appendage", "Heart_Left_Ventricle", "Whole_Blood", "Prostate",
           "Esophagus_Mucosa", "Skin_Sun_Exposed_Lower_leg", "Muscle_Skeletal", "Tissue_8",
           "Tissue_9", "Tissue_10")


def synthetic_triplets(n_triplets: int = 10_000, n_pairs: int = 858, n_genes: int = 418,
                       effect: float = 0.05, seed: int = 0) -> pl.DataFrame:
    """Long triplet table (one row per triplet x assay) shaped like the AF study:
    ~858 gene-tissue pairs over 10 tissues, ``n_triplets`` triplets, 4 assays, a weak
    planted mediation effect. ATAC is missing for 3 tissues (no tracks), as in the spec."""
    rng = np.random.default_rng(seed)
    pairs = set()
    while len(pairs) < n_pairs:
        pairs.add((int(rng.integers(len(TISSUES))), int(rng.integers(n_genes))))
    pairs_arr = np.array(sorted(pairs))
    P = len(pairs_arr)
    sizes = rng.multinomial(n_triplets - P, np.full(P, 1 / P)) + 1
    pi = np.repeat(np.arange(P), sizes)
    n = pi.size
    t_idx, g_idx = pairs_arr[pi, 0], pairs_arr[pi, 1]
    tz = (rng.choice([-1.0, 1.0], P) * (4.6 + rng.exponential(2.0, P)))[pi]
    z = rng.normal(0, 3, n)
    pip = rng.beta(0.3, 2.0, n)
    cs = np.where(pip > 0.3, rng.integers(0, 3, n), -1)
    base = pl.DataFrame({
        "variant_key": [f"chr1:{1000 + i}:A>G" for i in range(n)],
        "gene_id": [f"ENSG{g:011d}" for g in g_idx],
        "tissue": [TISSUES[t] for t in t_idx],
        "pip": pip, "cs": cs, "z_alt": z, "twas_z": tz,
    })
    frames = []
    e = np.sign(z * tz)
    for a in ASSAYS:
        score = effect * e + rng.normal(0, 1, n)
        if a == "ATAC":
            score = np.where(np.isin(t_idx, [2, 3, 5]), np.nan, score)
        frames.append(base.with_columns(pl.lit(a).alias("assay"), pl.Series("score", score)))
    return pl.concat(frames)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--triplets", type=int, default=10_000)
    ap.add_argument("--permutations", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="smaller GWAS file for a smoke run")
    ap.add_argument("--gwas-rows", type=int, help="rows in the synthetic GWAS file (default 10,000,000)")
    ap.add_argument("--gwas-wanted", type=int, help="rsIDs kept and oriented (default 20,000)")
    args = ap.parse_args()

    df = synthetic_triplets(args.triplets, seed=args.seed)
    print(f"synthetic triplets: {args.triplets:,} x {len(ASSAYS)} assays = {df.height:,} rows, "
          f"{df.select('gene_id', 'tissue').unique().height} gene-tissue pairs, {len(TISSUES)} tissues")

    # warm-up (imports, first polars/scipy calls) on a tiny problem
    twas.q1_sign_concordance(df.head(500), n_permutations=10, seed=args.seed)

    t0 = time.perf_counter()
    q1 = twas.q1_sign_concordance(df, n_permutations=args.permutations, seed=args.seed)
    t_q1 = time.perf_counter() - t0
    cells = q1["table"].filter(~pl.col("pooled")).height
    print(f"Q1 grid ({cells} tissue x assay cells + {len(ASSAYS)} pooled, heart vs non-heart), "
          f"B = {args.permutations:,} within-gene permutations: {t_q1:.2f} s (target < 5 s) "
          f"{'OK' if t_q1 < 5 else 'OVER TARGET'}")

    t0 = time.perf_counter()
    twas.q2_credible_set_enrichment(df)
    t_q2 = time.perf_counter() - t0
    t0 = time.perf_counter()
    twas.q3_tissue_specificity(twas.gene_level_scores(df))
    t_q3 = time.perf_counter() - t0
    t0 = time.perf_counter()
    twas.q4_synthetic_twas(df, n_permutations=args.permutations, seed=args.seed)
    t_q4 = time.perf_counter() - t0
    print(f"Q2: {t_q2:.2f} s; Q3: {t_q3:.2f} s; Q4 (B = {args.permutations:,}): {t_q4:.2f} s")

    # corrected mode (issue 12): locus-level unit permutations + locus bootstrap, every question
    from agval.twas.analysis import run_corrected

    t0 = time.perf_counter()
    run_corrected(df, n_permutations=args.permutations, n_boot=args.permutations, seed=args.seed,
                  heart_tissues=None, twas_p_threshold=None)
    t_c = time.perf_counter() - t0
    print(f"corrected mode, Q1 (twas direction) + Q2 + Q3 + Q4 with B = {args.permutations:,} unit permutations "
          f"and {args.permutations:,} locus-bootstrap replicates: {t_c:.2f} s")

    # ------------------------------------------------------------------------------
    # GWAS harmonization (agval.twas.gwas): time and peak memory to harmonize a
    # 10,000,000-row GWAS summary-statistics file (GWAS-SSF-like, gzip, read lazily with
    # polars; z oriented to ALT through the allele lookup and the hg38 FASTA). Targets:
    # < 60 s and < 3 GB. What the flow does with it: stream every row, keep the rows of
    # the retained SuSiE rsIDs (``--gwas-wanted``, default 20,000: twice the distinct
    # variants of the AF study's 10,120 triplets), harmonize those against their lookup
    # rows (the allele-lookup cache's content; the lookup itself is timed by
    # bench/alleles.py) and the FASTA. The file, a synthetic genome and the lookup table
    # are generated in a temporary folder (generation not timed); the harmonization runs
    # in a child process so its peak RSS (VmHWM) is its own.
    # Flags: --quick (200,000 rows), --gwas-rows N, --gwas-wanted N (or AGVAL_BENCH_QUICK=1,
    # AGVAL_BENCH_GWAS_ROWS, AGVAL_BENCH_GWAS_WANTED while the flags are not declared above).
    # ------------------------------------------------------------------------------
    import gzip
    import io
    import json
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    quick = bool(getattr(args, "quick", False)) or os.environ.get("AGVAL_BENCH_QUICK") == "1"
    n_rows = int(getattr(args, "gwas_rows", None) or os.environ.get("AGVAL_BENCH_GWAS_ROWS")
                 or (200_000 if quick else 10_000_000))
    n_wanted = min(n_rows, int(getattr(args, "gwas_wanted", None) or os.environ.get("AGVAL_BENCH_GWAS_WANTED")
                               or (2_000 if quick else 20_000)))

    def _make_inputs(folder: Path) -> dict:
        """A synthetic genome, a GWAS file of ``n_rows`` rows (rsIDs rs1..rsN, effect allele
        ALT or REF at random, 3 % of the wanted rows strand-flipped, 1 % with alleles matching
        neither REF nor ALT) and the lookup rows of the wanted rsIDs."""
        rng = np.random.default_rng(args.seed)
        chroms = {f"chr{i}": 2_000_000 for i in range(1, 4)}
        bases = np.array(list("ACGT"))
        seqs = {c: bases[rng.integers(0, 4, n)] for c, n in chroms.items()}
        with open(folder / "genome.fa", "w") as fh:
            for c, arr in seqs.items():
                fh.write(f">{c}\n")
                s_ = "".join(arr.tolist())
                fh.write("\n".join(s_[i:i + 60] for i in range(0, len(s_), 60)) + "\n")
        comp = {"A": "T", "C": "G", "G": "C", "T": "A"}
        trans = {"A": "G", "G": "A", "C": "T", "T": "C"}
        wanted_idx = np.sort(rng.choice(n_rows, size=n_wanted, replace=False))
        names = list(chroms)
        w_chrom = rng.integers(0, len(names), n_wanted)
        w_pos = rng.choice(np.arange(100, 1_999_900), size=n_wanted, replace=False)
        w_ref = [seqs[names[c]][p - 1] for c, p in zip(w_chrom, w_pos)]
        w_alt = [trans[r] for r in w_ref]                   # transitions: never palindromic
        lookup = pl.DataFrame({
            "query": [f"rs{i + 1}" for i in wanted_idx], "rsid": [f"rs{i + 1}" for i in wanted_idx],
            "chrom": [names[c] for c in w_chrom], "pos": w_pos.astype(np.int64), "ref": w_ref, "alt": w_alt,
            "af": rng.uniform(0.05, 0.95, n_wanted), "source": "bench", "source_version": "bench",
            "assembly": "hg38", "hgvs_id": None, "status": "ok"})
        lookup.write_parquet(folder / "lookup.parquet")
        (folder / "wanted.json").write_text(json.dumps(lookup["query"].to_list()))
        # the GWAS: background rows are random; wanted rows carry the lookup's alleles
        ea_is_alt = rng.random(n_wanted) < 0.5
        mode = rng.random(n_wanted)
        w_ea = [(a if e else r) for a, r, e in zip(w_alt, w_ref, ea_is_alt)]
        w_oa = [(r if e else a) for a, r, e in zip(w_alt, w_ref, ea_is_alt)]
        w_ea = [comp[x] if m < 0.03 else x for x, m in zip(w_ea, mode)]
        w_oa = [comp[x] if m < 0.03 else x for x, m in zip(w_oa, mode)]
        w_oa = [comp[a] if 0.03 <= m < 0.04 else x for x, a, m in zip(w_oa, w_alt, mode)]  # no match
        with open(folder / "gwas.tsv.gz", "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1,
                                                                        mtime=0) as gz:
            gz.write(b"chromosome\tbase_pair_location\teffect_allele\tother_allele\tbeta\tstandard_error\t"
                     b"effect_allele_frequency\tp_value\trsid\tn\n")
            step = 1_000_000
            for lo in range(0, n_rows, step):
                hi = min(n_rows, lo + step)
                m = hi - lo
                se = rng.uniform(0.005, 0.05, m)
                z = rng.normal(0, 1.5, m)
                chunk = pl.DataFrame({
                    "chromosome": rng.integers(1, 23, m), "base_pair_location": rng.integers(1, 2_000_000, m),
                    "effect_allele": bases[rng.integers(0, 4, m)], "other_allele": bases[rng.integers(0, 4, m)],
                    "beta": np.round(z * se, 6), "standard_error": np.round(se, 6),
                    "effect_allele_frequency": np.round(rng.uniform(0.01, 0.99, m), 4),
                    "p_value": np.round(rng.uniform(0, 1, m), 6),
                    "rsid": [f"rs{i + 1}" for i in range(lo, hi)], "n": np.full(m, 1_030_836)})
                sel = np.flatnonzero((wanted_idx >= lo) & (wanted_idx < hi))
                if sel.size:
                    at = wanted_idx[sel] - lo
                    cols = {"chromosome": [int(names[w_chrom[k]][3:]) for k in sel],
                            "base_pair_location": w_pos[sel].tolist(),
                            "effect_allele": [w_ea[k] for k in sel], "other_allele": [w_oa[k] for k in sel]}
                    chunk = chunk.with_row_index("_i")
                    patch = pl.DataFrame({"_i": at.astype(np.uint32), **{f"_{k}": v for k, v in cols.items()}})
                    chunk = chunk.join(patch, on="_i", how="left").with_columns(
                        [pl.coalesce(f"_{k}", k).alias(k) for k in cols]).select(chunk.columns[1:])
                buf = io.BytesIO()
                chunk.write_csv(buf, separator="\t", include_header=False)
                gz.write(buf.getvalue())
        return {"rows": n_rows, "wanted": n_wanted}

    child = r"""
import json, sys, time
from pathlib import Path
import polars as pl
folder = Path(sys.argv[1])
t0 = time.perf_counter()
from agval.drops import DropLog
from agval.twas.gwas import orient_gwas, read_gwas_for
t_import = time.perf_counter() - t0
wanted = json.loads((folder / "wanted.json").read_text())
lookup = pl.read_parquet(folder / "lookup.parquet")
drops = DropLog()
t1 = time.perf_counter()
rows = read_gwas_for(folder / "gwas.tsv.gz", wanted, build="hg38", drops=drops)
t2 = time.perf_counter()
oriented, res = orient_gwas(rows, lookup, folder / "genome.fa", drops=drops, source_file=folder / "gwas.tsv.gz")
t3 = time.perf_counter()
hwm = 0.0
for line in Path("/proc/self/status").read_text().splitlines():
    if line.startswith("VmHWM:"):
        hwm = int(line.split()[1]) / 1024
print(json.dumps({"read_s": t2 - t1, "orient_s": t3 - t2, "total_s": t3 - t1, "import_s": t_import,
                  "matched": rows.height, "oriented": oriented.height,
                  "dropped": {r["reason"]: r["n"] for r in drops.funnel().to_dicts()}, "peak_rss_mb": hwm}))
"""
    with tempfile.TemporaryDirectory(prefix="agval-bench-gwas-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        info = _make_inputs(folder)
        size_mb = (folder / "gwas.tsv.gz").stat().st_size / 2 ** 20
        print(f"GWAS harmonization: generated {info['rows']:,} rows ({size_mb:,.0f} MB gzip), {info['wanted']:,} "
              f"wanted rsIDs in {time.perf_counter() - t0:.1f} s (not timed below)")
        root = Path(__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        out = subprocess.run([sys.executable, "-c", child, str(folder)], capture_output=True, text=True, env=env,
                             cwd=root)
        if out.returncode != 0:
            raise SystemExit(f"harmonization child failed:\n{out.stderr[-3000:]}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        ok_t, ok_m = r["total_s"] < 60, r["peak_rss_mb"] < 3 * 1024
        print(f"GWAS harmonization ({info['rows']:,} rows): stream + filter {r['read_s']:.1f} s, orient "
              f"{r['oriented']:,} of {r['matched']:,} matched rows {r['orient_s']:.1f} s; total {r['total_s']:.1f} s "
              f"(target < 60 s) {'OK' if ok_t else 'OVER TARGET'}; peak RSS {r['peak_rss_mb']:,.0f} MB "
              f"(target < 3,072 MB) {'OK' if ok_m else 'OVER TARGET'}; drops {r['dropped']}")


if __name__ == "__main__":
    main()
