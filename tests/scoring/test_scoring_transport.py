"""ScoreVariant over ``grpc.aio`` (the default transport) against the synchronous stub:
the same answers, the same error codes, the same deadlines, through the stand-in."""

from __future__ import annotations

import threading

import grpc
import pytest

from agval.coords import Variant
from agval.scoring import streams
from agval.scoring.alphagenome import AlphaGenomeBackend
from agval.scoring.backend import classify_error, resolve_scorers
from tests.helpers import world_snvs

WIDTH = 16_384


@pytest.fixture
def standin(alphagenome_standin):
    alphagenome_standin.servicer.reset()
    return alphagenome_standin


@pytest.fixture
def pair(standin):
    aio = AlphaGenomeBackend(standin.address, deadline_s=5.0, transport="aio")
    sync = AlphaGenomeBackend(standin.address, deadline_s=5.0, transport="sync")
    yield aio, sync
    aio.close()
    sync.close()


def _variants(world_dir, n):
    df = world_snvs(world_dir, n, 30, prefix="t")
    return [Variant(c, int(p), r, a) for c, p, r, a in df.select("chrom", "pos", "ref", "alt").iter_rows()]


def test_aio_and_sync_transports_give_identical_answers(pair, world_dir):
    aio, sync = pair
    assert aio._streams is not None and sync._streams is None
    scorers = resolve_scorers(["DNASE", "RNA_SEQ"])
    for v in _variants(world_dir, 3):
        a = aio.score_answers(v, scorers, interval_width=WIDTH, organism="human")
        s = sync.score_answers(v, scorers, interval_width=WIDTH, organism="human")
        assert a.records == s.records and a.records  # same bytes, genes and tracks
        assert a.to_long().equals(s.to_long())


@pytest.mark.parametrize("code", ["UNAVAILABLE", "INTERNAL", "RESOURCE_EXHAUSTED"])
def test_errors_are_the_same_grpc_errors(pair, world_dir, code):
    v = _variants(world_dir, 1)[0]
    fault = [("x-fake-fail-code", code)]  # every attempt fails
    got = []
    for b in pair:
        fb = b.with_metadata(fault)
        with pytest.raises(grpc.RpcError) as exc:
            fb.score_answers(v, resolve_scorers(["DNASE"]), interval_width=WIDTH, organism="human")
        got.append(classify_error(exc.value)[0])
    assert got == [code, code]


def test_the_per_call_deadline_holds_on_aio(standin, world_dir):
    b = AlphaGenomeBackend(standin.address, deadline_s=0.5, metadata=[("x-fake-hang-ms", "3000")])
    try:
        v = _variants(world_dir, 1)[0]
        with pytest.raises(grpc.RpcError) as exc:
            b.score_answers(v, resolve_scorers(["DNASE"]), interval_width=WIDTH, organism="human")
        assert classify_error(exc.value)[0] == "DEADLINE_EXCEEDED"
    finally:
        b.close()


def test_unknown_transport_is_refused(standin):
    with pytest.raises(ValueError, match="transport"):
        AlphaGenomeBackend(standin.address, transport="carrier-pigeon")


def test_a_new_process_gets_its_own_event_loop(monkeypatch):
    saved = dict(streams._loop_state)
    first = streams.event_loop()
    assert first is streams.event_loop()  # one per process
    monkeypatch.setattr(streams.os, "getpid", lambda: -12345)  # as a forked child sees it
    try:
        child = streams.event_loop()
        assert child is not first and child.is_running()
        assert streams._loop_state["thread"] is not saved.get("thread")
        ran = threading.Event()
        child.call_soon_threadsafe(ran.set)
        assert ran.wait(5)
    finally:
        child_loop, child_thread = streams._loop_state["loop"], streams._loop_state["thread"]
        child_loop.call_soon_threadsafe(child_loop.stop)
        child_thread.join(5)
        streams._loop_state.clear()
        streams._loop_state.update(saved)
