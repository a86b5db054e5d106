"""The leaderboard: studies x models x model versions, published reference rows fixed among them.

:func:`leaderboard_table` reads the latest completed run of every (study, backend,
model version, model fingerprint) in the history (each run's ``manifest.json`` and
``metrics.json``) and returns one **long** row per (study, statistic, model):

==================== =================================================================
study, study_kind    the study (``[study] name``) and its kind (qtl / twas / mpra)
key, statistic       machine key and label of the statistic (``headline.<label>``,
                     a published-registry key such as ``original.spearman_rho``,
                     ``causality.auprc``, ``causality.auprc_minus_<reference>``)
model                ``published`` (the registry's number), the run's backend label
                     (``alphagenome:standin``, ``precomputed:enformer``) or, in a
                     causality run, the model's name (live model, dataset baseline
                     column, ``ensemble``)
model_version        the run's model version (``ALL_FOLDS``...), the published set id,
                     ``dataset column`` for a baseline carried in the dataset
fingerprint          the first 12 characters of the run's model fingerprint digest
source               ``published`` / ``run`` / ``dataset`` / ``ensemble``
value, ci_low,       the estimate and its interval (percentile, the run's confidence);
ci_high, p           the P the run reports beside it (null when none)
planted              SIMULATED causality runs: the value planted in the synthetic world
reproduced,          a run's value of a published statistic: within the registry's
sign_agrees          tolerance of the published value; same sign (null otherwise)
run_id, report       the run and the path of its ``report.html`` (null for published rows)
simulated            the run is simulated (published rows: false)
==================== =================================================================

Which statistics: a QTL / TWAS / MPRA run contributes its report's headline cards
(:func:`agval.report_cards.cards_for`) and, when its study matches a published set, every
row of ``metrics["published"]`` (its own value; the registry's value as a
``published`` row, once per study). A causality run (``metrics["benchmark"] ==
"causality"``) contributes, for every model it scored, the ``all`` split's auPRC and
direction r and the **paired** (same-locus bootstrap) differences ``model - reference``.

:func:`render_leaderboard` draws one table per study: rows = statistics, columns = the
published reference first, then each model and version; each cell ``value [low, high]``
links its run's report (a path relative to the page). :func:`write_leaderboard` writes
``leaderboard.html``, ``leaderboard.csv`` and ``leaderboard.parquet`` into a folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import polars as pl

from agval.revalidation.history import _model_info, backend_label, latest_runs
from agval.runs import finite_or_none as _num

__all__ = ["LEADERBOARD_COLUMNS", "run_entries", "leaderboard_table", "render_leaderboard", "write_leaderboard",
           "latest_study_runs"]

LEADERBOARD_COLUMNS: dict[str, pl.DataType] = {
    "study": pl.String, "study_kind": pl.String, "key": pl.String, "statistic": pl.String, "model": pl.String,
    "model_version": pl.String, "fingerprint": pl.String, "source": pl.String, "value": pl.Float64,
    "ci_low": pl.Float64, "ci_high": pl.Float64, "p": pl.Float64, "planted": pl.Float64,
    "reproduced": pl.Boolean, "sign_agrees": pl.Boolean, "run_id": pl.String,
    "report": pl.String, "simulated": pl.Boolean, "finished": pl.String,
}

_KIND_OF_FLOW = {"qtl-validation": "qtl", "twas-concordance": "twas", "mpra-benchmark": "mpra"}




def _causality_rows(metrics: Mapping[str, Any], base: dict[str, Any]) -> list[dict[str, Any]]:
    res = metrics.get("causality") or {}
    splits = res.get("splits") or {}
    split = splits.get("all") or (next(iter(splits.values())) if splits else None)
    if not split:
        return []
    settings = metrics.get("settings") or {}
    live = settings.get("model_name") if settings.get("live_model", True) else None
    ref = res.get("reference_model")
    planted = res.get("planted") or {}
    out = []
    for m, st in (split.get("models") or {}).items():
        if m == live:
            ident = {"model": m, "source": "run"}
        elif m == "ensemble":
            ident = {"model": m, "source": "ensemble", "model_version": "rank-mean of the models", "fingerprint": None}
        else:
            ident = {"model": m, "source": "dataset", "model_version": "dataset column", "fingerprint": None}
        pl_m = planted.get(m) or {}
        for key, label, pre in (("causality.auprc", "causality auPRC (|score|, causal vs controls)", "auprc"),
                                ("causality.direction_r", "direction Pearson r (positives)", "direction")):
            stat = "auprc" if pre == "auprc" else "direction_r"
            out.append({**base, **ident, "key": key, "statistic": label, "value": _num(st.get(stat)),
                        "ci_low": _num(st.get(f"{pre}_ci_low")), "ci_high": _num(st.get(f"{pre}_ci_high")),
                        "p": _num(st.get("auprc_perm_p")) if pre == "auprc" else None,
                        "planted": _num((pl_m.get(stat) or {}).get("planted"))})
        d = (split.get("differences") or {}).get(m)
        if d and ref:
            for key, label, dk, pk in (
                    (f"causality.auprc_minus_{ref}", f"auPRC \u2212 {ref} (paired locus bootstrap)",
                     "auprc_difference", "auprc_difference"),
                    (f"causality.direction_r_minus_{ref}", f"direction r \u2212 {ref} (paired locus bootstrap)",
                     "direction_difference", "direction_r_difference")):
                if dk not in d:
                    continue
                out.append({**base, **ident, "key": key, "statistic": label, "value": _num(d.get(dk)),
                            "ci_low": _num(d.get(f"{dk}_ci_low")), "ci_high": _num(d.get(f"{dk}_ci_high")),
                            "p": _num(d.get(f"{dk}_p")), "planted": _num((pl_m.get(pk) or {}).get("planted"))})
    return out


def run_entries(folder: str | Path, *, study_kind: str | None = None) -> list[dict[str, Any]]:
    """Leaderboard rows of one run folder (see the module docstring), published rows included.
    A folder without ``manifest.json`` gives no rows."""
    from agval.report_cards import cards_for

    folder = Path(folder).absolute()
    if not (folder / "manifest.json").exists():
        return []
    man = json.loads((folder / "manifest.json").read_text())
    mp = folder / "metrics.json"
    metrics = json.loads(mp.read_text()) if mp.exists() else {}
    digest, version = _model_info(man)
    kind = study_kind or _KIND_OF_FLOW.get(str(man.get("flow") or ""))
    base = {"study": man.get("study") or folder.parent.name, "study_kind": kind, "model": backend_label(
        man.get("backend")), "model_version": version, "fingerprint": (digest or "")[:12] or None, "source": "run",
        "planted": None, "run_id": man.get("run_id") or folder.name,
        "report": str(folder / "report.html") if (folder / "report.html").exists() else None,
        "simulated": bool(man.get("simulated")), "finished": man.get("finished") or man.get("started")}
    rows: list[dict[str, Any]] = []
    if metrics.get("benchmark") == "causality":
        rows += _causality_rows(metrics, base)
    else:
        for c in cards_for(kind or "", metrics):
            rows.append({**base, "key": f"headline.{c.statistic}", "statistic": c.statistic,
                         "value": _num(c.estimate), "ci_low": _num(c.ci[0]), "ci_high": _num(c.ci[1]),
                         "p": _num(c.p)})
    pub = metrics.get("published")
    if isinstance(pub, Mapping):
        for r in pub.get("rows") or []:
            label = f"{r['label']} ({r['key']})"
            rows.append({**base, "key": r["key"], "statistic": label, "value": _num(r.get("observed")),
                         "ci_low": None, "ci_high": None, "p": None, "reproduced": r.get("reproduced"),
                         "sign_agrees": r.get("sign_agrees")})
            rows.append({**base, "key": r["key"], "statistic": label, "model": "published",
                         "model_version": pub.get("set"), "fingerprint": None, "source": "published",
                         "value": _num(r.get("published")), "ci_low": None, "ci_high": None,
                         "p": _num(r.get("published_p")), "run_id": None, "report": None, "simulated": False,
                         "finished": None})
    return rows


def latest_study_runs(history: pl.DataFrame) -> pl.DataFrame:
    """The newest run of every (study, backend, model version, model fingerprint) in the
    history: ``study, study_kind, run_folder`` (newest first)."""
    if history.height == 0:
        return pl.DataFrame(schema={"study": pl.String, "study_kind": pl.String, "run_folder": pl.String})
    runs = latest_runs(history)  # newest first
    return (runs.unique(["study", "backend", "model_version", "model_fingerprint"], keep="first", maintain_order=True)
            .select("study", "study_kind", "run_folder"))


def leaderboard_table(history: pl.DataFrame | None = None, *,
                      folders: Iterable[str | Path | tuple[str | Path, str | None]] = ()) -> pl.DataFrame:
    """The long leaderboard table (:data:`LEADERBOARD_COLUMNS`) of the latest run of every
    (study, backend, model version, fingerprint) in ``history``, plus ``folders`` (run
    folders, or ``(folder, study_kind)``). A published reference row appears once per
    (study, key); rows are sorted by study, key, source (published first), model, version and
    newest run first (a dataset baseline scored in several runs shows the newest run's value)."""
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    todo: list[tuple[str, str | None]] = []
    if history is not None:
        todo += [(r["run_folder"], r["study_kind"]) for r in latest_study_runs(history).iter_rows(named=True)]
    for f in folders:
        todo.append((str(f[0]), f[1]) if isinstance(f, tuple) else (str(f), None))
    for folder, kind in todo:
        key = str(Path(folder).absolute())
        if key in seen:
            continue
        seen.add(key)
        rows += run_entries(folder, study_kind=kind)
    df = pl.DataFrame(rows, schema=LEADERBOARD_COLUMNS) if rows else pl.DataFrame(schema=LEADERBOARD_COLUMNS)
    pub = df.filter(pl.col("source") == "published").unique(["study", "key", "model_version"], keep="first",
                                                              maintain_order=True)
    rest = df.filter(pl.col("source") != "published")
    order = {"published": 0, "run": 1, "dataset": 2, "ensemble": 3}
    out = pl.concat([pub, rest], how="vertical")
    return (out.with_columns(pl.col("source").replace_strict(order, default=9, return_dtype=pl.Int8).alias("_o"))
            .sort(["study", "key", "_o", "model", "model_version", "finished"],
                  descending=[False, False, False, False, False, True], nulls_last=True).drop("_o"))


# -- the page ---------------------------------------------------------------------------

def _fmt(v: float | None) -> str:
    return "\u2014" if v is None else f"{v:.3f}"


def _cell(r: Mapping[str, Any], base: Path | None) -> str:
    from agval.report import _e

    txt = _fmt(r["value"])
    if r["ci_low"] is not None and r["ci_high"] is not None:
        txt += f" [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]"
    inner = _e(txt)
    if r.get("report"):
        p = Path(r["report"])
        href = Path(os.path.relpath(p, base)).as_posix() if base is not None and p.is_absolute() else p.as_posix()
        inner = f'<a href="{_e(href)}">{inner}</a>'
    if r.get("planted") is not None:
        inner += f'<br><span class="note">planted {_e(_fmt(r["planted"]))}</span>'
    if r.get("reproduced") is not None:
        verdict = ("reproduced" if r["reproduced"] else
                   "sign differs from published" if r.get("sign_agrees") is False else "not reproduced")
        inner += f'<br><span class="note">{verdict}</span>'
    return inner


def render_leaderboard(table: pl.DataFrame, *, base: str | Path | None = None,
                       title: str = "agval leaderboard") -> str:
    """The leaderboard page of a :func:`leaderboard_table`: one table per study (rows =
    statistics, columns = the published reference first, then each model / version),
    cells ``value [CI]`` linking the run's report (relative to ``base``, the page's folder).
    Each table scrolls in its own box; a SIMULATED banner when any run is simulated."""
    from agval.report import _e, _page

    base_p = Path(base).absolute() if base is not None else None
    simulated = bool(table.height and table["simulated"].fill_null(False).any())
    body = [f"<header><h1>{_e(title)}</h1><p class=\"meta\">{table['study'].n_unique() if table.height else 0} "
            f"stud(ies), {table.filter(pl.col('source') != 'published')['run_id'].n_unique() if table.height else 0}"
            " run(s). Each cell: estimate [interval] linking its run's report; differences are "
            "<b>model \u2212 reference</b> on the same rows with a paired locus bootstrap.</p></header>"]
    if simulated:
        body.append('<p class="sim">SIMULATED runs are among these rows: their numbers come from the synthetic '
                    "world and the stand-in model, and differ from the published numbers by design.</p>")
    if table.height == 0:
        body.append('<p class="note">No completed study runs yet.</p>')
    for study in table["study"].unique(maintain_order=True).to_list() if table.height else []:
        t = table.filter(pl.col("study") == study)
        cols: list[tuple[str, str | None, str | None]] = []
        for r in t.select("model", "model_version", "fingerprint", "source").unique(maintain_order=True).iter_rows():
            if r[:3] not in [c for c in cols]:
                cols.append(r[:3])
        cols.sort(key=lambda c: (c[0] != "published", c[0] or "", c[1] or ""))
        head = "".join(f"<th>{_e(m)}<br><span class=\"note\">{_e(v or '')} {_e(f or '')}</span></th>"
                       for m, v, f in cols)
        lines = []
        for key in t["key"].unique(maintain_order=True).to_list():
            rk = t.filter(pl.col("key") == key)
            cells = []
            for m, v, f in cols:
                hit = rk.filter((pl.col("model") == m) & (pl.col("model_version").eq_missing(v))
                                & (pl.col("fingerprint").eq_missing(f)))
                cells.append(f'<td class="num">{_cell(hit.row(0, named=True), base_p)}</td>' if hit.height
                             else "<td></td>")
            lines.append(f"<tr><th>{_e(rk['statistic'][0])}</th>{''.join(cells)}</tr>")
        sim = " (SIMULATED)" if t["simulated"].fill_null(False).any() else ""
        body.append(f'<section id="study-{_e(study)}"><h2>{_e(study)}{_e(sim)}</h2>'
                    f'<div class="scroll"><table class="data"><thead><tr><th>statistic</th>{head}</tr></thead>'
                    f"<tbody>{''.join(lines)}</tbody></table></div></section>")
    return _page(title, body, simulated=simulated,
                 banner_text="SIMULATED runs are on this leaderboard: stand-in services and a synthetic world, "
                             "not real AlphaGenome results.")


def write_leaderboard(table: pl.DataFrame, folder: str | Path, *, title: str = "agval leaderboard") -> dict[str, Path]:
    """Write ``leaderboard.html``, ``leaderboard.csv`` and ``leaderboard.parquet`` into
    ``folder``; returns their paths by suffix (``html``, ``csv``, ``parquet``)."""
    from agval.schema import atomic_write_bytes

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {"html": folder / "leaderboard.html", "csv": folder / "leaderboard.csv",
           "parquet": folder / "leaderboard.parquet"}
    atomic_write_bytes(out["html"], render_leaderboard(table, base=folder, title=title).encode())
    table.write_csv(out["csv"])
    table.write_parquet(out["parquet"])
    return out
