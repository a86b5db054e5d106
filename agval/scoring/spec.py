"""Configuration -> backend, once: a frozen, picklable :class:`BackendSpec` and one factory.

Every place that turns configuration into a scoring backend goes through this module: the
study flows (``flows._common.backend_session``, from ``[backend]``), the model watch
(:mod:`agval.revalidation.watch`, from a deployments ``[[backends]]`` entry) and
``agval model fingerprint`` (from its options). They used to build the spec three ways and
disagreed (only the watch passed ``canary``, only the flows ``deadline_s`` and
``max_attempts``); now the same fields give the same backend.

The spec never holds the API key (a Dask worker reads it itself). ``kind = "standin"``
needs the ``address`` of a running stand-in: the library never starts one (the top does,
through ``flows._common.standin_address``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Sequence

from agval.errors import ConfigError

if TYPE_CHECKING:
    from agval.config import BackendConfig
    from agval.scoring.backend import ScoringBackend

__all__ = ["BackendSpec"]

KINDS = ("alphagenome", "standin", "atlas", "precomputed")


@dataclass(frozen=True)
class BackendSpec:
    """Where predictions come from, as plain frozen data (picklable; hashable).

    ``kind``: ``alphagenome`` (the live service or a compatible ``address``), ``standin`` (a
    running stand-in at ``address``; its ``standin_world`` gives the canary panel),
    ``atlas`` (precomputed SNV scores with an AlphaGenome fallback) or ``precomputed`` (a
    table of any model's scores, ``precomputed``; ``table_model`` names that model).
    ``deadline_s`` per call, ``max_attempts`` per call (the retry policy), ``canary`` the
    fingerprint's panel (``chr1:123:A>G``; default: the world's first SNVs for a stand-in,
    well-known hg38 SNVs otherwise). ``max_new_calls`` and ``dry_run`` are about the run,
    not the backend (read by the scoring task). ``isolation = "process"``: scoring calls and
    their decoding run in ``isolation_workers`` child processes (:mod:`agval.scoring.isolation`).
    """

    kind: str = "alphagenome"
    address: str | None = None
    model_version: str | None = "ALL_FOLDS"
    standin_world: str | None = None
    precomputed: str | None = None
    table_model: str | None = None
    deadline_s: float = 120.0
    max_attempts: int | None = None
    canary: tuple[str, ...] | None = None
    max_new_calls: int | None = None
    dry_run: bool = False
    isolation: str = "none"
    isolation_workers: int = 2

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"unknown backend kind {self.kind!r}; use {', '.join(KINDS)}")
        if self.canary is not None and not isinstance(self.canary, tuple):
            object.__setattr__(self, "canary", tuple(self.canary))

    @classmethod
    def from_config(cls, cfg: "BackendConfig", *, address: str | None = None,
                    canary: Sequence[str] | None = None) -> "BackendSpec":
        """The spec of a ``[backend]`` section (``address`` overrides the configured one, e.g.
        the address of a stand-in started for the run)."""
        return cls(kind=cfg.kind, address=address or cfg.address, model_version=cfg.model_version,
                   standin_world=cfg.standin_world, precomputed=cfg.precomputed, deadline_s=cfg.deadline_s,
                   max_attempts=cfg.max_attempts, canary=tuple(canary) if canary else None,
                   max_new_calls=cfg.max_new_calls, dry_run=cfg.dry_run, isolation=cfg.isolation,
                   isolation_workers=cfg.isolation_workers)

    def with_address(self, address: str | None) -> "BackendSpec":
        return replace(self, address=address) if address else self

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready (for manifests)."""
        d = asdict(self)
        d["canary"] = list(self.canary) if self.canary else None
        return d

    def engine_spec(self) -> dict[str, Any]:
        """The plain dict :func:`agval.scoring.make_backend` and the scoring tasks take.

        Raises:
            ConfigError: a ``standin`` without an address, a ``precomputed`` without a table.
        """
        if self.kind in ("alphagenome", "standin"):
            if self.kind == "standin" and not self.address:
                raise ConfigError("backend kind 'standin' needs an address or standin_world")
            spec: dict[str, Any] = {"kind": "alphagenome", "address": self.address,
                                    "model_version": self.model_version, "deadline_s": self.deadline_s}
            if self.standin_world:
                spec["world_dir"] = self.standin_world  # the stand-in world's canary panel
            if self.canary:
                spec["canary"] = list(self.canary)
        elif self.kind == "atlas":
            fallback = replace(self, kind="alphagenome", max_new_calls=None, dry_run=False,
                               isolation="none").engine_spec()
            spec = {"kind": "atlas", "address": self.address, "fallback": fallback}
        else:
            if not self.precomputed:
                raise ConfigError("backend kind 'precomputed' needs 'precomputed' (a parquet/CSV of scores)")
            spec = {"kind": "precomputed", "table": self.precomputed}
            if self.table_model:
                spec["model"] = self.table_model
        if self.max_attempts is not None:
            spec["max_attempts"] = self.max_attempts  # the backend's retry policy
        if self.max_new_calls is not None:  # the quota budget, read by tasks.scoring.score_variants
            spec["max_new_calls"] = self.max_new_calls
        if self.dry_run:
            spec["dry_run"] = True
        if self.isolation != "none":  # [backend] isolation = "process": a crash costs one variant
            spec["isolation"] = self.isolation
            spec["isolation_workers"] = self.isolation_workers
        return spec

    def build(self, *, fresh: bool = False) -> "ScoringBackend":
        """The backend: shared per process (:func:`agval.scoring.make_backend`), or a ``fresh``
        one nobody else holds (no memoised metadata or fingerprint: a long-lived watcher sees
        a model change). The caller closes a fresh backend."""
        from agval.scoring import build_backend, make_backend

        return build_backend(self.engine_spec()) if fresh else make_backend(self.engine_spec())
