"""QTL causality and direction benchmark (agval.qtl.causality): auPRC against sklearn,
the significance gap, loci and splits, planted truth recovered (SIMULATED world, seed 7),
bad input, and the QTL flow in ``benchmark = "causality"`` mode against the stand-in."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import average_precision_score

from agval.drops import DropLog
from agval.errors import InputError, MissingColumnError
from agval.qtl import QTLStudy
from agval.qtl import causality as cz
from standins.world.studies import causality as gen


def _study(toml: Path, **causality) -> QTLStudy:
    from pydantic import create_model

    from agval.config import BackendConfig, LookupConfig, load_study_file

    model = create_model("F", study=(QTLStudy, ...), backend=(BackendConfig, BackendConfig()),
                         lookup=(LookupConfig, LookupConfig()))
    s = load_study_file(toml, model).study
    return s.model_copy(update={"causality": s.causality.model_copy(update={"live_model": False, **causality})})


@pytest.fixture(scope="module")
def demo(world_dir, tmp_path_factory) -> list[Path]:
    return gen.generate(world_dir, tmp_path_factory.mktemp("causality"), seed=0, n_boot=300)


def test_average_precision_equals_sklearn_with_ties_and_weights():
    rng = np.random.default_rng(3)
    for _ in range(100):
        n = int(rng.integers(2, 200))
        y = rng.random(n) < rng.uniform(0.05, 0.9)
        if not y.any():
            continue
        s = np.round(rng.normal(size=n) + y, int(rng.integers(0, 3)))      # rounding makes ties
        assert abs(cz.average_precision(s, y) - average_precision_score(y, s)) < 1e-12
        w = rng.integers(0, 3, size=n).astype(float)
        if (w * y).sum() == 0:
            continue
        both = cz.average_precision(s, y, np.vstack([w, np.ones(n)]))
        assert abs(both[0] - average_precision_score(y, s, sample_weight=w)) < 1e-12
        assert abs(both[1] - average_precision_score(y, s)) < 1e-12
    assert np.isnan(cz.average_precision(np.arange(3.0), np.zeros(3)))


def test_benchmark_auprc_is_sklearns_on_the_same_rows(demo):
    study = _study(demo[0])
    out = cz.run_plain(study, genome_path=study.reference_fasta, simulated=True)
    frame, res = out["frame"], out["result"]
    for split, mask in cz.split_masks(frame["chrom"], study.causality).items():
        f = frame.filter(pl.Series(mask))
        for m in ("score_truth", "score_noisy"):
            st = res["splits"][split]["models"][m]
            want = average_precision_score(f["label"].to_numpy(), np.abs(f[m].to_numpy()))
            assert abs(st["auprc"] - want) < 1e-12
            assert st["positive_rate"] == pytest.approx(f["label"].mean(), abs=1e-15)
            assert st["random_auprc"] > st["positive_rate"] and 0 < st["auprc_perm_p"] <= 1
            pos = f.filter(pl.col("label") == 1)
            r = np.corrcoef(pos[m].to_numpy(), pos["effect"].to_numpy())[0, 1]
            assert abs(st["direction_r"] - r) < 1e-12
            assert st["auprc_ci_low"] <= st["auprc"] <= st["auprc_ci_high"] and st["auprc_se"] > 0
    assert set(res["splits"]) == {"all", "odd", "even", "heldout"}
    odd = frame.filter(pl.Series(cz.split_masks(frame["chrom"], study.causality)["odd"]))
    assert set(odd["chrom"]) <= {"chr1", "chr3", "chr5", "chr7", "chr9", "chr11"}
    # the report and metrics carry the leaderboard and the random baseline
    t = out["tables"]["Causality and direction per split and model"]
    assert t.height == 12 and (t["positive_rate"] < t["random_auprc"]).all()
    truth = t.filter(pl.col("model") == "score_truth")
    assert (truth["random_auprc"] < truth["auprc"]).all() and (truth["auprc_perm_p"] < 0.01).all()
    assert res["models"] == ["score_truth", "score_noisy", "ensemble"]
    # the rank-mean ensemble row is the documented formula, scored like any model
    ens = cz.rank_mean_ensemble([frame["score_truth"].to_numpy(), frame["score_noisy"].to_numpy()])
    want = average_precision_score(frame["label"].to_numpy(), np.abs(ens))
    assert abs(res["splits"]["all"]["models"]["ensemble"]["auprc"] - want) < 1e-12
    assert res["splits"]["all"]["differences"]["ensemble"]["reference"] == "score_truth"
    assert out["metrics"]["headline"]["model"] == "score_truth"


def test_random_baseline_is_expected_ap_of_permuted_scores_and_perm_p_is_calibrated():
    """Review finding 3: at finite n the AP of a random ranking is above the positive rate
    (0.1 here); the baseline is the mean AP of permuted scores (sklearn oracle), and the
    within-locus permutation P holds its level under the null and detects a planted signal."""
    K, m = 20, 10
    loc = np.repeat(np.arange(K), m).astype(str)
    lab = np.zeros(K * m)
    lab[::m] = 1
    rng = np.random.default_rng(0)
    s = np.round(np.abs(rng.normal(size=K * m)), 1)  # ties
    idx = np.argsort(rng.random((5, K * m)), axis=1)
    np.testing.assert_allclose(cz._permuted_ap(s, lab, idx),
                               [average_precision_score(lab[i], s) for i in idx], atol=1e-12)
    oracle = np.mean([average_precision_score(rng.permutation(lab), s) for _ in range(2000)])
    got = cz.ap_null(s, lab, loc, n_perm=2000, seed=1)
    assert got["random_auprc"] == pytest.approx(oracle, abs=0.004) and got["random_auprc"] > 0.11
    rej = []
    for i in range(150):
        r = np.random.default_rng(100 + i)
        x = np.abs(r.normal(size=K * m) + 0.8 * r.normal(size=K)[np.repeat(np.arange(K), m)])
        rej.append(cz.ap_null(x, lab, loc, n_perm=99, seed=i)["auprc_perm_p"] <= 0.05)
    assert 0.01 <= np.mean(rej) <= 0.09, np.mean(rej)
    planted = np.abs(np.random.default_rng(5).normal(size=K * m) + 1.5 * lab)
    assert cz.ap_null(planted, lab, loc, n_perm=199, seed=0)["auprc_perm_p"] < 0.01


def test_significance_gap_is_applied_and_configurable(demo):
    study = _study(demo[0])
    raw, _ = cz.load_causality_table(study.table)
    drops = DropLog()
    kept = cz.apply_significance_gap(raw, study.causality, drops=drops)
    lp, lab = raw["log10p"].to_numpy(), raw["label"].to_numpy()
    gap = (lab == 0) & (lp >= 3) & (lp < 5)
    assert gap.sum() == 24 and kept.height == raw.height - gap.sum()
    assert set(drops.frame()["reason"]) == {"significance_gap"} and drops.frame().height == 24
    assert (kept.filter(pl.col("label") == 0)["log10p"] < 3).all()
    stricter = cz.CausalitySettings(control_max_log10p=1.0, gap_max_log10p=5.0)
    k2 = cz.apply_significance_gap(raw, stricter)
    assert k2.height == raw.height - int(((lab == 0) & (lp >= 1)).sum())
    # the gap matters: keeping the near-significant controls lowers a perfect model's auPRC
    ap_kept = cz.average_precision(np.abs(kept["score_truth"].to_numpy()), kept["label"].to_numpy())
    ap_all = cz.average_precision(np.abs(raw["score_truth"].to_numpy()), raw["label"].to_numpy())
    assert ap_all < ap_kept - 0.02
    with pytest.raises(ValueError, match="gap_max_log10p"):
        cz.CausalitySettings(control_max_log10p=5, gap_max_log10p=3)


def test_rank_mean_ensemble():
    a = np.array([0.5, -2.0, 1.0, np.nan])
    b = np.array([10.0, -30.0, 20.0, 1.0])
    e = cz.rank_mean_ensemble([a, b])
    # ranks of |a| over the three complete rows: 1, 3, 2; of |b|: 1, 3, 2
    assert np.allclose(e[:3], [1 / 3, -1.0, 2 / 3]) and np.isnan(e[3])
    e2 = cz.rank_mean_ensemble([np.array([1.0, 2.0]), np.array([-1.0, 2.0])])
    assert np.allclose(e2, [0.0, 1.0])  # signs disagree: the row cancels


def test_loci_and_splits():
    f = pl.DataFrame({"chrom": ["chr1", "chr1", "chr1", "chr2", "chrX", "chr1"],
                      "pos": [100, 50_000, 300_000, 100, 5, 140_000]})
    loci = cz.locus_ids(f, 100_000).to_list()
    assert loci == ["chr1:L1", "chr1:L1", "chr1:L2", "chr2:L1", "chrX:L1", "chr1:L1"]  # single linkage
    masks = cz.split_masks(f["chrom"], cz.CausalitySettings(heldout_chromosomes=["2"]))
    assert masks["odd"].tolist() == [True, True, True, False, False, True]
    assert masks["even"].tolist() == [False, False, False, True, False, False]
    assert masks["heldout"].tolist() == [False, False, False, True, False, False]
    assert "heldout" not in cz.split_masks(f["chrom"], cz.CausalitySettings())


def test_planted_truth_recovered_across_seeds(world_dir, tmp_path):
    """The planted expected auPRC and direction r of both baselines, and their paired
    differences, inside the locus-bootstrap 95% intervals for (nearly) every seed."""
    inside, total = 0, 0
    for seed in range(4):
        toml = gen.generate(world_dir, tmp_path / f"s{seed}", seed=seed, n_boot=300)[0]
        study = _study(toml)
        planted = cz.run_plain(study, genome_path=study.reference_fasta, simulated=True)["result"]["planted"]
        assert set(planted) == {"score_truth", "score_noisy"}
        assert set(planted["score_noisy"]) == {"auprc", "direction_r", "auprc_difference", "direction_r_difference"}
        for row in planted.values():
            for v in row.values():
                inside += bool(v["in_ci"])
                total += 1
    assert total == 24 and inside >= 21, f"planted values inside the 95% interval {inside}/{total}"


def test_bad_input_names_the_row(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("chrom,pos,ref,alt,label,effect\nchr1,10,A,G,1,0.5\nchr1,20,A,G,maybe,\n")
    with pytest.raises(InputError, match="label must be 1") as e:
        cz.load_causality_table(p)
    assert e.value.row == 2 and e.value.column == "label"
    p.write_text("chrom,pos,ref,alt,label\nchr1,10,A,G,1\n")
    with pytest.raises(MissingColumnError):
        cz.load_causality_table(p)
    p.write_text("chrom,pos,ref,alt,label,effect,p\nchr1,10,A,G,1,0.5,1.5\n")
    with pytest.raises(InputError, match="p must lie in"):
        cz.load_causality_table(p)
    p.write_text("chrom,pos,ref,alt,label,effect,p,score_x\n1,10,a,g,1,0.5,0,0.1\n")
    f, base = cz.load_causality_table(p)
    assert base == ["score_x"] and f["chrom"][0] == "chr1" and f["ref"][0] == "A" and f["log10p"][0] == np.inf
    with pytest.raises(ValueError, match="causality"):
        QTLStudy(name="x", kind="generic", table=str(p), biosample="CL:1", format="causality")


@pytest.mark.slow
def test_causality_flow_with_the_standin(demo, alphagenome_standin, world_dir, prefect_api):
    from flows import registry

    res = registry.run("qtl", demo[0], backend={"kind": "standin", "address": alphagenome_standin.address,
                                                "standin_world": str(world_dir)})
    folder = Path(res["run_folder"])
    m = json.loads((folder / "metrics.json").read_text())
    assert res["simulated"] is True and m["benchmark"] == "causality"
    res_c = m["causality"]
    assert res_c["models"] == ["alphagenome", "score_truth", "score_noisy", "ensemble"]
    st = res_c["splits"]["all"]["models"]["alphagenome"]
    assert st["n_scored"] == m["counts"]["analysed_rows"] == 360
    # the stand-in model finds causal variants better than chance
    assert st["auprc_ci_low"] > st["random_auprc"]
    assert res_c["splits"]["all"]["differences"]["alphagenome"]["reference"] == "score_truth"
    html = (folder / "report.html").read_text()
    assert "Causality and direction per split and model" in html and "Paired differences" in html
    assert "SIMULATED" in html
    drops = pl.read_parquet(folder / "dropped.parquet")
    assert (drops["reason"] == "significance_gap").sum() == 24
