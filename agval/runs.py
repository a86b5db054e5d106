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

The run folder is always inside its results root: the study name becomes a safe folder
name (:func:`study_slug`; the original name stays in the manifest as ``study``) and a
name that looks like a path (``../x``, ``/abs``, ``a/b``) is a :class:`ConfigError`.

Status is a small state machine, each state written atomically to ``manifest.json``::

    running -> completed     every file is written (tables, dropped.parquet, metrics.json,
                             and report.html for records started with ``report=True``)
    running -> failed        with ``error`` (bounded, redacted); a write that fails (full
                             disk) fails the run, never "completed"
    running -> interrupted   SIGTERM/SIGINT, or found ``running`` by a later agval start
                             whose ``process`` (pid, host, boot id, process start time)
                             is gone (:func:`sweep_interrupted`)

A record opened in this process and never closed (a crash between the ``with`` block and
the report) is marked ``failed`` by :func:`fail_open_runs` (the command line calls it on
an error, and at exit).
"""

from __future__ import annotations

import atexit
import datetime as _dt
import hashlib
import json
import os
import platform
import re
import secrets as _pysecrets
import socket
import threading
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import polars as pl

from agval import __version__, schema
from agval.drops import DropLog
from agval.errors import ConfigError, StorageError, bounded
from agval.paths import check_destination, results_root
from agval.secrets import redact

STATUSES = ("running", "completed", "failed", "interrupted")
TERMINAL = ("completed", "failed", "interrupted")
#: the error log a failed command leaves in its run folder (full traceback, Prefect's log lines)
ERROR_LOG = "agval-error.log"

_SLUG_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def study_slug(name: object, *, field: str = "[study] name", file: str | Path | None = None) -> str:
    """The run-folder name of a study name: letters, digits, ``.``, ``_``, ``-`` (other runs
    of characters become one ``-``), at most 100 characters.

    A name that is empty, or looks like a path (a ``/`` or ``\\``, a leading ``.`` or
    ``~``, an absolute or drive path) is a :class:`ConfigError` naming ``field``: a study
    name never decides where a run is written.
    """
    where = f"{file}: " if file else ""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}{field}: the study name is empty", hint="give the study a short name, e.g. 'caqtl-cd4'")
    raw = name.strip()
    if "/" in raw or "\\" in raw or raw.startswith((".", "~")) or re.match(r"^[A-Za-z]:", raw) or "\x00" in raw:
        from agval.errors import quote

        raise ConfigError(f"{where}{field}: {quote(raw, 120)} looks like a path; a study name is a plain name "
                          "(the run folder is always <results root>/<name>/<run id>)",
                          hint="use letters, digits, '.', '_' and '-', e.g. 'caqtl-cd4'")
    slug = _SLUG_BAD.sub("-", raw).strip("-.")[:100].strip("-.")
    if not slug:
        from agval.errors import quote

        raise ConfigError(f"{where}{field}: {quote(raw, 120)} has no letter or digit to name a folder with",
                          hint="use letters, digits, '.', '_' and '-'")
    return slug


# -- the process that owns a run ------------------------------------------------------------

def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _proc_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), None when unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def process_identity(pid: int | None = None) -> dict[str, Any]:
    """``pid``, ``host``, ``boot_id`` and ``start_ticks`` of a process (default: this one)."""
    pid = os.getpid() if pid is None else pid
    return {"pid": pid, "host": socket.gethostname(), "boot_id": _boot_id(), "start_ticks": _proc_start(pid)}


def process_alive(ident: dict[str, Any]) -> bool | None:
    """Whether the process ``ident`` describes still runs: None when it ran on another host
    (cannot tell), False when its pid is gone, was reused, or the machine rebooted."""
    if not ident or ident.get("host") != socket.gethostname():
        return None
    boot = _boot_id()
    if ident.get("boot_id") and boot and ident["boot_id"] != boot:
        return False
    pid = ident.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    started = ident.get("start_ticks")
    now = _proc_start(pid)
    if started is not None and now is not None and now != started:
        return False  # the pid was reused by another process
    if now is None and Path("/proc").is_dir() and not Path(f"/proc/{pid}").exists():
        return False
    try:  # a zombie is gone for our purposes
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    except (OSError, IndexError):
        pass
    return True


def sweep_interrupted(roots: list[Path] | None = None) -> list[Path]:
    """Mark every run found ``running`` whose process is gone as ``interrupted``.

    Looks at ``<root>/<study>/<run>/manifest.json`` under both results roots (or
    ``roots``); runs of a live process, of another host, or without a recorded process
    are left alone. Returns the folders it marked. Never raises for an unreadable root.
    """
    if roots is None:
        roots = []
        for sim in (False, True):
            try:
                roots.append(results_root(sim))
            except Exception:  # noqa: BLE001 - a misconfigured root is reported by the command itself
                pass
    marked: list[Path] = []
    for root in roots:
        try:
            manifests = list(Path(root).glob("*/*/manifest.json"))
        except OSError:
            continue
        for mpath in manifests:
            try:
                text = mpath.read_text()
                if '"running"' not in text:
                    continue
                man = json.loads(text)
            except (OSError, ValueError):
                continue
            if man.get("status") != "running" or process_alive(man.get("process") or {}) is not False:
                continue
            man["status"] = "interrupted"
            man["finished"] = man.get("finished") or _now()
            man["error"] = (f"the agval process (pid {man['process'].get('pid')} on {man['process'].get('host')}) "
                            f"ended before the run finished; found at {_now()}")
            try:
                schema.atomic_write_json(mpath, man)
                marked.append(mpath.parent)
            except OSError:
                continue
    return marked


# -- records opened in this process -----------------------------------------------------------

_OPEN: dict[int, "RunRecord"] = {}
_STARTED: list[Path] = []
_REG_LOCK = threading.Lock()


def open_runs() -> list["RunRecord"]:
    with _REG_LOCK:
        return list(_OPEN.values())


def runs_started_here() -> list[Path]:
    """Run folders started by this process, oldest first."""
    with _REG_LOCK:
        return list(_STARTED)


def fail_open_runs(reason: str, status: str = "failed") -> list[Path]:
    """Close every record of this process that is still open as ``failed`` (or ``status``)."""
    out = []
    for rec in open_runs():
        rec.finish(status, error=reason)
        out.append(rec.folder)
    return out


@atexit.register
def _fail_at_exit() -> None:  # pragma: no cover - exercised through subprocess tests
    fail_open_runs("the agval process exited before the run finished")


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


def finite_or_none(v: Any) -> float | None:
    """A metrics value as a finite float, or None (missing, not a number, NaN or inf):
    what reports, cards and the leaderboard show."""
    import math

    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


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
    """Create with :meth:`start`; use as a context manager so a failure is recorded too.

    Leaving the ``with`` block without an error closes the run as ``completed`` when every
    file is there; a record started with ``report=True`` whose ``report.html`` is not yet
    written stays ``running`` until :meth:`write_report` (which then completes it).
    """

    def __init__(self, folder: Path, manifest: dict[str, Any], *, report: bool = False):
        self.folder = folder
        self.manifest = manifest
        self.drops = DropLog()
        self._metrics: dict[str, Any] = {}
        self.requires_report = report
        self._body_done = False   # the ``with`` block ended without an error
        self._lock = threading.RLock()

    @property
    def status(self) -> str:
        return self.manifest["status"]

    # -- creation -----------------------------------------------------------------
    @classmethod
    def start(cls, study: str, flow: str, *, parameters: dict[str, Any] | None = None,
              simulated: bool, seed: int | None = None, root: str | Path | None = None,
              report: bool = False) -> "RunRecord":
        """Open ``<root>/<study slug>/<UTC time>-<id>/`` with status ``running``.

        ``report=True``: the run is ``completed`` only once ``report.html`` is written.
        A root that cannot be written is a :class:`StorageError` naming it.
        """
        slug = study_slug(study)
        root = Path(root).absolute() if root else results_root(simulated)
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        folder = root / slug / f"{stamp}-{_pysecrets.token_hex(3)}"
        if not folder.resolve().is_relative_to(root.resolve()):  # defence in depth
            raise ConfigError(f"run folder {folder} would not be inside the results root {root}")
        check_destination(folder, simulated)
        try:
            (folder / "plots").mkdir(parents=True, exist_ok=True)
            (folder / "tables").mkdir(exist_ok=True)
        except OSError as e:
            raise StorageError.from_os_error(root, e, "results root") from None
        manifest = {
            "run_id": folder.name,
            "study": study,
            "study_folder": slug,
            "process": process_identity(),
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
        rec = cls(folder, manifest, report=report)
        try:
            rec._write_manifest()
        except OSError as e:
            raise StorageError.from_os_error(root, e, "results root") from None
        with _REG_LOCK:
            _OPEN[id(rec)] = rec
            _STARTED.append(folder)
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
        """Write ``report.html``; completes a record whose ``with`` block already ended.
        A failed write (full disk) marks the run ``failed`` and raises :class:`StorageError`."""
        p = self.folder / "report.html"
        try:
            schema.atomic_write_bytes(p, redact(html).encode())
        except OSError as e:
            err = StorageError.from_os_error(self.folder, e, "report")
            self.finish("failed", error=str(err))
            raise err from e
        if self._body_done and self.status == "running":
            self.finish("completed")
        return p

    # -- completion ----------------------------------------------------------------
    def _write_manifest(self) -> None:
        schema.atomic_write_json(self.folder / "manifest.json", jsonable(_scrub(self.manifest)))

    def missing_outputs(self) -> list[str]:
        """Files a ``completed`` run must have that are not (yet) in the folder."""
        need = ["dropped.parquet", "metrics.json"] + (["report.html"] if self.requires_report else [])
        return [n for n in need if not (self.folder / n).is_file()]

    def finish(self, status: str = "completed", error: str | None = None) -> Path:
        """Move to a final state (idempotent once final). ``completed`` writes
        ``dropped.parquet`` and ``metrics.json`` first and is refused (the run is ``failed``)
        when a write fails or a required file is missing. Other states write what they can."""
        if status not in TERMINAL:
            raise ValueError(f"unknown final status {status!r}; one of {TERMINAL}")
        with self._lock:
            if self.status in TERMINAL:
                return self.folder
            if status == "completed":
                try:
                    self._write_outputs()
                except OSError as e:
                    err = StorageError.from_os_error(self.folder, e, "run folder")
                    self._close("failed", str(err), best_effort=True)
                    raise err from e
                missing = self.missing_outputs()
                if missing:
                    self._close("failed", f"run folder incomplete: missing {', '.join(missing)}", best_effort=True)
                    raise StorageError(self.folder, f"run folder incomplete: missing {', '.join(missing)}")
                try:
                    self._close("completed", error)
                except OSError as e:
                    err = StorageError.from_os_error(self.folder, e, "manifest")
                    self._close("failed", str(err), best_effort=True)
                    raise err from e
            else:
                try:
                    self._write_outputs()
                except OSError:
                    pass  # the failure is what matters; the manifest below says why
                self._close(status, error, best_effort=True)
        return self.folder

    def _write_outputs(self) -> None:
        self.manifest["n_dropped"] = len(self.drops)
        schema.write_table(self.drops.frame(), self.folder / "dropped.parquet", "dropped")
        if not (self.folder / "metrics.json").exists():
            self.add_metrics({})

    def _close(self, status: str, error: str | None, *, best_effort: bool = False) -> None:
        self.manifest["finished"] = _now()
        self.manifest["status"] = status
        if error:
            self.manifest["error"] = bounded(redact(error))
        with _REG_LOCK:
            _OPEN.pop(id(self), None)
        try:
            self._write_manifest()
        except OSError:
            if not best_effort:
                raise

    def __enter__(self) -> "RunRecord":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self._body_done = True
            if self.requires_report and not (self.folder / "report.html").is_file():
                # outputs now; "completed" once write_report() has written the report
                try:
                    self._write_outputs()
                    self._write_manifest()
                except OSError as e:
                    err = StorageError.from_os_error(self.folder, e, "run folder")
                    self.finish("failed", error=str(err))
                    raise err from e
                return
            self.finish("completed")
        elif isinstance(exc, (KeyboardInterrupt, SystemExit)) or type(exc).__name__ == "RunInterrupted":
            self.finish("interrupted", error=f"{exc_type.__name__}: {exc}" if str(exc) else exc_type.__name__)
        else:
            self.finish("failed", error=f"{exc_type.__name__}: {exc}")


def load_manifest(folder: str | Path) -> dict[str, Any]:
    return json.loads((Path(folder) / "manifest.json").read_text())
