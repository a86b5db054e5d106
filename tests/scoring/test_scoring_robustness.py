"""Scoring robustness: atlas fallback simulated flag, transient canary errors, journal/recovery
race, API key redaction in every logger."""

from __future__ import annotations

import logging

import polars as pl
import pytest

from agval.coords import Variant
from agval.errors import ScoringError, SimulatedResultsError
from agval.scoring.backend import BackendCallError, RetryPolicy, ScoringBackend


# -- 1. AtlasBackend.simulated follows its fallback ------------------------------------
class _FakeFallback:
    name = "fake"
    model_version_name = "v"

    def __init__(self, simulated: bool):
        self.simulated = simulated

    def describe(self):
        return {"backend": self.name, "simulated": self.simulated}


def _bare_atlas(fallback):
    from agval.scoring.atlas import AtlasBackend

    b = AtlasBackend.__new__(AtlasBackend)
    b.fallback = fallback
    b._meta = pl.DataFrame({"output_type": ["RNA_SEQ"], "data_source": ["encode"]})
    return b


def test_atlas_simulated_follows_fallback():
    assert _bare_atlas(_FakeFallback(True)).simulated is True
    assert _bare_atlas(_FakeFallback(False)).simulated is False
    assert _bare_atlas(None).simulated is False


def test_run_record_rejects_simulated_fallback_on_real_run(tmp_path):
    from agval.runs import RunRecord

    rec = RunRecord.start("review", "test", simulated=False, root=tmp_path)
    with pytest.raises(SimulatedResultsError):
        rec.set_backend({"backend": "atlas", "simulated": False,
                         "fallback": {"backend": "alphagenome", "simulated": True}})
    rec2 = RunRecord.start("review", "test2", simulated=False, root=tmp_path)
    rec2.set_backend({"backend": "atlas", "simulated": False, "fallback": None})


# -- 2. transient canary errors do not enter the fingerprint ----------------------------
class _FailingBackend(ScoringBackend):
    name = "failing"
    model_version_name = "v"

    def __init__(self, code: str):
        self.code = code
        self.calls = 0

    def describe(self):
        return {"backend": self.name}

    def score_one(self, variant, scorers, *, interval_width, organism):
        self.calls += 1
        raise BackendCallError(self.code, "boom")


_PANEL = [Variant("chr1", 1_000_000, "A", "G")]


def _fast_policy():
    return RetryPolicy(max_attempts=2, initial_backoff=0.0, sleep=lambda s: None)


@pytest.mark.parametrize("code", ["UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"])
def test_transient_canary_error_raises(code):
    from agval.scoring.fingerprint import canary_scores

    with pytest.raises(ScoringError, match=code) as ei:
        canary_scores(_FailingBackend(code), _PANEL, policy=_fast_policy())
    assert "retry later" in str(ei.value)


def test_permanent_canary_error_is_recorded():
    from agval.scoring.fingerprint import canary_scores, compute_fingerprint

    out = canary_scores(_FailingBackend("INVALID_ARGUMENT"), _PANEL, policy=_fast_policy())
    assert out["errors"] == {_PANEL[0].key: "INVALID_ARGUMENT"}
    fp = compute_fingerprint(_FailingBackend("INVALID_ARGUMENT"), canary=_PANEL)
    assert fp["canary"]["errors"] == {_PANEL[0].key: "INVALID_ARGUMENT"} and fp["digest"]


# -- 3. journal recovery never deletes a live writer's journal --------------------------
def _ctx():
    from agval.scoring.cache import CacheContext

    return CacheContext(interval_width=2048, organism="HOMO_SAPIENS", model_version="v", fingerprint="f" * 64)


def test_recovery_skips_open_journal(tmp_path):
    from agval.scoring.cache import ScoreCache, recover_journals

    ctx = _ctx()
    cache = ScoreCache(tmp_path, simulated=True)
    w = cache.writer(ctx)
    w.add("chr1:100:A>G", None, ["s1"])
    journals = list(cache.ns_dir(ctx).glob("journal-*.agj"))
    assert len(journals) == 1 and not list(cache.ns_dir(ctx).glob(".tmp-*"))
    # another cache instance (another process's view) recovers the namespace meanwhile
    other = ScoreCache(tmp_path, simulated=True)
    other.ns_dir(ctx)
    assert recover_journals(cache.ns_dir(ctx), ctx) == []
    assert journals[0].exists()
    w.add("chr1:200:C>T", None, ["s1"])
    shard = w.flush()
    assert shard is not None and shard.exists() and not journals[0].exists()


def test_recovery_skips_empty_journal_and_recovers_dead_one(tmp_path):
    from agval.scoring.cache import ScoreCache, recover_journals

    ctx = _ctx()
    cache = ScoreCache(tmp_path, simulated=True)
    d = cache.ns_dir(ctx)
    empty = d / "journal-00000000000000000001-1-aaaaaaaa.agj"
    empty.write_bytes(b"")
    assert recover_journals(d, ctx) == []
    assert empty.exists()
    # a dead writer's non-empty journal is still recovered
    w = cache.writer(ctx)
    w.add("chr1:100:A>G", None, ["s1"])
    path = w._path
    w._fh.close()  # the "process" dies: the lock is gone, the journal stays
    w._fh = None
    shards = recover_journals(d, ctx)
    assert len(shards) == 1 and not path.exists()


# -- 4. API key redaction for every logger ---------------------------------------------
@pytest.mark.filterwarnings("ignore:Logger 'prefect.flow_runs' attempted to send logs")
def test_explicit_key_redacted_in_child_logger(caplog):
    from agval.scoring.alphagenome import call_metadata
    from agval.secrets import install_log_filter

    key = "k-secret-123456"
    install_log_filter()
    live, md = call_metadata("localhost:1", object(), key, ())
    assert not live and ("x-goog-api-key", key) in md

    log = logging.getLogger("prefect.flow_runs")
    seen: list[logging.LogRecord] = []

    class _Keep(logging.Handler):
        def emit(self, record):
            seen.append(record)

    h = _Keep()
    log.addHandler(h)
    try:
        with caplog.at_level(logging.ERROR):
            log.error("connecting with %s", key)
            try:
                raise RuntimeError(f"bad key {key}")
            except RuntimeError:
                log.exception("failed for %s", key)
    finally:
        log.removeHandler(h)
    assert len(seen) == 2
    formatter = logging.Formatter()
    for r in seen:
        text = formatter.format(r)
        assert key not in text and "[REDACTED]" in text
    assert seen[1].exc_text and key not in seen[1].exc_text and "RuntimeError" in seen[1].exc_text
    assert key not in caplog.text


def test_cache_refuses_score_rows_of_an_unrequested_scorer():
    """Rows whose scorer string differs from the requested one were silently dropped and the
    variant cached as 'nothing to report' for good; now it is an error."""
    import polars as pl

    from agval.errors import ScoringError
    from agval.scoring.backend import conform_scores
    from agval.scoring.cache import _entries_to_cache_rows

    ctx = _ctx()
    good = conform_scores(pl.DataFrame({"variant_key": ["chr1:5:A>G"], "scorer": ["S1"], "track_name": ["t"],
                                        "raw_score": [0.5]}))
    out = _entries_to_cache_rows(ctx, [("chr1:5:A>G", ["S1"], 1.0)], [good])
    assert out.height == 1 and not out["placeholder"][0]
    other = good.with_columns(pl.lit("S1-renamed").alias("scorer"))
    with pytest.raises(ScoringError, match="match no requested"):
        _entries_to_cache_rows(ctx, [("chr1:5:A>G", ["S1"], 1.0)], [other])


def test_explicit_cache_path_in_the_other_worlds_tree_is_refused(tmp_path):
    """cache='.agval/cache/real/scores' with a stand-in backend would write simulated scores
    into the real cache (found in review)."""
    from agval.errors import SimulatedResultsError
    from agval.paths import cache_dir
    from agval.scoring.engine import open_cache

    class _B:
        simulated = True

    with pytest.raises(SimulatedResultsError, match="real score cache"):
        open_cache(str(cache_dir("scores", False) / "mine"), _B())
    assert open_cache(str(tmp_path / "own"), _B()).root == tmp_path / "own"
    assert open_cache(str(cache_dir("scores", True) / "x"), _B()) is not None



class _PartlyFailingBackend(_FailingBackend):
    """Fails transiently for one variant only; answers a fixed score for the others."""

    def __init__(self, code: str | None, bad_key: str | None):
        super().__init__(code or "UNAVAILABLE")
        self.bad_key = bad_key

    def score_one(self, variant, scorers, *, interval_width, organism):
        if variant.key == self.bad_key:
            return super().score_one(variant, scorers, interval_width=interval_width, organism=organism)
        import polars as pl

        return pl.DataFrame({"variant_key": [variant.key], "scorer": ["DNASE"], "track_name": ["t"],
                             "track_strand": ["+"], "gene_id": [None], "raw_score": [variant.pos / 1e6],
                             "quantile_score": [0.5]}, schema_overrides={"gene_id": pl.Utf8})


_PANEL3 = [Variant("chr1", 1_000_000, "A", "G"), Variant("chr1", 2_000_000, "C", "T"),
           Variant("chr2", 3_000_000, "G", "A")]


def test_one_transient_canary_failure_is_recorded_and_the_run_goes_on():
    from agval.scoring.fingerprint import canary_scores, compare

    full = canary_scores(_PartlyFailingBackend(None, None), _PANEL3, policy=_fast_policy())
    part = canary_scores(_PartlyFailingBackend("UNAVAILABLE", _PANEL3[1].key), _PANEL3, policy=_fast_policy())
    assert part["failed"] == {_PANEL3[1].key: "UNAVAILABLE"} and part["partial"] is True
    assert part["n_scores"] == 2 and full["n_scores"] == 3 and "failed" not in full
    assert part["sha256"] != full["sha256"], "a partial panel is not the full panel's evidence"
    assert compare({"canary": full}, {"canary": part}) == {}, "a transient failure is not a model change"


def test_every_canary_failing_is_an_error():
    from agval.scoring.fingerprint import canary_scores

    with pytest.raises(ScoringError, match="every canary variant failed"):
        canary_scores(_FailingBackend("UNAVAILABLE"), _PANEL3, policy=_fast_policy())


# -- 3b. journals of whole answers: records (a=2), the older Arrow IPC form (a=1) --------
def _answers_for(vk: str):
    import numpy as np

    from agval.scoring.answers import TrackBlock, VariantAnswers, answer_row
    from agval.scoring.backend import TRACK_COLUMNS

    frame = pl.DataFrame({"track_name": ["t0", "t1", "t2"], "track_strand": ["+", "-", "."]}).with_columns(
        *[pl.lit(None, dtype=t).alias(c) for c, t in TRACK_COLUMNS.items() if c not in ("track_name", "track_strand")]
    ).select(list(TRACK_COLUMNS))
    block = TrackBlock("blk-test", frame)
    genes = {"gene_id": ["ENSG1.2", "ENSG3"], "gene_name": ["A", None], "gene_type": ["protein_coding"] * 2,
             "gene_strand": ["+", "-"], "junction_start": [None, None], "junction_end": [None, None]}
    vals = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    recs = [answer_row(vk, "G", "RNA_SEQ", block, vals, genes),
            answer_row(vk, "V", "DNASE", block, vals[:1, :1], None)]  # raw scores only
    return VariantAnswers(vk, recs, {block.id: block})


def _dead_writer_journal(cache, ctx, add):
    w = cache.writer(ctx)
    add(w)
    path = w._path
    w._fh.close()  # the process dies: the lock is gone, the journal stays
    w._fh = None
    return path


def test_a_killed_writers_whole_answers_are_recovered_exactly(tmp_path):
    from agval.scoring.cache import ScoreCache, recover_journals

    ctx = _ctx()
    cache = ScoreCache(tmp_path, simulated=True)
    ans = _answers_for("chr1:100:A>G")
    path = _dead_writer_journal(cache, ctx, lambda w: w.add(ans.variant_key, ans, ["G", "V"]))
    assert len(recover_journals(cache.ns_dir(ctx), ctx)) == 1 and not path.exists()
    got = cache.lookup_answers(ctx, [ctx.key(ans.variant_key, s) for s in ("G", "V")])
    assert got.drop("ckey", "scored_at").sort("scorer").equals(ans.rows.sort("scorer"))
    assert got.filter(pl.col("scorer") == "V")["quantile"].to_list() == [None]


def test_an_older_arrow_ipc_journal_is_still_recovered(tmp_path):
    import io
    import json
    import zlib

    from agval.scoring.cache import _HEAD, _MAGIC, ScoreCache, recover_journals

    ctx = _ctx()
    cache = ScoreCache(tmp_path, simulated=True)
    ans = _answers_for("chr1:200:C>T")

    def legacy(w):
        for block in ans.blocks.values():
            cache.put_block(ctx, block)
        buf = io.BytesIO()
        ans.rows.write_ipc_stream(buf, compression="uncompressed")
        body = buf.getvalue()
        header = json.dumps({"v": ans.variant_key, "s": ["G", "V"], "t": 1.0, "a": 1}).encode()
        w._open()
        w._fh.write(_HEAD.pack(_MAGIC, len(header), len(body), zlib.crc32(body, zlib.crc32(header))) + header + body)

    _dead_writer_journal(cache, ctx, legacy)
    recover_journals(cache.ns_dir(ctx), ctx)
    got = cache.lookup_answers(ctx, [ctx.key(ans.variant_key, s) for s in ("G", "V")])
    assert got.drop("ckey", "scored_at").sort("scorer").equals(ans.rows.sort("scorer"))


def test_a_records_journal_whose_byte_lengths_disagree_ends_like_a_torn_tail():
    from agval.scoring.cache import _decode_answers, _encode_answers

    recs = _answers_for("chr1:300:G>A").records
    meta, body = _encode_answers(recs)
    assert _decode_answers(meta, body) == recs
    with pytest.raises(ValueError):
        _decode_answers(meta, body + b"\0\0\0\0")
