"""Crash isolation (``[backend] isolation = "process"``): a variant whose decoding kills the
scoring process costs that variant, not the run (SIMULATED stand-in)."""

from __future__ import annotations

import functools
import os
import signal

import polars as pl
import pytest

from agval.drops import DropLog, failure_drops
from agval.scoring import engine, make_backend
from agval.scoring.alphagenome import AlphaGenomeBackend
from agval.scoring.isolation import CRASHED, ProcessIsolatedBackend
from tests.helpers import world_snvs

WIDTH = 16_384
SCORERS = ["DNASE", "RNA_SEQ"]


class CrashingBackend(AlphaGenomeBackend):
    """The fault hook: decoding ``crash_key``'s answer kills the process (in a worker)."""

    def __init__(self, *args, crash_key: str, how: str = "segv", **kw):
        super().__init__(*args, **kw)
        self.crash_key, self.how = crash_key, how

    def decode_answers(self, responses, scorers, variant_key: str):
        if variant_key == self.crash_key:
            if self.how == "segv":
                os.kill(os.getpid(), signal.SIGSEGV)
            os._exit(3)
        return super().decode_answers(responses, scorers, variant_key)


def _variants(world_dir, n=8, offset=40):
    return world_snvs(world_dir, n, offset, prefix="v")


def _score(df, backend):
    return engine.score(df, SCORERS, backend=backend, cache=None, interval_width=WIDTH, concurrency=4,
                        progress=False, fingerprint="isolation-test")


@pytest.mark.parametrize("how", ["segv"])  # "exit" (os._exit) takes the same path; left out for time
def test_a_crashing_variant_is_dropped_and_the_rest_scored_identically(alphagenome_standin, world_dir, how):
    df = _variants(world_dir)
    bad = "{}:{}:{}>{}".format(*df.row(3)[1:])
    plain = AlphaGenomeBackend(alphagenome_standin.address, deadline_s=120)
    iso = ProcessIsolatedBackend(plain, functools.partial(CrashingBackend, alphagenome_standin.address,
                                                          deadline_s=120, crash_key=bad, how=how), workers=2)
    try:
        ref = _score(df, plain)
        got = _score(df, iso)
        # the crashed variant: one failure per scorer, never retried, the worker replaced
        assert got.failures["variant_key"].unique().to_list() == [bad]
        assert set(got.failures["error_code"]) == {CRASHED} and set(got.failures["attempts"]) == {1}
        assert "signal 11" in got.failures["message"][0] if how == "segv" else "exit code 3" in got.failures["message"][0]
        assert iso.pool.crashes == 1
        # the others: the same rows and numbers as without isolation
        assert ref.failures.height == 0
        key = ["variant_key", "scorer", "track_name", "track_strand", "gene_id"]
        want = ref.scores.filter(pl.col("variant_key") != bad).sort(key)
        assert want.height > 0 and got.scores.sort(key).equals(want)
        # as a study flow records it: a counted drop with its own reason
        drops = DropLog()
        drops.add_frame(failure_drops(got.failed_rows(df), got.failures, reason="score_failed"), stage="score",
                        reason="score_failed")
        d = drops.frame()
        assert d.height == 1 and d["reason"].to_list() == ["scoring_crashed"] and d["row_id"][0] == "v3"
        # the replacement worker keeps scoring
        again = _score(df.filter(pl.col("row_id") != "v3"), iso)
        assert again.failures.height == 0 and again.scores.sort(key).equals(want)
    finally:
        iso.close()
    assert not any(p.is_alive() for p in [w.proc for w in iso.pool._all])


def test_isolation_from_config_spec(alphagenome_standin):
    from agval.config import BackendConfig
    from flows._common import backend_spec

    cfg = BackendConfig(kind="standin", address=alphagenome_standin.address, isolation="process",
                        isolation_workers=3)
    spec = backend_spec(cfg)
    assert spec["isolation"] == "process" and spec["isolation_workers"] == 3
    b = make_backend(spec)
    try:
        assert isinstance(b, ProcessIsolatedBackend) and isinstance(b.inner, AlphaGenomeBackend)
        assert b.describe()["isolation"] == "process" and b.simulated
        assert b.output_metadata("HOMO_SAPIENS").height > 0
    finally:
        b.close()
    assert "isolation" not in backend_spec(BackendConfig(kind="standin", address=alphagenome_standin.address))
    with pytest.raises(Exception):
        BackendConfig(isolation="thread")
