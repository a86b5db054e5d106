"""MPRA inputs (STUDIES.md §3.1) and activity from counts.

* :func:`load_gse84888_counts`: the GEO count files of Grossman et al. 2017 (GSE84888),
  ``name, tags, counts.rna, counts.plasmid``, with the construct-name grammar parsed.
* :func:`load_count_table`: a generic per-barcode or per-element count table.
* :func:`load_element_sequences`: element sequences from FASTA or a table.
* :func:`compute_activity`: ``log2((RNA + pc) / (DNA + pc))`` per element, with
  minimum-DNA and minimum-barcode filters whose effects are reported (P26).

Loaders return ``(frame, drops)`` with ``row_id``, ``source_file``, ``source_row``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal, Sequence

import polars as pl

from agval.drops import DropLog
from agval.errors import InputError, MissingColumnError
from agval.io._common import (add_row_ids, assert_unique_row_ids, clean_text, dataset_name, head_lines,
                              drop_non_finite, is_gzip, parse_float, parse_int, read_text_table,
                              resolve_columns, split_drops)

__all__ = ["GSE84888_COLUMNS", "parse_gse84888_name", "load_gse84888_counts", "COUNT_TABLE_COLUMNS",
           "load_count_table", "load_element_sequences", "ActivityResult", "compute_activity"]

GSE84888_COLUMNS = ("name", "tags", "counts.rna", "counts.plasmid")
_SEQ16_RE = re.compile(r"^[ACGTNacgtn]+$")
_POOL_RE = re.compile(r"(?i)(pool\d+)")


def parse_gse84888_name(name: str) -> dict | None:
    """Parse a GSE84888 construct name (§3.1 grammar), or ``None`` when malformed.

    Split on ``_``; ``i`` = the first token starting with ``chr``: ``prefix =
    '_'.join(tokens[:i])``, ``chromosome = tokens[i]``, ``start = int(tokens[i+1])``,
    ``end = int(tokens[i+2])``, ``strand = tokens[i+3]`` (``+``/``-``), ``seq16 =
    tokens[i+4]`` (ACGTN letters), ``modification = '_'.join(tokens[i+5:]) or 'wt'``.
    """
    if name is None:
        return None
    tokens = name.strip().split("_")
    i = next((k for k, t in enumerate(tokens) if t.startswith("chr")), None)
    if i is None or len(tokens) < i + 5:
        return None
    chrom, start, end, strand, seq16 = tokens[i:i + 5]
    if len(chrom) <= 3 or not start.isdigit() or not end.isdigit() or strand not in ("+", "-"):
        return None
    if not _SEQ16_RE.match(seq16):
        return None
    return {"prefix": "_".join(tokens[:i]), "chromosome": chrom, "start": int(start), "end": int(end),
            "strand": strand, "seq16": seq16.upper(), "modification": "_".join(tokens[i + 5:]) or "wt"}


def _pool_name(path: Path) -> str:
    m = _POOL_RE.search(path.name)
    if m:
        return "Pool" + m.group(1)[4:]
    return dataset_name(path, None)


def load_gse84888_counts(*paths: str | Path, build: str = "mm9",
                         pools: Sequence[str] | None = None) -> tuple[pl.DataFrame, DropLog]:
    """Load one or more GSE84888 ``*_MPRA.txt`` count files (tab-separated, CRLF ok).

    Columns by name: ``name``, ``tags`` (barcodes), ``counts.rna``, ``counts.plasmid``.
    The pool comes from the file name (``GSE84888_Pool6_MPRA.txt`` -> ``Pool6``) unless
    ``pools`` gives one name per path. Coordinates in the names are mm9 (``build``).

    Output columns: ``row_id`` (``<pool>:<row>``), ``source_file``, ``source_row``,
    ``pool``, ``name``, ``element_id`` (= name, unique), ``prefix``, ``chromosome``,
    ``start``, ``end``, ``strand``, ``seq16``, ``modification`` (``wt`` if none),
    ``locus_id`` (``chrom:start-end:strand:seq16``; 18 loci in the real data, NOT unique
    per row, never merge on it, P19), ``tags``, ``rna``, ``dna`` (Int64), ``build``.

    Drops (counted, stage ``load``): ``malformed_name`` (the grammar does not parse; a
    counted drop rather than an error because one odd construct should not stop a
    library), ``missing_count`` (empty/NA count). Errors: a missing column
    (:class:`MissingColumnError`), a non-integer or negative count
    (:class:`InputError` naming file, column, row), duplicated ``row_id`` across files.

    Args:
        paths: the count files; build: the build of the names' coordinates; pools: one pool name
            per path.

    Returns:
        ``(frame, drops)``: the output columns above, one row per kept input row, and the
            counted drops.

    Raises:
        MissingColumnError: a required column; InputError: a non-integer or negative count,
            duplicated ``row_id``.
    """
    if not paths:
        raise InputError("load_gse84888_counts needs at least one count file")
    if pools is not None and len(pools) != len(paths):
        raise InputError(f"{len(pools)} pool names for {len(paths)} files")
    drops = DropLog()
    parts = []
    for k, p in enumerate(paths):
        p = Path(p)
        pool = pools[k] if pools is not None else _pool_name(p)
        raw = read_text_table(p)
        for c in GSE84888_COLUMNS:
            if c not in raw.columns:
                raise MissingColumnError(c, file=p, available=raw.columns)
        df = add_row_ids(raw, dataset=pool, file=p)
        counts = {}
        for src, dst in (("tags", "tags"), ("counts.rna", "rna"), ("counts.plasmid", "dna")):
            s = parse_int(df, src, file=p)
            neg = s < 0
            if neg.fill_null(False).any():
                i = int(neg.fill_null(False).arg_max())
                raise InputError(f"negative count {s[i]}", file=p, column=src, row=int(df["source_row"][i]))
            counts[dst] = s.alias(dst)
        names = clean_text(df, "name")
        parsed = [parse_gse84888_name(n) for n in names.to_list()]
        fields = {"prefix": pl.Utf8, "chromosome": pl.Utf8, "start": pl.Int64, "end": pl.Int64,
                  "strand": pl.Utf8, "seq16": pl.Utf8, "modification": pl.Utf8}
        parsed_df = pl.DataFrame([r or {} for r in parsed], schema=fields) if parsed else pl.DataFrame(schema=fields)
        df = pl.concat([df.select("row_id", "source_file", "source_row"),
                        pl.DataFrame([names.alias("name"), *counts.values()]), parsed_df], how="horizontal")
        df = df.with_columns(pl.lit(pool).alias("pool"))
        df = split_drops(df, pl.col("chromosome").is_null(), drops, "malformed_name",
                         detail=pl.lit("name does not follow <prefix>_chr_start_end_strand_seq16[_mod]: ")
                         + pl.col("name").fill_null("<empty>"))
        df = split_drops(df, pl.any_horizontal(pl.col("tags", "rna", "dna").is_null()), drops, "missing_count",
                         detail="tags, counts.rna or counts.plasmid is empty")
        parts.append(df)
    df = pl.concat(parts, how="vertical")
    assert_unique_row_ids(df, what="GSE84888 counts")
    df = df.with_columns(
        pl.col("name").alias("element_id"),
        pl.format("{}:{}-{}:{}:{}", "chromosome", "start", "end", "strand", "seq16").alias("locus_id"),
        pl.lit(build).alias("build"),
    )
    cols = ["row_id", "source_file", "source_row", "pool", "name", "element_id", "prefix", "chromosome",
            "start", "end", "strand", "seq16", "modification", "locus_id", "tags", "rna", "dna", "build"]
    return df.select(cols), drops


# ============================================================================ generic counts

COUNT_TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "element_id": ("element_id", "element", "name", "oligo", "oligo_id", "construct", "id"),
    "barcode": ("barcode", "bc", "barcode_seq"),
    "rna": ("rna", "counts.rna", "rna_count", "rna_counts", "count_rna"),
    "dna": ("dna", "counts.plasmid", "counts.dna", "plasmid", "dna_count", "dna_counts", "count_dna"),
    "tags": ("tags", "n_barcodes", "n_tags", "barcodes", "n_bc"),
}


def load_count_table(path: str | Path, *, dataset: str | None = None, element_col: str | None = None,
                     barcode_col: str | None = None, rna: str | Sequence[str] | None = None,
                     dna: str | Sequence[str] | None = None, tags_col: str | None = None,
                     ) -> tuple[pl.DataFrame, DropLog]:
    """A generic MPRA count table: one row per barcode (with a barcode column) or per element.

    Columns by name (aliases in :data:`COUNT_TABLE_COLUMNS`, case-insensitive) or given
    explicitly. ``rna`` / ``dna`` may name several replicate columns; they are summed
    (library-size normalisation, if wanted, is the caller's). Counts may be non-integer
    (normalised counts) but not negative.

    Output columns: ``row_id`` (``<dataset>:<row>``), ``source_file``, ``source_row``,
    ``element_id``, ``barcode`` (null for per-element tables), ``rna``, ``dna``
    (Float64), ``tags`` (Int64: 1 per barcode row; the ``tags`` column of a per-element
    table; else null).

    Drops (counted): ``missing_element`` (empty id), ``missing_count`` (a count is
    empty/NA). A malformed or negative count raises :class:`InputError`.

    Args:
        path: the table; dataset: the ``row_id`` prefix; element_col, barcode_col, rna, dna,
            tags_col: explicit headers (``rna``/``dna`` may list replicate columns).

    Returns:
        ``(frame, drops)``: the output columns above, one row per kept input row, and the
            counted drops.

    Raises:
        MissingColumnError: no element or count column; InputError: a malformed or negative
            count.
    """
    path = Path(path)
    raw = read_text_table(path)
    cols = raw.columns
    overrides = {k: v for k, v in (("element_id", element_col), ("barcode", barcode_col), ("tags", tags_col))
                 if v is not None}
    res = resolve_columns(cols, COUNT_TABLE_COLUMNS, file=path, overrides=overrides, required=["element_id"])
    df = add_row_ids(raw, dataset=dataset_name(path, dataset), file=path)
    drops = DropLog()

    def count_cols(given, key) -> list[str]:
        if given is None:
            if res[key] is None:
                raise MissingColumnError(COUNT_TABLE_COLUMNS[key][0], file=path, available=cols)
            return [res[key]]
        names = [given] if isinstance(given, str) else list(given)
        for c in names:
            if c not in cols:
                raise MissingColumnError(c, file=path, available=cols)
        return names

    sums = {}
    for key, given in (("rna", rna), ("dna", dna)):
        parts = []
        for c in count_cols(given, key):
            s = parse_float(df, c, file=path)
            neg = (s < 0).fill_null(False)
            if neg.any():
                i = int(neg.arg_max())
                raise InputError(f"negative count {s[i]}", file=path, column=c, row=int(df["source_row"][i]))
            parts.append(s)
        frame = pl.DataFrame({f"c{i}": s for i, s in enumerate(parts)})
        # a missing replicate makes the sum missing (never a silent partial sum)
        sums[key] = frame.select(pl.when(pl.any_horizontal(pl.all().is_null())).then(None)
                                 .otherwise(pl.sum_horizontal(pl.all())).alias(key))[key]
    n = df.height
    barcode = clean_text(df, res["barcode"]) if res["barcode"] else pl.Series("barcode", [None] * n, dtype=pl.Utf8)
    if res["barcode"]:
        tags = pl.Series("tags", [1] * n, dtype=pl.Int64)
    elif res["tags"]:
        tags = parse_int(df, res["tags"], file=path)
    else:
        tags = pl.Series("tags", [None] * n, dtype=pl.Int64)
    df = df.with_columns(clean_text(df, res["element_id"]).alias("element_id"), barcode.alias("barcode"),
                         sums["rna"].alias("rna"), sums["dna"].alias("dna"), tags.alias("tags"))
    df = split_drops(df, pl.col("element_id").is_null(), drops, "missing_element", detail="element id is empty")
    df = drop_non_finite(df, ["rna", "dna"], drops)
    df = split_drops(df, pl.col("rna").is_null() | pl.col("dna").is_null(), drops, "missing_count",
                     detail="an RNA or DNA count is empty")
    return df.select(["row_id", "source_file", "source_row", "element_id", "barcode", "rna", "dna", "tags"]), drops


# ============================================================================ sequences

SEQUENCE_TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "element_id": ("element_id", "element", "name", "oligo", "oligo_id", "id", "construct"),
    "sequence": ("sequence", "seq", "oligo_sequence", "oligo_seq", "dna_sequence"),
}
_SEQ_RE = re.compile(r"^[ACGTN]*$")


def _read_fasta(path: Path) -> pl.DataFrame:
    ids, seqs, lines = [], [], []
    cur: list[str] | None = None
    import gzip as _gz
    opener = _gz.open if is_gzip(path) else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.strip()
            if not line:
                continue
            if line.startswith(">"):
                if cur is not None:
                    seqs.append("".join(cur))
                ids.append(line[1:].split()[0] if line[1:].split() else "")
                lines.append(lineno)
                cur = []
            elif line.startswith(";"):
                continue
            else:
                if cur is None:
                    raise InputError("sequence data before the first '>' header", file=path, row=lineno)
                cur.append(line)
    if cur is not None:
        seqs.append("".join(cur))
    return pl.DataFrame({"element_id": ids, "sequence": seqs, "fasta_line": lines},
                        schema={"element_id": pl.Utf8, "sequence": pl.Utf8, "fasta_line": pl.Int64})


def load_element_sequences(path: str | Path, *, dataset: str | None = None, id_col: str | None = None,
                           seq_col: str | None = None) -> tuple[pl.DataFrame, DropLog]:
    """Element sequences from a FASTA file (plain or gzip) or a table (CSV/TSV).

    FASTA: ``element_id`` is the first word of the header; ``source_row`` is the
    record number (1-based) and ``fasta_line`` the header's line. Table: columns by
    name (:data:`SEQUENCE_TABLE_COLUMNS`) or ``id_col`` / ``seq_col``.

    Output columns: ``row_id``, ``source_file``, ``source_row``, ``element_id``,
    ``sequence`` (upper-case), ``length``, ``n_ambiguous`` (count of ``N``; N-padding is
    refused later, at sequence construction, not here).

    Drops (counted): ``empty_sequence``, ``missing_element``. Errors: letters other
    than ACGTN and duplicated element ids raise :class:`InputError` naming the row.

    Args:
        path: a FASTA (plain or gzip) or a table; id_col, seq_col: explicit headers.

    Returns:
        ``(frame, drops)``: the output columns above, one row per kept input row, and the
            counted drops.

    Raises:
        InputError: letters other than ACGTN, duplicated element ids; MissingColumnError: a
            table without id or sequence column.
    """
    path = Path(path)
    first = head_lines(path, 1)
    is_fasta = bool(first) and first[0].lstrip().startswith(">")
    if is_fasta:
        df = _read_fasta(path)
        df = add_row_ids(df, dataset=dataset_name(path, dataset), file=path)
        id_name, seq_name = "element_id", "sequence"
    else:
        raw = read_text_table(path)
        ov = {k: v for k, v in (("element_id", id_col), ("sequence", seq_col)) if v}
        res = resolve_columns(raw.columns, SEQUENCE_TABLE_COLUMNS, file=path, overrides=ov,
                              required=["element_id", "sequence"])
        df = add_row_ids(raw, dataset=dataset_name(path, dataset), file=path)
        id_name, seq_name = res["element_id"], res["sequence"]
        df = df.with_columns(clean_text(df, id_name).alias("element_id"),
                             clean_text(df, seq_name).alias("sequence"),
                             pl.lit(None, dtype=pl.Int64).alias("fasta_line"))
    drops = DropLog()
    df = df.with_columns(pl.col("sequence").str.to_uppercase().str.replace_all(r"\s", ""),
                         pl.when(pl.col("element_id") == "").then(None).otherwise(pl.col("element_id"))
                         .alias("element_id"))
    df = split_drops(df, pl.col("element_id").is_null(), drops, "missing_element", detail="element id is empty")
    df = split_drops(df, pl.col("sequence").is_null() | (pl.col("sequence") == ""), drops, "empty_sequence",
                     detail="sequence is empty")
    bad = ~df["sequence"].str.contains(r"^[ACGTN]+$")
    if bad.any():
        i = int(bad.arg_max())
        letters = sorted(set(df["sequence"][i]) - set("ACGTN"))
        raise InputError(f"sequence of {df['element_id'][i]!r} has letters other than ACGTN: {letters}",
                         file=path, column=seq_name, row=int(df["source_row"][i]))
    dup = df["element_id"].is_duplicated()
    if dup.any():
        i = int(dup.arg_max())
        raise InputError(f"element id {df['element_id'][i]!r} appears {int((df['element_id'] == df['element_id'][i]).sum())} times",
                         file=path, column=id_name, row=int(df["source_row"][i]))
    df = df.with_columns(pl.col("sequence").str.len_chars().cast(pl.Int64).alias("length"),
                         pl.col("sequence").str.count_matches("N").cast(pl.Int64).alias("n_ambiguous"))
    cols = ["row_id", "source_file", "source_row", "element_id", "sequence", "length", "n_ambiguous"]
    if is_fasta:
        cols.append("fasta_line")
    return df.select(cols), drops


# ============================================================================ activity

Aggregate = Literal["mean", "median", "sum"]


@dataclass
class ActivityResult:
    """Result of :func:`compute_activity`. Unpacks as ``table, dropped, drops``."""

    table: pl.DataFrame
    #: rows removed by each filter, in the order applied: ``min_dna``, ``min_tags``,
    #: ``zero_count`` (only with pseudocount 0)
    dropped: dict[str, int]
    drops: DropLog
    n_input: int = 0
    n_rows_kept: int = 0
    parameters: dict = field(default_factory=dict)

    def __iter__(self) -> Iterator:
        return iter((self.table, self.dropped, self.drops))

    def summary(self) -> dict:
        """A JSON-ready summary: parameters, input rows, drops per filter, rows kept, output rows."""
        return {**self.parameters, "n_input": self.n_input, "dropped": dict(self.dropped),
                "n_rows_kept": self.n_rows_kept, "n_output": self.table.height}


def compute_activity(df: pl.DataFrame, *, pseudocount: float = 1.0, min_dna: float = 0, min_tags: int = 0,
                     aggregate: Aggregate | None = None, by: str | Sequence[str] | None = None,
                     keep: Sequence[str] = (), drops: DropLog | None = None,
                     stage: str = "activity") -> ActivityResult:
    """MPRA activity ``log2((RNA + pseudocount) / (DNA + pseudocount))``.

    ``df`` needs ``row_id``, ``rna``, ``dna`` (and ``tags`` when ``min_tags > 0``), e.g.
    the output of :func:`load_gse84888_counts` or :func:`load_count_table`.

    Filters, applied per input row in this order, each counted in ``result.dropped``
    and recorded in the DropLog (``stage``, reason = filter name):

    * ``min_dna``: keep rows with ``dna >= min_dna`` (0 keeps every row with a DNA count);
    * ``min_tags``: keep rows with ``tags >= min_tags`` (barcodes per construct; 0 skips
      the filter; with ``min_tags > 0`` a row without a tag count is dropped);
    * ``zero_count``: only when ``pseudocount == 0``, rows with a zero count (the ratio
      would be infinite).

    ``aggregate``:

    * ``None`` (default): one output row per input row, adding ``log2_ratio`` and
      ``activity = rna / (dna + pseudocount)`` (§3.1).
    * ``"mean"`` / ``"median"``: per group of ``by`` (default ``element_id``), the
      mean/median of the per-row log2 ratios (the seed's V1 locus means use
      ``aggregate="mean", by="locus_id"``).
    * ``"sum"``: per group, counts summed over rows (barcodes) first, then the ratio.

    Aggregated output columns: the ``by`` columns, ``keep`` columns (must be constant
    within a group, else :class:`InputError`), ``row_id`` (the group key, ``|``-joined
    for several keys), ``n_rows``, ``rna``, ``dna``, ``tags`` (sums), ``log2_ratio``,
    ``log2_ratio_sd`` (sd of the per-row ratios; null for one row), ``row_ids``
    (list of the input row ids).

    Args:
        df: counts (``row_id, rna, dna`` [, ``tags``]); pseudocount, min_dna, min_tags: the
            filters above; aggregate, by, keep: the grouping above.

    Returns:
        An :class:`ActivityResult`: ``table`` (the output above), ``dropped`` (rows per filter)
            and the DropLog.

    Raises:
        InputError: a ``keep`` column that varies within a group; MissingColumnError: a required
            column is absent.
    """
    if pseudocount < 0 or not math.isfinite(pseudocount):
        raise ValueError(f"pseudocount must be >= 0, got {pseudocount}")
    for c in ("row_id", "rna", "dna"):
        if c not in df.columns:
            raise MissingColumnError(c, file="<activity input>", available=df.columns)
    if min_tags > 0 and ("tags" not in df.columns or df["tags"].null_count() == df.height and df.height):
        raise InputError("min_tags > 0 needs a 'tags' (barcodes per element) column with values",
                         file="<activity input>", column="tags")
    drops = drops if drops is not None else DropLog()
    n0 = df.height
    dropped: dict[str, int] = {}
    d = df.with_columns(pl.col("rna").cast(pl.Float64).alias("_rna"), pl.col("dna").cast(pl.Float64).alias("_dna"))

    def apply(name: str, mask: pl.Expr, detail: pl.Expr) -> None:
        nonlocal d
        before = d.height
        d = split_drops(d, mask, drops, name, detail=detail, stage=stage)
        dropped[name] = before - d.height

    apply("min_dna", pl.col("_dna").is_null() | (pl.col("_dna") < min_dna),
          pl.format("DNA count {} < min_dna {}", pl.col("dna"), pl.lit(min_dna)))
    if min_tags > 0:
        apply("min_tags", pl.col("tags").is_null() | (pl.col("tags") < min_tags),
              pl.format("tags {} < min_tags {}", pl.col("tags"), pl.lit(min_tags)))
    else:
        dropped["min_tags"] = 0
    if pseudocount == 0:
        apply("zero_count", (pl.col("_rna") == 0) | (pl.col("_dna") == 0),
              pl.lit("zero RNA or DNA count with pseudocount 0"))
    n_kept = d.height
    pc = float(pseudocount)
    d = d.with_columns(
        (((pl.col("_rna") + pc) / (pl.col("_dna") + pc)).log(2)).alias("log2_ratio"),
        (pl.col("_rna") / (pl.col("_dna") + pc)).alias("activity"),
    )
    params = {"pseudocount": pc, "min_dna": min_dna, "min_tags": min_tags, "aggregate": aggregate,
              "by": by if by is None or isinstance(by, str) else list(by)}
    if aggregate is None:
        table = d.drop("_rna", "_dna")
        return ActivityResult(table, dropped, drops, n0, n_kept, params)
    if aggregate not in ("mean", "median", "sum"):
        raise ValueError(f"aggregate must be None, 'mean', 'median' or 'sum', got {aggregate!r}")
    keys = ["element_id"] if by is None else ([by] if isinstance(by, str) else list(by))
    for c in [*keys, *keep]:
        if c not in d.columns:
            raise MissingColumnError(c, file="<activity input>", available=df.columns)
    has_tags = "tags" in d.columns
    aggs = [pl.len().cast(pl.Int64).alias("n_rows"), pl.col("_rna").sum().alias("rna"),
            pl.col("_dna").sum().alias("dna"),
            (pl.col("tags").sum() if has_tags else pl.lit(None, dtype=pl.Int64)).alias("tags"),
            pl.col("log2_ratio").std().alias("log2_ratio_sd"),
            pl.col("row_id").alias("row_ids")]
    if aggregate == "mean":
        aggs.append(pl.col("log2_ratio").mean().alias("_agg"))
    elif aggregate == "median":
        aggs.append(pl.col("log2_ratio").median().alias("_agg"))
    for c in keep:
        aggs += [pl.col(c).first().alias(c), pl.col(c).n_unique().alias(f"_nu_{c}")]
    g = d.group_by(keys, maintain_order=True).agg(aggs)
    for c in keep:
        bad = g.filter(pl.col(f"_nu_{c}") > 1)
        if bad.height:
            raise InputError(f"column {c!r} is not constant within group {bad.row(0, named=True)[keys[0]]!r}; "
                             "it cannot be kept in an aggregate", column=c)
    if aggregate == "sum":
        g = g.with_columns((((pl.col("rna") + pc) / (pl.col("dna") + pc)).log(2)).alias("log2_ratio"))
    else:
        g = g.rename({"_agg": "log2_ratio"})
    g = g.with_columns(pl.concat_str([pl.col(k).cast(pl.Utf8) for k in keys], separator="|").alias("row_id"))
    table = g.select([*keys, *keep, "row_id", "n_rows", "rna", "dna", "tags", "log2_ratio", "log2_ratio_sd",
                      "row_ids"])
    return ActivityResult(table, dropped, drops, n0, n_kept, params)
