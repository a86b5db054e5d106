"""A scoring run killed with SIGKILL midway and started again re-scores nothing it had
finished and loses nothing, asserted from the stand-in's call log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl

from agval.scoring import engine
from agval.scoring.alphagenome import AlphaGenomeBackend
from agval.scoring.backend import RetryPolicy
from agval.scoring.cache import ScoreCache

WIDTH = 131_072
N = 240
CONCURRENCY = 4

CHILD = textwrap.dedent("""
    import sys
    import polars as pl
    from agval.scoring import engine
    from agval.scoring.alphagenome import AlphaGenomeBackend
    from agval.scoring.cache import ScoreCache
    address, world, variants, cache = sys.argv[1:5]
    b = AlphaGenomeBackend(address, world_dir=world, metadata=[("x-fake-latency-ms", "40")])
    run = engine.score(pl.read_parquet(variants), ["DNASE"], backend=b, cache=ScoreCache(cache, simulated=True),
                       interval_width=int(sys.argv[5]), concurrency=int(sys.argv[6]), chunk_size=64,
                       progress=False)
    print("finished", run.summary)
""")


def _width(interval: str | None) -> int | None:
    if not interval:
        return None
    a, b = interval.rsplit(":", 1)[1].rsplit("-", 1)
    return int(b) - int(a)


def _ok_calls(h):
    return [c for c in h.servicer.calls
            if c.method == "ScoreVariant" and c.outcome == "OK" and _width(c.interval) == WIDTH]


def test_sigkill_midway_then_rerun(alphagenome_standin, world_dir, tmp_path):
    h = alphagenome_standin
    h.servicer.reset()
    cat = pl.read_parquet(Path(world_dir) / "variants.parquet").filter(
        (pl.col("status") == "ok") & (pl.col("kind") == "snv")).unique(["chrom", "pos", "ref", "alt"])
    df = cat.sort("chrom", "pos", "alt").head(N).select(
        pl.format("k{}", pl.int_range(pl.len())).alias("row_id"), "chrom", "pos", "ref", "alt")
    vpath = tmp_path / "variants.parquet"
    df.write_parquet(vpath)
    cache_root = tmp_path / "cache"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = subprocess.Popen([sys.executable, str(script), h.address, str(world_dir), str(vpath), str(cache_root),
                              str(WIDTH), str(CONCURRENCY)], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while len(_ok_calls(h)) < 90:  # past the first chunk of 64: mid-way through the second
            assert child.poll() is None, child.stdout.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the child never got going"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        t_kill = time.monotonic()
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    time.sleep(0.3)  # let the server log the calls the kill cut off
    first = {c.variant: c for c in _ok_calls(h)}
    assert 90 <= len(first) < N
    journals = list(cache_root.rglob("journal-*.agj"))
    assert journals, "the killed run left its journal behind"

    h.servicer.clear_calls()
    b = AlphaGenomeBackend(h.address, world_dir=world_dir)
    policy = RetryPolicy(sleep=lambda s: None)
    run = engine.score(df, ["DNASE"], backend=b, cache=ScoreCache(cache_root, simulated=True),
                       interval_width=WIDTH, concurrency=CONCURRENCY, policy=policy, progress=False)
    second = {c.variant for c in _ok_calls(h)}
    assert not list(cache_root.rglob("journal-*.agj"))
    # nothing finished before the kill is scored again; at most the calls whose answers
    # were on the wire when the process died (answered in its last instant) come back
    again = set(first) & second
    assert all(first[v].t_end > t_kill - 1.0 for v in again), again
    assert len(again) <= CONCURRENCY
    assert set(first) | second == {f"{r['chrom']}:{r['pos']}:{r['ref']}>{r['alt']}" for r in df.iter_rows(named=True)}
    assert run.failures.height == 0 and run.summary["cache_hits"] >= len(first) - CONCURRENCY
    # and nothing is lost: the recovered + rescored table equals a clean run's
    clean = engine.score(df, ["DNASE"], backend=b, cache=None, interval_width=WIDTH, concurrency=CONCURRENCY,
                         policy=policy, progress=False, fingerprint=run.model["fingerprint_digest"])
    assert run.scores.equals(clean.scores)
    b.close()
