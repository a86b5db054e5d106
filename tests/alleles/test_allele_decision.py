"""The per-row allele decision (``decide_alleles``) and its parity across both routes.

The lookup route (rsIDs -> dbSNP records, :func:`agval.alleles.harmonize.harmonize`) and
the coordinates route (the table's own hg38 alleles,
:func:`agval.qtl.harmonize.harmonize_coordinates`) both end in ``decide_alleles``; on the
same planted variants they must give the same decision, sign, final alleles and drop
reason.
"""

from __future__ import annotations

import polars as pl
import pytest

from agval.alleles import LOOKUP_COLUMNS
from agval.alleles.harmonize import decide_alleles, harmonize
from agval.coords import complement
from agval.drops import DropLog
from agval.genome import ReferenceGenome
from agval.qtl.harmonize import harmonize_coordinates
from agval.qtl.study import QTLStudy

#          1         2         3
# 123456789012345678901234567890
GENOME = "ACGTACGTAAGGCCTTACGTACGTACGTAC"


@pytest.fixture(scope="module")
def fasta(tmp_path_factory):
    p = tmp_path_factory.mktemp("decide") / "g.fa"
    p.write_text(">chr1\n" + GENOME + "\n")
    return p


def test_decide_alleles_planted_codes_and_signs(fasta):
    g = ReferenceGenome(fasta)
    assert [GENOME[p - 1] for p in (1, 2, 3, 4, 9)] == ["A", "C", "G", "T", "A"]
    rows = pl.DataFrame(
        [  # chrom, pos, ref, alt, effect_is, strand, palindromic_af -> decision, sign, ref, alt, reason
            ("chr1", 1, "A", "G", "alt", False, False),   # match, effect = ALT
            ("chr1", 1, "A", "G", "ref", False, False),   # match, effect = REF: swap
            ("chr1", 2, "C", "T", "alt", True, False),    # matched on the other strand: flip
            ("chr1", 2, "C", "T", "ref", True, False),    # flip + swap
            ("chr1", 1, "G", "A", "alt", False, False),   # REF/ALT reversed vs the FASTA: ref_fix, sign flips
            ("chr1", 1, "G", "A", "ref", True, False),    # flip_swap then ref_fix: + again
            ("chr1", 4, "T", "A", "ref", False, True),    # palindromic A/T oriented by allele frequency
            ("chr1", 3, "C", "T", "alt", False, False),   # FASTA has G: REF mismatch
            ("chr1", 9, "A", "N", "alt", False, False),   # not ACGT
            ("chr2", 1, "A", "G", "alt", False, False),   # chromosome not in the FASTA
            ("chr1", 1, "A", "G", None, False, False),    # effect allele matched neither
            ("chr1", 3, "C", "A", None, False, False),    # ... reported before the REF mismatch
        ],
        schema={"chrom": pl.Utf8, "pos": pl.Int64, "ref": pl.Utf8, "alt": pl.Utf8, "effect_is": pl.Utf8,
                "strand": pl.Boolean, "palindromic_af": pl.Boolean}, orient="row")
    got = decide_alleles(rows, g, convention="column:ea").select("decision", "sign", "ref", "alt", "reason")
    want = [("alt", 1.0, "A", "G", None), ("swap", -1.0, "A", "G", None), ("flip", 1.0, "C", "T", None),
            ("flip_swap", -1.0, "C", "T", None), ("alt|ref_fix", -1.0, "A", "G", None),
            ("flip_swap|ref_fix", 1.0, "A", "G", None), ("palindromic_af_swap", -1.0, "T", "A", None),
            (None, None, "C", "T", "ref_mismatch"), (None, None, "A", "N", "invalid_alleles"),
            (None, None, "A", "G", "chrom_not_in_reference"), (None, None, "A", "G", "effect_allele_mismatch"),
            (None, None, "C", "A", "effect_allele_mismatch")]
    assert got.rows() == want
    # declared conventions ignore effect_is; a strand match is marked, ref_fix flips the sign
    for conv, sign in (("alt", 1.0), ("ref", -1.0), ("unknown", 1.0)):
        d = decide_alleles(rows.head(6), g, convention=conv)
        word = "unknown" if conv == "unknown" else f"declared_{conv}"
        assert d["decision"].to_list() == [word, word, word + "|flip", word + "|flip", word + "|ref_fix",
                                           word + "|flip|ref_fix"]
        flipped = 1.0 if conv == "unknown" else -sign
        assert d["sign"].to_list() == [sign] * 4 + [flipped] * 2
    empty = decide_alleles(rows.clear(), g, convention="alt")
    assert empty.height == 0 and {"decision", "sign", "reason", "ref_fixed"} <= set(empty.columns)


# the same variants, once as a coordinates table and once as rsIDs with dbSNP records
#        rsid, pos, record ref>alt, study effect, study other
PLANTED = [("rs1", 1, "A", "G", "G", "A"),     # match, effect ALT
           ("rs2", 2, "C", "T", "C", "T"),     # match, effect REF (swap)
           ("rs3", 5, "C", "A", "C", "A"),     # FASTA has A: ref_fix (effect ALT after the fix)
           ("rs4", 6, "A", "C", "C", "A"),     # FASTA has C: ref_fix, effect REF after the fix
           ("rs5", 3, "C", "T", "T", "C"),     # FASTA has G: REF mismatch
           ("rs6", 7, "G", "N", "N", "G"),     # invalid alleles
           ]


def _tables(chrom="chr1"):
    coords = pl.DataFrame([{"row_id": f"r{i}", "chrom": chrom, "pos": p, "ref": r, "alt": a, "ea": e, "oa": o,
                            "beta": 0.5 + i} for i, (_, p, r, a, e, o) in enumerate(PLANTED)])
    study = pl.DataFrame([{"row_id": f"r{i}", "rsid": q, "ea": e, "oa": o, "beta": 0.5 + i}
                          for i, (q, _, _, _, e, o) in enumerate(PLANTED)])
    lookup = pl.DataFrame([{"query": q, "rsid": q, "chrom": chrom, "pos": p, "ref": r, "alt": a, "af": None,
                            "source": "t", "source_version": "1", "assembly": "hg38", "hgvs_id": q, "status": "ok"}
                           for q, p, r, a, _, _ in PLANTED], schema=LOOKUP_COLUMNS)
    return coords, study, lookup


def _outcome(table: pl.DataFrame, drops: DropLog) -> dict[str, tuple]:
    kept = {r["row_id"]: (r["harmonization"], r["beta_alt"], r["ref"], r["alt"], r["variant_key"])
            for r in table.iter_rows(named=True)}
    dropped = {r["row_id"]: ("drop", r["reason"]) for r in drops.frame().iter_rows(named=True)}
    assert not kept.keys() & dropped.keys()
    return kept | dropped


@pytest.mark.parametrize("conv", ["column:ea", "alt", "ref", "unknown"])
def test_lookup_and_coordinates_routes_decide_alike(fasta, conv):
    coords, study, lookup = _tables()
    d_coord, d_look = DropLog(), DropLog()
    qs = QTLStudy(name="x", kind="generic", table="t.csv", biosample="CL:1", effect_allele=conv, build="hg38")
    by_coord = _outcome(harmonize_coordinates(qs, coords, fasta, drops=d_coord).table, d_coord)
    kw = {"other_allele_col": "oa"} if conv == "column:ea" else {"allele_cols": ("ea", "oa")}
    by_look = _outcome(harmonize(study, lookup, fasta, convention=conv, drops=d_look, guards=False, **kw).table,
                       d_look)
    assert by_coord == by_look
    first = "alt" if conv == "column:ea" else ("unknown" if conv == "unknown" else f"declared_{conv}")
    assert by_coord["r0"][0] == first and by_coord["r2"][0].endswith("|ref_fix")
    assert by_coord["r0"][2:4] == ("A", "G") and by_coord["r2"][2:4] == ("A", "C")  # alleles fixed to the FASTA
    assert by_coord["r4"] == ("drop", "ref_mismatch") and by_coord["r5"] == ("drop", "invalid_alleles")
    if conv == "column:ea":  # beta oriented to the final ALT
        assert [by_coord[f"r{i}"][1] for i in range(4)] == [0.5, -1.5, 2.5, -3.5]


def test_strand_flips_keep_the_coordinates_routes_sign(fasta):
    """Study alleles on the other strand (lookup route only) end on the same variant with the
    same oriented beta as the + strand alleles; only the code says ``flip``."""
    coords, study, lookup = _tables()
    d1, d2 = DropLog(), DropLog()
    plus = _outcome(harmonize(study, lookup, fasta, convention="column:ea", other_allele_col="oa", drops=d1,
                              guards=False).table, d1)
    minus_study = study.with_columns(pl.col("ea").map_elements(complement, return_dtype=pl.Utf8),
                                     pl.col("oa").map_elements(complement, return_dtype=pl.Utf8))
    minus = _outcome(harmonize(minus_study, lookup, fasta, convention="column:ea", other_allele_col="oa",
                               drops=d2, guards=False).table, d2)
    rename = {"alt": "flip", "swap": "flip_swap"}
    for rid in ("r0", "r1", "r2", "r3"):
        code, *rest = plus[rid]
        base, _, fix = code.partition("|")
        assert minus[rid] == (rename[base] + ("|" + fix if fix else ""), *rest)


def test_palindromic_sites_differ_by_route_as_documented(fasta):
    """A/T at a site: the lookup route cannot tell the strand of the study's alleles (dropped
    as ``palindromic``); the coordinates route's alleles are the hg38 + strand (kept)."""
    assert GENOME[3] == "T"
    coords = pl.DataFrame([{"row_id": "p", "chrom": "chr1", "pos": 4, "ref": "T", "alt": "A", "ea": "A",
                            "oa": "T", "beta": 1.0}])
    lookup = pl.DataFrame([{"query": "rs9", "rsid": "rs9", "chrom": "chr1", "pos": 4, "ref": "T", "alt": "A",
                            "af": None, "source": "t", "source_version": "1", "assembly": "hg38", "hgvs_id": "x",
                            "status": "ok"}], schema=LOOKUP_COLUMNS)
    study = pl.DataFrame([{"row_id": "p", "rsid": "rs9", "ea": "A", "oa": "T", "beta": 1.0}])
    d1, d2 = DropLog(), DropLog()
    qs = QTLStudy(name="x", kind="generic", table="t.csv", biosample="CL:1", effect_allele="column:ea", build="hg38")
    assert _outcome(harmonize_coordinates(qs, coords, fasta, drops=d1).table, d1) == {
        "p": ("alt", 1.0, "T", "A", "chr1:4:T>A")}
    assert _outcome(harmonize(study, lookup, fasta, convention="column:ea", other_allele_col="oa", drops=d2,
                              guards=False).table, d2) == {"p": ("drop", "palindromic")}
