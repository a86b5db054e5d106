"""The TWAS pipeline's plain functions (agval.twas): inputs, harmonization, triplets, scores.

Malformed inputs give clear errors or counted drops: a GWAS with neither z nor beta/se,
alleles matching neither REF nor ALT, a tissue missing from the map, SuSiE PIPs outside
[0, 1]. The allele source is the synthetic world's dbSNP VCF (SIMULATED).
"""

from __future__ import annotations


import polars as pl
import pytest

from agval.alleles.cache import lookup_rsids
from agval.alleles.vcf import VcfSource
from agval.coords import complement, is_palindromic
from agval.drops import DropLog
from agval.errors import InputError, MissingColumnError
from agval.io.twas import UnknownTissueError, load_tissue_map
from agval.twas import gwas, inputs, triplets
from tests.helpers import write_rows as _write

GWAS_HEADER = ["chromosome", "base_pair_location", "effect_allele", "other_allele", "beta", "standard_error",
               "effect_allele_frequency", "p_value", "rsid", "n"]


@pytest.fixture(scope="module")
def sites(world):
    """12 biallelic, non-palindromic SNV sites of the world's dbSNP, with varied alleles."""
    v = world.variants.filter((pl.col("status") == "ok") & (pl.col("kind") == "snv"))
    single = v.group_by("rsid").len().filter(pl.col("len") == 1)["rsid"]
    v = v.filter(pl.col("rsid").is_in(single.implode()))
    v = v.filter(~pl.struct("ref", "alt").map_elements(lambda s: is_palindromic(s["ref"], s["alt"]),
                                                       return_dtype=pl.Boolean))
    return v.sort("chrom", "pos").gather_every(max(1, v.height // 12)).head(12)


# -------------------------------------------------------------------------- GWAS and alleles

def test_gwas_without_z_or_beta_and_se_is_a_clear_error(tmp_path):
    p = _write(tmp_path / "g.tsv", ["rsid", "chromosome", "base_pair_location", "effect_allele", "other_allele",
                                    "beta", "p_value"], [["rs1", 1, 100, "A", "G", 0.1, 0.5]])
    with pytest.raises(InputError) as e:
        gwas.read_gwas_for(p, ["rs1"], build="hg38")
    msg = str(e.value)
    assert "g.tsv" in msg and "z-score" in msg and "standard error" in msg and "beta" in msg


def test_gwas_z_is_oriented_to_alt_and_mismatching_alleles_are_counted_drops(tmp_path, world, sites):
    rows, expect = [], {}
    for i, r in enumerate(sites.iter_rows(named=True)):
        z_alt = (-1) ** i * (1.0 + i)
        f = 0.3
        se = 0.01
        if i % 3 == 0:      # effect allele = ALT
            ea, oa, z = r["alt"], r["ref"], z_alt
        elif i % 3 == 1:    # effect allele = REF: z must be negated
            ea, oa, z = r["ref"], r["alt"], -z_alt
        else:               # ALT on the other strand
            ea, oa, z = complement(r["alt"]), complement(r["ref"]), z_alt
        if i == 4:          # matches neither REF nor ALT (nor their complements)
            ea, oa = r["ref"], complement(r["alt"])
        rows.append([r["chrom"][3:], r["pos"], ea, oa, z * se, se, f, 0.01, r["rsid"], 1000])
        expect[r["rsid"]] = z_alt
    p = _write(tmp_path / "gwas.tsv.gz", GWAS_HEADER, rows, gz=True)
    drops = DropLog()
    wanted = list(expect) + ["rs999999999999"]
    df = gwas.read_gwas_for(p, wanted, build="hg38", drops=drops)
    assert df.height == len(sites)
    lk = lookup_rsids(df["rsid"].to_list(), VcfSource(world.vcf_path))
    oriented, res = gwas.orient_gwas(df, lk.table, world.genome, drops=drops, source_file=p)
    bad = sites["rsid"][4]
    got = dict(zip(oriented["rsid"].to_list(), oriented["z_alt"].to_list()))
    assert bad not in got and len(got) == len(sites) - 1
    for rs, z in got.items():
        assert z == pytest.approx(expect[rs], rel=1e-4)
    dec = dict(zip(oriented["rsid"].to_list(), oriented["harmonization"].to_list()))
    assert {dec[sites["rsid"][1]], dec[sites["rsid"][2]]} == {"swap", "flip"}
    d = drops.frame()
    mm = d.filter(pl.col("reason") == "allele_mismatch")
    bad_row = df.filter(pl.col("rsid") == bad)["row_id"][0]
    assert mm.height == 1 and mm["stage"][0] == "harmonize" and mm["row_id"][0] == bad_row
    assert "match none of" in mm["detail"][0]
    assert oriented["variant_key"].str.contains(r"^chr\d+:\d+:[ACGT]>[ACGT]$").all()


def test_one_row_per_rsid_drops_ambiguous_multi_alt_rows():
    t = pl.DataFrame({"row_id": ["g:1", "g:2", "g:3", "g:4"], "rsid": ["rs1", "rs1", "rs2", "rs2"],
                      "variant_key": ["chr1:5:A>G", "chr1:5:A>T", "chr1:9:C>T", "chr1:9:C>T"],
                      "chrom": ["chr1"] * 4, "pos": [5, 5, 9, 9], "ref": ["A", "A", "C", "C"],
                      "alt": ["G", "T", "T", "T"], "beta_alt": [1.0, 2.0, 3.0, 3.5],
                      "harmonization": ["alt"] * 4})
    drops = DropLog()
    out = gwas.one_row_per_rsid(t, drops=drops)
    assert out["rsid"].to_list() == ["rs2"] and out["z_alt"].to_list() == [3.0]
    reasons = drops.frame().group_by("reason").len().sort("reason")
    assert reasons.to_dicts() == [{"reason": "gwas_duplicate_row", "len": 1},
                                  {"reason": "gwas_rsid_ambiguous", "len": 2}]


# -------------------------------------------------------------------------- SuSiE, FUSION, tissue map

def test_susie_pip_outside_unit_interval_is_an_error(tmp_path):
    d = tmp_path / "susie"
    d.mkdir()
    _write(d / "Prostate.ENSG00000000001.3.susie.tsv", ["rsid", "pip", "cs"],
           [["rs1", 0.5, 1], ["rs2", 1.3, -1]])
    with pytest.raises(InputError) as e:
        inputs.load_susie_files(d)
    assert e.value.column == "pip" and e.value.row == 2 and "outside [0, 1]" in str(e.value)
    assert "Prostate.ENSG00000000001.3.susie.tsv" in str(e.value)


def test_susie_gene_and_tissue_from_file_names_and_retention(tmp_path):
    d = tmp_path / "susie"
    (d / "Lung").mkdir(parents=True)
    _write(d / "Prostate.ENSG00000000001.3.susie.tsv", ["rsid", "pip", "cs"],
           [["rs1", 0.5, 1], ["rs2", 0.005, -1], ["rs3", 0.02, -1], ["rs4", 0.001, 1]])
    _write(d / "Lung" / "ENSG00000000002.susie.tsv.gz", ["variant_id", "pip", "cs"],
           [["chr1_5_A_G_b38", 0.9, 1]], gz=True)
    df = inputs.load_susie_files(str(d))
    assert sorted(zip(df["gene_id"].unique(maintain_order=True), df["tissue"].unique(maintain_order=True))) == [
        ("ENSG00000000001", "Prostate"), ("ENSG00000000002", "Lung")]
    kept = inputs.retain_susie(df, pip_threshold=0.01)
    assert sorted(kept["variant_id"].to_list()) == ["chr1_5_A_G_b38", "rs1", "rs3", "rs4"]
    kept2 = inputs.retain_susie(df, pip_threshold=0.01, keep_credible_sets=False)
    assert sorted(kept2["variant_id"].to_list()) == ["chr1_5_A_G_b38", "rs1", "rs3"]
    with pytest.raises(InputError, match="not found"):
        inputs.expand_paths(tmp_path / "nope", what="SuSiE")
    with pytest.raises(InputError, match="no SuSiE files match"):
        inputs.expand_paths(str(tmp_path / "*.none"), what="SuSiE")


def _fusion(path, rows, tissue_col=True):
    header = ["FILE", "ID", "CHR", "P0", "P1", "TWAS.Z", "TWAS.P"] + (["tissue", "gene_id"] if tissue_col else [])
    return _write(path, header, rows)


def test_tissue_missing_from_the_map_is_an_error_or_a_counted_drop(tmp_path):
    p = _fusion(tmp_path / "x.dat", [["w/ENSG1.wgt", "A", 1, 10, 20, 5.0, 1e-7, "Prostate", "ENSG00000000001"],
                                     ["w/ENSG2.wgt", "B", 1, 30, 40, -5.5, 1e-8, "Brain_Cortex", "ENSG00000000002"]])
    tw = inputs.load_twas_files(p)
    tmap = load_tissue_map()
    with pytest.raises(UnknownTissueError) as e:
        inputs.check_tissues({"twas": tw}, tmap)
    msg = str(e.value)
    assert "Brain_Cortex" in msg and "Heart_Atrial_Appendage" in msg and "override" in msg and "x.dat" in msg
    drops = DropLog()
    kept = inputs.check_tissues({"twas": tw}, tmap, policy="drop", drops=drops)["twas"]
    assert kept["tissue"].to_list() == ["Prostate"]
    d = drops.frame()
    assert d["reason"].to_list() == ["tissue_not_in_map"] and d["row_id"].to_list() == ["x:2"]
    # an override adds the tissue
    ov = tmp_path / "map.toml"
    ov.write_text('[Brain_Cortex]\nRNA_SEQ = ["UBERON:0001870"]\nDNASE = []\n')
    inputs.check_tissues({"twas": tw}, inputs.resolve_tissue_map(ov))


def test_fusion_tissue_from_file_name_duplicates_and_significance(tmp_path):
    p = _fusion(tmp_path / "Whole_Blood.dat",
                [["w/ENSG00000000001.wgt", "A", 1, 10, 20, 5.0, 1e-7],
                 ["w2/ENSG00000000001.wgt", "A", 1, 10, 20, 6.0, 1e-9],
                 ["w/ENSG00000000002.wgt", "B", 1, 30, 40, 2.0, 0.04],
                 ["w/ENSG00000000003.wgt", "C", 1, 50, 60, "NA", "NA"]], tissue_col=False)
    drops = DropLog()
    tw = inputs.load_twas_files(p, drops=drops)
    assert set(tw["tissue"].to_list()) == {"Whole_Blood"}
    tw = inputs.dedupe_twas_pairs(tw, drops=drops)
    assert tw.filter(pl.col("gene_id") == "ENSG00000000001")["twas_z"].to_list() == [6.0]
    assert sorted(drops.frame()["reason"].to_list()) == ["duplicate_twas_pair", "missing_twas"]
    sig = inputs.significant_pairs(tw, 4.7e-6)
    assert sig["gene_id"].to_list() == ["ENSG00000000001"]


# -------------------------------------------------------------------------- triplets and scores

def test_build_triplets_joins_and_counts_what_it_loses():
    retained = pl.DataFrame({
        "row_id": ["s:1", "s:2", "s:3", "s:4", "s:5", "s:6"], "source_file": ["s"] * 6,
        "source_row": [1, 2, 3, 4, 5, 6], "gene_id": ["G1", "G1", "G1", "G1", "G1", "G2"],
        "tissue": ["Lung"] * 6, "rsid": ["rs1", "rs2", None, "rs4", "rs5", "rs1"],
        "variant_id": ["rs1", "rs2", "chr1_9_A_G_b38", "rs4", "rs5", "rs1"],
        "pip": [0.9, 0.3, 0.5, 0.2, 0.1, 0.7], "cs": [1, 1, -1, -1, -1, 1]})
    pairs = pl.DataFrame({"row_id": ["f:1", "f:2"], "source_file": ["f"] * 2, "source_row": [1, 2],
                          "gene_id": ["G1", "G2"], "tissue": ["Lung", "Lung"], "twas_z": [5.0, -6.0],
                          "twas_p": [1e-7, 1e-9], "id": ["GENE1", "ENSG2"]})
    oriented = pl.DataFrame({"rsid": ["rs1", "rs2", "rs5"],
                             "variant_key": ["chr1:5:A>G", "chr1:7:C>T", "chr1:7:C>T"],
                             "chrom": ["chr1"] * 3, "pos": [5, 7, 7], "ref": ["A", "C", "C"], "alt": ["G", "T", "T"],
                             "z_alt": [3.0, -2.0, -2.0], "harmonization": ["alt"] * 3,
                             "gwas_row_id": ["g:1", "g:2", "g:3"]})
    drops = DropLog()
    trip, counts = triplets.build_triplets(retained, pairs, oriented, drops=drops)
    assert counts == {"susie_rows_in_significant_pairs": 6, "triplets": 3}
    assert trip.select("gene_id", "gene_name", "variant_key", "pip").sort("gene_id", "variant_key").rows() == [
        ("G1", "GENE1", "chr1:5:A>G", 0.9), ("G1", "GENE1", "chr1:7:C>T", 0.3), ("G2", "G2", "chr1:5:A>G", 0.7)]
    reasons = dict(drops.frame().group_by("reason").len().iter_rows())
    assert reasons == {"susie_no_rsid": 1, "no_oriented_gwas": 1, "duplicate_triplet": 1}
    v = triplets.variants_to_score(trip)
    assert v.rows() == [("chr1:5:A>G", "chr1", 5, "A", "G"), ("chr1:7:C>T", "chr1", 7, "C", "T")]


def _score_rows():
    rows = []

    def add(vk, ot, score, *, gene=None, curie=None, gtex=None, name=None, strand="."):
        rows.append({"variant_key": vk, "output_type": ot, "gene_id": gene, "ontology_curie": curie,
                     "gtex_tissue": gtex, "track_name": name or f"{curie} {ot} {gtex}", "track_strand": strand,
                     "raw_score": score, "quantile_score": score / 10})
    v = "chr1:5:A>G"
    add(v, "RNA_SEQ", 0.2, gene="G1", curie="UBERON:0008952", gtex="Lung")
    add(v, "RNA_SEQ", -0.7, gene="G2", curie="UBERON:0008952", gtex="Lung")
    add(v, "RNA_SEQ", 9.0, gene="G1", curie="UBERON:0008952", name="lung total RNA-seq")  # not a GTEx track
    add(v, "RNA_SEQ", 0.4, gene="G1", curie="UBERON:0000001", name="other")
    add(v, "ATAC", 1.0, curie="UBERON:0008952")
    add(v, "ATAC", 5.0, curie="CL:0000624")
    add(v, "DNASE", 0.5, curie="UBERON:0002084")
    add(v, "CAGE", 2.0, curie="UBERON:0002084", strand="+")
    add(v, "CAGE", 4.0, curie="UBERON:0002084", strand="-", name="cage lv minus")
    return pl.DataFrame(rows)


def test_assay_scores_use_the_gene_the_gtex_track_and_the_tissue_terms():
    tmap = load_tissue_map(overrides={"Lung": {"RNA_SEQ": ["UBERON:0008952"], "ATAC": ["UBERON:0008952"],
                                               "DNASE": [], "CAGE": []},
                                      "Kidney": {"RNA_SEQ": ["UBERON:0000001"], "ATAC": [], "DNASE": [],
                                                 "CAGE": []}})
    tissues = ["Lung", "Heart_Left_Ventricle", "Whole_Blood", "Kidney"]
    values, used = triplets.assay_scores(_score_rows(), tmap, tissues, ["RNA_SEQ", "ATAC", "DNASE", "CAGE"])
    val = {(r["gene_id"], r["tissue"], r["assay"]): (r["score"], r["n_tracks"]) for r in values.iter_rows(named=True)}
    assert val[("G1", "Lung", "RNA")] == (0.2, 1)            # GTEx track only, the triplet's own gene
    assert val[("G2", "Lung", "RNA")] == (-0.7, 1)
    assert val[("G1", "Kidney", "RNA")] == (0.4, 1)          # no GTEx track: the map's RNA_SEQ terms
    assert val[(None, "Lung", "ATAC")] == (1.0, 1)           # CL:0000624 is no Lung term
    assert val[(None, "Heart_Left_Ventricle", "CAGE")] == (3.0, 2)  # both strands averaged
    assert val[(None, "Heart_Left_Ventricle", "DNASE")] == (0.5, 1)
    assert (None, "Whole_Blood", "ATAC") not in val          # no tissue-level ATAC for Whole_Blood
    trip = pl.DataFrame({"variant_key": ["chr1:5:A>G"] * 2, "rsid": ["rs1"] * 2, "chrom": ["chr1"] * 2,
                         "pos": [5, 5], "gene_id": ["G1", "G1"], "gene_name": ["A", "A"],
                         "tissue": ["Lung", "Whole_Blood"], "pip": [0.9, 0.8], "cs": [1, 1],
                         "in_cs": [True, True], "z_alt": [3.0, 3.0], "twas_z": [5.0, 6.0], "twas_p": [1e-7, 1e-8],
                         "susie_row_id": ["s:1", "s:2"]})
    long = triplets.attach_scores(trip, values, ["RNA_SEQ", "ATAC"])
    got = {(r["tissue"], r["assay"]): r["score"] for r in long.iter_rows(named=True)}
    assert got == {("Lung", "RNA"): 0.2, ("Whole_Blood", "RNA"): None, ("Lung", "ATAC"): 1.0,
                   ("Whole_Blood", "ATAC"): None}
    cov = triplets.track_coverage(used, tissues, ["RNA_SEQ", "ATAC"])
    assert cov.filter((pl.col("tissue") == "Whole_Blood") & (pl.col("assay") == "ATAC"))["n_tracks"][0] == 0
    q, _ = triplets.assay_scores(_score_rows(), tmap, ["Lung"], ["ATAC"], score_column="quantile_score")
    assert q["score"].to_list() == [pytest.approx(0.1)]
    with pytest.raises(InputError, match="unknown assay"):
        triplets.assay_label("HISTONE")


def test_missing_required_susie_columns_are_named(tmp_path):
    p = _write(tmp_path / "Lung.ENSG00000000009.tsv", ["rsid", "cs"], [["rs1", 1]])
    with pytest.raises(MissingColumnError, match="pip"):
        inputs.load_susie_files(p)


def test_assay_scores_keep_the_recommended_scorer_of_each_output_type():
    """A tidy_scores table from score_variant without a scorer list has the signed DIFF_LOG2_SUM
    scorer and the never-negative ACTIVE_SUM scorer for DNASE; averaging them would push signs
    positive (found in review: -0.05 and 3.0 became 1.475)."""
    from alphagenome.models import variant_scorers as vs

    rec, active = str(vs.RECOMMENDED_VARIANT_SCORERS["DNASE"]), str(vs.RECOMMENDED_VARIANT_SCORERS["DNASE_ACTIVE"])
    tmap = load_tissue_map(overrides={"Lung": {"RNA_SEQ": [], "ATAC": [], "DNASE": ["UBERON:0008952"], "CAGE": []}})
    rows = pl.DataFrame({"variant_key": ["chr1:5:A>G"] * 2, "output_type": ["DNASE"] * 2, "gene_id": [None, None],
                         "ontology_curie": ["UBERON:0008952"] * 2, "gtex_tissue": [None, None],
                         "track_name": ["lung dnase"] * 2, "track_strand": ["."] * 2, "scorer": [rec, active],
                         "raw_score": [-0.05, 3.0]})
    values, _ = triplets.assay_scores(rows, tmap, ["Lung"], ["DNASE"])
    assert values["score"].to_list() == [pytest.approx(-0.05)]
    other = rows.with_columns(pl.Series("scorer", ["custom-a", "custom-b"]))
    with pytest.raises(InputError, match="2 scorers for DNASE"):
        triplets.assay_scores(other, tmap, ["Lung"], ["DNASE"])
