"""Engine, cache, limiter and track logic against a fake backend implementing the ABC
(no network, no stand-in): isolation, retries, dedup, chunking, cache hits, journal
recovery, aggregation."""

from __future__ import annotations

import hashlib
import threading

import numpy as np
import polars as pl
import pytest

from agval.coords import Variant
from agval.errors import InputError, UnsupportedSequenceError
from agval.scoring import backend as be
from agval.scoring.backend import BackendCallError, RetryPolicy, ScoringBackend, SequencePrediction
from agval.scoring.cache import CacheContext, ScoreCache, recover_journals
from agval.scoring.engine import score
from agval.scoring.sequences import predict_sequences
from agval.scoring.limiter import AdaptiveLimiter
from agval.scoring.tracks import Aggregation, TrackSelection, aggregate, match_genes

TRACKS = [("T1", "+", "UBERON:0000948", "heart"), ("T2", "-", "UBERON:0000948", "heart"),
          ("T3", ".", "CL:0000057", "fibroblast")]


def _val(*parts) -> float:
    h = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=4).digest()
    return int.from_bytes(h, "little") / 2 ** 32 - 0.5


class FakeBackend(ScoringBackend):
    """Deterministic scores; poison variants; transient faults for the first N attempts."""

    name = "fake"

    def __init__(self, *, poison=(), fail_first=0, fail_code="UNAVAILABLE", version="v1", gene_scorer="GENE"):
        self.poison = set(poison)
        self.fail_first = fail_first
        self.fail_code = fail_code
        self.version = version
        self.gene_scorer = gene_scorer
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def model_version_name(self):
        return self.version

    def describe(self):
        return {"backend": "fake", "address_kind": "precomputed", "model_version": self.version,
                "simulated": self.simulated}

    def output_metadata(self, organism="HOMO_SAPIENS"):
        return pl.DataFrame({"output_type": ["DNASE"] * 3, "track_name": [t[0] for t in TRACKS],
                             "data_source": ["fake"] * 3})

    def fingerprint(self, **kw):
        return {"digest": hashlib.sha256(self.version.encode()).hexdigest(), "model_version": self.version}

    def score_one(self, variant, scorers, *, interval_width, organism):
        ids = tuple(be.scorer_id(s) for s in scorers)
        with self._lock:
            self.calls.append((variant.key, ids))
            n = self._attempts[variant.key] = self._attempts.get(variant.key, 0) + 1
        if variant.key in self.poison:
            raise BackendCallError("INVALID_ARGUMENT", f"poison {variant.key}")
        if n <= self.fail_first:
            raise BackendCallError(self.fail_code, "injected")
        rows = []
        for s in ids:
            genes = [("ENSG1", "+"), ("ENSG2", "-")] if s == self.gene_scorer else [(None, None)]
            for t, strand, curie, bios in TRACKS:
                for g, gs in genes:
                    if gs is not None and strand != "." and gs != strand:
                        continue
                    rows.append({"variant_key": variant.key, "scorer": s, "output_type": "DNASE",
                                 "gene_id": g, "gene_strand": gs, "track_name": t, "track_strand": strand,
                                 "ontology_curie": curie, "biosample_name": bios,
                                 "raw_score": _val(self.version, variant.key, s, t, g, interval_width),
                                 "quantile_score": _val("q", variant.key, s, t, g)})
        return be.conform_scores(pl.DataFrame(rows))

    def predict_one(self, sequence, *, requested_outputs, ontology_terms, organism):
        with self._lock:
            self.calls.append(("seq:" + sequence[:8], tuple(requested_outputs)))
        out = []
        for ot in requested_outputs:
            vals = np.ones((len(sequence), 2), dtype=np.float32) * (1 + sequence.count("G") / len(sequence))
            tr = be.conform_scores(pl.DataFrame({"track_name": ["a", "b"], "track_strand": [".", "."]}))
            out.append(SequencePrediction(ot, vals, tr.select(list(be.TRACK_COLUMNS)), 1))
        return out


def variants_df(n=10, dup=True):
    rows = [{"row_id": f"r{i}", "chrom": "chr1", "pos": 1000 + i, "ref": "A", "alt": "G"} for i in range(n)]
    if dup:  # the same SNP in two rows (two genes/peaks) stays two rows
        rows.append({"row_id": "dup0", "chrom": "1", "pos": 1000, "ref": "A", "alt": "G"})
    return pl.DataFrame(rows)


@pytest.fixture
def fast_policy():
    slept = []
    return RetryPolicy(max_attempts=4, sleep=slept.append, seed=1), slept


def test_scores_dedup_and_join_back(tmp_path, fast_policy):
    b = FakeBackend()
    policy, _ = fast_policy
    run = score(variants_df(), ["S1", "GENE"], backend=b, cache=ScoreCache(tmp_path, simulated=False),
                interval_width=16384, chunk_size=4, concurrency=4, policy=policy, progress=False)
    assert len(b.calls) == 10  # 11 rows, 10 distinct variants, one call each (both scorers)
    # S1: 3 tracks; GENE: T1 x ENSG1, T2 x ENSG2, T3 x both = 4 rows
    assert run.scores.height == 11 * (3 + 4)
    r0 = run.scores.filter(pl.col("row_id") == "r0").drop("row_id")
    d0 = run.scores.filter(pl.col("row_id") == "dup0").drop("row_id")
    assert r0.equals(d0)
    assert run.failures.height == 0
    assert run.summary["unique_variants"] == 10 and run.summary["calls"] == 10
    assert run.scores.schema["raw_score"] == pl.Float64
    assert set(run.scores["scorer"].unique()) == {"S1", "GENE"}


def test_poison_isolated_and_transient_retried(tmp_path, fast_policy):
    policy, slept = fast_policy
    bad = "chr1:1003:A>G"
    b = FakeBackend(poison={bad}, fail_first=2, fail_code="RESOURCE_EXHAUSTED")
    run = score(variants_df(dup=False), ["S1"], backend=b, cache=ScoreCache(tmp_path, simulated=False),
                interval_width=16384, chunk_size=3, concurrency=3, policy=policy, progress=False, limiter=None)
    assert run.failures.to_dicts() == [{"variant_key": bad, "scorer": "S1", "error_code": "INVALID_ARGUMENT",
                                        "message": f"poison {bad}", "attempts": 1}]
    assert run.scores["row_id"].n_unique() == 9
    assert run.summary["retries"] == 9 * 2 and run.summary["throttled"] == 18
    assert len(slept) == 18 and all(0 < s < 5 for s in slept)


def test_exhausted_transient_is_recorded_not_raised(tmp_path, fast_policy):
    policy, _ = fast_policy
    b = FakeBackend(fail_first=99, fail_code="DEADLINE_EXCEEDED")
    run = score(variants_df(3, dup=False), ["S1"], backend=b, cache=None, interval_width=16384,
                policy=policy, progress=False)
    assert run.failures["attempts"].to_list() == [4, 4, 4]
    assert set(run.failures["error_code"]) == {"DEADLINE_EXCEEDED"}
    assert run.scores.height == 0


def test_cache_hit_miss_and_partial_scorers(tmp_path, fast_policy):
    policy, _ = fast_policy
    cache = ScoreCache(tmp_path, simulated=False)
    b = FakeBackend()
    first = score(variants_df(), ["S1"], backend=b, cache=cache, interval_width=16384, policy=policy,
                  progress=False)
    b.calls.clear()
    again = score(variants_df(), ["S1"], backend=b, cache=cache, interval_width=16384, policy=policy,
                  progress=False)
    assert b.calls == [] and again.summary["calls"] == 0 and again.summary["cache_hits"] == 10
    assert again.scores.equals(first.scores)
    # a new scorer: only that scorer is requested
    both = score(variants_df(), ["S1", "S2"], backend=b, cache=cache, interval_width=16384, policy=policy,
                 progress=False)
    assert {c[1] for c in b.calls} == {("S2",)} and len(b.calls) == 10
    assert both.scores.filter(pl.col("scorer") == "S1").drop("scorer").equals(
        first.scores.drop("scorer"))
    # another width or another model version misses
    b.calls.clear()
    score(variants_df(), ["S1"], backend=b, cache=cache, interval_width=131072, policy=policy, progress=False)
    assert len(b.calls) == 10
    b2 = FakeBackend(version="v2")
    run2 = score(variants_df(), ["S1"], backend=b2, cache=cache, interval_width=16384, policy=policy,
                 progress=False)
    assert len(b2.calls) == 10 and not run2.scores["raw_score"].equals(first.scores["raw_score"])


def test_failed_variants_are_rescored_next_time(tmp_path, fast_policy):
    policy, _ = fast_policy
    cache = ScoreCache(tmp_path, simulated=False)
    b = FakeBackend(poison={"chr1:1001:A>G"})
    score(variants_df(3, dup=False), ["S1"], backend=b, cache=cache, interval_width=16384, policy=policy,
          progress=False)
    b.poison.clear()
    b.calls.clear()
    run = score(variants_df(3, dup=False), ["S1"], backend=b, cache=cache, interval_width=16384,
                policy=policy, progress=False)
    assert [c[0] for c in b.calls] == ["chr1:1001:A>G"]
    assert run.failures.height == 0 and run.scores["row_id"].n_unique() == 3


def test_empty_result_is_cached_as_placeholder(tmp_path, fast_policy):
    policy, _ = fast_policy

    class Empty(FakeBackend):
        def score_one(self, variant, scorers, **kw):
            self.calls.append((variant.key, ()))
            return be.empty_scores()

    b = Empty()
    cache = ScoreCache(tmp_path, simulated=False)
    for _ in range(2):
        run = score(variants_df(2, dup=False), ["S1"], backend=b, cache=cache, interval_width=16384,
                    policy=policy, progress=False)
    assert len(b.calls) == 2 and run.scores.height == 0 and run.summary["cache_hits"] == 2


def test_journal_recovery_keeps_complete_batches(tmp_path):
    cache = ScoreCache(tmp_path, simulated=False)
    ctx = CacheContext(interval_width=100, organism="HOMO_SAPIENS", model_version="v", fingerprint="f" * 64)
    w = cache.writer(ctx)
    b = FakeBackend()
    for i in range(3):
        v = Variant("chr1", 10 + i, "A", "C")
        w.add(v.key, b.score_one(v, ["S1"], interval_width=100, organism="x"), ["S1"])
    journal = w._path
    # simulate SIGKILL: the file stays, its lock is released, and the tail is torn
    data = journal.read_bytes()
    journal.write_bytes(data[:-40])
    import fcntl

    fcntl.flock(w._fh.fileno(), fcntl.LOCK_UN)
    w._fh.close()
    shards = recover_journals(cache.ns_dir(ctx), ctx)
    assert len(shards) == 1 and not journal.exists()
    got = cache.lookup(ctx, [ctx.key(f"chr1:{10 + i}:A>C", "S1") for i in range(3)])
    assert got["variant_key"].n_unique() == 2  # two complete variants, the torn third is gone
    assert got.height == 6


def test_live_journal_is_not_stolen(tmp_path):
    cache = ScoreCache(tmp_path, simulated=False)
    ctx = CacheContext(interval_width=100, organism="HOMO_SAPIENS", model_version="v", fingerprint="f" * 64)
    w = cache.writer(ctx)
    w.add("chr1:5:A>C", None, ["S1"])
    assert recover_journals(cache.ns_dir(ctx), ctx) == []
    assert w.flush() is not None
    assert cache.contains(ctx, [ctx.key("chr1:5:A>C", "S1")])


def test_compact_keeps_everything(tmp_path, fast_policy):
    policy, _ = fast_policy
    cache = ScoreCache(tmp_path, simulated=False)
    b = FakeBackend()
    run = score(variants_df(8, dup=False), ["S1"], backend=b, cache=cache, interval_width=16384, chunk_size=2,
                policy=policy, progress=False)
    ctx = CacheContext(interval_width=16384, organism="HOMO_SAPIENS", model_version="v1",
                       fingerprint=b.fingerprint()["digest"])
    assert len(cache.shards(ctx)) == 4
    cache.compact(ctx)
    assert len(cache.shards(ctx)) == 1
    again = score(variants_df(8, dup=False), ["S1"], backend=b, cache=cache, interval_width=16384,
                  policy=policy, progress=False)
    assert again.summary["calls"] == 0 and again.scores.equals(run.scores)


def test_bad_input_names_the_row():
    df = pl.DataFrame({"row_id": ["a", "b"], "chrom": ["chr1", "chr1"], "pos": [5, 6], "ref": ["A", "N"],
                       "alt": ["G", "T"]})
    with pytest.raises(InputError, match="row 2"):
        score(df, ["S1"], backend=FakeBackend(), cache=None)
    with pytest.raises(InputError, match="alt"):
        score(df.drop("alt"), ["S1"], backend=FakeBackend(), cache=None)


def test_track_selection_and_aggregation(tmp_path, fast_policy):
    policy, _ = fast_policy
    run = score(variants_df(4), ["S1", "GENE"], backend=FakeBackend(), cache=None, interval_width=16384,
                policy=policy, progress=False)
    sel = TrackSelection(ontology_curies=["uberon:0000948"], scorers=["S1"])
    assert TrackSelection.from_dict(sel.to_dict()) == sel
    per, pool = aggregate(run.scores, sel, Aggregation(pool="mean", by=("row_id", "scorer", "gene_id")))
    assert per.height == 5 * 2 and set(per["track_name"]) == {"T1", "T2"}
    assert pool.height == 5 and pool["n_tracks"].to_list() == [2] * 5
    r0 = run.scores.filter((pl.col("row_id") == "r0") & pl.col("track_name").is_in(["T1", "T2"])
                           & (pl.col("scorer") == "S1"))
    assert pool.filter(pl.col("row_id") == "r0")["raw_score"].item() == pytest.approx(r0["raw_score"].mean())
    _, smax = aggregate(run.scores, TrackSelection(scorers=["S1"]), Aggregation(pool="signed_max_abs"))
    best = r0 = run.scores.filter((pl.col("row_id") == "r1") & (pl.col("scorer") == "S1"))["raw_score"]
    assert smax.filter(pl.col("row_id") == "r1")["raw_score"].item() == best[best.abs().arg_max()]
    # per-row gene matching (eQTL rows carry their eGene, versioned ids allowed)
    rows = pl.DataFrame({"row_id": ["r0", "r1"], "gene_id": ["ENSG1.4", "ENSG2"]})
    m = match_genes(run.scores.filter(pl.col("row_id").is_in(["r0", "r1"])), rows)
    g = m.filter(pl.col("scorer") == "GENE")
    assert set(zip(g["row_id"], g["gene_id"])) == {("r0", "ENSG1"), ("r1", "ENSG2")}
    assert m.filter(pl.col("scorer") == "S1").height == 6
    strands = aggregate(run.scores, TrackSelection(track_strands=["+", "."]))[0]
    assert set(strands["track_strand"]) == {"+", "."}


def test_limiter_backs_off_and_climbs():
    t = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        t[0] += s

    lim = AdaptiveLimiter(clock=lambda: t[0], sleep=sleep, increase=0.1, decrease=0.5)
    for _ in range(50):  # unlimited until the first throttle: 100 calls/s
        lim.acquire()
        t[0] += 0.01
        lim.release(None)
    s = lim.acquire()
    lim.release("RESOURCE_EXHAUSTED", s)
    assert lim.rate == pytest.approx(50, rel=0.1)
    s_old = s
    lim.release("RESOURCE_EXHAUSTED", s_old - 1)  # sent before the cut: ignored
    assert lim.cuts == 1
    r = lim.rate
    for _ in range(200):  # binding: the limiter paces, and the rate climbs
        lim.acquire()
        lim.release(None)
    assert lim.rate > r and slept
    before = lim.rate
    s = lim.acquire()
    lim.release("RESOURCE_EXHAUSTED", s)
    assert lim.rate < before and lim.cuts == 2


def test_predict_sequences_cache_and_refusals(tmp_path):
    b = FakeBackend()
    seqs = pl.DataFrame({"seq_id": ["a", "b", "c"], "sequence": ["A" * 16384, "G" * 16384, "A" * 16384]})
    run = predict_sequences(seqs, ["DNASE", "CAGE"], backend=b, cache=str(tmp_path), bin_size=128, progress=False)
    assert len(b.calls) == 2  # a and c are the same sequence
    assert run.predictions[(run.sequences["sequence_sha256"][0], "DNASE")].shape == (128, 2)
    summ = run.summary(window=(8000, 8200), stat="sum")
    assert summ.height == 3 * 2 * 2
    assert summ.filter(pl.col("seq_id") == "b")["value"][0] == pytest.approx(2 * 3 * 128)  # bins 62..64 (rounded out)
    b.calls.clear()
    run2 = predict_sequences(seqs, ["DNASE", "CAGE"], backend=b, cache=str(tmp_path), bin_size=128, progress=False)
    assert b.calls == [] and run2.summary().equals(run.summary())
    with pytest.raises(UnsupportedSequenceError, match="N-padding"):
        predict_sequences(["A" * 16000 + "N" * 384], ["DNASE"], backend=b, cache=None)
    with pytest.raises(UnsupportedSequenceError, match="length 200"):
        predict_sequences(["A" * 200], ["DNASE"], backend=b, cache=None)
    assert len(b.calls) == 0


def test_precomputed_replays_a_run_identically(tmp_path, fast_policy):
    from agval.scoring.precomputed import PrecomputedBackend

    policy, _ = fast_policy
    run = score(variants_df(6), ["S1", "GENE"], backend=FakeBackend(), cache=None, interval_width=16384,
                policy=policy, progress=False)
    p = tmp_path / "scores.parquet"
    run.scores.write_parquet(p)
    pre = PrecomputedBackend(p, model="fake-replay")
    again = score(variants_df(6), ["S1", "GENE"], backend=pre, cache=ScoreCache(tmp_path / "c", simulated=False),
                  interval_width=16384, policy=policy, progress=False)
    assert again.scores.equals(run.scores)
    csv = tmp_path / "scores.csv"
    run.scores.write_csv(csv)
    again_csv = score(variants_df(6), ["S1", "GENE"], backend=PrecomputedBackend(csv), cache=None,
                      interval_width=16384, policy=policy, progress=False)
    assert again_csv.scores.equals(run.scores)
    # a variant the table lacks is a recorded NOT_FOUND failure
    extra = pl.concat([variants_df(6), pl.DataFrame({"row_id": ["x"], "chrom": ["chr2"], "pos": [5],
                                                     "ref": ["C"], "alt": ["T"]})])
    r = score(extra, ["S1"], backend=pre, cache=None, interval_width=16384, policy=policy, progress=False)
    assert r.failures["error_code"].to_list() == ["NOT_FOUND"] and r.failures["attempts"].to_list() == [1]


def test_precomputed_wide_table():
    from agval.scoring.precomputed import PrecomputedBackend

    wide = pl.DataFrame({"chrom": ["1", "chr1"], "pos": [10, 20], "ref": ["A", "C"], "alt": ["G", "T"],
                         "enformer_DNASE_heart": [0.5, -1.0], "enformer_CAGE_liver": [2.0, 3.0]})
    b = PrecomputedBackend(wide, model="enformer")
    df = pl.DataFrame({"row_id": ["a", "b"], "chrom": ["chr1", "chr1"], "pos": [10, 20], "ref": ["A", "C"],
                       "alt": ["G", "T"]})
    run = score(df, ["enformer"], backend=b, cache=None, interval_width=16384, progress=False)
    assert run.scores.select("row_id", "track_name", "raw_score").sort("row_id", "track_name").rows() == [
        ("a", "enformer_CAGE_liver", 2.0), ("a", "enformer_DNASE_heart", 0.5),
        ("b", "enformer_CAGE_liver", 3.0), ("b", "enformer_DNASE_heart", -1.0)]
    assert b.describe()["address_kind"] == "precomputed" and not b.simulated
