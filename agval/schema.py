"""A typed registry of agval's on-disk table formats.

Every parquet file agval writes for a machine to read back again (caches, drop logs,
result tables, history) is written through :func:`write_table` with a registered
:class:`TableFormat`. The format name and version go into the parquet key-value
metadata; :func:`read_table` checks them, upgrades older versions through registered
upgraders, and checks the columns, so a file written by an older agval is either read
correctly or refused with a clear message (never misread).

Writes are atomic (temporary file + ``os.replace``): a killed process leaves either
the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import polars as pl
import pyarrow.parquet as pq

from agval.errors import InputError

_META_NAME = b"agval.format"
_META_VERSION = b"agval.format_version"


@dataclass(frozen=True)
class TableFormat:
    name: str
    version: int
    columns: dict[str, pl.DataType]
    description: str = ""
    # version -> function upgrading a frame of that version to version + 1
    upgraders: dict[int, Callable[[pl.DataFrame], pl.DataFrame]] = field(default_factory=dict)

    def empty(self) -> pl.DataFrame:
        return pl.DataFrame(schema=self.columns)

    def conform(self, df: pl.DataFrame, *, where: str = "") -> pl.DataFrame:
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise InputError(f"table of format {self.name!r} v{self.version} lacks columns {missing}", file=where or None)
        return df.select([pl.col(c).cast(t, strict=False) for c, t in self.columns.items()]
                         + [c for c in df.columns if c not in self.columns])


REGISTRY: dict[str, TableFormat] = {}


def register(fmt: TableFormat) -> TableFormat:
    old = REGISTRY.get(fmt.name)
    if old is not None and old != fmt:
        raise ValueError(f"table format {fmt.name!r} registered twice with different definitions")
    REGISTRY[fmt.name] = fmt
    return fmt


def get(name: str) -> TableFormat:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown table format {name!r}; known: {sorted(REGISTRY)}") from None


FILE_MODE = 0o644
DIR_MODE = 0o755
"""Results are group- and world-readable by default (colleagues on a shared server read
the reports); ``mkstemp`` alone would leave every file 0600."""


def group_readable(folder: str | Path) -> None:
    """``chmod`` every file under ``folder`` to :data:`FILE_MODE` and every folder
    (``folder`` included) to :data:`DIR_MODE`, whatever the umask was."""
    root = Path(folder)
    os.chmod(root, DIR_MODE)
    for p in root.rglob("*"):
        if p.is_symlink():
            continue
        os.chmod(p, DIR_MODE if p.is_dir() else FILE_MODE)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(Path(path), (json.dumps(obj, indent=2, sort_keys=True, default=str, allow_nan=False) + "\n").encode())


def write_table(df: pl.DataFrame, path: str | Path, fmt: str | TableFormat | None = None) -> Path:
    """Write ``df`` as parquet atomically, stamped with its format name and version.

    With ``fmt=None`` the table is an ad-hoc result table (no column contract).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {}
    if fmt is not None:
        f = get(fmt) if isinstance(fmt, str) else fmt
        df = f.conform(df, where=str(path))
        meta = {_META_NAME: f.name.encode(), _META_VERSION: str(f.version).encode()}
    table = df.to_arrow()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_table_batches(frames, path: str | Path, fmt: str | TableFormat | None = None) -> Path:
    """:func:`write_table` for a table that arrives in batches (an iterable of DataFrames of
    the same columns, e.g. a lazily read score table): each batch is conformed and written
    as a row group as it comes, so the whole table is never in memory. An empty iterable
    writes an empty table of the format's columns."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    f = (get(fmt) if isinstance(fmt, str) else fmt) if fmt is not None else None
    meta = {_META_NAME: f.name.encode(), _META_VERSION: str(f.version).encode()} if f is not None else {}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    writer = None
    try:
        for df in frames:
            if f is not None:
                df = f.conform(df, where=str(path))
            table = df.to_arrow()
            if writer is None:
                schema_ = table.schema.with_metadata({**(table.schema.metadata or {}), **meta})
                writer = pq.ParquetWriter(tmp, schema_, compression="zstd")
            if table.num_rows:
                writer.write_table(table.cast(writer.schema))
        if writer is None:  # no batch at all
            empty = pl.DataFrame(schema=dict(f.columns)) if f is not None else pl.DataFrame()
            table = empty.to_arrow()
            pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), **meta}), tmp,
                           compression="zstd")
        else:
            writer.close()
            writer = None
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        if writer is not None:
            writer.close()
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_format(path: str | Path) -> tuple[str | None, int | None]:
    md = pq.read_schema(path).metadata or {}
    name = md.get(_META_NAME)
    ver = md.get(_META_VERSION)
    return (name.decode() if name else None, int(ver) if ver else None)


def read_table(path: str | Path, fmt: str | TableFormat) -> pl.DataFrame:
    """Read a parquet file of a registered format, upgrading older versions."""
    f = get(fmt) if isinstance(fmt, str) else fmt
    name, ver = read_format(path)
    if name != f.name:
        raise InputError(f"expected a {f.name!r} table, found format {name!r}", file=path)
    if ver is None or ver > f.version:
        raise InputError(f"{f.name!r} version {ver} is newer than this agval understands (v{f.version})", file=path)
    df = pl.read_parquet(path)
    while ver < f.version:
        up = f.upgraders.get(ver)
        if up is None:
            raise InputError(f"no upgrade path for {f.name!r} from v{ver}", file=path)
        df, ver = up(df), ver + 1
    return f.conform(df, where=str(path))
