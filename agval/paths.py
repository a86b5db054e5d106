"""Where agval keeps state and results.

* state folder: ``$AGVAL_HOME`` or ``./.agval`` (caches, Prefect home, stand-in logs);
* real results: ``$AGVAL_RESULTS`` or ``./results``;
* simulated results (stand-ins, synthetic world): ``$AGVAL_SIM_RESULTS`` or
  ``./results-simulated``.

The two result roots never nest inside each other; :func:`results_root` refuses a
configuration where they would, so a simulated run can never be written where real
results go (pitfall P13 of the seed studies).
"""

from __future__ import annotations

import os
from pathlib import Path

from agval.errors import ConfigError


def state_dir() -> Path:
    p = Path(os.environ.get("AGVAL_HOME") or ".agval").absolute()
    p.mkdir(parents=True, exist_ok=True)
    return p


def cache_dir(kind: str, simulated: bool) -> Path:
    """A cache folder. Simulated and real caches are separate trees."""
    p = state_dir() / "cache" / ("simulated" if simulated else "real") / kind
    p.mkdir(parents=True, exist_ok=True)
    return p


def _real_root() -> Path:
    return Path(os.environ.get("AGVAL_RESULTS") or "results").absolute()


def _sim_root() -> Path:
    return Path(os.environ.get("AGVAL_SIM_RESULTS") or "results-simulated").absolute()


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


def results_root(simulated: bool) -> Path:
    real, sim = _real_root(), _sim_root()
    if _inside(sim, real) or _inside(real, sim):
        raise ConfigError(
            f"the simulated results root ({sim}) and the real results root ({real}) must not "
            "nest inside each other; set AGVAL_RESULTS and AGVAL_SIM_RESULTS to separate folders")
    return sim if simulated else real


def check_destination(path: Path, simulated: bool) -> None:
    """Refuse to write a run folder into the wrong results tree."""
    from agval.errors import SimulatedResultsError

    real, sim = _real_root(), _sim_root()
    if simulated and _inside(path, real):
        raise SimulatedResultsError(f"simulated output may not be written under the real results root {real}: {path}")
    if not simulated and _inside(path, sim):
        raise SimulatedResultsError(f"real output may not be written under the simulated results root {sim}: {path}")
