"""``agval demo``: the whole tool, offline, on embedded defaults (SIMULATED)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def demo(
    world: Optional[Path] = typer.Option(None, help="World folder (default: <state>/demo/world; built if absent)."),
    seed: int = typer.Option(7, help="World seed (used when the world is built)."),
    size: str = typer.Option("small", help="World size when built: small|medium."),
    study: Optional[list[str]] = typer.Option(None, "--study", help="Only these study kinds (qtl, twas, mpra)."),
) -> None:
    """Build the synthetic world, start the stand-ins, run every demo study, stop everything.

    Needs no network and no API key. Results are labelled simulated and written under
    the simulated results root (default ./results-simulated).
    """
    from agval.paths import results_root, state_dir
    from standins.launch import start_service
    from standins.world import build_world, is_world_dir, summary

    world_dir = (world or state_dir() / "demo" / "world").absolute()
    if not is_world_dir(world_dir):
        typer.echo(f"building the synthetic world in {world_dir} ...")
        build_world(world_dir, seed=seed, size=size)
    typer.echo(summary(world_dir))
    logs = state_dir() / "demo" / "logs"
    from flows.demo import demo as demo_flow  # imports Prefect

    with start_service("alphagenome", world_dir, log_dir=logs) as ag, \
            start_service("myvariant", world_dir, log_dir=logs) as mv:
        typer.echo(f"stand-in AlphaGenome on {ag.address}, stand-in myvariant.info on {mv.base_url} (simulated)")
        result = demo_flow(str(world_dir), ag.address, mv.base_url, str(state_dir() / "demo" / "studies"),
                           studies=list(study) if study else None)
    typer.echo(f"stand-ins stopped (exit codes {ag.proc.returncode}, {mv.proc.returncode})")
    summary_rows = {k: {"run_folder": v.get("run_folder"), "headline": v.get("headline")} for k, v in result.items()}
    from agval.runs import jsonable

    typer.echo(json.dumps(jsonable(summary_rows), indent=2, default=str))
    typer.echo(f"all demo results are under {results_root(simulated=True)}")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
