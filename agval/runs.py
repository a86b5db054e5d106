"""The run record: one folder per flow run that says exactly what produced a result.

Layout of a run folder ``<results root>/<study>/<UTC time>-<id>/``::

    manifest.json    agval + SDK versions, backend, address kind (never the key),
                     model version + fingerprint, inputs with sha256, parameters,
                     seed, start/end, status, simulated: true|false
    metrics.json     named statistics of the run
    tables/*.parquet result tables
    plots/*.png      figures
    report.html      self-contained report
    dropped.parquet  every row dropped anywhere, with stage and reason

Runs against stand-ins (``simulated=True``) are written under the simulated results
root and can never be written under the real one (:mod:`agval.paths`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import secrets as _pysecrets
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import polars as pl

from agval import __version__, schema
from agval.drops import DropLog
from agval.paths import check_destination, results_root
from agval.secrets import redact


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _pkg_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def jsonable(obj: Any) -> Any:
    """Strict JSON: NaN/inf become null, numpy scalars become Python numbers."""
    import math

    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _scrub(obj: Any) -> Any:
    """Redact secrets anywhere in a JSON-able structure; drop keys that name secrets."""
    if isinstance(obj, dict):
        return {k: _scrub(v) for k, v in obj.items()
                if not any(s in str(k).lower() for s in ("api_key", "apikey", "password", "token", "secret"))}
    if isinstance(obj, (list, tuple)):
        return [_scrub(v) for v in obj]
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


class RunRecord:
    """Create with :meth:`start`; use as a context manager so a failure is recorded too."""

    def __init__(self, folder: Path, manifest: dict[str, Any]):
        self.folder = folder
        self.manifest = manifest
        self.drops = DropLog()
        self._metrics: dict[str, Any] = {}

    # -- creation -----------------------------------------------------------------
    @classmethod
    def start(cls, study: str, flow: str, *, parameters: dict[str, Any] | None = None,
              simulated: bool, seed: int | None = None, root: str | Path | None = None) -> "RunRecord":
        root = Path(root).absolute() if root else results_root(simulated)
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        folder = root / study / f"{stamp}-{_pysecrets.token_hex(3)}"
        check_destination(folder, simulated)
        (folder / "plots").mkdir(parents=True, exist_ok=True)
        (folder / "tables").mkdir(exist_ok=True)
        manifest = {
            "run_id": folder.name,
            "study": study,
            "flow": flow,
            "simulated": bool(simulated),
            "agval_version": __version__,
            "alphagenome_sdk_version": _pkg_version("alphagenome"),
            "prefect_version": _pkg_version("prefect"),
            "python": platform.python_version(),
            "parameters": _scrub(parameters or {}),
            "seed": seed,
            "inputs": [],
            "backend": None,
            "model": None,
            "started": _now(),
            "finished": None,
            "status": "running",
        }
        rec = cls(folder, manifest)
        rec._write_manifest()
        return rec

    # -- provenance ---------------------------------------------------------------
    def add_input(self, path: str | Path, role: str) -> str:
        p = Path(path)
        digest = sha256_file(p)
        self.manifest["inputs"].append({"role": role, "path": str(p.absolute()), "sha256": digest,
                                        "bytes": p.stat().st_size})
        return digest

    def set_backend(self, info: dict[str, Any]) -> None:
        """Backend name, address kind (live/standin/self-hosted/precomputed), never the key."""
        self.manifest["backend"] = _scrub(info)
        fallback = info.get("fallback") or {}
        fb_simulated = isinstance(fallback, dict) and bool(fallback.get("simulated"))
        if (info.get("simulated") or fb_simulated) and not self.manifest["simulated"]:
            from agval.errors import SimulatedResultsError

            raise SimulatedResultsError("a simulated backend was attached to a run recorded as real")

    def set_model(self, info: dict[str, Any]) -> None:
        """Model version name and fingerprint."""
        self.manifest["model"] = _scrub(info)

    def note(self, key: str, value: Any) -> None:
        """Anything else worth recording (track selection, tissue map, ...)."""
        self.manifest.setdefault("notes", {})[key] = _scrub(value)

    # -- outputs -------------------------------------------------------------------
    @property
    def plots_dir(self) -> Path:
        return self.folder / "plots"

    def table_path(self, name: str) -> Path:
        return self.folder / "tables" / f"{name}.parquet"

    def write_table(self, name: str, df: pl.DataFrame, fmt: str | None = None) -> Path:
        return schema.write_table(df, self.table_path(name), fmt)

    def add_metrics(self, metrics: dict[str, Any]) -> None:
        self._metrics.update(metrics)
        schema.atomic_write_json(self.folder / "metrics.json", jsonable(_scrub(self._metrics)))

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self._metrics)

    def write_report(self, html: str) -> Path:
        p = self.folder / "report.html"
        schema.atomic_write_bytes(p, redact(html).encode())
        return p

    # -- completion ----------------------------------------------------------------
    def _write_manifest(self) -> None:
        schema.atomic_write_json(self.folder / "manifest.json", jsonable(_scrub(self.manifest)))

    def finish(self, status: str = "completed", error: str | None = None) -> Path:
        self.manifest["finished"] = _now()
        self.manifest["status"] = status
        if error:
            self.manifest["error"] = redact(error)
        self.manifest["n_dropped"] = len(self.drops)
        schema.write_table(self.drops.frame(), self.folder / "dropped.parquet", "dropped")
        if not (self.folder / "metrics.json").exists():
            self.add_metrics({})
        self._write_manifest()
        return self.folder

    def __enter__(self) -> "RunRecord":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.finish("completed")
        else:
            self.finish("failed", error=f"{exc_type.__name__}: {exc}")


def load_manifest(folder: str | Path) -> dict[str, Any]:
    return json.loads((Path(folder) / "manifest.json").read_text())
