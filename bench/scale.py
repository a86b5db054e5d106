"""Scoring at real scale: 1k, 10k and 50k variants from scratch through the QTL flow's
scoring path, on the real 5,563-track catalogue.

    python bench/scale.py [--world DIR] [--sizes 1000,10000,50000] [--latency-ms 50]
                          [--concurrency 16] [--work DIR] [--server standin|replay]

Setup (SIMULATED service): the ``large`` synthetic world (built into the work folder
unless ``--world`` is given; real catalogue, ~20 genes per Mb), the stand-in AlphaGenome
service in its own process with 50 ms added latency, scorers RNA_SEQ + DNASE (1 Mb
interval, the QTL default), and the selection a QTL study declares: one GTEx tissue's
RNA_SEQ tracks and one biosample's DNASE tracks.

``--server replay`` (the default) serves the stand-in's protocol, catalogue, genes and
validation, but answers every call with a pre-computed matrix of the real shape (genes
in reach x 674 RNA_SEQ tracks; the 305 DNASE tracks) instead of running the stand-in's
toy model, which costs seconds of server CPU per RNA_SEQ answer on the real catalogue
(measured here: ~5 s per variant, minutes for its first quantile background): on two
shared cores that would measure the stand-in, not agval. ``--server standin`` runs the
full stand-in (its own process) for small sizes.

Each size runs in a fresh child process, with a fresh cache, through exactly what
``flows/qtl.py`` runs: ``tasks.scoring.score_variants`` inside a Prefect flow on the
default thread runner (a temporary Prefect server is started per child and not timed),
``concurrency = [backend] max_workers`` and ``chunk_size = [backend] chunk_size``.
Measured per size: variants/s (wall time of the scoring call), peak RSS of the child
(sampled every 50 ms), the most OS threads the child had, score rows per variant, and
the rows expected from the answers themselves (genes in reach x selected RNA_SEQ tracks
+ selected DNASE tracks).

The last line is::

    RESULT vps_ratio_50k_1k=<x> rss_gb_50k=<y> rss_growth_10k_50k=<z> max_threads=<n> rows_per_variant=<r>

(targets: x >= 0.85, y <= 3.0, z <= 1.3, n <= 64, r = genes x selected tracks).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WIDTH = 2 ** 20


def pick_selection(world: Path) -> tuple[str, str]:
    """(GTEx tissue, DNASE biosample CURIE) present in the world's catalogue."""
    import polars as pl

    t = pl.read_parquet(world / "tracks.parquet").filter(pl.col("organism").str.to_lowercase().str.contains("homo")
                                                         | pl.col("organism").str.to_lowercase().str.contains("human"))
    rna = t.filter((pl.col("output_type") == "RNA_SEQ") & pl.col("gtex_tissue").is_not_null())
    tissue = "Whole_Blood" if "Whole_Blood" in rna["gtex_tissue"].to_list() else sorted(rna["gtex_tissue"].to_list())[0]
    dnase = t.filter((pl.col("output_type") == "DNASE") & pl.col("ontology_curie").is_not_null())
    curie = "CL:0000236" if "CL:0000236" in dnase["ontology_curie"].to_list() else sorted(
        dnase["ontology_curie"].to_list())[0]
    return tissue, curie


def child(args) -> dict:
    from bench._sampling import Sampler

    work = Path(args.work)
    os.environ["AGVAL_HOME"] = str(work / "state")
    os.environ["PREFECT_HOME"] = str(work / "prefect")
    from agval import prefect_env

    prefect_env.configure()
    import polars as pl
    from prefect import flow
    from prefect.settings import (PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
                                  PREFECT_SERVER_DATABASE_CONNECTION_URL, temporary_settings)

    from agval.config import BackendConfig
    from agval.scoring.answers import Selection
    from agval.scoring.cache import ScoreCache
    from agval.scoring.tracks import TrackSelection
    from flows._common import backend_spec
    from flows.runners import task_runner_from_env
    from tasks.scoring import score_variants

    world = Path(args.world)
    n = int(args.child)
    df = pl.read_parquet(world / "variants.parquet").filter((pl.col("status") == "ok") & (pl.col("kind") == "snv"))
    df = (df.unique(["chrom", "pos", "ref", "alt"]).sort("chrom", "pos", "alt")
          .with_columns(pl.int_range(pl.len()).alias("_i")))
    # an even spread over the genome (not the first n of chr1), the same for every size
    df = df.filter(pl.col("_i") % max(1, df.height // n) == 0).head(n)
    assert df.height == n, (df.height, n)
    variants = df.select(pl.format("x{}", pl.col("_i")).alias("row_id"), "chrom", "pos", "ref", "alt")
    tissue, curie = args.tissue, args.curie
    selection = Selection([TrackSelection(output_types=["RNA_SEQ"], gtex_tissues=[tissue]),
                           TrackSelection(output_types=["DNASE"], ontology_curies=[curie])])
    cfg = BackendConfig(kind="standin", address=args.address, standin_world=str(world), max_workers=args.concurrency)
    spec = backend_spec(cfg)
    cache = ScoreCache(work / "cache", simulated=True)
    db = work / "prefect.db"
    out: dict = {"n": n, "tissue": tissue, "curie": curie}
    with temporary_settings(updates={PREFECT_SERVER_DATABASE_CONNECTION_URL: f"sqlite+aiosqlite:///{db}"}):
        from prefect.server.api.server import SubprocessASGIServer

        server = SubprocessASGIServer()
        server.start(timeout=300)
        try:
            with temporary_settings(updates={PREFECT_API_URL: server.api_url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
                @flow(name="bench-scale", task_runner=task_runner_from_env())
                def scale_flow():
                    t0 = time.perf_counter()
                    run = score_variants(variants, ["RNA_SEQ", "DNASE"], backend=spec, cache=cache,
                                         interval_width=WIDTH, chunk_size=cfg.chunk_size,
                                         concurrency=cfg.max_workers, artifact_key="bench-scale",
                                         selection=selection)
                    return run, time.perf_counter() - t0

                with Sampler() as s:
                    run, secs = scale_flow()
                out.update(seconds=secs, vps=n / secs, peak_rss_gb=s.peak_rss / 2 ** 30, max_threads=s.max_threads,
                           rows=run.summary["score_rows"], failures=run.failures.height, calls=run.summary["calls"],
                           retries=run.summary["retries"], throttled=run.summary["throttled"])
                # rows the selection needs, from the answers themselves: genes x selected tracks
                ans = pl.concat([pl.read_parquet(p, columns=["variant_key", "output_type", "n_obs", "tracks_id"])
                                 for p in sorted(cache.root.glob("*/answers-*.parquet"))])
                ns = next(p for p in cache.root.iterdir() if p.is_dir())
                k = {}
                for tid, ot in ans.select("tracks_id", "output_type").unique().iter_rows():
                    blk = pl.read_parquet(ns / "tracks" / f"{tid}.parquet")
                    cond = pl.col("gtex_tissue") == tissue if ot == "RNA_SEQ" else pl.col("ontology_curie") == curie
                    k[tid] = blk.filter(cond.fill_null(False)).height
                kk = ans["tracks_id"].replace_strict(k, return_dtype=pl.Int64)
                out["expected_rows"] = int((ans["n_obs"].cast(pl.Int64) * kk).sum())  # DNASE: n_obs = 1
                out["genes_per_variant"] = float(ans.filter(pl.col("output_type") == "RNA_SEQ")["n_obs"].mean())
                out["rows_per_variant"] = out["rows"] / n
                nt = ans["tracks_id"].replace_strict(
                    {t: pl.read_parquet(ns / "tracks" / f"{t}.parquet").height for t in k}, return_dtype=pl.Int64)
                out["answer_kb_per_variant"] = float((ans["n_obs"].cast(pl.Int64) * nt).sum()) * 8 / 1024 / n
        finally:
            server.stop()
    return out


class _Replay:
    def __init__(self, handle):
        self.handle = handle
        self.address = handle.address

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.stop(grace=0.5)


def replay_server(world: Path, latency_ms: float, n_genes: int) -> _Replay:
    """The stand-in (protocol, catalogue, genes, validation, merging, chunking) answering
    every variant with fixed matrices of the real shape (see the module docstring)."""
    import numpy as np

    from standins.alphagenome import serve
    from standins.alphagenome.servicer import StandinConfig

    h = serve(world, port=0, config=StandinConfig(latency_ms=latency_ms, atlas=False, result_cache_size=0))
    core = h.core if hasattr(h, "core") else h.servicer.core
    rng = np.random.default_rng(0)
    genes = sorted(core._gene_info)[:n_genes]
    memo: dict = {}

    def score(version, organism, variant, interval, spec):
        key = (organism, spec.output_type, spec.kind)
        got = memo.get(key)
        if got is None:
            n_tracks = len(core.contexts(organism, spec.output_type))
            if spec.kind == "center_mask":
                got = (rng.normal(size=(1, n_tracks)), [])
            else:
                raw = rng.normal(size=(len(genes), n_tracks))
                gs = np.array([core._gene_info[g]["strand"] for g in genes])[:, None]
                ts = np.array([c.strand for c in core.contexts(organism, spec.output_type)])[None, :]
                got = (np.where((ts == ".") | (ts == gs), raw, np.nan), list(genes))
            got[0].flags.writeable = False
            memo[key] = got
        return got

    def quantiles(version, organism, spec, raw):
        return np.clip(np.tanh(raw), -0.99999, 0.99999)

    core.score = score
    core.quantiles = quantiles
    return _Replay(h)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", default=None, help="a large world (default: build one, seed 7, into the work folder)")
    ap.add_argument("--sizes", default="1000,10000,50000")
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--concurrency", type=int, default=16, help="[backend] max_workers")
    ap.add_argument("--work", default=None)
    ap.add_argument("--server", choices=["replay", "standin"], default="replay")
    ap.add_argument("--genes", type=int, default=20, help="replay: genes in reach of every variant")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--address", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--tissue", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--curie", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print("CHILD " + json.dumps(child(args)), flush=True)
        return 0
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="agval-bench-scale-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AGVAL_HOME": str(work / "state")}
    world = Path(args.world) if args.world else work / "world-large"
    if not args.world:
        from standins.world import build_world

        t0 = time.perf_counter()
        build_world(world, seed=7, size="large")
        print(f"# built the large world in {time.perf_counter() - t0:.0f} s", flush=True)
    tissue, curie = pick_selection(world)
    sizes = [int(x) for x in args.sizes.split(",")]
    print(f"# agval scoring at scale (SIMULATED stand-in in its own process); {os.cpu_count()} CPUs; "
          f"load {os.getloadavg()[0]:.1f}; latency {args.latency_ms:g} ms; max_workers {args.concurrency}; "
          f"RNA_SEQ + DNASE on {world}; selection: GTEx {tissue} + DNASE {curie}", flush=True)
    from standins.launch import start_service

    results = {}
    server = (start_service("alphagenome", world, "--latency-ms", str(args.latency_ms), log_dir=work / "svc")
              if args.server == "standin" else replay_server(world, args.latency_ms, args.genes))
    print(f"# server: {args.server}", flush=True)
    with server as svc:
        for n in sizes:
            wdir = work / f"n{n}"
            wdir.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, __file__, "--child", str(n), "--work", str(wdir), "--world", str(world),
                   "--address", svc.address, "--tissue", tissue, "--curie", curie,
                   "--concurrency", str(args.concurrency)]
            p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
            line = next((ln for ln in p.stdout.splitlines() if ln.startswith("CHILD ")), None)
            if p.returncode != 0 or line is None:
                print(p.stdout[-3000:], p.stderr[-6000:], file=sys.stderr)
                raise SystemExit(f"child for {n} variants failed (exit {p.returncode})")
            r = json.loads(line[len("CHILD "):])
            results[n] = r
            print(f"{n:>7} variants: {r['seconds']:.1f} s, {r['vps']:.0f} variants/s, peak RSS "
                  f"{r['peak_rss_gb']:.2f} GB, max threads {r['max_threads']}, {r['calls']} calls "
                  f"({r['retries']} retries, {r['throttled']} throttled, {r['failures']} failures), "
                  f"{r['rows']} rows = {r['rows_per_variant']:.2f}/variant (expected {r['expected_rows']}: "
                  f"{r['genes_per_variant']:.1f} genes x selected tracks); whole answers cached: "
                  f"{r['answer_kb_per_variant']:.0f} kB of float32 per variant", flush=True)
    lo, mid, hi = results[sizes[0]], results[sizes[min(1, len(sizes) - 1)]], results[sizes[-1]]
    assert hi["rows"] == hi["expected_rows"], (hi["rows"], hi["expected_rows"])
    if not args.work:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    print(f"RESULT vps_ratio_50k_1k={hi['vps'] / lo['vps']:.3f} rss_gb_50k={hi['peak_rss_gb']:.3f} "
          f"rss_growth_10k_50k={hi['peak_rss_gb'] / mid['peak_rss_gb']:.3f} "
          f"max_threads={max(r['max_threads'] for r in results.values())} "
          f"rows_per_variant={hi['rows_per_variant']:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
