"""Helpers shared by the tests (one copy each): writing small input files."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Iterable, Sequence


def write_file(path: Path, text: str, *, gz: bool = False, crlf: bool = False) -> Path:
    """Write ``text`` to ``path`` (gzip with ``gz``; Windows line ends with ``crlf``); returns ``path``."""
    data = text.replace("\n", "\r\n") if crlf else text
    if gz:
        with gzip.open(path, "wt", newline="") as fh:
            fh.write(data)
    else:
        path.write_bytes(data.encode())
    return path


def write_rows(path: Path, header: Sequence[str], rows: Iterable[Sequence], gz: bool = False) -> Path:
    """Write a tab-separated table (``header`` then ``rows``) to ``path``; returns ``path``."""
    text = "\t".join(header) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows)
    return write_file(path, text, gz=gz)
