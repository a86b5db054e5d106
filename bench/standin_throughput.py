"""Baseline throughput of the bare SDK ``score_variants`` against the stand-in AlphaGenome
service (SIMULATED) running in its own process with added latency.

    python bench/standin_throughput.py                 # 1,000 variants, 50 ms, workers 1 4 16 64
    python bench/standin_throughput.py --quick         # 100 variants (smoke run)
    python bench/standin_throughput.py --world DIR     # reuse a world (else a small one is built)
    python bench/standin_throughput.py --catalogue real --latency-ms 0 --workers 1 16 64
                                                       # the real 5,563-track catalogue, DNASE and RNA_SEQ

One scorer set at a time (the recommended DNASE centre mask; with ``--catalogue real``
also the RNA_SEQ gene mask, and both in one request), 1 Mb intervals centred on each
variant, the unmodified ``DnaClient`` on a channel with ``dna_client.create()``'s
options, against the stand-in in its own process. The quantile background is computed by
one warm-up call before timing. Every round gets new variants (the stand-in keeps an LRU
of answers, so repeating variants would time that cache); without ``--prewarm`` the first
RNA_SEQ round also pays the stand-in's one-off per-gene REF exon sums (``cold genes``).
Prints seconds and variants/s per concurrency next to the latency-only ideal
(``latency x n / workers``) and the CPU seconds of the client and of the stand-in: on a
shared machine the CPU per variant is the stable number (capacity ~ cores / CPU per
variant). This is the
baseline the scoring engine is compared with (issue 4's ``bench/scoring.py``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CREATE_CHANNEL_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]


def world_variants(world_dir: Path, n: int):
    """``n`` distinct SNVs of the world catalogue (status ok) as SDK variants, fixed order."""
    import polars as pl
    from alphagenome.data import genome

    df = pl.read_parquet(Path(world_dir) / "variants.parquet").filter(
        (pl.col("status") == "ok") & (pl.col("kind") == "snv"))
    df = df.unique(["chrom", "pos", "ref", "alt"]).sort("chrom", "pos", "alt")
    if df.height < n:
        raise SystemExit(f"the world has only {df.height} SNVs; asked for {n}")
    step = df.height // n
    df = df.gather_every(step).head(n)
    return [genome.Variant(r["chrom"], r["pos"], r["ref"], r["alt"]) for r in df.iter_rows(named=True)]


def sdk_client(address: str):
    import grpc
    from alphagenome.models import dna_client

    channel = grpc.insecure_channel(address, options=CREATE_CHANNEL_OPTIONS)
    grpc.channel_ready_future(channel).result(timeout=30)
    return dna_client.DnaClient(channel=channel)


def time_score_variants(client, variants, scorer, workers: int, width: int = 2 ** 20) -> float:
    """Seconds for one bare ``score_variants`` call over ``variants`` (``scorer``: one
    scorer or a list sent together in each request)."""
    intervals = [v.reference_interval.resize(width) for v in variants]
    scorers = list(scorer) if isinstance(scorer, (list, tuple)) else [scorer]
    t0 = time.perf_counter()
    out = client.score_variants(intervals, variants, scorers, max_workers=workers, progress_bar=False)
    dt = time.perf_counter() - t0
    assert len(out) == len(variants)
    return dt


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc; 0.0 elsewhere)."""
    import os

    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", type=Path, help="existing world folder (default: build a small one, seed 7)")
    ap.add_argument("--catalogue", choices=["demo", "real"], default="demo",
                    help="track catalogue of the built world (real: AlphaGenome's 5,563 human tracks)")
    ap.add_argument("--scorers", nargs="+", default=None,
                    help="recommended scorers to time, one at a time; A+B sends both in each request "
                         "(default DNASE; DNASE RNA_SEQ DNASE+RNA_SEQ with --catalogue real)")
    ap.add_argument("--n", type=int, default=None, help="variants per round (default 1000; 100 with --quick)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--quick", action="store_true", help="smoke run: 100 variants")
    ap.add_argument("--prewarm", action="store_true", help="start the stand-in with --prewarm (every gene's REF "
                                                           "exon sums and the backgrounds computed before timing)")
    args = ap.parse_args(argv)
    n = args.n or (100 if args.quick else 1000)
    scorer_names = args.scorers or (["DNASE", "RNA_SEQ", "DNASE+RNA_SEQ"] if args.catalogue == "real"
                                    else ["DNASE"])

    from alphagenome.models import variant_scorers

    from standins.launch import start_service

    tmp = Path(tempfile.mkdtemp(prefix="agval-bench-standin-"))
    try:
        world = args.world
        if world is None:
            from standins.world import build_world

            t = time.perf_counter()
            world = Path(build_world(tmp / "world", seed=7, size="small", catalogue=args.catalogue))
            print(f"built a small world ({args.catalogue} catalogue) in {time.perf_counter() - t:.1f} s: {world}")
        rounds = len(args.workers)
        variants = world_variants(world, n * rounds * len(scorer_names) + 1)
        t = time.perf_counter()
        extra = ["--prewarm"] if args.prewarm else []
        with start_service("alphagenome", world, "--latency-ms", f"{args.latency_ms:g}", *extra, log_dir=tmp,
                           timeout=900 if args.prewarm else 60) as svc:
            print(f"stand-in (SIMULATED) started in {time.perf_counter() - t:.1f} s on {svc.address}, "
                  f"{args.latency_ms:g} ms latency per request")
            client = sdk_client(svc.address)
            pid = svc.proc.pid if hasattr(svc, "proc") else None
            for si, name in enumerate(scorer_names):
                scorer = [variant_scorers.RECOMMENDED_VARIANT_SCORERS[x] for x in name.split("+")]
                t = time.perf_counter()
                time_score_variants(client, variants[-1:], scorer, 1)  # warm-up: the quantile background
                print(f"\n{name}: warm-up (quantile background) {time.perf_counter() - t:.1f} s")
                print(f"bare SDK score_variants: {n} new variants per round, {len(scorer)} scorer(s) ({name}), "
                      "1 Mb intervals")
                print(f"{'max_workers':>11} {'seconds':>9} {'variants/s':>11} {'ideal s':>9} "
                      f"{'client cpu':>10} {'server cpu':>10}")
                for r, w in enumerate(args.workers):
                    k = si * rounds + r  # new variants for every round: no answer comes from a cache
                    chunk = variants[k * n:(k + 1) * n]
                    c0, s0 = time.process_time(), _cpu_seconds(pid) if pid else 0.0
                    dt = time_score_variants(client, chunk, scorer, w)
                    c1, s1 = time.process_time(), _cpu_seconds(pid) if pid else 0.0
                    ideal = args.latency_ms / 1000 * n / w
                    note = "  (cold genes)" if r == 0 and "RNA_SEQ" in name and not args.prewarm else ""
                    print(f"{w:>11} {dt:>9.2f} {n / dt:>11.1f} {ideal:>9.2f} {c1 - c0:>10.1f} {s1 - s0:>10.1f}{note}",
                          flush=True)
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
