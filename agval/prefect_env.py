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

It also makes every child process agval starts die with it (:func:`die_with_parent`):
Prefect's ephemeral server (patched on import by :func:`guard_children`), the stand-ins
(``standins/launch.py``) and ``agval serve``'s server (``deployments/server.py``).
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
    guard_children()  # the ephemeral Prefect server dies with this process, even after kill -9
    return set_now


def using_server() -> bool:
    """True when a Prefect server (PREFECT_API_URL) is configured, not the ephemeral one."""
    return bool(os.environ.get("PREFECT_API_URL"))


# -- child processes never outlive agval -------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_prctl = None


def _load_prctl():
    global _prctl
    if _prctl is None:
        try:
            import ctypes

            _prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):  # not Linux
            _prctl = False
    return _prctl


def die_with_parent(sig: int | None = None):
    """A ``preexec_fn`` for :class:`subprocess.Popen`: the child is sent ``sig`` (default
    SIGKILL) when the process that started it dies, even by ``kill -9`` (Linux
    ``prctl(PR_SET_PDEATHSIG)``; elsewhere it does nothing). If the parent is already gone
    when the child starts, the child exits at once.

    Linux sends the signal when the *thread* that forked the child ends; agval starts its
    children from long-lived threads (the main thread, Prefect's loop threads)."""
    import signal as _signal

    sig = _signal.SIGKILL if sig is None else sig
    prctl = _load_prctl()  # resolved in the parent: nothing to import after fork
    parent = os.getpid()

    def preexec() -> None:
        if prctl:
            prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


class _PopenWithGuard:
    """Stands in for the ``subprocess`` module inside Prefect's ephemeral-server module:
    the same module, except that ``Popen`` children die with agval."""

    def __init__(self, module):
        self._module = module

    def __getattr__(self, name):
        return getattr(self._module, name)

    def Popen(self, *args, **kwargs):  # noqa: N802 - mirrors subprocess.Popen
        kwargs.setdefault("preexec_fn", die_with_parent())
        return self._module.Popen(*args, **kwargs)


def _guard_ephemeral_server(module) -> None:
    import subprocess

    if not isinstance(getattr(module, "subprocess", None), _PopenWithGuard):
        module.subprocess = _PopenWithGuard(subprocess)


_EPHEMERAL_MODULE = "prefect.server.api.server"


class _GuardFinder:
    """Import hook: when Prefect's server module loads, its uvicorn child (the ephemeral
    Prefect server) is started with :func:`die_with_parent`."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != _EPHEMERAL_MODULE:
            return None
        import importlib.machinery

        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        orig_exec = loader.exec_module

        def exec_module(module):
            orig_exec(module)
            _guard_ephemeral_server(module)

        loader.exec_module = exec_module
        return spec


def guard_children() -> None:
    """Make the ephemeral Prefect server (started lazily by Prefect) die with this process."""
    import sys

    mod = sys.modules.get(_EPHEMERAL_MODULE)
    if mod is not None:
        _guard_ephemeral_server(mod)
    elif not any(isinstance(f, _GuardFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _GuardFinder())
