"""Shared test setup.

* Environment: agval state and results go to a per-session temporary folder; Prefect
  runs offline on embedded defaults.
* ``prefect_api``: a session-scoped Prefect API for tests that run flows. It reuses a
  running server when ``PREFECT_API_URL`` is set, otherwise starts one subprocess
  server on a temporary SQLite DB. Heartbeats are off (1 s per flow otherwise), and the
  log/event workers are drained before the server stops (else exit hangs ~70 s).
"""

from __future__ import annotations

import importlib
import os
import tempfile
from pathlib import Path

import pytest

from agval import prefect_env

_SESSION_TMP = Path(tempfile.mkdtemp(prefix="agval-tests-"))
os.environ.setdefault("AGVAL_HOME", str(_SESSION_TMP / "state"))
os.environ.setdefault("AGVAL_RESULTS", str(_SESSION_TMP / "results"))
os.environ.setdefault("AGVAL_SIM_RESULTS", str(_SESSION_TMP / "results-simulated"))
os.environ.setdefault("PREFECT_HOME", str(_SESSION_TMP / "prefect"))

prefect_env.configure()
# Prefect configures logging (console handlers bound to the current sys.stderr) the first time
# its main module is imported. Do it now, against pytest's session-long capture, so that a
# test invoking the CLI through typer's CliRunner (which swaps sys.stderr for a buffer it
# closes afterwards) cannot leave Prefect's console handlers writing to a closed stream.
importlib.import_module("prefect.main")

pytest_plugins = ["tests.fixtures_world", "tests.fixtures_alphagenome", "tests.fixtures_myvariant"]

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the project; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def prefect_api():
    from prefect.settings import (PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
                                  PREFECT_SERVER_DATABASE_CONNECTION_URL, temporary_settings)

    if os.environ.get("PREFECT_API_URL"):
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield os.environ["PREFECT_API_URL"]
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.server.api.server import SubprocessASGIServer

    db = _SESSION_TMP / "prefect-test.db"
    with temporary_settings(updates={PREFECT_SERVER_DATABASE_CONNECTION_URL: f"sqlite+aiosqlite:///{db}"}):
        server = SubprocessASGIServer()
        server.start(timeout=180)
        try:
            with temporary_settings(updates={PREFECT_API_URL: server.api_url,
                                             PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
                yield server.api_url
                APILogWorker.drain_all()
                EventsWorker.drain_all()
        finally:
            server.stop()
