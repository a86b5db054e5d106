"""The scoring engine against the stand-in AlphaGenome service over real gRPC channels:
every injected fault, fast-vs-SDK decoding, fingerprint and cache behaviour, live vs
precomputed identity, the Atlas path. (SIGKILL recovery: test_scoring_kill.py.)

Only the cheap DNASE centre-mask scorer is used (the stand-in computes a quantile
background per scorer on first use), and the retry backoff sleeps are no-ops.
"""

from __future__ import annotations

import re
import time

import polars as pl
import pytest

from agval.scoring import engine
from agval.scoring.alphagenome import AlphaGenomeBackend
from agval.scoring.backend import RetryPolicy, resolve_scorers
from agval.scoring.cache import ScoreCache
from agval.scoring.fingerprint import canary_panel_from_world
from tests.helpers import world_snvs

WIDTH = 16_384
SCORERS = ["DNASE"]


def _variants(world_dir, n=12, offset=10):
    return world_snvs(world_dir, n, offset, prefix="v")


@pytest.fixture
def policy():
    return RetryPolicy(max_attempts=4, sleep=lambda s: None, seed=0)


@pytest.fixture
def standin(alphagenome_standin):
    alphagenome_standin.servicer.reset()
    return alphagenome_standin


@pytest.fixture
def backend(standin, world_dir):
    b = AlphaGenomeBackend(standin.address, deadline_s=5.0, world_dir=world_dir)
    yield b
    b.close()


def _width(interval: str) -> int:
    m = re.search(r":(-?\d+)-(-?\d+)$", interval)
    return int(m.group(2)) - int(m.group(1))


def _score_calls(h, width=WIDTH):
    """ScoreVariant calls at ``width`` (the fingerprint canary uses another width)."""
    return [c for c in h.servicer.calls if c.method == "ScoreVariant" and c.interval and _width(c.interval) == width]


def test_backend_is_simulated_standin(backend):
    d = backend.describe()
    assert backend.simulated and d["address_kind"] == "standin" and d["simulated"] is True
    assert "x-goog-api-key" not in str(d)


FAULTS = {
    "resource_exhausted": [("x-fake-fail-first", "2"), ("x-fake-fail-code", "RESOURCE_EXHAUSTED")],
    "unavailable": [("x-fake-fail-first", "2"), ("x-fake-fail-code", "UNAVAILABLE")],
    "deadline_exceeded": [("x-fake-fail-first", "1"), ("x-fake-fail-code", "DEADLINE_EXCEEDED")],
    "midstream_abort": [("x-fake-fail-first", "1"), ("x-fake-fail-midstream", "1"),
                        ("x-fake-fail-code", "UNAVAILABLE")],
    "hang": [("x-fake-fail-first", "1"), ("x-fake-hang-ms", "4000")],
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_injected_fault_ends_with_every_variant_scored(fault, standin, backend, world_dir, policy, tmp_path):
    df = _variants(world_dir, 6)
    b = backend.with_metadata(FAULTS[fault])
    if fault == "hang":
        b.deadline_s = 0.6
        from agval.scoring.alphagenome import make_channel

        b._raw_channel, b._channel = make_channel(standin.address, deadline_s=0.6)
        from alphagenome.protos.v1 import dna_model_service_pb2_grpc

        b._stub = dna_model_service_pb2_grpc.DnaModelServiceStub(b._channel)
    run = engine.score(df, SCORERS, backend=b, cache=ScoreCache(tmp_path, simulated=True),
                       interval_width=WIDTH, concurrency=3, policy=policy, progress=False,
                       fingerprint="fixed-" + fault)
    assert run.failures.height == 0
    assert run.scores["row_id"].n_unique() == 6
    # injected faults fire before the request is parsed, so group attempts by request fingerprint.
    # The stand-in logs a call when it finishes: a cancelled attempt may be logged late (or after
    # its retry) on a loaded machine, so wait for every record, then order by attempt.
    n_fail = int(dict(FAULTS[fault])["x-fake-fail-first"])

    def group() -> dict[str, list]:
        out: dict[str, list] = {}
        for c in list(standin.servicer.calls):
            if c.method == "ScoreVariant":
                out.setdefault(c.fingerprint, []).append(c)
        return out

    deadline = time.monotonic() + 15.0
    by_variant = group()
    while time.monotonic() < deadline and not (
            len(by_variant) == 6 and all(len(cs) >= n_fail + 1 for cs in by_variant.values())):
        time.sleep(0.05)
        by_variant = group()
    assert len(by_variant) == 6, {v: [(c.attempt, c.outcome) for c in cs] for v, cs in by_variant.items()}
    for v, cs in by_variant.items():
        cs.sort(key=lambda c: c.attempt)
        assert [c.attempt for c in cs] == list(range(1, n_fail + 2)), v
        assert cs[-1].outcome == "OK"
        if fault == "hang":
            assert cs[0].outcome == "CANCELLED"  # our deadline fired; the server saw the client go
        else:
            assert all(c.injected for c in cs[:-1])
    assert run.summary["retries"] == 6 * n_fail
    assert run.summary["throttled"] == (6 * n_fail if fault == "resource_exhausted" else 0)


def test_exhausted_retries_are_recorded_with_reason(backend, world_dir, policy):
    df = _variants(world_dir, 3)
    b = backend.with_metadata([("x-fake-fail-code", "UNAVAILABLE")])  # every attempt fails
    run = engine.score(df, SCORERS, backend=b, cache=None, interval_width=WIDTH, policy=policy,
                       progress=False, fingerprint="x")
    assert run.failures["error_code"].to_list() == ["UNAVAILABLE"] * 3
    assert run.failures["attempts"].to_list() == [4] * 3
    assert all("injected fault" in m for m in run.failures["message"])


def test_poison_variant_recorded_rest_scored(world_dir, policy, tmp_path):
    from standins.alphagenome import serve
    from tests.fixtures_alphagenome import standin_test_config

    df = _variants(world_dir, 8)
    bad = f"{df['chrom'][3]}:{df['pos'][3]}:{df['ref'][3]}>{df['alt'][3]}"
    h = serve(world_dir, config=standin_test_config(poison=(bad,)))
    try:
        b = AlphaGenomeBackend(h.address, deadline_s=5.0)
        run = engine.score(df, SCORERS, backend=b, cache=ScoreCache(tmp_path, simulated=True),
                           interval_width=WIDTH, concurrency=4, policy=policy, progress=False, fingerprint="p")
        assert run.failures.select("variant_key", "error_code", "attempts").rows() == [(bad, "INVALID_ARGUMENT", 1)]
        assert run.scores["row_id"].n_unique() == 7
        assert "v3" not in set(run.scores["row_id"])
        b.close()
    finally:
        h.stop()


def test_fast_decode_equals_sdk_over_the_wire(backend, world_dir):
    sc = resolve_scorers(["DNASE", "CHIP_HISTONE"])
    sdk = AlphaGenomeBackend(backend.address, decode="sdk")
    for v in canary_panel_from_world(world_dir, 3):
        a = backend.score_one(v, sc, interval_width=WIDTH, organism="human")
        s = sdk.score_one(v, sc, interval_width=WIDTH, organism="human")
        assert a.height > 0 and a.equals(s)
    sdk.close()


def test_fingerprint_changes_with_model_and_revision_and_cache_follows(standin, world_dir, policy, tmp_path):
    from standins.alphagenome import serve
    from tests.fixtures_alphagenome import standin_test_config

    cache = ScoreCache(tmp_path, simulated=True)
    df = _variants(world_dir, 4)
    same1 = AlphaGenomeBackend(standin.address, world_dir=world_dir)
    same2 = AlphaGenomeBackend(standin.address, world_dir=world_dir)
    fold = AlphaGenomeBackend(standin.address, world_dir=world_dir, model_version="FOLD_1")
    fp1, fp2, fpf = same1.fingerprint(), same2.fingerprint(), fold.fingerprint()
    assert fp1["digest"] == fp2["digest"] and fp1["canary"]["n_scores"] > 0 and not fp1["canary"]["errors"]
    assert fpf["digest"] != fp1["digest"]
    r1 = engine.score(df, SCORERS, backend=same1, cache=cache, interval_width=WIDTH, policy=policy, progress=False)
    standin.servicer.reset()
    r2 = engine.score(df, SCORERS, backend=same2, cache=cache, interval_width=WIDTH, policy=policy, progress=False)
    assert _score_calls(standin) == [] and r2.summary["cache_hits"] == 4 and r2.scores.equals(r1.scores)
    rf = engine.score(df, SCORERS, backend=fold, cache=cache, interval_width=WIDTH, policy=policy, progress=False)
    assert len(_score_calls(standin)) == 4 and rf.summary["cache_hits"] == 0
    assert not rf.scores["raw_score"].equals(r1.scores["raw_score"])
    h = serve(world_dir, config=standin_test_config(revision=1))
    try:
        rev = AlphaGenomeBackend(h.address, world_dir=world_dir)
        assert rev.fingerprint()["digest"] != fp1["digest"]
        rr = engine.score(df, SCORERS, backend=rev, cache=cache, interval_width=WIDTH, policy=policy,
                          progress=False)
        assert rr.summary["cache_hits"] == 0 and rr.summary["calls"] == 4
        rev.close()
    finally:
        h.stop()
    for b in (same1, same2, fold):
        b.close()


def test_live_and_precomputed_give_identical_results(backend, world_dir, policy, tmp_path):
    from agval.scoring.precomputed import PrecomputedBackend

    df = _variants(world_dir, 8)
    sc = ["DNASE", "CHIP_HISTONE"]
    live = engine.score(df, sc, backend=backend, cache=None, interval_width=WIDTH, policy=policy,
                        progress=False, fingerprint="f")
    p = tmp_path / "alphagenome_scores.parquet"
    live.scores.write_parquet(p)
    pre = PrecomputedBackend(p, model="alphagenome-replay")
    assert pre.simulated  # the label travels with the scores
    again = engine.score(df, sc, backend=pre, cache=ScoreCache(tmp_path / "c", simulated=True),
                         interval_width=WIDTH, policy=policy, progress=False)
    assert again.scores.equals(live.scores) and again.failures.height == 0


def test_atlas_snvs_and_indel_fallback(standin, backend, world_dir, policy):
    from agval.scoring.atlas import AtlasBackend

    cat = pl.read_parquet(world_dir / "variants.parquet").filter(pl.col("status") == "ok")
    snvs = cat.filter(pl.col("kind") == "snv").sort("chrom", "pos").slice(20, 3)
    indel = cat.filter(pl.col("kind") == "indel").sort("chrom", "pos").head(1)
    df = pl.concat([snvs, indel]).select(pl.format("a{}", pl.int_range(pl.len())).alias("row_id"),
                                         "chrom", "pos", "ref", "alt")
    atlas = AtlasBackend(standin.address, fallback=backend)
    assert atlas.simulated and atlas.describe()["address_kind"] == "atlas"
    run = engine.score(df, SCORERS, backend=atlas, cache=None, interval_width=2 ** 20, policy=policy,
                       progress=False, fingerprint="atlas")
    assert run.failures.height == 0 and run.scores["row_id"].n_unique() == 4
    methods = [c.method for c in standin.servicer.calls]
    assert methods.count("GetDenseVariantScores") == 3 and methods.count("ScoreVariant") == 1
    # the Atlas holds what score_variant gives on the 1 Mb interval
    live = engine.score(df.head(3), SCORERS, backend=backend, cache=None, interval_width=2 ** 20, policy=policy,
                        progress=False, fingerprint="live")
    a = run.scores.filter(pl.col("row_id") != "a3").sort("row_id", "track_name")
    b = live.scores.sort("row_id", "track_name")
    assert a.select("row_id", "scorer", "track_name").equals(b.select("row_id", "scorer", "track_name"))
    assert a["raw_score"].to_list() == pytest.approx(b["raw_score"].to_list(), rel=1e-5, abs=1e-6)
    atlas_only = AtlasBackend(standin.address)
    r = engine.score(df, SCORERS, backend=atlas_only, cache=None, interval_width=2 ** 20, policy=policy,
                     progress=False, fingerprint="ao")
    assert r.failures["error_code"].to_list() == ["UNIMPLEMENTED"]
    atlas_only.close()


def test_predict_sequences_over_the_wire(standin, backend, world, tmp_path):
    from agval.errors import UnsupportedSequenceError
    from agval.scoring.sequences import predict_sequences

    seq = world.genome.fetch("chr1", 100_000, 100_000 + 16_384).upper()
    seqs = pl.DataFrame({"seq_id": ["a", "b"], "sequence": [seq, seq]})
    run = predict_sequences(seqs, ["DNASE", "CHIP_HISTONE"], backend=backend, bin_size=128,
                            cache=str(tmp_path), fingerprint="seq", progress=False)
    assert [c.method for c in standin.servicer.calls].count("PredictSequence") == 1  # one call, both outputs
    sha = run.sequences["sequence_sha256"][0]
    assert run.predictions[(sha, "DNASE")].shape[0] == 128  # 1 bp signal summed into 128-bp bins
    assert run.predictions[(sha, "CHIP_HISTONE")].shape[0] == 128  # already 128 bp
    summ = run.summary(window=(8_000, 8_400))
    assert set(summ["output_type"]) == {"DNASE", "CHIP_HISTONE"} and summ["value"].is_finite().all()
    assert summ["data_source"].str.contains("SIMULATED").all()
    standin.servicer.reset()
    again = predict_sequences(seqs, ["DNASE", "CHIP_HISTONE"], backend=backend, bin_size=128,
                              cache=str(tmp_path), fingerprint="seq", progress=False)
    assert standin.servicer.calls == [] and again.summary().equals(run.summary())
    with pytest.raises(UnsupportedSequenceError, match="N-padding"):
        predict_sequences(["N" * 100 + seq[100:]], ["DNASE"], backend=backend, cache=None, fingerprint="s")


def test_impossible_requests_are_refused_before_any_call(standin, backend, world_dir):
    from agval.errors import ScoringError

    df = _variants(world_dir, 2)
    with pytest.raises(ScoringError, match="not an AlphaGenome scorer"):
        engine.score(df, ["enformer:DNASE"], backend=backend, cache=None, interval_width=WIDTH, fingerprint="x")
    with pytest.raises(ScoringError, match="interval width"):
        engine.score(df, SCORERS, backend=backend, cache=None, interval_width=10_000, fingerprint="x")
    assert [c for c in standin.servicer.calls if c.method == "ScoreVariant"] == []
