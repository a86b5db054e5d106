"""The fingerprint store: the baseline fingerprint per (backend, model version).

Layout under ``<state>/revalidation/`` (``agval.paths.state_dir()`` unless ``root=``)::

    fingerprints/<backend>/<model_version>/baseline.json   the fingerprint changes are measured against
    fingerprints/<backend>/<model_version>/<digest>.json   every fingerprint ever recorded (full, with canary rows)
    fingerprint-log.parquet                                one row per check (format agval-fingerprint-log)

``backend`` is the name a backend has in the deployments config (``[[backends]] name``).
The baseline only moves on a *material* change (see :mod:`agval.revalidation.detect`),
so a canary drifting by less than the tolerance at every check cannot creep away
unnoticed. Writes are atomic (:mod:`agval.schema`); the log append holds a file lock.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from pathlib import Path
from typing import Any

import polars as pl

from agval import schema
from agval.revalidation.detect import ChangeReport, detect_change
from agval.revalidation.locking import locked

FINGERPRINT_LOG_FORMAT = schema.register(schema.TableFormat(
    name="agval-fingerprint-log", version=1,
    columns={"time": pl.String, "backend": pl.String, "model_version": pl.String, "digest": pl.String,
             "previous_digest": pl.String, "first_seen": pl.Boolean, "changed": pl.Boolean,
             "material": pl.Boolean, "differed": pl.String, "details": pl.String},
    description="every model fingerprint check: digest, the baseline it was compared with, what differed"))

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def check_name(what: str, value: str) -> str:
    """Backend and model-version names become folder names and event resource ids."""
    if not isinstance(value, str) or not _NAME.match(value):
        from agval.errors import ConfigError

        raise ConfigError(f"{what} {value!r}: use letters, digits, '-' and '_' (it becomes a folder name "
                          "and part of the event resource id agval.model.<backend>.<model_version>)")
    return value


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class FingerprintStore:
    def __init__(self, root: str | Path | None = None):
        if root is None:
            from agval.paths import state_dir

            root = state_dir() / "revalidation"
        self.root = Path(root).absolute()

    # -- paths --------------------------------------------------------------------
    def folder(self, backend: str, model_version: str) -> Path:
        return self.root / "fingerprints" / check_name("backend", backend) / check_name("model version", model_version)

    @property
    def log_path(self) -> Path:
        return self.root / "fingerprint-log.parquet"

    # -- reading ------------------------------------------------------------------
    def baseline(self, backend: str, model_version: str) -> dict[str, Any] | None:
        p = self.folder(backend, model_version) / "baseline.json"
        return json.loads(p.read_text()) if p.exists() else None

    def get(self, digest: str) -> dict[str, Any] | None:
        """A recorded fingerprint by digest (a unique prefix of at least 6 characters works)."""
        if len(digest) < 6:
            raise ValueError("give at least 6 characters of a fingerprint digest")
        hits = [p for p in (self.root / "fingerprints").glob(f"*/*/{digest}*.json") if p.name != "baseline.json"]
        full = {p.stem for p in hits}
        if len(full) > 1:
            raise ValueError(f"fingerprint digest prefix {digest!r} is ambiguous: {sorted(full)}")
        return json.loads(hits[0].read_text()) if hits else None

    def keys(self) -> list[tuple[str, str]]:
        return sorted((p.parent.parent.name, p.parent.name)
                      for p in (self.root / "fingerprints").glob("*/*/baseline.json"))

    def log(self) -> pl.DataFrame:
        if not self.log_path.exists():
            return FINGERPRINT_LOG_FORMAT.empty()
        return schema.read_table(self.log_path, FINGERPRINT_LOG_FORMAT)

    # -- writing ------------------------------------------------------------------
    def _archive(self, backend: str, model_version: str, fp: dict[str, Any]) -> None:
        folder = self.folder(backend, model_version)
        schema.atomic_write_json(folder / f"{fp['digest']}.json", fp)

    def set_baseline(self, backend: str, model_version: str, fp: dict[str, Any]) -> None:
        if not fp.get("digest"):
            raise ValueError("a fingerprint without a digest cannot be recorded")
        self._archive(backend, model_version, fp)
        schema.atomic_write_json(self.folder(backend, model_version) / "baseline.json", fp)

    def _append_log(self, backend: str, model_version: str, rep: ChangeReport) -> None:
        row = pl.DataFrame([{
            "time": _now(), "backend": backend, "model_version": model_version, "digest": rep.new_digest,
            "previous_digest": rep.old_digest, "first_seen": rep.first_seen, "changed": rep.changed,
            "material": rep.material, "differed": ",".join(rep.parts),
            "details": json.dumps(rep.details, sort_keys=True, default=str)}],
            schema=FINGERPRINT_LOG_FORMAT.columns)
        with locked(self.log_path):
            old = self.log()
            schema.write_table(pl.concat([old, row], how="vertical_relaxed"), self.log_path, FINGERPRINT_LOG_FORMAT)

    def check(self, backend: str, model_version: str, fp: dict[str, Any], *, atol: float = 1e-6,
              rtol: float = 1e-3) -> ChangeReport:
        """Compare ``fp`` with the baseline, log the check, and move the baseline on a
        first sight or a material change. Returns the :class:`ChangeReport`."""
        with locked(self.folder(backend, model_version) / ".check"):
            old = self.baseline(backend, model_version)
            rep = detect_change(old, fp, atol=atol, rtol=rtol)
            self._archive(backend, model_version, fp)
            if rep.first_seen or rep.material:
                self.set_baseline(backend, model_version, fp)
        self._append_log(backend, model_version, rep)
        return rep
