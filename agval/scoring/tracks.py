"""Track selection and aggregation as data, not code paths.

A :class:`TrackSelection` says which tracks of a long score table to keep (output type,
ontology CURIE, biosample, assay, histone mark, TF, GTEx tissue, strand, scorer, track
name pattern); an :class:`Aggregation` says how to reduce them: per track (raw score =
primary, quantile score alongside) and pooled over the selected tracks per variant row
(and gene). Both serialise to plain dicts for the run manifest
(``RunRecord.note("track_selection", sel.to_dict())``) and back.

Filters are exact, case-insensitive matches against any of the listed values; ``None``
means "no filter on this field". ``track_name_regex`` is a regular expression.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Iterable, Literal, Sequence

import polars as pl

from agval.errors import InputError
from agval.genes import strip_gene_version_expr

_FIELD_COLUMNS = {
    "output_types": "output_type",
    "ontology_curies": "ontology_curie",
    "biosample_names": "biosample_name",
    "biosample_types": "biosample_type",
    "assays": "assay",
    "histone_marks": "histone_mark",
    "transcription_factors": "transcription_factor",
    "gtex_tissues": "gtex_tissue",
    "track_strands": "track_strand",
    "scorers": "scorer",
    "track_names": "track_name",
}


def _tuple(v: Any) -> tuple[str, ...] | None:
    if v is None:
        return None
    if isinstance(v, str):
        return (v,)
    return tuple(str(x) for x in v)


@dataclass(frozen=True)
class TrackSelection:
    """Which tracks to keep. Every field is a tuple of accepted values or ``None``."""

    output_types: tuple[str, ...] | None = None
    ontology_curies: tuple[str, ...] | None = None
    biosample_names: tuple[str, ...] | None = None
    biosample_types: tuple[str, ...] | None = None
    assays: tuple[str, ...] | None = None
    histone_marks: tuple[str, ...] | None = None
    transcription_factors: tuple[str, ...] | None = None
    gtex_tissues: tuple[str, ...] | None = None
    track_strands: tuple[str, ...] | None = None
    scorers: tuple[str, ...] | None = None
    track_names: tuple[str, ...] | None = None
    track_name_regex: str | None = None
    name: str = ""

    def __post_init__(self):
        for f in fields(self):
            if f.name in _FIELD_COLUMNS:
                object.__setattr__(self, f.name, _tuple(getattr(self, f.name)))

    # -- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items() if v not in (None, "")}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "TrackSelection":
        d = dict(d or {})
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise InputError(f"unknown track selection fields {sorted(unknown)}")
        return cls(**d)

    # -- applying ------------------------------------------------------------------
    def expr(self) -> pl.Expr:
        conds: list[pl.Expr] = []
        for fname, col in _FIELD_COLUMNS.items():
            vals = getattr(self, fname)
            if vals is None:
                continue
            low = [v.lower() for v in vals]
            if col == "scorer":  # exact scorer reprs (case matters in reprs: keep both)
                conds.append(pl.col(col).is_in(list(vals)) | pl.col(col).str.to_lowercase().is_in(low))
            else:
                conds.append(pl.col(col).cast(pl.String).str.to_lowercase().is_in(low).fill_null(False))
        if self.track_name_regex:
            conds.append(pl.col("track_name").str.contains(self.track_name_regex).fill_null(False))
        if not conds:
            return pl.lit(True)
        out = conds[0]
        for c in conds[1:]:
            out = out & c
        return out

    def apply(self, scores: pl.DataFrame) -> pl.DataFrame:
        """Rows of ``scores`` (long table) whose track matches the selection."""
        return scores.filter(self.expr())

    def tracks(self, scores_or_catalogue: pl.DataFrame) -> pl.DataFrame:
        """The distinct selected tracks (for reports and manifests)."""
        cols = [c for c in ("scorer", "output_type", "track_name", "track_strand", "ontology_curie",
                            "biosample_name", "assay", "histone_mark", "transcription_factor",
                            "gtex_tissue") if c in scores_or_catalogue.columns]
        df = scores_or_catalogue
        if "scorer" not in df.columns and self.scorers is not None:
            df = df.with_columns(pl.lit(None, dtype=pl.String).alias("scorer"))
        return self.apply(df).select(cols).unique().sort(cols, nulls_last=True)


Pool = Literal["mean", "median", "max", "min", "max_abs", "signed_max_abs", "sum"]


def _pool_expr(col: str, how: Pool) -> pl.Expr:
    c = pl.col(col)
    if how == "mean":
        return c.mean()
    if how == "median":
        return c.median()
    if how == "max":
        return c.max()
    if how == "min":
        return c.min()
    if how == "sum":
        return c.sum()
    if how == "max_abs":
        return c.abs().max()
    if how == "signed_max_abs":  # the value with the largest magnitude, keeping its sign
        return c.sort_by(c.abs(), descending=True, nulls_last=True).first()
    raise InputError(f"unknown pooling {how!r}; use mean, median, max, min, sum, max_abs, signed_max_abs")


@dataclass(frozen=True)
class Aggregation:
    """How to reduce selected tracks.

    ``pool`` reduces raw scores (the primary score) and ``pool_quantile`` quantile
    scores across the selected tracks of each group; ``by`` are the group keys (one
    pooled value per input row, scorer and gene by default).
    """

    pool: Pool = "mean"
    pool_quantile: Pool = "mean"
    by: tuple[str, ...] = ("row_id", "scorer", "gene_id")

    def to_dict(self) -> dict[str, Any]:
        return {"pool": self.pool, "pool_quantile": self.pool_quantile, "by": list(self.by)}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "Aggregation":
        d = dict(d or {})
        if "by" in d:
            d["by"] = tuple(d["by"])
        return cls(**d)


PER_TRACK_KEY = ["scorer", "output_type", "track_name", "track_strand", "gene_id", "junction_start", "junction_end"]


def per_track(scores: pl.DataFrame, selection: TrackSelection | None = None, *,
              by: Sequence[str] = ("row_id",)) -> pl.DataFrame:
    """One row per group (``row_id``) x scorer x track x gene: raw (primary) and quantile.

    Equivalent to the selected long table; duplicated tracks within a group (e.g. the
    same track name served twice) are averaged so the result is unique on its key.
    """
    sel = selection.apply(scores) if selection is not None else scores
    keys = [c for c in (*by, *PER_TRACK_KEY) if c in sel.columns]
    meta = [c for c in ("ontology_curie", "biosample_name", "biosample_type", "assay", "histone_mark",
                        "transcription_factor", "gtex_tissue", "gene_name", "variant_key") if c in sel.columns
            and c not in keys]
    return (sel.group_by(keys, maintain_order=True)
            .agg([pl.col(m).first() for m in meta]
                 + [pl.col("raw_score").mean().alias("raw_score"),
                    pl.col("quantile_score").mean().alias("quantile_score"),
                    pl.len().alias("n_values")]))


def pooled(scores: pl.DataFrame, selection: TrackSelection | None = None,
           aggregation: Aggregation | None = None) -> pl.DataFrame:
    """Pool the selected tracks per group: ``raw_score``, ``quantile_score``, ``n_tracks``."""
    agg = aggregation or Aggregation()
    sel = selection.apply(scores) if selection is not None else scores
    by = [c for c in agg.by if c in sel.columns]
    if not by:
        raise InputError(f"none of the grouping columns {list(agg.by)} is in the score table")
    extra = [c for c in ("variant_key", "gene_name") if c in sel.columns and c not in by]
    return (sel.group_by(by, maintain_order=True)
            .agg([pl.col(c).first() for c in extra]
                 + [_pool_expr("raw_score", agg.pool).alias("raw_score"),
                    _pool_expr("quantile_score", agg.pool_quantile).alias("quantile_score"),
                    pl.len().alias("n_tracks")]))


def aggregate(scores: pl.DataFrame, selection: TrackSelection | None = None,
              aggregation: Aggregation | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(per_track, pooled)`` for a long score table (see :func:`per_track`, :func:`pooled`)."""
    agg = aggregation or Aggregation()
    by = tuple(c for c in agg.by if c not in ("scorer", "gene_id"))
    return per_track(scores, selection, by=by or ("row_id",)), pooled(scores, selection, agg)


def strip_gene_version(col: str = "gene_id") -> pl.Expr:
    return strip_gene_version_expr(pl.col(col)).alias(col)


def match_genes(scores: pl.DataFrame, rows: pl.DataFrame, *, gene_column: str = "gene_id",
                keep_non_gene: bool = True) -> pl.DataFrame:
    """Keep each input row's own gene (e.g. the eGene of an eQTL row).

    ``rows`` has ``row_id`` and ``gene_column`` (versioned ids are fine). Score rows of
    gene scorers whose ``gene_id`` differs from their row's gene are dropped; rows of
    variant-centric scorers (gene null) are kept when ``keep_non_gene``.
    """
    from agval.frames import checked_join

    g = rows.select(pl.col("row_id").cast(pl.String),
                    strip_gene_version_expr(pl.col(gene_column).cast(pl.String)).alias("_row_gene"))
    joined = checked_join(scores, g, "row_id", how="left", validate="m:1", what="scores x row genes")
    cond = pl.col("gene_id") == pl.col("_row_gene")
    if keep_non_gene:
        cond = cond | pl.col("gene_id").is_null()
    return joined.filter(cond.fill_null(False)).drop("_row_gene")


def catalogue_values(catalogue: pl.DataFrame, column: str) -> list[str]:
    """Distinct values of a catalogue column (to build selections interactively)."""
    if column not in catalogue.columns:
        return []
    return sorted(v for v in catalogue[column].drop_nulls().unique().to_list())


def selection_from_kwargs(**kw: Iterable[str] | str | None) -> TrackSelection:
    return TrackSelection.from_dict({k: v for k, v in kw.items() if v is not None})


__all__ = ["TrackSelection", "Aggregation", "per_track", "pooled", "aggregate", "match_genes",
           "strip_gene_version", "catalogue_values", "selection_from_kwargs"]
