"""The registry of study kinds: what ``agval run <kind> FILE``, ``agval demo`` and the
``revalidate`` flow iterate over.

Each study module (``flows/qtl.py``, ``flows/twas.py``, ``flows/mpra.py``) defines

* ``STUDY_MODEL``: the pydantic model of its ``[study]`` section;
* ``FLOW``: the Prefect flow, called as ``FLOW(study=..., backend=..., lookup=...)``
  (``lookup`` only if the flow takes it) and returning a dict with at least
  ``run_folder``, ``simulated`` and ``metrics``.

A study file is TOML with a ``[study]`` section and optional ``[backend]`` and
``[lookup]`` sections (:mod:`agval.config`).
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

from pydantic import create_model

from agval.config import BackendConfig, LookupConfig, load_study_file
from agval.errors import ConfigError

STUDIES: dict[str, str] = {"qtl": "flows.qtl", "twas": "flows.twas", "mpra": "flows.mpra"}


def study_module(kind: str):
    if kind not in STUDIES:
        raise ConfigError(f"unknown study kind {kind!r}; known: {', '.join(sorted(STUDIES))}")
    try:
        return importlib.import_module(STUDIES[kind])
    except ModuleNotFoundError as e:
        if e.name == STUDIES[kind]:
            raise ConfigError(f"study kind {kind!r} is not available in this build") from None
        raise


def available() -> list[str]:
    out = []
    for kind, mod in STUDIES.items():
        try:
            importlib.import_module(mod)
            out.append(kind)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise
    return out


def load(kind: str, path: str | Path, *, backend: dict[str, Any] | None = None,
         lookup: dict[str, Any] | None = None) -> dict[str, Any]:
    """Parse a study file into the flow's keyword arguments, applying overrides
    (e.g. the demo's stand-in addresses) on top of the file's sections."""
    mod = study_module(kind)
    model = create_model(f"{kind.upper()}StudyFile", study=(mod.STUDY_MODEL, ...),
                         backend=(BackendConfig, BackendConfig()), lookup=(LookupConfig, LookupConfig()))
    parsed = load_study_file(path, model)
    kwargs: dict[str, Any] = {"study": parsed.study}
    params = inspect.signature(mod.FLOW.fn).parameters
    if "backend" in params:
        b = parsed.backend.model_dump()
        b.update({k: v for k, v in (backend or {}).items() if v is not None})
        kwargs["backend"] = BackendConfig.model_validate(b)
    if "lookup" in params:
        lk = parsed.lookup.model_dump()
        lk.update({k: v for k, v in (lookup or {}).items() if v is not None})
        kwargs["lookup"] = LookupConfig.model_validate(lk)
    return kwargs


def run(kind: str, path: str | Path, **overrides) -> dict[str, Any]:
    """Run one study file through its flow; returns the flow's result dict."""
    kwargs = load(kind, path, **overrides)
    return study_module(kind).FLOW(**kwargs)
