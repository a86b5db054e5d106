"""Typed configuration shared by every study flow.

These pydantic models are flow parameters, so the Prefect UI renders them as forms, and
they are what a study file (TOML) is parsed into for ``agval run <study> FILE``. Paths in
a study file are relative to the file's folder.

A study file looks like::

    [study]
    name = "caqtl-cd4"
    ...                      # study-specific fields (see flows/<study>.py)

    [backend]
    kind = "alphagenome"     # alphagenome | standin | atlas | precomputed
    model_version = "ALL_FOLDS"

    [lookup]
    source = "myvariant"     # myvariant | vcf
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agval.errors import ConfigError

DEFAULT_ALPHAGENOME_ADDRESS = None  # None = the SDK's own default endpoint (dna_client.create)
DEFAULT_MYVARIANT_URL = "https://myvariant.info"  # the client appends /v1/query


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BackendConfig(_Model):
    """Where predictions come from."""

    kind: Literal["alphagenome", "standin", "atlas", "precomputed"] = Field(
        "alphagenome", description="alphagenome: the live API (key from ALPHAGENOME_API_KEY or a Prefect "
        "Secret block); standin: the simulated local service; atlas: precomputed SNV scores; "
        "precomputed: a table of any model's scores")
    address: str | None = Field(None, description="host:port of a compatible service (self-hosted model or "
                                "stand-in); empty = the SDK's default endpoint")
    model_version: str = Field("ALL_FOLDS", description="ALL_FOLDS or FOLD_0..FOLD_3")
    standin_world: str | None = Field(None, description="kind=standin without an address: start an in-process "
                                      "stand-in over this synthetic world folder")
    precomputed: str | None = Field(None, description="kind=precomputed: parquet/CSV of scores")
    deadline_s: float = Field(120.0, gt=0, description="per-call deadline (the SDK sets none)")
    max_workers: int = Field(16, ge=1, le=256, description="the concurrency budget: calls in flight, scoring "
                             "threads and chunk tasks together")
    chunk_size: int = Field(200, ge=1)
    max_attempts: int = Field(5, ge=1, description="attempts per call (1 = no retry); transient codes and, "
                              "at most twice, INTERNAL are retried")
    max_new_calls: int | None = Field(None, ge=0, description="stop before scoring if the run needs more new "
                                      "calls than this (after the cache)")
    dry_run: bool = Field(False, description="plan only: report how many new calls the run would make, "
                          "then stop (agval run ... --dry-run)")
    isolation: Literal["none", "process"] = Field(
        "none", description="process: run each scoring call and its decoding in a child process, so a "
        "crash (segfault) costs that variant (dropped, reason scoring_crashed), not the run")
    isolation_workers: int = Field(2, ge=1, le=64, description="isolation=process: worker processes "
                                   "(each scores one variant at a time)")


class LookupConfig(_Model):
    """Where rsIDs are resolved to hg38 alleles."""

    source: Literal["myvariant", "vcf"] = "myvariant"
    base_url: str = DEFAULT_MYVARIANT_URL
    vcf: str | None = Field(None, description="source=vcf: a dbSNP-style VCF (plain or gzip)")
    requests_per_second: float = Field(1.0, gt=0, description="polite pace against the real service")
    palindromic: Literal["drop", "af"] = Field("drop", description="A/T and C/G sites: drop, or resolve by "
                                               "allele frequency")


M = TypeVar("M", bound=BaseModel)


def _resolve(v: str, base: Path) -> str:
    return v if not v or Path(v).is_absolute() else str((base / v).resolve())


def _resolve_paths(obj, base: Path, keys: set[str]):
    """Make every path-valued field (a string, or a list of strings) absolute against ``base``."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k in keys and isinstance(v, str):
                out[k] = _resolve(v, base)
            elif k in keys and isinstance(v, list) and all(isinstance(x, str) for x in v):
                out[k] = [_resolve(x, base) for x in v]
            else:
                out[k] = _resolve_paths(v, base, keys)
        return out
    if isinstance(obj, list):
        return [_resolve_paths(v, base, keys) for v in obj]
    return obj


PATH_KEYS = {"table", "tables", "vcf", "precomputed", "standin_world", "reference_fasta", "counts", "sequences",
             "gwas", "susie", "twas", "tissue_map", "predictions", "measured", "world", "path", "fasta", "eqtl",
             "twas_weights", "ld"}


def read_toml(path: str | Path, *, what: str) -> dict:
    """A TOML file as a dict; a missing file or bad TOML is a :class:`ConfigError` naming it."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} not found: {p}")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not a text (UTF-8) file: byte {e.start} cannot be decoded") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the {what}: {e.strerror}") from None


def load_study_file(path: str | Path, model: type[M]) -> M:
    """Parse a TOML study file into ``model``; errors name the file and the field."""
    p = Path(path)
    raw = _resolve_paths(read_toml(p, what="study file"), p.parent.resolve(), PATH_KEYS)
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors())
        raise ConfigError(f"{p}: {problems}") from None
