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


def precomputed_hqtl_study(src: Path, out: Path) -> Path:
    """The demo hQTL study file ``src`` rewritten to re-check its analysis from files: the
    planted truth as precomputed predictions (column ``truth``), corrected mode only, no
    lookup and no scoring. Written to ``out``."""
    import json

    planted = src.parent / "hqtl-lcl" / "planted.parquet"
    text = src.read_text().replace('modes = ["original", "corrected"]', 'modes = ["corrected"]').replace(
        "[backend]", f'predictions = {json.dumps(str(planted))}\nprediction_columns = {{ truth = "driver" }}\n'
                     f'table = {json.dumps(str(src.parent / "hqtl-lcl" / "Pelikan_et_al_hQTL_summary.csv"))}\n'
                     "\n[backend]")
    text = text.replace('table = "hqtl-lcl/Pelikan_et_al_hQTL_summary.csv"\n', "", 1)
    out.write_text(text)
    return out


def world_snvs(world_dir: Path, n: int, offset: int = 0, prefix: str = "v"):
    """``n`` distinct SNVs of a synthetic world (``row_id, chrom, pos, ref, alt``), from the
    ``offset``-th in (chrom, pos, alt) order; row ids ``<prefix>0, <prefix>1, ...``."""
    import polars as pl

    df = pl.read_parquet(Path(world_dir) / "variants.parquet").filter(
        (pl.col("status") == "ok") & (pl.col("kind") == "snv"))
    df = df.unique(["chrom", "pos", "ref", "alt"]).sort("chrom", "pos", "alt").slice(offset, n)
    return df.select(pl.format(prefix + "{}", pl.int_range(pl.len())).alias("row_id"), "chrom", "pos", "ref", "alt")
