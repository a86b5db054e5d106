"""Prefect chunk tasks (retry condition, artifacts) and the ``agval model fingerprint`` CLI."""

from __future__ import annotations

import json

import polars as pl
from typer.testing import CliRunner

from agval.scoring.backend import BackendCallError, TransientScoringError


class _State:
    def __init__(self, exc):
        self.exc = exc

    def result(self):
        if self.exc is not None:
            raise self.exc
        return 1


def test_retry_condition_only_for_transient_failures():
    from tasks.scoring import transient_only

    assert transient_only(None, None, _State(TransientScoringError("all failed")))
    assert transient_only(None, None, _State(BackendCallError("UNAVAILABLE", "x")))
    assert not transient_only(None, None, _State(BackendCallError("INVALID_ARGUMENT", "x")))
    assert not transient_only(None, None, _State(ValueError("bug")))
    assert not transient_only(None, None, _State(None))


def test_flow_scores_in_chunk_tasks_with_artifacts(prefect_api, alphagenome_standin, world_dir, tmp_path):
    from prefect import flow
    from prefect.artifacts import Artifact

    from agval.scoring.backend import RetryPolicy
    from agval.scoring.cache import ScoreCache
    from tasks.scoring import score_variants

    h = alphagenome_standin
    h.servicer.reset()
    df = (pl.read_parquet(world_dir / "variants.parquet").filter((pl.col("status") == "ok") & (pl.col("kind") == "snv"))
          .unique(["chrom", "pos", "ref", "alt"]).sort("chrom", "pos", "alt").slice(300, 20)
          .select(pl.format("t{}", pl.int_range(pl.len())).alias("row_id"), "chrom", "pos", "ref", "alt"))
    spec = {"kind": "alphagenome", "address": h.address, "deadline_s": 10,
            "metadata": [["x-fake-fail-first", "1"], ["x-fake-fail-code", "UNAVAILABLE"]]}

    @flow
    def scoring_flow():
        return score_variants(df, ["DNASE"], backend=spec, cache=ScoreCache(tmp_path, simulated=True),
                              interval_width=16_384, chunk_size=7, concurrency=4, fingerprint="tasks",
                              policy=RetryPolicy(sleep=lambda s: None), artifact_key="test-scoring",
                              inflight_limit_name=True)

    run = scoring_flow()
    assert run.failures.height == 0 and run.scores["row_id"].n_unique() == 20
    assert run.summary["chunks"] == 3 and run.summary["retries"] == 20
    summary = Artifact.get("test-scoring-summary")
    assert summary is not None and "retries" in str(summary.data)
    progress = Artifact.get("test-scoring-progress")
    assert progress is not None and float(progress.data) == 100.0
    # with a server, the cross-process share of the concurrency budget exists (created on demand)
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name("agval-scoring-inflight").limit >= 1


def test_cli_model_fingerprint(alphagenome_standin, world_dir, tmp_path):
    from agval.cli.model import app

    out = tmp_path / "fp.json"
    res = CliRunner().invoke(app, ["fingerprint", "--address", alphagenome_standin.address,
                                   "--standin-world", str(world_dir), "--out", str(out)])
    assert res.exit_code == 0, res.output
    fp = json.loads(res.output)
    assert fp["simulated"] is True and fp["address_kind"] == "standin" and len(fp["digest"]) == 64
    assert fp["canary"]["n_scores"] > 0 and "scores" not in fp["canary"]
    assert json.loads(out.read_text())["digest"] == fp["digest"]
    res2 = CliRunner().invoke(app, ["fingerprint", "--address", alphagenome_standin.address,
                                    "--standin-world", str(world_dir), "--model-version", "FOLD_2"])
    assert res2.exit_code == 0 and json.loads(res2.output)["digest"] != fp["digest"]


def test_chunk_task_arguments_pickle_for_dask_workers(alphagenome_standin, world_dir):
    """A DaskTaskRunner ships the chunk-task arguments to worker processes by pickle."""
    import pickle

    from agval.scoring import engine, make_backend
    from agval.scoring.backend import RetryPolicy
    from agval.scoring.limiter import AdaptiveLimiter

    spec = {"kind": "alphagenome", "address": alphagenome_standin.address, "deadline_s": 10}
    b = make_backend(spec)
    assert make_backend(spec) is b
    df = pl.DataFrame({"row_id": ["a"], "chrom": ["chr1"], "pos": [1000], "ref": ["A"], "alt": ["C"]})
    plan = engine.plan_scoring(df, ["DNASE"], backend=b, cache=None, interval_width=16_384, fingerprint="p")
    args = (plan.chunks[0], spec, plan.ctx, RetryPolicy(), AdaptiveLimiter(initial_rate=5.0))
    chunk, spec2, ctx, policy, lim = pickle.loads(pickle.dumps(args))
    assert chunk.variants == plan.chunks[0].variants and ctx.key("x", "y") == plan.ctx.key("x", "y")
    assert lim.rate == 5.0 and policy.delay(1) > 0
    b.close()
    assert make_backend(spec) is not b  # a closed backend is rebuilt


def test_cli_dry_run_and_max_new_calls(prefect_api, alphagenome_standin, world_dir, tmp_path, monkeypatch):
    """``agval run qtl FILE --dry-run`` prints the new calls after the cache and scores nothing;
    ``[backend] max_new_calls`` below that stops the run with a clear error before any call."""
    from typer.testing import CliRunner

    from agval.cli.run import app
    from standins.myvariant.server import serve
    from standins.world.studies import qtl as gen

    monkeypatch.setenv("AGVAL_HOME", str(tmp_path / "home"))  # a cold score cache (other tests score these too)
    files = {p.name: p for p in gen.generate(world_dir, tmp_path / "demo", seed=0, n_caqtl=30, n_hqtl=30, n_boot=50)}
    study = files["caqtl-cd4.toml"]
    mv = serve(world_dir)
    try:
        args = ["qtl", str(study), "--address", alphagenome_standin.address, "--myvariant-url", mv.base_url]
        alphagenome_standin.servicer.reset()
        r = CliRunner().invoke(app, [*args, "--dry-run"])
        assert r.exit_code == 0, r.output + repr(r.exception)
        info = json.JSONDecoder().raw_decode(r.output[r.output.index('{\n  "dry_run"'):])[0]["dry_run"]
        assert info["new_calls"] == info["to_score"] > 0 and info["cache_hit_variants"] == 0
        from agval.scoring.fingerprint import CANARY_WIDTH
        from tests.scoring.test_scoring_standin import _score_calls

        assert _score_calls(alphagenome_standin, 2 ** 20) == [] and CANARY_WIDTH != 2 ** 20  # nothing scored
        capped = study.with_name("capped.toml")  # beside it: paths in a study file are relative
        capped.write_text(study.read_text().replace("[backend]", f"[backend]\nmax_new_calls = {info['new_calls'] - 1}")
                          if "[backend]" in study.read_text()
                          else study.read_text() + f"\n[backend]\nmax_new_calls = {info['new_calls'] - 1}\n")
        r2 = CliRunner().invoke(app, ["qtl", str(capped), "--address", alphagenome_standin.address,
                                      "--myvariant-url", mv.base_url])
        assert r2.exit_code != 0
        assert "max_new_calls" in str(r2.exception) or "max_new_calls" in r2.output
    finally:
        mv.stop()


def test_one_concurrency_budget_whatever_the_number_of_chunks(prefect_api, alphagenome_standin, world_dir, tmp_path):
    """40 variants in 10 chunks with max_workers = 4: never more than 4 calls in flight and
    2 chunk tasks submitted at a time (before: every chunk at once, 4 calls each)."""
    import threading

    from prefect import flow

    from agval.scoring import make_backend
    from agval.scoring.cache import ScoreCache
    from tasks import scoring as ts

    spec = {"kind": "alphagenome", "address": alphagenome_standin.address, "deadline_s": 10,
            "metadata": [["x-fake-latency-ms", "30"]]}
    b = make_backend(spec)
    state = {"now": 0, "max": 0, "chunks": 0, "max_chunks": 0}
    lock = threading.Lock()
    real_answers = b.score_answers

    def counting(*a, **k):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        try:
            return real_answers(*a, **k)
        finally:
            with lock:
                state["now"] -= 1

    b.score_answers = counting
    from agval.scoring import engine

    real = engine.score_chunk

    def chunk_counting(*a, **k):
        with lock:
            state["chunks"] += 1
            state["max_chunks"] = max(state["max_chunks"], state["chunks"])
        try:
            return real(*a, **k)
        finally:
            with lock:
                state["chunks"] -= 1

    df = (pl.read_parquet(world_dir / "variants.parquet").filter((pl.col("status") == "ok") & (pl.col("kind") == "snv"))
          .unique(["chrom", "pos", "ref", "alt"]).sort("chrom", "pos", "alt").slice(500, 40)
          .select(pl.format("c{}", pl.int_range(pl.len())).alias("row_id"), "chrom", "pos", "ref", "alt"))

    @flow
    def scoring_flow():
        return ts.score_variants(df, ["DNASE"], backend=spec, cache=ScoreCache(tmp_path, simulated=True),
                                 interval_width=16_384, chunk_size=4, concurrency=4, fingerprint="budget",
                                 inflight_limit_name=False)

    engine.score_chunk = chunk_counting
    try:
        run = scoring_flow()
    finally:
        engine.score_chunk = real
        b.score_answers = real_answers
    assert run.failures.height == 0 and run.summary["chunks"] == 10 and run.summary["calls"] == 40
    assert 2 <= state["max"] <= 4 and state["max_chunks"] == 2
