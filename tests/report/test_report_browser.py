"""Reports answer first: each study's report.html in headless Chromium at 1,400 px wide
has its headline card and first figure in the first 1,500 px and nothing overflowing
horizontally (wide tables scroll in their own box).

The QTL, TWAS and MPRA pages are rendered from metrics shaped like each flow's
``metrics.json`` (keys from docs/metrics-*.md; the QTL flow's own report is measured in
tests/test_prefect_logs.py), with long warnings, a 40-column table, long provenance
paths and several full-size figures - the things that pushed the first figure to
7,300-30,000 px before. Skipped with the reason when Chromium is not installed
(.ci/run installs it).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import polars as pl
import pytest

from agval.report import render_report
from agval.report_cards import cards_for, pipeline_counts
from tests.browser import chromium, measure

matplotlib.use("Agg", force=True)

pytestmark = pytest.mark.skipif(chromium() is None, reason="headless Chromium is not installed "
                                "(.ci/run installs the distribution's 'chromium' package)")

WIDE = pl.DataFrame({f"a_rather_long_column_name_{i}": [1.234567e-5 * (i + 1), -98765.4321 * i] for i in range(40)})
LONG = "pseudo-replication (P17): " + "72 rows but only 9 distinct model inputs; " * 12 + "/very/long/" * 30


def _figures(tmp: Path, names: list[str]) -> list[Path]:
    out = []
    for name in names:
        fig, ax = plt.subplots(figsize=(12, 6), dpi=150)
        ax.plot(range(10), range(10))
        ax.set_title(name)
        p = tmp / f"{name}.png"
        fig.savefig(p)
        plt.close(fig)
        out.append(p)
    return out


def _manifest(study: str, flow: str) -> dict:
    return {"run_id": "20261204T000000Z-abcdef", "study": study, "flow": flow, "status": "completed",
            "simulated": True, "started": "2026-12-04T00:00:00+00:00",
            "prefect": {"flow_run_id": "0b1c2d3e-0000-4000-8000-000000000000", "flow_run_name": f"{study}-x",
                        "flow_name": flow, "ui_url": None},
            "inputs": [{"role": "table", "path": "/data/" + "nested/" * 40 + "file.parquet", "sha256": "ab" * 32,
                        "bytes": 123}],
            "parameters": {"study": {"name": study, "ontology_terms": ["CL:0000624"], "note": "x" * 300}},
            "backend": {"kind": "standin"}, "model": {"model_version": "all_folds"}}


def _qtl_metrics() -> dict:
    hl = {"headline_statistic": "magnitude_spearman_rho", "analysis": "corrected", "primary_cell": "ATAC",
          "estimate": 0.71, "estimate_ci_low": 0.51, "estimate_ci_high": 0.85, "estimate_perm_p": 0.002,
          "n": 44, "n_clusters": 27, "abs_rho_difference": 0.10, "abs_rho_difference_ci_low": 0.02,
          "abs_rho_difference_ci_high": 0.23}
    return {"headline": hl, "counts": {"input_rows": 50, "loaded_rows": 48, "harmonized_rows": 46, "analysed_rows": 44},
            "per_track": [{"track_name": f"CL:0000624 ATAC track {i}", "spearman_rho": 0.1 * i, "q_bh": 0.01}
                          for i in range(30)],
            "published": {"title": "caQTL seed", "label": "simulated data: differences are expected", "rows": [
                {"key": "original.spearman_rho", "label": "Spearman rho", "published": 0.4032, "observed": -0.6,
                 "published_n": 3271}]}}


def _twas_metrics() -> dict:
    assay = {"q2_dedup_fold": 3.8, "q2_dedup_fold_ci": [2.0, 9.1], "q2_corrected_mwu_perm_p": 0.04,
             "q3_spearman_rho": -0.8, "q3_spearman_rho_ci": [-1.0, 1.0], "q3_rho_perm_p": 0.7, "q3_n_genes": 4,
             "q4_best_rho": 1.0, "q4_best_rho_ci": [1.0, 1.0], "q4_best_corrected_perm_p": 0.08,
             "q4_best_tissue": "Artery_Tibial"}
    return {"primary_cell": {"assay": "DNASE", "cell": "Heart_Atrial_Appendage/DNASE", "tissue": "Heart_Atrial_Appendage",
                             "q1_twas": {"accuracy": 0.66, "ci_low": 0.48, "ci_high": 0.9, "perm_p": 0.14, "n": 48,
                                         "perm_null_mean": 0.57}},
            "headline": {"DNASE": assay, "ATAC": assay},
            "q1": [{"assay": "ATAC", "tissue": f"Tissue_{i}", "accuracy": 0.5, "n": 5, "perm_p": 0.4} for i in range(40)]}


def _mpra_metrics() -> dict:
    agg = {"pearson_r": 0.75, "pearson_ci_low": 0.62, "pearson_ci_high": 0.84, "pearson_perm_p": 0.0066,
           "auroc": 0.87, "auroc_ci_low": 0.8, "auroc_ci_high": 0.93, "auroc_perm_p": 0.01, "n": 72,
           "n_distinct_inputs": 72, "n_clusters": 9, "cluster_unit": "locus"}
    return {"primary_aggregate": "dnase_center", "aggregates": {"dnase_center": agg, "cage_mean": agg},
            "activity": {"n_loaded": 70, "n_load_dropped": 2, "n_constructs": 72,
                         "filters": {"dropped": {"min_dna": 0, "min_tags": 0}}}}


CASES = {
    "qtl": ("qtl-validation", _qtl_metrics, ["x_magnitude", "x_correlation", "x_modes", "x_forest"]),
    "twas": ("twas-concordance", _twas_metrics, ["01_data_overview", "05_cs_enrichment", "07_tissue_accuracy",
                                                 "08_twas_z_heatmap", "09_gene_rho_heatmap"]),
    "mpra": ("mpra-benchmark", _mpra_metrics, ["scatter_dnase_center", "roc", "correlation_heatmap"]),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_report_answers_first_in_chromium(kind, tmp_path):
    flow, make, fig_names = CASES[kind]
    metrics = make()
    figs = _figures(tmp_path, fig_names)
    cards = cards_for(kind, metrics, figs)
    assert cards and all(c.figure is not None for c in cards[:1]), "the first card carries its key figure"
    drops = pl.DataFrame({"stage": ["load", "lookup"], "reason": ["malformed", "notfound"], "n": [2, 3]})
    html = render_report(f"{kind} study", provenance=_manifest(f"{kind}-demo", flow), metrics=metrics,
                         figures=figs, cards=cards, kind=kind, pipeline_counts=pipeline_counts(kind, metrics),
                         drop_funnel=drops, warnings=[LONG, "second warning (P3)"],
                         sections={"Narrative": "Cells: CL:0000624. " * 40},
                         tables={"Per track (40 columns)": WIDE})
    page = tmp_path / "report.html"
    page.write_text(html)
    lay = measure(page, tmp_path, width=1400, height=1500)
    assert lay["width"] == 1400
    assert lay["card_top"] is not None and lay["card_bottom"] <= 1500, lay
    assert lay["figure_top"] is not None and lay["figure_top"] < 1500 and lay["figure_height"] > 50, lay
    assert lay["overflow"] == [], lay["overflow"][:10]
    assert lay["scroll_width"] <= lay["width"], "no horizontal page scroll"
    # the details that follow the answers
    assert "Published seed" in html if kind == "qtl" else True
    assert "CD4-positive, alpha-beta T cell (CL:0000624)" in html, "cell types by name and CURIE"
    assert 'title="few distinct model inputs for many rows (pseudo-replication)">P17</abbr>' in html
    assert html.index('id="answers"') < html.index('id="figures"') < html.index('id="details"')
    assert html.index('id="provenance"') < html.index('id="metrics"') and "<details><summary>" in html
    assert "status: completed" in html and "0b1c2d3e-0000-4000-8000-000000000000" in html


def test_overflow_is_detected(tmp_path):
    """The measurement can fail: an unboxed 3,000 px element is reported."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><div class="card">x</div>'
                    '<div style="width:3000px">wide</div></body></html>')
    lay = measure(page, tmp_path)
    assert lay["overflow"] and lay["scroll_width"] > 1400
