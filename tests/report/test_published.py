"""The registry of published seed numbers and the comparison a run shows beside them."""

from __future__ import annotations

import math

import pytest

from agval.errors import ConfigError
from agval.published import compare, default_set_id, published_set, published_sets


def test_registry_carries_the_specified_headline_numbers():
    sets = published_sets()
    assert {"gate2018-caqtl-seed", "pelikan2018-hqtl-seed", "grossman2017-mpra-v1", "grossman2017-mpra-v2",
            "af-twas-writeup"} <= set(sets)
    ca = {r.key: r for r in sets["gate2018-caqtl-seed"].rows}
    assert ca["original.spearman_rho"].value == 0.4032 and ca["original.spearman_rho"].n == 3271
    assert ca["original.pearson_r"].p == pytest.approx(4.44e-132)
    hq = {r.key: r for r in sets["pelikan2018-hqtl-seed"].rows}
    assert hq["original.spearman_rho"].value == 0.1717 and hq["original.spearman_rho"].n == 6258
    v2 = {r.key: r for r in sets["grossman2017-mpra-v2"].rows}
    assert v2["dnase_center.pearson_r"].value == 0.0531 and v2["dnase_center.auroc"].value == 0.537
    v1 = {r.key: r for r in sets["grossman2017-mpra-v1"].rows}
    assert v1["rna_center.spearman_rho"].value == -0.6904 and len(v1) == 18
    tw = {r.key: r for r in sets["af-twas-writeup"].rows}
    assert tw["q1.RNA_SEQ.Prostate.accuracy"].n == 408 and tw["q4.RNA_SEQ.Prostate.spearman_rho"].value == 0.384
    for s in sets.values():
        assert s.source and s.title and all(r.tolerance > 0 for r in s.rows)


def test_compare_reports_difference_sign_and_reproduction():
    rows = compare("gate2018-caqtl-seed", {"original.spearman_rho": 0.4010, "original.pearson_r": -0.41,
                                           "original.r_squared": float("nan")})
    by = {c.key: c for c in rows}
    rho = by["original.spearman_rho"]
    assert rho.difference == pytest.approx(0.4010 - 0.4032) and rho.reproduced and rho.sign_agrees
    r = by["original.pearson_r"]
    assert r.sign_agrees is False and r.reproduced is False  # a sign flip is caught
    # missing or non-finite values are reported as missing, not dropped
    assert by["original.r_squared"].observed is None and by["original.r_squared"].reproduced is None
    assert by["original.same_sign"].observed is None
    assert len(rows) == len(published_set("gate2018-caqtl-seed").rows)
    just_outside = compare("gate2018-caqtl-seed", {"original.spearman_rho": 0.4032 + 0.0051})[0]
    assert just_outside.reproduced is False and math.isclose(just_outside.difference, 0.0051)


def test_defaults_and_unknown_sets():
    assert default_set_id("qtl", "caqtl") == "gate2018-caqtl-seed"
    assert default_set_id("qtl", "hqtl") == "pelikan2018-hqtl-seed"
    assert default_set_id("qtl", "eqtl") is None
    assert default_set_id("mpra") == "grossman2017-mpra-v2"
    with pytest.raises(ConfigError, match="known: .*gate2018"):
        published_set("nope")


# ----------------------------------------------------------------------------- wiring into runs

def test_resolve_set_id_defaults_only_for_the_seed_layout():
    from agval.published import resolve_set_id

    assert resolve_set_id(None, "qtl", "caqtl") == "gate2018-caqtl-seed"
    assert resolve_set_id(None, "qtl", "caqtl", seed_layout=False) is None
    assert resolve_set_id("none", "qtl", "caqtl") is None
    assert resolve_set_id("grossman2017-mpra-v1", "mpra") == "grossman2017-mpra-v1"
    with pytest.raises(ConfigError):
        resolve_set_id("nope", "qtl", "caqtl")


def test_observed_mappings_use_the_registry_keys():
    from agval.published import mpra_observed, qtl_observed, twas_observed

    q = qtl_observed({"original": {"spearman_rho": 0.4, "pearson_r": 0.41, "r2": 0.168,
                                   "same_sign_fraction_unverified": 0.62, "sign_fraction": float("nan")},
                      "corrected": {"spearman_rho": 0.5, "r2": None, "same_sign_fraction_unverified": None,
                                    "sign_fraction": 0.7}})
    assert q == {"original.spearman_rho": 0.4, "original.pearson_r": 0.41, "original.r_squared": 0.168,
                 "original.same_sign": 0.62, "corrected.spearman_rho": 0.5, "corrected.same_sign": 0.7}
    keys = {r.key for r in published_set("gate2018-caqtl-seed").rows}
    assert keys <= set(q)
    m = mpra_observed({"dnase_center": {"pearson_r": 0.05, "spearman_rho": 0.1, "auroc": 0.54}})
    assert m == {"dnase_center.pearson_r": 0.05, "dnase_center.spearman_rho": 0.1, "dnase_center.auroc": 0.54}
    import polars as pl

    t = twas_observed(
        q1_table=pl.DataFrame({"output_type": ["RNA_SEQ", "DNASE"], "tissue": ["Prostate", "Heart - Atrial Appendage"],
                               "accuracy": [0.598, 0.52]}),
        q2_table=[{"output_type": "ATAC", "fold": 1.18, "spearman_rho": 0.036}],
        q3_table=[{"output_type": "CAGE", "rho": 0.155}],
        q4_table=[{"output_type": "RNA_SEQ", "tissue": "Whole_Blood", "spearman_rho": float("nan")}])
    assert t == {"q1.RNA_SEQ.Prostate.accuracy": 0.598, "q1.DNASE.Heart_Atrial_Appendage.accuracy": 0.52,
                 "q2.ATAC.fold": 1.18, "q2.ATAC.spearman_rho": 0.036, "q3.CAGE.spearman_rho": 0.155}
    by = {c.key: c for c in compare("af-twas-writeup", t)}
    assert by["q1.RNA_SEQ.Prostate.accuracy"].reproduced is True
    assert by["q1.DNASE.Heart_Atrial_Appendage.accuracy"].difference == pytest.approx(0.52 - 0.523)
    assert by["q4.RNA_SEQ.Whole_Blood.spearman_rho"].observed is None


def test_published_block_and_table():
    from agval.published import SIMULATED_LABEL, published_block, published_table, published_title

    assert published_block(None, {}) is None
    b = published_block("gate2018-caqtl-seed", {"original.spearman_rho": 0.40, "original.pearson_r": 0.2},
                        simulated=True)
    assert b["set"] == "gate2018-caqtl-seed" and b["n_compared"] == 2 and b["n_reproduced"] == 1
    assert SIMULATED_LABEL in published_title(b)
    t = published_table(b)
    assert t.height == 4 and t["published"][0] == 0.4032
    assert t["difference"][1] == pytest.approx(0.2 - 0.4089) and t["reproduced"][1] is False


def test_every_study_model_checks_its_published_field_when_the_file_is_read():
    from pydantic import ValidationError

    from agval.published import checked_set_field
    from flows.twas import TWASStudy

    assert checked_set_field(None) is None and checked_set_field("none") == "none"
    assert checked_set_field("af-twas-writeup") == "af-twas-writeup"
    with pytest.raises(ValueError, match="unknown published reference set 'nope'"):
        checked_set_field("nope")
    base = {"gwas": "g.tsv", "susie": "s", "twas": "t", "reference_fasta": "ref.fa"}
    assert TWASStudy(**base, published="none").published == "none"
    with pytest.raises(ValidationError, match="unknown published reference set"):
        TWASStudy(**base, published="gate2018-caqtl-typo")


def test_benchmarks_registry_file_documents_why_it_is_empty():
    """The paper's standard QTL benchmark numbers: none traceable to ../shared/docs or the SDK
    docs, so the benchmarks file loads, holds no set and says so (never guessed numbers)."""
    from importlib import resources

    import agval.published as pubmod

    assert pubmod.REGISTRY_FILES == ("seeds-v1.toml", "benchmarks-v1.toml")
    text = resources.files("agval.published").joinpath("benchmarks-v1.toml").read_text()
    assert pubmod._read_registry("benchmarks-v1.toml", text) == {}
    assert "NO SETS YET" in text and "traced" in text
    assert all(s.kind != pubmod.CAUSALITY_KIND for s in pubmod.published_sets().values())
