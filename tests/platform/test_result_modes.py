"""Results are group-readable by default: files 0644, folders 0755, even under umask 077."""

from __future__ import annotations

import os
import stat

import polars as pl

from agval import schema


def _mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def test_atomic_writes_and_sweep_are_group_readable(tmp_path):
    old = os.umask(0o077)
    try:
        run = tmp_path / "run"
        (run / "plots").mkdir(parents=True)
        schema.atomic_write_json(run / "manifest.json", {"a": 1})
        schema.atomic_write_bytes(run / "report.html", b"<html></html>")
        schema.write_table(pl.DataFrame({"x": [1]}), run / "tables" / "t.parquet")
        (run / "plots" / "f.png").write_bytes(b"png")  # written by another library under the umask
        assert _mode(run / "plots" / "f.png") == 0o600 and _mode(run / "plots") == 0o700
        for f in ("manifest.json", "report.html", "tables/t.parquet"):
            assert _mode(run / f) == 0o644, f
        schema.group_readable(run)
    finally:
        os.umask(old)
    assert _mode(run / "plots" / "f.png") == 0o644
    assert {_mode(d) for d in (run, run / "plots", run / "tables")} == {0o755}
