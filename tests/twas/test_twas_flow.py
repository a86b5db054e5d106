"""The TWAS concordance flow end to end against the stand-ins (SIMULATED), and the demo
study generator's files.

One small study is generated from the session's world (8 genes); the flow runs once
through ``agval run twas FILE`` (registry -> Prefect flow -> stand-in AlphaGenome +
stand-in myvariant.info) and once on a precomputed "perfect model" table.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from agval.io.twas import load_fusion_dat
from agval.runs import load_manifest
from agval.twas import inputs



@pytest.fixture(scope="module")
def twas_study(world_dir, tmp_path_factory):
    from standins.world.studies.twas import generate

    out = tmp_path_factory.mktemp("twas-study")
    paths = generate(world_dir, out, seed=3, n_genes=8, n_variants=8, n_background=300, n_permutations=200)
    return {"dir": out, "toml": paths[0], "paths": paths}


@pytest.fixture(scope="module")
def world_myvariant(world_dir):
    from standins.myvariant.server import serve

    h = serve(world_dir)
    yield h
    h.stop()


# ------------------------------------------------------------------------------ generator

def test_generator_writes_real_formats_with_planted_twas(twas_study, world_dir, tmp_path):
    from standins.world.studies.twas import generate

    d = twas_study["dir"]
    toml = twas_study["toml"]
    assert toml.name == "twas-af-demo.toml" and "[backend]" in toml.read_text()
    assert [p for p in twas_study["paths"] if p.suffix == ".toml"] == [toml]  # the demo runs every .toml
    assert sorted(p.name for p in d.glob("*.toml")) == [toml.name]           # deployments glob *.toml
    with gzip.open(d / "gwas" / "af_gwas.tsv.gz", "rt") as fh:
        header = fh.readline().rstrip("\n").split("\t")
    assert header[:4] == ["chromosome", "base_pair_location", "effect_allele", "other_allele"]
    fus = sorted((d / "fusion").glob("*.dat"))
    assert len(fus) == 10
    tw, drops = load_fusion_dat(fus[0])
    assert tw["tissue"].n_unique() == 1 and tw["gene_id"].str.contains(r"^ENSG\d+$").all()
    sus = inputs.load_susie_files(d / "susie")
    assert sus["pip"].is_between(0, 1).all() and (sus["cs"] >= 0).any() and (sus["cs"] == -1).any()
    planted = pl.read_parquet(d / "planted.parquet")
    # TWAS.Z in the .dat files is the planted one (FUSION's w'z / sqrt(w'Rw))
    all_tw = inputs.load_twas_files(d / "fusion")
    j = all_tw.join(planted.select("gene_id", "tissue", "twas_z").unique(["gene_id", "tissue"]),
                    on=["gene_id", "tissue"], suffix="_planted")
    assert j.height == all_tw.height > 0
    np.testing.assert_allclose(j["twas_z"].to_numpy(), j["twas_z_planted"].to_numpy(), rtol=1e-5)
    assert (planted.filter(pl.col("tested"))["twas_p"] < 4.7e-6).sum() > 0
    # same world + seed -> identical files; the null world plants no mediation
    small = {"seed": 5, "n_genes": 2, "n_variants": 5, "n_background": 50}
    again = generate(world_dir, tmp_path / "again", **small)
    again2 = generate(world_dir, tmp_path / "again2", **small)
    assert [p.read_bytes() for p in again[1:4]] == [p.read_bytes() for p in again2[1:4]]
    null = generate(world_dir, tmp_path / "null", **small, null=True)
    assert null[0].name == "twas-null-demo.toml"
    assert not pl.read_parquet(null[2])["acting"].any()


# ------------------------------------------------------------------------------ the flow

@pytest.fixture(scope="module")
def cli_run(prefect_api, twas_study, alphagenome_standin, world_myvariant) -> Path:
    """``agval run twas FILE`` once for the module; its run folder."""
    from typer.testing import CliRunner

    from agval.cli.run import app

    res = CliRunner().invoke(app, ["twas", str(twas_study["toml"]), "--address", alphagenome_standin.address,
                                   "--lookup-source", "myvariant", "--myvariant-url", world_myvariant.base_url, "--json"])
    assert res.exit_code == 0, (res.output, res.exception)
    return Path(re.search(r'"run_folder": "([^"]+)"', res.output).group(1))


def test_agval_run_twas_end_to_end(cli_run, twas_study):
    folder = cli_run

    man = load_manifest(folder)
    assert man["simulated"] is True and man["status"] == "completed" and man["flow"] == "twas-concordance"
    tmap = man["notes"]["tissue_map"]
    assert "tissue_map.tsv" in tmap["source"] and "Lung" in tmap["map"] and tmap["map"]["Whole_Blood"]["ATAC"] == []
    assert man["notes"]["seeds"] == {"study": 3, "q1": 3, "q4": 4, "corrected": 5}
    assert any(i["role"].startswith("eqtl") for i in man["inputs"])
    assert any(i["role"] == "gwas" for i in man["inputs"]) and any(i["role"].startswith("susie") for i in man["inputs"])

    metrics = json.loads((folder / "metrics.json").read_text())
    for k in ("q1", "q1_heart_vs_nonheart", "q2", "q3", "q4", "data", "headline", "track_coverage"):
        assert k in metrics
    assert metrics["q1"] and metrics["q2"] and metrics["q3"]
    assert {r["assay"] for r in metrics["q1"]} == {"RNA", "ATAC", "DNASE", "CAGE"}
    assert metrics["data"]["triplets"] > 0 and metrics["data"]["variants_scored"] > 0
    assert metrics["settings"]["n_permutations"] == 200

    html = (folder / "report.html").read_text()
    assert html.count("<img") >= 10 and "SIMULATED" in html and "Drop funnel" in html
    assert len(list((folder / "plots").glob("*.png"))) >= 10

    dropped = pl.read_parquet(folder / "dropped.parquet")
    reasons = set(dropped["reason"].to_list())
    assert {"notfound", "missing_twas"} <= reasons  # an rsID dbSNP lacks, a failed FUSION model

    # z oriented to ALT = the planted z for every triplet; planted concordance is detected
    trip = pl.read_parquet(folder / "tables" / "triplets.parquet")
    planted = pl.read_parquet(twas_study["dir"] / "planted.parquet")
    j = trip.filter(pl.col("assay") == "RNA").join(planted.select("variant_key", "gene_id", "tissue", "z_alt", "b"),
                                                  on=["variant_key", "gene_id", "tissue"], suffix="_planted")
    assert j.height == trip.filter(pl.col("assay") == "RNA").height > 0
    np.testing.assert_allclose(j["z_alt"].to_numpy(), j["z_alt_planted"].to_numpy(), rtol=1e-4)
    rna = [r for r in metrics["q1"] if r["assay"] == "RNA" and r["pooled"]][0]
    assert rna["n"] > 0 and rna["accuracy"] > 0.6
    q2 = [r for r in metrics["q2"] if r["assay"] == "RNA"][0]
    assert q2["fold"] > 1

    # corrected mode: intervals, BH q values, the pre-specified cell, the primary Q1 estimand
    c = metrics["corrected"]
    eq = [r for r in c["q1_eqtl"] if r["pooled"]][0]
    # 8 genes = 8 loci: the within-locus permutation has little room, so only the estimate is pinned here
    # (power is checked in the mediation world, tests/test_twas_corrected.py)
    assert eq["assay"] == "RNA" and eq["n"] > 0 and eq["accuracy"] > 0.6 and 0 < eq["perm_p"] <= 1
    assert eq["ci_low"] <= eq["accuracy"] <= eq["ci_high"]
    cells = [r for r in c["q1_twas"] if not r["pooled"] and r["perm_p"] is not None]
    assert cells and all(r["bh_q"] >= r["perm_p"] - 1e-12 for r in cells)
    assert all(r["rho_ci_low"] is not None for r in c["q4"]) and all("bh_q" in r for r in c["q4"])
    assert metrics["primary_cell"]["cell"] == "Heart_Atrial_Appendage/DNASE"
    assert metrics["primary_cell"]["adjustment"].startswith("none")
    h = metrics["headline"]["RNA"]
    assert len(h["q1_accuracy_ci"]) == 2 and h["q1_eqtl_perm_p"] is not None and "q3_rho_perm_p" in h
    assert "Pre-specified cell" in html and "colocalisation" in html and "marginal eQTL effect" in html
    # the demo gives the models' weights and LD: Q1 against the leave-one-variant-out TWAS.Z, and the
    # TWAS.Z recomputed from weights + GWAS (half its rows on REF or the other strand) + LD is FUSION's
    loo = metrics["leave_one_out"]
    assert loo["loo_gene_tissues"] > 0 and loo["loo_rows"] > 0 and loo["loo_twas_z_recomputed_r"] > 0.99
    lo = [r for r in c["q1_twas_loo"] if r["pooled"]]
    assert lo and all(0 < r["perm_p"] <= 1 and r["ci_low"] <= r["accuracy"] <= r["ci_high"] for r in lo)
    assert "leave-one-variant-out" in html

    # the write-up's published numbers beside the seed-mode re-run, labelled simulated
    pub = metrics["published"]
    assert pub["set"] == "af-twas-writeup" and pub["simulated"] is True and pub["n_compared"] > 0
    seed_q1 = {(r["assay"], r["tissue"]): r["accuracy"] for r in metrics["q1"] if not r["pooled"]}
    seed_q2 = {r["assay"]: r["fold"] for r in metrics["q2"]}
    short = {"RNA_SEQ": "RNA", "DNASE": "DNASE", "ATAC": "ATAC", "CAGE": "CAGE"}
    checked = 0
    for row in pub["rows"]:
        parts = row["key"].split(".")
        if row["observed"] is None:
            continue
        if parts[0] == "q1":
            assert row["observed"] == pytest.approx(seed_q1[(short[parts[1]], parts[2])])
        elif parts[0] == "q2" and parts[2] == "fold":
            assert row["observed"] == pytest.approx(seed_q2[short[parts[1]]])
        else:
            continue
        assert row["difference"] == pytest.approx(row["observed"] - row["published"])
        checked += 1
    assert checked > 0 and "Published reference" in html


def test_flow_on_a_precomputed_perfect_model(prefect_api, twas_study, world_myvariant):
    """The precomputed path: the planted truth as a tidy score table (no model is called)."""
    from agval.config import LookupConfig
    from flows import registry

    d = twas_study["dir"]
    planted = pl.read_parquet(d / "planted.parquet")
    pred = (planted.select("variant_key", "gene_id", pl.col("tissue").alias("gtex_tissue"),
                           pl.col("true_effect").alias("raw_score"))
            .with_columns(pl.lit("RNA_SEQ").alias("output_type"), pl.lit(None, dtype=pl.Utf8).alias("ontology_curie"),
                          (pl.lit("gtex ") + pl.col("gtex_tissue")).alias("track_name")))
    pred_path = d / "perfect_model.parquet"
    pred.write_parquet(pred_path)
    kw = registry.load("twas", twas_study["toml"], lookup={"source": "myvariant", "base_url": world_myvariant.base_url,
                                                           "requests_per_second": 100.0})
    study = kw["study"].model_copy(update={"predictions": str(pred_path), "predictions_simulated": True,
                                           "assays": ["RNA_SEQ"], "plots": False, "n_permutations": 100,
                                           "name": "twas-perfect-model"})
    res = registry.study_module("twas").FLOW(study=study, backend=kw["backend"],
                                             lookup=LookupConfig.model_validate(kw["lookup"].model_dump()))
    assert res["simulated"] is True
    q1 = [r for r in res["metrics"]["q1"] if r["pooled"]][0]
    assert q1["assay"] == "RNA" and q1["accuracy"] > 0.6
    assert (Path(res["run_folder"]) / "report.html").is_file()


def test_flow_scores_large_studies_in_batches(cli_run, prefect_api, twas_study, alphagenome_standin, world_myvariant,
                                              monkeypatch):
    """Variants are scored in batches, each reduced at once to the triplets' values; the
    triplet table is the same as with one batch (scores come from the score cache)."""
    import flows.twas as ft
    from flows import registry

    monkeypatch.setattr(ft, "SCORE_BATCH", 5)
    kw = registry.load("twas", twas_study["toml"],
                       backend={"address": alphagenome_standin.address},
                       lookup={"source": "myvariant", "base_url": world_myvariant.base_url, "requests_per_second": 100.0})
    study = kw["study"].model_copy(update={"plots": False, "n_permutations": 20, "name": "twas-batches"})
    res = ft.FLOW(study=study, backend=kw["backend"], lookup=kw["lookup"])
    folder = Path(res["run_folder"])
    man = load_manifest(folder)
    assert len(man["notes"]["scoring_batches"]) > 1
    assert not (folder / "tables" / "scores.parquet").exists()
    cols = ["variant_key", "gene_id", "tissue", "assay", "score", "n_tracks"]
    a = pl.read_parquet(folder / "tables" / "triplets.parquet").select(cols).sort(cols[:4])
    b = pl.read_parquet(cli_run / "tables" / "triplets.parquet").select(cols).sort(cols[:4])
    assert a.equals(b)
