"""The comparison report folder and the index page of every run.

:func:`build_comparison` writes a run folder ``<results root>/comparisons/<time>-<id>/``
(simulated root when any compared run is simulated)::

    manifest.json, metrics.json      what was compared (sides, run pairs, seed, n_boot)
    tables/comparison.parquet        paired bootstrap differences per study and metric
    tables/metric_deltas.parquet     every numeric metric of both runs, a - b
    leaderboard.html/.csv/.parquet   studies x models x versions, published rows fixed among them
                                     (agval.revalidation.leaderboard)
    tables/pairs.parquet             the run folders compared, per study
    tables/fingerprint_diff.parquet  what differs between the two models (when known)
    plots/<study>-history.png        each metric across model versions over time
    report.html                      all of the above, self-contained
    index.html                       links to every run's report in the history

:func:`refresh_indexes` also keeps ``<results root>/index.html`` (one per results root)
listing every run of the history.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import polars as pl

from agval.report import Figure, render_index, render_report
from agval.revalidation import compare as cmp
from agval.revalidation.detect import detect_change
from agval.revalidation.history import latest_runs
from agval.revalidation.plots import choose_metrics, metric_history_plot
from agval.runs import RunRecord


def write_index(history: pl.DataFrame, path: str | Path, *, extra: Iterable[Mapping[str, Any] | Path] = (),
                title: str = "agval runs") -> Path:
    """``index.html`` at ``path`` linking the report of every run in ``history`` (newest first)."""
    path = Path(path)
    runs: list[Any] = []
    for r in latest_runs(history).iter_rows(named=True):
        folder = Path(r["run_folder"])
        if (folder / "manifest.json").exists():
            runs.append(folder)
        else:
            runs.append({"run_id": r["run_id"], "study": r["study"], "status": "missing",
                         "simulated": r["simulated"], "model": {"version": r["model_version"],
                                                               "fingerprint": (r["model_fingerprint"] or "")[:12]}})
    runs.extend(extra)
    html = render_index(runs, title=title, base=path.parent)
    from agval.schema import atomic_write_bytes

    atomic_write_bytes(path, html.encode())
    return path


def refresh_indexes(history: pl.DataFrame) -> list[Path]:
    """``index.html`` at the top of each results root (real and simulated apart) linking
    every run of the history under it."""
    from agval.paths import results_root

    out = []
    for sim in (False, True):
        sub = history.filter(pl.col("simulated") == sim)
        if sub.height:
            title = "agval runs (SIMULATED)" if sim else "agval runs"
            out.append(write_index(sub, results_root(sim) / "index.html", title=title))
    return out


def _fingerprint_table(fa: Mapping[str, Any] | None, fb: Mapping[str, Any] | None) -> pl.DataFrame:
    """One row per differing fingerprint field: part (sdk/proto/metadata/canary/...), A, B."""
    from agval.revalidation.detect import PART_OF_FIELD

    cols = {"part": pl.String, "field": pl.String, "a": pl.String, "b": pl.String}
    if not fa or not fb:
        return pl.DataFrame(schema=cols)
    rep = detect_change(dict(fa), dict(fb))

    def js(v):
        return None if v is None else (v if isinstance(v, str) else json.dumps(v, default=str, sort_keys=True))

    rows = [{"part": "digest", "field": "digest", "a": rep.old_digest, "b": rep.new_digest}]
    for k, v in rep.details.items():
        part = PART_OF_FIELD.get(k, "canary" if k.startswith("canary") else "other")
        if isinstance(v, dict) and set(v) == {"old", "new"}:
            a, b = v["old"], v["new"]
        elif isinstance(v, list) and len(v) == 2:
            a, b = v
        else:
            a, b = v, None
        rows.append({"part": part, "field": k, "a": js(a), "b": js(b)})
    return pl.DataFrame(rows, schema=cols)


def _run_fingerprint(folder: str | Path) -> dict[str, Any] | None:
    p = Path(folder) / "manifest.json"
    if not p.exists():
        return None
    model = json.loads(p.read_text()).get("model") or {}
    fp = model.get("fingerprint")
    return dict(fp) if isinstance(fp, Mapping) else None


def build_comparison(history: pl.DataFrame, a: str | None, b: str | None, *,
                     specs_for: Callable[[str | None], Sequence[cmp.PairedSpec]],
                     n_boot: int = 2000, seed: int = 0, confidence: float = 0.95,
                     fingerprint_lookup: Callable[[str], Mapping[str, Any] | None] | None = None,
                     root: str | Path | None = None, studies: Sequence[str] | None = None) -> dict[str, Any]:
    """Compare side ``a`` with side ``b`` (run folders, fingerprint digests or backend
    labels; both None = the two most recent fingerprints in the history) and write the
    report folder. ``specs_for(kind)`` gives the paired specs of a study kind."""
    if a is None and b is None:
        da, db = cmp.latest_two_fingerprints(history)
        side_a, side_b = ("fingerprint", da), ("fingerprint", db)
    elif a is None or b is None:
        from agval.errors import ConfigError

        raise ConfigError("name both sides of the comparison, or neither (the two latest fingerprints)")
    else:
        side_a, side_b = cmp.resolve_selector(history, a), cmp.resolve_selector(history, b)
    pairs = cmp.pick_pairs(history, side_a, side_b)
    if studies:
        pairs = [p for p in pairs if p["study"] in studies or p["study_kind"] in studies]
    paired, deltas = [], []
    for p in pairs:
        specs = specs_for(p["study_kind"])
        paired.append(cmp.compare_runs(p["a"], p["b"], specs, n_boot=n_boot, seed=seed, confidence=confidence,
                                       study=p["study"]))
        deltas.append(cmp.metric_deltas(p["a"], p["b"], study=p["study"]))
    comparison = pl.concat(paired, how="vertical_relaxed") if paired else pl.DataFrame(schema=cmp.COMPARISON_COLUMNS)
    delta_df = pl.concat(deltas, how="vertical_relaxed") if deltas else pl.DataFrame(schema=cmp.DELTA_COLUMNS)
    pairs_df = pl.DataFrame(pairs, schema={"study": pl.String, "study_kind": pl.String, "a": pl.String, "b": pl.String})

    # the two models
    fa = fb = None
    if side_a[0] == "fingerprint" and fingerprint_lookup is not None:
        fa, fb = fingerprint_lookup(side_a[1]), fingerprint_lookup(side_b[1])
    if (fa is None or fb is None) and pairs:
        fa, fb = fa or _run_fingerprint(pairs[0]["a"]), fb or _run_fingerprint(pairs[0]["b"])
    fp_table = _fingerprint_table(fa, fb)

    involved = latest_runs(history).filter(pl.col("run_folder").is_in([*pairs_df["a"], *pairs_df["b"]]))
    simulated = bool(involved["simulated"].any()) if involved.height else bool(history["simulated"].any()) \
        if history.height else True
    params = {"a": a, "b": b, "side_a": list(side_a), "side_b": list(side_b), "n_boot": n_boot, "seed": seed,
              "confidence": confidence, "studies": list(studies) if studies else None}
    rec = RunRecord.start("comparisons", "agval-compare", parameters=params, simulated=simulated, seed=seed,
                          root=root)
    with rec:
        rec.note("pairs", pairs)
        rec.note("paired_specs", {k: cmp.spec_dicts(specs_for(k)) for k in sorted({p["study_kind"] for p in pairs
                                                                                     if p["study_kind"]})})
        rec.write_table("comparison", comparison)
        rec.write_table("metric_deltas", delta_df)
        rec.write_table("pairs", pairs_df)
        rec.write_table("fingerprint_diff", fp_table)
        from agval.revalidation.leaderboard import leaderboard_table, write_leaderboard

        board = leaderboard_table(history, folders=[f for p in pairs for f in (p["a"], p["b"])])
        lb_paths = write_leaderboard(board, rec.folder, title="agval leaderboard (studies x models x versions)")
        figures = []
        plot_studies = sorted({p["study"] for p in pairs}) or sorted(history["study"].unique().to_list())
        for study in plot_studies:
            preferred = [m for m in comparison.filter(pl.col("study") == study)["metric"].to_list()]
            metrics = choose_metrics(history, study, preferred)
            out = metric_history_plot(history, study, rec.plots_dir / f"{_slug(study)}-history.png", metrics=metrics)
            if out is not None:
                figures.append(Figure(out, f"{study}: each metric across model fingerprints over time "
                                           "(colour = model fingerprint, shape = backend)"))
        ok = comparison.filter(pl.col("difference").is_not_null())
        significant = ok.filter((pl.col("ci_low") > 0) | (pl.col("ci_high") < 0))
        metrics_out = {"n_studies": len(pairs), "n_paired_metrics": ok.height,
                       "n_ci_excludes_zero": significant.height,
                       "max_abs_difference": float(ok["difference"].abs().max()) if ok.height else None}
        rec.add_metrics(metrics_out)
        sections = [("What was compared",
                     f"Side A: {side_a[0]} {side_a[1]}\nSide B: {side_b[0]} {side_b[1]}\n\n"
                     f"{len(pairs)} study pair(s). Every difference on this page is A \u2212 B (positive: A is "
                     "higher). Paired differences are taken on the rows both runs share, with "
                     f"{int(confidence * 100)}% paired bootstrap CIs ({n_boot} replicates, seed {seed}); both "
                     "predictors are resampled together. Metric deltas are A \u2212 B of every number in "
                     "metrics.json, without intervals (use the paired differences for inference).\n\n"
                     f"Leaderboard of every study, model and version: {lb_paths['html'].name} "
                     f"(machine table {lb_paths['csv'].name}, {lb_paths['parquet'].name}).")]
        if not pairs:
            sections.append(("No pairs", "No study has a run on both sides; nothing was compared."))
        rec.finish("completed")  # the report is the last step: it states the final status, never "running"
        html = render_report("agval comparison", provenance=rec.manifest, sections=sections, metrics=metrics_out,
                             figures=figures,
                             tables=[("Paired bootstrap differences (A \u2212 B)", _shown(comparison)),
                                     ("What differs between the models", fp_table),
                                     ("Run pairs", pairs_df),
                                     ("Metric deltas (A \u2212 B)", delta_df)])
        report = rec.write_report(html)
        index = write_index(history, rec.folder / "index.html", extra=[{
            "run_id": rec.folder.name, "study": "comparisons", "flow": "agval-compare", "status": "completed",
            "started": rec.manifest["started"], "simulated": simulated, "report": report}])
    return {"report_folder": str(rec.folder), "report": str(report), "index": str(index),
            "leaderboard": str(lb_paths["html"]), "leaderboard_table": str(lb_paths["csv"]),
            "simulated": simulated, "side_a": list(side_a), "side_b": list(side_b), "pairs": pairs,
            "metrics": metrics_out,
            "comparison": comparison.head(200).to_dicts()}


def _shown(comparison: pl.DataFrame) -> pl.DataFrame:
    """The paired-differences table as the report shows it: the settings columns (table,
    confidence, n_boot, seed; n_a, n_b: each run's own row count) are in the parquet and the methods
    text, not in every row."""
    keep = [c for c in comparison.columns if c not in ("table", "confidence", "n_boot", "seed", "n_a", "n_b")]
    return comparison.select(keep).rename({"difference": "A \u2212 B"})


def _slug(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in s).strip("-") or "study"
