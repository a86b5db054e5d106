"""Allele lookup benchmark: requests, wall time and rows/s, cold and cached, API and VCF paths.

    python bench/alleles.py            # 10,000 and 100,000 rsIDs; 1,000,000-record VCF memory
    python bench/alleles.py --quick    # 2,000 and 10,000 rsIDs; 100,000-record VCF

* API path: the myvariant stand-in (SIMULATED) in its own process (``agval standin
  myvariant``), the real client with ``pace=0`` (against myvariant.info the default
  polite pace adds about one second per 1000 ids; printed alongside);
* VCF path: the world's ``dbsnp.vcf.gz`` read by :class:`agval.alleles.vcf.VcfSource`;
* cold = empty cache, cached = the same ids again (the API path must make 0 requests);
* harmonization rows/s on the largest lookup;
* peak memory (max RSS of a child process) looking up every rsID of a synthetic
  1,000,000-record VCF (target < 1 GB).

Everything is generated in a temporary folder and removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _peak_rss_mb() -> float:
    """This process's peak resident memory. ``VmHWM`` belongs to the current address space; ru_maxrss
    would also count the parent's memory at fork time (it survives execve)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child_vcf(path: str, n_ids: int) -> None:
    """Run in a subprocess: look up ``n_ids`` rsIDs of the VCF; print JSON with the peak RSS."""
    import polars as pl

    from agval.alleles.vcf import VcfSource

    t0 = time.perf_counter()
    ids = pl.read_parquet(Path(path).with_suffix("").with_suffix(".ids.parquet"))["rsid"].head(n_ids).to_list()
    t1 = time.perf_counter()
    df = VcfSource(path).lookup(ids)
    t2 = time.perf_counter()
    rss_mb = _peak_rss_mb()
    print(json.dumps({"ids": len(ids), "rows": df.height, "found": int((df["status"] == "ok").sum()),
                      "lookup_s": t2 - t1, "load_ids_s": t1 - t0, "peak_rss_mb": rss_mb}))


def _fmt_row(path, n, phase, res, wall):
    rows = res.table.height
    reqs = f"{res.lookup_requests}+{res.requests - res.lookup_requests}"
    return (f"{path:<5} {n:>8,} {phase:<7} {reqs:>8} {wall:>9.2f} {rows:>9,} {rows / wall:>12,.0f}"
            f"   {res.n_cached:>8,} cached / {res.n_fetched:>8,} fetched")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a few seconds)")
    ap.add_argument("--sizes", type=int, nargs="*", help="numbers of rsIDs to look up")
    ap.add_argument("--vcf-records", type=int, help="records in the memory-test VCF")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--_child-vcf", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a._child_vcf:
        _child_vcf(a._child_vcf[0], int(a._child_vcf[1]))
        return 0

    import polars as pl

    from agval.alleles.cache import LookupCache, lookup_rsids
    from agval.alleles.harmonize import harmonize
    from agval.alleles.myvariant import MyVariantClient
    from agval.alleles.vcf import VcfSource
    from standins.launch import start_service
    from standins.myvariant import build_mini_world, synthetic_catalogue, write_dbsnp_vcf

    sizes = a.sizes or ([2_000, 10_000] if a.quick else [10_000, 100_000])
    n_vcf = a.vcf_records or (100_000 if a.quick else 1_000_000)
    tmp = Path(tempfile.mkdtemp(prefix="agval-bench-alleles-"))
    try:
        t = time.perf_counter()
        n_sites = int(max(sizes) * 1.05) + 100
        world = build_mini_world(tmp / "world", n_sites=n_sites, seed=a.seed)
        cat = pl.read_parquet(world / "variants.parquet")
        all_ids = cat["rsid"].unique(maintain_order=True).to_list()
        print(f"world: {cat.height:,} catalogue rows, {len(all_ids):,} rsIDs "
              f"(built in {time.perf_counter() - t:.1f} s) in {tmp}")
        svc = start_service("myvariant", world, log_dir=tmp / "logs")
        print(f"myvariant stand-in (SIMULATED) in its own process at {svc.base_url}\n")
        hdr = (f"{'path':<5} {'rsIDs':>8} {'phase':<7} {'requests':>8} {'wall_s':>9} {'rows':>9} {'rows/s':>12}")
        print(hdr)
        print("-" * len(hdr) + "   (requests = lookups + version checks)")
        last = None
        try:
            for n in sizes:
                ids = all_ids[:n]
                cache = LookupCache(tmp / f"cache-api-{n}")
                for phase in ("cold", "cached"):
                    with MyVariantClient(svc.base_url, pace=0) as c:
                        t = time.perf_counter()
                        res = lookup_rsids(ids, c, cache=cache)
                        wall = time.perf_counter() - t
                    print(_fmt_row("api", n, phase, res, wall))
                    if phase == "cold":
                        last = res
                vcache = LookupCache(tmp / f"cache-vcf-{n}")
                for phase in ("cold", "cached"):
                    t = time.perf_counter()
                    res = lookup_rsids(ids, VcfSource(world / "dbsnp.vcf.gz"), cache=vcache)
                    print(_fmt_row("vcf", n, phase, res, time.perf_counter() - t))
                print(f"{'':<5} {'':>8} (polite 1 request/s against myvariant.info adds ~{(n + 999) // 1000} s)")
        finally:
            svc.stop()

        # harmonization throughput on the largest lookup
        ok = cat.filter(pl.col("rsid").is_in(last.table["query"].implode()) & (pl.col("status") == "ok"))
        study = ok.select(pl.format("r{}", pl.int_range(pl.len())).alias("row_id"), "rsid",
                          pl.col("alt").alias("ea"), pl.col("ref").alias("oa"),
                          (pl.int_range(pl.len()) % 7 - 3).cast(pl.Float64).alias("beta"))
        t = time.perf_counter()
        h = harmonize(study, last.table, world / "genome.fa", convention="column:ea", other_allele_col="oa")
        wall = time.perf_counter() - t
        print(f"\nharmonize: {study.height:,} study rows -> {h.table.height:,} kept in {wall:.2f} s "
              f"({study.height / wall:,.0f} rows/s)")

        # peak memory for an n_vcf-record VCF (child process)
        t = time.perf_counter()
        big = synthetic_catalogue(n_vcf, a.seed + 1, None, frac_no_hg38=0, frac_merged=0, first_rsid=50_000_001)
        vcf = write_dbsnp_vcf(big, tmp / "big.vcf.gz")
        big.select(pl.col("rsid").unique(maintain_order=True)).write_parquet(tmp / "big.ids.parquet")
        n_ids = big["rsid"].n_unique()
        del big
        print(f"\nVCF memory test: {n_vcf:,} records ({vcf.stat().st_size / 1e6:.1f} MB gzip, "
              f"made in {time.perf_counter() - t:.1f} s)")
        for k in sorted({min(100_000, n_ids), n_ids}):
            out = subprocess.run([sys.executable, __file__, "--_child-vcf", str(vcf), str(k)], check=True,
                                 capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
            r = json.loads(out.stdout.strip().splitlines()[-1])
            flag = "OK" if r["peak_rss_mb"] < 1024 else "OVER 1 GB"
            print(f"  lookup of {r['ids']:>9,} rsIDs: {r['rows']:>9,} rows in {r['lookup_s']:.2f} s "
                  f"({r['rows'] / r['lookup_s']:,.0f} rows/s), peak RSS {r['peak_rss_mb']:.0f} MB [{flag} < 1 GB]")
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
