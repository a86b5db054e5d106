"""QTL cells, headline and the smaller issue-12 items, as plain functions (fast):

* caQTL corrected: ATAC primary, DNase secondary, the ATAC+DNase pool a sensitivity row;
  the headline leads with magnitude (effect allele unknown), signed rho labelled;
* hQTL corrected: per mark, per SNP (one beta = one unit), pooled mark rows as sensitivity;
* BH q over the cells equals scipy; the pre-specified primary cell is named and unadjusted;
* P4: the corrected mode uses the a-priori-oriented beta, never the seed's flip;
* GTEx effect allele ALT by default; hQTL input_rows counted once per file row; non-rs ids
  dropped naming them; provenance of a precomputed table from the table itself; MPRA
  ontology_terms = [] refused without all_tracks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from agval.qtl import QTLStudy, plan_analyses
from agval.qtl.analysis import Selected, analysis_frame, analysis_statistics, headline
from agval.qtl.load import load_study_table
from agval.stats.qtl import qtl_clusters
from standins.null_qtl import null_caqtl, null_hqtl

TOL = 1e-12


def _selected(study: QTLStudy, name: str, rows: pl.DataFrame, long: pl.DataFrame) -> Selected:
    a = {x.name: x for x in plan_analyses(study, marks=["H3K27ac", "H3K4me1"])}[name]
    pooled = (long.group_by("row_id", maintain_order=True)
              .agg(pl.col("score").mean(), pl.col("raw_score").mean(), pl.col("quantile_score").mean(),
                   pl.col("track").n_unique().alias("n_tracks")))
    return Selected(a, long, pooled, analysis_frame(rows, pooled, a))


def _long(row_id, track, output_type, mark, score) -> pl.DataFrame:
    n = len(row_id)
    return pl.DataFrame({"row_id": row_id, "track": [track] * n, "output_type": [output_type] * n,
                         "histone_mark": [mark] * n, "ontology_curie": ["CL:0000624"] * n,
                         "score": score, "raw_score": score, "quantile_score": np.tanh(score)})


@pytest.fixture(scope="module")
def caqtl():
    ca = null_caqtl(np.random.default_rng(4), n_blocks=50, effect=0.3)
    ids = [f"caQTL:{i + 1}" for i in range(ca.n_rows)]
    rows = pl.DataFrame({"row_id": ids, "rsid": list(ca.snp), "variant_key": [f"chr1:{p}:A>G" for p in ca.pos],
                         "cluster_id": list(ca.peak), "orientation_verified": [False] * ca.n_rows,
                         "beta": ca.beta, "beta_alt": ca.beta, "beta_seed": ca.beta})
    long = pl.concat([_long(ids, "ATAC CD4", "ATAC", None, ca.atac), _long(ids, "DNase CD4", "DNASE", None, ca.dnase)])
    study = QTLStudy(name="ca", kind="caqtl", table="t.csv", n_boot=200, n_perm=200, seed=3)
    return study, _selected(study, "corrected", rows, long), ca


def test_caqtl_cells_atac_primary_dnase_secondary_pool_sensitivity(caqtl):
    study, sel, ca = caqtl
    st = analysis_statistics(sel, study)
    cells = st["cells"]
    assert list(cells) == ["ATAC", "DNASE", "pooled"] and st["primary_cell"] == "ATAC" == study.primary_cell
    assert [c["role"] for c in cells.values()] == ["primary", "secondary", "sensitivity"]
    # each cell equals its scipy oracle on its own score
    for name, x in (("ATAC", ca.atac), ("DNASE", ca.dnase), ("pooled", (ca.atac + ca.dnase) / 2)):
        c = cells[name]
        assert c["headline_statistic"] == "magnitude_spearman_rho"
        assert abs(c["estimate"] - stats.spearmanr(np.abs(x), ca.beta).statistic) < 1e-9
        assert abs(c["pearson_r"] - stats.pearsonr(x, ca.beta).statistic) < 1e-9
        assert c["permutation_unit"] == "cluster" and c["n_clusters"] == len(set(
            qtl_clusters(ca.snp, ca.peak, chrom=ca.chrom, pos=ca.pos, window=study.unit_window)))
    # BH over the cells of the analysis
    q = stats.false_discovery_control([c["estimate_perm_p"] for c in cells.values()])
    np.testing.assert_allclose([c["q_bh"] for c in cells.values()], q, atol=TOL)
    h = headline(study, {"corrected": st}, None)
    assert h["primary_cell"] == "ATAC" and h["headline_statistic"] == "magnitude_spearman_rho"
    assert h["estimate"] == cells["ATAC"]["estimate"] and h["estimate_perm_p"] == cells["ATAC"]["estimate_perm_p"]
    assert h["direction"] == "unverified" and "direction unverified" in h["spearman_rho_label"]
    assert h["pooled"]["role"] == "sensitivity" and h["pooled"]["q_bh"] == cells["pooled"]["q_bh"]
    assert h["estimate_ci_low"] <= h["estimate"] <= h["estimate_ci_high"]
    assert h["pearson_ci_low"] <= h["pearson_r"] <= h["pearson_ci_high"]


def test_single_output_type_is_the_primary_cell(caqtl):
    study, sel, ca = caqtl
    atac_only = Selected(sel.analysis, sel.long.filter(pl.col("output_type") == "ATAC"), sel.pooled, sel.frame)
    st = analysis_statistics(atac_only, study)
    assert list(st["cells"]) == ["ATAC"] and st["primary_cell"] == "ATAC"
    assert headline(study, {"corrected": st}, None)["primary_cell_available"] is True


def test_primary_cell_is_read_from_the_study(caqtl):
    study, sel, _ = caqtl
    s2 = study.model_copy(update={"primary_cell": "DNASE"})
    st = analysis_statistics(sel, s2)
    assert st["primary_cell"] == "DNASE" and st["cells"]["ATAC"]["role"] == "secondary"
    assert headline(s2, {"corrected": st}, None)["primary_cell"] == "DNASE"


@pytest.fixture(scope="module")
def hqtl():
    hq = null_hqtl(np.random.default_rng(9), n_snps=120, effect=0.5)
    ids = [f"hQTL:{s[2:]}:{m}" for s, m in zip(hq.snp, hq.mark)]
    rows = pl.DataFrame({"row_id": ids, "rsid": list(hq.snp),
                         "variant_key": [f"chr2:{int(s[2:]) * 1_000_000}:C>T" for s in hq.snp],  # 1 Mb apart
                         "cluster_id": [f"chr2:{s[2:]}" for s in hq.snp], "orientation_verified": [True] * hq.n_rows,
                         "beta": hq.beta, "beta_alt": hq.beta, "beta_seed": -hq.beta, "mark": list(hq.mark),
                         "source_row": [int(s[2:]) for s in hq.snp]})
    long = pl.concat([_long([i], f"GM12878 {m}", "CHIP_HISTONE", m, [x])
                      for i, m, x in zip(ids, hq.mark, hq.score)])
    study = QTLStudy(name="hq", kind="hqtl", table="t.csv", n_boot=200, n_perm=200, seed=3)
    return study, _selected(study, "corrected", rows, long), hq


def test_hqtl_cells_per_mark_and_per_snp(hqtl):
    study, sel, hq = hqtl
    st = analysis_statistics(sel, study)
    cells = st["cells"]
    assert list(cells) == ["H3K27ac", "H3K4me1", "per_snp", "pooled"] and st["primary_cell"] == "H3K27ac"
    assert cells["pooled"]["role"] == "sensitivity" and cells["per_snp"]["role"] == "secondary"
    for m in ("H3K27ac", "H3K4me1"):
        k = hq.mark == m
        assert cells[m]["n"] == k.sum() and cells[m]["headline_statistic"] == "spearman_rho"
        assert abs(cells[m]["spearman_rho"] - stats.spearmanr(hq.score[k], hq.beta[k]).statistic) < 1e-9
    # per SNP: one row per SNP, the mean of its marks' scores against its one beta
    df = pl.DataFrame({"snp": list(hq.snp), "x": hq.score, "y": hq.beta}).group_by("snp").agg(
        pl.col("x").mean(), pl.col("y").first())
    assert cells["per_snp"]["n"] == df.height == len(set(hq.snp)) < hq.n_rows
    assert abs(cells["per_snp"]["spearman_rho"] - stats.spearmanr(df["x"], df["y"]).statistic) < 1e-9
    # the pooled sensitivity row resamples SNPs: two marks of one SNP are one unit
    assert cells["pooled"]["n"] == hq.n_rows and cells["pooled"]["n_clusters"] == len(set(hq.snp))
    h = headline(study, {"corrected": st}, None)
    assert h["primary_cell"] == "H3K27ac" and h["direction"] == "verified"
    assert h["sign_perm_p"] == cells["H3K27ac"]["sign_perm_p"] and 0 < h["sign_perm_p"] <= 1


def test_hqtl_default_primary_follows_restricted_marks():
    s = QTLStudy(name="hq", kind="hqtl", table="t.csv", marks=["H3K4me1"])
    assert s.primary_cell == "H3K4me1"
    assert QTLStudy(name="ca", kind="caqtl", table="t.csv").primary_cell == "ATAC"
    assert QTLStudy(name="g", kind="eqtl", table="t.txt", biosample="UBERON:1").primary_cell == "pooled"


def test_p4_corrected_mode_uses_the_a_priori_oriented_beta(hqtl):
    """The seed negated the hQTL beta after seeing the data (P4). The corrected analysis must
    take beta_alt, oriented by the declared convention, whatever seed_negate_beta says; only
    the original analysis carries the seed's flip. Fails if corrected ever used beta_seed."""
    study, sel, hq = hqtl
    rows = sel.frame.select("row_id", "rsid", "variant_key", "cluster_id", "orientation_verified", "mark").join(
        pl.DataFrame({"row_id": sel.frame["row_id"], "beta_alt": sel.frame["y"]}), on="row_id")
    rows = rows.with_columns(pl.col("beta_alt").alias("beta"), (-pl.col("beta_alt")).alias("beta_seed"),
                             pl.lit(1).alias("source_row"))
    for negate in (True, False):
        s = study.model_copy(update={"seed_negate_beta": negate})
        an = {a.name: a for a in plan_analyses(s, marks=["H3K27ac", "H3K4me1"])}
        assert an["corrected"].beta_col == "beta_alt" and an["original"].beta_col == "beta_seed"
        f = analysis_frame(rows, sel.pooled, an["corrected"])
        np.testing.assert_array_equal(f["y"].to_numpy(), f.join(rows.select("row_id", "beta_alt"), on="row_id")
                                      ["beta_alt"].to_numpy())
        assert (f["y"].to_numpy() != f.join(rows.select("row_id", "beta_seed"), on="row_id")["beta_seed"]
                .to_numpy()).all()
    st = analysis_statistics(sel, study)
    assert st["cells"]["H3K27ac"]["spearman_rho"] > 0.2, "the planted (positive) association keeps its sign"


# ----------------------------------------------------------------------------- smaller items


def test_gtex_effect_allele_defaults_to_alt():
    s = QTLStudy(name="g", kind="eqtl", table="pairs.txt", biosample="UBERON:0013756")
    assert s.format == "gtex" and s.effect_allele == "alt" and s.convention.verified
    assert QTLStudy(name="c", kind="caqtl", table="t.csv").effect_allele == "unknown"
    assert QTLStudy(name="g", kind="eqtl", table="p.txt", biosample="U:1", effect_allele="unknown").effect_allele \
        == "unknown"


def test_hqtl_input_rows_counted_once_per_file_row(tmp_path):
    p = tmp_path / "Pelikan_et_al_hQTL_summary.csv"
    p.write_text("epiQTL rsID,Chr,Bp (hg19),Ref Allelec,Alt Alleled,log2 (effect size),H3K27ac p-valueb,"
                 "H3K4me1 p-valueb\n"
                 "rs1,1,1000,A,G,0.5,1e-5,1e-4\n"
                 "rs2,1,2000,C,T,-0.3,1e-6,.\n"
                 "rs3,1,3000,G,A,0.2,.,1e-5\n")
    s = QTLStudy(name="hq", kind="hqtl", table=str(p), marks=["H3K27ac"])
    loaded = load_study_table(s)
    assert loaded.n_input_rows == 3          # was 4: rs1 counted as kept (H3K27ac) and dropped (H3K4me1)
    assert loaded.frame.height == 2
    assert QTLStudy.model_validate({**s.model_dump(), "marks": None}) and load_study_table(
        s.model_copy(update={"marks": None})).n_input_rows == 3


def test_non_rs_ids_are_dropped_naming_them(world, tmp_path):
    from agval.alleles import VcfSource, lookup_rsids
    from agval.drops import DropLog
    from agval.qtl.harmonize import harmonize_lookup, lookup_ids

    v = world.variants.filter((pl.col("status") == "ok") & (pl.col("kind") == "snv")).unique("rsid").head(12)
    lines = ["epiQTL rsID,Chr,Bp (hg19),Ref Allelec,Alt Alleled,log2 (effect size),H3K27ac p-valueb,H3K4me1 p-valueb"]
    for i, r in enumerate(v.iter_rows(named=True)):
        lines.append(f"{r['rsid']},1,{1000 + i},{r['ref']},{r['alt']},{0.1 * (i + 1)},1e-5,.")
    lines += ["chr1:100,1,100,A,G,0.3,1e-5,.", "esv123,1,200,A,G,0.3,1e-5,.", ",1,300,A,G,0.3,1e-5,."]
    p = tmp_path / "Pelikan_et_al_hQTL_summary.csv"
    p.write_text("\n".join(lines) + "\n")
    s = QTLStudy(name="hq", kind="hqtl", table=str(p), reference_fasta=str(world.root / "genome.fa"))
    loaded = load_study_table(s)
    drops = DropLog()
    looked = lookup_rsids(lookup_ids(loaded.frame), VcfSource(world.vcf_path))
    harmonize_lookup(s, loaded.frame, looked.table, s.reference_fasta, drops=drops)
    d = drops.frame().filter(pl.col("stage") == "lookup")
    det = dict(zip(d["source_row"].to_list(), d["detail"].to_list()))
    reasons = dict(zip(d["source_row"].to_list(), d["reason"].to_list()))
    assert reasons[13] == "malformed_rsid" and "'chr1:100' is not an rsID" in det[13] and "position" in det[13]
    assert reasons[14] == "malformed_rsid" and "'esv123' is not an rsID" in det[14]
    assert reasons[15] == "missing_rsid" and det[15] == "no rsID given"


def test_precomputed_provenance_comes_from_the_table(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from agval.scoring.precomputed import PrecomputedBackend, table_provenance
    from standins import SIMULATED_DATA_SOURCE

    base = {"row_id": ["a:1", "a:2"], "score": [0.1, 0.2]}
    pl.DataFrame({**base, "data_source": [SIMULATED_DATA_SOURCE] * 2}).write_parquet(tmp_path / "sim.parquet")
    pl.DataFrame({**base, "data_source": ["encode", "encode"]}).write_csv(tmp_path / "real.csv")
    pl.DataFrame(base).write_csv(tmp_path / "bare.csv")
    t = pa.table(base).replace_schema_metadata({"data_source": SIMULATED_DATA_SOURCE})
    pq.write_table(t, tmp_path / "meta.parquet")
    assert table_provenance(tmp_path / "sim.parquet")["provenance"] == "simulated"
    assert table_provenance(tmp_path / "meta.parquet")["provenance"] == "simulated"
    assert table_provenance(tmp_path / "real.csv")["provenance"] == "real"
    assert table_provenance(tmp_path / "bare.csv")["provenance"] == "unknown"
    # the variant-score backend: a stand-in table is simulated whatever the caller says
    tbl = pl.DataFrame({"variant_key": ["chr1:10:A>G"], "raw_score": [0.3], "track_name": ["t"],
                        "data_source": [SIMULATED_DATA_SOURCE]})
    b = PrecomputedBackend(tbl, simulated=False)
    assert b.simulated and b.describe()["provenance"] == "simulated"
    b2 = PrecomputedBackend(tbl.drop("data_source"))
    assert not b2.simulated and b2.describe()["provenance"] == "unknown"


def test_qtl_precomputed_run_takes_provenance_from_the_predictions(world_dir, tmp_path):
    from agval.qtl.pipeline import run_plain
    from standins import SIMULATED_DATA_SOURCE
    from standins.world.studies import qtl as gen

    files = gen.generate(world_dir, tmp_path, seed=0, n_caqtl=30, n_hqtl=10, n_boot=50, kinds=("caqtl",))
    planted = pl.read_parquet(files[0].parent / "caqtl-cd4" / "planted.parquet")
    labelled = tmp_path / "pred.parquet"
    planted.with_columns(pl.lit(SIMULATED_DATA_SOURCE).alias("data_source")).write_parquet(labelled)
    from agval.config import BackendConfig, LookupConfig, load_study_file
    from pydantic import create_model

    model = create_model("F", study=(QTLStudy, ...), backend=(BackendConfig, BackendConfig()),
                         lookup=(LookupConfig, LookupConfig()))
    s = load_study_file(files[0], model).study
    s = QTLStudy.model_validate({**s.model_dump(), "predictions": str(labelled), "n_boot": 50, "n_perm": 50,
                                 "prediction_columns": {"corrected": "true_effect"}, "modes": ["corrected"]})
    out = run_plain(s, simulated=False)
    assert out["result"].simulated is True
    assert out["metrics"]["predictions_provenance"]["provenance"] == "simulated"
    unlabelled = tmp_path / "pred2.parquet"
    planted.write_parquet(unlabelled)
    out = run_plain(s.model_copy(update={"predictions": str(unlabelled)}), simulated=False)
    assert out["result"].simulated is False
    assert out["metrics"]["predictions_provenance"]["provenance"] == "unknown"
    json.dumps(out["metrics"], default=str)
    # an underflowed P is printed from its log10 value, never as 0 (report tables and summary)
    from agval.qtl.pipeline import cells_table, comparison_table, report_parts

    res = out["result"]
    st = res.stats["corrected"]
    st.update(spearman_p=0.0, spearman_log10_p=-450.3, magnitude_spearman_p=0.0, magnitude_spearman_log10_p=-612.5)
    st["cells"]["pooled"].update(estimate_p=0.0, magnitude_spearman_log10_p=-612.5, spearman_log10_p=-450.3)
    res.headline.update(estimate_p=0.0, magnitude_spearman_log10_p=-612.5)
    ct = comparison_table(res)
    row = dict(zip(ct["statistic"], ct["corrected"]))
    assert row["spearman_p"] == "5.01e-451" and row["magnitude_spearman_p"] == "3.16e-613"
    assert cells_table(res)["row_p"][0] == "3.16e-613"
    sections, _, _ = report_parts(res, counts={"input_rows": 1}, route="precomputed")
    summary = dict(sections)["Summary"]
    assert "row-level P = 3.16e-613" in summary and "P = 0 " not in summary and "P = 0)" not in summary


def test_mpra_empty_ontology_terms_needs_explicit_all_tracks():
    from pydantic import ValidationError

    from flows.mpra import MPRAStudy

    with pytest.raises(ValidationError, match="P14"):
        MPRAStudy(counts=["x.txt"], ontology_terms=[])
    assert MPRAStudy(counts=["x.txt"], ontology_terms=[], all_tracks=True).all_tracks
    with pytest.raises(ValidationError, match="contradicts"):
        MPRAStudy(counts=["x.txt"], all_tracks=True)
    assert MPRAStudy(counts=["x.txt"]).ontology_terms == ["CL:0000136"]
