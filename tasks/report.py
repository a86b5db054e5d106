"""Publish a run: ``report.html`` in the run folder plus Prefect artifacts (metrics table,
drop funnel, markdown summary, link to the report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import polars as pl
from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from agval import progress
from agval.report import df_to_markdown, metrics_frame, render_report
from agval.report_cards import cards_for, pipeline_counts
from agval.runs import RunRecord
from agval.schema import group_readable
from agval.serving import results_url
from tasks.alleles import artifact_key


def _funnel_in_pipeline_order(record: RunRecord) -> pl.DataFrame:
    """Drops per (stage, reason), stages in the order the pipeline first dropped a row."""
    frame = record.drops.frame()
    funnel = record.drops.funnel()
    if not funnel.height:
        return funnel
    order = {s: i for i, s in enumerate(frame["stage"].unique(maintain_order=True).to_list())}
    return (funnel.with_columns(pl.col("stage").replace_strict(order, default=len(order)).alias("_o"))
            .sort(["_o", "n"], descending=[False, True]).drop("_o"))


def _label_simulated_figures(record: RunRecord, figures: Sequence[Any]) -> None:
    """Draw the SIMULATED label into every figure of a simulated run (its plots folder and
    any figure passed from elsewhere), so the label survives copying the PNG."""
    from agval.plots._common import stamp_folder, stamp_simulated
    from agval.report import _as_figure

    stamp_folder(record.plots_dir)
    for f in figures or ():
        p = _as_figure(f).path
        if p.suffix.lower() == ".png" and p.is_file():
            stamp_simulated(p)


@task(name="publish-report", cache_policy=NO_CACHE)
def publish_report(record: RunRecord, *, title: str, key: str, metrics: dict[str, Any] | None = None,
                   figures: Sequence[Any] = (), tables: dict[str, pl.DataFrame] | None = None,
                   sections: Any = None, warnings: Sequence[str] = (), summary_md: str = "",
                   kind: str | None = None) -> Path:
    """Write metrics.json and report.html, then mirror the essentials as Prefect artifacts.

    Publishing is a run's last step: a record still "running" is finished as completed
    first, so the report states the run's final status. ``kind`` (``qtl``/``twas``/``mpra``)
    selects the headline cards, pipeline counts and metric glossary."""
    if metrics:
        record.add_metrics(metrics)
    provenance = record.manifest
    if record.manifest.get("status") == "running":
        if getattr(record, "requires_report", False):
            # a record that completes when its report is written: the page states that final status
            provenance = {**record.manifest, "status": "completed"}
        else:
            record.finish("completed")
            provenance = record.manifest
    if record.manifest.get("simulated"):
        _label_simulated_figures(record, figures)
    funnel = _funnel_in_pipeline_order(record)
    html = render_report(title, provenance=provenance, sections=sections, metrics=record.metrics,
                         drop_funnel=funnel, figures=figures, tables=tables, warnings=warnings,
                         cards=cards_for(kind or "", record.metrics, figures), kind=kind,
                         pipeline_counts=pipeline_counts(kind or "", record.metrics))
    path = record.write_report(html)
    group_readable(record.folder)  # plots and tables too, whatever the umask (colleagues read reports)
    url = results_url(path)  # http:// under `agval serve` (its results server), else file://
    get_run_logger().info("%s: report %s (run folder %s)", title, url, record.folder)
    k = artifact_key(key)
    flat = metrics_frame(record.metrics)
    if flat.height:
        create_table_artifact(key=f"{k}-metrics", table=flat.with_columns(pl.col("value").cast(pl.Utf8)).to_dicts(),
                              description=f"{title}: metrics")
    create_table_artifact(key=f"{k}-drop-funnel", table=funnel.to_dicts() or [{"stage": "-", "reason": "none", "n": 0}],
                          description=f"{title}: dropped rows by stage and reason")
    banner = "**SIMULATED** (stand-in services, synthetic world)\n\n" if record.manifest.get("simulated") else ""
    create_markdown_artifact(key=f"{k}-summary", markdown=(
        f"# {title}\n\n{banner}{summary_md}\n\nRun folder: `{record.folder}`\n\n"
        f"## Drops\n\n{df_to_markdown(funnel) if funnel.height else 'none'}\n"))
    create_link_artifact(key=f"{k}-report", link=url, link_text=f"{title} report")
    progress.emit("report", detail=url)
    return path
