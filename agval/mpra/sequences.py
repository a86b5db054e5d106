"""Model inputs for MPRA elements (STUDIES.md §3.3 CORRECTED; pitfalls P16-P18).

Two steps, both plain functions:

1. :func:`prepare_inserts` decides **what** is inserted for every construct row (column
   ``insert``):

   * ``source="sequences"``: the element's own sequence (the synthesised oligo, from a
     FASTA or a table, joined on ``element_id`` with an asserted m:1 cardinality); rows
     without a sequence are dropped (stage ``sequence``, reason ``no_sequence``);
   * ``source="seq16"``: the 16-mer parsed from a GSE84888 construct name. Every
     construct of a locus then gets the **same** input (the oligo edits never reach the
     model; the pseudo-replication check will say so, P17);
   * ``source="reference"``: the reference bases at the construct's coordinates (the
     wild-type genomic element).

   Orientation: with reference flanks (``backbone="reference"``) the insert is put in
   the genomic **+ orientation** (the window is never reverse-complemented, P18):
   ``element_orientation="strand"`` means the given sequences are written 5'->3' on the
   construct's strand, so ``-`` elements are reverse-complemented; ``"plus"`` means
   they are already genomic + strand. With the neutral backbone the insert goes in
   exactly as given (the synthesised oligo in the reporter's orientation).

2. :func:`build_sequences` embeds every distinct insert in a supported model length
   ``L`` (16,384 by default; :data:`agval.scoring.sequences.SUPPORTED_LENGTHS`), centred:
   the insert of length ``n`` occupies ``[L//2 - n//2, L//2 - n//2 + n)``.

   * ``backbone="neutral"``: the rest is the fixed neutral backbone
     (:func:`agval.mpra.backbone.neutral_backbone`, the same ``L``-bp sequence for
     every construct);
   * ``backbone="reference"``: the rest is the element's genomic flanks. With the
     element's 0-based half-open coordinates ``[s, e)`` (``coordinate_base`` says
     whether the file's ``start`` is 0- or 1-based), centre ``c = (s + e) // 2``, the
     window is ``[c - L//2, c + L//2)`` and the insert replaces the genomic bases
     ``[c - n//2, c - n//2 + n)`` (for the usual case ``n = e - s``: exactly ``[s, e)``).

   **N is refused** (P16): an insert containing N, or flanks that reach past a
   chromosome end or into an assembly gap, raise
   :class:`~agval.errors.UnsupportedSequenceError` naming the element
   (``n_policy="drop"`` drops such rows instead, reason ``contains_n``). An
   unsupported ``L`` is refused before anything is built.

Each distinct model input gets ``input_id`` = the first 16 hex digits of the sha256 of
its full sequence; rows sharing an ``input_id`` share one prediction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl

from agval.coords import revcomp
from agval.drops import DropLog
from agval.errors import InputError, MissingColumnError, UnsupportedSequenceError
from agval.sdk import SUPPORTED_SEQUENCE_LENGTHS
from agval.frames import checked_join
from agval.mpra.backbone import BACKBONE_SEED, backbone_info, neutral_backbone

__all__ = ["SUPPORTED_LENGTHS", "check_length", "insert_bounds", "prepare_inserts", "build_sequences",
           "BuiltSequences", "embed_in_backbone", "embed_in_reference", "input_id_of"]

SEQUENCE_STAGE = "sequence"

SUPPORTED_LENGTHS = SUPPORTED_SEQUENCE_LENGTHS  # the SDK's, read in one place (agval.sdk)

Backbone = Literal["neutral", "reference"]
Source = Literal["sequences", "seq16", "reference"]
Orientation = Literal["strand", "plus"]


def check_length(length: int) -> int:
    """``length`` if the model accepts it, else :class:`UnsupportedSequenceError`."""
    if int(length) not in SUPPORTED_LENGTHS:
        raise UnsupportedSequenceError(
            f"sequence length {length} is not supported; the model accepts {list(SUPPORTED_LENGTHS)} bp "
            "(embed the element in flanks or the neutral backbone of a supported length; never pad with N)")
    return int(length)


def insert_bounds(length: int, n: int) -> tuple[int, int]:
    """0-based half-open position of an ``n``-bp insert centred in an ``length``-bp input."""
    a = length // 2 - n // 2
    return a, a + n


def input_id_of(seq: str) -> tuple[str, str]:
    """``(input_id, sha256)`` of a model input."""
    sha = hashlib.sha256(seq.encode()).hexdigest()
    return sha[:16], sha


def _refuse_n(seq: str, what: str) -> None:
    if "N" in seq:
        raise UnsupportedSequenceError(
            f"{what} contains N ({seq.count('N')} of {len(seq)} bases); N-padded or gapped inputs are refused "
            "(P16). Use an element without N, or set n_policy='drop' to drop such constructs")


def embed_in_backbone(insert: str, length: int = 16_384, *, seed: int = BACKBONE_SEED) -> str:
    """``insert`` centred in the neutral backbone of ``length`` bp."""
    check_length(length)
    n = len(insert)
    if n > length:
        raise UnsupportedSequenceError(f"an element of {n} bp does not fit in {length} bp")
    bb = neutral_backbone(length, seed)
    a, b = insert_bounds(length, n)
    return bb[:a] + insert + bb[b:]


def _reference_window(start0: int, end0: int, n: int, length: int) -> tuple[int, int]:
    """``(window_start, genomic start of the insert)`` for an element at ``[start0, end0)``."""
    c = (start0 + end0) // 2
    g0 = c - n // 2
    return g0 - insert_bounds(length, n)[0], g0


def embed_in_reference(insert: str, genome, chrom: str, start0: int, end0: int, length: int = 16_384) -> str:
    """``insert`` (genomic + orientation) centred in its reference flanks (see module doc)."""
    check_length(length)
    n = len(insert)
    if n > length:
        raise UnsupportedSequenceError(f"an element of {n} bp does not fit in {length} bp")
    w0, g0 = _reference_window(start0, end0, n, length)
    left = genome.fetch(chrom, w0, g0)
    right = genome.fetch(chrom, g0 + n, w0 + length)
    return left + insert + right


# --------------------------------------------------------------------------- inserts

def _coords0(df: pl.DataFrame, coordinate_base: int) -> pl.DataFrame:
    for c in ("chromosome", "start", "end", "strand"):
        if c not in df.columns:
            raise MissingColumnError(c, file="<constructs>", available=df.columns)
    shift = int(coordinate_base)
    return df.with_columns((pl.col("start") - shift).alias("_start0"), (pl.col("end") - shift).alias("_end0"))


def prepare_inserts(constructs: pl.DataFrame, *, source: Source, sequences: pl.DataFrame | None = None,
                    genome=None, backbone: Backbone = "neutral", element_orientation: Orientation = "strand",
                    coordinate_base: int = 0, drops: DropLog | None = None) -> pl.DataFrame:
    """Add ``insert`` (what goes into the model input) and ``insert_orientation`` to
    ``constructs`` (one row per construct, with ``row_id`` and ``element_id``; plus
    ``chromosome, start, end, strand`` for coordinates-based options; ``seq16`` for
    ``source="seq16"``). ``sequences``: ``element_id, sequence`` (e.g. from
    :func:`agval.io.mpra.load_element_sequences`). Rows without a sequence are dropped
    and recorded in ``drops``."""
    drops = drops if drops is not None else DropLog()
    df = constructs
    if source == "sequences":
        if sequences is None:
            raise InputError("source='sequences' needs element sequences (a FASTA or table)")
        seqs = sequences.select(pl.col("element_id").cast(pl.String), pl.col("sequence").alias("_element"))
        df = checked_join(df, seqs, on="element_id", how="left", validate="m:1",
                          what="constructs x element sequences")
        missing = df.filter(pl.col("_element").is_null())
        if missing.height:
            drops.add_frame(missing.select("row_id", *(c for c in ("source_file", "source_row") if c in df.columns),
                                           pl.format("no sequence for element {}", "element_id").alias("detail")),
                            stage=SEQUENCE_STAGE, reason="no_sequence")
            df = df.filter(pl.col("_element").is_not_null())
    elif source == "seq16":
        if "seq16" not in df.columns:
            raise MissingColumnError("seq16", file="<constructs>", available=df.columns)
        df = df.with_columns(pl.col("seq16").str.to_uppercase().alias("_element"))
    elif source == "reference":
        if genome is None:
            raise InputError("source='reference' needs a reference FASTA")
        df = _coords0(df, coordinate_base)
        elems = [genome.fetch(c, s, e) for c, s, e in df.select("chromosome", "_start0", "_end0").iter_rows()]
        # reference bases are genomic + strand already
        df = df.with_columns(pl.Series("_element", elems, dtype=pl.String)).drop("_start0", "_end0")
    else:
        raise InputError(f"unknown element source {source!r}; use sequences, seq16 or reference")

    flip = pl.lit(False)
    if backbone == "reference" and source != "reference" and element_orientation == "strand":
        if "strand" not in df.columns:
            raise MissingColumnError("strand", file="<constructs>", available=df.columns)
        flip = pl.col("strand") == "-"
    df = df.with_columns(flip.alias("_flip"))
    inserts = [revcomp(e) if f else e for e, f in df.select("_element", "_flip").iter_rows()]
    orientation = ("as_given" if backbone == "neutral" else "genomic_plus")
    return df.with_columns(pl.Series("insert", inserts, dtype=pl.String),
                           pl.when(pl.col("_flip")).then(pl.lit("reverse_complemented"))
                           .otherwise(pl.lit(orientation)).alias("insert_orientation")).drop("_element", "_flip")


# --------------------------------------------------------------------------- sequences

@dataclass
class BuiltSequences:
    """What :func:`build_sequences` returns.

    ``table``: one row per construct: ``row_id``, ``input_id``, ``insert_length``,
    ``insert_start``/``insert_end`` (0-based half-open in the model input),
    ``insert_orientation``. ``inputs``: one row per distinct model input: ``input_id``,
    ``sequence_sha256``, ``sequence``, ``n_rows``. ``summary``: JSON-ready accounting.
    """

    table: pl.DataFrame
    inputs: pl.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


def _identity(a: str, b: str) -> float:
    n = min(len(a), len(b))
    return sum(x == y for x, y in zip(a, b)) / n if n else float("nan")


def build_sequences(rows: pl.DataFrame, *, length: int = 16_384, backbone: Backbone = "neutral",
                    backbone_seed: int = BACKBONE_SEED, genome=None, coordinate_base: int = 0,
                    n_policy: Literal["refuse", "drop"] = "refuse", drops: DropLog | None = None,
                    center_window: int | None = None) -> BuiltSequences:
    """Embed each row's ``insert`` centred in ``length`` bp (see the module docstring).

    ``rows``: ``row_id``, ``insert`` (+ ``chromosome, start, end`` for
    ``backbone="reference"``, + ``insert_orientation`` if present). Only distinct
    constructs are built (a neutral-backbone input depends on the insert alone; a
    reference input on the insert and its window). Raises
    :class:`UnsupportedSequenceError` for an unsupported ``length``, an insert longer
    than ``length`` or N anywhere in the input (``n_policy="drop"``: those rows are
    dropped with reason ``contains_n`` instead). ``center_window`` (bp), when given,
    must contain every insert in the summary's check ``inserts_inside_center_window``.
    """
    check_length(length)
    drops = drops if drops is not None else DropLog()
    if "insert" not in rows.columns:
        raise MissingColumnError("insert", file="<constructs>", available=rows.columns)
    if backbone not in ("neutral", "reference"):
        raise InputError(f"unknown backbone {backbone!r}; use neutral or reference")
    df = rows
    if backbone == "reference":
        if genome is None:
            raise InputError("backbone='reference' needs a reference FASTA (reference_fasta)")
        df = _coords0(df, coordinate_base)
        keys = df.select("chromosome", "_start0", "_end0", "insert").rows()
    else:
        keys = [(s,) for s in df["insert"].to_list()]

    too_long = [i for i, k in enumerate(keys) if len(k[-1]) > length]
    if too_long:
        i = too_long[0]
        raise UnsupportedSequenceError(
            f"element of row {df['row_id'][i]!r} is {len(keys[i][-1])} bp, longer than the model input ({length} bp)")

    built: dict[tuple, tuple[str, str, str] | None] = {}  # key -> (input_id, sha, seq) or None (dropped)
    orient_identity: list[tuple[float, float]] = []
    for k in keys:
        if k in built:
            continue
        insert = k[-1]
        if backbone == "reference":
            chrom, s0, e0, _ = k
            seq = embed_in_reference(insert, genome, chrom, int(s0), int(e0), length)
            _, g0 = _reference_window(int(s0), int(e0), len(insert), length)
            genomic = genome.fetch(chrom, g0, g0 + len(insert))
            if "N" not in genomic and len(orient_identity) < 20_000:
                orient_identity.append((_identity(insert, genomic), _identity(revcomp(insert), genomic)))
            what = f"model input for element at {chrom}:{s0}-{e0}"
        else:
            seq = embed_in_backbone(insert, length, seed=backbone_seed)
            what = "element insert"
        if "N" in seq:
            if n_policy == "drop":
                built[k] = None
                continue
            where = what if backbone == "reference" and "N" not in insert else "element insert"
            row = df["row_id"][keys.index(k)]
            _refuse_n(insert if "N" in insert else seq, f"{where} (row {row!r})"
                      + ("" if "N" in insert else ": its reference flanks reach a chromosome end or a gap"))
        iid, sha = input_id_of(seq)
        built[k] = (iid, sha, seq)

    ids = [built[k][0] if built[k] is not None else None for k in keys]
    df = df.with_columns(pl.Series("input_id", ids, dtype=pl.String))
    dropped = df.filter(pl.col("input_id").is_null())
    if dropped.height:
        drops.add_frame(dropped.select("row_id", *(c for c in ("source_file", "source_row") if c in df.columns),
                                       pl.lit("the model input would contain N").alias("detail")),
                        stage=SEQUENCE_STAGE, reason="contains_n")
        df = df.filter(pl.col("input_id").is_not_null())
    n_ins = df["insert"].str.len_chars().cast(pl.Int64)
    a = (pl.lit(length // 2) - (n_ins // 2)).alias("insert_start")
    df = df.with_columns(n_ins.alias("insert_length"), a).with_columns(
        (pl.col("insert_start") + pl.col("insert_length")).alias("insert_end"))
    if "insert_orientation" not in df.columns:
        df = df.with_columns(pl.lit("as_given").alias("insert_orientation"))
    counts = df.group_by("input_id").len(name="n_rows")
    inputs = pl.DataFrame([{"input_id": v[0], "sequence_sha256": v[1], "sequence": v[2]}
                           for v in {b[0]: b for b in built.values() if b is not None}.values()],
                          schema={"input_id": pl.String, "sequence_sha256": pl.String, "sequence": pl.String})
    inputs = checked_join(inputs, counts, on="input_id", how="left", validate="1:1", what="inputs x row counts")
    inputs = inputs.filter(pl.col("n_rows").is_not_null())
    table = df.select("row_id", "input_id", "insert_length", "insert_start", "insert_end", "insert_orientation")
    summary: dict[str, Any] = {
        "sequence_length": int(length), "backbone": backbone, "n_rows": int(table.height),
        "n_distinct_inserts": int(df["insert"].n_unique()), "n_distinct_inputs": int(inputs.height),
        "rows_per_input": round(table.height / inputs.height, 3) if inputs.height else None,
        "n_dropped_contains_n": int(dropped.height),
        "insert_length_min": int(n_ins.min()) if table.height else None,
        "insert_length_max": int(n_ins.max()) if table.height else None,
        "orientation_counts": dict(df.group_by("insert_orientation").len().iter_rows()),
    }
    if backbone == "neutral":
        summary["backbone_info"] = backbone_info(length, backbone_seed)
    else:
        summary["coordinate_base"] = int(coordinate_base)
        if orient_identity:
            same = [x for x, _ in orient_identity]
            opp = [y for _, y in orient_identity]
            summary["orientation_check"] = {
                "n_elements": len(orient_identity),
                "mean_identity_as_inserted": round(sum(same) / len(same), 4),
                "mean_identity_reverse_complement": round(sum(opp) / len(opp), 4),
                "n_better_reversed": int(sum(y > x for x, y in orient_identity)),
                "note": "identity of the insert with the reference bases it replaces; a reverse complement that "
                        "matches better means element_orientation (or coordinate_base) is wrong (P18)"}
    if center_window and table.height:
        lo, hi = insert_bounds(length, int(center_window))
        inside = table.filter((pl.col("insert_start") >= lo) & (pl.col("insert_end") <= hi)).height
        summary["inserts_inside_center_window"] = int(inside)
    return BuiltSequences(table, inputs, summary)
