"""The history table: every study run's metrics, one row per (run, metric).

``<state>/revalidation/history.parquet`` (``agval.paths.state_dir()``; format
``agval-history`` v1) with columns

=================== ===================================================================
study               the study name (``[study] name``, the run folder's parent)
study_kind          ``qtl`` / ``twas`` / ``mpra`` (the registry kind)
study_file          the TOML study file the run came from (null when unknown)
model_fingerprint   the model fingerprint digest of the run (``manifest.model.fingerprint_digest``)
backend             backend label: ``<backend>:<address kind>`` (``alphagenome:standin``,
                    ``alphagenome:live``, ``alphagenome:self-hosted``, ``atlas:atlas``) or
                    ``precomputed:<model>``
model_version       ``ALL_FOLDS``, ``FOLD_0``..., or the precomputed model's name
run_id, run_folder  the run record
simulated           true for stand-in / synthetic-world runs
metric              dotted metric name (nested ``metrics.json`` keys joined with ``.``)
value               the metric's numeric value (null when it was NaN / not computable)
time                when the run finished (UTC)
flow_run_id         the Prefect flow run that appended it (null when synced from disk)
trigger             ``revalidate`` / ``sync`` / ... (who appended the rows)
=================== ===================================================================

Only numeric metrics are kept (booleans and strings are not metrics over time).
Appends hold a file lock and rewrite the file atomically; a run already present (same
``run_id`` and ``run_folder``) is never appended twice, so :func:`sync_history` (which
scans the results roots for completed runs, e.g. scheduled study runs) and the
``revalidate`` flow can both append without duplicates.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping

import polars as pl

from agval import schema
from agval.revalidation.locking import locked

HISTORY_COLUMNS: dict[str, pl.DataType] = {
    "study": pl.String, "study_kind": pl.String, "study_file": pl.String, "model_fingerprint": pl.String,
    "backend": pl.String, "model_version": pl.String, "run_id": pl.String, "run_folder": pl.String,
    "simulated": pl.Boolean, "metric": pl.String, "value": pl.Float64,
    "time": pl.Datetime("us", "UTC"), "flow_run_id": pl.String, "trigger": pl.String,
}
HISTORY_FORMAT = schema.register(schema.TableFormat(
    name="agval-history", version=1, columns=HISTORY_COLUMNS,
    description="metrics of every study run, keyed by study, model fingerprint, backend and run id"))

#: run folders of these flows are not study runs (never synced into the history)
NOT_STUDIES = {"agval-compare", "agval-demo", "agval-revalidate", "agval-watch-model"}


def history_path(root: str | Path | None = None) -> Path:
    if root is None:
        from agval.paths import state_dir

        root = state_dir() / "revalidation"
    return Path(root).absolute() / "history.parquet"


def read_history(path: str | Path | None = None) -> pl.DataFrame:
    p = Path(path) if path is not None else history_path()
    if not p.exists():
        return HISTORY_FORMAT.empty()
    return schema.read_table(p, HISTORY_FORMAT)


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> list[tuple[str, float | None]]:
    """Numeric leaves of a nested metrics dict as ``(dotted name, value)``; None/NaN -> None."""
    out: list[tuple[str, float | None]] = []
    for k, v in metrics.items():
        name = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.extend(flatten_metrics(v, name))
        elif isinstance(v, bool):
            continue
        elif isinstance(v, (int, float)):
            f = float(v)
            out.append((name, f if math.isfinite(f) else None))
        elif v is None:
            out.append((name, None))
    return out


def backend_label(backend: Mapping[str, Any] | None) -> str:
    b = dict(backend or {})
    name = str(b.get("backend") or "unknown")
    if name == "precomputed":
        return f"precomputed:{b.get('model') or b.get('model_version') or 'precomputed'}"
    return f"{name}:{b.get('address_kind') or 'unknown'}"


def _model_info(man: Mapping[str, Any]) -> tuple[str | None, str | None]:
    model = man.get("model") or {}
    fp = model.get("fingerprint") if isinstance(model.get("fingerprint"), Mapping) else {}
    digest = model.get("fingerprint_digest") or model.get("digest") or (fp or {}).get("digest")
    if digest is None and isinstance(model.get("fingerprint"), str):
        digest = model["fingerprint"]
    version = model.get("model_version") or model.get("version") or (man.get("backend") or {}).get("model_version")
    return digest, version


def _time(man: Mapping[str, Any]) -> _dt.datetime | None:
    t = man.get("finished") or man.get("started")
    if not t:
        return None
    d = _dt.datetime.fromisoformat(str(t).replace("Z", "+00:00"))
    return d if d.tzinfo else d.replace(tzinfo=_dt.timezone.utc)


def rows_from_run(folder: str | Path, *, study_kind: str | None = None, study_file: str | None = None,
                  flow_run_id: str | None = None, trigger: str | None = None,
                  kind_of_flow: Mapping[str, str] | None = None,
                  metrics: Mapping[str, Any] | None = None, model_fingerprint: str | None = None,
                  model_version: str | None = None) -> pl.DataFrame:
    """History rows of one run folder (``manifest.json`` + ``metrics.json``).

    ``model_fingerprint`` / ``model_version``: used when the manifest does not record the
    model (a flow that never called ``RunRecord.set_model``)."""
    folder = Path(folder).absolute()
    man = json.loads((folder / "manifest.json").read_text())
    if metrics is None:
        mp = folder / "metrics.json"
        metrics = json.loads(mp.read_text()) if mp.exists() else {}
    notes = man.get("notes") or {}
    kind = (study_kind or man.get("study_kind") or notes.get("study_kind")
            or (kind_of_flow or {}).get(man.get("flow") or "") or man.get("flow"))
    sfile = study_file or man.get("study_file") or notes.get("study_file")
    digest, version = _model_info(man)
    digest = digest or model_fingerprint
    version = version or model_version
    base = {"study": man.get("study") or folder.parent.name, "study_kind": kind,
            "study_file": str(sfile) if sfile else None, "model_fingerprint": digest,
            "backend": backend_label(man.get("backend")), "model_version": version,
            "run_id": man.get("run_id") or folder.name, "run_folder": str(folder),
            "simulated": bool(man.get("simulated")), "time": _time(man),
            "flow_run_id": flow_run_id, "trigger": trigger}
    rows = [{**base, "metric": n, "value": v} for n, v in flatten_metrics(metrics)]
    return pl.DataFrame(rows, schema=HISTORY_COLUMNS) if rows else HISTORY_FORMAT.empty()


def append_rows(rows: pl.DataFrame, path: str | Path | None = None) -> int:
    """Append history rows (skipping runs already present); returns the rows added."""
    p = Path(path) if path is not None else history_path()
    if rows.height == 0:
        return 0
    rows = HISTORY_FORMAT.conform(rows)
    with locked(p):
        old = read_history(p)
        if old.height:
            seen = old.select("run_id", "run_folder").unique()
            rows = rows.join(seen, on=["run_id", "run_folder"], how="anti")
        if rows.height == 0:
            return 0
        schema.write_table(pl.concat([old, rows.select(old.columns)], how="vertical_relaxed"), p, HISTORY_FORMAT)
    return rows.height


def append_run(folder: str | Path, path: str | Path | None = None, **kwargs) -> int:
    """Append one run folder's metrics (see :func:`rows_from_run` for keywords)."""
    return append_rows(rows_from_run(folder, **kwargs), path)


def run_folders(roots: Iterable[str | Path]) -> list[Path]:
    """Completed study run folders (``<root>/<study>/<run>/manifest.json``) under ``roots``."""
    out = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        for man in sorted(root.glob("*/*/manifest.json")):
            out.append(man.parent)
    return out


def sync_history(roots: Iterable[str | Path] | None = None, path: str | Path | None = None, *,
                 kind_of_flow: Mapping[str, str] | None = None,
                 include_flows: Iterable[str] | None = None) -> int:
    """Append every completed run under the results roots that the history lacks.

    ``roots``: default both results roots (real and simulated). ``include_flows``: only
    runs of these flow names (default: every flow except :data:`NOT_STUDIES`).
    """
    if roots is None:
        from agval.paths import results_root

        roots = [results_root(False), results_root(True)]
    include = set(include_flows) if include_flows is not None else None
    p = Path(path) if path is not None else history_path()
    known = set(read_history(p).select("run_folder").unique().to_series().to_list())
    frames = []
    for folder in run_folders(roots):
        if str(folder.absolute()) in known:
            continue
        try:
            man = json.loads((folder / "manifest.json").read_text())
        except (OSError, ValueError):
            continue
        flow = man.get("flow") or ""
        if man.get("status") != "completed" or flow in NOT_STUDIES or (include is not None and flow not in include):
            continue
        frames.append(rows_from_run(folder, trigger="sync", kind_of_flow=kind_of_flow))
    if not frames:
        return 0
    return append_rows(pl.concat(frames, how="vertical_relaxed"), p)


def latest_runs(history: pl.DataFrame) -> pl.DataFrame:
    """One row per run (no metric columns), newest first."""
    if history.height == 0:
        return history.drop("metric", "value")
    return (history.drop("metric", "value").unique(["run_id", "run_folder"], keep="first")
            .sort("time", descending=True, nulls_last=True))
