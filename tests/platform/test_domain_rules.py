"""Parity tests: each domain rule has one home, and its scalar and vectorised forms agree."""

from __future__ import annotations

import numpy as np
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


# ------------------------------------------------------------------ gene-id versions

_GENES = {"ENSG00000141510.16": "ENSG00000141510", "ENSG00000141510": "ENSG00000141510",
          "ENSG00000002586.20_PAR_Y": "ENSG00000002586_PAR_Y", "ENSG00000002586_PAR_Y": "ENSG00000002586_PAR_Y",
          "ENSMUSG00000059552.7": "ENSMUSG00000059552", " ENSG00000141510.16 ": "ENSG00000141510",
          "TP53": "TP53", "RP11-1.2": "RP11-1.2"}


def test_gene_version_rule_keeps_par_y_in_every_path():
    from agval.genes import strip_gene_version, strip_gene_version_expr
    from agval.io._common import strip_gene_version_expr as io_expr
    from agval.scoring.tracks import strip_gene_version as tracks_expr

    assert [strip_gene_version(g) for g in _GENES] == list(_GENES.values())
    assert strip_gene_version(None) is None
    df = pl.DataFrame({"gene_id": list(_GENES) + [None]})
    want = list(_GENES.values()) + [None]
    assert df.select(strip_gene_version_expr(pl.col("gene_id")))["gene_id"].to_list() == want
    assert df.select(io_expr(pl.col("gene_id")))["gene_id"].to_list() == want
    assert df.select(tracks_expr("gene_id"))["gene_id"].to_list() == want


def test_no_other_gene_version_stripper_in_the_tree():
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[2]
    pat = re.compile(r"""gene\w*\W.{0,60}split\(["']\.["']\)|ENS\[A-Z\]\*G?\\d\+\)\\\.""")
    hits = [f"{p.relative_to(root)}:{i}" for d in ("agval", "flows", "tasks") for p in (root / d).rglob("*.py")
            if p.name != "genes.py" for i, line in enumerate(p.read_text().splitlines(), 1) if pat.search(line)]
    assert not hits, hits


# ------------------------------------------------------------------ p-values used as effects

def test_pvalue_guard_is_one_rule_with_one_threshold():
    import pytest

    from agval.alleles.guards import PVALUE_GUARD_MIN_DECADES, PVALUE_GUARD_MIN_ROWS, check_not_pvalues
    from agval.errors import GuardError
    from agval.io.qtl import check_slope_not_pvalues

    n, d = PVALUE_GUARD_MIN_ROWS, PVALUE_GUARD_MIN_DECADES
    just_in = pl.Series(np.geomspace(10 ** -d, 1.0, n))          # spans exactly the threshold
    just_out = pl.Series(np.geomspace(10 ** -(d - 0.1), 1.0, n))  # a tenth of a decade short
    too_few = pl.Series(np.geomspace(1e-30, 1.0, n - 1))
    for guard in (check_not_pvalues, check_slope_not_pvalues):
        with pytest.raises(GuardError, match="looks like p-values"):
            guard(just_in)
        guard(just_out)
        guard(too_few)
        guard(pl.Series([-1e-9, 1e-5, 0.5, 0.9]))                 # signed: effects
        guard(pl.Series(np.linspace(0.05, 0.95, 50)))            # all-positive betas (caQTL, P3)
    with pytest.raises(GuardError, match="GTEx v8"):
        check_slope_not_pvalues(just_in)


# ------------------------------------------------------------------ SDK lengths, permutation P

def test_sequence_lengths_come_from_the_sdk():
    from alphagenome.models import dna_client

    from agval.mpra.sequences import SUPPORTED_LENGTHS as mpra_lengths
    from agval.mpra.sequences import check_length
    from agval.scoring.sequences import SUPPORTED_LENGTHS as engine_lengths
    from agval.sdk import SUPPORTED_SEQUENCE_LENGTHS

    want = tuple(sorted(dna_client.SUPPORTED_SEQUENCE_LENGTHS.values()))
    assert SUPPORTED_SEQUENCE_LENGTHS == want and mpra_lengths == want and engine_lengths == want
    assert list(SUPPORTED_SEQUENCE_LENGTHS) == list(want) and 16_384 in engine_lengths and 1000 not in mpra_lengths
    assert check_length(want[0]) == want[0]


def test_permutation_plot_uses_the_one_permutation_p(tmp_path, monkeypatch):
    """The plot's P when none is given is stats.resampling.permutation_p (ties within 1e-10 count)."""
    import agval.plots.twas as pt
    from agval.stats.resampling import permutation_p

    null = np.array([0.1, 0.2, 0.3 - 1e-14, 0.3, 0.5])
    seen = {}
    real = pt.permutation_p
    monkeypatch.setattr(pt, "permutation_p", lambda *a, **k: seen.setdefault("p", real(*a, **k)))
    pt.twas_permutation_null(null, 0.3, tmp_path / "null.png")
    assert seen["p"] == permutation_p(0.3, null) == (1 + 3) / (5 + 1)


# ------------------------------------------------------------------ REF check and swap

def test_reference_genome_owns_the_ref_decision(tmp_path):
    from agval.genome import RefCheck, ReferenceGenome

    fa = tmp_path / "g.fa"
    fa.write_text(">chr1\nACGTACGTAC\n")
    g = ReferenceGenome(fa)
    assert g.check_ref("chr1", 2, "C", "T") == RefCheck("match", "C")
    assert g.check_ref("1", 2, "T", "C") == RefCheck("swap", "C")          # ALT is the genome's base
    assert g.check_ref("chr1", 2, "G", "T") == RefCheck("mismatch", "C")
    assert g.check_ref("chr1", 2, "CG", "AT") == RefCheck("match", "CG")   # MNV
    assert g.check_ref("chr1", 2, "AT", "CG") == RefCheck("swap", "CG")
    assert g.check_ref("chr1", 2, "G", "CG").status == "mismatch"          # an indel is never swapped
    assert g.check_ref("chr1", 2, "CG", "C").status == "match"
    assert g.check_ref("chr9", 2, "C", "T") == RefCheck("missing")


def test_both_harmonizers_use_the_one_ref_check():
    """Both routes decide per row through ``decide_alleles``, the one caller of ``check_ref``."""
    import inspect

    import agval.alleles.harmonize as ah
    import agval.qtl.harmonize as qh

    assert "check_ref(" in inspect.getsource(ah.decide_alleles)
    for fn in (ah.harmonize, qh.harmonize_coordinates):
        assert "decide_alleles(" in inspect.getsource(fn), fn.__name__
    for mod in (ah, qh):
        assert ".fetch(" not in inspect.getsource(mod), mod.__name__
    assert "check_ref(" not in inspect.getsource(qh)
