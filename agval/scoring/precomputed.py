"""Precomputed scores of any model (Enformer, Borzoi, CADD, an earlier agval run...) as a backend.

The table (parquet, CSV or TSV, or a polars frame) identifies variants by one of

* ``variant_key`` / ``variant_id`` / ``variant`` (``chr1:123:A>G``, ``chr1_123_A_G_b38``), or
* ``chrom, pos, ref, alt`` (1-based, hg38),

and sequences (for :meth:`predict_one`) by ``sequence_sha256`` or ``sequence``.

Two layouts (``layout="auto"`` picks long when a ``raw_score`` or ``score`` column exists):

* **long**: one row per variant x track (x gene), columns ``raw_score`` (or ``score``),
  optional ``quantile_score``, ``track_name`` (or ``track``; default: the model name),
  ``scorer`` (default: ``scorer=`` or the model name) and any of the track/gene metadata
  columns of :data:`agval.scoring.backend.SCORE_COLUMNS`. agval's own score tables
  (``ScoreRun.scores``) are long tables, so a run can be replayed as a backend and gives
  identical results;
* **wide**: one row per variant, one numeric column per track (the column name becomes
  ``track_name``; raw scores only), scorer from ``scorer=`` or the model name.

**A saved SDK ``tidy_scores`` table** (``alphagenome.models.variant_scorers.tidy_scores``
written with ``to_csv`` / ``to_parquet``: ``variant_id, scored_interval, gene_id,
gene_name, gene_type, gene_strand, junction_Start, junction_End, output_type,
variant_scorer, track_name, track_strand, Assay title, ontology_curie, biosample_name,
biosample_type, biosample_life_stage, gtex_tissue, data_source, endedness,
genetically_modified, raw_score, quantile_score, abs_quantile_score``) is read as saved
(:data:`SDK_TIDY_RENAME`): ``variant_scorer`` is the scorer (the SDK scorer's repr, so a
request for ``RNA_SEQ`` finds ``GeneMaskLFCScorer(requested_output=RNA_SEQ)``), ``Assay
title`` the assay, ``junction_Start``/``junction_End`` the junction columns (splice
junction rows stay distinct); columns outside :data:`SCORE_COLUMNS`
(``scored_interval``, ``biosample_life_stage``, ``endedness``, ``genetically_modified``,
``abs_quantile_score``) are not used. The same renaming as the live backend
(:mod:`agval.scoring.alphagenome`), so a replayed table gives the rows a live run gave.

For sequences, a long table with ``output_type``, ``track_name`` and ``value`` gives one
whole-sequence value per track (resolution = sequence length).

A variant absent from the table fails with NOT_FOUND (recorded, never retried).

**Provenance comes from the table itself** (:func:`table_provenance`): a ``data_source``
column carrying the stand-in label, a boolean ``simulated`` column, or parquet metadata
(``simulated`` / ``data_source`` / ``provenance`` keys) marks the table simulated, whatever
the caller says; a table that says nothing is of ``"unknown"`` provenance (recorded so).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import polars as pl

from agval.coords import Variant, normalize_chrom
from agval.errors import InputError
from agval.scoring.backend import (GENE_COLUMNS, ROW_KEY, SCORE_COLUMNS, SIMULATED_DATA_SOURCE, TRACK_COLUMNS,
                                   BackendCallError, ScoringBackend, SequencePrediction, VariantOutcome,
                                   conform_scores, metadata_is_simulated, scorer_id)

__all__ = ["PrecomputedBackend", "table_provenance", "PROVENANCES", "SDK_TIDY_RENAME", "read_sdk_tidy"]

#: SDK ``tidy_scores`` column -> agval score column (as :mod:`agval.scoring.alphagenome` renames them)
SDK_TIDY_RENAME = {"variant_scorer": "scorer", "Assay title": "assay", "junction_Start": "junction_start",
                   "junction_End": "junction_end"}

#: the provenance values :func:`table_provenance` returns
PROVENANCES = ("simulated", "real", "unknown")


def _says_simulated(text: str) -> bool:
    t = text.strip().lower()
    return SIMULATED_DATA_SOURCE.lower() in t or "simulated" in t or t in ("true", "1", "yes")


def table_provenance(table: str | Path | pl.DataFrame, *, path: str | Path | None = None) -> dict[str, str]:
    """Where a precomputed table says it came from: ``{"provenance": "simulated" | "real" |
    "unknown", "evidence": <what decided it>}``.

    ``table``: a path (parquet / CSV / TSV) or a frame (``path``: its parquet file, for the
    metadata). In order: parquet schema metadata keys ``simulated``, ``provenance``,
    ``data_source`` (``agval.schema`` tables and the stand-in's exports); a boolean
    ``simulated`` column (any True -> simulated, all False -> real); a ``data_source``
    column (any value carrying the stand-in label -> simulated, else real). Nothing of that
    -> ``unknown``: the table does not say, and the run records that instead of
    assuming "real".
    """
    df = None
    pq_path = path
    if isinstance(table, pl.DataFrame):
        df = table
    else:
        pq_path = Path(table)
    if pq_path is not None and str(pq_path).lower().endswith((".parquet", ".pq")) and Path(pq_path).is_file():
        import pyarrow.parquet as pq

        md = {k.decode(errors="replace").lower(): v.decode(errors="replace")
              for k, v in (pq.read_schema(pq_path).metadata or {}).items()}
        for k in ("simulated", "agval.simulated", "provenance", "data_source"):
            if k in md:
                v = md[k]
                sim = _says_simulated(v) if k != "provenance" else "simul" in v.lower()
                if k in ("simulated", "agval.simulated") and v.strip().lower() in ("false", "0", "no"):
                    return {"provenance": "real", "evidence": f"parquet metadata {k}={v}"}
                return {"provenance": "simulated" if sim else "real", "evidence": f"parquet metadata {k}={v}"}
    if df is None:
        df = _read(Path(table))
    if "simulated" in df.columns and df.schema["simulated"] == pl.Boolean and df["simulated"].drop_nulls().len():
        sim = bool(df["simulated"].fill_null(False).any())
        return {"provenance": "simulated" if sim else "real", "evidence": "simulated column"}
    if "data_source" in df.columns and df["data_source"].drop_nulls().len():
        vals = df["data_source"].cast(pl.Utf8).drop_nulls().unique().to_list()
        sim = any(SIMULATED_DATA_SOURCE.lower() in v.lower() or "simulated" in v.lower() for v in vals)
        return {"provenance": "simulated" if sim else "real",
                "evidence": f"data_source column ({', '.join(sorted(vals)[:3])})"}
    return {"provenance": "unknown", "evidence": "the table names no data_source, simulated flag or metadata"}

_ID_COLUMNS = ("variant_key", "variant_id", "variant")
_NON_TRACK = {"row_id", "chrom", "pos", "ref", "alt", "rsid", "seq_id", "sequence", "sequence_sha256",
              *_ID_COLUMNS, *GENE_COLUMNS, "scorer", "output_type", "interval_width"}


#: text columns of an SDK tidy table read as text whatever their values look like (CSV inference)
_SDK_TEXT = {"variant_id": pl.String, "gene_id": pl.String, "gene_name": pl.String, "gene_strand": pl.String,
             "track_name": pl.String, "track_strand": pl.String, "ontology_curie": pl.String,
             "gtex_tissue": pl.String, "genetically_modified": pl.String}


def _read(path: Path) -> pl.DataFrame:
    suf = "".join(path.suffixes).lower()
    if suf.endswith(".parquet") or suf.endswith(".pq"):
        return pl.read_parquet(path)
    if suf.endswith((".tsv", ".tsv.gz", ".txt", ".txt.gz")):
        sep = "\t"
    elif suf.endswith((".csv", ".csv.gz")):
        sep = ","
    else:
        raise InputError("precomputed scores must be .parquet, .csv or .tsv", file=path)
    header = pl.read_csv(path, separator=sep, n_rows=0).columns
    over = {c: t for c, t in _SDK_TEXT.items() if c in header} if "variant_scorer" in header else None
    return pl.read_csv(path, separator=sep, infer_schema_length=10000, schema_overrides=over)


def read_sdk_tidy(df: pl.DataFrame) -> pl.DataFrame:
    """An SDK ``tidy_scores`` frame with agval's column names (:data:`SDK_TIDY_RENAME`);
    any other frame unchanged. A column already present under agval's name wins."""
    ren = {k: v for k, v in SDK_TIDY_RENAME.items() if k in df.columns and v not in df.columns}
    return df.rename(ren) if ren else df


class PrecomputedBackend(ScoringBackend):
    """Scores looked up in a table; see the module docstring for accepted layouts."""

    name = "precomputed"

    def __init__(self, table: str | Path | pl.DataFrame, *, model: str = "precomputed",
                 layout: str = "auto", scorer: str | None = None, simulated: bool | None = None):
        self.model = model
        self.source = None if isinstance(table, pl.DataFrame) else str(Path(table).absolute())
        if isinstance(table, pl.DataFrame):
            df = table
            self._sha = hashlib.sha256(df.hash_rows().to_numpy().tobytes()).hexdigest()
        else:
            from agval.runs import sha256_file

            df = _read(Path(table))
            self._sha = sha256_file(table)
        self.layout = layout if layout != "auto" else (
            "long" if ("raw_score" in df.columns or "score" in df.columns) else "wide")
        self._default_scorer = scorer or model
        self._seq = self._load_sequences(df)
        self._df, self._index = self._load_variants(df)
        self._flag_simulated = simulated
        self.provenance = table_provenance(df, path=self.source)

    # -- loading --------------------------------------------------------------------
    def _variant_keys(self, df: pl.DataFrame) -> pl.Series | None:
        for c in _ID_COLUMNS:
            if c in df.columns:
                vals = df[c].cast(pl.String).to_list()
                memo: dict[str, str] = {}
                out = []
                for i, v in enumerate(vals, start=1):
                    if v not in memo:
                        try:
                            memo[v] = Variant.parse(v).key
                        except InputError as e:
                            raise InputError(e.reason, file=self.source, column=c, row=i) from None
                    out.append(memo[v])
                return pl.Series("variant_key", out, dtype=pl.String)
        if all(c in df.columns for c in ("chrom", "pos", "ref", "alt")):
            out = []
            for i, (c, p, r, a) in enumerate(df.select("chrom", "pos", "ref", "alt").iter_rows(), start=1):
                try:
                    out.append(Variant(normalize_chrom(c), int(p), str(r).upper(), str(a).upper()).key)
                except (InputError, TypeError, ValueError) as e:
                    raise InputError(f"invalid variant: {e}", file=self.source, row=i) from None
            return pl.Series("variant_key", out, dtype=pl.String)
        return None

    def _load_variants(self, df: pl.DataFrame):
        if "sequence_sha256" in df.columns or "sequence" in df.columns:
            return pl.DataFrame(schema=SCORE_COLUMNS), {}
        df = read_sdk_tidy(df)
        keys = self._variant_keys(df)
        if keys is None:
            raise InputError("precomputed scores need variant_key / variant_id or chrom, pos, ref, alt columns",
                             file=self.source)
        df = df.with_columns(keys)
        if self.layout == "long":
            ren = {}
            if "raw_score" not in df.columns and "score" in df.columns:
                ren["score"] = "raw_score"
            if "track_name" not in df.columns and "track" in df.columns:
                ren["track"] = "track_name"
            df = df.rename(ren)
            if "track_name" not in df.columns:
                df = df.with_columns(pl.lit(self.model).alias("track_name"))
            if "scorer" not in df.columns:
                df = df.with_columns(pl.lit(self._default_scorer).alias("scorer"))
        else:
            tracks = [c for c in df.columns if c not in _NON_TRACK and c not in TRACK_COLUMNS
                      and df.schema[c].is_numeric()]
            if not tracks:
                raise InputError("wide precomputed table has no numeric track columns", file=self.source)
            df = (df.select("variant_key", *tracks)
                  .unpivot(index="variant_key", on=tracks, variable_name="track_name", value_name="raw_score")
                  .with_columns(pl.lit(self._default_scorer).alias("scorer")))
        df = conform_scores(df).unique(subset=ROW_KEY, keep="first", maintain_order=True)
        df = df.with_row_index("_i").sort("variant_key", maintain_order=True).drop("_i")
        bounds = df.with_row_index("_i").group_by("variant_key").agg(pl.col("_i").min().alias("a"),
                                                                      pl.len().alias("n"))
        index = {k: (a, n) for k, a, n in bounds.iter_rows()}
        return df, index

    def _load_sequences(self, df: pl.DataFrame):
        if "sequence_sha256" not in df.columns and "sequence" not in df.columns:
            return None
        if "sequence_sha256" not in df.columns:
            df = df.with_columns(pl.col("sequence").map_elements(
                lambda s: hashlib.sha256(s.upper().encode()).hexdigest(), return_dtype=pl.String)
                .alias("sequence_sha256"))
        for c in ("output_type", "track_name", "value"):
            if c not in df.columns:
                raise InputError(f"precomputed sequence table lacks {c!r}", file=self.source, column=c)
        return df

    # -- identity -------------------------------------------------------------------
    @property
    def model_version_name(self) -> str:
        return self.model

    def output_metadata(self, organism: str = "HOMO_SAPIENS") -> pl.DataFrame:
        src = self._df if self._seq is None else conform_scores(self._seq)
        return src.select("output_type", *TRACK_COLUMNS).unique(maintain_order=True)

    @property
    def simulated(self) -> bool:
        return (bool(self._flag_simulated) or self.provenance["provenance"] == "simulated"
                or metadata_is_simulated(self.output_metadata()))

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "address_kind": "precomputed", "model": self.model,
                "model_version": self.model, "source": self.source, "table_sha256": self._sha,
                "layout": self.layout, "simulated": self.simulated,
                "provenance": self.provenance["provenance"], "provenance_evidence": self.provenance["evidence"]}

    def fingerprint(self, **kwargs) -> dict[str, Any]:
        from agval.scoring.fingerprint import fingerprint_digest

        fp = {"backend": self.name, "model_version": self.model, "table_sha256": self._sha}
        fp["digest"] = fingerprint_digest(fp)
        return fp

    # -- scoring --------------------------------------------------------------------
    def score_one(self, variant: Variant, scorers: Sequence[Any], *, interval_width: int,
                  organism: str) -> pl.DataFrame:
        loc = self._index.get(variant.key)
        if loc is None:
            raise BackendCallError("NOT_FOUND", f"{variant.key} is not in the precomputed {self.model} table")
        rows = self._df.slice(loc[0], loc[1])
        ids = [scorer_id(s) for s in scorers]
        got = rows.filter(pl.col("scorer").is_in(ids))
        missing = set(ids) - set(got["scorer"].unique().to_list())
        if missing:
            raise BackendCallError("NOT_FOUND", f"{variant.key} has no {sorted(missing)} scores in the "
                                                f"precomputed {self.model} table")
        return got

    def score_variants(self, variants, scorers, *, interval_width, organism="HOMO_SAPIENS", concurrency=1,
                       policy=None, limiter=None, on_result=None) -> list[VariantOutcome]:
        # a local lookup: no threads, no pacing
        return super().score_variants(variants, scorers, interval_width=interval_width, organism=organism,
                                      concurrency=1, policy=policy, limiter=None, on_result=on_result)

    def predict_one(self, sequence: str, *, requested_outputs: Sequence[str], ontology_terms,
                    organism: str) -> list[SequencePrediction]:
        if self._seq is None:
            raise BackendCallError("UNIMPLEMENTED", f"the precomputed {self.model} table has no sequences")
        sha = hashlib.sha256(sequence.encode()).hexdigest()
        rows = self._seq.filter(pl.col("sequence_sha256") == sha)
        if rows.height == 0:
            raise BackendCallError("NOT_FOUND", f"sequence {sha[:12]} is not in the precomputed table")
        out = []
        for ot in requested_outputs:
            r = conform_scores(rows.filter(pl.col("output_type") == ot)).with_columns(
                rows.filter(pl.col("output_type") == ot)["value"].cast(pl.Float32).alias("raw_score"))
            if r.height == 0:
                raise BackendCallError("NOT_FOUND", f"no {ot} values for sequence {sha[:12]}")
            out.append(SequencePrediction(ot, np.asarray(r["raw_score"].to_numpy(), dtype=np.float32)[None, :],
                                          r.select(list(TRACK_COLUMNS)), len(sequence)))
        return out
