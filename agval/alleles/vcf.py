"""A local dbSNP-style VCF (plain or gzip) as an allele source keyed by rsID.

For users with millions of variants or no network: the same lookup table as the API
path (see :mod:`agval.alleles`, ``source='dbsnp_vcf'``), read with polars in a single
streaming pass. The file is decompressed block by block (``chunk_bytes``, default
16 MiB, cut at line ends); each block is parsed by polars and filtered to the wanted
rsIDs immediately, so memory is bounded by one block plus the matches, whatever the
file size (1,000,000 records: see ``bench/alleles.py``).

Accepted layout: VCF 4.x, ``#CHROM POS ID REF ALT QUAL FILTER INFO``; ``ID`` an rsID
(or ``;``-joined ids); multi-allelic ALTs comma-joined (one output row per ALT); ALT
frequency from ``INFO`` ``AF=`` (one value per ALT) or dbSNP's
``FREQ=<study>:<ref>,<alt1>,..|...`` (GnomAD, TOPMED, 1000Genomes preferred, in that
order). Chromosomes may be ``1``, ``chr1`` or RefSeq accessions (``NC_000001.11`` ->
``chr1``, ``NC_012920`` -> ``chrM``); other contigs keep their name.

Bad files: a truncated or corrupt gzip is an :class:`~agval.errors.InputError` naming the
file (never retried); a malformed data line (fewer than five fields, a ``POS`` that is not
a positive integer, an empty ``REF``/``ALT``, a ``REF`` that is not bases) is an
``InputError`` naming the file and its line, never read as "not found" or "no hg38".

Build: the ``##reference=`` header line must not name GRCh37/hg19
(:class:`~agval.errors.BuildMismatchError`); a header without it is taken as hg38
(``assume_hg38=False`` refuses such a file). The data version is the
``##dbSNP_BUILD_ID`` plus a cheap fingerprint (size and a hash of the first and last MiB),
so a replaced file is noticed by the cache without reading it whole.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import zlib
from pathlib import Path

import polars as pl

from agval.alleles import LOOKUP_COLUMNS, Progress, conform_lookup
from agval.coords import chrom_expr as _coords_chrom_expr
from agval.errors import BuildMismatchError, InputError, quote

_GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)

_COLS = ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]
_FREQ_STUDIES = ("GnomAD", "TOPMED", "1000Genomes")


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def chrom_expr(col: str = "#CHROM") -> pl.Expr:
    """Normalise VCF chromosome names (RefSeq ``NC_`` accessions included) by the one alias
    table, :func:`agval.coords.chrom_expr`."""
    return _coords_chrom_expr(pl.col(col))


def hgvs_expr(chrom: str = "chrom", pos: str = "pos", ref: str = "ref", alt: str = "alt") -> pl.Expr:
    """myvariant-style HGVS ids from VCF alleles (the stand-in and the real service agree)."""
    c, p, r, a = pl.col(chrom), pl.col(pos), pl.col(ref), pl.col(alt)
    lr, la = r.str.len_chars(), a.str.len_chars()
    first_same = r.str.slice(0, 1) == a.str.slice(0, 1)
    ps = p.cast(pl.Utf8)
    s_del, e_del = (p + 1).cast(pl.Utf8), (p + lr - 1).cast(pl.Utf8)
    return (pl.when((lr == 1) & (la == 1)).then(c + ":g." + ps + r + ">" + a)
            .when((la == 1) & first_same & (lr == 2)).then(c + ":g." + s_del + "del")
            .when((la == 1) & first_same).then(c + ":g." + s_del + "_" + e_del + "del")
            .when((lr == 1) & first_same).then(c + ":g." + ps + "_" + (p + 1).cast(pl.Utf8) + "ins" + a.str.slice(1))
            .when(lr == 1).then(c + ":g." + ps + "delins" + a)
            .otherwise(c + ":g." + ps + "_" + e_del + "delins" + a))


class VcfSource:
    """An rsID-keyed dbSNP VCF. ``VcfSource(path).lookup(['rs1', ...])`` -> lookup table."""

    name = "dbsnp_vcf"
    version_ttl = 0.0  # the fingerprint is cheap: check it on every lookup

    def __init__(self, path: str | Path, *, assembly: str = "hg38", chunk_bytes: int = 16 << 20,
                 assume_hg38: bool = True):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError("dbSNP VCF not found", file=self.path)
        self.assembly = assembly
        self.chunk_bytes = chunk_bytes
        self.gzip = _is_gzip(self.path)
        self.meta, self.columns, self._header_bytes, self._header_lines = self._read_header()
        missing = [c for c in _COLS[:5] if c not in self.columns]
        if missing:
            raise InputError(f"not a VCF: the #CHROM header line lacks {missing}", file=self.path,
                             column=missing[0])
        ref = self.meta.get("reference", "") + " " + self.meta.get("assembly", "")
        low = ref.lower()
        if any(t in low for t in ("grch37", "hg19", "b37", "hs37")):
            raise BuildMismatchError(f"{self.path}: the VCF's ##reference is {ref.strip()!r}, not hg38; "
                                     "liftover is not done implicitly")
        if not low.strip() and not assume_hg38:
            raise BuildMismatchError(f"{self.path}: no ##reference header; cannot confirm the build is hg38")
        self.requests_made = 0  # API parity (a file costs no requests)

    def _open(self):
        raw = open(self.path, "rb")
        return raw, (gzip.GzipFile(fileobj=raw) if self.gzip else raw)

    def _gzip_error(self, exc: BaseException) -> InputError:
        what = "truncated" if isinstance(exc, EOFError) else "corrupt"
        return InputError(f"the gzip data is {what} ({type(exc).__name__}: {str(exc)[:120]})", file=self.path,
                          hint="the file was probably cut short while copying or downloading; fetch it again "
                               "(gzip -t FILE tests it)")

    def _read_header(self) -> tuple[dict[str, str], list[str], int, int]:
        meta: dict[str, str] = {}
        raw, fh = self._open()
        try:
            n = lines = 0
            while True:
                try:
                    line = fh.readline()
                except _GZIP_ERRORS as e:
                    raise self._gzip_error(e) from None
                if not line:
                    raise InputError("not a VCF: no #CHROM header line", file=self.path)
                n += len(line)
                lines += 1
                text = line.decode(errors="replace").rstrip("\r\n")
                if text.startswith("##"):
                    k, _, v = text[2:].partition("=")
                    meta.setdefault(k, v)
                elif text.startswith("#"):
                    return meta, text.split("\t"), n, lines
                else:
                    raise InputError("not a VCF: data before the #CHROM header line", file=self.path, line=lines)
        finally:
            fh.close()
            raw.close()

    def identity(self) -> str:
        return str(self.path.resolve())

    def data_version(self) -> str:
        size = self.path.stat().st_size
        h = hashlib.sha256()
        with open(self.path, "rb") as fh:
            h.update(fh.read(1 << 20))
            if size > 2 << 20:
                fh.seek(size - (1 << 20))
            h.update(fh.read(1 << 20))
        build = self.meta.get("dbSNP_BUILD_ID", "?")
        return f"dbsnp={build};file={self.path.name};size={size};sha={h.hexdigest()[:12]}"

    def _blocks(self, progress: Progress | None):
        """``(block of whole lines, 1-based file line of its first line)``."""
        raw, fh = self._open()
        total = self.path.stat().st_size
        line_no = self._header_lines + 1
        try:
            try:
                fh.read(self._header_bytes) if self.gzip else fh.seek(self._header_bytes)
                while True:
                    block = fh.read(self.chunk_bytes)
                    if not block:
                        break
                    if not block.endswith(b"\n"):
                        block += fh.readline()
                    yield block, line_no
                    line_no += block.count(b"\n")
                    if progress:
                        progress(raw.tell(), total)
            except _GZIP_ERRORS as e:
                raise self._gzip_error(e) from None
        finally:
            fh.close()
            raw.close()

    def _parse(self, block: bytes, wanted: pl.Series, first_line: int = 1) -> pl.DataFrame:
        """One block of VCF lines -> the matching rows, already in lookup-table shape (small)."""
        try:
            df = pl.read_csv(io.BytesIO(block), separator="\t", has_header=False, new_columns=self.columns,
                             infer_schema=False, quote_char=None, comment_prefix="#", truncate_ragged_lines=True)
        except pl.exceptions.PolarsError as exc:
            raise InputError(f"cannot read the VCF records: {str(exc).splitlines()[0][:300]}", file=self.path,
                             line=first_line) from None
        df = df.select(_COLS[:5] + (["INFO"] if "INFO" in self.columns else []))
        if "INFO" not in df.columns:
            df = df.with_columns(pl.lit("").alias("INFO"))
        self._check_lines(df, first_line)
        if df.height and df["ID"].str.contains(";", literal=True).any():
            df = df.with_columns(pl.col("ID").str.split(";")).explode("ID")
        found = df.filter(pl.col("ID").str.to_lowercase().is_in(wanted.implode()))
        del df
        return self._rows(found)

    def _check_lines(self, df: pl.DataFrame, first_line: int) -> None:
        """:class:`InputError` at the first malformed record of a block (file and line)."""
        pos = pl.col("POS").cast(pl.Int64, strict=False)
        bad = (pos.is_null() | (pos < 1) | pl.col("REF").is_null() | (pl.col("REF") == "")
               | pl.col("ALT").is_null() | (pl.col("ALT") == "")
               | ~pl.col("REF").str.contains(r"^(?i)[ACGTNRYKMSWBDHV]+$"))
        flags = df.select(bad.fill_null(True).alias("b"))["b"]
        if not flags.any():
            return
        i = int(flags.arg_max())
        row = df.row(i, named=True)
        if row["POS"] is None or row["REF"] is None or row["ALT"] is None:
            why, col = "fewer than 5 tab-separated fields (a cut or joined line?)", None
        elif pl.Series([row["POS"]]).cast(pl.Int64, strict=False)[0] is None or int(row["POS"]) < 1:
            why, col = f"POS {quote(row['POS'], 60)} is not a positive integer", "POS"
        elif not row["ALT"]:
            why, col = "ALT is empty", "ALT"
        else:
            why, col = f"REF {quote(row['REF'], 60)} is not a run of bases", "REF"
        n = int(flags.sum())
        more = f" ({n} malformed records in this block)" if n > 1 else ""
        raise InputError(f"malformed VCF record: {why}{more}", file=self.path, line=first_line + i, column=col,
                         hint="the file may be truncated or corrupt; a malformed record is never read as "
                              "'not found'")

    @staticmethod
    def _rows(found: pl.DataFrame) -> pl.DataFrame:
        af_field = pl.col("INFO").str.extract(r"(?:^|;)AF=([^;]+)", 1).str.split(",")
        freq = pl.coalesce([pl.col("INFO").str.extract(rf"(?:^|;|\|)FREQ=(?:[^;]*\|)?{s}:([^|;]+)", 1)
                            for s in _FREQ_STUDIES]
                           + [pl.col("INFO").str.extract(r"(?:^|;)FREQ=[^:;]+:([^|;]+)", 1)])
        freq_alts = freq.str.split(",").list.slice(1)
        rows = (found.select(
                    query=pl.col("ID").str.to_lowercase(),
                    chrom=chrom_expr("#CHROM"),
                    pos=pl.col("POS").cast(pl.Int64, strict=False),
                    ref=pl.col("REF").str.to_uppercase(),
                    _alts=pl.col("ALT").str.to_uppercase().str.split(","),
                    _afs=pl.coalesce([af_field, freq_alts]))
                .with_columns(_i=pl.int_ranges(pl.col("_alts").list.len()))
                .explode(["_alts", "_i"])
                .select("query", "chrom", "pos", "ref", alt=pl.col("_alts"),
                        af=pl.col("_afs").list.get(pl.col("_i"), null_on_oob=True).cast(pl.Float64, strict=False))
                .filter(pl.col("alt").is_not_null() & ~pl.col("alt").is_in([".", "*", ""])))
        return rows.with_columns(hgvs_id=hgvs_expr())

    def lookup(self, rsids: list[str], *, progress: Progress | None = None,
               source_version: str | None = None) -> pl.DataFrame:
        """One pass over the file for all ``rsids`` (normalised); the lookup table."""
        wanted = pl.Series(rsids, dtype=pl.Utf8).str.to_lowercase().unique(maintain_order=True)
        parts = [self._parse(b, wanted, n) for b, n in self._blocks(progress)] if wanted.len() else []
        rows = pl.concat(parts) if parts else self._rows(pl.DataFrame(schema={c: pl.Utf8 for c in _COLS[:5] + ["INFO"]}))
        del parts
        const = dict(source=pl.lit(self.name), source_version=pl.lit(source_version, dtype=pl.Utf8),
                     assembly=pl.lit(self.assembly))
        rows = rows.with_columns(rsid=pl.col("query"), status=pl.when(pl.col("pos").is_null())
                                 .then(pl.lit("no_hg38")).otherwise(pl.lit("ok")), **const)
        order = wanted.to_frame("query").with_row_index("_order")
        missing = order.join(rows.select("query").unique(), on="query", how="anti").with_columns(
            status=pl.lit("notfound"), **const)
        out = pl.concat([conform_lookup(rows), conform_lookup(missing.drop("_order"))])
        del rows
        out = (out.join(order, on="query", how="left").sort(["_order", "pos", "alt"], nulls_last=True)
               .drop("_order"))
        return out.select(list(LOOKUP_COLUMNS))
