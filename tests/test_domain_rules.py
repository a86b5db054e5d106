"""Parity tests: each domain rule has one home, and its scalar and vectorised forms agree."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from agval.alleles.vcf import chrom_expr as vcf_chrom_expr
from agval.coords import CHROM_ALIASES, REFSEQ_CHROMS, _case_variants, chrom_expr, normalize_chrom
from agval.io._common import chrom_expr as io_chrom_expr
from agval.io._common import NA_STRINGS, chrom_expr_fast

# ------------------------------------------------------------------ chromosome names

_EXPECTED = {"1": "chr1", "chr1": "chr1", "CHR1": "chr1", "Chr22": "chr22", "x": "chrX", "chrx": "chrX",
             "Y": "chrY", "23": "chrX", "chr23": "chrX", "24": "chrY", "25": "chrX", "XY": "chrX",
             "26": "chrM", "MT": "chrM", "chrMT": "chrM", "m": "chrM", "Mt": "chrM",
             "NC_000001.11": "chr1", "NC_000017.11": "chr17", "NC_000023.11": "chrX", "NC_000024.10": "chrY",
             "NC_012920.1": "chrM", "NC_012920": "chrM", "NT_187361.1": "NT_187361.1",
             "NW_025791756.1": "NW_025791756.1", "NC_000025.1": "NC_000025.1",
             "chr1_KI270706v1_random": "chr1_KI270706v1_random", "chrUn_GL000195v1": "chrUn_GL000195v1"}


def _all_aliases() -> list[str]:
    names = list(_EXPECTED)
    for alias in CHROM_ALIASES:
        for pre in ("", "chr", "CHR", "Chr"):
            names += [pre + v for v in _case_variants(alias)]
    names += list(REFSEQ_CHROMS) + [a + ".7" for a in REFSEQ_CHROMS]
    names += [str(i) for i in range(1, 27)] + [f"chr{i}" for i in range(1, 27)]
    return names


def _vectorised(names: list[str]) -> dict[str, list]:
    df = pl.DataFrame({"c": names}, schema={"c": pl.Utf8})
    exprs = {"coords": chrom_expr(pl.col("c")), "coords_fast": chrom_expr(pl.col("c"), fast=True),
             "io": io_chrom_expr(pl.col("c")), "io_fast": chrom_expr_fast(pl.col("c")), "vcf": vcf_chrom_expr("c")}
    return {k: df.select(e.alias("out"))["out"].to_list() for k, e in exprs.items()}


def test_chrom_names_known_answers():
    for name, want in _EXPECTED.items():
        assert normalize_chrom(name) == want, name
    assert normalize_chrom(23) == "chrX" and normalize_chrom(1) == "chr1"
    got = _vectorised(list(_EXPECTED))
    for path, values in got.items():
        assert values == list(_EXPECTED.values()), path


def test_chrom_names_scalar_and_vectorised_agree_on_every_alias():
    names = _all_aliases()
    want = [normalize_chrom(n) for n in names]
    for path, values in _vectorised(names).items():
        bad = [(n, w, v) for n, w, v in zip(names, want, values) if w != v]
        assert not bad, (path, bad[:5])


def test_chrom_names_missing_stays_null():
    df = pl.DataFrame({"c": [None, "NA", " 7 "]}, schema={"c": pl.Utf8})
    assert df.select(io_chrom_expr(pl.col("c")).alias("o"))["o"].to_list() == [None, None, "chr7"]
    assert df.select(chrom_expr(pl.col("c"), fast=True).alias("o"))["o"].to_list()[0] is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="chrCHRxyXYmtMT0123456789_NCTW.", min_size=1, max_size=12), min_size=1,
                max_size=30))
def test_chrom_names_parity_on_random_names(names):
    names = [n for n in names if n not in NA_STRINGS]  # the loaders' path reads these as missing
    want = [normalize_chrom(n) for n in names]
    for path, values in _vectorised(names).items():
        assert values == want, path
