"""bench/calibration.py: the table and the exact RESULT line over every calibration module."""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "calibration.py"


def _load():
    spec = importlib.util.spec_from_file_location("calibration_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_result_line_counts_corrected_tests_only(monkeypatch, capsys):
    cal = _load()
    a = types.SimpleNamespace(calibrate=lambda n, seed: {
        "type1": {"t1": 0.04, "t2": 0.061, "original_row_level": 0.3},
        "original": {"seed_test": 0.2}, "power": {"q1_eqtl": 0.93}})
    b = types.SimpleNamespace(calibrate=lambda n, seed: {"type1": {"u1": 0.033}, "power": {"other": 0.5}})
    monkeypatch.setattr(cal, "_modules", lambda: [("a", a), ("b", b)])
    assert cal.main(["--studies", "300"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == "RESULT worst_type1=0.061 best_type1=0.033 n_tests=3 n_studies=300 power_q1_eqtl=0.930"
    text = "\n".join(out)
    assert "original (known miscalibrated)" in text and "seed_test" in text and "original_row_level" in text


def test_finds_the_calibration_modules():
    names = [n for n, _ in _load()._modules()]
    assert "twas" in names


def test_each_corrected_test_is_printed_beside_its_seed_counterpart(monkeypatch, capsys):
    cal = _load()
    twas = dict(cal._modules())["twas"]
    type1 = {"q1_twas_DNASE_pooled": 0.05, "q2_mwu_DNASE": 0.049, "q3_mean_tau_DNASE": 0.051}
    orig = {"q1_twas_DNASE_pooled (within-gene permutation)": 0.2, "q2_mwu_DNASE (rows)": 0.06}
    pairs = twas.seed_counterparts(type1, orig)
    assert pairs["q1_twas_DNASE_pooled"][1:] == (0.2, "fails (> 0.07)")
    assert pairs["q2_mwu_DNASE"][2] == "structure not exercised"
    assert pairs["q3_mean_tau_DNASE"][2] == "no seed counterpart"
    assert set(twas.COUNTERPART.values()) <= set(twas.null_study_pvalues(0)[1])   # every pair is computed
    m = types.SimpleNamespace(calibrate=lambda n, seed: {"type1": type1, "original": orig,
                                                         "seed_counterpart": pairs, "power": {}})
    monkeypatch.setattr(cal, "_modules", lambda: [("twas", m)])
    cal.main(["--studies", "50"])
    out = capsys.readouterr().out
    assert "seed 0.200 (fails (> 0.07))" in out and "seed 0.060 (structure not exercised)" in out
    assert "(no seed counterpart)" in out
