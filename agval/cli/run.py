"""``agval run <kind> STUDY_FILE``: run one study through its Prefect flow.

On a terminal (stderr) it shows progress bars fed by :mod:`agval.progress` events: allele
lookup, scoring (done/total, variants/s, ETA) and statistics; Prefect's INFO lines stay in
the run's Prefect logs meanwhile (warnings still print). It ends with a closing table on
stdout: each study question's headline statistic with its 95 % interval and P (the
report's cards, :func:`agval.report_cards.cards_for`) and the report's address (http://
under ``agval serve``, else file://). ``--json`` prints only the machine summary
(``run_folder``, ``simulated``, ``headline``): no bars, no table. Not a terminal: no bars.
"""

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


def _console(stderr: bool = False):
    """The terminal (tests replace this with a Console writing to a buffer)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


class _Bars:
    """The progress bars of one ``agval run``: allele lookup, scoring (done/total, rate, ETA)
    and statistics, fed by :mod:`agval.progress` events (from any thread)."""

    LABELS = {"lookup": "allele lookup", "scoring": "scoring", "statistics": "statistics"}

    def __init__(self, console, per_study: bool = False):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskProgressColumn,
                                   TextColumn, TimeElapsedColumn, TimeRemainingColumn)

        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description:<14}"), BarColumn(),
                                 MofNCompleteColumn(), TaskProgressColumn(),
                                 TextColumn("{task.fields[rate]}"), TextColumn("ETA"), TimeRemainingColumn(),
                                 TimeElapsedColumn(), console=console, transient=False, refresh_per_second=4)
        self.tasks: dict[str, int] = {}
        self.report: str | None = None
        self.per_study = per_study  # several studies (agval demo): a line per report, fresh bars after it
        import threading

        self._lock = threading.Lock()

    def _task(self, stage: str, total):
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(self.LABELS[stage], total=total, rate="")
        return self.tasks[stage]

    def _get(self, tid):
        return next(t for t in self.progress.tasks if t.id == tid)

    def _finish(self, *stages: str) -> None:
        for s in stages:
            if s in self.tasks:
                t = self._get(self.tasks[s])
                self.progress.update(self.tasks[s], total=t.total or t.completed or 1,
                                     completed=t.total or t.completed or 1)

    def __call__(self, ev) -> None:
        with self._lock:
            if ev.stage in ("lookup", "scoring"):
                unit = {"variants": "variants", "sequences": "seq", "ids": "ids"}.get(ev.unit, ev.unit)
                tid = self._task(ev.stage, ev.total)
                if self._get(tid).finished and ev.done and ev.done < (ev.total or 0):
                    self.progress.reset(tid, total=ev.total)  # a second batch of the same stage
                self.progress.update(tid, total=ev.total, completed=ev.done)
                t = self._get(tid)
                speed = t.speed or (t.completed / t.elapsed if t.elapsed and t.completed else None)
                self.progress.update(tid, rate=(f"{speed:,.0f}" if speed >= 100 else f"{speed:.1f}") + f" {unit}/s"
                                     if speed else "")
                if ev.stage == "scoring":
                    self._finish("lookup")
            elif ev.stage == "statistics":
                self._finish("lookup", "scoring")
                self._task("statistics", None)
            elif ev.stage == "report":
                self._finish("lookup", "scoring", "statistics")
                self.report = ev.detail or None
                if self.per_study:
                    self.progress.console.print(f"report: {self.report}", soft_wrap=True)
                    for tid in self.tasks.values():
                        self.progress.remove_task(tid)
                    self.tasks = {}

    def __enter__(self):
        # the bars replace Prefect's INFO lines on this terminal (they still reach the run's
        # logs in Prefect); warnings and errors still print
        import logging

        self._quiet = []
        for name in ("", "prefect", "prefect.flow_runs", "prefect.task_runs", "agval"):
            for h in logging.getLogger(name).handlers:
                if type(h).__name__ == "PrefectConsoleHandler" and h.level < logging.WARNING:
                    self._quiet.append((h, h.level))
                    h.setLevel(logging.WARNING)
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()
        for h, level in self._quiet:
            h.setLevel(level)


def closing_table(kind: str, result: dict, console) -> None:
    """The human summary of a run: each study question's headline statistic with its
    interval and P (the report's cards), then where the report is."""
    from rich import box
    from rich.table import Table

    from agval.report_cards import cards_for
    from agval.serving import results_url
    from agval.stats.pvalues import format_p

    folder = Path(result["run_folder"])
    metrics = result.get("metrics")
    if not isinstance(metrics, dict):
        try:
            metrics = json.loads((folder / "metrics.json").read_text())
        except (OSError, ValueError):
            metrics = {}

    def num(v) -> str:
        if v is None:
            return "\u2014"
        return f"{v:.3f}" if 0.01 <= abs(v) < 1000 or v == 0 else f"{v:.3g}"

    title = f"{kind.upper()} study {metrics.get('study') or folder.parent.name}"
    if result.get("simulated"):
        title += " (SIMULATED)"
    table = Table(title=title, title_justify="left", show_header=True, box=box.SIMPLE_HEAD, pad_edge=False,
                  expand=False)
    table.add_column("question / answer", overflow="fold", min_width=30)
    table.add_column("estimate [95% CI]", no_wrap=True)
    table.add_column("P", no_wrap=True)
    for c in cards_for(kind, metrics):
        lo, hi = c.ci
        ci = f" [{num(lo)}, {num(hi)}]" if lo is not None or hi is not None else ""
        p = f"{format_p(c.p)}" if c.p is not None else "\u2014"
        table.add_row(f"{c.question}\n  {c.verdict}", f"{c.statistic}\n{num(c.estimate)}{ci}",
                      p + (f"\n{c.p_label}" if c.p is not None else ""), end_section=True)
    console.print(table)
    report = folder / "report.html"
    console.print(f"report: {results_url(report) if report.exists() else '(not written)'}", soft_wrap=True)
    console.print(f"run folder: {folder}", soft_wrap=True)


def _run(kind: str, study_file: Path, backend_kind, address, model_version, standin_world, lookup_source,
         myvariant_url, vcf, dry_run: bool = False, as_json: bool = False) -> None:
    _precheck(study_file)
    import contextlib

    from agval import progress
    from agval.scoring.engine import DryRunComplete
    from flows import registry

    err = _console(stderr=True)
    bars = _Bars(err) if err.is_terminal and not as_json else None  # silent when not a terminal
    try:
        with (bars or contextlib.nullcontext()), (progress.listening(bars) if bars else contextlib.nullcontext()):
            result = registry.run(kind, study_file,
                                  backend={"kind": backend_kind, "address": address, "model_version": model_version,
                                           "standin_world": standin_world, "dry_run": dry_run or None},
                                  lookup={"source": lookup_source, "base_url": myvariant_url, "vcf": vcf})
    except DryRunComplete as e:  # the plan after the cache: nothing was scored
        typer.echo(json.dumps({"dry_run": e.info}, indent=2))
        return
    from agval.runs import jsonable

    if as_json:
        typer.echo(json.dumps(jsonable({k: result.get(k) for k in ("run_folder", "simulated", "headline")
                                        if k in result}), indent=2, default=str))
        return
    closing_table(kind, result, _console())


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
        as_json: bool = typer.Option(False, "--json", help="Print only the machine summary (JSON: run_folder, "
                                     "simulated, headline); no progress bars, no table."),
    ) -> None:
        _run(kind, study_file, backend, address, model_version, str(standin_world) if standin_world else None,
             lookup_source, myvariant_url, str(vcf) if vcf else None, dry_run=dry_run, as_json=as_json)

    command.__doc__ = help_text
    return command


app.command("qtl")(_make("qtl", "QTL validation (caQTL, hQTL, eQTL): scores vs QTL effect sizes, original and corrected modes."))
app.command("twas")(_make("twas", "TWAS / fine-mapping concordance (Q1-Q4) across GTEx tissues."))
app.command("mpra")(_make("mpra", "MPRA benchmark: reporter activity vs sequence predictions."))
