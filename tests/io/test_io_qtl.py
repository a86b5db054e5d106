"""QTL loaders: real layouts as small hand-written files (STUDIES.md §1.1, §1.8)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from agval.errors import GuardError, InputError, MissingColumnError
from agval.io import (check_slope_not_pvalues, load_generic_qtl, load_gse86886_caqtl, load_gse86886_eqtl,
                      load_gse116193_hqtl, load_gtex_signif_pairs)
from agval.io._common import match_footnoted, read_text_table
from tests.helpers import write_file as write


# ----------------------------------------------------------------------------- caQTL

CAQTL = """\
"SNP","gene","beta","t-stat","p-value","FDR"
"chr12:9436083_rs61916194","chr12:9435883-9437556",0.512,7.1,1e-9,1e-6
"chr12:9436083_rs61916194","chr12:9440000-9441000",0.301,5.0,1e-6,1e-4
"chr1:1000_rs1","chr1:900-1500",NA,1,1,1
"garbage","chr1:900-1500",0.2,1,1,1
"chrX:5000_rs5","chrX:4000-6000",0.75,1,1,1
"""


def test_caqtl_layout_and_duplicates(tmp_path):
    df, drops = load_gse86886_caqtl(write(tmp_path / "ATAC-QTLs.csv", CAQTL))
    assert df.height == 3
    assert df["row_id"].to_list() == ["caQTL:1", "caQTL:2", "caQTL:5"]
    assert df["row_id"].is_unique().all()
    first = df.row(0, named=True)
    assert first["rsid"] == "rs61916194" and first["hg19_chrom"] == "chr12" and first["hg19_pos"] == 9436083
    assert first["peak_id"] == "chr12:9435883-9437556" and first["peak_start"] == 9435883
    assert first["peak_end"] == 9437556 and first["trait_id"] == first["peak_id"]
    assert first["beta"] == pytest.approx(0.512) and first["build"] == "hg19"
    assert first["effect_allele"] is None  # P3: the effect allele is not given
    # P9: one SNP, two peaks -> two rows
    assert df.filter(pl.col("rsid") == "rs61916194").height == 2
    assert df.row(2, named=True)["hg19_chrom"] == "chrX"
    f = drops.frame().sort("source_row")
    assert f["reason"].to_list() == ["missing_beta", "malformed_snp"]
    assert f["source_row"].to_list() == [3, 4]
    assert set(f["stage"]) == {"load"}


def test_caqtl_beta_fallback_and_errors(tmp_path):
    p = write(tmp_path / "a.csv", 'SNP,gene,Beta\nchr2:10_rs9,chr2:1-100,1.5\n')
    df, _ = load_gse86886_caqtl(p)
    assert df["beta"].to_list() == [1.5]
    with pytest.raises(MissingColumnError) as e:
        load_gse86886_caqtl(write(tmp_path / "b.csv", "SNP,peak,beta\nchr2:10_rs9,chr2:1-100,1.5\n"))
    assert e.value.column == "gene" and e.value.file.endswith("b.csv")
    with pytest.raises(MissingColumnError) as e:
        load_gse86886_caqtl(write(tmp_path / "c.csv", "SNP,gene,effect\nchr2:10_rs9,chr2:1-100,1.5\n"))
    assert e.value.column == "beta"
    bad = write(tmp_path / "d.csv", "SNP,gene,beta\nchr2:10_rs9,chr2:1-100,1.5\nchr2:11_rs8,chr2:1-100,high\n")
    with pytest.raises(InputError) as e:
        load_gse86886_caqtl(bad)
    assert e.value.row == 2 and e.value.column == "beta" and "d.csv" in str(e.value)


def test_eqtl_gene_symbol(tmp_path):
    df, _ = load_gse86886_eqtl(write(tmp_path / "eQTLs.csv", "SNP,gene,beta\nchr3:77_rs3,CD4,-0.4\n"))
    assert df["gene"].to_list() == ["CD4"] and df["row_id"].to_list() == ["eQTL:1"]
    assert "peak_id" not in df.columns


# ----------------------------------------------------------------------------- hQTL

HQTL = """\
epiQTL rsID,Chr,Bp (hg19),Ref Allelec,Alt Alleled,log2 (effect size),H3K27ac p-valueb,H3K4me1 p-valueb
rs100,1,1000,a,G,0.5,1e-5,2e-4
rs200,1,2000,C,T,-0.3,3e-6,.
rs300,2,3000,G,A,0.1,.,.
rs400,chr2,4000,T,C,0.2,.,5e-5
rs100,1,1000,A,G,0.7,.,1e-3
esv1,3,5000,A,T,0.2,1e-4,.
"""


def test_hqtl_footnote_headers_one_row_per_mark(tmp_path):
    df, drops = load_gse116193_hqtl(write(tmp_path / "Pelikan_et_al_hQTL_summary.csv", HQTL))
    assert df["row_id"].is_unique().all()
    assert df.filter(pl.col("source_row") == 1)["row_id"].to_list() == ["hQTL:1:H3K27ac", "hQTL:1:H3K4me1"]
    assert df.height == 2 + 1 + 1 + 1 + 1
    r1 = df.filter(pl.col("row_id") == "hQTL:1:H3K4me1").row(0, named=True)
    assert r1["ref"] == "A" and r1["alt"] == "G" and r1["hg19_chrom"] == "chr1" and r1["hg19_pos"] == 1000
    assert r1["marks"] == "H3K27ac,H3K4me1" and r1["mark_p"] == pytest.approx(2e-4)
    assert r1["p_H3K27ac"] == pytest.approx(1e-5) and r1["beta"] == pytest.approx(0.5)
    assert df.filter(pl.col("source_row") == 2)["marks"].to_list() == ["H3K27ac"]
    assert df.filter(pl.col("source_row") == 4)["marks"].to_list() == ["H3K4me1"]
    # P9: the duplicated rsID (rows 1 and 5) stays as separate rows
    assert sorted(df.filter(pl.col("rsid") == "rs100")["source_row"].unique()) == [1, 5]
    # a non-rs id is kept with rsid null
    assert df.filter(pl.col("source_row") == 6)["rsid"].to_list() == [None]
    f = drops.frame()
    assert f["reason"].to_list() == ["no_significant_mark"] and f["source_row"].to_list() == [3]


def test_hqtl_one_row_per_variant(tmp_path):
    df, drops = load_gse116193_hqtl(write(tmp_path / "h.csv", HQTL), one_row_per_mark=False)
    assert df.height == 5 and len(drops) == 1
    assert df["row_id"].to_list() == ["hQTL:1", "hQTL:2", "hQTL:4", "hQTL:5", "hQTL:6"]
    assert df["marks"].to_list() == ["H3K27ac,H3K4me1", "H3K27ac", "H3K4me1", "H3K4me1", "H3K27ac"]


def test_hqtl_errors(tmp_path):
    no_ref = HQTL.replace("Ref Allelec", "Reference")
    with pytest.raises(MissingColumnError) as e:
        load_gse116193_hqtl(write(tmp_path / "a.csv", no_ref))
    assert e.value.column == "Ref Allele" and "a.csv" in str(e.value)
    bad = HQTL.replace("rs200,1,2000,C,T,-0.3,3e-6,.", "rs200,1,2000,C,T,-0.3,3e-6,maybe")
    with pytest.raises(InputError) as e:
        load_gse116193_hqtl(write(tmp_path / "b.csv", bad))
    assert e.value.row == 2 and e.value.column == "H3K4me1 p-valueb"


def test_footnote_stripping_only_where_asked(tmp_path):
    assert match_footnoted(["Ref Allelec", "x"], "Ref Allele") == "Ref Allelec"
    assert match_footnoted(["Ref Allele", "Ref Allelec"], "Ref Allele") == "Ref Allele"
    assert match_footnoted(["Ref Allele frequency"], "Ref Allele") is None
    # the generic loader does not strip footnote letters: 'betab' is not 'beta'
    p = write(tmp_path / "g.tsv", "rsid\tbetab\nrs1\t0.3\n")
    with pytest.raises(MissingColumnError):
        load_generic_qtl(p, build="hg38")


# ----------------------------------------------------------------------------- GTEx

GTEX_HEADER = ("variant_id\tgene_id\ttss_distance\tma_samples\tma_count\tmaf\tpval_nominal\tslope\tslope_se\t"
               "pval_nominal_threshold\tmin_pval_nominal\tpval_beta\n")
GTEX_ROWS = [
    "chr1_64764_C_T_b38\tENSG00000227232.5\t35211\t75\t76\t0.05\t2.5e-10\t-0.45\t0.07\t1e-4\t2.5e-10\t1e-8",
    "chr1_64764_C_T_b38\tENSG00000268903.1\t-70000\t75\t76\t0.05\t3.1e-5\t0.21\t0.05\t1e-4\t3.1e-5\t1e-3",
    "chr2_100_GA_G_b38\tENSG00000000001.2\t10\t10\t10\t0.2\t8.6e-4\t0.33\t0.1\t1e-3\t8.6e-4\t1e-2",
    "chr1_99_C_T_b37\tENSG00000000002.1\t10\t10\t10\t0.2\t1e-3\t0.1\t0.1\t1e-3\t1e-3\t1e-2",
    "chrX_500_A_G_b38\tENSG00000000003.7\t10\t10\t10\t0.2\t1e-6\tNA\t0.1\t1e-3\t1e-6\t1e-2",
]


def test_gtex_reads_slope_by_name(tmp_path):
    p = write(tmp_path / "Whole_Blood.v8.signif_variant_gene_pairs.txt.gz", GTEX_HEADER + "\n".join(GTEX_ROWS) + "\n",
              gz=True)
    df, drops = load_gtex_signif_pairs(p, tissue="Whole_Blood")
    assert df["row_id"].to_list() == ["Whole_Blood:1", "Whole_Blood:2", "Whole_Blood:3"]
    assert df["beta"].to_list() == [-0.45, 0.21, 0.33]           # slope, not pval_nominal (P1)
    assert df["p"].to_list() == [2.5e-10, 3.1e-5, 8.6e-4]
    r = df.row(2, named=True)
    assert (r["chrom"], r["pos"], r["ref"], r["alt"]) == ("chr2", 100, "GA", "G")
    assert r["effect_allele"] == "G" and r["other_allele"] == "GA" and r["build"] == "hg38"
    assert df["gene_id"].to_list()[0] == "ENSG00000227232" and df["gene_id_versioned"][0] == "ENSG00000227232.5"
    assert df["tss_distance"].to_list() == [35211, -70000, 10] and df["tissue"].unique().to_list() == ["Whole_Blood"]
    assert sorted(drops.frame()["reason"].to_list()) == ["malformed_variant_id", "missing_slope"]


def test_gtex_column_order_does_not_matter(tmp_path):
    # same data, columns shuffled: a positional reader would take the wrong column (P1)
    rows = [r.split("\t") for r in GTEX_ROWS[:3]]
    cols = GTEX_HEADER.strip().split("\t")
    order = [7, 0, 6, 1, 8]
    text = "\t".join(cols[i] for i in order) + "\n" + "\n".join("\t".join(r[i] for i in order) for r in rows) + "\n"
    df, _ = load_gtex_signif_pairs(write(tmp_path / "x.txt", text))
    assert df["beta"].to_list() == [-0.45, 0.21, 0.33]


def test_gtex_guard_slope_is_pvalues(tmp_path):
    # a file whose 'slope' column holds p-values (the seed's fields[6] bug made permanent)
    lines = [f"chr1_{100 + i}_A_G_b38\tENSG0000000000{i}.1\t{p}\t{p}" for i, p in
             enumerate(["2.5e-151", "1e-40", "3e-12", "8.6e-4", "1e-6"])]
    p = write(tmp_path / "bad.txt", "variant_id\tgene_id\tslope\tpval_nominal\n" + "\n".join(lines) + "\n")
    with pytest.raises(GuardError, match="looks like p-values"):
        load_gtex_signif_pairs(p)
    # positive but narrow-range effects are fine
    check_slope_not_pvalues(pl.Series([0.2, 0.3, 0.5, 0.9]))
    with pytest.raises(GuardError):
        check_slope_not_pvalues(pl.Series([1e-12, 1e-5, 0.02, 0.5]))


def test_gtex_missing_slope(tmp_path):
    p = write(tmp_path / "m.txt", "variant_id\tgene_id\tpval_nominal\nchr1_1_A_G_b38\tENSG1.1\t0.01\n")
    with pytest.raises(MissingColumnError) as e:
        load_gtex_signif_pairs(p)
    assert e.value.column == "slope" and "m.txt" in str(e.value)


# ----------------------------------------------------------------------------- generic

def test_generic_qtl_rsid_and_coordinates(tmp_path):
    text = ("rsID\tCHR\tPOS\tREF\tALT\teffect_allele\tother_allele\tBeta\tSE\tP\tgene_id\tcell_type\n"
            "rs1\t1\t100\ta\tg\tG\tA\t0.3\t0.1\t0.003\tENSG1\tCD4\n"
            "rs2\t1\t200\tC\tT\tT\tC\t-0.2\t0.1\t0.05\tENSG2\tCD4\n"
            ".\t2\t300\tG\tA\tA\tG\tNA\t0.1\t0.5\tENSG3\tCD4\n"
            ".\t.\t.\tG\tA\tA\tG\t0.1\t0.1\t0.5\tENSG3\tCD4\n")
    df, drops = load_generic_qtl(write(tmp_path / "q.tsv", text, gz=True), build="GRCh38", dataset="demo")
    assert df["row_id"].to_list() == ["demo:1", "demo:2"]
    r = df.row(0, named=True)
    assert (r["rsid"], r["chrom"], r["pos"], r["ref"], r["alt"]) == ("rs1", "chr1", 100, "A", "G")
    assert r["effect_allele"] == "G" and r["trait_id"] == "ENSG1" and r["build"] == "hg38" and r["se"] == 0.1
    assert sorted(drops.frame()["reason"].to_list()) == ["missing_beta", "no_identifier"]


def test_generic_qtl_build_rules(tmp_path):
    text = "chrom,pos,beta,trait_id\n1,100,0.3,g1\n"
    with pytest.raises(InputError, match="build"):
        load_generic_qtl(write(tmp_path / "a.csv", text))
    df, _ = load_generic_qtl(write(tmp_path / "b.csv", "chrom,pos,beta,trait_id,build\n1,100,0.3,g1,b37\n"))
    assert df["build"].to_list() == ["hg19"]
    with pytest.raises(InputError) as e:
        load_generic_qtl(write(tmp_path / "c.csv", "chrom,pos,beta,build\n1,100,0.3,hg38\n1,5,0.1,hg99\n"))
    assert e.value.row == 2
    # rsID only: no build needed
    df, _ = load_generic_qtl(write(tmp_path / "d.csv", "rsid,beta\nrs5,0.1\n"))
    assert df["build"].to_list() == [None]
    with pytest.raises(MissingColumnError) as e:
        load_generic_qtl(write(tmp_path / "e.csv", "rsid,effect_size_x\nrs5,0.1\n"))
    assert e.value.column == "beta"
    with pytest.raises(MissingColumnError):
        load_generic_qtl(write(tmp_path / "f.csv", "pos,beta\n5,0.1\n"), build="hg38")


def test_generic_qtl_column_override_and_crlf(tmp_path):
    p = write(tmp_path / "o.csv", "id,eff,peak\nrs1,0.4,p1\nrs2,-0.1,p2\n", crlf=True)
    df, _ = load_generic_qtl(p, columns={"rsid": "id", "beta": "eff"})
    assert df["rsid"].to_list() == ["rs1", "rs2"] and df["trait_id"].to_list() == ["p1", "p2"]
    with pytest.raises(MissingColumnError):
        load_generic_qtl(p, columns={"beta": "effect"})


def test_read_text_table_sniffs_separator(tmp_path):
    assert read_text_table(write(tmp_path / "a.txt", "a;b\n1;2\n")).columns == ["a", "b"]
    assert read_text_table(write(tmp_path / "b.txt", "a  b   c\n1 2  3\n"))["c"].to_list() == ["3"]
    assert read_text_table(write(tmp_path / "c.txt", "\ufeff a ,b\n1,2\n")).columns == ["a", "b"]
    with pytest.raises(InputError, match="empty"):
        read_text_table(write(tmp_path / "d.txt", ""))
