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


class VariantAnswers:
    """Every scorer's answer for one variant and the track blocks they refer to.

    ``rows``: :data:`ANSWER_COLUMNS` without ``ckey``/``scored_at``, one row per scorer.
    Built from plain records (dicts, :func:`answer_row`) the frame is made only when asked
    for: decoding threads build no polars frame (polars calls from many threads at once
    cost ~10x their single-thread CPU), and a chunk's answers become one frame in bulk
    (:func:`answers_frame` over every variant's :attr:`records`).
    """

    __slots__ = ("variant_key", "blocks", "_records", "_frame")

    def __init__(self, variant_key: str, rows: "pl.DataFrame | Sequence[dict[str, Any]]",
                 blocks: dict[str, TrackBlock]):
        self.variant_key = variant_key
        self.blocks = blocks
        if isinstance(rows, pl.DataFrame):
            self._frame, self._records = rows, None
        else:
            self._frame, self._records = None, list(rows)

    @property
    def rows(self) -> pl.DataFrame:
        if self._frame is None:
            self._frame = answers_frame(self._records)
        return self._frame

    @property
    def records(self) -> list[dict[str, Any]]:
        if self._records is None:
            self._records = self._frame.to_dicts()
        return self._records

    @property
    def height(self) -> int:  # quacks like a frame for "did it return anything"
        return len(self._records) if self._records is not None else self._frame.height

    def to_long(self, selection: "Selection | None" = None) -> pl.DataFrame:
        return expand(self.rows, self.blocks.__getitem__, selection)

    def __getstate__(self):  # pickled through the isolation workers' pipes: records only
        return {"variant_key": self.variant_key, "blocks": self.blocks, "records": self.records}

    def __setstate__(self, st):
        self.variant_key, self.blocks = st["variant_key"], st["blocks"]
        self._records, self._frame = st["records"], None


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

def _selected_tracks(block: pl.DataFrame, scorer: str, output_type: str, selection: Selection | None) -> np.ndarray:
    if selection is None or selection.everything:
        return np.arange(block.height)
    f = block.with_columns(pl.lit(scorer).alias("scorer"), pl.lit(output_type).alias("output_type"))
    return np.flatnonzero(f.select(selection.expr().fill_null(False)).to_series().to_numpy())


_STRAND_CODE = {"+": 1, "-": 2}
_ANSWER_FIELDS = ("variant_key", "scorer", "output_type", "tracks_id", "n_obs", "n_tracks", "raw", "quantile",
                  *_GENE_LISTS)


def _answer_columns(answers: "pl.DataFrame | Sequence[dict[str, Any]]") -> dict[str, list]:
    if isinstance(answers, pl.DataFrame):
        return {c: answers[c].to_list() for c in _ANSWER_FIELDS}
    return {c: [r[c] for r in answers] for c in _ANSWER_FIELDS}


def expand(answers: "pl.DataFrame | Sequence[dict[str, Any]]", block_of: Callable[[str], TrackBlock | pl.DataFrame],
           selection: Selection | None = None) -> pl.DataFrame:
    """Long rows (:data:`SCORE_COLUMNS`) of the selected tracks of every answer in ``answers``.

    ``answers``: a frame of :data:`ANSWER_COLUMNS` or plain answer records
    (:func:`answer_row`). ``block_of(tracks_id)`` gives a track block. Row order: answers in
    order; within an answer tracks in column order, genes inner (as ``tidy_scores``).

    Bulk: the answers of one (track block, scorer) are one ``[sum of n_obs, n_tracks]``
    matrix, so the work per answer is a few list appends; every long row is placed by
    numpy index arithmetic and the text columns by one gather each.
    """
    selection = as_selection(selection)
    cols = _answer_columns(answers)
    n = len(cols["tracks_id"])
    groups: dict[tuple[str, str, str], list[int]] = {}
    for i in range(n):
        if cols["n_obs"][i] and cols["n_tracks"][i]:
            groups.setdefault((cols["tracks_id"][i], cols["scorer"][i], cols["output_type"][i]), []).append(i)
    if not groups:
        return pl.DataFrame(schema=SCORE_COLUMNS)
    blocks_used: list[pl.DataFrame] = []
    block_offset: dict[str, int] = {}
    n_tracks_seen = 0
    gene_rows: dict[str, list] = {c: [] for c in _GENE_LISTS}
    out = {k: [] for k in ("a", "t", "g", "raw", "q", "qm")}
    for (tid, sc, ot), members in groups.items():
        blk = block_of(tid)
        frame = blk.frame if isinstance(blk, TrackBlock) else blk
        if tid not in block_offset:
            block_offset[tid] = n_tracks_seen
            blocks_used.append(frame)
            n_tracks_seen += frame.height
        idx = _selected_tracks(frame, sc, ot, selection)
        if idx.size == 0:
            continue
        width = cols["n_tracks"][members[0]]
        if any(cols["n_tracks"][i] != width for i in members) or width != frame.height:
            raise ValueError(f"answers of scorer {sc} do not match their track block ({frame.height} tracks)")
        k = idx.size
        tstrand = np.array([_STRAND_CODE.get(x, 0) for x in frame["track_strand"].to_list()], dtype=np.int8)[idx]
        n_obs = np.array([cols["n_obs"][i] for i in members], dtype=np.int64)
        has_genes = np.array([cols["gene_id"][i] is not None for i in members], dtype=bool)
        raw = np.frombuffer(b"".join(cols["raw"][i] for i in members), dtype="<f4").reshape(-1, width)[:, idx]
        qs = [cols["quantile"][i] for i in members]
        if all(q is not None for q in qs):
            quant, qmask = np.frombuffer(b"".join(qs), dtype="<f4").reshape(-1, width)[:, idx], None
        else:  # some (or all) answers without quantiles: NaN there, null in the table
            nan = np.full(width, np.nan, dtype="<f4").tobytes()
            quant = np.frombuffer(b"".join(q if q is not None else nan * int(m) for q, m in zip(qs, n_obs)),
                                  dtype="<f4").reshape(-1, width)[:, idx]
            qmask = np.repeat(np.array([q is not None for q in qs]), n_obs)
        # gene rows of the group (a variant-centric answer's single row has none: null)
        gene_base = len(gene_rows["gene_id"])
        gstrand = []
        for i, m in zip(members, n_obs):
            for c in _GENE_LISTS:
                lst = cols[c][i]
                gene_rows[c].extend(lst if lst is not None else [None] * int(m))
            gs = cols["gene_strand"][i]
            gstrand.extend(gs if gs is not None else [None] * int(m))
        gstrand = np.array([_STRAND_CODE.get(x, 0) for x in gstrand], dtype=np.int8)
        # output rows: per answer, tracks (k) major and its genes inner
        sizes = n_obs * k
        row_start = np.cumsum(n_obs) - n_obs
        rep = lambda v: np.repeat(v, sizes)  # noqa: E731
        off = np.arange(int(sizes.sum())) - rep(np.cumsum(sizes) - sizes)
        nrep = rep(n_obs)
        t, g = off // nrep, off % nrep
        row = rep(row_start) + g
        ts, gs_ = tstrand[t], gstrand[row]
        keep = ~(rep(has_genes) & (((gs_ == 1) & (ts == 2)) | ((gs_ == 2) & (ts == 1))))
        out["a"].append(rep(np.asarray(members, dtype=np.int64))[keep])
        out["t"].append(idx[t[keep]] + block_offset[tid])
        out["g"].append(np.where(rep(has_genes), row + gene_base, -1)[keep])
        out["raw"].append(raw[row, t][keep])
        out["q"].append(quant[row, t][keep])
        out["qm"].append(np.ones(int(keep.sum()), dtype=bool) if qmask is None else qmask[row][keep])
    if not out["a"]:
        return pl.DataFrame(schema=SCORE_COLUMNS)
    a_idx = np.concatenate(out["a"])
    order = np.argsort(a_idx, kind="stable")  # answers in input order (one group per answer: stable inside)
    a_idx = a_idx[order]
    t_idx, g_idx = np.concatenate(out["t"])[order], np.concatenate(out["g"])[order]
    raws, quants, qmask = (np.concatenate(out[k])[order] for k in ("raw", "q", "qm"))
    tracks = pl.concat([f.select(list(TRACK_COLUMNS)) for f in blocks_used], how="vertical")[pl.Series(t_idx)]
    genes = pl.DataFrame({c: gene_rows[c] for c in _GENE_LISTS}, schema=GENE_COLUMNS)
    genes = genes.with_columns(strip_gene_version_expr(pl.col("gene_id")).alias("gene_id"))
    genes = pl.concat([genes, pl.DataFrame({c: [None] for c in GENE_COLUMNS}, schema=GENE_COLUMNS)])
    gcols = genes[pl.Series(np.where(g_idx < 0, genes.height - 1, g_idx))]  # -1 -> the null row
    meta = pl.DataFrame({c: cols[c] for c in ("variant_key", "scorer", "output_type")},
                        schema={c: pl.String for c in ("variant_key", "scorer", "output_type")})[pl.Series(a_idx)]
    quant = pl.Series("quantile_score", quants, dtype=pl.Float32)
    if not qmask.all():  # answers without quantiles: null (not NaN), as tidy_scores leaves them
        quant = pl.select(pl.when(pl.Series(qmask)).then(quant).otherwise(None).alias("quantile_score")).to_series()
    res = pl.concat([meta, gcols, tracks], how="horizontal").with_columns(
        pl.Series("raw_score", raws, dtype=pl.Float32), quant)
    return res.select(list(SCORE_COLUMNS))


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
