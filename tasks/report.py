"""Publish a run: ``report.html`` in the run folder plus Prefect artifacts (metrics table,
drop funnel, markdown summary, link to the report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import polars as pl
from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from agval.report import df_to_markdown, metrics_frame, render_report
from agval.runs import RunRecord
from tasks.alleles import artifact_key


@task(name="publish-report", cache_policy=NO_CACHE)
def publish_report(record: RunRecord, *, title: str, key: str, metrics: dict[str, Any] | None = None,
                   figures: Sequence[Any] = (), tables: dict[str, pl.DataFrame] | None = None,
                   sections: Any = None, warnings: Sequence[str] = (), summary_md: str = "") -> Path:
    """Write metrics.json and report.html, then mirror the essentials as Prefect artifacts."""
    if metrics:
        record.add_metrics(metrics)
    funnel = record.drops.funnel()
    html = render_report(title, provenance=record.manifest, sections=sections, metrics=record.metrics,
                         drop_funnel=funnel, figures=figures, tables=tables, warnings=warnings)
    path = record.write_report(html)
    get_run_logger().info("%s: report %s (run folder %s)", title, path.as_uri(), record.folder)
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
    create_link_artifact(key=f"{k}-report", link=path.as_uri(), link_text=f"{title} report")
    return path
