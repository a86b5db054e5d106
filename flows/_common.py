"""Plumbing every study flow shares: backends and allele sources from configuration, and
the run record. Flows read like methods sections; this is what they do not spell out.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

from pydantic import BaseModel

from agval.config import DEFAULT_MYVARIANT_URL, BackendConfig, LookupConfig
from agval.errors import ConfigError
from agval.paths import state_dir
from agval.runs import RunRecord


def backend_spec(cfg: BackendConfig, address: str | None = None) -> dict[str, Any]:
    """A plain, picklable spec for :func:`agval.scoring.make_backend` (Dask workers rebuild
    the backend from it; the API key is never part of it)."""
    addr = address or cfg.address
    spec = _backend_spec(cfg, addr)
    spec["max_attempts"] = cfg.max_attempts  # [backend] max_attempts: the backend's retry policy
    if cfg.max_new_calls is not None:  # the quota budget, read by tasks.scoring.score_variants
        spec["max_new_calls"] = cfg.max_new_calls
    if cfg.dry_run:
        spec["dry_run"] = True
    if cfg.isolation != "none":  # [backend] isolation = "process": crashes cost one variant
        spec["isolation"] = cfg.isolation
        spec["isolation_workers"] = cfg.isolation_workers
    return spec


def _backend_spec(cfg: BackendConfig, addr: str | None) -> dict[str, Any]:
    if cfg.kind in ("alphagenome", "standin"):
        if cfg.kind == "standin" and not addr:
            raise ConfigError("backend kind 'standin' needs an address or standin_world")
        spec = {"kind": "alphagenome", "address": addr, "model_version": cfg.model_version,
                "deadline_s": cfg.deadline_s}
        if cfg.standin_world:
            spec["world_dir"] = cfg.standin_world  # the stand-in world's canary panel
        return spec
    if cfg.kind == "atlas":
        fallback = {"kind": "alphagenome", "address": cfg.address, "model_version": cfg.model_version,
                    "deadline_s": cfg.deadline_s, "max_attempts": cfg.max_attempts}
        return {"kind": "atlas", "address": addr, "fallback": fallback}
    if cfg.kind == "precomputed":
        if not cfg.precomputed:
            raise ConfigError("backend kind 'precomputed' needs 'precomputed' (a parquet/CSV of scores)")
        return {"kind": "precomputed", "table": cfg.precomputed}
    raise ConfigError(f"unknown backend kind {cfg.kind!r}")


@contextlib.contextmanager
def standin_address(kind: str, address: str | None, standin_world: str | None) -> Iterator[str | None]:
    """Yield the backend's address. ``kind='standin'`` without an address starts an
    in-process AlphaGenome stand-in over ``standin_world`` for the duration of the block
    (simulated) and yields its address. The one place flows start a scoring stand-in: the
    library (:mod:`agval`) never imports :mod:`standins`."""
    if kind != "standin" or address:
        yield address
        return
    if not standin_world:
        raise ConfigError("backend kind 'standin' needs an address or standin_world")
    from standins.alphagenome import serve

    handle = serve(standin_world, port=0)
    try:
        yield handle.address
    finally:
        handle.stop()


@contextlib.contextmanager
def backend_session(cfg: BackendConfig) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Yield ``(backend, spec)``. ``kind='standin'`` without an address starts an in-process
    stand-in over ``standin_world`` for the duration of the block (simulated)."""
    from agval.scoring import make_backend

    with standin_address(cfg.kind, cfg.address, cfg.standin_world) as address:
        spec = backend_spec(cfg, address)
        yield make_backend(spec), spec


def lookup_spec(cfg: LookupConfig) -> dict[str, Any]:
    """A plain spec for :func:`tasks.alleles.source_from_spec`."""
    if cfg.source == "vcf":
        if not cfg.vcf:
            raise ConfigError("lookup source 'vcf' needs 'vcf' (a dbSNP-style VCF)")
        return {"kind": "vcf", "path": cfg.vcf}
    return {"kind": "myvariant", "base_url": cfg.base_url, "pace": 1.0 / cfg.requests_per_second}


@contextlib.contextmanager
def lookup_session(lookup: LookupConfig, backend: BackendConfig, simulated: bool) -> Iterator[tuple[dict, str]]:
    """Yield ``(allele source spec, description)``.

    A simulated run whose lookup still points at the real myvariant.info (the default
    URL) never sends the synthetic world's rsIDs there: an in-process myvariant stand-in
    over the backend's ``standin_world`` serves them instead (the same way
    :func:`backend_session` starts the AlphaGenome stand-in). Synthetic rsIDs looked up on
    the real service would come back with real hg38 positions that mean nothing on the
    synthetic genome.
    """
    if (simulated and lookup.source == "myvariant" and backend.standin_world
            and lookup.base_url.rstrip("/") == DEFAULT_MYVARIANT_URL.rstrip("/")):
        from standins.myvariant.server import serve

        handle = serve(backend.standin_world)
        try:
            yield {"kind": "myvariant", "base_url": handle.base_url, "pace": 0.0}, \
                f"myvariant stand-in (in-process) over {backend.standin_world}"
        finally:
            handle.stop()
        return
    spec = lookup_spec(lookup)
    if simulated and spec["kind"] == "myvariant":
        spec["pace"] = min(spec.get("pace", 1.0), 0.01)  # a local stand-in needs no politeness
    yield spec, f"{spec['kind']} {spec.get('base_url') or spec.get('path')}"


RESULT_STORAGE = state_dir() / "prefect-results"
"""Where flows persist their return values, so ``run_deployment(...).state.result()`` can
read them (the caller must share ``AGVAL_HOME`` with the served flow runs)."""


def record_model(record: RunRecord, backend) -> None:
    """Put the backend and its model fingerprint in the manifest (flows that call
    :func:`agval.scoring.score` get this from ``ScoreRun.record``; sequence-only flows call it)."""
    from agval.scoring.fingerprint import summarize

    record.set_backend(backend.describe())
    fp = backend.fingerprint()
    record.set_model({"model_version": backend.model_version_name, "fingerprint": summarize(fp),
                      "fingerprint_digest": fp.get("digest")})


def run_name(default: str = "run"):
    """A ``flow_run_name`` callable: ``<study name>-<UTC time>`` (``<default>-<time>`` when
    the flow has no ``study`` parameter), e.g. ``caqtl_demo-20261204T133512Z``. Two
    subflows of one re-validation run are told apart by their study names."""

    def name() -> str:
        import datetime as _dt

        from prefect.runtime import flow_run

        params = flow_run.parameters or {}
        study = params.get("study")
        label = getattr(study, "name", None) or (study.get("name") if isinstance(study, dict) else None)
        if not label and isinstance(params.get("name"), str):
            label = params["name"]  # agval-study: the config's study entry
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        return f"{label or default}-{stamp}"

    return name


def prefect_run_info() -> dict[str, Any] | None:
    """The current Prefect flow run (``flow_run_id``, ``flow_run_name``, ``flow_name``,
    ``ui_url``), or None outside a flow run."""
    from prefect.runtime import flow_run

    if not flow_run.id:
        return None
    info = {"flow_run_id": str(flow_run.id), "flow_run_name": flow_run.name, "flow_name": flow_run.flow_name}
    try:
        info["ui_url"] = flow_run.ui_url
    except Exception:  # noqa: BLE001 - no UI configured (ephemeral API)
        info["ui_url"] = None
    return info


def start_run(study: str, flow: str, params: BaseModel | dict[str, Any], *, simulated: bool,
              seed: int | None = None, inputs: dict[str, str | Path | None] | None = None,
              report: bool = True) -> RunRecord:
    """Open the run record (simulated runs go under the simulated root) and hash the inputs.

    Every input must be a readable file before the record opens (an :class:`InputError`
    naming the file and its study field otherwise); ``report=True``: the run is
    ``completed`` only once its ``report.html`` is written. ``flow`` is the Prefect flow name
    (one name per flow in Prefect, manifest and report); inside a flow run the manifest also
    records the Prefect run (``manifest["prefect"]``)."""
    from agval.errors import InputError

    for role, path in (inputs or {}).items():
        if path and not Path(path).is_file():
            why = "is a folder, not a file" if Path(path).is_dir() else "file not found"
            raise InputError(why, file=path, hint=f"check the path of the {role.split(':')[0]} input in the study file "
                                                  "(relative paths are relative to the study file)")
    p = params.model_dump(mode="json") if isinstance(params, BaseModel) else dict(params)
    rec = RunRecord.start(study, flow, parameters=p, simulated=simulated, seed=seed, report=report)
    info = prefect_run_info()
    if info:
        rec.manifest["prefect"] = info  # the report links back to its Prefect run
        rec._write_manifest()  # on disk while the run is still going, not only once it finishes
    try:
        for role, path in (inputs or {}).items():
            if path:
                rec.add_input(path, role)
    except OSError as e:
        rec.finish("failed", error=f"cannot read input {e.filename}: {e.strerror}")
        raise InputError(f"cannot read the file: {e.strerror}", file=e.filename) from None
    return rec
