"""Re-validation flows: ``watch_model``, ``revalidate`` and ``compare``.

* :func:`watch_model` (scheduled): fingerprints every configured backend x model version
  (``[[backends]]`` of ``deployments/agval.toml``), compares it with the baseline in the
  fingerprint store and, on a material change, emits the Prefect event
  ``agval.model.changed`` on resource ``agval.model.<backend>.<model_version>`` with
  payload ``backend, model_version, old_digest, new_digest, differed`` (a list from
  ``sdk, proto, metadata, canary, model_version, other``) and ``details``.
* :func:`revalidate` (deployed with a trigger on that event; ``agval revalidate`` by
  hand): runs every study of the config against the current model as subflows and
  appends their metrics to the history table.
* :func:`compare` (``agval compare``): the comparison report folder between two model
  fingerprints, two backends or two run folders (paired bootstrap CIs, metric history
  plots, an index of every run's report).

All three persist their result under ``<state>/prefect-results`` (``persist_result=True``
on the decorator itself), so ``run_deployment(...).state.result()`` works for a caller
sharing agval's state folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from agval.serving import results_url
from flows._common import RESULT_STORAGE, run_name, standin_address

EVENT = "agval.model.changed"


def resource_id(backend: str, model_version: str) -> str:
    return f"agval.model.{backend}.{model_version}"


def _kind_of_flow() -> dict[str, str]:
    from flows import registry

    out = {}
    for kind in registry.available():
        out[registry.study_module(kind).FLOW.name] = kind
    return out


# -- watch_model -------------------------------------------------------------------------

@task(name="fingerprint-model", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE, persist_result=False,
      task_run_name="fingerprint-{backend}-{model_version}")
def fingerprint_task(backend: str, model_version: str, kind: str, address: str | None, standin_world: str | None,
                     precomputed: str | None, canary: list[str] | None) -> dict[str, Any]:
    from agval.revalidation.watch import fingerprint_now

    with standin_address(kind, address, standin_world) as address:
        return fingerprint_now(kind, address=address, model_version=model_version, standin_world=standin_world,
                               precomputed=precomputed, canary=canary)


def emit_model_changed(backend: str, model_version: str, report: dict[str, Any]):
    from prefect.events import emit_event

    return emit_event(
        event=EVENT,
        resource={"prefect.resource.id": resource_id(backend, model_version),
                  "prefect.resource.name": f"{backend} {model_version}",
                  "agval.backend": backend, "agval.model_version": model_version},
        payload={"backend": backend, "model_version": model_version, "old_digest": report["old_digest"],
                 "new_digest": report["new_digest"], "differed": report["parts"], "details": report["details"]})


@flow(name="agval-watch-model", flow_run_name=run_name("watch-model"),
      persist_result=True, result_storage=RESULT_STORAGE, log_prints=True)
def watch_model(config: str | None = None, backends: list[str] | None = None, emit: bool = True) -> dict[str, Any]:
    """Fingerprint each configured backend and model version; on a change emit
    ``agval.model.changed`` and record the new fingerprint as the baseline."""
    from agval.revalidation.store import FingerprintStore
    from flows.deployconfig import load_config, validate

    log = get_run_logger()
    cfg = load_config(config)
    validate(cfg, check_api=False, check_files=False, check_modules=False)
    store = FingerprintStore()
    entries = [e for e in cfg.watched() if not backends or e.name in backends]
    checks = []
    for e in entries:
        for mv in e.model_versions:
            fp = fingerprint_task(e.name, mv, e.kind, e.address, e.standin_world, e.precomputed, e.canary)
            rep = store.check(e.name, mv, fp, atol=cfg.watch.atol, rtol=cfg.watch.rtol).to_dict()
            row = {"backend": e.name, "model_version": mv, "resource": resource_id(e.name, mv),
                   "simulated": bool(fp.get("simulated")), **rep, "event": None}
            if rep["material"] and emit:
                ev = emit_model_changed(e.name, mv, rep)
                row["event"] = str(ev.id) if ev is not None else None
                log.warning("model changed: %s %s: %s -> %s (%s)", e.name, mv, str(rep["old_digest"])[:12],
                            str(rep["new_digest"])[:12], ", ".join(rep["parts"]))
            else:
                log.info("%s %s: %s", e.name, mv, "first fingerprint recorded" if rep["first_seen"] else
                         ("unchanged" if not rep["material"] else "changed (event not emitted)"))
            checks.append(row)
    create_table_artifact(key="agval-watch-model", description="model fingerprint checks", table=[
        {"backend": c["backend"], "model_version": c["model_version"], "digest": str(c["new_digest"])[:16],
         "previous": str(c["old_digest"] or "")[:16], "changed": c["material"], "differed": ", ".join(c["parts"])}
        for c in checks] or [{"backend": "-", "model_version": "-", "digest": "-", "previous": "-",
                              "changed": False, "differed": "no backends configured"}])
    return {"checks": checks, "changed": [c["resource"] for c in checks if c["material"]]}


# -- revalidate --------------------------------------------------------------------------

def _selected(cfg, entry, backend: str | None, model_version: str | None, studies: list[str] | None) -> bool:
    if not entry.enabled:
        return False
    if studies and entry.name not in studies and entry.kind not in studies:
        return False
    if backend and entry.backend and entry.backend != backend:
        return False
    if model_version and entry.backend:
        mv = entry.model_version or (cfg.backend(entry.backend).model_versions or [None])[0]
        if mv and mv != model_version:
            return False
    return True


def _run_entry(cfg, entry, *, reason: str, flow_run_id: str | None, log) -> list[dict[str, Any]]:
    """Run one [[studies]] entry (every file of it) as subflows; append each run to the history."""
    from agval.revalidation.history import append_run
    from flows.deployconfig import apply_parameters, study_files, study_overrides
    from flows import registry
    from flows.runners import task_runner_from_config

    mod = registry.study_module(entry.kind)
    b_over, l_over = study_overrides(cfg, entry)
    fl = mod.FLOW
    if cfg.runner.kind == "dask":
        fl = fl.with_options(task_runner=task_runner_from_config(**cfg.runner.model_dump()))
    out = []
    for f in study_files(entry):
        kwargs = apply_parameters(registry.load(entry.kind, f, backend=b_over, lookup=l_over), entry.parameters)
        state = fl(**kwargs, return_state=True)
        item = {"name": entry.name, "kind": entry.kind, "study_file": str(f), "state": state.type.value}
        if state.is_completed():
            res = state.result()
            folder = res["run_folder"]
            digest, version = _model_of(kwargs.get("backend"), folder, log)
            n = append_run(folder, study_kind=entry.kind, study_file=str(f), flow_run_id=flow_run_id, trigger=reason,
                           model_fingerprint=digest, model_version=version)
            item.update(run_folder=str(folder), history_rows=n, headline=res.get("headline"),
                        simulated=res.get("simulated"), ok=True)
            log.info("%s (%s): %s, %d history rows", entry.name, f.name, folder, n)
        else:
            item.update(message=state.message, ok=False)
            log.error("%s (%s) failed: %s", entry.name, f.name, state.message)
        out.append(item)
    return out


def _model_of(backend_cfg, folder, log) -> tuple[str | None, str | None]:
    """The model fingerprint of a run whose manifest does not record it (e.g. a flow that
    never called ``set_model``): the fingerprint of the study's backend, now (the same
    memoised fingerprint the scoring engine used in this process)."""
    import json

    man = json.loads((Path(folder) / "manifest.json").read_text())
    if (man.get("model") or {}).get("fingerprint_digest") or backend_cfg is None:
        return None, None
    from flows._common import backend_spec

    try:
        from agval.scoring import make_backend

        b = make_backend(backend_spec(backend_cfg))
        log.warning("%s records no model fingerprint; using the backend's current one", folder)
        return b.fingerprint()["digest"], b.model_version_name
    except Exception as e:  # noqa: BLE001 - history without a digest rather than no history
        log.warning("no model fingerprint for %s: %s", folder, e)
        return None, None


def _raise_failed(results: list[dict[str, Any]]) -> None:
    failed = [r for r in results if not r.get("ok")]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(results)} study runs failed: "
                           + "; ".join(f"{x['name']}: {x.get('message')}" for x in failed))


@flow(name="agval-revalidate", flow_run_name=run_name("revalidate"),
      persist_result=True, result_storage=RESULT_STORAGE, log_prints=True)
def revalidate(config: str | None = None, studies: list[str] | None = None, backend: str | None = None,
               model_version: str | None = None, reason: str = "manual", new_digest: str | None = None) -> dict[str, Any]:
    """Run every study of the config against the current model; append their metrics to
    the history. ``backend`` / ``model_version`` (set by the ``agval.model.changed``
    trigger) restrict it to the studies bound to that backend (and those bound to none)."""
    from prefect.runtime import flow_run

    from agval.revalidation.history import sync_history
    from flows.deployconfig import load_config, validate

    log = get_run_logger()
    cfg = load_config(config)
    validate(cfg, check_api=False)
    backend = backend or None
    model_version = model_version or None
    results: list[dict[str, Any]] = []
    for entry in cfg.studies:
        if _selected(cfg, entry, backend, model_version, studies):
            results.extend(_run_entry(cfg, entry, reason=reason, flow_run_id=str(flow_run.id), log=log))
    synced = sync_history(kind_of_flow=_kind_of_flow())
    from agval.revalidation.history import read_history
    from agval.revalidation.report import refresh_indexes

    indexes = refresh_indexes(read_history())
    create_table_artifact(key="agval-revalidate", description=f"re-validation ({reason})", table=[
        {k: str(r.get(k)) for k in ("name", "kind", "state", "run_folder", "history_rows")} for r in results]
        or [{"name": "-", "kind": "-", "state": "no study selected"}])
    _raise_failed(results)
    return {"reason": reason, "backend": backend, "model_version": model_version, "new_digest": new_digest,
            "studies": results, "synced_rows": synced, "indexes": [str(p) for p in indexes]}


@flow(name="agval-study", flow_run_name=run_name("study"),
      persist_result=True, result_storage=RESULT_STORAGE, log_prints=True)
def run_study(name: str, config: str | None = None) -> dict[str, Any]:
    """Run the ``[[studies]]`` entry ``name`` of the config (study file read at run time)
    and append it to the history. prefect.yaml deploys studies through this flow."""
    from prefect.runtime import flow_run

    from agval.errors import ConfigError
    from flows.deployconfig import load_config, validate

    cfg = load_config(config)
    validate(cfg, check_api=False)
    entries = [s for s in cfg.studies if s.name == name]
    if not entries:
        raise ConfigError(f"{cfg.path}: no [[studies]] entry named {name!r}; have {[s.name for s in cfg.studies]}")
    results = _run_entry(cfg, entries[0], reason="study", flow_run_id=str(flow_run.id), log=get_run_logger())
    _raise_failed(results)
    return {"name": name, "studies": results}


# -- compare -----------------------------------------------------------------------------

def _register_config_kinds(config: str | None, log) -> None:
    """Study kinds a config adds through ``[study_kinds]`` (read alone: the rest of the
    config, e.g. an unset ${AGVAL_STANDIN_ADDRESS}, does not matter to compare)."""
    import tomllib

    from flows.deployconfig import config_path
    from flows import registry

    p = config_path(config)
    try:
        kinds = tomllib.loads(p.read_text()).get("study_kinds") or {}
    except (OSError, tomllib.TOMLDecodeError) as e:
        log.warning("deployments config %s not read for study kinds: %s", p, e)
        return
    for kind, module in kinds.items():
        registry.STUDIES.setdefault(kind, module)


@flow(name="agval-compare", flow_run_name=run_name("compare"),
      persist_result=True, result_storage=RESULT_STORAGE, log_prints=True)
def compare(a: str | None = None, b: str | None = None, studies: list[str] | None = None,
            n_boot: int = 2000, seed: int = 0, config: str | None = None) -> dict[str, Any]:
    """Compare two model fingerprints, two backends or two run folders (``a`` vs ``b``;
    both empty = the two most recent fingerprints in the history) and write the report.
    ``config``: the deployments config (only its ``[study_kinds]`` are used)."""
    from agval.revalidation.compare import specs_for
    from agval.revalidation.history import read_history, sync_history
    from agval.revalidation.report import build_comparison
    from agval.revalidation.store import FingerprintStore
    from agval.report import df_to_markdown
    from flows import registry

    import polars as pl

    log = get_run_logger()
    _register_config_kinds(config, log)
    sync_history(kind_of_flow=_kind_of_flow())
    history = read_history()
    store = FingerprintStore()

    def lookup(digest: str):
        try:
            return store.get(digest)
        except ValueError:
            return None

    def specs(kind):
        mod = None
        if kind in registry.STUDIES:
            try:
                mod = registry.study_module(kind)
            except Exception:  # noqa: BLE001
                mod = None
        return specs_for(kind or "", mod)

    res = build_comparison(history, a or None, b or None, specs_for=specs, n_boot=n_boot, seed=seed,
                           fingerprint_lookup=lookup, studies=studies)
    from agval.revalidation.report import refresh_indexes

    res["indexes"] = [str(p) for p in refresh_indexes(history)]
    log.info("comparison report: %s; leaderboard: %s", res["report"], res["leaderboard"])
    create_link_artifact(key="agval-compare-report", link=results_url(res["report"]),
                         link_text="agval comparison report")
    create_link_artifact(key="agval-leaderboard", link=results_url(res["leaderboard"]),
                         link_text="agval leaderboard (studies x models x versions)")
    table = pl.DataFrame(res["comparison"]) if res["comparison"] else None
    md = [f"# agval comparison\n\nA: `{res['side_a']}`  \nB: `{res['side_b']}`\n",
          f"Report folder: `{res['report_folder']}`\n"]
    if table is not None and table.height:
        cols = [c for c in ("study", "metric", "estimate_a", "estimate_b", "difference", "ci_low", "ci_high", "n")
                if c in table.columns]
        md.append(df_to_markdown(table.select(cols)))
    create_markdown_artifact(key="agval-compare-summary", markdown="\n".join(md))
    return res
