"""Self-contained HTML reports (one page per run, an index of runs) and table renderers.

* :func:`render_report` builds ``report.html`` for a run: figures embedded as base64
  ``data:`` URIs, inline CSS, no scripts, no external fonts or links; every piece of
  text is HTML-escaped; a red **SIMULATED** banner when ``manifest["simulated"]`` is true.
* :func:`render_index` builds a page linking run reports (relative links only).
* :func:`df_to_html` / :func:`df_to_markdown` render a polars DataFrame as an HTML or a
  GitHub-markdown table (the latter for Prefect markdown artifacts);
  :func:`metrics_frame` flattens a metrics dict into a ``name, value`` table.

Nothing here imports Prefect.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from agval import __version__
from agval.errors import InputError

__all__ = ["Figure", "render_report", "render_index", "df_to_html", "df_to_markdown",
           "metrics_frame", "format_value"]

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_SCHEME = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.\-]*:")

SIMULATED_TEXT = ("SIMULATED: produced with stand-in services and a synthetic world. "
                  "These are not real AlphaGenome results.")


@dataclass(frozen=True)
class Figure:
    """A figure for a report: a PNG file and its caption (plain text, escaped)."""

    path: Path
    caption: str = ""
    title: str | None = None


# -- formatting -------------------------------------------------------------------------

def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def format_value(v: Any) -> str:
    """A value as shown in tables: 4 significant digits for floats, scientific below 1e-3
    (p-values), ``—`` for None, ``NaN`` for NaN; lists comma-joined; dicts as JSON."""
    if v is None:
        return "\u2014"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if v == 0:
            return "0"
        if abs(v) < 1e-3 or abs(v) >= 1e7:
            return f"{v:.3e}"
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(format_value(x) for x in v)
    if isinstance(v, Mapping):
        return json.dumps(v, sort_keys=True, default=str)
    if isinstance(v, Path):
        return str(v)
    try:  # numpy scalars
        import numpy as np

        if isinstance(v, np.generic):
            return format_value(v.item())
    except ImportError:  # pragma: no cover
        pass
    return str(v)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# -- tables -----------------------------------------------------------------------------

def df_to_html(df: pl.DataFrame, *, max_rows: int = 500, caption: str | None = None,
               bar_column: str | None = None) -> str:
    """An escaped HTML ``<table>`` of ``df`` (first ``max_rows`` rows, with a note when cut).

    Numeric cells are right-aligned. ``bar_column`` (a numeric column) gets an inline
    bar proportional to its value, e.g. ``n`` in a drop funnel.
    """
    if not isinstance(df, pl.DataFrame):
        raise TypeError(f"df_to_html: expected a polars DataFrame, got {type(df).__name__}")
    shown = df.head(max_rows)
    bar_max = None
    if bar_column and bar_column in df.columns and df.schema[bar_column].is_numeric() and df.height:
        m = df[bar_column].cast(pl.Float64).abs().max()
        bar_max = float(m) if m else None
    out = ['<table class="data">']
    if caption:
        out.append(f"<caption>{_e(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{_e(c)}</th>" for c in df.columns) + "</tr></thead>")
    out.append("<tbody>")
    for row in shown.iter_rows():
        cells = []
        for col, v in zip(df.columns, row):
            cls = ' class="num"' if _is_num(v) else ""
            cell = _e(format_value(v))
            if bar_max and col == bar_column and _is_num(v) and not math.isnan(float(v)):
                pct = max(0.0, min(100.0, 100.0 * abs(float(v)) / bar_max))
                cell = (f'<span class="bar" style="width:{pct:.1f}%"></span>'
                        f'<span class="barval">{cell}</span>')
                cls = ' class="num barcell"'
            cells.append(f"<td{cls}>{cell}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    if df.height > max_rows:
        out.append(f'<p class="note">Showing the first {max_rows:,} of {df.height:,} rows.</p>')
    return "\n".join(out)


def _md_cell(v: Any) -> str:
    return format_value(v).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def df_to_markdown(df: pl.DataFrame, *, max_rows: int = 200) -> str:
    """A GitHub-flavoured markdown table of ``df`` (for Prefect markdown artifacts).

    Pipes and newlines inside cells are escaped; a note follows when rows are cut.
    """
    if not isinstance(df, pl.DataFrame):
        raise TypeError(f"df_to_markdown: expected a polars DataFrame, got {type(df).__name__}")
    if not df.columns:
        return "_(no columns)_"
    head = "| " + " | ".join(_md_cell(c) for c in df.columns) + " |"
    align = "| " + " | ".join("---:" if t.is_numeric() else "---" for t in df.schema.values()) + " |"
    lines = [head, align]
    for row in df.head(max_rows).iter_rows():
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    if df.height == 0:
        lines.append("| " + " | ".join("" for _ in df.columns) + " |")
    if df.height > max_rows:
        lines.append(f"\n_Showing the first {max_rows:,} of {df.height:,} rows._")
    return "\n".join(lines)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        name = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.extend(_flatten(v, name))
        else:
            out.append((name, v))
    return out


def metrics_frame(metrics: Mapping[str, Any]) -> pl.DataFrame:
    """Flatten a (nested) metrics dict into ``name`` (dotted path) and ``value`` (text)."""
    rows = _flatten(metrics or {})
    return pl.DataFrame({"name": [n for n, _ in rows], "value": [format_value(v) for _, v in rows]},
                        schema={"name": pl.Utf8, "value": pl.Utf8})


def _records_table(v: Any) -> pl.DataFrame | None:
    """A list of flat dicts as a DataFrame (per-track tables inside metrics), else None."""
    if isinstance(v, list) and v and all(isinstance(x, Mapping) for x in v):
        keys = list(dict.fromkeys(k for x in v for k in x))
        return pl.DataFrame({k: [format_value(x.get(k)) for x in v] for k in keys})
    return None


def _kv_table(rows: Iterable[tuple[str, Any]]) -> str:
    body = "".join(f'<tr><th scope="row">{_e(k)}</th><td class="{"num" if _is_num(v) else ""}">'
                   f"{_e(format_value(v))}</td></tr>" for k, v in rows)
    return f'<table class="kv"><tbody>{body}</tbody></table>'


def _metrics_html(metrics: Mapping[str, Any]) -> str:
    """Top-level scalars in one table; each nested dict in its own titled table; lists of
    records as data tables."""
    scalars = [(k, v) for k, v in metrics.items() if not isinstance(v, Mapping) and _records_table(v) is None]
    parts = []
    if scalars:
        parts.append(_kv_table(scalars))
    for k, v in metrics.items():
        if isinstance(v, Mapping):
            inner_scalars = [(n, x) for n, x in _flatten(v)]
            records = [(n, x) for n, x in inner_scalars if _records_table(x) is not None]
            plain = [(n, x) for n, x in inner_scalars if _records_table(x) is None]
            parts.append(f'<h3>{_e(k)}</h3>')
            if plain:
                parts.append(_kv_table(plain))
            for n, x in records:
                parts.append(df_to_html(_records_table(x), caption=n))
        elif (tbl := _records_table(v)) is not None:
            parts.append(f'<h3>{_e(k)}</h3>')
            parts.append(df_to_html(tbl))
    return "\n".join(parts) if parts else '<p class="note">No metrics recorded.</p>'


# -- figures ----------------------------------------------------------------------------

def _as_figure(f: Any) -> Figure:
    if isinstance(f, Figure):
        return f
    if isinstance(f, (str, Path)):
        return Figure(Path(f))
    if isinstance(f, Mapping):
        return Figure(Path(f["path"]), str(f.get("caption", "")), f.get("title"))
    if isinstance(f, (tuple, list)) and 1 <= len(f) <= 3:
        return Figure(Path(f[0]), *(str(x) if x is not None else None for x in f[1:]))
    raise TypeError(f"a figure is a Figure, a path, (path, caption) or a mapping; got {f!r}")


def _data_uri(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the figure: {exc.strerror or exc}", file=path) from exc
    if data.startswith(_PNG):
        mime = "image/png"
    elif data.startswith(_JPEG):
        mime = "image/jpeg"
    else:
        raise InputError("a report figure must be a PNG (or JPEG) file", file=path)
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _figure_html(fig: Figure, idx: int) -> str:
    cap = fig.caption or fig.path.stem
    title = f"<h3>{_e(fig.title)}</h3>" if fig.title else ""
    return (f'<figure id="fig-{idx}">{title}<img src="{_data_uri(fig.path)}" alt="{_e(cap)}">'
            f"<figcaption><b>Figure {idx}.</b> {_e(cap)}</figcaption></figure>")


# -- provenance -------------------------------------------------------------------------

def _provenance_html(m: Mapping[str, Any]) -> str:
    parts = []
    run = [(k, m.get(k)) for k in ("run_id", "study", "flow", "status", "started", "finished",
                                   "simulated", "seed", "n_dropped") if k in m]
    if m.get("error"):
        run.append(("error", m["error"]))
    parts.append("<h3>Run</h3>" + _kv_table(run))
    versions = [(k, m.get(k)) for k in ("agval_version", "alphagenome_sdk_version",
                                        "prefect_version", "python") if k in m]
    parts.append("<h3>Versions</h3>" + _kv_table(versions))
    model = m.get("model")
    parts.append("<h3>Model</h3>" + (_kv_table(_flatten(model)) if isinstance(model, Mapping) and model
                                     else '<p class="note">No model recorded (precomputed predictions?).</p>'))
    backend = m.get("backend")
    parts.append("<h3>Backend</h3>" + (_kv_table(_flatten(backend)) if isinstance(backend, Mapping) and backend
                                       else '<p class="note">No backend recorded.</p>'))
    inputs = m.get("inputs") or []
    if inputs:
        keys = ["role", "path", "sha256", "bytes"]
        keys += [k for i in inputs for k in i if k not in keys]
        tbl = pl.DataFrame({k: [format_value(i.get(k)) for i in inputs] for k in dict.fromkeys(keys)})
        parts.append("<h3>Inputs</h3>" + df_to_html(tbl))
    else:
        parts.append('<h3>Inputs</h3><p class="note">No input files recorded.</p>')
    params = m.get("parameters") or {}
    parts.append("<h3>Parameters</h3>" + (_kv_table(_flatten(params)) if params
                                          else '<p class="note">No parameters.</p>'))
    notes = m.get("notes") or {}
    if notes:
        parts.append("<h3>Notes</h3>" + _kv_table(_flatten(notes)))
    known = {"run_id", "study", "flow", "status", "started", "finished", "simulated", "seed",
             "n_dropped", "error", "agval_version", "alphagenome_sdk_version", "prefect_version",
             "python", "model", "backend", "inputs", "parameters", "notes"}
    extra = [(k, v) for k, v in m.items() if k not in known]
    if extra:
        parts.append("<h3>Other</h3>" + _kv_table(_flatten(dict(extra))))
    return "\n".join(parts)


# -- page -------------------------------------------------------------------------------

_CSS = """
:root { --fg:#1f2933; --muted:#616e7c; --line:#d9e2ec; --accent:#2c6fbb; --warn:#b44d12; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: var(--fg); margin: 0 auto; max-width: 1180px; padding: 0 24px 48px; line-height: 1.45; }
h1 { font-size: 1.7em; margin: 0.6em 0 0.1em; }
h2 { font-size: 1.3em; border-bottom: 2px solid var(--line); padding-bottom: 4px; margin-top: 2em; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.4em; }
.meta { color: var(--muted); margin: 0 0 1em; }
.banner { position: sticky; top: 0; z-index: 10; background: #b3261e; color: #fff; font-weight: 700;
          padding: 10px 16px; margin: 0 -24px; letter-spacing: 0.02em; text-align: center; }
.warn { border-left: 4px solid var(--warn); background: #fff4e5; padding: 8px 12px; margin: 8px 0; }
nav ul { columns: 2; padding-left: 1.2em; }
nav a, table a { color: var(--accent); }
table { border-collapse: collapse; margin: 0.4em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid var(--line); padding: 3px 8px; vertical-align: top; text-align: left; }
thead th { background: #f0f4f8; }
table.kv th { background: #f8fafc; font-weight: 600; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td { word-break: break-word; max-width: 640px; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: 4px 0; }
.barcell { position: relative; min-width: 120px; }
.bar { position: absolute; left: 0; top: 3px; bottom: 3px; background: #cfe0f3; }
.barval { position: relative; }
figure { margin: 1.2em 0; border: 1px solid var(--line); padding: 10px; }
figure img { max-width: 100%; height: auto; display: block; margin: 0 auto; }
figcaption { color: var(--muted); font-size: 0.92em; margin-top: 6px; }
.note { color: var(--muted); font-style: italic; }
.sim { color: #b3261e; font-weight: 700; }
section p { margin: 0.5em 0; }
footer { margin-top: 3em; color: var(--muted); font-size: 0.85em; border-top: 1px solid var(--line); padding-top: 8px; }
"""


def _slug(text: str, used: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    s, i = base, 2
    while s in used:
        s, i = f"{base}-{i}", i + 1
    used.add(s)
    return s


def _paragraphs(text: str) -> str:
    blocks = [b.strip() for b in re.split(r"\n\s*\n", str(text)) if b.strip()]
    return "".join(f"<p>{_e(b).replace(chr(10), '<br>')}</p>" for b in blocks)


def _as_pairs(obj: Any) -> list[tuple[str, Any]]:
    if obj is None:
        return []
    if isinstance(obj, Mapping):
        return [(str(k), v) for k, v in obj.items()]
    return [(str(k), v) for k, v in obj]


def _page(title: str, body: list[str], *, simulated: bool, banner_text: str = SIMULATED_TEXT) -> str:
    head_title = f"[SIMULATED] {title}" if simulated else title
    banner = (f'<div class="banner" id="simulated-banner" role="alert">{_e(banner_text)}</div>'
              if simulated else "")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<meta name=\"generator\" content=\"agval {_e(__version__)}\">\n"
            f"<title>{_e(head_title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            f"{banner}\n" + "\n".join(body) +
            f"\n<footer>Generated by agval {_e(__version__)}. This page is self-contained: "
            "figures are embedded, there are no scripts and no external resources.</footer>\n"
            "</body>\n</html>\n")


def render_report(title: str, *, provenance: Mapping[str, Any],
                  sections: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
                  metrics: Mapping[str, Any] | None = None,
                  drop_funnel: pl.DataFrame | None = None,
                  figures: Sequence[Figure | tuple | str | Path | Mapping] = (),
                  tables: Mapping[str, pl.DataFrame] | Sequence[tuple[str, pl.DataFrame]] | None = None,
                  warnings: Sequence[str] = ()) -> str:
    """A self-contained HTML report of one run.

    * ``provenance``: the run manifest (``agval.runs.RunRecord.manifest``); its
      ``simulated`` flag switches the SIMULATED banner on.
    * ``sections``: narrative text, ``{heading: text}`` or ``[(heading, text)]``; blank
      lines separate paragraphs. Plain text (escaped), no markup.
    * ``metrics``: the run's metrics dict (nested dicts become titled tables, lists of
      dicts become data tables).
    * ``drop_funnel``: a polars table, e.g. ``DropLog.funnel()`` (``stage, reason, n``)
      or ``drops.funnel_table`` (``step, n, lost``).
    * ``figures``: :class:`Figure`, ``(path, caption)``, ``(path, caption, title)``, a
      mapping with ``path``/``caption`` or a bare path; embedded as base64 data URIs.
    * ``tables``: ``{title: DataFrame}`` or ``[(title, DataFrame)]``.
    * ``warnings``: short texts shown prominently at the top (e.g. pseudo-replication).
    """
    if not isinstance(provenance, Mapping):
        raise TypeError("render_report: provenance must be the run manifest (a mapping)")
    simulated = bool(provenance.get("simulated"))
    used: set[str] = set()
    toc: list[tuple[str, str]] = []
    body: list[str] = []

    def section(heading: str, inner: str) -> None:
        sid = _slug(heading, used)
        toc.append((sid, heading))
        body.append(f'<section id="{sid}"><h2>{_e(heading)}</h2>\n{inner}\n</section>')

    meta = " \u00b7 ".join(_e(f"{k}: {format_value(provenance[k])}") for k in
                           ("study", "flow", "run_id", "status", "started") if provenance.get(k) is not None)
    header = [f"<header><h1>{_e(title)}</h1>"]
    if meta:
        header.append(f'<p class="meta">{meta}</p>')
    if simulated:
        header.append('<p class="sim">SIMULATED run: every number below comes from the synthetic '
                      "world and the stand-in model.</p>")
    header.append("</header>")
    for w in warnings or ():
        header.append(f'<div class="warn" role="note"><b>Warning:</b> {_e(w)}</div>')

    for heading, text in _as_pairs(sections):
        section(heading, _paragraphs(text))
    if metrics is not None:
        section("Metrics", _metrics_html(metrics))
    figs = [_as_figure(f) for f in figures or ()]
    if figs:
        section("Figures", "\n".join(_figure_html(f, i) for i, f in enumerate(figs, start=1)))
    for name, df in _as_pairs(tables):
        if not isinstance(df, pl.DataFrame):
            raise TypeError(f"render_report: table {name!r} is not a polars DataFrame")
        section(name, df_to_html(df))
    if drop_funnel is not None:
        if not isinstance(drop_funnel, pl.DataFrame):
            raise TypeError("render_report: drop_funnel must be a polars DataFrame")
        total = ""
        if "n" in drop_funnel.columns and drop_funnel.height and "step" not in drop_funnel.columns:
            total = f'<p class="meta">{int(drop_funnel["n"].sum()):,} rows dropped in total.</p>'
        inner = (total + df_to_html(drop_funnel, bar_column="n")) if drop_funnel.height else \
            '<p class="note">No rows were dropped.</p>'
        section("Drop funnel", inner)
    section("Provenance", _provenance_html(provenance))

    nav = ('<nav><h2>Contents</h2><ul>' +
           "".join(f'<li><a href="#{sid}">{_e(h)}</a></li>' for sid, h in toc) + "</ul></nav>")
    return _page(title, header + [nav] + body, simulated=simulated)


# -- index ------------------------------------------------------------------------------

def _load_run(folder: Path) -> dict[str, Any]:
    man, met = {}, {}
    if (folder / "manifest.json").exists():
        man = json.loads((folder / "manifest.json").read_text())
    if (folder / "metrics.json").exists():
        met = json.loads((folder / "metrics.json").read_text())
    man.setdefault("run_id", folder.name)
    return {**man, "metrics": met, "report": folder / "report.html", "folder": folder}


def _href(target: Any, base: Path | None) -> str | None:
    if target is None:
        return None
    if isinstance(target, Path) or (isinstance(target, str) and not _SCHEME.match(target)):
        p = Path(target)
        if base is not None and p.is_absolute():
            return Path(os.path.relpath(p, base)).as_posix()
        return p.as_posix()
    raise ValueError(f"render_index: report links must be relative file paths, got {target!r}")


def render_index(runs: Iterable[Path | str | Mapping[str, Any]], *, title: str = "agval runs",
                 base: str | Path | None = None, metric_names: Sequence[str] = ()) -> str:
    """An HTML page listing runs with links to their ``report.html``.

    ``runs``: run folders (their ``manifest.json``/``metrics.json`` are read) or mappings
    with ``run_id, study, flow, status, started, simulated, report`` (a path) and
    optionally ``model`` (dict with ``version``/``fingerprint``) and ``metrics`` (dict).
    Links are file paths, relative to ``base`` (the folder the index is written to) when
    given; URLs with a scheme (``http:``, ``javascript:``...) are refused.
    ``metric_names``: dotted metric names shown as extra columns (e.g.
    ``caqtl.corrected.spearman_rho``). A banner appears when any run is simulated.
    """
    base_p = Path(base).absolute() if base is not None else None
    recs = []
    for r in runs:
        if isinstance(r, (str, Path)):
            recs.append(_load_run(Path(r)))
        elif isinstance(r, Mapping):
            recs.append(dict(r))
        else:
            raise TypeError(f"render_index: a run is a folder or a mapping, got {type(r).__name__}")
    any_sim = any(bool(r.get("simulated")) for r in recs)
    cols = ["run", "study", "flow", "status", "started", "data", "model"] + list(metric_names)
    rows = []
    for r in recs:
        href = _href(r.get("report"), base_p)
        run_id = r.get("run_id") or "(unnamed run)"
        link = f'<a href="{_e(href)}">{_e(run_id)}</a>' if href else _e(run_id)
        model = r.get("model") or {}
        model_txt = " ".join(str(model.get(k)) for k in ("version", "fingerprint") if model.get(k)) \
            if isinstance(model, Mapping) else str(model)
        flat = dict(_flatten(r.get("metrics") or {}))
        data = '<span class="sim">SIMULATED</span>' if r.get("simulated") else "real"
        cells = [link, _e(format_value(r.get("study"))), _e(format_value(r.get("flow"))),
                 _e(format_value(r.get("status"))), _e(format_value(r.get("started"))), data,
                 _e(model_txt or "\u2014")]
        cells += [_e(format_value(flat.get(m))) for m in metric_names]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    table = ('<table class="data"><thead><tr>' + "".join(f"<th>{_e(c)}</th>" for c in cols) +
             "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>") if rows else \
        '<p class="note">No runs yet.</p>'
    body = [f"<header><h1>{_e(title)}</h1><p class=\"meta\">{len(recs)} run(s)</p></header>",
            f"<section id=\"runs\"><h2>Runs</h2>{table}</section>"]
    return _page(title, body, simulated=any_sim,
                 banner_text="SIMULATED runs are listed here: they come from stand-in services and "
                             "a synthetic world, not from real AlphaGenome results.")
