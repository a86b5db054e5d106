"""Typed step results (issue 14): steps return their drops instead of mutating a caller's log,
so a step can run on a Dask worker process; one score-failure rule keeps row identity."""

from __future__ import annotations

import dataclasses
import pickle

import polars as pl
import pytest

from agval.drops import DropLog, Dropped


def test_a_drop_log_travels_between_processes():
    d = DropLog()
    d.add("load", "missing_beta", row_id="r1", source_file="f.tsv", source_row=3)
    back = pickle.loads(pickle.dumps(Dropped(pl.DataFrame({"x": [1]}), d)))
    assert back.drops.frame().equals(d.frame()) and back.value["x"].to_list() == [1]
    back.drops.add("score", "score_failed", row_id="r2")  # the lock was rebuilt
    assert len(back.drops) == 2 and len(d) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        back.value = None  # type: ignore[misc]


def test_flows_keep_adds_a_steps_drops_and_returns_its_value():
    from flows._common import keep

    class Rec:
        drops = DropLog()

    d = DropLog()
    d.add("harmonize", "ref_mismatch", row_id="a")
    assert keep(Rec, Dropped("value", d)) == "value" and len(Rec.drops) == 1

    @dataclasses.dataclass(frozen=True)
    class Typed:
        n: int
        drops: DropLog

    t = Typed(3, d)
    assert keep(Rec, t) is t and len(Rec.drops) == 2


def test_twas_score_failures_drop_the_susie_rows_not_variant_keys():
    """TWAS used to write variant_key into row_id; now each SuSiE row of a failed variant is a
    drop under its own row_id, with its file and row, the error code and the attempts."""
    from agval.twas.pipeline import score_failure_drops

    trip = pl.DataFrame({"variant_key": ["chr1:10:A>G", "chr1:10:A>G", "chr2:5:C>T"],
                         "susie_row_id": ["susie:1", "susie:7", "susie:2"]})
    susie = pl.DataFrame({"row_id": ["susie:1", "susie:2", "susie:7"], "source_file": ["a.tsv", "a.tsv", "b.tsv"],
                          "source_row": [1, 2, 7]})
    failures = pl.DataFrame({"variant_key": ["chr1:10:A>G"], "scorer": ["DNASE"], "error_code": ["UNAVAILABLE"],
                             "message": ["down"], "attempts": [5]})
    out = score_failure_drops(trip, susie, failures).sort("row_id")
    assert out["row_id"].to_list() == ["susie:1", "susie:7"]
    assert out["source_file"].to_list() == ["a.tsv", "b.tsv"] and out["source_row"].to_list() == [1, 7]
    assert out["error_code"].to_list() == ["UNAVAILABLE"] * 2 and out["attempts"].to_list() == [5, 5]
    log = DropLog()
    log.add_frame(out, stage="score", reason="score_failed")
    assert log.frame()["row_id"].to_list() == ["susie:1", "susie:7"]


def test_mpra_prediction_failures_drop_the_constructs_with_their_codes(monkeypatch):
    from types import SimpleNamespace

    from agval.mpra.pipeline import predicted_frame

    rows = pl.DataFrame({"row_id": ["c1", "c2", "c3"], "input_id": ["i1", "i2", "i3"]})
    wide = pl.DataFrame({"input_id": ["i1", "i2", "i3"], "dnase_center": [0.5, None, None]})
    run = SimpleNamespace(failures=pl.DataFrame({"seq_id": ["i2"], "error_code": ["INTERNAL"], "message": ["x"],
                                                 "attempts": [2]}),
                          summary_stats={}, bin_size=1, tracks={})
    import agval.mpra.pipeline as mp

    monkeypatch.setattr(mp, "aggregate_run", lambda run, **kw: (None, wide))
    study = SimpleNamespace(sequence_length=16384, center_window=200)
    pred = predicted_frame(rows, run, pl.DataFrame(), study=study, organism="MUS_MUSCULUS", terms=[],
                           outputs=["DNASE"], label="primary")
    assert pred.frame["row_id"].to_list() == ["c1"]
    d = pred.drops.frame().sort("row_id")
    assert d["row_id"].to_list() == ["c2", "c3"] and set(d["stage"]) == {"predict:primary"}
    assert d["error_code"].to_list() == ["INTERNAL", None] and d["detail"][1] == "no prediction"
