"""Issue 15: run folders stay inside their results root, and a run's status is a state
machine - ``completed`` only with every file written, ``failed`` with its reason (a full
disk included), ``interrupted`` when its process died (kill -9), and no child process
outlives agval."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agval import runs, schema
from agval.errors import ConfigError, InputError, StorageError, quote, user_lines
from agval.runs import RunRecord, load_manifest, study_slug, sweep_interrupted

# --------------------------------------------------------------------------- names and roots


@pytest.mark.parametrize("name,slug", [("caqtl-cd4", "caqtl-cd4"), ("CD4 T cells (2018)", "CD4-T-cells-2018"),
                                       ("é-ü study", "study"), ("a" * 300, "a" * 100), ("x.y_z", "x.y_z")])
def test_study_names_become_safe_folder_names(name, slug):
    assert study_slug(name) == slug


@pytest.mark.parametrize("name", ["../../escape", "/abs/path", "a/b", "..", ".hidden", "~user", "C:\\x", "", "   ",
                                  "///", "a\\b", "***"])
def test_path_like_or_empty_names_are_refused(name):
    with pytest.raises(ConfigError) as ei:
        study_slug(name, file="s.toml")
    assert "[study] name" in str(ei.value) and "s.toml" in str(ei.value)


def test_run_folder_is_inside_the_root_and_keeps_the_original_name(tmp_path):
    rec = RunRecord.start("My study: v2", "f", simulated=True, root=tmp_path)
    assert rec.folder.parent.parent == tmp_path.resolve() and rec.folder.parent.name == "My-study-v2"
    assert load_manifest(rec.folder)["study"] == "My study: v2"
    with pytest.raises(ConfigError):
        RunRecord.start("../../escape", "f", simulated=True, root=tmp_path)
    assert not (tmp_path.parent / "escape").exists() and not (tmp_path.parent.parent / "escape").exists()
    rec.finish("failed", error="test")


def test_results_root_that_is_a_file_is_named(tmp_path):
    root = tmp_path / "results"
    root.write_text("not a folder")
    with pytest.raises(StorageError) as ei:
        RunRecord.start("s", "f", simulated=True, root=root)
    assert str(root) in str(ei.value) and "folder" in str(ei.value)


def test_quoted_content_is_bounded():
    e = InputError(f"cannot parse {quote('x' * 10_000_000)} as a number", file="t.csv", column="beta", row=2)
    assert len(str(e)) < 300 and "[...]" in str(e)
    lines = user_lines(InputError("y" * 10_000, file="t.csv", hint="h"))
    assert len(lines) == 2 and len(lines[0]) <= len("error: ") + 2000 and lines[1] == "hint: h"


# --------------------------------------------------------------------------- the state machine


def _status(folder: Path) -> str:
    return load_manifest(folder)["status"]


def test_completed_only_after_the_report_when_one_is_required(tmp_path):
    with RunRecord.start("s", "f", simulated=True, root=tmp_path, report=True) as rec:
        rec.add_metrics({"x": 1})
    assert _status(rec.folder) == "running", "no report yet: not completed"
    assert (rec.folder / "dropped.parquet").is_file() and (rec.folder / "metrics.json").is_file()
    rec.write_report("<html>ok</html>")
    man = load_manifest(rec.folder)
    assert man["status"] == "completed" and man["finished"]
    assert rec not in runs.open_runs()


def test_a_record_never_closed_is_failed_by_the_safety_net(tmp_path):
    with RunRecord.start("s", "f", simulated=True, root=tmp_path, report=True) as rec:
        pass
    assert rec in runs.open_runs()
    runs.fail_open_runs("the report step crashed")
    man = load_manifest(rec.folder)
    assert man["status"] == "failed" and man["error"] == "the report step crashed"


def test_final_states_are_final(tmp_path):
    rec = RunRecord.start("s", "f", simulated=True, root=tmp_path)
    rec.finish("failed", error="boom")
    rec.finish("completed")
    assert _status(rec.folder) == "failed"
    with pytest.raises(ValueError):
        rec.finish("running")


def test_a_huge_error_does_not_make_a_huge_manifest(tmp_path):
    with pytest.raises(RuntimeError):
        with RunRecord.start("s", "f", simulated=True, root=tmp_path) as rec:
            raise RuntimeError("z" * 10_000_000)
    assert (rec.folder / "manifest.json").stat().st_size < 10_000
    assert _status(rec.folder) == "failed"


def test_full_disk_on_the_report_means_failed_not_completed(tmp_path, monkeypatch):
    real = schema.atomic_write_bytes

    def full(path, data):
        if Path(path).name == "report.html":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(schema, "atomic_write_bytes", full)
    with RunRecord.start("s", "f", simulated=True, root=tmp_path, report=True) as rec:
        rec.add_metrics({"x": 1})
    with pytest.raises(StorageError) as ei:
        rec.write_report("<html/>")
    assert "no space left" in str(ei.value) and str(rec.folder) in str(ei.value)
    man = load_manifest(rec.folder)
    assert man["status"] == "failed" and "no space left" in man["error"]


def test_full_disk_on_the_drop_log_means_failed(tmp_path, monkeypatch):
    def full(df, path, fmt=None):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    with pytest.raises(StorageError):
        with RunRecord.start("s", "f", simulated=True, root=tmp_path) as rec:
            monkeypatch.setattr(schema, "write_table", full)
    assert _status(rec.folder) == "failed"


def test_sigterm_or_ctrl_c_is_interrupted(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with RunRecord.start("s", "f", simulated=True, root=tmp_path) as rec:
            raise KeyboardInterrupt
    assert _status(rec.folder) == "interrupted"


def test_sweep_marks_only_runs_whose_process_is_gone(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folders = {}
    for label, proc in (("dead", runs.process_identity(dead.pid)), ("alive", runs.process_identity()),
                        ("other-host", {**runs.process_identity(dead.pid), "host": "elsewhere"}),
                        ("reused-pid", {**runs.process_identity(), "start_ticks": 1})):
        rec = RunRecord.start(label, "f", simulated=True, root=tmp_path)
        rec.manifest["process"] = proc
        rec._write_manifest()
        with runs._REG_LOCK:
            runs._OPEN.pop(id(rec), None)  # as if another process owned it
        folders[label] = rec.folder
    marked = sweep_interrupted([tmp_path])
    assert set(marked) == {folders["dead"], folders["reused-pid"]}
    assert _status(folders["dead"]) == "interrupted" and "ended before the run finished" in \
        load_manifest(folders["dead"])["error"]
    assert _status(folders["alive"]) == "running" and _status(folders["other-host"]) == "running"
    assert sweep_interrupted([tmp_path]) == []
    for f in (folders["alive"], folders["other-host"]):
        man = load_manifest(f)
        man["status"] = "failed"
        schema.atomic_write_json(f / "manifest.json", man)


# --------------------------------------------------------------------------- kill -9


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_kill_9_leaves_no_child_and_the_next_start_says_interrupted(world_dir, tmp_path):
    from standins.world.studies import qtl

    toml = qtl.generate(world_dir, tmp_path / "study", seed=0, n_caqtl=40, n_hqtl=40, n_boot=50)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(AGVAL_HOME=str(tmp_path / "home"), AGVAL_RESULTS=str(tmp_path / "res"),
               AGVAL_SIM_RESULTS=str(tmp_path / "sim"), PREFECT_HOME=str(tmp_path / "prefect"),
               PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen([sys.executable, "-m", "agval", "run", "qtl", str(toml)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kids: list[int] = []
    try:
        deadline = time.monotonic() + 240
        manifest = None
        while time.monotonic() < deadline and manifest is None:
            found = list((tmp_path / "sim").glob("*/*/manifest.json"))
            manifest = found[0] if found else None
            assert proc.poll() is None, "agval ended before its run started"
            time.sleep(0.2)
        assert manifest is not None, "the run never started"
        kids = _children(proc.pid)
        assert kids, "the ephemeral Prefect server should be a child of agval"
        assert json.loads(manifest.read_text())["status"] == "running"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        end = time.monotonic() + 15
        while time.monotonic() < end and any(_alive(k) for k in kids):
            time.sleep(0.1)
        assert not [k for k in kids if _alive(k)], "a child process outlived agval"
    finally:
        if proc.poll() is None:
            proc.kill()
        for k in kids:  # the test failed: do not leave them behind
            if _alive(k):
                os.kill(k, signal.SIGKILL)
    assert json.loads(manifest.read_text())["status"] == "running", "nobody could mark it yet"
    nxt = subprocess.run([sys.executable, "-m", "agval", "--version"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert nxt.returncode == 0, nxt.stderr
    man = json.loads(manifest.read_text())
    assert man["status"] == "interrupted" and str(proc.pid) in man["error"]


# --------------------------------------------------------------------------- full disk, end to end


@pytest.mark.slow
def test_full_disk_during_a_flow_is_failed_with_one_error_line(world_dir, tmp_path, prefect_api, capfd,
                                                              monkeypatch):
    from standins.world.studies import qtl
    from tests.badinput_helpers import assert_one_clear_error, manifests, run_agval

    toml = qtl.generate(world_dir, tmp_path / "study", seed=0, n_caqtl=40, n_hqtl=40, n_boot=50)[0]
    real = schema.atomic_write_bytes

    def full(path, data):
        if Path(path).name == "report.html":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(schema, "atomic_write_bytes", full)
    before = manifests()
    res = run_agval(["run", "qtl", toml], capfd)
    err = assert_one_clear_error(res, ["no space left"], before=before)
    new = [f for f in manifests() if f not in before]
    assert len(new) == 1 and str(new[0]) in err
    man = load_manifest(new[0])
    assert man["status"] == "failed" and not (new[0] / "report.html").exists()
    log = (new[0] / runs.ERROR_LOG).read_text()
    assert "Traceback" in log and "OSError: [Errno 28] No space left" in log, "the full traceback went to the run folder"
    assert (new[0] / "dropped.parquet").is_file() and (new[0] / "metrics.json").is_file()


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_a_stand_in_dies_with_the_process_that_started_it(world_dir, tmp_path):
    """``standins.launch.start_service`` children get PR_SET_PDEATHSIG: kill -9 the parent,
    the stand-in (its own process group, so stop() can signal it) goes too."""
    code = ("import sys, time\n"
            "from standins.launch import start_service\n"
            f"s = start_service('myvariant', {str(world_dir)!r}, log_dir={str(tmp_path)!r})\n"
            "print(s.proc.pid, flush=True)\n"
            "time.sleep(600)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    parent = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    child = None
    try:
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        end = time.monotonic() + 15
        while time.monotonic() < end and _alive(child):
            time.sleep(0.1)
        assert not _alive(child), "the stand-in outlived the process that started it"
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.stdout.close()
        if child is not None and _alive(child):  # the test failed: do not leave it behind
            os.killpg(child, signal.SIGKILL)
