"""MPRA loaders and activity (STUDIES.md §3.1, P19, P20, P26)."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from agval.errors import InputError, MissingColumnError
from agval.io import (compute_activity, load_count_table, load_element_sequences, load_gse84888_counts,
                      parse_gse84888_name)
from tests.helpers import write_file as write


POOL6 = """\
name\ttags\tcounts.rna\tcounts.plasmid
PPREwt_129_chr5_51987228_51987244_-_AGTAGGGGAAAGAGTA_ap1_49_57_ap1\t148\t5699\t5567
PPREwt_129_chr5_51987228_51987244_-_AGTAGGGGAAAGAGTA\t160\t3547\t6727
PPREwt_129_nochrom_here\t10\t5\t5
PPREwt_7_chr9_100_116_+_ACGTACGTACGTACGT_err1_82_92_atf3\t3\t0\t40
"""
POOL7 = """\
name\ttags\tcounts.rna\tcounts.plasmid
MAC_chr13_46069370_46069386_+_TGAAGGTCAGAGTTTA\t1152\t21377\t43479
MAC_chr13_46069370_46069386_+_TGAAGGTCAGAGTTTA_ap2_ap2_2_1\t178\t4834\tNA
MAC_chr13_46069370_46069386_x_TGAAGGTCAGAGTTTA_lxr_vbp_4_1\t5\t1\t1
"""


def test_name_grammar():
    p = parse_gse84888_name("PPREwt_129_chr5_51987228_51987244_-_AGTAGGGGAAAGAGTA_ap1_49_57_ap1")
    assert p == {"prefix": "PPREwt_129", "chromosome": "chr5", "start": 51987228, "end": 51987244,
                 "strand": "-", "seq16": "AGTAGGGGAAAGAGTA", "modification": "ap1_49_57_ap1"}
    assert parse_gse84888_name("MAC_chr13_1_17_+_ACGT")["modification"] == "wt"
    assert parse_gse84888_name("MAC_chr13_1_17_+_ACGT")["prefix"] == "MAC"
    # the FIRST token starting with 'chr' anchors the grammar, even if a later one would parse
    assert parse_gse84888_name("chrome_x_chr1_1_17_+_ACGT") is None
    for bad in ("MAC_chr13_1_17_+", "MAC_chr13_a_17_+_ACGT", "MAC_chr13_1_17_*_ACGT", "MAC_chr13_1_17_+_AC-T", ""):
        assert parse_gse84888_name(bad) is None


def test_gse84888_small_files(tmp_path):
    p6 = write(tmp_path / "GSE84888_Pool6_MPRA.txt", POOL6, crlf=True)
    p7 = write(tmp_path / "GSE84888_Pool7_MPRA.txt.gz", POOL7, crlf=True, gz=True)
    df, drops = load_gse84888_counts(p6, p7)
    assert df["row_id"].to_list() == ["Pool6:1", "Pool6:2", "Pool6:4", "Pool7:1"]
    assert df["pool"].to_list() == ["Pool6", "Pool6", "Pool6", "Pool7"]
    r = df.row(0, named=True)
    assert r["locus_id"] == "chr5:51987228-51987244:-:AGTAGGGGAAAGAGTA" and r["modification"] == "ap1_49_57_ap1"
    assert (r["tags"], r["rna"], r["dna"]) == (148, 5699, 5567) and r["build"] == "mm9"
    assert df.row(1, named=True)["modification"] == "wt" and df.row(3, named=True)["prefix"] == "MAC"
    assert df.row(3, named=True)["dna"] == 43479  # CRLF did not leak into the last column
    f = drops.frame().sort("source_file", "source_row")
    assert f["reason"].to_list() == ["malformed_name", "missing_count", "malformed_name"]
    assert f["row_id"].to_list() == ["Pool6:3", "Pool7:2", "Pool7:3"]
    assert set(f["stage"]) == {"load"}


def test_gse84888_errors(tmp_path):
    with pytest.raises(MissingColumnError) as e:
        load_gse84888_counts(write(tmp_path / "Pool1.txt", "name\ttags\tcounts.rna\nx\t1\t2\n"))
    assert e.value.column == "counts.plasmid" and "Pool1.txt" in str(e.value)
    bad = POOL6.replace("\t160\t3547\t", "\t160\t35x47\t")
    with pytest.raises(InputError) as e:
        load_gse84888_counts(write(tmp_path / "Pool2.txt", bad))
    assert e.value.row == 2 and e.value.column == "counts.rna"
    with pytest.raises(InputError, match="negative"):
        load_gse84888_counts(write(tmp_path / "Pool3.txt", POOL6.replace("\t3\t0\t40", "\t3\t-1\t40")))
    p = write(tmp_path / "Pool6_copy.txt", POOL6)
    with pytest.raises(InputError, match="not unique"):
        load_gse84888_counts(p, p)
    df, _ = load_gse84888_counts(p, p, pools=["A", "B"])
    assert df.height == 6


def test_activity_values_and_filters(tmp_path):
    df, _ = load_gse84888_counts(write(tmp_path / "GSE84888_Pool6_MPRA.txt", POOL6))
    res = compute_activity(df)
    t = res.table
    assert t["log2_ratio"].to_list() == pytest.approx([math.log2(5700 / 5568), math.log2(3548 / 6728),
                                                      math.log2(1 / 41)])
    assert t["activity"][2] == 0.0 and res.dropped == {"min_dna": 0, "min_tags": 0}
    res = compute_activity(df, min_dna=100, min_tags=150)
    assert res.dropped == {"min_dna": 1, "min_tags": 1}
    assert res.table["row_id"].to_list() == ["Pool6:2"]
    f = res.drops.frame().sort("source_row")
    assert f["reason"].to_list() == ["min_tags", "min_dna"] and set(f["stage"]) == {"activity"}
    assert res.summary()["n_input"] == 3 and res.summary()["n_output"] == 1
    table, dropped, drops = compute_activity(df, pseudocount=0)
    assert dropped["zero_count"] == 1 and table.height == 2 and len(drops) == 1
    with pytest.raises(ValueError):
        compute_activity(df, pseudocount=-1)


def test_activity_aggregates():
    df = pl.DataFrame({"row_id": [f"x:{i}" for i in range(1, 6)], "element_id": ["a", "a", "a", "b", "b"],
                       "barcode": list("vwxyz"), "rna": [10, 20, 0, 5, 7], "dna": [10, 10, 3, 5, 1],
                       "tags": [1, 1, 1, 1, 1], "strand": ["+", "+", "+", "-", "-"]})
    s = compute_activity(df, aggregate="sum", keep=["strand"]).table
    assert s["element_id"].to_list() == ["a", "b"] and s["row_id"].to_list() == ["a", "b"]
    assert s["log2_ratio"].to_list() == pytest.approx([math.log2(31 / 24), math.log2(13 / 7)])
    assert s["n_rows"].to_list() == [3, 2] and s["tags"].to_list() == [3, 2] and s["strand"].to_list() == ["+", "-"]
    assert s["row_ids"].to_list()[1] == ["x:4", "x:5"]
    m = compute_activity(df, aggregate="mean").table
    per_row = [math.log2(11 / 11), math.log2(21 / 11), math.log2(1 / 4)]
    assert m["log2_ratio"][0] == pytest.approx(sum(per_row) / 3)
    md = compute_activity(df, aggregate="median", min_dna=2).table
    assert md["n_rows"].to_list() == [3, 1] and md["log2_ratio"][1] == pytest.approx(math.log2(6 / 6))
    with pytest.raises(InputError, match="not constant"):
        compute_activity(df.with_columns(pl.Series("strand", ["+", "-", "+", "-", "-"])), aggregate="sum",
                         keep=["strand"])
    with pytest.raises(InputError, match="tags"):
        compute_activity(df.drop("tags"), min_tags=2)


def test_generic_count_table(tmp_path):
    text = ("oligo,barcode,rna_rep1,rna_rep2,dna\n"
            "el1,AAAA,10,12,30\nel1,CCCC,5,NA,20\nel2,GGGG,0,1,8\n,TTTT,1,1,1\n")
    df, drops = load_count_table(write(tmp_path / "bc.csv", text), rna=["rna_rep1", "rna_rep2"], dataset="lib")
    assert df["row_id"].to_list() == ["lib:1", "lib:3"]
    assert df["rna"].to_list() == [22.0, 1.0] and df["tags"].to_list() == [1, 1]
    assert sorted(drops.frame()["reason"].to_list()) == ["missing_count", "missing_element"]
    res = compute_activity(df, aggregate="sum")
    assert res.table["element_id"].to_list() == ["el1", "el2"]
    per_el = write(tmp_path / "el.tsv", "element_id\tn_barcodes\trna\tdna\ne1\t12\t100\t50\n")
    df2, _ = load_count_table(per_el)
    assert df2["tags"].to_list() == [12] and df2["barcode"].to_list() == [None]
    with pytest.raises(MissingColumnError) as e:
        load_count_table(write(tmp_path / "x.tsv", "element_id\trna\ne\t1\n"))
    assert e.value.column == "dna"
    with pytest.raises(InputError) as e:
        load_count_table(write(tmp_path / "y.tsv", "element_id\trna\tdna\ne\t1\t-4\n"))
    assert e.value.row == 1 and e.value.column == "dna"


def test_element_sequences(tmp_path):
    fa = write(tmp_path / "oligos.fa", ">el1 wild type\nACGTAC\ngtn\n\n>el2\nTTTT\n>el3\n\n")
    df, drops = load_element_sequences(fa)
    assert df["element_id"].to_list() == ["el1", "el2"] and df["sequence"].to_list() == ["ACGTACGTN", "TTTT"]
    assert df["length"].to_list() == [9, 4] and df["n_ambiguous"].to_list() == [1, 0]
    assert df["fasta_line"].to_list() == [1, 5] and drops.frame()["reason"].to_list() == ["empty_sequence"]
    tab = write(tmp_path / "seqs.tsv", "name\tsequence\na\tACGT\nb\tacgg\n")
    df, _ = load_element_sequences(tab)
    assert df["sequence"].to_list() == ["ACGT", "ACGG"]
    with pytest.raises(InputError) as e:
        load_element_sequences(write(tmp_path / "bad.tsv", "name\tsequence\na\tACGT\nb\tACXG\n"))
    assert e.value.row == 2 and "X" in str(e.value)
    with pytest.raises(InputError, match="appears 2 times") as e:
        load_element_sequences(write(tmp_path / "dup.fa", ">a\nAC\n>b\nGG\n>a\nTT\n"))
    assert e.value.row == 1


@pytest.mark.realdata
def test_real_gse84888_counts(shared_data):
    d = shared_data / "mpra"
    df, drops = load_gse84888_counts(d / "GSE84888_Pool6_MPRA.txt", d / "GSE84888_Pool7_MPRA.txt")
    assert df.height == 6963 and len(drops) == 0
    assert df["row_id"].is_unique().all()
    by_pool = dict(df.group_by("pool").len().iter_rows())
    assert by_pool == {"Pool6": 3720, "Pool7": 3243}
    assert df["locus_id"].n_unique() == 18
    loci = dict(df.group_by("pool").agg(pl.col("locus_id").n_unique()).iter_rows())
    assert loci == {"Pool6": 15, "Pool7": 3}
    assert dict(df.group_by("strand").len().iter_rows()) == {"+": 3885, "-": 3078}
    assert (df["end"] - df["start"]).unique().to_list() == [16]
    zero = df.filter(pl.col("rna") == 0)
    assert zero.height == 180 and dict(zero.group_by("pool").len().iter_rows()) == {"Pool7": 178, "Pool6": 2}
    res = compute_activity(df, pseudocount=1)
    assert res.table.height == 6963
    assert res.table["log2_ratio"].mean() == pytest.approx(-1.075012, abs=1e-6)
    assert res.table["log2_ratio"].median() == pytest.approx(-1.0011223, abs=1e-6)
    assert res.table["log2_ratio"].std() == pytest.approx(1.739125, abs=1e-6)
    # V1 locus means (n = 18): mean -0.986
    loc = compute_activity(df, aggregate="mean", by="locus_id", keep=["pool", "strand"]).table
    assert loc.height == 18 and loc["log2_ratio"].mean() == pytest.approx(-0.986, abs=5e-4)
    assert loc["n_rows"].sum() == 6963
