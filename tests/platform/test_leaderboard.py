"""The leaderboard of `agval compare` (studies x models x versions, published rows among
them) and the comparison report's layout (one difference direction, fixed panel scales).
SIMULATED: every run here is a hand-made run folder with planted metrics."""

from __future__ import annotations

import html
import re
from pathlib import Path

import polars as pl
import pytest

from agval.published import published_block
from tests.platform.test_revalidation import _tables, make_run


def _qtl_metrics(rho: float, lo: float, hi: float, original: float) -> dict:
    return {"headline": {"headline_statistic": "spearman_rho", "estimate": rho, "estimate_ci_low": lo,
                         "estimate_ci_high": hi, "estimate_perm_p": 0.001, "analysis": "corrected", "n": 100,
                         "n_clusters": 80},
            "published": published_block("gate2018-caqtl-seed", {"original.spearman_rho": original}, simulated=True)}


def _causality_metrics() -> dict:
    st = {"auprc": 0.8, "auprc_ci_low": 0.7, "auprc_ci_high": 0.9, "auprc_perm_p": 0.001, "direction_r": 0.4,
          "direction_ci_low": 0.3, "direction_ci_high": 0.5}
    base = {"auprc": 0.6, "auprc_ci_low": 0.5, "auprc_ci_high": 0.7, "auprc_perm_p": 0.01, "direction_r": 0.2,
            "direction_ci_low": 0.1, "direction_ci_high": 0.3}
    diff = {"reference": "alphagenome", "n_common": 300, "auprc_difference": -0.2, "auprc_difference_ci_low": -0.3,
            "auprc_difference_ci_high": -0.1, "auprc_difference_p": 0.001, "direction_difference": -0.2,
            "direction_difference_ci_low": -0.35, "direction_difference_ci_high": -0.05,
            "direction_difference_p": 0.01}
    planted = {"alphagenome": {"auprc": {"planted": 0.79}},
               "score_noisy": {"auprc": {"planted": 0.62}, "auprc_difference": {"planted": -0.17}}}
    return {"benchmark": "causality", "settings": {"model_name": "alphagenome", "live_model": True},
            "causality": {"reference_model": "alphagenome", "planted": planted,
                          "splits": {"all": {"models": {"alphagenome": st, "score_noisy": base},
                                             "differences": {"score_noisy": diff}}}}}


def _history(tmp_path: Path):
    from agval.revalidation import append_run, read_history

    root = tmp_path / "results"
    hist = tmp_path / "history.parquet"
    ta, tb = _tables(n=40)
    folders = {}
    for digest, version, table, rho in (("a" * 64, "FOLD_0", ta, 0.55), ("b" * 64, "ALL_FOLDS", tb, 0.61)):
        f = make_run(root, "caqtl-demo", digest=digest, version=version, table=table,
                     metrics=_qtl_metrics(rho, rho - 0.1, rho + 0.1, original=0.40))
        append_run(f, hist, study_kind="qtl")
        folders[version] = f
    c = make_run(root, "causality-demo", digest="b" * 64, metrics=_causality_metrics())
    append_run(c, hist, study_kind="qtl")
    folders["causality"] = c
    return read_history(hist), folders


def test_leaderboard_rows_published_fixed_and_links_relative(tmp_path):
    from agval.revalidation.leaderboard import leaderboard_table, write_leaderboard

    h, folders = _history(tmp_path)
    board = leaderboard_table(h)
    q = board.filter(pl.col("study") == "caqtl-demo")
    # the published reference row appears once per (study, key), first among its key's rows
    pub = q.filter(pl.col("source") == "published")
    assert pub.height == 4 and pub["key"].n_unique() == 4  # the four rows of gate2018-caqtl-seed
    rho = q.filter(pl.col("key") == "original.spearman_rho")
    assert rho["source"].to_list()[0] == "published" and rho["value"][0] == pytest.approx(0.4032)
    assert sorted(rho.filter(pl.col("source") == "run")["model_version"].to_list()) == ["ALL_FOLDS", "FOLD_0"]
    assert rho.filter(pl.col("source") == "run")["reproduced"].to_list() == [True, True]  # 0.40 vs 0.4032
    head = q.filter(pl.col("key").str.starts_with("headline."))
    assert sorted(head["value"].to_list()) == pytest.approx([0.55, 0.61])
    assert head.filter(pl.col("model_version") == "ALL_FOLDS")["ci_low"][0] == pytest.approx(0.51)
    # a causality run: one row per model and statistic, the paired difference and its planted value
    c = board.filter(pl.col("study") == "causality-demo")
    assert set(c["model"]) == {"alphagenome", "score_noisy"}
    assert c.filter(pl.col("model") == "score_noisy")["source"].unique().to_list() == ["dataset"]
    d = c.filter(pl.col("key") == "causality.auprc_minus_alphagenome").row(0, named=True)
    assert (d["value"], d["ci_low"], d["ci_high"], d["planted"]) == pytest.approx((-0.2, -0.3, -0.1, -0.17))

    out = write_leaderboard(board, tmp_path / "board")
    page = out["html"].read_text()
    assert pl.read_csv(out["csv"]).height == board.height == pl.read_parquet(out["parquet"]).height
    hrefs = re.findall(r'<a href="([^"]+)">', page)
    assert len(hrefs) >= 3
    for href in set(hrefs):  # every cell links an existing report, by a relative path
        target = (out["html"].parent / html.unescape(href)).resolve()
        assert not Path(html.unescape(href)).is_absolute() and target.name == "report.html" and target.exists()
    for f in folders.values():
        assert any((out["html"].parent / html.unescape(x)).resolve() == (f / "report.html").resolve() for x in hrefs)
    assert "SIMULATED" in page and 'class="scroll"' in page
    # the published column comes first in each study's table
    caqtl = page[page.index('id="study-caqtl-demo"'):]
    ths = re.findall(r"<th>([^<]*)<", caqtl[:caqtl.index("</thead>")])
    assert ths[:2] == ["statistic", "published"]
    assert "planted -0.170" in page and "reproduced" in page


def test_comparison_writes_the_leaderboard_one_direction(tmp_path):
    from agval.revalidation.compare import specs_for
    from agval.revalidation.report import build_comparison

    import tests.platform.test_revalidation as toy

    h, _ = _history(tmp_path)
    res = build_comparison(h, "a" * 8, "b" * 8, specs_for=lambda k: specs_for(k, toy), n_boot=100, seed=1,
                           root=tmp_path / "reports")
    lb = Path(res["leaderboard"])
    assert lb.exists() and lb.parent == Path(res["report_folder"]) and Path(res["leaderboard_table"]).exists()
    page = Path(res["report"]).read_text()
    assert "B - A" not in page and "B \u2212 A" not in page and "A \u2212 B" in page
    assert "leaderboard.html" in page
    # numbers sit in right-aligned cells that never wrap (issue 16: digits wrapped one per line)
    table = page[page.index("Paired bootstrap differences (A \u2212 B)</h2>"):]
    table = table[:table.index("</table>")]
    assert "<th>A \u2212 B</th>" in table and re.search(r'<td class="num">-?0\.\d+</td>', table)
    assert re.search(r"td\.num \{[^}]*white-space: nowrap", page)
    deltas = pl.read_parquet(Path(res["report_folder"]) / "tables" / "metric_deltas.parquet")
    row = deltas.filter(pl.col("metric") == "headline.estimate").row(0, named=True)
    assert row["a_minus_b"] == pytest.approx(row["value_a"] - row["value_b"]) == pytest.approx(0.55 - 0.61)


def test_history_panels_have_a_minimum_span():
    from agval.revalidation.plots import BOUNDED_MIN_SPAN, panel_limits

    h = pl.DataFrame({"metric": ["rho", "rho", "n_rows", "n_rows", "wide", "wide"],
                      "value": [0.501, 0.503, 1000.0, 1002.0, -0.9, 0.8]})
    lim = {r["metric"]: (r["lo"], r["hi"]) for r in panel_limits(h).iter_rows(named=True)}
    lo, hi = lim["rho"]
    assert hi - lo == pytest.approx(BOUNDED_MIN_SPAN) and lo < 0.501 and hi > 0.503  # a 0.002 change stays small
    assert lim["n_rows"][1] - lim["n_rows"][0] == pytest.approx(100.2)  # 10 % of the largest magnitude
    assert lim["wide"] == pytest.approx((-0.9, 0.8))  # wide enough already: untouched


def test_cli_compare_leaderboard_prints_where_it_is(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from agval import cli

    monkeypatch.setenv("AGVAL_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("AGVAL_RESULTS", str(tmp_path / "real"))
    monkeypatch.setenv("AGVAL_SIM_RESULTS", str(tmp_path / "sim"))
    for digest, version, rho in (("a" * 64, "FOLD_0", 0.55), ("b" * 64, "ALL_FOLDS", 0.61)):
        make_run(tmp_path / "sim", "caqtl-demo", digest=digest, version=version,
                 metrics=_qtl_metrics(rho, rho - 0.1, rho + 0.1, original=0.40))
    import typer

    if "compare" not in getattr(typer.main.get_command(cli.app), "commands", {}):
        cli._register()
    res = CliRunner().invoke(cli.app, ["compare", "--leaderboard"])
    assert res.exit_code == 0, res.output
    page = tmp_path / "sim" / "leaderboard" / "leaderboard.html"
    assert f"leaderboard: {page}" in res.output and "leaderboard.csv" in res.output
    board = pl.read_csv(page.parent / "leaderboard.csv")
    assert set(board["model_version"].drop_nulls()) == {"FOLD_0", "ALL_FOLDS", "gate2018-caqtl-seed"}
    assert "SIMULATED" in page.read_text()


def test_a_sign_flip_against_the_published_number_is_named(tmp_path):
    from agval.revalidation.leaderboard import leaderboard_table, render_leaderboard

    f = make_run(tmp_path / "results", "flip", digest="c" * 64,
                 metrics=_qtl_metrics(0.5, 0.4, 0.6, original=-0.40))
    board = leaderboard_table(folders=[(f, "qtl")])
    row = board.filter((pl.col("key") == "original.spearman_rho") & (pl.col("source") == "run")).row(0, named=True)
    assert row["sign_agrees"] is False and row["reproduced"] is False
    assert "sign differs from published" in render_leaderboard(board, base=tmp_path)
    # a run whose report is missing is listed without a dead link
    (f / "report.html").unlink()
    assert leaderboard_table(folders=[(f, "qtl")]).filter(pl.col("source") == "run")["report"].is_null().all()
