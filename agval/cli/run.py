"""``agval run <kind> STUDY_FILE``: run one study through its Prefect flow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(rich_markup_mode=None, help="Run a study (QTL, TWAS, MPRA) from a TOML study file through its Prefect flow.",
                  no_args_is_help=True)


def _precheck(study_file: Path) -> None:
    """Before any work: the study file exists and parses as TOML, and its study name is a
    plain name (the run folder is always inside the results root)."""
    from agval.config import read_toml
    from agval.runs import study_slug

    raw = read_toml(study_file, what="study file")
    study = raw.get("study")
    if isinstance(study, dict) and "name" in study:
        study_slug(study["name"], file=study_file)


def _run(kind: str, study_file: Path, backend_kind, address, model_version, standin_world, lookup_source,
         myvariant_url, vcf, dry_run: bool = False) -> None:
    _precheck(study_file)
    from agval.scoring.engine import DryRunComplete
    from flows import registry

    try:
        result = registry.run(kind, study_file,
                              backend={"kind": backend_kind, "address": address, "model_version": model_version,
                                       "standin_world": standin_world, "dry_run": dry_run or None},
                              lookup={"source": lookup_source, "base_url": myvariant_url, "vcf": vcf})
    except DryRunComplete as e:  # the plan after the cache: nothing was scored
        typer.echo(json.dumps({"dry_run": e.info}, indent=2))
        return
    from agval.runs import jsonable

    typer.echo(json.dumps(jsonable({k: result.get(k) for k in ("run_folder", "simulated", "headline")
                                    if k in result}), indent=2, default=str))


def _make(kind: str, help_text: str):
    def command(
        study_file: Path = typer.Argument(..., help="TOML study file."),
        backend: Optional[str] = typer.Option(None, help="Override [backend] kind: alphagenome|standin|atlas|precomputed."),
        address: Optional[str] = typer.Option(None, help="Override [backend] address (host:port)."),
        model_version: Optional[str] = typer.Option(None, help="Override [backend] model_version."),
        standin_world: Optional[Path] = typer.Option(None, help="Override [backend] standin_world."),
        lookup_source: Optional[str] = typer.Option(None, help="Override [lookup] source: myvariant|vcf."),
        myvariant_url: Optional[str] = typer.Option(None, help="Override [lookup] base_url."),
        vcf: Optional[Path] = typer.Option(None, help="Override [lookup] vcf."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Say how many new scoring calls the run would make "
                                     "after the cache, then stop before scoring."),
    ) -> None:
        _run(kind, study_file, backend, address, model_version, str(standin_world) if standin_world else None,
             lookup_source, myvariant_url, str(vcf) if vcf else None, dry_run=dry_run)

    command.__doc__ = help_text
    return command


app.command("qtl")(_make("qtl", "QTL validation (caQTL, hQTL, eQTL): scores vs QTL effect sizes, original and corrected modes."))
app.command("twas")(_make("twas", "TWAS / fine-mapping concordance (Q1-Q4) across GTEx tissues."))
app.command("mpra")(_make("mpra", "MPRA benchmark: reporter activity vs sequence predictions."))
