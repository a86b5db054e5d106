"""Allele lookup and harmonization: rsIDs to oriented, reference-checked hg38 variants.

Pieces (each module documents its own table schema):

* :mod:`agval.alleles.myvariant` - myvariant.info client (httpx): :class:`MyVariantClient`,
  :func:`parse_query_response`;
* :mod:`agval.alleles.vcf` - a local dbSNP-style VCF keyed by rsID: :class:`VcfSource`;
* :mod:`agval.alleles.cache` - the parquet lookup cache and :func:`lookup_rsids`, the
  entry point that validates ids, serves what is cached and asks the source for the rest;
* :mod:`agval.alleles.harmonize` - :func:`classify_lookup` and :func:`harmonize`;
* :mod:`agval.alleles.guards` - checks that fail loudly on known failure modes.

**Lookup table** (both sources return it; format ``allele_lookup`` v1 in the cache), one
row per (queried rsID, hit), plus one row per rsID that was not found:

============== ======= =====================================================================
column         type    meaning
============== ======= =====================================================================
query          str     the rsID as queried, normalised (``rs123``)
rsid           str     the source's rsID of the hit (differs from ``query`` when merged); null if notfound
chrom          str     ``chr``-prefixed hg38 chromosome; null without an hg38 placement
pos            i64     1-based hg38 position of REF (VCF POS); null without an hg38 placement
ref            str     VCF-style REF (indels anchored)
alt            str     one ALT allele (a multi-allelic rsID has one row per ALT)
af             f64     ALT allele frequency reported by the source (null when none)
source         str     ``myvariant`` or ``dbsnp_vcf``
source_version str     the source's data version (myvariant ``/v1/metadata``; VCF build + fingerprint)
assembly       str     ``hg38`` (coordinates of any other build are never placed in chrom/pos)
hgvs_id        str     myvariant-style HGVS id (``chr1:g.123A>G``)
status         str     ``ok`` / ``merged`` (source says the rsID was merged into ``rsid``) /
                       ``no_hg38`` (found, but no hg38 coordinates) / ``notfound``
============== ======= =====================================================================

Public helpers here: :data:`LOOKUP_COLUMNS`, :func:`normalize_rsids`, :func:`empty_lookup`,
:class:`AlleleSource` (the protocol both sources implement).
"""

from __future__ import annotations

from typing import Callable, Iterable, Protocol, runtime_checkable

import polars as pl

LOOKUP_COLUMNS: dict[str, pl.DataType] = {
    "query": pl.Utf8, "rsid": pl.Utf8, "chrom": pl.Utf8, "pos": pl.Int64, "ref": pl.Utf8,
    "alt": pl.Utf8, "af": pl.Float64, "source": pl.Utf8, "source_version": pl.Utf8,
    "assembly": pl.Utf8, "hgvs_id": pl.Utf8, "status": pl.Utf8,
}
LOOKUP_STATUSES = ("ok", "merged", "no_hg38", "notfound")
RSID_PATTERN = r"^rs[1-9][0-9]*$"

Progress = Callable[[int, int], None]  # (ids done, ids total)


@runtime_checkable
class AlleleSource(Protocol):
    """What :func:`agval.alleles.cache.lookup_rsids` needs from a source."""

    name: str          # value of the ``source`` column
    assembly: str      # ``hg38``

    def identity(self) -> str:
        """Where the data comes from (URL or file path), for the cache's version record."""

    def data_version(self) -> str:
        """The source's data version (may cost one request)."""

    def lookup(self, rsids: list[str], *, progress: Progress | None = None,
               source_version: str | None = None) -> pl.DataFrame:
        """Look up normalised, unique rsIDs; return a lookup table (module docstring).

        Optional attributes: ``requests_made`` (a counter of requests to the source) and
        ``version_ttl`` (seconds a remembered data version stays trusted; default 0)."""


def empty_lookup() -> pl.DataFrame:
    return pl.DataFrame(schema=LOOKUP_COLUMNS)


def conform_lookup(df: pl.DataFrame) -> pl.DataFrame:
    """Columns in the documented order and types (extra columns dropped)."""
    return df.select([pl.col(c).cast(t) if c in df.columns else pl.lit(None, dtype=t).alias(c)
                      for c, t in LOOKUP_COLUMNS.items()])


def rsid_check_expr(col: str | pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(normalised rsID or null, reason or null) expressions for a column of raw ids.

    Reasons: ``missing_rsid`` (null / empty) and ``malformed_rsid`` (anything that is not
    ``rs`` followed by digits: ``rs``, ``chr1:123``, ``rs12abc``...). Case and surrounding
    spaces are forgiven (``RS123 `` -> ``rs123``).
    """
    c = pl.col(col) if isinstance(col, str) else col
    s = c.cast(pl.Utf8).str.strip_chars().str.to_lowercase()
    ok = s.str.contains(RSID_PATTERN).fill_null(False)
    norm = pl.when(ok).then(s).otherwise(None)
    reason = (pl.when(s.is_null() | (s == "")).then(pl.lit("missing_rsid"))
              .when(~ok).then(pl.lit("malformed_rsid")).otherwise(None))
    return norm, reason


def normalize_rsids(ids: Iterable[str | None] | pl.Series) -> pl.DataFrame:
    """A table ``raw``, ``rsid`` (normalised or null), ``reason`` (null when valid), ``detail``."""
    s = ids if isinstance(ids, pl.Series) else pl.Series("raw", list(ids), dtype=pl.Utf8)
    df = pl.DataFrame({"raw": s.cast(pl.Utf8)})
    norm, reason = rsid_check_expr("raw")
    df = df.with_columns(norm.alias("rsid"), reason.alias("reason"))
    detail = (pl.when(pl.col("reason") == "missing_rsid").then(pl.lit("no rsID given"))
              .when(pl.col("raw").str.contains(r"^\s*(chr)?[0-9XYMxym]+[:_][0-9]+"))
              .then(pl.format("{} looks like a position, not an rsID", pl.col("raw")))
              .when(pl.col("reason").is_not_null())
              .then(pl.format("{} is not 'rs' followed by digits", pl.col("raw")))
              .otherwise(None))
    return df.with_columns(detail.alias("detail"))


def __getattr__(name):  # convenience re-exports without import cycles
    lazy = {
        "MyVariantClient": "agval.alleles.myvariant", "parse_query_response": "agval.alleles.myvariant",
        "MyVariantError": "agval.alleles.myvariant",
        "VcfSource": "agval.alleles.vcf", "LookupCache": "agval.alleles.cache",
        "lookup_rsids": "agval.alleles.cache", "LookupResult": "agval.alleles.cache",
        "classify_lookup": "agval.alleles.harmonize", "harmonize": "agval.alleles.harmonize",
        "HarmonizeResult": "agval.alleles.harmonize",
    }
    if name in lazy:
        import importlib

        return getattr(importlib.import_module(lazy[name]), name)
    raise AttributeError(name)
