"""The MPRA benchmark flow end to end against the stand-in (SIMULATED), the V2-style
pseudo-replicated scoring, refusals before any call, and the real GSE84888 counts through
the precomputed path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from agval.errors import UnsupportedSequenceError
from agval.mpra import PseudoReplicationWarning

METRIC_KEYS = {"n", "n_distinct_inputs", "pearson_r", "pearson_p", "spearman_rho", "spearman_p", "auroc",
               "threshold", "n_positive", "n_negative", "pearson_ci_low", "pearson_ci_high", "spearman_ci_low",
               "spearman_ci_high", "auroc_ci_low", "auroc_ci_high", "pearson_perm_p"}


@pytest.fixture(scope="module")
def library(world_dir, tmp_path_factory):
    from standins.world.studies.mpra import generate

    out = tmp_path_factory.mktemp("mpra-library")
    paths = generate(world_dir, out, seed=3, n_constructs=72, sensitivity=False, n_boot=300, n_perm=300)
    return {p.name: p for p in paths}


def _kwargs(toml: Path, address: str, **study_updates):
    from flows import registry

    kw = registry.load("mpra", toml, backend={"kind": "standin", "address": address})
    kw["study"] = kw["study"].model_copy(update=study_updates)
    return kw


def test_generator_writes_the_gse84888_format(library):
    from agval.io.mpra import load_element_sequences, load_gse84888_counts

    df, drops = load_gse84888_counts(library["DEMO_Pool1_MPRA.txt"], library["DEMO_Pool2_MPRA.txt"])
    assert df.height == 72 and len(drops) == 0 and set(df["pool"]) == {"Pool1", "Pool2"}
    assert (df["end"] - df["start"] == 16).all()
    wt = df.filter(pl.col("modification") == "wt")
    assert wt.height == df["locus_id"].n_unique() and wt["locus_id"].is_unique().all()
    seqs, _ = load_element_sequences(library["DEMO_elements.fa"])
    assert seqs.height == 72 and (seqs["length"] == 150).all() and (seqs["n_ambiguous"] == 0).all()
    planted = pl.read_parquet(library["DEMO_planted.parquet"])
    # the locus 16-mer of the name sits at [67, 83) of the wild-type oligo; every design differs
    j = planted.join(seqs.select(pl.col("element_id").alias("name"), "sequence"), on="name")
    wt_j = j.filter(pl.col("modification") == "wt")
    assert (wt_j["sequence"].str.slice(67, 16) == wt_j["seq16"]).all()
    assert (j["sequence"] == j["oligo"]).all() and j["oligo"].n_unique() == 72


def test_flow_end_to_end_recovers_planted_activity(library, standin_fresh, world_dir, prefect_api):
    from flows.mpra import FLOW

    kw = _kwargs(library["mpra-demo.toml"], standin_fresh.address, figures="summary")
    res = FLOW(**kw)
    folder = Path(res["run_folder"])
    man = json.loads((folder / "manifest.json").read_text())
    assert res["simulated"] is True and man["simulated"] is True and man["status"] == "completed"
    metrics = json.loads((folder / "metrics.json").read_text())
    st = metrics["aggregates"]["dnase_center"]
    assert METRIC_KEYS <= set(st)
    # planted activity recovered: positive correlation, cluster-aware CI excluding 0
    assert st["pearson_r"] > 0.3 and st["pearson_ci_low"] > 0 and st["spearman_ci_low"] > 0
    assert st["n_distinct_inputs"] == st["n"] and not metrics["inputs"]["pseudo_replication_warning"]
    assert metrics["inputs"]["cluster_column"] == "locus_id"
    # our usage of the statistics matches scipy on the written table
    t = pl.read_parquet(folder / "tables" / "constructs.parquet")
    r, p = stats.pearsonr(t["dnase_center"].to_numpy(), t["log2_ratio"].to_numpy())
    assert st["pearson_r"] == pytest.approx(r, rel=1e-9) and st["n"] == t.height
    assert t["row_id"].is_unique().all()
    # one PredictSequence per distinct input, mouse, all outputs in one call
    calls = [c for c in standin_fresh.servicer.calls if c.method == "PredictSequence"]
    assert len(calls) == t["input_id"].n_unique() and {c.organism for c in calls} == {"MUS_MUSCULUS"}
    assert {c.n_outputs for c in calls} == {3} and {c.interval for c in calls} == {"sequence:16384"}
    assert {"cage_center_plus", "cage_center_minus", "rna_mean_unstranded"} <= set(metrics["aggregates_by_strand"])
    assert set(metrics["aggregates"]) == {"dnase_center", "dnase_mean", "cage_center", "cage_mean", "rna_center",
                                          "rna_mean"}
    assert metrics["effects"]["dnase_center"]["n_same_input"] == 0
    assert metrics["effects"]["dnase_center"]["pearson_r"] > 0
    # drops: the generator under-represents a few constructs in DNA; min_dna = 10 removes them
    dropped = pl.read_parquet(folder / "dropped.parquet")
    assert dropped.height == metrics["activity"]["filters"]["dropped"]["min_dna"]
    html = (folder / "report.html").read_text()
    assert "SIMULATED" in html and html.count("data:image/png;base64") >= 4
    assert "strictly greater than the median" in html
    assert sorted(p.name for p in (folder / "plots").glob("*.png"))


def test_v2_style_locus_inputs_warn_and_widen_the_ci(library, alphagenome_standin, prefect_api, tmp_path):
    """``agval run mpra FILE``: the 16-mer in its reference flanks; rows >> distinct inputs."""
    from typer.testing import CliRunner

    from agval.cli.run import app

    toml = tmp_path / "locus16.toml"
    toml.write_text(library["mpra-demo-locus16.toml"].read_text().replace("[study]\n", "[study]\nfigures = \"summary\"\n"))
    with pytest.warns(PseudoReplicationWarning):
        r = CliRunner().invoke(app, ["mpra", str(toml), "--address", alphagenome_standin.address, "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output[r.output.index("{"):])
    assert out["simulated"] is True
    metrics = json.loads((Path(out["run_folder"]) / "metrics.json").read_text())
    inp = metrics["inputs"]
    assert inp["pseudo_replication_warning"] and inp["n_distinct_inputs"] == inp["n_loci"]
    assert inp["rows_per_input"] > 2
    st = metrics["aggregates"]["dnase_center"]
    assert (st["pearson_ci_high"] - st["pearson_ci_low"]) > (st["pearson_ci_high_naive"] - st["pearson_ci_low_naive"])
    assert metrics["model_inputs"]["orientation_check"]["mean_identity_as_inserted"] == 1.0
    assert metrics["effects"]["dnase_center"]["n_same_input"] == metrics["effects"]["dnase_center"]["n_mutants"]


def test_refusals_happen_before_any_prediction(library, standin_fresh, tmp_path, prefect_api):
    from flows.mpra import FLOW

    kw = _kwargs(library["mpra-demo.toml"], standin_fresh.address, sequence_length=2048)
    with pytest.raises(UnsupportedSequenceError, match="2048 is not supported"):
        FLOW(**kw)
    assert standin_fresh.servicer.calls == []          # not a single call reached the service
    # an N-padded oligo (V1) is refused before any PredictSequence
    fa = tmp_path / "padded.fa"
    text = Path(library["DEMO_elements.fa"]).read_text().splitlines()
    text[1] = "N" * 20 + text[1][20:]
    fa.write_text("\n".join(text) + "\n")
    kw = _kwargs(library["mpra-demo.toml"], standin_fresh.address, sequences=str(fa))
    with pytest.raises(UnsupportedSequenceError, match="N-padded"):
        FLOW(**kw)
    assert not [c for c in standin_fresh.servicer.calls if c.method == "PredictSequence"]


def test_real_counts_through_the_precomputed_path(shared_data, tmp_path, prefect_api):
    files = sorted((shared_data / "mpra").glob("GSE84888_Pool*_MPRA.txt"))
    if len(files) != 2:
        pytest.skip("GSE84888 count files are absent")
    from agval.mpra import load_measurements
    from flows.mpra import FLOW, MPRAStudy

    loci = load_measurements(files).table["locus_id"].unique().sort().to_list()
    rng = np.random.default_rng(0)
    preds = tmp_path / "locus_predictions.tsv"
    pl.DataFrame({"locus_id": loci, "dnase_center": rng.random(len(loci)),
                  "dnase_mean": rng.random(len(loci))}).write_csv(preds, separator="\t")
    study = MPRAStudy(name="gse84888-precomputed", counts=[str(f) for f in files], predictions=str(preds),
                      predictions_simulated=True, n_boot=100, n_perm=100, figures="none")
    with pytest.warns(PseudoReplicationWarning):
        res = FLOW(study=study)
    m = res["metrics"]
    act = m["activity"]
    assert act["n_constructs"] == 6963 and act["by_pool"] == {"Pool6": 3720, "Pool7": 3243} and act["n_loci"] == 18
    assert act["log2_ratio_mean"] == pytest.approx(-1.075012, abs=5e-7)
    assert act["log2_ratio_median"] == pytest.approx(-1.0011223, abs=5e-8)
    assert m["inputs"]["n_distinct_inputs"] == 18 and m["inputs"]["pseudo_replication_warning"]
    st = m["aggregates"]["dnase_center"]
    assert st["n"] == 6963 and st["n_clusters"] == 18
    assert Path(res["run_folder"], "report.html").is_file() and res["simulated"] is True
    # GSE84888 counts: the seed's V2 numbers beside the run (random predictions here: not reproduced)
    pub = m["published"]
    assert pub["set"] == "grossman2017-mpra-v2" and pub["simulated"] is True
    rows = {r["key"]: r for r in pub["rows"]}
    assert rows["dnase_center.pearson_r"]["observed"] == pytest.approx(st["pearson_r"], abs=1e-12)
    assert rows["dnase_center.pearson_r"]["difference"] == pytest.approx(st["pearson_r"] - 0.0531, abs=1e-12)
    assert rows["cage_center.pearson_r"]["observed"] is None  # not computed: reported as missing
    assert "differences are expected" in Path(res["run_folder"], "report.html").read_text()


def test_tracks_come_from_the_study_organism_and_ontology(alphagenome_standin, world_dir):
    from agval.errors import ConfigError
    from agval.scoring import make_backend
    from agval.mpra.pipeline import select_tracks as _select_tracks

    b = make_backend({"kind": "alphagenome", "address": alphagenome_standin.address, "world_dir": str(world_dir)})
    sel = _select_tracks(b, "MUS_MUSCULUS", ["DNASE", "CAGE", "RNA_SEQ"], ["CL:0000136"])
    assert set(sel["ontology_curie"]) == {"CL:0000136"} and sel.height == 6
    with pytest.raises(ConfigError, match="no DNASE tracks for MUS_MUSCULUS"):
        _select_tracks(b, "MUS_MUSCULUS", ["DNASE"], ["EFO:0002067"])     # K562 is a human cell line
    assert _select_tracks(b, "HOMO_SAPIENS", ["DNASE"], ["EFO:0002067"]).height == 1
