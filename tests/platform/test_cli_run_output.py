"""What ``agval run`` prints (issue 16): progress bars on a terminal (allele lookup,
scoring with done/total, rate and ETA, statistics) fed by :mod:`agval.progress`, silent
when stderr is not a terminal; a closing table with each question's headline statistic,
interval and P and the report's address; ``--json`` the machine summary only. Also the
command order of ``agval --help`` and where ``prefect-yaml`` writes. SIMULATED services."""

from __future__ import annotations

import io
import json
import re
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agval import progress
from standins.world.studies import qtl as gen


@pytest.fixture(scope="module")
def caqtl_file(world_dir, tmp_path_factory) -> Path:
    files = {p.name: p for p in gen.generate(world_dir, tmp_path_factory.mktemp("cli-out"), seed=1, n_caqtl=30,
                                             n_hqtl=20, n_boot=100)}
    return files["caqtl-cd4.toml"]


def _consoles(monkeypatch, *, terminal: bool):
    """Replace the CLI's consoles: stderr (progress) as a terminal or not, stdout (table)."""
    from rich.console import Console

    from agval.cli import run as run_mod

    bufs = {"err": io.StringIO(), "out": io.StringIO()}

    def console(stderr: bool = False):
        if stderr:
            return Console(file=bufs["err"], force_terminal=terminal, width=160, color_system=None)
        return Console(file=bufs["out"], width=200, color_system=None)

    monkeypatch.setattr(run_mod, "_console", console)
    return bufs


def _args(caqtl_file, alphagenome_standin, *extra):
    """The demo study looks its rsIDs up in the world's VCF (no service)."""
    return ["qtl", str(caqtl_file), "--address", alphagenome_standin.address, *extra]


def test_run_on_a_terminal_shows_progress_then_the_closing_table(prefect_api, alphagenome_standin, caqtl_file,
                                                                  monkeypatch):
    from agval.cli.run import app

    bufs = _consoles(monkeypatch, terminal=True)
    seen: list = []
    with progress.listening(seen.append):
        r = CliRunner().invoke(app, _args(caqtl_file, alphagenome_standin))
    assert r.exit_code == 0, r.output + repr(r.exception)
    stages = [e.stage for e in seen]
    # the library reported each stage, in pipeline order
    firsts = [stages.index(s) for s in ("lookup", "scoring", "statistics", "report")]
    assert firsts == sorted(firsts), stages
    scoring = [e for e in seen if e.stage == "scoring"]
    assert scoring[-1].done == scoring[-1].total > 0 and scoring[-1].unit == "variants"
    lookup = [e for e in seen if e.stage == "lookup"]
    assert lookup[-1].done == lookup[-1].total > 0
    err = bufs["err"].getvalue()
    for label in ("allele lookup", "scoring", "statistics", "ETA"):
        assert label in err, err
    total = scoring[-1].total
    assert re.search(rf"\b{total}/{total}\b", err), "scoring done/total on the bar"
    assert "variants/s" in err
    out = bufs["out"].getvalue()
    assert "Do AlphaGenome scores track the measured QTL effect sizes?" in out
    assert re.search(r"-?\d\.\d+ \[-?\d\.\d+, -?\d\.\d+\]", out), "estimate with its interval"
    assert "cluster permutation P" in out and "(SIMULATED)" in out
    m = re.search(r"report: (\S+)", out)
    assert m and m.group(1).startswith("file://") and m.group(1).endswith("/report.html")
    assert Path(m.group(1).removeprefix("file://")).is_file()
    assert "{" not in out, "no JSON in the human summary"


def test_run_json_is_the_machine_summary_only_and_no_terminal_is_silent(prefect_api, alphagenome_standin,
                                                                        caqtl_file, monkeypatch):
    from agval.cli.run import app

    bufs = _consoles(monkeypatch, terminal=True)
    r = CliRunner().invoke(app, _args(caqtl_file, alphagenome_standin, "--json"))
    assert r.exit_code == 0, r.output + repr(r.exception)
    out = json.loads(r.stdout)  # the whole of stdout is one JSON document
    assert set(out) == {"run_folder", "simulated", "headline"} and out["simulated"] is True
    assert bufs["err"].getvalue() == "" and bufs["out"].getvalue() == "", "--json: no bars, no table"
    bufs = _consoles(monkeypatch, terminal=False)
    r = CliRunner().invoke(app, _args(caqtl_file, alphagenome_standin))
    assert r.exit_code == 0
    assert bufs["err"].getvalue() == "", "no progress when stderr is not a terminal"
    assert "report: " in bufs["out"].getvalue()


def test_progress_events_reach_listeners_from_any_thread_and_a_bad_listener_is_harmless():
    got = []

    def boom(ev):
        raise RuntimeError("display broke")

    with progress.listening(boom), progress.listening(got.append):
        ts = [threading.Thread(target=progress.emit, args=("scoring", i, 8), kwargs={"unit": "variants"})
              for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        progress.callback("lookup", "ids")(3, 4)
    progress.emit("report", detail="after")  # no listener: nothing happens
    assert sorted(e.done for e in got if e.stage == "scoring") == list(range(8))
    assert got[-1] == progress.ProgressEvent("lookup", 3, 4, "ids")
    with pytest.raises(ValueError):
        progress.emit("nonsense")


def test_help_lists_run_first():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "agval", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    commands = re.findall(r"^  (\S+)\s", r.stdout.split("Commands:")[1], flags=re.M)
    assert commands[0] == "run" and {"demo", "serve", "watch"} <= set(commands), commands


def test_prefect_yaml_writes_to_the_current_folder(tmp_path, monkeypatch):
    import typer

    from agval.cli import ops

    app = typer.Typer()
    ops.register(app)
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["prefect-yaml"])
    assert r.exit_code == 0, r.output
    text = (tmp_path / "prefect.yaml").read_text()
    assert "deployments:" in text and str(tmp_path / "prefect.yaml") in r.output


def test_a_warning_already_logged_is_printed_once(capsys):
    """A flow logs a warning and also raises it as a Python warning (for callers of the
    library): on the terminal it appears once."""
    import logging
    import sys
    import warnings

    from agval.cli import _ConsoleGuard

    h = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    root.addHandler(h)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        guard = _ConsoleGuard().install()
        try:
            logging.getLogger("agval.probe").warning("3.0 rows per distinct input: pseudo-replication")
            warnings.warn("3.0 rows per distinct input: pseudo-replication", UserWarning)
            warnings.warn("another warning", UserWarning)
        finally:
            guard.uninstall()
            root.removeHandler(h)
    assert capsys.readouterr().err.count("pseudo-replication") == 1, "the logged line"
    assert [str(w.message) for w in shown] == ["another warning"], "not the same text a second time"


def test_bars_for_several_studies_print_each_report_and_start_fresh():
    """``agval demo`` runs several studies under one set of bars: each report's address is
    printed when it is written and the next study's bars start from zero."""
    from rich.console import Console

    from agval.cli.run import _Bars

    buf = io.StringIO()
    bars = _Bars(Console(file=buf, force_terminal=True, width=150, color_system=None), per_study=True)
    with bars, progress.listening(bars):
        for study in ("a", "b"):
            progress.emit("lookup", 10, 10, unit="ids")
            progress.emit("scoring", 0, 40, unit="variants")
            progress.emit("scoring", 40, 40, unit="variants")
            progress.emit("statistics")
            assert set(bars.tasks) == {"lookup", "scoring", "statistics"}
            progress.emit("report", detail=f"http://127.0.0.1:1/simulated/{study}/report.html")
            assert bars.tasks == {}
    out = buf.getvalue()
    assert "report: http://127.0.0.1:1/simulated/a/report.html" in out
    assert "report: http://127.0.0.1:1/simulated/b/report.html" in out
    assert "40/40" in out


def test_counter_sums_parts_caps_at_total_and_pickles():
    """Scoring chunks on threads share one count (per-variant hooks plus each chunk's final
    tally); a copy sent to a Dask worker pickles without its lock."""
    import cloudpickle

    got = []
    c = progress.Counter("scoring", 10, unit="variants")
    a, b = c.part(), c.part()
    with progress.listening(got.append):
        a(1, 5)
        b(1, 5)
        a(3, 5)
        c.at_least(2)  # a chunk's final tally below the running count changes nothing
        b(5, 5)
        a(5, 5)
        a(5, 5)
        c.add(4)  # a retried chunk: capped at the total
    assert [e.done for e in got] == [1, 2, 4, 4, 8, 10, 10, 10] and got[-1].total == 10
    copy = cloudpickle.loads(cloudpickle.dumps(c.part()))
    copy(3, 5)
    assert copy.counter.done == 10 and c.done == 10


def test_causality_benchmark_gets_its_own_cards():
    """A QTL causality benchmark run answers its own questions (auPRC vs the random ranking
    with the within-locus permutation P; direction r with its locus-bootstrap interval),
    not the score-effect card that would read "not estimable"."""
    from agval.report_cards import cards_for

    h = {"benchmark": "causality", "model": "m", "split": "all", "auprc": 0.82, "auprc_ci_low": 0.75,
         "auprc_ci_high": 0.89, "auprc_perm_p": 0.001, "random_auprc": 0.39, "direction_r": 0.48,
         "direction_se": 0.056, "n_positive": 136, "n_control": 224, "n_loci": 32}
    splits = {"all": {"models": {"m": {"direction_ci_low": 0.36, "direction_ci_high": 0.58}}}}
    a, d = cards_for("qtl", {"headline": h, "causality": {"splits": splits}})
    assert (a.estimate, a.ci, a.p) == (0.82, (0.75, 0.89), 0.001) and a.verdict.startswith("Yes")
    assert "0.390" in a.verdict and a.n == "136 causal, 224 controls, 32 loci"
    assert d.ci == (0.36, 0.58) and d.verdict.startswith("Yes")
    null = cards_for("qtl", {"headline": {**h, "auprc": 0.40, "auprc_perm_p": 0.41, "direction_r": 0.02}})
    assert null[0].verdict.startswith("No evidence")
    assert null[1].ci == pytest.approx((0.02 - 1.96 * 0.056, 0.02 + 1.96 * 0.056))
    assert null[1].verdict.startswith("No clear direction")
