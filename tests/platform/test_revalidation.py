"""Re-validation, plain parts: fingerprint store, change detection, history, paired
comparison, the comparison report and the deployments config validation.

Also defines a tiny test-only study kind (``toy``: module ``tests.platform.test_revalidation``,
``STUDY_MODEL`` + ``FLOW`` + ``PAIRED_METRICS``) registered through a config's
``[study_kinds]``; the integration test serves it when the real study flows are absent.
SIMULATED: the toy study scores the synthetic world on the stand-in.
"""

from __future__ import annotations

import html
import json
import os
import threading
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from prefect import flow
from pydantic import BaseModel

from agval.config import BackendConfig
from agval.errors import CardinalityError, ConfigError, GuardError
from agval.runs import RunRecord
from flows.revalidate import RESULT_STORAGE

# ---------------------------------------------------------------------------------------
# the toy study (test-only study kind)
# ---------------------------------------------------------------------------------------


class ToyStudy(BaseModel):
    name: str = "toy"
    world: str
    n_variants: int = 12
    scorer: str = "DNASE"
    interval_width: int = 16_384
    seed: int = 3


def _toy_variants(world_dir: str, n: int) -> pl.DataFrame:
    df = pl.read_parquet(Path(world_dir) / "variants.parquet")
    df = df.filter((pl.col("status") == "ok") & (pl.col("kind") == "snv")).unique(["chrom", "pos", "ref", "alt"])
    df = df.sort(["chrom", "pos", "alt"]).gather_every(max(1, df.height // max(1, n))).head(n)
    return df.select(pl.col("rsid").alias("row_id"), "chrom", "pos", "ref", "alt")


def toy_run(study: ToyStudy, backend: BackendConfig) -> dict:
    """The toy study's body (inside a flow): score the variants through the scoring tasks
    (the flow's task runner fans the chunks out), compare with a planted measurement."""
    from agval.stats.correlation import spearman
    from flows._common import backend_session, start_run
    from tasks.scoring import score_variants

    variants = _toy_variants(study.world, study.n_variants)
    with backend_session(backend) as (b, spec):
        rec = start_run(study.name, "toy-study", study, simulated=b.simulated, seed=study.seed)
        with rec:
            run = score_variants(variants, [study.scorer], backend=spec, cache=None, chunk_size=4,
                                 interval_width=study.interval_width, artifact_key=f"{study.name}-scoring")
            run.record(rec)
            rec.write_table("scores", run.scores)
            pred = run.scores.group_by("row_id").agg(pl.col("raw_score").mean().alias("prediction"))
            rng = np.random.default_rng(study.seed)
            # the "experiment": a fixed, model-independent measurement per variant
            meas = variants.select("row_id").with_columns(
                pl.Series("measured", rng.normal(size=variants.height)))
            table = meas.join(pred, on="row_id", how="left").sort("row_id")
            rec.write_table("toy", table)
            rho = spearman(table["prediction"].to_numpy(), table["measured"].to_numpy())
            rho = rho.get("rho") if isinstance(rho, dict) else rho
            metrics = {"toy": {"spearman": float(rho) if rho is not None else None, "n": table.height},
                       "scoring": {"failures": run.failures.height}}
            rec.add_metrics(metrics)
            rec.write_report("<html><body>toy study (SIMULATED)</body></html>")
    return {"run_folder": str(rec.folder), "simulated": rec.manifest["simulated"], "metrics": metrics,
            "headline": metrics["toy"]}


STUDY_MODEL = ToyStudy
PAIRED_METRICS = [{"metric": "toy.spearman", "table": "toy", "key": ["row_id"], "prediction": "prediction",
                   "measured": "measured", "statistic": "spearman"}]



@flow(name="toy-study", persist_result=True, result_storage=RESULT_STORAGE)
def toy_flow(study: ToyStudy, backend: BackendConfig = BackendConfig()) -> dict:
    """The toy study (test-only): score a few world variants, correlate with a fixed measurement."""
    return toy_run(study, backend)


FLOW = toy_flow


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------

def fp(digest_seed: str = "a", *, sdk="0.10.0", canary=((1.0, 2.0)), meta="m1", model_version="ALL_FOLDS"):
    from agval.scoring.fingerprint import fingerprint_digest

    rows = [["chr1:1:A>G", "DNASE", f"t{i}", "+", None, v, 0.5] for i, v in enumerate(canary)]
    f = {"backend": "alphagenome", "model_version": model_version, "sdk_version": sdk, "proto_sha256": "p",
         "model_versions": ["ALL_FOLDS"], "recommended_scorers_sha256": "r",
         "metadata": {"HOMO_SAPIENS": {"n_tracks": 10, "sha256": meta}},
         "canary": {"sha256": json.dumps(rows), "scores": rows, "errors": {}}}
    f["digest"] = fingerprint_digest(f)
    return f


def make_run(root: Path, study: str, *, digest: str, version: str = "ALL_FOLDS", table: pl.DataFrame | None = None,
             metrics: dict | None = None, simulated: bool = True, address_kind: str = "standin") -> Path:
    rec = RunRecord.start(study, "toy-study", parameters={"x": 1}, simulated=simulated, root=root)
    with rec:
        rec.set_backend({"backend": "alphagenome", "address_kind": address_kind, "model_version": version,
                         "simulated": simulated})
        rec.set_model({"model_version": version, "fingerprint_digest": digest,
                       "fingerprint": {"digest": digest, "model_version": version}})
        if table is not None:
            rec.write_table("toy", table)
        rec.add_metrics(metrics or {"toy": {"spearman": 0.5, "n": 10}, "flag": True, "label": "x"})
        rec.write_report("<html><body>run</body></html>")
    return rec.folder


# ---------------------------------------------------------------------------------------
# change detection and the fingerprint store
# ---------------------------------------------------------------------------------------

def test_detect_change_names_what_differed():
    from agval.revalidation import detect_change

    base = fp()
    assert detect_change(None, base).first_seen
    same = detect_change(base, fp())
    assert not same.changed and not same.material and same.parts == []
    tiny = detect_change(base, fp(canary=(1.0, 2.0004)))
    assert tiny.changed and not tiny.material, "a canary move below tolerance is not material"
    weights = detect_change(base, fp(canary=(1.0, 2.5)))
    assert weights.material and weights.parts == ["canary"]
    sdk = detect_change(base, fp(sdk="0.11.0", meta="m2"))
    assert sdk.parts == ["sdk", "metadata"]
    assert sdk.details["sdk_version"] == ["0.10.0", "0.11.0"]
    assert "->" in sdk.summary()


def test_fingerprint_store_baseline_log_and_lookup(tmp_path):
    from agval.revalidation import FingerprintStore

    store = FingerprintStore(tmp_path / "reval")
    a, b, tiny = fp(), fp(canary=(1.0, 3.0)), fp(canary=(1.0, 3.0002))
    r1 = store.check("standin", "ALL_FOLDS", a)
    assert r1.first_seen and store.baseline("standin", "ALL_FOLDS")["digest"] == a["digest"]
    r2 = store.check("standin", "ALL_FOLDS", b)
    assert r2.material and r2.old_digest == a["digest"] and r2.new_digest == b["digest"]
    assert store.baseline("standin", "ALL_FOLDS")["digest"] == b["digest"]
    r3 = store.check("standin", "ALL_FOLDS", tiny)
    assert r3.changed and not r3.material
    assert store.baseline("standin", "ALL_FOLDS")["digest"] == b["digest"], "baseline moves only on material changes"
    log = store.log()
    assert log.height == 3 and log["material"].to_list() == [False, True, False]
    assert log["differed"].to_list()[1] == "canary"
    assert store.get(a["digest"][:10])["digest"] == a["digest"]
    assert store.get(tiny["digest"])["canary"]["scores"][1][5] == 3.0002
    assert store.keys() == [("standin", "ALL_FOLDS")]
    with pytest.raises(ConfigError):
        store.check("bad.name", "ALL_FOLDS", a)


def test_standin_revision_changes_the_canary_only(world_dir, alphagenome_standin):
    """A new stand-in revision (new weights) changes the canary, not the SDK or protos."""
    from agval.revalidation import detect_change
    from agval.revalidation.watch import fingerprint_now
    from standins.alphagenome import serve
    from tests.fixtures_alphagenome import standin_test_config

    f0 = fingerprint_now("standin", address=alphagenome_standin.address, model_version="ALL_FOLDS",
                         standin_world=str(world_dir))
    f0b = fingerprint_now("standin", address=alphagenome_standin.address, model_version="ALL_FOLDS",
                          standin_world=str(world_dir))
    assert f0["digest"] == f0b["digest"] and f0["simulated"]
    h1 = serve(world_dir, port=0, config=standin_test_config(revision=1))
    try:
        f1 = fingerprint_now("standin", address=h1.address, model_version="ALL_FOLDS", standin_world=str(world_dir))
    finally:
        h1.stop(grace=0.2)
    rep = detect_change(f0, f1)
    assert rep.material and "canary" in rep.parts
    assert not {"sdk", "proto"} & set(rep.parts)


# ---------------------------------------------------------------------------------------
# history
# ---------------------------------------------------------------------------------------

def test_history_rows_append_idempotent_and_sync(tmp_path):
    from agval.revalidation import append_run, read_history, rows_from_run, sync_history

    root = tmp_path / "results"
    hist = tmp_path / "history.parquet"
    f1 = make_run(root, "toy-a", digest="d" * 64, metrics={"toy": {"spearman": 0.4, "n": 9, "nan": None},
                                                             "ok": True, "name": "x"})
    rows = rows_from_run(f1, study_kind="toy", study_file="/s.toml")
    assert sorted(rows["metric"].to_list()) == ["toy.n", "toy.nan", "toy.spearman"]
    r = rows.filter(pl.col("metric") == "toy.spearman").row(0, named=True)
    assert r["value"] == 0.4 and r["model_fingerprint"] == "d" * 64 and r["backend"] == "alphagenome:standin"
    assert r["study"] == "toy-a" and r["study_kind"] == "toy" and r["simulated"] and r["time"] is not None
    assert append_run(f1, hist, study_kind="toy") == 3
    assert append_run(f1, hist, study_kind="toy") == 0, "a run is appended once"
    f2 = make_run(root, "toy-a", digest="e" * 64)
    assert sync_history([root], hist, kind_of_flow={"toy-study": "toy"}) == 2
    assert sync_history([root], hist) == 0
    h = read_history(hist)
    assert h["run_id"].n_unique() == 2 and set(h["study_kind"]) == {"toy"}
    from agval.schema import read_format

    assert read_format(hist) == ("agval-history", 1)


def test_history_concurrent_appends_lose_nothing(tmp_path):
    from agval.revalidation import append_run, read_history

    root = tmp_path / "results"
    hist = tmp_path / "history.parquet"
    folders = [make_run(root, f"s{i}", digest=f"{i:064d}") for i in range(8)]
    errors = []

    def go(f):
        try:
            append_run(f, hist)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=go, args=(f,)) for f in folders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert read_history(hist)["run_id"].n_unique() == 8


# ---------------------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------------------

def _tables(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n)
    ids = [f"r{i}" for i in range(n)]
    a = pl.DataFrame({"row_id": ids, "prediction": y + 0.3 * rng.normal(size=n), "measured": y})
    b = pl.DataFrame({"row_id": ids, "prediction": y + 2.0 * rng.normal(size=n), "measured": y})
    return a, b


def test_compare_runs_paired_bootstrap_matches_the_stats_library(tmp_path):
    from agval.revalidation.compare import PairedSpec, compare_runs, metric_deltas
    from agval.stats.resampling import paired_bootstrap_difference

    ta, tb = _tables()
    fa = make_run(tmp_path, "toy", digest="a" * 64, table=ta, metrics={"toy": {"spearman": 0.9}})
    # run B saw the same rows in another order, plus one row A lacks
    extra = pl.DataFrame({"row_id": ["zz"], "prediction": [0.0], "measured": [1.0]})
    fb = make_run(tmp_path, "toy", digest="b" * 64, table=pl.concat([tb.reverse(), extra]),
                  metrics={"toy": {"spearman": 0.4}})
    spec = PairedSpec("toy.spearman", "toy", ("row_id",), "prediction", "measured")
    out = compare_runs(fa, fb, [spec], n_boot=500, seed=11, study="toy")
    r = out.row(0, named=True)
    sa, sb = ta.sort("row_id"), tb.sort("row_id")  # rows are paired and ordered by the key
    ref = paired_bootstrap_difference(sa["prediction"], sb["prediction"], sa["measured"], "spearman",
                                      n_boot=500, seed=11)
    assert r["n"] == 120 and r["n_a"] == 120 and r["n_b"] == 121
    assert r["difference"] == pytest.approx(ref["difference"])
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((ref["ci_low"], ref["ci_high"]))
    assert r["ci_low"] > 0, "the better predictor's advantage is resolved"
    d = metric_deltas(fa, fb).row(0, named=True)
    assert d["metric"] == "toy.spearman" and d["a_minus_b"] == pytest.approx(0.5)  # A - B, as the paired CI
    # group_by and filter
    ta2 = ta.with_columns(pl.Series("assay", ["A", "B"] * 60))
    tb2 = tb.with_columns(pl.Series("assay", ["A", "B"] * 60))
    ga = make_run(tmp_path, "toy2", digest="a" * 64, table=ta2)
    gb = make_run(tmp_path, "toy2", digest="b" * 64, table=tb2)
    grouped = compare_runs(ga, gb, [{"metric": "m", "table": "toy", "key": ["row_id"], "prediction": "prediction",
                                     "measured": "measured", "group_by": ["assay"]}], n_boot=100, seed=1)
    assert grouped["metric"].to_list() == ["m[A]", "m[B]"] and grouped["n"].to_list() == [60, 60]


def test_compare_refuses_different_data_and_ambiguous_keys(tmp_path):
    from agval.revalidation.compare import PairedSpec, compare_runs

    ta, tb = _tables(n=30)
    fa = make_run(tmp_path, "toy", digest="a" * 64, table=ta)
    fb = make_run(tmp_path, "toy", digest="b" * 64, table=tb.with_columns(pl.col("measured") + 1))
    spec = PairedSpec("toy.spearman", "toy", ("row_id",), "prediction", "measured")
    with pytest.raises(GuardError, match="different measurements"):
        compare_runs(fa, fb, [spec], n_boot=10, seed=0)
    fc = make_run(tmp_path, "toy", digest="c" * 64, table=pl.concat([tb, tb.head(1)]))
    with pytest.raises(CardinalityError):
        compare_runs(fa, fc, [spec], n_boot=10, seed=0)
    missing = compare_runs(fa, fb, [PairedSpec("x", "absent", ("row_id",), "p", "m")], n_boot=10, seed=0)
    assert missing["note"][0].startswith("not compared")


def test_comparison_report_folder(tmp_path, monkeypatch):
    from agval.revalidation import append_run, read_history
    from agval.revalidation.compare import specs_for
    from agval.revalidation.report import build_comparison

    import tests.platform.test_revalidation as toy

    root = tmp_path / "results"
    hist = tmp_path / "history.parquet"
    ta, tb = _tables(n=60)
    for digest, table, sp in (("a" * 64, ta, 0.9), ("b" * 64, tb, 0.5)):
        f = make_run(root, "toy-study", digest=digest, table=table, metrics={"toy": {"spearman": sp, "n": 60}})
        append_run(f, hist, study_kind="toy")
    h = read_history(hist)
    store_fps = {"a" * 64: fp(), "b" * 64: fp(canary=(1.0, 9.0))}
    res = build_comparison(h, None, None, specs_for=lambda k: specs_for(k, toy), n_boot=200, seed=2,
                           fingerprint_lookup=store_fps.get, root=tmp_path / "reports")
    folder = Path(res["report_folder"])
    assert res["side_a"] == ["fingerprint", "a" * 64] and res["side_b"] == ["fingerprint", "b" * 64]
    for name in ("report.html", "index.html", "manifest.json", "tables/comparison.parquet",
                 "tables/metric_deltas.parquet", "tables/fingerprint_diff.parquet", "plots/toy-study-history.png"):
        assert (folder / name).exists(), name
    comp = pl.read_parquet(folder / "tables" / "comparison.parquet")
    assert comp["metric"].to_list() == ["toy.spearman"] and comp["difference"][0] > 0
    fpd = pl.read_parquet(folder / "tables" / "fingerprint_diff.parquet")
    assert "canary" in fpd["part"].to_list()
    index = (folder / "index.html").read_text()
    for run_folder in h["run_folder"].unique():
        # render_index links each run's report relative to the folder holding index.html
        href = Path(os.path.relpath(Path(run_folder) / "report.html", folder)).as_posix()
        assert href.startswith("../") and href.endswith("/report.html")
        assert f'<a href="{html.escape(href)}">' in index, href
    assert index.count("report.html") >= 3
    page = (folder / "report.html").read_text()
    assert "SIMULATED" in page and "status: completed" in page and "status: running" not in page
    # selectors: a backend label and run folders
    res2 = build_comparison(h, h["run_folder"][0], h.sort("time")["run_folder"][-1],
                            specs_for=lambda k: specs_for(k, toy), n_boot=50, seed=2, root=tmp_path / "reports")
    assert res2["side_a"][0] == "folder"
    with pytest.raises(ConfigError):
        build_comparison(h, "nonsense", "alsonot", specs_for=lambda k: [], root=tmp_path / "reports")


# ---------------------------------------------------------------------------------------
# the deployments config
# ---------------------------------------------------------------------------------------

TOY_WORLD_PLACEHOLDER = "/nonexistent"


def write_config(tmp_path: Path, study_file: Path | None = None, **over) -> Path:
    study_file = study_file or write_study(tmp_path)
    parts = {
        "head": '[study_kinds]\ntoy = "tests.platform.test_revalidation"\n',
        "backends": '[[backends]]\nname = "standin"\nkind = "standin"\naddress = "127.0.0.1:1"\n'
                    'model_versions = ["ALL_FOLDS"]\n',
        "watch": '[watch]\ncron = "*/5 * * * *"\n',
        "studies": f'[[studies]]\nname = "toy-a"\nkind = "toy"\nfile = "{study_file}"\ncron = "0 3 * * *"\n'
                   'backend = "standin"\n',
    }
    parts.update(over)
    p = tmp_path / "agval.toml"
    p.write_text("\n".join(parts.values()))
    return p


def write_study(tmp_path: Path, world: str = TOY_WORLD_PLACEHOLDER) -> Path:
    p = tmp_path / "toy.toml"
    p.write_text(f'[study]\nname = "toy-a"\nworld = "{world}"\n\n[backend]\nkind = "standin"\naddress = "127.0.0.1:9"\n')
    return p


def test_config_loads_and_builds_study_parameters(tmp_path, monkeypatch):
    from deployments.config import load_and_validate, study_parameters, study_files

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    cfg = load_and_validate(write_config(tmp_path))
    entry = cfg.studies[0]
    params = study_parameters(cfg, entry, study_files(entry)[0])
    assert params["study"]["name"] == "toy-a" and params["study"]["world"] == TOY_WORLD_PLACEHOLDER
    assert params["backend"]["kind"] == "standin" and params["backend"]["address"] == "127.0.0.1:1"
    json.dumps(params)  # deployment parameters are JSON


def test_default_config_parses_and_prefect_yaml_is_in_sync(monkeypatch):
    """deployments/agval.toml is valid apart from its demo files, and prefect.yaml is its rendering."""
    from deployments import config as dcfg
    from deployments.serve import render_prefect_yaml

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    cfg = dcfg.load_config(dcfg.DEFAULT_CONFIG, env=dict(dcfg.DEMO_VARIABLES))
    assert cfg.demo.enabled and {s.kind for s in cfg.studies} == {"qtl", "twas", "mpra"}
    dcfg.check_cron(cfg.watch.cron, "watch")
    yaml_path = Path(dcfg.__file__).with_name("prefect.yaml")
    assert yaml_path.read_text() == render_prefect_yaml(cfg), "run `agval prefect-yaml` after editing agval.toml"


@pytest.mark.parametrize("over, match", [
    ({"watch": '[watch]\ncron = "61 * * * *"\n'}, r"\[watch\] cron: invalid cron '61 \* \* \* \*'"),
    ({"watch": '[watch]\ncron = "* * *"\n'}, "invalid cron"),
    ({"watch": '[watch]\ntimezone = "Mars/Olympus"\n'}, "unknown timezone"),
    ({"studies": '[[studies]]\nname = "x"\nkind = "nosuch"\nfile = "a.toml"\n'}, "unknown study kind 'nosuch'"),
    ({"studies": '[[studies]]\nname = "x"\nkind = "toy"\nfile = "missing.toml"\n'}, "study file not found"),
    ({"studies": '[[studies]]\nname = "x"\nkind = "toy"\nfile = "none-*.toml"\n'}, "no study file matches"),
    ({"studies": '[[studies]]\nname = "x"\nkind = "toy"\nfile = "toy.toml"\nbackend = "ghost"\n'},
     "unknown backend 'ghost'"),
    ({"studies": '[[studies]]\nname = "x"\nkind = "toy"\nfile = "toy.toml"\ncron = "0 25 * * *"\n'},
     r"studies\[0\] \(x\) cron: invalid cron"),
    ({"backends": '[[backends]]\nname = "a.b"\nkind = "standin"\naddress = "h:1"\n'}, "backend name 'a.b'"),
    ({"backends": '[[backends]]\nname = "s"\naddress = "${AGVAL_SURELY_UNSET_VAR}"\n'},
     r"\$\{AGVAL_SURELY_UNSET_VAR\} is not set"),
    ({"extra": "[watch2]\ncron = 1\n"}, "watch2: Extra inputs are not permitted"),
    ({"extra": "[[studies]\n"}, "not valid TOML"),
])
def test_config_errors_are_clear(tmp_path, monkeypatch, over, match):
    from deployments.config import load_and_validate

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    write_study(tmp_path)
    with pytest.raises(ConfigError, match=match):
        load_and_validate(write_config(tmp_path, **over))


def test_config_bad_study_file_contents(tmp_path, monkeypatch):
    from deployments.config import load_and_validate

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    bad = tmp_path / "bad.toml"
    bad.write_text('[study]\nname = "x"\nn_variants = "many"\n')
    with pytest.raises(ConfigError, match=r"studies\[0\] \(toy-a\).*study.world: Field required"):
        load_and_validate(write_config(tmp_path, study_file=bad))


def test_config_unreachable_server(tmp_path, monkeypatch):
    from deployments.config import load_and_validate
    from deployments.server import free_port

    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{free_port()}/api")
    with pytest.raises(ConfigError, match="PREFECT_API_URL=.* is unreachable"):
        load_and_validate(write_config(tmp_path))


def test_task_runner_selection():
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    from flows.runners import runner_env, task_runner_from_config, task_runner_from_env
    from deployments.config import RunnerSection

    assert isinstance(task_runner_from_config(), ThreadPoolTaskRunner)
    remote = task_runner_from_config("dask", address="tcp://127.0.0.1:8786")
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://127.0.0.1:8786"
    local = task_runner_from_env(runner_env(RunnerSection(kind="dask", n_workers=3, processes=False)))
    assert isinstance(local, DaskTaskRunner) and local.cluster_kwargs["n_workers"] == 3
    assert local.cluster_kwargs["processes"] is False
    with pytest.raises(ConfigError):
        task_runner_from_config("ray")


def test_specs_sign_concordance_products_abs_and_metric_references(tmp_path):
    """The per-kind specs' features: measured as a product (TWAS), sign concordance,
    magnitudes (QTL) and column names read from metrics.json (MPRA)."""
    from agval.revalidation.compare import PAIRED_SPECS, PairedSpec, compare_runs

    rng = np.random.default_rng(4)
    n = 80
    z, t = rng.normal(size=n), rng.choice([-3.0, 3.0], size=n)
    genes = [f"g{i % 10}" for i in range(n)]
    base = {"variant_key": [f"chr1:{i}:A>G" for i in range(n)], "gene_id": genes, "tissue": ["T"] * n,
            "assay": ["RNA"] * n, "z_alt": z, "twas_z": t}
    good = pl.DataFrame({**base, "score": np.sign(z * t) * rng.uniform(0.1, 1, n)})   # always concordant
    coin = pl.DataFrame({**base, "score": rng.normal(size=n)})
    fa = make_run(tmp_path, "tw", digest="a" * 64, table=None)
    fb = make_run(tmp_path, "tw", digest="b" * 64, table=None)
    from agval.schema import write_table

    write_table(good, fa / "tables" / "triplets.parquet")
    write_table(coin, fb / "tables" / "triplets.parquet")
    out = compare_runs(fa, fb, PAIRED_SPECS["twas"], n_boot=200, seed=1).row(0, named=True)
    expect_b = float(np.mean(np.sign(coin["score"].to_numpy()) == np.sign(z * t)))
    assert out["metric"] == "twas.q1_sign_concordance[RNA]" and out["estimate_a"] == 1.0
    assert out["estimate_b"] == pytest.approx(expect_b) and out["n_clusters"] == 10
    # magnitudes
    ta = pl.DataFrame({"row_id": [f"r{i}" for i in range(n)], "x": -np.abs(z), "y": np.abs(z) * 2})
    ra, rb = make_run(tmp_path, "q", digest="a" * 64, table=ta), make_run(tmp_path, "q", digest="b" * 64, table=ta)
    mag = compare_runs(ra, rb, [PairedSpec("m", "toy", ("row_id",), "x", "y", transform="abs")], n_boot=20, seed=0)
    assert mag["estimate_a"][0] == pytest.approx(1.0)
    # "@" references into metrics.json
    mp = pl.DataFrame({"row_id": [f"r{i}" for i in range(n)], "dnase_center": z, "log2_ratio": z + 0.1,
                       "locus_id": genes})
    m = {"primary_aggregate": "dnase_center", "inputs": {"cluster_column": "locus_id"}}
    ma = make_run(tmp_path, "mp", digest="a" * 64, metrics=m)
    mb = make_run(tmp_path, "mp", digest="b" * 64, metrics=m)
    write_table(mp, ma / "tables" / "constructs.parquet")
    write_table(mp, mb / "tables" / "constructs.parquet")
    res = compare_runs(ma, mb, PAIRED_SPECS["mpra"], n_boot=50, seed=0)
    assert res["metric"].to_list() == ["mpra.primary.pearson", "mpra.primary.spearman",
                                       "mpra.primary.auroc_median_split"]
    assert res["difference"].to_list() == [0.0, 0.0, 0.0] and res["n_clusters"][0] == 10
