"""The QTL flow end to end against the stand-ins (SIMULATED world, seed 7): both demo
studies through ``flows.registry`` and ``agval run qtl FILE``, inside a Prefect API."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest
from scipy import stats

from standins.world.studies import qtl as gen
from tests.helpers import precomputed_hqtl_study

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world_myvariant(world_dir):
    from standins.myvariant.server import serve

    handle = serve(world_dir)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def demo_files(world_dir, tmp_path_factory) -> dict[str, Path]:
    files = gen.generate(world_dir, tmp_path_factory.mktemp("qtl-flow-demo"), seed=0, n_caqtl=40, n_hqtl=40,
                         n_boot=300)
    return {p.name: p for p in files}


def _overrides(alphagenome_standin, world_dir, world_myvariant) -> dict:
    return {"backend": {"kind": "standin", "address": alphagenome_standin.address, "standin_world": str(world_dir)},
            "lookup": {"source": "myvariant", "base_url": world_myvariant.base_url}}


def _check_run_folder(folder: Path, *, n_figures: int) -> dict:
    sim_root = Path(os.environ["AGVAL_SIM_RESULTS"]).resolve()
    assert sim_root in folder.resolve().parents, "a simulated run lands under the simulated results root"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["simulated"] is True and manifest["status"] == "completed"
    assert manifest["backend"]["address_kind"] == "standin" and manifest["seed"] == 0
    assert {i["role"] for i in manifest["inputs"]} >= {"qtl_table"}
    assert manifest["parameters"]["study"]["seed"] == 0 and manifest["parameters"]["backend"]["kind"] == "standin"
    pngs = sorted((folder / "plots").glob("*.png"))
    assert len(pngs) == n_figures
    html = (folder / "report.html").read_text()
    assert html.count('<figure id="fig-') == n_figures, "every figure embedded"
    assert "<script" not in html and 'src="http' not in html and "SIMULATED" in html
    assert "Original vs corrected" in html and "Drop funnel" in html
    metrics = json.loads((folder / "metrics.json").read_text())
    assert {"headline", "analyses", "per_track", "counts", "comparison", "scoring"} <= set(metrics)
    h = metrics["headline"]
    assert h["primary_cell"] == metrics["primary_cell"] and 0 < h["estimate_perm_p"] <= 1
    assert h["estimate_ci_low"] <= h["estimate"] <= h["estimate_ci_high"]
    assert all("q_bh" in r and "perm_p" in r for r in metrics["per_track"])
    assert "Cells (primary, secondary, sensitivity)" in html and "cluster permutation P" in html
    assert (folder / "dropped.parquet").is_file() and (folder / "tables" / "scores.parquet").is_file()
    return metrics


def test_hqtl_flow_end_to_end(prefect_api, alphagenome_standin, world_dir, world_myvariant, demo_files):
    from flows import registry

    res = registry.run("qtl", demo_files["hqtl-lcl.toml"], **_overrides(alphagenome_standin, world_dir,
                                                                        world_myvariant))
    assert res["simulated"] is True
    folder = Path(res["run_folder"])
    m = _check_run_folder(folder, n_figures=6)  # modes, correlation, distributions, residuals, top, forest
    a = m["analyses"]
    assert set(a) == {"original", "corrected", "corrected@CL:0000236"}
    # the spec's prediction: averaging quantiles over all 10 B-cell marks (incl. repressive ones)
    # with the seed's sign dilutes the signal that the mark-matched raw GM12878 track carries
    assert a["corrected"]["spearman_rho"] > 0.3
    assert abs(a["corrected"]["spearman_rho"]) > abs(a["original"]["spearman_rho"])
    assert m["comparison"]["abs_rho_difference"] > 0
    assert a["original"]["n_tracks"] == 10 and a["corrected"]["n_tracks"] == 2
    assert a["corrected"]["sign_n"] > 0 and a["corrected"]["n_orientation_verified"] == a["corrected"]["n"]
    # the repressive marks point the other way in the original mode's per-track table
    pt = pl.DataFrame(m["per_track"])
    rep = pt.filter((pl.col("analysis") == "original") & pl.col("track").str.contains("H3K27me3|H3K9me3"))
    act = pt.filter((pl.col("analysis") == "original") & pl.col("track").str.contains("H3K27ac"))
    assert rep.height == 2 and (rep["spearman_rho"] * act["spearman_rho"][0] < 0).all()
    # every drop counted with its reason; hg19 positions of no_hg38 rsIDs never used (P8)
    drops = pl.read_parquet(folder / "dropped.parquet")
    assert {"notfound", "no_hg38", "palindromic", "no_significant_mark"} <= set(drops["reason"])
    # the flow's numbers are scipy's
    rows = pl.read_parquet(folder / "tables" / "analysis_rows.parquet").filter(pl.col("analysis") == "corrected")
    sp = stats.spearmanr(rows["x"], rows["y"])
    assert abs(a["corrected"]["spearman_rho"] - sp.statistic) < 1e-9
    assert abs(a["corrected"]["spearman_p"] - sp.pvalue) < 1e-9
    assert m["counts"]["loaded_rows"] > m["counts"]["harmonized_rows"] > 0 and m["counts"]["input_rows"] > 40


def test_cli_run_qtl_caqtl(prefect_api, alphagenome_standin, world_dir, world_myvariant, demo_files):
    from typer.testing import CliRunner

    from agval.cli.run import app

    r = CliRunner().invoke(app, ["qtl", str(demo_files["caqtl-cd4.toml"]), "--address", alphagenome_standin.address,
                                 "--myvariant-url", world_myvariant.base_url, "--json"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    out = json.loads(r.output[r.output.index("{"):])
    assert out["simulated"] is True
    folder = Path(out["run_folder"])
    m = _check_run_folder(folder, n_figures=7)  # + the magnitude plot (effect allele unknown)
    c = m["analyses"]["corrected"]
    # effect allele unknown (P3): no direction claim; magnitude tested on its own
    assert c["n_orientation_verified"] == 0 and c["sign_n"] == 0
    assert c["sign_fraction"] is None  # NaN (no verified rows) is written to metrics.json as null
    assert c["magnitude_spearman_rho"] > 0.3
    assert m["analyses"]["original"]["n_tracks"] == 8 and c["n_tracks"] == 2
    assert m["published"]["set"] == "gate2018-caqtl-seed" and len(m["published"]["rows"]) == 4
    assert out["headline"]["direction_claims"].startswith("none")
    # one SNP, two peaks: two rows, the same score, their own betas (P9)
    rows = pl.read_parquet(folder / "tables" / "analysis_rows.parquet").filter(pl.col("analysis") == "corrected")
    dup = rows.filter(pl.col("rsid").is_duplicated())
    assert dup.height >= 2 and dup["row_id"].n_unique() == dup.height
    assert dup.group_by("rsid").agg(pl.col("x").n_unique())["x"].max() == 1
    drops = pl.read_parquet(folder / "dropped.parquet")
    assert {"notfound", "no_hg38", "multiallelic_ambiguous"} <= set(drops["reason"])


def test_flow_guard_failure_is_recorded(prefect_api, alphagenome_standin, world_dir, world, tmp_path):
    from agval.errors import GuardError
    from flows import registry

    v = world.variants.filter((pl.col("status") == "ok") & (pl.col("kind") == "snv")).head(12)
    header = ["variant_id", "gene_id", "pval_nominal", "slope", "slope_se"]
    lines = ["\t".join(header)]
    for i, r in enumerate(v.iter_rows(named=True)):
        p = 10.0 ** -(5 + 3 * i)
        lines.append("\t".join(map(str, [f"{r['chrom']}_{r['pos']}_{r['ref']}_{r['alt']}_b38", "ENSG00900000001.1",
                                         p, p, 0.1])))
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "gtex.toml").write_text(
        '[study]\nname = "gtex-pvalue-slope"\nkind = "eqtl"\ntable = "pairs.txt"\nbiosample = "UBERON:0013756"\n'
        f'reference_fasta = {json.dumps(str(world_dir / "genome.fa"))}\n'
        f'[backend]\nkind = "standin"\naddress = "{alphagenome_standin.address}"\n'
        f'standin_world = {json.dumps(str(world_dir))}\n')
    with pytest.raises(GuardError, match="p-values"):
        registry.run("qtl", tmp_path / "gtex.toml")
    runs = sorted((Path(os.environ["AGVAL_SIM_RESULTS"]) / "gtex-pvalue-slope").iterdir())
    manifest = json.loads((runs[-1] / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "p-values" in manifest["error"]


def test_flow_precomputed_path(prefect_api, demo_files, tmp_path):
    """Re-check an analysis from files: the truth table as predictions, no lookup, no scoring."""
    from flows import registry

    study_file = precomputed_hqtl_study(demo_files["hqtl-lcl.toml"], tmp_path / "hqtl-precomputed.toml")
    res = registry.run("qtl", study_file)
    folder = Path(res["run_folder"])
    manifest = json.loads((folder / "manifest.json").read_text())
    assert res["simulated"] is True and manifest["backend"]["backend"] == "precomputed"
    assert {i["role"] for i in manifest["inputs"]} >= {"qtl_table", "predictions"}
    assert not (folder / "tables" / "scores.parquet").exists()
    m = json.loads((folder / "metrics.json").read_text())
    assert m["route"] == "precomputed" and list(m["analyses"]) == ["truth"] and "scoring" not in m
    assert m["analyses"]["truth"]["spearman_rho"] > 0.3
    html = (folder / "report.html").read_text()
    assert html.count('<figure id="fig-') == len(list((folder / "plots").glob("*.png"))) >= 5
