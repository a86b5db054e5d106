"""``agval world ...`` (a command plugin, :mod:`standins.cli`): build the SIMULATED synthetic
world (genome, genes, variants, track catalogue and ground-truth model) that the stand-ins
and study generators use."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

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
    size: str = typer.Option("small", "--size", help="small (~4.5 Mb, 3 chromosomes), medium "
                                                     "(~15 Mb, 5 chromosomes) or large (~40 Mb, 10 chromosomes, "
                                                     ">= 100k variants, real catalogue; for benchmarks)."),
    catalogue: Optional[str] = typer.Option(
        None, "--catalogue", help="Track catalogue: demo (182 hand-written tracks) or real (AlphaGenome's "
                                  "5,563 human tracks, scores still SIMULATED). Default: real for large, else demo."),
    track_metadata: Optional[Path] = typer.Option(
        None, "--track-metadata", help="The real catalogue CSV (human_track_metadata_parsed.csv); default "
                                       "$AGVAL_TRACK_METADATA, else ../shared/data/alphagenome/ next to the repo."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing world in --out."),
) -> None:
    """Generate the synthetic world deterministically and print a one-line summary."""
    from agval.errors import InputError
    from standins.catalogue import CATALOGUES
    from standins.world import SIZES, build_world, summary

    if size not in SIZES:
        raise InputError(f"unknown --size {size!r}; choose one of: {', '.join(sorted(SIZES))}")
    if catalogue is not None and catalogue not in CATALOGUES:
        raise InputError(f"unknown --catalogue {catalogue!r}; choose one of: {', '.join(CATALOGUES)}")
    t0 = time.perf_counter()
    path = build_world(out, seed=seed, size=size, force=force, catalogue=catalogue, track_metadata=track_metadata)
    typer.echo(f"{summary(path)} in {time.perf_counter() - t0:.1f}s")
