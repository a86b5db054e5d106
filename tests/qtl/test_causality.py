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
        toml = gen.generate(world_dir, tmp_path / f"s{seed}", seed=seed, n_boot=300, two_model=False)[0]
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


def test_paired_locus_bootstrap_covers_the_planted_difference():
    """Two models of one planted world (a good one and the truth plus more noise): the paired
    locus-bootstrap interval of ``noisy - good`` (auPRC and direction r, as the benchmark
    computes it) covers the planted difference (expected over label and effect draws given
    the scores, :func:`planted_values`) in >= 90 % of 160 worlds x draws (nominal 95 %), and
    a planted value off by 0.2 is covered far less often (the check can fail)."""
    from scipy.special import ndtr

    from standins.world.studies.qtl import normal_scores

    rng = np.random.default_rng(2026)
    n_loci, per, a, b, r = 60, 6, -0.7, 1.3, 0.5
    loci = np.repeat(np.arange(n_loci), per).astype(str)
    hits = {"auprc": 0, "direction": 0, "auprc_off": 0}
    total = 0
    for world in range(16):
        d = 0.6 * rng.normal(size=n_loci)[np.repeat(np.arange(n_loci), per)] + rng.normal(size=loci.size)
        good = d + 0.3 * rng.normal(size=d.size)
        noisy = d + 1.5 * d.std() * rng.normal(size=d.size)
        prob = ndtr(a + b * normal_scores(np.abs(d)))
        planted = gen.planted_values(d, {"good": good, "noisy": noisy}, prob, r, n_draws=2000, seed=world)
        want_ap = planted["noisy"]["auprc"] - planted["good"]["auprc"]
        want_r = planted["noisy"]["direction_r"] - planted["good"]["direction_r"]
        for k in range(10):
            lab = rng.random(d.size) < prob
            sd = d[lab].std(ddof=1)
            eff = np.where(lab, r * d / sd + np.sqrt(1 - r * r) * rng.standard_normal(d.size), np.nan)
            out = cz._difference(noisy, good, lab.astype(np.int8), eff, loci, n_boot=300, seed=k, confidence=0.95)
            lo, hi = out["auprc_difference_ci_low"], out["auprc_difference_ci_high"]
            hits["auprc"] += lo <= want_ap <= hi
            hits["auprc_off"] += lo <= want_ap + 0.2 <= hi
            hits["direction"] += out["direction_difference_ci_low"] <= want_r <= out["direction_difference_ci_high"]
            total += 1
    assert total == 160
    assert hits["auprc"] >= 0.90 * total and hits["direction"] >= 0.90 * total, hits
    assert hits["auprc_off"] <= 0.1 * total, hits  # measured: 157, 153 and 0 of 160


@pytest.mark.slow
def test_two_model_study_leaderboard_covers_the_planted_difference(demo, alphagenome_standin, world_dir,
                                                                    prefect_api, tmp_path):
    """The demo's two-model study (live stand-in AlphaGenome + a precomputed baseline in the
    dataset): the leaderboard's paired differences cover the planted difference, whose
    premise (the stand-in's scores, computed in-process by the generator) holds."""
    from agval.revalidation.leaderboard import leaderboard_table, write_leaderboard
    from flows import registry
    from standins.world import World
    from standins.world.studies.qtl import CAQTL_BIOSAMPLE, _track_rows

    toml = demo[-1]
    assert toml.name == "causality-two-model.toml"
    res = registry.run("qtl", toml, backend={"kind": "standin", "address": alphagenome_standin.address,
                                             "standin_world": str(world_dir)})
    folder = Path(res["run_folder"])
    m = json.loads((folder / "metrics.json").read_text())
    assert m["causality"]["models"] == ["alphagenome", "score_noisy"]
    # the planted values were computed from the scores the stand-in returns
    rows = pl.read_parquet(folder / "tables" / "rows.parquet")
    w = World.load(world_dir)
    try:
        mine = gen.standin_scores(w, rows, _track_rows(w, "ATAC", CAQTL_BIOSAMPLE))
    finally:
        w.close()
    assert np.allclose(rows["alphagenome"].to_numpy(), mine, rtol=1e-3, atol=1e-5)
    board = leaderboard_table(folders=[(folder, "qtl")])
    for key in ("causality.auprc_minus_alphagenome", "causality.direction_r_minus_alphagenome"):
        d = board.filter((pl.col("key") == key) & (pl.col("model") == "score_noisy")).row(0, named=True)
        assert d["planted"] is not None and d["ci_low"] <= d["planted"] <= d["ci_high"], d
        if key == "causality.auprc_minus_alphagenome":
            assert d["ci_high"] < 0  # the planted auPRC difference (-0.32) is large enough to be resolved
    planted = m["causality"]["planted"]
    assert planted["score_noisy"]["auprc_difference"]["in_ci"] and planted["alphagenome"]["auprc"]["in_ci"]
    page = write_leaderboard(board, tmp_path)["html"].read_text()
    assert "score_noisy" in page and "alphagenome" in page and "planted" in page and "SIMULATED" in page


def test_published_causality_rows_beside_the_run(demo, monkeypatch):
    """A causality study naming a ``qtl-causality`` registry set shows its rows beside its own
    (metrics and report); the shipped registry holds no such set yet (nothing traceable), so
    the set here is a TEST-ONLY stand-in, never a published number. A seed set is refused."""
    import agval.published as pubmod
    from agval.errors import ConfigError

    shipped = pubmod.published_sets()
    assert not [s for s in shipped.values() if s.kind == pubmod.CAUSALITY_KIND]
    test_set = pubmod._read_registry("test.toml", """
format = "agval-published"
version = 1
[[set]]
id = "test-only-causality"
kind = "qtl-causality"
title = "TEST ONLY (not a published number)"
source = "tests/test_causality.py"
mode = "causality"
rows = [
  { key = "all.score_truth.auprc", label = "auPRC, all", value = 0.5, tolerance = 0.005 },
  { key = "heldout.score_noisy.direction_r", label = "direction r, held out", value = -0.2, tolerance = 0.005 },
  { key = "all.absent_model.auprc", label = "a model this run lacks", value = 0.7, tolerance = 0.005 },
]
""")
    monkeypatch.setattr(pubmod, "published_sets", lambda: {**shipped, **test_set})
    study = _study(demo[0]).model_copy(update={"published": "test-only-causality"})
    out = cz.run_plain(study, genome_path=study.reference_fasta, simulated=True)
    res, block = out["result"], out["metrics"]["published"]
    rows = {r["key"]: r for r in block["rows"]}
    auprc = res["splits"]["all"]["models"]["score_truth"]["auprc"]
    assert rows["all.score_truth.auprc"]["observed"] == pytest.approx(auprc)
    assert rows["all.score_truth.auprc"]["difference"] == pytest.approx(auprc - 0.5)
    r_held = res["splits"]["heldout"]["models"]["score_noisy"]["direction_r"]
    assert rows["heldout.score_noisy.direction_r"]["observed"] == pytest.approx(r_held)
    assert rows["all.absent_model.auprc"]["observed"] is None and block["n_compared"] == 2
    assert block["simulated"] and block["label"]
    title = next(t for t in out["tables"] if t.startswith("Published reference"))
    assert out["tables"][title].height == 3 and "simulated" in title
    assert "Published reference (TEST ONLY" in out["sections"][0][1]
    # a seed study's set is not a causality benchmark's reference
    with pytest.raises(ConfigError, match="qtl-causality"):
        cz.prepare(_study(demo[0]).model_copy(update={"published": "gate2018-caqtl-seed"}))
    with pytest.raises(ConfigError, match="already defined"):
        pubmod._read_registry("dup.toml", 'format = "agval-published"\nversion = 1\n[[set]]\nid = "x"\nkind = "k"\n'
                              'title = "t"\nsource = "s"\nrows = []\n', known={"x"})
