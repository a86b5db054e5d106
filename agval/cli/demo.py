"""``agval demo``: the whole tool, offline, on embedded defaults (SIMULATED)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Optional

import typer


def demo(
    world: Optional[Path] = typer.Option(None, help="World folder (default: <state>/demo/world; built if absent)."),
    seed: int = typer.Option(7, help="World seed (used when the world is built)."),
    size: str = typer.Option("small", help="World size when built: small|medium."),
    study: Optional[list[str]] = typer.Option(None, "--study", help="Only these study kinds (qtl, twas, mpra)."),
    as_json: bool = typer.Option(False, "--json", help="Print the machine summary (JSON) instead of the tables."),
) -> None:
    """Build the synthetic world, start the stand-ins, run every demo study, stop everything.

    Needs no network and no API key. Results are labelled simulated and written under
    the simulated results root (default ./results-simulated).
    """
    from agval.paths import results_root
    from flows.demo import run_demo  # the demo (the top) starts the stand-ins; imports Prefect
    from agval import progress
    from agval.cli.run import _Bars, _console, closing_table

    err = _console(stderr=True)
    bars = _Bars(err, per_study=True) if err.is_terminal and not as_json else None  # silent when not a terminal

    @contextlib.contextmanager
    def around():
        if bars is None:
            yield
            return
        with bars, progress.listening(bars):
            yield

    result = run_demo(world, seed=seed, size=size, studies=list(study) if study else None,
                      echo=lambda line: typer.echo(line, err=True), around=around)
    if as_json:
        from agval.runs import jsonable

        summary_rows = {k: {"run_folder": v.get("run_folder"), "headline": v.get("headline")}
                        for k, v in result.items()}
        typer.echo(json.dumps(jsonable(summary_rows), indent=2, default=str))
        return
    out = _console()
    for key, res in result.items():
        kind = key.split(":", 1)[0]
        if kind in ("qtl", "twas", "mpra") and isinstance(res, dict) and res.get("run_folder"):
            closing_table(kind, res, out)
            out.print()
    out.print(f"all demo results are under {results_root(simulated=True)}")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
