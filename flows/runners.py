"""Task runner selection: threads by default, a Dask cluster when configured.

:func:`task_runner_from_config` returns

* ``ThreadPoolTaskRunner(max_workers)`` for ``kind="thread"`` (the default), never
  unbounded: :data:`DEFAULT_THREAD_WORKERS` when no limit is configured (the scoring
  fan-out bounds itself too: see ``tasks.scoring``);
* ``prefect_dask.DaskTaskRunner(address=...)`` for ``kind="dask"`` with the address of an
  existing cluster (``tcp://host:8786``);
* ``prefect_dask.DaskTaskRunner`` over a **local** cluster (``n_workers``,
  ``threads_per_worker``, ``processes``; dashboard on a free port) otherwise.

:func:`task_runner_from_env` reads the same settings from ``AGVAL_TASK_RUNNER``
(``thread``/``dask``), ``AGVAL_DASK_ADDRESS``, ``AGVAL_DASK_WORKERS``,
``AGVAL_DASK_THREADS_PER_WORKER``, ``AGVAL_DASK_PROCESSES`` (``1``/``0``) and
``AGVAL_THREAD_WORKERS``; ``agval serve`` exports them from the ``[runner]`` section so a
flow decorated with ``@flow(task_runner=task_runner_from_env())`` follows the config
when a deployment re-imports it.

Scores are identical on every runner: each chunk task rebuilds its backend from a plain
spec (:func:`agval.scoring.make_backend`) and results are assembled in chunk order.
With ``processes=True`` the Dask workers are separate processes: export
``PREFECT_API_URL`` (a running server) first, or each worker starts its own temporary
Prefect server (20-45 s; docs PREFECT.md section 3). The AlphaGenome quota is shared
across workers with a Prefect global rate limit (``rate_limit_name`` of
``tasks.scoring.score_variants``) when a server is present.
"""

from __future__ import annotations

import os
from typing import Any

from agval import prefect_env as _prefect_env

_prefect_env.configure()


#: task threads of the default runner when ``[runner] max_workers`` is not set
DEFAULT_THREAD_WORKERS = 8


def task_runner_from_config(kind: str = "thread", *, max_workers: int | None = None, address: str | None = None,
                            n_workers: int = 2, threads_per_worker: int = 1, processes: bool = True,
                            cluster_kwargs: dict[str, Any] | None = None):
    """A Prefect task runner (see the module docstring)."""
    if kind in (None, "", "thread", "threads", "default"):
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=max_workers or DEFAULT_THREAD_WORKERS)
    if kind != "dask":
        from agval.errors import ConfigError

        raise ConfigError(f"unknown task runner {kind!r}; use 'thread' or 'dask'")
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    kw = {"n_workers": n_workers, "threads_per_worker": threads_per_worker, "processes": processes,
          "dashboard_address": ":0"}
    kw.update(cluster_kwargs or {})
    return DaskTaskRunner(cluster_kwargs=kw)


def runner_settings_from_env(environ: dict[str, str] | None = None) -> dict[str, Any]:
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {"kind": env.get("AGVAL_TASK_RUNNER", "thread") or "thread"}
    if env.get("AGVAL_THREAD_WORKERS"):
        out["max_workers"] = int(env["AGVAL_THREAD_WORKERS"])
    if env.get("AGVAL_DASK_ADDRESS"):
        out["address"] = env["AGVAL_DASK_ADDRESS"]
    if env.get("AGVAL_DASK_WORKERS"):
        out["n_workers"] = int(env["AGVAL_DASK_WORKERS"])
    if env.get("AGVAL_DASK_THREADS_PER_WORKER"):
        out["threads_per_worker"] = int(env["AGVAL_DASK_THREADS_PER_WORKER"])
    if env.get("AGVAL_DASK_PROCESSES"):
        out["processes"] = env["AGVAL_DASK_PROCESSES"].lower() not in ("0", "false", "no")
    return out


def task_runner_from_env(environ: dict[str, str] | None = None):
    """:func:`task_runner_from_config` with the ``AGVAL_*`` variables (threads when unset)."""
    return task_runner_from_config(**runner_settings_from_env(environ))


def runner_env(section) -> dict[str, str]:
    """The ``AGVAL_*`` variables for a ``[runner]`` config section (deployments/config.py)."""
    env = {"AGVAL_TASK_RUNNER": section.kind}
    if section.max_workers:
        env["AGVAL_THREAD_WORKERS"] = str(section.max_workers)
    if section.kind == "dask":
        if section.address:
            env["AGVAL_DASK_ADDRESS"] = section.address
        env["AGVAL_DASK_WORKERS"] = str(section.n_workers)
        env["AGVAL_DASK_THREADS_PER_WORKER"] = str(section.threads_per_worker)
        env["AGVAL_DASK_PROCESSES"] = "1" if section.processes else "0"
    return env
