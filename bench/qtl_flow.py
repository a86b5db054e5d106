"""QTL flow benchmark: the demo QTL studies (caQTL CD4+ T, hQTL LCL) against the stand-ins.

    python bench/qtl_flow.py [--quick] [--sizes small,medium] [--work DIR] [--keep]

For each world size (``small`` and ``medium``; ``small`` only with ``--quick``) a child
process builds the world (seed 7), generates the demo studies (300 caQTL / 250 hQTL rows;
60 / 40 with ``--quick``), starts the AlphaGenome and myvariant stand-ins in-process and a
Prefect API server, then runs each study three times:

1. ``flow (cold)`` - the Prefect flow with empty caches (what a first run costs);
2. ``plain (warm)`` - the same steps as plain functions (:func:`agval.qtl.pipeline.run_plain`),
   caches warm;
3. ``flow (warm)`` - the flow again, caches warm.

Steps 2 and 3 alternate three times; the fastest of each counts (two shared cores are noisy).

Printed per study (SIMULATED services; numbers depend on the machine): rows in the table,
wall time of each run, peak RSS of the process during the cold flow run (sampled every
20 ms; the process also hosts the in-process stand-ins, whose share is the baseline RSS
printed per world), and **Prefect's overhead** = flow warm - plain warm, in seconds and as
a share of flow warm: both do identical work (cached lookups and scores, same bootstraps
and figures), so the difference is Prefect's (flow and task runs, artifacts, state
updates, logs). The Prefect server's start-up time is printed apart (a long-running
server pays it once).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUICK = {"n_caqtl": 60, "n_hqtl": 40, "n_boot": 200}
REPEATS = 3
FULL = {"n_caqtl": 300, "n_hqtl": 250, "n_boot": 1000}


def child(size: str, work: Path, quick: bool) -> dict:
    """Everything for one world size, in this process; returns the measurements."""
    from bench._sampling import Sampler

    os.environ["AGVAL_HOME"] = str(work / "state")
    os.environ["AGVAL_SIM_RESULTS"] = str(work / "results-simulated")
    os.environ["AGVAL_RESULTS"] = str(work / "results")
    os.environ["PREFECT_HOME"] = str(work / "prefect")
    from agval import prefect_env

    prefect_env.configure()
    from prefect.settings import (PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
                                  PREFECT_SERVER_DATABASE_CONNECTION_URL, temporary_settings)

    from agval.alleles.myvariant import MyVariantClient
    from agval.qtl.pipeline import run_plain
    from agval.scoring import make_backend
    from flows import registry
    from standins.alphagenome import serve as ag_serve
    from standins.myvariant.server import serve as mv_serve
    from standins.world import build_world
    from standins.world.studies import qtl as gen

    out: dict = {"size": size, "studies": []}
    t0 = time.perf_counter()
    world = build_world(work / f"world-{size}", seed=7, size=size)
    out["world_build_s"] = time.perf_counter() - t0
    params = QUICK if quick else FULL
    t0 = time.perf_counter()
    files = gen.generate(world, work / f"studies-{size}", seed=0, **params)
    out["generate_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ag = ag_serve(world, port=0)
    mv = mv_serve(world)
    out["standins_start_s"] = time.perf_counter() - t0
    import psutil

    out["baseline_rss_mb"] = psutil.Process().memory_info().rss / 2 ** 20
    overrides = {"backend": {"kind": "standin", "address": ag.address, "standin_world": str(world)},
                 "lookup": {"source": "myvariant", "base_url": mv.base_url, "requests_per_second": 1000.0}}
    db = work / f"prefect-{size}.db"
    try:
        with temporary_settings(updates={PREFECT_SERVER_DATABASE_CONNECTION_URL: f"sqlite+aiosqlite:///{db}"}):
            from prefect.server.api.server import SubprocessASGIServer

            t0 = time.perf_counter()
            server = SubprocessASGIServer()
            server.start(timeout=180)
            out["prefect_server_start_s"] = time.perf_counter() - t0
            try:
                with temporary_settings(updates={PREFECT_API_URL: server.api_url,
                                                 PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
                    for toml in [f for f in files if f.suffix == ".toml"]:
                        kwargs = registry.load("qtl", toml, **overrides)
                        study = kwargs["study"]
                        rec: dict = {"study": study.name}
                        with Sampler(every=0.02) as mem:
                            t0 = time.perf_counter()
                            res = registry.run("qtl", toml, **overrides)
                            rec["flow_cold_s"] = time.perf_counter() - t0
                        rec["peak_rss_mb"] = mem.peak_rss / 2 ** 20
                        rec["rows"] = res["metrics"]["counts"]["input_rows"]
                        rec["analysed_rows"] = res["metrics"]["counts"]["analysed_rows"]
                        rec["rho_corrected"] = res["headline"].get("spearman_rho")
                        rec["rho_original"] = res["headline"].get("original_spearman_rho")
                        # the flow's own backend spec: the same model version, hence the same cache
                        # namespace (a bare spec would mean model version "default": a cold cache)
                        from flows._common import backend_spec

                        backend = make_backend(backend_spec(kwargs["backend"]))
                        plain_times, flow_times = [], []
                        for _ in range(REPEATS):  # alternate, keep the fastest of each (shared machines are noisy)
                            t0 = time.perf_counter()
                            with MyVariantClient(mv.base_url, pace=0) as src, _record(study) as run_record:
                                plain = run_plain(study, backend=backend, lookup_source=src, simulated=True,
                                                  record=run_record)
                            plain_times.append(time.perf_counter() - t0)
                            t0 = time.perf_counter()
                            registry.run("qtl", toml, **overrides)
                            flow_times.append(time.perf_counter() - t0)
                        rec["plain_steps_s"] = {k: round(v, 3) for k, v in plain["timings"].items()}
                        rec["plain_warm_s"], rec["flow_warm_s"] = min(plain_times), min(flow_times)
                        rec["prefect_overhead_s"] = rec["flow_warm_s"] - rec["plain_warm_s"]
                        rec["prefect_overhead_share"] = max(0.0, rec["prefect_overhead_s"] / rec["flow_warm_s"])
                        out["studies"].append(rec)
                    from prefect.events.worker import EventsWorker
                    from prefect.logging.handlers import APILogWorker

                    APILogWorker.drain_all()
                    EventsWorker.drain_all()
            finally:
                server.stop()
    finally:
        ag.stop(grace=0.2)
        mv.stop()
    return out


def _record(study):
    """A run record for the plain run (same outputs as the flow writes)."""
    from agval.runs import RunRecord

    return RunRecord.start(study.name + "-plain", "bench-plain", simulated=True, seed=study.seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small world only, 60 caQTL / 40 hQTL rows")
    ap.add_argument("--sizes", default=None, help="comma-separated world sizes (default small,medium; "
                                                  "small with --quick)")
    ap.add_argument("--work", default=None, help="working folder (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the working folder")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        res = child(args.child, Path(args.work), args.quick)
        print("RESULT " + json.dumps(res, default=str))
        return
    sizes = (args.sizes or ("small" if args.quick else "small,medium")).split(",")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="agval-bench-qtl-"))
    print(f"QTL flow benchmark (SIMULATED stand-ins; {'--quick, ' if args.quick else ''}work folder {work})")
    results = []
    for size in sizes:
        wdir = work / size
        wdir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, __file__, "--child", size, "--work", str(wdir)] + (["--quick"] if args.quick else [])
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if p.returncode != 0 or line is None:
            print(p.stdout[-3000:], p.stderr[-5000:], file=sys.stderr)
            raise SystemExit(f"benchmark child for {size} failed (exit {p.returncode})")
        res = json.loads(line[len("RESULT "):])
        res["child_wall_s"] = time.perf_counter() - t0
        results.append(res)
    print()
    for res in results:
        print(f"world {res['size']}: build {res['world_build_s']:.1f} s, demo studies generated in "
              f"{res['generate_s']:.1f} s, stand-ins started in {res['standins_start_s']:.1f} s, Prefect server "
              f"started in {res['prefect_server_start_s']:.1f} s (paid once per server); baseline RSS "
              f"{res['baseline_rss_mb']:.0f} MB")
        hdr = (f"  {'study':<16}{'rows':>6}{'flow cold s':>13}{'plain warm s':>14}{'flow warm s':>13}"
               f"{'Prefect s':>11}{'Prefect share':>15}{'peak RSS MB':>13}{'rho corr/orig':>16}")
        print(hdr)
        for s in res["studies"]:
            rc, ro = s.get("rho_corrected"), s.get("rho_original")
            print(f"  {s['study']:<16}{s['rows']:>6}{s['flow_cold_s']:>13.1f}{s['plain_warm_s']:>14.1f}"
                  f"{s['flow_warm_s']:>13.1f}{s['prefect_overhead_s']:>11.1f}{100 * s['prefect_overhead_share']:>14.1f}%{s['peak_rss_mb']:>13.0f}"
                  f"{(f'{rc:.2f}/{ro:.2f}' if rc is not None and ro is not None else '-'):>16}")
            print(f"  {'':<16}plain steps (s): " + ", ".join(f"{k} {v}" for k, v in s["plain_steps_s"].items()))
    if not args.keep and not args.work:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
