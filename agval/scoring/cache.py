"""Content-addressed variant score cache, shared by every study.

Key (one entry = one variant scored by one scorer in one context)::

    ckey = sha256(variant chrom, 1-based pos, ref, alt | interval width | scorer full repr |
                  organism | model version name | model fingerprint digest)[:32]

Value: every per-track (and per-gene) raw and quantile score of that entry, with the
track metadata, so any track selection or aggregation is recomputed from the cache
without calling the model again. An entry with no rows (e.g. a gene scorer with no gene
in reach) is stored as one placeholder row, so it is not re-scored either.

Layout: ``<root>/<organism>-<model version>-<fingerprint[:16]>/`` holds

* ``shard-*.parquet``: rows of many entries, written atomically through
  :func:`agval.schema.write_table` in the registered format ``agval-score-cache`` v1;
* ``journal-*.agj``: the write-ahead journal of a running writer: one framed record per
  scored variant (length-prefixed, crc32-checked header + the variant's rows as an
  Arrow IPC stream), written unbuffered to the OS as soon as the variant is scored. A
  writer holds an exclusive ``flock`` on its journal; a journal nobody holds (its
  process was killed) is turned into a shard the next time the namespace is opened,
  keeping every complete record. So a run killed with SIGKILL loses nothing it had
  finished.

The root defaults to ``agval.paths.cache_dir("scores", simulated)``: simulated
(stand-in) and real scores live in separate trees.

Memory: entries are found through an index of ``ckey`` only; rows are read with a
predicate on ``ckey`` (parquet statistics + a hash semi-join), strings are read as
views. 100,000 variants x 10 tracks (1 M rows) fit in a few hundred MB.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import struct
import zlib
import secrets as _pysecrets
import threading
import time
from pathlib import Path
from typing import Iterable, Sequence

import polars as pl

from agval import schema
from agval.paths import cache_dir
from agval.scoring.backend import SCORE_COLUMNS, conform_scores

FORMAT_NAME = "agval-score-cache"

CACHE_COLUMNS: dict[str, pl.DataType] = {
    "ckey": pl.String,
    "interval_width": pl.Int64,
    "organism": pl.String,
    "model_version": pl.String,
    "fingerprint": pl.String,
    "placeholder": pl.Boolean,
    **SCORE_COLUMNS,
    "scored_at": pl.Float64,
}

CACHE_FORMAT = schema.register(schema.TableFormat(
    name=FORMAT_NAME, version=1, columns=CACHE_COLUMNS,
    description="agval variant score cache shard: per-track raw/quantile scores keyed by ckey"))



def cache_key(variant_key: str, interval_width: int, scorer: str, organism: str,
              model_version: str, fingerprint: str) -> str:
    """The content address of one (variant, scorer, context) entry."""
    h = hashlib.sha256("\x1f".join([variant_key, str(int(interval_width)), scorer, organism,
                                    model_version, fingerprint]).encode())
    return h.hexdigest()[:32]


class CacheContext:
    """Everything except the variant and the scorer that a cache key depends on."""

    def __init__(self, *, interval_width: int, organism: str, model_version: str, fingerprint: str):
        self.interval_width = int(interval_width)
        self.organism = organism
        self.model_version = model_version
        self.fingerprint = fingerprint

    @property
    def namespace(self) -> str:
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in self.model_version)
        return f"{self.organism.lower()}-{safe}-{self.fingerprint[:16]}"

    def key(self, variant_key: str, scorer: str) -> str:
        return cache_key(variant_key, self.interval_width, scorer, self.organism,
                         self.model_version, self.fingerprint)

    def keys(self, variant_keys: Sequence[str], scorer: str) -> list[str]:
        return [self.key(v, scorer) for v in variant_keys]

    def to_dict(self) -> dict:
        return {"interval_width": self.interval_width, "organism": self.organism,
                "model_version": self.model_version, "fingerprint": self.fingerprint}


class ScoreCache:
    """The score cache. Thread-safe; several processes may share one root."""

    def __init__(self, root: str | Path | None = None, *, simulated: bool | None = None):
        if root is None:
            if simulated is None:
                raise ValueError("ScoreCache needs a root or simulated=True/False")
            root = cache_dir("scores", simulated)
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.simulated = simulated
        self._lock = threading.Lock()
        self._index: dict[str, tuple[tuple, set[str]]] = {}
        self._recovered: set[str] = set()

    # -- namespace folders ----------------------------------------------------------
    def ns_dir(self, ctx: CacheContext) -> Path:
        d = self.root / ctx.namespace
        d.mkdir(parents=True, exist_ok=True)
        if ctx.namespace not in self._recovered:
            self._recovered.add(ctx.namespace)
            recover_journals(d, ctx)
        return d

    def shards(self, ctx: CacheContext) -> list[Path]:
        return sorted(self.ns_dir(ctx).glob("shard-*.parquet"))

    # -- reading --------------------------------------------------------------------
    def index(self, ctx: CacheContext) -> set[str]:
        """All ckeys stored for ``ctx`` (memoised per set of shard files)."""
        shards = self.shards(ctx)
        sig = tuple((p.name, p.stat().st_size) for p in shards)
        with self._lock:
            memo = self._index.get(ctx.namespace)
            if memo is not None and memo[0] == sig:
                return memo[1]
        keys: set[str] = set()
        if shards:
            keys = set(pl.scan_parquet(shards).select("ckey").unique().collect()["ckey"].to_list())
        with self._lock:
            self._index[ctx.namespace] = (sig, keys)
        return keys

    def contains(self, ctx: CacheContext, ckeys: Iterable[str]) -> set[str]:
        idx = self.index(ctx)
        return {k for k in ckeys if k in idx}

    def lookup(self, ctx: CacheContext, ckeys: Iterable[str], *, with_placeholders: bool = False,
               columns: Sequence[str] | None = None) -> pl.DataFrame:
        """Rows of the requested entries that are cached (``columns``, default all of
        :data:`CACHE_COLUMNS`).

        Shards are read one at a time with a ``ckey`` filter and only the requested
        columns, so memory stays near the size of the answer. An entry stored twice (a
        shard written again after a crash between writing a shard and deleting its
        journal) is taken from one shard only.
        """
        cols = list(columns or CACHE_COLUMNS)
        need = list(dict.fromkeys(["ckey", "placeholder", *cols]))
        shards = self.shards(ctx)
        want = pl.Series("ckey", list(dict.fromkeys(ckeys)), dtype=pl.String)
        if not shards or want.len() == 0:
            return pl.DataFrame(schema={c: CACHE_COLUMNS[c] for c in cols})
        parts = []
        seen: set[str] = set()
        for p in shards:
            part = pl.scan_parquet(p).select(need).filter(pl.col("ckey").is_in(want.implode())).collect()
            if not part.height:
                continue
            ks = part["ckey"].unique().to_list()
            dup = [k for k in ks if k in seen]  # the same entry in an earlier shard: keep that one
            if dup:
                part = part.filter(~pl.col("ckey").is_in(pl.Series(dup, dtype=pl.String).implode()))
            seen.update(ks)
            if not with_placeholders:
                part = part.filter(~pl.col("placeholder"))
            parts.append(part.select(cols))
        if not parts:
            return pl.DataFrame(schema={c: CACHE_COLUMNS[c] for c in cols})
        df = pl.concat(parts, how="vertical", rechunk=False)
        return df.select(cols)

    # -- writing --------------------------------------------------------------------
    def writer(self, ctx: CacheContext, *, flush_rows: int = 200_000) -> "CacheWriter":
        return CacheWriter(self, ctx, flush_rows=flush_rows)

    def compact(self, ctx: CacheContext) -> Path | None:
        """Merge every shard of ``ctx`` into one (atomic; duplicates dropped)."""
        shards = self.shards(ctx)
        if len(shards) <= 1:
            return shards[0] if shards else None
        keys = self.index(ctx)
        df = self.lookup(ctx, keys, with_placeholders=True)
        out = self.ns_dir(ctx) / f"shard-{time.time_ns():020d}-{_pysecrets.token_hex(4)}-compact.parquet"
        schema.write_table(df, out, CACHE_FORMAT)
        for p in shards:
            p.unlink(missing_ok=True)
        return out

    def _invalidate(self, ctx: CacheContext) -> None:
        with self._lock:
            self._index.pop(ctx.namespace, None)

    def stats(self) -> dict:
        ns = [d for d in self.root.iterdir() if d.is_dir()] if self.root.exists() else []
        return {"root": str(self.root), "namespaces": len(ns),
                "shards": sum(len(list(d.glob("shard-*.parquet"))) for d in ns),
                "bytes": sum(p.stat().st_size for d in ns for p in d.glob("shard-*.parquet"))}


_SCORE_SCHEMA = pl.Schema(SCORE_COLUMNS)
_MAGIC = b"AGJ1"
_HEAD = struct.Struct("<4sIQI")  # magic, header length, body length, crc32(header + body)


def _entries_to_cache_rows(ctx: CacheContext, entries: list[tuple[str, list[str], float]],
                           frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Build the cache rows of many scored variants at once (vectorised).

    ``entries``: (variant_key, scorer ids, scored_at) per variant; ``frames``: their score
    rows (:data:`SCORE_COLUMNS`). An entry without rows becomes a placeholder row.
    """
    ent = pl.DataFrame(
        [(vk, sc, ctx.key(vk, sc), ts) for vk, scs, ts in entries for sc in scs],
        schema={"variant_key": pl.String, "scorer": pl.String, "ckey": pl.String, "scored_at": pl.Float64},
        orient="row").unique(["variant_key", "scorer"], keep="last", maintain_order=True)
    rows = pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=SCORE_COLUMNS)
    n_rows = rows.height
    rows = rows.join(ent, on=["variant_key", "scorer"], how="inner", maintain_order="left")
    if rows.height != n_rows:
        # a backend answered with a scorer string other than the one requested: caching the
        # variant as "nothing to report" would hide it for good, so refuse loudly instead
        from agval.errors import ScoringError

        raise ScoringError(f"{n_rows - rows.height} score rows match no requested (variant, scorer); "
                           f"requested scorers {sorted(set(ent['scorer'].to_list()))[:3]}...")
    have = rows.select("ckey").unique()
    empty = ent.join(have, on="ckey", how="anti")
    const = [pl.lit(ctx.interval_width, dtype=pl.Int64).alias("interval_width"),
             pl.lit(ctx.organism).alias("organism"), pl.lit(ctx.model_version).alias("model_version"),
             pl.lit(ctx.fingerprint).alias("fingerprint")]
    out = [rows.with_columns(*const, pl.lit(False).alias("placeholder")).select(list(CACHE_COLUMNS))]
    if empty.height:
        ph = conform_scores(empty.select("variant_key", "scorer")).with_columns(
            empty["ckey"], empty["scored_at"], *const, pl.lit(True).alias("placeholder"))
        out.append(ph.select(list(CACHE_COLUMNS)))
    return pl.concat(out, how="vertical") if len(out) > 1 else out[0]


class CacheWriter:
    """Journals each scored variant at once (a framed record holding the variant's score
    rows as an Arrow IPC stream, written straight to the OS) and turns the chunk's
    results into one parquet shard on :meth:`flush` (the engine flushes at the end of
    every chunk). The journal is only read back to recover from a killed process."""

    def __init__(self, cache: ScoreCache, ctx: CacheContext, *, flush_rows: int = 200_000):
        self.cache = cache
        self.ctx = ctx
        self.dir = cache.ns_dir(ctx)
        self.flush_rows = flush_rows
        self._lock = threading.Lock()
        self._fh = None
        self._path: Path | None = None
        self._entries: list[tuple[str, list[str], float]] = []
        self._frames: list[pl.DataFrame] = []
        self._rows = 0
        self.entries_written = 0
        self.shards_written = 0

    def _open(self) -> None:
        name = f"journal-{time.time_ns():020d}-{os.getpid()}-{_pysecrets.token_hex(4)}.agj"
        final = self.dir / name
        # Created under a name recovery does not glob, locked, then renamed (the flock
        # survives the rename): recovery can never see this journal unlocked.
        tmp = self.dir / f".tmp-{name}"
        fh = open(tmp, "wb", buffering=0)
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(tmp, final)
        except BaseException:
            fh.close()
            tmp.unlink(missing_ok=True)
            raise
        self._path, self._fh = final, fh

    def add(self, variant_key: str, scores: pl.DataFrame | None, scorers: Sequence[str]) -> None:
        """Record the result of one variant for ``scorers`` (each scorer gets an entry,
        a placeholder if it produced no row). Durable against SIGKILL when it returns."""
        ts = time.time()
        scorers = list(scorers)
        body = b""
        if scores is not None and scores.height:
            if scores.schema != _SCORE_SCHEMA:
                scores = conform_scores(scores)
            buf = io.BytesIO()
            scores.write_ipc_stream(buf, compression="uncompressed")
            body = buf.getvalue()
        else:
            scores = None
        header = json.dumps({"v": variant_key, "s": scorers, "t": ts}).encode()
        rec = _HEAD.pack(_MAGIC, len(header), len(body), zlib.crc32(body, zlib.crc32(header))) + header + body
        with self._lock:
            if self._fh is None:
                self._open()
            self._fh.write(rec)  # unbuffered: in the OS now, survives SIGKILL of this process
            self._entries.append((variant_key, scorers, ts))
            if scores is not None:
                self._frames.append(scores)
                self._rows += scores.height
            self.entries_written += len(scorers)
            big = self._rows >= self.flush_rows
        if big:
            self.flush()

    def flush(self) -> Path | None:
        """Write the buffered results as one parquet shard (atomic) and delete the journal."""
        with self._lock:
            if self._fh is None:
                return None
            entries, frames, path, fh = self._entries, self._frames, self._path, self._fh
            self._entries, self._frames, self._rows = [], [], 0
            self._fh = self._path = None
            out = None
            if entries:
                out = path.with_name(path.name.replace("journal-", "shard-").replace(".agj", ".parquet"))
                schema.write_table(_entries_to_cache_rows(self.ctx, entries, frames), out, CACHE_FORMAT)
                self.shards_written += 1
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            fh.close()
            path.unlink(missing_ok=True)
        self.cache._invalidate(self.ctx)
        return out

    def close(self) -> None:
        self.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_journal(path: Path) -> tuple[list[tuple[str, list[str], float]], list[pl.DataFrame]]:
    """Every complete, checksum-valid record of a journal (a torn tail is ignored)."""
    entries, frames = [], []
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return entries, frames
    pos = 0
    while pos + _HEAD.size <= len(data):
        magic, hl, bl, crc = _HEAD.unpack_from(data, pos)
        start = pos + _HEAD.size
        end = start + hl + bl
        if magic != _MAGIC or end > len(data):
            break
        header, body = data[start:start + hl], data[start + hl:end]
        if zlib.crc32(body, zlib.crc32(header)) != crc:
            break
        h = json.loads(header)
        entries.append((h["v"], list(h["s"]), float(h["t"])))
        if body:
            frames.append(pl.read_ipc_stream(io.BytesIO(body)))
        pos = end
    return entries, frames


def _journal_to_shard(path: Path, ctx: CacheContext) -> Path | None:
    entries, frames = read_journal(path)
    if not entries:
        return None
    out = path.with_name(path.name.replace("journal-", "shard-").replace(".agj", ".parquet"))
    schema.write_table(_entries_to_cache_rows(ctx, entries, frames), out, CACHE_FORMAT)
    return out


def recover_journals(ns_dir: Path, ctx: CacheContext) -> list[Path]:
    """Turn the journals of dead writers into shards (called when a namespace is opened)."""
    out = []
    for j in sorted(ns_dir.glob("journal-*.agj")):
        try:
            if j.stat().st_size == 0:
                continue  # nothing to recover (and possibly a writer that has just opened it)
            fh = open(j, "rb")
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer holds it
            shard = _journal_to_shard(j, ctx)
            if shard is not None:
                out.append(shard)
            j.unlink(missing_ok=True)
        finally:
            fh.close()
    return out
