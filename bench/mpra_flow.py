"""MPRA benchmark flow: wall time and peak memory (SIMULATED world and stand-in).

    python bench/mpra_flow.py [--quick] [--world DIR]

Two cases, each in a fresh process (so peak RSS is that case's alone) with an empty
prediction cache and its own in-process stand-in AlphaGenome:

(a) the demo library: 300 constructs = 300 distinct oligos (120 with --quick), primary
    run with mouse adipocyte tracks plus the K562 sensitivity run, all figures;
(b) a 100,000-construct synthetic library (20,000 with --quick): 500 distinct oligos
    repeated as barcoded replicate blocks (rows >> distinct inputs: the
    pseudo-replication warning fires), summary figures, ``n_boot = n_perm = 200``.

Printed per case: constructs in the library and analysed (after the ``min_dna = 10``
filter), distinct model inputs, wall time of the flow call
(``flow_s``), of which prediction (``predict_s``, from the engine's summary), Prefect's
per-flow overhead measured with an empty flow (``prefect_noop_s``), and peak RSS
(``peak_rss_mb``, ``ru_maxrss`` of the case process). Numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _case(world: str, kind: str, quick: bool, work: str) -> dict:
    os.environ["AGVAL_HOME"] = str(Path(work) / "state")
    os.environ["AGVAL_SIM_RESULTS"] = str(Path(work) / "results-simulated")
    os.environ.setdefault("PREFECT_HOME", str(Path(work) / "prefect"))
    from agval import prefect_env

    prefect_env.configure()
    from prefect import flow

    from standins.alphagenome import serve
    from standins.world.studies.mpra import generate

    @flow(name="noop")
    def noop() -> int:
        return 1

    t = time.perf_counter()
    noop()
    first_noop = time.perf_counter() - t
    t = time.perf_counter()
    noop()
    noop_s = time.perf_counter() - t

    if kind == "demo":
        n, designs, extra = (120 if quick else 300), None, {}
        gen = dict(sensitivity=True, n_boot=1000, n_perm=1000)
    else:
        n, designs = (20_000 if quick else 100_000), 500
        gen = dict(sensitivity=False, n_boot=200, n_perm=200)
        extra = {"figures": "summary"}
    t = time.perf_counter()
    paths = generate(world, Path(work) / "library", seed=1, n_constructs=n, n_designs=designs, **gen)
    gen_s = time.perf_counter() - t
    handle = serve(world, port=0)
    try:
        from flows import registry
        from flows.mpra import FLOW

        kw = registry.load("mpra", paths[0], backend={"kind": "standin", "address": handle.address})
        kw["study"] = kw["study"].model_copy(update=extra)
        t = time.perf_counter()
        res = FLOW(**kw)
        flow_s = time.perf_counter() - t
    finally:
        handle.stop()
    m = res["metrics"]
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    predict_s = m["predictions"].get("seconds")
    sens = m.get("sensitivity", {}).get("predictions", {}).get("seconds")
    return {"case": kind, "library": m["activity"]["n_loaded"], "constructs": m["inputs"]["n_rows"], "distinct_inputs": m["inputs"]["n_distinct_inputs"],
            "pseudo_replication_warning": m["inputs"]["pseudo_replication_warning"],
            "generate_s": round(gen_s, 2), "flow_s": round(flow_s, 2), "predict_s": predict_s,
            "sensitivity_predict_s": sens, "prefect_first_flow_s": round(first_noop, 2),
            "prefect_noop_s": round(noop_s, 3), "peak_rss_mb": round(rss_kb / 1024, 1),
            "headline": res["headline"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller libraries (120 and 20,000 constructs)")
    ap.add_argument("--world", help="an existing synthetic world (default: build small seed 7 in a temp dir)")
    ap.add_argument("--case", choices=["demo", "large"], help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.case:
        print("RESULT " + json.dumps(_case(a.world, a.case, a.quick, a.work)))
        return
    with tempfile.TemporaryDirectory(prefix="agval-bench-mpra-") as tmp:
        world = a.world
        if not world:
            from standins.world import build_world

            world = str(build_world(Path(tmp) / "world", seed=7, size="small"))
        for case in ("demo", "large"):
            work = Path(tmp) / case
            work.mkdir()
            cmd = [sys.executable, __file__, "--case", case, "--world", world, "--work", str(work)]
            if a.quick:
                cmd.append("--quick")
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT))
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if proc.returncode or line is None:
                print(f"{case}: failed (exit {proc.returncode})\n{proc.stderr[-3000:]}", file=sys.stderr)
                sys.exit(1)
            r = json.loads(line[len("RESULT "):])
            print(f"{case}: {r['library']:,} constructs ({r['constructs']:,} analysed after min_dna), "
                  f"{r['distinct_inputs']:,} distinct inputs"
                  f"{' (pseudo-replication warning)' if r['pseudo_replication_warning'] else ''}: "
                  f"flow {r['flow_s']:.1f} s (predictions {r['predict_s']} s"
                  + (f", sensitivity run {r['sensitivity_predict_s']} s" if r['sensitivity_predict_s'] else "")
                  + f"; Prefect per-flow overhead {r['prefect_noop_s']} s), peak RSS {r['peak_rss_mb']:.0f} MB; "
                  f"library generation {r['generate_s']:.1f} s")
            print(f"  {r['headline']}")


if __name__ == "__main__":
    main()
