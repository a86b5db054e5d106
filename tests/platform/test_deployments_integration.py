"""Deployments end to end (issue 8), against a real local Prefect server. SIMULATED services.

``test_serve_watch_trigger_revalidate_compare``: a local Prefect server on a free
loopback port; ``python -m deployments.serve`` in its own process group serving a
config with one study (the test-only ``toy`` kind of ``tests/test_revalidation.py``) on
the stand-in AlphaGenome service (a subprocess, revision 0); the study is run with
``run_deployment`` and its persisted result read back; ``watch_model`` records the
baseline fingerprint; the stand-in is restarted on the same port with revision 1 (new
weights); ``watch_model`` emits ``agval.model.changed``; the event triggers the
``revalidate`` deployment (polled through the API); the history then holds two
fingerprints and ``compare`` writes its report. Every process is stopped at the end,
also on failure.

``test_dask_runner_gives_identical_scores_and_metrics``: a study flow whose scoring
fan-out runs on a local Dask cluster (2 worker processes) gives exactly the scores and
metrics of the default thread runner; then the ``compare`` flow, called directly from
Python, finds no difference between the two runs.

Both share one server (module fixture).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from agval.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _wait(pred, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def local_server(tmp_path_factory):
    """`prefect server start` on a free loopback port; PREFECT_API_URL set for this module."""
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from deployments.server import start_server

    server = start_server(home=tmp_path_factory.mktemp("prefect-server"), timeout=180)
    old = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = server.api_url  # children (serve, Dask workers) inherit it
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield server
            from prefect.events.worker import EventsWorker
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all()
            EventsWorker.drain_all()
    finally:
        if old is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = old
        server.stop()
        assert server.proc.poll() is not None


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _flow_runs_of(deployment_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    async def go():
        async with get_client() as c:
            return await c.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))

    return asyncio.run(go())


def _deployment(name: str):
    from prefect.client.orchestration import get_client

    async def go():
        async with get_client() as c:
            try:
                return await c.read_deployment_by_name(name)
            except Exception:  # noqa: BLE001 - not registered yet
                return None

    return asyncio.run(go())


@pytest.mark.timeout(900)  # its own waits (server start, three run_deployment calls) exceed 300 s
def test_serve_watch_trigger_revalidate_compare(local_server, world_dir, tmp_path):
    from prefect.deployments import run_deployment

    from agval.revalidation.history import read_history
    from agval.revalidation.store import FingerprintStore
    from deployments.server import stop_group
    from standins.launch import start_service

    t0 = time.monotonic()
    logs = tmp_path / "logs"
    study_file = tmp_path / "toy.toml"
    study_file.write_text(f'[study]\nname = "toy-int"\nworld = "{world_dir}"\nn_variants = 16\n\n'
                          '[backend]\nkind = "standin"\n')
    standin = start_service("alphagenome", world_dir, "--revision", "0", log_dir=logs)
    port = standin.port
    cfg = tmp_path / "agval.toml"
    cfg.write_text(f'''
[study_kinds]
toy = "tests.platform.test_revalidation"

[[backends]]
name = "standin"
kind = "standin"
address = "127.0.0.1:{port}"
standin_world = "{world_dir}"
model_versions = ["ALL_FOLDS"]

[watch]
cron = "0 0 1 1 *"

[quota]
name = "agval-test-quota"
limit = 500
slot_decay_per_second = 50

[compare]
n_boot = 300
seed = 5

[[studies]]
name = "toy-int"
kind = "toy"
file = "{study_file}"
cron = "0 3 * * *"
backend = "standin"
''')
    env = {**os.environ, "PREFECT_API_URL": local_server.api_url, "PREFECT_RUNNER_POLL_FREQUENCY": "1",
           "AGVAL_DEPLOYMENTS_CONFIG": str(cfg), "PREFECT_LOGGING_LEVEL": "WARNING"}
    serve_log = open(tmp_path / "serve.log", "wb")
    serve = subprocess.Popen([sys.executable, "-m", "deployments.serve", "--config", str(cfg)], cwd=ROOT, env=env,
                             stdout=serve_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        for name in ("toy-study/toy-int", "agval-watch-model/watch", "agval-revalidate/revalidate",
                     "agval-compare/compare"):
            dep = _wait(lambda: _deployment(name) or (serve.poll() is not None and pytest.fail(
                "serve exited:\n" + (tmp_path / "serve.log").read_text()[-3000:])), 90, f"deployment {name}")
        toy_dep = _deployment("toy-study/toy-int")
        assert toy_dep.schedules and toy_dep.schedules[0].schedule.cron == "0 3 * * *"
        assert toy_dep.parameters["backend"]["address"] == f"127.0.0.1:{port}"
        t_served = time.monotonic()
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            gcl = client.read_global_concurrency_limit_by_name("agval-test-quota")
        assert gcl.limit == 500 and gcl.slot_decay_per_second == 50

        # 1. a study through its deployment; the persisted result comes back to the caller
        fr = run_deployment("toy-study/toy-int", timeout=150, poll_interval=1)
        assert fr.state.is_completed(), fr.state
        res_a = fr.state.result()
        man_a = json.loads((Path(res_a["run_folder"]) / "manifest.json").read_text())
        digest_a = man_a["model"]["fingerprint_digest"]
        assert res_a["simulated"] and digest_a

        # 2. the watch records the baseline
        w1 = run_deployment("agval-watch-model/watch", timeout=120, poll_interval=1)
        assert w1.state.is_completed(), w1.state
        c1 = w1.state.result()["checks"][0]
        assert c1["first_seen"] and c1["new_digest"] == digest_a, "the watch and the study see the same model"

        # 3. new weights: the stand-in restarted on the same port with revision 1
        standin.stop()
        standin = start_service("alphagenome", world_dir, "--revision", "1", "--port", str(port), log_dir=logs)
        assert standin.port == port
        revalidate_dep = _deployment("agval-revalidate/revalidate")
        before = {r.id for r in _flow_runs_of(revalidate_dep.id)}
        w2 = run_deployment("agval-watch-model/watch", timeout=120, poll_interval=1)
        assert w2.state.is_completed(), w2.state
        c2 = w2.state.result()["checks"][0]
        assert c2["material"] and "canary" in c2["parts"] and c2["old_digest"] == digest_a and c2["event"]
        assert not {"sdk", "proto", "metadata"} & set(c2["parts"])
        t_event = time.monotonic()

        # 4. the event triggers revalidate; poll the API for its flow run
        def finished_revalidate():
            runs = [r for r in _flow_runs_of(revalidate_dep.id) if r.id not in before]
            return runs[0] if runs and runs[0].state and runs[0].state.is_final() else None

        rv = _wait(finished_revalidate, 150, "the triggered revalidate flow run", interval=1)
        assert rv.state.is_completed(), rv.state
        assert rv.parameters["reason"] == "model-changed" and rv.parameters["backend"] == "standin"
        assert rv.parameters["new_digest"] == c2["new_digest"]
        res_rv = rv.state.result()
        assert [s["state"] for s in res_rv["studies"]] == ["COMPLETED"]
        from agval.paths import results_root

        sim_index = results_root(True) / "index.html"
        assert str(sim_index) in res_rv["indexes"] and "toy-int" in sim_index.read_text()
        t_revalidated = time.monotonic()

        # 5. the history holds both fingerprints; compare writes its report
        h = read_history()
        assert set(h.filter(pl.col("study") == "toy-int")["model_fingerprint"].unique()) == {digest_a, c2["new_digest"]}
        assert FingerprintStore().baseline("standin", "ALL_FOLDS")["digest"] == c2["new_digest"]
        cmp_run = run_deployment("agval-compare/compare", timeout=150, poll_interval=1)
        assert cmp_run.state.is_completed(), cmp_run.state
        rep = cmp_run.state.result()
        folder = Path(rep["report_folder"])
        assert rep["side_a"] == ["fingerprint", digest_a] and rep["side_b"] == ["fingerprint", c2["new_digest"]]
        for f in ("report.html", "index.html", "tables/comparison.parquet", "plots/toy-int-history.png"):
            assert (folder / f).exists(), f
        comp = pl.read_parquet(folder / "tables" / "comparison.parquet")
        row = comp.filter(pl.col("metric") == "toy.spearman").row(0, named=True)
        assert row["n"] == 16 and row["n_boot"] == 300 and row["ci_low"] <= row["difference"] <= row["ci_high"]
        fpd = pl.read_parquet(folder / "tables" / "fingerprint_diff.parquet")
        assert "canary" in fpd["part"].to_list()
        index = (folder / "index.html").read_text()
        assert index.count("report.html") >= 3  # both study runs and the comparison itself
        print(f"\ntimings: served {t_served - t0:.1f}s, study+watch+bump {t_event - t_served:.1f}s, "
              f"trigger->revalidated {t_revalidated - t_event:.1f}s, total {time.monotonic() - t0:.1f}s")
    finally:
        pgid = serve.pid
        stop_group(serve, 20, sig=signal.SIGINT)
        serve_log.close()
        standin.stop()
        assert not _group_alive(pgid), "the serve process group outlived the test"
        assert standin.proc.poll() is not None


# ---------------------------------------------------------------------------------------
# Dask
# ---------------------------------------------------------------------------------------

def test_dask_runner_gives_identical_scores_and_metrics(local_server, world_dir, alphagenome_standin, tmp_path,
                                                        monkeypatch):
    """A study flow (the toy study: scoring fan-out through tasks.scoring) on a local Dask
    cluster of 2 worker processes (they inherit PREFECT_API_URL) gives exactly the scores,
    per-variant table and metrics of the default thread runner."""
    from agval.config import BackendConfig
    from flows.runners import task_runner_from_config
    from tests.platform.test_revalidation import ToyStudy, toy_flow

    backend = BackendConfig(kind="standin", address=alphagenome_standin.address, standin_world=str(world_dir))
    study = ToyStudy(name="toy-dask", world=str(world_dir), n_variants=24)
    t0 = time.monotonic()
    on_threads = toy_flow(study, backend)
    t1 = time.monotonic()
    dask = task_runner_from_config("dask", n_workers=2, processes=True)
    on_dask = toy_flow.with_options(task_runner=dask)(study, backend)
    t2 = time.monotonic()
    print(f"\nthreads {t1 - t0:.1f}s, dask (2 worker processes, cluster start included) {t2 - t1:.1f}s")
    a, b = Path(on_threads["run_folder"]), Path(on_dask["run_folder"])
    assert a != b
    keys = ["row_id", "scorer", "track_name", "track_strand", "gene_id"]
    sa = pl.read_parquet(a / "tables" / "scores.parquet").sort(keys, nulls_last=True)
    sb = pl.read_parquet(b / "tables" / "scores.parquet").sort(keys, nulls_last=True)
    assert sa.height > 0 and sa.equals(sb)
    assert pl.read_parquet(a / "tables" / "toy.parquet").equals(pl.read_parquet(b / "tables" / "toy.parquet"))
    assert on_threads["metrics"] == on_dask["metrics"]
    assert json.loads((a / "metrics.json").read_text()) == json.loads((b / "metrics.json").read_text())
    # the limiter statistics are the workers' (summed over the chunks' copies), not the flow's idle copy
    sa_, sb_ = (json.loads((x / "manifest.json").read_text())["notes"]["scoring"]["summary"] for x in (a, b))
    assert sb_["limiter"]["calls"] == sb_["calls"] == sa_["limiter"]["calls"] == sa_["calls"] > 0

    # a re-validation flow called directly from Python: compare the two run folders
    from flows import registry
    from flows.revalidate import compare

    monkeypatch.setitem(registry.STUDIES, "toy", "tests.platform.test_revalidation")  # as a config's [study_kinds] does

    rep = compare(a=str(a), b=str(b), n_boot=100, seed=1)
    row = pl.DataFrame(rep["comparison"]).filter(pl.col("metric") == "toy.spearman").row(0, named=True)
    assert rep["side_a"] == ["folder", str(a)] and row["difference"] == 0.0 and row["n"] == 24
    assert Path(rep["report"]).exists() and Path(rep["leaderboard"]).exists()


def test_ui_is_told_the_api_address_it_was_started_on(local_server):
    """The Prefect UI reads its API address from /ui-settings; it must be this server's port,
    or the UI shows no deployments ("Can't connect to Server API")."""
    import httpx

    base = local_server.api_url.removesuffix("/api")
    assert httpx.get(f"{base}/ui-settings", timeout=10).json()["api_url"] == local_server.api_url


def test_serve_refuses_bad_config_before_starting(tmp_path, monkeypatch):
    """`python -m deployments.serve` on an invalid cron: exit 2 with the reason, nothing served."""
    from tests.platform.test_revalidation import write_config

    cfg = write_config(tmp_path, watch='[watch]\ncron = "99 * * * *"\n')
    env = {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"}
    p = subprocess.run([sys.executable, "-m", "deployments.serve", "--config", str(cfg)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "invalid cron '99 * * * *'" in p.stderr
    with pytest.raises(ConfigError):
        from deployments.config import load_and_validate

        load_and_validate(cfg, check_api=False)
