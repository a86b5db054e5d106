"""The deployments config file (``deployments/agval.toml``): what is deployed, when, against what.

The model lives in the flows layer (it validates study kinds against :mod:`flows.registry`),
so the flows never import :mod:`deployments`; ``deployments.config`` re-exports it.

It is validated **before anything starts** (:func:`load_config` then :func:`validate`):
an invalid cron, an unknown timezone, an unknown study kind, a study file that is missing
or does not parse, a study naming an unknown backend, or an unreachable
``PREFECT_API_URL`` raise :class:`agval.errors.ConfigError` naming the file and the entry.

Format (every section optional except ``[[studies]]`` for study deployments)::

    [prefect]
    work_pool = "agval-process"      # work pool of prefect.yaml / `prefect worker start`

    [runner]                         # task runner of the study flows (flows/runners.py)
    kind = "thread"                  # thread | dask
    # address = "tcp://127.0.0.1:8786"   # dask: an existing cluster; else a local one:
    # n_workers = 2
    # processes = true

    [quota]                          # optional: a Prefect global rate limit shared by all scoring
    name = "alphagenome-quota"       # workers (created by `agval serve`; AGVAL_RATE_LIMIT_NAME is
    limit = 60                       # exported to the flow runs)
    slot_decay_per_second = 1.0

    [demo]                           # `agval serve`: prepare the SIMULATED demo first (world,
    enabled = true                   # demo study files, stand-in service) and set
    world = "${STATE_DIR}/demo/world"  # AGVAL_STANDIN_ADDRESS for the entries below

    [[backends]]                     # model endpoints watch_model fingerprints
    name = "standin"                 # -> event resource id agval.model.<name>.<model_version>
    kind = "standin"                 # alphagenome | standin | atlas | precomputed
    address = "${AGVAL_STANDIN_ADDRESS}"
    standin_world = "${STATE_DIR}/demo/world"   # canary panel of the stand-in
    model_versions = ["ALL_FOLDS"]

    [watch]
    cron = "*/30 * * * *"            # how often watch_model runs ("" = never by schedule)
    timezone = "UTC"
    rtol = 1e-3                      # canary scores count as unchanged when
    atol = 1e-6                      #   |a - b| <= atol + rtol * max(|a|, |b|)

    [revalidate]
    cron = ""                        # optional schedule; it always has the agval.model.changed trigger

    [compare]
    cron = ""
    n_boot = 2000
    seed = 0

    [[studies]]
    name = "qtl-demo"                # deployment name
    kind = "qtl"                     # qtl | twas | mpra (flows/registry.py)
    file = "${STATE_DIR}/demo/studies/qtl/*.toml"   # a study file, or a glob (one deployment per
                                     # matching TOML file with a [study] section)
    cron = "0 3 * * *"               # "" = no schedule
    backend = "standin"              # optional: a [[backends]] name (address, kind, model version)
    model_version = "ALL_FOLDS"      # optional: override
    lookup = { source = "vcf", vcf = "${STATE_DIR}/demo/world/dbsnp.vcf.gz" }   # optional [lookup] overrides
    parameters = {}                  # optional: overrides of the study file's [study] fields

    [study_kinds]                    # optional: extra study kinds, kind = "python.module"
    # (the module defines STUDY_MODEL and FLOW like flows/qtl.py)

Strings may use ``${NAME}`` or ``${NAME:-default}``: environment variables plus
``STATE_DIR`` (agval's state folder) and ``CONFIG_DIR`` (the folder of this file).
Relative paths are relative to the config file's folder.
"""

from __future__ import annotations

import datetime as _dt
import glob as _glob
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agval.errors import ConfigError

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "deployments" / "agval.toml"
ENV_CONFIG = "AGVAL_DEPLOYMENTS_CONFIG"


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PrefectSection(_M):
    work_pool: str = "agval-process"


class RunnerSection(_M):
    kind: Literal["thread", "dask"] = "thread"
    max_workers: int | None = Field(None, ge=1, description="thread: pool size")
    address: str | None = Field(None, description="dask: address of an existing cluster (tcp://host:port)")
    n_workers: int = Field(2, ge=1, description="dask: workers of a local cluster")
    threads_per_worker: int = Field(1, ge=1)
    processes: bool = True


class DemoSection(_M):
    enabled: bool = False
    world: str = "${STATE_DIR}/demo/world"
    seed: int = 7
    size: Literal["small", "medium"] = "small"
    revision: int = 0


class QuotaSection(_M):
    """A Prefect global concurrency limit used as a rate limit shared by every scoring
    worker (threads, processes, Dask workers): ``agval serve`` creates or updates it and
    exports ``AGVAL_RATE_LIMIT_NAME`` to the flow runs."""

    name: str = "alphagenome-quota"
    limit: int = Field(60, ge=1, description="slots; one call occupies its quota cost in slots")
    slot_decay_per_second: float = Field(1.0, gt=0, description="slots freed per second (the rate)")


class BackendEntry(_M):
    name: str
    kind: Literal["alphagenome", "standin", "atlas", "precomputed"] = "alphagenome"
    address: str | None = None
    standin_world: str | None = None
    precomputed: str | None = None
    model_versions: list[str] = Field(default_factory=lambda: ["ALL_FOLDS"])
    canary: list[str] | None = Field(None, description="canary variants chr1:123:A>G (default: the world's "
                                                       "first SNVs for a stand-in, well-known hg38 SNVs otherwise)")


class WatchSection(_M):
    cron: str = "*/30 * * * *"
    timezone: str = "UTC"
    rtol: float = Field(1e-3, ge=0, description="canary scores equal when |a-b| <= atol + rtol*max(|a|,|b|)")
    atol: float = Field(1e-6, ge=0)
    backends: list[str] = Field(default_factory=list, description="names to watch (default: all)")


class ScheduleSection(_M):
    cron: str = ""
    timezone: str = "UTC"


class CompareSection(ScheduleSection):
    n_boot: int = Field(2000, ge=1)
    seed: int = 0


class StudyEntry(_M):
    name: str
    kind: str
    file: str
    cron: str = ""
    timezone: str = "UTC"
    backend: str | None = None
    model_version: str | None = None
    lookup: dict[str, Any] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True


class DeploymentsConfig(_M):
    prefect: PrefectSection = PrefectSection()
    runner: RunnerSection = RunnerSection()
    quota: QuotaSection | None = None
    demo: DemoSection = DemoSection()
    backends: list[BackendEntry] = Field(default_factory=list)
    watch: WatchSection = WatchSection()
    revalidate: ScheduleSection = ScheduleSection()
    compare: CompareSection = CompareSection()
    studies: list[StudyEntry] = Field(default_factory=list)
    study_kinds: dict[str, str] = Field(default_factory=dict)
    # set by load_config
    path: str | None = None

    def backend(self, name: str) -> BackendEntry:
        for b in self.backends:
            if b.name == name:
                return b
        raise ConfigError(f"{self.path}: unknown backend {name!r}; defined: {[b.name for b in self.backends]}")

    def watched(self) -> list[BackendEntry]:
        if not self.watch.backends:
            return list(self.backends)
        return [self.backend(n) for n in self.watch.backends]


# -- loading ---------------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any, env: dict[str, str], where: str) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, env, f"{where}.{k}" if where else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        name, default = m.group(1), m.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"{where}: ${{{name}}} is not set (export it, or write ${{{name}:-default}})")

    return _VAR.sub(sub, value)


def config_path(path: str | Path | None = None) -> Path:
    """``path``, else ``$AGVAL_DEPLOYMENTS_CONFIG``, else ``deployments/agval.toml``."""
    return Path(path or os.environ.get(ENV_CONFIG) or DEFAULT_CONFIG).absolute()


def load_config(path: str | Path | None = None, *, env: dict[str, str] | None = None) -> DeploymentsConfig:
    """Parse and type-check the config file (variables expanded, paths made absolute).
    Call :func:`validate` before starting anything."""
    from agval.paths import state_dir

    from agval.config import read_toml

    p = config_path(path)
    raw = read_toml(p, what="deployments config")
    variables = {**os.environ, **(env or {})}
    variables.setdefault("STATE_DIR", str(state_dir()))
    variables.setdefault("CONFIG_DIR", str(p.parent))
    raw = _expand(raw, variables, "")
    try:
        cfg = DeploymentsConfig.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors())
        raise ConfigError(f"{p}: {problems}") from None
    base = p.parent

    def absolute(s: str | None) -> str | None:
        if not s:
            return s
        return str(Path(s) if Path(s).is_absolute() else (base / s).resolve())

    cfg.path = str(p)
    cfg.demo.world = absolute(cfg.demo.world)
    for b in cfg.backends:
        b.standin_world = absolute(b.standin_world)
        b.precomputed = absolute(b.precomputed)
    for s in cfg.studies:
        s.file = absolute(s.file)
        if s.lookup.get("vcf"):
            s.lookup["vcf"] = absolute(s.lookup["vcf"])
    return cfg


# -- validation ------------------------------------------------------------------------

def check_cron(expr: str, where: str) -> None:
    from cronsim import CronSim, CronSimError

    try:
        CronSim(expr, _dt.datetime.now(_dt.timezone.utc))
    except (CronSimError, ValueError) as e:
        raise ConfigError(f"{where}: invalid cron {expr!r}: {e} (5 fields: minute hour day-of-month month "
                          "day-of-week, e.g. '0 3 * * *')") from None


def check_timezone(tz: str, where: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: unknown timezone {tz!r} (IANA name, e.g. 'UTC' or 'Europe/Berlin')") from None


def check_server(api_url: str, timeout: float = 5.0) -> None:
    """``GET <api_url>/health``; ConfigError when it does not answer OK."""
    import httpx

    url = api_url.rstrip("/") + "/health"
    try:
        r = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as e:
        raise ConfigError(f"PREFECT_API_URL={api_url} is unreachable ({type(e).__name__}: {e}); start the server "
                          "(`agval serve` starts one when PREFECT_API_URL is unset) or fix the URL") from None
    if r.status_code != 200:
        raise ConfigError(f"PREFECT_API_URL={api_url}: {url} answered HTTP {r.status_code}; is this a Prefect API?")


def register_study_kinds(cfg: DeploymentsConfig) -> None:
    from flows import registry

    for kind, module in cfg.study_kinds.items():
        if registry.STUDIES.get(kind, module) != module:
            raise ConfigError(f"{cfg.path}: study kind {kind!r} is already registered as {registry.STUDIES[kind]!r}")
        registry.STUDIES[kind] = module


def _is_study_file(path: Path) -> bool:
    try:
        return isinstance(tomllib.loads(path.read_text()).get("study"), dict)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return True  # let the validation report what is wrong with it


def study_files(entry: StudyEntry) -> list[Path]:
    """The files of a study entry: the file, or the glob's matches that are study files
    (TOML with a ``[study]`` section; e.g. a tissue map beside them is skipped), sorted."""
    if any(ch in entry.file for ch in "*?["):
        return [Path(f) for f in sorted(_glob.glob(entry.file)) if _is_study_file(Path(f))]
    return [Path(entry.file)]


def study_overrides(cfg: DeploymentsConfig, entry: StudyEntry) -> tuple[dict[str, Any], dict[str, Any]]:
    """(backend overrides, lookup overrides) of a study entry for :func:`flows.registry.load`."""
    backend: dict[str, Any] = {}
    if entry.backend:
        b = cfg.backend(entry.backend)
        backend = {"kind": b.kind, "address": b.address, "standin_world": b.standin_world,
                   "precomputed": b.precomputed, "model_version": b.model_versions[0] if b.model_versions else None}
    if entry.model_version:
        backend["model_version"] = entry.model_version
    return {k: v for k, v in backend.items() if v is not None}, dict(entry.lookup)


def validate(cfg: DeploymentsConfig, *, check_api: bool = True, check_files: bool = True,
             check_modules: bool = True) -> None:
    """Everything that can be wrong before anything starts; raises ConfigError.

    ``check_files=False`` skips the study files (existence and contents): ``agval serve``
    checks everything else first, prepares the demo files, then validates again in full.
    ``check_modules=False`` does not import the study modules (writing prefect.yaml).
    """
    from agval.revalidation.store import check_name

    where = cfg.path
    names = [s.name for s in cfg.studies]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{where}: study names must be unique (deployment names); repeated: {dup}")
    bnames = [b.name for b in cfg.backends]
    if len(set(bnames)) != len(bnames):
        raise ConfigError(f"{where}: backend names must be unique: {bnames}")
    for b in cfg.backends:
        check_name(f"{where}: backend name", b.name)
        for mv in b.model_versions:
            check_name(f"{where}: backends.{b.name}.model_versions", mv)
        if b.kind == "standin" and not (b.address or b.standin_world):
            raise ConfigError(f"{where}: backend {b.name!r} (standin) needs an address or standin_world")
        if b.kind == "precomputed" and not (b.precomputed and Path(b.precomputed).is_file()):
            raise ConfigError(f"{where}: backend {b.name!r} (precomputed): table not found: {b.precomputed}")
    for w in cfg.watch.backends:
        cfg.backend(w)
    for label, sec in (("watch", cfg.watch), ("revalidate", cfg.revalidate), ("compare", cfg.compare)):
        if sec.cron:
            check_cron(sec.cron, f"{where}: [{label}] cron")
        check_timezone(sec.timezone, f"{where}: [{label}] timezone")
    register_study_kinds(cfg)
    from flows import registry

    deployments: dict[tuple[str, str], str] = {}
    for i, s in enumerate(cfg.studies):
        label = f"{where}: studies[{i}] ({s.name})"
        check_name(f"{label}: name", s.name)
        if s.kind not in registry.STUDIES:
            raise ConfigError(f"{label}: unknown study kind {s.kind!r}; known: {', '.join(sorted(registry.STUDIES))}")
        if s.cron:
            check_cron(s.cron, f"{label} cron")
        check_timezone(s.timezone, f"{label} timezone")
        if s.backend:
            cfg.backend(s.backend)
        if s.enabled and check_modules:
            registry.study_module(s.kind)  # ConfigError when the kind is not available in this build
        if not check_files:
            continue
        files = study_files(s)
        if not files:
            raise ConfigError(f"{label}: no study file matches {s.file}")
        for f in files:
            if not f.is_file():
                raise ConfigError(f"{label}: study file not found: {f}")
            dname = deployment_name(s, f, len(files))
            if (s.kind, dname) in deployments:
                raise ConfigError(f"{label}: deployment name {dname!r} ({f}) is also used by "
                                  f"{deployments[(s.kind, dname)]}; rename one")
            deployments[(s.kind, dname)] = f"{s.name} ({f})"
        if s.enabled:
            backend, lookup = study_overrides(cfg, s)
            for f in files:
                try:
                    kwargs = registry.load(s.kind, f, backend=backend, lookup=lookup)
                    apply_parameters(kwargs, s.parameters)
                except ConfigError as e:
                    raise ConfigError(f"{label}: {e}") from None
    if check_api:
        url = os.environ.get("PREFECT_API_URL")
        if url:
            check_server(url)


def apply_parameters(kwargs: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Override fields of the ``study`` model (validated again)."""
    if overrides:
        study = kwargs["study"]
        data = study.model_dump()
        data.update(overrides)
        try:
            kwargs["study"] = type(study).model_validate(data)
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors())
            raise ConfigError(f"parameters: {problems}") from None
    return kwargs


def study_parameters(cfg: DeploymentsConfig, entry: StudyEntry, file: Path) -> dict[str, Any]:
    """The flow parameters (JSON) of one study deployment."""
    from flows import registry

    backend, lookup = study_overrides(cfg, entry)
    kwargs = apply_parameters(registry.load(entry.kind, file, backend=backend, lookup=lookup), entry.parameters)
    return {k: (v.model_dump(mode="json") if isinstance(v, BaseModel) else v) for k, v in kwargs.items()}


def deployment_name(entry: StudyEntry, file: Path, n_files: int) -> str:
    """The entry's name; for a glob, the study file's stem (``caqtl-cd4``)."""
    globbed = any(ch in entry.file for ch in "*?[")
    return file.stem if globbed else entry.name


#: variables ``agval serve`` sets after preparing the demo (placeholders while pre-validating)
DEMO_VARIABLES = {"AGVAL_STANDIN_ADDRESS": "127.0.0.1:1"}


def demo_enabled(path: str | Path | None = None) -> bool:
    """Whether the config's ``[demo] enabled`` is true (read without expanding variables)."""
    p = config_path(path)
    try:
        return bool((tomllib.loads(p.read_text()).get("demo") or {}).get("enabled"))
    except (OSError, tomllib.TOMLDecodeError):
        return False


def load_and_validate(path: str | Path | None = None, *, check_api: bool = True,
                      env: dict[str, str] | None = None) -> DeploymentsConfig:
    cfg = load_config(path, env=env)
    validate(cfg, check_api=check_api)
    return cfg
