"""Replaying saved outputs: an SDK tidy_scores table through the precomputed backend, the
QTL precomputed path's distinct variants, and the MPRA prediction-column naming rule."""

from __future__ import annotations


import numpy as np
import polars as pl
import pytest

from agval.coords import Variant
from agval.errors import InputError
from agval.scoring import score
from agval.scoring.precomputed import PrecomputedBackend

SDK_COLUMNS = ["variant_id", "scored_interval", "gene_id", "gene_name", "gene_type", "gene_strand", "junction_Start",
               "junction_End", "output_type", "variant_scorer", "track_name", "track_strand", "Assay title",
               "ontology_curie", "biosample_name", "biosample_type", "biosample_life_stage", "gtex_tissue",
               "data_source", "endedness", "genetically_modified", "raw_score", "quantile_score",
               "abs_quantile_score"]
REAL = "alphagenome/variant-scores_rnaseq_decodeme_significant_brain_protein-coding.csv.gz"


def _variants(ids: list[str]) -> pl.DataFrame:
    vs = [Variant.parse(i) for i in ids]
    return pl.DataFrame({"row_id": ids, "chrom": [v.chrom for v in vs], "pos": [v.pos for v in vs],
                         "ref": [v.ref for v in vs], "alt": [v.alt for v in vs]})


def test_real_saved_tidy_scores_replay(shared_data):
    path = shared_data / REAL
    if not path.is_file():
        pytest.skip("the saved tidy_scores table is absent")
    raw = pl.read_csv(path, infer_schema_length=10000)
    assert raw.columns == SDK_COLUMNS and raw.height == 4398
    backend = PrecomputedBackend(path, model="alphagenome-saved")
    assert backend.provenance["provenance"] == "real" and not backend.simulated
    ids = raw["variant_id"].unique(maintain_order=True).to_list()
    assert len(ids) == 341
    run = score(_variants(ids), ["RNA_SEQ"], backend=backend, cache=None, progress=False)
    assert run.failures.height == 0
    s = run.scores
    assert s.height == 4398
    assert s["scorer"].unique().to_list() == ["GeneMaskLFCScorer(requested_output=RNA_SEQ)"]
    assert s["assay"].null_count() == 0 and set(s["assay"]) == set(raw["Assay title"])
    # every saved row comes back with its own value (float32 as the backend stores scores)
    key = ["variant_key", "gene_id", "track_name", "track_strand"]
    want = raw.select(pl.col("variant_id").alias("variant_key"), "gene_id", "track_name",
                      pl.col("track_strand").cast(pl.Utf8), pl.col("raw_score").alias("want"),
                      pl.col("quantile_score").alias("want_q"))
    j = s.join(want, on=key, how="inner", validate="1:1")
    assert j.height == 4398
    assert np.allclose(j["raw_score"].to_numpy(), j["want"].to_numpy(), rtol=1e-6, atol=1e-7)
    assert np.allclose(j["quantile_score"].to_numpy(), j["want_q"].to_numpy(), rtol=1e-6, atol=1e-7)
    # a scorer the table does not hold is NOT_FOUND, not silently empty
    miss = score(_variants(ids[:2]), ["ATAC"], backend=backend, cache=None, progress=False)
    assert miss.failures.height == 2 and miss.scores.height == 0


def _tidy(rows: list[dict]) -> pl.DataFrame:
    base = {c: None for c in SDK_COLUMNS}
    return pl.DataFrame([{**base, **r} for r in rows], schema={
        **{c: pl.Utf8 for c in SDK_COLUMNS}, "junction_Start": pl.Int64, "junction_End": pl.Int64,
        "raw_score": pl.Float64, "quantile_score": pl.Float64, "abs_quantile_score": pl.Float64,
        "genetically_modified": pl.Boolean})


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_sdk_tidy_table_keeps_junctions_assay_and_scorer(tmp_path, fmt):
    sj = "SpliceJunctionScorer()"
    rows = [dict(variant_id="chr1:1000:A>G", gene_id="ENSG1", output_type="SPLICE_JUNCTIONS", variant_scorer=sj,
                 junction_Start=900 + k, junction_End=1200, track_name="brain", track_strand="+",
                 **{"Assay title": "polyA plus RNA-seq"}, data_source="encode", raw_score=0.1 * (k + 1),
                 quantile_score=0.5) for k in range(3)]
    rows.append(dict(variant_id="chr1:1000:A>G", gene_id="ENSG1", output_type="RNA_SEQ",
                     variant_scorer="GeneMaskLFCScorer(requested_output=RNA_SEQ)", track_name="brain",
                     track_strand="+", **{"Assay title": "total RNA-seq"}, data_source="encode", raw_score=-1.0))
    df = _tidy(rows)
    path = tmp_path / f"tidy.{fmt}"
    df.write_parquet(path) if fmt == "parquet" else df.write_csv(path)
    b = PrecomputedBackend(path)
    run = score(_variants(["chr1:1000:A>G"]), ["SPLICE_JUNCTIONS", "RNA_SEQ"], backend=b, cache=None,
                progress=False)
    s = run.scores.sort("scorer", "junction_start")
    assert s.height == 4 and run.failures.height == 0
    spl = s.filter(pl.col("scorer") == sj)
    assert spl["junction_start"].to_list() == [900, 901, 902] and spl["junction_end"].to_list() == [1200] * 3
    assert s.filter(pl.col("output_type") == "RNA_SEQ")["assay"].to_list() == ["total RNA-seq"]


# ----------------------------------------------------------------------------- QTL precomputed: distinct variants

def test_qtl_precomputed_counts_distinct_variants_by_coordinates(world_dir, tmp_path):
    from agval.qtl import QTLStudy
    from agval.qtl.harmonize import orient_in_place
    from agval.qtl.load import load_study_table
    from standins.world.studies import qtl as gen

    toml = gen.generate(world_dir, tmp_path, seed=0, n_hqtl=40, n_boot=0, kinds=("hqtl",))[0]
    planted = toml.parent / "hqtl-lcl" / "planted.parquet"
    study = QTLStudy(name="h", kind="hqtl", table=str(toml.parent / "hqtl-lcl" / "Pelikan_et_al_hQTL_summary.csv"),
                     predictions=str(planted), prediction_columns={"corrected": "driver"}, modes=["corrected"],
                     effect_allele="column:ref", other_allele="alt")
    loaded = load_study_table(study)
    h = orient_in_place(study, loaded.frame)
    t = h.table
    assert {"hg19_chrom", "hg19_pos", "ref", "alt"} <= set(t.columns)
    expected = t.select("hg19_chrom", "hg19_pos", pl.col("ref").str.to_uppercase(),
                        pl.col("alt").str.to_uppercase()).n_unique()
    # one SNP in several marks is one variant: fewer variants than rows, counted by coordinates
    assert h.counts()["unique_variants"] == expected < t.height
    assert t["variant_key"].str.contains(r"^chr\w+:\d+:[ACGTN]+>[ACGTN]+$").all()


# ----------------------------------------------------------------------------- MPRA prediction columns

def test_mpra_prediction_columns_follow_one_naming_rule(tmp_path):
    from agval.mpra.predictions import is_prediction_column, load_predictions

    p = tmp_path / "preds.tsv"
    p.write_text("locus_id\tn\tn_barcodes\tlength\tcounts_rna\tgc\tdnase_center\tcage_mean_plus\tpred_enformer\n"
                 "L1\t3\t10\t200\t50\t0.4\t1.5\t0.2\t0.9\nL2\t4\t12\t200\t60\t0.5\t2.5\t0.3\t0.1\n")
    preds, key, aggs = load_predictions(p)
    assert key == "locus_id" and aggs == ["dnase_center", "cage_mean_plus", "pred_enformer"]
    assert not any(is_prediction_column(c) for c in ("n", "n_barcodes", "length", "counts_rna", "gc", "dnase",
                                                     "pred_", "rna_"))
    # explicit columns win, whatever their names
    _, _, explicit = load_predictions(p, columns=["gc"])
    assert explicit == ["gc"]
    q = tmp_path / "none.tsv"
    q.write_text("locus_id\tn\tscore\nL1\t3\t0.5\n")
    with pytest.raises(InputError, match="<assay>_<aggregate>"):
        load_predictions(q)
