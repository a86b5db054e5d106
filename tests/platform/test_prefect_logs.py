"""Prefect runs carry agval's INFO logs (the report path included), study-and-time run
names, one flow name everywhere, and the manifest records the Prefect flow-run id."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from standins.world.studies import qtl as gen
from tests.helpers import precomputed_hqtl_study

pytestmark = pytest.mark.slow


def _run_logs(flow_run_id: str) -> list[str]:
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all()

    async def read():
        async with get_client() as client:
            logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            run = await client.read_flow_run(flow_run_id)
            return [lg.message for lg in logs], run

    return asyncio.run(read())


def _link_artifact(flow_run_id: str, key_suffix: str) -> str:
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async def read():
        async with get_client() as client:
            return await client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))

    links = [a.data for a in asyncio.run(read()) if (a.key or "").endswith(key_suffix)]
    assert len(links) == 1, links
    return links[0]  # a link artifact is markdown: "[text](url)"


def test_flow_run_has_agval_info_logs_and_report_path(prefect_api, world_dir, tmp_path, monkeypatch):
    """The precomputed QTL path (no services), with the results roots served over HTTP as
    ``agval serve`` does: its Prefect run's Logs hold the step lines and the report's http
    URL, the link artifact points there and the served URL returns the report; run name =
    study + time; manifest/report carry the run id and link back to the run in the UI."""
    import httpx

    from agval.serving import ResultsServer
    from flows import registry

    served = ResultsServer()
    monkeypatch.setenv("AGVAL_RESULTS_URL", served.url)

    files = {p.name: p for p in gen.generate(world_dir, tmp_path / "demo", seed=0, n_caqtl=30, n_hqtl=30,
                                             n_boot=100)}
    study_file = precomputed_hqtl_study(files["hqtl-lcl.toml"], tmp_path / "hqtl-logs.toml")
    try:
        res = registry.run("qtl", study_file)
        folder = Path(res["run_folder"])
        report_url = f"{served.url}/simulated/{folder.relative_to(folder.parents[1]).as_posix()}/report.html"
        page = httpx.get(report_url, timeout=30)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert page.text == (folder / "report.html").read_text(), "the served report is the file"
    finally:
        served.stop()
    folder = Path(res["run_folder"])
    man = json.loads((folder / "manifest.json").read_text())
    info = man["prefect"]
    assert man["flow"] == info["flow_name"] == "qtl-validation", "one flow name in Prefect and the report"
    messages, run = _run_logs(info["flow_run_id"])
    assert run.name == info["flow_run_name"]
    study_name = man["study"]
    assert re.fullmatch(rf"{re.escape(study_name)}-\d{{8}}T\d{{6}}Z", run.name), run.name
    assert any(report_url in m for m in messages), messages
    assert f"]({report_url})" in _link_artifact(info["flow_run_id"], "-report"), "the artifact links the served report"
    assert any("rho" in m and "n =" in m for m in messages), "the flow's counts reach the run's logs"
    html = (folder / "report.html").read_text()
    assert info["flow_run_id"] in html, "the report records its Prefect flow run"
    ui = prefect_api.rstrip("/").removesuffix("/api")
    assert f'href="{ui}/flow-runs/flow-run/{info["flow_run_id"]}"' in html, "the report links to its run in the UI"
    assert "status: completed" in html and 'id="answers"' in html
    import stat

    modes = {p.relative_to(folder).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*")}
    assert all(m == (0o755 if (folder / p).is_dir() else 0o644) for p, m in modes.items()), modes
    from tests.browser import chromium, measure

    if chromium() is not None:  # the flow's own report, answer first (tests/test_report_browser.py)
        lay = measure(folder / "report.html", tmp_path)
        assert lay["card_bottom"] <= 1500 and lay["figure_top"] < 1500 and lay["overflow"] == [], lay


def test_agval_library_logger_reaches_the_run_logs_redacted(prefect_api, monkeypatch):
    """A library module's INFO record (logger ``agval.*``) inside a flow run lands in that
    run's logs, with the API key redacted."""
    from prefect import flow
    from prefect.runtime import flow_run

    from agval import secrets

    FAKE_KEY = "agval-test-secret-0123456789abcdef"  # a made-up key, not in any real key format
    monkeypatch.setenv("ALPHAGENOME_API_KEY", FAKE_KEY)
    seen = {}

    @flow(name="agval-log-probe")
    def probe() -> str:
        logging.getLogger("agval.probe").info("probe step: 12 rows kept, key=%s",
                                              FAKE_KEY)
        seen["id"] = str(flow_run.id)
        return "ok"

    assert secrets.redact(FAKE_KEY) != FAKE_KEY
    probe()
    messages, _ = _run_logs(seen["id"])
    lines = [m for m in messages if "probe step" in m]
    assert lines and "12 rows kept" in lines[0]
    assert FAKE_KEY not in lines[0]
