"""Track and gene selection before rows exist, whole answers in the cache, the quota
budget, and concurrent runs sharing a cache (issue 13 items 2, 6, 8), against the
stand-in over gRPC."""

from __future__ import annotations

import threading

import polars as pl
import pytest

from agval.scoring import engine
from agval.scoring.alphagenome import AlphaGenomeBackend
from agval.scoring.answers import Selection
from agval.scoring.backend import RetryPolicy
from agval.scoring.cache import ScoreCache
from agval.scoring.tracks import TrackSelection
from tests.helpers import world_snvs

WIDTH = 16_384
SCORERS = ["DNASE", "CHIP_HISTONE"]
KEY = ["row_id", "scorer", "track_name", "track_strand", "gene_id"]


def _variants(world_dir, n, offset=40):
    return world_snvs(world_dir, n, offset, prefix="s")


def _calls(h):
    return [c for c in h.servicer.calls if c.method == "ScoreVariant"]


@pytest.fixture
def standin(alphagenome_standin):
    alphagenome_standin.servicer.reset()
    return alphagenome_standin


@pytest.fixture
def policy():
    return RetryPolicy(max_attempts=3, sleep=lambda s: None, seed=0)


def _kw(policy, **kw):
    return dict(interval_width=WIDTH, policy=policy, progress=False, fingerprint="selection", concurrency=4, **kw)


def test_whole_answers_give_the_sdk_rows_and_the_cache_stores_no_long_row(standin, world_dir, policy, tmp_path):
    df = _variants(world_dir, 6)
    fast = AlphaGenomeBackend(standin.address, deadline_s=5.0)
    sdk = AlphaGenomeBackend(standin.address, deadline_s=5.0, decode="sdk")
    cache = ScoreCache(tmp_path / "c", simulated=True)
    a = engine.score(df, SCORERS, backend=fast, cache=cache, **_kw(policy))
    b = engine.score(df, SCORERS, backend=sdk, cache=None, **_kw(policy))
    assert a.scores.height > 0 and a.scores.equals(b.scores)  # same rows, same order
    ns = next(d for d in (tmp_path / "c").iterdir() if d.is_dir())
    assert list(ns.glob("answers-*.parquet")) and not list(ns.glob("shard-*.parquet"))
    assert len(list(ns.glob("tracks/*.parquet"))) == 2  # one track block per output type
    ans = pl.read_parquet(next(ns.glob("answers-*.parquet")))
    assert ans.height == 6 * 2 and ans.schema["raw"] == pl.Binary
    # read back from the cache: the same table again, without a call
    standin.servicer.reset()
    again = engine.score(df, SCORERS, backend=fast, cache=cache, **_kw(policy))
    assert _calls(standin) == [] and again.scores.equals(a.scores)
    fast.close()
    sdk.close()


def test_a_selection_builds_only_its_rows_and_a_new_one_costs_no_call(standin, world_dir, policy, tmp_path):
    df = _variants(world_dir, 8)
    b = AlphaGenomeBackend(standin.address, deadline_s=5.0)
    full = engine.score(df, SCORERS, backend=b, cache=None, **_kw(policy))
    catalogue = full.scores.select("output_type", "ontology_curie", "histone_mark").unique()
    curie = catalogue.filter(pl.col("output_type") == "DNASE")["ontology_curie"].drop_nulls()[0]
    mark = catalogue.filter(pl.col("output_type") == "CHIP_HISTONE")["histone_mark"].drop_nulls()[0]
    sel1 = TrackSelection(output_types=["DNASE"], ontology_curies=[curie])
    sel2 = TrackSelection(output_types=["CHIP_HISTONE"], histone_marks=[mark])
    cache = ScoreCache(tmp_path, simulated=True)
    standin.servicer.reset()
    r1 = engine.score(df, SCORERS, backend=b, cache=cache, selection=sel1, **_kw(policy))
    assert len(_calls(standin)) == 8
    expect1 = full.scores.filter(sel1.expr())
    assert 0 < r1.scores.height < full.scores.height and r1.scores.equals(expect1)
    assert r1.summary["rows_per_variant"] == pytest.approx(expect1.height / 8)
    # a new selection (here the union of two) over the same variants: from the cache, 0 calls
    standin.servicer.reset()
    r2 = engine.score(df, SCORERS, backend=b, cache=cache, selection=[sel1, sel2], **_kw(policy))
    assert _calls(standin) == [] and r2.summary["calls"] == 0
    assert r2.scores.sort(KEY, nulls_last=True).equals(
        full.scores.filter(sel1.expr() | sel2.expr()).sort(KEY, nulls_last=True))
    b.close()


def test_row_gene_selection_keeps_each_rows_own_gene():
    """Gene scorers' rows are kept for the row's own gene only (expansion + join, no server)."""
    import numpy as np

    from agval.scoring.answers import TrackBlock, VariantAnswers, answer_row, answers_frame, expand

    tracks = pl.DataFrame({"track_name": ["t+", "t-", "t."], "track_strand": ["+", "-", "."]}).with_columns(
        *[pl.lit(None, dtype=pl.String).alias(c) for c in ("assay", "ontology_curie", "biosample_name",
                                                           "biosample_type", "histone_mark", "transcription_factor",
                                                           "gtex_tissue", "data_source")])
    block = TrackBlock("b1", tracks)
    vals = np.arange(2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3)
    genes = {"gene_id": ["ENSG1.2", "ENSG2.1"], "gene_name": ["A", "B"], "gene_type": [None, None],
             "gene_strand": ["+", "-"], "junction_start": [None, None], "junction_end": [None, None]}
    ans = VariantAnswers("chr1:10:A>G", answers_frame([answer_row("chr1:10:A>G", "S", "RNA_SEQ", block, vals, genes)]),
                         {"b1": block})
    long = expand(ans.rows, ans.blocks.__getitem__)
    # strand-mismatched cells dropped: ENSG1(+) x t-, ENSG2(-) x t+; track-major, genes inner
    assert list(zip(long["track_name"], long["gene_id"])) == [("t+", "ENSG1"), ("t-", "ENSG2"), ("t.", "ENSG1"),
                                                               ("t.", "ENSG2")]
    assert long["raw_score"].to_list() == [0.0, 4.0, 2.0, 5.0] and long["quantile_score"].to_list() == [6, 10, 8, 11]
    sel = expand(ans.rows, ans.blocks.__getitem__, Selection(TrackSelection(track_strands=["."])))
    assert sel["raw_score"].to_list() == [2.0, 5.0]


def test_row_gene_selection_through_score(standin, world_dir, policy, tmp_path):
    df = _variants(world_dir, 12)
    b = AlphaGenomeBackend(standin.address, deadline_s=5.0)
    kw = {**_kw(policy), "interval_width": 2 ** 20}  # genes in reach
    full = engine.score(df, ["RNA_SEQ"], backend=b, cache=ScoreCache(tmp_path, simulated=True), **kw)
    genes = full.scores.group_by("row_id", maintain_order=True).agg(pl.col("gene_id").first())
    rows = df.join(genes, on="row_id", how="inner")
    assert rows.height > 0 and full.scores.group_by("row_id").agg(pl.col("gene_id").n_unique())["gene_id"].max() > 1
    standin.servicer.reset()
    own = engine.score(rows, ["RNA_SEQ"], backend=b, cache=ScoreCache(tmp_path, simulated=True),
                       selection=Selection(None, row_gene="gene_id"), **kw)
    assert _calls(standin) == []
    expect = full.scores.join(genes, on=["row_id", "gene_id"], how="semi")
    assert own.scores.height == expect.height and own.scores.equals(expect)
    b.close()


def test_dry_run_and_max_new_calls_stop_before_any_call(standin, world_dir, policy, tmp_path):
    df = _variants(world_dir, 6)
    b = AlphaGenomeBackend(standin.address, deadline_s=5.0)
    cache = ScoreCache(tmp_path, simulated=True)
    engine.score(df.head(2), ["DNASE"], backend=b, cache=cache, **_kw(policy))
    standin.servicer.reset()
    with pytest.raises(engine.DryRunComplete) as e:
        engine.score(df, ["DNASE"], backend=b, cache=cache, dry_run=True, **_kw(policy))
    assert e.value.info == {"unique_variants": 6, "scorers": 1, "cache_hit_variants": 2, "to_score": 4,
                            "new_calls": 4}
    with pytest.raises(engine.QuotaBudgetError, match="needs 4 new calls.*max_new_calls = 3"):
        engine.score(df, ["DNASE"], backend=b, cache=cache, max_new_calls=3, **_kw(policy))
    assert _calls(standin) == []
    run = engine.score(df, ["DNASE"], backend=b, cache=cache, max_new_calls=4, **_kw(policy))
    assert len(_calls(standin)) == 4 and run.summary["calls_per_variant"] == 1.0
    b.close()


def test_two_concurrent_runs_over_the_same_variants_score_each_once(standin, world_dir, policy, tmp_path):
    df = _variants(world_dir, 60, offset=200)
    cache_root = tmp_path / "shared"
    slow = [("x-fake-latency-ms", "20")]
    b = AlphaGenomeBackend(standin.address, deadline_s=10.0).with_metadata(slow)
    standin.servicer.reset()
    runs, errors = [], []
    barrier = threading.Barrier(2)

    def one():
        try:
            barrier.wait()
            runs.append(engine.score(df, ["DNASE"], backend=b, cache=ScoreCache(cache_root, simulated=True),
                                     chunk_size=10, **_kw(policy)))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(_calls(standin)) <= 1.1 * 60
    assert runs[0].scores.equals(runs[1].scores) and runs[0].scores["row_id"].n_unique() == 60
    assert sum(r.summary["waited_for_other_runs"] for r in runs) > 0
    b.close()
