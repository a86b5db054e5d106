"""Streaming scores (issue 13): chunks write their selected rows to parquet parts, the run
keeps them on disk, the statistics read them lazily - with results identical to the rows
the backend answered (planted values), and no chunk's rows kept alive by the run."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import polars as pl

from agval.scoring import engine
from agval.scoring.backend import SCORE_COLUMNS, RetryPolicy
from agval.scoring.cache import ScoreCache
from agval.scoring.engine import score
from agval.scoring.tracks import TrackSelection
from tests.scoring.test_scoring_engine import FakeBackend, variants_df

WIDTH = 16_384


def _oracle(variants: pl.DataFrame, scorers: list[str]) -> pl.DataFrame:
    """The long table built in memory, row by row, from the backend's own (planted) answers:
    input order, then scorer, then the backend's row order."""
    b = FakeBackend()
    vt = engine.variant_keys(variants)
    parts = []
    for rid, vk in vt.iter_rows():
        from agval.coords import Variant

        rows = b.score_one(Variant.parse(vk), scorers, interval_width=WIDTH, organism="human")
        for s in scorers:
            parts.append(rows.filter(pl.col("scorer") == s).with_columns(pl.lit(rid).alias("row_id")))
    return pl.concat(parts).select("row_id", *[pl.col(c).cast(pl.Float64) if c in ("raw_score", "quantile_score")
                                               else pl.col(c) for c in SCORE_COLUMNS])


def test_streamed_scores_equal_the_in_memory_rows_and_are_read_lazily(tmp_path):
    policy = RetryPolicy(max_attempts=2, sleep=lambda s: None, seed=1)
    cache = ScoreCache(tmp_path / "cache", simulated=False)
    df = variants_df(12)  # 13 rows: one SNP in two rows
    scorers = ["S1", "GENE"]
    # half the variants scored earlier: the run mixes cached entries (read file by file) and new chunks
    score(df.slice(0, 6), scorers, backend=FakeBackend(), cache=cache, interval_width=WIDTH, chunk_size=2,
          policy=policy, progress=False)
    b = FakeBackend()
    run = score(df, scorers, backend=b, cache=cache, interval_width=WIDTH, chunk_size=2, policy=policy,
                progress=False)
    assert len(b.calls) == 6 and run.summary["cache_hit_variants"] == 6
    src = run.source
    # one part per scored chunk (3) plus the cache file(s) read; none of them in memory
    assert len([p for p in src.parts if p.name.startswith("chunk-")]) == 3
    assert all(p.exists() and p.parent == src.folder for p in src.parts)
    expected = _oracle(df, scorers)
    assert run.scores.equals(expected)  # values, dtypes and order
    assert run.summary["score_rows"] == expected.height == src.count()
    # lazily: a filter and a projection give the same rows as filtering the whole table
    lazy = run.scan()
    assert isinstance(lazy, pl.LazyFrame)
    sel = TrackSelection(output_types=["DNASE"], ontology_curies=["CL:0000057"])
    got = sel.apply(lazy).select("row_id", "track_name", "raw_score").collect()
    assert got.equals(sel.apply(expected).select("row_id", "track_name", "raw_score")) and got.height == 13 * 3
    # the batched writer (run records) gives the same table, whatever the batch size
    from agval import schema

    out = schema.write_table_batches(src.batches(rows_per_batch=5), tmp_path / "scores.parquet",
                                     engine.SCORES_FORMAT.name)
    assert schema.read_table(out, engine.SCORES_FORMAT.name).equals(expected)
    assert schema.read_format(out) == (engine.SCORES_FORMAT.name, engine.SCORES_FORMAT.version)
    # the parts live as long as the run
    folder = src.folder
    del run, src, lazy
    gc.collect()
    assert not folder.exists()


def test_qtl_track_selection_reads_the_lazy_table_like_the_in_memory_one(tmp_path):
    from agval.qtl.analysis import select_tracks
    from agval.qtl.modality import Analysis

    df = variants_df(8, dup=False).with_columns(pl.when(pl.int_range(pl.len()) % 2 == 0).then(pl.lit("ENSG1"))
                                                .otherwise(pl.lit("ENSG2")).alias("gene_id"))
    run = score(df.drop("gene_id"), ["GENE"], backend=FakeBackend(), cache=None, interval_width=WIDTH,
                chunk_size=3, progress=False)
    a = Analysis("corrected", "corrected", None, ("GENE",), TrackSelection(output_types=["DNASE"]),
                 "raw_score", "beta_alt", match="gene")
    long_mem, pooled_mem = select_tracks(run.scores, df, a)
    long_lazy, pooled_lazy = select_tracks(run.scan(), df, a)
    assert long_lazy.equals(long_mem) and pooled_lazy.equals(pooled_mem)
    # planted: each row's own gene only; T1 (+) pairs with ENSG1, T2 (-) with ENSG2, T3 (.) with both
    assert pooled_lazy.height == 8 and set(pooled_lazy["n_tracks"].to_list()) == {2}


def test_chunk_tasks_return_a_part_and_no_chunk_rows_stay_alive(prefect_api, tmp_path, monkeypatch):
    """Under Prefect (window of 2 chunk tasks), each chunk's rows are written and dropped:
    at most a window's worth of chunk frames is ever alive, none after the run."""
    from prefect import flow

    from tasks.scoring import score_chunk_task, score_variants

    refs: list[weakref.ref] = []
    most_alive = []
    real_write = engine.write_part

    def spy(rows, parts_dir, stem):
        if rows is not None and stem.startswith("chunk-"):
            refs.append(weakref.ref(rows))
            gc.collect()
            most_alive.append(sum(r() is not None for r in refs))
        return real_write(rows, parts_dir, stem)

    monkeypatch.setattr(engine, "write_part", spy)
    df = variants_df(24, dup=False)
    b = FakeBackend()

    @flow
    def scoring_flow():
        return score_variants(df, ["S1"], backend=b, cache=ScoreCache(tmp_path / "c", simulated=False),
                              interval_width=WIDTH, chunk_size=2, concurrency=2, fingerprint="stream",
                              artifact_key="test-streaming", inflight_limit_name=False)

    run = scoring_flow()
    assert run.summary["chunks"] == 12 and len(refs) == 12
    assert max(most_alive) <= 2  # the window, not the 12 chunks
    gc.collect()
    assert all(r() is None for r in refs)  # neither the run nor Prefect keeps a chunk's rows
    assert run.scores.height == 24 * 3 and run.scores["row_id"].to_list() == [f"r{i}" for i in range(24)
                                                                              for _ in range(3)]
    # the task's own result is a handle, not the rows
    plan = engine.plan_scoring(variants_df(3, dup=False).with_columns(pl.col("pos") + 10_000), ["S1"], backend=b,
                               cache=None, interval_width=WIDTH, chunk_size=8)
    res = score_chunk_task.fn(plan.chunks[0], b, plan.ctx, cache_root=None, simulated=False, concurrency=2,
                              parts_dir=str(tmp_path / "parts"))
    assert res.scores is None and Path(res.part).exists() and pl.read_parquet(res.part).height == 3 * 3


def test_no_rows_give_an_empty_table_of_the_format():
    run = score(variants_df(2, dup=False), ["S1"], backend=FakeBackend(poison={"chr1:1000:A>G", "chr1:1001:A>G"}),
                cache=None, interval_width=WIDTH, policy=RetryPolicy(max_attempts=1, sleep=lambda s: None),
                progress=False)
    assert run.source.parts == [] and run.scores.height == 0 and run.summary["score_rows"] == 0
    assert run.failures.height == 2
    assert run.scores.columns == ["row_id", *SCORE_COLUMNS]
