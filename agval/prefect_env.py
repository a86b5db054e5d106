"""Prefect on embedded defaults, offline.

Call :func:`configure` before ``import prefect`` (the CLI, the flows package and the
tests do). It only sets variables the user has not set:

* ``PREFECT_HOME`` inside agval's state folder (not ``~/.prefect``);
* server analytics and client telemetry off (no network here; they log errors);
* an ephemeral-server startup timeout that survives a cold SQLite database on two
  busy cores (measured 12-17 s; Prefect's default is 20 s);
* logging: Prefect's own client/internal loggers stay at WARNING, but every flow and
  task run logger is at INFO, and the ``agval`` logger (every library module logs under
  it) is an *extra logger* of Prefect's: its INFO records (each step's counts, progress,
  the report path) reach the run's Logs tab through Prefect's API log handler and the
  console. Outside a flow run they only go to the console (no "missing flow run"
  warning). Secret redaction (:mod:`agval.secrets`) applies to every record.

A user who exported ``PREFECT_API_URL`` (a running Prefect server) keeps it, and
agval uses that server instead of an ephemeral one.
"""

from __future__ import annotations

import os

LOGGER = "agval"
"""The library's logger name (modules log under ``agval.<module>``)."""

DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL": "INFO",
    "PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL": "INFO",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "agval",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    "PREFECT_RUNNER_POLL_FREQUENCY": "2",
    "DASK_DISTRIBUTED__LOGGING__DISTRIBUTED": "warning",
}


def configure() -> dict[str, str]:
    """Set agval's Prefect defaults in ``os.environ``; returns what it set."""
    from agval.paths import state_dir

    set_now: dict[str, str] = {}
    if not os.environ.get("PREFECT_HOME"):
        set_now["PREFECT_HOME"] = str(state_dir() / "prefect")
    if not os.environ.get("DASK_TEMPORARY_DIRECTORY"):
        set_now["DASK_TEMPORARY_DIRECTORY"] = str(state_dir() / "dask-tmp")
    for k, v in DEFAULTS.items():
        if k not in os.environ:
            set_now[k] = v
    os.environ.update(set_now)
    import logging

    lib = logging.getLogger(LOGGER)
    if lib.level == logging.NOTSET:
        lib.setLevel(logging.INFO)  # agval's progress lines are INFO; the root logger would drop them
    from agval.secrets import install_record_factory

    install_record_factory()  # redact the API key in every log record, Prefect's included
    return set_now


def using_server() -> bool:
    """True when a Prefect server (PREFECT_API_URL) is configured, not the ephemeral one."""
    return bool(os.environ.get("PREFECT_API_URL"))
