"""The synthetic world (standins/world, SIMULATED): determinism, consistency, catalogue."""

from __future__ import annotations

import gzip
import hashlib
import json
import re

import numpy as np
import polars as pl
import pytest

from agval.coords import Variant, is_palindromic
from agval.errors import InputError
from standins import SIMULATED_DATA_SOURCE


def _hashes(d):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir()) if p.is_file()}


# ----------------------------------------------------------------------------- determinism and CLI

def test_cli_build_is_byte_identical_for_a_seed_and_refuses_foreign_folders(world_dir, tmp_path):
    from typer.testing import CliRunner

    from standins.cli.world import app

    runner = CliRunner()
    again = tmp_path / "again"
    res = runner.invoke(app, ["build", "--out", str(again), "--seed", "7", "--size", "small"])
    assert res.exit_code == 0, res.output
    assert "SIMULATED" in res.output and res.output.count("\n") == 1
    assert _hashes(again) == _hashes(world_dir)

    # an existing world needs --force; a foreign non-empty folder is refused
    res = runner.invoke(app, ["build", "--out", str(again), "--seed", "8"])
    assert isinstance(res.exception, InputError) and "--force" in str(res.exception)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    res = runner.invoke(app, ["build", "--out", str(foreign)])
    assert isinstance(res.exception, InputError) and "not an agval world" in str(res.exception)
    assert (foreign / "notes.txt").read_text() == "mine"

    res = runner.invoke(app, ["build", "--out", str(again), "--seed", "8", "--force"])
    assert res.exit_code == 0, res.output
    other = _hashes(again)
    assert other["genome.fa"] != _hashes(world_dir)["genome.fa"]
    assert other["variants.parquet"] != _hashes(world_dir)["variants.parquet"]


def test_world_json_lists_every_file_with_its_hash(world, world_dir):
    meta = json.loads((world_dir / "world.json").read_text())
    assert meta["format"] == "agval-world" and meta["version"] == 1
    assert meta["simulated"] is True and meta["build"] == "hg38" and meta["seed"] == 7
    files = _hashes(world_dir)
    files.pop("world.json")
    assert meta["files"] == files
    for name in ("genome.fa", "genome.fa.fai", "genes.parquet", "exons.parquet", "variants.parquet",
                 "absent_rsids.txt", "dbsnp.vcf.gz", "tracks.parquet", "truth.json"):
        assert name in files
    assert world.chromosomes == world.genome.lengths
    assert 3.5e6 < sum(world.chromosomes.values()) < 6e6
    with gzip.open(world_dir / "dbsnp.vcf.gz") as fh:
        assert fh.read(16).startswith(b"##fileformat")
    assert (world_dir / "dbsnp.vcf.gz").read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime 0


def test_load_refuses_a_folder_that_is_not_a_world(tmp_path):
    from standins.world import World

    with pytest.raises(InputError, match="world.json"):
        World.load(tmp_path)


# ----------------------------------------------------------------------------- genome and genes

def test_genome_composition_and_index(world, world_dir):
    fai = (world_dir / "genome.fa.fai").read_text().splitlines()
    assert [ln.split("\t")[0] for ln in fai] == list(world.chromosomes)
    seq = world.genome.fetch("chr1", 0, world.chromosomes["chr1"])
    assert set(seq) == set("ACGT")
    gc = (seq.count("G") + seq.count("C")) / len(seq)
    assert 0.38 < gc < 0.45
    assert seq.count("CG") / len(seq) < 0.03  # CpG depleted outside islands
    assert world.genome.fetch("chr1", -3, 2) == "NNN" + seq[:2]
    lines = (world_dir / "genome.fa").read_text().splitlines()
    assert lines[0] == ">chr1" and all(len(x) == 60 for x in lines[1:50])


def test_genes_and_exons(world):
    g, e = world.genes, world.exons
    assert 60 <= g.height <= 120
    assert set(g["strand"]) == {"+", "-"}
    assert g["gene_id"].is_unique().all()
    assert all(re.fullmatch(r"ENSG009\d{8}\.\d+", x) for x in g["gene_id"])
    for name in ("PITX2", "TBX5", "SCN5A", "SCN10A", "KCNN3", "KCNH2", "GJA1", "MYH6", "NKX2-5", "CAV1"):
        assert name in set(g["gene_name"]), name
    assert g.select((pl.col("tss") == pl.when(pl.col("strand") == "+").then(pl.col("start"))
                     .otherwise(pl.col("end"))).all()).item()
    j = e.join(g.select("gene_id", "start", "end", "strand", "tss"), on="gene_id", suffix="_g")
    assert j.height == e.height
    assert ((j["start"] >= j["start_g"]) & (j["end"] <= j["end_g"]) & (j["start"] <= j["end"])).all()
    first = j.filter(pl.col("exon_number") == 1)
    assert first.height == g.height
    assert ((first["start"] == first["tss"]) | (first["end"] == first["tss"])).all()


# ----------------------------------------------------------------------------- variants

def test_every_ref_matches_the_genome(world):
    v = world.variants.filter(pl.col("pos").is_not_null())
    chroms = {c: world.genome.fetch(c, 0, n) for c, n in world.chromosomes.items()}
    bad = [r for r in v.select("chrom", "pos", "ref").rows()
           if chroms[r[0]][r[1] - 1:r[1] - 1 + len(r[2])] != r[2]]
    assert not bad, bad[:5]


def test_catalogue_has_every_kind_of_site(world):
    v = world.variants
    assert 20_000 <= v.height <= 32_000
    assert all(re.fullmatch(r"rs\d+", x) for x in v["rsid"].unique())
    assert v.select("rsid", "alt").is_unique().all()
    ok = v.filter(pl.col("status") == "ok")
    # multi-allelic: one row per ALT, same site
    multi = ok.group_by("rsid").agg(pl.len().alias("n"), pl.col("pos").n_unique().alias("np"),
                                    pl.col("ref").n_unique().alias("nr"))
    assert multi.filter(pl.col("n") >= 2).height > 100 and multi.filter(pl.col("n") == 3).height > 10
    assert (multi["np"] == 1).all() and (multi["nr"] == 1).all()
    # palindromic SNVs with AF on both sides of 0.5
    pal = ok.filter((pl.col("kind") == "snv")
                    & pl.struct("ref", "alt").map_elements(lambda r: is_palindromic(r["ref"], r["alt"]),
                                                           return_dtype=pl.Boolean))
    assert (pal["af"] < 0.5).sum() > 100 and (pal["af"] > 0.5).sum() > 100
    # indels are VCF-anchored (shared first base), both insertions and deletions
    ind = ok.filter(pl.col("kind") == "indel")
    assert ind.height > 1_000
    assert (ind["ref"].str.slice(0, 1) == ind["alt"].str.slice(0, 1)).all()
    assert ((ind["ref"].str.len_chars() == 1) ^ (ind["alt"].str.len_chars() == 1)).all()
    assert (ind["ref"].str.len_chars() > 1).sum() > 300 and (ind["alt"].str.len_chars() > 1).sum() > 300
    assert ((v["af"] > 0) & (v["af"] < 1)).all()
    # no_hg38: hg19 only; merged: points at a current rsID with the same alleles
    nh = v.filter(pl.col("status") == "no_hg38")
    assert nh.height > 0 and nh["pos"].is_null().all() and nh["chrom"].is_null().all()
    assert nh["hg19_pos"].is_not_null().all()
    mg = v.filter(pl.col("status") == "merged")
    assert mg.height > 0
    tgt = mg.join(ok, left_on="merged_into", right_on="rsid", suffix="_t")
    assert tgt.height == mg.height
    assert (tgt["pos"] == tgt["pos_t"]).all() and (tgt["alt"] == tgt["alt_t"]).all()
    # hg19 positions: one offset per chromosome, never equal to hg38
    off = ok.select("chrom", (pl.col("hg19_pos") - pl.col("pos")).alias("d")).unique()
    assert off.height == len(world.chromosomes) and (off["d"] != 0).all()
    # absent rsIDs look real and are in no catalogue
    absent = world.absent_rsids
    assert len(absent) >= 100 and all(re.fullmatch(r"rs\d+", x) for x in absent)
    assert not set(absent) & set(v["rsid"]) and not set(absent) & set(v["merged_into"].drop_nulls())


def test_vcf_parses_and_agrees_with_the_parquet(world):
    rows = set()
    with gzip.open(world.vcf_path, "rt") as fh:
        header = None
        for line in fh:
            if line.startswith("##"):
                continue
            if line.startswith("#"):
                header = line.rstrip("\n").split("\t")
                continue
            chrom, pos, rsid, ref, alts, qual, filt, info = line.rstrip("\n").split("\t")
            afs = dict(kv.split("=") for kv in info.split(";"))["AF"].split(",")
            assert len(afs) == len(alts.split(","))
            for alt, af in zip(alts.split(","), afs):
                rows.add((chrom, int(pos), rsid, ref, alt, float(af)))
    assert header == ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]
    ok = world.variants.filter(pl.col("status") == "ok")
    assert rows == set(ok.select("chrom", "pos", "rsid", "ref", "alt", "af").rows())


# ----------------------------------------------------------------------------- tracks

def test_track_catalogue(world):
    t = world.tracks
    assert 40 <= t.height <= 200
    assert set(t["data_source"]) == {SIMULATED_DATA_SOURCE}
    assert set(t["strand"]) <= {"+", "-", "."}
    assert set(t["organism"]) == {"HOMO_SAPIENS", "MUS_MUSCULUS"}
    assert t.select("organism", "output_type", "name", "strand").is_unique().all()
    h = world.track_rows("human")

    def marks(curie):
        return set(h.filter((pl.col("ontology_curie") == curie) & (pl.col("output_type") == "CHIP_HISTONE"))
                   ["histone_mark"])

    def count(curie, ot):
        return h.filter((pl.col("ontology_curie") == curie) & (pl.col("output_type") == ot)).height

    assert count("CL:0000624", "ATAC") == 1 and count("CL:0000624", "DNASE") == 1
    assert marks("CL:0000624") == {"H3K27ac", "H3K27me3", "H3K36me3", "H3K4me1", "H3K4me3", "H3K9me3"}
    assert count("CL:0000624", "RNA_SEQ") == 3
    assert marks("CL:0000236") == {"H2AFZ", "H3K27ac", "H3K27me3", "H3K36me3", "H3K4me1", "H3K4me2", "H3K4me3",
                                   "H3K79me2", "H3K9ac", "H3K9me3"}
    assert marks("EFO:0002784") == {"H2AFZ", "H3K27ac", "H3K36me3", "H3K4me1", "H3K4me2", "H3K4me3", "H3K79me2",
                                    "H3K9ac"}
    for curie in ("EFO:0002784", "EFO:0002067"):
        cage = h.filter((pl.col("ontology_curie") == curie) & (pl.col("output_type") == "CAGE"))
        assert sorted(cage["strand"]) == ["+", "-"]
    k562_rna = h.filter((pl.col("ontology_curie") == "EFO:0002067") & (pl.col("output_type") == "RNA_SEQ"))
    assert set(k562_rna["strand"]) == {"+", "-", "."} and count("EFO:0002067", "DNASE") == 1
    assert count("EFO:0002067", "CHIP_TF") >= 2
    gtex = h.filter(pl.col("gtex_tissue").is_not_null())
    assert gtex["gtex_tissue"].n_unique() == 10
    assert (gtex["output_type"] == "RNA_SEQ").all()
    assert gtex.group_by("gtex_tissue").agg(pl.col("strand").sort())["strand"].to_list() == [["+", "-"]] * 10
    assert gtex.filter(pl.col("gtex_tissue") == "Heart_Atrial_Appendage")["ontology_curie"][0] == "UBERON:0006631"
    # availability pattern of the real catalogue (STUDIES.md §2.3)
    assert count("UBERON:0002367", "ATAC") == 0 and count("UBERON:0002367", "DNASE") == 1
    assert count("UBERON:0013756", "ATAC") == 0 and count("UBERON:0013756", "DNASE") == 0
    assert count("UBERON:0006631", "ATAC") == 0 and count("UBERON:0002078", "ATAC") == 1
    assert count("UBERON:0004264", "ATAC") == 0 and count("UBERON:0011907", "ATAC") == 1
    m = world.track_rows("mouse")
    for curie in ("CL:0000136", "EFO:0001084"):
        assert {"DNASE", "ATAC", "RNA_SEQ", "CAGE"} <= set(m.filter(pl.col("ontology_curie") == curie)["output_type"])


# ----------------------------------------------------------------------------- truth

def test_truth_oracle_has_planted_signal(world):
    from standins.world.truth import TruthOracle

    oracle = TruthOracle(world)
    assert world.truth.to_json() == (world.root / "truth.json").read_text()
    atac = world.track_rows(ontology_curie=["CL:0000624", "EFO:0002067"], output_type="ATAC")
    assert atac["ontology_curie"].to_list() == ["CL:0000624", "EFO:0002067"]
    el = world.elements
    t_enh = el.filter((pl.col("kind") == "enhancer") & (pl.col("program") == "T")).head(6)
    assert t_enh.height >= 3
    # planted T-cell enhancers are open in T cells, not in K562
    acts = np.array([oracle.sequence_activity(world.genome.fetch(c, s - 1000, e + 1000), atac, (1000, 1000 + e - s))
                     for c, s, e in t_enh.select("chrom", "start", "end").rows()])
    assert (acts[:, 0] > 2 * acts[:, 1]).mean() >= 0.8
    # SNVs inside planted enhancer motifs move T-cell ATAC more than far background SNVs
    ok = world.variants.filter((pl.col("status") == "ok") & (pl.col("kind") == "snv"))
    in_el = ok.join(t_enh.select("chrom", "start", "end"), on="chrom").filter(
        (pl.col("pos") >= pl.col("start")) & (pl.col("pos") <= pl.col("end"))).head(25)
    far = ok.filter(pl.col("chrom") == "chr3").sample(25, seed=1)
    eff_in = [oracle.variant_effect(Variant(c, p, r, a), atac)[0] for c, p, r, a in
              in_el.select("chrom", "pos", "ref", "alt").rows()]
    eff_far = [oracle.variant_effect(Variant(c, p, r, a), atac)[0] for c, p, r, a in
               far.select("chrom", "pos", "ref", "alt").rows()]
    assert np.max(np.abs(eff_in)) > 0.2
    assert np.median(np.abs(eff_in)) > 3 * np.median(np.abs(eff_far))
    # a promoter SNV changes its gene's expression; gene effects are exactly 0 far away
    gene = world.genes.filter(pl.col("gene_name") == "TBX5").row(0, named=True)
    rna = world.track_rows(gtex_tissue="Heart_Atrial_Appendage")
    prom = ok.filter((pl.col("chrom") == gene["chrom"]) & ((pl.col("pos") - gene["tss"]).abs() < 300))
    effects = [oracle.gene_effect(Variant(c, p, r, a), gene["gene_id"], rna) for c, p, r, a in
               prom.select("chrom", "pos", "ref", "alt").rows()]
    assert prom.height > 0 and np.max(np.abs(effects)) > 1e-3
    far_v = ok.filter((pl.col("chrom") == gene["chrom"]) & ((pl.col("pos") - gene["tss"]).abs() > 200_000)).row(0)
    assert np.array_equal(oracle.gene_effect(Variant(*far_v[1:5]), gene["gene_id"], rna), np.zeros(rna.height))
