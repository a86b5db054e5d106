"""Each metric of a study across model versions over time (plotnine).

One figure per study: one panel per metric, x = when the run finished, points and lines
coloured by model fingerprint (short digest + version name), shapes by backend. A change
of colour along the line is a change of model.

Each panel's y range is at least :func:`min_span` wide around its values (0.2 for
statistics on a [-1, 1] scale such as correlations, AUROC and accuracies; 10 % of the
largest magnitude otherwise), so a change in the third decimal is drawn as the small
change it is instead of filling the panel (free scales exaggerate tiny changes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import polars as pl

MAX_METRICS = 12


_HEADLINE_STATS = ("spearman_rho", "pearson_r", "auroc", "accuracy", "spearman", "pearson", "rho", "r")
_NOT_PLOTTED = ("_ci_low", "_ci_high", "ci_low", "ci_high", "_p", ".p", "confidence", "n_boot", "bootstrap_n",
                "seed", "n_perm", "n_permutations", "threshold")


def _rank(name: str) -> int:
    last = name.rsplit(".", 1)[-1]
    if name.endswith(_NOT_PLOTTED) or last.startswith("n_") or last == "n" or last.endswith(("_n", "_p")):
        return 4
    stat = last in _HEADLINE_STATS or last.endswith(("spearman_rho", "pearson_r", "auroc", "accuracy", "_rho"))
    head = name.startswith("headline.")
    return 0 if (stat and head) else 1 if head else 2 if stat else 3


def choose_metrics(history: pl.DataFrame, study: str, preferred: Sequence[str] = ()) -> list[str]:
    """Up to :data:`MAX_METRICS` metrics of ``study``: ``preferred`` ones present first, then
    correlation-like statistics (``*spearman_rho``, ``*pearson_r``, ``*auroc``, ``*accuracy``)
    of the headline, other headline numbers, other such statistics, the rest; intervals,
    p-values, counts and settings last.
    Within a rank, metrics recorded in more runs first, then by name."""
    h = history.filter((pl.col("study") == study) & pl.col("value").is_not_null())
    if h.height == 0:
        return []
    counts = h.group_by("metric").agg(pl.col("run_id").n_unique().alias("n"))
    present = sorted(counts.iter_rows(), key=lambda r: (_rank(r[0]), -r[1], r[0]))
    names = [m for m, _ in present]
    out = [m for m in preferred if m in names]
    out += [m for m in names if m not in out]
    return out[:MAX_METRICS]


#: the smallest y span of a panel whose values all lie in [-1, 1] (correlations, AUROC, accuracy)
BOUNDED_MIN_SPAN = 0.2
#: otherwise the smallest y span as a fraction of the panel's largest |value|
RELATIVE_MIN_SPAN = 0.1


def min_span(values) -> float:
    """The smallest y span of a panel showing ``values`` (see the module docstring)."""
    import numpy as np

    v = np.asarray([x for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 1.0
    top = float(np.abs(v).max())
    if top <= 1.0:
        return BOUNDED_MIN_SPAN
    return RELATIVE_MIN_SPAN * top


def panel_limits(h: pl.DataFrame) -> pl.DataFrame:
    """``metric, lo, hi`` per metric of a history slice (``metric``, ``value``): the values'
    range widened symmetrically to at least :func:`min_span`."""
    rows = []
    for (m,), g in h.group_by(["metric"], maintain_order=True):
        vals = g["value"].drop_nulls().to_list()
        if not vals:
            continue
        lo, hi = min(vals), max(vals)
        span = min_span(vals)
        if hi - lo < span:
            mid = (lo + hi) / 2
            lo, hi = mid - span / 2, mid + span / 2
        rows.append({"metric": m, "lo": lo, "hi": hi})
    return pl.DataFrame(rows, schema={"metric": pl.String, "lo": pl.Float64, "hi": pl.Float64})


def metric_history_plot(history: pl.DataFrame, study: str, path: str | Path, *,
                        metrics: Sequence[str] | None = None) -> Path | None:
    """Write the figure for ``study`` to ``path`` (PNG); None when there is nothing to draw."""
    from agval.plots._common import save, theme_agval, to_pandas
    import plotnine as p9

    metrics = list(metrics) if metrics else choose_metrics(history, study)
    h = history.filter((pl.col("study") == study) & pl.col("metric").is_in(metrics)
                       & pl.col("value").is_not_null() & pl.col("time").is_not_null())
    if h.height == 0:
        return None
    h = h.with_columns(
        (pl.col("model_fingerprint").fill_null("unknown").str.slice(0, 10) + " " +
         pl.col("model_version").fill_null("")).alias("model"),
        pl.col("time").dt.replace_time_zone(None).alias("time"),
    ).sort("time")
    ncol = min(3, len(metrics))
    nrow = (len(metrics) + ncol - 1) // ncol
    import pandas as pd

    df = to_pandas(h, ["time", "value", "metric", "model", "backend"])
    df["metric"] = pd.Categorical(df["metric"], categories=[m for m in metrics if m in set(df["metric"])])
    span = (h["time"].max() - h["time"].min()) if h.height > 1 else None
    fmt = "%Y-%m-%d" if span is not None and span.total_seconds() > 3 * 86400 else "%m-%d %H:%M"
    # invisible points at each panel's widened limits: tiny changes stay tiny (no free-scale zoom)
    lim = panel_limits(h)
    t0 = h["time"].min()
    blank = pd.DataFrame({"metric": pd.Categorical([*lim["metric"], *lim["metric"]],
                                                   categories=df["metric"].cat.categories),
                          "value": [*lim["lo"], *lim["hi"]], "time": [t0] * (2 * lim.height)})
    plot = (p9.ggplot(df, p9.aes("time", "value"))
            + p9.geom_blank(data=blank)
            + p9.geom_line(p9.aes(group="metric"), color="#9aa5b1")
            + p9.geom_point(p9.aes(color="model", shape="backend"), size=2.5)
            + p9.facet_wrap("metric", scales="free_y", ncol=ncol)
            + p9.scale_x_datetime(date_labels=fmt)
            + p9.labs(x="run finished (UTC)", y="value", color="model fingerprint", shape="backend",
                      title=f"{study}: metrics across model versions")
            + theme_agval()
            + p9.theme(axis_text_x=p9.element_text(rotation=30, ha="right"), legend_box="vertical"))
    return save(plot, path, width=4.0 * ncol, height=2.6 * nrow + 1.8)
