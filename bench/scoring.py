"""Scoring benchmark against the stand-in AlphaGenome service running in its own process.

    python bench/scoring.py [--quick] [--world DIR] [--concurrency 16] [--latency-ms 50]

Prints, measured in this one run (SIMULATED service; numbers depend on the machine):

(a) N variants (2,000; 500 with --quick), 1 scorer (DNASE centre mask, 1 Mb interval),
    50 ms added latency: agval (engine, cache writes included) vs the bare SDK
    ``score_variants`` at the same concurrency: variants/s and their ratio. The server is
    warmed by both clients first and the order alternates between rounds (SDK first, then
    agval first), so neither side meets a cold server (targets: ratio >= 0.9, agval >= 150
    variants/s at concurrency 16);
(b) with the stand-in's quota on (tokens/min set to 30 % of the throughput measured in
    (a); 1 call = 1 token): fraction of the quota used over the window (used tokens /
    (rate x window + the bucket's initial burst)) and fraction of calls rejected
    (targets >= 0.95 and <= 0.02), with agval's adaptive limiter;
(c) the fully cached re-run of (a): calls made (0) and variants/s; then a new track
    selection over the same variants: calls made (0);
(d) peak RSS of a fresh process answering 100,000 variants x 10 tracks from the cache
    (target < 2 GB);
(e) the SDK's 19 recommended scorers, 0 ms latency: agval vs the bare SDK variants/s, order
    alternated (target: agval >= 100; the client decodes answers in bulk and builds no
    per-track row for the cache).

**Measuring the client, not the stand-in.** The stand-in runs in its own process on the
same (2-core) machine. Computing a 19-scorer answer costs it far more CPU than decoding one
costs the client, so a cold stand-in would make the benchmark measure the server. The
services of (a), (c) and (e) therefore run with ``--response-cache`` (whole answers, packed
once, kept per request) and every timed variant is first scored once, untimed, by a warm-up
pass: timed calls cost the stand-in a lookup and the gRPC send; latency is still added to
every call. Each timed agval run writes to a fresh cache, so agval does all its work (calls,
bulk decode, answer cache writes) in every round.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WIDTH = 2 ** 20


def _variants(world: Path, n: int, offset: int = 0):
    import polars as pl

    df = pl.read_parquet(world / "variants.parquet").filter((pl.col("status") == "ok") & (pl.col("kind") == "snv"))
    df = df.unique(["chrom", "pos", "ref", "alt"]).sort("chrom", "pos", "alt").slice(offset, n)
    return df.select(pl.format("b{}", pl.int_range(pl.len()) + offset).alias("row_id"), "chrom", "pos", "ref", "alt")


def bench_sdk(address: str, df, concurrency: int) -> float:
    """The bare SDK's ``score_variants`` with the DNASE scorer: variants/s."""
    from alphagenome.models import variant_scorers as vs

    return _sdk_scorers(address, df, [vs.RECOMMENDED_VARIANT_SCORERS["DNASE"]], concurrency)


def bench_agval(backend, df, concurrency: int, cache, fp) -> tuple[float, dict]:
    from agval.scoring import engine

    t0 = time.perf_counter()
    run = engine.score(df, ["DNASE"], backend=backend, cache=cache, interval_width=WIDTH, concurrency=concurrency,
                       chunk_size=max(256, df.height // 4), progress=False, fingerprint=fp)
    secs = time.perf_counter() - t0
    assert run.failures.height == 0, run.failures.head()
    return df.height / secs, run.summary


def bench_quota(world: Path, rate_per_s: float, latency: float, concurrency: int, window: float,
                log_dir: Path | None = None) -> dict:
    from agval.scoring import engine
    from agval.scoring.alphagenome import AlphaGenomeBackend
    from agval.scoring.backend import RetryPolicy
    from agval.scoring.limiter import AdaptiveLimiter
    from standins.launch import start_service

    tpm = rate_per_s * 60.0
    burst = max(rate_per_s * 10.0, 20.0)  # the stand-in's default bucket (standins/alphagenome/quota.py)
    with start_service("alphagenome", world, "--latency-ms", str(latency),
                       "--quota-tokens-per-minute", f"{tpm:.3f}", log_dir=log_dir) as svc:
        b = AlphaGenomeBackend(svc.address, deadline_s=60)
        from agval.scoring.backend import resolve_scorers

        b.score_one(next(_rows(world, 1, 20000)), resolve_scorers(["DNASE"]), interval_width=WIDTH,
                    organism="human")  # warm-up (1 token)
        limiter = AdaptiveLimiter()
        policy = RetryPolicy(max_attempts=8, initial_backoff=0.25, max_backoff=4.0)
        calls = throttled = failed = ok = 0
        t0 = time.perf_counter()
        offset = 0
        while time.perf_counter() - t0 < window:
            df = _variants(world, 800, offset)
            offset += 800
            run = engine.score(df, ["DNASE"], backend=b, cache=None, interval_width=WIDTH, concurrency=concurrency,
                               chunk_size=800, policy=policy, limiter=limiter, progress=False, fingerprint="quota")
            calls += run.summary["calls"]
            throttled += run.summary["throttled"]
            failed += run.summary["failed_variants"]
            ok += run.summary["scored"]
        secs = time.perf_counter() - t0
        b.close()
    available = rate_per_s * secs + burst
    return {"tokens_per_minute": round(tpm, 1), "window_s": round(secs, 1), "ok_calls": ok,
            "rejected_calls": throttled, "calls": calls, "failed_variants": failed,
            "quota_used": round((ok + 1) / available, 3), "rejected_fraction": round(throttled / max(1, calls), 4),
            "limiter": limiter.stats()}


def bench_19(world: Path, tmp: Path, concurrency: int, n19: int) -> dict:
    """(e): the 19 recommended scorers at 0 ms latency, agval vs the bare SDK, order alternated."""
    from alphagenome.models import variant_scorers as vs

    from agval.scoring import engine
    from agval.scoring.alphagenome import AlphaGenomeBackend
    from agval.scoring.cache import ScoreCache
    from standins.launch import start_service

    rec = list(vs.RECOMMENDED_VARIANT_SCORERS)
    with start_service("alphagenome", world, "--latency-ms", "0", "--response-cache", "20000",
                       log_dir=tmp / "svc-e") as svc:
        b19 = AlphaGenomeBackend(svc.address, deadline_s=300)
        ok = []  # the scorers this server computes (one variant each; also builds their backgrounds)
        for k in rec:
            pr = engine.score(_variants(world, 1, 12300), [k], backend=b19, cache=None, interval_width=WIDTH,
                              concurrency=1, progress=False, fingerprint="bench-e")
            if not pr.failures.height:
                ok.append(k)
        print(f"(e) the server computes {len(ok)} of the {len(rec)} recommended scorers", flush=True)
        df = _variants(world, n19, 12400)
        t0 = time.perf_counter()
        engine.score(df, ok, backend=b19, cache=None, interval_width=WIDTH, concurrency=concurrency,
                     progress=False, fingerprint="bench-e")  # untimed warm-up: the stand-in computes once
        warm_s = time.perf_counter() - t0
        scorers = [vs.RECOMMENDED_VARIANT_SCORERS[k] for k in ok]
        sdk, ag, cpu_sdk, cpu_ag = [], [], [], []
        r19 = None

        def sdk_round():
            c0 = time.process_time()
            sdk.append(_sdk_scorers(svc.address, df, scorers, concurrency))
            cpu_sdk.append(1000 * (time.process_time() - c0) / n19)

        for r in range(2):  # alternate the order
            if r % 2 == 0:
                sdk_round()
            t0, c0 = time.perf_counter(), time.process_time()
            r19 = engine.score(df, ok, backend=b19, cache=ScoreCache(tmp / f"cache19-{r}", simulated=True),
                               interval_width=WIDTH, concurrency=concurrency, progress=False,
                               fingerprint="bench-e")
            ag.append(n19 / (time.perf_counter() - t0))
            cpu_ag.append(1000 * (time.process_time() - c0) / n19)
            assert r19.failures.height == 0 and r19.summary["calls"] == n19, (r19.summary, r19.failures.head())
            if r % 2 == 1:
                sdk_round()
        print(f"(e) {len(ok)} recommended scorers, 0 ms latency, {n19} variants: agval "
              f"{', '.join(f'{x:.0f}' for x in ag)} variants/s (target >= 100: {'yes' if max(ag) >= 100 else 'NO'}); "
              f"bare SDK score_variants {', '.join(f'{x:.0f}' for x in sdk)} variants/s; best-of ratio agval/SDK = "
              f"{max(ag) / max(sdk):.2f}; {r19.summary['calls']} calls, {r19.scores.height} rows; stand-in "
              f"warm-up {n19 / warm_s:.1f} variants/s", flush=True)
        print(f"(e) client CPU per variant (this process, all threads; the stand-in excluded): agval "
              f"{min(cpu_ag):.1f} ms, bare SDK {min(cpu_sdk):.1f} ms, i.e. at most {1000 / min(cpu_ag):.0f} "
              f"variants/s per free core for agval (load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)",
              flush=True)
        b19.close()
    return {"agval": max(ag), "sdk": max(sdk), "scorers": len(ok), "cpu_ms": min(cpu_ag)}


def _sdk_scorers(address: str, df, scorers, concurrency: int) -> float:
    import grpc
    from alphagenome.data import genome
    from alphagenome.models import dna_client

    channel = grpc.insecure_channel(address, options=[("grpc.max_send_message_length", -1),
                                                      ("grpc.max_receive_message_length", -1)])
    client = dna_client.DnaClient(channel=channel)
    variants = [genome.Variant(c, int(p), r, a) for c, p, r, a in df.select("chrom", "pos", "ref", "alt").iter_rows()]
    intervals = [v.reference_interval.resize(WIDTH) for v in variants]
    t0 = time.perf_counter()
    out = client.score_variants(intervals, variants, scorers, max_workers=concurrency, progress_bar=False)
    secs = time.perf_counter() - t0
    assert len(out) == len(variants)
    channel.close()
    return len(variants) / secs


def _rows(world, n, offset):
    from agval.coords import Variant

    for c, p, r, a in _variants(world, n, offset).select("chrom", "pos", "ref", "alt").iter_rows():
        yield Variant(c, int(p), r, a)


MEMORY_CHILD = textwrap.dedent("""
    import json, resource, sys, time
    import polars as pl
    from agval.scoring import engine
    from agval.scoring.backend import ScoringBackend
    from agval.scoring.cache import ScoreCache

    class Cached(ScoringBackend):
        name = "bench"
        model_version_name = "bench"
        def score_one(self, *a, **k):
            raise RuntimeError("everything should come from the cache")
        def describe(self):
            return {"backend": "bench", "address_kind": "precomputed"}

    root, variants = sys.argv[1], sys.argv[2]
    df = pl.read_parquet(variants)
    t0 = time.perf_counter()
    run = engine.score(df, ["DNASE"], backend=Cached(), cache=ScoreCache(root), interval_width=1048576,
                       progress=False, fingerprint="bench-d")
    secs = time.perf_counter() - t0
    assert run.summary["calls"] == 0 and run.scores.height == df.height * 10, run.summary
    print(json.dumps({"rows": run.scores.height, "seconds": round(secs, 2),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
""")


def bench_memory(tmp: Path, n_variants: int = 100_000, n_tracks: int = 10) -> dict:
    import numpy as np
    import polars as pl

    from agval import schema
    from agval.scoring.backend import resolve_scorers, scorer_id
    from agval.scoring.cache import CACHE_COLUMNS, CACHE_FORMAT, CacheContext, ScoreCache

    root = tmp / "memcache"
    cache = ScoreCache(root)
    ctx = CacheContext(interval_width=2 ** 20, organism="HOMO_SAPIENS", model_version="bench", fingerprint="bench-d")
    sid = scorer_id(resolve_scorers(["DNASE"])[0])
    rng = np.random.default_rng(0)
    chroms = np.array(["chr1", "chr2", "chr3"])
    pos = rng.choice(np.arange(1000, 50_000_000), n_variants, replace=False)
    keys = [f"{chroms[i % 3]}:{p}:A>G" for i, p in enumerate(pos)]
    tracks = [f"UBERON:{i:07d} DNase-seq" for i in range(n_tracks)]
    d = cache.ns_dir(ctx)
    per = 10_000
    for s in range(0, n_variants, per):
        ks = keys[s:s + per]
        n = len(ks) * n_tracks
        df = pl.DataFrame({
            "ckey": np.repeat([ctx.key(k, sid) for k in ks], n_tracks),
            "interval_width": [ctx.interval_width] * n, "organism": [ctx.organism] * n,
            "model_version": [ctx.model_version] * n, "fingerprint": [ctx.fingerprint] * n,
            "placeholder": [False] * n, "variant_key": np.repeat(ks, n_tracks), "scorer": [sid] * n,
            "output_type": ["DNASE"] * n, "track_name": tracks * len(ks), "track_strand": ["."] * n,
            "assay": ["DNase-seq"] * n, "ontology_curie": [t.split()[0] for t in tracks] * len(ks),
            "biosample_type": ["tissue"] * n, "data_source": ["bench (SIMULATED)"] * n,
            "raw_score": rng.normal(size=n).astype(np.float32),
            "quantile_score": rng.uniform(-1, 1, size=n).astype(np.float32), "scored_at": [0.0] * n,
        })
        for c, t in CACHE_COLUMNS.items():
            if c not in df.columns:
                df = df.with_columns(pl.lit(None, dtype=t).alias(c))
        schema.write_table(df.select(list(CACHE_COLUMNS)), d / f"shard-{s:09d}.parquet", CACHE_FORMAT)
    vpath = tmp / "mem_variants.parquet"
    pl.DataFrame({"row_id": [f"m{i}" for i in range(n_variants)], "chrom": [k.split(":")[0] for k in keys],
                  "pos": pos.astype(np.int64), "ref": ["A"] * n_variants, "alt": ["G"] * n_variants}).write_parquet(vpath)
    script = tmp / "mem_child.py"
    script.write_text(MEMORY_CHILD)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, str(script), str(root), str(vpath)], capture_output=True, text=True,
                         env=env, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["cache_mb_on_disk"] = round(sum(p.stat().st_size for p in d.glob("*.parquet")) / 2 ** 20, 1)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="500 variants, a shorter quota window")
    ap.add_argument("--world", type=Path, default=None, help="world folder (default: build a small one, seed 7)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--parts", default="abcde", help="which parts to run (letters a-e; c runs with a)")
    args = ap.parse_args(argv)

    from agval import prefect_env

    prefect_env.configure()
    from agval.scoring.alphagenome import AlphaGenomeBackend
    from agval.scoring.backend import resolve_scorers
    from agval.scoring.cache import ScoreCache
    from standins.launch import start_service

    n = 500 if args.quick else 2000
    tmp = Path(tempfile.mkdtemp(prefix="agval-bench-scoring-"))
    world = args.world
    if world is None:
        from standins.world import build_world

        world = tmp / "world"
        build_world(world, seed=7, size="small")
    df = _variants(world, n)
    assert df.height == n and _variants(world, 1000, 12000).height == 1000, "the world has too few variants"
    print(f"# agval scoring benchmark (stand-in in its own process; SIMULATED); {os.cpu_count()} CPUs; "
          f"load {os.getloadavg()[0]:.1f}; {n} variants; concurrency {args.concurrency}; "
          f"latency {args.latency_ms:g} ms", flush=True)

    ag_v = 150.0
    if "a" in args.parts:
        with start_service("alphagenome", world, "--latency-ms", str(args.latency_ms), "--response-cache", "20000",
                           log_dir=tmp / "svc-a") as svc:
            backend = AlphaGenomeBackend(svc.address, world_dir=world, deadline_s=120)
            backend.score_one(next(_rows(world, 1, 20000)), resolve_scorers(["DNASE"]), interval_width=WIDTH,
                              organism="human")  # warm-up: the stand-in builds its quantile background
            fp = backend.fingerprint()
            warm = _variants(world, 200, 12000)  # both clients warm the server (and their own code paths)
            bench_sdk(svc.address, warm, args.concurrency)
            bench_agval(backend, warm, args.concurrency, None, fp)
            bench_sdk(svc.address, df, args.concurrency)  # untimed: the stand-in keeps these answers
            rounds = 2
            sdk, ag = [], []
            summary = {}
            cache = None
            for r in range(rounds):  # alternate the order: neither side always goes first
                if r % 2 == 0:
                    sdk.append(bench_sdk(svc.address, df, args.concurrency))
                cache = ScoreCache(tmp / f"cache{r}", simulated=True)
                v, summary = bench_agval(backend, df, args.concurrency, cache, fp)
                ag.append(v)
                if r % 2 == 1:
                    sdk.append(bench_sdk(svc.address, df, args.concurrency))
            sdk_v, ag_v = max(sdk), max(ag)
            print(f"(a) bare SDK score_variants: {', '.join(f'{x:.0f}' for x in sdk)} variants/s; "
                  f"agval: {', '.join(f'{x:.0f}' for x in ag)} variants/s; best-of ratio agval/SDK = {ag_v / sdk_v:.2f} "
                  f"(target >= 0.9; agval >= 150/s: {'yes' if ag_v >= 150 else 'NO'}); calls {summary['calls']}",
                  flush=True)
            t0 = time.perf_counter()
            from agval.scoring import engine

            rerun = engine.score(df, ["DNASE"], backend=backend, cache=cache, interval_width=WIDTH,
                                 concurrency=args.concurrency, progress=False, fingerprint=fp)
            secs = time.perf_counter() - t0
            from agval.scoring.tracks import TrackSelection

            curie = rerun.scores["ontology_curie"].drop_nulls()[0]
            sel = engine.score(df, ["DNASE"], backend=backend, cache=cache, interval_width=WIDTH,
                               concurrency=args.concurrency, progress=False, fingerprint=fp,
                               selection=TrackSelection(ontology_curies=[curie]))
            print(f"(c) fully cached re-run: {rerun.summary['calls']} calls, {n / secs:.0f} variants/s "
                  f"({secs:.2f} s, {rerun.scores.height} score rows); a new track selection ({curie}) over the "
                  f"same variants: {sel.summary['calls']} calls, {sel.scores.height} rows", flush=True)
            backend.close()

    e = bench_19(world, tmp, args.concurrency, 200 if args.quick else 300) if "e" in args.parts else None

    rate = max(5.0, 0.3 * ag_v)  # well below what the client can do, so the quota is what binds
    q = None
    if "b" in args.parts:
        q = bench_quota(world, rate, args.latency_ms, args.concurrency, 12.0 if args.quick else 30.0,
                        log_dir=tmp / "svc-b")
        print(f"(b) quota {q['tokens_per_minute']:g} tokens/min over {q['window_s']} s: quota used "
              f"{q['quota_used']:.2f} (target >= 0.95), rejected {q['rejected_fraction']:.3f} of {q['calls']} calls "
              f"(target <= 0.02); failed variants {q['failed_variants']}; limiter {q['limiter']}", flush=True)
    if not args.skip_memory and "d" in args.parts:
        m = bench_memory(tmp)
        print(f"(d) 100,000 cached variants x 10 tracks ({m['rows']:,} rows, {m['cache_mb_on_disk']} MB on disk): "
              f"peak RSS {m['peak_rss_mb']:.0f} MB (target < 2048), answered in {m['seconds']} s", flush=True)
    res = []
    if "a" in args.parts:
        res += [f"vps_1scorer_{args.latency_ms:g}ms={ag_v:.0f}", f"ratio_1scorer={ag_v / sdk_v:.2f}"]
    if e is not None:
        res += [f"vps_{e['scorers']}scorers_0ms={e['agval']:.0f}", f"ratio_{e['scorers']}scorers={e['agval'] / e['sdk']:.2f}",
                f"client_cpu_ms_per_variant_{e['scorers']}scorers={e['cpu_ms']:.1f}"]
    if q is not None:
        res += [f"quota_used={q['quota_used']:.2f}", f"rejected={q['rejected_fraction']:.3f}"]
    print("RESULT " + " ".join(res), flush=True)
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
