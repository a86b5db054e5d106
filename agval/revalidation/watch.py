"""Fingerprint a configured backend now (plain; the ``watch_model`` flow calls this).

A **fresh** backend is built for every check (no process-wide backend cache, no memoised
metadata or fingerprint), so a long-lived process sees a model change. A stand-in entry
with a world but no address gets an in-process stand-in for the duration of the check
(revision 0: useful for trying the flow, not for detecting anything).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

from agval.scoring.spec import BackendSpec


def backend_spec(kind: str, *, address: str | None, model_version: str, standin_world: str | None = None,
                 precomputed: str | None = None, canary: Sequence[str] | None = None) -> BackendSpec:
    """The :class:`~agval.scoring.spec.BackendSpec` of a deployments ``[[backends]]`` entry
    (``model_version`` names the model of a precomputed table)."""
    return BackendSpec(kind=kind, address=address, model_version=model_version, standin_world=standin_world,
                       precomputed=precomputed, table_model=model_version if kind == "precomputed" else None,
                       canary=tuple(canary) if canary else None)


@contextlib.contextmanager
def open_backend(kind: str, *, address: str | None, model_version: str, standin_world: str | None = None,
                 precomputed: str | None = None, canary: Sequence[str] | None = None) -> Iterator[Any]:
    """A fresh backend for the block, closed after it. A ``standin`` backend needs the
    address of a running stand-in: the library never starts one (the flows do, through
    ``flows._common.standin_address``)."""
    if kind == "standin" and not address:
        from agval.errors import ConfigError

        raise ConfigError("a standin backend needs the address of a running stand-in (start one at the "
                          "top: flows._common.standin_address); the library never starts one")
    b = backend_spec(kind, address=address, model_version=model_version, standin_world=standin_world,
                     precomputed=precomputed, canary=canary).build(fresh=True)
    try:
        yield b
    finally:
        b.close()


def fingerprint_now(kind: str, *, address: str | None, model_version: str, standin_world: str | None = None,
                    precomputed: str | None = None, canary: Sequence[str] | None = None) -> dict[str, Any]:
    """The full fingerprint (with canary rows) of the model behind a backend, now."""
    with open_backend(kind, address=address, model_version=model_version, standin_world=standin_world,
                      precomputed=precomputed, canary=canary) as b:
        fp = dict(b.fingerprint())
        fp["simulated"] = bool(b.simulated)
        return fp
