"""Build every deployment from the config and serve them (``prefect.serve``), or write
the equivalent ``prefect.yaml`` for a ``process`` work pool.

Deployments (flow name / deployment name):

* ``<study flow>/<study name>``: every ``[[studies]]`` entry (one per file of a glob), the
  study flow itself with the study file's parameters (the UI shows them as a form) and
  the entry's cron;
* ``agval-watch-model/watch``: ``[watch] cron``;
* ``agval-revalidate/revalidate``: a ``DeploymentEventTrigger`` on ``agval.model.changed``
  (resource ``agval.model.*``) passing the event's backend, model version and new digest;
  plus ``[revalidate] cron`` if set;
* ``agval-compare/compare``: ``[compare] cron`` if set.

Run as a process: ``python -m deployments.serve [--config FILE]`` (validates the
config first; ``PREFECT_API_URL`` must point at a running server, see
``deployments/server.py`` or ``agval serve``). ``--write-yaml FILE`` writes the
prefect.yaml instead (studies deployed through the ``agval-study`` flow, which reads
the study file at run time, so the file does not depend on this machine's paths).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from agval import prefect_env as _prefect_env

_prefect_env.configure()

WATCH = "watch"
REVALIDATE = "revalidate"
COMPARE = "compare"


def _schedules(cron: str, timezone: str):
    if not cron:
        return None
    from prefect.schedules import Cron

    return [Cron(cron, timezone=timezone)]


def model_changed_trigger(config_path: str | None):
    from prefect.events import DeploymentEventTrigger

    from flows.revalidate import EVENT

    params = {"reason": "model-changed", "backend": "{{ event.payload.backend }}",
              "model_version": "{{ event.payload.model_version }}", "new_digest": "{{ event.payload.new_digest }}"}
    if config_path:
        params["config"] = config_path
    return DeploymentEventTrigger(name="agval-model-changed", description="re-validate when a model fingerprint changes",
                                  expect={EVENT}, match={"prefect.resource.id": "agval.model.*"}, parameters=params)


def build_deployments(cfg) -> list[Any]:
    """RunnerDeployments for everything in the (validated) config."""
    from deployments.config import deployment_name, study_files, study_parameters
    from flows import registry
    from flows.revalidate import compare, revalidate, watch_model

    deps = []
    for entry in cfg.studies:
        if not entry.enabled:
            continue
        fl = registry.study_module(entry.kind).FLOW
        files = study_files(entry)
        for f in files:
            deps.append(fl.to_deployment(
                name=deployment_name(entry, f, len(files)), schedules=_schedules(entry.cron, entry.timezone),
                parameters=study_parameters(cfg, entry, f), tags=["agval", "study", entry.kind],
                description=f"{entry.kind} study {entry.name} from {f}"))
    deps.append(watch_model.to_deployment(
        name=WATCH, schedules=_schedules(cfg.watch.cron, cfg.watch.timezone), parameters={"config": cfg.path},
        tags=["agval", "model"], description="fingerprint the configured models; emit agval.model.changed on a change"))
    deps.append(revalidate.to_deployment(
        name=REVALIDATE, schedules=_schedules(cfg.revalidate.cron, cfg.revalidate.timezone),
        parameters={"config": cfg.path}, triggers=[model_changed_trigger(cfg.path)], tags=["agval", "model"],
        description="re-run every configured study against the current model (triggered by agval.model.changed)"))
    deps.append(compare.to_deployment(
        name=COMPARE, schedules=_schedules(cfg.compare.cron, cfg.compare.timezone),
        parameters={"n_boot": cfg.compare.n_boot, "seed": cfg.compare.seed, "config": cfg.path},
        tags=["agval", "model"],
        description="compare the two latest model fingerprints (or any two sides) with paired bootstrap CIs"))
    return deps


def ensure_rate_limit(quota) -> None:
    """Create (or update) the Prefect global concurrency limit of the ``[quota]`` section."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(quota.name)
            client.update_global_concurrency_limit(quota.name, GlobalConcurrencyLimitUpdate(
                limit=quota.limit, slot_decay_per_second=quota.slot_decay_per_second, active=True))
        except ObjectNotFound:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(
                name=quota.name, limit=quota.limit, slot_decay_per_second=quota.slot_decay_per_second))


def serve_config(config: str | Path | None = None, *, limit: int | None = None) -> None:
    """Validate the config, then serve every deployment (blocks until interrupted)."""
    from prefect import serve

    from deployments.config import load_and_validate
    from flows.runners import runner_env

    cfg = load_and_validate(config, check_api=True)
    if not os.environ.get("PREFECT_API_URL"):
        from agval.errors import ConfigError

        raise ConfigError("PREFECT_API_URL is not set: serve needs a running Prefect server for schedules and "
                          "triggers (use `agval serve`, which starts one)")
    os.environ.update(runner_env(cfg.runner))
    if cfg.quota is not None:
        ensure_rate_limit(cfg.quota)
        os.environ["AGVAL_RATE_LIMIT_NAME"] = cfg.quota.name
        print(f"global rate limit {cfg.quota.name!r}: {cfg.quota.limit} slots, "
              f"{cfg.quota.slot_decay_per_second}/s", flush=True)
    deps = build_deployments(cfg)
    print(f"serving {len(deps)} deployments from {cfg.path}:", flush=True)
    for d in deps:
        sched = ", ".join(str(getattr(s.schedule, 'cron', '')) for s in (d.schedules or [])) or "-"
        print(f"  {d.flow_name}/{d.name}  schedule: {sched}", flush=True)
    serve(*deps, limit=limit, print_starting_message=False)


# -- the demo ----------------------------------------------------------------------------

def prepare_demo(cfg, *, revision: int | None = None, log=print):
    """Build the demo world (if absent), write the demo study files the config's globs
    point at (if absent), start the stand-in AlphaGenome service (SIMULATED) and return
    ``(env, service)``: ``env`` holds ``AGVAL_STANDIN_ADDRESS``; stop ``service`` at the end."""
    import importlib

    from agval.paths import state_dir
    from standins.launch import start_service
    from standins.world import build_world, is_world_dir

    world = Path(cfg.demo.world)
    if not is_world_dir(world):
        log(f"building the synthetic world in {world} (SIMULATED) ...")
        build_world(world, seed=cfg.demo.seed, size=cfg.demo.size)
    for entry in cfg.studies:
        if not entry.enabled:
            continue
        out = Path(entry.file).parent if any(ch in entry.file for ch in "*?[") else None
        if out is None or any(out.glob("*.toml")):
            continue
        try:
            gen = importlib.import_module(f"standins.world.studies.{entry.kind}")
        except ModuleNotFoundError as e:
            if not (e.name or "").startswith("standins.world.studies"):
                raise
            log(f"no demo generator for study kind {entry.kind!r}; {entry.name} needs its own study file")
            continue
        log(f"writing demo {entry.kind} study files to {out} ...")
        gen.generate(str(world), out, seed=0)
    rev = cfg.demo.revision if revision is None else revision
    svc = start_service("alphagenome", world, "--revision", str(rev), log_dir=state_dir() / "demo" / "logs")
    log(f"stand-in AlphaGenome (SIMULATED, revision {rev}) on {svc.address}")
    return {"AGVAL_STANDIN_ADDRESS": svc.address}, svc


# -- prefect.yaml ------------------------------------------------------------------------

def prefect_yaml(cfg) -> dict[str, Any]:
    """The prefect.yaml content for ``prefect deploy --all`` on the config's process pool."""
    from importlib.metadata import version

    pool = {"name": cfg.prefect.work_pool}

    def sched(cron, tz):
        return [{"cron": cron, "timezone": tz}] if cron else []

    deployments = []
    for entry in cfg.studies:
        if not entry.enabled:
            continue
        deployments.append({
            "name": entry.name, "entrypoint": "flows/revalidate.py:run_study",
            "description": f"{entry.kind} study {entry.name} (deployments/agval.toml), appended to the history",
            "parameters": {"name": entry.name}, "schedules": sched(entry.cron, entry.timezone),
            "tags": ["agval", "study", entry.kind], "work_pool": dict(pool)})
    deployments.append({"name": WATCH, "entrypoint": "flows/revalidate.py:watch_model", "parameters": {},
                        "schedules": sched(cfg.watch.cron, cfg.watch.timezone), "tags": ["agval", "model"],
                        "work_pool": dict(pool)})
    deployments.append({"name": REVALIDATE, "entrypoint": "flows/revalidate.py:revalidate", "parameters": {},
                        "schedules": sched(cfg.revalidate.cron, cfg.revalidate.timezone), "tags": ["agval", "model"],
                        "work_pool": dict(pool),
                        "triggers": [{"type": "event", "enabled": True, "name": "agval-model-changed",
                                      "match": {"prefect.resource.id": "agval.model.*"},
                                      "expect": ["agval.model.changed"],
                                      "parameters": {"reason": "model-changed",
                                                     "backend": "{{ event.payload.backend }}",
                                                     "model_version": "{{ event.payload.model_version }}",
                                                     "new_digest": "{{ event.payload.new_digest }}"}}]})
    deployments.append({"name": COMPARE, "entrypoint": "flows/revalidate.py:compare",
                        "parameters": {"n_boot": cfg.compare.n_boot, "seed": cfg.compare.seed},
                        "schedules": sched(cfg.compare.cron, cfg.compare.timezone), "tags": ["agval", "model"],
                        "work_pool": dict(pool)})
    return {"name": "agval", "prefect-version": version("prefect"), "deployments": deployments}


YAML_HEADER = """\
# Generated by `agval prefect-yaml` from deployments/agval.toml: regenerate after editing the config.
# From the project root (so the worker runs flows from this folder):
#   prefect work-pool create {pool} --type process
#   prefect deploy --all --prefect-file <this file>   (deployments/prefect.yaml, or ./prefect.yaml)
#   prefect worker start --pool {pool}
# Study deployments run the `agval-study` flow, which reads the [[studies]] entry and its study file at run
# time (the flows read deployments/agval.toml, or $AGVAL_DEPLOYMENTS_CONFIG).
"""


def render_prefect_yaml(cfg) -> str:
    import yaml

    return YAML_HEADER.format(pool=cfg.prefect.work_pool) + yaml.safe_dump(prefect_yaml(cfg), sort_keys=False,
                                                                            width=120)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m deployments.serve", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=None, help="deployments config (default deployments/agval.toml)")
    ap.add_argument("--limit", type=int, default=None, help="max concurrent flow runs")
    ap.add_argument("--write-yaml", default=None, help="write prefect.yaml to this path and exit")
    args = ap.parse_args(argv)
    from agval.errors import ConfigError

    try:
        if args.write_yaml:
            from deployments.config import load_config, validate

            cfg = load_config(args.config)
            validate(cfg, check_api=False, check_files=False, check_modules=False)
            Path(args.write_yaml).write_text(render_prefect_yaml(cfg))
            return 0
        serve_config(args.config, limit=args.limit)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
