"""Calibration benchmark of agval's statistics (issue 12, "Done when").

Runs every ``bench/_calibration_*.py`` module it finds. Each exposes
``calibrate(n_studies: int, seed: int) -> dict`` returning at least
``{"type1": {test_name: rate}, "power": {name: rate}}`` - type-I error at alpha = 0.05 of
its **corrected-mode** tests over ``n_studies`` simulated null studies, and power in a
planted world - and optionally ``"original": {test_name: rate}``: the seed's tests, known
to be anti-conservative where units are shared, printed for information only. A type-I
name starting with ``original`` is treated the same way.

Prints one table per module, then as its last line exactly::

    RESULT worst_type1=<x> best_type1=<y> n_tests=<k> n_studies=<n> power_q1_eqtl=<p>

``worst_type1`` / ``best_type1`` are the largest / smallest type-I error over the corrected
tests of every module (target: all in [0.03, 0.07]); ``power_q1_eqtl`` is the power of the
primary TWAS Q1 estimand (target >= 0.8). With ``n`` studies a rate's Monte-Carlo standard
error is ``sqrt(0.05 * 0.95 / n)`` (0.015 at n = 200): the table prints the binomial 95 %
range a calibrated test falls in.

Run: ``python bench/calibration.py [--studies 1000] [--seed 0] [--quick]`` (``--quick``: 40
studies). Everything is simulated; one core, minutes.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
from pathlib import Path

from scipy import stats

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # run from anywhere: the repo root holds agval/ and standins/
    sys.path.insert(0, str(HERE.parent))
ALPHA = 0.05


def _modules() -> list[tuple[str, object]]:
    out = []
    for p in sorted(HERE.glob("_calibration_*.py")):
        spec = importlib.util.spec_from_file_location(p.stem, p)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[p.stem] = mod
        spec.loader.exec_module(mod)  # type: ignore[union-attr]
        if hasattr(mod, "calibrate"):
            out.append((p.stem.removeprefix("_calibration_"), mod))
    return out


def _fmt(x: float) -> str:
    return "nan" if x is None or not math.isfinite(x) else f"{x:.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--studies", type=int, default=1000,
                    help="simulated studies per test (default 1000: at 200 the Monte-Carlo error alone puts a "
                         "calibrated test outside [0.03, 0.07] one time in five)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="40 studies (a smoke run; rates are noisy)")
    args = ap.parse_args(argv)
    n = 40 if args.quick else args.studies
    lo, hi = stats.binom.ppf([0.025, 0.975], n, ALPHA) / n
    print(f"calibration: {n} simulated studies per test, alpha = {ALPHA}; a calibrated test's rate "
          f"falls in [{lo:.3f}, {hi:.3f}] with 95 % probability (Monte-Carlo error)")
    corrected: dict[str, float] = {}
    power: dict[str, float] = {}
    for name, mod in _modules():
        t0 = time.perf_counter()
        res = mod.calibrate(n, args.seed)  # type: ignore[attr-defined]
        dt = time.perf_counter() - t0
        t1 = dict(res.get("type1", {}))
        orig = dict(res.get("original", {}))
        for k in [k for k in t1 if k.startswith("original")]:
            orig[k] = t1.pop(k)
        print(f"\n== {name} ({dt:.0f} s)")
        print(f"{'corrected test':58s} type-I")
        pairs = res.get("seed_counterpart", {})
        for k, v in t1.items():
            flag = "" if (math.isfinite(v) and 0.03 <= v <= 0.07) else "  <-- outside [0.03, 0.07]"
            if k in pairs:   # the seed's test of the same question in the same world
                _, r, label = pairs[k]
                flag += f"   seed {_fmt(r)} ({label})" if math.isfinite(r) else f"   ({label})"
            print(f"  {k:56s} {_fmt(v)}{flag}")
            corrected[f"{name}:{k}"] = v
        if orig:
            print(f"{'original (known miscalibrated)':58s} type-I")
            for k, v in orig.items():
                print(f"  {k:56s} {_fmt(v)}")
        if res.get("information"):
            print(f"{'information (not counted), ' + str(res.get('n_information')) + ' studies':58s} rate")
            for k, v in res["information"].items():
                print(f"  {k:56s} {_fmt(v)}")
        if res.get("power"):
            print(f"{'power':58s} rate")
            for k, v in res["power"].items():
                print(f"  {k:56s} {_fmt(v)}")
                power[k] = v
    vals = [v for v in corrected.values() if math.isfinite(v)]
    worst = max(vals) if vals else float("nan")
    best = min(vals) if vals else float("nan")
    p_q1 = power.get("q1_eqtl", float("nan"))
    print(f"RESULT worst_type1={_fmt(worst)} best_type1={_fmt(best)} n_tests={len(corrected)} "
          f"n_studies={n} power_q1_eqtl={_fmt(p_q1)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
