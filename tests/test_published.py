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
