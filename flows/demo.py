"""The demo flow: everything agval does, offline, on the synthetic world (SIMULATED).

``agval demo`` builds (or reuses) the small synthetic world, starts the stand-in
AlphaGenome and myvariant.info services in their own processes, and runs this flow:

1. **smoke**: the real SDK client and httpx client against the stand-ins: the model
   fingerprint, an allele lookup, a scoring round trip; written as a run record;
2. **studies**: every registered study kind whose demo generator exists (QTL, TWAS,
   MPRA) generates its inputs from the world's ground truth in the real file formats and
   runs through its own flow as a subflow; the QTL flow also runs the causality
   benchmark (``standins.world.studies.causality``, :data:`EXTRA_GENERATORS`).

Everything lands under the simulated results root.
"""

from __future__ import annotations

import contextlib

import importlib
from pathlib import Path
from typing import Any, Callable

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows import registry
from flows._common import run_name, start_run


@task(name="standin-smoke", cache_policy=NO_CACHE)
def standin_smoke(world_dir: str, alphagenome_address: str, myvariant_url: str) -> dict[str, Any]:
    """Exercise both stand-ins through the product's real clients; returns the run folder."""
    from agval.alleles.cache import lookup_rsids
    from agval.alleles.myvariant import MyVariantClient
    from agval.scoring import make_backend, score
    from standins.world import World

    world = World.load(world_dir)
    backend = make_backend({"kind": "alphagenome", "address": alphagenome_address, "world_dir": world_dir})
    rec = start_run("demo-smoke", "agval-demo", {"world": world_dir}, simulated=backend.simulated, seed=world.seed,
                    report=False)
    with rec:
        fp = backend.fingerprint()
        rsids = world.variants.filter(pl.col("status") == "ok")["rsid"].unique(maintain_order=True).head(200).to_list()
        rsids += world.absent_rsids[:5]
        with MyVariantClient(myvariant_url, pace=0) as client:
            looked = lookup_rsids(rsids, client)
        found = looked.table.filter(pl.col("status") == "ok")
        variants = (found.filter((pl.col("ref").str.len_chars() == 1) & (pl.col("alt").str.len_chars() == 1))
                    .unique("query", keep="first", maintain_order=True).head(25)
                    .select(pl.col("query").alias("row_id"), "chrom", "pos", "ref", "alt"))
        run = score(variants, ["ATAC", "RNA_SEQ"], backend=backend, cache=None, progress=False)
        run.record(rec)
        rec.write_table("lookup", looked.table)
        metrics = {"fingerprint": fp.get("digest"), "rsids_queried": len(rsids),
                   "rsids_found": found["query"].n_unique(), "lookup_requests": looked.requests,
                   "variants_scored": variants.height, "score_rows": run.scores.height,
                   "score_failures": run.failures.height}
        rec.add_metrics(metrics)
    return {"run_folder": str(rec.folder), "simulated": rec.manifest["simulated"], "metrics": metrics}


#: further demo generators run through a kind's flow (``standins.world.studies.<module>``):
#: the QTL causality benchmark is a mode of the QTL flow (``benchmark = "causality"``)
EXTRA_GENERATORS: dict[str, tuple[str, ...]] = {"qtl": ("causality",)}


def demo_generators() -> dict[str, Any]:
    """Study kinds whose flow and demo generator both exist in this build."""
    out = {}
    for kind in registry.available():
        try:
            out[kind] = importlib.import_module(f"standins.world.studies.{kind}")
        except ModuleNotFoundError as e:
            if not (e.name or "").startswith("standins.world.studies"):
                raise
    return out


def run_demo(world: str | Path | None = None, *, seed: int = 7, size: str = "small",
             studies: list[str] | None = None, echo: Callable[[str], Any] = print,
             around: Callable[[], Any] | None = None) -> dict[str, Any]:
    """What ``agval demo`` does: build (or reuse) the synthetic world, start the stand-in
    AlphaGenome and myvariant.info services in their own processes, run :func:`demo`, stop
    them.

    Args:
        world: the world folder (default ``<state>/demo/world``; built when absent).
        seed, size: the world's seed and size when it is built.
        studies: only these study kinds (default: every kind with a demo generator).
        echo: where progress lines go (the CLI passes ``typer.echo``).
        around: a context-manager factory entered around the studies (the CLI's progress bars).

    Returns:
        :func:`demo`'s result: ``smoke`` and one entry per study run (``run_folder``, ``headline``...).
    """
    from agval.paths import state_dir
    from standins.launch import start_service
    from standins.world import build_world, is_world_dir, summary

    world_dir = Path(world or state_dir() / "demo" / "world").absolute()
    if not is_world_dir(world_dir):
        echo(f"building the synthetic world in {world_dir} ...")
        build_world(world_dir, seed=seed, size=size)
    echo(summary(world_dir))
    logs = state_dir() / "demo" / "logs"
    with start_service("alphagenome", world_dir, log_dir=logs) as ag, \
            start_service("myvariant", world_dir, log_dir=logs) as mv:
        echo(f"stand-in AlphaGenome on {ag.address}, stand-in myvariant.info on {mv.base_url} (simulated)")
        with (around() if around is not None else contextlib.nullcontext()):
            result = demo(str(world_dir), ag.address, mv.base_url, str(state_dir() / "demo" / "studies"),
                          studies=studies)
    echo(f"stand-ins stopped (exit codes {ag.proc.returncode}, {mv.proc.returncode})")
    return result


@flow(name="agval-demo", flow_run_name=run_name("demo"),
      log_prints=True)
def demo(world_dir: str, alphagenome_address: str, myvariant_url: str, studies_dir: str,
         studies: list[str] | None = None, seed: int = 0) -> dict[str, Any]:
    """Run the smoke checks, then each demo study against the stand-ins."""
    log = get_run_logger()
    results: dict[str, Any] = {"smoke": standin_smoke(world_dir, alphagenome_address, myvariant_url)}
    log.info("stand-ins OK: %s", results["smoke"]["metrics"])
    gens = demo_generators()
    for kind, gen in gens.items():
        if studies and kind not in studies:
            continue
        out = Path(studies_dir) / kind
        files = list(gen.generate(world_dir, out, seed=seed))
        for extra in EXTRA_GENERATORS.get(kind, ()):
            mod = importlib.import_module(f"standins.world.studies.{extra}")
            files += list(mod.generate(world_dir, out, seed=seed))
        for study_file in files:
            if Path(study_file).suffix != ".toml":
                continue
            res = registry.run(kind, study_file,
                               backend={"kind": "standin", "address": alphagenome_address,
                                        "standin_world": world_dir},
                               lookup={"source": "myvariant", "base_url": myvariant_url,
                                       "requests_per_second": 1000.0})
            results[f"{kind}:{Path(study_file).stem}"] = res
            log.info("%s %s -> %s", kind, Path(study_file).stem, res.get("run_folder"))
    return results
