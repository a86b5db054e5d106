"""Helpers of the bad-input suite (tests/test_bad_input.py): run ``agval`` in-process with
captured streams, copy a demo study to mutate it, and check the one-answer contract of
issue 15: exit 2, one ``error:`` line naming the file/column/row (or config field), at
most one ``hint:`` line, no traceback, and no run folder left ``completed`` or ``running``.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ln.strip()]


def run_agval(args: Sequence[object], capfd) -> CliResult:
    """``agval ARGS`` in this process (``agval.cli.run_cli``), stdout/stderr captured at
    the file-descriptor level (Prefect's console handler included)."""
    from agval.cli import run_cli

    capfd.readouterr()
    code = run_cli([str(a) for a in args])
    out, err = capfd.readouterr()
    return CliResult(code, out, err)


def result_roots() -> list[Path]:
    return [Path(os.environ["AGVAL_RESULTS"]), Path(os.environ["AGVAL_SIM_RESULTS"])]


def manifests() -> dict[Path, str]:
    """Every run folder under both results roots -> its status."""
    out = {}
    for root in result_roots():
        for m in root.glob("*/*/manifest.json"):
            try:
                out[m.parent] = json.loads(m.read_text())["status"]
            except (OSError, ValueError, KeyError):
                out[m.parent] = "unreadable"
    return out


def assert_one_clear_error(res: CliResult, mentions: Sequence[str], *, before: dict[Path, str],
                           code: int = 2) -> str:
    """The issue-15 contract; returns the error line."""
    assert res.code == code, f"exit {res.code}, stderr:\n{res.err}\nstdout:\n{res.out}"
    for stream in (res.err, res.out):
        assert "Traceback" not in stream, f"a traceback reached the terminal:\n{stream[-3000:]}"
    lines = res.lines
    assert lines and lines[0].startswith("error: "), f"no error line first:\n{res.err}"
    assert len(lines) <= 2, f"more than an error and a hint line:\n{res.err}"
    if len(lines) == 2:
        assert lines[1].startswith("hint: "), lines
    err = lines[0]
    assert len(err) <= 2100, f"unbounded message ({len(err)} chars)"
    for m in mentions:
        assert m in err, f"{m!r} not named in: {err}"
    after = manifests()
    for folder, status in after.items():
        if folder not in before:
            assert status in ("failed", "interrupted"), f"{folder} left {status!r} after a bad input"
            assert (folder / "manifest.json").stat().st_size < 200_000, "an unbounded manifest"
    return err


def copy_study(src_dir: Path, dst: Path) -> Path:
    shutil.copytree(src_dir, dst)
    return dst


def edit_toml(path: Path, replace: dict[str, str] | None = None, append: str = "",
              section_add: dict[str, str] | None = None) -> Path:
    """Regex-replace lines of a TOML file (``^key = .*$`` patterns) and/or add lines
    right after a ``[section]`` header."""
    text = path.read_text()
    for pat, rep in (replace or {}).items():
        new, n = re.subn(pat, rep, text, flags=re.M)
        assert n, f"{pat!r} not in {path}"
        text = new
    for section, line in (section_add or {}).items():
        text = text.replace(f"[{section}]\n", f"[{section}]\n{line}\n", 1)
    path.write_text(text + append)
    return path


def rewrite_lines(path: Path, fn: Callable[[list[str]], list[str]]) -> Path:
    """Rewrite a (plain or gzip) text file line by line, keeping its compression."""
    gz = path.read_bytes()[:2] == b"\x1f\x8b"
    raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
    text = raw.decode()
    eol = "\r\n" if "\r\n" in text else "\n"
    lines = fn(text.split(eol))
    data = eol.join(lines).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def truncate_gzip(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    if data[:2] != b"\x1f\x8b":
        data = gzip.compress(data)
    path.write_bytes(data[: max(20, int(len(data) * keep))])
    return path


def corrupt_gzip(path: Path) -> Path:
    data = bytearray(path.read_bytes() if path.read_bytes()[:2] == b"\x1f\x8b" else gzip.compress(path.read_bytes()))
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(64)  # zeroed deflate stream: bad block or CRC
    path.write_bytes(bytes(data))
    return path


def set_cell(lines: list[str], sep: str, column: str, row: int, value: str) -> list[str]:
    """Lines with data row ``row`` (1-based, header excluded) of ``column`` set to ``value``."""
    header = lines[0].split(sep)
    j = header.index(column)
    cells = lines[row].split(sep)
    cells[j] = value
    lines[row] = sep.join(cells)
    return lines
