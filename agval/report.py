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

__all__ = ["Card", "Figure", "render_report", "render_index", "df_to_html", "df_to_markdown",
           "metrics_frame", "format_value"]

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_SCHEME = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.\-]*:")

SIMULATED_TEXT = ("SIMULATED: produced with stand-in services and a synthetic world. "
                  "These are not real AlphaGenome results.")


@dataclass(frozen=True)
class Card:
    """One study question answered on the first screen of a report.

    ``estimate`` with its interval ``ci = (low, high)`` (either may be None), ``p`` (a
    float, printed with :func:`agval.stats.pvalues.format_p`, or None) named by
    ``p_label``; ``verdict``: one sentence; ``published_keys``: keys of
    ``metrics["published"]["rows"]`` shown beside the estimate when the run has them;
    ``figure``: the card's key figure (embedded small; the full figure follows)."""

    question: str
    statistic: str
    estimate: float | None = None
    ci: tuple[float | None, float | None] = (None, None)
    p: float | None = None
    p_label: str = "P"
    verdict: str = ""
    n: str | None = None
    published_keys: tuple[str, ...] = ()
    figure: "Figure | None" = None


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
    out = ['<div class="scroll"><table class="data">']
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
    out.append("</tbody></table></div>")
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
    return f'<div class="scroll"><table class="kv"><tbody>{body}</tbody></table></div>'


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


def _data_uri(path: Path, *, simulated: bool = False) -> str:
    """The figure as a data URI; a simulated run's PNG gets the SIMULATED band drawn in
    (in memory, when the file does not carry it yet: e.g. plots made outside
    ``tasks.report.publish_report``)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the figure: {exc.strerror or exc}", file=path) from exc
    if data.startswith(_PNG):
        mime = "image/png"
        if simulated:
            from agval.plots._common import stamped_png

            data = stamped_png(data) or data
    elif data.startswith(_JPEG):
        mime = "image/jpeg"
    else:
        raise InputError("a report figure must be a PNG (or JPEG) file", file=path)
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _figure_html(fig: Figure, idx: int, simulated: bool = False) -> str:
    cap = fig.caption or fig.path.stem
    title = f"<h3>{_e(fig.title)}</h3>" if fig.title else ""
    return (f'<figure id="fig-{idx}">{title}<img src="{_data_uri(fig.path, simulated=simulated)}" alt="{_e(cap)}">'
            f"<figcaption><b>Figure {idx}.</b> {_e(cap)}</figcaption></figure>")


# -- provenance -------------------------------------------------------------------------

def _provenance_html(m: Mapping[str, Any]) -> str:
    parts = []
    run = [(k, m.get(k)) for k in ("run_id", "study", "flow", "status", "started", "finished",
                                   "simulated", "seed", "n_dropped") if k in m]
    if m.get("error"):
        run.append(("error", m["error"]))
    if isinstance(m.get("prefect"), Mapping):
        run += [(f"prefect {k}", v) for k, v in m["prefect"].items()]
    parts.append("<h4>Run</h4>" + _kv_table(run))
    versions = [(k, m.get(k)) for k in ("agval_version", "alphagenome_sdk_version",
                                        "prefect_version", "python") if k in m]
    parts.append("<h4>Versions</h4>" + _kv_table(versions))
    model = m.get("model")
    parts.append("<h4>Model</h4>" + (_kv_table(_flatten(model)) if isinstance(model, Mapping) and model
                                     else '<p class="note">No model recorded (precomputed predictions?).</p>'))
    backend = m.get("backend")
    parts.append("<h4>Backend</h4>" + (_kv_table(_flatten(backend)) if isinstance(backend, Mapping) and backend
                                       else '<p class="note">No backend recorded.</p>'))
    inputs = m.get("inputs") or []
    if inputs:
        keys = ["role", "path", "sha256", "bytes"]
        keys += [k for i in inputs for k in i if k not in keys]
        tbl = pl.DataFrame({k: [format_value(i.get(k)) for i in inputs] for k in dict.fromkeys(keys)})
        parts.append("<h4>Inputs</h4>" + df_to_html(tbl))
    else:
        parts.append('<h4>Inputs</h4><p class="note">No input files recorded.</p>')
    params = m.get("parameters") or {}
    parts.append("<h4>Parameters</h4>" + (_kv_table(_flatten(params)) if params
                                          else '<p class="note">No parameters.</p>'))
    notes = m.get("notes") or {}
    if notes:
        parts.append("<h4>Notes</h4>" + _kv_table(_flatten(notes)))
    known = {"run_id", "study", "flow", "status", "started", "finished", "simulated", "seed",
             "n_dropped", "error", "agval_version", "alphagenome_sdk_version", "prefect_version",
             "python", "model", "backend", "inputs", "parameters", "notes", "prefect"}
    extra = [(k, v) for k, v in m.items() if k not in known]
    if extra:
        parts.append("<h4>Other</h4>" + _kv_table(_flatten(dict(extra))))
    return "\n".join(parts)


# -- page -------------------------------------------------------------------------------

_CSS = """
:root { --fg:#1f2933; --muted:#616e7c; --line:#d9e2ec; --accent:#2c6fbb; --warn:#b44d12; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: var(--fg); margin: 0 auto; max-width: 1240px; padding: 0 24px 48px; line-height: 1.45; }
h1 { font-size: 1.6em; margin: 0.5em 0 0.1em; }
h2 { font-size: 1.3em; border-bottom: 2px solid var(--line); padding-bottom: 4px; margin-top: 1.4em; }
h3 { font-size: 1.05em; margin: 1.1em 0 0.4em; }
h4 { font-size: 0.98em; margin: 1em 0 0.3em; }
.meta { color: var(--muted); margin: 0 0 0.6em; overflow-wrap: anywhere; }
.banner { position: sticky; top: 0; z-index: 10; background: #b3261e; color: #fff; font-weight: 700;
          padding: 8px 16px; margin: 0 -24px; letter-spacing: 0.02em; text-align: center; }
.warn { border-left: 4px solid var(--warn); background: #fff4e5; padding: 6px 12px; margin: 6px 0;
        overflow-wrap: anywhere; }
nav { color: var(--muted); font-size: 0.92em; margin: 0.4em 0; overflow-wrap: anywhere; }
nav a, table a, .meta a { color: var(--accent); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(270px, 1fr)); gap: 12px; }
.card { border: 1px solid var(--line); border-top: 4px solid var(--accent); border-radius: 4px;
        padding: 8px 12px; min-width: 0; overflow-wrap: anywhere; }
.card h3 { margin: 0.2em 0 0.4em; font-size: 1em; }
.card p { margin: 0.25em 0; }
.stat .statname { color: var(--muted); display: block; font-size: 0.9em; }
.stat .est { font-size: 1.7em; font-weight: 700; font-variant-numeric: tabular-nums; }
.stat .ci { font-size: 1.05em; margin-left: 0.3em; font-variant-numeric: tabular-nums; }
.pval { font-weight: 600; }
.verdict { font-style: italic; }
.published { background: #f0f4f8; padding: 4px 8px; font-size: 0.9em; }
img.keyfig { display: block; max-width: 100%; max-height: 230px; margin: 6px auto 0; }
.scroll { max-width: 100%; overflow-x: auto; margin: 0.4em 0 1em; }
.scroll table { margin: 0; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid var(--line); padding: 3px 8px; vertical-align: top; text-align: left; }
thead th { background: #f0f4f8; white-space: nowrap; }
table.kv th { background: #f8fafc; font-weight: 600; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td { overflow-wrap: break-word; max-width: 640px; }  /* words stay whole; the table scrolls in its box */
caption { caption-side: top; text-align: left; font-weight: 600; padding: 4px 0; }
.barcell { position: relative; min-width: 120px; }
.bar { position: absolute; left: 0; top: 3px; bottom: 3px; background: #cfe0f3; }
.barval { position: relative; }
.figs { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 12px; }
figure { margin: 0; border: 1px solid var(--line); padding: 8px; min-width: 0; }
figure img { max-width: 100%; height: auto; display: block; margin: 0 auto; }
figcaption { color: var(--muted); font-size: 0.92em; margin-top: 6px; overflow-wrap: anywhere; }
details summary { cursor: pointer; color: var(--accent); }
abbr[title] { text-decoration: underline dotted; }
.note { color: var(--muted); font-style: italic; }
.sim { color: #b3261e; font-weight: 700; margin: 0.2em 0; }
section p { margin: 0.5em 0; overflow-wrap: anywhere; }
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


CURIE_NAMES: dict[str, str] = {
    "CL:0000624": "CD4-positive, alpha-beta T cell",
    "CL:0000236": "B cell",
    "CL:0001054": "CD14-positive monocyte",
    "CL:0000136": "adipocyte (fat cell)",
    "EFO:0002784": "GM12878 (lymphoblastoid cell line)",
    "EFO:0001084": "3T3-L1 (mouse preadipocyte line)",
    "EFO:0002067": "K562",
    "UBERON:0000178": "blood",
    "UBERON:0000948": "heart",
}
"""Names of the cell types and tissues agval's studies use (reports show name and CURIE)."""

_CURIE = re.compile(r"\b(?:CL|EFO|UBERON|CLO|NTR):\d{7}\b")


def _decorate(escaped: str, curie_names: Mapping[str, str] | None = None) -> str:
    """Escaped text with cell-type CURIEs named (``name (CURIE)``) and pitfall codes
    explained on hover (``<abbr title="...">P3</abbr>``)."""
    from agval.glossary import PITFALL_CODE, PITFALLS

    names = {**CURIE_NAMES, **(curie_names or {})}

    def curie(m: re.Match) -> str:
        c = m.group(0)
        name = names.get(c)
        if not name or _e(name).lower() in escaped[max(0, m.start() - len(name) - 3):m.start()].lower():
            return c
        return f"{_e(name)} ({c})"

    out = _CURIE.sub(curie, escaped)
    return PITFALL_CODE.sub(lambda m: f'<abbr title="{_e(PITFALLS[m.group(0)])}">{m.group(0)}</abbr>', out)


def _ci_text(ci: Sequence[float | None]) -> str:
    lo, hi = (list(ci) + [None, None])[:2]
    if lo is None or hi is None:
        return ""
    return f" [{format_value(float(lo))}, {format_value(float(hi))}]"


def _published_for(card: Card, published: Mapping[str, Any] | None) -> str:
    if not published or not card.published_keys:
        return ""
    rows = [r for r in published.get("rows") or [] if r.get("key") in card.published_keys]
    if not rows:
        return ""
    r = rows[0]
    bits = [f"{r.get('label') or r.get('key')} = {format_value(r.get('published'))}"]
    if r.get("published_n"):
        bits.append(f"n = {r['published_n']}")
    agval = "" if r.get("observed") is None else f"; this run {format_value(r.get('observed'))}"
    label = f" ({published.get('label')})" if published.get("label") else ""
    return (f'<p class="published"><b>Published seed</b>{_e(label)}: {_e(", ".join(bits))}{_e(agval)}'
            f'<br><span class="note">{_e(published.get("title") or published.get("set") or "")}</span></p>')


def _card_html(card: Card, idx: int, published: Mapping[str, Any] | None, simulated: bool = False) -> str:
    from agval.stats.pvalues import format_p

    est = "not estimable" if card.estimate is None else format_value(float(card.estimate))
    p = "" if card.p is None else f'<p class="pval">{_e(card.p_label)} = {_e(format_p(card.p))}</p>'
    n = f'<p class="note">{_e(card.n)}</p>' if card.n else ""
    fig = ""
    if card.figure is not None:
        fig = (f'<img class="keyfig" src="{_data_uri(card.figure.path, simulated=simulated)}" '
               f'alt="{_e(card.figure.caption or card.figure.path.stem)}">')
    return (f'<article class="card" id="answer-{idx}"><h3>{_decorate(_e(card.question))}</h3>'
            f'<p class="stat"><span class="statname">{_e(card.statistic)}</span> '
            f'<span class="est">{_e(est)}</span><span class="ci">{_e(_ci_text(card.ci))}</span></p>'
            f'{p}{n}<p class="verdict">{_decorate(_e(card.verdict))}</p>'
            f'{_published_for(card, published)}{fig}</article>')


def _glossary_html(kind: str | None, metrics: Mapping[str, Any]) -> str:
    from agval.glossary import glossary

    table = glossary().get(kind or "", {})
    if not table:
        return ""
    present: list[str] = []
    for name, _ in _flatten(metrics):
        for part in name.split("."):
            if part in table and part not in present:
                present.append(part)
    for k, v in metrics.items():
        if isinstance(v, list):
            for rec in v:
                if isinstance(rec, Mapping):
                    present.extend(x for x in rec if x in table and x not in present)
    if not present:
        return ""
    rows = "".join(f'<tr><th scope="row">{_e(k)}</th><td>{_decorate(_e(table[k]))}</td></tr>' for k in present)
    return (f'<p class="meta">From docs/metrics-{_e(kind)}.md, for the {len(present)} metric names in this run.</p>'
            f'<div class="scroll"><table class="kv"><tbody>{rows}</tbody></table></div>')


def _pitfalls_html(page: str) -> str:
    from agval.glossary import PITFALL_CODE, PITFALLS

    codes = sorted({m.group(0) for m in PITFALL_CODE.finditer(re.sub(r"<[^>]+>", " ", page))},
                   key=lambda c: int(c[1:]))
    if not codes:
        return ""
    items = "".join(f"<li><b>{c}</b>: {_e(PITFALLS[c])}</li>" for c in codes)
    return ('<p class="meta">Pitfall codes of the study spec (STUDIES.md) mentioned in this report.</p>'
            f"<ul>{items}</ul>")


def _funnel_html(drop_funnel: pl.DataFrame | None, pipeline_counts: Sequence[tuple[str, int]]) -> str:
    from agval.drops import funnel_table

    parts = []
    if pipeline_counts:
        parts.append("<h3>Rows through the pipeline</h3>" +
                     df_to_html(funnel_table(pipeline_counts), bar_column="n"))
    if drop_funnel is not None:
        if not isinstance(drop_funnel, pl.DataFrame):
            raise TypeError("render_report: drop_funnel must be a polars DataFrame")
        if drop_funnel.height:
            total = ""
            if "n" in drop_funnel.columns and "step" not in drop_funnel.columns:
                total = f'<p class="meta">{int(drop_funnel["n"].sum()):,} rows dropped in total, by pipeline stage.</p>'
            parts.append("<h3>Drops by stage and reason</h3>" + total +
                         df_to_html(drop_funnel, bar_column="n"))
        else:
            parts.append('<p class="note">No rows were dropped.</p>')
    return "\n".join(parts)


def render_report(title: str, *, provenance: Mapping[str, Any],
                  sections: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
                  metrics: Mapping[str, Any] | None = None,
                  drop_funnel: pl.DataFrame | None = None,
                  figures: Sequence[Figure | tuple | str | Path | Mapping] = (),
                  tables: Mapping[str, pl.DataFrame] | Sequence[tuple[str, pl.DataFrame]] | None = None,
                  warnings: Sequence[str] = (), cards: Sequence[Card] = (), kind: str | None = None,
                  pipeline_counts: Sequence[tuple[str, int]] = (),
                  curie_names: Mapping[str, str] | None = None) -> str:
    """A self-contained HTML report of one run, answer first.

    Order: header (study, flow, status, run, Prefect flow run) and the SIMULATED banner;
    **answers** (``cards``: one per study question with estimate, interval, P, verdict,
    the published seed number from ``metrics["published"]`` and the key figure);
    warnings; figures; narrative ``sections``; ``tables``; then **details**: the drop
    funnel (``pipeline_counts`` as ``(step, n)`` in pipeline order, then drops by stage
    and reason), pitfalls named in words, the metric glossary (``kind``: ``qtl`` /
    ``twas`` / ``mpra``, from ``docs/metrics-<kind>.md``), provenance, and the raw
    metrics dump last and collapsed.

    * ``provenance``: the run manifest (``agval.runs.RunRecord.manifest``); its
      ``simulated`` flag switches the SIMULATED banner on; ``prefect`` (flow run id,
      name, UI URL) is shown in the header.
    * ``sections``: narrative text, ``{heading: text}`` or ``[(heading, text)]``; blank
      lines separate paragraphs. Plain text (escaped), no markup.
    * ``metrics``: the run's metrics dict (nested dicts become titled tables, lists of
      dicts become data tables) in the collapsed raw dump.
    * ``drop_funnel``: a polars table, e.g. ``DropLog.funnel()`` (``stage, reason, n``)
      or ``drops.funnel_table`` (``step, n, lost``).
    * ``figures``: :class:`Figure`, ``(path, caption)``, ``(path, caption, title)``, a
      mapping with ``path``/``caption`` or a bare path; embedded as base64 data URIs.
    * ``tables``: ``{title: DataFrame}`` or ``[(title, DataFrame)]``; each scrolls in
      its own box.
    * ``warnings``: short texts shown prominently after the answers.
    * ``curie_names``: extra ``{CURIE: name}`` (cell types are shown by name and CURIE).
    """
    if not isinstance(provenance, Mapping):
        raise TypeError("render_report: provenance must be the run manifest (a mapping)")
    simulated = bool(provenance.get("simulated"))
    used: set[str] = set()
    toc: list[tuple[str, str]] = []
    body: list[str] = []

    def deco(text: Any) -> str:
        return _decorate(_e(text), curie_names)

    def section(heading: str, inner: str, *, level: int = 2) -> None:
        sid = _slug(heading, used)
        if level == 2:
            toc.append((sid, heading))
        body.append(f'<section id="{sid}"><h{level}>{_e(heading)}</h{level}>\n{inner}\n</section>')

    meta = [_e(f"{k}: {format_value(provenance[k])}") for k in
            ("study", "flow", "status", "run_id", "started") if provenance.get(k) is not None]
    pf = provenance.get("prefect") or {}
    if isinstance(pf, Mapping) and pf.get("flow_run_id"):
        label = _e(f"Prefect flow run {pf.get('flow_run_name') or ''} ({pf['flow_run_id']})")
        url = pf.get("ui_url")
        meta.append(f'<a href="{_e(url)}">{label}</a>' if isinstance(url, str) and url.startswith("http")
                    else label)
    header = [f"<header><h1>{_e(title)}</h1>"]
    if meta:
        header.append(f'<p class="meta">{" &middot; ".join(meta)}</p>')
    if simulated:
        header.append('<p class="sim">SIMULATED run: every number below comes from the synthetic '
                      "world and the stand-in model.</p>")
    header.append("</header>")

    published = (metrics or {}).get("published") if isinstance((metrics or {}).get("published"), Mapping) else None
    if cards:
        section("Answers", '<div class="cards">' +
                "".join(_card_html(c, i, published, simulated) for i, c in enumerate(cards, start=1)) + "</div>")
    if warnings:
        body.append('<section id="warnings">' + "".join(
            f'<div class="warn" role="note"><b>Warning:</b> {deco(w)}</div>' for w in warnings) + "</section>")
    figs = [_as_figure(f) for f in figures or ()]
    if figs:
        section("Figures", '<div class="figs">' +
                "\n".join(_figure_html(f, i, simulated) for i, f in enumerate(figs, start=1)) + "</div>")
    for heading, text in _as_pairs(sections):
        section(heading, "".join(f"<p>{deco(b).replace(chr(10), '<br>')}</p>"
                                 for b in re.split(r"\n\s*\n", str(text)) if b.strip()))
    for name, df in _as_pairs(tables):
        if not isinstance(df, pl.DataFrame):
            raise TypeError(f"render_report: table {name!r} is not a polars DataFrame")
        section(name, df_to_html(df))

    details: list[str] = []
    funnel = _funnel_html(drop_funnel, pipeline_counts)
    if funnel:
        details.append(f'<section id="drop-funnel"><h3>Drop funnel</h3>{funnel}</section>')
    pit = _pitfalls_html("\n".join(header + body))
    if pit:
        details.append(f'<section id="pitfalls"><h3>Pitfalls referenced</h3>{pit}</section>')
    glo = _glossary_html(kind, metrics or {})
    if glo:
        details.append(f'<section id="glossary"><h3>Metric glossary</h3>{glo}</section>')
    details.append(f'<section id="provenance"><h3>Provenance</h3>{_provenance_html(provenance)}</section>')
    if metrics is not None:
        details.append('<section id="metrics"><h3>All metrics</h3><details><summary>Raw metrics.json '
                       f"(every key)</summary>{_metrics_html(metrics)}</details></section>")
    toc.append(("details", "Details"))
    body.append('<section id="details"><h2>Details</h2>' + "\n".join(details) + "</section>")

    nav = ('<nav><b>Contents:</b> ' +
           " &middot; ".join(f'<a href="#{sid}">{_e(h)}</a>' for sid, h in toc) + "</nav>")
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
