"""Published reference rows land in a QTL run's metrics.json and report (SIMULATED world).

A demo-like caQTL run (the generator's files, the truth as a perfect model's predictions
for both modes) is compared with Gate et al.'s published numbers by default; the rows,
their differences and the "simulated" label are checked against the run's own statistics.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agval.qtl import QTLStudy
from agval.qtl.pipeline import run_plain
from agval.runs import RunRecord
from standins.world.studies import qtl as gen


@pytest.fixture(scope="module")
def caqtl_toml(world_dir, tmp_path_factory) -> Path:
    files = gen.generate(world_dir, tmp_path_factory.mktemp("pub-demo"), seed=0, n_caqtl=60, n_boot=100,
                         kinds=("caqtl",))
    return files[0]


def _study(toml: Path, **over) -> QTLStudy:
    from pydantic import create_model

    from agval.config import BackendConfig, LookupConfig, load_study_file

    model = create_model("F", study=(QTLStudy, ...), backend=(BackendConfig, BackendConfig()),
                         lookup=(LookupConfig, LookupConfig()))
    s = load_study_file(toml, model).study
    planted = toml.parent / "caqtl-cd4" / "planted.parquet"
    return QTLStudy.model_validate({**s.model_dump(), "predictions": str(planted), "n_perm": 50,
                                    "prediction_columns": {"original": "true_effect", "corrected": "true_effect"},
                                    **over})


def test_qtl_run_carries_published_rows_and_differences(caqtl_toml):
    study = _study(caqtl_toml)
    with RunRecord.start(study.name, "test", parameters={}, simulated=True, seed=0) as rec:
        out = run_plain(study, record=rec, simulated=True, figures=False)
    m = json.loads((rec.folder / "metrics.json").read_text())
    pub = m["published"]
    assert pub["set"] == "gate2018-caqtl-seed" and pub["simulated"] is True
    assert pub["label"] == "simulated data: differences are expected"
    rows = {r["key"]: r for r in pub["rows"]}
    assert set(rows) == {"original.spearman_rho", "original.pearson_r", "original.r_squared", "original.same_sign"}
    orig = out["result"].stats["original"]
    for key, stat in (("original.spearman_rho", "spearman_rho"), ("original.pearson_r", "pearson_r"),
                      ("original.r_squared", "r2"), ("original.same_sign", "same_sign_fraction_unverified")):
        r = rows[key]
        assert r["observed"] == pytest.approx(orig[stat], abs=1e-12)
        assert r["difference"] == pytest.approx(orig[stat] - r["published"], abs=1e-12)
        assert r["reproduced"] == (abs(r["difference"]) <= r["tolerance"] + 1e-12)
        assert r["sign_agrees"] == ((orig[stat] > 0) == (r["published"] > 0))
    assert rows["original.spearman_rho"]["published"] == 0.4032
    html = (rec.folder / "report.html").read_text()
    assert "Published reference" in html and "simulated data: differences are expected" in html


def test_published_none_and_non_seed_layout_disable_the_rows(caqtl_toml):
    r = run_plain(_study(caqtl_toml, published="none", n_boot=0, n_perm=0), simulated=True, figures=False)
    assert "published" not in r["metrics"]
    r = run_plain(_study(caqtl_toml, published="pelikan2018-hqtl-seed", n_boot=0, n_perm=0), simulated=True,
                  figures=False)
    assert r["metrics"]["published"]["set"] == "pelikan2018-hqtl-seed"
    with pytest.raises(ValueError, match="unknown published reference set"):
        _study(caqtl_toml, published="no-such-set")
