"""An inter-process lock beside a file (``fcntl.flock`` on ``<file>.lock``).

Appends are read-modify-write of a parquet file; the lock keeps two processes (a
scheduled run and a run started by hand) from losing each other's rows. The write
itself is atomic (:func:`agval.schema.write_table`), so a reader never needs the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[None]:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p.with_name(p.name + ".lock"), os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
