"""QTL pipeline as plain functions (agval.qtl): statistics against scipy, planted effects
recovered, modality plans as data, guards, gene matching. SIMULATED world (seed 7).

The precomputed path keeps these tests fast: the demo generator writes the truth of
every row (``planted.parquet``), which is a perfect model's predictions table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from agval.alleles import empty_lookup
from agval.drops import DropLog
from agval.errors import BuildMismatchError, GuardError
from agval.qtl import QTLStudy, plan_analyses, scorers_for
from agval.qtl.harmonize import finalize, harmonize_coordinates, harmonize_lookup, lookup_ids
from agval.qtl.load import load_study_table
from agval.qtl.pipeline import run_plain
from agval.stats import bootstrap_ci, cluster_permutation_test
from standins.world.studies import qtl as gen

TOL = 1e-9


def _study(toml: Path, **over) -> QTLStudy:
    from pydantic import create_model

    from agval.config import BackendConfig, LookupConfig, load_study_file

    model = create_model("F", study=(QTLStudy, ...), backend=(BackendConfig, BackendConfig()),
                         lookup=(LookupConfig, LookupConfig()))
    s = load_study_file(toml, model).study
    return s.model_copy(update=over) if over else s


@pytest.fixture(scope="module")
def demo(world_dir, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("qtl-demo")
    files = gen.generate(world_dir, out, seed=0, n_caqtl=60, n_hqtl=40, n_boot=200)
    assert [f.name for f in files[:2]] == ["caqtl-cd4.toml", "hqtl-lcl.toml"]
    return {p.name: p for p in files}


def _precomputed(toml: Path, column: str, **over) -> QTLStudy:
    s = _study(toml)
    planted = toml.parent / ("caqtl-cd4" if "caqtl" in toml.name else "hqtl-lcl") / "planted.parquet"
    return QTLStudy.model_validate({**s.model_dump(), "predictions": str(planted),
                                    "prediction_columns": {"corrected": column}, "modes": ["corrected"], **over})


def _run_precomputed(study: QTLStudy):
    return run_plain(study, simulated=True)


# ----------------------------------------------------------------------------- generator

def test_generator_writes_real_layouts(demo, world):
    from agval.io.qtl import load_gse86886_caqtl, load_gse116193_hqtl

    ca, ca_drops = load_gse86886_caqtl(demo["ATAC-QTLs.csv"])
    assert ca["build"].unique().to_list() == ["hg19"]
    assert (ca["beta"] > 0).all(), "every caQTL beta is positive, as in the real table"
    assert ca["effect_allele"].null_count() == ca.height
    dup = ca.filter(pl.col("rsid").is_duplicated())
    assert dup.height >= 2 and dup["peak_id"].n_unique() == dup.height, "one SNP, two peaks: separate rows"
    assert set(ca["rsid"]) & set(world.absent_rsids), "absent rsIDs exercise notfound"
    hq, hq_drops = load_gse116193_hqtl(demo["Pelikan_et_al_hQTL_summary.csv"])
    header = demo["Pelikan_et_al_hQTL_summary.csv"].read_text().splitlines()[0]
    assert "Ref Allelec" in header and "H3K27ac p-valueb" in header
    assert set(hq["mark"]) == {"H3K27ac", "H3K4me1"}
    assert "no_significant_mark" in hq_drops.frame()["reason"].to_list()
    # hg19 positions in the files are the world's synthetic hg19, never its hg38
    v = world.variants.select("rsid", "hg19_pos", "pos").unique("rsid")
    j = ca.join(v, on="rsid", how="inner")
    assert (j["hg19_pos"] == j["hg19_pos_right"]).all() and (j["hg19_pos"] != j["pos"]).any()
    text = demo["hqtl-lcl.toml"].read_text()
    assert 'effect_allele = "column:ref"' in text and "Planted strength" in text and "Sign convention" in text


def test_generator_is_deterministic(world_dir, tmp_path):
    a = gen.generate(world_dir, tmp_path / "a", seed=3, n_caqtl=20, n_hqtl=12, variant_seed=0)
    b = gen.generate(world_dir, tmp_path / "b", seed=3, n_caqtl=20, n_hqtl=12, variant_seed=0)
    for pa, pb in zip(a[2:4], b[2:4]):
        assert pa.read_bytes() == pb.read_bytes()


# ----------------------------------------------------------------------------- modality

def test_modality_scorers_and_selection_as_data(world, demo):
    ca = _study(demo["caqtl-cd4.toml"])
    an = {a.name: a for a in plan_analyses(ca)}
    assert scorers_for(list(an.values())) == ["ATAC", "DNASE", "CHIP_HISTONE"]  # deduplicated, ordered (P29)
    assert an["original"].selection.apply(world.tracks).height == 8  # ATAC + DNASE + 6 marks incl. repressive
    assert set(an["corrected"].selection.apply(world.tracks)["output_type"]) == {"ATAC", "DNASE"}
    assert an["original"].score_col == "quantile_score" and an["corrected"].score_col == "raw_score"
    hq = _study(demo["hqtl-lcl.toml"])
    an = {a.name: a for a in plan_analyses(hq, marks=["H3K27ac", "H3K4me1"])}
    assert list(an) == ["original", "corrected", "corrected@CL:0000236"]
    assert scorers_for(list(an.values())) == ["CHIP_HISTONE"]
    orig = an["original"].selection.apply(world.tracks)
    assert orig.height == 10 and set(orig["ontology_curie"]) == {"CL:0000236"}
    corr = an["corrected"].selection.apply(world.tracks)
    assert set(corr["histone_mark"]) == {"H3K27ac", "H3K4me1"} and set(corr["ontology_curie"]) == {"EFO:0002784"}
    assert an["corrected"].match == "mark" and an["original"].beta_col == "beta_seed"
    assert hq.seed_negate_beta and not ca.seed_negate_beta
    d = an["corrected"].to_dict()
    assert d["selection"]["ontology_curies"] == ["EFO:0002784"] and d["score"] == "raw_score"


# ----------------------------------------------------------------------------- statistics

def test_statistics_equal_scipy_oracles(demo):
    study = _precomputed(demo["caqtl-cd4.toml"], "true_effect", modes=["corrected"], n_boot=300)
    out = _run_precomputed(study)
    res = out["result"]
    f = res.selected["corrected"].frame
    x, y = f["x"].to_numpy(), f["y"].to_numpy()
    st = res.stats["corrected"]
    sp, pe, lr = stats.spearmanr(x, y), stats.pearsonr(x, y), stats.linregress(x, y)
    assert st["n"] == len(x) > 40
    assert abs(st["spearman_rho"] - sp.statistic) < TOL and abs(st["spearman_p"] - sp.pvalue) < TOL
    assert abs(st["pearson_r"] - pe.statistic) < TOL and abs(st["pearson_p"] - pe.pvalue) < TOL
    assert abs(st["r2"] - lr.rvalue ** 2) < TOL and abs(st["slope"] - lr.slope) < TOL
    mag = stats.spearmanr(np.abs(x), np.abs(y))
    assert abs(st["magnitude_spearman_rho"] - mag.statistic) < TOL
    assert abs(st["score_sd"] - np.std(x, ddof=1)) < TOL and abs(st["beta_mean"] - np.mean(y)) < TOL
    # the bootstrap resamples units = connected components of {peak, SNP}, seeded: the library's own
    # call reproduces it; a SNP that is a QTL for two peaks puts both peaks in one unit
    peaks = f["cluster_id"].to_numpy()
    units = f["unit"].to_numpy()
    assert st["bootstrap_unit"] == "cluster" and st["n_clusters"] == len(set(units)) <= len(set(peaks)) < len(x)
    for key, g in f.group_by("variant_key"):
        assert g["unit"].n_unique() == 1
    ref = bootstrap_ci(x, y, "spearman", clusters=units, n_boot=300, seed=study.seed)
    assert (st["spearman_ci_low"], st["spearman_ci_high"]) == (ref["ci_low"], ref["ci_high"])
    ref_p = cluster_permutation_test(x, y, "spearman", clusters=units, n_perm=study.n_perm, seed=study.seed)
    assert st["spearman_perm_p"] == ref_p["p"] and st["permutation_unit"] == "cluster"
    prb = bootstrap_ci(x, y, "pearson", clusters=units, n_boot=300, seed=study.seed)
    assert (st["pearson_ci_low"], st["pearson_ci_high"]) == (prb["ci_low"], prb["ci_high"])
    # caQTL: effect allele unknown -> no direction claim at all
    assert st["n_orientation_verified"] == 0 and st["sign_n"] == 0
    # per-track table: the same scipy numbers
    pt = res.per_track.row(0, named=True)
    assert abs(pt["spearman_rho"] - sp.statistic) < TOL and abs(pt["spearman_p"] - sp.pvalue) < TOL


def test_sign_concordance_on_verified_rows_equals_binomtest(demo):
    study = _precomputed(demo["hqtl-lcl.toml"], "driver", n_boot=200)
    res = _run_precomputed(study)["result"]
    st = res.stats["corrected"]
    f = res.selected["corrected"].frame.filter(pl.col("orientation_verified"))
    x, y = f["x"].to_numpy(), f["y"].to_numpy()
    nz = (x != 0) & (y != 0)
    k = int((np.sign(x[nz]) == np.sign(y[nz])).sum())
    assert st["sign_n"] == int(nz.sum()) > 20 and st["sign_k"] == k
    assert abs(st["sign_p_two_sided"] - stats.binomtest(k, int(nz.sum()), 0.5).pvalue) < TOL
    assert st["sign_fraction"] > 0.6  # a signed planted effect points the right way


# ----------------------------------------------------------------------------- planted effects

@pytest.mark.parametrize("kind", ["caqtl", "hqtl"])
def test_planted_effect_inside_ci_across_seeds(world_dir, tmp_path, kind):
    """The truth as a perfect model's predictions: the planted population Spearman lies in
    the reported 95% CI for (nearly) every noise seed. The variants stay those of
    variant_seed 0 (their truth is computed once); marks, noise and row order change.
    hQTL rows with Ref/Alt swapped in the file are left out here: the predictions are keyed
    to the file's ALT, the planted value to the genome's ALT."""
    inside, recovered = 0, []
    seeds = range(5)
    for seed in seeds:
        files = gen.generate(world_dir, tmp_path / f"s{seed}", seed=seed, n_caqtl=120, n_hqtl=60, n_boot=400,
                             kinds=(kind,), variant_seed=0, hqtl_swaps=0)
        toml = files[0]
        study = _precomputed(toml, "true_effect" if kind == "caqtl" else "driver", n_boot=400, seed=seed)
        h = _run_precomputed(study)["result"].headline
        assert h["planted_statistic"] == ("magnitude_spearman_rho" if kind == "caqtl" else "spearman_rho")
        inside += h["planted_in_ci"]
        recovered.append(h["recovered_value"])
    assert inside >= 4, f"planted 0.6 inside the 95% CI in {inside}/5 seeds; recovered {recovered}"
    assert abs(np.mean(recovered) - 0.6) < 0.08


# ----------------------------------------------------------------------------- guards

def _csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.write_text("\n".join([",".join(header)] + [",".join(str(v) for v in r) for r in rows]) + "\n")
    return path


def test_guard_placeholder_alleles(world, tmp_path):
    rs = world.variants.filter(pl.col("status") == "ok").unique("rsid").head(12)
    rows = [[r["rsid"], "A", "G", 0.1 * (i + 1)] for i, r in enumerate(rs.iter_rows(named=True))]
    t = _csv(tmp_path / "placeholder.csv", ["rsid", "ref", "alt", "beta"], rows)
    study = QTLStudy(name="ph", kind="generic", table=str(t), biosample="CL:0000624", effect_allele="alt",
                     allele_columns=["ref", "alt"], reference_fasta=str(world.root / "genome.fa"))
    loaded = load_study_table(study)
    with pytest.raises(GuardError, match="placeholder"):
        harmonize_lookup(study, loaded.frame, empty_lookup(), study.reference_fasta, drops=DropLog())
    # the coordinates route fires too
    rows = [["chr1", 1000 + 10 * i, "A", "G", 0.1 * (i + 1)] for i in range(12)]
    t2 = _csv(tmp_path / "placeholder_coords.csv", ["chrom", "pos", "ref", "alt", "beta"], rows)
    s2 = study.model_copy(update={"table": str(t2), "build": "hg38"})
    with pytest.raises(GuardError, match="placeholder"):
        harmonize_coordinates(s2, load_study_table(s2).frame, s2.reference_fasta, drops=DropLog())


def test_guard_hg19_coordinates_without_liftover(world, demo, tmp_path):
    # a generic table with hg19 coordinates and no rsIDs: never scored on hg38
    rows = [["chr1", 1000 + 97 * i, "ACGT"[i % 4], "ACGT"[(i + 1) % 4], 0.1 * (i - 5)] for i in range(12)]
    t = _csv(tmp_path / "hg19.csv", ["chrom", "pos", "ref", "alt", "beta"], rows)
    study = QTLStudy(name="hg19", kind="generic", table=str(t), build="hg19", biosample="CL:0000624",
                     reference_fasta=str(world.root / "genome.fa"))
    loaded = load_study_table(study)
    assert loaded.route == "coordinates"
    with pytest.raises(BuildMismatchError, match="liftover"):
        harmonize_coordinates(study, loaded.frame, study.reference_fasta, drops=DropLog())
    # the caQTL file's own (hg19) positions on the coordinates route
    ca = _study(demo["caqtl-cd4.toml"], allele_route="coordinates")
    with pytest.raises(BuildMismatchError, match="hg19"):
        harmonize_coordinates(ca, load_study_table(ca).frame, ca.reference_fasta, drops=DropLog())


def test_guard_gtex_slope_is_pvalues(world, tmp_path):
    v = world.variants.filter((pl.col("status") == "ok") & (pl.col("kind") == "snv")).head(12)
    rng = np.random.default_rng(1)
    header = ["variant_id", "gene_id", "tss_distance", "ma_samples", "ma_count", "maf", "pval_nominal", "slope",
              "slope_se"]
    rows = []
    for r in v.iter_rows(named=True):
        p = float(10 ** -rng.uniform(3, 40))
        # the endogenous benchmark's bug (P1): 'slope' holds pval_nominal
        rows.append([f"{r['chrom']}_{r['pos']}_{r['ref']}_{r['alt']}_b38", "ENSG00900000001.1", 100, 10, 12, 0.2,
                     p, p, 0.05])
    t = tmp_path / "Whole_Blood.v8.signif_variant_gene_pairs.txt"
    t.write_text("\n".join(["\t".join(header)] + ["\t".join(str(x) for x in r) for r in rows]) + "\n")
    study = QTLStudy(name="gtex", kind="eqtl", table=str(t), biosample="UBERON:0013756")
    with pytest.raises(GuardError, match="p-values"):
        load_study_table(study)


def test_guard_empty_after_harmonization(world, tmp_path):
    from agval.alleles.vcf import VcfSource
    from agval.alleles.cache import lookup_rsids

    one_alt = world.variants.group_by("rsid").len().filter(pl.col("len") == 1)["rsid"]
    v = world.variants.filter((pl.col("status") == "ok") & (pl.col("kind") == "snv") & pl.col("rsid").is_in(one_alt.to_list())
                              & ~(pl.col("ref") + pl.col("alt")).is_in(["AT", "TA", "CG", "GC"])).head(12)
    comp = {"A": "T", "C": "G", "G": "C", "T": "A"}
    # alleles REF / complement(ALT): they match the record on neither strand -> allele_mismatch
    rows = [[r["rsid"], "1", r["hg19_pos"], r["ref"], comp[r["alt"]], -0.3, "1e-5", "."] for r in v.iter_rows(named=True)]
    hdr = ["epiQTL rsID", "Chr", "Bp (hg19)", "Ref Allelec", "Alt Alleled", "log2 (effect size)",
           "H3K27ac p-valueb", "H3K4me1 p-valueb"]
    t = _csv(tmp_path / "mismatch.csv", hdr, rows)
    study = QTLStudy(name="empty", kind="hqtl", table=str(t), effect_allele="column:ref", other_allele="alt",
                     reference_fasta=str(world.root / "genome.fa"))
    loaded = load_study_table(study)
    looked = lookup_rsids(lookup_ids(loaded.frame), VcfSource(world.vcf_path))
    drops = DropLog()
    h = harmonize_lookup(study, loaded.frame, looked.table, study.reference_fasta, drops=drops)
    assert h.table.height == 0
    with pytest.raises(GuardError, match="after harmonization"):
        finalize(study, h)
    assert set(drops.frame()["reason"]) == {"allele_mismatch"}


# ----------------------------------------------------------------------------- eQTL, gene-matched

def test_eqtl_gene_matched_against_standin(world, alphagenome_standin, tmp_path):
    """GTEx layout on the coordinates route; corrected = the row's own gene's RNA_SEQ."""
    from agval.scoring import make_backend

    genes = world.genes.sort("start").head(4)
    rows = []
    for g in genes.iter_rows(named=True):
        near = world.variants.filter((pl.col("chrom") == g["chrom"]) & (pl.col("status") == "ok")
                                     & (pl.col("kind") == "snv") & ((pl.col("pos") - g["tss"]).abs() < 3000)).head(2)
        for r in near.iter_rows(named=True):
            rows.append([f"{r['chrom']}_{r['pos']}_{r['ref']}_{r['alt']}_b38", g["gene_id"], r["pos"] - g["tss"],
                         10, 12, 0.2, 1e-6, round(float(np.sin(r["pos"])), 4), 0.05])
    header = ["variant_id", "gene_id", "tss_distance", "ma_samples", "ma_count", "maf", "pval_nominal", "slope",
              "slope_se"]
    t = tmp_path / "Whole_Blood.v8.signif_variant_gene_pairs.txt"
    t.write_text("\n".join(["\t".join(header)] + ["\t".join(str(x) for x in r) for r in rows]) + "\n")
    study = QTLStudy(name="eqtl", kind="eqtl", table=str(t), biosample="UBERON:0013756", effect_allele="alt",
                     reference_fasta=str(world.root / "genome.fa"), n_boot=50)
    backend = make_backend({"kind": "alphagenome", "address": alphagenome_standin.address,
                            "world_dir": str(world.root)})
    out = run_plain(study, backend=backend, cache=None)
    res = out["result"]
    assert out["metrics"]["route"] == "coordinates"
    corr = res.selected["corrected"]
    assert corr.analysis.match == "gene" and set(corr.long["output_type"]) == {"RNA_SEQ"}
    # every corrected row was scored on its own gene only
    assert (corr.frame["x"].is_finite()).all() and corr.frame.height >= 4
    # GTEx slope is for ALT: orientation verified, direction claims allowed
    assert res.stats["corrected"]["n_orientation_verified"] == corr.frame.height
    assert res.stats["original"]["score"] == "quantile_score"


# ----------------------------------------------------------------------------- study model

def test_study_model_defaults_and_clear_errors(tmp_path):
    from pydantic import ValidationError

    from agval.errors import ConfigError
    from flows import registry

    s = QTLStudy(name="x", kind="hqtl", table="t.csv")
    assert (s.format, s.biosample, s.original_biosample) == ("gse116193", "EFO:0002784", "CL:0000236")
    assert s.sensitivity_biosamples == ["CL:0000236"] and s.seed_negate_beta and s.allele_columns == ["ref", "alt"]
    assert s.effect_allele == "unknown" and s.interval_width == 1_048_576 and s.modes == ["original", "corrected"]
    c = QTLStudy(name="x", kind="caqtl", table="t.csv")
    assert c.biosample == c.original_biosample == "CL:0000624" and not c.seed_negate_beta
    with pytest.raises(ValidationError, match="effect-allele convention"):
        QTLStudy(name="x", kind="caqtl", table="t.csv", effect_allele="beta")
    with pytest.raises(ValidationError, match="biosample"):
        QTLStudy(name="x", kind="eqtl", table="t.csv")
    bad = tmp_path / "bad.toml"
    bad.write_text('[study]\nname = "x"\nkind = "caqtl"\ntable = "t.csv"\nmodes = ["both"]\n')
    with pytest.raises(ConfigError, match=r"bad\.toml: study\.modes"):
        registry.load("qtl", bad)


def test_declared_alt_means_the_tables_own_alt_on_the_lookup_route(tmp_path):
    """Study lists ref=G, alt=A with beta +0.5 for its alt (A); dbSNP has A>G. The effect oriented
    to the scored ALT (G) must be -0.5 (found in review: the unordered match kept +0.5 and
    marked it verified)."""
    import polars as pl

    from agval.alleles.harmonize import harmonize
    from agval.qtl.harmonize import harmonize_options
    from agval.qtl.study import QTLStudy

    fa = tmp_path / "g.fa"
    fa.write_text(">chr1\n" + "C" * 9 + "A" + "C" * 10 + "\n")
    study = QTLStudy(name="rev", kind="generic", table=str(tmp_path / "t.csv"), format="generic",
                     reference_fasta=str(fa), biosample="CL:0000624", effect_allele="alt",
                     allele_columns=["ref", "alt"])
    rows = pl.DataFrame({"row_id": ["r1"], "rsid": ["rs1"], "ref": ["G"], "alt": ["A"], "beta": [0.5]})
    lookup = pl.DataFrame({"query": ["rs1"], "rsid": ["rs1"], "chrom": ["chr1"], "pos": [10], "ref": ["A"],
                           "alt": ["G"], "af": [0.3], "source": ["test"], "source_version": ["1"],
                           "assembly": ["hg38"], "hgvs_id": ["chr1:g.10A>G"], "status": ["ok"]})
    res = harmonize(rows, lookup, fa, guards=False, **harmonize_options(study))
    out = res.table.row(0, named=True)
    assert (out["ref"], out["alt"]) == ("A", "G")
    assert out["beta_alt"] == -0.5 and out["orientation_verified"] is True


def test_original_one_row_per_snp_records_the_rows_it_sets_aside():
    """hQTL original mode keeps one row per SNP; the other mark's row must be a recorded drop,
    not vanish (found in review)."""
    import polars as pl

    from agval.drops import DropLog
    from agval.qtl.analysis import analysis_frame
    from agval.qtl.modality import Analysis
    from agval.scoring.tracks import TrackSelection

    rows = pl.DataFrame({"row_id": ["h:1:H3K27ac", "h:1:H3K4me1", "h:2:H3K27ac"], "rsid": ["rs1", "rs1", "rs2"],
                         "beta_seed": [0.5, 0.5, -0.2]})
    pooled = pl.DataFrame({"row_id": ["h:1:H3K27ac", "h:1:H3K4me1", "h:2:H3K27ac"], "score": [0.3, 0.3, -0.1],
                           "quantile_score": [0.9, 0.9, -0.5], "n_tracks": [10, 10, 10]})
    an = Analysis(name="original", mode="original", biosample="CL:0000236", outputs=("CHIP_HISTONE",),
                  selection=TrackSelection(output_types=["CHIP_HISTONE"]), score_col="quantile_score",
                  beta_col="beta_seed", one_row_per="rsid")
    drops = DropLog()
    out = analysis_frame(rows, pooled, an, drops=drops)
    assert out["row_id"].to_list() == ["h:1:H3K27ac", "h:2:H3K27ac"]
    f = drops.frame()
    assert f.select("row_id", "stage", "reason").rows() == [("h:1:H3K4me1", "analyse", "one_row_per_rsid")]
