"""The README's serve -> watch -> revalidate sequence, run verbatim (issue 16).

The commands are parsed from the README block marked ``<!-- serve-watch ... -->`` itself,
so the README and this test cannot drift: the first (``agval serve``) runs in the
background as terminal 1; every later command runs in "terminal 2", a fresh environment
that exports nothing but ``AGVAL_HOME`` (the same state folder): no ``PREFECT_API_URL``,
no stand-in address, no config path. They must find the running serve by themselves
(``<state>/serve.json``). Afterwards the Prefect client finds the watch and revalidate
runs completed and no failed or crashed flow run, and the revalidated study's report is
fetched through the served results URL.

Terminal 1's config is the README's default file with a test-sized content (set through
``AGVAL_DEPLOYMENTS_CONFIG``): the SIMULATED demo (stand-in over the session world) with
one small study of the test-only ``toy`` kind (``tests/test_revalidation.py``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def readme_commands() -> list[list[str]]:
    """The commands of the README's serve -> watch block, comments stripped."""
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- serve-watch", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line.split("#", 1)[0]) for line in block.splitlines() if line.startswith(".venv/bin/agval")]


def _agval(argv: list[str]) -> list[str]:
    assert argv[0] == ".venv/bin/agval", argv
    return [sys.executable, "-m", "agval", *argv[1:]]  # this venv's agval, this checkout


def _env(home: Path, tmp: Path, **extra: str) -> dict[str, str]:
    drop = {k for k in os.environ if k.startswith(("PREFECT_", "AGVAL_"))}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update({"AGVAL_HOME": str(home), "AGVAL_RESULTS": str(tmp / "results"),
                "AGVAL_SIM_RESULTS": str(tmp / "results-simulated"), "PYTHONPATH": str(ROOT), **extra})
    return env


def _flow_runs(api_url: str):
    from prefect.client.orchestration import PrefectClient

    async def go():
        async with PrefectClient(api_url) as c:
            runs = await c.read_flow_runs()
            flows = {f.id: f.name for f in await c.read_flows()}
            return [(flows.get(r.flow_id), r.name, r.state_type.value if r.state_type else None) for r in runs]

    return asyncio.run(go())


def test_readme_block_is_serve_then_watch_then_revalidate():
    assert [c[1] for c in readme_commands()] == ["serve", "watch", "revalidate"]


@pytest.mark.timeout(300)
def test_readme_serve_watch_revalidate_verbatim(world_dir, tmp_path):
    from deployments.server import stop_group

    t0 = time.monotonic()
    home = tmp_path / "state"
    study = tmp_path / "toy.toml"
    study.write_text(f'[study]\nname = "toy-readme"\nworld = "{world_dir}"\nn_variants = 12\n\n'
                     '[backend]\nkind = "standin"\n')
    cfg = tmp_path / "agval.toml"
    cfg.write_text(f'''
[study_kinds]
toy = "tests.platform.test_revalidation"

[demo]
enabled = true
world = "{world_dir}"
revision = 0

[[backends]]
name = "standin"
kind = "standin"
address = "${{AGVAL_STANDIN_ADDRESS}}"
standin_world = "{world_dir}"
model_versions = ["ALL_FOLDS"]

[watch]
cron = "0 0 1 1 *"

[[studies]]
name = "toy-readme"
kind = "toy"
file = "{study}"
backend = "standin"
''')
    serve_cmd, *later = readme_commands()
    log = open(tmp_path / "serve.log", "wb")
    serve = subprocess.Popen(_agval(serve_cmd), cwd=ROOT, env=_env(home, tmp_path, AGVAL_DEPLOYMENTS_CONFIG=str(cfg)),
                             stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    state_file = home / "serve.json"
    outputs = []
    try:
        deadline = time.monotonic() + 150
        while not state_file.exists():
            assert serve.poll() is None, "serve exited:\n" + (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "serve wrote no state file:\n" + (tmp_path / "serve.log").read_text()
            time.sleep(0.5)
        state = json.loads(state_file.read_text())
        t_served = time.monotonic()
        terminal2 = _env(home, tmp_path)  # nothing exported but the state folder
        for cmd in later:
            p = subprocess.run(_agval(cmd), cwd=tmp_path, env=terminal2, capture_output=True, text=True, timeout=180)
            outputs.append(p)
            assert p.returncode == 0, f"{shlex.join(cmd)} failed:\n{p.stdout}\n{p.stderr}"
            assert "using the running agval serve" in p.stderr and "Traceback" not in p.stderr, p.stderr
        watch_out, reval_out = (json.loads(p.stdout) for p in outputs)
        assert watch_out[0]["backend"] == "standin" and watch_out[0]["new_digest"]
        assert [r["state"] for r in reval_out] == ["COMPLETED"]

        # the Prefect client: the runs are on serve's server, none failed
        api = state["env"]["PREFECT_API_URL"]
        runs = _flow_runs(api)
        names = {f for f, _, s in runs if s == "COMPLETED"}
        assert {"agval-watch-model", "agval-revalidate", "toy-study"} <= names, runs
        assert not [r for r in runs if r[2] in ("FAILED", "CRASHED")], runs

        # the revalidated study's report through the served results URL
        base = state["env"]["AGVAL_RESULTS_URL"]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base)
        folder = Path(reval_out[0]["run_folder"])
        r = httpx.get(f"{base}/simulated/toy-readme/{folder.name}/report.html", timeout=30)
        assert r.status_code == 200 and r.text == (folder / "report.html").read_text()
        assert httpx.get(f"{base}/simulated/../serve.log", timeout=30).status_code == 404
        print(f"\ntimings: serve ready {t_served - t0:.1f}s, watch+revalidate {time.monotonic() - t_served:.1f}s")
    finally:
        stop_group(serve, 30, sig=signal.SIGINT)
        log.close()
    assert not state_file.exists(), "serve removes its state file when it stops"
