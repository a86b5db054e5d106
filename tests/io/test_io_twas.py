"""TWAS-study loaders: GWAS (lazy), SuSiE, FUSION .dat, tissue map (STUDIES.md §2.1, §2.3)."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import polars as pl
import pytest

from agval.errors import InputError, MissingColumnError
from agval.io import (DEFAULT_TISSUE_MAP, UnknownTissueError, load_fusion_dat, load_gwas_sumstats, load_susie,
                      load_tissue_map, scan_gwas_sumstats)
from tests.helpers import write_file as write


# ----------------------------------------------------------------------------- GWAS

SSF = """\
chromosome\tbase_pair_location\teffect_allele\tother_allele\tbeta\tstandard_error\teffect_allele_frequency\tp_value\tvariant_id\trsid\tn
1\t1000\ta\tg\t0.2\t0.05\t0.3\t6e-5\t1_1000_G_A\trs1\t1030836
1\t2000\tC\tT\t-0.1\t0.02\t0.1\t5e-7\t1_2000_T_C\trs2\t1030836
23\t3000\tG\tA\t0.05\tNA\t0.5\t0.3\tX_3000_A_G\trs3\t1030836
2\t4000\t\tA\t0.05\t0.01\t0.5\t0.3\t2_4000_A_N\trs4\t1030836
NA\tNA\tT\tC\t0.4\t0.1\t0.5\t1e-4\t#NA\trs5\t1030836
"""


def test_gwas_ssf_gzip(tmp_path):
    p = write(tmp_path / "GCST006414.h.tsv.gz", SSF, gz=True)
    df, drops = load_gwas_sumstats(p, build="GRCh37", dataset="af")
    assert df["row_id"].to_list() == ["af:1", "af:2", "af:5"]
    r = df.row(0, named=True)
    assert (r["rsid"], r["chrom"], r["pos"], r["effect_allele"], r["other_allele"]) == ("rs1", "chr1", 1000, "A", "G")
    assert r["z"] == pytest.approx(0.2 / 0.05) and r["p"] == 6e-5 and r["n"] == 1030836 and r["eaf"] == 0.3
    assert r["build"] == "hg19" and r["source_row"] == 1
    # an rsID without coordinates is still usable (lookup by rsID)
    assert df.row(2, named=True)["chrom"] is None and df.row(2, named=True)["rsid"] == "rs5"
    f = drops.frame().sort("source_row")
    assert f["reason"].to_list() == ["missing_z", "missing_allele"] and f["source_row"].to_list() == [3, 4]
    assert set(f["stage"]) == {"load"}


def test_gwas_common_layout_with_z(tmp_path):
    text = ("SNP CHR BP A1 A2 Z P N\n".replace(" ", "\t")
            + "rs10\t23\t500\tA\tG\t-3.1\t0.002\t5000\n"
            + "1:600:A:G\tX\t600\tA\tG\t2.0\t0.05\t5000\n")
    df, drops = load_gwas_sumstats(write(tmp_path / "g.txt", text), build="hg38")
    assert df["z"].to_list() == [-3.1, 2.0] and df["beta"].to_list() == [None, None]
    assert df["chrom"].to_list() == ["chrX", "chrX"]
    assert df["rsid"].to_list() == ["rs10", None] and df["variant_id"].to_list() == ["rs10", "1:600:A:G"]
    assert len(drops) == 0


def test_gwas_odds_ratio_and_log10p(tmp_path):
    text = "rsid\tchr\tpos\tea\tnea\todds_ratio\tse\tneg_log_10_p_value\nrs1\t1\t5\tA\tG\t2.0\t0.1\t3\n"
    df, _ = load_gwas_sumstats(write(tmp_path / "o.tsv", text), build="hg38")
    assert df["beta"][0] == pytest.approx(math.log(2.0)) and df["z"][0] == pytest.approx(math.log(2.0) / 0.1)
    assert df["p"][0] == pytest.approx(1e-3)


def test_gwas_needs_z_or_beta_and_se(tmp_path):
    text = "rsid\tchr\tpos\tA1\tA2\tbeta\tp\nrs1\t1\t5\tA\tG\t0.1\t0.01\n"
    with pytest.raises(InputError, match="z-score column") as e:
        load_gwas_sumstats(write(tmp_path / "noz.tsv", text), build="hg19")
    assert "noz.tsv" in str(e.value)
    with pytest.raises(InputError):
        scan_gwas_sumstats(tmp_path / "noz.tsv", build="hg19")  # refused before any scan
    with pytest.raises(MissingColumnError) as e:
        load_gwas_sumstats(write(tmp_path / "noa.tsv", "rsid\tA1\tz\nrs1\tA\t1.0\n"), build="hg19")
    assert e.value.column == "other_allele"


def test_gwas_is_lazy_and_names_bad_rows(tmp_path):
    text = SSF.splitlines()[0] + "\n" + "\n".join(SSF.splitlines()[1:3]) + "\n1\t5000\tA\tG\toops\t0.1\t0.5\t0.2\tv\trs9\t10\n"
    p = write(tmp_path / "bad.tsv", text)
    lf = scan_gwas_sumstats(p, build="hg19")          # nothing is parsed yet
    assert isinstance(lf, pl.LazyFrame)
    out = lf.filter(pl.col("drop_reason").is_null()).collect(engine="streaming")
    assert out["rsid"].to_list() == ["rs1", "rs2"]
    with pytest.raises(InputError) as e:
        load_gwas_sumstats(p, build="hg19")
    assert e.value.row == 3 and e.value.column == "beta" and "bad.tsv" in str(e.value)
    df, drops = load_gwas_sumstats(p, build="hg19", strict=False)
    assert df.height == 2 and drops.frame()["reason"].to_list() == ["unparseable"]


def test_gwas_rsid_filter_while_streaming(tmp_path):
    lines = ["rsid\tchromosome\tbase_pair_location\teffect_allele\tother_allele\tz"]
    lines += [f"rs{i}\t1\t{i}\tA\tG\t{(i % 7) - 3}" for i in range(1, 5001)]
    p = write(tmp_path / "big.tsv.gz", "\n".join(lines) + "\n", gz=True)
    df, drops = load_gwas_sumstats(p, build="hg38", rsids=["rs10", "rs4999", "rs99999"])
    assert df["rsid"].to_list() == ["rs10", "rs4999"] and df["source_row"].to_list() == [10, 4999]
    assert df["z"].to_list() == [0.0, (4999 % 7) - 3.0]
    plan = scan_gwas_sumstats(p, build="hg38").select("rsid", "z").explain(engine="streaming")
    assert "csv" in plan.lower() or "scan" in plan.lower()


def test_gwas_column_override(tmp_path):
    # SAIGE codes Allele2 as the effect allele: the caller says so explicitly
    text = "MarkerID\tCHR\tPOS\tAllele1\tAllele2\tBETA\tSE\nrs1\t1\t5\tA\tG\t0.1\t0.05\n"
    df, _ = load_gwas_sumstats(write(tmp_path / "saige.txt", text), build="hg38",
                               columns={"rsid": "MarkerID", "effect_allele": "Allele2", "other_allele": "Allele1"})
    assert (df["rsid"][0], df["effect_allele"][0], df["other_allele"][0]) == ("rs1", "G", "A")


# ----------------------------------------------------------------------------- SuSiE

SUSIE = """\
rsid\tpip\tcs\tcs_size
rs1\t0.91\t1\t3
rs2\t0.05\t1\t3
rs3\t0.004\t-1\t
rs4\t0.02\tNA\tNA
"""


def test_susie_per_gene_tissue(tmp_path):
    p = write(tmp_path / "ENSG00000213903.susie.tsv", SUSIE)
    df, drops = load_susie(p, gene_id="ENSG00000213903.8", tissue="Heart_Atrial_Appendage", dataset="susie_PITX2")
    assert df["row_id"].to_list() == [f"susie_PITX2:{i}" for i in range(1, 5)]
    assert df["cs"].to_list() == [1, 1, -1, -1] and df["in_cs"].to_list() == [True, True, False, False]
    assert df["cs_size"].to_list() == [3, 3, None, None]
    assert df["gene_id"].unique().to_list() == ["ENSG00000213903"]
    assert df["pip"].to_list() == [0.91, 0.05, 0.004, 0.02] and len(drops) == 0


def test_susie_pip_out_of_range_names_row(tmp_path):
    bad = SUSIE.replace("rs3\t0.004", "rs3\t1.7")
    with pytest.raises(InputError) as e:
        load_susie(write(tmp_path / "s.tsv", bad), gene_id="G", tissue="T")
    assert e.value.row == 3 and e.value.column == "pip" and "outside [0, 1]" in str(e.value)
    with pytest.raises(InputError) as e:
        load_susie(write(tmp_path / "n.tsv", SUSIE.replace("rs2\t0.05", "rs2\t-0.2")), gene_id="G", tissue="T")
    assert e.value.row == 2
    with pytest.raises(InputError, match="missing") as e:
        load_susie(write(tmp_path / "m.tsv", SUSIE.replace("rs2\t0.05", "rs2\tNA")), gene_id="G", tissue="T")
    assert e.value.row == 2


def test_susie_columns_and_missing(tmp_path):
    text = "gene_id,tissue,SNP,PIP,CS\nENSG1.2,Whole_Blood,rs1,0.3,0\nENSG2,Prostate,rs2,0.9,2\n"
    df, _ = load_susie(write(tmp_path / "all.csv", text))
    assert df["gene_id"].to_list() == ["ENSG1", "ENSG2"] and df["tissue"].to_list() == ["Whole_Blood", "Prostate"]
    with pytest.raises(MissingColumnError) as e:
        load_susie(write(tmp_path / "x.tsv", "rsid\tcs\nrs1\t1\n"), gene_id="G", tissue="T")
    assert e.value.column == "pip"
    with pytest.raises(MissingColumnError) as e:
        load_susie(write(tmp_path / "y.tsv", SUSIE), tissue="T")
    assert e.value.column == "gene_id"


# ----------------------------------------------------------------------------- FUSION

FUSION_HEADER = ("FILE\tID\tCHR\tP0\tP1\tHSQ\tBEST.GWAS.ID\tBEST.GWAS.Z\tEQTL.ID\tEQTL.R2\tEQTL.Z\tEQTL.GWAS.Z\t"
                 "NSNP\tNWGT\tMODEL\tMODELCV.R2\tMODELCV.PV\tTWAS.Z\tTWAS.P")
FUSION_ROWS = [
    "WEIGHTS/Heart_Atrial_Appendage/Heart_Atrial_Appendage.ENSG00000164093.15.wgt.RDat\tENSG00000164093.15\t4\t"
    "111538580\t111563279\t0.21\trs2200733\t-25.3\trs1906599\t0.18\t-6.2\t-21.9\t512\t34\tenet\t0.15\t2e-8\t"
    "-8.41\t4.1e-17",
    "WEIGHTS/Heart_Atrial_Appendage/Heart_Atrial_Appendage.TBX5.wgt.RDat\tTBX5\t12\t114353911\t114408708\t0.1\t"
    "rs883079\t9.1\trs7312625\t0.05\t4.2\t7.7\t300\t1\ttop1\t0.04\t1e-3\t5.2\t2e-7",
    "WEIGHTS/x/x.ENSG00000000001.1.wgt.RDat\tENSG00000000001.1\t1\t1\t2\t0.1\trs1\t1\trs1\t0.1\t1\t1\t10\t1\t"
    "lasso\t0.1\t0.1\tNA\tNA",
]


def test_fusion_dat(tmp_path):
    text = FUSION_HEADER + "\n" + FUSION_ROWS[0] + "\n" + FUSION_HEADER + "\n" + "\n".join(FUSION_ROWS[1:]) + "\n"
    df, drops = load_fusion_dat(write(tmp_path / "AF.Heart_Atrial_Appendage.dat", text),
                                tissue="Heart_Atrial_Appendage")
    assert df.height == 1
    r = df.row(0, named=True)
    assert r["gene_id"] == "ENSG00000164093" and r["tissue"] == "Heart_Atrial_Appendage"
    assert r["chrom"] == "chr4" and r["p0"] == 111538580 and r["twas_z"] == -8.41 and r["twas_p"] == 4.1e-17
    assert r["best_gwas_id"] == "rs2200733" and r["nwgt"] == 34 and r["model"] == "enet"
    assert r["row_id"] == "AF.Heart_Atrial_Appendage:1"
    assert sorted(drops.frame()["reason"].to_list()) == ["missing_twas", "no_gene_id", "repeated_header"]


def test_fusion_gene_column_and_errors(tmp_path):
    text = FUSION_HEADER + "\ttissue\tgene_id\n" + FUSION_ROWS[1] + "\tProstate\tENSG00000089225.20\n"
    df, _ = load_fusion_dat(write(tmp_path / "a.dat", text))
    assert df["gene_id"].to_list() == ["ENSG00000089225"] and df["tissue"].to_list() == ["Prostate"]
    with pytest.raises(MissingColumnError) as e:
        load_fusion_dat(write(tmp_path / "b.dat", FUSION_HEADER.replace("\tTWAS.Z", "") + "\n"), tissue="T")
    assert e.value.column == "TWAS.Z" and "b.dat" in str(e.value)
    with pytest.raises(MissingColumnError) as e:
        load_fusion_dat(write(tmp_path / "c.dat", FUSION_HEADER + "\n" + FUSION_ROWS[1] + "\n"), tissue="T")
    assert e.value.column == "gene_id"
    with pytest.raises(MissingColumnError) as e:
        load_fusion_dat(write(tmp_path / "d.dat", FUSION_HEADER + "\n" + FUSION_ROWS[0] + "\n"))
    assert e.value.column == "tissue"
    bad = FUSION_ROWS[0].replace("\t-8.41\t", "\tminus8\t")
    with pytest.raises(InputError) as e:
        load_fusion_dat(write(tmp_path / "e.dat", FUSION_HEADER + "\n" + FUSION_ROWS[0] + "\n" + bad + "\n"),
                        tissue="T")
    assert e.value.row == 2 and e.value.column == "TWAS.Z"


# ----------------------------------------------------------------------------- tissue map

def test_tissue_map_defaults_and_unknown():
    tm = load_tissue_map()
    assert tm.terms("Heart_Atrial_Appendage", "DNASE") == ("UBERON:0006631",)
    assert tm.terms("Prostate", "ATAC") == () and tm.terms("Whole_Blood", "rna") == ("UBERON:0013756",)
    assert set(DEFAULT_TISSUE_MAP) <= set(tm.tissues)
    with pytest.raises(UnknownTissueError) as e:
        load_tissue_map(tissues=["Prostate", "Heart_Atrium"])
    msg = str(e.value)
    assert "Heart_Atrium" in msg and "Heart_Left_Ventricle" in msg and "Whole_Blood" in msg
    with pytest.raises(UnknownTissueError):
        tm.terms("Liver", "DNASE")
    fr = tm.to_frame()
    assert fr.columns == ["tissue", "assay", "ontology_curie"]
    assert fr.filter(pl.col("tissue") == "Heart_Atrial_Appendage").height == 1 + 1 + 2 + 2


def test_tissue_map_overrides(tmp_path):
    toml = write(tmp_path / "map.toml", '[Whole_Blood]\nDNASE = ["CL:0000624", "CL:0000236"]\n'
                 '[Liver]\nRNA_SEQ = ["UBERON:0002107"]\nDNASE = ["UBERON:0002107"]\n')
    tm = load_tissue_map(toml, tissues=["Liver", "Whole_Blood"])
    assert tm.terms("Whole_Blood", "DNASE") == ("CL:0000624", "CL:0000236")
    assert tm.terms("Whole_Blood", "CAGE") == ("UBERON:0000178",)     # untouched default
    assert tm.terms("Liver", "ATAC") == () and "Liver" in tm.overridden
    long = write(tmp_path / "map.csv", "tissue,assay,ontology_curie\nProstate,ATAC,UBERON:0002367\n")
    assert load_tissue_map(long).terms("Prostate", "ATAC") == ("UBERON:0002367",)
    wide = write(tmp_path / "wide.tsv", "tissue\tRNA_SEQ\tDNASE\tATAC\tCAGE\nLung\tUBERON:0008952\t"
                 "UBERON:0002048;UBERON:0008952\t\tUBERON:0002048\n")
    tm = load_tissue_map(wide, replace=True)
    assert tm.tissues == ["Lung"] and tm.terms("Lung", "DNASE") == ("UBERON:0002048", "UBERON:0008952")
    assert tm.to_dict()["Lung"]["ATAC"] == []
    with pytest.raises(InputError, match="unknown assay"):
        load_tissue_map(write(tmp_path / "bad.toml", '[Lung]\nCHIP = ["x"]\n'))
