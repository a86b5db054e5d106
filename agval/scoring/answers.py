"""Whole model answers, kept compactly, and their expansion into long score rows.

A ScoreVariant answer for one scorer is a float32 tensor ``[2 or 1, n_obs, n_tracks]``
(raw, quantile), the gene metadata of its ``n_obs`` rows and the track metadata of its
``n_tracks`` columns. The track metadata is the same block for every variant (hundreds of
tracks on the real service), so it is stored once per namespace under its content id
(:class:`TrackBlock`), and an answer is one row of :data:`ANSWER_COLUMNS`:

* ``raw`` / ``quantile``: the matrix as little-endian float32 bytes (C order, genes x
  tracks); ``quantile`` null when the server sent raw scores only;
* ``gene_*`` / ``junction_*``: lists of length ``n_obs`` (null for variant-centric scorers).

Nothing per track and per gene exists until :func:`expand` builds the long rows of a
:class:`Selection` (tidy-scores semantics: gene ids without version, strand-mismatched
(gene, track) cells dropped, tracks in catalogue order with genes inner). The cache keeps
the whole answer, so a later selection spends no call.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import polars as pl

from agval.genes import strip_gene_version_expr
from agval.scoring.backend import GENE_COLUMNS, SCORE_COLUMNS, TRACK_COLUMNS

#: One row per (variant, scorer): the whole answer, compactly.
ANSWER_COLUMNS: dict[str, pl.DataType] = {
    "ckey": pl.String,
    "variant_key": pl.String,
    "scorer": pl.String,
    "output_type": pl.String,
    "tracks_id": pl.String,
    "n_obs": pl.Int32,
    "n_tracks": pl.Int32,
    "gene_id": pl.List(pl.String),
    "gene_name": pl.List(pl.String),
    "gene_type": pl.List(pl.String),
    "gene_strand": pl.List(pl.String),
    "junction_start": pl.List(pl.Int64),
    "junction_end": pl.List(pl.Int64),
    "raw": pl.Binary,
    "quantile": pl.Binary,
    "scored_at": pl.Float64,
}

_GENE_LISTS = ("gene_id", "gene_name", "gene_type", "gene_strand", "junction_start", "junction_end")


@dataclass
class TrackBlock:
    """The track metadata of an answer (``TRACK_COLUMNS``, in column order) and its content id."""

    id: str
    frame: pl.DataFrame

    @staticmethod
    def make_id(serialized: bytes) -> str:
        return hashlib.sha256(serialized).hexdigest()[:24]


@dataclass
class VariantAnswers:
    """Every scorer's answer for one variant: ``rows`` (:data:`ANSWER_COLUMNS` without
    ``ckey``/``scored_at``) and the track blocks they refer to."""

    variant_key: str
    rows: pl.DataFrame
    blocks: dict[str, TrackBlock]

    @property
    def height(self) -> int:  # quacks like a frame for "did it return anything"
        return self.rows.height

    def to_long(self, selection: "Selection | None" = None) -> pl.DataFrame:
        return expand(self.rows, self.blocks.__getitem__, selection)


def answer_row(variant_key: str, scorer: str, output_type: str, block: TrackBlock, values: np.ndarray,
               genes: dict[str, list] | None) -> dict[str, Any]:
    """One answer row from a decoded tensor ``values`` ``[1 or 2, n_obs, n_tracks]``."""
    values = np.asarray(values, dtype=np.float32)
    n_obs, n_tracks = (int(values.shape[1]), int(values.shape[2])) if values.ndim == 3 else (0, 0)
    row = {"variant_key": variant_key, "scorer": scorer, "output_type": output_type, "tracks_id": block.id,
           "n_obs": n_obs, "n_tracks": n_tracks,
           "raw": np.ascontiguousarray(values[0], dtype="<f4").tobytes() if values.size else b"",
           "quantile": (np.ascontiguousarray(values[1], dtype="<f4").tobytes()
                        if values.ndim == 3 and values.shape[0] > 1 and values.size else None)}
    for c in _GENE_LISTS:
        row[c] = genes[c] if genes else None
    return row


def answers_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    schema = {k: v for k, v in ANSWER_COLUMNS.items() if k not in ("ckey", "scored_at")}
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


# ----------------------------------------------------------------------------------
# Selections.
# ----------------------------------------------------------------------------------

class Selection:
    """What a study reads, declared before any row exists: the union of one or more
    :class:`~agval.scoring.tracks.TrackSelection` (a track is kept when any of them
    matches it; ``None`` keeps every track) and, optionally, ``row_gene`` (the name of a
    column of the variants table: gene-scorer rows are kept only for each row's own gene;
    rows of variant-centric scorers are kept)."""

    def __init__(self, tracks=None, *, row_gene: str | None = None):
        from agval.scoring.tracks import TrackSelection

        if isinstance(tracks, Selection):
            row_gene = row_gene or tracks.row_gene
            tracks = tracks.tracks
        if isinstance(tracks, TrackSelection):
            tracks = [tracks]
        elif isinstance(tracks, dict):
            tracks = [TrackSelection.from_dict(tracks)]
        self.tracks: list | None = list(tracks) if tracks is not None else None
        self.row_gene = row_gene

    @property
    def everything(self) -> bool:
        return self.tracks is None

    def expr(self) -> pl.Expr:
        if self.tracks is None:
            return pl.lit(True)
        if not self.tracks:
            return pl.lit(False)
        out = self.tracks[0].expr()
        for t in self.tracks[1:]:
            out = out | t.expr()
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"tracks": None if self.tracks is None else [t.to_dict() for t in self.tracks],
                "row_gene": self.row_gene}

    def __repr__(self) -> str:
        return f"Selection({self.to_dict()})"


def as_selection(selection) -> Selection | None:
    if selection is None:
        return None
    return selection if isinstance(selection, Selection) else Selection(selection)


# ----------------------------------------------------------------------------------
# Expansion: answers -> long rows (bulk, numpy).
# ----------------------------------------------------------------------------------

_LONG_FIXED = [c for c in SCORE_COLUMNS if c not in ("raw_score", "quantile_score")]


def _selected_tracks(block: pl.DataFrame, scorer: str, output_type: str, selection: Selection | None) -> np.ndarray:
    if selection is None or selection.everything:
        return np.arange(block.height)
    f = block.with_columns(pl.lit(scorer).alias("scorer"), pl.lit(output_type).alias("output_type"))
    return np.flatnonzero(f.select(selection.expr().fill_null(False)).to_series().to_numpy())


def expand(answers: pl.DataFrame, block_of: Callable[[str], TrackBlock | pl.DataFrame],
           selection: Selection | None = None) -> pl.DataFrame:
    """Long rows (:data:`SCORE_COLUMNS`) of the selected tracks of every answer in ``answers``.

    ``block_of(tracks_id)`` gives a track block. Row order: answers in order; within an
    answer tracks in column order, genes inner (as ``tidy_scores``).
    """
    if answers.height == 0:
        return pl.DataFrame(schema=SCORE_COLUMNS)
    sel_memo: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, pl.DataFrame]] = {}
    a_idx, t_idx, g_idx, raws, quants, qmask, blocks_used = [], [], [], [], [], [], []
    gene_rows: dict[str, list] = {c: [] for c in _GENE_LISTS}
    n_genes = 0
    has_quant_all = True
    cols = answers.select("tracks_id", "scorer", "output_type", "n_obs", "n_tracks", "raw", "quantile",
                          *_GENE_LISTS)
    block_pos: dict[str, int] = {}
    track_offsets: list[int] = []
    offset = 0
    for i, (tid, sc, ot, n_obs, n_tracks, raw_b, q_b, *glists) in enumerate(cols.iter_rows()):
        if not n_obs or not n_tracks:
            continue
        key = (tid, sc)
        got = sel_memo.get(key)
        if got is None:
            blk = block_of(tid)
            frame = blk.frame if isinstance(blk, TrackBlock) else blk
            if tid not in block_pos:
                block_pos[tid] = len(blocks_used)
                blocks_used.append(frame)
                track_offsets.append(offset)
                offset += frame.height
            idx = _selected_tracks(frame, sc, ot, selection)
            strands = np.asarray(frame["track_strand"].fill_null("").to_list(), dtype=object)[idx]
            got = (idx, strands, frame)
            sel_memo[key] = got
        idx, tstrands, frame = got
        if idx.size == 0:
            continue
        raw = np.frombuffer(raw_b, dtype="<f4").reshape(n_obs, n_tracks)[:, idx]  # [n_obs, k]
        q = np.frombuffer(q_b, dtype="<f4").reshape(n_obs, n_tracks)[:, idx] if q_b is not None else None
        k = idx.size
        ti = np.repeat(np.arange(k), n_obs)  # track-major, genes inner
        gi = np.tile(np.arange(n_obs), k)
        if glists[0] is not None:  # gene scorer: drop strand-mismatched cells
            gs = np.asarray([s or "" for s in glists[3]], dtype=object)[gi]
            ts = tstrands[ti]
            keep = ~(((gs == "+") & (ts == "-")) | ((gs == "-") & (ts == "+")))
            for c, lst in zip(_GENE_LISTS, glists):
                gene_rows[c].extend(lst)
            gsel = gi[keep] + n_genes
            n_genes += n_obs
        else:
            keep = np.ones(ti.size, dtype=bool)
            gsel = np.full(int(keep.sum()), -1, dtype=np.int64)
        tsel = ti[keep]
        a_idx.append(np.full(tsel.size, i, dtype=np.int64))
        t_idx.append(idx[tsel] + track_offsets[block_pos[tid]])
        g_idx.append(gsel)
        raws.append(raw.T.reshape(-1)[keep])
        if q is None:
            has_quant_all = False
            quants.append(np.full(tsel.size, np.nan, dtype=np.float32))
            qmask.append(np.zeros(tsel.size, dtype=bool))
        else:
            quants.append(q.T.reshape(-1)[keep])
            qmask.append(np.ones(tsel.size, dtype=bool))
    if not a_idx:
        return pl.DataFrame(schema=SCORE_COLUMNS)
    ai = pl.Series(np.concatenate(a_idx))
    tracks = pl.concat([f.select(list(TRACK_COLUMNS)) for f in blocks_used], how="vertical")[
        pl.Series(np.concatenate(t_idx))]
    gidx = np.concatenate(g_idx)
    genes = pl.DataFrame({c: gene_rows[c] for c in _GENE_LISTS}, schema=GENE_COLUMNS)
    genes = genes.with_columns(strip_gene_version_expr(pl.col("gene_id")).alias("gene_id"))
    null_gene = pl.DataFrame({c: [None] for c in GENE_COLUMNS}, schema=GENE_COLUMNS)
    genes = pl.concat([genes, null_gene])  # index -1 -> the null row
    gsel = np.where(gidx < 0, genes.height - 1, gidx)
    gcols = genes[pl.Series(gsel)]
    meta = answers.select("variant_key", "scorer", "output_type")[ai]
    q_all = np.concatenate(quants)
    quant = pl.Series("quantile_score", q_all, dtype=pl.Float32)
    if not has_quant_all:  # answers without quantiles: null (not NaN), as tidy_scores leaves them
        quant = pl.select(pl.when(pl.Series(np.concatenate(qmask))).then(quant).otherwise(None)
                          .alias("quantile_score")).to_series()
    out = pl.concat([meta, gcols, tracks], how="horizontal").with_columns(
        pl.Series("raw_score", np.concatenate(raws), dtype=pl.Float32), quant)
    return out.select(list(SCORE_COLUMNS))


def filter_long(rows: pl.DataFrame, selection: Selection | None) -> pl.DataFrame:
    """Apply a selection's track part to long rows (row-gene matching happens per input row)."""
    if selection is None or selection.everything:
        return rows
    return rows.filter(selection.expr().fill_null(False))


def genes_by_row(variants: pl.DataFrame, column: str) -> pl.DataFrame:
    """``row_id, _row_gene`` (version stripped) for row-gene matching."""
    from agval.errors import MissingColumnError

    if column not in variants.columns:
        raise MissingColumnError(column, available=variants.columns)
    return variants.select(pl.col("row_id").cast(pl.String),
                           strip_gene_version_expr(pl.col(column).cast(pl.String)).alias("_row_gene"))


def iter_batches(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
