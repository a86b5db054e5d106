"""Retries and pacing like the live service (issue 13 item 5), against the stand-in over gRPC:
``[backend] max_attempts`` is honoured, INTERNAL is retried (bounded), and a service that
throttles every first attempt does not make the adaptive limiter collapse.
"""

from __future__ import annotations

import time

import polars as pl
import pytest

from agval.scoring import engine, make_backend
from agval.scoring.alphagenome import AlphaGenomeBackend
from agval.scoring.backend import RetryPolicy
from agval.scoring.limiter import AdaptiveLimiter
from tests.helpers import world_snvs

WIDTH = 16_384


def _variants(world_dir, n, offset=0):
    df = world_snvs(world_dir, n, offset, prefix="v")
    assert df.height == n
    return df


def _attempts(standin):
    return [c for c in standin.servicer.calls if c.method == "ScoreVariant"]


@pytest.fixture
def standin(alphagenome_standin):
    alphagenome_standin.servicer.reset()
    return alphagenome_standin


def _spec_backend(standin, world_dir, headers, max_attempts):
    b = make_backend({"kind": "alphagenome", "address": standin.address, "deadline_s": 5.0,
                      "world_dir": str(world_dir), "max_attempts": max_attempts})
    b.fingerprint()  # the canary calls are not what this test counts
    b = b.with_metadata(headers)
    b.default_policy.sleep = lambda s: None
    return b


def test_backend_max_attempts_is_honoured(standin, world_dir):
    b = _spec_backend(standin, world_dir, [("x-fake-fail-first", "9"), ("x-fake-fail-code", "UNAVAILABLE")], 2)
    assert b.default_policy.max_attempts == 2
    standin.servicer.reset()
    run = engine.score(_variants(world_dir, 4), ["DNASE"], backend=b, cache=None, interval_width=WIDTH,
                       progress=False, limiter=None, fingerprint="retries")
    assert run.failures.height == 4 and set(run.failures["attempts"]) == {2}
    assert len(_attempts(standin)) == 8 and run.summary["calls"] == 8


def test_backend_config_max_attempts_reaches_the_spec():
    from agval.config import BackendConfig
    from flows._common import backend_spec

    spec = backend_spec(BackendConfig(kind="alphagenome", address="127.0.0.1:1", max_attempts=3))
    assert spec["max_attempts"] == 3
    atlas = backend_spec(BackendConfig(kind="atlas", address="127.0.0.1:1", max_attempts=2))
    assert atlas["max_attempts"] == 2 and atlas["fallback"]["max_attempts"] == 2


@pytest.mark.parametrize("fail_first,scored,attempts", [(1, True, 2), (5, False, 2)])
def test_internal_is_retried_but_bounded(standin, world_dir, fail_first, scored, attempts):
    b = _spec_backend(standin, world_dir, [("x-fake-fail-first", str(fail_first)),
                                           ("x-fake-fail-code", "INTERNAL")], 5)
    standin.servicer.reset()
    run = engine.score(_variants(world_dir, 3), ["DNASE"], backend=b, cache=None, interval_width=WIDTH,
                       progress=False, limiter=None, fingerprint="retries")
    assert len(_attempts(standin)) == 3 * attempts
    if scored:
        assert run.failures.height == 0 and run.scores.height > 0
    else:
        assert set(run.failures["error_code"]) == {"INTERNAL"} and set(run.failures["attempts"]) == {attempts}


def test_policy_retry_codes():
    p = RetryPolicy(max_attempts=4)
    assert p.should_retry("RESOURCE_EXHAUSTED", 3) and not p.should_retry("RESOURCE_EXHAUSTED", 4)
    assert p.should_retry("INTERNAL", 1) and not p.should_retry("INTERNAL", 2)
    assert not p.should_retry("INVALID_ARGUMENT", 1)


def test_throttling_every_first_attempt_does_not_collapse(standin, world_dir):
    """120 variants, every first attempt answered RESOURCE_EXHAUSTED: done within 3x the
    unthrottled time (before the cool-down, the limiter cut its rate at every round trip
    and 120 variants took > 600 s)."""
    base = AlphaGenomeBackend(standin.address, deadline_s=10.0)
    latency = [("x-fake-latency-ms", "50")]
    policy = RetryPolicy(max_attempts=5, initial_backoff=0.02, max_backoff=0.1, seed=1)
    kw = dict(cache=None, interval_width=WIDTH, progress=False, concurrency=8, policy=policy,
              fingerprint="throttle", chunk_size=1000)
    try:
        # warm the stand-in (first use of a scorer builds its background)
        engine.score(_variants(world_dir, 8, offset=300), ["DNASE"], backend=base, **kw)
        t0 = time.monotonic()
        clean = engine.score(_variants(world_dir, 120), ["DNASE"], backend=base.with_metadata(latency), **kw)
        t_clean = time.monotonic() - t0
        lim = AdaptiveLimiter()
        thr = base.with_metadata([*latency, ("x-fake-fail-first", "1"), ("x-fake-fail-code", "RESOURCE_EXHAUSTED")])
        t0 = time.monotonic()
        run = engine.score(_variants(world_dir, 120, offset=120), ["DNASE"], backend=thr, limiter=lim, **kw)
        t_thr = time.monotonic() - t0
    finally:
        base.close()
    assert clean.failures.height == 0 and run.failures.height == 0
    assert run.summary["throttled"] == 120 and run.summary["calls"] == 240
    assert lim.cooldowns >= 1  # the limiter noticed that cutting did not help
    assert t_thr <= 3 * t_clean, (t_thr, t_clean, lim.stats())
