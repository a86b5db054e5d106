"""Fingerprint a configured backend now (plain; the ``watch_model`` flow calls this).

A **fresh** backend is built for every check (no process-wide backend cache, no memoised
metadata or fingerprint), so a long-lived process sees a model change. A stand-in entry
with a world but no address gets an in-process stand-in for the duration of the check
(revision 0: useful for trying the flow, not for detecting anything).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence


def backend_spec(kind: str, *, address: str | None, model_version: str, standin_world: str | None = None,
                 precomputed: str | None = None, canary: Sequence[str] | None = None) -> dict[str, Any]:
    if kind in ("alphagenome", "standin"):
        spec: dict[str, Any] = {"kind": "alphagenome", "address": address, "model_version": model_version}
        if standin_world:
            spec["world_dir"] = standin_world
        if canary:
            spec["canary"] = list(canary)
        return spec
    if kind == "atlas":
        return {"kind": "atlas", "address": address,
                "fallback": {"kind": "alphagenome", "address": address, "model_version": model_version}}
    if kind == "precomputed":
        return {"kind": "precomputed", "table": precomputed, "model": model_version}
    raise ValueError(f"unknown backend kind {kind!r}")


def fresh_backend(spec: dict[str, Any]):
    """Like :func:`agval.scoring.make_backend`, without its per-process cache."""
    kw = dict(spec)
    kind = kw.pop("kind")
    if kind == "alphagenome":
        from agval.scoring.alphagenome import AlphaGenomeBackend

        return AlphaGenomeBackend(**kw)
    if kind == "atlas":
        from agval.scoring.atlas import AtlasBackend

        fb = kw.pop("fallback", None)
        return AtlasBackend(**kw, fallback=fresh_backend(fb) if fb else None)
    if kind == "precomputed":
        from agval.scoring.precomputed import PrecomputedBackend

        return PrecomputedBackend(kw.pop("table"), **kw)
    raise ValueError(f"unknown backend kind {kind!r}")


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
    b = fresh_backend(backend_spec(kind, address=address, model_version=model_version,
                                   standin_world=standin_world, precomputed=precomputed, canary=canary))
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
