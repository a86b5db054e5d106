"""Content-addressed variant score cache, shared by every study.

Key (one entry = one variant scored by one scorer in one context)::

    ckey = sha256(variant chrom, 1-based pos, ref, alt | interval width | scorer full repr |
                  organism | model version name | model fingerprint digest)[:32]

Value: every per-track (and per-gene) raw and quantile score of that entry, with the
track metadata, so any track selection or aggregation is recomputed from the cache
without calling the model again. An entry with no rows (e.g. a gene scorer with no gene
in reach) is stored as one placeholder row, so it is not re-scored either.

Layout: ``<root>/<organism>-<model version>-<fingerprint[:16]>/`` holds

* ``answers-*.parquet``: whole answers of many entries, compactly (format
  ``agval-score-answers`` v1, :mod:`agval.scoring.answers`: one row per entry, the
  float32 matrix as bytes, the gene lists, and the id of its track block), with
  ``tracks/<id>.parquet`` holding each track-metadata block once. Backends that decode
  into whole answers (AlphaGenome ``decode="fast"``) are cached this way: no long row
  is stored, any selection is expanded on read;
* ``shard-*.parquet``: long rows of many entries (backends that answer with long rows:
  precomputed tables, Atlas, ``decode="sdk"``), written atomically through
  :func:`agval.schema.write_table` in the registered format ``agval-score-cache`` v1;
* ``journal-*.agj``: the write-ahead journal of a running writer: one framed record per
  scored variant (length-prefixed, crc32-checked JSON header + body: long rows as an
  Arrow IPC stream, or whole answers as JSON records in the header and their float32
  score bytes as the body), written unbuffered to the OS as soon as the variant is scored. A
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
from agval.scoring.answers import (ANSWER_COLUMNS, Selection, TrackBlock, VariantAnswers, answers_frame, expand,
                                  filter_long)
from agval.scoring.backend import SCORE_COLUMNS, TRACK_COLUMNS, conform_scores

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

ANSWERS_FORMAT = schema.register(schema.TableFormat(
    name="agval-score-answers", version=1, columns=ANSWER_COLUMNS,
    description="agval variant score cache: whole answers (float32 matrices + genes + track block id) by ckey"))

TRACKS_FORMAT = schema.register(schema.TableFormat(
    name="agval-score-tracks", version=1, columns=dict(TRACK_COLUMNS),
    description="agval variant score cache: one track-metadata block (columns of the answers citing it)"))



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
        self._blocks: dict[tuple[str, str], pl.DataFrame] = {}

    # -- namespace folders ----------------------------------------------------------
    def ns_dir(self, ctx: CacheContext) -> Path:
        d = self.root / ctx.namespace
        d.mkdir(parents=True, exist_ok=True)
        if ctx.namespace not in self._recovered:
            self._recovered.add(ctx.namespace)
            recover_journals(d, ctx)
        return d

    def shards(self, ctx: CacheContext) -> list[Path]:
        """Long-row shards."""
        return sorted(self.ns_dir(ctx).glob("shard-*.parquet"))

    def answer_shards(self, ctx: CacheContext) -> list[Path]:
        return sorted(self.ns_dir(ctx).glob("answers-*.parquet"))

    # -- track blocks ---------------------------------------------------------------
    def block_path(self, ctx: CacheContext, block_id: str) -> Path:
        return self.ns_dir(ctx) / "tracks" / f"{block_id}.parquet"

    def put_block(self, ctx: CacheContext, block: TrackBlock) -> None:
        """Store a track block once (atomic; a block is content-addressed, so never rewritten)."""
        key = (ctx.namespace, block.id)
        if key in self._blocks:
            return
        p = self.block_path(ctx, block.id)
        if not p.exists():
            schema.write_table(block.frame, p, TRACKS_FORMAT)
        with self._lock:
            self._blocks[key] = block.frame

    def block(self, ctx: CacheContext, block_id: str) -> pl.DataFrame:
        key = (ctx.namespace, block_id)
        got = self._blocks.get(key)
        if got is None:
            got = pl.read_parquet(self.block_path(ctx, block_id))
            with self._lock:
                self._blocks[key] = got
        return got

    # -- reading --------------------------------------------------------------------
    def index(self, ctx: CacheContext) -> set[str]:
        """All ckeys stored for ``ctx`` (memoised; only files new since the last call are read)."""
        shards = self.shards(ctx) + self.answer_shards(ctx)
        names = {p.name for p in shards}
        with self._lock:
            memo = self._index.get(ctx.namespace)
        if memo is not None and memo[0] <= names:  # only additions: read the new files
            known, keys = memo
            new = [p for p in shards if p.name not in known]
            if not new:
                return keys
            keys = set(keys)
        else:  # first use, or files were merged away (compaction): read everything
            known, keys, new = frozenset(), set(), shards
        for p in new:  # one file at a time: the ckey column only
            try:
                keys.update(pl.read_parquet(p, columns=["ckey"])["ckey"].to_list())
            except FileNotFoundError:  # compacted meanwhile: the next call rebuilds
                continue
        with self._lock:
            self._index[ctx.namespace] = (frozenset(known | {p.name for p in new}), keys)
        return keys

    # -- claims (concurrent runs sharing the cache) ----------------------------------
    def claim(self, ctx: CacheContext, variant_keys: Sequence[str], scorers: Sequence[str]) -> "Claims":
        """Claim ``variant_keys`` for scoring with ``scorers`` (non-blocking ``flock`` on one
        small file per variant): ``Claims.held`` are this caller's to score; the others
        are being scored by another run (process or thread) right now."""
        return Claims(self.ns_dir(ctx) / "claims", ctx, variant_keys, scorers)

    def contains(self, ctx: CacheContext, ckeys: Iterable[str]) -> set[str]:
        idx = self.index(ctx)
        return {k for k in ckeys if k in idx}

    def lookup(self, ctx: CacheContext, ckeys: Iterable[str], *, with_placeholders: bool = False,
               columns: Sequence[str] | None = None, selection: Selection | None = None) -> pl.DataFrame:
        """Long rows of the requested entries that are cached (``columns``, default all of
        :data:`CACHE_COLUMNS`; answers expanded into the long rows of ``selection``).

        Files are read one at a time with a ``ckey`` filter and only the requested
        columns; answers are expanded file by file, so memory stays near the size of the
        selected rows. An entry stored twice (a file written again after a crash between
        writing it and deleting its journal) is taken from one file only.
        """
        cols = list(columns or CACHE_COLUMNS)
        parts = list(self.iter_lookup(ctx, ckeys, with_placeholders=with_placeholders, columns=cols,
                                      selection=selection))
        if not parts:
            return pl.DataFrame(schema={c: CACHE_COLUMNS[c] for c in cols})
        df = pl.concat(parts, how="vertical", rechunk=False)
        return df.select(cols)

    def iter_lookup(self, ctx: CacheContext, ckeys: Iterable[str], *, with_placeholders: bool = False,
                    columns: Sequence[str] | None = None, selection: Selection | None = None):
        """:meth:`lookup` one cache file at a time: yields non-empty DataFrames (``columns``),
        so a caller can write each to disk and hold only one file's selected rows."""
        cols = list(columns or CACHE_COLUMNS)
        want = pl.Series("ckey", list(dict.fromkeys(ckeys)), dtype=pl.String)
        seen: set[str] = set()

        def dedup(part: pl.DataFrame) -> pl.DataFrame:
            ks = part["ckey"].unique().to_list()
            dup = [k for k in ks if k in seen]  # the same entry in an earlier file: keep that one
            if dup:
                part = part.filter(~pl.col("ckey").is_in(pl.Series(dup, dtype=pl.String).implode()))
            seen.update(ks)
            return part

        if want.len():
            need = list(dict.fromkeys(["ckey", "placeholder", *cols]))
            for p in self.shards(ctx):
                part = pl.scan_parquet(p).select(need).filter(pl.col("ckey").is_in(want.implode())).collect()
                if not part.height:
                    continue
                part = dedup(part)
                if not with_placeholders:
                    part = part.filter(~pl.col("placeholder"))
                part = filter_long(part, selection).select(cols)
                if part.height:
                    yield part
            for p in self.answer_shards(ctx):
                ans = pl.scan_parquet(p).filter(pl.col("ckey").is_in(want.implode())).collect()
                if not ans.height:
                    continue
                ans = dedup(ans)
                long = expand(ans, lambda bid: self.block(ctx, bid), selection)
                if not long.height:
                    continue
                const = {"interval_width": pl.lit(ctx.interval_width, dtype=pl.Int64),
                         "organism": pl.lit(ctx.organism), "model_version": pl.lit(ctx.model_version),
                         "fingerprint": pl.lit(ctx.fingerprint), "placeholder": pl.lit(False)}
                extra = [v.alias(k) for k, v in const.items() if k in cols]
                if "ckey" in cols or "scored_at" in cols:
                    keys = ans.select("variant_key", "scorer", "ckey", "scored_at")
                    long = long.join(keys, on=["variant_key", "scorer"], how="left", maintain_order="left")
                yield long.with_columns(extra).select(cols)

    def lookup_answers(self, ctx: CacheContext, ckeys: Iterable[str]) -> pl.DataFrame:
        """Whole answers (:data:`ANSWER_COLUMNS`) of the requested entries stored compactly."""
        want = pl.Series("ckey", list(dict.fromkeys(ckeys)), dtype=pl.String)
        parts = [pl.scan_parquet(p).filter(pl.col("ckey").is_in(want.implode())).collect()
                 for p in self.answer_shards(ctx)] if want.len() else []
        parts = [p for p in parts if p.height]
        if not parts:
            return pl.DataFrame(schema=ANSWER_COLUMNS)
        return pl.concat(parts).unique("ckey", keep="first", maintain_order=True)

    # -- writing --------------------------------------------------------------------
    def writer(self, ctx: CacheContext, *, flush_rows: int = 200_000) -> "CacheWriter":
        return CacheWriter(self, ctx, flush_rows=flush_rows)

    def compact(self, ctx: CacheContext) -> Path | None:
        """Merge every shard of ``ctx`` into one (atomic; duplicates dropped)."""
        out = None
        answers = self.answer_shards(ctx)
        if len(answers) > 1:
            df = pl.concat([pl.read_parquet(p) for p in answers]).unique("ckey", keep="first", maintain_order=True)
            out = self.ns_dir(ctx) / f"answers-{time.time_ns():020d}-{_pysecrets.token_hex(4)}-compact.parquet"
            schema.write_table(df, out, ANSWERS_FORMAT)
            for p in answers:
                p.unlink(missing_ok=True)
        elif answers:
            out = answers[0]
        shards = self.shards(ctx)
        if len(shards) <= 1:
            self._invalidate(ctx)
            return out or (shards[0] if shards else None)
        keys = self.index(ctx)
        df = self.lookup(ctx, keys, with_placeholders=True)
        out = self.ns_dir(ctx) / f"shard-{time.time_ns():020d}-{_pysecrets.token_hex(4)}-compact.parquet"
        schema.write_table(df, out, CACHE_FORMAT)
        for p in shards:
            p.unlink(missing_ok=True)
        self._invalidate(ctx)
        return out

    def _invalidate(self, ctx: CacheContext) -> None:
        pass  # the index notices new files itself (and rebuilds when files disappear)

    def stats(self) -> dict:
        ns = [d for d in self.root.iterdir() if d.is_dir()] if self.root.exists() else []
        return {"root": str(self.root), "namespaces": len(ns),
                "shards": sum(len(list(d.glob("shard-*.parquet"))) + len(list(d.glob("answers-*.parquet")))
                              for d in ns),
                "bytes": sum(p.stat().st_size for d in ns for p in [*d.glob("shard-*.parquet"),
                                                                   *d.glob("answers-*.parquet"),
                                                                   *d.glob("tracks/*.parquet")])}


class Claims:
    """Per-variant claims of one chunk (see :meth:`ScoreCache.claim`). A claim is held
    until :meth:`release` (after the chunk's results are in a cache file), so a run that
    finds a variant claimed can wait for it and then read it from the cache."""

    def __init__(self, root: Path, ctx: CacheContext, variant_keys: Sequence[str], scorers: Sequence[str]):
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        tag = "|".join(scorers)
        self._path = {vk: root / f"{ctx.key(vk, tag)}.lock" for vk in variant_keys}
        self._fds: dict[str, int] = {}
        for vk, p in self._path.items():
            fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._fds[vk] = fd
        self.held = set(self._fds)

    def release(self) -> None:
        for vk, fd in self._fds.items():
            try:
                self._path[vk].unlink(missing_ok=True)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
        self._fds = {}

    def wait_for(self, variants) -> None:
        """Block until nobody holds the claims of ``variants`` (Variant objects or keys)."""
        for v in variants:
            p = self._path[getattr(v, "key", v)]
            try:
                fd = os.open(p, os.O_RDWR)
            except FileNotFoundError:
                continue  # released (and removed)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)


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


def _answers_to_cache_rows(ctx: CacheContext, answers: list[tuple[str, list[str], float, list[dict]]]
                           ) -> pl.DataFrame:
    """The answers (plain records, :func:`~agval.scoring.answers.answer_row`) of many scored
    variants as one keyed frame, built in bulk (every requested scorer must have its answer)."""
    from agval.errors import ScoringError

    records, ckeys, stamps = [], [], []
    for vk, scorers, ts, recs in answers:
        got = [r["scorer"] for r in recs]
        if sorted(got) != sorted(scorers) or any(r["variant_key"] != vk for r in recs):
            raise ScoringError(f"answers of {vk} are for scorers {got[:3]}..., requested {scorers[:3]}...")
        records.extend(recs)
        ckeys.extend(ctx.key(vk, sc) for sc in got)
        stamps.extend([ts] * len(got))
    frame = answers_frame(records).with_columns(pl.Series("ckey", ckeys, dtype=pl.String),
                                                pl.Series("scored_at", stamps, dtype=pl.Float64))
    return frame.select(list(ANSWER_COLUMNS)).unique("ckey", keep="last", maintain_order=True)


_BLOBS = ("raw", "quantile")


def _encode_answers(records: list[dict]) -> tuple[list[dict], bytes]:
    """Answer records -> (JSON-able records without their score bytes, the bytes concatenated).

    A journal record of whole answers is this (format ``"a": 2``): no Arrow/polars call in
    the scoring threads that journal (those cost ~10x their single-thread CPU when 16
    threads make them at once)."""
    meta, blobs = [], []
    for r in records:
        m = {k: v for k, v in r.items() if k not in _BLOBS}
        for k in _BLOBS:
            b = r.get(k)
            m[k] = -1 if b is None else len(b)
            if b:
                blobs.append(b)
        meta.append(m)
    return meta, b"".join(blobs)


def _decode_answers(meta: list[dict], body: bytes) -> list[dict]:
    out, pos = [], 0
    for m in meta:
        r = dict(m)
        for k in _BLOBS:
            n = r[k]
            r[k] = None if n < 0 else body[pos:pos + n]
            pos += max(n, 0)
        out.append(r)
    if pos != len(body):
        raise ValueError("journal record: score bytes do not match their lengths")
    return out


class CacheWriter:
    """Journals each scored variant at once (a framed record holding the variant's long
    rows or whole answers, written straight to the OS) and turns the chunk's
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
        self._answers: list[tuple[str, list[str], float, list[dict]]] = []
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

    def add(self, variant_key: str, scores: "pl.DataFrame | VariantAnswers | None", scorers: Sequence[str]) -> None:
        """Record the result of one variant for ``scorers`` (each scorer gets an entry,
        a placeholder if it produced no row). Durable against SIGKILL when it returns.
        ``scores``: long rows, or whole answers (:class:`VariantAnswers`, stored compactly)."""
        ts = time.time()
        scorers = list(scorers)
        body = b""
        answers = None
        if isinstance(scores, VariantAnswers):
            for block in scores.blocks.values():  # before the journal record that cites them
                self.cache.put_block(self.ctx, block)
            answers = scores.records
            meta, body = _encode_answers(answers)
            scores = None
        elif scores is not None and scores.height:
            if scores.schema != _SCORE_SCHEMA:
                scores = conform_scores(scores)
            buf = io.BytesIO()
            scores.write_ipc_stream(buf, compression="uncompressed")
            body = buf.getvalue()
        else:
            scores = None
        head = {"v": variant_key, "s": scorers, "t": ts}
        if answers is not None:
            head["a"], head["r"] = 2, meta
        header = json.dumps(head).encode()
        rec = _HEAD.pack(_MAGIC, len(header), len(body), zlib.crc32(body, zlib.crc32(header))) + header + body
        with self._lock:
            if self._fh is None:
                self._open()
            self._fh.write(rec)  # unbuffered: in the OS now, survives SIGKILL of this process
            if answers is not None:
                self._answers.append((variant_key, scorers, ts, answers))
                self._rows += len(answers)
            else:
                self._entries.append((variant_key, scorers, ts))
                if scores is not None:
                    self._frames.append(scores)
                    self._rows += scores.height
            self.entries_written += len(scorers)
            big = self._rows >= self.flush_rows
        if big:
            self.flush()

    def flush(self) -> Path | None:
        """Write the buffered results as parquet (atomic) and delete the journal."""
        with self._lock:
            if self._fh is None:
                return None
            entries, frames, answers, path, fh = self._entries, self._frames, self._answers, self._path, self._fh
            self._entries, self._frames, self._answers, self._rows = [], [], [], 0
            self._fh = self._path = None
            out = None
            if entries:
                out = path.with_name(path.name.replace("journal-", "shard-").replace(".agj", ".parquet"))
                schema.write_table(_entries_to_cache_rows(self.ctx, entries, frames), out, CACHE_FORMAT)
                self.shards_written += 1
            if answers:
                out = path.with_name(path.name.replace("journal-", "answers-").replace(".agj", ".parquet"))
                schema.write_table(_answers_to_cache_rows(self.ctx, answers), out, ANSWERS_FORMAT)
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
    """Every complete, checksum-valid long-row record of a journal (a torn tail is ignored)."""
    entries, frames, _ = read_journal_all(path)
    return entries, frames


def read_journal_all(path: Path):
    """``(entries, frames, answers)`` of every complete, checksum-valid record of a journal."""
    entries, frames, answers = [], [], []
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return entries, frames, answers
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
        if h.get("a") == 2:  # whole answers: records + their score bytes
            try:
                recs = _decode_answers(h["r"], body)
            except (KeyError, TypeError, ValueError):
                break  # checksum-valid but not ours to read: treated like a torn tail
            answers.append((h["v"], list(h["s"]), float(h["t"]), recs))
        elif h.get("a"):  # whole answers as an Arrow IPC stream (journals of agval before 2026-12)
            answers.append((h["v"], list(h["s"]), float(h["t"]), pl.read_ipc_stream(io.BytesIO(body)).to_dicts()))
        else:
            entries.append((h["v"], list(h["s"]), float(h["t"])))
            if body:
                frames.append(pl.read_ipc_stream(io.BytesIO(body)))
        pos = end
    return entries, frames, answers


def _journal_to_shard(path: Path, ctx: CacheContext) -> Path | None:
    entries, frames, answers = read_journal_all(path)
    out = None
    if entries:
        out = path.with_name(path.name.replace("journal-", "shard-").replace(".agj", ".parquet"))
        schema.write_table(_entries_to_cache_rows(ctx, entries, frames), out, CACHE_FORMAT)
    if answers:
        out = path.with_name(path.name.replace("journal-", "answers-").replace(".agj", ".parquet"))
        schema.write_table(_answers_to_cache_rows(ctx, answers), out, ANSWERS_FORMAT)
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
