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
    from agval.paths import results_root
    from flows.demo import run_demo  # the demo (the top) starts the stand-ins; imports Prefect

    result = run_demo(world, seed=seed, size=size, studies=list(study) if study else None, echo=typer.echo)
    summary_rows = {k: {"run_folder": v.get("run_folder"), "headline": v.get("headline")} for k, v in result.items()}
    from agval.runs import jsonable

    typer.echo(json.dumps(jsonable(summary_rows), indent=2, default=str))
    typer.echo(f"all demo results are under {results_root(simulated=True)}")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
