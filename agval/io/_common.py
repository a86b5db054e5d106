"""Shared helpers of the study-input loaders.

Conventions every loader in :mod:`agval.io` follows (see ``docs/ARCHITECTURE.md``):

* Columns are found **by header name**, never by position (pitfall P1). Headers are
  cleaned of a byte-order mark, surrounding whitespace and quotes; footnote letters
  glued to a header (``Ref Allelec``) are stripped **only** where a format says so
  (:func:`match_footnoted`).
* Every output row carries ``row_id`` (``"<dataset>:<source_row>"``, stable across runs
  of the same file), ``source_file`` and ``source_row`` (1-based data row; the header is
  not a row, so a spreadsheet shows it on line ``source_row + 1``).
* Values are read as text and parsed here, so that a value which is not a number can
  be reported with its file, column and row. The policy, shared by all loaders:

  - a **missing** value (empty, ``NA``, ``NaN``, ``.``, ...; see :data:`NA_STRINGS`) is
    data: the row is dropped and counted in the :class:`~agval.drops.DropLog` when the
    value is required, or kept with a null when it is not;
  - a **malformed** value (``abc`` where a number belongs) means the file is not what
    the loader thinks it is: :class:`~agval.errors.InputError` naming file, column and
    row. Silently dropping such rows would hide a shifted column or a wrong format.

  Loaders that deviate (e.g. malformed MPRA construct names, which are counted drops)
  say so in their docstrings.
"""

from __future__ import annotations

import gzip
import io
import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import polars as pl

from agval import coords as _coords
from agval.drops import DropLog
from agval.errors import InputError, MissingColumnError, bounded, quote
from agval.genes import strip_gene_version_expr  # noqa: F401  (re-exported for the loaders)

#: Text values read as "missing" (compared after stripping whitespace).
NA_STRINGS: tuple[str, ...] = ("", "NA", "N/A", "na", "n/a", "NaN", "nan", "NAN", "null", "NULL",
                               "None", "none", ".")

LOAD_STAGE = "load"

_GZIP_MAGIC = b"\x1f\x8b"


# --------------------------------------------------------------------------- files

def is_gzip(path: str | Path) -> bool:
    """True when the file starts with the gzip magic bytes (the extension is not trusted)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(2) == _GZIP_MAGIC
    except IsADirectoryError:
        raise InputError("is a folder, not a file", file=path) from None
    except OSError as e:
        raise InputError(f"cannot open the file: {e.strerror}", file=path) from None


def corrupt_gzip(path: str | Path, exc: BaseException) -> InputError:
    """The :class:`InputError` for a truncated or corrupt gzip/bgzip file."""
    what = "truncated" if isinstance(exc, EOFError) or "end of" in str(exc).lower() else "corrupt"
    return InputError(f"the gzip data is {what} ({type(exc).__name__}: {str(exc)[:120]})", file=path,
                      hint="the file was probably cut short while copying or downloading; fetch it again "
                           "(gzip -t FILE tests it)")


def check_gzip(path: str | Path, chunk: int = 1 << 20) -> None:
    """Decompress a gzip/bgzip file in constant memory and raise :class:`InputError` if it
    is truncated or corrupt (every member, CRC and length checked). Plain files pass."""
    import zlib

    if not is_gzip(path):
        return
    try:
        with gzip.open(path, "rb") as fh:
            while fh.read(chunk):
                pass
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as e:
        raise corrupt_gzip(path, e) from None


def read_decompressed(path: str | Path) -> bytes:
    """The file's bytes, gunzipped when it is gzip/bgzip (checked: a truncated or corrupt
    file is an :class:`InputError` naming it)."""
    import zlib

    path = Path(path)
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise InputError("is a folder, not a file", file=path) from None
    except OSError as e:
        raise InputError(f"cannot read the file: {e.strerror}", file=path) from None
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as e:
        raise corrupt_gzip(path, e) from None


def _open_text(path: str | Path):
    if is_gzip(path):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace", newline="")
    return open(path, "r", encoding="utf-8", errors="replace", newline="")


def head_lines(path: str | Path, n: int = 1) -> list[str]:
    """The first ``n`` lines of a (possibly gzipped) text file, without line endings."""
    import zlib

    path = Path(path)
    if not path.is_file():
        raise InputError("is a folder, not a file" if path.is_dir() else "file not found", file=path)
    out: list[str] = []
    try:
        with _open_text(path) as fh:
            for line in fh:
                out.append(line.rstrip("\r\n"))
                if len(out) >= n:
                    break
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise corrupt_gzip(path, e) from None
    except OSError as e:
        raise InputError(f"cannot read the file: {e.strerror}", file=path) from None
    return out


def raw_header_names(header_line: str, sep: str) -> list[str]:
    """The header's names as written (cleaned with :func:`clean_header`), split the way the
    CSV reader splits them (double quotes respected), before any reader renames a copy."""
    import csv

    if sep == " ":
        return [clean_header(c) for c in header_line.split()]
    try:
        row = next(csv.reader([header_line], delimiter=sep, quotechar='"'))
    except (csv.Error, StopIteration):
        row = header_line.split(sep)
    return [clean_header(c) for c in row]


def check_unique_header(names: Sequence[str], *, file: str | Path) -> None:
    """:class:`InputError` naming the first duplicated column (``beta,beta``) and its positions."""
    import collections

    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in seen:
            dups = sorted(x for x, k in collections.Counter(names).items() if k > 1)
            raise InputError(f"the header names this column twice (columns {seen[n] + 1} and {i + 1}); "
                             f"duplicated: {', '.join(quote(d, 60) for d in dups[:5])}",
                             file=file, column=n, row=None,
                             hint="rename or remove one copy; agval never guesses which one is meant")
        seen[n] = i


def sniff_separator(header_line: str) -> str:
    """Guess the delimiter from the header line: tab, then comma, then semicolon, else space.

    A header containing a tab is tab-separated even if names contain commas or spaces
    (``log2 (effect size)``).
    """
    for sep in ("\t", ",", ";"):
        if sep in header_line:
            return sep
    return " "


def clean_header(name: str) -> str:
    """Strip a byte-order mark, whitespace and surrounding quotes from a header name."""
    n = name.replace("\ufeff", "").strip()
    if len(n) >= 2 and n[0] == n[-1] and n[0] in "\"'":
        n = n[1:-1].strip()
    return n


def _whitespace_to_tabs(data: bytes) -> bytes:
    text = data.decode("utf-8", errors="replace")
    return "".join("\t".join(line.split()) + "\n" for line in text.splitlines()).encode()


def read_text_table(path: str | Path, *, separator: str | None = None) -> pl.DataFrame:
    """Read a delimited text file (plain or gzip) with every column as text.

    The separator is sniffed from the header when not given. Whitespace-separated files
    (runs of spaces, e.g. PLINK output) are normalised to tabs first. Header names are
    cleaned with :func:`clean_header`. A ragged or unreadable file raises
    :class:`InputError` naming it.
    """
    path = Path(path)
    header = head_lines(path, 1)
    if not header or not header[0].strip():
        raise InputError("file is empty (no header line)", file=path)
    sep = separator or sniff_separator(header[0])
    check_unique_header(raw_header_names(header[0], sep), file=path)
    data = read_decompressed(path)
    source: bytes = data
    if sep == " ":
        source, sep = _whitespace_to_tabs(data), "\t"
    try:
        df = pl.read_csv(source, separator=sep, infer_schema=False, has_header=True,
                         quote_char='"', truncate_ragged_lines=False, raise_if_empty=False)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise InputError(f"cannot read as a {_sep_name(sep)}-separated table: {bounded(_first_line(exc), 300)}",
                         file=path, line=_error_line(exc)) from None
    renames = {c: clean_header(c) for c in df.columns}
    if len(set(renames.values())) != len(renames):
        import collections

        dup = sorted(v for v, k in collections.Counter(renames.values()).items() if k > 1)
        raise InputError(f"duplicated column names {[quote(d, 60) for d in dup[:5]]}", file=path)
    return df.rename(renames)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _error_line(exc: BaseException) -> int | None:
    """The 1-based file line a polars CSV error names, if any (``... at line 12``)."""
    m = re.search(r"\bline:? (\d+)", str(exc))
    return int(m.group(1)) if m else None


def _sep_name(sep: str) -> str:
    return {"\t": "tab", ",": "comma", ";": "semicolon", " ": "space"}.get(sep, repr(sep))


# --------------------------------------------------------------------------- columns

def find_column(columns: Sequence[str], aliases: Sequence[str], *, case_sensitive: bool = False) -> str | None:
    """The first header among ``aliases`` (in alias order) present in ``columns``."""
    if case_sensitive:
        present = set(columns)
        return next((a for a in aliases if a in present), None)
    lower: dict[str, str] = {}
    for c in columns:
        lower.setdefault(c.lower(), c)
    for a in aliases:
        hit = lower.get(a.lower())
        if hit is not None:
            return hit
    return None


def resolve_columns(columns: Sequence[str], spec: Mapping[str, Sequence[str]], *,
                    file: str | Path, required: Iterable[str] = (),
                    overrides: Mapping[str, str] | None = None,
                    case_sensitive: bool = False) -> dict[str, str | None]:
    """Map canonical names to the file's headers.

    ``spec`` maps a canonical name to its accepted header names (aliases, tried in
    order); ``overrides`` maps a canonical name to an exact header given by the user.
    A canonical name in ``required`` that is not found raises
    :class:`MissingColumnError` naming the file and the canonical name (or, if the
    canonical name is not itself an accepted header, the first alias).
    """
    out: dict[str, str | None] = {}
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(spec)
    if unknown:
        raise InputError(f"unknown column override(s) {sorted(unknown)}; known: {sorted(spec)}", file=file)
    for canon, aliases in spec.items():
        if canon in overrides:
            if overrides[canon] not in columns:
                raise MissingColumnError(overrides[canon], file=file, available=list(columns))
            out[canon] = overrides[canon]
        else:
            out[canon] = find_column(columns, aliases, case_sensitive=case_sensitive)
    for canon in required:
        if out.get(canon) is None:
            aliases = list(spec[canon])
            name = canon if canon.lower() in (a.lower() for a in aliases) else aliases[0]
            raise MissingColumnError(name, file=file, available=list(columns))
    return out


def require_columns(columns: Sequence[str], required: Iterable[str], *, file: str | Path) -> None:
    """Raise :class:`MissingColumnError` for the first of ``required`` not among ``columns``."""
    for c in required:
        if c not in columns:
            raise MissingColumnError(c, file=file, available=list(columns))


def match_footnoted(columns: Sequence[str], wanted: str) -> str | None:
    """The header that is ``wanted`` or ``wanted`` plus glued-on footnote marks.

    Footnote marks are one or two lower-case letters or symbols (``*``, ``†``, ``‡``,
    ``§``, ``¶``), optionally after a space: ``'Ref Allelec'`` and ``'Ref Allele c'``
    match ``'Ref Allele'``. An exact match wins; two different footnoted matches raise
    :class:`InputError` (ambiguous). Use it only for formats known to carry footnotes.
    """
    if wanted in columns:
        return wanted
    pat = re.compile(re.escape(wanted) + r"\s?(?:[a-z]{1,2}|[*\u2020\u2021\u00a7\u00b6]{1,2})$")
    hits = [c for c in columns if pat.match(c)]
    if len(hits) > 1:
        raise InputError(f"several headers match {wanted!r} with a footnote mark: {hits}")
    return hits[0] if hits else None


def footnote_free(name: str, known: Sequence[str]) -> str:
    """``name`` with footnote marks stripped if it is one of ``known`` plus marks, else ``name``."""
    for k in known:
        if match_footnoted([name], k) is not None:
            return k
    return name


# --------------------------------------------------------------------------- rows

def add_row_ids(df: pl.DataFrame, *, dataset: str, file: str | Path) -> pl.DataFrame:
    """Prepend ``row_id`` (``dataset:row``), ``source_file`` and ``source_row`` (1-based)."""
    n = df.height
    rows = pl.int_range(1, n + 1, dtype=pl.Int64, eager=True) if n else pl.Series([], dtype=pl.Int64)
    return df.with_columns(
        pl.lit(str(file), dtype=pl.Utf8).alias("source_file"),
        rows.alias("source_row"),
    ).with_columns(
        (pl.lit(f"{dataset}:") + pl.col("source_row").cast(pl.Utf8)).alias("row_id"),
    ).select(["row_id", "source_file", "source_row", *df.columns])


def na_expr(col: str | pl.Expr, na: Sequence[str] = NA_STRINGS) -> pl.Expr:
    """True where the text value is missing (null or one of ``na`` after stripping)."""
    e = pl.col(col) if isinstance(col, str) else col
    return e.is_null() | e.str.strip_chars().is_in(list(na))


def _null_where(values: pl.Series, mask: pl.Series) -> pl.Series:
    """``values`` with nulls where ``mask`` is true."""
    return pl.DataFrame({"v": values, "m": mask}).select(
        pl.when(pl.col("m")).then(None).otherwise(pl.col("v")).alias(values.name))[values.name]


def _first_bad(df: pl.DataFrame, bad: pl.Series, column: str, file, what: str) -> None:
    if bad.any():
        idx = int(bad.arg_max())
        row = int(df["source_row"][idx]) if "source_row" in df.columns else idx + 1
        value = df[column][idx]
        n = int(bad.sum())
        more = f" ({n} such rows)" if n > 1 else ""
        raise InputError(f"cannot parse {quote(value)} as {what}{more}", file=file, column=column, row=row)


def parse_float(df: pl.DataFrame, column: str, *, file: str | Path,
                na: Sequence[str] = NA_STRINGS) -> pl.Series:
    """Parse a text column as Float64: missing values -> null, malformed -> :class:`InputError`."""
    raw = df[column]
    if raw.dtype != pl.Utf8:
        return raw.cast(pl.Float64)
    s = raw.str.strip_chars()
    miss = s.is_null() | s.is_in(list(na))
    val = s.cast(pl.Float64, strict=False)
    bad = (~miss) & val.is_null()
    _first_bad(df, bad, column, file, "a number")
    return _null_where(val.alias(column), miss)


def parse_int(df: pl.DataFrame, column: str, *, file: str | Path,
              na: Sequence[str] = NA_STRINGS) -> pl.Series:
    """Parse a text column as Int64 (``12``, ``12.0`` and ``1.2e1`` accepted when integral)."""
    raw = df[column]
    if raw.dtype in (pl.Int64, pl.Int32, pl.UInt32, pl.UInt64):
        return raw.cast(pl.Int64)
    s = raw.cast(pl.Utf8).str.strip_chars()
    miss = s.is_null() | s.is_in(list(na))
    as_int = s.cast(pl.Int64, strict=False)
    as_float = s.cast(pl.Float64, strict=False)
    integral = as_float.is_not_null() & as_float.is_finite() & (as_float == as_float.floor())
    val = as_int.fill_null(_null_where(as_float, ~integral).cast(pl.Int64, strict=False))
    bad = (~miss) & val.is_null()
    _first_bad(df, bad, column, file, "an integer")
    return _null_where(val.alias(column), miss)


def drop_non_finite(df: pl.DataFrame, columns: Sequence[str], drops: DropLog, *,
                    stage: str = LOAD_STAGE) -> pl.DataFrame:
    """Drop (and count, reason ``non_finite_<column>``) the rows whose value in a Float
    column is ``inf``, ``-inf`` or NaN: such a value parses as a number but cannot enter a
    statistic. Missing values (null) are left to the loader's own ``missing_*`` drops."""
    for c in columns:
        if c not in df.columns or df[c].dtype not in (pl.Float64, pl.Float32):
            continue
        bad = df[c].is_not_null() & ~df[c].is_finite()
        if bad.any():
            df = split_drops(df, bad, drops, f"non_finite_{c}",
                             detail=pl.lit(f"{c} is ") + pl.col(c).cast(pl.Utf8), stage=stage)
    return df


def fill_null(s: pl.Series, value) -> pl.Series:
    """``s`` with nulls replaced by ``value`` (unchanged when ``value`` is None)."""
    return s if value is None else s.fill_null(value)


def clean_text(df: pl.DataFrame, column: str, *, na: Sequence[str] = NA_STRINGS) -> pl.Series:
    """Strip a text column; missing values become null."""
    s = df[column].cast(pl.Utf8).str.strip_chars()
    return _null_where(s.alias(column), s.is_in(list(na)).fill_null(False))


def chrom_expr(e: pl.Expr) -> pl.Expr:
    """:func:`agval.coords.chrom_expr` (the one chromosome alias table) on a loader's text
    column: whitespace stripped, :data:`NA_STRINGS` become null."""
    c = e.cast(pl.Utf8).str.strip_chars()
    return _coords.chrom_expr(pl.when(c.is_in(list(NA_STRINGS))).then(None).otherwise(c), fast=True)


def chrom_expr_fast(e: pl.Expr) -> pl.Expr:
    """:func:`agval.coords.chrom_expr` with ``fast=True``, for tens of millions of rows
    (missing tokens must already be null: the CSV reader's ``null_values``)."""
    return _coords.chrom_expr(e, fast=True)


RSID_RE = r"^rs\d+$"


def rsid_expr(e: pl.Expr) -> pl.Expr:
    """The value when it is an rsID (``rs123``, case-insensitive ``RS`` is lowered), else null."""
    s = e.cast(pl.Utf8).str.strip_chars()
    s = pl.when(s.str.contains(r"(?i)^rs\d+$")).then(pl.lit("rs") + s.str.slice(2)).otherwise(None)
    return s


def record_drops(drops: DropLog, df: pl.DataFrame, reason: str, *, detail: str | pl.Expr | None = None,
                 stage: str = LOAD_STAGE) -> None:
    """Add every row of ``df`` (which has row_id/source_file/source_row) to ``drops``."""
    if df.height == 0:
        return
    if detail is None:
        d = pl.lit(None, dtype=pl.Utf8)
    elif isinstance(detail, str):
        d = pl.lit(detail)
    else:
        d = detail
    part = df.select([c for c in ("row_id", "source_file", "source_row") if c in df.columns]
                     + [d.cast(pl.Utf8).alias("detail")])
    drops.add_frame(part, stage=stage, reason=reason)


def split_drops(df: pl.DataFrame, mask: pl.Series | pl.Expr, drops: DropLog, reason: str, *,
                detail: str | pl.Expr | None = None, stage: str = LOAD_STAGE) -> pl.DataFrame:
    """Record the rows where ``mask`` is true as drops and return the others."""
    m = df.select(mask.alias("_m") if isinstance(mask, pl.Expr) else pl.lit(mask).alias("_m"))["_m"]
    m = m.fill_null(False)
    if m.len() != df.height:  # a literal mask broadcasts
        m = pl.Series("_m", [bool(m[0]) if m.len() else False] * df.height, dtype=pl.Boolean)
    if m.any():
        record_drops(drops, df.filter(m), reason, detail=detail, stage=stage)
        return df.filter(~m)
    return df


def dataset_name(path: str | Path, dataset: str | None, default: str | None = None) -> str:
    """The row-id prefix: ``dataset``, else ``default``, else the file name without extensions."""
    if dataset:
        return dataset
    if default:
        return default
    name = Path(path).name
    for ext in (".gz", ".bgz", ".txt", ".tsv", ".csv", ".dat"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
    return name


def assert_unique_row_ids(df: pl.DataFrame, *, what: str) -> None:
    dup = df["row_id"].is_duplicated()
    if dup.any():
        ex = df.filter(dup)["row_id"].head(3).to_list()
        raise InputError(f"{what}: row_id is not unique (e.g. {ex}); give each file a distinct dataset name")
