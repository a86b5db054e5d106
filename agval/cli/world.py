"""``agval world ...``: build the SIMULATED synthetic world (genome, genes, variants,
track catalogue and ground-truth model) that the stand-ins and study generators use."""

from __future__ import annotations

import time
from pathlib import Path

import typer

app = typer.Typer(rich_markup_mode=None, help="The synthetic (SIMULATED) world used offline by the stand-in services and tests.",
                  no_args_is_help=True)


@app.callback()
def _group() -> None:
    """The synthetic (SIMULATED) world used offline by the stand-in services and tests."""


@app.command("build")
def build(
    out: Path = typer.Option(..., "--out", help="Folder to write the world into (new or empty; "
                                                "an existing world only with --force)."),
    seed: int = typer.Option(7, "--seed", help="Random seed; the same seed gives byte-identical files."),
    size: str = typer.Option("small", "--size", help="small (~4.5 Mb, 3 chromosomes) or medium "
                                                     "(~15 Mb, 5 chromosomes)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing world in --out."),
) -> None:
    """Generate the synthetic world deterministically and print a one-line summary."""
    from agval.errors import InputError
    from standins.world import SIZES, build_world, summary

    if size not in SIZES:
        raise InputError(f"unknown --size {size!r}; choose one of: {', '.join(sorted(SIZES))}")
    t0 = time.perf_counter()
    path = build_world(out, seed=seed, size=size, force=force)
    typer.echo(f"{summary(path)} in {time.perf_counter() - t0:.1f}s")
